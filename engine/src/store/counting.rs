//! Request counts: [`CountingStore`], an `ObjectStore` wrapper in the style
//! of object_store's own, counts the requests passing through it by kind.
//!
//! Every `Db` wraps the store it is given in one, *inside* its `RetryStore`:
//! each attempt of a retried request is counted, since each is a request the
//! store bills. Every request the `Db` makes goes through that chain.

use std::fmt;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, PutMode, Result};

use super::wrap::Request;
use crate::metrics::StoreRequests;
use crate::sync::{AtomicU64, Ordering, StdArc};

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
    /// The counts now.
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
    /// Counts the requests to `inner`, from zero.
    pub fn new(inner: StdArc<dyn ObjectStore>) -> Self {
        Self::with_counters(inner, StdArc::default())
    }

    /// Counts into `counts`, which other stores may share (a `Db` whose WALs
    /// have a store of their own counts both stores' requests together).
    pub fn with_counters(inner: StdArc<dyn ObjectStore>, counts: StdArc<RequestCounters>) -> Self {
        Self { inner, counts }
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
}
