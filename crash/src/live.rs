//! The live phase of a round: a process (and, in zombie mode, its successor
//! beside it) runs the workload on a `FaultStore` while a chaos task lands
//! held uploads, listings and reads out of order and the schedule's clock
//! may jump; a read-only handle reads beside the writers; the store crashes
//! at a seeded moment and the process is torn down.

use std::time::Duration;


use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tidemark::internals::sync::{lock, Arc, AtomicBool, AtomicUsize, Ordering};
use tidemark::testing::FaultStore;
use tidemark::Clock;

use crate::clock::ScheduleClock;
use crate::config::{CompactorPlace, Config, MAX_JUMP, MAX_READ_DELAY};
use crate::db_api as api;
use crate::oracle::{State, Window};
use crate::schedule::{failure, runtime, Failure, Histories, World, CRASH_GRACE};
use crate::workload::{self, Op};
use crate::writer::WriterTask;

/// A round must finish within this, crashed or not (else: a hang): after a
/// crash every store call fails, so every call of the engine must end.
const ROUND_LIMIT: Duration = Duration::from_secs(60);

/// How one process's store misbehaves (drawn from the schedule's seed).
struct StoreFaults {
    read_delay: Duration,
    read_delay_seed: u64,
    fault_seed: Option<u64>,
}

impl StoreFaults {
    fn draw(cfg: &Config, rng: &mut StdRng) -> Self {
        let read_delay_seed: u64 = rng.random();
        // Faulty seeds delay every read; other seeds as `read_delay` says.
        let read_delay = match cfg.faults {
            Some(_) if cfg.read_delay.is_zero() => MAX_READ_DELAY,
            _ => cfg.read_delay,
        };
        // Drawn only for faulty seeds: other seeds replay as they did.
        let fault_seed: Option<u64> = cfg.faults.map(|_| rng.random());
        StoreFaults { read_delay, read_delay_seed, fault_seed }
    }

    /// A live process's store: uploads of WALs and SSTs held, reads delayed,
    /// faults injected and, with `held_listings`, listings and manifest and
    /// WAL reads held, as the seed says; objects stamped on `clock`.
    fn store(&self, cfg: &Config, world: &World, seed: u64, salt: u64, clock: Arc<dyn tidemark::Clock>) -> FaultStore {
        let fault = FaultStore::new(world.inner.clone(), seed).with_clock(clock, world.leases.times.clone());
        if !self.read_delay.is_zero() {
            fault.delay_reads(self.read_delay, self.read_delay_seed ^ salt);
        }
        if let (Some(faults), Some(seed)) = (cfg.faults, self.fault_seed) {
            fault.random_faults(faults, seed ^ salt);
        }
        fault.hold_prefix(api::WAL_PREFIX);
        fault.hold_prefix(api::SST_PREFIX);
        if cfg.held_listings {
            fault.hold_listings(api::ROOT);
            fault.hold_reads(api::MANIFEST_PREFIX);
            fault.hold_reads(api::WAL_PREFIX);
        }
        fault
    }
}

/// The live process (and, in zombie mode, its successor): runs the workload
/// until the store crashes at `crash_op` or tick `crash_tick`, then the
/// process is torn down by dropping its runtime. Returns the store
/// operations it performed, or a failure (writers that never finished on a
/// store that never crashed).
pub(crate) fn live_phase(
    cfg: &Config,
    round: usize,
    (crash_op, crash_tick): (u64, Option<u32>),
    world: &World,
    histories: &Histories,
    rng: &mut StdRng,
) -> Result<u64, Failure> {
    let store_seed: u64 = rng.random();
    let faults = StoreFaults::draw(cfg, rng);
    let plans: Vec<Vec<Op>> = (0..cfg.writers).map(|w| workload::generate(rng, w, round, cfg.ops, cfg.shared_keys, cfg.value_pad)).collect();
    let successor_plans: Vec<Vec<Op>> =
        (0..cfg.writers).map(|w| workload::generate(rng, cfg.writers + w, round, cfg.ops, cfg.shared_keys, cfg.value_pad)).collect();
    let process = {
        let mut h = lock(histories);
        h.processes += 2;
        h.processes - 2
    };
    let chaos_seed: u64 = rng.random();
    let takeover_after = rng.random_range(0..=cfg.ops);
    let reader_seed: u64 = rng.random();
    let crash_during_open = rng.random_range(0..8) == 0;
    let recorder = lock(histories).recorder.clone();
    let since = recorder.len();
    let rt = runtime(cfg);
    let outcome = rt.block_on(async {
        let clock = world.clock.start_process();
        let fault = faults.store(cfg, world, store_seed, 0, clock.clone());
        fault.crash_at(crash_op);
        let jumps = cfg.ages().then(|| (world.clock.clone(), chaos_seed ^ 3));
        // The crash tick counts from the open's return, except on one seed
        // in eight, whose crash may come while the open lists and reads
        // (held listings make an open take many ticks).
        let open_done = Arc::new(AtomicBool::new(crash_during_open));
        let crash = crash_tick.map(|tick| (tick, open_done.clone()));
        let chaos_task = tokio::spawn(chaos(fault.clone(), chaos_seed, crash, jumps));
        let opened = api::open(Arc::new(fault.clone()), cfg, &recorder, clock.clone()).await;
        open_done.store(true, Ordering::Release);
        if let (Err(e), true) = (&opened, std::env::var_os("CRASH_DEBUG").is_some()) {
            eprintln!("seed {} round {round}: open failed: {e}", cfg.seed);
        }
        let Ok(db) = opened else {
            chaos_task.abort();
            world.clock.end_process();
            // Crashed during open: recovery must still succeed later.
            return Outcome { stores: vec![fault], hung: false, hedges: 0 };
        };
        let db = Arc::new(db);
        let task = |db: &Arc<api::Db>, store: &FaultStore, process: usize, zombie: bool| WriterTask {
            db: db.clone(),
            process,
            writer: 0,
            histories: histories.clone(),
            store: store.clone(),
            leases: world.leases.clone(),
            beside: cfg.zombies,
            zombie,
            linger: cfg.linger,
            default_ttl: cfg.default_ttl,
        };
        let mut tasks = Vec::new();
        // Writers still writing: a standalone compactor runs while any is.
        let writing = Arc::new(AtomicUsize::new(plans.len()));
        for (w, plan) in plans.into_iter().enumerate() {
            let t = WriterTask { writer: w, ..task(&db, &fault, process, cfg.zombies) };
            let writing = writing.clone();
            tasks.push(tokio::spawn(async move {
                t.run(plan).await;
                writing.fetch_sub(1, Ordering::AcqRel);
            }));
        }
        if cfg.readers {
            // One handle opens at once (on the version the process opened
            // with, which holds the previous process's SSTs), one later.
            for (i, ops) in [(0, 0), (1, cfg.ops)] {
                let checkpointed = cfg.compaction.then_some(cfg.mutant);
                let reader = reader(fault.labelled("client"), cfg.wal_store, checkpointed, histories.clone(), world.leases.clone(), reader_seed ^ i, (ops, cfg.linger));
                tasks.push(tokio::spawn(reader));
            }
        }
        if cfg.compaction {
            // A GC of its own beside the writer (another machine's), on the
            // same store, judged by the same readers and recoveries.
            let settings = api::store_settings(cfg, &recorder, clock.clone(), &(Arc::new(fault.clone()) as Arc<dyn object_store::ObjectStore>));
            if cfg.compactor != CompactorPlace::Writer {
                // Its own settings, as another machine's: it also merges
                // every pair of sorted runs, so it has work on most passes.
                let mut own = settings.clone();
                own.max_sorted_runs = 1;
                let run = standalone_compactor(fault.labelled("compactor"), own, histories.clone(), (writing.clone(), cfg.linger), reader_seed ^ 6);
                tasks.push(tokio::spawn(run));
            }
            tasks.push(tokio::spawn(standalone_gc(fault.labelled("gc"), settings.clone(), histories.clone(), (reader_seed ^ 5, cfg.ops))));
            // Beside a standalone compactor, the checkpoint's maker runs a
            // compaction of its own at once (a backup job, then compaction):
            // the version after the pinned one is then often a compaction.
            let then_compact = (cfg.compactor != CompactorPlace::Writer).then(|| {
                let mut own = settings.clone();
                own.max_sorted_runs = 1;
                own
            });
            let checkpoint = live_checkpoint(
                fault.labelled("client"),
                cfg.wal_store,
                (histories.clone(), world.leases.clone()),
                (writing.clone(), cfg.linger),
                (reader_seed ^ 7, cfg.ops),
                then_compact,
            );
            tasks.push(tokio::spawn(checkpoint));
        }
        let mut stores = vec![fault.clone()];
        let mut successor = None;
        if cfg.zombies {
            // The old process keeps running; a new one recovers beside it.
            for _ in 0..takeover_after {
                tokio::task::yield_now().await;
            }
            let fresh = faults.store(cfg, world, chaos_seed ^ 1, 1, clock.clone());
            tokio::spawn(chaos(fresh.clone(), chaos_seed ^ 2, None, None));
            if let Ok(next) = api::open(Arc::new(fresh.clone()), cfg, &recorder, clock.clone()).await {
                let next = Arc::new(next);
                for (w, plan) in successor_plans.into_iter().enumerate() {
                    let t = WriterTask { writer: cfg.writers + w, ..task(&next, &fresh, process + 1, false) };
                    tasks.push(tokio::spawn(t.run(plan)));
                }
                successor = Some((next, fresh.clone()));
            }
            stores.push(fresh);
        }
        let hung = tokio::time::timeout(ROUND_LIMIT, join_all(tasks)).await.is_err();
        let hedges = db.hedge_counts().create_hedges + successor.as_ref().map_or(0, |(db, _)| db.hedge_counts().create_hedges);
        if !fault.is_crashed() {
            fault.crash().await;
        }
        if let Some((_, fresh)) = &successor {
            fresh.crash().await;
        }
        tokio::time::sleep(CRASH_GRACE).await;
        chaos_task.abort();
        world.clock.end_process();
        Outcome { stores, hung, hedges }
    });
    if std::env::var_os("CRASH_DEBUG").is_some() {
        let versions: Vec<(u64, u64)> = world
            .leases
            .times
            .under(api::MANIFEST_PREFIX)
            .iter()
            .filter_map(|(p, t)| Some((api::parse_manifest(p)?, t - crate::clock::ORIGIN_MS)))
            .collect();
        eprintln!(
            "seed {} round {round}: manifests (version, created ms) {versions:?}; SSTs deleted so far {}",
            cfg.seed,
            world.leases.times.deletions_under(api::SST_PREFIX)
        );
    }
    let ops = outcome.stores[0].ops();
    drop(rt); // The process is gone: every task and buffer with it.
    {
        // A write in flight at the crash stamped its expiries by now, if ever.
        use tidemark::Clock;
        let now = world.clock.now_ms();
        lock(histories).histories.iter_mut().for_each(|h| h.close_windows(now));
    }
    let listed = runtime(cfg).block_on(api::list_wals(&world.inner));
    api::record_crashes(&recorder, since, listed);
    record_injected(cfg, world, histories, &outcome);
    if outcome.hung {
        let pending = lock(histories).histories.iter().map(|h| h.steps.len()).sum::<usize>();
        return Err(failure(
            cfg,
            "liveness: WritersFinish",
            format!("the writers, readers and GC did not finish within {ROUND_LIMIT:?} ({pending} steps issued): a call that neither returns nor fails, even once the store crashed and every call fails"),
        ));
    }
    Ok(ops)
}

/// What the live phase leaves behind: its stores, whether its writers
/// hung, and the hedges its processes sent.
struct Outcome {
    stores: Vec<FaultStore>,
    hung: bool,
    hedges: u64,
}

/// Adds what the live phase's stores injected to the schedule's record,
/// with who wrote each manifest that landed ambiguously (conformance tells
/// a claim from a manifest write by it).
fn record_injected(cfg: &Config, world: &World, histories: &Histories, outcome: &Outcome) {
    let injected: Vec<_> = outcome.stores.iter().map(FaultStore::injected).collect();
    let manifests: Vec<(u64, u64)> = runtime(cfg).block_on(async {
        let mut out = Vec::new();
        // Only a writer process's: the version a standalone compactor, GC or
        // client made and never recorded is an edit of no protocol field
        // (or a claim) to conformance, whatever writer epoch it copied.
        let by_writers = injected.iter().flat_map(|i| &i.ambiguous).filter(|(_, by)| by.is_empty());
        for (path, _) in by_writers {
            let Some(version) = api::parse_manifest(path) else { continue };
            if let Some(epoch) = api::manifest_writer_epoch(&world.inner, path).await {
                out.push((version, epoch));
            }
        }
        out
    });
    let mut h = lock(histories);
    for i in &injected {
        h.injected.transient += i.transient;
        h.injected.ambiguous_creates += i.ambiguous.len() as u64;
        let wals: Vec<u64> = i.ambiguous.iter().filter_map(|(path, _)| api::parse_wal(path)).collect();
        h.injected.ambiguous_wals += wals.len() as u64;
        h.ambiguous.wals.extend(wals);
    }
    h.ambiguous.manifests.extend(manifests);
    for s in &outcome.stores {
        let [_, listings, reads] = s.held_total();
        h.injected.held_listings += listings;
        h.injected.held_reads += reads;
    }
    h.injected.create_hedges += outcome.hedges;
}

/// A read-only handle of a live process: opens after a seeded wait of up to
/// 1.5 ms per operation of `ops` (so that it opens while writers write),
/// then reads, holds and reads again, pausing up to half of `linger`
/// before each read.
/// `checkpointed`: a following `DbReader` (with the schedule's engine mutant), not a plain handle.
async fn reader(
    store: FaultStore,
    wal_store: bool,
    checkpointed: Option<Option<crate::config::EngineMutant>>,
    histories: Histories,
    leases: crate::reads::Leases,
    seed: u64,
    (ops, linger): (usize, Duration),
) {
    let mut rng = StdRng::seed_from_u64(seed);
    tokio::time::sleep(Duration::from_micros(rng.random_range(0..=ops as u64 * 1500))).await;
    let half = linger.as_micros() as u64 / 2;
    let pause = Duration::from_micros(rng.random_range(half / 4..=half.max(1)));
    // A following reader reads four times: its view, a poll's, each twice.
    let rounds = if checkpointed.is_some() { 3 } else { 2 };
    crate::reads::read_only_handle(store, wal_store, checkpointed, histories, leases, rounds, pause).await;
}

/// A standalone GC process (`tidemark::collect_garbage`): up to three
/// passes at seeded times while the writers write. A pass that fails (an
/// injected fault, the crash) is a process that died: nothing to judge
/// here; what it deleted is judged by every later read.
async fn standalone_gc(store: FaultStore, settings: tidemark::Settings, histories: Histories, (seed, ops): (u64, usize)) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..rng.random_range(1..=3) {
        tokio::time::sleep(Duration::from_micros(rng.random_range(0..=ops as u64 * 1000))).await;
        if store.is_crashed() {
            return;
        }
        if tidemark::collect_garbage(api::ROOT, Arc::new(store.clone()), settings.clone()).await.is_ok() {
            lock(&histories).injected.standalone_gc_passes += 1;
        }
    }
}

/// A durable checkpoint made by a process of its own while the writers
/// write, flush and compact (`tidemark checkpoint create` at a seeded
/// moment), then, with `then_compact`, a compaction by the same process:
/// the versions after the pinned one remove SSTs it reads, so every later
/// compaction must judge its inputs by that version's tree. It is read at once (each writer's keys must be a state
/// the oracle allows: every write acknowledged before the create began,
/// nothing issued after it returned) and again once the writers are done
/// and the compactors and GC had time: the same state (I16). Every later
/// recovery opens it too. A failed create is judged by the lease of the
/// version it began on; a failed read of the checkpoint is explained only
/// by the crash or an injected fault.
async fn live_checkpoint(
    store: FaultStore,
    wal_store: bool,
    (histories, leases): (Histories, crate::reads::Leases),
    (writing, linger): (Arc<AtomicUsize>, Duration),
    (seed, ops): (u64, usize),
    then_compact: Option<tidemark::Settings>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    tokio::time::sleep(Duration::from_micros(rng.random_range(0..=ops as u64 * 1000))).await;
    // Half the time once the writers are done: then the version after the
    // pinned one is not a writer's flush but likely the compaction below.
    if rng.random_bool(0.5) {
        wait_for_writers(&writing, &store).await;
    }
    let violation = |e: &tidemark::Error, what: &str| {
        let explained = store.is_crashed() || crate::reads::injected(e);
        (!explained).then(|| ("I16 CheckpointOpensAsCreated", format!("a durable checkpoint made while writers wrote: {what} failed: {e}")))
    };
    let (began, since) = (lock(&histories).shared.tick(), leases.latest_version());
    let shared: Arc<dyn object_store::ObjectStore> = Arc::new(store.clone());
    let recorder = lock(&histories).recorder.clone();
    let cp = match api::create_checkpoint(shared.clone(), wal_store, &recorder).await {
        Ok(cp) => cp,
        Err(e) => {
            // Until it lands, nothing pins what the create reads: a failure
            // is explained as a read-only open's is, by the lease of the
            // version latest when it began (spec, section 9).
            let lease = crate::reads::Lease::Version(since);
            let what = "a durable checkpoint's create while writers wrote";
            let v = crate::reads::judge(&e, store.is_crashed(), &leases, lease, leases.clock.now_ms(), what);
            lock(&histories).anomalies.extend(v.map(|(_, d)| ("CheckpointSucceeds", d)));
            return;
        }
    };
    let window = {
        let mut h = lock(&histories);
        h.checkpoints.push((cp.id, None));
        h.injected.checkpoints_made += 1;
        h.injected.live_checkpoints += 1;
        (began, h.shared.tick())
    };
    if let Some(settings) = then_compact {
        if let Ok(runs) = tidemark::compact(api::ROOT, shared.clone(), settings).await {
            lock(&histories).injected.standalone_compactions += runs;
        }
    }
    let mut expected: Vec<State> = Vec::new();
    let clock: Arc<dyn tidemark::Clock> = Arc::new(leases.clock.clone());
    for read in 0..2 {
        if read == 1 {
            wait_for_writers(&writing, &store).await;
            tokio::time::sleep(linger / 2).await;
        }
        let reader = match api::open_checkpoint(shared.clone(), wal_store, cp.id, &recorder, clock.clone()).await {
            Ok(reader) => reader,
            Err(e) => return lock(&histories).anomalies.extend(violation(&e, "an open of it")),
        };
        let writers = lock(&histories).histories.len();
        for w in 0..writers {
            let start = leases.clock.now_ms();
            let seen = match crate::recovery::checkpoint_state(&reader, w).await {
                Ok(seen) => seen,
                Err(e) => return lock(&histories).anomalies.extend(violation(&e, &format!("a scan of writer {w}'s keys"))),
            };
            let read_window = Window::new(start, leases.clock.now_ms());
            let mut h = lock(&histories);
            match expected.get_mut(w) {
                None => match h.histories[w].check_view(w, window, &seen, true, read_window) {
                    Ok(view) => expected.push(view.state),
                    Err(v) => {
                        h.anomalies.push((v.invariant(), format!("a durable checkpoint made while writers wrote: {v}")));
                        return;
                    }
                },
                Some(state) => match crate::oracle::compare(state, &seen, read_window) {
                    None => crate::oracle::refine(state, &seen, read_window),
                    Some(m) => {
                        let detail = format!("a durable checkpoint made while writers wrote shows {} of writer {w}'s keys after the compactions and GC passes since, not the {} it showed at first: {m}", seen.len(), state.len());
                        h.anomalies.push((m.invariant("I16 CheckpointOpensAsCreated"), detail));
                        return;
                    }
                },
            }
        }
        if read == 0 {
            // Every later recovery checks it against this state.
            let mut h = lock(&histories);
            if let Some(slot) = h.checkpoints.iter_mut().find(|(id, _)| *id == cp.id) {
                slot.1 = Some(expected.clone());
            }
        }
        lock(&histories).injected.checkpoint_opens += 1;
        if reader.close().await.is_err() {
            return;
        }
    }
}

/// Returns once no writer is writing, or the store crashed.
async fn wait_for_writers(writing: &AtomicUsize, store: &FaultStore) {
    while writing.load(Ordering::Acquire) > 0 && !store.is_crashed() {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// A compactor process of its own (`tidemark::compact`), run again and
/// again at seeded intervals while the writers write and for `linger` after
/// (their last memtables reach L0 then, while views are still held): each run claims the
/// next compactor epoch (fencing the writer's compactor, if it runs one,
/// and the previous run). A run that fails (an injected fault, the crash) is
/// a process that died; its uploads and the manifest it recorded are judged
/// by every later read, GC pass and recovery.
async fn standalone_compactor(
    store: FaultStore,
    settings: tidemark::Settings,
    histories: Histories,
    (writing, linger): (Arc<AtomicUsize>, Duration),
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut done: Option<tokio::time::Instant> = None;
    while !store.is_crashed() {
        if writing.load(Ordering::Acquire) == 0 {
            let since = *done.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() > linger {
                return;
            }
        }
        tokio::time::sleep(Duration::from_micros(rng.random_range(0..=2000))).await;
        if let Ok(runs) = tidemark::compact(api::ROOT, Arc::new(store.clone()), settings.clone()).await {
            lock(&histories).injected.standalone_compactions += runs;
        }
    }
}

/// Releases held requests (uploads, listings, reads) one at a time in a
/// seeded order, holding them long enough that several are in flight at
/// once and complete out of order; crashes the store at the tick `crash`
/// (counted while its flag is set) if given; with `jumps`, moves the
/// schedule's clock forward now and then.
async fn chaos(fault: FaultStore, seed: u64, crash: Option<(u32, Arc<AtomicBool>)>, jumps: Option<(ScheduleClock, u64)>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut jumps = jumps.map(|(clock, seed)| (clock, StdRng::seed_from_u64(seed)));
    let mut tick = 0u32;
    let mut waited = 0u32;
    while !fault.is_crashed() {
        tokio::time::sleep(Duration::from_micros(500)).await;
        if let Some((crash_tick, counting)) = &crash {
            if counting.load(Ordering::Acquire) {
                tick += 1;
            }
            if tick == *crash_tick {
                fault.crash().await;
                return;
            }
        }
        if let Some((clock, rng)) = &mut jumps {
            // About one tick in four: a round's time moves tens of seconds.
            if rng.random_range(0..4) == 0 {
                clock.jump(Duration::from_millis(rng.random_range(1..=MAX_JUMP.as_millis() as u64)));
            }
        }
        let held = fault.held_requests();
        if held.is_empty() {
            continue;
        }
        waited += 1;
        // Wait for company (out-of-order completions need two in flight), but
        // not for ever: a lone request is answered after a few ticks.
        if held.len() < 2 && waited < 8 || !rng.random_bool(0.5) {
            continue;
        }
        waited = 0;
        let pick = rng.random_range(0..held.len());
        fault.release_request(held[pick].id).await;
    }
}
