//! The block cache and the request counters (issue 11, item 5): with a
//! 64 MiB cache, point reads of warm keys from SSTs, and reads of missing
//! keys, make no store request; with the cache off they do. Requests are
//! counted twice: by `Db::metrics()` and by this test's own wrapper around
//! the store it gives the `Db`, and the two must agree.
#![cfg(not(loom))]

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};
use tidemark::internals::sync::{AtomicU64, Ordering, StdArc};
use tidemark::{Db, Settings, WriteOptions};

const KEYS: u64 = 20_000;
/// Keys `0..IN_RUNS` are written first and compacted into sorted runs; the
/// rest stay in L0.
const IN_RUNS: u64 = 15_000;
const WARM_READS: u64 = 10_000;

fn key(i: u64) -> String {
    format!("key{i:08}")
}

fn value(i: u64) -> Bytes {
    Bytes::from(format!("value-{i:08}-{}", "x".repeat(90)))
}

/// Counts every request, of any kind, independently of tidemark's counter
/// (a delete stream counts each object, as tidemark's does).
#[derive(Debug)]
struct Counted {
    inner: InMemory,
    requests: StdArc<AtomicU64>,
}

impl Counted {
    fn bump(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counted({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Counted {
    tidemark::delegate_object_store!(inner, before |this, _request| {
        this.bump();
    } => put_opts, put_multipart_opts, get_opts, get_ranges, list_with_delimiter, copy_opts, rename_opts);
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let requests = self.requests.clone();
        self.inner.delete_stream(
            locations
                .inspect(move |l| {
                    if l.is_ok() {
                        requests.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .boxed(),
        )
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.bump();
        self.inner.list(prefix)
    }
}

/// One in-memory store, opened as several successive `Db`s, each through a
/// fresh counting wrapper.
struct Store {
    objects: InMemory,
}

impl Store {
    /// A wrapper over the same objects and its counter.
    fn counted(&self) -> (StdArc<dyn ObjectStore>, StdArc<AtomicU64>) {
        let requests = StdArc::new(AtomicU64::new(0));
        // A clone of `InMemory` shares its objects.
        let store = Counted { inner: self.objects.clone(), requests: requests.clone() };
        (StdArc::new(store), requests)
    }
}

fn base() -> Settings {
    Settings::default()
        .with_l0_sst_size_bytes(64 << 10)
        .with_max_unflushed_bytes(1 << 20)
        .with_compacted_sst_size_bytes(256 << 10)
        // No compaction is due in the read phase (trigger at 32 L0 SSTs).
        .with_l0_max_ssts(64)
}

/// Writes keys `range` and closes, checking that tidemark counted exactly
/// the requests the test's wrapper saw, background tasks, compactor and GC
/// included.
async fn load(store: &Store, settings: Settings, range: Range<u64>) -> tidemark::Metrics {
    let (counted, seen) = store.counted();
    let db = Db::open_with("db", counted, settings).await.expect("open");
    let fire = WriteOptions { await_durable: false };
    for i in range {
        db.put_with(key(i), value(i), &fire).await.expect("put");
    }
    db.close().await.expect("close");
    let m = db.metrics();
    assert_eq!(m.requests.total(), seen.load(Ordering::SeqCst), "Db::metrics() missed requests the store saw:\n{m}");
    m
}

/// A database of `KEYS` keys: the first `IN_RUNS` compacted into sorted
/// runs (and GC'd), the rest in L0 SSTs; memtables empty.
async fn loaded() -> Store {
    let store = Store { objects: InMemory::new() };
    let compacted = base().with_l0_max_ssts(4).with_gc_min_age(Duration::ZERO);
    let m = load(&store, compacted, 0..IN_RUNS).await;
    assert!(m.requests.put_create > 0 && m.requests.list > 0 && m.requests.get_range > 0, "{m}");
    assert!(m.requests.delete > 0, "GC at close deletes what compaction replaced, through the counter:\n{m}");
    load(&store, base().with_compactor(false), IN_RUNS..KEYS).await;
    store
}

/// A few thousand distinct pseudo-random key indexes.
fn sample(n: u64) -> impl Iterator<Item = u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % KEYS
    })
}

async fn cold_pass(db: &Db) {
    for i in 0..KEYS {
        assert_eq!(db.get(key(i)).await.expect("get"), Some(value(i)), "{}", key(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_reads_and_misses_make_no_requests() {
    let store = loaded().await;
    let (counted, seen) = store.counted();
    let db = Db::open_with("db", counted, base().with_block_cache_bytes(64 << 20)).await.expect("open");
    let manifest = db.manifest().await;
    assert!(!manifest.l0.is_empty() && !manifest.runs.is_empty(), "reads must cover L0 and a sorted run");

    cold_pass(&db).await;
    let cold = db.metrics();
    assert!(cold.requests.get_range > 0 && cold.block_cache.misses > 0, "the cold pass reads SSTs:\n{cold}");
    assert!(cold.open_ssts > 0 && cold.index_filter_bytes > 0, "{cold}");
    let seen_cold = seen.load(Ordering::SeqCst);

    for i in sample(WARM_READS) {
        assert_eq!(db.get(key(i)).await.expect("get"), Some(value(i)));
    }
    let warm = db.metrics();
    let made = warm.requests.since(&cold.requests);
    assert_eq!(made.total(), 0, "10,000 warm point reads made requests: {made:?}\n{warm}");
    assert_eq!(seen.load(Ordering::SeqCst), seen_cold, "the store saw requests of warm reads");
    assert!(warm.block_cache.hits - cold.block_cache.hits >= WARM_READS, "warm reads hit the cache:\n{warm}");
    assert_eq!(warm.block_cache.misses, cold.block_cache.misses);

    // Misses: keys between existing ones (inside SSTs' key ranges), and
    // outside every SST's range.
    for i in sample(1000) {
        assert_eq!(db.get(format!("{}x", key(i))).await.expect("get"), None);
    }
    assert_eq!(db.get("zzz").await.expect("get"), None);
    assert_eq!(db.get("a").await.expect("get"), None);
    let after = db.metrics();
    assert_eq!(after.requests.since(&warm.requests).total(), 0, "misses made requests:\n{after}");
    assert_eq!(seen.load(Ordering::SeqCst), seen_cold);

    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cache_warm_reads_make_requests_and_the_filter_still_saves_misses() {
    let store = loaded().await;
    let (counted, seen) = store.counted();
    let db = Db::open_with("db", counted, base().with_block_cache_bytes(0)).await.expect("open");
    cold_pass(&db).await;
    let cold = db.metrics();
    let seen_cold = seen.load(Ordering::SeqCst);

    let reads = 1000;
    for i in sample(reads) {
        assert_eq!(db.get(key(i)).await.expect("get"), Some(value(i)));
    }
    let warm = db.metrics();
    let made = warm.requests.since(&cold.requests);
    assert!(made.get_range >= reads, "each uncached point read fetches a block: {made:?}");
    assert_eq!(seen.load(Ordering::SeqCst) - seen_cold, made.total());
    assert_eq!((warm.block_cache.hits, warm.block_cache.bytes, warm.block_cache.entries), (0, 0, 0), "{warm}");

    // Index and filter stay resident without a block cache: a missing key
    // costs a request only when the bloom filter answers "maybe" (~1%).
    let misses = 1000;
    for i in sample(misses) {
        assert_eq!(db.get(format!("{}x", key(i))).await.expect("get"), None);
    }
    let made = db.metrics().requests.since(&warm.requests);
    assert!(made.total() < misses / 20, "{} requests for {misses} missing keys: the filter did not answer", made.total());
    db.close().await.expect("close");
}

#[tokio::test]
async fn metrics_display_as_a_table() {
    let store = Store { objects: InMemory::new() };
    let (counted, _) = store.counted();
    let db = Db::open_with("db", counted, Settings::default()).await.expect("open");
    db.put("k", "v").await.expect("put");
    db.flush().await.expect("flush");
    let m = db.metrics();
    let text = m.to_string();
    println!("{text}");
    let row = |name: &str| {
        text.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|r| r.first() == Some(&name))
            .and_then(|r| r.get(1).and_then(|n| n.parse::<u64>().ok()))
    };
    assert_eq!(row("capacity_bytes"), Some(64 << 20));
    assert_eq!(row("put_create"), Some(m.requests.put_create));
    assert!(m.requests.put_create >= 2, "the epoch claim and the WAL are creates: {m:?}");
    assert_eq!(row("list"), Some(m.requests.list));
    assert_eq!(row("total"), Some(m.requests.total()));
    db.close().await.expect("close");
}
