//! Hedged requests: when a create or a read has not answered after a recent
//! quantile of its kind's latencies (`protocol::LatencyEstimator`; p95 at
//! the default budget), a second identical request is sent and the first
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
//! off (`HedgeSettings::off()`).

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{select, Either};
use futures::FutureExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ObjectStore, PutMode, PutOptions, PutPayload, PutResult, Result,
};
use serde::Serialize;
// tokio's clock, not std's: on a paused runtime (the crash harness) a
// request's latency is the simulated one, so a seed replays the same hedges.
use tokio::time::Instant;

use crate::protocol::LatencyEstimator;
use crate::sync::{lock, AtomicU64, Mutex, Ordering, StdArc};

/// Hedges that may be sent back to back before the budget refills; the
/// bucket starts full, so the first slow requests of a process can be
/// hedged before many requests have earned a hedge.
const MAX_TOKENS: u64 = 8;
/// The budget is kept in thousandths of a hedge, so that ten requests at
/// 10 % earn exactly one (no floating-point drift).
const MILLI: u64 = 1000;

/// When and how often to hedge creates and reads
/// ([`Settings::with_hedge`](crate::Settings::with_hedge)): a second
/// identical request once the first is slower than a recent quantile of its
/// kind (p95 at the default budget), within that budget, so one slow WAL
/// upload does not hold back every acknowledgement behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgeSettings {
    /// Extra requests allowed, as a fraction of the requests of each kind
    /// (0.1 = at most about 10 % more). Zero switches hedging off. It also
    /// sets when to hedge: at the recent `1 - budget / 2` quantile of the
    /// kind (p95 at 10 %), so that about half the budget is spent on a
    /// steady store and the rest is there for a slow spell.
    pub budget: f64,
    /// The hedge delay is that quantile, but at least this: a request a
    /// local disk or memory answers is not worth a second one (and holds a
    /// second buffer while it runs), and a timer cannot fire much sooner.
    /// Below a fast object store's p95 (about 9 ms on S3 Express One Zone) ...
    pub min_delay: Duration,
    /// ... and at most this (the delay before any request was timed).
    pub max_delay: Duration,
}

impl Default for HedgeSettings {
    fn default() -> Self {
        Self { budget: 0.1, min_delay: Duration::from_millis(5), max_delay: Duration::from_millis(500) }
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

    /// The quantile of the recent latencies after which a request is hedged.
    pub fn quantile(&self) -> f64 {
        (1.0 - self.budget / 2.0).clamp(0.5, 0.99)
    }

    /// How long to wait before hedging a request of a kind whose recent
    /// latencies `estimate` holds: its [`quantile`](Self::quantile),
    /// clamped; the cap before any answer was timed.
    pub fn delay(&self, estimate: &mut LatencyEstimator) -> Duration {
        match estimate.summary() {
            None => self.max_delay,
            Some(s) => s.quantile(self.quantile()).clamp(self.min_delay, self.max_delay),
        }
    }
}

/// Hedges sent and won, per kind.
#[derive(Debug, Default)]
pub struct HedgeStats {
    creates: AtomicU64,
    create_hedges: AtomicU64,
    create_hedges_won: AtomicU64,
    create_hedges_denied: AtomicU64,
    reads: AtomicU64,
    read_hedges: AtomicU64,
    read_hedges_won: AtomicU64,
    read_hedges_denied: AtomicU64,
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
    /// Slow creates not hedged because the budget was spent.
    pub create_hedges_denied: u64,
    /// Reads asked for (not counting hedges).
    pub reads: u64,
    /// Second attempts sent for slow reads.
    pub read_hedges: u64,
    /// Of those, the ones that answered first.
    pub read_hedges_won: u64,
    /// Slow reads not hedged because the budget was spent.
    pub read_hedges_denied: u64,
}

impl HedgeStats {
    /// The counts now.
    pub fn counts(&self) -> HedgeCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HedgeCounts {
            creates: get(&self.creates),
            create_hedges: get(&self.create_hedges),
            create_hedges_won: get(&self.create_hedges_won),
            create_hedges_denied: get(&self.create_hedges_denied),
            reads: get(&self.reads),
            read_hedges: get(&self.read_hedges),
            read_hedges_won: get(&self.read_hedges_won),
            read_hedges_denied: get(&self.read_hedges_denied),
        }
    }
}

/// The recent latencies of one kind of request and its hedge budget.
#[derive(Debug)]
struct Tracker {
    recent: LatencyEstimator,
    /// Thousandths of a hedge.
    tokens: u64,
}

impl Tracker {
    fn new() -> Self {
        Self { recent: LatencyEstimator::new(), tokens: MAX_TOKENS * MILLI }
    }

    fn observe(&mut self, d: Duration) {
        self.recent.observe(d);
    }

    fn delay(&mut self, s: &HedgeSettings) -> Duration {
        s.delay(&mut self.recent)
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
        Self::with_stats(inner, settings, StdArc::new(HedgeStats::default()))
    }

    /// Counts into `stats`, which other stores may share; the latencies and
    /// the budget stay this store's own.
    pub fn with_stats(inner: StdArc<dyn ObjectStore>, settings: HedgeSettings, stats: StdArc<HedgeStats>) -> Self {
        Self {
            inner,
            settings,
            creates_under: None,
            creates: Mutex::new(Tracker::new()),
            reads: Mutex::new(Tracker::new()),
            stats,
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

    fn counters(&self, kind: Kind) -> (&AtomicU64, &AtomicU64, &AtomicU64, &AtomicU64) {
        let s = &self.stats;
        match kind {
            Kind::Create => (&s.creates, &s.create_hedges, &s.create_hedges_won, &s.create_hedges_denied),
            Kind::Read => (&s.reads, &s.read_hedges, &s.read_hedges_won, &s.read_hedges_denied),
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
        let (asked, hedges, won, denied) = self.counters(kind);
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
            denied.fetch_add(1, Ordering::Relaxed);
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

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_delay_is_the_recent_quantile_of_the_budget_clamped() {
        let s = HedgeSettings { budget: 0.1, min_delay: 2 * MS, max_delay: 500 * MS };
        assert_eq!(s.quantile(), 0.95);
        let mut t = Tracker::new();
        assert_eq!(t.delay(&s), s.max_delay, "no distribution yet");
        for ms in 1..=100 {
            t.observe(ms * MS);
        }
        assert_eq!(t.delay(&s), 95 * MS);
        let wider = HedgeSettings { budget: 0.2, ..s };
        assert_eq!(t.delay(&wider), 90 * MS, "a larger budget hedges sooner");
        for _ in 0..crate::protocol::LATENCY_WINDOW {
            t.observe(MS / 2);
        }
        assert_eq!(t.delay(&s), s.min_delay);
    }

    /// On a store that answers in about 5 ms the hedge comes after about
    /// 9 ms (its p95), not after a floor tuned for a slower store.
    #[test]
    fn a_fast_store_is_hedged_at_its_own_p95() {
        let s = HedgeSettings::default();
        let mut t = Tracker::new();
        for i in 0..200u32 {
            t.observe(if i % 10 == 0 { 9 * MS } else { 5 * MS });
        }
        assert_eq!(t.delay(&s), 9 * MS);
    }

    /// Before 16 answers the delay is twice their median: a straggler among
    /// the first requests does not push it to the cap, and neither does one
    /// cold-start outlier among the samples.
    #[test]
    fn the_first_answers_set_the_delay_by_their_median() {
        let s = HedgeSettings::default();
        let mut t = Tracker::new();
        assert_eq!(t.delay(&s), s.max_delay, "no answer timed yet");
        t.observe(900 * MS);
        for _ in 0..4 {
            t.observe(50 * MS);
        }
        assert_eq!(t.delay(&s), 100 * MS);
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
