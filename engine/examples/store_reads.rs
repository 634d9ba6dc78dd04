//! Reads from the store, not from the memtable: cold and warm point reads,
//! misses and 100-key scans on an in-memory store behind object_store's
//! `ThrottledStore` (50 ms per request by default), with the store requests
//! each operation made (`Db::metrics()`). The last rows turn the block cache
//! off, to show what it saves.
//!
//! `cargo run --release --example store_reads -- --latency-ms 50`

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use object_store::memory::InMemory;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use object_store::ObjectStore;
use tidemark::internals::sync::StdArc;
use tidemark::{Db, Settings, WriteOptions};

#[derive(Parser)]
struct Args {
    /// Latency the store adds to every request, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Keys loaded before measuring (about 110 bytes each).
    #[arg(long, default_value_t = 20_000)]
    keys: u64,
    /// Operations measured per row.
    #[arg(long, default_value_t = 200)]
    ops: u64,
}

fn key(i: u64) -> Bytes {
    Bytes::from(format!("key{i:08}"))
}

fn value(i: u64) -> Bytes {
    Bytes::from(format!("value-{i:08}-{}", "x".repeat(90)))
}

/// Distinct pseudo-random numbers below `n` (xorshift, fixed seed).
fn sample(n: u64, count: u64, seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    while (out.len() as u64) < count.min(n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if seen.insert(x % n) {
            out.push(x % n);
        }
    }
    out
}

fn settings() -> Settings {
    Settings::default()
        .with_l0_sst_size_bytes(64 << 10)
        .with_max_unflushed_bytes(1 << 20)
        .with_compacted_sst_size_bytes(256 << 10)
        .with_gc_min_age(Duration::ZERO)
}

fn throttled(objects: &InMemory, latency: Duration) -> StdArc<dyn ObjectStore> {
    let config = ThrottleConfig {
        wait_get_per_call: latency,
        wait_put_per_call: latency,
        wait_list_per_call: latency,
        wait_delete_per_call: latency,
        ..Default::default()
    };
    StdArc::new(ThrottledStore::new(objects.clone(), config))
}

/// Runs `op` for each item and prints latency percentiles and requests and
/// cache hits per operation.
async fn measure<F, Fut>(db: &Db, name: &str, items: &[u64], mut op: F) -> tidemark::Result<()>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = tidemark::Result<()>>,
{
    let before = db.metrics();
    let mut lat = Vec::with_capacity(items.len());
    for &i in items {
        let t = Instant::now();
        op(i).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let after = db.metrics();
    lat.sort_by(f64::total_cmp);
    let n = lat.len().max(1);
    let per_op = |a: u64, b: u64| (a - b) as f64 / n as f64;
    println!(
        "{name:<36} {:>5} {:>9.3} {:>9.3} {:>12.2} {:>10.2}",
        lat.len(),
        lat[n / 2],
        lat[(n * 99 / 100).min(n - 1)],
        per_op(after.requests.total(), before.requests.total()),
        per_op(after.block_cache.hits, before.block_cache.hits),
    );
    Ok(())
}

async fn get_row(db: &Db, name: &str, items: &[u64]) -> tidemark::Result<()> {
    measure(db, name, items, |i| async move {
        match db.get(key(i)).await? {
            Some(v) if v == value(i) => Ok(()),
            other => panic!("{:?} read back as {other:?}", key(i)),
        }
    })
    .await
}

async fn scan_row(db: &Db, name: &str, starts: &[u64]) -> tidemark::Result<()> {
    measure(db, name, starts, |i| async move {
        let rows = db.scan(key(i)..key(i + 100)).await?.collect_vec().await?;
        assert_eq!(rows.len(), 100, "scan from {:?}", key(i));
        Ok(())
    })
    .await
}

#[tokio::main]
async fn main() -> tidemark::Result<()> {
    let args = Args::parse();
    let latency = Duration::from_millis(args.latency_ms);
    let objects = InMemory::new();

    // Load without latency, then close: every key is in an SST (L0 or a
    // sorted run) and the next open replays nothing.
    let db = Db::open_with("db", StdArc::new(objects.clone()), settings()).await?;
    let fire = WriteOptions { await_durable: false };
    for i in 0..args.keys {
        db.put_with(key(i), value(i), &fire).await?;
    }
    db.close().await?;
    let m = db.manifest().await;
    let run_ssts: usize = m.runs.iter().map(|r| r.ssts.len()).sum();
    println!(
        "{} keys in {} L0 SSTs and {} sorted runs ({} SSTs); store latency {} ms per request\n",
        args.keys,
        m.l0.len(),
        m.runs.len(),
        run_ssts,
        args.latency_ms
    );
    println!("{:<36} {:>5} {:>9} {:>9} {:>12} {:>10}", "operation", "ops", "p50 ms", "p99 ms", "requests/op", "hits/op");

    let points = sample(args.keys, args.ops, 0x9e37_79b9_7f4a_7c15);
    let missing: Vec<u64> = sample(args.keys, args.ops, 0x2545_f491_4f6c_dd1d);
    let starts = sample(args.keys.saturating_sub(100).max(1), args.ops.min(100), 0x1234_5678_9abc_def1);

    let cached = settings().with_block_cache_bytes(64 << 20);
    let db = Db::open_with("db", throttled(&objects, latency), cached.clone()).await?;
    get_row(&db, "point read, cold (first touch)", &points).await?;
    get_row(&db, "point read, warm (64 MiB cache)", &points).await?;
    measure(&db, "point read, missing key", &missing, |i| {
        let db = &db;
        async move {
            let got = db.get(format!("key{i:08}x")).await?;
            assert!(got.is_none());
            Ok(())
        }
    })
    .await?;
    db.close().await?;

    let db = Db::open_with("db", throttled(&objects, latency), cached).await?;
    scan_row(&db, "scan 100 keys, cold", &starts).await?;
    scan_row(&db, "scan 100 keys, warm (64 MiB cache)", &starts).await?;
    let all = db.metrics();
    db.close().await?;

    let off = settings().with_block_cache_bytes(0);
    let db = Db::open_with("db", throttled(&objects, latency), off).await?;
    get_row(&db, "point read, opening SSTs (no cache)", &points).await?;
    get_row(&db, "point read, SSTs open (no cache)", &points).await?;
    scan_row(&db, "scan 100 keys (no cache)", &starts).await?;
    db.close().await?;

    println!("\nDb::metrics() of the scan handle at close:\n{all}");
    Ok(())
}
