//! What a point read's checks cost: the store requests and the time of a
//! read-only open, of the first point read after it (which opens every L0
//! SST, checking each handle against its SST, plus the run SSTs it needs),
//! of cold and warm point reads and of misses, on an in-memory store behind
//! object_store's `ThrottledStore` (50 ms per request by default); and the
//! CPU time of opening one large SST in memory (its index, its filter, and
//! the filter checked against every key the index names).
//!
//! `cargo run --release --example read_validation -- --latency-ms 50`

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tidemark::internals::sst::{SstBuilder, SstReader};
use tidemark::internals::sync::StdArc;
use tidemark::{Db, Settings, WriteOptions};

#[derive(Parser)]
struct Args {
    /// Latency the store adds to every request, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Keys loaded (about 110 bytes each).
    #[arg(long, default_value_t = 20_000)]
    keys: u64,
    /// Point reads per row.
    #[arg(long, default_value_t = 200)]
    ops: u64,
    /// Entries of the SST opened in memory (about 110 bytes each).
    #[arg(long, default_value_t = 500_000)]
    sst_entries: u64,
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
        .with_gc_interval(Duration::ZERO)
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

fn row(name: &str, ops: usize, requests: u64, ms: &mut [f64]) {
    ms.sort_by(f64::total_cmp);
    let n = ms.len().max(1);
    let total: f64 = ms.iter().sum();
    println!(
        "{name:<40} {ops:>5} {:>12.2} {:>9.1} {:>9.1} {:>10.1}",
        requests as f64 / ops.max(1) as f64,
        ms[n / 2],
        ms[(n * 99 / 100).min(n - 1)],
        total
    );
}

async fn gets(db: &Db, name: &str, keys: &[Bytes], hit: bool) -> tidemark::Result<()> {
    let before = db.metrics().requests.total();
    let mut ms = Vec::new();
    for k in keys {
        let t = Instant::now();
        let got = db.get(k).await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(got.is_some(), hit, "{k:?}");
    }
    row(name, keys.len(), db.metrics().requests.total() - before, &mut ms);
    Ok(())
}

#[tokio::main]
async fn main() -> tidemark::Result<()> {
    let args = Args::parse();
    let latency = Duration::from_millis(args.latency_ms);
    let objects = InMemory::new();

    // Most keys compacted into sorted runs; the last tenth left in L0, by
    // six writers (an L0 SST each at close).
    let fire = WriteOptions { await_durable: false };
    let split = args.keys - args.keys / 10;
    let tenth = (args.keys - split).div_ceil(6);
    let mut phases = vec![(0..split, true)];
    phases.extend((0..6).map(|w| ((split + w * tenth).min(args.keys)..(split + (w + 1) * tenth).min(args.keys), false)));
    for (range, compactor) in phases {
        let db = Db::open_with("db", StdArc::new(objects.clone()), settings().with_compactor(compactor)).await?;
        for i in range {
            db.put_with(key(i), value(i), &fire).await?;
        }
        db.close().await?;
    }
    let db = Db::open_read_only("db", StdArc::new(objects.clone())).await?;
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
    println!("{:<40} {:>5} {:>12} {:>9} {:>9} {:>10}", "operation", "ops", "requests/op", "p50 ms", "p99 ms", "total ms");

    let t = Instant::now();
    let db = Db::open_read_only("db", throttled(&objects, latency)).await?;
    row("read-only open", 1, db.metrics().requests.total(), &mut [t.elapsed().as_secs_f64() * 1e3]);
    let first = [key(sample(split, 1, 7)[0])];
    gets(&db, "first point read (a key in a run)", &first, true).await?;
    let points: Vec<Bytes> = sample(args.keys, args.ops, 0x9e37_79b9_7f4a_7c15).into_iter().map(key).collect();
    gets(&db, "point reads, cold", &points, true).await?;
    gets(&db, "point reads, warm", &points, true).await?;
    let missing: Vec<Bytes> =
        sample(args.keys, args.ops, 0x2545_f491_4f6c_dd1d).into_iter().map(|i| Bytes::from(format!("key{i:08}x"))).collect();
    gets(&db, "missing keys (between keys), warm", &missing, false).await?;

    // One large SST, opened in memory: the CPU an open costs.
    let mut b = SstBuilder::new(4096);
    for i in 0..args.sst_entries {
        b.add(key(i), i, tidemark::internals::value::Value::from_option(Some(value(i))))?;
    }
    let bytes = b.finish(&[]);
    let store: StdArc<dyn ObjectStore> = StdArc::new(InMemory::new());
    let path = Path::from("big.sst");
    store.put(&path, PutPayload::from(bytes.clone())).await?;
    let opens = 20;
    let t = Instant::now();
    let mut blocks = 0;
    for _ in 0..opens {
        blocks = SstReader::open(store.clone(), path.clone(), Some(bytes.len() as u64)).await?.block_count();
    }
    println!(
        "\nSstReader::open of a {:.1} MiB SST ({blocks} blocks) from memory: {:.2} ms per open (mean of {opens})",
        bytes.len() as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64() * 1e3 / f64::from(opens)
    );
    Ok(())
}
