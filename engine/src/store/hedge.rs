//! Hedged requests: when a create or a read has not answered after the
//! recent p95 of its kind, a second identical request is sent and the first
//! answer wins.
//!
//! The durable watermark is a contiguous prefix, so one straggling WAL upload
//! holds back every acknowledgement behind it; S3's own guidance is to retry
//! slow requests early. A hedged create is safe because of how tidemark
//! already settles `AlreadyExists`: both attempts carry the same bytes and
//! owner token, so whichever lands, the other's `AlreadyExists` (or S3's 409
//! for concurrent conditional writes) is read back and resolved as ours by
//! `protocol::resolve_create_conflict` (spec §4, "Hedged creates"). Only
//! creates (`PutMode::Create`) and reads are hedged: overwrites and
//! conditional updates are not idempotent. Hedges are bounded by a budget
//! (a fraction of the requests of the kind), counted, and can be switched
//! off (`Settings::hedge_budget = 0`).

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{select, Either};
use futures::FutureExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ObjectStore, PutMode, PutOptions, PutPayload, PutResult, Result,
};
use serde::Serialize;

use crate::sync::{lock, AtomicU64, Mutex, Ordering, StdArc};

/// Latencies remembered per kind of request.
const WINDOW: usize = 256;
/// Below this many samples the p95 is not used: of fewer samples it is
/// about their maximum, so one cold-start outlier (a new connection, a TLS
/// handshake) would set it. Until then the delay is twice their median,
/// which one outlier does not move (and the cap before any answer): a
/// straggler among the first requests is hedged like any other instead of
/// holding every acknowledgement for the cap (a 544 ms p99 on `s3-tail`).
const MIN_SAMPLES: usize = 16;
/// Hedges that may be sent back to back before the budget refills; the
/// bucket starts full, so the first slow requests of a process can be
/// hedged before many requests have earned a hedge.
const MAX_TOKENS: u64 = 8;
/// The budget is kept in thousandths of a hedge, so that ten requests at
/// 10 % earn exactly one (no floating-point drift).
const MILLI: u64 = 1000;

/// When and how often to hedge creates and reads
/// ([`Settings::with_hedge`](crate::Settings::with_hedge)): a second
/// identical request once the first is slower than the recent p95 of its
/// kind, within a budget, so one slow WAL upload does not hold back every
/// acknowledgement behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgeSettings {
    /// Extra requests allowed, as a fraction of the requests of each kind
    /// (0.1 = at most about 10 % more). Zero switches hedging off.
    pub budget: f64,
    /// The hedge delay is the recent p95 of the kind, but at least this ...
    pub min_delay: Duration,
    /// ... and at most this.
    pub max_delay: Duration,
}

impl Default for HedgeSettings {
    fn default() -> Self {
        Self { budget: 0.1, min_delay: Duration::from_millis(20), max_delay: Duration::from_millis(500) }
    }
}

impl HedgeSettings {
    /// No hedging.
    pub fn off() -> Self {
        Self { budget: 0.0, ..Self::default() }
    }

    /// Whether any hedge may be sent (a budget above zero).
    pub fn is_on(&self) -> bool {
        self.budget > 0.0
    }
}

/// Hedges sent and won, per kind.
#[derive(Debug, Default)]
pub struct HedgeStats {
    creates: AtomicU64,
    create_hedges: AtomicU64,
    create_hedges_won: AtomicU64,
    reads: AtomicU64,
    read_hedges: AtomicU64,
    read_hedges_won: AtomicU64,
}

/// Hedged requests so far, at one moment ([`Metrics::hedges`](crate::Metrics::hedges)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HedgeCounts {
    /// Creates asked for (not counting hedges).
    pub creates: u64,
    /// Second attempts sent for slow creates.
    pub create_hedges: u64,
    /// Of those, the ones that answered first.
    pub create_hedges_won: u64,
    /// Reads asked for (not counting hedges).
    pub reads: u64,
    /// Second attempts sent for slow reads.
    pub read_hedges: u64,
    /// Of those, the ones that answered first.
    pub read_hedges_won: u64,
}

impl HedgeStats {
    /// The counts now.
    pub fn counts(&self) -> HedgeCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HedgeCounts {
            creates: get(&self.creates),
            create_hedges: get(&self.create_hedges),
            create_hedges_won: get(&self.create_hedges_won),
            reads: get(&self.reads),
            read_hedges: get(&self.read_hedges),
            read_hedges_won: get(&self.read_hedges_won),
        }
    }
}

/// The recent latencies of one kind of request and its hedge budget.
#[derive(Debug)]
struct Tracker {
    recent: VecDeque<Duration>,
    /// The p95 of `recent`, until the next sample (`delay`).
    p95: Option<Duration>,
    /// `recent` copied for selecting the p95, kept to reuse its allocation.
    scratch: Vec<Duration>,
    /// Thousandths of a hedge.
    tokens: u64,
}

impl Tracker {
    fn new() -> Self {
        Self { recent: VecDeque::with_capacity(WINDOW), p95: None, scratch: Vec::with_capacity(WINDOW), tokens: MAX_TOKENS * MILLI }
    }

    fn observe(&mut self, d: Duration) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(d);
        self.p95 = None;
    }

    /// How long to wait before hedging: the recent p95, clamped. Every
    /// hedged request asks, so the p95 is selected in linear time (not
    /// sorted) and kept until the next sample.
    fn delay(&mut self, s: &HedgeSettings) -> Duration {
        if self.recent.is_empty() {
            return s.max_delay;
        }
        let p95 = match self.p95 {
            Some(p95) => p95,
            None => {
                self.scratch.clear();
                self.scratch.extend(self.recent.iter().copied());
                let p95 = if self.scratch.len() < MIN_SAMPLES {
                    let rank = (self.scratch.len() - 1) / 2;
                    self.scratch.select_nth_unstable(rank).1.saturating_mul(2)
                } else {
                    let rank = (self.scratch.len() - 1) * 95 / 100;
                    *self.scratch.select_nth_unstable(rank).1
                };
                self.p95 = Some(p95);
                p95
            }
        };
        p95.clamp(s.min_delay, s.max_delay)
    }

    /// Every request earns `budget` of a hedge; a hedge spends a whole one.
    fn earn(&mut self, s: &HedgeSettings) {
        let earned = (s.budget.clamp(0.0, 1.0) * MILLI as f64).round() as u64;
        self.tokens = (self.tokens + earned).min(MAX_TOKENS * MILLI);
    }

    fn try_spend(&mut self) -> bool {
        if self.tokens >= MILLI {
            self.tokens -= MILLI;
            true
        } else {
            false
        }
    }
}

/// Which tracker a request belongs to.
#[derive(Clone, Copy)]
enum Kind {
    Create,
    Read,
}

/// An `ObjectStore` that hedges slow creates and reads (see the module doc).
/// Everything else passes through.
pub struct HedgeStore {
    inner: StdArc<dyn ObjectStore>,
    settings: HedgeSettings,
    /// Creates are hedged only under this prefix (the WAL directory: WAL
    /// uploads hold back acknowledgements; manifest and fence creates do
    /// not, and their ambiguous outcomes are settled by other paths).
    creates_under: Option<Path>,
    creates: Mutex<Tracker>,
    reads: Mutex<Tracker>,
    stats: StdArc<HedgeStats>,
    /// Mutant `hedge-exists-is-ours` (`Settings::hedge_exists_is_ours`).
    #[cfg(feature = "mutants")]
    exists_is_ours: bool,
}

impl HedgeStore {
    /// Hedges the reads and creates of `inner` as `settings` say (creates
    /// under one prefix only, with [`HedgeStore::creates_under`]).
    pub fn new(inner: StdArc<dyn ObjectStore>, settings: HedgeSettings) -> Self {
        Self {
            inner,
            settings,
            creates_under: None,
            creates: Mutex::new(Tracker::new()),
            reads: Mutex::new(Tracker::new()),
            stats: StdArc::new(HedgeStats::default()),
            #[cfg(feature = "mutants")]
            exists_is_ours: false,
        }
    }

    /// Mutant `hedge-exists-is-ours`: a hedged create answered
    /// `AlreadyExists` reports success without the read-back.
    #[cfg(feature = "mutants")]
    pub fn exists_is_ours(mut self, on: bool) -> Self {
        self.exists_is_ours = on;
        self
    }

    /// The answer of a create: as the store gave it, except under the
    /// `hedge-exists-is-ours` mutant, which takes the `AlreadyExists` of a
    /// hedged create as its other attempt's success.
    fn create_answer(&self, r: Result<PutResult>, hedge_sent: bool) -> Result<PutResult> {
        #[cfg(feature = "mutants")]
        if self.exists_is_ours && hedge_sent && matches!(r, Err(object_store::Error::AlreadyExists { .. })) {
            return Ok(PutResult { e_tag: None, version: None, extensions: Default::default() });
        }
        let _ = hedge_sent;
        r
    }

    /// Hedges only the creates under `prefix` (all creates without it).
    pub fn creates_under(mut self, prefix: Path) -> Self {
        self.creates_under = Some(prefix);
        self
    }

    /// The counters, shared: they outlive the store for `Db::metrics()`.
    pub fn stats(&self) -> StdArc<HedgeStats> {
        self.stats.clone()
    }

    fn tracker(&self, kind: Kind) -> &Mutex<Tracker> {
        match kind {
            Kind::Create => &self.creates,
            Kind::Read => &self.reads,
        }
    }

    fn counters(&self, kind: Kind) -> (&AtomicU64, &AtomicU64, &AtomicU64) {
        let s = &self.stats;
        match kind {
            Kind::Create => (&s.creates, &s.create_hedges, &s.create_hedges_won),
            Kind::Read => (&s.reads, &s.read_hedges, &s.read_hedges_won),
        }
    }

    /// Runs `attempt` once; if it has not answered after the hedge delay and
    /// the budget allows, runs it a second time and returns the first
    /// success. An error is returned only once no attempt can succeed, except
    /// `AlreadyExists`, returned at once: it means the object exists now
    /// (possibly from the other attempt), and the caller reads it back.
    /// Also says whether a hedge was sent.
    async fn hedged<T, F, Fut>(&self, kind: Kind, attempt: F) -> (Result<T>, bool)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>> + Send,
    {
        let (asked, hedges, won) = self.counters(kind);
        asked.fetch_add(1, Ordering::Relaxed);
        if !self.settings.is_on() {
            return (attempt().await, false);
        }
        let delay = {
            let mut t = lock(self.tracker(kind));
            t.earn(&self.settings);
            t.delay(&self.settings)
        };
        let started = Instant::now();
        let mut first = Box::pin(attempt().map(move |r| (r, started.elapsed())));
        let timer = Box::pin(tokio::time::sleep(delay));
        let first = match select(first.as_mut(), timer).await {
            Either::Left(((r, took), _)) => return (self.settled(kind, r, took), false),
            Either::Right(((), _)) => first,
        };
        if !lock(self.tracker(kind)).try_spend() {
            let (r, took) = first.await;
            return (self.settled(kind, r, took), false);
        }
        hedges.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(?delay, "hedging a slow request");
        let hedge_started = Instant::now();
        let second = Box::pin(attempt().map(move |r| (r, hedge_started.elapsed())));
        let r = match select(first, second).await {
            Either::Left(((r, took), second)) => match r {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => self.settled(kind, r, took),
                Err(_) => {
                    let (r2, took2) = second.await;
                    if r2.is_ok() {
                        won.fetch_add(1, Ordering::Relaxed);
                    }
                    self.settled(kind, r2, took2)
                }
            },
            Either::Right(((r, took), first)) => match r {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {
                    won.fetch_add(1, Ordering::Relaxed);
                    self.settled(kind, r, took)
                }
                Err(_) => {
                    let (r1, took1) = first.await;
                    self.settled(kind, r1, took1)
                }
            },
        };
        (r, true)
    }

    /// Records the latency of an answer (successes only: an error says
    /// nothing about how long a request takes).
    fn settled<T>(&self, kind: Kind, r: Result<T>, took: Duration) -> Result<T> {
        if r.is_ok() {
            lock(self.tracker(kind)).observe(took);
        }
        r
    }
}

impl fmt::Debug for HedgeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HedgeStore({}, {:?})", self.inner, self.settings)
    }
}

impl fmt::Display for HedgeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HedgeStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for HedgeStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let under = self.creates_under.as_ref().is_none_or(|p| location.prefix_matches(p));
        if !matches!(opts.mode, PutMode::Create) || !under {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let (r, hedge_sent) = self.hedged(Kind::Create, || self.inner.put_opts(location, payload.clone(), opts.clone())).await;
        self.create_answer(r, hedge_sent)
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.hedged(Kind::Read, || self.inner.get_opts(location, options.clone())).await.0
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.hedged(Kind::Read, || self.inner.get_ranges(location, ranges)).await.0
    }

    crate::delegate_object_store!(inner =>
        put_multipart_opts, delete_stream, list, list_with_delimiter, copy_opts, rename_opts);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_delay_is_the_recent_p95_clamped() {
        let s = HedgeSettings { budget: 0.1, min_delay: Duration::from_millis(20), max_delay: Duration::from_millis(500) };
        let mut t = Tracker::new();
        assert_eq!(t.delay(&s), s.max_delay, "no distribution yet");
        for ms in 1..=100 {
            t.observe(Duration::from_millis(ms));
        }
        assert_eq!(t.delay(&s), Duration::from_millis(95));
        for _ in 0..WINDOW {
            t.observe(Duration::from_millis(1));
        }
        assert_eq!(t.delay(&s), s.min_delay);
    }

    /// Before 16 answers the delay is twice their median: a straggler among
    /// the first requests does not push it to the cap, and neither does one
    /// cold-start outlier among the samples.
    #[test]
    fn the_first_answers_set_the_delay_by_their_median() {
        let s = HedgeSettings::default();
        let mut t = Tracker::new();
        assert_eq!(t.delay(&s), s.max_delay, "no answer timed yet");
        t.observe(Duration::from_millis(900));
        for _ in 0..4 {
            t.observe(Duration::from_millis(50));
        }
        assert_eq!(t.delay(&s), Duration::from_millis(100));
    }

    /// The selected p95 is the sorted one's, after every sample, as the
    /// window fills and slides (a wrong rank or a stale cached value fails).
    #[test]
    fn the_delay_is_the_p95_of_the_sorted_window() {
        let s = HedgeSettings { budget: 0.1, min_delay: Duration::ZERO, max_delay: Duration::MAX };
        let mut t = Tracker::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for i in 0..3 * WINDOW {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t.observe(Duration::from_micros(x % 10_000));
            let mut sorted: Vec<Duration> = t.recent.iter().copied().collect();
            sorted.sort_unstable();
            let want = if sorted.len() < MIN_SAMPLES {
                (sorted[(sorted.len() - 1) / 2] * 2).clamp(s.min_delay, s.max_delay)
            } else {
                sorted[(sorted.len() - 1) * 95 / 100].clamp(s.min_delay, s.max_delay)
            };
            assert_eq!(t.delay(&s), want, "after sample {i}");
            assert_eq!(t.delay(&s), want, "asked again after sample {i}");
        }
    }

    #[test]
    fn the_budget_earns_a_fraction_per_request() {
        let s = HedgeSettings::default();
        let mut t = Tracker::new();
        for i in 0..MAX_TOKENS {
            assert!(t.try_spend(), "the bucket starts full: hedge {i}");
        }
        assert!(!t.try_spend());
        for _ in 0..10 {
            t.earn(&s);
        }
        assert!(t.try_spend(), "ten requests earn one hedge at 10 %");
    }
}
