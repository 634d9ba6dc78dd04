//! Issue 11: a scan opens SSTs without their bloom filters; the first point
//! read that consults an SST loads its filter with one request, and from
//! then on a miss costs no request, as for SSTs a point read opened.
#![cfg(not(loom))]

use object_store::memory::InMemory;
use object_store::ObjectStore;
use tidemark::sync::StdArc;
use tidemark::{Db, Settings, WriteBatch};

fn key(i: usize) -> String {
    format!("key{:06}", (i * 7919) % 20_000)
}

#[tokio::test]
async fn the_first_point_read_after_a_scan_loads_filters_then_misses_are_free() {
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

    // A key between two existing ones: every L0 SST is consulted, and each
    // loads its filter (one request each); the filters say no.
    let missing = "key010000x";
    assert_eq!(db.get(missing).await.expect("get"), None);
    let first = db.metrics();
    let made = first.requests.since(&scanned.requests);
    assert!(made.get_range >= 1 && made.get_range <= l0, "the first miss loaded filters: {made:?}");
    assert!(first.index_filter_bytes > scanned.index_filter_bytes, "filters are resident now:\n{first}");

    // The filters stay: further misses make no request.
    for i in 0..200 {
        assert_eq!(db.get(format!("key{:06}x", i * 97)).await.expect("get"), None);
    }
    let after = db.metrics();
    assert_eq!(after.requests.since(&first.requests).total(), 0, "misses with resident filters made requests:\n{after}");
    assert_eq!(after.index_filter_bytes, first.index_filter_bytes);
    db.close().await.expect("close");
}
