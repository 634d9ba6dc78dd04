//! Regression tests for what the fuzz suite found (issue 17, `engine/fuzz`).
//! Each names the target and the input that found it.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tidemark::{Db, Error, Settings};

/// A database with one L0 SST holding `k00`..`k09`; returns the SST's path.
async fn one_sst(store: &Arc<dyn ObjectStore>) -> Path {
    let db = Db::open_with("", store.clone(), Settings::default().with_gc_interval(std::time::Duration::ZERO)).await.unwrap();
    for i in 0..10 {
        db.put(format!("k{i:02}"), format!("v{i}")).await.unwrap();
    }
    db.close().await.unwrap();
    let ssts: Vec<Path> =
        store.list(Some(&Path::from("compacted"))).map_ok(|m| m.location).try_collect().await.unwrap();
    assert_eq!(ssts.len(), 1, "one L0 SST: {ssts:?}");
    ssts[0].clone()
}

/// db_open, input `/io=` (an empty object in place of a sorted run's SST):
/// the manifest's handle records a size the object does not have. The
/// reader asked for a range starting past the object's end; the store's
/// answer (a `Generic` error, as S3's 416 is) was retried as transient, so
/// every read of the SST took the whole retry budget (1.3 s) and then failed
/// with an object-store error, not `Corrupt`. Now the tail is read as a
/// suffix and the object's size checked against the handle's: `Corrupt`
/// naming the object and the field, at once.
#[tokio::test(start_paused = true)]
async fn an_sst_shorter_than_its_handle_is_corrupt_at_once() {
    for len in [0usize, 10, 40] {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let sst = one_sst(&store).await;
        let whole = store.get(&sst).await.unwrap().bytes().await.unwrap();
        store.put(&sst, PutPayload::from(whole.slice(..len))).await.unwrap();
        let db = Db::open_read_only("", store.clone()).await.unwrap();
        let started = tokio::time::Instant::now();
        for read in [db.get("k03").await.map(|_| ()), scan_all(&db).await] {
            match read {
                Err(Error::Corrupt { path, reason }) => {
                    assert_eq!(path, sst.to_string());
                    assert!(reason.contains("size"), "{reason}");
                }
                other => panic!("{len}-byte SST: want Corrupt, got {other:?}"),
            }
        }
        // No retry sleeps (the clock is paused: only sleeps advance it).
        assert_eq!(started.elapsed(), std::time::Duration::ZERO, "{len}-byte SST: reads were retried");
    }
}

/// The same object longer than its handle records: `Corrupt` as well.
#[tokio::test(start_paused = true)]
async fn an_sst_longer_than_its_handle_is_corrupt() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let sst = one_sst(&store).await;
    let whole = store.get(&sst).await.unwrap().bytes().await.unwrap();
    let mut longer = whole.to_vec();
    longer.extend_from_slice(&whole);
    store.put(&sst, PutPayload::from(Bytes::from(longer))).await.unwrap();
    let db = Db::open_read_only("", store.clone()).await.unwrap();
    match db.get("k03").await {
        Err(Error::Corrupt { path, reason }) => assert!(path == sst.to_string() && reason.contains("size"), "{path}: {reason}"),
        other => panic!("want Corrupt, got {other:?}"),
    }
}

/// A whole scan, read to the end (a scan's errors surface as it reads).
async fn scan_all(db: &Db) -> tidemark::Result<()> {
    db.scan(..).await?.collect_vec().await.map(|_| ())
}
