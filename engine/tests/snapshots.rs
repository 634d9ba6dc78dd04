//! Issue 11, item 3: snapshots. Every write gets a sequence number; a
//! snapshot reads as of its number across memtables, L0 and sorted runs,
//! while memtables flush, compactions merge and GC deletes; numbers keep
//! growing across reopens, clean or after a crash.
#![cfg(not(loom))]

mod common;
use common::wait_for;
use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use tidemark::internals::sync::StdArc as Arc;
use tidemark::{Db, Settings};

fn mem() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

/// Small memtables, compaction at two L0 SSTs into a single run, GC every
/// 30 ms with no minimum age: whatever a snapshot did not pin is deleted.
fn churn() -> Settings {
    let mut s = Settings::default()
        .with_l0_sst_size_bytes(1024)
        .with_max_unflushed_bytes(64 << 10)
        .with_l0_max_ssts(4)
        .with_compacted_sst_size_bytes(2048)
        .with_gc_min_age(Duration::ZERO)
        .with_gc_interval(Duration::from_millis(30));
    s.max_sorted_runs = 1;
    s.block_size = 256;
    s
}

fn key(i: usize) -> Bytes {
    Bytes::from(format!("k{:02}/{i:04}", i % 5))
}


async fn scan_all(it: tidemark::Result<tidemark::DbIterator>) -> Vec<(Bytes, Bytes)> {
    it.unwrap().collect_vec().await.unwrap()
}

#[tokio::test]
async fn a_snapshot_does_not_see_later_writes_to_the_same_memtable() {
    let db = Db::open("db", mem()).await.unwrap();
    db.put("a", "1").await.unwrap();
    db.put("c", "1").await.unwrap();
    let snap = db.snapshot();
    db.put("a", "2").await.unwrap();
    db.put("b", "1").await.unwrap();
    db.delete("c").await.unwrap();
    assert_eq!(snap.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(snap.get("b").await.unwrap(), None);
    assert_eq!(snap.get("c").await.unwrap().as_deref(), Some(&b"1"[..]));
    let old = vec![(Bytes::from("a"), Bytes::from("1")), (Bytes::from("c"), Bytes::from("1"))];
    assert_eq!(scan_all(snap.scan(..).await).await, old);
    let mut rev = scan_all(snap.scan_rev(..).await).await;
    rev.reverse();
    assert_eq!(rev, old);
    let new = vec![(Bytes::from("a"), Bytes::from("2")), (Bytes::from("b"), Bytes::from("1"))];
    assert_eq!(scan_all(db.scan(..).await).await, new, "plain reads see the new writes");
    assert!(db.snapshot().seq() >= snap.seq() + 3, "three writes later");
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_snapshot_keeps_its_values_across_flushes_compactions_and_gc() {
    let db = Db::open_with("db", mem(), churn()).await.unwrap();
    let mut old = BTreeMap::new();
    for i in 0..300 {
        let v = Bytes::from(format!("old-{i}"));
        db.put(key(i), v.clone()).await.unwrap();
        old.insert(key(i), v);
    }
    wait_for("SSTs under the snapshot", || async { !db.manifest().await.ssts().next().is_none() }).await;
    let snap = db.snapshot();
    let before = db.manifest().await;
    let mut new = old.clone();
    for i in 0..300 {
        if i % 3 == 0 {
            db.delete(key(i)).await.unwrap();
            new.remove(&key(i));
        } else {
            let v = Bytes::from(format!("new-{i}"));
            db.put(key(i), v.clone()).await.unwrap();
            new.insert(key(i), v);
        }
    }
    db.put(key(9999), "added").await.unwrap();
    new.insert(key(9999), Bytes::from("added"));
    // Every SST of the snapshot's moment is replaced (flushes, then
    // compactions into one run), and GC has run several times since.
    let gone = |m: &tidemark::internals::manifest::ManifestObject| {
        let now: Vec<u128> = m.ssts().map(|h| h.id).collect();
        before.ssts().all(|h| !now.contains(&h.id))
    };
    wait_for("a manifest without the snapshot's SSTs", || async { gone(&db.manifest().await) }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    for i in 0..300 {
        assert_eq!(snap.get(key(i)).await.unwrap(), old.get(&key(i)).cloned(), "snapshot get {:?}", key(i));
        assert_eq!(db.get(key(i)).await.unwrap(), new.get(&key(i)).cloned(), "get {:?}", key(i));
    }
    assert_eq!(snap.get(key(9999)).await.unwrap(), None);
    let as_vec = |m: &BTreeMap<Bytes, Bytes>| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
    assert_eq!(scan_all(snap.scan(..).await).await, as_vec(&old));
    assert_eq!(scan_all(db.scan(..).await).await, as_vec(&new));
    let prefix = Bytes::from("k03/");
    let in_prefix = |m: &BTreeMap<Bytes, Bytes>| as_vec(m).into_iter().filter(|(k, _)| k.starts_with(&prefix)).collect::<Vec<_>>();
    assert_eq!(scan_all(snap.scan_prefix(prefix.clone()).await).await, in_prefix(&old));
    assert_eq!(scan_all(db.scan_prefix(prefix.clone()).await).await, in_prefix(&new));
    drop(snap);
    db.close().await.unwrap();
}

#[tokio::test]
async fn sequence_numbers_grow_across_clean_and_crash_reopens() {
    let store = mem();
    let db = Db::open("db", store.clone()).await.unwrap();
    db.put("a", "1").await.unwrap();
    let first = db.snapshot().seq();
    db.put("a", "2").await.unwrap();
    let second = db.snapshot().seq();
    assert!(second > first);
    db.close().await.unwrap();

    let db = Db::open("db", store.clone()).await.unwrap();
    assert!(db.snapshot().seq() >= second, "a reopened database reads at least as far");
    db.put("b", "1").await.unwrap();
    let third = db.snapshot().seq();
    assert!(third > second, "a write after a clean reopen is numbered above every earlier one");
    drop(db); // crash: the next open replays the WAL holding "b"

    let db = Db::open("db", store.clone()).await.unwrap();
    assert_eq!(db.get("b").await.unwrap().as_deref(), Some(&b"1"[..]), "replayed");
    db.put("c", "1").await.unwrap();
    let fourth = db.snapshot().seq();
    assert!(fourth > third, "a write after recovery is numbered above every replayed one");
    db.close().await.unwrap();
}
