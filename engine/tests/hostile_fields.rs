//! Issue 17, case 1: objects with valid checksums whose ids, epochs or
//! versions are near `u64::MAX`. Each open (read-write and read-only) is
//! `Error::Corrupt` naming the object and the field: never a wrap, never a
//! panic (these tests run in debug builds, where overflow panics), and never
//! a write acknowledged on top of a state the next open would refuse.
#![cfg(not(loom))]

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tidemark::internals::manifest::ManifestObject;
use tidemark::internals::paths::Layout;
use tidemark::internals::bounds::MAX_EPOCH;
use tidemark::internals::protocol::{WalHeader, WalKind, MAX_ID};
use tidemark::internals::sync::Arc;
use tidemark::internals::wal_object::encode_wal;
use tidemark::{Db, Error};

const ROOT: &str = "db";

fn layout() -> Layout {
    Layout::new(Path::from(ROOT))
}

/// A database holding `k = v` (in a WAL) and its latest manifest.
async fn seeded() -> (Arc<dyn ObjectStore>, ManifestObject) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = Db::open(ROOT, store.clone()).await.unwrap();
    db.put("k", "v").await.unwrap();
    db.close().await.unwrap();
    let m = latest(&store).await;
    (store, m)
}

async fn latest(store: &Arc<dyn ObjectStore>) -> ManifestObject {
    let layout = layout();
    let listed: Vec<_> = store.list(Some(&layout.manifest_dir())).try_collect().await.unwrap();
    let v = listed.iter().filter_map(|m| layout.parse_manifest(&m.location)).max().unwrap();
    let bytes = store.get(&layout.manifest(v)).await.unwrap().bytes().await.unwrap();
    ManifestObject::decode("m", &bytes).unwrap()
}

async fn put_manifest(store: &Arc<dyn ObjectStore>, m: &ManifestObject) -> Path {
    // `encode` seals the checksum: only the field is hostile.
    let path = layout().manifest(m.version);
    store.put(&path, PutPayload::from(m.encode())).await.unwrap();
    path
}

async fn objects(store: &Arc<dyn ObjectStore>) -> Vec<Path> {
    let mut v: Vec<Path> = store.list(None).map_ok(|m| m.location).try_collect().await.unwrap();
    v.sort();
    v
}

fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, Error>, path: &str, field: &str, what: &str) {
    match r {
        Err(Error::Corrupt { path: p, reason }) => {
            assert!(p.contains(path), "{what}: names {p}, expected {path}");
            assert!(reason.contains(field), "{what}: reason {reason:?} does not name {field}");
        }
        other => panic!("{what}: expected Corrupt naming {path} and {field}, got {other:?}"),
    }
}

/// Opens read-only and read-write: both refuse, naming the object and the
/// field. The read-write open may claim an epoch first (a version copying
/// the current one), but nothing else is written: no WAL, no SST, so no put
/// can have been acknowledged.
async fn assert_refused(store: &Arc<dyn ObjectStore>, path: &str, field: &str, what: &str) {
    assert_corrupt(Db::open_read_only(ROOT, store.clone()).await, path, field, &format!("{what}, read-only"));
    let before: Vec<Path> = objects(store).await.into_iter().filter(|p| !p.as_ref().contains("/manifest/")).collect();
    assert_corrupt(Db::open(ROOT, store.clone()).await, path, field, &format!("{what}, read-write"));
    let after: Vec<Path> = objects(store).await.into_iter().filter(|p| !p.as_ref().contains("/manifest/")).collect();
    assert_eq!(before, after, "{what}: the refused open wrote a WAL or an SST");
}

#[tokio::test]
async fn manifest_fields_at_u64_max_are_corrupt_by_name() {
    type Set = fn(&mut ManifestObject);
    let cases: [(&str, Set); 5] = [
        ("writer_epoch", |m| m.writer_epoch = u64::MAX),
        ("compactor_epoch", |m| m.compactor_epoch = u64::MAX),
        ("replay_after_wal_id", |m| m.replay_after_wal_id = u64::MAX),
        ("wal_id_last_seen", |m| m.wal_id_last_seen = u64::MAX),
        ("fences", |m| m.fences.push(u64::MAX)),
    ];
    for (field, set) in cases {
        let (store, mut m) = seeded().await;
        m.version += 1;
        set(&mut m);
        let path = put_manifest(&store, &m).await;
        assert_refused(&store, path.as_ref(), field, field).await;
    }
    // A version at u64::MAX, under its own (20-digit) name.
    let (store, mut m) = seeded().await;
    m.version = u64::MAX;
    let path = put_manifest(&store, &m).await;
    assert_refused(&store, path.as_ref(), "version 18446744073709551615 leaves no room", "version").await;
}

#[tokio::test]
async fn the_message_names_the_field_and_why() {
    let (store, mut m) = seeded().await;
    m.version += 1;
    m.writer_epoch = u64::MAX;
    let path = put_manifest(&store, &m).await;
    match Db::open(ROOT, store.clone()).await {
        Err(e @ Error::Corrupt { .. }) => assert_eq!(
            e.to_string(),
            format!(
                "Corrupt: {path}: writer_epoch 18446744073709551615 leaves no room for the next epoch (epochs are at most {MAX_EPOCH}: epoch << 32 numbers its writes or runs)"
            )
        ),
        other => panic!("{other:?}"),
    }
}

/// Values at the bound decode, but the next epoch or version would not:
/// the open refuses before creating it, so the database stays openable
/// by a build that accepts it and nothing is acknowledged on top.
#[tokio::test]
async fn values_at_the_bound_are_refused_before_anything_is_written_on_top() {
    let (store, mut m) = seeded().await;
    m.version += 1;
    m.writer_epoch = MAX_EPOCH;
    let path = put_manifest(&store, &m).await;
    let before = objects(&store).await;
    assert_corrupt(Db::open(ROOT, store.clone()).await, path.as_ref(), "writer_epoch", "epoch at the bound");
    assert_eq!(objects(&store).await, before, "no claimed version, WAL or SST was written");
    // Read-only opens claim nothing: the data is still readable.
    let ro = Db::open_read_only(ROOT, store.clone()).await.unwrap();
    assert_eq!(ro.get("k").await.unwrap(), Some(Bytes::from("v")));

    let (store, mut m) = seeded().await;
    m.version = MAX_ID;
    let path = put_manifest(&store, &m).await;
    let before = objects(&store).await;
    assert_corrupt(Db::open(ROOT, store.clone()).await, path.as_ref(), "version", "version at the bound");
    assert_eq!(objects(&store).await, before);

    // replay_after_wal_id so high that the new writer's fence would leave the range.
    let (store, mut m) = seeded().await;
    m.version += 1;
    m.replay_after_wal_id = MAX_ID - 10;
    m.wal_id_last_seen = MAX_ID - 10;
    put_manifest(&store, &m).await;
    assert_refused(&store, "manifest", "replay_after_wal_id", "replay_after_wal_id near the bound").await;
}

/// A fence WAL whose `next_wal_id` is `u64::MAX`, at the chain's next
/// position: recovery used to overflow computing the chain (debug) or wrap.
#[tokio::test]
async fn a_fence_with_next_wal_id_at_u64_max_is_corrupt_by_name() {
    for next_wal_id in [u64::MAX, MAX_ID + 1, MAX_ID] {
        let (store, m) = seeded().await;
        let layout = layout();
        let listed: Vec<_> = store.list(Some(&layout.wal_dir())).try_collect().await.unwrap();
        let top = listed.iter().filter_map(|o| layout.parse_wal(&o.location)).max().unwrap_or(m.replay_after_wal_id);
        // The position the next recovery's chain reaches first after the
        // WALs that exist (a clean close leaves no fence at the gap).
        let at = top.max(m.replay_after_wal_id) + 1;
        let header = WalHeader { writer_epoch: m.writer_epoch, kind: WalKind::Fence { next_wal_id } };
        let path = layout.wal(at);
        store.put(&path, PutPayload::from(encode_wal(header, 1, [], 4096, &None).expect("entries without merge operands"))).await.unwrap();
        assert_refused(&store, path.as_ref(), "next_wal_id", &format!("fence to {next_wal_id}")).await;
        // Remove the hostile object: the database opens with its data.
        store.delete(&path).await.unwrap();
        let db = Db::open(ROOT, store.clone()).await.unwrap();
        assert_eq!(db.get("k").await.unwrap(), Some(Bytes::from("v")));
        db.put("k2", "v2").await.unwrap();
        db.close().await.unwrap();
    }
}

/// A WAL whose writer_epoch is u64::MAX: refused at decode by name.
#[tokio::test]
async fn a_wal_with_writer_epoch_at_u64_max_is_corrupt_by_name() {
    let (store, m) = seeded().await;
    let layout = layout();
    let listed: Vec<_> = store.list(Some(&layout.wal_dir())).try_collect().await.unwrap();
    let top = listed.iter().filter_map(|o| layout.parse_wal(&o.location)).max().unwrap_or(0);
    let at = top.max(m.replay_after_wal_id) + 1;
    let header = WalHeader { writer_epoch: u64::MAX, kind: WalKind::Data };
    let path = layout.wal(at);
    let entries = [(Bytes::from("x"), 1, tidemark::internals::value::Value::Put(Bytes::from("y")))];
    store.put(&path, PutPayload::from(encode_wal(header, 1, entries, 4096, &None).expect("entries without merge operands"))).await.unwrap();
    assert_refused(&store, path.as_ref(), "writer_epoch", "WAL epoch").await;
}

/// A WAL named above the bound, where the chain would reach it next.
/// (Walks that reach `u64::MAX` itself are in the protocol's unit tests.)
#[tokio::test]
async fn a_wal_named_above_the_bound_on_the_chain_is_refused() {
    let (store, mut m) = seeded().await;
    m.version += 1;
    m.replay_after_wal_id = MAX_ID;
    m.wal_id_last_seen = MAX_ID;
    put_manifest(&store, &m).await;
    let header = WalHeader { writer_epoch: 1, kind: WalKind::Data };
    let path = layout().wal(MAX_ID + 1);
    store.put(&path, PutPayload::from(encode_wal(header, 1, [], 4096, &None).expect("entries without merge operands"))).await.unwrap();
    assert_refused(&store, "manifest", "replay_after_wal_id", "WAL at u64::MAX").await;
}

/// User-given lengths the SST format records as u32 are bounded up front.
#[tokio::test]
async fn settings_beyond_the_formats_lengths_are_refused() {
    for s in [
        tidemark::Settings { max_value_size: 5 << 30, ..Default::default() },
        tidemark::Settings { max_key_size: usize::MAX, ..Default::default() },
        tidemark::Settings { block_size: 1 << 40, ..Default::default() },
    ] {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        assert!(matches!(Db::open_with(ROOT, store, s).await, Err(Error::InvalidArgument(_))));
    }
}
