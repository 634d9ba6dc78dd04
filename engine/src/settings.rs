//! Tuning knobs. The write path's defaults adapt to the store's measured
//! latency (PUT pacing, hedge delays, slow-write threshold), so one set of
//! defaults fits stores that answer in milliseconds and in tens of them.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::protocol::{Protocol, PutBudget, MAX_INFLIGHT_WAL_UPLOADS};
use crate::sync::Arc;
use crate::trace::TraceRecorder;

/// Settings of a [`Db`](crate::Db). Build with [`Settings::default`] and the
/// `with_*` methods; an open checks them with [`Settings::validate`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// use std::time::Duration;
/// use tidemark::{Db, HedgeSettings, Settings};
///
/// let settings = Settings::default()
///     .with_l0_sst_size_bytes(8 << 20) // smaller memtables, flushed to L0 sooner
///     .with_max_unflushed_bytes(32 << 20)
///     .with_block_cache_bytes(256 << 20)
///     .with_gc_min_age(Duration::from_secs(60)) // plain read-only handles may read for a minute
///     .with_hedge(HedgeSettings::off());
/// assert!(settings.validate().is_ok());
/// let db = Db::open_url("memory://", settings).await?;
/// db.close().await?;
///
/// // Settings the engine cannot honour are refused at open.
/// let bad = Settings::default().with_max_inflight_wal_uploads(0);
/// assert!(matches!(Db::open_url("memory://", bad).await, Err(tidemark::Error::InvalidArgument(_))));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Settings {
    /// How often the WAL buffer is frozen when nobody is waiting for durability.
    pub flush_interval: Duration,
    /// Freeze the WAL buffer once it holds this many bytes.
    pub wal_size_bytes: usize,
    /// When a writer wakes the WAL flusher and no upload is in flight, the
    /// buffer gathers at most this long (and at most an eighth of the
    /// store's median WAL upload) before it is frozen, so that a burst of
    /// writers (those released by one acknowledgement) rides in one WAL; it
    /// stops as soon as as many writes came in as that acknowledgement
    /// released, so a lone writer waits for nothing. Zero freezes at once.
    pub burst_gap: Duration,
    /// How many WAL PUTs the writer may spend: this trades latency for
    /// request cost. The default, one WAL per median upload time as
    /// measured, costs about what a sequential flusher costs on any store
    /// and spaces the uploads evenly; `PutBudget::PerSecond` and
    /// `PutBudget::UsdPerMillionWrites` cap the bill instead, and
    /// `PutBudget::Unlimited` freezes whenever the upload window has room.
    pub wal_put_budget: PutBudget,
    /// W: WAL uploads in flight (1 = SlateDB's sequential flusher).
    pub max_inflight_wal_uploads: u64,
    /// Freeze the memtable into an L0 SST at this size.
    pub l0_sst_size_bytes: usize,
    /// Writers wait while memtables not yet in L0 exceed this (bounded memory).
    pub max_unflushed_bytes: usize,
    /// The most L0 SSTs: while L0 holds this many, memtables wait before
    /// `FlushL0`, which slows writers through `max_unflushed_bytes`
    /// (compaction is behind). Compaction of L0 into a sorted run starts at
    /// half of it.
    pub l0_max_ssts: usize,
    /// Merge sorted runs (size-tiered) once there are more than this many.
    pub max_sorted_runs: usize,
    /// Compaction output is split into SSTs of about this size, by key range.
    pub compacted_sst_size_bytes: usize,
    /// Run the compactor in this process.
    pub compactor: bool,
    /// Garbage collection deletes an object only once it is at least this
    /// old. Readers that hold checkpoints (`DbReader`, every writer's own
    /// views) need no grace; it covers a plain `Db::open_read_only` handle's
    /// short reads and clock skew between a checkpoint holder and GC. Kept
    /// short, so a store holds about this long's worth of superseded objects
    /// and every close costs the same however long the database is used.
    pub gc_min_age: Duration,
    /// How often the background GC runs (also once at `close()`); zero turns
    /// garbage collection off.
    pub gc_interval: Duration,
    /// The longest key a write or read accepts (at most 16 MiB); longer is
    /// [`Error::InvalidArgument`].
    pub max_key_size: usize,
    /// The longest value a write accepts (at most 1 GiB); longer is
    /// [`Error::InvalidArgument`].
    pub max_value_size: usize,
    /// Data blocks of SSTs (and of WALs, which share the format) are cut at
    /// about this many bytes: the unit a point read fetches and the block
    /// cache holds.
    pub block_size: usize,
    /// How SST data blocks are compressed (flushes and compaction output;
    /// WALs never are). Each block records its codec, so changing this
    /// leaves older SSTs readable; blocks that would not shrink stay plain.
    /// LZ4 by default: text-like values take a third of the bytes (and of
    /// a scan's GETs) for about 1 ms of CPU per MB each way (docs/compression.md).
    pub compression: crate::sst::Compression,
    /// Folds merge operands ([`Db::merge`](crate::Db::merge)); `None`
    /// refuses merges. Every process opening the database needs the
    /// operator it was written with.
    pub merge_operator: Option<crate::sync::StdArc<dyn crate::value::MergeOperator>>,
    /// How long a put lives unless its [`PutOptions`](crate::PutOptions)
    /// say otherwise; `None`: forever. Expiry is judged on [`clock`](Settings::clock).
    pub default_ttl: Option<Duration>,
    /// The protocol variant (a mutant only when built with feature `mutants`).
    #[cfg_attr(not(feature = "internals"), doc(hidden))]
    pub protocol: Protocol,
    /// Attempts for a transient object-store failure before the writer gives up.
    pub max_retries: u32,
    /// Bytes of SST data blocks kept in memory (the block cache), so that
    /// warm reads make no store request; 0 turns the cache off. Indexes and
    /// filters of open SSTs are held besides, outside this budget.
    pub block_cache_bytes: u64,
    /// Hedged creates and reads: a second identical request once the first
    /// is slower than a recent quantile of its kind, within a budget
    /// ([`HedgeSettings::off`](crate::HedgeSettings::off) turns it off).
    pub hedge: crate::store::HedgeSettings,
    /// A durable write slower than this is logged (`SlowWrite`, at warn)
    /// with what it waited on, and counted in `Db::metrics().slow_writes`.
    pub slow_write: SlowWrite,
    /// A store of their own for WALs and fences (say an S3 Express bucket
    /// beside a Standard one): `None` keeps them with the SSTs and
    /// manifests. Both stores get the compare-and-set probe.
    pub wal_store: Option<WalStore>,
    /// Receives every protocol action (trace conformance, tests).
    #[cfg_attr(not(feature = "internals"), doc(hidden))]
    pub recorder: Option<Arc<dyn TraceRecorder>>,
    /// The clock every age decision reads (GC, SST creation times,
    /// checkpoint expiry): the wall clock unless a harness gives another.
    pub clock: crate::sync::StdArc<dyn crate::clock::Clock>,
    /// Mutant `scan-without-snapshot`: `scan` reads the
    /// L0 SSTs before it looks at the memtables, so a concurrent L0 flush can
    /// hide acknowledged writes. Kept so the crash harness shows it catches it.
    #[cfg(feature = "mutants")]
    pub scan_without_snapshot: bool,
    /// Mutant `sst-names-without-epoch` (the zombie SST bug, see
    /// `crash/tests/zombie_sst.rs`): an L0 SST is named from the manifest
    /// (the largest SST id it lists, plus one) instead of a fresh ULID, so a
    /// fenced or crashed writer's orphan takes the name its successor needs
    /// and the successor can never flush. Kept for the harness's liveness check.
    #[cfg(feature = "mutants")]
    pub sst_names_without_epoch: bool,
    /// Mutant `window-never-freed`: a completed WAL upload never frees its
    /// slot in the upload window, so after W uploads the writer stalls and
    /// its durable writes never return. Kept for the harness's liveness check.
    #[cfg(feature = "mutants")]
    pub window_never_freed: bool,
    /// Mutant `compact-before-upload`: the compactor records its output run
    /// while the output SSTs are still being uploaded, so the manifest can
    /// name an SST that does not exist yet (or never will, after a crash).
    /// Kept so the crash harness shows it catches it.
    #[cfg(feature = "mutants")]
    pub compact_before_upload: bool,
    /// Mutant `tombstones-above-bottom`: every compaction drops tombstones,
    /// not only one into the bottom run, so an older run's value of a
    /// deleted key comes back. Kept for the crash harness.
    #[cfg(feature = "mutants")]
    pub tombstones_above_bottom: bool,
    /// Mutant `compaction-drops-operands`: a compaction keeps only the newest
    /// source's version of a key, so merge operands in older inputs (and the
    /// value they fold into) are lost (SlateDB #1769's shape). Kept for the
    /// crash harness.
    #[cfg(feature = "mutants")]
    pub compaction_drops_operands: bool,
    /// Mutant `expired-values-vanish`: a compaction above the bottom run
    /// writes nothing for an expired value instead of a tombstone, so an
    /// older run's value of the key comes back. Kept for the crash harness.
    #[cfg(feature = "mutants")]
    pub expired_values_vanish: bool,
    /// Mutant `hedge-exists-is-ours`: a hedged WAL create answered
    /// `AlreadyExists` is taken as its own other attempt having landed,
    /// without reading the object back (it may be a successor's fence).
    /// Kept for the crash harness.
    #[cfg(feature = "mutants")]
    pub hedge_exists_is_ours: bool,
    /// Mutant `gc-forgets-retired`: GC hands the plan the latest tree
    /// without its retired SSTs, so it deletes what an older kept version
    /// or a checkpoint still reads. Kept for the crash harness.
    #[cfg(feature = "mutants")]
    pub gc_forgets_retired: bool,
    /// Mutant `gc-forgets-checkpoints`: GC hands the plan the latest tree
    /// without its checkpoints, so it deletes the versions and WALs that
    /// readers, durable checkpoints and the writer's pin still need. Kept
    /// for the crash harness.
    #[cfg(feature = "mutants")]
    pub gc_forgets_checkpoints: bool,
    /// Mutant `pin-ignores-held-views`: the writer's pin follows the current
    /// tree even while a snapshot or scan of this process reads an older
    /// one, so GC may delete that view's SSTs. Kept for the crash harness.
    #[cfg(feature = "mutants")]
    pub pin_ignores_held_views: bool,
    /// Mutant `follower-skips-wals`: a `DbReader`'s poll adopts the newest
    /// manifest but applies none of the WALs past it, so its view misses
    /// acknowledged writes not yet flushed. Kept for the crash harness.
    #[cfg(feature = "mutants")]
    pub follower_skips_wals: bool,
    /// Mutant `fenced-compactor-holds-l0`: a writer whose compactor a
    /// compactor elsewhere fenced still holds memtables at `l0_max_ssts`
    /// and compacts at close, waiting on a compactor that no longer runs.
    /// Kept for the crash harness.
    #[cfg(feature = "mutants")]
    pub fenced_compactor_holds_l0: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(5),
            wal_size_bytes: 4 << 20,
            burst_gap: Duration::from_millis(1),
            wal_put_budget: PutBudget::default(),
            max_inflight_wal_uploads: 4,
            l0_sst_size_bytes: 64 << 20,
            max_unflushed_bytes: 256 << 20,
            l0_max_ssts: 8,
            max_sorted_runs: 4,
            compacted_sst_size_bytes: 64 << 20,
            compactor: true,
            gc_min_age: Duration::from_secs(10),
            gc_interval: Duration::from_secs(600),
            max_key_size: 64 << 10,
            max_value_size: 16 << 20,
            block_size: 4096,
            compression: crate::sst::Compression::Lz4,
            merge_operator: None,
            default_ttl: None,
            protocol: Protocol::Shipped,
            max_retries: 8,
            block_cache_bytes: 64 << 20,
            hedge: crate::store::HedgeSettings::default(),
            slow_write: SlowWrite::default(),
            wal_store: None,
            recorder: None,
            clock: crate::sync::StdArc::new(crate::clock::SystemClock),
            #[cfg(feature = "mutants")]
            scan_without_snapshot: false,
            #[cfg(feature = "mutants")]
            sst_names_without_epoch: false,
            #[cfg(feature = "mutants")]
            window_never_freed: false,
            #[cfg(feature = "mutants")]
            compact_before_upload: false,
            #[cfg(feature = "mutants")]
            tombstones_above_bottom: false,
            #[cfg(feature = "mutants")]
            compaction_drops_operands: false,
            #[cfg(feature = "mutants")]
            expired_values_vanish: false,
            #[cfg(feature = "mutants")]
            hedge_exists_is_ours: false,
            #[cfg(feature = "mutants")]
            gc_forgets_retired: false,
            #[cfg(feature = "mutants")]
            gc_forgets_checkpoints: false,
            #[cfg(feature = "mutants")]
            pin_ignores_held_views: false,
            #[cfg(feature = "mutants")]
            follower_skips_wals: false,
            #[cfg(feature = "mutants")]
            fenced_compactor_holds_l0: false,
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("flush_interval", &self.flush_interval)
            .field("wal_size_bytes", &self.wal_size_bytes)
            .field("burst_gap", &self.burst_gap)
            .field("wal_put_budget", &self.wal_put_budget)
            .field("max_inflight_wal_uploads", &self.max_inflight_wal_uploads)
            .field("l0_sst_size_bytes", &self.l0_sst_size_bytes)
            .field("max_unflushed_bytes", &self.max_unflushed_bytes)
            .field("l0_max_ssts", &self.l0_max_ssts)
            .field("max_sorted_runs", &self.max_sorted_runs)
            .field("compacted_sst_size_bytes", &self.compacted_sst_size_bytes)
            .field("compactor", &self.compactor)
            .field("compression", &self.compression)
            .field("merge_operator", &self.merge_operator)
            .field("default_ttl", &self.default_ttl)
            .field("gc_min_age", &self.gc_min_age)
            .field("gc_interval", &self.gc_interval)
            .field("protocol", &self.protocol)
            .field("block_cache_bytes", &self.block_cache_bytes)
            .field("hedge", &self.hedge)
            .field("slow_write", &self.slow_write)
            .field("wal_store", &self.wal_store.as_ref().map(|w| format!("{} under {}", w.store, w.root)))
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Sets [`flush_interval`](Settings::flush_interval).
    pub fn with_flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = d;
        self
    }
    /// Sets [`burst_gap`](Settings::burst_gap).
    pub fn with_burst_gap(mut self, d: Duration) -> Self {
        self.burst_gap = d;
        self
    }

    /// Sets [`wal_put_budget`](Settings::wal_put_budget).
    pub fn with_wal_put_budget(mut self, b: PutBudget) -> Self {
        self.wal_put_budget = b;
        self
    }

    /// Sets [`slow_write`](Settings::slow_write).
    pub fn with_slow_write(mut self, s: SlowWrite) -> Self {
        self.slow_write = s;
        self
    }

    /// Keeps WALs and fences in `store` under `root` (SSTs and manifests stay
    /// in the store given to `Db::open_with`).
    pub fn with_wal_store(mut self, store: crate::sync::StdArc<dyn object_store::ObjectStore>, root: impl Into<object_store::path::Path>) -> Self {
        self.wal_store = Some(WalStore { store, root: root.into() });
        self
    }

    /// Sets [`wal_size_bytes`](Settings::wal_size_bytes).
    pub fn with_wal_size_bytes(mut self, n: usize) -> Self {
        self.wal_size_bytes = n;
        self
    }
    /// Sets [`max_inflight_wal_uploads`](Settings::max_inflight_wal_uploads) (W).
    pub fn with_max_inflight_wal_uploads(mut self, w: u64) -> Self {
        self.max_inflight_wal_uploads = w;
        self
    }
    /// Sets [`l0_sst_size_bytes`](Settings::l0_sst_size_bytes).
    pub fn with_l0_sst_size_bytes(mut self, n: usize) -> Self {
        self.l0_sst_size_bytes = n;
        self
    }
    /// Sets [`max_unflushed_bytes`](Settings::max_unflushed_bytes).
    pub fn with_max_unflushed_bytes(mut self, n: usize) -> Self {
        self.max_unflushed_bytes = n;
        self
    }
    /// Sets [`l0_max_ssts`](Settings::l0_max_ssts).
    pub fn with_l0_max_ssts(mut self, n: usize) -> Self {
        self.l0_max_ssts = n;
        self
    }
    /// Sets [`compacted_sst_size_bytes`](Settings::compacted_sst_size_bytes).
    pub fn with_compacted_sst_size_bytes(mut self, n: usize) -> Self {
        self.compacted_sst_size_bytes = n;
        self
    }
    /// Sets [`compactor`](Settings::compactor): whether this process compacts.
    pub fn with_compactor(mut self, on: bool) -> Self {
        self.compactor = on;
        self
    }
    /// Sets [`gc_min_age`](Settings::gc_min_age).
    pub fn with_gc_min_age(mut self, d: Duration) -> Self {
        self.gc_min_age = d;
        self
    }
    /// Sets [`gc_interval`](Settings::gc_interval) (zero: no GC).
    pub fn with_gc_interval(mut self, d: Duration) -> Self {
        self.gc_interval = d;
        self
    }
    /// Sets the protocol variant (tidemark's checkers run its mutants).
    #[cfg_attr(not(feature = "internals"), doc(hidden))]
    pub fn with_protocol(mut self, p: Protocol) -> Self {
        self.protocol = p;
        self
    }
    /// Sets [`compression`](Settings::compression).
    pub fn with_compression(mut self, c: crate::sst::Compression) -> Self {
        self.compression = c;
        self
    }
    /// Sets [`merge_operator`](Settings::merge_operator).
    pub fn with_merge_operator(mut self, op: crate::sync::StdArc<dyn crate::value::MergeOperator>) -> Self {
        self.merge_operator = Some(op);
        self
    }
    /// Sets [`default_ttl`](Settings::default_ttl).
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }
    /// Sets [`block_cache_bytes`](Settings::block_cache_bytes) (0: no cache).
    pub fn with_block_cache_bytes(mut self, n: u64) -> Self {
        self.block_cache_bytes = n;
        self
    }
    /// Reads time from `clock` instead of the wall clock (see [`Clock`](crate::Clock)).
    pub fn with_clock(mut self, clock: crate::sync::StdArc<dyn crate::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets [`hedge`](Settings::hedge) ([`HedgeSettings::off`](crate::HedgeSettings::off) turns hedging off).
    pub fn with_hedge(mut self, h: crate::store::HedgeSettings) -> Self {
        self.hedge = h;
        self
    }

    /// Records every protocol action to `r` (trace conformance, tests).
    #[cfg_attr(not(feature = "internals"), doc(hidden))]
    pub fn with_recorder(mut self, r: Arc<dyn TraceRecorder>) -> Self {
        self.recorder = Some(r);
        self
    }

    /// Rejects settings the protocol or the engine cannot honour.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(1..=MAX_INFLIGHT_WAL_UPLOADS).contains(&self.max_inflight_wal_uploads) {
            return bad(format!(
                "max_inflight_wal_uploads must be 1..={MAX_INFLIGHT_WAL_UPLOADS}, got {}",
                self.max_inflight_wal_uploads
            ));
        }
        if self.flush_interval.is_zero() {
            return bad("flush_interval must be positive".into());
        }
        if self.l0_sst_size_bytes == 0 || self.wal_size_bytes == 0 || self.block_size == 0 {
            return bad("sizes must be positive".into());
        }
        if self.l0_max_ssts < 2 || self.max_sorted_runs < 1 || self.compacted_sst_size_bytes == 0 {
            return bad("l0_max_ssts must be at least 2, max_sorted_runs at least 1, compacted_sst_size_bytes positive".into());
        }
        // What a manifest may hold (`bounds`): the writer stays below it.
        if self.l0_max_ssts > crate::bounds::MAX_L0_SSTS || self.max_sorted_runs >= crate::bounds::MAX_RUNS {
            return bad(format!(
                "l0_max_ssts must be at most {} and max_sorted_runs below {} (the entries a manifest may hold); got {} and {}",
                crate::bounds::MAX_L0_SSTS,
                crate::bounds::MAX_RUNS,
                self.l0_max_ssts,
                self.max_sorted_runs
            ));
        }
        // The SST format records key, value and block lengths as u32: bound
        // them well inside it, so no length is ever truncated.
        const MAX_LEN: usize = 1 << 30;
        if self.max_key_size > 16 << 20 || self.max_value_size > MAX_LEN || self.block_size > MAX_LEN {
            return bad(format!(
                "max_key_size must be at most 16 MiB, max_value_size and block_size at most 1 GiB (SST lengths are u32); got {}, {}, {}",
                self.max_key_size, self.max_value_size, self.block_size
            ));
        }
        if self.default_ttl.is_some_and(|t| t.is_zero() || t > crate::batch::MAX_TTL) {
            return bad(format!("default_ttl: {:?} is not within 1 ms..={:?}", self.default_ttl, crate::batch::MAX_TTL));
        }
        if let Some(why) = self.compression.invalid() {
            return bad(format!("compression: {why}"));
        }
        if let Some(why) = self.wal_put_budget.invalid() {
            return bad(why);
        }
        if let SlowWrite::TimesUploadP99(x) = self.slow_write {
            if !(x.is_finite() && x > 0.0) {
                return bad(format!("slow_write must be a positive multiple, got {x}"));
            }
        }
        let h = &self.hedge;
        if !(0.0..=1.0).contains(&h.budget) || h.min_delay > h.max_delay {
            return bad(format!("hedge budget must be within 0..=1 and min_delay <= max_delay; got {h:?}"));
        }
        if self.max_unflushed_bytes < self.l0_sst_size_bytes {
            return bad("max_unflushed_bytes must be at least l0_sst_size_bytes".into());
        }
        Ok(())
    }
}

/// When a durable write counts as slow (`Settings::slow_write`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SlowWrite {
    /// Slower than this many times the store's recent p99 WAL upload (and
    /// at least 1 ms): what is slow follows the store. Before any upload is
    /// timed nothing is reported.
    TimesUploadP99(f64),
    /// Slower than this, on any store.
    After(Duration),
}

impl Default for SlowWrite {
    fn default() -> Self {
        SlowWrite::TimesUploadP99(20.0)
    }
}

impl SlowWrite {
    /// The threshold now, given the recent p99 WAL upload.
    pub fn threshold(&self, upload_p99: Option<Duration>) -> Option<Duration> {
        match *self {
            SlowWrite::After(d) => Some(d),
            SlowWrite::TimesUploadP99(x) => upload_p99.map(|p99| p99.mul_f64(x).max(Duration::from_millis(1))),
        }
    }
}

/// A store of their own for WALs and fences (`Settings::wal_store`): WAL
/// `<id>` is `<root>/wal/<id>.sst` in `store`.
#[derive(Clone)]
pub struct WalStore {
    /// The store WALs and fences are written to.
    pub store: crate::sync::StdArc<dyn object_store::ObjectStore>,
    /// The directory in `store` that holds `wal/`, as `Db::open_with`'s root
    /// does in the main store.
    pub root: object_store::path::Path,
}
