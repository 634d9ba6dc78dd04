//! One crash schedule: rounds of a seeded concurrent workload against a
//! `Db` on a [`FaultStore`], each ended by a crash (or a zombie takeover),
//! followed by a recovery that is checked against the oracle.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tidemark::internals::protocol::Protocol;
use tidemark::internals::sync::{lock, Arc, Mutex};
use tidemark::testing::{FaultStore, RandomFaults};
use tidemark::internals::trace::{MemoryRecorder, TraceStep};

use crate::conformance;
use crate::db_api as api;
use crate::liveness;
use crate::oracle::WriterHistory;
use crate::shared::SharedKeys;
use crate::workload::{self, Op};

/// What one schedule does.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Concurrent writers per process.
    pub writers: usize,
    /// Operations per writer per round.
    pub ops: usize,
    /// Crashes (rounds) per schedule.
    pub rounds: usize,
    /// The store operation at which round 0 crashes; `None` picks one by seed.
    pub crash_op: Option<u64>,
    /// Keep the old `Db` running while a new one opens (I5).
    pub zombies: bool,
    pub protocol: Protocol,
    /// Run on the wall clock instead of a paused one: timing varies from run
    /// to run (more interleavings over many runs, but a seed no longer
    /// replays exactly).
    pub wall_clock: bool,
    /// `Settings::burst_gap` of every process: zero on odd seeds (many small
    /// WALs, more interleavings), the engine's default on even ones.
    pub burst_gap: Duration,
    /// The longest read delay of the process's [`FaultStore`] (each read waits
    /// a seeded time up to it), or zero for reads that answer at once. On for
    /// one seed in eight (seeds 14 and 15 mod 16, one of each `burst_gap`): a
    /// delayed read spans other tasks' store calls, so a read that is not one
    /// consistent state (issue 11: a scan that missed an L0 flush) is seen.
    pub read_delay: Duration,
    /// Engine mutant `scan-without-snapshot` (issue 11's scan bug).
    pub scan_without_snapshot: bool,
    /// A seeded crash comes within this many chaos ticks (0.5 ms each) per
    /// operation of a writer: 3 by default, which crashes most rounds early
    /// in the write protocol; [`LATE_CRASH_TICKS_PER_OP`] for seeds that
    /// delay reads, so that memtables reach L0 and reads overlap L0 flushes.
    pub crash_ticks_per_op: u32,
    /// Run the compactor and GC in every process (one seed in five): crashes
    /// then land during compactions, GC passes and their manifest updates.
    /// Trace conformance does not replay those steps yet, so these
    /// schedules are checked by the oracle only.
    pub compaction: bool,
    /// Seeded store faults in every live process ([`FAULTS`]): transient
    /// errors on any call (retried by the engine's `RetryStore`), creates
    /// that land and report `AlreadyExists`, conditional updates that land
    /// and report `Precondition`, and reads and listings delayed up to
    /// [`MAX_READ_DELAY`]. On for seeds 3 mod 5 (half of them with zombies),
    /// or for every seed with `crash-check --faults`.
    pub faults: Option<RandomFaults>,
    /// Writers also write and read keys they share (`shared::PREFIX`), so
    /// the writers of a process, and a zombie and its successor, overwrite
    /// each other: seeds 1 mod 3.
    pub shared_keys: bool,
    /// After the last recovery check, this many processes open the store at
    /// once and race (0: none): seeds 7 mod 10 race 2 to 16 openers.
    pub racing_openers: usize,
    /// Engine mutant `sst-names-without-epoch` (see `Settings`).
    pub sst_names_without_epoch: bool,
    /// Engine mutant `window-never-freed` (see `Settings`).
    pub window_never_freed: bool,
    /// The shared store schedules run in (each under a prefix of its own,
    /// see `s3::schedule_store`); `None` gives each schedule a fresh
    /// `InMemory`. A real store needs `wall_clock`: on a paused clock its
    /// HTTP timeouts would fire at once.
    pub store: Option<Arc<dyn ObjectStore>>,
    // --- Two stores (crash/tests/two_stores.rs) ---
    /// WALs and fences in a store of their own (`Settings::wal_store`):
    /// the engine routes them under `db_api::WAL_STORE_ROOT`, which lies
    /// inside the prefix the chaos task holds, so every schedule runs as
    /// before with only the WALs' location changed.
    pub wal_store: bool,
}

impl Config {
    pub fn new(seed: u64) -> Self {
        let burst_gap = if seed % 2 == 1 { Duration::ZERO } else { tidemark::Settings::default().burst_gap };
        // Independent of `burst_gap`'s parity: both combinations occur.
        let read_delay = if seed % 16 >= 14 { MAX_READ_DELAY } else { Duration::ZERO };
        let crash_ticks_per_op = if read_delay.is_zero() { 3 } else { LATE_CRASH_TICKS_PER_OP };
        let faults = (seed % 5 == 3).then_some(FAULTS);
        Self {
            seed,
            writers: 6,
            ops: 12,
            rounds: 2,
            crash_op: None,
            zombies: faults.is_some() && seed % 2 == 0,
            protocol: Protocol::Shipped,
            wall_clock: false,
            burst_gap,
            read_delay,
            scan_without_snapshot: false,
            crash_ticks_per_op,
            compaction: seed % 5 == 2,
            faults,
            shared_keys: seed % 3 == 1,
            racing_openers: if seed % 10 == 7 { 2 + (seed / 10 % 15) as usize } else { 0 },
            sst_names_without_epoch: false,
            window_never_freed: false,
            store: None,
            wal_store: false,
        }
    }

    /// Turns faults on (`crash-check --faults`): every seed, zombies on even ones.
    pub fn with_faults(mut self) -> Self {
        if self.faults.is_none() {
            self.faults = Some(FAULTS);
            self.zombies |= self.seed % 2 == 0;
        }
        self
    }
}

/// The faults of a faulty schedule: one call in twenty fails transiently
/// (with `max_retries` 2, about one in 8,000 fails for good), one
/// conditional put in five lands and reports a conflict.
pub const FAULTS: RandomFaults = RandomFaults { transient: 0.05, ambiguous: 0.2 };

/// The first invariant violation of a schedule.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub seed: u64,
    pub round: usize,
    pub crash_op: u64,
    pub invariant: String,
    pub detail: String,
}

/// The result of one schedule.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    /// Store operations performed in round 0 (to enumerate crash points).
    pub round0_ops: u64,
    pub failure: Option<Failure>,
    /// Whether the recorded trace was replayed through the model, and if
    /// not, why.
    pub conformance: Conformance,
    /// The recorded trace of every process (on the paused clock, the same
    /// for the same seed).
    #[serde(skip)]
    pub trace: Vec<TraceStep>,
    /// Faults injected in the live processes.
    pub injected: Injected,
}

impl Injected {
    /// Adds another schedule's counts.
    pub fn add(&mut self, o: &Injected) {
        self.transient += o.transient;
        self.ambiguous_creates += o.ambiguous_creates;
        self.ambiguous_wals += o.ambiguous_wals;
        self.racers += o.racers;
        self.racers_fenced += o.racers_fenced;
    }
}

/// What a schedule's fault stores injected, summed over its processes.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Injected {
    pub transient: u64,
    /// Creates (WAL, fence, manifest, SST) that landed and reported `AlreadyExists`.
    pub ambiguous_creates: u64,
    /// Of them, WAL and fence creates.
    pub ambiguous_wals: u64,
    /// Racing openers run, and how many were fenced.
    pub racers: u64,
    pub racers_fenced: u64,
}

/// Whether a schedule's trace was replayed through the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Conformance {
    Replayed,
    /// Not replayed, for this reason.
    Skipped(&'static str),
}

/// What the writers' tasks record while they run.
#[derive(Default)]
struct Shared {
    histories: Vec<WriterHistory>,
    /// Every protocol action of every process, in order (trace conformance).
    recorder: MemoryRecorder,
    /// Live-read anomalies (a writer not seeing its own writes, a shared
    /// key read no order allows): the invariant and what was seen.
    anomalies: Vec<(&'static str, String)>,
    /// Writes to and reads of the keys writers share.
    shared: SharedKeys,
    /// WAL ids whose create landed and reported `AlreadyExists` (trace
    /// conformance replays them as ambiguous `WalDurable`s).
    ambiguous: conformance::Ambiguous,
    injected: Injected,
    /// Processes started so far (live reads of shared keys know their own).
    processes: usize,
}

type Histories = Arc<Mutex<Shared>>;

/// The longest delay of a read when reads are delayed: a few chaos ticks, so
/// that an upload can land and an L0 flush finish while a read waits.
pub const MAX_READ_DELAY: Duration = Duration::from_millis(2);

/// Crash ticks per operation of the seeds that delay reads. Measured against
/// the `scan-without-snapshot` mutant (2,000 seeds, all delaying reads): 3
/// caught it in 1 seed, 6 in 29, 12 in 102, 24 in 166. Such a seed costs
/// about 2.5 times a default one, hence one seed in eight.
pub const LATE_CRASH_TICKS_PER_OP: u32 = 24;

/// How long a crashed process gets to notice before it is torn down.
const CRASH_GRACE: Duration = Duration::from_millis(300);
/// A round that has not crashed must finish within this (else: a hang).
const ROUND_LIMIT: Duration = Duration::from_secs(60);

/// Runs one schedule to its first violation or to the end.
pub fn run(cfg: &Config) -> Report {
    let inner: Arc<dyn ObjectStore> = match &cfg.store {
        Some(base) => crate::s3::schedule_store(base, cfg.seed),
        None => Arc::new(InMemory::new()),
    };
    let writer_slots = if cfg.zombies { cfg.writers * 2 } else { cfg.writers };
    let histories: Histories = Arc::new(Mutex::new(Shared {
        histories: vec![WriterHistory::default(); writer_slots],
        recorder: MemoryRecorder::new(),
        anomalies: Vec::new(),
        shared: SharedKeys::default(),
        ambiguous: Default::default(),
        injected: Injected::default(),
        processes: 0,
    }));
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut round0_ops = 0;
    for round in 0..cfg.rounds {
        // Round 0 may crash at a chosen store operation; otherwise the crash
        // comes at a seeded moment, while uploads are likely in flight.
        let (crash_op, crash_tick) = match (round, cfg.crash_op) {
            (0, Some(k)) => (k, None),
            _ => (u64::MAX, Some(rng.random_range(1..=(cfg.ops as u32 * cfg.crash_ticks_per_op).max(2)))),
        };
        let ops = live_phase(cfg, round, (crash_op, crash_tick), &inner, &histories, &mut rng);
        if std::env::var_os("CRASH_DEBUG").is_some() {
            let h = lock(&histories);
            let steps: Vec<(usize, usize)> =
                h.histories.iter().map(|w| (w.steps.len(), w.steps.iter().filter(|s| s.acked).count())).collect();
            let wals: Vec<String> = runtime(cfg).block_on(async {
                use futures::TryStreamExt;
                let mut v: Vec<String> = inner
                    .list(Some(&object_store::path::Path::from("db/wal")))
                    .map_ok(|m| m.location.filename().unwrap_or("").trim_start_matches('0').to_string())
                    .try_collect()
                    .await
                    .unwrap_or_default();
                v.sort_by_key(|s| s.trim_end_matches(".sst").parse::<u64>().unwrap_or(0));
                v
            });
            eprintln!("seed {} round {round}: crash at op {crash_op}, ops {ops}, (steps, acked) per writer {steps:?} wals {wals:?}", cfg.seed);
        }
        if round == 0 {
            round0_ops = ops;
        }
        if let Err(mut failure) = recovery_phase(cfg, &inner, &histories, round + 1 == cfg.rounds) {
            failure.round = round;
            failure.crash_op = crash_op;
            let conformance = Conformance::Skipped("the oracle found a violation first");
            let trace = lock(&histories).recorder.steps();
            let injected = lock(&histories).injected;
            return Report { seed: cfg.seed, round0_ops, failure: Some(failure), conformance, trace, injected };
        }
    }
    let trace = lock(&histories).recorder.steps();
    let (ambiguous, injected) = {
        let h = lock(&histories);
        (h.ambiguous.clone(), h.injected)
    };
    let (conformance, failure) = conformance_failure(cfg, &trace, &ambiguous);
    Report { seed: cfg.seed, round0_ops, failure, conformance, trace, injected }
}

/// One process: a single-threaded runtime, by default on a paused clock.
/// Timers then fire only when every task is idle, in deadline order, so a
/// seed replays the same interleaving (and no schedule waits on real time).
fn runtime(cfg: &Config) -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().enable_all().start_paused(!cfg.wall_clock).build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start a tokio runtime for the harness: {e}"),
    }
}

/// The live process (and, in zombie mode, its successor): runs the workload
/// until the store crashes at `crash_op`, then the process is torn down by
/// dropping its runtime. Returns the store operations it performed.
fn live_phase(
    cfg: &Config,
    round: usize,
    (crash_op, crash_tick): (u64, Option<u32>),
    inner: &Arc<dyn ObjectStore>,
    histories: &Histories,
    rng: &mut StdRng,
) -> u64 {
    let fault = FaultStore::new(inner.clone(), rng.random());
    fault.hold_prefix(api::WAL_PREFIX);
    fault.hold_prefix(api::SST_PREFIX);
    fault.crash_at(crash_op);
    let read_delay_seed: u64 = rng.random();
    // Faulty seeds delay every read; other seeds as `read_delay` says.
    let read_delay = match cfg.faults {
        Some(_) if cfg.read_delay.is_zero() => MAX_READ_DELAY,
        _ => cfg.read_delay,
    };
    if !read_delay.is_zero() {
        fault.delay_reads(read_delay, read_delay_seed);
    }
    // Drawn only for faulty seeds: other seeds replay as they did.
    let fault_seed: Option<u64> = cfg.faults.map(|_| rng.random());
    if let (Some(faults), Some(seed)) = (cfg.faults, fault_seed) {
        fault.random_faults(faults, seed);
    }
    let plans: Vec<Vec<Op>> = (0..cfg.writers).map(|w| workload::generate(rng, w, round, cfg.ops, cfg.shared_keys)).collect();
    let successor_plans: Vec<Vec<Op>> =
        (0..cfg.writers).map(|w| workload::generate(rng, cfg.writers + w, round, cfg.ops, cfg.shared_keys)).collect();
    let process = {
        let mut h = lock(histories);
        h.processes += 2;
        h.processes - 2
    };
    let chaos_seed: u64 = rng.random();
    let takeover_after = rng.random_range(0..=cfg.ops);
    let recorder = lock(histories).recorder.clone();
    let since = recorder.len();
    let rt = runtime(cfg);
    let zombie_successor = rt.block_on(async {
        let chaos_task = tokio::spawn(chaos(fault.clone(), chaos_seed, crash_tick));
        let opened = api::open(Arc::new(fault.clone()), cfg, &recorder).await;
        if let (Err(e), true) = (&opened, std::env::var_os("CRASH_DEBUG").is_some()) {
            eprintln!("seed {} round {round}: open failed: {e}", cfg.seed);
        }
        let Ok(db) = opened else {
            chaos_task.abort();
            return None; // Crashed during open: recovery must still succeed later.
        };
        let db = Arc::new(db);
        let mut tasks = Vec::new();
        for (w, plan) in plans.into_iter().enumerate() {
            tasks.push(tokio::spawn(run_writer(db.clone(), process, w, plan, histories.clone())));
        }
        let mut successor = None;
        let mut zombie_successor = None;
        if cfg.zombies {
            // The old process keeps running; a new one recovers beside it.
            for _ in 0..takeover_after {
                tokio::task::yield_now().await;
            }
            let fresh = FaultStore::new(inner.clone(), chaos_seed ^ 1);
            if !read_delay.is_zero() {
                fresh.delay_reads(read_delay, read_delay_seed ^ 1);
            }
            if let (Some(faults), Some(seed)) = (cfg.faults, fault_seed) {
                fresh.random_faults(faults, seed ^ 1);
            }
            fresh.hold_prefix(api::WAL_PREFIX);
            fresh.hold_prefix(api::SST_PREFIX);
            tokio::spawn(chaos(fresh.clone(), chaos_seed ^ 2, None));
            if let Ok(next) = api::open(Arc::new(fresh.clone()), cfg, &recorder).await {
                let next = Arc::new(next);
                for (w, plan) in successor_plans.into_iter().enumerate() {
                    tasks.push(tokio::spawn(run_writer(next.clone(), process + 1, cfg.writers + w, plan, histories.clone())));
                }
                successor = Some((next, fresh.clone()));
            }
            zombie_successor = Some(fresh);
        }
        let all = futures_join(tasks);
        if tokio::time::timeout(ROUND_LIMIT, all).await.is_err() {
            // A hang is reported by the recovery phase's oracle as lost acks
            // only if acks were promised; the crash below ends the round.
        }
        if !fault.is_crashed() {
            fault.crash().await;
        }
        if let Some((_, fresh)) = &successor {
            fresh.crash().await;
        }
        tokio::time::sleep(CRASH_GRACE.min(Duration::from_millis(5))).await;
        chaos_task.abort();
        zombie_successor
    });
    let ops = fault.ops();
    let mut injected = vec![fault.injected()];
    injected.extend(zombie_successor.map(|f| f.injected()));
    drop(rt); // The process is gone: every task and buffer with it.
    let listed = runtime(cfg).block_on(api::list_wals(inner));
    api::record_crashes(&recorder, since, listed);
    // Who wrote each manifest that landed ambiguously (conformance tells a
    // claim from a manifest write by it).
    let manifests: Vec<(u64, u64)> = runtime(cfg).block_on(async {
        let mut out = Vec::new();
        for path in injected.iter().flat_map(|i| i.ambiguous.iter()) {
            let Some(version) = api::parse_manifest(path) else { continue };
            if let Some(epoch) = api::manifest_writer_epoch(inner, path).await {
                out.push((version, epoch));
            }
        }
        out
    });
    let mut h = lock(histories);
    for i in &injected {
        h.injected.transient += i.transient;
        h.injected.ambiguous_creates += i.ambiguous.len() as u64;
        let wals: Vec<u64> = i.ambiguous.iter().filter_map(api::parse_wal).collect();
        h.injected.ambiguous_wals += wals.len() as u64;
        h.ambiguous.wals.extend(wals);
        h.ambiguous.manifests.extend(manifests.iter().copied());
    }
    ops
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// Lands held uploads one at a time in a seeded order, holding them long
/// enough that several are in flight at once and complete out of order;
/// crashes the store at tick `crash_tick` if given.
async fn chaos(fault: FaultStore, seed: u64, crash_tick: Option<u32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tick = 0u32;
    let mut waited = 0u32;
    while !fault.is_crashed() {
        tokio::time::sleep(Duration::from_micros(500)).await;
        tick += 1;
        if Some(tick) == crash_tick {
            fault.crash().await;
            return;
        }
        let held = fault.held();
        if held.is_empty() {
            continue;
        }
        waited += 1;
        // Wait for company (out-of-order completions need two in flight), but
        // not for ever: a lone upload lands after a few ticks.
        if held.len() < 2 && waited < 8 || !rng.random_bool(0.5) {
            continue;
        }
        waited = 0;
        let pick = rng.random_range(0..held.len());
        fault.release(&held[pick]).await;
    }
}

/// One writer of process `process`: performs its operations in order,
/// recording each step before it is issued and its outcome after the call
/// returns (writes to shared keys with the logical time of both).
async fn run_writer(db: Arc<api::Db>, process: usize, writer: usize, plan: Vec<Op>, histories: Histories) {
    for op in plan {
        // The application does other work between calls: the flusher may
        // freeze between two fire-and-forget writes of one writer.
        tokio::task::yield_now().await;
        match op {
            Op::Write { writes, await_durable } => {
                let step = {
                    let mut h = lock(&histories);
                    let own = writes.iter().filter(|(k, _)| !crate::shared::is_shared(k)).cloned().collect();
                    let step = h.histories[writer].issue(own);
                    h.shared.issue(writer, step, process, &writes);
                    step
                };
                let result = api::write(&db, writes, await_durable).await;
                let mut h = lock(&histories);
                let not_written = result.as_ref().is_err_and(api::not_written);
                h.shared.returned(writer, step, result.is_ok() && await_durable, not_written);
                match result {
                    Ok(()) if await_durable => h.histories[writer].ack(step),
                    Ok(()) => {}
                    Err(_) => {
                        if not_written {
                            h.histories[writer].not_written(step);
                        }
                        return;
                    }
                }
            }
            Op::Flush => match api::flush(&db).await {
                Ok(()) => {
                    let mut h = lock(&histories);
                    h.histories[writer].ack_all();
                    h.shared.ack_all(writer);
                }
                Err(_) => return,
            },
            Op::Scan => {
                // Read-your-writes: a live writer sees its own history as
                // of the moment the read began.
                let check = lock(&histories).histories[writer].read_check(writer);
                let Ok(seen) = api::scan_prefix(&db, workload::key_prefix(writer)).await else { return };
                if let Err(anomaly) = check.scan(&seen) {
                    lock(&histories).anomalies.push(("read-your-writes", anomaly));
                    return;
                }
            }
            Op::Get { key } if crate::shared::is_shared(&key) => {
                let began = lock(&histories).shared.tick();
                let Ok(seen) = api::get(&db, key.clone()).await else { return };
                let mut h = lock(&histories);
                h.shared.tick();
                if let Err(anomaly) = h.shared.check_read(&key, process, began, seen.as_ref()) {
                    h.anomalies.push((anomaly.invariant, anomaly.detail));
                    return;
                }
            }
            Op::Get { key } => {
                let check = lock(&histories).histories[writer].read_check(writer);
                let Ok(seen) = api::get(&db, key.clone()).await else { return };
                if let Err(anomaly) = check.get(&key, seen.as_ref()) {
                    lock(&histories).anomalies.push(("read-your-writes", anomaly));
                    return;
                }
            }
        }
    }
}

/// A new process opens the store with no faults and checks every writer.
/// `last`: the schedule's last recovery, after which openers race (if any).
fn recovery_phase(cfg: &Config, inner: &Arc<dyn ObjectStore>, histories: &Histories, last: bool) -> Result<(), Failure> {
    let fail = |invariant: &str, detail: String| Failure {
        seed: cfg.seed,
        round: 0,
        crash_op: 0,
        invariant: invariant.to_string(),
        detail,
    };
    let recorder = lock(histories).recorder.clone();
    let since = recorder.len();
    let rt = runtime(cfg);
    let result = rt.block_on(async {
        let db = api::open(inner.clone(), cfg, &recorder)
            .await
            .map_err(|e| fail("I2 RecoveryNeverFails", format!("open after crash failed: {e}")))?;
        if let Some((invariant, anomaly)) = lock(histories).anomalies.first() {
            return Err(fail(invariant, anomaly.clone()));
        }
        // Shared keys first: where both checks would fail, the shared-key
        // oracle is the one shown to catch it.
        let observed = api::scan_prefix(&db, Bytes::from_static(crate::shared::PREFIX.as_bytes()))
            .await
            .map_err(|e| fail("I2 RecoveryNeverFails", format!("scan after recovery failed: {e}")))?;
        lock(histories).shared.check_and_rebase(&observed).map_err(|v| fail(v.invariant, v.detail))?;
        let writer_count = lock(histories).histories.len();
        for w in 0..writer_count {
            let observed: BTreeMap<Bytes, Bytes> = api::scan_prefix(&db, workload::key_prefix(w))
                .await
                .map_err(|e| fail("I2 RecoveryNeverFails", format!("scan after recovery failed: {e}")))?;
            lock(histories).histories[w].check_and_rebase(w, &observed).map_err(|v| fail(v.invariant(), v.to_string()))?;
        }
        let s = api::settings(cfg.protocol);
        liveness::progress(&db, s.max_inflight_wal_uploads as usize, s.l0_sst_size_bytes)
            .await
            .map_err(|e| fail("liveness: RecoveredWriterProgresses", e))?;
        api::close(db).await.map_err(|e| fail("I2 RecoveryNeverFails", format!("close after recovery failed: {e}")))?;
        if cfg.racing_openers > 0 && last {
            let outcome = liveness::race(inner, cfg, &recorder, cfg.racing_openers)
                .await
                .map_err(|e| fail("liveness: RacingOpenersFinish", e))?;
            let mut h = lock(histories);
            h.injected.racers += outcome.openers as u64;
            h.injected.racers_fenced += outcome.fenced as u64;
        }
        Ok(())
    });
    let listed = rt.block_on(api::list_wals(inner));
    api::record_crashes(&recorder, since, listed);
    result
}

/// Replays the schedule's recorded trace through the model (trace
/// conformance) and reports the first step the model does not allow.
fn conformance_failure(cfg: &Config, steps: &[TraceStep], ambiguous: &conformance::Ambiguous) -> (Conformance, Option<Failure>) {
    if cfg.compaction {
        return (Conformance::Skipped("compaction and GC steps are not replayed yet"), None);
    }
    if !conformance::fits(steps) {
        return (Conformance::Skipped("more writes than the model's ids"), None);
    }
    let Some(bad) = conformance::check(cfg.protocol, api::settings(cfg.protocol).max_inflight_wal_uploads, steps, ambiguous) else {
        return (Conformance::Replayed, None);
    };
    if let Some(why) = bad.unreplayable {
        return (Conformance::Skipped(why), None);
    }
    if std::env::var_os("CRASH_DEBUG").is_some() {
        for (i, s) in steps.iter().enumerate().take(bad.index + 1) {
            eprintln!("{i:4} epoch {} {:?}", s.writer_epoch, s.event);
        }
    }
    let failure = Failure { seed: cfg.seed, round: 0, crash_op: 0, invariant: "trace conformance".into(), detail: bad.to_string() };
    (Conformance::Replayed, Some(failure))
}
