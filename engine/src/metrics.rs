//! What a database costs: block cache figures and object-store requests by
//! kind, as [`Db::metrics`](crate::Db::metrics) reports them.
//!
//! Requests are counted by [`CountingStore`], an `ObjectStore` wrapper in
//! the style of object_store's own. Every `Db` wraps the store it is given
//! in one, *inside* its `RetryStore`: each attempt of a retried request is
//! counted, since each is a request the store bills. Every request the `Db`
//! makes (writes, reads, recovery, the background flushers, the compactor
//! and GC) goes through `DbInner::store`, so through the counter.

use std::fmt;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, PutMode, Result};
use serde::Serialize;

use crate::cache::BlockCacheStats;
use crate::store_wrap::Request;
use crate::sync::{AtomicU64, Ordering, StdArc};

/// Store requests by kind. A multi-range read (`get_ranges`) counts once
/// under `get_range`; a delete stream counts each object it deletes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreRequests {
    /// Whole-object GETs (WALs, manifests).
    pub get: u64,
    /// Ranged GETs (SST tails and blocks).
    pub get_range: u64,
    pub head: u64,
    /// Unconditional PUTs (`PutMode::Overwrite`; SSTs).
    pub put: u64,
    /// Create-if-absent PUTs (`PutMode::Create`; WALs, fences, manifests).
    pub put_create: u64,
    /// Conditional updates (`PutMode::Update`).
    pub conditional_update: u64,
    /// Multipart uploads started.
    pub multipart: u64,
    /// Listings (`list`, `list_with_offset`, `list_with_delimiter`).
    pub list: u64,
    pub delete: u64,
    /// Copies and renames.
    pub copy: u64,
}

impl StoreRequests {
    fn kinds(&self) -> [(&'static str, u64); 10] {
        [
            ("get", self.get),
            ("get_range", self.get_range),
            ("head", self.head),
            ("put", self.put),
            ("put_create", self.put_create),
            ("conditional_update", self.conditional_update),
            ("multipart", self.multipart),
            ("list", self.list),
            ("delete", self.delete),
            ("copy", self.copy),
        ]
    }

    /// Every request, of any kind.
    pub fn total(&self) -> u64 {
        self.kinds().iter().map(|(_, n)| n).sum()
    }

    /// Reads of object bytes or metadata (`get`, `get_range`, `head`).
    pub fn reads(&self) -> u64 {
        self.get + self.get_range + self.head
    }

    /// The requests made since `earlier` was taken (counters only grow).
    pub fn since(&self, earlier: &StoreRequests) -> StoreRequests {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        StoreRequests {
            get: d(self.get, earlier.get),
            get_range: d(self.get_range, earlier.get_range),
            head: d(self.head, earlier.head),
            put: d(self.put, earlier.put),
            put_create: d(self.put_create, earlier.put_create),
            conditional_update: d(self.conditional_update, earlier.conditional_update),
            multipart: d(self.multipart, earlier.multipart),
            list: d(self.list, earlier.list),
            delete: d(self.delete, earlier.delete),
            copy: d(self.copy, earlier.copy),
        }
    }
}

/// A database's metrics at one moment (`Db::metrics`). `Display` prints a
/// table; `Serialize` gives the same figures to a metrics pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Metrics {
    pub block_cache: BlockCacheStats,
    /// SSTs of the current tree whose index and filter are in memory.
    pub open_ssts: u64,
    /// Bytes of those indexes and filters (resident, outside the cache budget).
    pub index_filter_bytes: u64,
    /// Requests made to the store since the database was opened.
    pub requests: StoreRequests,
    /// Hedged creates and reads (`Settings::hedge`); their second attempts
    /// are among `requests`.
    pub hedges: crate::hedge::HedgeCounts,
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.block_cache;
        let lookups = c.hits + c.misses;
        writeln!(f, "block cache")?;
        writeln!(f, "  {:<20} {:>14}", "capacity_bytes", c.capacity_bytes)?;
        writeln!(f, "  {:<20} {:>14}", "hits", c.hits)?;
        writeln!(f, "  {:<20} {:>14}", "misses", c.misses)?;
        if lookups > 0 {
            writeln!(f, "  {:<20} {:>13.1}%", "hit_ratio", 100.0 * c.hits as f64 / lookups as f64)?;
        }
        writeln!(f, "  {:<20} {:>14}", "bytes", c.bytes)?;
        writeln!(f, "  {:<20} {:>14}", "entries", c.entries)?;
        writeln!(f, "open SSTs")?;
        writeln!(f, "  {:<20} {:>14}", "open_ssts", self.open_ssts)?;
        writeln!(f, "  {:<20} {:>14}", "index_filter_bytes", self.index_filter_bytes)?;
        let h = &self.hedges;
        writeln!(f, "hedged requests")?;
        writeln!(f, "  {:<20} {:>14}", "create_hedges", h.create_hedges)?;
        writeln!(f, "  {:<20} {:>14}", "create_hedges_won", h.create_hedges_won)?;
        writeln!(f, "  {:<20} {:>14}", "read_hedges", h.read_hedges)?;
        writeln!(f, "  {:<20} {:>14}", "read_hedges_won", h.read_hedges_won)?;
        writeln!(f, "store requests")?;
        for (name, n) in self.requests.kinds() {
            writeln!(f, "  {name:<20} {n:>14}")?;
        }
        write!(f, "  {:<20} {:>14}", "total", self.requests.total())
    }
}

/// The live counters behind [`StoreRequests`].
#[derive(Debug, Default)]
pub struct RequestCounters {
    get: AtomicU64,
    get_range: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    put_create: AtomicU64,
    conditional_update: AtomicU64,
    multipart: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    copy: AtomicU64,
}

impl RequestCounters {
    pub fn snapshot(&self) -> StoreRequests {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreRequests {
            get: l(&self.get),
            get_range: l(&self.get_range),
            head: l(&self.head),
            put: l(&self.put),
            put_create: l(&self.put_create),
            conditional_update: l(&self.conditional_update),
            multipart: l(&self.multipart),
            list: l(&self.list),
            delete: l(&self.delete),
            copy: l(&self.copy),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// An `ObjectStore` that counts the requests passing through it by kind.
#[derive(Debug)]
pub struct CountingStore {
    inner: StdArc<dyn ObjectStore>,
    counts: StdArc<RequestCounters>,
}

impl CountingStore {
    pub fn new(inner: StdArc<dyn ObjectStore>) -> Self {
        Self { inner, counts: StdArc::default() }
    }

    /// The counters, shared: they keep counting after this call.
    pub fn counters(&self) -> StdArc<RequestCounters> {
        self.counts.clone()
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    crate::delegate_object_store!(inner, before |this, request| {
        let c = &this.counts;
        bump(match request {
            Request::Put { opts, .. } => match opts.mode {
                PutMode::Overwrite => &c.put,
                PutMode::Create => &c.put_create,
                PutMode::Update(_) => &c.conditional_update,
            },
            Request::PutMultipart { .. } => &c.multipart,
            Request::Get { options, .. } if options.head => &c.head,
            Request::Get { options, .. } if options.range.is_some() => &c.get_range,
            Request::Get { .. } => &c.get,
            Request::GetRanges { .. } => &c.get_range,
            Request::ListWithDelimiter { .. } => &c.list,
            Request::Copy { .. } | Request::Rename { .. } => &c.copy,
        });
    } => put_opts, put_multipart_opts, get_opts, get_ranges, list_with_delimiter, copy_opts, rename_opts);

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let counts = self.counts.clone();
        let counted = locations
            .inspect(move |l| {
                if l.is_ok() {
                    bump(&counts.delete);
                }
            })
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        bump(&self.counts.list);
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        bump(&self.counts.list);
        self.inner.list_with_offset(prefix, offset)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use bytes::Bytes;
    use object_store::{ObjectStoreExt, PutOptions, UpdateVersion};

    #[tokio::test]
    async fn counts_each_request_by_kind() {
        let store = CountingStore::new(StdArc::new(InMemory::new()));
        let counts = store.counters();
        let p = Path::from("a");
        store.put(&p, Bytes::from_static(b"hello").into()).await.expect("put");
        let create = PutOptions { mode: PutMode::Create, ..Default::default() };
        store.put_opts(&Path::from("b"), Bytes::from_static(b"x").into(), create).await.expect("create");
        let update = PutOptions { mode: PutMode::Update(UpdateVersion { e_tag: None, version: None }), ..Default::default() };
        let _ = store.put_opts(&p, Bytes::from_static(b"y").into(), update).await; // InMemory may reject it: counted anyway
        store.get(&p).await.expect("get").bytes().await.expect("body");
        store.get_range(&p, 0..2).await.expect("get_range");
        store.head(&p).await.expect("head");
        let _: Vec<_> = store.list(None).try_collect().await.expect("list");
        store.delete(&p).await.expect("delete");
        let got = counts.snapshot();
        let want = StoreRequests {
            get: 1,
            get_range: 1,
            head: 1,
            put: 1,
            put_create: 1,
            conditional_update: 1,
            list: 1,
            delete: 1,
            ..Default::default()
        };
        assert_eq!(got, want);
        assert_eq!(got.total(), 8);
        assert_eq!(got.since(&StoreRequests { get: 1, ..Default::default() }).get, 0);
    }

    #[test]
    fn metrics_print_as_a_table() {
        let m = Metrics {
            block_cache: BlockCacheStats { capacity_bytes: 64 << 20, hits: 3, misses: 1, bytes: 4160, entries: 1 },
            open_ssts: 2,
            index_filter_bytes: 900,
            requests: StoreRequests { get_range: 5, put_create: 2, ..Default::default() },
            hedges: crate::hedge::HedgeCounts { create_hedges: 1, ..Default::default() },
        };
        let text = m.to_string();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
        for row in [["hits", "3"], ["hit_ratio", "75.0%"], ["create_hedges", "1"], ["get_range", "5"], ["put_create", "2"], ["total", "7"]] {
            assert!(rows.contains(&row.to_vec()), "no row {row:?} in\n{text}");
        }
        let json = serde_json::to_value(&m).expect("serialize");
        assert_eq!(json["requests"]["put_create"], 2);
        assert_eq!(json["block_cache"]["misses"], 1);
    }
}
