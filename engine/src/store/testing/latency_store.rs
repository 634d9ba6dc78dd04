//! An [`ObjectStore`] wrapper that makes every request take time drawn from a
//! distribution, as a remote object store does.
//!
//! A constant latency flatters pipelining: every upload started together
//! completes together. Real stores have a lognormal-looking body and rare
//! stragglers many times the median, and one straggling WAL upload holds
//! back every acknowledgement behind it. [`Latency::Tail`] draws each
//! request's latency from a seeded lognormal body (given by its p50 and p99)
//! plus a share of stragglers that take a fixed long time. The delay comes
//! before the request reaches the inner store, so a straggling create lands
//! late, as it would on S3.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};

use crate::store::wrap::Request;
use crate::sync::{lock, AtomicU64, Mutex, Ordering, StdArc as Arc};

/// The z-score of the 99th percentile of a standard normal distribution.
const Z_P99: f64 = 2.326_347_874;

/// How long each request takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Every request takes exactly this long.
    Constant(Duration),
    /// A lognormal body with the given median and 99th percentile, plus a
    /// share (0.0..1.0) of stragglers that each take `straggler`.
    Tail {
        /// The body's median.
        p50: Duration,
        /// The body's 99th percentile (at least `p50`).
        p99: Duration,
        /// The share of requests that straggle, within 0..=1.
        straggler_share: f64,
        /// How long a straggler takes.
        straggler: Duration,
    },
}

impl Latency {
    /// The `s3-tail` defaults of the benchmark: p50 50 ms, p99 120 ms,
    /// 0.5 % stragglers of 1 s.
    pub fn s3_tail() -> Self {
        Latency::Tail {
            p50: Duration::from_millis(50),
            p99: Duration::from_millis(120),
            straggler_share: 0.005,
            straggler: Duration::from_secs(1),
        }
    }

    /// The `s3-express` shape of the benchmark (a low-latency, single-zone
    /// store such as S3 Express One Zone): p50 5 ms, p99 12 ms, 0.1 %
    /// stragglers of 100 ms.
    pub fn s3_express() -> Self {
        Latency::Tail {
            p50: Duration::from_millis(5),
            p99: Duration::from_millis(12),
            straggler_share: 0.001,
            straggler: Duration::from_millis(100),
        }
    }
}

/// Draws latencies from a [`Latency`], seeded so a run can be repeated.
pub struct LatencySampler {
    latency: Latency,
    body: Option<LogNormal<f64>>,
    rng: StdRng,
}

impl LatencySampler {
    /// Panics only on a p99 below the p50 or a share outside 0..=1, which are
    /// programming errors of the caller (the bench validates its flags).
    pub fn new(latency: Latency, seed: u64) -> Self {
        let body = match latency {
            Latency::Constant(_) => None,
            Latency::Tail { p50, p99, straggler_share, .. } => {
                assert!(p99 >= p50 && p50 > Duration::ZERO, "latency: need 0 < p50 <= p99");
                assert!((0.0..=1.0).contains(&straggler_share), "latency: straggler share must be within 0..=1");
                let mu = p50.as_secs_f64().ln();
                let sigma = (p99.as_secs_f64() / p50.as_secs_f64()).ln() / Z_P99;
                Some(LogNormal::new(mu, sigma).expect("mu finite and sigma >= 0"))
            }
        };
        Self { latency, body, rng: StdRng::seed_from_u64(seed) }
    }

    /// The latency of the next request, and whether it is a straggler.
    pub fn sample(&mut self) -> (Duration, bool) {
        match (self.latency, &self.body) {
            (Latency::Constant(d), _) => (d, false),
            (Latency::Tail { straggler_share, straggler, .. }, Some(body)) => {
                if self.rng.random_bool(straggler_share) {
                    (straggler, true)
                } else {
                    (Duration::from_secs_f64(body.sample(&mut self.rng)), false)
                }
            }
            (Latency::Tail { .. }, None) => unreachable!("a tail latency always has a body"),
        }
    }
}

/// Requests by kind, as a bill counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// PUTs (creates, overwrites, conditional updates, copies).
    pub puts: u64,
    /// GETs (whole objects and ranges).
    pub gets: u64,
    /// Listings.
    pub lists: u64,
    /// Deletes (each object of a delete stream).
    pub deletes: u64,
}

#[derive(Clone, Copy)]
enum Kind {
    Put,
    Get,
    List,
    Delete,
}

/// Makes every request to `inner` wait a drawn latency first.
#[derive(Clone)]
pub struct LatencyStore {
    inner: Arc<dyn ObjectStore>,
    sampler: Arc<Mutex<LatencySampler>>,
    stragglers: Arc<AtomicU64>,
    counts: Arc<[AtomicU64; 4]>,
}

impl LatencyStore {
    /// `inner` behind latencies drawn from `latency`, seeded with `seed` so
    /// a run can be repeated.
    pub fn new(inner: Arc<dyn ObjectStore>, latency: Latency, seed: u64) -> Self {
        Self {
            inner,
            sampler: Arc::new(Mutex::new(LatencySampler::new(latency, seed))),
            stragglers: Arc::new(AtomicU64::new(0)),
            counts: Arc::new(Default::default()),
        }
    }

    /// Requests that drew a straggler so far.
    pub fn stragglers(&self) -> u64 {
        self.stragglers.load(Ordering::Relaxed)
    }

    /// Requests so far, by kind.
    pub fn counts(&self) -> RequestCounts {
        let get = |k: Kind| self.counts[k as usize].load(Ordering::Relaxed);
        RequestCounts { puts: get(Kind::Put), gets: get(Kind::Get), lists: get(Kind::List), deletes: get(Kind::Delete) }
    }

    fn next_delay(&self, kind: Kind) -> Duration {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
        let (d, straggler) = lock(&self.sampler).sample();
        if straggler {
            self.stragglers.fetch_add(1, Ordering::Relaxed);
        }
        d
    }

    async fn wait(&self, kind: Kind) {
        tokio::time::sleep(self.next_delay(kind)).await;
    }
}

impl fmt::Debug for LatencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LatencyStore({})", self.inner)
    }
}

impl fmt::Display for LatencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LatencyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LatencyStore {
    crate::delegate_object_store!(inner, before |this, request| {
        this.wait(match request {
            Request::Get { .. } | Request::GetRanges { .. } => Kind::Get,
            Request::ListWithDelimiter { .. } => Kind::List,
            Request::Put { .. } | Request::PutMultipart { .. } | Request::Copy { .. } | Request::Rename { .. } => Kind::Put,
        })
        .await;
    } => put_opts, put_multipart_opts, get_opts, get_ranges, list_with_delimiter, copy_opts, rename_opts);

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let this = self.clone();
        locations
            .then(move |path| {
                let this = this.clone();
                async move {
                    let path = path?;
                    this.wait(Kind::Delete).await;
                    let mut out = this.inner.delete_stream(stream::iter([Ok(path.clone())]).boxed());
                    out.next().await.unwrap_or(Ok(path))
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let delay = self.next_delay(Kind::List);
        let inner = self.inner.clone();
        let prefix = prefix.cloned();
        stream::once(async move {
            tokio::time::sleep(delay).await;
            inner.list(prefix.as_ref())
        })
        .flatten()
        .boxed()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn percentile(sorted: &[Duration], q: f64) -> Duration {
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }

    #[test]
    fn tail_sampler_has_the_asked_median_p99_and_straggler_share() {
        let mut s = LatencySampler::new(Latency::s3_tail(), 7);
        let (mut body, mut stragglers) = (Vec::new(), 0u32);
        for _ in 0..200_000 {
            match s.sample() {
                (_, true) => stragglers += 1,
                (d, false) => body.push(d),
            }
        }
        body.sort();
        let p50 = percentile(&body, 0.50).as_secs_f64() * 1e3;
        let p99 = percentile(&body, 0.99).as_secs_f64() * 1e3;
        assert!((48.0..52.0).contains(&p50), "p50 {p50} ms");
        assert!((114.0..126.0).contains(&p99), "p99 {p99} ms");
        // 0.5 % of 200,000 is 1,000; the binomial sd is about 32.
        assert!((850..1150).contains(&stragglers), "{stragglers} stragglers");
    }

    #[test]
    fn same_seed_same_latencies() {
        let draw = |seed| {
            let mut s = LatencySampler::new(Latency::s3_tail(), seed);
            (0..100).map(|_| s.sample().0).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
