//! A write-heavy workload of 100 times `l0_sst_size_bytes`, with point reads
//! measured at 10 % and at 100 % of it: compaction keeps L0 under its limit
//! and the number of sorted runs small, so read latency does not grow with
//! the data written. The store adds 1 ms to every GET (`ThrottledStore`).
//!
//! `cargo run --release --example compaction_reads`

use std::time::{Duration, Instant};

use object_store::memory::InMemory;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use rand::{Rng, SeedableRng};
use tidemark::internals::sync::StdArc;
use tidemark::{Db, Settings, WriteOptions};

const VALUE: usize = 1024;

async fn read_percentiles(db: &Db, written: u64, rng: &mut rand::rngs::StdRng) -> (f64, f64) {
    let mut lat = Vec::new();
    for _ in 0..1000 {
        let k = rng.random_range(0..written);
        let t = Instant::now();
        let v = db.get(format!("key{k:010}")).await.expect("get");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(v.is_some(), "key{k:010} was written");
    }
    lat.sort_by(f64::total_cmp);
    (lat[lat.len() / 2], lat[lat.len() * 99 / 100])
}

#[tokio::main]
async fn main() -> tidemark::Result<()> {
    let config = ThrottleConfig { wait_get_per_call: Duration::from_millis(1), ..Default::default() };
    let store = StdArc::new(ThrottledStore::new(InMemory::new(), config));
    let l0 = 256 << 10;
    let settings = Settings::default()
        .with_l0_sst_size_bytes(l0)
        .with_max_unflushed_bytes(4 * l0)
        .with_compacted_sst_size_bytes(4 << 20)
        .with_gc_min_age(Duration::ZERO)
        .with_gc_interval(Duration::from_secs(1));
    let l0_max = settings.l0_max_ssts;
    let db = Db::open_with("db", store, settings).await?;
    let total = (100 * l0 / VALUE) as u64;
    let fire = WriteOptions { await_durable: false };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let value = "v".repeat(VALUE - 20);
    let (mut max_l0, mut max_runs) = (0, 0);
    let start = Instant::now();
    println!("writing {total} keys of {VALUE} bytes ({} MiB, 100 x l0_sst_size_bytes)", total * VALUE as u64 >> 20);
    for i in 0..total {
        db.put_with(format!("key{i:010}"), value.clone(), &fire).await?;
        if i % 512 == 0 {
            let m = db.manifest().await;
            max_l0 = max_l0.max(m.l0.len());
            max_runs = max_runs.max(m.runs.len());
        }
        if i + 1 == total / 10 || i + 1 == total {
            db.flush().await?;
            let (p50, p99) = read_percentiles(&db, i + 1, &mut rng).await;
            let m = db.manifest().await;
            println!(
                "at {:>3} %: point reads p50 {p50:.2} ms, p99 {p99:.2} ms; L0 {} SSTs (max seen {max_l0}, limit {l0_max}), {} sorted runs (max seen {max_runs})",
                (i + 1) * 100 / total,
                m.l0.len(),
                m.runs.len()
            );
        }
    }
    println!("{:.1} s", start.elapsed().as_secs_f64());
    db.close().await
}
