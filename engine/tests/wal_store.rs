//! WALs in a store of their own (`Settings::wal_store`): WALs and fences
//! are created there and nowhere else, recovery replays them from there,
//! SSTs and manifests stay in the main store, and a WAL store without
//! compare-and-set is refused like a main store without it.
#![cfg(not(loom))]

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, PutResult, Result};
use tidemark::{Db, Error, Settings, SplitStore};

async fn names(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let mut v: Vec<String> = store.list(None).map_ok(|m| m.location.to_string()).try_collect().await.expect("list");
    v.sort();
    v
}

fn small() -> Settings {
    Settings::default().with_compactor(false).with_l0_sst_size_bytes(4096).with_max_unflushed_bytes(1 << 20)
}

#[tokio::test]
async fn wals_live_only_in_the_wal_store_and_recovery_replays_them_from_there() {
    let main: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wal: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let settings = small().with_wal_store(wal.clone(), "fast/db");
    let db = Db::open_with("db", main.clone(), settings.clone()).await.expect("open");
    for i in 0..200u32 {
        db.put(format!("k{i:04}"), vec![b'v'; 64]).await.expect("durable put");
    }
    // A crash: dropped without close, so the newest writes are only in WALs.
    drop(db);
    let in_wal_store = names(&wal).await;
    assert!(in_wal_store.iter().any(|n| n.starts_with("fast/db/wal/")), "{in_wal_store:?}");
    assert!(in_wal_store.iter().all(|n| n.starts_with("fast/db/wal/")), "only WALs in the WAL store: {in_wal_store:?}");
    let in_main = names(&main).await;
    assert!(in_main.iter().all(|n| !n.starts_with("db/wal/")), "a WAL in the main store: {in_main:?}");
    assert!(in_main.iter().any(|n| n.starts_with("db/manifest/")));
    assert!(in_main.iter().any(|n| n.starts_with("db/compacted/")), "memtables reached L0 in the main store");

    let db = Db::open_with("db", main.clone(), settings.clone()).await.expect("recover");
    for i in [0u32, 150, 199] {
        assert_eq!(db.get(format!("k{i:04}")).await.expect("get").as_deref(), Some(&[b'v'; 64][..]), "k{i:04}");
    }
    // The recovery's fence is a WAL object too: in the WAL store.
    assert!(names(&main).await.iter().all(|n| !n.starts_with("db/wal/")));
    db.close().await.expect("close");

    // Read-only, the two stores are given as one.
    let split: Arc<dyn ObjectStore> = Arc::new(SplitStore::new(main.clone(), &Path::from("db"), wal.clone(), &Path::from("fast/db")));
    let reader = Db::open_read_only("db", split.clone()).await.expect("read-only");
    assert_eq!(reader.get("k0199").await.expect("get").as_deref(), Some(&[b'v'; 64][..]));
    let report = tidemark::fsck(split.as_ref(), Path::from("db")).await;
    assert_eq!(report.problems(), 0, "{:?}", report.findings);
}

/// Turns every create into an overwrite (a store without conditional writes).
#[derive(Debug)]
struct IgnoresCreate(Arc<dyn ObjectStore>);

impl fmt::Display for IgnoresCreate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IgnoresCreate({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for IgnoresCreate {
    async fn put_opts(&self, location: &Path, payload: PutPayload, mut opts: PutOptions) -> Result<PutResult> {
        if opts.mode == PutMode::Create {
            opts.mode = PutMode::Overwrite;
        }
        self.0.put_opts(location, payload, opts).await
    }
    tidemark::delegate_object_store!(0 =>
        put_multipart_opts, get_opts, delete_stream, list, list_with_delimiter, copy_opts, rename_opts);
}

#[tokio::test]
async fn a_wal_store_without_compare_and_set_is_refused() {
    let main: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let wal: Arc<dyn ObjectStore> = Arc::new(IgnoresCreate(Arc::new(InMemory::new())));
    let err = match Db::open_with("db", main.clone(), small().with_wal_store(wal, "w")).await {
        Ok(_) => panic!("a WAL store that ignores PutMode::Create was opened for writing"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::NoCompareAndSet { .. }), "{err}");
    assert!(err.to_string().contains("IgnoresCreate"), "the refusal names the WAL store: {err}");
    assert!(names(&main).await.iter().all(|n| !n.starts_with("db/manifest/")), "no epoch was claimed");
}
