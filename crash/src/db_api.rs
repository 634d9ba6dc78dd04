//! The harness's view of the engine: the few calls a schedule makes.

use std::collections::BTreeMap;

use bytes::Bytes;
use object_store::ObjectStore;
use tidemark::internals::protocol::Protocol;
use tidemark::internals::sync::StdArc as Arc;
use tidemark::internals::trace::{MemoryRecorder, TraceEvent, TraceRecorder, TraceStep};
use tidemark::{Settings, WriteBatch, WriteOptions};

pub use tidemark::Db;

use crate::config::{CompactorPlace, Config};
pub use crate::workload::Write;

/// The root the harness's databases live under.
pub const ROOT: &str = "db";
/// Uploads under this prefix are held by the chaos task (WALs).
pub const WAL_PREFIX: &str = "db/wal/";
/// L0 SST uploads are held too, so manifests are written late.
pub const SST_PREFIX: &str = "db/compacted/";
/// Where WALs live when a schedule gives them a store of their own
/// (`Config::wal_store`): `db/wal/split/wal/<id>.sst`, inside
/// [`WAL_PREFIX`], so the chaos task holds them and a listing of `db/wal`
/// finds them, while a WAL the engine sent to the main store by mistake
/// (`db/wal/<id>.sst`) is one recovery never reads.
pub const WAL_STORE_ROOT: &str = "db/wal/split";
/// Manifest versions (their reads are held with held listings).
pub const MANIFEST_PREFIX: &str = "db/manifest/";

/// The merge operator every database of the harness opens with (writers,
/// recoveries, read-only handles, followers, compactors, GC, checkpoints):
/// concatenation, which an operand lost, duplicated or reordered shows.
pub fn merge_operator() -> Arc<dyn tidemark::MergeOperator> {
    Arc::new(tidemark::Concat)
}

/// Settings that exercise everything in small workloads: tiny memtables
/// (frequent `FlushL0` and `WriteManifest`), W = 4, a short flush interval.
pub fn settings(protocol: Protocol) -> Settings {
    Settings::default()
        .with_protocol(protocol)
        .with_merge_operator(merge_operator())
        .with_l0_sst_size_bytes(1500)
        .with_max_unflushed_bytes(64 << 10)
        .with_max_inflight_wal_uploads(4)
        .with_flush_interval(std::time::Duration::from_millis(1))
        // Compaction and GC are not yet in the model that trace conformance
        // replays (spec: Compact, GcWal, GcSst, GcManifest).
        .with_compactor(false)
        .with_gc_interval(std::time::Duration::ZERO)
}

/// Opens a process's `Db` with the schedule's settings on `clock` (the
/// schedule's clock: GC, SST creation times and compaction read it).
/// `burst_gap` varies by seed: zero gives many small WALs (more
/// interleavings), the default gathers bursts as in production.
pub async fn open(
    store: Arc<dyn ObjectStore>,
    cfg: &Config,
    recorder: &MemoryRecorder,
    clock: Arc<dyn tidemark::Clock>,
) -> tidemark::Result<Db> {
    let s = store_settings(cfg, recorder, clock, &store);
    Db::open_with(ROOT, store, s).await
}

/// [`process_settings`] for a process on `store`, with WALs under
/// [`WAL_STORE_ROOT`] when `cfg.wal_store`: what every writer and GC
/// process of a schedule opens with.
pub fn store_settings(cfg: &Config, recorder: &MemoryRecorder, clock: Arc<dyn tidemark::Clock>, store: &Arc<dyn ObjectStore>) -> Settings {
    let s = process_settings(cfg, recorder, clock);
    match cfg.wal_store {
        true => s.with_wal_store(store.clone(), WAL_STORE_ROOT),
        false => s,
    }
}

/// Opens a read-only handle on `store`; with `wal_store` (`Config::wal_store`)
/// it sees the store as the writers' `SplitStore` does, WALs under
/// [`WAL_STORE_ROOT`], as a reader given both stores would. It judges
/// expiry on `clock` (the schedule's).
pub async fn open_read_only(store: Arc<dyn ObjectStore>, wal_store: bool, clock: Arc<dyn tidemark::Clock>) -> tidemark::Result<Db> {
    Db::open_read_only_with(ROOT, reader_store(store, wal_store), reader_settings(clock)).await
}

/// A reader's settings: a user's defaults with the harness's merge
/// operator, judging expiry on `clock`.
fn reader_settings(clock: Arc<dyn tidemark::Clock>) -> Settings {
    Settings::default().with_merge_operator(merge_operator()).with_clock(clock)
}

/// `store` as a reader given both stores sees it: with `wal_store`, WALs
/// under [`WAL_STORE_ROOT`] (the writers' `SplitStore`).
fn reader_store(store: Arc<dyn ObjectStore>, wal_store: bool) -> Arc<dyn ObjectStore> {
    match wal_store {
        false => store,
        true => {
            let (root, wal_root) = (object_store::path::Path::from(ROOT), object_store::path::Path::from(WAL_STORE_ROOT));
            Arc::new(tidemark::SplitStore::new(store.clone(), &root, store, &wal_root))
        }
    }
}

/// Opens durable checkpoint `id` read-only (`DbReader::open_checkpoint`),
/// judging expiry on `clock` (the schedule's).
pub async fn open_checkpoint(
    store: Arc<dyn ObjectStore>,
    wal_store: bool,
    id: u128,
    recorder: &MemoryRecorder,
    clock: Arc<dyn tidemark::Clock>,
) -> tidemark::Result<tidemark::DbReader> {
    let settings = client_settings(recorder).with_clock(clock);
    tidemark::DbReader::open_checkpoint_with(ROOT, reader_store(store, wal_store), id, settings).await
}

/// Creates a durable checkpoint with no expiry (`tidemark checkpoint create`).
pub async fn create_checkpoint(store: Arc<dyn ObjectStore>, wal_store: bool, recorder: &MemoryRecorder) -> tidemark::Result<tidemark::Checkpoint> {
    tidemark::create_checkpoint_with(reader_store(store, wal_store), ROOT, tidemark::CheckpointOptions::default(), client_settings(recorder)).await
}

/// The settings of a checkpoint command or a reader: a user's defaults
/// with the harness's merge operator, recording to the schedule's trace.
fn client_settings(recorder: &MemoryRecorder) -> Settings {
    Settings::default().with_merge_operator(merge_operator()).with_recorder(Arc::new(recorder.clone()))
}

/// Deletes the checkpoints of following readers whose processes are gone
/// (as an operator would with `tidemark checkpoint delete`, rather than
/// wait a day for them to expire): else they would keep every SST retired
/// after them, and no rule about what a durable checkpoint alone keeps
/// would ever decide a deletion. Returns how many it deleted.
pub async fn drop_dead_followers(store: Arc<dyn ObjectStore>, wal_store: bool, recorder: &MemoryRecorder) -> tidemark::Result<u64> {
    let store = reader_store(store, wal_store);
    let mut dropped = 0;
    for cp in tidemark::list_checkpoints(store.clone(), ROOT).await? {
        if cp.holder == tidemark::CheckpointHolder::Client && cp.wal_end.is_none() {
            tidemark::delete_checkpoint_with(store.clone(), ROOT, cp.id, client_settings(recorder)).await?;
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// Deletes durable checkpoint `id` (`tidemark checkpoint delete`).
pub async fn delete_checkpoint(store: Arc<dyn ObjectStore>, wal_store: bool, id: u128, recorder: &MemoryRecorder) -> tidemark::Result<()> {
    tidemark::delete_checkpoint_with(reader_store(store, wal_store), ROOT, id, client_settings(recorder)).await
}

/// A read-only handle on `store`: a plain `Db::open_read_only` (no
/// checkpoint: nothing protects it from another process's GC), or a
/// `DbReader` holding a checkpoint of its own (GC anywhere keeps what it
/// reads), which polls only when the harness says so, so its view stays
/// fixed between polls as the oracle expects.
pub enum ReadOnly {
    Plain(Db),
    Checkpointed(tidemark::DbReader),
}

impl ReadOnly {
    pub async fn scan_prefix(&self, prefix: Bytes) -> tidemark::Result<BTreeMap<Bytes, Bytes>> {
        match self {
            ReadOnly::Plain(db) => scan_prefix(db, prefix).await,
            ReadOnly::Checkpointed(r) => Ok(r.scan(tidemark::prefix_range(prefix)).await?.collect_vec().await?.into_iter().collect()),
        }
    }

    /// Catches a following reader up with the writer (`DbReader::poll`); a
    /// plain handle's view is fixed.
    pub async fn poll(&self) -> tidemark::Result<bool> {
        match self {
            ReadOnly::Plain(_) => Ok(false),
            ReadOnly::Checkpointed(r) => r.poll().await,
        }
    }

    /// Closes the handle: a following reader drops its own checkpoint.
    pub async fn close(self) -> tidemark::Result<()> {
        match self {
            ReadOnly::Plain(_) => Ok(()),
            ReadOnly::Checkpointed(r) => r.close().await,
        }
    }

    /// The manifest version the handle reads.
    pub async fn version(&self) -> u64 {
        match self {
            ReadOnly::Plain(db) => db.manifest().await.version,
            ReadOnly::Checkpointed(r) => r.position().await.0,
        }
    }
}

/// Opens a `DbReader` on `store` (as [`open_read_only`] for `wal_store`)
/// whose checkpoint outlives the schedule on its clock, with the
/// schedule's engine mutant if it has one.
pub async fn open_checkpointed(
    store: Arc<dyn ObjectStore>,
    wal_store: bool,
    clock: Arc<dyn tidemark::Clock>,
    mutant: Option<crate::config::EngineMutant>,
    recorder: &MemoryRecorder,
) -> tidemark::Result<tidemark::DbReader> {
    let store = reader_store(store, wal_store);
    let mut settings = client_settings(recorder).with_clock(clock);
    if let Some(m) = mutant {
        m.apply(&mut settings);
    }
    let opts = tidemark::ReaderOptions { checkpoint_lifetime: std::time::Duration::from_secs(24 * 3600), poll_interval: None, settings };
    tidemark::DbReader::open(ROOT, store, opts).await
}

/// The settings of a schedule's process (see [`open`]).
pub fn process_settings(cfg: &Config, recorder: &MemoryRecorder, clock: Arc<dyn tidemark::Clock>) -> Settings {
    // Odd seeds: no gathering at all (many small WALs, every upload overlapping).
    let budget = if cfg.burst_gap.is_zero() { tidemark::PutBudget::Unlimited } else { tidemark::PutBudget::default() };
    let mut s = settings(cfg.protocol)
        .with_burst_gap(cfg.burst_gap)
        .with_wal_put_budget(budget)
        .with_recorder(Arc::new(recorder.clone()))
        .with_clock(clock)
        .with_hedge(cfg.hedge.unwrap_or_default())
        .with_compression(cfg.compression);
    s.max_retries = 2;
    s.default_ttl = cfg.default_ttl;
    if cfg.no_block_cache {
        s = s.with_block_cache_bytes(0);
    }
    if let Some(m) = cfg.mutant {
        m.apply(&mut s);
    }
    if cfg.compaction {
        // Compact at two L0 SSTs into tiny run SSTs; collect every few
        // milliseconds, objects aged on the schedule's clock.
        s = s
            .with_compactor(cfg.compactor != CompactorPlace::Standalone)
            .with_l0_max_ssts(2)
            .with_compacted_sst_size_bytes(if cfg.busy_tree { 1024 } else { 2048 })
            .with_gc_min_age(cfg.gc_min_age().0)
            .with_gc_interval(cfg.gc_interval);
        if cfg.busy_tree {
            s.max_sorted_runs = 2;
        }
    }
    if cfg.busy_tree {
        // Little room for held memtables: a writer that waits on a
        // compactor which never comes is stuck within the round.
        s = s.with_l0_sst_size_bytes(512).with_max_unflushed_bytes(4 << 10);
    }
    s
}

/// The WAL ids in the store now.
pub async fn list_wals(store: &Arc<dyn ObjectStore>) -> Vec<u64> {
    use futures::TryStreamExt;
    let layout = tidemark::internals::paths::Layout::new(object_store::path::Path::from(ROOT));
    let listed: Vec<_> = store.list(Some(&layout.wal_dir())).try_collect().await.unwrap_or_default();
    let mut ids: Vec<u64> = listed.iter().filter_map(|m| layout.parse_wal(&m.location)).collect();
    ids.sort_unstable();
    ids
}

/// The WAL id of `path`, if it is a WAL of the harness's database.
pub fn parse_wal(path: &object_store::path::Path) -> Option<u64> {
    tidemark::internals::paths::Layout::new(object_store::path::Path::from(ROOT)).parse_wal(path)
}

/// The version of `path`, if it is a manifest of the harness's database.
pub fn parse_manifest(path: &object_store::path::Path) -> Option<u64> {
    tidemark::internals::paths::Layout::new(object_store::path::Path::from(ROOT)).parse_manifest(path)
}

/// The writer epoch recorded in the manifest object at `path`, if readable.
pub async fn manifest_writer_epoch(store: &Arc<dyn ObjectStore>, path: &object_store::path::Path) -> Option<u64> {
    use object_store::ObjectStoreExt;
    let bytes = store.get(path).await.ok()?.bytes().await.ok()?;
    tidemark::internals::manifest::ManifestObject::decode(path.as_ref(), &bytes).ok().map(|m| m.writer_epoch)
}

/// Whether a failed write promises it was not written: every error but
/// `OutcomeUnknown` (`Db::write_with`).
pub fn not_written(e: &tidemark::Error) -> bool {
    !matches!(e, tidemark::Error::OutcomeUnknown { .. })
}

/// Records that every process that started since step `since` is gone.
pub fn record_crashes(recorder: &MemoryRecorder, since: usize, listed: Vec<u64>) {
    let steps = recorder.steps();
    let mut epochs: Vec<u64> = steps[since.min(steps.len())..]
        .iter()
        .filter(|s| matches!(s.event, TraceEvent::Recover { .. }))
        .map(|s| s.writer_epoch)
        .collect();
    epochs.dedup();
    for writer_epoch in epochs {
        recorder.record(TraceStep { writer_epoch, event: TraceEvent::Crash { listed: listed.clone() } });
    }
}

/// Writes `writes` in one batch, in order: puts with their time-to-live,
/// deletes and merges.
pub async fn write(db: &Db, writes: Vec<(Bytes, Write)>, await_durable: bool) -> tidemark::Result<()> {
    let mut batch = WriteBatch::new();
    for (k, w) in writes {
        match w {
            Write::Put(v, ttl) => batch.put_with(k, v, tidemark::PutOptions { ttl }),
            Write::Delete => batch.delete(k),
            Write::Merge(o) => batch.merge(k, o),
        };
    }
    db.write_with(batch, &WriteOptions { await_durable }).await
}

pub async fn flush(db: &Db) -> tidemark::Result<()> {
    db.flush().await
}

pub async fn get(db: &Db, key: Bytes) -> tidemark::Result<Option<Bytes>> {
    db.get(key).await
}

pub async fn scan_prefix(db: &Db, prefix: Bytes) -> tidemark::Result<BTreeMap<Bytes, Bytes>> {
    Ok(db.scan_prefix(prefix).await?.collect_vec().await?.into_iter().collect())
}

pub async fn close(db: Db) -> tidemark::Result<()> {
    db.close().await
}

pub async fn close_ref(db: &Db) -> tidemark::Result<()> {
    db.close().await
}
