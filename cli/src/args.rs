//! The command line, as clap parses it.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "tidemark",
    version,
    about = "Read and write a tidemark database",
    after_help = "Exit codes: 0 success (put/delete: the write is durable); 1 error (put/delete: not written); \
                  2 usage error (nothing done); 3 put/delete: outcome unknown, the write may or may not be durable; \
                  4 get: key not found; 5 fsck: a problem found. See cli/README.md."
)]
pub struct Cli {
    /// Where the database lives: file:///abs/dir, file:rel/dir (relative to
    /// the working directory), memory://, or s3://bucket/prefix (configured
    /// from the AWS_* environment variables).
    #[arg(long)]
    pub url: String,
    /// Keep WALs (and recovery's fences) in another store, given as a URL of
    /// the same forms: say an S3 Express One Zone bucket beside a Standard
    /// one named by --url. Every command on the database must give the same
    /// --wal-url; without it WALs live beside the SSTs under --url.
    #[arg(long, global = true)]
    pub wal_url: Option<String>,
    /// How KEY, VALUE and --prefix arguments are given: their bytes as they
    /// are (text, which may be any bytes, not only UTF-8), hex or base64.
    #[arg(long, global = true, value_enum, default_value_t = Input::Text)]
    pub input: Input,
    /// The minimum age before garbage collection may delete an object
    /// (human-readable: `0s`, `10s`, `5m`). Readers holding checkpoints need
    /// none; it is a grace for plain read-only opens (`get`, `scan`) of other
    /// processes and for clock skew.
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "10s")]
    pub gc_min_age: std::time::Duration,
    /// How `put` and `delete` compress the SST data blocks they flush or
    /// compact: none, lz4 (the engine's default), zstd or zstd:LEVEL
    /// (1..=19). SSTs written with other codecs stay readable; `fsck` names
    /// each SST's codec.
    #[arg(long, global = true, value_parser = parse_compression, default_value = "lz4")]
    pub compression: tidemark::Compression,
    /// The merge operator `merge` writes with and every read folds operands
    /// with: concat (the operands appended to the value) or add (decimal
    /// 64-bit counters). Every command on a database that holds operands
    /// must give the same one; without it, reading such a key is an error.
    #[arg(long, global = true, value_enum)]
    pub merge_operator: Option<MergeOperatorArg>,
    #[command(subcommand)]
    pub command: Command,
}

fn parse_compression(s: &str) -> Result<tidemark::Compression, String> {
    s.parse()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MergeOperatorArg {
    /// `tidemark::Concat`: existing value ++ operand.
    Concat,
    /// `tidemark::AddI64`: the sum of decimal integers.
    Add,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Input {
    Text,
    Hex,
    Base64,
}

/// How `get` and `scan` print keys and values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
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
pub enum Command {
    /// Write KEY = VALUE and wait until it is durable.
    Put {
        key: OsString,
        #[arg(required_unless_present = "value_file")]
        value: Option<OsString>,
        /// Read the value's bytes from this file (`-` for stdin) instead of VALUE.
        #[arg(long, conflicts_with = "value")]
        value_file: Option<PathBuf>,
        /// Expire the value this long after the write (`30s`, `10m`, `7d`):
        /// reads no longer see it from then on.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
    },
    /// Merge OPERAND into KEY's value with --merge-operator (required) and
    /// wait until it is durable.
    Merge {
        key: OsString,
        /// The operand (may start with `-`, as a negative count does).
        #[arg(allow_hyphen_values = true)]
        operand: OsString,
    },
    /// Print the value of KEY (exit 4 if there is none).
    Get {
        key: OsString,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// Read durable checkpoint ID (hex, as `checkpoint list` prints it)
        /// instead of the latest state.
        #[arg(long, value_name = "ID")]
        checkpoint: Option<String>,
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
        /// Read durable checkpoint ID instead of the latest state.
        #[arg(long, value_name = "ID")]
        checkpoint: Option<String>,
    },
    /// Print the current manifest as JSON, with SST and WAL ids as their
    /// objects are named (compacted/<ULID>.sst, wal/<20 digits>.sst).
    Manifest,
    /// Check everything reads rely on: I1, every manifest, WAL and SST the
    /// latest manifest requires (blocks against the index, key order, bloom
    /// filter, sizes, key ranges, sorted runs); list orphans. Exit 5 on a problem.
    Fsck,
    /// Durable checkpoints: consistent backups that GC keeps until they are
    /// deleted or expire.
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Compact until L0 and the sorted runs are within the default limits,
    /// as a compactor of its own (a writer's own compactor, if on, is fenced).
    Compact,
    /// One garbage-collection pass as a process of its own: deletes what no
    /// live checkpoint, SST floor or the latest manifest keeps and is older
    /// than --gc-min-age, then drops expired checkpoints.
    Gc,
}

#[derive(Subcommand, Debug)]
pub enum CheckpointCommand {
    /// Create a durable checkpoint of every write acknowledged so far; prints its id.
    Create {
        /// Expire this long after creation (`1h`, `7d`); default: until deleted.
        #[arg(long, value_parser = humantime::parse_duration)]
        lifetime: Option<std::time::Duration>,
    },
    /// List the checkpoints the latest manifest records.
    List,
    /// Delete checkpoint ID (hex): GC may then collect what only it kept.
    Delete { id: String },
}
