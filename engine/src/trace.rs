//! Protocol traces: the spec's actions as the engine performs them.
//!
//! Every protocol action the engine takes is emitted once, here, both as a
//! `tracing` event named after the action and, when a [`TraceRecorder`] is
//! installed, as a [`TraceEvent`] that the crash harness replays through the
//! Stateright model to check that the running engine only takes steps the
//! model allows (trace conformance).

use std::fmt;

use crate::protocol::{ActionName, Epoch, GcCaller, WalId};
use crate::sync::{lock, Arc, Mutex};

/// One protocol action, with the ids and epochs it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A write (or atomic batch) appended to the WAL buffer that becomes `wal_id`.
    Put {
        /// The WAL the buffer becomes.
        wal_id: WalId,
    },
    /// The buffer became immutable WAL `wal_id`.
    FreezeWal {
        /// The frozen WAL.
        wal_id: WalId,
    },
    /// The upload (create) of WAL `wal_id` started.
    UploadWal {
        /// The WAL being uploaded.
        wal_id: WalId,
    },
    /// The create of WAL `wal_id` succeeded; the watermark is now `durable_wal_id`.
    WalDurable {
        /// The WAL that now exists.
        wal_id: WalId,
        /// The durable watermark after it (a contiguous prefix).
        durable_wal_id: WalId,
    },
    /// Writes in WAL `wal_id` were acknowledged to their callers.
    Ack {
        /// The acknowledged WAL.
        wal_id: WalId,
    },
    /// The memtable was frozen; its writes are all in WALs `<= last_wal_id`.
    FreezeMemtable {
        /// The newest WAL holding a write of the frozen memtable.
        last_wal_id: WalId,
    },
    /// An immutable memtable was written as an L0 SST of `size` bytes (its
    /// name is a random ULID, so it is not part of a replayable trace).
    FlushL0 {
        /// The SST's size in bytes.
        size: u64,
        /// The newest WAL whose writes the SST holds.
        last_wal_id: WalId,
    },
    /// Manifest `version` was created.
    WriteManifest {
        /// The created version.
        version: u64,
        /// Its `wal_id_last_seen`.
        wal_id_last_seen: WalId,
        /// Its `replay_after_wal_id`.
        replay_after_wal_id: WalId,
        /// The writer's pin it records: (version, its `replay_after_wal_id`),
        /// older than `version` while views of an older tree are held.
        pin: Option<(u64, WalId)>,
    },
    /// `Close` began: the writer accepts no more writes; what it accepted is
    /// made durable and flushed, and its last `WriteManifest` records
    /// `writer_closed`.
    Close,
    /// A recovering writer claimed `writer_epoch` with manifest `version`.
    Recover {
        /// The manifest version the claim created.
        version: u64,
    },
    /// The recovering writer created the fence at `wal_id`; its WALs start at
    /// `next_wal_id`. `listed` is the WAL listing its final chain walk saw.
    Fence {
        /// The WAL id the fence holds.
        wal_id: WalId,
        /// The first WAL id of the recovering writer.
        next_wal_id: WalId,
        /// The WALs replayed into the memtable, in order.
        replayed: Vec<WalId>,
        /// The WAL listing of the final chain walk.
        listed: Vec<WalId>,
    },
    /// The create of WAL `wal_id` found another writer's object (epoch `held_by`):
    /// this writer stops (fenced if `held_by` is newer).
    WalRejected {
        /// The WAL id whose create was refused.
        wal_id: WalId,
        /// The epoch of the object that holds it.
        held_by: Epoch,
    },
    /// A manifest create found a version written by epoch `by`: this writer is fenced.
    Fenced {
        /// The newer epoch.
        by: Epoch,
    },
    /// The process died (recorded by a harness): memory is gone; `listed` is
    /// the store's WAL listing afterwards, telling which uploads landed.
    Crash {
        /// The WAL listing after the crash.
        listed: Vec<WalId>,
    },
    /// A compactor claimed `compactor_epoch` with manifest `version` (the
    /// step's epoch is the compactor's).
    ClaimCompactor {
        /// The version the claim created.
        version: u64,
    },
    /// A compactor merged its inputs and wrote the output SSTs (not yet recorded).
    Compact {
        /// L0 SSTs merged.
        l0_inputs: Vec<u128>,
        /// Sorted runs merged.
        run_inputs: Vec<u64>,
        /// The output SSTs (none if every entry was dropped).
        outputs: Vec<u128>,
    },
    /// A compactor recorded its compaction in manifest `version`.
    CompactCommit {
        /// The created version.
        version: u64,
    },
    /// A GC pass observed the store and the latest `version` and decided
    /// what to delete (the step's epoch is its process's writer or
    /// compactor epoch, 0 for a GC process of its own).
    GcRun {
        /// The process the pass belongs to.
        caller: GcCaller,
        /// The clock reading the decision used.
        now: u64,
        /// Its `min_age` (the grace).
        grace: u64,
        /// The latest version it read.
        version: u64,
        /// The SSTs it will delete.
        ssts: Vec<u128>,
        /// The WALs it will delete.
        wals: Vec<WalId>,
        /// The manifest versions it will delete.
        manifests: Vec<u64>,
    },
    /// A GC pass deleted these SSTs.
    GcSst {
        /// The deleted SSTs.
        ssts: Vec<u128>,
    },
    /// A GC pass deleted these WALs.
    GcWal {
        /// The deleted WALs.
        wals: Vec<WalId>,
    },
    /// A GC pass deleted these manifest versions.
    GcManifest {
        /// The deleted versions.
        versions: Vec<u64>,
    },
    /// A client created checkpoint `id` in manifest `version`.
    CheckpointCreate {
        /// The checkpoint.
        id: u128,
        /// The version it pins (the one its edit created).
        version: u64,
        /// When it expires (`None`: when deleted).
        expires_at: Option<u64>,
        /// A durable checkpoint's last WAL (`None`: it follows the chain).
        wal_end: Option<WalId>,
    },
    /// A holder refreshed checkpoint `id` (moving its pin if `moved`).
    CheckpointRefresh {
        /// The checkpoint.
        id: u128,
        /// The version the edit created.
        version: u64,
        /// Whether the pin moved to that version.
        moved: bool,
        /// The clock reading the edit was judged at.
        now: u64,
        /// Its new expiry.
        expires_at: Option<u64>,
    },
    /// A holder dropped checkpoint `id`.
    CheckpointDelete {
        /// The checkpoint.
        id: u128,
        /// The version the edit created.
        version: u64,
    },
    /// GC dropped the expired checkpoints in manifest `version`.
    CheckpointExpire {
        /// The version the edit created.
        version: u64,
        /// The clock reading the edit was judged at.
        now: u64,
        /// The grace past expiry (GC's `min_age`).
        grace: u64,
        /// The checkpoints dropped.
        dropped: Vec<u128>,
    },
    /// A follower opened with checkpoint `id` on manifest `version` and
    /// applied the WALs `applied` past it.
    FollowerOpen {
        /// Its checkpoint.
        id: u128,
        /// The version it reads.
        version: u64,
        /// The data WALs it applied past the version, in chain order.
        applied: Vec<WalId>,
    },
    /// A follower looked for a newer version and WALs past where it stopped.
    FollowerPoll {
        /// Its checkpoint.
        id: u128,
        /// The version it reads after the poll.
        version: u64,
        /// The data WALs it applied in this poll.
        applied: Vec<WalId>,
    },
}

impl TraceEvent {
    /// The spec's action this step records.
    pub fn name(&self) -> ActionName {
        match self {
            TraceEvent::Put { .. } => ActionName::Put,
            TraceEvent::FreezeWal { .. } => ActionName::FreezeWal,
            TraceEvent::UploadWal { .. } => ActionName::UploadWal,
            TraceEvent::WalDurable { .. } => ActionName::WalDurable,
            TraceEvent::Ack { .. } => ActionName::Ack,
            TraceEvent::FreezeMemtable { .. } => ActionName::FreezeMemtable,
            TraceEvent::FlushL0 { .. } => ActionName::FlushL0,
            TraceEvent::WriteManifest { .. } => ActionName::WriteManifest,
            TraceEvent::Close => ActionName::Close,
            TraceEvent::Recover { .. } => ActionName::Recover,
            TraceEvent::Fence { .. } => ActionName::Fence,
            TraceEvent::WalRejected { .. } => ActionName::WalRejected,
            TraceEvent::Fenced { .. } => ActionName::Fenced,
            TraceEvent::Crash { .. } => ActionName::Crash,
            TraceEvent::ClaimCompactor { .. } => ActionName::ClaimCompactor,
            TraceEvent::Compact { .. } => ActionName::Compact,
            TraceEvent::CompactCommit { .. } => ActionName::CompactCommit,
            TraceEvent::GcRun { .. } => ActionName::GcRun,
            TraceEvent::GcSst { .. } => ActionName::GcSst,
            TraceEvent::GcWal { .. } => ActionName::GcWal,
            TraceEvent::GcManifest { .. } => ActionName::GcManifest,
            TraceEvent::CheckpointCreate { .. } => ActionName::CheckpointCreate,
            TraceEvent::CheckpointRefresh { .. } => ActionName::CheckpointRefresh,
            TraceEvent::CheckpointDelete { .. } => ActionName::CheckpointDelete,
            TraceEvent::CheckpointExpire { .. } => ActionName::CheckpointExpire,
            TraceEvent::FollowerOpen { .. } => ActionName::FollowerOpen,
            TraceEvent::FollowerPoll { .. } => ActionName::FollowerPoll,
        }
    }

    /// The spec's action name, as logs and reports spell it.
    pub fn action(&self) -> &'static str {
        self.name().as_str()
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// One recorded step: which writer epoch took which action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceStep {
    /// The epoch of the writer that took the action.
    pub writer_epoch: Epoch,
    /// The action.
    pub event: TraceEvent,
}

/// Receives protocol steps in the order the engine took them.
pub trait TraceRecorder: Send + Sync {
    /// Records one step. It may be called under the engine's locks (the
    /// commit lock among them), so it must be quick and must not call the `Db`.
    fn record(&self, step: TraceStep);
}

/// A recorder that keeps every step in memory (tests, the crash harness).
/// Clones share the same log, so several `Db`s can record one history.
#[derive(Clone, Default)]
pub struct MemoryRecorder {
    steps: Arc<Mutex<Vec<TraceStep>>>,
}

impl MemoryRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The steps recorded so far.
    pub fn steps(&self) -> Vec<TraceStep> {
        lock(&self.steps).clone()
    }

    /// How many steps have been recorded (without copying them).
    pub fn len(&self) -> usize {
        lock(&self.steps).len()
    }

    /// Whether no step has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TraceRecorder for MemoryRecorder {
    fn record(&self, step: TraceStep) {
        lock(&self.steps).push(step);
    }
}

impl fmt::Debug for MemoryRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemoryRecorder({} steps)", lock(&self.steps).len())
    }
}

/// The engine's emitter: a `tracing` event always, a recorded step if a
/// recorder is installed.
#[derive(Clone, Default)]
pub struct Tracer {
    recorder: Option<Arc<dyn TraceRecorder>>,
}

impl Tracer {
    /// An emitter that also records to `recorder`, if given.
    pub fn new(recorder: Option<Arc<dyn TraceRecorder>>) -> Self {
        Self { recorder }
    }

    /// Emits `event` for the writer of `writer_epoch`.
    pub fn emit(&self, writer_epoch: Epoch, event: TraceEvent) {
        tracing::debug!(action = event.action(), writer_epoch, ?event, "{}", event.action());
        if let Some(recorder) = &self.recorder {
            recorder.record(TraceStep { writer_epoch, event });
        }
    }

    /// `emit` without the log line, for steps taken once per write.
    pub fn record(&self, writer_epoch: Epoch, event: TraceEvent) {
        if let Some(recorder) = &self.recorder {
            recorder.record(TraceStep { writer_epoch, event });
        }
    }
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tracer(recording: {})", self.recorder.is_some())
    }
}
