//! The group-commit path: the WAL buffer, `FreezeWal`, `WalDurable`, the
//! manifest's `wal_id_last_seen` snapshot, and acknowledgement waiters.
//!
//! This is the engine's only shared state on the freeze/flush/ack path. It is
//! written over [`crate::sync`] so that the loom suite permutes this very code,
//! and every ordering decision it makes is delegated to
//! [`crate::protocol::WalLog`] under one lock, so each decision sees a
//! consistent snapshot of the log. Each step is reported to the tracer under
//! that lock too, where it is decided: a recorded trace orders a writer's
//! steps as they happened (a `Put` before the `FreezeWal` that takes it, an
//! `Ack` before any later `Fenced`).

mod ack;

pub use ack::{AckError, AckWait};

use std::collections::BTreeMap;

use crate::protocol::{next_manifest, Epoch, ManifestView, WalId, WalLog};
use crate::sync::{lock, Arc, AtomicU64, Mutex, Ordering};
use crate::trace::{TraceEvent, Tracer};

use ack::AckSlot;

/// An immutable WAL produced by `FreezeWal`, ready for `UploadWal`.
#[derive(Debug)]
pub struct FrozenWal<T> {
    /// The WAL's id.
    pub wal_id: WalId,
    /// The writes it holds, in append order.
    pub items: Vec<T>,
    /// Their size as the buffer counted it.
    pub bytes: usize,
}

/// What [`CommitLog::append_within`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Appended<R> {
    /// Appended to WAL `.0`; `.1` is what `apply` returned.
    Done(WalId, R),
    /// The buffer holds writes and these would take it over the limit.
    BufferFull,
    /// `admit` said no; nothing was appended.
    Refused,
}

struct Inner<T> {
    log: WalLog,
    buffer: Vec<T>,
    buffer_bytes: usize,
    /// Ack waiters keyed by the WAL id their writes landed in.
    waiters: BTreeMap<WalId, Vec<Arc<AckSlot>>>,
    /// Set once the writer is fenced or closed: no more appends or acks.
    failed: Option<AckError>,
    /// Set when `close()` begins: no more appends, but what was appended
    /// is still frozen, uploaded and acknowledged.
    closing: bool,
    /// The lowest WAL id whose create a newer epoch's object rejected: from
    /// it on, no WAL of this writer can ever be replayed (the newer writer's
    /// fence lies at or before it), so a write there was not written.
    rejected_from: Option<WalId>,
    /// Waiters the last `WalDurable` released, and appends since then: a
    /// burst of writers released by one acknowledgement is gathered until
    /// about as many have written again (`CommitLog::burst_gathered`).
    released_last: usize,
    appended_since_release: usize,
    /// WALs reported durable above the watermark: the runtime's own record,
    /// against which each advance of the protocol's watermark is checked.
    reported: std::collections::BTreeSet<WalId>,
}

impl<T> Inner<T> {
    /// The WAL holding the newest write: the buffer's future id if it holds
    /// writes, else the last frozen id.
    fn last_written(&self) -> WalId {
        let next = self.log.next_wal_id();
        if self.buffer.is_empty() {
            next - 1
        } else {
            next
        }
    }
}

/// Shared commit state of one writer.
pub struct CommitLog<T> {
    inner: Mutex<Inner<T>>,
    /// Mirror of `durable_wal_id` for lock-free fast-path reads. Written only
    /// under `inner`'s lock, after the log's watermark moved; never backward.
    durable: AtomicU64,
    /// Where steps go (a log line, and a recorded trace if a recorder is set).
    tracer: Tracer,
    epoch: Epoch,
}

impl<T> CommitLog<T> {
    /// A commit log continuing `log` (fresh or recovered), reporting nowhere.
    pub fn new(log: WalLog) -> Self {
        Self::with_tracer(log, Tracer::default())
    }

    /// A commit log continuing `log` that reports its steps to `tracer`.
    pub fn with_tracer(log: WalLog, tracer: Tracer) -> Self {
        let durable = AtomicU64::new(log.durable_wal_id());
        let epoch = log.writer_epoch();
        Self {
            inner: Mutex::new(Inner {
                log,
                buffer: Vec::new(),
                buffer_bytes: 0,
                waiters: BTreeMap::new(),
                failed: None,
                closing: false,
                rejected_from: None,
                released_last: 0,
                appended_since_release: 0,
                reported: Default::default(),
            }),
            durable,
            tracer,
            epoch,
        }
    }

    fn emit(&self, event: TraceEvent) {
        self.tracer.emit(self.epoch, event);
    }

    /// `emit` for steps taken once per write (`Put`, `Ack`): no log line.
    fn record(&self, event: TraceEvent) {
        self.tracer.record(self.epoch, event);
    }

    /// `Put`: appends `items` to the current WAL buffer and returns the id of
    /// the WAL they will be in. `apply` runs under the same lock, so the
    /// memtable sees writes in exactly the WAL's order; a batch is never split
    /// across WALs.
    pub fn append<R>(
        &self,
        items: impl IntoIterator<Item = T>,
        bytes: usize,
        apply: impl FnOnce(WalId) -> R,
    ) -> Result<(WalId, R), AckError> {
        let mut inner = lock(&self.inner);
        self.check_open(&inner)?;
        Ok(self.push(&mut inner, items, bytes, apply))
    }

    /// [`CommitLog::append`] that keeps a WAL within `limit` bytes: a buffer
    /// that holds writes takes `bytes` more only within it (else
    /// [`Appended::BufferFull`]: wait for the buffer to be frozen), and
    /// `admit` (a bound on what `items` will take, such as sequence numbers)
    /// is asked under the same lock ([`Appended::Refused`] if it says no).
    pub fn append_within<R>(
        &self,
        limit: usize,
        admit: impl FnOnce() -> bool,
        items: impl IntoIterator<Item = T>,
        bytes: usize,
        apply: impl FnOnce(WalId) -> R,
    ) -> Result<Appended<R>, AckError> {
        let mut inner = lock(&self.inner);
        self.check_open(&inner)?;
        if !inner.buffer.is_empty() && inner.buffer_bytes.saturating_add(bytes) > limit {
            return Ok(Appended::BufferFull);
        }
        if !admit() {
            return Ok(Appended::Refused);
        }
        let (wal_id, r) = self.push(&mut inner, items, bytes, apply);
        Ok(Appended::Done(wal_id, r))
    }

    /// Appends are refused once the writer failed or began to close.
    fn check_open(&self, inner: &Inner<T>) -> Result<(), AckError> {
        if let Some(err) = &inner.failed {
            return Err(err.clone());
        }
        if inner.closing {
            return Err(AckError::Closed);
        }
        Ok(())
    }

    fn push<R>(&self, inner: &mut Inner<T>, items: impl IntoIterator<Item = T>, bytes: usize, apply: impl FnOnce(WalId) -> R) -> (WalId, R) {
        let wal_id = inner.log.next_wal_id();
        inner.buffer.extend(items);
        inner.buffer_bytes += bytes;
        inner.appended_since_release += 1;
        self.record(TraceEvent::Put { wal_id });
        (wal_id, apply(wal_id))
    }

    /// `Close`, first step: later appends fail with `Closed`; everything
    /// already appended is still made durable and acknowledged. Returns the
    /// WAL holding the last write (what close must wait for).
    pub fn stop_appends(&self) -> WalId {
        let mut inner = lock(&self.inner);
        inner.closing = true;
        self.emit(TraceEvent::Close);
        inner.last_written()
    }

    /// Whether `Close` began (`stop_appends`).
    pub fn closing(&self) -> bool {
        lock(&self.inner).closing
    }

    /// `Close` began and everything appended is durable: nothing of this
    /// writer is buffered, frozen or in flight (what `Close` waits for).
    pub fn closed_and_durable(&self) -> bool {
        let inner = lock(&self.inner);
        inner.closing && inner.buffer.is_empty() && inner.log.durable_wal_id() + 1 >= inner.log.next_wal_id()
    }

    /// The WAL holding the newest write so far: the buffer's future id if it
    /// holds writes, else the last frozen id (what `flush()` must wait for).
    pub fn last_written_wal_id(&self) -> WalId {
        lock(&self.inner).last_written()
    }

    /// Whether the writers the last acknowledgement released have written
    /// again (as many appends since as waiters it released): the freeze
    /// policy gathers a burst until then, so a lone writer's next write is
    /// frozen at once and eight writers' writes share one WAL.
    pub fn burst_gathered(&self) -> bool {
        let inner = lock(&self.inner);
        inner.appended_since_release >= inner.released_last
    }

    /// Bytes in the current (mutable) WAL buffer.
    pub fn buffer_bytes(&self) -> usize {
        lock(&self.inner).buffer_bytes
    }

    /// `FreezeWal`: the buffer becomes immutable WAL `next_wal_id`. `None`
    /// when the buffer is empty (no empty WALs are uploaded).
    pub fn freeze(&self) -> Option<FrozenWal<T>> {
        self.freeze_with(|_, _| ()).0
    }

    /// `FreezeWal` and, under the same lock, `then(frozen id, last frozen id)`
    /// — used by `FreezeMemtable` so that the memtable boundary coincides with
    /// a WAL boundary: every write in the frozen memtable is in a WAL
    /// `<= last frozen id`, and every later write in a later WAL.
    ///
    /// A failed writer freezes nothing and `then` is not called (`R`'s
    /// default is returned): a stopped writer takes no action, so neither
    /// `FreezeWal` nor a `FreezeMemtable` over an unfrozen buffer happens.
    pub fn freeze_with<R: Default>(&self, then: impl FnOnce(Option<WalId>, WalId) -> R) -> (Option<FrozenWal<T>>, R) {
        let mut inner = lock(&self.inner);
        if inner.failed.is_some() {
            return (None, R::default());
        }
        let frozen = if inner.buffer.is_empty() {
            None
        } else {
            let wal_id = inner.log.freeze();
            let items = std::mem::take(&mut inner.buffer);
            let bytes = std::mem::replace(&mut inner.buffer_bytes, 0);
            self.emit(TraceEvent::FreezeWal { wal_id });
            Some(FrozenWal { wal_id, items, bytes })
        };
        let last_frozen = inner.log.next_wal_id() - 1;
        let r = then(frozen.as_ref().map(|f| f.wal_id), last_frozen);
        (frozen, r)
    }

    /// `UploadWal`'s guard, decided under the commit lock: `Ok(true)` (the
    /// step is reported) when `wal_id` is inside the window
    /// (`WalLog::may_start_upload`) and the writer has not failed,
    /// `Ok(false)` while the window is closed, the failure once it failed.
    /// One lock for both checks: no upload starts after a fence was seen
    /// (a fenced writer stops, as in the model).
    pub fn start_upload(&self, wal_id: WalId) -> Result<bool, AckError> {
        let inner = lock(&self.inner);
        if let Some(err) = &inner.failed {
            return Err(err.clone());
        }
        if !inner.log.may_start_upload(wal_id) {
            return Ok(false);
        }
        self.emit(TraceEvent::UploadWal { wal_id });
        Ok(true)
    }

    /// `WalDurable`: the create of `wal_id` succeeded. Advances the watermark
    /// through the protocol core and releases every waiter it now covers
    /// (`Ack`), reporting both under the lock. Returns the new
    /// `durable_wal_id` if it moved.
    pub fn wal_durable(&self, wal_id: WalId) -> Option<WalId> {
        let released = {
            let mut inner = lock(&self.inner);
            let before = inner.log.durable_wal_id();
            let advanced = inner.log.on_wal_durable(wal_id);
            let durable_wal_id = inner.log.durable_wal_id();
            if wal_id > before {
                inner.reported.insert(wal_id);
            }
            // I1, I3 where they must hold: the watermark moves only forward,
            // and only over WALs whose creates were reported (a contiguous
            // durable prefix). A mutant may break this; its checkers must see it.
            assert!(durable_wal_id >= before, "durable_wal_id moved backward: {before} -> {durable_wal_id}");
            if inner.log.protocol() == crate::protocol::Protocol::Shipped {
                let covered = (before + 1..=durable_wal_id).all(|id| inner.reported.contains(&id));
                assert!(covered, "durable_wal_id {durable_wal_id} covers a WAL in {}..={durable_wal_id} never reported durable", before + 1);
            }
            inner.reported = inner.reported.split_off(&durable_wal_id.saturating_add(1));
            self.emit(TraceEvent::WalDurable { wal_id, durable_wal_id });
            let durable = advanced?;
            debug_assert!(self.durable.load(Ordering::Relaxed) <= durable, "durable_wal_id moved backward");
            self.durable.store(durable, Ordering::Release);
            let still_waiting = inner.waiters.split_off(&durable.saturating_add(1));
            let released = std::mem::replace(&mut inner.waiters, still_waiting);
            for (id, slots) in &released {
                slots.iter().for_each(|_| self.record(TraceEvent::Ack { wal_id: *id }));
            }
            let count: usize = released.values().map(Vec::len).sum();
            if count > 0 {
                inner.released_last = count;
                inner.appended_since_release = 0;
            }
            (durable, released)
        };
        let (durable, released) = released;
        for slot in released.into_values().flatten() {
            slot.complete(Ok(()));
        }
        Some(durable)
    }

    /// `durable_wal_id`, read without the lock.
    pub fn durable_wal_id(&self) -> WalId {
        self.durable.load(Ordering::Acquire)
    }

    /// The id the next `FreezeWal` hands out.
    pub fn next_wal_id(&self) -> WalId {
        lock(&self.inner).log.next_wal_id()
    }

    /// `WriteManifest`'s snapshot: the next manifest view, decided by
    /// `protocol::next_manifest` under the log's lock, so the recorded
    /// `wal_id_last_seen` is durable at this instant (I1).
    pub fn next_manifest(&self, current: &ManifestView, flushed_through: Option<WalId>) -> ManifestView {
        let inner = lock(&self.inner);
        next_manifest(current, &inner.log, flushed_through)
    }

    /// Runs `f` on the protocol log under the commit lock: a manifest built
    /// from it records a `wal_id_last_seen` durable at this instant (I1).
    pub fn with_log<R>(&self, f: impl FnOnce(&WalLog) -> R) -> R {
        f(&lock(&self.inner).log)
    }

    /// `Ack`: waits until the WAL holding a write is covered by the durable
    /// watermark, or the writer fails (fenced, closed; a failed writer
    /// answers with its failure at once). Always decided under
    /// the lock by `WalLog::may_ack` (no lock-free shortcut), so the loom
    /// suite, the harness and users take one path; an `Ack` decided here is
    /// reported here, a later one by `wal_durable`. A stopped writer
    /// acknowledges nothing more (I5), not even a WAL an upload that
    /// finished after the stop covered: the failure is checked first.
    pub fn wait_durable(&self, wal_id: WalId) -> AckWait {
        let mut inner = lock(&self.inner);
        if let Some(err) = &inner.failed {
            return AckWait::ready(Err(err.clone()));
        }
        if inner.log.may_ack(wal_id) {
            self.record(TraceEvent::Ack { wal_id });
            return AckWait::ready(Ok(()));
        }
        let slot = Arc::new(AckSlot::new());
        inner.waiters.entry(wal_id).or_default().push(slot.clone());
        AckWait::pending(slot)
    }

    /// Stops the writer: later appends fail with `err`, and every waiter not
    /// yet covered is released with `err` — a stopped writer acknowledges
    /// nothing more.
    pub fn fail(&self, err: AckError) {
        self.stop(err, None, None);
    }

    /// `Fenced`: a manifest create found a newer writer epoch. The writer
    /// acknowledges nothing more (I5).
    pub fn fenced(&self, by: Epoch) {
        self.stop(AckError::Fenced { by }, None, Some(TraceEvent::Fenced { by }));
    }

    /// `WalRejected` by a newer epoch: the create of `wal_id` found the
    /// object of epoch `by`, so none of this writer's WALs from `wal_id` on
    /// can become durable ([`CommitLog::never_durable`]): the newer writer's
    /// fence lies at or before it (I5, I10). The writer stops.
    pub fn reject_fenced(&self, wal_id: WalId, by: Epoch) {
        self.stop(AckError::Fenced { by }, Some(wal_id), Some(TraceEvent::WalRejected { wal_id, held_by: by }));
    }

    /// `WalRejected` by an older or equal epoch's other object (a crashed or
    /// fenced writer's late upload): the id is unusable, and the writer stops.
    pub fn reject_taken(&self, wal_id: WalId, owner: Epoch) {
        let err = AckError::Failed(format!("wal {wal_id} holds an object of epoch {owner}"));
        self.stop(err, None, Some(TraceEvent::WalRejected { wal_id, held_by: owner }));
    }

    /// Whether a write in `wal_id` is known never to become durable: a WAL
    /// at or below it was rejected by a newer epoch. `false` means unknown
    /// (or durable), not "durable".
    pub fn never_durable(&self, wal_id: WalId) -> bool {
        lock(&self.inner).rejected_from.is_some_and(|r| wal_id >= r)
    }

    fn stop(&self, err: AckError, rejected: Option<WalId>, step: Option<TraceEvent>) {
        let released = {
            let mut inner = lock(&self.inner);
            if let Some(r) = rejected {
                inner.rejected_from = Some(inner.rejected_from.map_or(r, |old| old.min(r)));
            }
            if let Some(step) = step {
                self.emit(step);
            }
            if inner.failed.is_none() {
                inner.failed = Some(err.clone());
            }
            std::mem::take(&mut inner.waiters)
        };
        for slot in released.into_values().flatten() {
            slot.complete(Err(err.clone()));
        }
    }

    /// The failure that stopped this writer, if any.
    pub fn failure(&self) -> Option<AckError> {
        lock(&self.inner).failed.clone()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::protocol::Protocol;
    use crate::trace::MemoryRecorder;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn poll_once(wait: &mut AckWait) -> Poll<Result<(), AckError>> {
        let mut cx = Context::from_waker(Waker::noop());
        pin!(wait).poll(&mut cx)
    }

    #[test]
    fn writes_share_a_wal_until_freeze() {
        let c = CommitLog::new(WalLog::new(Protocol::Shipped, 1, 1, 4));
        let (a, _) = c.append([1u8], 1, |_| ()).unwrap();
        let (b, _) = c.append([2u8, 3], 2, |_| ()).unwrap();
        assert_eq!((a, b), (1, 1));
        let frozen = c.freeze().unwrap();
        assert_eq!((frozen.wal_id, frozen.items, frozen.bytes), (1, vec![1, 2, 3], 3));
        assert!(c.freeze().is_none(), "no empty WALs");
        assert_eq!(c.append([4u8], 1, |id| id).unwrap(), (2, 2));
    }

    #[test]
    fn a_wal_stays_within_its_limit_and_admit_is_asked_first() {
        let c = CommitLog::new(WalLog::new(Protocol::Shipped, 1, 1, 4));
        // An empty buffer takes any batch (the caller bounds a batch).
        assert_eq!(c.append_within(10, || true, [1u8; 12], 12, |id| id).unwrap(), Appended::Done(1, 1));
        assert_eq!(c.append_within(10, || true, [2u8], 1, |_| ()).unwrap(), Appended::BufferFull, "12 + 1 > 10");
        assert_eq!(c.buffer_bytes(), 12, "nothing appended");
        let frozen = c.freeze().unwrap();
        assert_eq!(frozen.items.len(), 12);
        assert_eq!(c.append_within(10, || true, [3u8; 4], 4, |_| ()).unwrap(), Appended::Done(2, ()));
        assert_eq!(c.append_within(10, || true, [4u8; 6], 6, |_| ()).unwrap(), Appended::Done(2, ()), "exactly the limit");
        let mut taken = false;
        let items = std::iter::once(5u8).inspect(|_| taken = true);
        let refused = c.append_within(100, || false, items, 1, |_| ()).unwrap();
        assert_eq!(refused, Appended::Refused);
        assert!(!taken, "a refused append takes no item");
        assert_eq!(c.buffer_bytes(), 10);
    }

    #[test]
    fn waiter_released_only_by_the_contiguous_prefix() {
        let c = CommitLog::new(WalLog::new(Protocol::Shipped, 1, 1, 4));
        c.append([1u8], 1, |_| ()).unwrap();
        c.freeze();
        c.append([2u8], 1, |_| ()).unwrap();
        c.freeze();
        let mut w2 = c.wait_durable(2);
        assert!(poll_once(&mut w2).is_pending());
        assert_eq!(c.wal_durable(2), None);
        assert!(poll_once(&mut w2).is_pending(), "WAL 1 is not durable yet");
        assert_eq!(c.with_log(|l| l.wal_id_last_seen()), 0);
        assert_eq!(c.wal_durable(1), Some(2));
        assert_eq!(poll_once(&mut w2), Poll::Ready(Ok(())));
        assert_eq!(c.durable_wal_id(), 2);
    }

    #[test]
    fn fencing_releases_waiters_with_the_error_and_rejects_appends() {
        let c = CommitLog::new(WalLog::new(Protocol::Shipped, 1, 1, 4));
        c.append([1u8], 1, |_| ()).unwrap();
        c.freeze();
        let mut w = c.wait_durable(1);
        c.fail(AckError::Fenced { by: 2 });
        assert_eq!(poll_once(&mut w), Poll::Ready(Err(AckError::Fenced { by: 2 })));
        assert_eq!(c.append([2u8], 1, |_| ()).unwrap_err(), AckError::Fenced { by: 2 });
        // A late completion after fencing acknowledges nothing new to waiters.
        let mut late = c.wait_durable(1);
        assert_eq!(poll_once(&mut late), Poll::Ready(Err(AckError::Fenced { by: 2 })));
        // Nor does a wait that begins once the WAL is durable (a `flush`
        // after the writer stopped): the stopped writer takes no `Ack` step.
        c.wal_durable(1);
        assert_eq!(c.durable_wal_id(), 1);
        let mut after = c.wait_durable(1);
        assert_eq!(poll_once(&mut after), Poll::Ready(Err(AckError::Fenced { by: 2 })));
    }

    /// A commit log whose reported steps land in a recorder, and those steps.
    fn recorded(w: u64) -> (CommitLog<u8>, MemoryRecorder) {
        let rec = MemoryRecorder::new();
        let tracer = Tracer::new(Some(Arc::new(rec.clone())));
        (CommitLog::with_tracer(WalLog::new(Protocol::Shipped, 1, 1, w), tracer), rec)
    }

    fn steps(rec: &MemoryRecorder) -> Vec<TraceEvent> {
        rec.steps().into_iter().map(|s| s.event).filter(|e| !matches!(e, TraceEvent::Put { .. } | TraceEvent::FreezeWal { .. })).collect()
    }

    #[test]
    fn uploads_start_inside_the_window_and_never_after_a_failure() {
        let (c, rec) = recorded(2);
        for _ in 0..3 {
            c.append([1u8], 1, |_| ()).unwrap();
            c.freeze();
        }
        for id in 1..=3 {
            assert_eq!(c.start_upload(id), Ok(id <= 2), "window W=2 at wal {id}");
        }
        c.fenced(2);
        c.wal_durable(1);
        assert_eq!(c.start_upload(3), Err(AckError::Fenced { by: 2 }), "a fenced writer starts nothing");
        assert_eq!(
            steps(&rec),
            [
                TraceEvent::UploadWal { wal_id: 1 },
                TraceEvent::UploadWal { wal_id: 2 },
                TraceEvent::Fenced { by: 2 },
                TraceEvent::WalDurable { wal_id: 1, durable_wal_id: 1 },
            ],
            "only started uploads are reported, and nothing is started after the fence"
        );
    }

    #[test]
    fn durability_and_acks_are_reported_as_decided() {
        let (c, rec) = recorded(4);
        for _ in 0..2 {
            c.append([1u8], 1, |_| ()).unwrap();
            c.freeze();
        }
        let _w1 = c.wait_durable(1);
        let _w2 = c.wait_durable(2);
        assert!(steps(&rec).is_empty(), "nothing is covered yet");
        c.wal_durable(2);
        c.wal_durable(1);
        let _w = c.wait_durable(2);
        assert_eq!(
            steps(&rec),
            [
                TraceEvent::WalDurable { wal_id: 2, durable_wal_id: 0 },
                TraceEvent::WalDurable { wal_id: 1, durable_wal_id: 2 },
                TraceEvent::Ack { wal_id: 1 },
                TraceEvent::Ack { wal_id: 2 },
                TraceEvent::Ack { wal_id: 2 },
            ],
            "acks follow the watermark, each once; a covered wait acknowledges at once"
        );
    }

    #[test]
    fn a_rejected_wal_stops_the_writer_and_says_whether_it_was_written() {
        let (c, rec) = recorded(4);
        c.append([1u8], 1, |_| ()).unwrap();
        c.freeze();
        c.reject_fenced(1, 3);
        assert!(c.never_durable(1), "a newer epoch's object at our id: never durable");
        assert_eq!(steps(&rec), [TraceEvent::WalRejected { wal_id: 1, held_by: 3 }]);
        let (old, _) = recorded(4);
        old.reject_taken(1, 0);
        assert!(!old.never_durable(1), "an older writer's late upload proves nothing about ours");
        assert!(matches!(old.failure(), Some(AckError::Failed(_))));
    }

    #[test]
    fn a_failed_writer_freezes_nothing() {
        let c = CommitLog::new(WalLog::new(Protocol::Shipped, 1, 1, 4));
        c.append([1u8], 1, |_| ()).unwrap();
        c.fail(AckError::Fenced { by: 2 });
        let mut called = false;
        let (frozen, ()) = c.freeze_with(|_, _| called = true);
        assert!(frozen.is_none() && !called, "no FreezeWal and no FreezeMemtable after the writer stopped");
    }

    #[test]
    fn memtable_boundary_matches_wal_boundary() {
        let c = CommitLog::new(WalLog::new(Protocol::Shipped, 1, 1, 4));
        c.append([1u8], 1, |_| ()).unwrap();
        let (frozen, last) = c.freeze_with(|id, last| (id, last));
        assert_eq!(frozen.map(|f| f.wal_id), Some(1));
        assert_eq!(last, (Some(1), 1));
        let (none, last) = c.freeze_with(|id, last| (id, last));
        assert!(none.is_none());
        assert_eq!(last, (None, 1));
    }
}
