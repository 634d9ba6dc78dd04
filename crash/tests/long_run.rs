//! A store that stays small and opens fast however long it runs (issue 10):
//! 1,000 rounds of open, put, close through the library with `gc_min_age`
//! zero leave a few dozen objects, and the last open costs no more store
//! requests than the tenth (counted by the fault store's operation counter).

use std::time::Duration;

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use tidemark::internals::sync::StdArc;
use tidemark::testing::FaultStore;
use tidemark::{Db, Settings};

async fn objects(store: &StdArc<dyn ObjectStore>) -> usize {
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    listed.len()
}

#[tokio::test]
async fn a_thousand_open_put_close_rounds_stay_small_and_fast_to_open() {
    let inner: StdArc<dyn ObjectStore> = StdArc::new(InMemory::new());
    let settings = Settings::default().with_gc_min_age(Duration::ZERO);
    let mut open_ops = Vec::new();
    for i in 0..1000u32 {
        let counted = FaultStore::new(inner.clone(), u64::from(i));
        let db = Db::open_with("db", StdArc::new(counted.clone()), settings.clone()).await.unwrap();
        open_ops.push(counted.ops());
        db.put(format!("key{i:04}"), format!("value{i}")).await.unwrap();
        db.close().await.unwrap();
    }
    let n = objects(&inner).await;
    eprintln!("1,000 rounds: {n} objects; store requests of opens 1, 10, 100, 1000: {} {} {} {}", open_ops[0], open_ops[9], open_ops[99], open_ops[999]);
    assert!(n <= 40, "{n} objects after 1,000 rounds");
    assert!(open_ops[999] <= open_ops[9], "the last open made {} requests, the tenth {}", open_ops[999], open_ops[9]);
    let db = Db::open_read_only("db", inner.clone()).await.unwrap();
    for i in (0..1000).step_by(37) {
        assert_eq!(db.get(format!("key{i:04}")).await.unwrap().as_deref(), Some(format!("value{i}").as_bytes()));
    }
    assert_eq!(db.scan(..).await.unwrap().collect_vec().await.unwrap().len(), 1000);
}
