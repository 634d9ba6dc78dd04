//! A fenced writer that has not yet noticed the fence can still flush a
//! memtable to L0. Its SST must not take the name of one its successor needs:
//! both start from the same manifest. (SST names were once `<next_sst_id>-
//! <epoch>`; they are now ULIDs, unique without coordination.)
//! (Found by trace conformance: a zombie's `FlushL0` after its fence.)

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;
use tidemark::internals::sync::StdArc;
use tidemark::testing::FaultStore;
use tidemark::{Db, Settings, WriteOptions};

async fn ssts(store: &StdArc<dyn ObjectStore>) -> Vec<String> {
    let listed: Vec<_> = store.list(Some(&Path::from("db/compacted"))).try_collect().await.unwrap();
    listed.into_iter().map(|m| m.location.to_string()).collect()
}

#[tokio::test]
async fn a_zombies_late_sst_does_not_block_its_successors_flushes() {
    let inner: StdArc<dyn ObjectStore> = StdArc::new(InMemory::new());
    let fault = FaultStore::new(inner.clone(), 3);
    let small = Settings::default().with_l0_sst_size_bytes(256).with_flush_interval(Duration::from_millis(1));
    let zombie = Db::open_with("db", StdArc::new(fault.clone()), small.clone()).await.unwrap();

    // The zombie fills a memtable (its WALs land) and starts the L0 upload,
    // which is held; then the successor opens and fences it, and the
    // zombie's SST lands late, after its manifest write can only be fenced.
    fault.hold_prefix("db/compacted/");
    let fire = WriteOptions { await_durable: false };
    let held_sst = |fault: &FaultStore| fault.held().into_iter().find(|p| p.as_ref().starts_with("db/compacted/"));
    for i in 0..200 {
        if held_sst(&fault).is_some() {
            break;
        }
        zombie.put_with(format!("z{i:03}"), "x".repeat(40), &fire).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let sst = held_sst(&fault).expect("the zombie's L0 upload is in flight");
    let successor = Db::open_with("db", inner.clone(), small).await.unwrap();
    fault.release(&sst).await;
    for _ in 0..200 {
        if zombie.put_with("late", "x", &fire).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The successor may flush its replay of the zombie's WALs at open (its
    // own SST, `-w2`): the orphan is the zombie's `-w1` SST.
    let orphan: Vec<_> = ssts(&inner).await.into_iter().filter(|p| p.ends_with("-w1.sst")).collect();
    assert_eq!(orphan.len(), 1, "the zombie flushed one SST before its manifest write was fenced: {orphan:?}");

    for i in 0..20 {
        successor.put(format!("s{i:03}"), "y".repeat(40)).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while successor.manifest().await.l0.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let m = successor.manifest().await;
    assert!(!m.l0.is_empty(), "the successor recorded an L0 SST despite the zombie's orphan ({orphan:?})");
    assert!(m.l0.iter().all(|h| h.epoch == 2), "only the successor's SSTs are referenced: {:?}", m.l0);
    successor.close().await.unwrap();
    drop((zombie, successor));

    let reopened = Db::open("db", inner).await.unwrap();
    for i in 0..20 {
        assert!(reopened.get(format!("s{i:03}")).await.unwrap().is_some(), "s{i:03} survived");
    }
}
