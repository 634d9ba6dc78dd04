//! Compressed data blocks through the whole engine: flushes and compaction
//! write them, every read path reads them, SSTs of different codecs (and
//! of format 2) coexist in one database, and a block whose stated length
//! lies is `Corrupt` before anything is allocated for it.
#![cfg(not(loom))]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tidemark::internals::sst::{decode_all, SstBuilder, SstReader};
use tidemark::internals::sync::StdArc as Arc;
use tidemark::{Compression, Db, Error, Settings};

const CODECS: [Compression; 3] = [Compression::None, Compression::Lz4, Compression::Zstd { level: 3 }];

/// Small memtables and output SSTs, so a short workload flushes and compacts.
fn churn(c: Compression) -> Settings {
    Settings::default()
        .with_l0_sst_size_bytes(8 << 10)
        .with_max_unflushed_bytes(64 << 10)
        .with_l0_max_ssts(3)
        .with_compacted_sst_size_bytes(16 << 10)
        .with_gc_min_age(Duration::ZERO)
        .with_compression(c)
}

/// A JSON-like value: compresses the way real documents do.
fn value(i: u32, round: u32) -> Bytes {
    Bytes::from(format!(
        "{{\"id\":{i},\"round\":{round},\"user\":\"user-{}\",\"tags\":[\"alpha\",\"beta\"],\"active\":true}}",
        i % 97
    ))
}

async fn compacted(store: &Arc<dyn ObjectStore>) -> Vec<(Path, u64)> {
    let listed: Vec<_> = store.list(Some(&Path::from("db/compacted"))).try_collect().await.unwrap();
    listed.into_iter().map(|m| (m.location, m.size)).collect()
}

async fn check(db: &Db, oracle: &BTreeMap<Bytes, Bytes>, what: &str) {
    let scanned: BTreeMap<Bytes, Bytes> = db.scan(..).await.unwrap().collect_vec().await.unwrap().into_iter().collect();
    assert!(scanned == *oracle, "{what}: scan disagrees ({} keys, oracle {})", scanned.len(), oracle.len());
    let mut rev = db.scan_rev(..).await.unwrap().collect_vec().await.unwrap();
    rev.reverse();
    assert!(rev.into_iter().eq(oracle.clone()), "{what}: reverse scan disagrees");
    for (k, v) in oracle.iter().step_by(7) {
        assert_eq!(db.get(k).await.unwrap().as_ref(), Some(v), "{what}: get {k:?}");
    }
}

async fn write_round(db: &Db, oracle: &mut BTreeMap<Bytes, Bytes>, round: u32) {
    for i in 0..1500u32 {
        let key = Bytes::from(format!("key{:05}", (i * 7 + round * 13) % 2000));
        let v = value(i, round);
        db.put(key.clone(), v.clone()).await.unwrap();
        oracle.insert(key, v);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_reads_back_what_was_written_through_flush_and_compaction() {
    let mut sizes = Vec::new();
    for c in CODECS {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut oracle = BTreeMap::new();
        let db = Db::open_with("db", store.clone(), churn(c)).await.unwrap();
        write_round(&db, &mut oracle, 0).await;
        check(&db, &oracle, &format!("{c} live")).await;
        db.close().await.unwrap();
        let db = Db::open_with("db", store.clone(), churn(c)).await.unwrap();
        check(&db, &oracle, &format!("{c} reopened")).await;
        db.close().await.unwrap();
        let ssts = compacted(&store).await;
        assert!(!ssts.is_empty(), "{c}: nothing was flushed");
        for (path, size) in &ssts {
            let reader = SstReader::open(store.clone(), path.clone(), Some(*size)).await.unwrap();
            let expected = c.to_string();
            assert_eq!(reader.compression(), expected.split(':').next().unwrap(), "{path}");
        }
        let report = tidemark::fsck(store.as_ref(), "db".into()).await;
        assert_eq!(report.problems(), 0, "{c}: fsck {:?}", report.findings);
        sizes.push((c, ssts.iter().map(|(_, s)| s).sum::<u64>()));
    }
    // Text-like values shrink: each codec's SSTs are well under the plain ones.
    let plain = sizes[0].1;
    for (c, bytes) in &sizes[1..] {
        assert!(*bytes * 2 < plain, "{c}: {bytes} bytes of SSTs against {plain} plain");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssts_of_every_codec_coexist_and_compact_together() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut oracle = BTreeMap::new();
    for (round, c) in CODECS.into_iter().chain([Compression::Lz4]).enumerate() {
        let db = Db::open_with("db", store.clone(), churn(c)).await.unwrap();
        check(&db, &oracle, &format!("opened with {c}")).await;
        write_round(&db, &mut oracle, round as u32).await;
        check(&db, &oracle, &format!("written with {c}")).await;
        db.close().await.unwrap();
    }
    let db = Db::open_with("db", store.clone(), churn(Compression::None)).await.unwrap();
    check(&db, &oracle, "last").await;
    db.close().await.unwrap();
    let report = tidemark::fsck(store.as_ref(), "db".into()).await;
    assert_eq!(report.problems(), 0, "fsck {:?}", report.findings);
}

#[test]
fn format_2_objects_written_before_compression_still_read() {
    // Written by the engine before format 3 (an L0 SST, a compacted SST, a WAL).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format2");
    let mut read = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let bytes = Bytes::from(std::fs::read(e.path()).unwrap());
        assert_eq!(u16::from_le_bytes([bytes[bytes.len() - 28], bytes[bytes.len() - 27]]), 2, "{name} is not format 2");
        let path = Path::from(name.as_str());
        let entries = match name.starts_with("wal-") {
            true => tidemark::internals::wal_object::decode_wal(&path, bytes).unwrap().entries,
            false => decode_all(&path, bytes.clone()).map(|(_, e)| e).unwrap(),
        };
        assert!(!entries.is_empty(), "{name}");
        read += 1;
    }
    assert_eq!(read, 3);
}

/// Format 3 is format 4 without entry tags 2 and 3 (merge operands and
/// expiring values): an object of puts and deletes written now, its footer
/// stamped 3 and resealed, reads the same; format 3 with a tag-2 entry
/// would read too: the tags are checked, not the version they came with.
#[test]
fn format_3_objects_still_read() {
    use tidemark::internals::value::Value;
    let mut b = SstBuilder::new(256).with_compression(Compression::Lz4);
    for i in 0..40u32 {
        let v = if i % 5 == 0 { Value::Delete } else { Value::Put(value(i, 0)) };
        b.add(Bytes::from(format!("key{i:03}")), u64::from(i), v).unwrap();
    }
    let now = b.finish(&[]).to_vec();
    let mut old = now.clone();
    let footer = old.len() - 32;
    old[footer + 4..footer + 6].copy_from_slice(&3u16.to_le_bytes());
    let crc = crc32c::crc32c(&old[footer..footer + 28]);
    old[footer + 28..].copy_from_slice(&crc.to_le_bytes());
    let path = Path::from("format3.sst");
    let (_, entries) = decode_all(&path, Bytes::from(old)).unwrap();
    assert_eq!(entries, decode_all(&path, Bytes::from(now)).unwrap().1);
    assert_eq!(entries.len(), 40);
}

/// An SST with one LZ4 block, its plain length replaced by `lie` and its
/// checksum recomputed: only the bound behind the checksum can refuse it.
fn lying_sst(lie: u32) -> Bytes {
    let mut b = SstBuilder::new(4096).with_compression(Compression::Lz4);
    for i in 0..40u32 {
        b.add(Bytes::from(format!("key{i:03}")), u64::from(i), tidemark::internals::value::Value::from_option(Some(value(i, 0)))).unwrap();
    }
    let mut obj = b.finish(&[]).to_vec();
    let reader = SstReader::from_bytes(Path::from("x"), Bytes::from(obj.clone())).unwrap();
    assert_eq!(reader.block_count(), 1);
    let span = reader.block_span(0..1).unwrap();
    let (start, end) = (span.start as usize, span.end as usize);
    assert_eq!(obj[start], 1, "the block is stored as LZ4");
    obj[start + 1..start + 5].copy_from_slice(&lie.to_le_bytes());
    let crc = crc32c::crc32c(&obj[start..end - 4]);
    obj[end - 4..end].copy_from_slice(&crc.to_le_bytes());
    Bytes::from(obj)
}

#[tokio::test]
async fn a_block_whose_stated_length_lies_is_corrupt_on_every_read_path() {
    for lie in [u32::MAX, 1 << 30, 64 << 20, 100, 0] {
        let obj = lying_sst(lie);
        let err = decode_all(&Path::from("x.sst"), obj.clone()).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{lie}: {err}");
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("db/compacted/x.sst");
        store.put(&path, obj.into()).await.unwrap();
        let reader = SstReader::open(store, path, None).await.unwrap();
        let got = reader.get(b"key007").await.unwrap_err();
        assert!(matches!(got, Error::Corrupt { .. }), "{lie}: {got}");
        let scanned = reader.all().await.unwrap_err();
        assert!(scanned.to_string().contains("lz4"), "{lie}: {scanned}");
    }
    // The honest length reads.
    let honest = SstReader::from_bytes(Path::from("x"), {
        let mut b = SstBuilder::new(4096).with_compression(Compression::Lz4);
        b.add(Bytes::from("k"), 1, tidemark::internals::value::Value::from_option(Some(value(1, 0)))).unwrap();
        b.finish(&[])
    })
    .unwrap();
    assert_eq!(honest.get(b"k").await.unwrap(), Some(tidemark::internals::value::Value::Put(value(1, 0))));
}

#[tokio::test]
async fn an_unknown_codec_is_refused_by_name() {
    let mut b = SstBuilder::new(4096).with_compression(Compression::Zstd { level: 3 });
    b.add(Bytes::from("k"), 1, tidemark::internals::value::Value::from_option(Some(value(1, 0)))).unwrap();
    let obj = b.finish(&[]).to_vec();
    // The footer's codec (bytes 6..8 of the footer) set to 7, resealed.
    let mut bad = obj.clone();
    let footer = bad.len() - 32;
    bad[footer + 6] = 7;
    let crc = crc32c::crc32c(&bad[footer..footer + 28]);
    bad[footer + 28..].copy_from_slice(&crc.to_le_bytes());
    let err = SstReader::from_bytes(Path::from("x"), Bytes::from(bad)).unwrap_err();
    assert!(err.to_string().contains("unknown compression codec 7"), "{err}");
    // A block's codec byte set to 7, resealed.
    let reader = SstReader::from_bytes(Path::from("x"), Bytes::from(obj.clone())).unwrap();
    let span = reader.block_span(0..1).unwrap();
    let (start, end) = (span.start as usize, span.end as usize);
    let mut bad = obj;
    bad[start] = 7;
    let crc = crc32c::crc32c(&bad[start..end - 4]);
    bad[end - 4..end].copy_from_slice(&crc.to_le_bytes());
    let err = decode_all(&Path::from("x"), Bytes::from(bad)).unwrap_err();
    assert!(err.to_string().contains("unknown compression codec 7"), "{err}");
}

#[tokio::test]
async fn settings_refuse_a_zstd_level_out_of_range() {
    let bad = Settings::default().with_compression(Compression::Zstd { level: 42 });
    let err = Db::open_with("db", Arc::new(InMemory::new()), bad).await.err().unwrap();
    assert!(matches!(err, Error::InvalidArgument(ref m) if m.contains("zstd level")), "{err}");
}
