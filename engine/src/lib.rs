//! tidemark: an embedded key-value store on object storage whose
//! write-ordering protocol is model-checked.
//!
//! Writes go to a WAL object first and return once it exists in the store;
//! memtables are flushed to SSTs; numbered manifests, each created by
//! compare-and-set, record the state; an open replays the WALs the manifest
//! points at. Every decision about ordering, recording and deletion is made in
//! one sans-IO core that a Stateright model explores exhaustively (see
//! `spec/protocol.md` in the repository).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tidemark::Result<()> {
//! let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
//! db.put("hello", "world").await?; // returns once the write is durable
//! assert_eq!(db.get("hello").await?.as_deref(), Some(&b"world"[..]));
//! db.close().await
//! # }
//! ```
//!
//! The public API is this page: [`Db`] and its reads ([`Snapshot`],
//! [`DbIterator`]), [`WriteBatch`] and the option types, [`Settings`],
//! [`Error`], [`Metrics`], [`store_for_url`], [`fsck()`], and the names ids
//! have in the store ([`sst_name`], [`wal_name`]). Everything else
//! is internal; tidemark's own checkers reach it through the `internals`
//! module (feature `internals`), which carries no stability promise.

// With `internals` off, items that only the checkers use look unused.
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]
#![cfg_attr(not(feature = "internals"), warn(missing_docs))]

mod batch;
mod bounds;
mod cache;
mod clock;
mod commit;
mod db;
mod error;
mod fsck;
mod iter;
mod manifest;
mod memtable;
mod metrics;
mod paths;
mod protocol;
mod settings;
mod sst;
mod store;
mod sync;
mod trace;
mod value;
mod wal_object;

pub use batch::{PutOptions, Ttl, WriteBatch, WriteOptions};
pub use cache::BlockCacheStats;
pub use clock::{Clock, SystemClock, TokioClock};
pub use db::{
    collect_garbage, compact, create_checkpoint, create_checkpoint_with, database_exists, delete_checkpoint, delete_checkpoint_with, list_checkpoints, CheckpointOptions, Db,
    prefix_range, DbIterator, DbReader, GcStats, ReaderOptions, SlowWrites, Snapshot, StallCause,
};
pub use error::{Error, Result};
pub use fsck::{fsck, fsck_with, Finding as FsckFinding, Report as FsckReport};
pub use iter::{Direction, ScanOptions};
pub use manifest::{Checkpoint, CheckpointHolder, ManifestObject as Manifest, RetiredSst, SortedRun, SstHandle, SstOwner};
pub use metrics::{Metrics, StoreRequests};
pub use paths::{sst_name, wal_name};
pub use protocol::PutBudget;
pub use settings::{Settings, SlowWrite, WalStore};
pub use sst::Compression;
pub use value::{AddI64, Concat, MergeOperator};
pub use store::url::{store_for_url, store_for_url_read_only};
pub use store::{HedgeCounts, HedgeSettings, SplitStore};

/// A shared object store, as [`Db::open`] takes it and [`store_for_url`]
/// returns it (any `object_store` store behind an `Arc`).
pub type StoreRef = sync::StdArc<dyn object_store::ObjectStore>;

/// tidemark's internals, for its own checkers (the model, the loom suite,
/// the crash harness, the fuzz targets and the benchmark): the protocol core,
/// object formats, the sync shim, trace recording and test stores. Nothing
/// here is a stable API.
#[cfg(feature = "internals")]
pub mod internals {
    /// The sans-IO protocol core: every ordering, recording and deletion decision.
    pub mod protocol {
        pub use crate::protocol::*;
    }
    /// The group-commit state (WAL buffer, watermark, ack waiters) loom permutes.
    pub mod commit {
        pub use crate::commit::*;
    }
    /// The sync shim: loom's types under `--cfg loom`, std's otherwise.
    pub mod sync {
        pub use crate::sync::*;
    }
    /// Protocol traces and recorders (trace conformance).
    pub mod trace {
        pub use crate::trace::*;
    }
    /// Object layout under a database root.
    pub mod paths {
        pub use crate::paths::*;
    }
    /// Every bound on a stored value (epochs, ids, entries, object sizes).
    pub mod bounds {
        pub use crate::bounds::*;
    }
    /// Manifest objects and their encoding.
    pub mod manifest {
        pub use crate::manifest::*;
    }
    /// WAL objects and their encoding.
    pub mod wal_object {
        pub use crate::wal_object::*;
    }
    /// SST format: builder, reader, decoding.
    pub mod sst {
        pub use crate::sst::*;
    }
    /// Iterators shared by reads and compaction.
    /// Versions (put, delete, merge operand, expiring value) and how they stack.
    pub mod value {
        pub use crate::value::*;
    }
    pub mod iter {
        pub use crate::iter::*;
    }
    /// The object-store decorators and, with `test-util`, stores that
    /// misbehave on purpose.
    pub mod store {
        pub use crate::store::*;
    }
    /// Reading a WAL chain as recovery does.
    pub use crate::db::{read_chain, read_chain_with, ChainContents};
}

/// Stores that misbehave on purpose (fault, latency, pacing), for tests.
#[cfg(feature = "test-util")]
pub use store::testing;

/// What `delegate_object_store!` expands to; not an API.
#[doc(hidden)]
pub mod __private {
    pub use crate::store::wrap::{Request, __BoxStream, __Bytes, __Fut, __object_store};
}
