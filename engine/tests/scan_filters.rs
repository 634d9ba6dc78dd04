//! Issue 11: a scan opens SSTs with their bloom filters (it checks every
//! block it reads against them, so a filter that lacks a key is `Corrupt`
//! to the scan, never a value `get` would miss); after it, a miss costs no
//! request, as for SSTs a point read opened.
#![cfg(not(loom))]

use object_store::memory::InMemory;
use object_store::ObjectStore;
use tidemark::internals::sync::StdArc;
use tidemark::{Db, Settings, WriteBatch};

fn key(i: usize) -> String {
    format!("key{:06}", (i * 7919) % 20_000)
}

#[tokio::test]
async fn after_a_scan_the_filters_are_resident_and_misses_are_free() {
    let store: StdArc<dyn ObjectStore> = StdArc::new(InMemory::new());
    let s = Settings::default().with_l0_sst_size_bytes(128 << 10).with_l0_max_ssts(64).with_compactor(false);
    let db = Db::open_with("db", store.clone(), s.clone()).await.expect("open");
    for chunk in 0..20 {
        let mut b = WriteBatch::new();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            b.put(key(i), format!("value-{i}"));
        }
        db.write(b).await.expect("write");
    }
    db.close().await.expect("close");

    let db = Db::open_with("db", store, s).await.expect("reopen");
    let l0 = db.manifest().await.l0.len() as u64;
    assert!(l0 >= 3, "several L0 SSTs, each spanning the key range: {l0}");
    let n = db.scan(..).await.expect("scan").collect_vec().await.expect("collect").len();
    assert_eq!(n, 20_000);
    let scanned = db.metrics();
    assert_eq!(scanned.open_ssts, l0, "the scan opened every SST");

    // Misses, each a key between two existing ones: every L0 SST is
    // consulted, and its resident filter says no without a request.
    for i in 0..200 {
        assert_eq!(db.get(format!("key{:06}x", i * 97)).await.expect("get"), None);
    }
    let after = db.metrics();
    assert_eq!(after.requests.since(&scanned.requests).total(), 0, "misses after a scan made requests:\n{after}");
    assert_eq!(after.index_filter_bytes, scanned.index_filter_bytes, "the scan had loaded every filter");
    db.close().await.expect("close");
}
