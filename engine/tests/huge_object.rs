//! An object far larger than the format allows (3 GiB) where an open or a
//! read will look: at the next WAL id, as the latest manifest, as an SST.
//! Each is `Corrupt` naming the object, found from the size the store
//! reports before any of it is read, within 100 MB of heap, and the error
//! says what to do. The store only reports the size: the object's body is
//! generated as it is read, and the store refuses to serve more than
//! 256 MiB of it, so a reader that reads it whole fails the test quickly
//! instead of exhausting the machine.
#![cfg(not(loom))]

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{GetOptions, GetResult, GetResultPayload, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use tidemark::internals::manifest::ManifestObject;
use tidemark::internals::paths::Layout;
use tidemark::{Db, Error, Settings};

const ROOT: &str = "db";
const HUGE: u64 = 3 << 30;
const SERVED_AT_MOST: u64 = 256 << 20;
const HEAP_LIMIT: usize = 100 << 20;

/// A store that reports `huge` as 3 GiB (in listings, heads and gets) and
/// counts the bytes of it a reader asked for.
#[derive(Debug)]
struct Huge {
    inner: Arc<InMemory>,
    huge: Path,
    served: Arc<AtomicU64>,
}

impl std::fmt::Display for Huge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Huge({})", self.huge)
    }
}

impl Huge {
    fn resize(&self, mut m: ObjectMeta) -> ObjectMeta {
        if m.location == self.huge {
            m.size = HUGE;
        }
        m
    }
}

#[async_trait]
impl ObjectStore for Huge {
    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        if location != &self.huge {
            return self.inner.get_opts(location, options).await;
        }
        // The placeholder's metadata, with the size reported.
        let meta = self.resize(self.inner.head(location).await?);
        let range: Range<u64> = match &options.range {
            Some(r) => r.as_range(HUGE).map_err(|e| object_store::Error::Generic { store: "Huge", source: e.to_string().into() })?,
            None => 0..HUGE,
        };
        let served = self.served.clone();
        let chunk = 1u64 << 20;
        let len = range.end - range.start;
        let body: BoxStream<'static, object_store::Result<Bytes>> = if options.head {
            stream::empty().boxed()
        } else {
            stream::iter((0..len.div_ceil(chunk)).map(move |i| {
                let n = chunk.min(len - i * chunk);
                if served.fetch_add(n, Ordering::SeqCst) + n > SERVED_AT_MOST {
                    return Err(object_store::Error::Generic { store: "Huge", source: "refuses to serve more".into() });
                }
                Ok(Bytes::from(vec![0u8; n as usize]))
            }))
            .boxed()
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(body),
            meta,
            range,
            attributes: Default::default(),
            extensions: Default::default(),
        })
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let huge = Huge { inner: self.inner.clone(), huge: self.huge.clone(), served: self.served.clone() };
        self.inner.list(prefix).map_ok(move |m| huge.resize(m)).boxed()
    }

    tidemark::delegate_object_store!(inner => put_opts, put_multipart_opts, get_ranges, list_with_delimiter, copy_opts, rename_opts, delete_stream, list_with_offset);
}

fn settings() -> Settings {
    Settings::default().with_gc_interval(Duration::ZERO).with_l0_max_ssts(2)
}

/// A database with data in a sorted run, an L0 SST and a WAL to replay.
async fn seeded() -> (Arc<InMemory>, ManifestObject) {
    let mem = Arc::new(InMemory::new());
    let store: Arc<dyn ObjectStore> = mem.clone();
    for round in 0..3 {
        let db = Db::open_with(ROOT, store.clone(), settings()).await.unwrap();
        db.put(format!("k{round}"), "v").await.unwrap();
        db.close().await.unwrap();
    }
    let db = Db::open_with(ROOT, store.clone(), settings()).await.unwrap();
    db.put("unflushed", "v").await.unwrap();
    drop(db);
    let layout = Layout::new(Path::from(ROOT));
    let listed: Vec<_> = store.list(Some(&layout.manifest_dir())).try_collect().await.unwrap();
    let v = listed.iter().filter_map(|m| layout.parse_manifest(&m.location)).max().unwrap();
    let bytes = store.get(&layout.manifest(v)).await.unwrap().bytes().await.unwrap();
    (mem, ManifestObject::decode("m", &bytes).unwrap())
}

/// Every open of the database is `Corrupt` naming `huge`, saying what to
/// do, having read none of it, within the heap limit.
async fn assert_named_from_its_size(mem: Arc<InMemory>, huge: Path, what: &str) {
    let served = Arc::new(AtomicU64::new(0));
    let store: Arc<dyn ObjectStore> = Arc::new(Huge { inner: mem, huge: huge.clone(), served: served.clone() });
    let before = counting_alloc::reset_peak();
    let opens: [(&str, tidemark::Result<Db>); 2] = [
        ("read-only", Db::open_read_only(ROOT, store.clone()).await),
        ("read-write", Db::open_with(ROOT, store.clone(), settings()).await),
    ];
    let peak = counting_alloc::peak().saturating_sub(before);
    for (open, result) in opens {
        match result {
            Err(Error::Corrupt { path, reason }) => {
                assert_eq!(path, huge.to_string(), "{what}, {open}: names the object");
                assert!(reason.contains(&HUGE.to_string()) && reason.contains("more than"), "{what}, {open}: {reason}");
                assert!(reason.contains("move it") || reason.contains("restore"), "{what}, {open}: says what to do: {reason}");
            }
            other => panic!("{what}, {open}: want Corrupt naming {huge}, got {other:?}"),
        }
    }
    assert_eq!(served.load(Ordering::SeqCst), 0, "{what}: none of the object was read");
    assert!(peak < HEAP_LIMIT, "{what}: the opens took {peak} bytes of heap");
}

#[tokio::test]
async fn a_3_gib_object_at_the_next_wal_id_is_named_from_its_size() {
    let (mem, m) = seeded().await;
    let layout = Layout::new(Path::from(ROOT));
    let listed: Vec<_> = mem.list(Some(&layout.wal_dir())).try_collect().await.unwrap();
    let last = listed.iter().filter_map(|o| layout.parse_wal(&o.location)).max().unwrap_or(m.replay_after_wal_id);
    let next = layout.wal(last + 1);
    mem.put(&next, PutPayload::from_static(b"placeholder")).await.unwrap();
    assert_named_from_its_size(mem, next, "the next WAL").await;
}

#[tokio::test]
async fn a_3_gib_latest_manifest_is_named_from_its_size() {
    let (mem, m) = seeded().await;
    let path = Layout::new(Path::from(ROOT)).manifest(m.version + 1);
    mem.put(&path, PutPayload::from_static(b"placeholder")).await.unwrap();
    assert_named_from_its_size(mem, path, "the latest manifest").await;
}

/// An SST is read in ranges, so an open does not touch it: the first read
/// that needs it is `Corrupt` naming it (its handle records 3 GiB), without
/// reading it; fsck names it too.
#[tokio::test]
async fn a_3_gib_sst_is_named_from_its_handle_before_it_is_read() {
    let (mem, mut m) = seeded().await;
    let layout = Layout::new(Path::from(ROOT));
    let h = m.l0.first_mut().expect("an L0 SST");
    h.size = HUGE;
    let huge = layout.sst(&h);
    m.version += 1;
    mem.put(&layout.manifest(m.version), PutPayload::from(m.encode())).await.unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let store: Arc<dyn ObjectStore> = Arc::new(Huge { inner: mem, huge: huge.clone(), served: served.clone() });
    let before = counting_alloc::reset_peak();
    let db = Db::open_read_only(ROOT, store.clone()).await.unwrap();
    match db.get("k0").await {
        Err(Error::Corrupt { path, reason }) => {
            assert_eq!(path, huge.to_string());
            assert!(reason.contains(&HUGE.to_string()) && reason.contains("restore"), "{reason}");
        }
        other => panic!("want Corrupt naming {huge}, got {other:?}"),
    }
    let report = tidemark::fsck(store.as_ref(), Path::from(ROOT)).await;
    let named = report.findings.iter().any(|f| matches!(f, tidemark::FsckFinding::Problem(p) if p.contains(huge.as_ref()) && p.contains("more than")));
    assert!(named, "fsck names the SST: {:?}", report.findings);
    assert!(counting_alloc::peak().saturating_sub(before) < HEAP_LIMIT);
    assert_eq!(served.load(Ordering::SeqCst), 0, "none of the SST was read");
}
