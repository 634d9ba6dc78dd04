//! The database: the write path, the read path, and the handle's lifecycle.

mod background;
mod compactor;
mod gc;
mod open;
pub mod url;

use std::ops::{Bound, RangeBounds};

use bytes::Bytes;
use object_store::ObjectStore;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::batch::{WriteBatch, WriteOptions};
use crate::commit::{AckError, CommitLog};
use crate::error::{Error, Result};
use crate::manifest::ManifestObject;
use crate::memtable::{ImmMemtable, MemState};
use crate::paths::Layout;
use crate::protocol::Epoch;
use crate::settings::Settings;
use crate::iter::{KeyRange, MergeIter, RunSource, Source, SstSource};
use crate::sst::{Entry, RunReader, SstRef};
use crate::sync::{lock, Arc, AtomicBool, AtomicUsize, Mutex, Ordering, StdArc, StdWeak};
use crate::trace::{TraceEvent, Tracer};

pub use open::{read_chain, read_chain_with, ChainContents};

/// State shared by the handle and its background tasks.
pub(crate) struct DbInner {
    pub(crate) store: StdArc<dyn ObjectStore>,
    pub(crate) layout: Layout,
    pub(crate) settings: Settings,
    pub(crate) epoch: Epoch,
    pub(crate) tracer: Tracer,
    pub(crate) commit: CommitLog<Entry>,
    pub(crate) mem: Mutex<MemState>,
    /// The open SSTs of the current manifest (L0 and sorted runs).
    pub(crate) tree: Mutex<StdArc<OpenTree>>,
    /// Every tree this process installed that a reader may still hold: GC
    /// in this process never deletes their SSTs (with a zero `gc_min_age`
    /// nothing else protects a scan that outlives a compaction).
    pub(crate) trees: Mutex<Vec<StdWeak<OpenTree>>>,
    pub(crate) manifest: tokio::sync::Mutex<ManifestObject>,
    /// Serialises compactions in this process (background task and `close`).
    pub(crate) compaction: tokio::sync::Mutex<compactor::CompactorState>,
    /// SSTs this process has written but not yet recorded in a manifest:
    /// this process's GC never deletes them.
    pub(crate) pinned: Mutex<std::collections::BTreeSet<u128>>,
    pub(crate) wake_compactor: Notify,
    pub(crate) wake_flusher: Notify,
    pub(crate) wake_l0: Notify,
    pub(crate) durable_changed: Notify,
    pub(crate) space_freed: Notify,
    pub(crate) memtable_full: AtomicBool,
    /// WAL uploads started and not yet finished: `Close` waits for none
    /// (its manifest says nothing of this writer can still land).
    pub(crate) uploads_in_flight: AtomicUsize,
    pub(crate) read_only: bool,
    /// Hedged creates and reads of this handle's store (`hedge`).
    pub(crate) hedge_stats: StdArc<crate::hedge::HedgeStats>,
    /// The fences on this writer's recovered chain and the one it placed
    /// (`RecoveryPlan::fences`), recorded in every manifest it writes so GC
    /// never deletes them.
    pub(crate) fences: Vec<crate::protocol::WalId>,
}

/// The SSTs of one manifest version, open: L0 newest first, runs newest first.
#[derive(Debug, Default)]
pub(crate) struct OpenTree {
    pub(crate) l0: Vec<Arc<SstRef>>,
    pub(crate) runs: Vec<Arc<RunReader>>,
}

impl OpenTree {
    /// Sources for a merge over `range`, newest first.
    fn sources(&self, range: &KeyRange) -> Vec<Source> {
        let l0 = self.l0.iter().map(|r| Source::Sst(SstSource::new(r.clone(), range.clone())));
        let runs = self.runs.iter().map(|r| Source::Run(RunSource::new(r, range.clone())));
        l0.chain(runs).collect()
    }
}

impl DbInner {
    /// Installs `tree` as the current one (callers hold `mem` too, see
    /// `read_view`) and remembers it for GC while any reader holds it.
    pub(crate) fn set_tree(&self, tree: OpenTree) {
        let tree = StdArc::new(tree);
        let mut trees = lock(&self.trees);
        trees.retain(|t| t.strong_count() > 0);
        trees.push(StdArc::downgrade(&tree));
        *lock(&self.tree) = tree;
    }

    /// SST ids of every tree a reader of this process may still hold.
    pub(crate) fn ssts_in_use(&self) -> Vec<u128> {
        let trees: Vec<StdArc<OpenTree>> = lock(&self.trees).iter().filter_map(|t| t.upgrade()).collect();
        let current = lock(&self.tree).clone();
        trees
            .iter()
            .chain(std::iter::once(&current))
            .flat_map(|t| t.l0.iter().chain(t.runs.iter().flat_map(|r| r.ssts.iter())).map(|s| s.handle.id).collect::<Vec<_>>())
            .collect()
    }

    pub(crate) fn ack_error(&self, e: AckError) -> Error {
        match e {
            AckError::Fenced { by } => Error::Fenced { writer_epoch: self.epoch, by },
            AckError::Closed => Error::Closed,
            AckError::Failed(reason) => {
                Error::ObjectStore(object_store::Error::Generic { store: "tidemark", source: reason.into() })
            }
        }
    }

    /// Why an appended write in `wal_id` was not acknowledged: its cause
    /// when the write is known not to be durable (its WAL, or an earlier one
    /// of this writer, was rejected by a newer epoch), else `OutcomeUnknown`:
    /// its WAL may have been uploaded before the writer stopped.
    fn unacked_error(&self, wal_id: crate::protocol::WalId, e: AckError) -> Error {
        match e {
            AckError::Fenced { .. } if self.commit.never_durable(wal_id) => self.ack_error(e),
            e => Error::OutcomeUnknown { cause: Box::new(self.ack_error(e)) },
        }
    }

    pub(crate) fn emit(&self, event: TraceEvent) {
        self.tracer.emit(self.epoch, event);
    }

    /// What a scan of `range` reads, captured in one critical section: the
    /// active memtable's entries in `range`, the immutable memtables and the
    /// L0 list. `flush_l0` adds an SST to `l0` before it removes the memtable
    /// from `mem.imm`, each under its own lock; holding `mem` and then `l0`
    /// (always in this order) sees either both or only the SST, never neither,
    /// so a write acknowledged before the scan began is in the view.
    fn read_view(&self, range: &KeyRange) -> ReadView {
        let mem = lock(&self.mem);
        let active = mem.active.range(range).map(|(k, v)| (k.clone(), v.clone())).collect();
        let imm = mem.imm.clone();
        let tree = lock(&self.tree).clone();
        ReadView { active, imm, tree }
    }
}

/// One consistent state for a read (see [`DbInner::read_view`]).
struct ReadView {
    /// The active memtable's entries in the range, newest state of each key.
    active: Vec<Entry>,
    /// Immutable memtables, oldest first.
    imm: Vec<Arc<ImmMemtable>>,
    /// The open SSTs: L0 and sorted runs.
    tree: StdArc<OpenTree>,
}

impl ReadView {
    /// The merge's sources over `range`, newest first.
    fn sources(self, range: &KeyRange) -> Vec<Source> {
        let mut sources = vec![Source::Mem(self.active.into_iter().collect())];
        for imm in self.imm.iter().rev() {
            sources.push(Source::Mem(imm.table.range(range).map(|(k, v)| (k.clone(), v.clone())).collect()));
        }
        sources.extend(self.tree.sources(range));
        sources
    }
}

/// An open tidemark database. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Db {
    inner: Arc<DbInner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db(root={}, epoch={})", self.inner.layout.root(), self.inner.epoch)
    }
}

impl Drop for Db {
    /// Dropping without `close()` is a crash as far as durability goes:
    /// background tasks stop; what was not durable may be lost, nothing acked is.
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

impl Db {
    /// The writer epoch this handle claimed.
    pub fn writer_epoch(&self) -> Epoch {
        self.inner.epoch
    }

    /// Hedged creates and reads so far (`Settings::hedge`).
    pub fn hedge_counts(&self) -> crate::hedge::HedgeCounts {
        self.inner.hedge_stats.counts()
    }

    /// `durable_wal_id`: every WAL of this writer up to it exists.
    pub fn durable_wal_id(&self) -> u64 {
        self.inner.commit.durable_wal_id()
    }

    /// The current manifest.
    pub async fn manifest(&self) -> ManifestObject {
        self.inner.manifest.lock().await.clone()
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("keys must not be empty".into()));
        }
        let max = self.inner.settings.max_key_size;
        if key.len() > max {
            return Err(Error::InvalidArgument(format!("key of {} bytes exceeds max_key_size {max}", key.len())));
        }
        Ok(())
    }

    pub async fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<()> {
        self.put_with(key, value, &WriteOptions::default()).await
    }

    pub async fn put_with(&self, key: impl Into<Bytes>, value: impl Into<Bytes>, opts: &WriteOptions) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.write_with(b, opts).await
    }

    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<()> {
        self.delete_with(key, &WriteOptions::default()).await
    }

    pub async fn delete_with(&self, key: impl Into<Bytes>, opts: &WriteOptions) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write_with(b, opts).await
    }

    pub async fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_with(batch, &WriteOptions::default()).await
    }

    /// `Put`: appends the batch atomically to the WAL buffer and memtable;
    /// with `await_durable`, waits until its WAL is covered by the watermark (`Ack`).
    /// `Err(OutcomeUnknown)`: the batch was appended but not acknowledged and
    /// may be durable; any other error: the batch was not written.
    pub async fn write_with(&self, batch: WriteBatch, opts: &WriteOptions) -> Result<()> {
        let inner = &self.inner;
        if inner.read_only {
            return Err(Error::InvalidArgument("this handle is read-only".into()));
        }
        if batch.is_empty() {
            return Ok(());
        }
        for (k, v) in &batch.ops {
            self.check_key(k)?;
            if let Some(v) = v {
                let max = inner.settings.max_value_size;
                if v.len() > max {
                    return Err(Error::InvalidArgument(format!("value of {} bytes exceeds max_value_size {max}", v.len())));
                }
            }
        }
        self.backpressure().await?;
        let bytes = batch.bytes;
        let ops = batch.ops;
        let (wal_id, active_bytes) = inner
            .commit
            .append(ops.clone(), bytes, |wal_id| {
                // Recorded under the commit lock, so a trace orders every Put
                // before the FreezeWal that takes it.
                if inner.tracer.is_recording() {
                    inner.emit(TraceEvent::Put { wal_id });
                }
                let mut mem = lock(&inner.mem);
                for (k, v) in ops {
                    mem.active.insert(k, v);
                }
                mem.active.bytes
            })
            .map_err(|e| inner.ack_error(e))?;
        let wal_full = inner.commit.buffer_bytes() >= inner.settings.wal_size_bytes;
        if active_bytes >= inner.settings.l0_sst_size_bytes {
            inner.memtable_full.store(true, Ordering::Release);
        }
        if opts.await_durable || wal_full || active_bytes >= inner.settings.l0_sst_size_bytes {
            inner.wake_flusher.notify_one();
        }
        if opts.await_durable {
            // `Ack` is recorded where it is decided, under the commit lock:
            // here if already covered, else when `WalDurable` releases us.
            let wait = match inner.tracer.is_recording() {
                true => inner.commit.wait_durable_with(wal_id, || inner.emit(TraceEvent::Ack { wal_id })),
                false => inner.commit.wait_durable(wal_id),
            };
            wait.await.map_err(|e| inner.unacked_error(wal_id, e))?;
        }
        Ok(())
    }

    /// Waits while memtables not yet in L0 exceed `max_unflushed_bytes`.
    async fn backpressure(&self) -> Result<()> {
        let inner = &self.inner;
        loop {
            let unflushed = lock(&inner.mem).unflushed_bytes();
            if unflushed <= inner.settings.max_unflushed_bytes {
                return Ok(());
            }
            if let Some(e) = inner.commit.failure() {
                return Err(inner.ack_error(e));
            }
            inner.memtable_full.store(true, Ordering::Release);
            inner.wake_flusher.notify_one();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(10), inner.space_freed.notified()).await;
        }
    }

    /// The newest value of `key`: memtables, then L0 SSTs newest first, then
    /// sorted runs newest first (at most one SST each).
    ///
    /// The memtables and the tree are read in one critical section (see
    /// [`DbInner::read_view`]), so an L0 flush or a compaction cannot move
    /// the key between two places unseen.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.check_key(key)?;
        let tree = {
            let mem = lock(&self.inner.mem);
            if let Some(v) = mem.get(key) {
                return Ok(v);
            }
            lock(&self.inner.tree).clone()
        };
        for sst in &tree.l0 {
            if let Some(v) = sst.get(key).await? {
                return Ok(v);
            }
        }
        for run in &tree.runs {
            if let Some(v) = run.get(key).await? {
                return Ok(v);
            }
        }
        Ok(None)
    }

    /// Live keys and values in `range`, in key order: one consistent state,
    /// captured before any SST is read (see [`DbInner::read_view`]).
    pub async fn scan(&self, range: impl RangeBounds<Bytes>) -> Result<Vec<(Bytes, Bytes)>> {
        let range: KeyRange = (range.start_bound().cloned(), range.end_bound().cloned());
        #[cfg(feature = "mutants")]
        if self.inner.settings.scan_without_snapshot {
            return self.scan_without_snapshot(&range).await;
        }
        let sources = self.inner.read_view(&range).sources(&range);
        collect_live(MergeIter::new(sources, true)).await
    }

    /// The scan before issue 11's fix, kept as a mutant so the crash harness
    /// can show it catches it: it copies the tree, awaits the SST reads, and
    /// only then reads the memtables, so an L0 flush finishing in between
    /// moves a memtable's keys into an SST this scan did not include.
    #[cfg(feature = "mutants")]
    async fn scan_without_snapshot(&self, range: &KeyRange) -> Result<Vec<(Bytes, Bytes)>> {
        let tree = lock(&self.inner.tree).clone();
        let mut from_ssts = Vec::new();
        let mut merge = MergeIter::new(tree.sources(range), false);
        while let Some(e) = merge.next().await? {
            from_ssts.push(e);
        }
        let mut sources = Vec::new();
        {
            let mem = lock(&self.inner.mem);
            sources.push(Source::Mem(mem.active.range(range).map(|(k, v)| (k.clone(), v.clone())).collect()));
            for imm in mem.imm.iter().rev() {
                sources.push(Source::Mem(imm.table.range(range).map(|(k, v)| (k.clone(), v.clone())).collect()));
            }
        }
        sources.push(Source::Mem(from_ssts.into_iter().collect()));
        collect_live(MergeIter::new(sources, true)).await
    }

    /// Keys starting with `prefix`, in order.
    pub async fn scan_prefix(&self, prefix: impl Into<Bytes>) -> Result<Vec<(Bytes, Bytes)>> {
        let prefix: Bytes = prefix.into();
        let end = prefix_end(&prefix);
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        self.scan((Bound::Included(prefix), upper)).await
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<()> {
        let inner = &self.inner;
        if inner.read_only {
            return Ok(());
        }
        let target = inner.commit.last_written_wal_id();
        inner.wake_flusher.notify_one();
        inner.commit.wait_durable(target).await.map_err(|e| inner.ack_error(e))
    }

    /// Graceful shutdown (`Close`): stop accepting writes, make everything
    /// written durable, flush the memtables to L0 and record a manifest with
    /// `writer_closed`, so the next open replays nothing and needs no fence;
    /// compact if L0 is over its limit and run one GC pass. Later calls fail
    /// with `Closed`.
    pub async fn close(&self) -> Result<()> {
        let inner = &self.inner;
        if inner.read_only {
            inner.commit.fail(AckError::Closed);
            return Ok(());
        }
        let result = self.close_writer().await;
        inner.commit.fail(AckError::Closed);
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        match result {
            Err(Error::Closed) => Ok(()),
            other => other,
        }
    }

    async fn close_writer(&self) -> Result<()> {
        let inner = &self.inner;
        if let Some(e) = inner.commit.failure() {
            return Err(inner.ack_error(e));
        }
        let last = inner.commit.stop_appends_with(|| inner.emit(TraceEvent::Close));
        inner.wake_flusher.notify_one();
        inner.commit.wait_durable(last).await.map_err(|e| inner.ack_error(e))?;
        // Nothing of this writer may land after its close manifest.
        while inner.uploads_in_flight.load(Ordering::Acquire) > 0 {
            if let Some(e) = inner.commit.failure() {
                return Err(inner.ack_error(e));
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(5), inner.durable_changed.notified()).await;
        }
        background::flush_all(inner).await?;
        background::record_close(inner).await?;
        if inner.settings.compactor {
            compactor::compact_while_needed(inner).await?;
        }
        if !inner.settings.gc_interval.is_zero() {
            if let Err(e) = gc::run(inner).await {
                tracing::warn!(error = %e, "GcManifest/GcSst/GcWal pass at close failed; the next pass retries");
            }
        }
        Ok(())
    }
}

/// Drains a merge into the live (non-deleted) entries.
async fn collect_live(mut merge: MergeIter) -> Result<Vec<(Bytes, Bytes)>> {
    let mut out = Vec::new();
    while let Some((k, v)) = merge.next().await? {
        if let Some(v) = v {
            out.push((k, v));
        }
    }
    Ok(out)
}

/// The smallest key greater than every key with `prefix`, if any.
fn prefix_end(prefix: &[u8]) -> Option<Bytes> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(Bytes::from(end));
        }
    }
    None
}
