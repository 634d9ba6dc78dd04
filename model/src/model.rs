//! The protocol model: actions with the spec's names, whose every ordering,
//! recording and deletion decision is made by `tidemark::internals::protocol`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use stateright::{Model, Property};
use tidemark::internals::protocol::{ActionName, Epoch, GcPolicy, ManifestView, Protocol, Role, WalId, WalLog};

use crate::properties;
use crate::state::*;

/// Bounds of the exploration. Every bound is at least 1 except `ambiguous`
/// and the compaction/GC knobs (0 turns that part off).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Bounds {
    /// Total `Put`s across all writers.
    pub writes: u16,
    /// W: uploads in flight per writer (the window), also the fence jump.
    pub inflight: u8,
    /// `Crash` actions.
    pub crashes: u8,
    /// Recoveries that start while an older writer is still running.
    pub zombies: u8,
    /// Creates that land but report `AlreadyExists` (S3 retries).
    pub ambiguous: u8,
    /// Hedged WAL uploads: a second identical create of a WAL whose upload
    /// is in flight (`HedgeWal`); 0 turns hedging off.
    pub hedges: u8,
    /// Manifest creates (bounds `WriteManifest`, `CompactCommit` and retry churn).
    pub manifests: u8,
    /// `ClaimCompactor`s; 2 lets a compactor become a zombie.
    pub compactors: u8,
    /// GC runs (`GcRun`).
    pub gcs: u8,
    /// `ReaderOpen`s.
    pub readers: u8,
    /// `Tick`s: how far the clock may advance.
    pub ticks: u8,
    /// `Close`s (clean shutdowns of a writer).
    pub closes: u8,
    /// `min_age` in ticks: GC's minimum object age and the reader lease.
    pub min_age: u8,
}

impl Bounds {
    /// The default bounds: one write, W = 2, a zombie writer (a crash is a
    /// zombie that never steps again), two compactors (one becomes a zombie),
    /// a GC run, one tick of time, a clean close. Every possible reader is
    /// covered by the leases (`State::leases`); `readers` adds explicit ones.
    pub const DEFAULT: Bounds = Bounds {
        writes: 1,
        inflight: 2,
        crashes: 0,
        zombies: 1,
        ambiguous: 0,
        hedges: 0,
        manifests: 4,
        compactors: 2,
        gcs: 1,
        readers: 0,
        ticks: 1,
        closes: 1,
        min_age: 1,
    };
    /// A deeper set: the default plus an ambiguous create (a crash on top
    /// passed 7 million unique states and 10 GB: beyond this machine).
    pub const DEEP: Bounds = Bounds { ambiguous: 1, ..Bounds::DEFAULT };
    /// The big WAL bound set (issue 14): 4 writes, W = 3, 2 crashes, a
    /// zombie, an ambiguous create, no compaction, GC, readers, closes or
    /// clock. Checked depth-first (`check-model --big`).
    pub const BIG: Bounds = Bounds { writes: 4, inflight: 3, crashes: 2, ..Bounds::WAL_ONLY };
    /// The WAL protocol alone (I1–I5 at the bounds checked before compaction
    /// and GC existed): no compactor, GC, reader, close or clock.
    pub const WAL_ONLY: Bounds = Bounds {
        writes: 3,
        inflight: 2,
        crashes: 1,
        zombies: 1,
        ambiguous: 1,
        hedges: 0,
        manifests: 3,
        compactors: 0,
        gcs: 0,
        readers: 0,
        ticks: 0,
        closes: 0,
        min_age: 1,
    };
}

/// The model: a protocol variant under bounds.
#[derive(Clone, Debug)]
pub struct TidemarkModel {
    pub protocol: Protocol,
    pub bounds: Bounds,
    /// How far a fence moves the chain (`inflight_cap` of `ChainWalk`): W in
    /// the checked model, `MAX_INFLIGHT_WAL_UPLOADS` when replaying engine traces.
    pub fence_jump: u64,
    /// `Ack` happens inside `WalDurable`, as in the engine (which releases
    /// acknowledgements under the commit lock where the watermark moves),
    /// instead of as a step of its own. A reduction for large bounds: an
    /// acknowledgement delayed past a later step is checked by I5 exactly
    /// where the eager one is checked by I3 or I5, and a writer stopped
    /// before a delayed `Ack` acknowledges less, never more.
    pub eager_ack: bool,
    /// States that differ only in `State::seen` (the path facts that only
    /// `sometimes` examples read) are one state (`State::seen_identifies`
    /// off): the depth-first search's identification, as sound for `always`
    /// properties as before, at no cost per state.
    pub forget_path_facts: bool,
}

/// One step, named as in the spec. Ids and epochs identify the step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Put { epoch: Epoch },
    FreezeWal { epoch: Epoch },
    UploadWal { epoch: Epoch, wal_id: WalId },
    /// A second identical create of a WAL whose upload is in flight (a hedge
    /// against a slow PUT): two attempts of one object are then in flight.
    HedgeWal { epoch: Epoch, wal_id: WalId },
    /// One create attempt of the WAL returns, answered as the store answers
    /// it: created if the id was free, else `AlreadyExists`, which the writer
    /// settles by reading the object back (`resolve_create_conflict`). With
    /// `ambiguous`, the object lands but the reply is `AlreadyExists`: an S3
    /// retry of a create that landed (bounded by `ambiguous`), or the
    /// answer of a hedged attempt whose sibling landed first (not bounded).
    WalDurable { epoch: Epoch, wal_id: WalId, ambiguous: bool },
    /// A crashed writer's upload that never lands.
    UploadLost { epoch: Epoch, wal_id: WalId },
    Ack { epoch: Epoch },
    FreezeMemtable { epoch: Epoch },
    /// Writes the oldest immutable memtable as an L0 SST, or rewrites a
    /// flushed SST that grew too old to be recorded (`may_record_sst`).
    FlushL0 { epoch: Epoch },
    WriteManifest { epoch: Epoch },
    /// The writer stops accepting writes; its last `WriteManifest` records
    /// `writer_closed` once nothing is frozen, in flight or unflushed.
    Close { epoch: Epoch },
    Crash { epoch: Epoch },
    Recover,
    Fence { epoch: Epoch },
    /// A compactor starts: claims `compactor_epoch + 1` by creating the next
    /// version. A compactor that never steps again has crashed.
    ClaimCompactor,
    /// Reads the latest version, picks inputs (all of L0 and every run) and
    /// writes the output SST.
    Compact { epoch: Epoch },
    /// Creates the next version with the compaction applied; on a lost race
    /// re-reads the latest and re-applies (or stops, fenced).
    CompactCommit { epoch: Epoch },
    /// A read-only handle reads the latest version (and replays its WALs).
    ReaderOpen,
    /// The clock advances one tick; readers whose lease ended let go.
    Tick,
    /// A GC run, atomic here: reads the clock, lists and reads, decides
    /// `GcManifest`, `GcSst` and `GcWal` (`protocol::gc`) and deletes.
    GcRun,
}

impl Action {
    /// The spec's action this step is.
    pub fn name(&self) -> ActionName {
        match self {
            Action::Put { .. } => ActionName::Put,
            Action::FreezeWal { .. } => ActionName::FreezeWal,
            Action::UploadWal { .. } => ActionName::UploadWal,
            Action::HedgeWal { .. } => ActionName::HedgeWal,
            Action::WalDurable { .. } => ActionName::WalDurable,
            Action::UploadLost { .. } => ActionName::UploadLost,
            Action::Ack { .. } => ActionName::Ack,
            Action::FreezeMemtable { .. } => ActionName::FreezeMemtable,
            Action::FlushL0 { .. } => ActionName::FlushL0,
            Action::WriteManifest { .. } => ActionName::WriteManifest,
            Action::Close { .. } => ActionName::Close,
            Action::Crash { .. } => ActionName::Crash,
            Action::Recover => ActionName::Recover,
            Action::Fence { .. } => ActionName::Fence,
            Action::ClaimCompactor => ActionName::ClaimCompactor,
            Action::Compact { .. } => ActionName::Compact,
            Action::CompactCommit { .. } => ActionName::CompactCommit,
            Action::ReaderOpen => ActionName::ReaderOpen,
            Action::Tick => ActionName::Tick,
            Action::GcRun => ActionName::GcRun,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Put { epoch }
            | Action::FreezeWal { epoch }
            | Action::Ack { epoch }
            | Action::FreezeMemtable { epoch }
            | Action::FlushL0 { epoch }
            | Action::WriteManifest { epoch }
            | Action::Close { epoch }
            | Action::Crash { epoch }
            | Action::Fence { epoch }
            | Action::Compact { epoch }
            | Action::CompactCommit { epoch } => write!(f, "{} epoch={epoch}", self.name()),
            Action::UploadWal { epoch, wal_id } | Action::HedgeWal { epoch, wal_id } | Action::UploadLost { epoch, wal_id } => {
                write!(f, "{} wal={wal_id} epoch={epoch}", self.name())
            }
            Action::WalDurable { epoch, wal_id, ambiguous } => {
                write!(f, "WalDurable wal={wal_id} epoch={epoch}{}", if *ambiguous { " (ambiguous)" } else { "" })
            }
            _ => f.write_str(self.name().as_str()),
        }
    }
}

/// A manifest object's token: unique per (role, epoch), which is enough
/// because each of them creates a given version at most once.
pub fn token(role: Role, epoch: Epoch) -> u64 {
    match role {
        Role::Writer => epoch * 2,
        Role::Compactor => epoch * 2 + 1,
    }
}

/// The role whose token this is.
pub fn token_role(token: u64) -> Role {
    if token % 2 == 0 {
        Role::Writer
    } else {
        Role::Compactor
    }
}

impl TidemarkModel {
    pub fn new(protocol: Protocol, bounds: Bounds) -> Self {
        Self { protocol, bounds, fence_jump: u64::from(bounds.inflight), eager_ack: false, forget_path_facts: false }
    }

    pub(crate) fn w(&self) -> u64 {
        u64::from(self.bounds.inflight)
    }

    pub fn gc_policy(&self) -> GcPolicy {
        GcPolicy::new(self.protocol, u64::from(self.bounds.min_age))
    }

    pub fn initial_state(&self) -> State {
        let first = ManifestVersion::new(ManifestView { writer_epoch: 1, ..ManifestView::default() }, token(Role::Writer, 1));
        let writer = Writer::new(1, Phase::Active, WalLog::new(self.protocol, 1, 1, self.w()), 1, &first);
        State {
            store: Store { wals: BTreeMap::new(), ssts: BTreeMap::new(), manifests: BTreeMap::from([(1, first)]) },
            uploads: BTreeSet::new(),
            writers: vec![writer],
            issued: BTreeMap::new(),
            acked: BTreeMap::new(),
            next_write: 0,
            recovery: None,
            compactors: Vec::new(),
            readers: BTreeSet::new(),
            leases: BTreeMap::new(),
            gc_broke_lease: None,
            committed: Committed::default(),
            now: 0,
            crashes: 0,
            recoveries: 0,
            zombies: 0,
            ambiguous: 0,
            hedges: 0,
            rejected: BTreeSet::new(),
            stopped_without_successor: None,
            closes: 0,
            compactor_claims: 0,
            readers_opened: 0,
            gc_runs: 0,
            seen: Seen::default(),
            seen_identifies: !self.forget_path_facts,
        }
    }

    fn may_create(&self, s: &State) -> bool {
        s.store.latest_manifest().0 <= u64::from(self.bounds.manifests)
    }

    fn writer_actions(&self, state: &State, w: &Writer, actions: &mut Vec<Action>) {
        let b = &self.bounds;
        let epoch = w.epoch;
        match &w.phase {
            Phase::Recovering { .. } => actions.push(Action::Fence { epoch }),
            Phase::Active => {
                if state.next_write < b.writes && !w.closing {
                    actions.push(Action::Put { epoch });
                }
                if !w.buffer.is_empty() {
                    actions.push(Action::FreezeWal { epoch });
                }
                for &wal_id in w.frozen.keys() {
                    if w.log.may_start_upload(wal_id) {
                        actions.push(Action::UploadWal { epoch, wal_id });
                    }
                }
                if state.hedges < b.hedges {
                    // Hedge an upload in flight that has no second attempt yet.
                    let mine = state.uploads.iter().filter(|u| u.owner == epoch);
                    for u in mine.clone().filter(|u| u.attempt == 0) {
                        if !mine.clone().any(|o| o.wal_id == u.wal_id && o.attempt == 1) {
                            actions.push(Action::HedgeWal { epoch, wal_id: u.wal_id });
                        }
                    }
                }
                if !self.eager_ack && w.pending.iter().any(|(_, wal)| w.log.may_ack(*wal)) {
                    actions.push(Action::Ack { epoch });
                }
                if w.buffer.is_empty() && !w.memtable.is_empty() {
                    actions.push(Action::FreezeMemtable { epoch });
                }
                if !w.imm.is_empty() || w.flushed.iter().any(|f| !self.recordable(state, &f.sst, f.created_at)) {
                    actions.push(Action::FlushL0 { epoch });
                }
                if self.may_create(state) && self.writer_update(state, w).is_some() {
                    actions.push(Action::WriteManifest { epoch });
                }
                if !w.closing && state.closes < b.closes {
                    actions.push(Action::Close { epoch });
                }
            }
        }
        if state.crashes < b.crashes {
            actions.push(Action::Crash { epoch });
        }
    }
}

impl Model for TidemarkModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial_state()]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        let b = &self.bounds;
        for w in &state.writers {
            self.writer_actions(state, w, actions);
        }
        let mut previous: Option<(WalId, Epoch)> = None;
        for u in &state.uploads {
            // Two attempts of one WAL are the same object: one action each kind.
            if previous.replace((u.wal_id, u.owner)) == Some((u.wal_id, u.owner)) {
                continue;
            }
            actions.push(Action::WalDurable { epoch: u.owner, wal_id: u.wal_id, ambiguous: false });
            let live = state.is_alive(u.owner);
            let sibling = state.uploads.iter().filter(|o| o.wal_id == u.wal_id && o.owner == u.owner).count() > 1;
            if live && (sibling || state.ambiguous < b.ambiguous) && !state.store.wals.contains_key(&u.wal_id) {
                actions.push(Action::WalDurable { epoch: u.owner, wal_id: u.wal_id, ambiguous: true });
            }
            if !live {
                actions.push(Action::UploadLost { epoch: u.owner, wal_id: u.wal_id });
            }
        }
        let recovering = state.writers.iter().any(|w| matches!(w.phase, Phase::Recovering { .. }));
        let has_live_active = state.writers.iter().any(|w| w.phase == Phase::Active);
        let budget = u16::from(b.crashes) + u16::from(b.zombies);
        if !recovering && u16::from(state.recoveries) < budget && (!has_live_active || state.zombies < b.zombies) {
            actions.push(Action::Recover);
        }
        if state.compactor_claims < b.compactors {
            actions.push(Action::ClaimCompactor);
        }
        let (_, latest) = state.store.latest_manifest();
        let compactable = !latest.tree.l0.is_empty() || latest.tree.runs.len() >= 2;
        for c in &state.compactors {
            match &c.job {
                None if compactable && self.may_create(state) => {
                    actions.push(Action::Compact { epoch: c.epoch })
                }
                Some(_) if self.may_create(state) => actions.push(Action::CompactCommit { epoch: c.epoch }),
                _ => {}
            }
        }
        if state.readers_opened < b.readers {
            actions.push(Action::ReaderOpen);
        }
        if state.now < b.ticks {
            actions.push(Action::Tick);
        }
        if state.gc_runs < b.gcs {
            actions.push(Action::GcRun);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        let s_ = &mut s;
        match action {
            Action::Put { epoch } => self.put(s_, epoch),
            Action::FreezeWal { epoch } => self.freeze_wal(s_, epoch),
            Action::UploadWal { epoch, wal_id } => self.upload_wal(s_, epoch, wal_id),
            Action::HedgeWal { epoch, wal_id } => self.hedge_wal(s_, epoch, wal_id),
            Action::WalDurable { epoch, wal_id, ambiguous } => self.wal_durable(s_, epoch, wal_id, ambiguous),
            Action::UploadLost { epoch, wal_id } => self.upload_lost(s_, epoch, wal_id),
            Action::Ack { epoch } => self.ack(s_, epoch),
            Action::FreezeMemtable { epoch } => self.freeze_memtable(s_, epoch),
            Action::FlushL0 { epoch } => self.flush_l0(s_, epoch),
            Action::WriteManifest { epoch } => self.write_manifest(s_, epoch),
            Action::Close { epoch } => self.close(s_, epoch),
            Action::Crash { epoch } => self.crash(s_, epoch),
            Action::Recover => self.recover(s_),
            Action::Fence { epoch } => self.fence(s_, epoch),
            Action::ClaimCompactor => self.claim_compactor(s_),
            Action::Compact { epoch } => self.compact(s_, epoch),
            Action::CompactCommit { epoch } => self.compact_commit(s_, epoch),
            Action::ReaderOpen => self.reader_open(s_),
            Action::Tick => self.tick(s_),
            Action::GcRun => self.gc_run(s_),
        }?;
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::all(&self.bounds)
    }

    fn within_boundary(&self, state: &State) -> bool {
        state.next_write <= self.bounds.writes
    }

    fn format_action(&self, action: &Action) -> String {
        action.to_string()
    }
}
