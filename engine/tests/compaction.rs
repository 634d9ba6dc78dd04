//! Compaction and GC on the real engine: reads stay right across
//! compactions (an oracle over random workloads with overwrites and
//! deletes), a tombstone never lets an older value reappear, GC deletes what
//! no manifest needs and keeps what a reader or a recovery still needs.
#![cfg(not(loom))]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tidemark::internals::sync::StdArc as Arc;
use tidemark::{Db, Settings, WriteBatch};

fn mem() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

/// Tiny memtables, a low L0 limit, few runs and small output SSTs, so a
/// short workload flushes, compacts L0, merges runs and splits outputs.
fn churn() -> Settings {
    Settings::default()
        .with_l0_sst_size_bytes(1024)
        .with_max_unflushed_bytes(16 << 10)
        .with_l0_max_ssts(3)
        .with_compacted_sst_size_bytes(2048)
        .with_gc_min_age(Duration::ZERO)
        .with_gc_interval(Duration::from_millis(50))
}

async fn count(store: &Arc<dyn ObjectStore>, dir: &str) -> usize {
    let listed: Vec<_> = store.list(Some(&Path::from(dir))).try_collect().await.unwrap();
    listed.len()
}

async fn check_all(db: &Db, oracle: &BTreeMap<Bytes, Bytes>, keys: u32, what: &str) {
    let scanned: BTreeMap<Bytes, Bytes> = db.scan(..).await.unwrap().collect_vec().await.unwrap().into_iter().collect();
    let differ: Vec<_> = oracle
        .keys()
        .chain(scanned.keys())
        .filter(|k| scanned.get(*k) != oracle.get(*k))
        .map(|k| (k.clone(), scanned.get(k).cloned(), oracle.get(k).cloned()))
        .take(5)
        .collect();
    assert!(differ.is_empty(), "{what}: scan disagrees with the oracle at (key, scanned, oracle) {differ:?}");
    for k in 0..keys {
        let key = Bytes::from(format!("key{k:04}"));
        assert_eq!(db.get(&key).await.unwrap(), oracle.get(&key).cloned(), "{what}: get {key:?}");
    }
}

/// Random puts, overwrites, deletes and batches against a BTreeMap oracle,
/// with reopens (clean and crash) along the way: every get and every scan
/// agrees with the oracle whatever compaction and GC did in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_match_an_oracle_across_compactions_gc_and_reopens() {
    for seed in 0..4u64 {
        let store = mem();
        let mut rng = StdRng::seed_from_u64(seed);
        let keys = 300;
        let mut oracle: BTreeMap<Bytes, Bytes> = BTreeMap::new();
        let mut db = Db::open_with("db", store.clone(), churn()).await.unwrap();
        for step in 0..3000u32 {
            let key = Bytes::from(format!("key{:04}", rng.random_range(0..keys)));
            match rng.random_range(0..100) {
                0..=59 => {
                    let value = Bytes::from(format!("v{seed}-{step}-{}", "x".repeat(rng.random_range(0..40))));
                    db.put(key.clone(), value.clone()).await.unwrap();
                    oracle.insert(key, value);
                }
                60..=79 => {
                    db.delete(key.clone()).await.unwrap();
                    oracle.remove(&key);
                }
                80..=89 => {
                    let mut batch = WriteBatch::new();
                    let other = Bytes::from(format!("key{:04}", rng.random_range(0..keys)));
                    batch.put(key.clone(), Bytes::from(format!("b{step}")));
                    batch.delete(other.clone());
                    db.write(batch).await.unwrap();
                    // Applied in order: a delete of the same key wins.
                    oracle.insert(key.clone(), Bytes::from(format!("b{step}")));
                    oracle.remove(&other);
                }
                90..=96 => {
                    assert_eq!(db.get(&key).await.unwrap(), oracle.get(&key).cloned(), "seed {seed} step {step}");
                }
                97 => {
                    db.close().await.unwrap();
                    db = Db::open_with("db", store.clone(), churn()).await.unwrap();
                }
                98 => {
                    drop(db); // a crash: every acknowledged write survives
                    db = Db::open_with("db", store.clone(), churn()).await.unwrap();
                }
                _ => check_all(&db, &oracle, keys, &format!("seed {seed} step {step}")).await,
            }
        }
        let m = db.manifest().await;
        assert!(!m.runs.is_empty(), "seed {seed}: the workload compacted L0 into runs");
        assert!(m.l0.len() <= 3, "seed {seed}: L0 never exceeds its limit: {}", m.l0.len());
        check_all(&db, &oracle, keys, &format!("seed {seed} before close")).await;
        db.close().await.unwrap();
        let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
        check_all(&db, &oracle, keys, &format!("seed {seed} after reopen")).await;
        let ro = Db::open_read_only("db", store.clone()).await.unwrap();
        check_all(&ro, &oracle, keys, &format!("seed {seed} read-only")).await;
        db.close().await.unwrap();
    }
}

/// A tombstone in a newer run shadows the value in an older run until a
/// compaction into the bottom run drops both: the old value never reappears.
#[tokio::test]
async fn a_tombstone_never_lets_an_older_value_reappear() {
    let store = mem();
    let settings = churn().with_l0_max_ssts(2).with_gc_interval(Duration::ZERO);
    let db = Db::open_with("db", store.clone(), settings.clone()).await.unwrap();
    db.put("victim", "old value").await.unwrap();
    for i in 0..200 {
        db.put(format!("filler{i:03}"), "f".repeat(40)).await.unwrap();
    }
    db.close().await.unwrap();
    let db = Db::open_with("db", store.clone(), settings.clone()).await.unwrap();
    assert!(!db.manifest().await.runs.is_empty(), "the old value is in a sorted run");
    db.delete("victim").await.unwrap();
    for i in 0..400 {
        db.put(format!("later{i:03}"), "g".repeat(40)).await.unwrap();
        assert_eq!(db.get("victim").await.unwrap(), None, "after {i} later writes");
    }
    db.close().await.unwrap();
    let db = Db::open_with("db", store.clone(), settings).await.unwrap();
    assert_eq!(db.get("victim").await.unwrap(), None);
    assert!(db.scan(..).await.unwrap().collect_vec().await.unwrap().iter().all(|(k, _)| k.as_ref() != b"victim"));
    let m = db.manifest().await;
    assert!(m.runs.len() >= 1, "{m:?}");
    db.close().await.unwrap();
}

/// With `gc_min_age` zero, GC deletes superseded manifests, WALs below the
/// replay point and SSTs no manifest references; every key stays readable.
#[tokio::test]
async fn gc_deletes_what_no_manifest_needs() {
    let store = mem();
    let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
    for i in 0..1500 {
        db.put(format!("key{i:04}"), "v".repeat(30)).await.unwrap();
    }
    db.close().await.unwrap();
    let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
    db.close().await.unwrap();
    let m = Db::open_read_only("db", store.clone()).await.unwrap().manifest().await;
    let referenced = m.ssts().count();
    assert_eq!(count(&store, "db/manifest").await, 1, "only the latest manifest is left");
    assert_eq!(count(&store, "db/compacted").await, referenced, "only referenced SSTs are left");
    let wals = count(&store, "db/wal").await;
    assert!(wals <= m.fences.len() + 2, "{wals} WALs left, fences {:?}", m.fences);
    let db = Db::open_read_only("db", store.clone()).await.unwrap();
    for i in (0..1500).step_by(7) {
        assert!(db.get(format!("key{i:04}")).await.unwrap().is_some(), "key{i:04}");
    }
}

/// GC keeps a fence: after a crash the successor fences the chain, and the
/// fence survives every later GC (a zombie could otherwise re-create it).
#[tokio::test]
async fn gc_never_deletes_a_fence() {
    let store = mem();
    let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
    db.put("a", "1").await.unwrap();
    drop(db); // crash: the next open fences
    let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
    for i in 0..600 {
        db.put(format!("k{i:04}"), "v".repeat(30)).await.unwrap();
    }
    db.close().await.unwrap();
    let m = Db::open_read_only("db", store.clone()).await.unwrap().manifest().await;
    assert!(!m.fences.is_empty(), "the successor recorded its fence: {m:?}");
    for f in &m.fences {
        assert!(*f <= m.replay_after_wal_id, "the fence is below the replay point, a GC candidate");
        let path = Path::from(format!("db/wal/{f:020}.sst"));
        assert!(store.head(&path).await.is_ok(), "fence {f} was deleted");
    }
}

/// A read-only handle keeps reading the version it opened while compaction
/// and GC move on, as long as GC waits `gc_min_age` (the reader lease).
#[tokio::test]
async fn a_reader_within_min_age_keeps_reading_its_version() {
    let store = mem();
    let settings = churn().with_gc_min_age(Duration::from_secs(300));
    let db = Db::open_with("db", store.clone(), settings.clone()).await.unwrap();
    for i in 0..300 {
        db.put(format!("key{i:04}"), "v".repeat(30)).await.unwrap();
    }
    db.close().await.unwrap();
    let reader = Db::open_read_only("db", store.clone()).await.unwrap();
    let db = Db::open_with("db", store.clone(), settings).await.unwrap();
    for i in 0..900 {
        db.put(format!("key{i:04}"), "w".repeat(30)).await.unwrap();
    }
    db.close().await.unwrap();
    // The writer compacted: the reader's L0/run SSTs are no longer current.
    assert_ne!(reader.manifest().await.version, db.manifest().await.version);
    let rows = reader.scan(..).await.unwrap().collect_vec().await.unwrap();
    assert_eq!(rows.len(), 300, "the reader still reads its whole version");
}
