//! Issue 11, item 4: `scan` streams. A scan over memtable, L0 and sorted
//! runs with overwrites and tombstones returns each key's newest value;
//! reverse scans are forward scans reversed; prefix scans hold exactly the
//! prefix; a live iterator keeps GC from deleting the SSTs it still reads.
#![cfg(not(loom))]

mod common;
use common::wait_for;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tidemark::internals::paths::Layout;
use tidemark::internals::sync::StdArc as Arc;
use tidemark::{Db, ScanOptions, Settings};

fn mem() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

/// Small memtables and SSTs, so a few hundred keys make several L0 SSTs
/// and runs of several SSTs each.
fn layered(compactor: bool) -> Settings {
    let mut s = Settings::default()
        .with_l0_sst_size_bytes(1024)
        .with_max_unflushed_bytes(64 << 10)
        .with_l0_max_ssts(64)
        .with_compacted_sst_size_bytes(2048)
        .with_compactor(compactor);
    s.block_size = 256;
    s
}

fn key(i: usize) -> Bytes {
    Bytes::from(format!("k{:02}/{i:04}", i % 7))
}


/// Runs (written by compactions at close), L0 SSTs (flushed after reopen,
/// no compactor) and the memtable each hold some of the newest versions.
async fn layered_db(store: &Arc<dyn ObjectStore>, model: &mut BTreeMap<Bytes, Bytes>) -> Db {
    let mut s = layered(true);
    s.l0_max_ssts = 4;
    let db = Db::open_with("db", store.clone(), s).await.unwrap();
    for i in 0..400 {
        let v = Bytes::from(format!("run-{i}"));
        db.put(key(i), v.clone()).await.unwrap();
        model.insert(key(i), v);
    }
    db.close().await.unwrap();
    let db = Db::open_with("db", store.clone(), layered(false)).await.unwrap();
    assert!(!db.manifest().await.runs.is_empty(), "the first pass left sorted runs");
    for i in (0..400).step_by(3) {
        let v = Bytes::from(format!("l0-{i}"));
        db.put(key(i), v.clone()).await.unwrap();
        model.insert(key(i), v);
    }
    for i in (0..400).step_by(5) {
        db.delete(key(i)).await.unwrap();
        model.remove(&key(i));
    }
    wait_for("an L0 SST", || async { !db.manifest().await.l0.is_empty() }).await;
    for i in (0..400).step_by(11) {
        let v = Bytes::from(format!("mem-{i}"));
        db.put(key(i), v.clone()).await.unwrap();
        model.insert(key(i), v);
    }
    db.delete(key(1)).await.unwrap();
    model.remove(&key(1));
    db
}

fn in_range(model: &BTreeMap<Bytes, Bytes>, range: &(Bound<Bytes>, Bound<Bytes>)) -> Vec<(Bytes, Bytes)> {
    model.range::<Bytes, _>(range.clone()).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[tokio::test]
async fn a_scan_across_memtable_l0_and_runs_returns_the_newest_values() {
    let store = mem();
    let mut model = BTreeMap::new();
    let db = layered_db(&store, &mut model).await;
    let all: Vec<(Bytes, Bytes)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(db.scan(..).await.unwrap().collect_vec().await.unwrap(), all);
    let mut rev = db.scan_rev(..).await.unwrap().collect_vec().await.unwrap();
    rev.reverse();
    assert_eq!(rev, all, "the reverse scan is the forward scan reversed");
    // The stream form yields the same rows.
    let streamed: Vec<(Bytes, Bytes)> = db.scan(..).await.unwrap().into_stream().try_collect().await.unwrap();
    assert_eq!(streamed, all);
    // Point reads agree with the scan.
    for i in 0..400 {
        assert_eq!(db.get(key(i)).await.unwrap(), model.get(&key(i)).cloned(), "get {:?}", key(i));
    }
    db.close().await.unwrap();
}

#[tokio::test]
async fn bounded_and_prefix_scans_in_both_directions_match_a_model() {
    let store = mem();
    let mut model = BTreeMap::new();
    let db = layered_db(&store, &mut model).await;
    for p in 0..7 {
        let prefix = Bytes::from(format!("k{p:02}/"));
        let expect: Vec<_> = model.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(k, v)| (k.clone(), v.clone())).collect();
        assert!(!expect.is_empty());
        assert_eq!(db.scan_prefix(prefix.clone()).await.unwrap().collect_vec().await.unwrap(), expect, "prefix {p}");
        let mut rev = db.scan_prefix_rev(prefix).await.unwrap().collect_vec().await.unwrap();
        rev.reverse();
        assert_eq!(rev, expect, "reverse prefix {p}");
    }
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..40 {
        let (a, b) = (key(rng.random_range(0..400)), key(rng.random_range(0..400)));
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let bound = |k: Bytes, r: u8| match r {
            0 => Bound::Included(k),
            1 => Bound::Excluded(k),
            _ => Bound::Unbounded,
        };
        let range = (bound(lo, rng.random_range(0..3)), bound(hi, rng.random_range(0..3)));
        let expect = in_range(&model, &range);
        assert_eq!(db.scan(range.clone()).await.unwrap().collect_vec().await.unwrap(), expect, "{range:?}");
        let mut rev = db.scan_with(range.clone(), ScanOptions { read_ahead_bytes: 0, ..ScanOptions::reverse() }).await.unwrap().collect_vec().await.unwrap();
        rev.reverse();
        assert_eq!(rev, expect, "reverse {range:?}");
    }
    // A row at a time: the iterator stops where the range does.
    let mut it = db.scan_rev(..key(30)).await.unwrap();
    let first = it.next().await.unwrap().expect("a row below k00/0030");
    assert_eq!(Some(&first), in_range(&model, &(Bound::Unbounded, Bound::Excluded(key(30)))).last());
    db.close().await.unwrap();
}

/// A scan that outlives a compaction keeps reading the SSTs of its view:
/// GC (minimum age zero) deletes the replaced SSTs only once the iterator
/// is dropped.
#[tokio::test]
async fn a_live_iterator_keeps_gc_from_deleting_its_ssts() {
    let store = mem();
    let settings = {
        let mut s = layered(true).with_gc_min_age(Duration::ZERO).with_gc_interval(Duration::from_millis(30));
        s.l0_max_ssts = 4;
        s.max_sorted_runs = 1;
        s
    };
    let db = Db::open_with("db", store.clone(), settings.clone()).await.unwrap();
    for i in 0..400 {
        db.put(key(i), format!("old-{i}")).await.unwrap();
    }
    db.close().await.unwrap();
    let db = Db::open_with("db", store.clone(), settings).await.unwrap();
    let before = db.manifest().await;
    let old: Vec<Path> = before.ssts().map(|h| Layout::new(Path::from("db")).sst(h)).collect();
    assert!(old.len() > 3, "the run has several SSTs: {}", old.len());
    let mut it = db.scan(..).await.unwrap();
    let mut seen = vec![it.next().await.unwrap().expect("a first row")];
    // Overwrite everything: L0 flushes, compactions merge the old run away.
    for i in 0..400 {
        db.put(key(i), format!("new-{i}")).await.unwrap();
    }
    let gone = |m: &tidemark::internals::manifest::ManifestObject| {
        let now: Vec<u128> = m.ssts().map(|h| h.id).collect();
        before.ssts().all(|h| !now.contains(&h.id))
    };
    wait_for("a manifest without the old SSTs", || async { gone(&db.manifest().await) }).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // several GC passes
    for p in &old {
        assert!(store.head(p).await.is_ok(), "GC deleted {p} while an iterator reads it");
    }
    while let Some(row) = it.next().await.unwrap() {
        seen.push(row);
    }
    let mut expect: Vec<(Bytes, Bytes)> = (0..400).map(|i| (key(i), Bytes::from(format!("old-{i}")))).collect();
    expect.sort();
    assert_eq!(seen, expect, "the iterator reads its own view to the end");
    drop(it);
    wait_for("GC of the old SSTs once the iterator is dropped", || async {
        futures::stream::iter(old.iter()).any(|p| async { store.head(p).await.is_err() }).await
    })
    .await;
    db.close().await.unwrap();
}
