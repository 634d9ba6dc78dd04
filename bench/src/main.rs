//! `compare`: tidemark against SlateDB 0.18 in one run, on the same kinds of
//! object store (issue 16).
//!
//! Stores are in-memory objects behind a latency wrapper
//! (`tidemark::testing::LatencyStore`), so both engines meet the same
//! distribution: `s3-latency` adds a constant latency to every request;
//! `s3-tail` draws it from a seeded lognormal body plus rare stragglers, as
//! real object stores answer. `memory` and `file` add nothing. Every run
//! gets a fresh store, which counts its requests by kind, so each record
//! carries requests per operation and a price at S3 Standard rates.
//!
//! Durable writes are measured closed loop (N writers, each awaiting its
//! write) and open loop (writes arrive at a fixed rate whatever the engine
//! does; latency counts from each write's scheduled arrival, so a stall
//! shows as the queue it builds). SlateDB's compactor and GC are off, as
//! are tidemark's, so both do the same work.
//!
//! Each plan (engine settings x workload x store) runs in a child process of
//! its own (this binary, re-run with a hidden `--child PLAN`), which prints
//! its records as JSON lines: the peak resident memory of a record is then
//! that plan's own high-water mark (`VmHWM`), not the whole run's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use std::io::Write;
use std::process::{Command, Stdio};
use hdrhistogram::Histogram;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

mod plot;
use tidemark::testing::{Latency, LatencySampler, LatencyStore};

/// S3 Standard request prices (USD per request).
const USD_PER_PUT: f64 = 0.005 / 1000.0;
const USD_PER_GET: f64 = 0.0004 / 1000.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum StoreKind {
    Memory,
    File,
    S3Latency,
    S3Tail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
enum Workload {
    /// Durable writes, N writers each awaiting its write.
    ClosedLoop,
    /// Durable writes arriving at a fixed rate.
    OpenLoop,
    /// Writes not awaited, then one flush.
    FireAndForget,
    /// Point reads of written keys (from SSTs after a reopen) and of missing keys.
    Reads,
    /// Open of an empty store, and open after a crash that left 100 and
    /// 1,000 WALs to replay.
    Recovery,
}

#[derive(Parser, Debug)]
#[command(name = "compare", about = "tidemark vs SlateDB 0.18 on object stores with realistic latency")]
struct Args {
    /// Run only this workload (all when not given).
    #[arg(long)]
    workload: Option<Workload>,
    /// Run only on this store (s3-tail and s3-latency when not given).
    #[arg(long)]
    store: Option<StoreKind>,
    /// Run only the plans of this engine setting (as records name it:
    /// tidemark, tidemark-latency, tidemark-w1, slatedb-0.18, ...).
    #[arg(long)]
    engine: Option<String>,
    /// The short run: 60 s per engine for the s3-tail open loop at 2,000/s,
    /// 10 s for the other timed runs.
    #[arg(long)]
    quick: bool,
    /// Print one JSON record per line instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write every record as a JSON line to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
    /// Sweep the cost–latency frontier on s3-tail (open loop 2,000/s):
    /// tidemark's `upload_gather` and SlateDB's flush interval.
    #[arg(long)]
    frontier: bool,
    /// Write SVG plots of the records into this directory.
    #[arg(long, value_name = "DIR")]
    plot: Option<std::path::PathBuf>,
    /// Plot the records of this JSON-lines file (from --out) and exit.
    #[arg(long, value_name = "FILE")]
    plot_from: Option<std::path::PathBuf>,
    /// Seconds per timed run (overrides --quick's choices).
    #[arg(long)]
    seconds: Option<u64>,
    /// s3-latency: the constant latency (ms).
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// s3-tail: median latency (ms).
    #[arg(long, default_value_t = 50)]
    p50_ms: u64,
    /// s3-tail: 99th percentile of the body (ms).
    #[arg(long, default_value_t = 120)]
    p99_ms: u64,
    /// s3-tail: share of requests that straggle.
    #[arg(long, default_value_t = 0.005)]
    straggler_share: f64,
    /// s3-tail: how long a straggler takes (ms).
    #[arg(long, default_value_t = 1000)]
    straggler_ms: u64,
    /// Seed of the latency draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// tidemark's `burst_gap` (ms); its default when not given.
    #[arg(long)]
    tidemark_gap_ms: Option<u64>,
    /// tidemark's `upload_gather` (ms); its default when not given.
    #[arg(long)]
    tidemark_gather_ms: Option<u64>,
    /// tidemark's W (`max_inflight_wal_uploads`); each setting's own when not given.
    #[arg(long)]
    tidemark_w: Option<u64>,
    /// Internal: run this one plan (JSON) and print its records as JSON lines.
    #[arg(long, hide = true, value_name = "PLAN")]
    child: Option<String>,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    value_bytes: u64,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// An engine and its settings, as a record names it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum Config {
    /// tidemark at its defaults (W = 4, 5 ms, hedged creates and reads).
    Tidemark,
    /// tidemark's `Settings::low_latency()` preset (more PUTs, less waiting).
    TidemarkLatency,
    /// tidemark with hedging off.
    TidemarkNoHedge,
    /// tidemark with one WAL upload at a time (SlateDB's shape).
    TidemarkW1,
    /// SlateDB with this flush interval (ms); 100 is its default.
    SlateDb(u64),
    /// tidemark with this `upload_gather` (ms), for the frontier.
    TidemarkGather(u64),
}

impl Config {
    fn engine(self) -> &'static str {
        match self {
            Config::Tidemark => "tidemark",
            Config::TidemarkLatency => "tidemark-latency",
            Config::TidemarkNoHedge => "tidemark-no-hedge",
            Config::TidemarkW1 => "tidemark-w1",
            Config::SlateDb(_) => "slatedb-0.18",
            Config::TidemarkGather(_) => "tidemark",
        }
    }

    fn flush_interval_ms(self) -> u64 {
        match self {
            Config::SlateDb(ms) | Config::TidemarkGather(ms) => ms,
            Config::TidemarkLatency => tidemark::Settings::low_latency().flush_interval.as_millis() as u64,
            _ => tidemark::Settings::default().flush_interval.as_millis() as u64,
        }
    }

    fn tidemark_settings(self, args: &Args) -> tidemark::Settings {
        let base = match self {
            Config::TidemarkLatency => tidemark::Settings::low_latency(),
            _ => tidemark::Settings::default(),
        };
        let mut s = base.with_compactor(false).with_gc_interval(Duration::ZERO);
        if let Some(w) = args.tidemark_w {
            s = s.with_max_inflight_wal_uploads(w);
        }
        if let Some(ms) = args.tidemark_gap_ms {
            s = s.with_burst_gap(Duration::from_millis(ms));
        }
        if let Some(ms) = args.tidemark_gather_ms {
            s = s.with_upload_gather(Duration::from_millis(ms));
        }
        match self {
            Config::TidemarkNoHedge => s.with_hedge(tidemark::HedgeSettings::off()),
            Config::TidemarkW1 => s.with_max_inflight_wal_uploads(1),
            Config::TidemarkGather(ms) => s.with_upload_gather(Duration::from_millis(ms)),
            _ => s,
        }
    }
}

/// One measurement, with every field the results page reads (null where it
/// does not apply).
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    engine: String,
    workload: String,
    store: StoreKind,
    writers: Option<u64>,
    rate: Option<u64>,
    flush_interval_ms: u64,
    ops: u64,
    seconds: f64,
    ops_per_sec: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    p999_ms: Option<f64>,
    puts_per_sec: f64,
    gets_per_sec: f64,
    requests_per_op: f64,
    usd_per_million_writes: Option<f64>,
    peak_rss_mb: Option<f64>,
    stragglers_met: u64,
    hedges: Option<u64>,
    /// (quantile, ms) pairs of the latency distribution, for the plots.
    percentiles: Option<Vec<[f64; 2]>>,
}

/// Quantiles kept for the latency plots.
const QUANTILES: [f64; 14] = [0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999, 1.0];

/// A store for one run and the wrapper that counts its requests.
struct RunStore {
    store: Arc<dyn ObjectStore>,
    latency: LatencyStore,
    _dir: Option<tempfile::TempDir>,
}

fn latency_of(kind: StoreKind, args: &Args) -> Latency {
    match kind {
        StoreKind::Memory | StoreKind::File => Latency::Constant(Duration::ZERO),
        StoreKind::S3Latency => Latency::Constant(Duration::from_millis(args.latency_ms)),
        StoreKind::S3Tail => Latency::Tail {
            p50: Duration::from_millis(args.p50_ms),
            p99: Duration::from_millis(args.p99_ms),
            straggler_share: args.straggler_share,
            straggler: Duration::from_millis(args.straggler_ms),
        },
    }
}

fn run_store(kind: StoreKind, args: &Args, seed: u64) -> Res<RunStore> {
    let (inner, dir): (Arc<dyn ObjectStore>, _) = match kind {
        StoreKind::File => {
            let dir = tempfile::tempdir()?;
            (Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path())?), Some(dir))
        }
        _ => (Arc::new(InMemory::new()), None),
    };
    let latency = LatencyStore::new(inner, latency_of(kind, args), seed);
    Ok(RunStore { store: Arc::new(latency.clone()), latency, _dir: dir })
}

/// The peak resident set size of this process (Linux `VmHWM`): in a child
/// that ran one plan, that plan's peak.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn key(prefix: &str, i: u64) -> Bytes {
    Bytes::from(format!("{prefix}{i:010}"))
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// What a workload measured, before the store's counts are added.
struct Measured {
    ops: u64,
    writes: u64,
    elapsed: Duration,
    latency_us: Option<Histogram<u64>>,
}

async fn open(config: Config, store: Arc<dyn ObjectStore>, args: &Args) -> Res<Db> {
    Ok(match config {
        Config::SlateDb(ms) => {
            let settings = slatedb::config::Settings {
                compactor_options: None,
                garbage_collector_options: None,
                flush_interval: Some(Duration::from_millis(ms)),
                ..Default::default()
            };
            Db::Slate(Arc::new(slatedb::Db::builder("bench", store).with_settings(settings).build().await?))
        }
        _ => Db::Tidemark(Arc::new(tidemark::Db::open_with("bench", store, config.tidemark_settings(args)).await?)),
    })
}

/// Either engine, so a workload is written once: the operations a workload
/// needs, each mapped onto the engine's own API.
#[derive(Clone)]
enum Db {
    Tidemark(Arc<tidemark::Db>),
    Slate(Arc<slatedb::Db>),
}

impl Db {
    async fn put(&self, key: Bytes, value: Bytes, durable: bool) -> Res<()> {
        match self {
            Db::Tidemark(d) => Ok(d.put_with(key, value, &tidemark::WriteOptions { await_durable: durable }).await?),
            Db::Slate(d) => {
                let handle = d.put(key, value).await?;
                if durable {
                    handle.await_durable().await?;
                }
                Ok(())
            }
        }
    }
    async fn get(&self, key: Bytes) -> Res<Option<Bytes>> {
        match self {
            Db::Tidemark(d) => Ok(d.get(key).await?),
            Db::Slate(d) => Ok(d.get(key).await?),
        }
    }
    async fn flush(&self) -> Res<()> {
        match self {
            Db::Tidemark(d) => Ok(d.flush().await?),
            Db::Slate(d) => Ok(d.flush().await?),
        }
    }
    async fn close(&self) -> Res<()> {
        match self {
            Db::Tidemark(d) => Ok(d.close().await?),
            Db::Slate(d) => Ok(d.close().await?),
        }
    }
    fn hedges(&self) -> Option<u64> {
        match self {
            Db::Tidemark(d) => {
                let h = d.hedge_counts();
                Some(h.create_hedges + h.read_hedges)
            }
            Db::Slate(_) => None,
        }
    }
}

async fn closed_loop(db: &Db, writers: u64, run_for: Duration, value: Bytes) -> Res<Measured> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db = db.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            let mut i = 0;
            while start.elapsed() < run_for {
                let t = Instant::now();
                db.put(key(&format!("w{w:03}-"), i), value.clone(), true).await?;
                h.record(t.elapsed().as_micros() as u64)?;
                i += 1;
            }
            Res::Ok(h)
        }));
    }
    let mut latency = Histogram::<u64>::new(3)?;
    for t in tasks {
        latency.add(t.await??)?;
    }
    let ops = latency.len();
    Ok(Measured { ops, writes: ops, elapsed: start.elapsed(), latency_us: Some(latency) })
}

async fn open_loop(db: &Db, rate: u64, run_for: Duration, value: Bytes) -> Res<Measured> {
    let n = rate * run_for.as_secs();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Res<u64>>();
    for i in 0..n {
        let at = start + interval * i as u32;
        tokio::time::sleep_until(at).await;
        let (db, value, tx) = (db.clone(), value.clone(), tx.clone());
        tokio::spawn(async move {
            let r = db.put(key("open-", i), value, true).await.map(|()| at.elapsed().as_micros() as u64);
            let _ = tx.send(r);
        });
    }
    drop(tx);
    let mut latency = Histogram::<u64>::new(3)?;
    while let Some(r) = rx.recv().await {
        latency.record(r?)?;
    }
    Ok(Measured { ops: n, writes: n, elapsed: start.elapsed(), latency_us: Some(latency) })
}

async fn fire_and_forget(db: &Db, n: u64, value: Bytes) -> Res<Measured> {
    let start = Instant::now();
    for i in 0..n {
        db.put(key("fire-", i), value.clone(), false).await?;
    }
    db.flush().await?;
    Ok(Measured { ops: n, writes: n, elapsed: start.elapsed(), latency_us: None })
}

/// Reads of keys that exist and of keys that do not, after the data was
/// flushed and the engine reopened (so reads go to SSTs): one pass cold,
/// one warm.
async fn reads(db: &Db, n: u64) -> Res<Measured> {
    let mut h = Histogram::<u64>::new(3)?;
    let start = Instant::now();
    for i in 0..n {
        let k = key("fire-", i.wrapping_mul(2_654_435_761) % n);
        let t = Instant::now();
        if db.get(k.clone()).await?.is_none() {
            return Err(format!("{k:?} was written but is not found").into());
        }
        h.record(t.elapsed().as_micros() as u64)?;
    }
    Ok(Measured { ops: n, writes: 0, elapsed: start.elapsed(), latency_us: Some(h) })
}

#[derive(Debug, Serialize, Deserialize)]
struct Plan {
    /// The record's workload name when it is not the workload's own (the
    /// frontier sweep).
    label: Option<String>,
    workload: Workload,
    store: StoreKind,
    config: Config,
    writers: Option<u64>,
    rate: Option<u64>,
    seconds: u64,
    /// Recovery only: the WALs left to replay (0 is the open of an empty
    /// store), one case per plan so each has its own peak memory.
    #[serde(default)]
    wals: Option<u64>,
}

/// Opens the engine over a store that already holds `wals` WALs written by
/// a process that crashed (dropped without close): the time to open, the
/// requests it made.
async fn recovery(plan: &Plan, args: &Args, seed: u64) -> Res<Vec<Record>> {
    let mut out = Vec::new();
    let cases = [("open-empty", 0u64), ("recover-100-wals", 100), ("recover-1000-wals", 1000)];
    for (name, wals) in cases.into_iter().filter(|c| plan.wals.is_none_or(|w| w == c.1)) {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        if wals > 0 {
            // Written without latency: each durable put from one task is a WAL of its own.
            let fast: Arc<dyn ObjectStore> = Arc::new(LatencyStore::new(inner.clone(), Latency::Constant(Duration::ZERO), seed));
            let db = open(plan.config, fast, args).await?;
            for i in 0..wals {
                db.put(key("wal-", i), Bytes::from_static(b"value"), true).await?;
            }
            // The crash: dropped without close, so every WAL is left to replay.
            drop(db);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let latency = LatencyStore::new(inner, latency_of(plan.store, args), seed);
        let start = Instant::now();
        let db = open(plan.config, Arc::new(latency.clone()), args).await?;
        let took = start.elapsed();
        if wals > 0 && db.get(key("wal-", wals - 1)).await?.is_none() {
            return Err(format!("{}: the last acknowledged write is missing after recovery", plan.config.engine()).into());
        }
        let c = latency.counts();
        let ms = took.as_secs_f64() * 1e3;
        out.push(Record {
            engine: plan.config.engine().into(),
            workload: name.into(),
            store: plan.store,
            writers: None,
            rate: None,
            flush_interval_ms: plan.config.flush_interval_ms(),
            ops: 1,
            seconds: took.as_secs_f64(),
            ops_per_sec: 1.0 / took.as_secs_f64(),
            p50_ms: Some(ms),
            p99_ms: Some(ms),
            p999_ms: Some(ms),
            puts_per_sec: c.puts as f64 / took.as_secs_f64(),
            gets_per_sec: (c.gets + c.lists) as f64 / took.as_secs_f64(),
            requests_per_op: (c.puts + c.gets + c.lists + c.deletes) as f64,
            usd_per_million_writes: None,
            peak_rss_mb: None,
            stragglers_met: latency.stragglers(),
            hedges: db.hedges(),
            percentiles: None,
        });
        db.close().await?;
    }
    Ok(out)
}

async fn measure(plan: &Plan, args: &Args, seed: u64) -> Res<Vec<Record>> {
    if plan.workload == Workload::Recovery {
        return recovery(plan, args, seed).await;
    }
    let value = Bytes::from(vec![b'v'; args.value_bytes as usize]);
    let rs = run_store(plan.store, args, seed)?;
    let run_for = Duration::from_secs(plan.seconds);
    let mut out = Vec::new();
    let db = open(plan.config, rs.store.clone(), args).await?;
    let before = rs.latency.counts();
    let stragglers_before = rs.latency.stragglers();
    let mut results: Vec<(&'static str, Measured, tidemark::testing::RequestCounts, u64)> = Vec::new();
    match plan.workload {
        Workload::ClosedLoop => {
            let m = closed_loop(&db, plan.writers.unwrap_or(1), run_for, value).await?;
            results.push(("closed-loop", m, rs.latency.counts(), rs.latency.stragglers()));
        }
        Workload::OpenLoop => {
            let m = open_loop(&db, plan.rate.unwrap_or(200), run_for, value).await?;
            results.push(("open-loop", m, rs.latency.counts(), rs.latency.stragglers()));
        }
        Workload::Recovery => unreachable!("measured by `recovery`"),
        Workload::FireAndForget | Workload::Reads => {
            let n = 20_000;
            let m = fire_and_forget(&db, n, value).await?;
            results.push(("fire-and-forget", m, rs.latency.counts(), rs.latency.stragglers()));
            if plan.workload == Workload::Reads {
                db.close().await?;
                let db = open(plan.config, rs.store.clone(), args).await?;
                for name in ["reads-cold", "reads-warm"] {
                    let c0 = rs.latency.counts();
                    let s0 = rs.latency.stragglers();
                    let mut m = reads(&db, 200).await?;
                    let c1 = rs.latency.counts();
                    m.writes = 0;
                    let diff = tidemark::testing::RequestCounts {
                        puts: c1.puts - c0.puts,
                        gets: c1.gets - c0.gets,
                        lists: c1.lists - c0.lists,
                        deletes: c1.deletes - c0.deletes,
                    };
                    results.push((name, m, diff, rs.latency.stragglers() - s0));
                }
                db.close().await?;
                results.retain(|r| r.0 != "fire-and-forget");
            }
        }
    }
    let hedges = db.hedges();
    if plan.workload != Workload::Reads {
        db.close().await?;
    }
    for (name, m, counts, stragglers) in results {
        let (puts, gets) = if name.starts_with("reads") {
            (counts.puts, counts.gets + counts.lists)
        } else {
            (counts.puts - before.puts, counts.gets + counts.lists - before.gets - before.lists)
        };
        let secs = m.elapsed.as_secs_f64();
        let usd = (puts as f64 * USD_PER_PUT + gets as f64 * USD_PER_GET) / m.ops.max(1) as f64 * 1e6;
        out.push(Record {
            engine: plan.config.engine().into(),
            workload: plan.label.clone().unwrap_or_else(|| name.into()),
            store: plan.store,
            writers: plan.writers,
            rate: plan.rate,
            flush_interval_ms: plan.config.flush_interval_ms(),
            ops: m.ops,
            seconds: secs,
            ops_per_sec: m.ops as f64 / secs,
            p50_ms: m.latency_us.as_ref().map(|h| ms(h, 0.5)),
            p99_ms: m.latency_us.as_ref().map(|h| ms(h, 0.99)),
            p999_ms: m.latency_us.as_ref().map(|h| ms(h, 0.999)),
            puts_per_sec: puts as f64 / secs,
            gets_per_sec: gets as f64 / secs,
            requests_per_op: (puts + gets + counts.deletes) as f64 / m.ops.max(1) as f64,
            usd_per_million_writes: (m.writes > 0).then_some(usd),
            peak_rss_mb: None,
            stragglers_met: if name.starts_with("reads") { stragglers } else { stragglers - stragglers_before },
            hedges,
            percentiles: m.latency_us.as_ref().map(|h| QUANTILES.iter().map(|&q| [q, ms(h, q)]).collect()),
        });
    }
    Ok(out)
}

fn plans(args: &Args) -> Vec<Plan> {
    let stores: Vec<StoreKind> = match args.store {
        Some(s) => vec![s],
        None => vec![StoreKind::S3Tail, StoreKind::S3Latency],
    };
    let short = args.seconds.unwrap_or(if args.quick { 5 } else { 10 });
    let long = args.seconds.unwrap_or(if args.quick { 60 } else { 120 });
    let wanted = |w: Workload| args.workload.is_none_or(|x| x == w);
    let mut out = Vec::new();
    for &store in &stores {
        if wanted(Workload::OpenLoop) {
            for rate in [200u64, 2000] {
                let seconds = if store == StoreKind::S3Tail && rate == 2000 { long } else { short };
                let mut configs = vec![Config::Tidemark, Config::TidemarkLatency, Config::SlateDb(10)];
                if !args.quick {
                    configs.extend([Config::TidemarkNoHedge, Config::SlateDb(100)]);
                }
                if store == StoreKind::S3Tail && rate == 2000 && args.quick {
                    configs.push(Config::TidemarkNoHedge);
                }
                for config in configs {
                    out.push(Plan { label: None, workload: Workload::OpenLoop, store, config, writers: None, rate: Some(rate), seconds, wals: None });
                }
            }
        }
        if wanted(Workload::ClosedLoop) {
            for writers in [1u64, 8, 64] {
                let mut configs = vec![Config::Tidemark, Config::SlateDb(10)];
                if writers == 1 {
                    configs.push(Config::TidemarkW1);
                }
                for config in configs {
                    out.push(Plan { label: None, workload: Workload::ClosedLoop, store, config, writers: Some(writers), rate: None, seconds: short.min(10), wals: None });
                }
            }
        }
        if args.frontier && store == StoreKind::S3Tail {
            let seconds = args.seconds.unwrap_or(20);
            let configs = [0u64, 25, 50, 100, 200, 400]
                .map(Config::TidemarkGather)
                .into_iter()
                .chain([5u64, 10, 25, 50, 100, 200].map(Config::SlateDb));
            for config in configs {
                out.push(Plan { label: Some("frontier".into()), workload: Workload::OpenLoop, store, config, writers: None, rate: Some(2000), seconds, wals: None });
            }
        }
        if wanted(Workload::FireAndForget) {
            for config in [Config::Tidemark, Config::SlateDb(10)] {
                out.push(Plan { label: None, workload: Workload::FireAndForget, store, config, writers: None, rate: None, seconds: 0, wals: None });
            }
        }
        if wanted(Workload::Reads) {
            for config in [Config::Tidemark, Config::SlateDb(10)] {
                out.push(Plan { label: None, workload: Workload::Reads, store, config, writers: None, rate: None, seconds: 0, wals: None });
            }
        }
        if wanted(Workload::Recovery) {
            for wals in [0u64, 100, 1000] {
                for config in [Config::Tidemark, Config::SlateDb(10)] {
                    out.push(Plan { label: None, workload: Workload::Recovery, store, config, writers: None, rate: None, seconds: 0, wals: Some(wals) });
                }
            }
        }
    }
    if let Some(engine) = &args.engine {
        out.retain(|p| p.config.engine() == engine);
    }
    out
}

/// The store's own single-request distribution, from the same sampler.
fn print_store_distribution(kind: StoreKind, args: &Args) {
    let mut s = LatencySampler::new(latency_of(kind, args), args.seed);
    let mut h = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    for _ in 0..100_000 {
        let _ = h.record(s.sample().0.as_micros() as u64);
    }
    println!(
        "store {kind:?}: one request p50 {:.1} ms, p99 {:.1} ms, p999 {:.1} ms (100,000 draws)",
        ms(&h, 0.5),
        ms(&h, 0.99),
        ms(&h, 0.999)
    );
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn print_table(records: &[Record]) {
    println!("| workload | store | engine | writers | rate | interval ms | ops/s | p50 ms | p99 ms | p999 ms | PUT/s | GET/s | req/op | $/M writes | peak MB | stragglers | hedges |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in records {
        println!(
            "| {} | {:?} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {:.1} | {:.1} | {:.3} | {} | {} | {} | {} |",
            r.workload,
            r.store,
            r.engine,
            r.writers.map_or("-".into(), |w| w.to_string()),
            r.rate.map_or("-".into(), |w| w.to_string()),
            r.flush_interval_ms,
            r.ops_per_sec,
            opt(r.p50_ms),
            opt(r.p99_ms),
            opt(r.p999_ms),
            r.puts_per_sec,
            r.gets_per_sec,
            r.requests_per_op,
            opt(r.usd_per_million_writes),
            opt(r.peak_rss_mb),
            r.stragglers_met,
            r.hedges.map_or("-".into(), |h| h.to_string()),
        );
    }
}

/// tidemark (each of its settings: defaults, `tidemark-latency`, W = 1, ...)
/// / SlateDB at 10 ms for each pair of records of one workload, store,
/// writers and rate.
fn print_ratios(records: &[Record]) {
    println!();
    println!("| workload | store | tidemark setting | writers | rate | p50 ratio | p99 ratio | p999 ratio | PUT/s ratio |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for t in records.iter().filter(|r| r.engine.starts_with("tidemark") && r.workload != "frontier") {
        let Some(s) = records.iter().find(|s| {
            s.engine == "slatedb-0.18"
                && s.flush_interval_ms == 10
                && s.workload == t.workload
                && s.store == t.store
                && s.writers == t.writers
                && s.rate == t.rate
        }) else {
            continue;
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        println!(
            "| {} | {:?} | {} | {} | {} | {} | {} | {} | {:.2} |",
            t.workload,
            t.store,
            t.engine,
            t.writers.map_or("-".into(), |w| w.to_string()),
            t.rate.map_or("-".into(), |w| w.to_string()),
            ratio(t.p50_ms, s.p50_ms),
            ratio(t.p99_ms, s.p99_ms),
            ratio(t.p999_ms, s.p999_ms),
            t.puts_per_sec / s.puts_per_sec.max(f64::MIN_POSITIVE),
        );
    }
    println!("ratio = tidemark / SlateDB 0.18 at a 10 ms flush interval: below 1 is better for tidemark.");
}

fn main() -> Res<()> {
    let args = Args::parse();
    if let Some(plan) = &args.child {
        return run_child(serde_json::from_str(plan)?, &args);
    }
    if let Some(file) = &args.plot_from {
        let text = std::fs::read_to_string(file)?;
        let records: Vec<Record> = text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>()?;
        let dir = args.plot.clone().unwrap_or_else(|| ".".into());
        return write_plots(&records, &dir);
    }
    if !(0.0..=1.0).contains(&args.straggler_share) || args.p99_ms < args.p50_ms || args.p50_ms == 0 {
        return Err("need 0 < --p50-ms <= --p99-ms and --straggler-share within 0..=1".into());
    }
    let plans = plans(&args);
    if !args.json {
        for kind in [StoreKind::S3Tail, StoreKind::S3Latency] {
            if plans.iter().any(|p| p.store == kind) {
                print_store_distribution(kind, &args);
            }
        }
        println!("values {} B; {} runs, each in a process of its own", args.value_bytes, plans.len());
    }
    let mut out = match &args.out {
        Some(path) => Some(std::fs::File::create(path)?),
        None => None,
    };
    let mut records = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        if !args.json {
            eprintln!(
                "[{}/{}] {:?} on {:?}: {} (writers {:?}, rate {:?}, {} s)",
                i + 1,
                plans.len(),
                plan.workload,
                plan.store,
                plan.config.engine(),
                plan.writers,
                plan.rate,
                plan.seconds
            );
        }
        for r in run_in_child(plan)? {
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            }
            if let Some(f) = out.as_mut() {
                writeln!(f, "{}", serde_json::to_string(&r)?)?;
            }
            records.push(r);
        }
    }
    if !args.json {
        print_table(&records);
        print_ratios(&records);
    }
    if let Some(dir) = &args.plot {
        write_plots(&records, dir)?;
    }
    Ok(())
}

/// Runs `plan` in a child process (this binary with the same arguments and
/// `--child PLAN`) and reads back its records, so that each record's peak
/// resident memory is its own plan's.
fn run_in_child(plan: &Plan) -> Res<Vec<Record>> {
    let output = Command::new(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .arg("--child")
        .arg(serde_json::to_string(plan)?)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("the child running {plan:?} failed: {}", output.status).into());
    }
    let text = String::from_utf8(output.stdout)?;
    let records: Vec<Record> = text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>()?;
    if records.is_empty() {
        return Err(format!("the child running {plan:?} printed no records").into());
    }
    Ok(records)
}

/// The child's side: measure the one plan, then stamp every record with
/// this process's peak resident memory and print them as JSON lines.
fn run_child(plan: Plan, args: &Args) -> Res<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut records = runtime.block_on(measure(&plan, args, args.seed))?;
    // Background tasks the engines left are not waited for.
    runtime.shutdown_background();
    let peak = peak_rss_mb();
    let mut stdout = std::io::stdout().lock();
    for r in &mut records {
        r.peak_rss_mb = peak;
        writeln!(stdout, "{}", serde_json::to_string(r)?)?;
    }
    stdout.flush()?;
    Ok(())
}

/// Every plot the records allow, as SVG files in `dir`.
fn write_plots(records: &[Record], dir: &std::path::Path) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    for (store, name) in [(StoreKind::S3Tail, "latency-s3-tail.svg"), (StoreKind::S3Latency, "latency-s3-latency.svg")] {
        if plot::latency(records, store, 2000, &dir.join(name))? {
            eprintln!("wrote {}", dir.join(name).display());
        }
    }
    if plot::frontier(records, &dir.join("frontier.svg"))? {
        eprintln!("wrote {}", dir.join("frontier.svg").display());
    }
    Ok(())
}
