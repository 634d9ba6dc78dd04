//! The state a `Db` handle shares with its background tasks, and the small
//! operations every task uses on it.

use std::collections::BTreeMap;

use object_store::ObjectStore;

use super::manifest_store::ManifestStore;
use super::tree::OpenTree;
use crate::bounds;
use crate::cache::BlockCache;
use crate::commit::{AckError, CommitLog};
use crate::error::{Error, Result};
use crate::manifest::{ManifestObject, SstHandle, SstOwner};
use crate::memtable::MemState;
use crate::paths::Layout;
use crate::protocol::{Epoch, Pin, WalId};
use crate::settings::Settings;
use crate::sst::{SeqEntry, SstReader};
use crate::store::{create, read, HedgeStats, RequestCounters};
use crate::sync::task::{Mutex as TaskMutex, Notify};
use crate::sync::{lock, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering, StdArc, StdWeak};
use crate::trace::{TraceEvent, Tracer};

/// How long every `FlushL0` may fail before writes waiting for room are
/// refused ([`Error::FlushStalled`]) rather than wait on: long enough to
/// ride out a store's brief outage (each flush already retries its
/// requests), short enough that a dead store fails writers, never hangs them.
pub(crate) const FLUSH_FAILING_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// State shared by the handle and its background tasks.
pub(crate) struct DbInner {
    pub(crate) store: StdArc<dyn ObjectStore>,
    pub(crate) layout: Layout,
    pub(crate) settings: Settings,
    pub(crate) epoch: Epoch,
    pub(crate) tracer: Tracer,
    pub(crate) commit: CommitLog<SeqEntry>,
    pub(crate) mem: Mutex<MemState>,
    /// The sequence number of the next write, assigned under the commit
    /// lock in write order (`seq_base` at open).
    pub(crate) next_seq: AtomicU64,
    /// The open SSTs of the current manifest (L0 and sorted runs).
    pub(crate) tree: Mutex<StdArc<OpenTree>>,
    /// Every tree this process installed that a reader may still hold: GC
    /// in this process never deletes their SSTs (with a zero `gc_min_age`
    /// nothing else protects a scan that outlives a compaction).
    pub(crate) trees: Mutex<Vec<StdWeak<OpenTree>>>,
    /// Manifest reads and the one commit loop.
    pub(crate) manifests: ManifestStore,
    /// The manifest version this process holds; its lock serialises this
    /// process's manifest updates (flushes, close, compactions).
    pub(crate) manifest: TaskMutex<ManifestObject>,
    /// Serialises compactions in this process (background task and `close`).
    pub(crate) compaction: TaskMutex<super::compactor::CompactorState>,
    /// SSTs this process has written but not yet recorded in a manifest,
    /// by owner: the SST floors it records stay at or below them, so no GC
    /// deletes them while they may still be recorded.
    pub(crate) pinned: Mutex<BTreeMap<u128, SstOwner>>,
    /// The last SST id this process handed out: ids are monotonic, so an SST
    /// floor (the next id) is above every SST already recorded.
    pub(crate) last_sst_id: Mutex<u128>,
    pub(crate) wake_compactor: Notify,
    pub(crate) wake_flusher: Notify,
    pub(crate) wake_l0: Notify,
    pub(crate) durable_changed: Notify,
    pub(crate) space_freed: Notify,
    pub(crate) memtable_full: AtomicBool,
    /// A caller waits for durability (a durable write, `flush`, `close`):
    /// the freeze policy stops gathering for the interval.
    pub(crate) flush_wanted: AtomicBool,
    /// WAL uploads started and not yet finished: `Close` waits for none
    /// (its manifest says nothing of this writer can still land).
    pub(crate) uploads_in_flight: AtomicUsize,
    pub(crate) read_only: bool,
    /// Hedged creates and reads of this handle's store.
    pub(crate) hedge_stats: StdArc<HedgeStats>,
    /// The fences on this writer's recovered chain and the one it placed
    /// (`RecoveryPlan::fences`), recorded in every manifest it writes so GC
    /// never deletes them (I9).
    pub(crate) fences: Vec<WalId>,
    /// Data blocks of SSTs read from the store (`Settings::block_cache_bytes`).
    pub(crate) block_cache: BlockCache,
    /// Requests `store` made, by kind (counted inside its retries).
    pub(crate) requests: StdArc<RequestCounters>,
    /// The last compaction's failure on something that will not change by
    /// retrying (a `Corrupt` object, a bound reached), as the object and the
    /// reason; cleared by a compaction that succeeds.
    pub(crate) compaction_failed: Mutex<Option<(String, String)>>,
    /// This process's compactor was fenced by a compactor elsewhere (a
    /// standalone `compact`): L0 is left to that one (see
    /// [`DbInner::compacts_here`]).
    pub(crate) compactor_fenced: AtomicBool,
    /// Since when every `FlushL0` has failed, and the last failure.
    pub(crate) flush_failing: Failing,
    /// Since when every compaction has failed, and the last failure.
    pub(crate) compaction_failing: Failing,
    /// What each WAL waited on, for the slow-write report.
    pub(crate) stalls: super::stall::StallLedger,
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

    /// Makes `version` this process's manifest (in `slot`, the guarded
    /// `DbInner::manifest`) and its tree the current one, together: a
    /// version committed on top of another process's (a standalone
    /// compactor's run) changes the tree too, and every decision that reads
    /// the tree (the L0 limit, what to compact) must see the version the
    /// manifest holds.
    pub(crate) fn adopt(&self, slot: &mut ManifestObject, version: ManifestObject) {
        *slot = version;
        self.adopt_held(slot);
    }

    /// [`DbInner::adopt`] for a version already in the slot (a writer
    /// commit puts it there): opens its tree.
    pub(crate) fn adopt_held(&self, slot: &ManifestObject) {
        let tree = self.open_tree(slot);
        let _mem = lock(&self.mem);
        self.set_tree(tree);
    }

    /// The oldest version a snapshot or scan of this process reads, if any
    /// is held: a tree other than the current one that is still alive, or
    /// the current one held by someone besides this handle.
    pub(crate) fn oldest_held_view(&self) -> Option<Pin> {
        let current = lock(&self.tree).clone();
        let trees: Vec<StdArc<OpenTree>> = lock(&self.trees).iter().filter_map(|t| t.upgrade()).collect();
        // The current tree's own references: `self.tree`, `current`, and
        // its entry upgraded in `trees`.
        let held = |t: &StdArc<OpenTree>| !StdArc::ptr_eq(t, &current) || StdArc::strong_count(t) > 3;
        #[cfg(feature = "mutants")]
        if self.settings.pin_ignores_held_views {
            return None;
        }
        trees.iter().filter(|t| held(t)).map(|t| t.pin).min_by_key(|p| p.version)
    }

    /// The oldest version a tree of this process still in use (by a
    /// snapshot, an iterator, or as the current tree) derives from, with its
    /// replay point: what the writer's pin must protect.
    pub(crate) fn oldest_live_tree(&self) -> Pin {
        let current = lock(&self.tree).clone();
        let trees: Vec<StdArc<OpenTree>> = lock(&self.trees).iter().filter_map(|t| t.upgrade()).collect();
        #[cfg(feature = "mutants")]
        if self.settings.pin_ignores_held_views {
            return current.pin;
        }
        trees.iter().chain(std::iter::once(&current)).map(|t| t.pin).min_by_key(|p| p.version).unwrap_or(current.pin)
    }

    /// The open tree of `manifest`: SSTs the current tree has open are
    /// reused, the others are opened lazily.
    pub(crate) fn open_tree(&self, manifest: &ManifestObject) -> OpenTree {
        let known = lock(&self.tree).by_path();
        OpenTree::of(&self.store, &self.block_cache, &self.layout, manifest, &known, bounds::max_sst_bytes(&self.settings))
    }

    /// A fresh SST id: a ULID of the engine's clock, above every id this
    /// process handed out before.
    fn next_sst_id(&self) -> u128 {
        let mut last = lock(&self.last_sst_id);
        let fresh = SstHandle::new_id(self.settings.clock.now_ms());
        *last = fresh.max(last.saturating_add(1));
        *last
    }

    /// `owner`'s SST floor to record now: the smallest id it may still
    /// record after the SSTs in `recording` are recorded (an SST written and
    /// not yet recorded), else the next id it will hand out.
    pub(crate) fn sst_floor(&self, owner: SstOwner, recording: &[SstHandle]) -> u128 {
        let next = lock(&self.last_sst_id).saturating_add(1);
        let pinned = lock(&self.pinned);
        let unrecorded = pinned.iter().filter(|(id, o)| **o == owner && !recording.iter().any(|h| h.id == **id));
        unrecorded.map(|(id, _)| *id).min().map_or(next, |id| id.min(next))
    }

    /// Creates a new SST object of `owner` at `epoch` under a fresh name
    /// (`name`, an id and epoch, if given: a mutant's) and returns its
    /// handle, `None` for an empty SST. It stays pinned (below every SST
    /// floor this process records) until the caller records it in a
    /// manifest or gives up.
    pub(crate) async fn upload_sst(
        &self,
        bytes: bytes::Bytes,
        owner: SstOwner,
        epoch: Epoch,
        name: Option<(u128, Epoch)>,
    ) -> Result<Option<SstHandle>> {
        let Some(handle) = self.sst_handle(&bytes, owner, epoch, name)? else { return Ok(None) };
        self.create_sst(&handle, bytes).await?;
        Ok(Some(handle))
    }

    /// The handle SST `bytes` will have under a fresh name (`name` if
    /// given), `None` for an empty SST; the id is pinned from here on.
    pub(crate) fn sst_handle(
        &self,
        bytes: &bytes::Bytes,
        owner: SstOwner,
        epoch: Epoch,
        name: Option<(u128, Epoch)>,
    ) -> Result<Option<SstHandle>> {
        let reader = SstReader::from_bytes(object_store::path::Path::from(""), bytes.clone())?;
        let Some((first_key, last_key)) = reader.key_range() else { return Ok(None) };
        let (id, epoch) = name.unwrap_or_else(|| (self.next_sst_id(), epoch));
        lock(&self.pinned).insert(id, owner);
        Ok(Some(SstHandle { id, owner, epoch, size: bytes.len() as u64, first_key, last_key }))
    }

    /// Creates the object of `handle` (from [`DbInner::sst_handle`]).
    pub(crate) async fn create_sst(&self, handle: &SstHandle, bytes: bytes::Bytes) -> Result<()> {
        let path = self.layout.sst(handle);
        // A fresh ULID is unique: AlreadyExists can only be our own retried create.
        if !create(self.store.as_ref(), &path, bytes.clone()).await? {
            // Read no more than ours: a larger object is not ours either.
            let existing = match read(self.store.as_ref(), &path, bounds::ObjectKind::Sst, bytes.len() as u64).await {
                Err(Error::Corrupt { .. }) => None,
                other => Some(other?),
            };
            if existing.as_ref() != Some(&bytes) {
                lock(&self.pinned).remove(&handle.id);
                return Err(Error::corrupt(path.to_string(), "a fresh SST name holds other bytes"));
            }
        }
        Ok(())
    }

    /// Forgets the pins of SSTs that are now recorded, or given up.
    pub(crate) fn unpin(&self, ssts: &[SstHandle]) {
        let mut pinned = lock(&self.pinned);
        for h in ssts {
            pinned.remove(&h.id);
        }
    }

    /// This writer learnt it is fenced by a newer epoch: it acknowledges
    /// nothing more (I5).
    pub(crate) fn fenced(&self, by: Epoch) -> Error {
        self.commit.fenced(by);
        Error::Fenced { writer_epoch: self.epoch, by }
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
    pub(crate) fn unacked_error(&self, wal_id: WalId, e: AckError) -> Error {
        match e {
            AckError::Fenced { .. } if self.commit.never_durable(wal_id) => self.ack_error(e),
            e => Error::OutcomeUnknown { cause: Box::new(self.ack_error(e)) },
        }
    }

    /// Why memtables cannot be flushed until something outside this writer
    /// changes, so that writes waiting for room would wait forever: L0 is at
    /// its limit and the compactor failed on data retrying cannot fix, or L0
    /// holds the most a manifest may ([`bounds::MAX_L0_SSTS`]) and no
    /// compactor runs here. Writers then fail with the cause.
    pub(crate) fn flush_blocked(&self) -> Option<Error> {
        if let Some((waited_ms, cause)) = self.flush_failing.for_at_least(FLUSH_FAILING_LIMIT) {
            return Some(Error::FlushStalled { waited_ms, cause });
        }
        let l0 = lock(&self.tree).l0.len();
        let compacts_here = self.compacts_here();
        if compacts_here && l0 >= self.settings.l0_max_ssts {
            if let Some((waited_ms, cause)) = self.compaction_failing.for_at_least(FLUSH_FAILING_LIMIT) {
                let cause = format!("L0 is at its limit of {} SSTs and compaction fails: {cause}", self.settings.l0_max_ssts);
                return Some(Error::FlushStalled { waited_ms, cause });
            }
            if let Some((path, reason)) = lock(&self.compaction_failed).clone() {
                return Some(Error::Corrupt {
                    path,
                    reason: format!(
                        "{reason}; so compaction cannot run, and L0 is at its limit of {} SSTs: writes are refused until it can",
                        self.settings.l0_max_ssts
                    ),
                });
            }
        }
        if !compacts_here && l0 >= bounds::MAX_L0_SSTS {
            return Some(Error::InvalidArgument(format!(
                "L0 holds {l0} SSTs, the most a manifest may hold, and this writer runs no compactor \
                 (Settings::compactor): writes are refused until a compactor runs"
            )));
        }
        None
    }

    /// Whether this process compacts: its `Settings::compactor` is on and no
    /// compactor elsewhere has fenced it. Only then does the writer hold
    /// memtables at `l0_max_ssts` waiting for compaction; otherwise L0 may
    /// grow to the bound a manifest may hold, where writes fail with the
    /// cause rather than wait for a compactor that no longer runs here.
    pub(crate) fn compacts_here(&self) -> bool {
        let fenced = self.compactor_fenced.load(Ordering::Acquire);
        #[cfg(feature = "mutants")]
        let fenced = fenced && !self.settings.fenced_compactor_holds_l0;
        self.settings.compactor && !fenced
    }

    /// Records a compaction's outcome for [`DbInner::flush_blocked`]: a
    /// `Corrupt` error cannot be cured by retrying, anything else may be.
    pub(crate) fn compaction_result(&self, result: &Result<()>) {
        let failed = match result {
            Err(Error::Corrupt { path, reason }) => Some((path.clone(), reason.clone())),
            _ => None,
        };
        *lock(&self.compaction_failed) = failed;
        self.compaction_failing.record(result.as_ref().map(|_| ()));
    }

    pub(crate) fn emit(&self, event: TraceEvent) {
        self.tracer.emit(self.epoch, event);
    }
}

/// Since when some background step (`FlushL0`, compaction) has failed on
/// every attempt, and its last error: cleared by an attempt that succeeds.
/// Writers waiting on that step give up after [`FLUSH_FAILING_LIMIT`].
#[derive(Debug, Default)]
pub(crate) struct Failing(Mutex<Option<(tokio::time::Instant, String)>>);

impl Failing {
    /// Records one attempt's outcome.
    pub(crate) fn record(&self, result: std::result::Result<(), &Error>) {
        let mut failing = lock(&self.0);
        match result {
            Ok(()) => *failing = None,
            Err(e) => {
                let since = failing.as_ref().map_or_else(tokio::time::Instant::now, |(since, _)| *since);
                *failing = Some((since, e.to_string()));
            }
        }
    }

    /// How long (ms) and why, if every attempt failed for at least `limit`.
    pub(crate) fn for_at_least(&self, limit: std::time::Duration) -> Option<(u64, String)> {
        let (since, cause) = lock(&self.0).clone()?;
        let waited = since.elapsed();
        (waited >= limit).then(|| (waited.as_millis() as u64, cause))
    }
}
