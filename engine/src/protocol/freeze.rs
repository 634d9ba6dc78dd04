//! The freeze policy: when the WAL flusher turns the buffer into a WAL.
//!
//! This is policy, not safety. The model lets a writer `FreezeWal` whenever
//! its buffer is not empty; the engine freezes in a subset of those states,
//! chosen here to trade latency against PUTs. No invariant depends on it,
//! except that a WAL is frozen only when its upload could start at once
//! (`window_has_room`), so later writes are never held behind a WAL that waits
//! for the window. The flusher is a loop around [`FreezePolicy::decide`].
//!
//! The trade is set by a [`PutBudget`], spent through a [`PutPacer`]: every
//! WAL costs one PUT, and a WAL frozen as soon as the budget allows one waits
//! least. The default budget is measured in the store's own time (WALs per
//! median upload), so the same setting gathers for about 50 ms on a store
//! that answers in 50 ms and about 5 ms on one that answers in 5 ms.

use std::time::Duration;

/// How many WAL PUTs a writer may spend (`Settings::wal_put_budget`). A
/// full buffer or memtable is frozen whatever the budget says; everything
/// else waits for it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PutBudget {
    /// About this many WALs per median WAL upload time, as measured while the
    /// writer runs: at 1, a sequential flusher's request rate, on any store.
    /// Until the first upload is timed, nothing is held back.
    PerUploadTime(f64),
    /// At most about this many WALs per second.
    PerSecond(f64),
    /// At most about `usd` dollars of WAL PUTs per million writes, at
    /// `usd_per_1000_puts` (S3 Standard: 0.005; S3 Express One Zone:
    /// 0.00113). Converted into PUTs per second at the writer's recent
    /// write rate, and never below [`MIN_PUTS_PER_SECOND`]: a lone writer
    /// cannot share its WAL, and waiting longer would only slow it.
    UsdPerMillionWrites { usd: f64, usd_per_1000_puts: f64 },
    /// Freeze whenever the upload window has room: the lowest latency and
    /// the most PUTs (up to one per write).
    Unlimited,
}

/// The floor of a budget given per write (see [`PutBudget::UsdPerMillionWrites`]).
pub const MIN_PUTS_PER_SECOND: f64 = 1.0;

impl Default for PutBudget {
    /// One WAL per median upload time: about a sequential flusher's bill,
    /// with uploads spaced evenly instead of each waiting for the one before.
    fn default() -> Self {
        PutBudget::PerUploadTime(1.0)
    }
}

impl PutBudget {
    /// PUTs per second allowed now; `None` for no limit. `upload_p50` is the
    /// recent median WAL upload, `writes_per_sec` the recent write rate.
    pub fn rate(&self, upload_p50: Option<Duration>, writes_per_sec: f64) -> Option<f64> {
        match *self {
            PutBudget::Unlimited => None,
            PutBudget::PerSecond(r) => Some(r),
            PutBudget::PerUploadTime(k) => {
                let p50 = upload_p50?.as_secs_f64();
                // A median below a microsecond (an in-memory store) would ask
                // for millions of PUTs a second: no limit, as it is in effect.
                (p50 >= 1e-6).then(|| k / p50)
            }
            PutBudget::UsdPerMillionWrites { usd, usd_per_1000_puts } => {
                let puts_per_write = usd / 1e6 / (usd_per_1000_puts / 1000.0);
                Some((puts_per_write * writes_per_sec.max(0.0)).max(MIN_PUTS_PER_SECOND))
            }
        }
    }

    /// Why this budget cannot be used, if it cannot.
    pub fn invalid(&self) -> Option<String> {
        let finite_positive = |x: f64| x.is_finite() && x > 0.0;
        match *self {
            PutBudget::Unlimited => None,
            PutBudget::PerSecond(x) | PutBudget::PerUploadTime(x) if !finite_positive(x) => {
                Some(format!("a PUT budget must be a positive number, got {x}"))
            }
            PutBudget::UsdPerMillionWrites { usd, usd_per_1000_puts } if !finite_positive(usd) || !finite_positive(usd_per_1000_puts) => {
                Some(format!("a dollar budget and a PUT price must be positive, got {usd} and {usd_per_1000_puts}"))
            }
            _ => None,
        }
    }
}

/// PUTs that may be spent back to back after a quiet spell: a writer that
/// was idle freezes its first write at once, and a burst right after it too.
pub const PACER_DEPTH: f64 = 2.0;

/// A token bucket of WAL PUTs: tokens accrue at the budget's rate up to
/// [`PACER_DEPTH`], and each freeze spends one. Pure state; the caller
/// passes the time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PutPacer {
    tokens: f64,
    at: Duration,
}

impl Default for PutPacer {
    fn default() -> Self {
        Self { tokens: PACER_DEPTH, at: Duration::ZERO }
    }
}

impl PutPacer {
    /// Adds what `rate` (PUTs per second, `None`: no limit) earned since the last call.
    pub fn refill(&mut self, now: Duration, rate: Option<f64>) {
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.tokens = match rate {
            None => PACER_DEPTH,
            Some(r) => (self.tokens + r * elapsed).min(PACER_DEPTH),
        };
    }

    /// When a whole PUT is there (`now` if it is), at `rate`.
    pub fn ready_at(&self, now: Duration, rate: Option<f64>) -> Duration {
        match rate {
            Some(r) if self.tokens < 1.0 => {
                let wait = (1.0 - self.tokens) / r.max(f64::MIN_POSITIVE);
                now.saturating_add(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
            }
            _ => now,
        }
    }

    /// A WAL was frozen. A forced freeze (a full buffer) may spend a PUT
    /// that is not there yet; the debt is bounded, so a burst of full
    /// buffers delays later WALs by at most [`PACER_DEPTH`] PUTs.
    pub fn spend(&mut self) {
        self.tokens = (self.tokens - 1.0).max(-PACER_DEPTH);
    }
}

/// The knobs of the policy (from `Settings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreezePolicy {
    /// Freeze once the buffer holds this many bytes.
    pub wal_size_bytes: usize,
    /// Buffered writes nobody waits on are frozen at most this long after
    /// the first of them arrived (the budget permitting).
    pub flush_interval: Duration,
    /// With no upload in flight, a burst of writers (those one
    /// acknowledgement released) gathers at most this long after the first
    /// wake, unless it is complete sooner; at most an eighth of the median
    /// upload, so that on a fast store a burst costs little of a write's time.
    pub burst_gap: Duration,
}

/// What the flusher knows at one moment. Times are offsets from any fixed
/// origin the caller picks (the policy only compares them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FreezeInputs {
    pub now: Duration,
    /// The writer stopped (fenced, failed or closed and drained): nothing more is frozen.
    pub stopped: bool,
    /// Bytes in the WAL buffer.
    pub buffered_bytes: usize,
    /// When the first write of the current buffer was seen.
    pub buffered_since: Option<Duration>,
    /// The memtable is full: freeze it together with the WAL buffer.
    pub memtable_full: bool,
    /// `WalLog::window_has_room`: a WAL frozen now could start uploading.
    pub window_has_room: bool,
    /// WAL uploads in flight.
    pub uploads_in_flight: usize,
    /// Since when a caller waits for durability (a durable write, `flush`,
    /// `close`), if one does.
    pub urgent_since: Option<Duration>,
    /// As many writes arrived since the last acknowledgement as it released
    /// (`CommitLog::burst_gathered`): the burst is complete.
    pub burst_gathered: bool,
    /// When the PUT budget allows the next WAL (`PutPacer::ready_at`).
    pub put_ready_at: Duration,
    /// The recent median WAL upload, if any was timed.
    pub upload_p50: Option<Duration>,
}

/// Why the flusher gathers instead of freezing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GatherReason {
    /// Nobody waits on the buffered writes: freeze at the flush interval.
    Interval,
    /// A burst of writers is arriving.
    Burst,
    /// The PUT budget allows no WAL yet.
    Budget,
}

/// The flusher's next step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FreezeStep {
    /// Nothing to freeze: sleep until woken.
    Idle,
    /// Wait for the upload window to open (a completed upload).
    AwaitWindow,
    /// Wait until `until` or a wake (a new write, a completed upload), then decide again.
    Gather { until: Duration, reason: GatherReason },
    /// `FreezeWal` now (and `FreezeMemtable` with it if `memtable`), then
    /// start its upload. `forced`: the buffer or memtable is full, frozen
    /// whatever the budget says.
    Freeze { memtable: bool, forced: bool },
}

impl FreezePolicy {
    /// The burst gap on a store whose median upload is `upload_p50`.
    pub fn burst_gap_for(&self, upload_p50: Option<Duration>) -> Duration {
        upload_p50.map_or(self.burst_gap, |p50| self.burst_gap.min(p50 / 8))
    }

    /// The next step for the flusher.
    pub fn decide(&self, i: &FreezeInputs) -> FreezeStep {
        if i.stopped || (i.buffered_bytes == 0 && !i.memtable_full) {
            return FreezeStep::Idle;
        }
        if !i.window_has_room {
            return FreezeStep::AwaitWindow;
        }
        if i.memtable_full || i.buffered_bytes >= self.wal_size_bytes {
            return FreezeStep::Freeze { memtable: i.memtable_full, forced: true };
        }
        let freeze = FreezeStep::Freeze { memtable: false, forced: false };
        // A gather is measured from its anchor; without one there is
        // nothing to wait for.
        let gather = |since: Option<Duration>, window: Duration, reason| {
            let until = since?.min(i.now).saturating_add(window);
            (i.now < until).then_some(FreezeStep::Gather { until, reason })
        };
        let budget = (i.now < i.put_ready_at).then_some(FreezeStep::Gather { until: i.put_ready_at, reason: GatherReason::Budget });
        let Some(urgent_since) = i.urgent_since else {
            // The later of the interval and the budget.
            return match (gather(i.buffered_since, self.flush_interval, GatherReason::Interval), budget) {
                (Some(FreezeStep::Gather { until, .. }), Some(b @ FreezeStep::Gather { until: ready, .. })) if ready > until => b,
                (Some(g), _) => g,
                (None, b) => b.unwrap_or(freeze),
            };
        };
        if i.uploads_in_flight == 0 && !i.burst_gathered {
            let gap = self.burst_gap_for(i.upload_p50);
            if let Some(g) = gather(Some(urgent_since), gap, GatherReason::Burst) {
                return g;
            }
        }
        budget.unwrap_or(freeze)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> FreezePolicy {
        FreezePolicy { wal_size_bytes: 1000, flush_interval: 5 * MS, burst_gap: MS }
    }

    fn ready(now: Duration) -> FreezeInputs {
        FreezeInputs {
            now,
            buffered_bytes: 10,
            buffered_since: Some(Duration::ZERO),
            window_has_room: true,
            urgent_since: Some(Duration::ZERO),
            burst_gathered: true,
            put_ready_at: Duration::ZERO,
            ..Default::default()
        }
    }

    const FREEZE: FreezeStep = FreezeStep::Freeze { memtable: false, forced: false };

    #[test]
    fn a_lone_durable_write_is_frozen_at_once() {
        assert_eq!(policy().decide(&ready(Duration::ZERO)), FREEZE);
    }

    #[test]
    fn a_burst_gathers_until_complete_or_the_gap() {
        let i = FreezeInputs { burst_gathered: false, ..ready(Duration::ZERO) };
        assert_eq!(policy().decide(&i), FreezeStep::Gather { until: MS, reason: GatherReason::Burst });
        assert_eq!(policy().decide(&FreezeInputs { now: MS, ..i }), FREEZE);
        assert_eq!(policy().decide(&FreezeInputs { burst_gathered: true, ..i }), FREEZE);
    }

    /// On a store whose median upload is 4 ms, a burst gathers at most
    /// 0.5 ms: an eighth of an upload.
    #[test]
    fn the_burst_gap_shrinks_with_the_store() {
        let i = FreezeInputs { burst_gathered: false, upload_p50: Some(4 * MS), ..ready(Duration::ZERO) };
        assert_eq!(policy().decide(&i), FreezeStep::Gather { until: MS / 2, reason: GatherReason::Burst });
        let slow = FreezeInputs { upload_p50: Some(50 * MS), ..i };
        assert_eq!(policy().decide(&slow), FreezeStep::Gather { until: MS, reason: GatherReason::Burst });
    }

    #[test]
    fn the_budget_holds_the_next_wal_until_a_put_is_there() {
        let i = FreezeInputs { uploads_in_flight: 1, put_ready_at: 7 * MS, ..ready(3 * MS) };
        assert_eq!(policy().decide(&i), FreezeStep::Gather { until: 7 * MS, reason: GatherReason::Budget });
        assert_eq!(policy().decide(&FreezeInputs { now: 7 * MS, ..i }), FREEZE);
        let full = FreezeInputs { buffered_bytes: 1000, ..i };
        assert_eq!(policy().decide(&full), FreezeStep::Freeze { memtable: false, forced: true }, "a full buffer never waits");
    }

    #[test]
    fn writes_nobody_awaits_wait_for_the_interval_and_the_budget() {
        let i = FreezeInputs { urgent_since: None, buffered_since: Some(2 * MS), ..ready(3 * MS) };
        assert_eq!(policy().decide(&i), FreezeStep::Gather { until: 7 * MS, reason: GatherReason::Interval });
        assert_eq!(policy().decide(&FreezeInputs { now: 7 * MS, ..i }), FREEZE);
        let later = FreezeInputs { put_ready_at: 9 * MS, ..i };
        assert_eq!(policy().decide(&later), FreezeStep::Gather { until: 9 * MS, reason: GatherReason::Budget });
    }

    #[test]
    fn nothing_is_frozen_outside_the_window_or_after_a_stop() {
        let i = FreezeInputs { window_has_room: false, buffered_bytes: 5000, ..ready(Duration::ZERO) };
        assert_eq!(policy().decide(&i), FreezeStep::AwaitWindow);
        assert_eq!(policy().decide(&FreezeInputs { stopped: true, ..ready(Duration::ZERO) }), FreezeStep::Idle);
        assert_eq!(policy().decide(&FreezeInputs { buffered_bytes: 0, ..ready(Duration::ZERO) }), FreezeStep::Idle);
        let mem = FreezeInputs { buffered_bytes: 0, memtable_full: true, ..ready(Duration::ZERO) };
        assert_eq!(policy().decide(&mem), FreezeStep::Freeze { memtable: true, forced: true });
    }

    #[test]
    fn budgets_in_the_stores_time_in_seconds_and_in_dollars() {
        let per_upload = PutBudget::PerUploadTime(1.0);
        assert_eq!(per_upload.rate(None, 2000.0), None, "nothing held back before an upload is timed");
        assert_eq!(per_upload.rate(Some(50 * MS), 2000.0), Some(20.0));
        assert_eq!(per_upload.rate(Some(5 * MS), 2000.0), Some(200.0));
        assert_eq!(PutBudget::PerSecond(30.0).rate(Some(5 * MS), 0.0), Some(30.0));
        // $0.10 per million writes at $0.005 per 1,000 PUTs: 0.02 PUTs a write.
        let usd = PutBudget::UsdPerMillionWrites { usd: 0.1, usd_per_1000_puts: 0.005 };
        let at_2000 = usd.rate(None, 2000.0).unwrap();
        assert!((at_2000 - 40.0).abs() < 1e-9, "{at_2000}");
        assert_eq!(usd.rate(None, 10.0), Some(MIN_PUTS_PER_SECOND));
        assert_eq!(PutBudget::Unlimited.rate(Some(5 * MS), 2000.0), None);
        assert!(PutBudget::PerSecond(0.0).invalid().is_some());
        assert!(PutBudget::PerUploadTime(f64::NAN).invalid().is_some());
        assert!(PutBudget::default().invalid().is_none());
    }

    #[test]
    fn the_pacer_spaces_puts_at_the_rate_after_its_depth() {
        let mut p = PutPacer::default();
        let rate = Some(100.0); // one PUT every 10 ms
        let mut t = Duration::ZERO;
        for _ in 0..PACER_DEPTH as usize {
            p.refill(t, rate);
            assert_eq!(p.ready_at(t, rate), t, "the bucket starts full");
            p.spend();
        }
        p.refill(t, rate);
        assert_eq!(p.ready_at(t, rate), 10 * MS);
        t = 4 * MS;
        p.refill(t, rate);
        let at = p.ready_at(t, rate);
        assert!(at.abs_diff(10 * MS) < Duration::from_micros(1), "{at:?}");
        p.refill(at, rate);
        assert_eq!(p.ready_at(at, rate), at);
        let mut unlimited = PutPacer::default();
        for _ in 0..100 {
            unlimited.spend();
            unlimited.refill(Duration::ZERO, None);
            assert_eq!(unlimited.ready_at(Duration::ZERO, None), Duration::ZERO);
        }
    }

    fn inputs() -> impl Strategy<Value = FreezeInputs> {
        let t = || (0u64..500).prop_map(Duration::from_millis);
        let opt_t = || proptest::option::of((0u64..500).prop_map(Duration::from_millis));
        (
            (t(), any::<bool>(), 0usize..3000, opt_t(), any::<bool>(), any::<bool>()),
            (0usize..5, opt_t(), any::<bool>(), t(), opt_t()),
        )
            .prop_map(
                |(
                    (now, stopped, buffered_bytes, buffered_since, memtable_full, window_has_room),
                    (uploads_in_flight, urgent_since, burst_gathered, put_ready_at, upload_p50),
                )| {
                    // The flusher's anchors are never in the future, and a
                    // non-empty buffer always has one.
                    let buffered_since = if buffered_bytes > 0 { Some(buffered_since.unwrap_or(now).min(now)) } else { None };
                    FreezeInputs {
                        now,
                        stopped,
                        buffered_bytes,
                        buffered_since,
                        memtable_full,
                        window_has_room,
                        uploads_in_flight,
                        urgent_since: urgent_since.map(|t| t.min(now)),
                        burst_gathered,
                        put_ready_at,
                        upload_p50,
                    }
                },
            )
    }

    proptest! {
        /// Whatever the inputs: nothing is frozen outside the window or after
        /// a stop; the budget is kept by every freeze it may hold back; a
        /// gather always ends in the future and within its window or at the
        /// budget's time; a full buffer or memtable is never held back.
        #[test]
        fn decisions_respect_the_window_the_budget_and_the_bounds(i in inputs()) {
            let p = policy();
            let step = p.decide(&i);
            if let FreezeStep::Freeze { memtable, forced } = step {
                prop_assert!(i.window_has_room && !i.stopped);
                prop_assert_eq!(memtable, i.memtable_full);
                prop_assert_eq!(forced, i.memtable_full || i.buffered_bytes >= p.wal_size_bytes);
                prop_assert!(forced || i.put_ready_at <= i.now, "a freeze the budget does not allow");
            }
            if let FreezeStep::Gather { until, reason } = step {
                prop_assert!(until > i.now);
                match reason {
                    GatherReason::Interval => prop_assert!(until <= i.now + p.flush_interval && until >= i.put_ready_at),
                    GatherReason::Burst => prop_assert!(until <= i.now + p.burst_gap_for(i.upload_p50)),
                    GatherReason::Budget => prop_assert_eq!(until, i.put_ready_at),
                }
                prop_assert!(i.buffered_bytes < p.wal_size_bytes && !i.memtable_full);
            }
            if i.stopped || (i.buffered_bytes == 0 && !i.memtable_full) {
                prop_assert_eq!(step, FreezeStep::Idle);
            }
        }

        /// Time only moves a decision towards freezing: at a gather's
        /// deadline (nothing else changed) the flusher freezes or gathers
        /// for a later reason, and within two deadlines it freezes.
        #[test]
        fn every_gather_ends_in_a_freeze(i in inputs()) {
            let p = policy();
            let mut now = i.now;
            for _ in 0..3 {
                match p.decide(&FreezeInputs { now, ..i }) {
                    FreezeStep::Gather { until, .. } => now = until,
                    step => {
                        let settled = matches!(step, FreezeStep::Freeze { .. } | FreezeStep::Idle | FreezeStep::AwaitWindow);
                        prop_assert!(settled);
                        return Ok(());
                    }
                }
            }
            prop_assert!(false, "still gathering after three deadlines: {:?}", i);
        }

        /// Whatever the times the flusher looks at: the freezes a budget of
        /// `rate` PUTs a second allows over a span are at most its depth plus
        /// the rate times the span.
        #[test]
        fn the_pacer_keeps_the_budget(rate in 1.0f64..2000.0, steps in proptest::collection::vec(0u64..20_000, 1..400)) {
            let mut p = PutPacer::default();
            let mut now = Duration::ZERO;
            let mut spent = 0u32;
            for us in steps {
                now += Duration::from_micros(us);
                p.refill(now, Some(rate));
                if p.ready_at(now, Some(rate)) <= now {
                    p.spend();
                    spent += 1;
                }
            }
            let allowed = PACER_DEPTH + rate * now.as_secs_f64();
            prop_assert!(f64::from(spent) <= allowed + 1e-6, "{spent} PUTs, {allowed} allowed");
        }
    }
}
