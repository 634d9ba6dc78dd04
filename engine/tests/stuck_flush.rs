//! A writer whose memtables cannot reach L0 (the store refuses SST uploads
//! for good, or compaction fails while L0 is at its limit) refuses writes
//! with `FlushStalled` once they wait for room, rather than hang; what was
//! acknowledged before stays durable in its WALs.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutOptions, PutPayload, PutResult, Result};
use tidemark::{Db, Error, Settings, StoreRef};

/// Fails every SST upload (L0 and compaction outputs) while `down` is set;
/// WALs and manifests go through.
#[derive(Debug)]
struct SstsRefused {
    inner: Arc<dyn ObjectStore>,
    down: AtomicBool,
}

impl fmt::Display for SstsRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SstsRefused({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for SstsRefused {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        if self.down.load(Ordering::SeqCst) && location.as_ref().contains("/compacted/") {
            return Err(object_store::Error::Generic { store: "SstsRefused", source: "SST uploads are refused".into() });
        }
        self.inner.put_opts(location, payload, opts).await
    }
    tidemark::delegate_object_store!(inner =>
        put_multipart_opts, get_opts, delete_stream, list, list_with_delimiter, copy_opts, rename_opts);
}

fn key(i: u32) -> Bytes {
    Bytes::from(format!("key{i:05}"))
}

fn settings() -> Settings {
    let mut s = Settings::default()
        .with_l0_sst_size_bytes(512)
        .with_max_unflushed_bytes(4 << 10)
        .with_l0_max_ssts(2)
        .with_compacted_sst_size_bytes(1024)
        .with_gc_interval(Duration::ZERO);
    s.max_retries = 1;
    s
}

#[tokio::test(start_paused = true)]
async fn writes_waiting_on_flushes_that_always_fail_are_refused_not_hung() {
    for compactor in [false, true] {
        let store = Arc::new(SstsRefused { inner: Arc::new(InMemory::new()), down: AtomicBool::new(false) });
        let as_ref: StoreRef = store.clone();
        let db = Db::open_with("db", as_ref.clone(), settings().with_compactor(compactor)).await.unwrap();
        for i in 0..20u32 {
            db.put(key(i), "before").await.unwrap();
        }
        store.down.store(true, Ordering::SeqCst);
        let writes = async {
            for i in 0..100_000u32 {
                db.put(key(i % 500), "during").await?;
            }
            Ok::<(), Error>(())
        };
        match tokio::time::timeout(Duration::from_secs(600), writes).await {
            Ok(Err(Error::FlushStalled { waited_ms, cause })) => {
                assert!(waited_ms >= 10_000, "compactor {compactor}: gave up after {waited_ms} ms");
                assert!(!cause.is_empty());
            }
            other => panic!("compactor {compactor}: writes with every SST upload refused ended {other:?}"),
        }
        // Once the store takes SSTs again, the writer flushes on its own.
        store.down.store(false, Ordering::SeqCst);
        let again = async {
            loop {
                match db.put("after", "x").await {
                    Ok(()) => break,
                    Err(Error::FlushStalled { .. }) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(e) => panic!("compactor {compactor}: {e}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(600), again).await.expect("the writer recovered");
        db.close().await.unwrap();
        let db = Db::open_with("db", as_ref, settings()).await.unwrap();
        for i in 0..20u32 {
            let v = db.get(key(i)).await.unwrap();
            assert!(matches!(v.as_deref(), Some(b"before" | b"during")), "compactor {compactor}: {v:?}");
        }
        assert_eq!(db.get("after").await.unwrap().as_deref(), Some(&b"x"[..]));
        db.close().await.unwrap();
    }
}
