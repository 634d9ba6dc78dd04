//! The small real database the `db_open` target replaces one object of
//! (issue 17), built once per process and shared with the seeds example, so
//! that the seeds are exactly the objects the target replaces.
//!
//! It holds a sorted run of two SSTs (a compaction of three L0 SSTs), one L0
//! SST over it, and five WALs a recovery replays, with overwrites and
//! deletes across all three levels. Garbage a collection would delete is
//! removed, and ids and tokens are made canonical (SST ids 1, 2, 3, tokens
//! 0), so every process builds the same bytes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tidemark::internals::manifest::ManifestObject;
use tidemark::internals::paths::Layout;
use tidemark::internals::protocol::{WalHeader, WalKind};
use tidemark::internals::wal_object::{decode_wal, encode_wal};
use tidemark::internals::value::Value;
use tidemark::{Db, PutOptions, Settings, Ttl, WriteBatch, WriteOptions};

use crate::{reseal_manifest, reseal_sst};

/// Which decoder reads an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Wal,
    Sst,
    Manifest,
}

impl Kind {
    /// The re-seal for this kind of object.
    pub fn reseal(self) -> fn(&mut [u8]) {
        match self {
            Kind::Wal | Kind::Sst => reseal_sst,
            Kind::Manifest => reseal_manifest,
        }
    }
}

/// An object the fuzz input may replace.
#[derive(Clone, Debug)]
pub struct Slot {
    pub path: Path,
    pub kind: Kind,
    /// The object the base database holds there; `None` for the WAL after
    /// the last one (a late upload of the last writer) and the one after
    /// that (an orphan behind a gap, which recovery must not replay).
    pub original: Option<Bytes>,
}

/// The base database and what it holds.
pub struct Base {
    /// Fork it per input (`InMemory::fork` copies the objects).
    pub store: Arc<InMemory>,
    /// The latest manifest, then the WALs to replay, then the SSTs (L0,
    /// run), then the next WAL id and the one after it.
    pub slots: Vec<Slot>,
    /// Every key ever written, deleted ones included, in order.
    pub keys: Vec<Bytes>,
    /// Live keys and values.
    pub data: BTreeMap<Bytes, Bytes>,
}

/// A clock that never moves: expiry times in the base are the same bytes in
/// every process, and which values have expired never changes.
#[derive(Debug)]
struct Fixed;

impl tidemark::Clock for Fixed {
    fn now_ms(&self) -> u64 {
        1_800_000_000_000
    }
}

/// Settings without background timers that fire within an input's
/// milliseconds: no periodic WAL freeze (durable puts wake the flusher), no
/// burst gap, no GC, no compactor; small blocks, so SSTs have several; merge
/// operands appended (`Concat`); a clock that never moves.
pub fn settings() -> Settings {
    let mut s = Settings::default()
        .with_merge_operator(Arc::new(tidemark::Concat))
        .with_clock(Arc::new(Fixed))
        .with_flush_interval(Duration::from_secs(3600))
        .with_burst_gap(Duration::ZERO)
        .with_gc_interval(Duration::ZERO)
        .with_compactor(false)
        .with_compacted_sst_size_bytes(400)
        .with_l0_max_ssts(4);
    s.block_size = 128;
    s
}

fn value(i: usize) -> String {
    "v".repeat(i * 7 % 40)
}

async fn put_all(db: &Db, prefix: &str, n: usize) {
    for i in 0..n {
        db.put(format!("{prefix}{i:02}"), value(i)).await.expect("base: put");
    }
}

async fn open(store: &Arc<dyn ObjectStore>, compactor: bool) -> Db {
    Db::open_with("", store.clone(), settings().with_compactor(compactor)).await.expect("base: open")
}

/// Builds the base database (see the module doc). Panics if the engine
/// cannot build it: then every input would fail for the same reason.
pub async fn build() -> Base {
    let mem = Arc::new(InMemory::new());
    let store: Arc<dyn ObjectStore> = mem.clone();
    // Three L0 SSTs, compacted into one run at the third close.
    let db = open(&store, false).await;
    put_all(&db, "a", 12).await;
    db.close().await.expect("base: close");
    let db = open(&store, false).await;
    put_all(&db, "b", 12).await;
    db.put("a03", "over-a03").await.unwrap();
    db.delete("a05").await.unwrap();
    // Merge operands onto a value and onto nothing, an expired value over
    // an older one and a living one: every entry kind in the seeds.
    db.merge("a01", "+m1").await.unwrap();
    db.merge("m00", "+m0").await.unwrap();
    let ttl = |d: Duration| PutOptions { ttl: Ttl::ExpireAfter(d) };
    db.put_with_options("a02", "expired", &ttl(Duration::ZERO), &WriteOptions::default()).await.unwrap();
    db.put_with_options("b01", "a day", &ttl(Duration::from_secs(86_400)), &WriteOptions::default()).await.unwrap();
    db.close().await.expect("base: close");
    let db = open(&store, true).await;
    put_all(&db, "c", 6).await;
    db.merge("a01", "+m2").await.unwrap();
    db.put("b02", "over-b02").await.unwrap();
    db.delete("b04").await.unwrap();
    db.close().await.expect("base: close (compacts)");
    // One L0 SST over the run.
    let db = open(&store, false).await;
    put_all(&db, "d", 6).await;
    db.put("c01", "over-c01").await.unwrap();
    db.delete("a00").await.unwrap();
    db.close().await.expect("base: close");
    // WALs left to replay: a writer that stops without closing.
    let db = open(&store, false).await;
    db.put("e00", "e0").await.unwrap();
    db.put("d02", "over-d02").await.unwrap();
    db.delete("c03").await.unwrap();
    let mut batch = WriteBatch::new();
    batch.put("e01", "e1").put("a07", "over-a07");
    db.write(batch).await.unwrap();
    db.put("e02", "").await.unwrap();
    let mut batch = WriteBatch::new();
    batch.merge("m00", "+m3").merge("e03", "+e").put_with("e04", "brief", PutOptions { ttl: Ttl::ExpireAfter(Duration::ZERO) });
    db.write(batch).await.unwrap();
    drop(db);

    let data = scan_read_only(&store).await;
    let slots = canonicalize(store.as_ref()).await;
    assert_eq!(scan_read_only(&store).await, data, "base: the canonical store reads differently");
    let m = latest(store.as_ref()).await;
    assert!(!m.runs.is_empty() && !m.l0.is_empty(), "base: wants a sorted run and an L0 SST: {m:?}");
    let wals = slots.iter().filter(|s| s.kind == Kind::Wal && s.original.is_some()).count();
    assert!(wals >= 4, "base: wants WALs to replay, has {wals}");
    let mut keys: Vec<Bytes> = Vec::new();
    for (p, n) in [("a", 12), ("b", 12), ("c", 6), ("d", 6), ("e", 3)] {
        keys.extend((0..n).map(|i| Bytes::from(format!("{p}{i:02}"))));
    }
    Base { store: mem, slots, keys, data }
}

async fn scan_read_only(store: &Arc<dyn ObjectStore>) -> BTreeMap<Bytes, Bytes> {
    let db = Db::open_read_only_with("", store.clone(), settings()).await.expect("base: read-only open");
    db.scan(..).await.expect("base: scan").collect_vec().await.expect("base: scan").into_iter().collect()
}

async fn get(store: &dyn ObjectStore, p: &Path) -> Bytes {
    store.get(p).await.unwrap().bytes().await.unwrap()
}

async fn latest(store: &dyn ObjectStore) -> ManifestObject {
    let layout = Layout::new(Path::from(""));
    let listed: Vec<_> = store.list(Some(&layout.manifest_dir())).try_collect().await.unwrap();
    let v = listed.iter().filter_map(|m| layout.parse_manifest(&m.location)).max().expect("base: a manifest");
    ManifestObject::decode("base", &get(store, &layout.manifest(v)).await).expect("base: manifest decodes")
}

/// Deletes what GC would (older manifests, WALs up to the replay point
/// that are not fences, SSTs the manifest does not list), renames the SSTs
/// to ids 1, 2, 3 and zeroes the tokens. Returns the slots.
async fn canonicalize(store: &dyn ObjectStore) -> Vec<Slot> {
    let layout = Layout::new(Path::from(""));
    let mut m = latest(store).await;
    let mut objects = BTreeMap::new();
    let listed: Vec<Path> = store.list(None).map_ok(|o| o.location).try_collect().await.unwrap();
    for p in listed {
        objects.insert(p.clone(), get(store, &p).await);
        store.delete(&p).await.unwrap();
    }
    let mut ssts = Vec::new();
    let mut next_id = 1u128;
    for h in m.l0.iter_mut().chain(m.runs.iter_mut().flat_map(|r| r.ssts.iter_mut())) {
        let bytes = objects[&layout.sst(h)].clone();
        h.id = next_id;
        next_id += 1;
        ssts.push(Slot { path: layout.sst(h), kind: Kind::Sst, original: Some(bytes) });
    }
    m.token = 0;
    let manifest = Slot { path: layout.manifest(m.version), kind: Kind::Manifest, original: Some(m.encode()) };
    let mut wals = Vec::new();
    let mut last_wal = m.replay_after_wal_id;
    for (p, bytes) in &objects {
        let Some(id) = layout.parse_wal(p) else { continue };
        if id <= m.replay_after_wal_id && !m.fences.contains(&id) {
            continue;
        }
        let wal = decode_wal(p, bytes.clone()).expect("base: WAL decodes");
        let canonical = encode_wal(wal.header, 0, wal.entries, settings().block_size, &settings().merge_operator).expect("base: WAL encodes");
        wals.push(Slot { path: p.clone(), kind: Kind::Wal, original: Some(canonical) });
        last_wal = last_wal.max(id);
    }
    let next = Slot { path: layout.wal(last_wal + 1), kind: Kind::Wal, original: None };
    let after_gap = Slot { path: layout.wal(last_wal + 2), kind: Kind::Wal, original: None };
    let slots: Vec<Slot> = std::iter::once(manifest).chain(wals).chain(ssts).chain([next, after_gap]).collect();
    for s in &slots {
        if let Some(b) = &s.original {
            store.put(&s.path, PutPayload::from(b.clone())).await.unwrap();
        }
    }
    slots
}

impl Base {
    /// A data WAL of the last writer's epoch holding `zombie` = `late`: the
    /// seed for the slots past the last WAL.
    pub fn late_wal(&self) -> Bytes {
        let last = self.slots.iter().filter(|s| s.kind == Kind::Wal).filter_map(|s| s.original.clone()).last();
        let last = decode_wal(&Path::from("wal"), last.expect("base: a WAL")).expect("base: WAL decodes");
        let header = WalHeader { writer_epoch: last.header.writer_epoch, kind: WalKind::Data };
        let seq = last.entries.iter().map(|e| e.1).max().unwrap_or(0) + 1;
        let entry = (Bytes::from_static(b"zombie"), seq, Value::Put(Bytes::from_static(b"late")));
        encode_wal(header, 0, [entry], settings().block_size, &None).expect("entries without merge operands")
    }
}

/// A digest of the base's objects (FNV-1a), to check that two processes
/// built the same bytes.
pub fn digest(slots: &[Slot]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for s in slots {
        for b in s.path.as_ref().bytes().chain(s.original.iter().flat_map(|o| o.iter().copied())) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}
