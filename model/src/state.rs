//! The model's state: the object store, the live writers, compactors,
//! followers, checkpoints and GC run, uploads in flight, the clock, and what
//! was issued, acknowledged, committed, recovered and shown.
//!
//! Everything is kept in ordered collections so that states hash and compare
//! deterministically (Stateright replays paths by re-executing actions).

use std::collections::{BTreeMap, BTreeSet};

use tidemark::internals::protocol::{
    CheckpointId, Compaction, Epoch, Follower as FollowCursor, GcPlan, ManifestView, RecoveryError, RecoveryPlan, Role, RunId,
    SstOrigin, Tree, WalHeader, WalId, WalKind, WalLog,
};

/// An abstract write: one `Put`, identified by issue order.
pub type WriteId = u16;

/// A model tick (`Tick`); checkpoint expiry and GC ages count them.
pub type Tick = u8;

/// An SST: an L0 flush of a writer (epoch, sequence) or a compaction output
/// of a compactor (compactor epoch, sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SstId {
    L0(Epoch, u8),
    Out(Epoch, u8),
}

impl SstId {
    /// What the SST's name tells GC: its owner and sequence number.
    pub fn origin(self) -> SstOrigin {
        match self {
            SstId::L0(epoch, seq) => SstOrigin { role: Role::Writer, epoch, seq: seq.into() },
            SstId::Out(epoch, seq) => SstOrigin { role: Role::Compactor, epoch, seq: seq.into() },
        }
    }
}

/// An SST object: the writes it holds (ascending) and when it was created.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SstObject {
    pub writes: Vec<WriteId>,
    pub created_at: Tick,
}

/// A WAL object in the store, or one being uploaded (`created_at` is set
/// when it lands).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WalObject {
    pub header: WalHeader,
    pub writes: Vec<WriteId>,
    pub created_at: Tick,
}

impl WalObject {
    pub fn is_fence(&self) -> bool {
        matches!(self.header.kind, WalKind::Fence { .. })
    }
}

/// One manifest version: the protocol fields, the tree, who created it
/// (`token`) and when.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManifestVersion {
    pub view: ManifestView,
    pub tree: Tree<SstId>,
    pub token: u64,
    pub created_at: Tick,
}

impl ManifestVersion {
    /// A version with an empty tree, created at tick 0.
    pub fn new(view: ManifestView, token: u64) -> Self {
        ManifestVersion { view, tree: Tree::default(), token, created_at: 0 }
    }
}

/// What a writer or compactor holds of the version it builds on: the version
/// number it will create next (plus one), and the contents it applies its
/// change to (in memory: GC may have deleted the object since).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Base {
    pub version: u64,
    pub view: ManifestView,
    pub tree: Tree<SstId>,
}

/// The object store: objects are only ever created or deleted, never overwritten.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Store {
    pub wals: BTreeMap<WalId, WalObject>,
    pub ssts: BTreeMap<SstId, SstObject>,
    pub manifests: BTreeMap<u64, ManifestVersion>,
}

impl Store {
    /// The latest manifest version and its number.
    pub fn latest_manifest(&self) -> (u64, &ManifestVersion) {
        match self.manifests.iter().next_back() {
            Some((v, m)) => (*v, m),
            None => unreachable!("the initial state holds manifest version 1"),
        }
    }
}

/// A WAL upload in flight: it survives its writer's crash and may land later.
/// A hedged upload is two identical creates of the same object in flight
/// (`attempt` 0 and 1); the first to land wins, the other finds it there.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Upload {
    pub wal_id: WalId,
    pub owner: Epoch,
    pub object: WalObject,
    pub attempt: u8,
}

/// An immutable memtable: its writes are all in WALs `<= last_wal_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImmMemtable {
    pub writes: Vec<WriteId>,
    pub last_wal_id: WalId,
}

/// What a writer is doing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Claimed its epoch (manifest `claimed_version`), listed and walked the
    /// WAL chain; the fence is next. `clean_close`: the version claimed from
    /// had `writer_closed`, so the plan holds no fence.
    Recovering { claimed_version: u64, plan: RecoveryPlan, clean_close: bool },
    /// Accepting writes.
    Active,
}

/// One live writer process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Writer {
    pub epoch: Epoch,
    pub phase: Phase,
    /// The protocol core's WAL bookkeeping (next id, watermark, window).
    pub log: WalLog,
    /// The mutable WAL buffer.
    pub buffer: Vec<WriteId>,
    /// Frozen WALs whose upload has not started.
    pub frozen: BTreeMap<WalId, Vec<WriteId>>,
    pub memtable: Vec<WriteId>,
    pub imm: Vec<ImmMemtable>,
    /// L0 SSTs written but not yet recorded in a manifest, oldest first.
    pub flushed: Vec<Flushed>,
    pub next_sst: u8,
    /// The manifest version this writer builds on: it creates
    /// `manifest_version + 1` next.
    pub manifest_version: u64,
    /// The contents of `manifest_version` as the writer last read them.
    pub base_view: ManifestView,
    pub base_tree: Tree<SstId>,
    /// Fences its recovery saw or placed: recorded in every manifest it writes.
    pub fences: Vec<WalId>,
    /// `Close` started: no more `Put`s; the last manifest records `writer_closed`.
    pub closing: bool,
    /// Writes not yet acknowledged, with the WAL each is in.
    pub pending: Vec<(WriteId, WalId)>,
}

/// An L0 SST written by `FlushL0`, not yet in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flushed {
    pub sst: SstId,
    pub last_wal_id: WalId,
    pub writes: Vec<WriteId>,
}

impl Writer {
    /// A writer with empty buffers whose last manifest is `manifest_version`.
    pub fn new(epoch: Epoch, phase: Phase, log: WalLog, manifest_version: u64, base: &ManifestVersion) -> Self {
        Writer {
            epoch,
            phase,
            log,
            buffer: Vec::new(),
            frozen: BTreeMap::new(),
            memtable: Vec::new(),
            imm: Vec::new(),
            flushed: Vec::new(),
            next_sst: 0,
            manifest_version,
            base_view: base.view,
            base_tree: base.tree.clone(),
            fences: Vec::new(),
            closing: false,
            pending: Vec::new(),
        }
    }
}

/// A compactor process: its epoch, the version it builds on, and the
/// compaction whose output is written but not yet committed. A compactor
/// that never steps again has crashed; a new `ClaimCompactor` restarts it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Compactor {
    pub epoch: Epoch,
    pub base: Base,
    pub job: Option<Compaction<SstId>>,
    pub next_sst: u8,
}

/// A follower process: a read-only handle that keeps up with the writer
/// through its client checkpoint. One that never steps again has crashed
/// (its checkpoint expires); `FollowerOpen` starts another.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Follower {
    /// Its checkpoint's id.
    pub id: CheckpointId,
    /// The version it adopted: its SSTs are what it reads.
    pub base: Base,
    /// Its chain position and the WALs it applied past `base`.
    pub cursor: FollowCursor,
    /// Its checkpoint's expiry as its last successful edit recorded it.
    pub expires_at: Tick,
    /// Its checkpoint expired or vanished: it reads nothing more.
    pub lapsed: bool,
    /// The writes its current view shows.
    pub view: BTreeSet<WriteId>,
    /// Every write it has shown (I14: views never go backwards).
    pub shown: BTreeSet<WriteId>,
}

/// A durable checkpoint the model created: what opening it must show (I16)
/// and the WALs that takes (I7).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Made {
    pub writes: BTreeSet<WriteId>,
    pub wals: Vec<WalId>,
}

/// What successful manifest updates committed, for I8.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Committed {
    /// Writes of every SST a successful writer update or compaction recorded.
    pub writes: BTreeSet<WriteId>,
    /// The highest `replay_after_wal_id` a successful writer update recorded.
    pub replay_after_wal_id: WalId,
    /// The highest `wal_id_last_seen` a successful writer update recorded.
    pub wal_id_last_seen: WalId,
    /// The newest compactor epoch a successful `ClaimCompactor` recorded.
    pub compactor_epoch: Epoch,
    /// Output runs of successful compactions not merged by a later one.
    pub runs: BTreeSet<RunId>,
    /// Client checkpoints as their last successful edit left them: pinned
    /// version and expiry (dropped when deleted or expired by GC's edit).
    pub checkpoints: BTreeMap<CheckpointId, (u64, Option<u64>)>,
}

/// An acknowledged durable write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AckInfo {
    /// The epoch of the writer that acknowledged it.
    pub epoch: Epoch,
    /// The newest epoch claimed in the store when it was acknowledged.
    pub claimed_at_ack: Epoch,
}

/// The latest recovery's result.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RecoveryOutcome {
    /// Recovery of `epoch` completed with these writes visible, in order.
    Recovered { epoch: Epoch, writes: Vec<WriteId>, replayed_wals: u8 },
    /// Recovery of `epoch` failed: the database cannot start (I2).
    Failed { epoch: Epoch, error: RecoveryError },
    /// Recovery of `epoch` found an SST its manifest references missing (I2, I6).
    MissingSst { epoch: Epoch, sst: SstId },
    /// Recovery of `epoch` stopped without completing: its fence create found
    /// `wal_id` taken by `owner`'s object and it gave up (a mutant; I11).
    GaveUp { epoch: Epoch, wal_id: WalId, owner: Epoch },
}

/// Facts about the path so far, for the `sometimes` properties.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seen {
    pub manifest_while_uploading: bool,
    pub zombie_upload_rejected: bool,
    pub ambiguous_create_resolved: bool,
    pub hedge_read_back_as_ours: bool,
    pub gc_deleted_wal: bool,
    pub gc_deleted_sst: bool,
    pub writer_reapplied: bool,
    pub zombie_compactor_rejected: bool,
    pub recovered_after_close_without_fence: bool,
    pub follower_applied_wal: bool,
    pub follower_adopted: bool,
    pub follower_refreshed: bool,
    pub follower_lapsed: bool,
    pub checkpoint_refreshed: bool,
    pub checkpoint_expired_removed: bool,
    /// GC kept an SST only because a live checkpoint pins an older version.
    pub gc_kept_retired: bool,
    pub gc_deleted_retired: bool,
    /// A compaction beside a durable checkpoint left an input unrecorded as
    /// retired: the checkpoint's version does not hold it.
    pub retired_left_unread: bool,
    /// GC deleted something planned earlier after another step changed the store.
    pub gc_deleted_after_interleaving: bool,
    /// GC planned to delete a WAL past a live durable checkpoint's replay
    /// point but beyond its `wal_end` (the checkpoint never reads it).
    pub gc_past_wal_end: bool,
}

/// The whole model state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub store: Store,
    pub uploads: BTreeSet<Upload>,
    /// Live writers, oldest epoch first; the last is the newest.
    pub writers: Vec<Writer>,
    /// Each epoch's writes in issue order.
    pub issued: BTreeMap<Epoch, Vec<WriteId>>,
    pub acked: BTreeMap<WriteId, AckInfo>,
    pub next_write: WriteId,
    pub recovery: Option<RecoveryOutcome>,
    /// Live compactors, oldest epoch first.
    pub compactors: Vec<Compactor>,
    pub followers: Vec<Follower>,
    /// Durable checkpoints created, by id.
    pub made: BTreeMap<CheckpointId, Made>,
    /// The running GC pass: what its observation decided and it has not
    /// deleted yet (`GcSst`, `GcWal`, `GcManifest`, in that order).
    pub gc: Option<GcPlan<SstId>>,
    /// The store changed since the running GC pass observed it.
    pub gc_interleaved: bool,
    pub committed: Committed,
    pub now: Tick,
    pub crashes: u8,
    pub recoveries: u8,
    pub zombies: u8,
    pub ambiguous: u8,
    /// Hedges started (`HedgeWal`).
    pub hedges: u8,
    /// Writes whose own WAL create was rejected (`AlreadyExists`, read back
    /// as another writer's object): reported to the caller as not written (I10).
    pub rejected: BTreeSet<WriteId>,
    /// A writer that stopped as fenced, or with its WAL id taken, while no
    /// newer epoch had claimed the store: its writes can never settle (I12).
    pub stopped_without_successor: Option<Epoch>,
    pub closes: u8,
    pub compactor_claims: u8,
    pub followers_opened: u8,
    pub checkpoints_made: u8,
    pub gc_runs: u8,
    pub seen: Seen,
    /// Whether `seen` is part of the state's identity (its hash, which the
    /// checkers fingerprint). The depth-first search turns it off
    /// (`TidemarkModel::forget_path_facts`): two states that differ only in
    /// the path facts have the same futures and the same `always` verdicts,
    /// and leaving them out of the hash costs nothing per state, where a
    /// `symmetry_fn` representative cost a clone and a second hash.
    pub seen_identifies: bool,
}

impl std::hash::Hash for State {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        // Destructured so that a new field fails to compile until it is hashed.
        let State {
            store,
            uploads,
            writers,
            issued,
            acked,
            next_write,
            recovery,
            compactors,
            followers,
            made,
            gc,
            gc_interleaved,
            committed,
            now,
            crashes,
            recoveries,
            zombies,
            ambiguous,
            hedges,
            rejected,
            stopped_without_successor,
            closes,
            compactor_claims,
            followers_opened,
            checkpoints_made,
            gc_runs,
            seen,
            seen_identifies,
        } = self;
        store.hash(h);
        uploads.hash(h);
        writers.hash(h);
        issued.hash(h);
        acked.hash(h);
        next_write.hash(h);
        recovery.hash(h);
        compactors.hash(h);
        followers.hash(h);
        made.hash(h);
        gc.hash(h);
        committed.hash(h);
        (now, crashes, recoveries, zombies, ambiguous, hedges).hash(h);
        rejected.hash(h);
        stopped_without_successor.hash(h);
        (closes, compactor_claims, followers_opened, checkpoints_made, gc_runs).hash(h);
        if *seen_identifies {
            seen.hash(h);
            gc_interleaved.hash(h);
        }
    }
}

impl State {
    pub fn writer(&self, epoch: Epoch) -> Option<&Writer> {
        self.writers.iter().find(|w| w.epoch == epoch)
    }

    pub fn writer_mut(&mut self, epoch: Epoch) -> Option<&mut Writer> {
        self.writers.iter_mut().find(|w| w.epoch == epoch)
    }

    /// The newest epoch claimed in any manifest version.
    pub fn claimed_epoch(&self) -> Epoch {
        self.store.latest_manifest().1.view.writer_epoch
    }

    pub fn is_alive(&self, epoch: Epoch) -> bool {
        self.writer(epoch).is_some()
    }

    pub fn compactor(&self, epoch: Epoch) -> Option<&Compactor> {
        self.compactors.iter().find(|c| c.epoch == epoch)
    }

    pub fn compactor_mut(&mut self, epoch: Epoch) -> Option<&mut Compactor> {
        self.compactors.iter_mut().find(|c| c.epoch == epoch)
    }

    pub fn follower(&self, id: CheckpointId) -> Option<&Follower> {
        self.followers.iter().find(|f| f.id == id)
    }

    pub fn follower_mut(&mut self, id: CheckpointId) -> Option<&mut Follower> {
        self.followers.iter_mut().find(|f| f.id == id)
    }

    /// The WAL ids the store lists.
    pub fn listed_wals(&self) -> BTreeSet<WalId> {
        self.store.wals.keys().copied().collect()
    }

    /// The writes of the WALs `ids`, in order (missing ones hold none).
    pub fn wal_writes<'a>(&'a self, ids: impl IntoIterator<Item = &'a WalId>) -> Vec<WriteId> {
        ids.into_iter().flat_map(|id| self.store.wals.get(id).map(|o| o.writes.clone()).unwrap_or_default()).collect()
    }

    /// The writes of the SSTs `tree` references, ascending (a duplicate stays,
    /// so I4 sees it); `Err` names the first SST that does not exist.
    pub fn tree_writes(&self, tree: &Tree<SstId>) -> Result<Vec<WriteId>, SstId> {
        let mut writes = Vec::new();
        for id in tree.ssts() {
            writes.extend(self.store.ssts.get(id).ok_or(*id)?.writes.iter().copied());
        }
        writes.sort_unstable();
        Ok(writes)
    }
}
