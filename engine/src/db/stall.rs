//! Slow writes explained: the WAL writer notes, for each WAL, what its
//! buffer waited on before the freeze (a gather, the PUT budget, the upload
//! window), when its upload ran and when the watermark covered it; a durable
//! write slower than `Settings::slow_write` reads its WAL's notes, adds its
//! own (the L0 limit, the commit lock, the wake-up after its `Ack`) and is
//! logged as `SlowWrite` with the largest of them as its cause.
//!
//! Every time is read from tokio's clock, so a paused runtime (the crash
//! harness) sees the simulated times.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::protocol::{FreezeStep, GatherReason, WalId};
use crate::sync::{lock, AtomicU64, Mutex, Ordering};

/// WALs whose notes are kept: a few seconds of WALs at hundreds a second,
/// for writers that look theirs up after their `Ack`.
const KEPT_WALS: usize = 2048;

/// What a slow write waited on longest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StallCause {
    /// Memtables not yet in L0 were over `max_unflushed_bytes` (L0 full,
    /// or its flush behind).
    L0Limit,
    /// Taking the commit lock and appending.
    Lock,
    /// Its WAL gathered writes: a burst, or the flush interval.
    Gather,
    /// The PUT budget allowed no WAL yet.
    PutBudget,
    /// The upload window was full (W uploads in flight).
    UploadWindow,
    /// Its own WAL upload was slow.
    Upload,
    /// Its own WAL upload was slow and the hedge budget was spent.
    HedgeBudget,
    /// An earlier WAL's upload was slower (the watermark is a prefix).
    EarlierWal,
    /// Tasks and timers ran late: its WAL's deadlines passed before the
    /// flusher ran, or the writer woke long after its `Ack` (a busy host).
    Runtime,
}

impl StallCause {
    pub const ALL: [StallCause; 9] = [
        StallCause::L0Limit,
        StallCause::Lock,
        StallCause::Gather,
        StallCause::PutBudget,
        StallCause::UploadWindow,
        StallCause::Upload,
        StallCause::HedgeBudget,
        StallCause::EarlierWal,
        StallCause::Runtime,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StallCause::L0Limit => "l0-limit",
            StallCause::Lock => "lock",
            StallCause::Gather => "gather",
            StallCause::PutBudget => "put-budget",
            StallCause::UploadWindow => "upload-window",
            StallCause::Upload => "upload",
            StallCause::HedgeBudget => "hedge-budget",
            StallCause::EarlierWal => "earlier-wal",
            StallCause::Runtime => "runtime",
        }
    }
}

/// Slow durable writes so far, by cause (`Db::metrics().slow_writes`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SlowWrites {
    pub total: u64,
    /// (cause, writes) for every cause seen.
    pub by_cause: Vec<(StallCause, u64)>,
    /// The slowest of them, in microseconds.
    pub slowest_us: u64,
}

/// One wait of a buffer before its freeze: from `from`, for `reason`,
/// meant to end by `until` (time past it is the runtime's).
#[derive(Clone, Copy, Debug)]
struct Segment {
    from: Duration,
    until: Option<Duration>,
    cause: StallCause,
}

/// The notes of one WAL.
#[derive(Clone, Debug, Default)]
struct WalNotes {
    segments: Vec<Segment>,
    frozen_at: Duration,
    upload_started: Option<Duration>,
    upload_done: Option<Duration>,
    hedge_denied: bool,
    durable_at: Option<Duration>,
}

#[derive(Default)]
struct Notes {
    /// What the current buffer has waited on so far (it becomes the next
    /// WAL's at the freeze).
    buffer: Vec<Segment>,
    wals: BTreeMap<WalId, WalNotes>,
}

/// The shared notes and counters (one per writer).
pub(crate) struct StallLedger {
    origin: Instant,
    notes: Mutex<Notes>,
    /// The recent p99 WAL upload in microseconds (0: none timed yet).
    upload_p99_us: AtomicU64,
    counts: [AtomicU64; StallCause::ALL.len()],
    slowest_us: AtomicU64,
}

impl StallLedger {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            notes: Mutex::new(Notes::default()),
            upload_p99_us: AtomicU64::new(0),
            counts: Default::default(),
            slowest_us: AtomicU64::new(0),
        }
    }

    /// The writer's clock: time since this ledger was made.
    pub(crate) fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    pub(crate) fn origin(&self) -> Instant {
        self.origin
    }

    pub(crate) fn set_upload_p99(&self, p99: Duration) {
        self.upload_p99_us.store(p99.as_micros().max(1) as u64, Ordering::Relaxed);
    }

    pub(crate) fn upload_p99(&self) -> Option<Duration> {
        match self.upload_p99_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// The flusher decided `step` at `now` with writes buffered: notes the
    /// wait it starts (consecutive waits of one kind are one segment).
    pub(crate) fn waiting(&self, now: Duration, step: &FreezeStep) {
        let (cause, until) = match *step {
            FreezeStep::Gather { until, reason } => (
                match reason {
                    GatherReason::Interval | GatherReason::Burst => StallCause::Gather,
                    GatherReason::Budget => StallCause::PutBudget,
                },
                Some(until),
            ),
            FreezeStep::AwaitWindow => (StallCause::UploadWindow, None),
            FreezeStep::Idle | FreezeStep::Freeze { .. } => return,
        };
        let mut n = lock(&self.notes);
        match n.buffer.last_mut() {
            Some(last) if last.cause == cause => last.until = until.max(last.until),
            _ => n.buffer.push(Segment { from: now, until, cause }),
        }
    }

    /// `FreezeWal` of `wal_id` at `now`: the buffer's waits become its notes.
    pub(crate) fn frozen(&self, wal_id: WalId, now: Duration) {
        let mut n = lock(&self.notes);
        let segments = std::mem::take(&mut n.buffer);
        n.wals.insert(wal_id, WalNotes { segments, frozen_at: now, ..Default::default() });
        while n.wals.len() > KEPT_WALS {
            n.wals.pop_first();
        }
    }

    pub(crate) fn upload_started(&self, wal_id: WalId) {
        let now = self.now();
        if let Some(w) = lock(&self.notes).wals.get_mut(&wal_id) {
            w.upload_started = Some(now);
        }
    }

    pub(crate) fn upload_done(&self, wal_id: WalId, hedge_denied: bool) {
        let now = self.now();
        if let Some(w) = lock(&self.notes).wals.get_mut(&wal_id) {
            w.upload_done = Some(now);
            w.hedge_denied = hedge_denied;
        }
    }

    /// The watermark moved to `durable`: every noted WAL up to it is durable now.
    pub(crate) fn durable(&self, durable: WalId) {
        let now = self.now();
        let mut n = lock(&self.notes);
        for (_, w) in n.wals.range_mut(..=durable).rev() {
            if w.durable_at.is_some() {
                break;
            }
            w.durable_at = Some(now);
        }
    }

    /// A durable write in `wal_id` began at `began`, had the commit lock
    /// from `appending` (after waiting on the L0 limit), was appended by
    /// `appended` and saw its `Ack` at `acked`. Reports it if it was slow
    /// for `threshold`.
    pub(crate) fn check(&self, wal_id: WalId, t: WriteTimes, threshold: Option<Duration>) {
        let Some(threshold) = threshold else { return };
        let took = t.acked.saturating_sub(t.began);
        if took <= threshold {
            return;
        }
        let waits = {
            let n = lock(&self.notes);
            explain(&t, n.wals.get(&wal_id))
        };
        let cause = waits.iter().max_by_key(|w| w.1).map_or(StallCause::Runtime, |w| w.0);
        self.counts[cause as usize].fetch_add(1, Ordering::Relaxed);
        self.slowest_us.fetch_max(took.as_micros() as u64, Ordering::Relaxed);
        let ms = |c: StallCause| waits.iter().filter(|w| w.0 == c).map(|w| w.1).sum::<Duration>().as_secs_f64() * 1e3;
        tracing::warn!(
            wal_id,
            took_ms = took.as_secs_f64() * 1e3,
            threshold_ms = threshold.as_secs_f64() * 1e3,
            cause = cause.name(),
            l0_limit_ms = ms(StallCause::L0Limit),
            lock_ms = ms(StallCause::Lock),
            gather_ms = ms(StallCause::Gather),
            put_budget_ms = ms(StallCause::PutBudget),
            upload_window_ms = ms(StallCause::UploadWindow),
            upload_ms = ms(StallCause::Upload) + ms(StallCause::HedgeBudget),
            hedge_denied = waits.iter().any(|w| w.0 == StallCause::HedgeBudget),
            earlier_wal_ms = ms(StallCause::EarlierWal),
            runtime_ms = ms(StallCause::Runtime),
            "SlowWrite"
        );
    }

    pub(crate) fn counts(&self) -> SlowWrites {
        let by_cause: Vec<(StallCause, u64)> = StallCause::ALL
            .iter()
            .map(|&c| (c, self.counts[c as usize].load(Ordering::Relaxed)))
            .filter(|c| c.1 > 0)
            .collect();
        SlowWrites { total: by_cause.iter().map(|c| c.1).sum(), by_cause, slowest_us: self.slowest_us.load(Ordering::Relaxed) }
    }
}

/// A durable write's own times, on the ledger's clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteTimes {
    pub(crate) began: Duration,
    pub(crate) appending: Duration,
    pub(crate) appended: Duration,
    pub(crate) acked: Duration,
}

/// Splits a write's time into what it waited on. Without its WAL's notes
/// (forgotten, or a WAL frozen by `close`), the time from append to `Ack`
/// is put down to the upload.
fn explain(t: &WriteTimes, wal: Option<&WalNotes>) -> Vec<(StallCause, Duration)> {
    let span = |a: Duration, b: Duration| b.saturating_sub(a);
    let mut out = vec![(StallCause::L0Limit, span(t.began, t.appending)), (StallCause::Lock, span(t.appending, t.appended))];
    let Some(w) = wal else {
        out.push((StallCause::Upload, span(t.appended, t.acked)));
        return out;
    };
    // Before the freeze: the buffer's waits after this write joined it,
    // each up to its deadline; past the deadline, the runtime's.
    let ends = w.segments.iter().skip(1).map(|s| s.from).chain(std::iter::once(w.frozen_at));
    let mut covered = t.appended;
    for (s, end) in w.segments.iter().zip(ends) {
        let from = s.from.max(t.appended);
        let end = end.max(from);
        let due = s.until.map_or(end, |u| u.clamp(from, end));
        if from > covered {
            out.push((StallCause::Runtime, span(covered, from)));
        }
        out.push((s.cause, span(from, due)));
        out.push((StallCause::Runtime, span(due, end)));
        covered = covered.max(end);
    }
    out.push((StallCause::Runtime, span(covered, w.frozen_at)));
    let frozen = w.frozen_at.max(t.appended);
    let started = w.upload_started.unwrap_or(frozen).max(frozen);
    out.push((StallCause::UploadWindow, span(frozen, started)));
    let done = w.upload_done.unwrap_or(t.acked).max(started);
    out.push((if w.hedge_denied { StallCause::HedgeBudget } else { StallCause::Upload }, span(started, done)));
    let durable = w.durable_at.unwrap_or(t.acked).max(done);
    out.push((StallCause::EarlierWal, span(done, durable)));
    out.push((StallCause::Runtime, span(durable, t.acked)));
    out
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn total(w: &[(StallCause, Duration)], c: StallCause) -> Duration {
        w.iter().filter(|x| x.0 == c).map(|x| x.1).sum()
    }

    /// Every millisecond of a write is put down to exactly one cause.
    #[test]
    fn a_write_is_split_into_its_waits() {
        let wal = WalNotes {
            segments: vec![
                Segment { from: 10 * MS, until: Some(12 * MS), cause: StallCause::Gather },
                Segment { from: 12 * MS, until: Some(15 * MS), cause: StallCause::PutBudget },
                Segment { from: 15 * MS, until: None, cause: StallCause::UploadWindow },
            ],
            frozen_at: 40 * MS,
            upload_started: Some(41 * MS),
            upload_done: Some(60 * MS),
            hedge_denied: true,
            durable_at: Some(90 * MS),
        };
        let t = WriteTimes { began: Duration::ZERO, appending: 5 * MS, appended: 11 * MS, acked: 400 * MS };
        let w = explain(&t, Some(&wal));
        assert_eq!(w.iter().map(|x| x.1).sum::<Duration>(), 400 * MS);
        assert_eq!(total(&w, StallCause::L0Limit), 5 * MS);
        assert_eq!(total(&w, StallCause::Lock), 6 * MS);
        assert_eq!(total(&w, StallCause::Gather), MS, "only the part after the write joined");
        assert_eq!(total(&w, StallCause::PutBudget), 3 * MS);
        assert_eq!(total(&w, StallCause::UploadWindow), 25 * MS + MS);
        assert_eq!(total(&w, StallCause::HedgeBudget), 19 * MS);
        assert_eq!(total(&w, StallCause::EarlierWal), 30 * MS);
        assert_eq!(total(&w, StallCause::Runtime), 310 * MS, "woke 310 ms after its Ack");
    }

    /// A flusher that ran long after its gather's deadline: the time past
    /// the deadline is the runtime's, not the gather's.
    #[test]
    fn a_late_flusher_is_the_runtimes() {
        let wal = WalNotes {
            segments: vec![Segment { from: Duration::ZERO, until: Some(2 * MS), cause: StallCause::PutBudget }],
            frozen_at: 500 * MS,
            upload_started: Some(500 * MS),
            upload_done: Some(505 * MS),
            durable_at: Some(505 * MS),
            ..Default::default()
        };
        let t = WriteTimes { began: Duration::ZERO, appending: Duration::ZERO, appended: Duration::ZERO, acked: 506 * MS };
        let w = explain(&t, Some(&wal));
        assert_eq!(total(&w, StallCause::PutBudget), 2 * MS);
        assert_eq!(total(&w, StallCause::Runtime), 499 * MS);
        assert_eq!(w.iter().map(|x| x.1).sum::<Duration>(), 506 * MS);
    }

    #[test]
    fn the_ledger_counts_slow_writes_by_cause() {
        let l = StallLedger::new();
        l.waiting(Duration::ZERO, &FreezeStep::Gather { until: 300 * MS, reason: GatherReason::Budget });
        l.frozen(1, 300 * MS);
        l.durable(1);
        let t = WriteTimes { began: Duration::ZERO, appending: Duration::ZERO, appended: Duration::ZERO, acked: 310 * MS };
        l.check(1, t, Some(100 * MS));
        l.check(1, WriteTimes { acked: 50 * MS, ..t }, Some(100 * MS));
        l.check(1, t, None);
        let c = l.counts();
        assert_eq!(c.total, 1, "only the write over the threshold, and only with one");
        assert_eq!(c.by_cause, vec![(StallCause::PutBudget, 1)]);
        assert_eq!(c.slowest_us, 310_000);
    }
}
