//! The protocol model: actions with the spec's names, whose every ordering,
//! recording and deletion decision is made by `tidemark::internals::protocol`. Each
//! action is one function in `crate::steps`; here are the bounds, the
//! actions each state enables, and the dispatch.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use stateright::{Model, Property};
use tidemark::internals::protocol::{
    expired, may_use, writer_pin_id, ActionName, Checkpoint, CheckpointId, CheckpointOwner, Epoch, GcPolicy, ManifestView,
    Protocol, Role, Tree, WalId, WalLog,
};

use crate::properties;
use crate::state::*;

/// Bounds of the exploration. Every bound is at least 1 except `ambiguous`,
/// `hedges`, `min_age` and the compaction, GC, follower, clock and close
/// knobs (0 turns that part off).
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
    /// The newest manifest version created is at most `manifests + 1`
    /// (bounds every manifest writer and retry churn).
    pub manifests: u8,
    /// `ClaimCompactor`s; 2 lets a compactor become a zombie (or restart).
    pub compactors: u8,
    /// GC passes (`GcRun`); a pass started while another has not finished
    /// deleting is that one crashing and a new one starting.
    pub gcs: u8,
    /// `FollowerOpen`s: followers started (or restarted after a crash or lapse).
    pub readers: u8,
    /// `Tick`s: how far the clock may advance.
    pub ticks: u8,
    /// `Close`s (clean shutdowns of a writer).
    pub closes: u8,
    /// GC's grace in ticks: objects younger than this are kept, and a
    /// checkpoint counts as live this long past its expiry. 0 checks that
    /// nothing depends on it.
    pub min_age: u8,
}

impl Bounds {
    /// The default bounds: one write, W = 2, a zombie writer (a crash is a
    /// zombie that never steps again), two compactor claims (one becomes a
    /// zombie, or is a restart after a crash), a GC pass at grace 0, a
    /// follower, a clean close; no clock (expiry is the lifecycle set's).
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
        readers: 1,
        ticks: 0,
        closes: 1,
        min_age: 0,
    };
    /// A deeper set: the default plus an ambiguous create.
    pub const DEEP: Bounds = Bounds { ambiguous: 1, ..Bounds::DEFAULT };
    /// The big WAL bound set: 4 writes, W = 3, 2 crashes, a zombie, an
    /// ambiguous create, no compaction, GC, followers, closes or clock.
    /// Checked depth-first (`check-model --big`).
    pub const BIG: Bounds = Bounds { writes: 4, inflight: 3, crashes: 2, ..Bounds::WAL_ONLY };
    /// The WAL protocol alone (I1–I5 at the bounds checked before compaction
    /// and GC existed): no compactor, GC, follower, close or clock.
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
        min_age: 0,
    };
    /// The deep lifecycle set: two writes, a zombie writer, a compactor, a
    /// GC pass over objects the clock ages (grace 1 tick), a follower that
    /// refreshes its checkpoint, 4 manifest creates. Exhausted depth-first
    /// in about 7 minutes on 2 cores (`check-model --lifecycle`).
    pub const LIFECYCLE: Bounds = Bounds {
        writes: 2,
        inflight: 2,
        crashes: 0,
        zombies: 1,
        ambiguous: 0,
        hedges: 0,
        manifests: 4,
        compactors: 1,
        gcs: 1,
        readers: 1,
        ticks: 1,
        closes: 0,
        min_age: 1,
    };
}

/// Bounds of the durable checkpoints (kept apart from [`Bounds`], whose
/// fields the trace conformance checker in `crash/` names one by one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LifecycleBounds {
    /// `CheckpointCreate`s: durable client checkpoints (0: none).
    pub checkpoints: u8,
    /// A client checkpoint's lifetime in ticks: it expires `ttl` after its
    /// creation or last refresh.
    pub ttl: u8,
}

impl LifecycleBounds {
    /// No durable checkpoint; followers' checkpoints live 2 ticks.
    pub const NONE: LifecycleBounds = LifecycleBounds { checkpoints: 0, ttl: 2 };
    /// One durable checkpoint; client checkpoints live 2 ticks.
    pub const ONE: LifecycleBounds = LifecycleBounds { checkpoints: 1, ttl: 2 };
}

/// The model: a protocol variant under bounds.
#[derive(Clone, Debug)]
pub struct TidemarkModel {
    pub protocol: Protocol,
    pub bounds: Bounds,
    pub lifecycle: LifecycleBounds,
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
    /// Writes the oldest immutable memtable as an L0 SST.
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
    /// A follower starts: creates its checkpoint on the latest version, then
    /// reads that version and the chain after it.
    FollowerOpen,
    /// The follower reads the latest version, adopts it if it is newer, then
    /// lists WALs and applies the chain past where it stopped.
    FollowerPoll { id: CheckpointId },
    /// The follower refreshes its checkpoint from the version it holds,
    /// moving the pin to the version it creates and adopting that one.
    FollowerRefresh { id: CheckpointId },
    /// A client creates a durable checkpoint of the latest state.
    CheckpointCreate,
    /// Its holder extends a durable checkpoint (the pin stays).
    CheckpointRefresh { id: CheckpointId },
    /// Its holder drops a durable checkpoint.
    CheckpointDelete { id: CheckpointId },
    /// GC's edit: drops the checkpoints expired at its clock.
    CheckpointExpire,
    /// The clock advances one tick.
    Tick,
    /// A GC pass observes: lists, reads the latest version, decides
    /// (`GcPolicy::plan`). Its deletions are steps of their own.
    GcRun,
    /// The pass deletes the SSTs it decided.
    GcSst,
    /// ... then the WALs.
    GcWal,
    /// ... then the manifest versions.
    GcManifest,
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
            Action::FollowerOpen => ActionName::FollowerOpen,
            Action::FollowerPoll { .. } => ActionName::FollowerPoll,
            Action::FollowerRefresh { .. } => ActionName::FollowerRefresh,
            Action::CheckpointCreate => ActionName::CheckpointCreate,
            Action::CheckpointRefresh { .. } => ActionName::CheckpointRefresh,
            Action::CheckpointDelete { .. } => ActionName::CheckpointDelete,
            Action::CheckpointExpire => ActionName::CheckpointExpire,
            Action::Tick => ActionName::Tick,
            Action::GcRun => ActionName::GcRun,
            Action::GcSst => ActionName::GcSst,
            Action::GcWal => ActionName::GcWal,
            Action::GcManifest => ActionName::GcManifest,
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
            Action::FollowerPoll { id }
            | Action::FollowerRefresh { id }
            | Action::CheckpointRefresh { id }
            | Action::CheckpointDelete { id } => write!(f, "{} checkpoint={id}", self.name()),
            _ => f.write_str(self.name().as_str()),
        }
    }
}

/// A manifest object's token: unique per writer (role and epoch, or a
/// client's checkpoint id), which is enough because each of them creates a
/// given version at most once.
pub fn token(role: Role, epoch_or_id: u64) -> u64 {
    match role {
        Role::Writer => epoch_or_id * 3,
        Role::Compactor => epoch_or_id * 3 + 1,
        Role::Client => epoch_or_id * 3 + 2,
    }
}

/// The role whose token this is.
pub fn token_role(token: u64) -> Role {
    match token % 3 {
        0 => Role::Writer,
        1 => Role::Compactor,
        _ => Role::Client,
    }
}

/// The first follower's checkpoint id; followers count up from it, durable
/// checkpoints from 1.
pub const FIRST_FOLLOWER: CheckpointId = 100;

impl TidemarkModel {
    pub fn new(protocol: Protocol, bounds: Bounds) -> Self {
        Self::with_lifecycle(protocol, bounds, LifecycleBounds::NONE)
    }

    pub fn with_lifecycle(protocol: Protocol, bounds: Bounds, lifecycle: LifecycleBounds) -> Self {
        Self { protocol, bounds, lifecycle, fence_jump: u64::from(bounds.inflight), eager_ack: false, forget_path_facts: false }
    }

    pub(crate) fn w(&self) -> u64 {
        u64::from(self.bounds.inflight)
    }

    /// The GC rule in force (`min_age` is its grace).
    pub fn gc_policy(&self) -> GcPolicy {
        GcPolicy::new(self.protocol, u64::from(self.bounds.min_age))
    }

    /// A fresh database: manifest version 1, claimed by the writer of epoch
    /// 1, which pins it.
    pub fn initial_state(&self) -> State {
        let view = ManifestView { version: 1, writer_epoch: 1, ..ManifestView::default() };
        let pin = Checkpoint {
            id: writer_pin_id(1),
            version: 1,
            replay_after_wal_id: 0,
            wal_end: None,
            expires_at: None,
            owner: CheckpointOwner::Writer(1),
        };
        let first = ManifestVersion {
            view,
            tree: Tree { checkpoints: vec![pin], ..Tree::default() },
            token: token(Role::Writer, 1),
            created_at: 0,
        };
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
            followers: Vec::new(),
            made: BTreeMap::new(),
            gc: None,
            gc_interleaved: false,
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
            followers_opened: 0,
            checkpoints_made: 0,
            gc_runs: 0,
            seen: Seen::default(),
            seen_identifies: !self.forget_path_facts,
        }
    }

    /// When an object created now is recorded as created: the clock, or
    /// always 0 when GC has no grace (nothing then reads an age, and states
    /// that differ only in it are one).
    pub(crate) fn stamp(&self, s: &State) -> Tick {
        if self.bounds.min_age == 0 {
            0
        } else {
            s.now
        }
    }

    /// Whether a `Tick` can change what any step decides. With no grace
    /// (`min_age = 0`, every object stamped 0) time is only compared with
    /// checkpoint expiries, each set relative to the clock: a tick while no
    /// expiry lies ahead only shifts every later time alike, and is left out.
    fn time_matters(&self, s: &State) -> bool {
        if self.bounds.min_age > 0 {
            return true;
        }
        let now = u64::from(s.now);
        let ahead = |e: u64| e > now;
        let (_, latest) = s.store.latest_manifest();
        latest.tree.checkpoints.iter().filter_map(|c| c.expires_at).any(ahead)
            || s.followers.iter().any(|f| !f.lapsed && ahead(u64::from(f.expires_at)))
    }

    /// The manifest bound: versions beyond `manifests + 1` are not explored.
    pub(crate) fn may_create(&self, s: &State) -> bool {
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
                if !w.imm.is_empty() {
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

    fn lifecycle_actions(&self, state: &State, actions: &mut Vec<Action>) {
        let (b, l) = (&self.bounds, &self.lifecycle);
        let (latest_version, latest) = state.store.latest_manifest();
        let now = u64::from(state.now);
        let creates = self.may_create(state);
        if state.followers_opened < b.readers && creates {
            actions.push(Action::FollowerOpen);
        }
        let listed = state.listed_wals();
        for f in state.followers.iter().filter(|f| !f.lapsed) {
            let id = f.id;
            let usable = may_use(Some(u64::from(f.expires_at)), now);
            if usable && (latest_version > f.base.version || f.cursor.next_to_read(&listed).is_some()) {
                actions.push(Action::FollowerPoll { id });
            }
            // Refresh at half-life (or, once expired, to learn it lapsed).
            let remaining = u64::from(f.expires_at).saturating_sub(now);
            if creates && 2 * remaining <= u64::from(l.ttl) {
                actions.push(Action::FollowerRefresh { id });
            }
        }
        if state.checkpoints_made < l.checkpoints && creates {
            actions.push(Action::CheckpointCreate);
        }
        for c in latest.tree.checkpoints.iter().filter(|c| state.made.contains_key(&c.id)) {
            let extends = c.expires_at.is_some_and(|e| now + u64::from(l.ttl) > e);
            if creates && extends {
                actions.push(Action::CheckpointRefresh { id: c.id });
            }
            if creates {
                actions.push(Action::CheckpointDelete { id: c.id });
            }
        }
        if creates && !expired(&latest.tree, now, u64::from(b.min_age)).is_empty() {
            actions.push(Action::CheckpointExpire);
        }
        if state.gc_runs < b.gcs {
            actions.push(Action::GcRun);
        }
        if let Some(plan) = &state.gc {
            if !plan.ssts.is_empty() {
                actions.push(Action::GcSst);
            } else if !plan.wals.is_empty() {
                actions.push(Action::GcWal);
            } else if !plan.manifests.is_empty() {
                actions.push(Action::GcManifest);
            }
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
                None if compactable && self.may_create(state) => actions.push(Action::Compact { epoch: c.epoch }),
                Some(_) if self.may_create(state) => actions.push(Action::CompactCommit { epoch: c.epoch }),
                _ => {}
            }
        }
        self.lifecycle_actions(state, actions);
        if state.now < b.ticks && self.time_matters(state) {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        let s_ = &mut s;
        let action_name = action.name();
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
            Action::FollowerOpen => self.follower_open(s_),
            Action::FollowerPoll { id } => self.follower_poll(s_, id),
            Action::FollowerRefresh { id } => self.follower_refresh(s_, id),
            Action::CheckpointCreate => self.checkpoint_create(s_),
            Action::CheckpointRefresh { id } => self.checkpoint_refresh(s_, id),
            Action::CheckpointDelete { id } => self.checkpoint_delete(s_, id),
            Action::CheckpointExpire => self.checkpoint_expire(s_),
            Action::Tick => self.tick(s_),
            Action::GcRun => self.gc_run(s_),
            Action::GcSst => self.gc_sst(s_),
            Action::GcWal => self.gc_wal(s_),
            Action::GcManifest => self.gc_manifest(s_),
        }?;
        if s.gc.is_some() && last.gc.is_some() && s.store != last.store && !s.gc_interleaved {
            // Another process changed the store while the GC pass holds
            // decisions it has not carried out (a path fact for `sometimes`).
            s.gc_interleaved = !matches!(action_name, ActionName::GcSst | ActionName::GcWal | ActionName::GcManifest);
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::all(&self.bounds, &self.lifecycle)
    }

    fn within_boundary(&self, state: &State) -> bool {
        state.next_write <= self.bounds.writes
    }

    fn format_action(&self, action: &Action) -> String {
        action.to_string()
    }
}
