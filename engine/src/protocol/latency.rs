//! What the store's recent answers say about its latency: a pure estimator
//! over a sliding window of samples, read by the freeze policy (how long a
//! WAL upload takes), the hedge (when a request is late) and the slow-write
//! report (what "slow" means on this store).
//!
//! Policy, not safety: no invariant depends on an estimate. The runtime
//! times its requests and calls [`LatencyEstimator::observe`]; every choice
//! made from the estimate is a pure function of it, so it is tested here
//! without a clock or a store.

use std::collections::VecDeque;
use std::time::Duration;

/// Samples remembered: enough for a p99 (the third-slowest of 256), few
/// enough that the estimate follows the store within seconds under load.
pub const LATENCY_WINDOW: usize = 256;

/// Below this many samples the tail quantiles are not read from the
/// window: of fewer samples a p95 is about their maximum, so one cold-start
/// outlier (a new connection, a TLS handshake) would set it. Until then
/// every quantile above the median is twice the median, which one outlier
/// does not move.
pub const MIN_TAIL_SAMPLES: usize = 16;

/// The quantiles the engine reads, taken at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencySummary {
    pub samples: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p95: Duration,
    pub p99: Duration,
}

impl LatencySummary {
    /// The quantile `q` (0.5, 0.9, 0.95 or 0.99; others round up to the
    /// next of these).
    pub fn quantile(&self, q: f64) -> Duration {
        if q <= 0.5 {
            self.p50
        } else if q <= 0.9 {
            self.p90
        } else if q <= 0.95 {
            self.p95
        } else {
            self.p99
        }
    }
}

/// The recent latencies of one kind of request.
#[derive(Clone, Debug, Default)]
pub struct LatencyEstimator {
    recent: VecDeque<Duration>,
    /// The summary of `recent`, until the next sample.
    cached: Option<LatencySummary>,
    /// `recent` copied for selecting quantiles, kept to reuse its allocation.
    scratch: Vec<Duration>,
}

impl LatencyEstimator {
    pub fn new() -> Self {
        Self { recent: VecDeque::with_capacity(LATENCY_WINDOW), cached: None, scratch: Vec::with_capacity(LATENCY_WINDOW) }
    }

    /// Remembers one answer's latency, forgetting the oldest beyond the window.
    pub fn observe(&mut self, d: Duration) {
        if self.recent.len() == LATENCY_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(d);
        self.cached = None;
    }

    pub fn samples(&self) -> usize {
        self.recent.len()
    }

    /// The recent quantiles, `None` before any sample. Computed once per
    /// sample (the window is sorted then) and kept until the next, so
    /// callers that ask per request pay nothing more.
    pub fn summary(&mut self) -> Option<LatencySummary> {
        if let Some(s) = self.cached {
            return Some(s);
        }
        if self.recent.is_empty() {
            return None;
        }
        self.scratch.clear();
        self.scratch.extend(self.recent.iter().copied());
        self.scratch.sort_unstable();
        let n = self.scratch.len();
        let rank = |q: f64| self.scratch[((n - 1) as f64 * q).round() as usize];
        let p50 = self.scratch[(n - 1) / 2];
        let s = if n < MIN_TAIL_SAMPLES {
            let tail = p50.saturating_mul(2);
            LatencySummary { samples: n, p50, p90: tail, p95: tail, p99: tail }
        } else {
            LatencySummary { samples: n, p50, p90: rank(0.90), p95: rank(0.95), p99: rank(0.99) }
        };
        self.cached = Some(s);
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn no_samples_no_summary() {
        assert_eq!(LatencyEstimator::new().summary(), None);
    }

    #[test]
    fn quantiles_of_a_full_window() {
        let mut e = LatencyEstimator::new();
        for ms in 1..=LATENCY_WINDOW as u32 {
            e.observe(ms * MS);
        }
        let s = e.summary().unwrap();
        assert_eq!(s.p50, 128 * MS);
        assert_eq!(s.p95, 243 * MS);
        assert_eq!(s.p99, 253 * MS);
        assert_eq!(s.samples, LATENCY_WINDOW);
    }

    /// One slow first answer (a cold connection) does not make the tail:
    /// below 16 samples every tail quantile is twice the median.
    #[test]
    fn a_cold_start_outlier_does_not_set_the_tail() {
        let mut e = LatencyEstimator::new();
        e.observe(900 * MS);
        for _ in 0..4 {
            e.observe(5 * MS);
        }
        let s = e.summary().unwrap();
        assert_eq!((s.p50, s.p95, s.p99), (5 * MS, 10 * MS, 10 * MS));
    }

    /// The window slides: a store that got faster is seen as fast once the
    /// old samples are gone.
    #[test]
    fn old_samples_are_forgotten() {
        let mut e = LatencyEstimator::new();
        for _ in 0..LATENCY_WINDOW {
            e.observe(50 * MS);
        }
        assert_eq!(e.summary().unwrap().p99, 50 * MS);
        for _ in 0..LATENCY_WINDOW {
            e.observe(5 * MS);
        }
        assert_eq!(e.summary().unwrap().p99, 5 * MS);
    }

    proptest! {
        /// Whatever the samples: the quantiles are ordered, lie within the
        /// samples' range (or at twice the median while few), and a cached
        /// summary equals a fresh one.
        #[test]
        fn quantiles_are_ordered_and_within_the_samples(samples in proptest::collection::vec(0u64..10_000, 1..600)) {
            let mut e = LatencyEstimator::new();
            for &us in &samples {
                e.observe(Duration::from_micros(us));
            }
            let s = e.summary().unwrap();
            prop_assert!(s.p50 <= s.p90 && s.p90 <= s.p95 && s.p95 <= s.p99);
            let window: Vec<u64> = samples.iter().rev().take(LATENCY_WINDOW).copied().collect();
            let (lo, hi) = (*window.iter().min().unwrap(), *window.iter().max().unwrap());
            prop_assert!(s.p50 >= Duration::from_micros(lo) && s.p50 <= Duration::from_micros(hi));
            if window.len() >= MIN_TAIL_SAMPLES {
                prop_assert!(s.p99 <= Duration::from_micros(hi));
            } else {
                prop_assert_eq!(s.p99, s.p50 * 2);
            }
            let mut fresh = LatencyEstimator::new();
            window.iter().rev().for_each(|&us| fresh.observe(Duration::from_micros(us)));
            prop_assert_eq!(fresh.summary(), Some(s));
            prop_assert_eq!(e.summary(), Some(s), "asked again");
            prop_assert_eq!(s.samples, window.len());
        }
    }
}
