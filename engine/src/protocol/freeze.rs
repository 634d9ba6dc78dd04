//! The freeze policy: when the WAL flusher turns the buffer into a WAL.
//!
//! This is policy, not safety. The model lets a writer `FreezeWal` whenever
//! its buffer is not empty; the engine freezes in a subset of those states,
//! chosen here to trade latency against PUTs. No invariant depends on it,
//! except that a WAL is frozen only when its upload could start at once
//! (`window_has_room`), so later writes are never held behind a WAL that waits
//! for the window. The flusher is a loop around [`FreezePolicy::decide`].

use std::time::Duration;

/// The knobs of the policy (from `Settings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreezePolicy {
    /// Freeze once the buffer holds this many bytes.
    pub wal_size_bytes: usize,
    /// Buffered writes nobody waits on are frozen at most this long after
    /// the first of them arrived.
    pub flush_interval: Duration,
    /// With no upload in flight, a burst of writers (those one
    /// acknowledgement released) gathers at most this long after the first
    /// wake, unless it is complete sooner.
    pub burst_gap: Duration,
    /// With an upload in flight, the next WAL gathers at most this long after
    /// the previous freeze.
    pub upload_gather: Duration,
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
    /// When the previous WAL was frozen.
    pub last_freeze: Option<Duration>,
}

/// Why the flusher gathers instead of freezing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GatherReason {
    /// Nobody waits on the buffered writes: freeze at the flush interval.
    Interval,
    /// A burst of writers is arriving.
    Burst,
    /// An upload is in flight: the next WAL gathers behind it.
    UploadInFlight,
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
    /// `FreezeWal` now (and `FreezeMemtable` with it if `memtable`), then start its upload.
    Freeze { memtable: bool },
}

impl FreezePolicy {
    /// The next step for the flusher.
    pub fn decide(&self, i: &FreezeInputs) -> FreezeStep {
        if i.stopped || (i.buffered_bytes == 0 && !i.memtable_full) {
            return FreezeStep::Idle;
        }
        if !i.window_has_room {
            return FreezeStep::AwaitWindow;
        }
        let freeze = FreezeStep::Freeze { memtable: i.memtable_full };
        if i.memtable_full || i.buffered_bytes >= self.wal_size_bytes {
            return freeze;
        }
        // A gather is measured from its anchor; without one there is
        // nothing to wait for.
        let gather = |since: Option<Duration>, window: Duration, reason| {
            let until = since?.min(i.now).saturating_add(window);
            (i.now < until).then_some(FreezeStep::Gather { until, reason })
        };
        let Some(urgent_since) = i.urgent_since else {
            return gather(i.buffered_since, self.flush_interval, GatherReason::Interval).unwrap_or(freeze);
        };
        let held = if i.uploads_in_flight == 0 {
            (!i.burst_gathered).then(|| gather(Some(urgent_since), self.burst_gap, GatherReason::Burst)).flatten()
        } else {
            gather(i.last_freeze, self.upload_gather, GatherReason::UploadInFlight)
        };
        held.unwrap_or(freeze)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> FreezePolicy {
        FreezePolicy { wal_size_bytes: 1000, flush_interval: 5 * MS, burst_gap: MS, upload_gather: 100 * MS }
    }

    fn ready(now: Duration) -> FreezeInputs {
        FreezeInputs {
            now,
            buffered_bytes: 10,
            buffered_since: Some(Duration::ZERO),
            window_has_room: true,
            urgent_since: Some(Duration::ZERO),
            burst_gathered: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_lone_durable_write_is_frozen_at_once() {
        assert_eq!(policy().decide(&ready(Duration::ZERO)), FreezeStep::Freeze { memtable: false });
    }

    #[test]
    fn a_burst_gathers_until_complete_or_the_gap() {
        let i = FreezeInputs { burst_gathered: false, ..ready(Duration::ZERO) };
        assert_eq!(policy().decide(&i), FreezeStep::Gather { until: MS, reason: GatherReason::Burst });
        assert_eq!(policy().decide(&FreezeInputs { now: MS, ..i }), FreezeStep::Freeze { memtable: false });
    }

    #[test]
    fn behind_an_upload_the_next_wal_gathers_from_the_last_freeze() {
        let i = FreezeInputs { uploads_in_flight: 1, last_freeze: Some(3 * MS), ..ready(10 * MS) };
        assert_eq!(policy().decide(&i), FreezeStep::Gather { until: 103 * MS, reason: GatherReason::UploadInFlight });
        let full = FreezeInputs { buffered_bytes: 1000, ..i };
        assert_eq!(policy().decide(&full), FreezeStep::Freeze { memtable: false }, "a full buffer never waits");
    }

    #[test]
    fn writes_nobody_awaits_wait_for_the_interval() {
        let i = FreezeInputs { urgent_since: None, buffered_since: Some(2 * MS), ..ready(3 * MS) };
        assert_eq!(policy().decide(&i), FreezeStep::Gather { until: 7 * MS, reason: GatherReason::Interval });
        assert_eq!(policy().decide(&FreezeInputs { now: 7 * MS, ..i }), FreezeStep::Freeze { memtable: false });
    }

    #[test]
    fn nothing_is_frozen_outside_the_window_or_after_a_stop() {
        let i = FreezeInputs { window_has_room: false, buffered_bytes: 5000, ..ready(Duration::ZERO) };
        assert_eq!(policy().decide(&i), FreezeStep::AwaitWindow);
        assert_eq!(policy().decide(&FreezeInputs { stopped: true, ..ready(Duration::ZERO) }), FreezeStep::Idle);
        assert_eq!(policy().decide(&FreezeInputs { buffered_bytes: 0, ..ready(Duration::ZERO) }), FreezeStep::Idle);
        let mem = FreezeInputs { buffered_bytes: 0, memtable_full: true, ..ready(Duration::ZERO) };
        assert_eq!(policy().decide(&mem), FreezeStep::Freeze { memtable: true });
    }

    fn inputs() -> impl Strategy<Value = FreezeInputs> {
        let t = || (0u64..500).prop_map(Duration::from_millis);
        let opt_t = || proptest::option::of((0u64..500).prop_map(Duration::from_millis));
        (
            (t(), any::<bool>(), 0usize..3000, opt_t(), any::<bool>(), any::<bool>()),
            (0usize..5, opt_t(), any::<bool>(), opt_t()),
        )
            .prop_map(|((now, stopped, buffered_bytes, buffered_since, memtable_full, window_has_room), (uploads_in_flight, urgent_since, burst_gathered, last_freeze))| {
                // The flusher's anchors are never in the future, and a
                // non-empty buffer always has one.
                let past = |t: Option<Duration>| t.map(|t| t.min(now));
                let buffered_since = if buffered_bytes > 0 { Some(buffered_since.unwrap_or(now).min(now)) } else { None };
                let (urgent_since, last_freeze) = (past(urgent_since), past(last_freeze));
                FreezeInputs {
                    now,
                    stopped,
                    buffered_bytes,
                    buffered_since,
                    memtable_full,
                    window_has_room,
                    uploads_in_flight,
                    urgent_since,
                    burst_gathered,
                    last_freeze,
                }
            })
    }

    proptest! {
        /// Whatever the inputs: nothing is frozen outside the window or after
        /// a stop; a gather always ends in the future and within its window;
        /// a full buffer or memtable is never held back by a gather.
        #[test]
        fn decisions_respect_the_window_and_the_bounds(i in inputs()) {
            let p = policy();
            let step = p.decide(&i);
            if let FreezeStep::Freeze { memtable } = step {
                prop_assert!(i.window_has_room && !i.stopped);
                prop_assert_eq!(memtable, i.memtable_full);
            }
            if let FreezeStep::Gather { until, reason } = step {
                prop_assert!(until > i.now);
                let longest = match reason {
                    GatherReason::Interval => p.flush_interval,
                    GatherReason::Burst => p.burst_gap,
                    GatherReason::UploadInFlight => p.upload_gather,
                };
                prop_assert!(until <= i.now + longest);
                prop_assert!(i.buffered_bytes < p.wal_size_bytes && !i.memtable_full);
            }
            if i.stopped || (i.buffered_bytes == 0 && !i.memtable_full) {
                prop_assert_eq!(step, FreezeStep::Idle);
            }
        }

        /// Time only moves a decision towards freezing: at a gather's deadline
        /// (nothing else changed) the flusher freezes.
        #[test]
        fn every_gather_ends_in_a_freeze(i in inputs()) {
            let p = policy();
            if let FreezeStep::Gather { until, .. } = p.decide(&i) {
                prop_assert_eq!(p.decide(&FreezeInputs { now: until, ..i }), FreezeStep::Freeze { memtable: false });
            }
        }
    }
}
