//! Issue 11, item 4: a scan's memory is bounded per source, not by the
//! range. A counting global allocator (this test binary's own) measures the
//! peak of live heap bytes during a scan of SSTs on a local directory, whose
//! ranged reads allocate what they return as a real store's do. The scan
//! holds per L0 SST or sorted run its raw read-ahead and reads it an entry
//! at a time;
//! the control reads whole SSTs per request and must exceed that bound, so
//! the check fails if the iterator buffers whole SSTs. Scans open SSTs
//! with their bloom filters, which stay resident like the indexes.
#![cfg(not(loom))]


use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use tidemark::internals::sync::StdArc;
use tidemark::{Db, Direction, ScanOptions, Settings, WriteBatch};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

const KEYS: usize = 60_000;
const BLOCK: u64 = 4096;
/// Heap a scan may use besides its sources' buffers: the merge (one key's
/// versions from every source, 120 B each), the iterator, the local store's
/// per-request state.
const FIXED: u64 = 28 << 10;

fn key(i: usize) -> String {
    // Interleaved across L0 SSTs: every SST spans the whole key range, so
    // the merge reads from all of them at once.
    format!("key{:08}", (i * 7919) % KEYS)
}

/// Peak heap above the live bytes before, and live bytes after above
/// those before, of one scan of every key.
async fn scan(db: &Db, opts: ScanOptions) -> (u64, i64) {
    let before = counting_alloc::reset_peak();
    let mut it = db.scan_with(.., opts).await.expect("scan");
    let mut n = 0;
    // The previous key is copied: holding its `Bytes` would keep the block
    // it came from alive, as any caller holding a key does.
    let mut prev: Vec<u8> = Vec::with_capacity(64);
    while let Some((k, _)) = it.next().await.expect("next") {
        let ascending = opts.direction == Direction::Forward;
        assert!(n == 0 || (prev.as_slice() < k.as_ref()) == ascending, "keys in the scan's order");
        prev.clear();
        prev.extend_from_slice(&k);
        n += 1;
    }
    drop((it, prev));
    assert_eq!(n, KEYS, "the scan returns every key");
    let peak = counting_alloc::peak() - before;
    (peak as u64, counting_alloc::live() as i64 - before as i64)
}

#[tokio::test]
async fn a_scan_holds_a_read_ahead_and_a_block_per_source_never_whole_ssts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: StdArc<dyn ObjectStore> = StdArc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("local store"));
    // ~2.4 MB of entries in L0 SSTs of ~512 KiB, no compaction: several
    // sources, each SST far larger than a block or the read-ahead below.
    // Plain blocks, so that SST sizes are what the bounds below count.
    let s = Settings::default()
        .with_l0_sst_size_bytes(512 << 10)
        .with_l0_max_ssts(64)
        .with_compactor(false)
        .with_compression(tidemark::Compression::None);
    let db = Db::open_with("db", store.clone(), s).await.expect("open");
    for chunk in 0..KEYS / 1000 {
        let mut b = WriteBatch::new();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            b.put(key(i), format!("value-{i:08}"));
        }
        db.write(b).await.expect("write");
    }
    db.close().await.expect("close");

    // Read-only: no writer tasks allocate during the scans.
    let db = Db::open_read_only("db", store).await.expect("open read-only");
    let m = db.manifest().await;
    let sources = (m.l0.len() + m.runs.len()) as u64;
    assert!(sources >= 4, "several L0 SSTs to merge: {m:?}");
    let smallest = m.ssts().map(|h| h.size).min().unwrap_or(0);
    let read_ahead: u64 = 64 << 10;
    assert!(smallest > 3 * read_ahead, "SSTs far larger than the read-ahead: {smallest} B");
    // The block cache has its own budget; these scans keep out of it.
    let cold = ScanOptions { fill_cache: false, ..ScanOptions::default() };

    // The first scan opens the SSTs: their indexes and filters stay.
    let (_, opened) = scan(&db, ScanOptions { read_ahead_bytes: 0, ..cold }).await;
    let resident = db.metrics().index_filter_bytes;
    assert!(opened > 0 && resident > 0, "the scan opened the SSTs: {opened} B kept, {resident} B resident");
    assert_eq!(db.metrics().block_cache.entries, 0, "fill_cache: false caches no block");

    // One block per request: a source holds one raw block and an offset
    // per entry of it (a decoded block would be about twice the raw bytes:
    // an entry is 72 B in memory).
    let (peak, kept) = scan(&db, ScanOptions { read_ahead_bytes: 0, ..cold }).await;
    let bound = 2 * BLOCK * sources + FIXED;
    println!("read-ahead 0: peak {peak} B over {sources} sources; bound {bound} B (block {BLOCK} B x {sources} = {} B)", BLOCK * sources);
    assert!(peak <= bound, "a block-at-a-time scan peaked at {peak} B, over {bound} B");
    assert!(kept.unsigned_abs() < 4096, "the scan left {kept} B behind");

    // Backwards the same.
    let (peak, _) = scan(&db, ScanOptions { read_ahead_bytes: 0, direction: Direction::Reverse, ..cold }).await;
    println!("reverse, read-ahead 0: peak {peak} B");
    assert!(peak <= bound, "a reverse block-at-a-time scan peaked at {peak} B, over {bound} B");

    // With read-ahead: its bytes plus a block per source (a decoded batch
    // would be about three times the raw bytes).
    let (peak, _) = scan(&db, ScanOptions { read_ahead_bytes: read_ahead, ..cold }).await;
    let ahead_bound = (read_ahead + 2 * BLOCK) * sources + FIXED;
    println!("read-ahead {read_ahead}: peak {peak} B; bound {ahead_bound} B");
    assert!(peak <= ahead_bound, "a scan with {read_ahead} B read-ahead peaked at {peak} B, over {ahead_bound} B");

    // The control: whole SSTs per request exceed the bound, so the measure
    // catches a scan that buffers SSTs.
    let (whole, _) = scan(&db, ScanOptions { read_ahead_bytes: u64::MAX, ..cold }).await;
    println!("whole SSTs: peak {whole} B");
    assert!(whole > ahead_bound, "reading whole SSTs peaked at only {whole} B (bound {ahead_bound} B): the measure is blind");

    // The scan opened the SSTs with their filters (it checks its blocks
    // against them): a point read loads nothing more.
    assert!(resident > KEYS as u64 / 8, "the filters are resident after the scan: {resident} B");
    assert_eq!(db.get(key(1)).await.expect("get"), Some(Bytes::from(format!("value-{:08}", 1))));
    assert_eq!(db.metrics().index_filter_bytes, resident, "a point read after the scan loads nothing more");

    // With the block cache filled, a scan still returns every key.
    let (_, _) = scan(&db, ScanOptions::default()).await;
    assert!(db.metrics().block_cache.entries > 0, "fill_cache: true caches blocks");
}
