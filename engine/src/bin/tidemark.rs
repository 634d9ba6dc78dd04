//! `tidemark`: a command-line client for a tidemark database.
//!
//! Reads (`get`, `scan`, `manifest`, `fsck`) never claim an epoch, so they do
//! not fence a running writer, and they never create anything; `put` and
//! `delete` open a writer.
//!
//! Exit codes (see the README): 0 success (a write is acknowledged durable);
//! 1 failure: a write was not written, a key is not found, or another error;
//! 2 usage error (nothing was written); 3 a write's outcome is unknown.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use object_store::path::Path;
use tidemark::FsckFinding as Finding;
use tidemark::store_for_url_read_only;
use tidemark::{Db, Error, Settings};

/// Success; for `put`/`delete`, the write is acknowledged durable.
const EXIT_OK: u8 = 0;
/// Failure: a write that was not written, a key not found, any other error.
const EXIT_FAILED: u8 = 1;
/// Bad command line (clap, or an argument that does not decode): nothing was done.
const EXIT_USAGE: u8 = 2;
/// A write was sent but its outcome cannot be known: it may or may not be durable.
const EXIT_OUTCOME_UNKNOWN: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "tidemark",
    about = "Read and write a tidemark database",
    after_help = "Exit codes: 0 success (put/delete: the write is durable); 1 failure (put/delete: not written; \
                  get: not found; fsck: a problem); 2 usage error (nothing done); 3 put/delete: outcome unknown, \
                  the write may or may not be durable."
)]
struct Cli {
    /// Where the database lives: file:///abs/dir, file:rel/dir (relative to
    /// the working directory), memory://, or s3://bucket/prefix.
    #[arg(long)]
    url: String,
    /// How KEY, VALUE and --prefix arguments are given: their bytes as they
    /// are (text, which may be any bytes, not only UTF-8), hex or base64.
    #[arg(long, global = true, value_enum, default_value_t = Input::Text)]
    input: Input,
    /// The minimum age before garbage collection may delete an object
    /// (human-readable: `0s`, `90s`, `5m`, `1h`). Readers and other
    /// processes may use what they read for this long; `0s` is safe only
    /// when one process at a time uses the database.
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "5m")]
    gc_min_age: std::time::Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Input {
    Text,
    Hex,
    Base64,
}

/// How `get` and `scan` print keys and values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The bytes as they are, one line per value (`scan`: KEY<TAB>VALUE).
    #[default]
    Text,
    /// `get` only: exactly the value's bytes, nothing added (for binary values).
    Raw,
    /// Lowercase hex (`scan`: KEY<TAB>VALUE).
    Hex,
    /// Standard base64 with padding (`scan`: KEY<TAB>VALUE).
    Base64,
    /// One JSON object per line: {"key":..,"value":..}; a key or value that
    /// is not UTF-8 is given as "key_base64"/"value_base64" instead.
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write KEY = VALUE and wait until it is durable.
    Put {
        key: OsString,
        #[arg(required_unless_present = "value_file")]
        value: Option<OsString>,
        /// Read the value's bytes from this file (`-` for stdin) instead of VALUE.
        #[arg(long, conflicts_with = "value")]
        value_file: Option<PathBuf>,
    },
    /// Print the value of KEY (exit 1 if absent).
    Get {
        key: OsString,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete KEY and wait until the delete is durable.
    Delete { key: OsString },
    /// Print keys and values in order.
    Scan {
        #[arg(long)]
        prefix: Option<OsString>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Print the current manifest as JSON.
    Manifest,
    /// Check everything reads rely on: I1, every manifest, WAL and SST the
    /// latest manifest requires (blocks against the index, key order, bloom
    /// filter, sizes, key ranges, sorted runs); list orphans. Exit 1 on a problem.
    Fsck,
}

/// Why a command failed, and so its exit code.
enum Failure {
    Usage(String),
    /// A write that was not written (or a read that failed).
    Db(Error),
    Io(std::io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Db(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let writes = matches!(cli.command, Command::Put { .. } | Command::Delete { .. });
    match run(cli).await {
        Ok(code) => code,
        Err(Failure::Usage(m)) => {
            eprintln!("tidemark: {m}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(EXIT_OK),
        Err(Failure::Io(e)) => {
            eprintln!("tidemark: {e}");
            ExitCode::from(EXIT_FAILED)
        }
        Err(Failure::Db(e @ Error::OutcomeUnknown { .. })) => {
            eprintln!("tidemark: {e}");
            ExitCode::from(EXIT_OUTCOME_UNKNOWN)
        }
        Err(Failure::Db(e)) if writes => {
            eprintln!("tidemark: not written: {e}");
            ExitCode::from(EXIT_FAILED)
        }
        Err(Failure::Db(e)) => {
            eprintln!("tidemark: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// An argument's bytes: any bytes on Unix, valid Unicode elsewhere.
fn arg_bytes(what: &str, arg: OsString) -> Result<Vec<u8>, Failure> {
    #[cfg(unix)]
    {
        let _ = what;
        use std::os::unix::ffi::OsStringExt;
        Ok(arg.into_vec())
    }
    #[cfg(not(unix))]
    {
        arg.into_string().map(String::into_bytes).map_err(|a| {
            Failure::Usage(format!("{what} `{}` is not Unicode: use --input hex or base64", a.to_string_lossy()))
        })
    }
}

fn decode(input: Input, what: &str, arg: OsString) -> Result<Bytes, Failure> {
    let bytes = arg_bytes(what, arg)?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match input {
        Input::Text => Ok(Bytes::from(bytes)),
        Input::Hex => hex::decode(&bytes)
            .map(Bytes::from)
            .map_err(|e| Failure::Usage(format!("{what} `{}` is not hex: {e}", text(&bytes)))),
        Input::Base64 => base64::engine::general_purpose::STANDARD
            .decode(&bytes)
            .map(Bytes::from)
            .map_err(|e| Failure::Usage(format!("{what} `{}` is not base64: {e}", text(&bytes)))),
    }
}

fn read_value_file(path: &std::path::Path) -> Result<Bytes, Failure> {
    let mut buf = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().lock().read_to_end(&mut buf).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf)).map(|_| ())
    };
    read.map_err(|e| Failure::Db(Error::InvalidArgument(format!("cannot read --value-file {}: {e}", path.display()))))?;
    Ok(Bytes::from(buf))
}

/// The store behind `url` for a read-only command: nothing is created, and
/// a location without a manifest is `NoDatabase`.
async fn open_for_reading(url: &str) -> Result<(tidemark::StoreRef, Path), Error> {
    let (store, root) = store_for_url_read_only(url)?;
    if !tidemark::database_exists(store.as_ref(), &root).await? {
        return Err(Error::NoDatabase { location: url.to_string() });
    }
    Ok((store, root))
}

/// Runs a write and closes: the write's outcome decides the exit code; a
/// failing close after an acknowledged write is only a warning.
async fn write(url: &str, settings: Settings, key: Bytes, value: Option<Bytes>) -> Result<ExitCode, Failure> {
    let (store, root) = tidemark::store_for_url(url)?;
    let db = Db::open_with(root, store, settings).await?;
    let written = match value {
        Some(v) => db.put(key, v).await,
        None => db.delete(key).await,
    };
    let closed = db.close().await;
    written?;
    if let Err(e) = closed {
        eprintln!("tidemark: warning: the write is durable, but closing failed: {e}");
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn encode(format: Format, bytes: &[u8]) -> Vec<u8> {
    match format {
        Format::Text | Format::Raw | Format::Json => bytes.to_vec(),
        Format::Hex => hex::encode(bytes).into_bytes(),
        Format::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes).into_bytes(),
    }
}

fn json_line(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut obj = serde_json::Map::new();
    for (name, bytes) in [("key", key), ("value", value)] {
        match std::str::from_utf8(bytes) {
            Ok(s) => obj.insert(name.into(), s.into()),
            Err(_) => obj.insert(format!("{name}_base64"), base64::engine::general_purpose::STANDARD.encode(bytes).into()),
        };
    }
    let mut line = serde_json::Value::Object(obj).to_string().into_bytes();
    line.push(b'\n');
    line
}

fn row(format: Format, key: &[u8], value: &[u8]) -> Vec<u8> {
    if format == Format::Json {
        return json_line(key, value);
    }
    let mut line = encode(format, key);
    line.push(b'\t');
    line.extend(encode(format, value));
    line.push(b'\n');
    line
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let settings = Settings::default().with_gc_min_age(cli.gc_min_age);
    let input = cli.input;
    match cli.command {
        Command::Put { key, value, value_file } => {
            let key = decode(input, "KEY", key)?;
            let value = match (value, value_file) {
                (_, Some(path)) => read_value_file(&path)?,
                (Some(v), None) => decode(input, "VALUE", v)?,
                (None, None) => return Err(Failure::Usage("put needs VALUE or --value-file".into())),
            };
            return write(&cli.url, settings, key, Some(value)).await;
        }
        Command::Delete { key } => {
            let key = decode(input, "KEY", key)?;
            return write(&cli.url, settings, key, None).await;
        }
        Command::Get { key, format } => {
            let key = decode(input, "KEY", key)?;
            let (store, root) = open_for_reading(&cli.url).await?;
            let db = Db::open_read_only(root, store).await?;
            let Some(v) = db.get(&key).await? else {
                eprintln!("not found");
                return Ok(ExitCode::from(EXIT_FAILED));
            };
            let out = match format {
                Format::Raw => v.to_vec(),
                Format::Json => json_line(&key, &v),
                f => {
                    let mut line = encode(f, &v);
                    line.push(b'\n');
                    line
                }
            };
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&out)?;
            stdout.flush()?;
        }
        Command::Scan { prefix, limit, format } => {
            if format == Format::Raw {
                return Err(Failure::Usage(
                    "--format raw prints one value exactly and is for get; scan takes text, hex, base64 or json".into(),
                ));
            }
            let prefix = prefix.map(|p| decode(input, "--prefix", p)).transpose()?;
            let (store, root) = open_for_reading(&cli.url).await?;
            let db = Db::open_read_only(root, store).await?;
            let mut rows = match prefix {
                Some(p) => db.scan_prefix(p).await?,
                None => db.scan(..).await?,
            };
            // Streams: each row is printed as the scan reaches it, so memory
            // stays bounded however many rows there are.
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            let mut left = limit.unwrap_or(usize::MAX);
            while left > 0 {
                let Some((k, v)) = rows.next().await? else { break };
                stdout.write_all(&row(format, &k, &v))?;
                left -= 1;
            }
            stdout.flush()?;
        }
        Command::Manifest => {
            let (store, root) = open_for_reading(&cli.url).await?;
            let db = Db::open_read_only(root, store).await?;
            let m = db.manifest().await;
            let json = serde_json::to_string_pretty(&m)
                .map_err(|e| Failure::Db(Error::InvalidArgument(format!("cannot print the manifest: {e}"))))?;
            println!("{json}");
        }
        Command::Fsck => {
            let (store, root) = open_for_reading(&cli.url).await?;
            return Ok(fsck(store, root).await);
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// Checks everything a read relies on (`tidemark::fsck`): prints one line
/// per check, `FAIL` for each problem and `info` for each orphan (an object
/// no kept manifest references: informational, it does not fail fsck).
/// Exit 1 if there is any problem.
async fn fsck(store: tidemark::StoreRef, root: Path) -> ExitCode {
    let report = tidemark::fsck(store.as_ref(), root).await;
    for f in &report.findings {
        match f {
            Finding::Ok(s) => println!("ok   {s}"),
            Finding::Problem(s) => println!("FAIL {s}"),
            Finding::Orphan(s) => println!("info orphan {s}"),
        }
    }
    let orphans = report.orphans();
    if orphans > 0 {
        println!("fsck: {orphans} orphan(s) (informational)");
    }
    match report.problems() {
        0 => {
            println!("fsck: no problems");
            ExitCode::from(EXIT_OK)
        }
        n => {
            println!("fsck: {n} problem(s)");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
