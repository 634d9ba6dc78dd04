//! The WAL writer: a loop around the freeze policy (`protocol::FreezePolicy`)
//! that freezes the buffer (`FreezeWal`, with `FreezeMemtable` when the
//! memtable is full), starts uploads inside the protocol's window
//! (`UploadWal`), and settles each create (`WalDurable`, or the rejection
//! that stops the writer).

use std::time::Duration;

use tokio::task::JoinSet;

use super::inner::DbInner;
use crate::bounds::{max_wal_bytes, ObjectKind};
use crate::commit::{AckError, FrozenWal};
use crate::memtable::ImmMemtable;
use crate::protocol::{
    on_read_back_missing, resolve_create_conflict, CreateConflict, FreezeInputs, FreezePolicy, FreezeStep, LatencyEstimator, ObjectOwner,
    PutPacer, WalHeader, WalKind,
};
use crate::error::Error;
use crate::sst::SeqEntry;
use crate::store::{create, read};
use crate::sync::{lock, Arc, Ordering};
use crate::trace::TraceEvent;
use crate::wal_object::{decode_wal, encode_wal};

/// How long the writer waits for a completed upload before looking again.
const WINDOW_POLL: Duration = Duration::from_millis(2);

/// The freeze policy of these settings.
fn policy(inner: &DbInner) -> FreezePolicy {
    let s = &inner.settings;
    FreezePolicy { wal_size_bytes: s.wal_size_bytes, flush_interval: s.flush_interval, burst_gap: s.burst_gap }
}

/// The anchors the policy measures gathers from, kept by the loop.
#[derive(Default)]
struct Anchors {
    buffered_since: Option<Duration>,
    urgent_since: Option<Duration>,
    idle_since: Option<Duration>,
}

/// Writes frozen per second, over the last second or so (what a budget
/// given per write is converted with).
#[derive(Default)]
struct WriteRate {
    since: Duration,
    writes: u64,
    per_sec: f64,
}

impl WriteRate {
    const SPAN: Duration = Duration::from_secs(1);

    fn add(&mut self, now: Duration, writes: usize) {
        self.writes += writes as u64;
        let span = now.saturating_sub(self.since);
        if span >= Self::SPAN {
            self.per_sec = self.writes as f64 / span.as_secs_f64();
            self.writes = 0;
            self.since = now;
        }
    }
}

/// What the loop learns from the store as it goes: how long WAL uploads
/// take (`protocol::LatencyEstimator`), so the budget and the burst gap
/// follow the store, and what "slow" means for the slow-write report.
struct Learned {
    uploads: LatencyEstimator,
    writes: WriteRate,
}

impl Learned {
    fn observe(&mut self, inner: &DbInner, took: Option<Duration>) {
        let Some(took) = took else { return };
        self.uploads.observe(took);
        if let Some(s) = self.uploads.summary() {
            inner.stalls.set_upload_p99(s.p99);
        }
    }
}

/// Freezes and uploads until aborted. Upload tasks live in a `JoinSet`, so
/// they stop when this task is aborted (a dropped `Db`); each returns how
/// long its create took, if it succeeded.
pub(super) async fn run(inner: Arc<DbInner>) {
    let policy = policy(&inner);
    let budget = inner.settings.wal_put_budget;
    let origin = inner.stalls.origin();
    let mut uploads: JoinSet<Option<Duration>> = JoinSet::new();
    let mut at = Anchors::default();
    let mut pacer = PutPacer::default();
    let mut learned = Learned { uploads: LatencyEstimator::new(), writes: WriteRate::default() };
    loop {
        while let Some(r) = uploads.try_join_next() {
            learned.observe(&inner, r.ok().flatten());
        }
        let now = origin.elapsed();
        let buffered_bytes = inner.commit.buffer_bytes();
        if buffered_bytes == 0 {
            at.buffered_since = None;
        } else if at.buffered_since.is_none() {
            // Written while the loop slept: no later than when it went idle.
            at.buffered_since = Some(at.idle_since.unwrap_or(now));
        }
        if inner.flush_wanted.load(Ordering::Acquire) {
            at.urgent_since.get_or_insert(now);
        }
        let upload_p50 = learned.uploads.summary().map(|s| s.p50);
        let rate = budget.rate(upload_p50, learned.writes.per_sec);
        pacer.refill(now, rate);
        let inputs = FreezeInputs {
            now,
            stopped: inner.commit.failure().is_some(),
            buffered_bytes,
            buffered_since: at.buffered_since,
            memtable_full: inner.memtable_full.load(Ordering::Acquire),
            window_has_room: inner.commit.with_log(|log| log.window_has_room()),
            uploads_in_flight: uploads.len(),
            urgent_since: at.urgent_since,
            burst_gathered: inner.commit.burst_gathered(),
            put_ready_at: pacer.ready_at(now, rate),
            upload_p50,
        };
        let step = policy.decide(&inputs);
        if buffered_bytes > 0 {
            inner.stalls.waiting(now, &step);
        }
        match step {
            FreezeStep::Idle => {
                at.idle_since = Some(now);
                tokio::select! {
                    _ = inner.wake_flusher.notified() => {}
                    _ = tokio::time::sleep(inner.settings.flush_interval) => {}
                }
            }
            FreezeStep::AwaitWindow => {
                tokio::select! {
                    _ = tokio::time::timeout(WINDOW_POLL, inner.durable_changed.notified()) => {}
                    Some(r) = uploads.join_next(), if !uploads.is_empty() => learned.observe(&inner, r.ok().flatten()),
                }
            }
            FreezeStep::Gather { until, .. } => {
                let deadline = origin + until;
                tokio::select! {
                    _ = inner.wake_flusher.notified() => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                    // A completed upload is learnt from, and may open the window.
                    Some(r) = uploads.join_next(), if !uploads.is_empty() => learned.observe(&inner, r.ok().flatten()),
                }
            }
            FreezeStep::Freeze { memtable, .. } => {
                at.idle_since = None;
                // Cleared before the freeze: a caller that asks after it is
                // in the next buffer and asks again.
                inner.flush_wanted.store(false, Ordering::Release);
                at.urgent_since = None;
                at.buffered_since = None;
                pacer.spend();
                let frozen = if memtable {
                    inner.memtable_full.store(false, Ordering::Release);
                    freeze_memtable(&inner)
                } else {
                    inner.commit.freeze()
                };
                if let Some(frozen) = frozen {
                    inner.stalls.frozen(frozen.wal_id, now);
                    learned.writes.add(now, frozen.items.len());
                    start_upload(&inner, frozen, &mut uploads).await;
                }
            }
        }
    }
}

/// `UploadWal` once the protocol's window allows: WAL `i` starts only while
/// `i <= durable + W`. A failed writer starts nothing: outside the window a
/// late upload could land where a newer writer's fence jump does not reach,
/// and a fenced writer has nothing left to make durable.
async fn start_upload(inner: &Arc<DbInner>, frozen: FrozenWal<SeqEntry>, uploads: &mut JoinSet<Option<Duration>>) {
    let w = inner.settings.max_inflight_wal_uploads as usize;
    loop {
        if window_never_freed(inner) && inner.uploads_in_flight.load(Ordering::Acquire) >= w {
            let _ = tokio::time::timeout(WINDOW_POLL, inner.durable_changed.notified()).await;
            continue;
        }
        match inner.commit.start_upload(frozen.wal_id) {
            Ok(true) => {
                let in_flight = inner.uploads_in_flight.fetch_add(1, Ordering::AcqRel) + 1;
                // The window bounds uploads in flight (`may_start_upload`).
                assert!(in_flight <= w, "{in_flight} WAL uploads in flight with a window of {w}");
                let task = inner.clone();
                inner.stalls.upload_started(frozen.wal_id);
                uploads.spawn(async move {
                    // The slot is freed once the create is settled and before
                    // `WalDurable` opens the window for the next id, so that
                    // uploads in flight never outnumber the window.
                    let free = || {
                        if !window_never_freed(&task) {
                            task.uploads_in_flight.fetch_sub(1, Ordering::AcqRel);
                        }
                    };
                    let took = upload_wal(&task, frozen, free).await;
                    task.durable_changed.notify_waiters();
                    took
                });
                return;
            }
            Ok(false) => {
                let _ = tokio::time::timeout(WINDOW_POLL, inner.durable_changed.notified()).await;
            }
            Err(_) => return,
        }
    }
}

/// Mutant `window-never-freed` (`Settings::window_never_freed`): a completed
/// upload never frees its slot, so after W uploads the writer stalls.
fn window_never_freed(inner: &DbInner) -> bool {
    #[cfg(feature = "mutants")]
    return inner.settings.window_never_freed;
    #[cfg(not(feature = "mutants"))]
    {
        let _ = inner;
        false
    }
}

/// `FreezeMemtable` together with `FreezeWal`, under the commit lock, so the
/// memtable's writes are exactly those in WALs `<= last_wal_id`.
pub(super) fn freeze_memtable(inner: &DbInner) -> Option<FrozenWal<SeqEntry>> {
    let (frozen, froze_memtable) = inner.commit.freeze_with(|_, last| {
        let mut mem = lock(&inner.mem);
        if mem.active.is_empty() {
            return false;
        }
        let table = std::mem::take(&mut mem.active);
        mem.imm.push(Arc::new(ImmMemtable { table, last_wal_id: last }));
        // Recorded under the commit lock, after `FreezeWal`: the spec's
        // `FreezeMemtable` requires an empty WAL buffer.
        inner.emit(TraceEvent::FreezeMemtable { last_wal_id: last });
        true
    });
    if froze_memtable {
        inner.wake_l0.notify_one();
    }
    frozen
}

/// After `UploadWal`: creates `wal/<id>.sst`, resolving an `AlreadyExists`
/// by reading the object back; then (after `free`, which frees the upload's
/// slot) `WalDurable`, or the rejection or failure that stops this writer.
/// Returns how long a create that landed at once took.
async fn upload_wal(inner: &DbInner, frozen: FrozenWal<SeqEntry>, free: impl FnOnce()) -> Option<Duration> {
    let wal_id = frozen.wal_id;
    let token: u64 = rand::random();
    let header = WalHeader { writer_epoch: inner.epoch, kind: WalKind::Data };
    // Fails only for merge operands without an operator, which
    // `Db::write_with` refuses before they reach a WAL.
    let bytes = match encode_wal(header, token, frozen.items, inner.settings.block_size, &inner.settings.merge_operator) {
        Ok(bytes) => bytes,
        Err(e) => {
            free();
            inner.commit.fail(AckError::Failed(format!("wal {wal_id} cannot be encoded: {e}")));
            return None;
        }
    };
    let path = inner.layout.wal(wal_id);
    let limit = max_wal_bytes(&inner.settings);
    // `Db::write_with` keeps a WAL's writes within the bound every reader
    // applies; a WAL above it would make the next open refuse the database.
    if bytes.len() as u64 > limit {
        free();
        inner.commit.fail(AckError::Failed(format!(
            "wal {wal_id} would be {} bytes, above the {limit} bytes a WAL may hold: not uploaded",
            bytes.len()
        )));
        return None;
    }
    let denied_before = inner.hedge_stats.counts().create_hedges_denied;
    let started = tokio::time::Instant::now();
    // The store retries transient failures (`RetryStore`).
    let created = create(inner.store.as_ref(), &path, bytes).await;
    let took = started.elapsed();
    inner.stalls.upload_done(wal_id, inner.hedge_stats.counts().create_hedges_denied > denied_before);
    let at_once = matches!(created, Ok(true));
    let settled = match created {
        Ok(true) => Ok(CreateConflict::Ours),
        Ok(false) => match read(inner.store.as_ref(), &path, ObjectKind::Wal, limit).await.and_then(|b| decode_wal(&path, b)) {
            Ok(existing) => Ok(resolve_create_conflict(
                inner.settings.protocol,
                ObjectOwner { writer_epoch: inner.epoch, token },
                existing.owner(),
            )),
            Err(Error::ObjectStore(object_store::Error::NotFound { .. })) => {
                let own = inner.manifest.lock().await;
                let replay_after = if own.writer_epoch == inner.epoch { own.replay_after_wal_id } else { 0 };
                on_read_back_missing(wal_id, replay_after)
                    .ok_or_else(|| format!("wal {wal_id}: AlreadyExists, then gone on the read-back, above this writer's replay point"))
            }
            Err(e) => Err(format!("wal {wal_id}: cannot read back after AlreadyExists: {e}")),
        },
        Err(e) => {
            tracing::error!(wal_id, error = %e, "UploadWal failed for good");
            Err(format!("upload of wal {wal_id} failed: {e}"))
        }
    };
    // A newer writer's WAL, if a manifest records its epoch; else not a WAL
    // any writer wrote.
    let settled = match settled {
        Ok(CreateConflict::Fenced { by }) => {
            match super::chain::check_claimed_epoch(inner.store.as_ref(), &inner.layout, inner.epoch, by, &path).await {
                Ok(()) => Ok(CreateConflict::Fenced { by }),
                Err(e) => Err(format!("wal {wal_id}: {e}")),
            }
        }
        other => other,
    };
    free();
    match settled {
        // `WalDurable` and the `Ack`s it releases, reported under the commit lock.
        Ok(CreateConflict::Ours) => {
            if let Some(durable) = inner.commit.wal_durable(wal_id) {
                inner.stalls.durable(durable);
            }
            at_once.then_some(took)
        }
        Ok(CreateConflict::Fenced { by }) => {
            tracing::warn!(wal_id, writer_epoch = inner.epoch, by, "Fenced");
            inner.commit.reject_fenced(wal_id, by);
            None
        }
        Ok(CreateConflict::TakenByOther { owner }) => {
            inner.commit.reject_taken(wal_id, owner);
            None
        }
        Err(reason) => {
            inner.commit.fail(AckError::Failed(reason));
            None
        }
    }
}
