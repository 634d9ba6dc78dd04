//! `compare`: tidemark against SlateDB 0.18 in one run, on the same kinds of
//! object store.
//!
//! Stores are in-memory objects behind a latency wrapper
//! (`tidemark::testing::LatencyStore`), so both engines meet the same
//! distribution: `s3-latency` adds a constant latency to every request;
//! `s3-tail` (S3 Standard-like) and `s3-express` (S3 Express One Zone-like)
//! draw it from a seeded lognormal body plus rare stragglers, as real object
//! stores answer. `memory` and `file` add nothing. Every run gets a fresh
//! store, which counts its requests by kind, so each record carries
//! requests per operation and a price.
//!
//! Durable writes are measured closed loop (N writers, each awaiting its
//! write) and open loop (writes arrive at a fixed rate whatever the engine
//! does; latency counts from each write's scheduled arrival, so a stall
//! shows as the queue it builds). Open loops run over several seeds and
//! report their spread. SlateDB's compactor and GC are off, as are
//! tidemark's, so both do the same work.
//!
//! Each plan (engine settings x workload x store x seed) runs in a child
//! process of its own (this binary, re-run with a hidden `--child PLAN`),
//! which prints its records as JSON lines: the peak resident memory and the
//! CPU time of a record are that plan's own. `--hog N` starts N busy
//! processes beside each child (a noisy host).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use tidemark::testing::{Latency, LatencySampler, LatencyStore};

mod acceptance;
mod bound;
mod engines;
mod plot;
mod report;
mod workloads;

use engines::{Budget, Config};
use workloads::{key, Measured};

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Request prices (USD per request): S3 Standard, and S3 Express One Zone
/// after its 2025 price cut (PUTs; its GETs are priced like Standard's here).
const USD_PER_PUT: f64 = 0.005 / 1000.0;
const USD_PER_PUT_EXPRESS: f64 = 0.00113 / 1000.0;
const USD_PER_GET: f64 = 0.0004 / 1000.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    Memory,
    File,
    S3Latency,
    S3Tail,
    S3Express,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Workload {
    /// Durable writes, N writers each awaiting its write.
    ClosedLoop,
    /// Durable writes arriving at a fixed rate.
    OpenLoop,
    /// Writes not awaited, then one flush.
    FireAndForget,
    /// Point reads of written keys (from SSTs after a reopen).
    Reads,
    /// Open of an empty store, and open after a crash that left 100 and
    /// 1,000 WALs to replay.
    Recovery,
}

#[derive(Parser, Debug)]
#[command(name = "compare", about = "tidemark vs SlateDB 0.18 on object stores with realistic latency")]
pub struct Args {
    /// Run only this workload (all when not given).
    #[arg(long)]
    workload: Option<Workload>,
    /// Run only on this store (s3-tail, s3-express and s3-latency when not given).
    #[arg(long)]
    store: Option<StoreKind>,
    /// Keep WALs on a store of their own of this kind (both engines), the
    /// rest on `--store`.
    #[arg(long)]
    wal_store: Option<StoreKind>,
    /// Run only the plans of this engine (as records name it: tidemark,
    /// tidemark-w1, tidemark-no-hedge, slatedb-0.18).
    #[arg(long)]
    engine: Option<String>,
    /// Open loops at this rate only (200 and 2,000 writes/s when not given).
    #[arg(long)]
    rate: Option<u64>,
    /// The short run: 30 s per open loop at 2,000/s, 5 s for the other timed runs.
    #[arg(long)]
    quick: bool,
    /// The acceptance run: open loop 2,000/s on s3-express (tidemark and
    /// SlateDB at 1, 5, 10 and 25 ms), on s3-tail, with WALs on s3-express
    /// beside SSTs on s3-tail, and on s3-express beside a CPU hog; every
    /// ratio from the same run.
    #[arg(long)]
    acceptance: bool,
    /// Seeds per open-loop plan (seeds `--seed`, `--seed`+1, ...).
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Print one JSON record per line instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write every record as a JSON line to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
    /// Only the cost–latency frontier (open loop 2,000/s) on s3-tail and
    /// s3-express (or `--store`): tidemark's PUT budget against SlateDB's
    /// flush interval.
    #[arg(long)]
    frontier: bool,
    /// Only the floor: the lowest p99 an ideal in-order engine (no CPU, no
    /// timer) reaches at each PUT rate on `--store` (s3-express when not
    /// given) at `--rate` (2,000/s), simulated from the store's sampler.
    #[arg(long)]
    bound: bool,
    /// With `--bound`: also the floor at this many PUTs a second (repeatable).
    #[arg(long, value_name = "PUTS")]
    bound_at: Vec<f64>,
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
    /// The first seed of the latency draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Busy processes (each one spinning thread) beside every run: a noisy host.
    #[arg(long, default_value_t = 0)]
    hog: u32,
    /// tidemark's `burst_gap` (ms); its default when not given.
    #[arg(long)]
    tidemark_gap_ms: Option<u64>,
    /// tidemark's WAL PUT budget: `1.25x` (WALs per median upload time),
    /// `200/s`, `$0.1@0.00113` (dollars per million writes at a price per
    /// 1,000 PUTs) or `unlimited`; its default when not given.
    #[arg(long, value_parser = Budget::parse)]
    tidemark_budget: Option<Budget>,
    /// tidemark reports (logs to stderr and counts) every durable write
    /// slower than this (ms) with what it waited on; its default
    /// (`SlowWrite::TimesUploadP99(20)`) when not given.
    #[arg(long)]
    slow_write_ms: Option<f64>,
    /// tidemark's hedge budget (a fraction of requests; it hedges at the
    /// `1 - budget / 2` quantile); its default when not given.
    #[arg(long)]
    tidemark_hedge_budget: Option<f64>,
    /// tidemark's W (`max_inflight_wal_uploads`); each setting's own when not given.
    #[arg(long)]
    tidemark_w: Option<u64>,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    value_bytes: u64,
    /// Internal: run this one plan (JSON) and print its records as JSON lines.
    #[arg(long, hide = true, value_name = "PLAN")]
    child: Option<String>,
    /// Internal: spin forever (a hog process).
    #[arg(long, hide = true)]
    spin: bool,
}

impl Args {
    /// The seeds of every open-loop plan: `--seeds` of them from `--seed`.
    pub fn seed_list(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.seeds.max(1)).map(|i| self.seed + i)
    }
}

/// One measurement, with every field the results page reads (null where it
/// does not apply).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub engine: String,
    /// The engine's PUT-for-latency setting (tidemark's budget, SlateDB's
    /// flush interval).
    pub setting: String,
    pub workload: String,
    pub store: StoreKind,
    #[serde(default)]
    pub wal_store: Option<StoreKind>,
    #[serde(default)]
    pub hog: u32,
    #[serde(default)]
    pub seed: u64,
    pub writers: Option<u64>,
    pub rate: Option<u64>,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    #[serde(default)]
    pub max_ms: Option<f64>,
    pub puts_per_sec: f64,
    pub gets_per_sec: f64,
    pub requests_per_op: f64,
    pub usd_per_million_writes: Option<f64>,
    /// CPU time of the whole process (engine, store simulation, client)
    /// per durable write, in microseconds.
    #[serde(default)]
    pub cpu_us_per_write: Option<f64>,
    pub peak_rss_mb: Option<f64>,
    pub stragglers_met: u64,
    pub hedges: Option<u64>,
    /// tidemark's slow writes (`Db::metrics().slow_writes`): how many, and
    /// by what each waited on longest.
    #[serde(default)]
    pub slow_writes: Option<u64>,
    #[serde(default)]
    pub slow_causes: Vec<(String, u64)>,
    /// The slow-write threshold given to tidemark for this run (ms), if any.
    #[serde(default)]
    pub slow_threshold_ms: Option<f64>,
    /// With a threshold: writes over it inside `put`, and writes over it
    /// only because the client's task started late.
    #[serde(default)]
    pub over_in_engine: Option<u64>,
    #[serde(default)]
    pub over_client_late: Option<u64>,
    /// (quantile, ms) pairs of the latency distribution, for the plots.
    pub percentiles: Option<Vec<[f64; 2]>>,
}

/// Quantiles kept for the latency plots.
const QUANTILES: [f64; 14] = [0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999, 1.0];

/// One run: an engine setting, a workload, a store, a seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// The record's workload name when it is not the workload's own (the
    /// frontier sweep).
    pub label: Option<String>,
    pub workload: Workload,
    pub store: StoreKind,
    pub wal_store: Option<StoreKind>,
    pub config: Config,
    pub writers: Option<u64>,
    pub rate: Option<u64>,
    pub seconds: u64,
    pub seed: u64,
    pub hog: u32,
    /// tidemark's slow-write threshold for this run (ms).
    pub slow_write_ms: Option<f64>,
    /// Recovery only: the WALs left to replay (0 is the open of an empty
    /// store), one case per plan so each has its own peak memory.
    pub wals: Option<u64>,
}

impl Plan {
    pub fn open_loop(store: StoreKind, config: Config, rate: u64, seconds: u64, seed: u64) -> Plan {
        Plan {
            label: None,
            workload: Workload::OpenLoop,
            store,
            wal_store: None,
            config,
            writers: None,
            rate: Some(rate),
            seconds,
            seed,
            hog: 0,
            slow_write_ms: None,
            wals: None,
        }
    }
}

pub fn latency_of(kind: StoreKind, args: &Args) -> Latency {
    match kind {
        StoreKind::Memory | StoreKind::File => Latency::Constant(Duration::ZERO),
        StoreKind::S3Latency => Latency::Constant(Duration::from_millis(args.latency_ms)),
        StoreKind::S3Tail => Latency::Tail {
            p50: Duration::from_millis(args.p50_ms),
            p99: Duration::from_millis(args.p99_ms),
            straggler_share: args.straggler_share,
            straggler: Duration::from_millis(args.straggler_ms),
        },
        StoreKind::S3Express => Latency::s3_express(),
    }
}

/// A store for one run and the wrapper that counts its requests.
struct RunStore {
    store: Arc<dyn ObjectStore>,
    latency: LatencyStore,
    _dir: Option<tempfile::TempDir>,
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

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The price of a PUT on the store that takes the WALs.
fn usd_per_put(plan: &Plan) -> f64 {
    if plan.wal_store.unwrap_or(plan.store) == StoreKind::S3Express {
        USD_PER_PUT_EXPRESS
    } else {
        USD_PER_PUT
    }
}

/// Opens the engine over a store that already holds `wals` WALs written by
/// a process that crashed (dropped without close): the time to open, the
/// requests it made.
async fn recovery(plan: &Plan, args: &Args) -> Res<Vec<Record>> {
    let mut out = Vec::new();
    let cases = [("open-empty", 0u64), ("recover-100-wals", 100), ("recover-1000-wals", 1000)];
    for (name, wals) in cases.into_iter().filter(|c| plan.wals.is_none_or(|w| w == c.1)) {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        if wals > 0 {
            // Written without latency: each durable put from one task is a WAL of its own.
            let fast: Arc<dyn ObjectStore> = Arc::new(LatencyStore::new(inner.clone(), Latency::Constant(Duration::ZERO), plan.seed));
            let db = engines::open(plan.config, fast, None, args, None).await?;
            for i in 0..wals {
                db.put(key("wal-", i), Bytes::from_static(b"value"), true).await?;
            }
            // The crash: dropped without close, so every WAL is left to replay.
            drop(db);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let latency = LatencyStore::new(inner, latency_of(plan.store, args), plan.seed);
        let start = Instant::now();
        let db = engines::open(plan.config, Arc::new(latency.clone()), None, args, None).await?;
        let took = start.elapsed();
        if wals > 0 && db.get(key("wal-", wals - 1)).await?.is_none() {
            return Err(format!("{}: the last acknowledged write is missing after recovery", plan.config.engine()).into());
        }
        let c = latency.counts();
        let ms = took.as_secs_f64() * 1e3;
        let mut r = blank_record(plan, args, name);
        r.ops = 1;
        r.seconds = took.as_secs_f64();
        r.ops_per_sec = 1.0 / took.as_secs_f64();
        (r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms) = (Some(ms), Some(ms), Some(ms), Some(ms));
        r.puts_per_sec = c.puts as f64 / took.as_secs_f64();
        r.gets_per_sec = (c.gets + c.lists) as f64 / took.as_secs_f64();
        r.requests_per_op = (c.puts + c.gets + c.lists + c.deletes) as f64;
        r.stragglers_met = latency.stragglers();
        r.hedges = db.hedges();
        out.push(r);
        db.close().await?;
    }
    Ok(out)
}

fn blank_record(plan: &Plan, args: &Args, workload: &str) -> Record {
    Record {
        engine: plan.config.engine().into(),
        setting: plan.config.setting(args),
        workload: plan.label.clone().unwrap_or_else(|| workload.into()),
        store: plan.store,
        wal_store: plan.wal_store,
        hog: plan.hog,
        seed: plan.seed,
        writers: plan.writers,
        rate: plan.rate,
        ops: 0,
        seconds: 0.0,
        ops_per_sec: 0.0,
        p50_ms: None,
        p99_ms: None,
        p999_ms: None,
        max_ms: None,
        puts_per_sec: 0.0,
        gets_per_sec: 0.0,
        requests_per_op: 0.0,
        usd_per_million_writes: None,
        cpu_us_per_write: None,
        peak_rss_mb: None,
        stragglers_met: 0,
        hedges: None,
        slow_writes: None,
        slow_causes: Vec::new(),
        slow_threshold_ms: plan.slow_write_ms,
        over_in_engine: None,
        over_client_late: None,
        percentiles: None,
    }
}

/// The requests of the main store and, if WALs have their own, of that one.
#[derive(Clone, Copy, Default)]
struct Counts {
    puts: u64,
    gets: u64,
    deletes: u64,
    stragglers: u64,
}

fn counts(stores: &[&RunStore]) -> Counts {
    stores.iter().fold(Counts::default(), |c, s| {
        let n = s.latency.counts();
        Counts {
            puts: c.puts + n.puts,
            gets: c.gets + n.gets + n.lists,
            deletes: c.deletes + n.deletes,
            stragglers: c.stragglers + s.latency.stragglers(),
        }
    })
}

async fn measure(plan: &Plan, args: &Args) -> Res<Vec<Record>> {
    if plan.workload == Workload::Recovery {
        return recovery(plan, args).await;
    }
    let value = Bytes::from(vec![b'v'; args.value_bytes as usize]);
    let rs = run_store(plan.store, args, plan.seed)?;
    // The WAL store draws its own latencies (another seed of the same series).
    let wal_rs = plan.wal_store.map(|k| run_store(k, args, plan.seed.wrapping_add(1_000_003))).transpose()?;
    let all: Vec<&RunStore> = std::iter::once(&rs).chain(wal_rs.as_ref()).collect();
    let run_for = Duration::from_secs(plan.seconds);
    let slow = plan.slow_write_ms.map(|ms| Duration::from_secs_f64(ms / 1e3));
    let db = engines::open(plan.config, rs.store.clone(), wal_rs.as_ref().map(|w| w.store.clone()), args, slow).await?;
    let before = counts(&all);
    let cpu_before = workloads::cpu_seconds();
    let mut results: Vec<(&'static str, Measured, Counts, Option<f64>)> = Vec::new();
    match plan.workload {
        Workload::ClosedLoop => {
            let m = workloads::closed_loop(&db, plan.writers.unwrap_or(1), run_for, value).await?;
            results.push(("closed-loop", m, counts(&all).minus(before), cpu_since(cpu_before)));
        }
        Workload::OpenLoop => {
            let m = workloads::open_loop(&db, plan.rate.unwrap_or(200), run_for, value, slow).await?;
            results.push(("open-loop", m, counts(&all).minus(before), cpu_since(cpu_before)));
        }
        Workload::Recovery => unreachable!("measured by `recovery`"),
        Workload::FireAndForget | Workload::Reads => {
            let m = workloads::fire_and_forget(&db, 20_000, value).await?;
            results.push(("fire-and-forget", m, counts(&all).minus(before), cpu_since(cpu_before)));
            if plan.workload == Workload::Reads {
                db.close().await?;
                let db = engines::open(plan.config, rs.store.clone(), wal_rs.as_ref().map(|w| w.store.clone()), args, None).await?;
                for name in ["reads-cold", "reads-warm"] {
                    let c0 = counts(&all);
                    let m = workloads::reads(&db, 200).await?;
                    results.push((name, m, counts(&all).minus(c0), None));
                }
                db.close().await?;
                results.retain(|r| r.0 != "fire-and-forget");
            }
        }
    }
    let hedges = db.hedges();
    let slow_writes = db.slow_writes();
    if plan.workload != Workload::Reads {
        db.close().await?;
    }
    let mut out = Vec::new();
    for (name, m, c, cpu) in results {
        let secs = m.elapsed.as_secs_f64();
        let usd = (c.puts as f64 * usd_per_put(plan) + c.gets as f64 * USD_PER_GET) / m.ops.max(1) as f64 * 1e6;
        let mut r = blank_record(plan, args, name);
        r.ops = m.ops;
        r.seconds = secs;
        r.ops_per_sec = m.ops as f64 / secs;
        if let Some(h) = &m.latency_us {
            (r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms) = (Some(ms(h, 0.5)), Some(ms(h, 0.99)), Some(ms(h, 0.999)), Some(ms(h, 1.0)));
            r.percentiles = Some(QUANTILES.iter().map(|&q| [q, ms(h, q)]).collect());
        }
        r.puts_per_sec = c.puts as f64 / secs;
        r.gets_per_sec = c.gets as f64 / secs;
        r.requests_per_op = (c.puts + c.gets + c.deletes) as f64 / m.ops.max(1) as f64;
        r.usd_per_million_writes = (m.writes > 0).then_some(usd);
        r.cpu_us_per_write = cpu.filter(|_| m.writes > 0).map(|s| s * 1e6 / m.writes as f64);
        r.stragglers_met = c.stragglers;
        r.hedges = hedges;
        if let Some(s) = &slow_writes {
            r.slow_writes = Some(s.total);
            r.slow_causes = s.by_cause.iter().map(|(c, n)| (c.name().to_string(), *n)).collect();
        }
        r.over_in_engine = m.over.map(|o| o.in_engine);
        r.over_client_late = m.over.map(|o| o.client_late);
        out.push(r);
    }
    Ok(out)
}

fn cpu_since(before: Option<f64>) -> Option<f64> {
    Some(workloads::cpu_seconds()? - before?)
}

impl Counts {
    fn minus(self, o: Counts) -> Counts {
        Counts {
            puts: self.puts - o.puts,
            gets: self.gets - o.gets,
            deletes: self.deletes - o.deletes,
            stragglers: self.stragglers - o.stragglers,
        }
    }
}

/// The plans `args` ask for (the acceptance run builds its own).
fn plans(args: &Args) -> Vec<Plan> {
    let stores: Vec<StoreKind> = match args.store {
        Some(s) => vec![s],
        None => vec![StoreKind::S3Tail, StoreKind::S3Express, StoreKind::S3Latency],
    };
    let short = args.seconds.unwrap_or(if args.quick { 5 } else { 10 });
    let long = args.seconds.unwrap_or(if args.quick { 30 } else { 60 });
    let wanted = |w: Workload| args.workload.is_none_or(|x| x == w);
    let seeds = || args.seed_list();
    if args.frontier {
        return stores.iter().filter(|s| matches!(s, StoreKind::S3Tail | StoreKind::S3Express)).flat_map(|&s| frontier(args, s)).collect();
    }
    let mut out = Vec::new();
    let single = |workload, store, config, writers, seconds, wals| Plan {
        label: None,
        workload,
        store,
        wal_store: args.wal_store,
        config,
        writers,
        rate: None,
        seconds,
        seed: args.seed,
        hog: args.hog,
        slow_write_ms: args.slow_write_ms,
        wals,
    };
    for &store in &stores {
        if wanted(Workload::OpenLoop) {
            for rate in [200u64, 2000].into_iter().filter(|r| args.rate.is_none_or(|x| x == *r)) {
                let seconds = if rate == 2000 { long } else { short };
                let mut configs = vec![Config::Tidemark, Config::SlateDb(10)];
                if !args.quick {
                    configs.extend([Config::TidemarkNoHedge, Config::SlateDb(100)]);
                }
                if store == StoreKind::S3Tail && rate == 2000 && args.quick {
                    configs.push(Config::TidemarkNoHedge);
                }
                // Seeds outermost: the engines alternate, so a busy spell
                // of the host falls on both.
                for seed in seeds() {
                    for &config in &configs {
                        let mut p = Plan::open_loop(store, config, rate, seconds, seed);
                        (p.wal_store, p.hog, p.slow_write_ms) = (args.wal_store, args.hog, args.slow_write_ms);
                        out.push(p);
                    }
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
                    out.push(single(Workload::ClosedLoop, store, config, Some(writers), short.min(10), None));
                }
            }
        }
        if wanted(Workload::FireAndForget) {
            for config in [Config::Tidemark, Config::SlateDb(10)] {
                out.push(single(Workload::FireAndForget, store, config, None, 0, None));
            }
        }
        if wanted(Workload::Reads) {
            for config in [Config::Tidemark, Config::SlateDb(10)] {
                out.push(single(Workload::Reads, store, config, None, 0, None));
            }
        }
        if wanted(Workload::Recovery) {
            for wals in [0u64, 100, 1000] {
                for config in [Config::Tidemark, Config::SlateDb(10)] {
                    out.push(single(Workload::Recovery, store, config, None, 0, Some(wals)));
                }
            }
        }
    }
    if let Some(engine) = &args.engine {
        out.retain(|p| p.config.engine() == engine);
    }
    out
}

/// The frontier on `store`: tidemark's PUT budgets against SlateDB's flush
/// intervals, open loop 2,000/s, over the seeds.
fn frontier(args: &Args, store: StoreKind) -> Vec<Plan> {
    let seconds = args.seconds.unwrap_or(20);
    let budgets = [0.5, 0.75, 1.0, 1.25, 2.0, 4.0].map(|k| Config::TidemarkBudget(Budget::PerUpload(k)));
    let unlimited = Config::TidemarkBudget(Budget::Unlimited);
    let slatedb: &[u64] = match store {
        StoreKind::S3Express => &[1, 5, 10, 25],
        _ => &[5, 10, 25, 50, 100, 200],
    };
    let mut out = Vec::new();
    for seed in args.seed_list() {
        for config in budgets.into_iter().chain([unlimited]).chain(slatedb.iter().map(|&ms| Config::SlateDb(ms))) {
            let mut p = Plan::open_loop(store, config, 2000, seconds, seed);
            (p.label, p.hog, p.slow_write_ms) = (Some("frontier".into()), args.hog, args.slow_write_ms);
            out.push(p);
        }
    }
    out
}

/// The store's own single-request distribution, from the same sampler.
pub fn store_distribution(kind: StoreKind, args: &Args) -> (f64, f64, f64) {
    let mut s = LatencySampler::new(latency_of(kind, args), args.seed);
    let mut h = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    for _ in 0..100_000 {
        let _ = h.record(s.sample().0.as_micros() as u64);
    }
    (ms(&h, 0.5), ms(&h, 0.99), ms(&h, 0.999))
}

/// The p99 of one PUT timed through the store as the engines meet it (a
/// 4 KiB object, 2,000 in sequence on a tokio runtime): the drawn latency
/// plus the runtime's timer, which rounds every wait up to its millisecond tick.
pub fn timed_put_p99(kind: StoreKind, args: &Args) -> Res<f64> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let store = LatencyStore::new(Arc::new(InMemory::new()), latency_of(kind, args), args.seed);
        let mut h = Histogram::<u64>::new(3).expect("3 significant digits is valid");
        let body = Bytes::from(vec![7u8; 4096]);
        for i in 0..2_000u32 {
            let path = object_store::path::Path::from(format!("floor/{i}"));
            let started = Instant::now();
            object_store::ObjectStoreExt::put(&store, &path, body.clone().into()).await?;
            let _ = h.record(started.elapsed().as_micros() as u64);
        }
        Ok(ms(&h, 0.99))
    })
}

fn print_store_distribution(kind: StoreKind, args: &Args) {
    let (p50, p99, p999) = store_distribution(kind, args);
    println!("store {kind:?}: one request p50 {p50:.1} ms, p99 {p99:.1} ms, p999 {p999:.1} ms (100,000 draws)");
}

/// Runs `plans`, printing progress, writing records to `out` as they come.
pub fn run_plans(plans: &[Plan], args: &Args, out: &mut Option<std::fs::File>, records: &mut Vec<Record>) -> Res<()> {
    for (i, plan) in plans.iter().enumerate() {
        if !args.json {
            eprintln!(
                "[{}/{}] {:?} on {:?}{}: {} {} (seed {}, rate {:?}, {} s{})",
                i + 1,
                plans.len(),
                plan.workload,
                plan.store,
                plan.wal_store.map_or(String::new(), |w| format!(" (WALs on {w:?})")),
                plan.config.engine(),
                plan.config.setting(args),
                plan.seed,
                plan.rate,
                plan.seconds,
                if plan.hog > 0 { format!(", {} hogs", plan.hog) } else { String::new() },
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
    Ok(())
}

fn main() -> Res<()> {
    let args = Args::parse();
    if args.spin {
        let mut x: u64 = 1;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
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
    let mut out = match &args.out {
        Some(path) => Some(std::fs::File::create(path)?),
        None => None,
    };
    if args.bound {
        let kind = args.store.unwrap_or(StoreKind::S3Express);
        let seeds: Vec<u64> = args.seed_list().collect();
        bound::print(&format!("{kind:?}"), &latency_of(kind, &args), &seeds, args.rate.unwrap_or(2000), args.seconds.unwrap_or(30), &args.bound_at);
        return Ok(());
    }
    let mut records = Vec::new();
    if args.acceptance {
        acceptance::run(&args, &mut out, &mut records)?;
    } else {
        let plans = plans(&args);
        if !args.json {
            for kind in [StoreKind::S3Tail, StoreKind::S3Express, StoreKind::S3Latency] {
                if plans.iter().any(|p| p.store == kind || p.wal_store == Some(kind)) {
                    print_store_distribution(kind, &args);
                }
            }
            println!("values {} B; {} runs, each in a process of its own", args.value_bytes, plans.len());
        }
        run_plans(&plans, &args, &mut out, &mut records)?;
        if !args.json {
            report::print_table(&records);
            report::print_spread(&records);
            report::print_ratios(&records);
        }
    }
    if let Some(dir) = &args.plot {
        write_plots(&records, dir)?;
    }
    Ok(())
}

/// Runs `plan` in a child process (this binary with the same arguments and
/// `--child PLAN`) and reads back its records, so that each record's peak
/// resident memory and CPU time are its own plan's.
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

/// Busy processes beside a run, killed when dropped.
struct Hogs(Vec<std::process::Child>);

impl Hogs {
    fn start(n: u32) -> Res<Hogs> {
        let exe = std::env::current_exe()?;
        let children = (0..n)
            .map(|_| Command::new(&exe).arg("--spin").stdin(Stdio::null()).stdout(Stdio::null()).spawn())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Hogs(children))
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The child's side: measure the one plan (beside its hogs), then stamp
/// every record with this process's peak resident memory and print them as
/// JSON lines.
fn run_child(plan: Plan, args: &Args) -> Res<()> {
    if args.acceptance || plan.slow_write_ms.is_some() {
        // SlowWrite reports go to stderr, where the run's log is.
        let _ = tracing_subscriber_init();
    }
    let hogs = Hogs::start(plan.hog)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut records = runtime.block_on(measure(&plan, args))?;
    drop(hogs);
    // Background tasks the engines left are not waited for.
    runtime.shutdown_background();
    let peak = workloads::peak_rss_mb();
    let mut stdout = std::io::stdout().lock();
    for r in &mut records {
        r.peak_rss_mb = peak;
        writeln!(stdout, "{}", serde_json::to_string(r)?)?;
    }
    stdout.flush()?;
    Ok(())
}

/// Prints tidemark's `SlowWrite` warnings (and nothing else) to stderr.
fn tracing_subscriber_init() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = Targets::new().with_target("tidemark", LevelFilter::WARN);
    tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).compact()).with(filter).try_init()?;
    Ok(())
}

/// Every plot the records allow, as SVG files in `dir`.
fn write_plots(records: &[Record], dir: &std::path::Path) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    for (store, name) in [
        (StoreKind::S3Tail, "latency-s3-tail.svg"),
        (StoreKind::S3Express, "latency-s3-express.svg"),
        (StoreKind::S3Latency, "latency-s3-latency.svg"),
    ] {
        if plot::latency(records, store, 2000, &dir.join(name))? {
            eprintln!("wrote {}", dir.join(name).display());
        }
    }
    for (store, name) in [(StoreKind::S3Tail, "frontier-s3-tail.svg"), (StoreKind::S3Express, "frontier-s3-express.svg")] {
        if plot::frontier(records, store, &dir.join(name))? {
            eprintln!("wrote {}", dir.join(name).display());
        }
    }
    Ok(())
}
