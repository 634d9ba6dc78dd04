//! Issue 17, case 2: fsck checks everything a read path relies on. Objects
//! are crafted with valid checksums, so only the checks behind them can
//! find the damage.
#![cfg(not(loom))]

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tidemark::{fsck, FsckFinding as Finding, FsckReport as Report};
use tidemark::internals::manifest::{ManifestObject, SortedRun, SstHandle};
use tidemark::internals::paths::Layout;
use tidemark::internals::protocol::{WalHeader, WalKind};
use tidemark::internals::sst::SstBuilder;
use tidemark::internals::sync::Arc;
use tidemark::internals::wal_object::encode_wal;
use tidemark::Db;

const ROOT: &str = "db";

async fn seeded(keys: &[&str]) -> (Arc<dyn ObjectStore>, ManifestObject) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    // One writer per key, each closing: one L0 SST per key.
    for k in keys {
        let db = Db::open(ROOT, store.clone()).await.unwrap();
        db.put(k.to_string(), "v").await.unwrap();
        db.close().await.unwrap();
    }
    let m = latest(&store).await;
    assert_eq!(m.l0.len(), keys.len());
    (store, m)
}

async fn latest(store: &Arc<dyn ObjectStore>) -> ManifestObject {
    let layout = Layout::new(Path::from(ROOT));
    let listed: Vec<_> = store.list(Some(&layout.manifest_dir())).try_collect().await.unwrap();
    let v = listed.iter().filter_map(|m| layout.parse_manifest(&m.location)).max().unwrap();
    let bytes = store.get(&layout.manifest(v)).await.unwrap().bytes().await.unwrap();
    ManifestObject::decode("m", &bytes).unwrap()
}

/// Writes `m` as the next version (valid checksum).
async fn record(store: &Arc<dyn ObjectStore>, mut m: ManifestObject) {
    m.version += 1;
    let path = Layout::new(Path::from(ROOT)).manifest(m.version);
    store.put(&path, PutPayload::from(m.encode())).await.unwrap();
}

async fn check(store: &Arc<dyn ObjectStore>) -> Report {
    fsck(store.as_ref(), Path::from(ROOT)).await
}

fn problems(r: &Report) -> Vec<String> {
    r.findings.iter().filter_map(|f| if let Finding::Problem(s) = f { Some(s.clone()) } else { None }).collect()
}

fn assert_problem(r: &Report, needle: &str) {
    let p = problems(r);
    assert!(p.iter().any(|s| s.contains(needle)), "no problem saying {needle:?}: {p:#?}");
}

#[tokio::test]
async fn a_sound_database_has_no_problems() {
    let (store, _) = seeded(&["a", "b"]).await;
    let r = check(&store).await;
    assert_eq!(r.problems(), 0, "{:#?}", r.findings);
    assert!(r.findings.iter().any(|f| matches!(f, Finding::Ok(s) if s.starts_with("I1"))));
}

#[tokio::test]
async fn an_sst_whose_filter_lacks_a_key_is_a_problem() {
    let (store, m) = seeded(&["a"]).await;
    let h = &m.l0[0];
    // The same object with the filter of another one-key SST (over "zz")
    // spliced in, checksum and all: both filters are 64 bits long.
    let path = Layout::new(Path::from(ROOT)).sst(&h);
    let good = store.get(&path).await.unwrap().bytes().await.unwrap();
    let mut other = SstBuilder::new(4096);
    other.add(Bytes::from("zz"), 1, tidemark::internals::value::Value::from_option(Some(Bytes::from("v")))).unwrap();
    let other = other.finish(&[]);
    let filter_range = |sst: &[u8]| {
        let footer = &sst[sst.len() - 32..];
        let index_off = u64::from_le_bytes(footer[8..16].try_into().unwrap()) as usize;
        let index_len = u32::from_le_bytes(footer[16..20].try_into().unwrap()) as usize;
        let filter_len = u32::from_le_bytes(footer[20..24].try_into().unwrap()) as usize;
        index_off + index_len..index_off + index_len + filter_len
    };
    let (ours, theirs) = (filter_range(&good), filter_range(&other));
    assert_eq!(ours.len(), theirs.len());
    let mut bytes = good.to_vec();
    bytes[ours].copy_from_slice(&other[theirs]);
    store.put(&path, PutPayload::from(bytes)).await.unwrap();
    assert_problem(&check(&store).await, "bloom filter lacks key");
}

#[tokio::test]
async fn handles_that_disagree_with_their_objects_are_problems() {
    let (store, m) = seeded(&["a", "b"]).await;
    let mut bad = m.clone();
    bad.l0[0].size += 1;
    bad.l0[1].first_key = Bytes::from("0");
    record(&store, bad).await;
    let r = check(&store).await;
    assert_problem(&r, "but the manifest records");
    assert_eq!(r.problems(), 2, "{:#?}", problems(&r));
}

#[tokio::test]
async fn a_sorted_run_out_of_key_order_or_an_sst_listed_twice_is_a_problem() {
    let (store, m) = seeded(&["a", "b"]).await;
    let by_key = |k: &str| m.l0.iter().find(|h| h.first_key == k).unwrap().clone();
    // In key order, a run is sound.
    let mut bad = m.clone();
    bad.l0.clear();
    bad.runs = vec![SortedRun { id: 1, ssts: vec![by_key("a"), by_key("b")] }];
    record(&store, bad.clone()).await;
    assert_eq!(check(&store).await.problems(), 0);
    // An SST in L0 and in a run.
    bad.version += 1;
    bad.l0 = vec![by_key("a")];
    record(&store, bad.clone()).await;
    assert_problem(&check(&store).await, "listed twice");
    // Out of key order: the manifest does not even decode.
    bad.version += 1;
    bad.l0.clear();
    bad.runs = vec![SortedRun { id: 1, ssts: vec![by_key("b"), by_key("a")] }];
    record(&store, bad).await;
    assert_problem(&check(&store).await, "not in key order");
}

#[tokio::test]
async fn a_missing_recorded_fence_and_an_unsorted_wal_are_problems() {
    let (store, m) = seeded(&["a"]).await;
    let layout = Layout::new(Path::from(ROOT));
    let mut bad = m.clone();
    bad.fences.push(m.replay_after_wal_id + 1000);
    record(&store, bad).await;
    assert_problem(&check(&store).await, "recorded in the manifest");

    let (store, m) = seeded(&["a"]).await;
    // A WAL at the chain's next position whose blocks hold "b" then "a",
    // while its index claims "a" then "b".
    let wal = encode_wal(WalHeader { writer_epoch: m.writer_epoch, kind: WalKind::Data }, 1, [], 4096, &None).expect("entries without merge operands");
    let meta = tidemark::internals::sst::decode_all(&Path::from("w"), wal).unwrap().0;
    let mut b1 = SstBuilder::new(64);
    b1.add(Bytes::from("b"), 1, tidemark::internals::value::Value::from_option(Some(Bytes::from("1")))).unwrap();
    let mut b2 = SstBuilder::new(64);
    b2.add(Bytes::from("a"), 1, tidemark::internals::value::Value::from_option(Some(Bytes::from("1")))).unwrap();
    // The same shape: one block each; swap the blocks, keep each index.
    let (x, y) = (b2.finish(&meta), b1.finish(&meta));
    let block_len = u64::from_le_bytes(x[x.len() - 24..x.len() - 16].try_into().unwrap()) as usize;
    let mut bytes = x.to_vec();
    bytes[..block_len].copy_from_slice(&y[..block_len]);
    let listed: Vec<_> = store.list(Some(&layout.wal_dir())).try_collect().await.unwrap();
    let top = listed.iter().filter_map(|o| layout.parse_wal(&o.location)).max().unwrap_or(0);
    store.put(&layout.wal(top.max(m.replay_after_wal_id) + 1), PutPayload::from(bytes)).await.unwrap();
    assert_problem(&check(&store).await, "disagree with the index");
}

/// Orphans are reported, but they are not problems: an SST being written or
/// a fenced writer's late upload is normal.
#[tokio::test]
async fn orphans_are_informational() {
    let (store, _) = seeded(&["a"]).await;
    let layout = Layout::new(Path::from(ROOT));
    let mut b = SstBuilder::new(4096);
    b.add(Bytes::from("x"), 1, tidemark::internals::value::Value::from_option(None)).unwrap();
    let orphan = layout.sst_at(SstHandle::new_id(0), tidemark::SstOwner::Writer, 1);
    store.put(&orphan, PutPayload::from(b.finish(&[]))).await.unwrap();
    let r = check(&store).await;
    assert_eq!(r.problems(), 0, "{:#?}", problems(&r));
    assert!(
        r.findings.iter().any(|f| matches!(f, Finding::Orphan(s) if s.contains(orphan.as_ref()))),
        "{:#?}",
        r.findings
    );
}

/// Issue 17, case 3: a sorted run's handle recording a narrower key range
/// than its SST holds used to hide keys from `get` (which picks the SST by
/// the handles) while `scan` of the whole range found them. Opening now
/// compares each handle with its SST's index when the SST is first used, so
/// every read of it fails; fsck reports it too.
#[tokio::test]
async fn a_run_handle_narrower_than_its_sst_fails_every_read_of_it() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = Db::open(ROOT, store.clone()).await.unwrap();
    db.put("a", "1").await.unwrap();
    db.put("b", "2").await.unwrap();
    db.close().await.unwrap();
    let m = latest(&store).await;
    assert_eq!(m.l0.len(), 1);
    let mut bad = m.clone();
    let mut h = bad.l0.pop().unwrap();
    h.last_key = Bytes::from("a");
    bad.runs = vec![SortedRun { id: 1, ssts: vec![h.clone()] }];
    record(&store, bad).await;
    // SSTs open on first use: the first read of this one compares.
    let db = Db::open_read_only(ROOT, store.clone()).await.unwrap();
    let expect_corrupt = |r: tidemark::Result<Option<Bytes>>| match r {
        Err(tidemark::Error::Corrupt { path, reason }) => {
            assert!(path.contains(&ulid::Ulid(h.id).to_string()), "{path}");
            assert!(reason.contains("the manifest records its keys as"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    };
    expect_corrupt(db.get("a").await);
    assert!(matches!(db.scan(..).await.unwrap().collect_vec().await, Err(tidemark::Error::Corrupt { .. })));
    let db = Db::open_read_only(ROOT, store.clone()).await.unwrap();
    assert!(matches!(db.scan(..).await.unwrap().collect_vec().await, Err(tidemark::Error::Corrupt { .. })), "a scan fails on its own");
    // (A point read of "b" alone trusts the handle's "not here", as it trusts
    // a bloom filter's "no", without opening the SST: fsck finds both.)
    assert_problem(&check(&store).await, "but the manifest records");
}

/// A manifest whose run lists SSTs out of key order does not decode.
#[tokio::test]
async fn a_manifest_with_a_run_out_of_order_is_corrupt() {
    let (store, m) = seeded(&["a", "b"]).await;
    let by_key = |k: &str| m.l0.iter().find(|h| h.first_key == k).unwrap().clone();
    let mut bad = m.clone();
    bad.l0.clear();
    bad.runs = vec![SortedRun { id: 1, ssts: vec![by_key("b"), by_key("a")] }];
    record(&store, bad).await;
    match Db::open_read_only(ROOT, store.clone()).await {
        Err(tidemark::Error::Corrupt { path, reason }) => {
            assert!(path.contains("/manifest/"), "{path}");
            assert!(reason.contains("not in key order"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
