//! The compression table of `docs/compression.md`: for each codec (none,
//! LZ4, zstd) and each value set (JSON-like documents, random bytes), the
//! SST size against the plain data, the CPU to build and to decode an SST
//! (one thread, per MB of plain data), and cold point reads and a cold full
//! scan through the engine on the `s3-tail` store shape (p50 50 ms, p99
//! 120 ms, 0.5 % stragglers of 1 s), with the GETs they made.
//!
//! `cargo run --release -p tidemark --example compression`

use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use tidemark::internals::sst::{decode_all, SstBuilder};
use tidemark::internals::sync::StdArc;
use tidemark::testing::{Latency, LatencyStore};
use tidemark::{Compression, Db, Settings, WriteBatch};

#[derive(Parser)]
struct Args {
    /// Entries per value set.
    #[arg(long, default_value_t = 40_000)]
    keys: u64,
    /// Cold point reads per row.
    #[arg(long, default_value_t = 300)]
    reads: u64,
    /// Seed of the store's latencies and of the random values.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// xorshift64: the random values and the read order.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const NAMES: [&str; 8] = ["ada", "grace", "alan", "edsger", "barbara", "donald", "leslie", "frances"];
const CITIES: [&str; 6] = ["Lisbon", "Oslo", "Kyoto", "Lima", "Accra", "Perth"];

/// A document of a user table: field names repeat, values vary (about 250 bytes).
fn json(i: u64, rng: &mut Rng) -> Bytes {
    let r = rng.next();
    Bytes::from(format!(
        "{{\"id\":{i},\"name\":\"{}\",\"email\":\"{}{}@example.com\",\"city\":\"{}\",\"score\":{},\
         \"created_at\":\"2026-{:02}-{:02}T{:02}:{:02}:00Z\",\"tags\":[\"beta\",\"{}\"],\"active\":{},\
         \"plan\":\"{}\",\"visits\":{}}}",
        NAMES[(r % 8) as usize],
        NAMES[(r >> 3 & 7) as usize],
        r >> 20 & 0xffff,
        CITIES[(r >> 6) as usize % 6],
        r >> 9 & 0x3ff,
        1 + (r >> 13) % 12,
        1 + (r >> 17) % 28,
        (r >> 22) % 24,
        (r >> 27) % 60,
        ["mobile", "web", "api"][(r >> 33) as usize % 3],
        r >> 35 & 1 == 0,
        ["free", "team", "enterprise"][(r >> 36) as usize % 3],
        r >> 40 & 0xfff
    ))
}

fn random(rng: &mut Rng) -> Bytes {
    Bytes::from((0..32).flat_map(|_| rng.next().to_le_bytes()).collect::<Vec<u8>>())
}

fn key(i: u64) -> Bytes {
    Bytes::from(format!("user/{i:010}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    println!(
        "{} entries per value set; CPU on one thread per MB of plain data; cold reads on s3-tail (seed {})\n",
        args.keys, args.seed
    );
    println!("| values | codec | SST bytes / plain | build ms/MB | decode ms/MB | cold get p50 / p99 ms | cold scan s (GETs) |");
    println!("|---|---|---|---|---|---|---|");
    for set in ["json", "random"] {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ args.seed);
        let entries: Vec<(Bytes, Bytes)> =
            (0..args.keys).map(|i| (key(i), if set == "json" { json(i, &mut rng) } else { random(&mut rng) })).collect();
        let plain: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        let mb = plain as f64 / (1 << 20) as f64;
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd { level: 3 }] {
            // The SST format alone: one SST of every entry, 4 KiB blocks.
            let started = Instant::now();
            let mut b = SstBuilder::new(4096).with_compression(codec);
            for (i, (k, v)) in entries.iter().enumerate() {
                b.add(k.clone(), i as u64, tidemark::internals::value::Value::from_option(Some(v.clone()))).expect("sorted keys");
            }
            let sst = b.finish(&[]);
            let build = started.elapsed().as_secs_f64() * 1e3 / mb;
            let started = Instant::now();
            let (_, decoded) = decode_all(&"bench.sst".into(), sst.clone()).expect("decodes");
            let decode = started.elapsed().as_secs_f64() * 1e3 / mb;
            assert_eq!(decoded.len(), entries.len());
            let (get_p50, get_p99, scan_s, scan_gets) = cold_reads(&args, &entries, codec).await;
            println!(
                "| {set} | {codec} | {:.3} | {build:.1} | {decode:.1} | {get_p50:.1} / {get_p99:.1} | {scan_s:.2} ({scan_gets}) |",
                sst.len() as f64 / plain as f64
            );
        }
    }
}

/// Loads `entries` into a database with `codec` (flushed and compacted as
/// the engine does), reopens it behind the `s3-tail` latencies without a block cache,
/// and times cold point reads and one full scan.
async fn cold_reads(args: &Args, entries: &[(Bytes, Bytes)], codec: Compression) -> (f64, f64, f64, u64) {
    let inner: StdArc<dyn ObjectStore> = StdArc::new(InMemory::new());
    let load = Settings::default().with_compression(codec).with_l0_sst_size_bytes(4 << 20).with_max_unflushed_bytes(16 << 20);
    let db = Db::open_with("db", inner.clone(), load).await.expect("opens");
    for chunk in entries.chunks(1000) {
        let mut batch = WriteBatch::new();
        for (k, v) in chunk {
            batch.put(k.clone(), v.clone());
        }
        db.write(batch).await.expect("writes");
    }
    db.close().await.expect("closes");
    let latency = LatencyStore::new(inner, Latency::s3_tail(), args.seed);
    let store: StdArc<dyn ObjectStore> = StdArc::new(latency.clone());
    let read = Settings::default().with_compression(codec).with_block_cache_bytes(0).with_compactor(false);
    let db = Db::open_with("db", store, read).await.expect("reopens");
    let mut rng = Rng(args.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let mut lat = Vec::new();
    for _ in 0..args.reads {
        let (k, v) = &entries[(rng.next() % entries.len() as u64) as usize];
        let started = Instant::now();
        assert_eq!(db.get(k).await.expect("reads").as_ref(), Some(v));
        lat.push(started.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    let gets_before = latency.counts().gets;
    let started = Instant::now();
    let rows = db.scan(..).await.expect("scans").collect_vec().await.expect("scans");
    let scan_s = started.elapsed().as_secs_f64();
    assert_eq!(rows.len(), entries.len());
    let scan_gets = latency.counts().gets - gets_before;
    db.close().await.expect("closes");
    (percentile(&lat, 0.5), percentile(&lat, 0.99), scan_s, scan_gets)
}
