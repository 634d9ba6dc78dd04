//! Crafting hostile databases for the hostile-data tests: manifests and
//! SSTs rewritten with valid checksums and one hostile field, and the
//! checks every crafted case must pass ("fsck clean implies a read-write
//! open and a put succeed"). Included with `#[path]` by the tests that use it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tidemark::internals::manifest::ManifestObject;
use tidemark::internals::paths::Layout;
use tidemark::{Db, FsckFinding, Settings};

pub const ROOT: &str = "db";

pub fn layout() -> Layout {
    Layout::new(Path::from(ROOT))
}

/// Small SSTs of several blocks, no background GC, compaction of L0 at 2.
/// Plain blocks: the crafter edits entries in place.
pub fn settings() -> Settings {
    let mut s = Settings::default()
        .with_gc_interval(Duration::ZERO)
        .with_l0_max_ssts(4)
        .with_compression(tidemark::Compression::None);
    s.block_size = 64;
    s
}

pub fn store() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

pub async fn get(store: &Arc<dyn ObjectStore>, p: &Path) -> Bytes {
    store.get(p).await.unwrap().bytes().await.unwrap()
}

pub async fn put(store: &Arc<dyn ObjectStore>, p: &Path, bytes: Bytes) {
    store.put(p, PutPayload::from(bytes)).await.unwrap();
}

/// Writes `pairs` (a `None` value deletes) with one writer and closes it:
/// one L0 SST when they fit one memtable.
pub async fn write_closed(store: &Arc<dyn ObjectStore>, s: Settings, pairs: &[(&str, Option<&str>)]) {
    let db = Db::open_with(ROOT, store.clone(), s).await.unwrap();
    for (k, v) in pairs {
        match v {
            Some(v) => db.put(k.to_string(), v.to_string()).await.unwrap(),
            None => db.delete(k.to_string()).await.unwrap(),
        }
    }
    db.close().await.unwrap();
}

pub async fn latest(store: &Arc<dyn ObjectStore>) -> ManifestObject {
    let layout = layout();
    let listed: Vec<_> = store.list(Some(&layout.manifest_dir())).try_collect().await.unwrap();
    let v = listed.iter().filter_map(|m| layout.parse_manifest(&m.location)).max().unwrap();
    ManifestObject::decode("latest", &get(store, &layout.manifest(v)).await).unwrap()
}

/// Writes `m` as the next version (its checksum sealed: only fields are
/// hostile) and returns its path.
pub async fn put_next_manifest(store: &Arc<dyn ObjectStore>, m: &mut ManifestObject) -> Path {
    m.version += 1;
    let path = layout().manifest(m.version);
    put(store, &path, m.encode()).await;
    path
}

/// The WAL id a recovery's chain reaches next: after every listed WAL.
pub async fn next_wal_id(store: &Arc<dyn ObjectStore>, m: &ManifestObject) -> u64 {
    let layout = layout();
    let listed: Vec<_> = store.list(Some(&layout.wal_dir())).try_collect().await.unwrap();
    let top = listed.iter().filter_map(|o| layout.parse_wal(&o.location)).max().unwrap_or(0);
    top.max(m.replay_after_wal_id) + 1
}

/// fsck's problems.
pub async fn fsck_problems(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let report = tidemark::fsck(store.as_ref(), Path::from(ROOT)).await;
    report
        .findings
        .into_iter()
        .filter_map(|f| match f {
            FsckFinding::Problem(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// A read-write open, a put, a close, and a read-only reopen that holds it.
pub async fn writable(store: &Arc<dyn ObjectStore>, s: Settings) -> Result<(), String> {
    let db = Db::open_with(ROOT, store.clone(), s).await.map_err(|e| format!("read-write open: {e}"))?;
    let put = db.put("after-fsck", "written").await.map_err(|e| format!("put: {e}"));
    let closed = db.close().await.map_err(|e| format!("close: {e}"));
    put?;
    closed?;
    let ro = Db::open_read_only(ROOT, store.clone()).await.map_err(|e| format!("reopen: {e}"))?;
    match ro.get("after-fsck").await {
        Ok(Some(v)) if v == "written" => Ok(()),
        other => Err(format!("the put is not there after reopen: {other:?}")),
    }
}

/// The promise every crafted case keeps: a database fsck finds clean opens
/// for writing and takes a put. Returns fsck's problems.
pub async fn fsck_clean_implies_writable(store: &Arc<dyn ObjectStore>, s: Settings, what: &str) -> Vec<String> {
    let problems = fsck_problems(store).await;
    if problems.is_empty() {
        if let Err(e) = writable(store, s).await {
            panic!("{what}: fsck finds the database clean, but {e}");
        }
    }
    problems
}

/// The sections of an SST object, to rewrite some and re-seal all.
pub struct SstParts {
    pub blocks: Vec<u8>,
    /// (first key, last key, offset, length) per block, as the index holds them.
    pub index: Vec<(Vec<u8>, Vec<u8>, u64, u32)>,
    pub filter: Vec<u8>,
    pub meta: Vec<u8>,
    /// The footer's format version and codec, written back as they were.
    pub version: u16,
    pub codec: u16,
}

fn unsealed(section: &[u8]) -> &[u8] {
    &section[..section.len() - 4]
}

fn sealed(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

impl SstParts {
    pub fn parse(obj: &[u8]) -> SstParts {
        let footer = &obj[obj.len() - 32..];
        let index_off = u64::from_le_bytes(footer[8..16].try_into().unwrap()) as usize;
        let lens: Vec<usize> = [16, 20, 24].iter().map(|at| u32::from_le_bytes(footer[*at..*at + 4].try_into().unwrap()) as usize).collect();
        let (i, f, m) = (index_off, index_off + lens[0], index_off + lens[0] + lens[1]);
        SstParts {
            blocks: obj[..index_off].to_vec(),
            index: postcard::from_bytes(unsealed(&obj[i..f])).unwrap(),
            filter: unsealed(&obj[f..m]).to_vec(),
            meta: unsealed(&obj[m..m + lens[2]]).to_vec(),
            version: u16::from_le_bytes([footer[4], footer[5]]),
            codec: u16::from_le_bytes([footer[6], footer[7]]),
        }
    }

    pub fn build(&self) -> Bytes {
        let mut out = self.blocks.clone();
        let index_off = out.len() as u64;
        let index = sealed(postcard::to_stdvec(&self.index).unwrap());
        let filter = sealed(self.filter.clone());
        let meta = sealed(self.meta.clone());
        out.extend_from_slice(&index);
        out.extend_from_slice(&filter);
        out.extend_from_slice(&meta);
        let mut footer = Vec::new();
        footer.extend_from_slice(&0x5444_4d4bu32.to_le_bytes());
        footer.extend_from_slice(&self.version.to_le_bytes());
        footer.extend_from_slice(&self.codec.to_le_bytes());
        footer.extend_from_slice(&index_off.to_le_bytes());
        footer.extend_from_slice(&(index.len() as u32).to_le_bytes());
        footer.extend_from_slice(&(filter.len() as u32).to_le_bytes());
        footer.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(&sealed(footer));
        Bytes::from(out)
    }
}

fn hashes(key: &[u8]) -> (u32, u32) {
    (crc32c::crc32c(key), crc32c::crc32c_append(0x9e37_79b9, key) | 1)
}

/// A filter body as the engine builds it (k = 7, 10 bits a key) over `keys`.
pub fn bloom(keys: &[&[u8]]) -> Vec<u8> {
    let nbits = (keys.len() * 10).max(64).next_multiple_of(8);
    let mut bits = vec![0u8; nbits / 8];
    for key in keys {
        let (h1, h2) = hashes(key);
        for i in 0..7u32 {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) as usize % nbits;
            bits[bit / 8] |= 1 << (bit % 8);
        }
    }
    let mut out = vec![7u8];
    out.extend_from_slice(&bits);
    out
}

pub fn may_contain(filter: &[u8], key: &[u8]) -> bool {
    let (k, bits) = (filter[0], &filter[1..]);
    let nbits = bits.len() * 8;
    let (h1, h2) = hashes(key);
    (0..u32::from(k)).all(|i| {
        let bit = h1.wrapping_add(i.wrapping_mul(h2)) as usize % nbits;
        bits[bit / 8] & (1 << (bit % 8)) != 0
    })
}

/// Every key of an SST's plain blocks, in order (format 3: a codec byte,
/// then entries: klen key seq tag [vlen value]).
pub fn keys(parts: &SstParts) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (_, _, off, len) in &parts.index {
        let body = &parts.blocks[*off as usize..(*off + u64::from(*len)) as usize - 4];
        let body = if parts.version >= 3 {
            assert_eq!(body[0], 0, "keys() reads plain blocks only");
            &body[1..]
        } else {
            body
        };
        let mut pos = 0;
        while pos < body.len() {
            let klen = u32::from_le_bytes(body[pos..pos + 4].try_into().unwrap()) as usize;
            out.push(body[pos + 4..pos + 4 + klen].to_vec());
            pos += 4 + klen + 8;
            let tag = body[pos];
            pos += 1;
            if tag == 1 {
                let vlen = u32::from_le_bytes(body[pos..pos + 4].try_into().unwrap()) as usize;
                pos += 4 + vlen;
            }
        }
    }
    out
}
