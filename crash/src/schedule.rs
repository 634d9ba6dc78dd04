//! One crash schedule: rounds of a seeded concurrent workload against a
//! `Db` on a `FaultStore` ([`crate::live`]), each ended by a crash (or a
//! zombie takeover), followed by a recovery that is checked against the
//! oracle ([`crate::recovery`]); then the recorded trace is replayed
//! through the model (trace conformance).

use std::time::Duration;


use object_store::memory::InMemory;
use object_store::ObjectStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tidemark::internals::sync::{lock, Arc, Mutex};
use tidemark::internals::trace::{MemoryRecorder, TraceStep};
use tidemark::testing::CreationTimes;

pub use crate::config::{CompactorPlace, Config, EngineMutant, GcAge, FAULTS, LATE_CRASH_TICKS_PER_OP, MAX_READ_DELAY};

use crate::clock::ScheduleClock;
use crate::conformance;
use crate::db_api as api;
use crate::oracle::WriterHistory;
use crate::reads::Leases;
use crate::shared::SharedKeys;

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
    /// Faults injected in the live processes, and what the schedule exercised.
    pub injected: Injected,
}

/// What a schedule's fault stores injected and what its readers and
/// hedges did, summed over its processes.
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
    /// Listings and reads held in flight and answered late.
    pub held_listings: u64,
    pub held_reads: u64,
    /// Hedged WAL creates sent (second attempts).
    pub create_hedges: u64,
    /// Read-only handles opened, and their reads checked.
    pub read_only_opens: u64,
    pub read_only_reads: u64,
    /// Snapshots and long-lived scans checked after they were held, and of
    /// them, the ones that lived across a GC pass that deleted an SST.
    pub views_checked: u64,
    pub views_across_gc: u64,
    /// Passes of a standalone GC process that completed.
    pub standalone_gc_passes: u64,
    /// Compactions recorded by a standalone compactor process.
    pub standalone_compactions: u64,
    /// Polls of following readers (`DbReader::poll`) whose new view was checked.
    pub follower_polls: u64,
    /// Durable checkpoints made (at recoveries and, of them, `live_checkpoints`
    /// while writers, compactors and GC ran), and opens of them checked
    /// after later passes (each against the state it was made at).
    pub checkpoints_made: u64,
    pub live_checkpoints: u64,
    pub checkpoint_opens: u64,
    /// Checkpoints of following readers whose process crashed, deleted at
    /// the next recovery.
    pub dead_followers_dropped: u64,
    /// Keys the writers' scans, held snapshots and recoveries read and
    /// judged: holding merge operands, whose put had surely expired, and
    /// whose put's expiry the read's window overlapped (`oracle::tally`).
    pub merged_keys_read: u64,
    pub expired_keys_read: u64,
    pub expiring_keys_in_doubt: u64,
}

impl Injected {
    /// Adds another schedule's counts.
    pub fn add(&mut self, o: &Injected) {
        self.transient += o.transient;
        self.ambiguous_creates += o.ambiguous_creates;
        self.ambiguous_wals += o.ambiguous_wals;
        self.racers += o.racers;
        self.racers_fenced += o.racers_fenced;
        self.held_listings += o.held_listings;
        self.held_reads += o.held_reads;
        self.create_hedges += o.create_hedges;
        self.read_only_opens += o.read_only_opens;
        self.read_only_reads += o.read_only_reads;
        self.views_checked += o.views_checked;
        self.views_across_gc += o.views_across_gc;
        self.standalone_gc_passes += o.standalone_gc_passes;
        self.standalone_compactions += o.standalone_compactions;
        self.follower_polls += o.follower_polls;
        self.checkpoints_made += o.checkpoints_made;
        self.live_checkpoints += o.live_checkpoints;
        self.dead_followers_dropped += o.dead_followers_dropped;
        self.checkpoint_opens += o.checkpoint_opens;
        self.merged_keys_read += o.merged_keys_read;
        self.expired_keys_read += o.expired_keys_read;
        self.expiring_keys_in_doubt += o.expiring_keys_in_doubt;
    }

    /// Counts what a judged read met ([`crate::oracle::tally`]).
    pub fn tally(&mut self, [merged, expired, in_doubt]: [u64; 3]) {
        self.merged_keys_read += merged;
        self.expired_keys_read += expired;
        self.expiring_keys_in_doubt += in_doubt;
    }
}

/// Whether a schedule's trace was replayed through the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Conformance {
    Replayed,
    /// Not replayed, for this reason.
    Skipped(&'static str),
}

/// What the schedule's tasks record while they run.
pub(crate) struct Shared {
    pub(crate) histories: Vec<WriterHistory>,
    /// Every protocol action of every process, in order (trace conformance).
    pub(crate) recorder: MemoryRecorder,
    /// Anomalies seen while processes run (a writer not seeing its own
    /// writes, a shared key read no order allows, a read that failed with
    /// nothing to explain it): the invariant and what was seen.
    pub(crate) anomalies: Vec<(&'static str, String)>,
    /// Writes to and reads of the keys writers share; its logical clock is
    /// the harness's real time.
    pub(crate) shared: SharedKeys,
    /// WAL ids whose create landed and reported `AlreadyExists` (trace
    /// conformance replays them as ambiguous `WalDurable`s).
    pub(crate) ambiguous: conformance::Ambiguous,
    pub(crate) injected: Injected,
    /// Processes started so far (live reads of shared keys know their own).
    pub(crate) processes: usize,
    /// Durable checkpoints made and not deleted yet, each with every
    /// writer's keys as they were then (`None`: made by a live process that
    /// crashed before it read them): opening one must show exactly that,
    /// whatever ran since, its expiring values judged at the read (I16).
    pub(crate) checkpoints: Vec<(u128, Option<Vec<crate::oracle::State>>)>,
}

pub(crate) type Histories = Arc<Mutex<Shared>>;

/// One schedule's store, clock and record of its objects' creation times.
pub(crate) struct World {
    pub(crate) inner: Arc<dyn ObjectStore>,
    pub(crate) clock: ScheduleClock,
    pub(crate) leases: Leases,
}

/// Runs one schedule to its first violation or to the end.
pub fn run(cfg: &Config) -> Report {
    let inner: Arc<dyn ObjectStore> = match &cfg.store {
        Some(base) => crate::s3::schedule_store(base, cfg.seed),
        None => Arc::new(InMemory::new()),
    };
    let clock = if cfg.wall_clock { ScheduleClock::wall() } else { ScheduleClock::paused() };
    let leases = Leases { times: CreationTimes::new(), min_age: cfg.gc_min_age().0, clock: clock.clone() };
    let world = World { inner, clock, leases };
    let writer_slots = if cfg.zombies { cfg.writers * 2 } else { cfg.writers };
    let histories: Histories = Arc::new(Mutex::new(Shared {
        histories: vec![WriterHistory::default(); writer_slots],
        recorder: MemoryRecorder::new(),
        anomalies: Vec::new(),
        shared: SharedKeys::default(),
        ambiguous: Default::default(),
        injected: Injected::default(),
        processes: 0,
        checkpoints: Vec::new(),
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
        let live = crate::live::live_phase(cfg, round, (crash_op, crash_tick), &world, &histories, &mut rng);
        let ops = match live {
            Ok(ops) => ops,
            Err(mut failure) => {
                failure.round = round;
                failure.crash_op = crash_op;
                return failed(cfg, round0_ops, failure, &histories);
            }
        };
        if std::env::var_os("CRASH_DEBUG").is_some() {
            let h = lock(&histories);
            let steps: Vec<(usize, usize)> =
                h.histories.iter().map(|w| (w.steps.len(), w.steps.iter().filter(|s| s.acked).count())).collect();
            let wals = runtime(cfg).block_on(api::list_wals(&world.inner));
            eprintln!("seed {} round {round}: crash at op {crash_op}, ops {ops}, (steps, acked) per writer {steps:?} wals {wals:?}", cfg.seed);
        }
        if round == 0 {
            round0_ops = ops;
        }
        if cfg.ages() {
            // The store rests: what this process left ages past `gc_min_age`.
            world.clock.jump(crate::config::REST);
        }
        if let Err(mut failure) = crate::recovery::recovery_phase(cfg, &world, &histories, round, round + 1 == cfg.rounds) {
            failure.round = round;
            failure.crash_op = crash_op;
            return failed(cfg, round0_ops, failure, &histories);
        }
        if cfg.ages() {
            world.clock.jump(crate::config::REST);
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

/// The report of a schedule the oracle failed.
/// Its trace up to the failure is replayed too, so the report tells
/// whether trace conformance alone would have caught the schedule.
fn failed(cfg: &Config, round0_ops: u64, failure: Failure, histories: &Histories) -> Report {
    let h = lock(histories);
    if std::env::var_os("CRASH_DEBUG").is_some() {
        for (i, s) in h.recorder.steps().iter().enumerate() {
            eprintln!("{i:4} epoch {} {:?}", s.writer_epoch, s.event);
        }
    }
    let trace = h.recorder.steps();
    let conformance = match conformance_failure(cfg, &trace, &h.ambiguous) {
        (_, Some(_)) => Conformance::Skipped(ORACLE_FIRST_CONFORMANCE_TOO),
        _ => Conformance::Skipped(ORACLE_FIRST),
    };
    Report { seed: cfg.seed, round0_ops, failure: Some(failure), conformance, trace, injected: h.injected }
}

/// A schedule the oracle failed is not counted as replayed.
pub const ORACLE_FIRST: &str = "the oracle found a violation first";
/// ... though its trace up to the failure was, and failed conformance too.
pub const ORACLE_FIRST_CONFORMANCE_TOO: &str = "the oracle found a violation first, and trace conformance failed too";

/// A failure of `cfg`'s schedule (its round and crash point are filled in
/// by [`run`]).
pub(crate) fn failure(cfg: &Config, invariant: &str, detail: String) -> Failure {
    Failure { seed: cfg.seed, round: 0, crash_op: 0, invariant: invariant.to_string(), detail }
}

/// One process: a single-threaded runtime, by default on a paused clock.
/// Timers then fire only when every task is idle, in deadline order, so a
/// seed replays the same interleaving (and no schedule waits on real time).
pub(crate) fn runtime(cfg: &Config) -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().enable_all().start_paused(!cfg.wall_clock).build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start a tokio runtime for the harness: {e}"),
    }
}

/// How long a crashed process gets to notice before it is torn down.
pub(crate) const CRASH_GRACE: Duration = Duration::from_millis(5);

/// Replays the schedule's recorded trace through the model (trace
/// conformance) and reports the first step the model does not allow.
fn conformance_failure(cfg: &Config, steps: &[TraceStep], ambiguous: &conformance::Ambiguous) -> (Conformance, Option<Failure>) {
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
        // The whole trace with `CRASH_DEBUG=all` (the steps after the failing
        // one often show what the replay should have placed before it).
        let upto = if std::env::var("CRASH_DEBUG").as_deref() == Ok("all") { steps.len() } else { bad.index + 1 };
        for (i, s) in steps.iter().enumerate().take(upto) {
            eprintln!("{i:4} epoch {} {:?}", s.writer_epoch, s.event);
        }
    }
    (Conformance::Replayed, Some(failure(cfg, "trace conformance", bad.to_string())))
}

/// The trace with SST and checkpoint ids blanked: an SST id is a ULID whose
/// random part differs from run to run (it must be unique in the store's
/// history), a checkpoint id is random.
pub fn without_sst_ids(trace: &[TraceStep]) -> Vec<String> {
    use tidemark::internals::trace::TraceEvent;
    trace
        .iter()
        .map(|s| {
            let mut e = s.event.clone();
            match &mut e {
                TraceEvent::Compact { l0_inputs, outputs, .. } => l0_inputs.iter_mut().chain(outputs.iter_mut()).for_each(|x| *x = 0),
                TraceEvent::GcRun { ssts, .. } | TraceEvent::GcSst { ssts } => ssts.iter_mut().for_each(|x| *x = 0),
                // Checkpoint ids are random too.
                TraceEvent::CheckpointCreate { id, .. }
                | TraceEvent::CheckpointRefresh { id, .. }
                | TraceEvent::CheckpointDelete { id, .. }
                | TraceEvent::FollowerOpen { id, .. }
                | TraceEvent::FollowerPoll { id, .. } => *id = 0,
                TraceEvent::CheckpointExpire { dropped, .. } => dropped.iter_mut().for_each(|x| *x = 0),
                _ => {}
            }
            format!("{} {e:?}", s.writer_epoch)
        })
        .collect()
}

