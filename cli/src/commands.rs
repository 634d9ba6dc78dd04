//! What each command does, through tidemark's public API only.
//!
//! Reads (`get`, `scan`, `manifest`, `fsck`) never claim an epoch, so they
//! do not fence a running writer, and they never create anything; `put` and
//! `delete` open a writer.

use std::io::Write;

use bytes::Bytes;
use object_store::path::Path;
use tidemark::{
    CheckpointHolder, CheckpointOptions, Db, DbIterator, DbReader, Error, FsckFinding, MergeOperator, PutOptions, Settings, StoreRef, Ttl,
    WriteOptions,
};

use crate::args::{CheckpointCommand, Cli, Command, Format, MergeOperatorArg};
use crate::codec::{self, decode};
use crate::exit::{Failure, Outcome};

pub async fn run(cli: Cli) -> Result<Outcome, Failure> {
    let mut settings = Settings::default().with_gc_min_age(cli.gc_min_age).with_compression(cli.compression);
    let operator = cli.merge_operator.map(merge_operator);
    if let Some(op) = &operator {
        settings = settings.with_merge_operator(op.clone());
    }
    if let Some(wal_url) = &cli.wal_url {
        let (store, root) = tidemark::store_for_url(wal_url)?;
        settings = settings.with_wal_store(store, root);
    }
    let wal_url = cli.wal_url.as_deref();
    let input = cli.input;
    match cli.command {
        Command::Put { key, value, value_file, ttl } => {
            let key = decode(input, "KEY", key)?;
            let value = match (value, value_file) {
                (_, Some(path)) => codec::read_value_file(&path)?,
                (Some(v), None) => decode(input, "VALUE", v)?,
                (None, None) => return Err(Failure::Usage("put needs VALUE or --value-file".into())),
            };
            let ttl = ttl.map_or(Ttl::Default, Ttl::ExpireAfter);
            write(&cli.url, settings, key, WriteOp::Put(value, ttl)).await
        }
        Command::Delete { key } => {
            let key = decode(input, "KEY", key)?;
            write(&cli.url, settings, key, WriteOp::Delete).await
        }
        Command::Merge { key, operand } => {
            if operator.is_none() {
                return Err(Failure::Usage("merge needs --merge-operator (concat or add)".into()));
            }
            let key = decode(input, "KEY", key)?;
            let operand = decode(input, "OPERAND", operand)?;
            write(&cli.url, settings, key, WriteOp::Merge(operand)).await
        }
        Command::Get { key, format, checkpoint } => {
            let key = decode(input, "KEY", key)?;
            let db = open_for_reading(&cli.url, wal_url, checkpoint.as_deref(), read_settings(&operator)).await?;
            let Some(v) = db.get(&key).await? else { return Ok(Outcome::NotFound) };
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&codec::value(format, &key, &v))?;
            stdout.flush()?;
            Ok(Outcome::Done)
        }
        Command::Scan { prefix, limit, format, checkpoint } => {
            if format == Format::Raw {
                return Err(Failure::Usage(
                    "--format raw prints one value exactly and is for get; scan takes text, hex, base64 or json".into(),
                ));
            }
            let prefix = prefix.map(|p| decode(input, "--prefix", p)).transpose()?;
            let db = open_for_reading(&cli.url, wal_url, checkpoint.as_deref(), read_settings(&operator)).await?;
            let mut rows = db.scan(prefix).await?;
            // Streams: each row is printed as the scan reaches it, so memory
            // stays bounded however many rows there are.
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            let mut left = limit.unwrap_or(usize::MAX);
            while left > 0 {
                let Some((k, v)) = rows.next().await? else { break };
                stdout.write_all(&codec::row(format, &k, &v))?;
                left -= 1;
            }
            stdout.flush()?;
            Ok(Outcome::Done)
        }
        Command::Manifest => {
            let (store, root) = existing_store(&cli.url, wal_url).await?;
            let db = Db::open_read_only_with(root, store, read_settings(&operator)).await?;
            let m = db.manifest().await;
            // Each SST's codec, from its footer (one ranged read per SST).
            let mut codecs = crate::manifest::Codecs::new();
            for h in m.ssts() {
                let codec = match db.sst_compression(h.id).await {
                    Ok(c) => c.to_string(),
                    Err(e) => format!("unreadable: {e}"),
                };
                codecs.insert(h.id, codec);
            }
            let json = crate::manifest::to_json(&m, &codecs).map_err(|e| Failure::Io(std::io::Error::other(e)))?;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{json}")?;
            Ok(Outcome::Done)
        }
        Command::Fsck => {
            let (store, root) = existing_store(&cli.url, wal_url).await?;
            fsck(store, root).await
        }
        Command::Checkpoint(c) => checkpoint(&cli.url, wal_url, c).await,
        Command::Compact => {
            let (store, root) = existing_writable_store(&cli.url, wal_url).await?;
            let runs = tidemark::compact(root, store, settings).await?;
            println!("compactions recorded: {runs}");
            Ok(Outcome::Done)
        }
        Command::Gc => {
            let (store, root) = existing_writable_store(&cli.url, wal_url).await?;
            let s = tidemark::collect_garbage(root, store, settings).await?;
            println!(
                "deleted: {} manifest version(s), {} SST(s), {} WAL(s); checkpoints expired: {}",
                s.manifests, s.ssts, s.wals, s.checkpoints_expired
            );
            Ok(Outcome::Done)
        }
    }
}

async fn checkpoint(url: &str, wal_url: Option<&str>, c: CheckpointCommand) -> Result<Outcome, Failure> {
    let (store, root) = existing_writable_store(url, wal_url).await?;
    match c {
        CheckpointCommand::Create { lifetime } => {
            let cp = tidemark::create_checkpoint(store, root, CheckpointOptions { lifetime }).await?;
            println!("{:032x}", cp.id);
        }
        CheckpointCommand::List => {
            for cp in tidemark::list_checkpoints(store, root).await? {
                let holder = match cp.holder {
                    CheckpointHolder::Client if cp.wal_end.is_some() => "durable".to_string(),
                    CheckpointHolder::Client => "follower".to_string(),
                    CheckpointHolder::Writer(e) => format!("writer {e}"),
                };
                let expires = cp.expires_at_ms.map_or("never".to_string(), |ms| {
                    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
                });
                println!("{:032x} {holder} version {} expires {expires}", cp.id, cp.version);
            }
        }
        CheckpointCommand::Delete { id } => {
            tidemark::delete_checkpoint(store, root, parse_id(&id)?).await?;
        }
    }
    Ok(Outcome::Done)
}

/// A checkpoint id as `checkpoint list` prints it: 32 hex digits.
fn parse_id(id: &str) -> Result<u128, Failure> {
    u128::from_str_radix(id, 16).map_err(|e| Failure::Usage(format!("checkpoint id {id:?} is not hex: {e}")))
}

/// The store behind `url` for a read-only command (with its WALs in the
/// store `wal_url` names, if given, shown as one): nothing is created, and
/// a location without a manifest is `NoDatabase`.
async fn existing_store(url: &str, wal_url: Option<&str>) -> Result<(StoreRef, Path), Error> {
    let (mut store, root) = tidemark::store_for_url_read_only(url)?;
    if !tidemark::database_exists(store.as_ref(), &root).await? {
        return Err(Error::NoDatabase { location: url.to_string() });
    }
    if let Some(wal_url) = wal_url {
        let (wal, wal_root) = tidemark::store_for_url_read_only(wal_url)?;
        store = std::sync::Arc::new(tidemark::SplitStore::new(store, &root, wal, &wal_root));
    }
    Ok((store, root))
}

/// As `existing_store`, for commands that record something (checkpoints,
/// compaction, GC): the store must allow writes.
async fn existing_writable_store(url: &str, wal_url: Option<&str>) -> Result<(StoreRef, Path), Error> {
    let (mut store, root) = tidemark::store_for_url(url)?;
    if !tidemark::database_exists(store.as_ref(), &root).await? {
        return Err(Error::NoDatabase { location: url.to_string() });
    }
    if let Some(wal_url) = wal_url {
        let (wal, wal_root) = tidemark::store_for_url(wal_url)?;
        store = std::sync::Arc::new(tidemark::SplitStore::new(store, &root, wal, &wal_root));
    }
    Ok((store, root))
}

/// What `get` and `scan` read: the latest state, or a durable checkpoint.
enum Reading {
    Latest(Db),
    Checkpoint(DbReader),
}

impl Reading {
    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, Error> {
        match self {
            Reading::Latest(db) => db.get(key).await,
            Reading::Checkpoint(r) => r.get(key).await,
        }
    }

    async fn scan(&self, prefix: Option<Bytes>) -> Result<DbIterator, Error> {
        let range = match prefix {
            Some(p) => tidemark::prefix_range(p),
            None => (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
        };
        match self {
            Reading::Latest(db) => db.scan(range).await,
            Reading::Checkpoint(r) => r.scan(range).await,
        }
    }
}

async fn open_for_reading(url: &str, wal_url: Option<&str>, checkpoint: Option<&str>, settings: Settings) -> Result<Reading, Failure> {
    let (store, root) = existing_store(url, wal_url).await?;
    Ok(match checkpoint {
        None => Reading::Latest(Db::open_read_only_with(root, store, settings).await?),
        Some(id) => Reading::Checkpoint(DbReader::open_checkpoint_with(root, store, parse_id(id)?, settings).await?),
    })
}

/// What a read opens with: the defaults, and the merge operator if given
/// (reads of a database holding operands fold them with it).
fn read_settings(operator: &Option<std::sync::Arc<dyn MergeOperator>>) -> Settings {
    match operator {
        Some(op) => Settings::default().with_merge_operator(op.clone()),
        None => Settings::default(),
    }
}

/// The CLI's name for a shipped merge operator.
fn merge_operator(arg: MergeOperatorArg) -> std::sync::Arc<dyn MergeOperator> {
    match arg {
        MergeOperatorArg::Concat => std::sync::Arc::new(tidemark::Concat),
        MergeOperatorArg::Add => std::sync::Arc::new(tidemark::AddI64),
    }
}

/// What `put`, `delete` and `merge` write.
enum WriteOp {
    Put(Bytes, Ttl),
    Delete,
    Merge(Bytes),
}

/// Runs a write and closes: the write's outcome decides the exit code; a
/// failing close after an acknowledged write is only a warning.
async fn write(url: &str, settings: Settings, key: Bytes, w: WriteOp) -> Result<Outcome, Failure> {
    let (store, root) = tidemark::store_for_url(url)?;
    let db = Db::open_with(root, store, settings).await?;
    let written = match w {
        WriteOp::Put(v, ttl) => db.put_with_options(key, v, &PutOptions { ttl }, &WriteOptions::default()).await,
        WriteOp::Delete => db.delete(key).await,
        WriteOp::Merge(operand) => db.merge(key, operand).await,
    };
    let closed = db.close().await;
    written?;
    if let Err(e) = closed {
        eprintln!("tidemark: warning: the write is durable, but closing failed: {e}");
    }
    Ok(Outcome::Done)
}

/// Checks everything a read relies on (`tidemark::fsck`): prints one line
/// per check, `FAIL` for each problem and `info` for each orphan (an object
/// no kept manifest references: informational, it does not fail fsck).
async fn fsck(store: StoreRef, root: Path) -> Result<Outcome, Failure> {
    let report = tidemark::fsck(store.as_ref(), root).await;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for f in &report.findings {
        match f {
            FsckFinding::Ok(s) => writeln!(out, "ok   {s}")?,
            FsckFinding::Problem(s) => writeln!(out, "FAIL {s}")?,
            FsckFinding::Orphan(s) => writeln!(out, "info orphan {s}")?,
        }
    }
    let orphans = report.orphans();
    if orphans > 0 {
        writeln!(out, "fsck: {orphans} orphan(s) (informational)")?;
    }
    let outcome = match report.problems() {
        0 => {
            writeln!(out, "fsck: no problems")?;
            Outcome::Done
        }
        n => {
            writeln!(out, "fsck: {n} problem(s)")?;
            Outcome::Problems
        }
    };
    out.flush()?;
    Ok(outcome)
}
