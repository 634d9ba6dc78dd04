//! End-to-end tests of the engine on InMemory and LocalFileSystem stores.
#![cfg(not(loom))]

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tidemark::internals::sync::Arc;
use tidemark::{Db, Error, Settings, WriteBatch, WriteOptions};

fn mem() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

fn small() -> Settings {
    Settings::default().with_l0_sst_size_bytes(2048).with_max_unflushed_bytes(64 << 10)
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn list(store: &Arc<dyn ObjectStore>, dir: &str) -> Vec<Path> {
    let mut v: Vec<Path> = store.list(Some(&Path::from(dir))).map_ok(|m| m.location).try_collect().await.unwrap();
    v.sort();
    v
}

#[tokio::test]
async fn put_get_delete_round_trip() {
    let db = Db::open("db", mem()).await.unwrap();
    db.put("k1", "v1").await.unwrap();
    db.put("k2", "v2").await.unwrap();
    assert_eq!(db.get("k1").await.unwrap(), Some(b("v1")));
    db.delete("k1").await.unwrap();
    assert_eq!(db.get("k1").await.unwrap(), None);
    let mut batch = WriteBatch::new();
    batch.put("a", "1").put("b", "2").delete("k2");
    db.write(batch).await.unwrap();
    let all = db.scan(..).await.unwrap().collect_vec().await.unwrap();
    assert_eq!(all, vec![(b("a"), b("1")), (b("b"), b("2"))]);
    db.close().await.unwrap();
    assert!(matches!(db.put("x", "y").await, Err(Error::Closed)));
}

#[tokio::test]
async fn bad_input_is_a_clear_error() {
    let db = Db::open("db", mem()).await.unwrap();
    assert!(matches!(db.put("", "v").await, Err(Error::InvalidArgument(m)) if m.contains("empty")));
    let big_key = vec![b'k'; 70 * 1024];
    assert!(matches!(db.put(big_key, "v").await, Err(Error::InvalidArgument(m)) if m.contains("max_key_size")));
    let bad = Settings::default().with_max_inflight_wal_uploads(0);
    assert!(matches!(Db::open_with("db2", mem(), bad).await, Err(Error::InvalidArgument(_))));
    assert!(matches!(Db::open_url("ftp://x", Settings::default()).await, Err(Error::InvalidArgument(_))));
}

#[tokio::test]
async fn reopen_after_close_and_after_drop_keeps_acked_writes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let db = Db::open_url(&url, small()).await.unwrap();
    for i in 0..200 {
        db.put(format!("key{i:03}"), format!("value{i}")).await.unwrap();
    }
    db.close().await.unwrap();
    let db = Db::open_url(&url, small()).await.unwrap();
    assert_eq!(db.get("key150").await.unwrap(), Some(b("value150")));
    db.put("late", "acked").await.unwrap();
    drop(db); // a crash: no close
    let db = Db::open_url(&url, small()).await.unwrap();
    assert_eq!(db.get("late").await.unwrap(), Some(b("acked")));
    assert_eq!(db.scan(..).await.unwrap().collect_vec().await.unwrap().len(), 201);
}

#[tokio::test]
async fn writes_without_await_durable_are_durable_after_flush() {
    let store = mem();
    let db = Db::open("db", store.clone()).await.unwrap();
    let fire = WriteOptions { await_durable: false };
    for i in 0..100 {
        db.put_with(format!("k{i}"), "v", &fire).await.unwrap();
    }
    db.flush().await.unwrap();
    drop(db);
    let db = Db::open("db", store).await.unwrap();
    assert_eq!(db.scan(..).await.unwrap().collect_vec().await.unwrap().len(), 100);
}

#[tokio::test]
async fn scans_merge_memtable_and_ssts_with_deletes() {
    let store = mem();
    let db = Db::open_with("db", store.clone(), small()).await.unwrap();
    for i in 0..300 {
        db.put(format!("k{i:03}"), format!("old{i}")).await.unwrap();
    }
    for i in (0..300).step_by(3) {
        db.delete(format!("k{i:03}")).await.unwrap();
    }
    db.put("k001", "new").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!db.manifest().await.l0.is_empty(), "some data reached L0 SSTs");
    let check = |rows: Vec<(Bytes, Bytes)>| {
        assert_eq!(rows.len(), 200);
        assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "keys in order");
        assert_eq!(rows[0], (b("k001"), b("new")));
    };
    check(db.scan(..).await.unwrap().collect_vec().await.unwrap());
    db.close().await.unwrap();
    let db = Db::open_with("db", store, small()).await.unwrap();
    check(db.scan(..).await.unwrap().collect_vec().await.unwrap());
    let some = db.scan(b("k010")..b("k020")).await.unwrap().collect_vec().await.unwrap();
    assert_eq!(some.len(), 7); // 10..20 minus 12, 15, 18
    assert_eq!(db.scan_prefix("k29").await.unwrap().collect_vec().await.unwrap().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_writers_share_wal_objects() {
    let store = mem();
    let db = Arc::new(Db::open("db", store.clone()).await.unwrap());
    let mut tasks = Vec::new();
    for w in 0..64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                db.put(format!("w{w}-{i}"), "v").await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let wals = list(&store, "db/wal").await.len();
    assert!(wals < 64 * 20, "group commit: {wals} WAL objects for 1280 writes");
    assert_eq!(db.scan(..).await.unwrap().collect_vec().await.unwrap().len(), 1280);
}

#[tokio::test]
async fn an_older_writer_is_fenced() {
    let store = mem();
    let old = Db::open("db", store.clone()).await.unwrap();
    old.put("a", "1").await.unwrap();
    let new = Db::open("db", store.clone()).await.unwrap();
    assert!(new.writer_epoch() > old.writer_epoch());
    match old.put("b", "2").await {
        Err(Error::Fenced { writer_epoch, by }) => assert_eq!((writer_epoch, by), (old.writer_epoch(), new.writer_epoch())),
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert!(matches!(old.put("c", "3").await, Err(Error::Fenced { .. })), "stays fenced");
    assert_eq!(new.get("a").await.unwrap(), Some(b("1")));
    assert_eq!(new.get("b").await.unwrap(), None);
}

async fn flip_byte(store: &Arc<dyn ObjectStore>, path: &Path, at: usize) {
    let mut bytes = store.get(path).await.unwrap().bytes().await.unwrap().to_vec();
    let i = at.min(bytes.len() - 1);
    bytes[i] ^= 0x40;
    store.put(path, PutPayload::from(bytes)).await.unwrap();
}

#[tokio::test]
async fn corrupt_objects_are_reported_by_name() {
    // A WAL.
    let store = mem();
    let db = Db::open("db", store.clone()).await.unwrap();
    db.put("k", "v").await.unwrap();
    drop(db);
    let wal = list(&store, "db/wal").await.pop().unwrap();
    flip_byte(&store, &wal, 3).await;
    match Db::open("db", store.clone()).await {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, wal.to_string()),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A manifest.
    let store = mem();
    Db::open("db", store.clone()).await.unwrap().close().await.unwrap();
    let manifest = list(&store, "db/manifest").await.pop().unwrap();
    flip_byte(&store, &manifest, 12).await;
    match Db::open("db", store.clone()).await {
        Err(Error::Corrupt { path, reason }) => {
            assert_eq!(path, manifest.to_string());
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // An SST block: reads that touch it fail; reads that do not, succeed.
    let store = mem();
    let db = Db::open_with("db", store.clone(), small()).await.unwrap();
    for i in 0..100 {
        db.put(format!("k{i:03}"), format!("value-{i}-{}", "x".repeat(40))).await.unwrap();
    }
    db.close().await.unwrap();
    // An SST the manifest references (compaction leaves its inputs behind
    // until GC's minimum age has passed).
    let m = Db::open_read_only("db", store.clone()).await.unwrap().manifest().await;
    let sst = tidemark::internals::paths::Layout::new(Path::from("db")).sst(m.ssts().next().unwrap());
    flip_byte(&store, &sst, 10).await;
    let db = Db::open_with("db", store.clone(), small()).await.unwrap();
    let err = db.scan(..).await.unwrap().collect_vec().await.unwrap_err();
    assert!(matches!(&err, Error::Corrupt { path, .. } if *path == sst.to_string()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_referenced_wal_is_missing_wal() {
    let store = mem();
    // A manifest written by an L0 flush while later WALs were already
    // durable requires them (wal_id_last_seen > replay_after_wal_id); the
    // process then dies without close, so recovery must read them.
    // No gathering: many small WALs overlap, as this schedule needs.
    let settings = small().with_compactor(false).with_burst_gap(Duration::ZERO).with_wal_put_budget(tidemark::PutBudget::Unlimited);
    let db = Arc::new(Db::open_with("db", store.clone(), settings).await.unwrap());
    let mut m = db.manifest().await;
    for round in 0..200 {
        // Concurrent writers keep WALs becoming durable while a frozen
        // memtable is flushed, so its manifest records a later watermark.
        let tasks: Vec<_> = (0..8)
            .map(|w| {
                let db = db.clone();
                tokio::spawn(async move { db.put(format!("k{round:03}-{w}"), "a value that fills the memtable").await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        m = db.manifest().await;
        if m.wal_id_last_seen > m.replay_after_wal_id && m.replay_after_wal_id > 0 {
            break;
        }
    }
    drop(db);
    assert!(m.wal_id_last_seen > m.replay_after_wal_id, "{m:?}");
    let victim = m.wal_id_last_seen;
    let path = Path::from(format!("db/wal/{victim:020}.sst"));
    store.delete(&path).await.unwrap();
    match Db::open("db", store).await {
        Err(Error::MissingWal { id, path: p }) => {
            assert_eq!(id, victim);
            assert_eq!(p, path.to_string());
        }
        other => panic!("expected MissingWal, got {other:?}"),
    }
}

#[tokio::test]
async fn protocol_actions_are_recorded_in_the_spec_names_and_order() {
    use tidemark::internals::trace::{MemoryRecorder, TraceEvent};
    let recorder = MemoryRecorder::new();
    let settings = small().with_recorder(Arc::new(recorder.clone()));
    let db = Db::open_with("db", mem(), settings).await.unwrap();
    for i in 0..40 {
        db.put(format!("k{i:02}"), "some value of moderate size").await.unwrap();
    }
    db.close().await.unwrap();
    let steps = recorder.steps();
    let names: Vec<&str> = steps.iter().map(|s| s.event.action()).collect();
    assert_eq!(&names[..2], ["Recover", "Fence"]);
    let pos = |name: &str| names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no {name} in {names:?}"));
    assert!(pos("Put") < pos("FreezeWal") && pos("FreezeWal") < pos("UploadWal"));
    assert!(pos("UploadWal") < pos("WalDurable") && pos("WalDurable") < pos("Ack"));
    assert!(pos("FreezeMemtable") < pos("FlushL0") && pos("FlushL0") < pos("WriteManifest"));
    // Every Put names the WAL that a later FreezeWal froze, never an earlier one.
    let mut frozen_upto = 0;
    for s in &steps {
        match s.event {
            TraceEvent::FreezeWal { wal_id } => frozen_upto = wal_id,
            TraceEvent::Put { wal_id } => assert!(wal_id > frozen_upto, "Put into already-frozen wal {wal_id}"),
            TraceEvent::WriteManifest { wal_id_last_seen, .. } => {
                let durable = steps
                    .iter()
                    .take_while(|t| !std::ptr::eq(*t, s))
                    .filter_map(|t| match t.event {
                        TraceEvent::WalDurable { durable_wal_id, .. } => Some(durable_wal_id),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0);
                assert!(wal_id_last_seen <= durable.max(64), "I1: manifest ahead of the watermark");
            }
            _ => {}
        }
        assert_eq!(s.writer_epoch, 1);
    }
}
