//! Hedged PUT latencies on a simulated S3 Express One Zone store: prints the
//! p50/p95/p99 of 3,000 small PUTs (one every 2 ms) and how many were hedged, so the hedge
//! defaults can be judged against the store's own tail.
//!
//! `cargo run -p tidemark --release --example hedge_probe`
use std::sync::Arc;
use std::time::Duration;
use object_store::{memory::InMemory, ObjectStore, PutMode, PutOptions, path::Path};
use tidemark::internals::store::HedgeStore;
use tidemark::testing::{Latency, LatencyStore};
use tidemark::HedgeSettings;

#[tokio::main]
async fn main() {
    let lat = LatencyStore::new(Arc::new(InMemory::new()), Latency::s3_express(), 1);
    let h = Arc::new(HedgeStore::new(Arc::new(lat), HedgeSettings::default()));
    let stats = h.stats();
    let mut tasks = Vec::new();
    for i in 0..3000u32 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let t = tokio::time::Instant::now();
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            h.put_opts(&Path::from(format!("wal/{i}")), "x".into(), opts).await.unwrap();
            t.elapsed()
        }));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut v = Vec::new();
    for t in tasks { v.push(t.await.unwrap()); }
    v.sort();
    println!("p50 {:?} p95 {:?} p99 {:?} {:?}", v[1500], v[2850], v[2970], stats.counts());
}
