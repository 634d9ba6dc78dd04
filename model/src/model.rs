//! The protocol model: actions with the spec's names, whose every ordering,
//! recording and deletion decision is made by `tidemark::internals::protocol`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use stateright::{Model, Property};
use tidemark::internals::protocol::{
    apply_compaction, apply_writer_edit, claim_compactor_epoch, claim_epoch, on_fence_conflict, on_manifest_created, on_manifest_taken,
    reapply_base, resolve_create_conflict, ChainWalk, Compaction, CreateConflict, CreatedOutcome, FenceConflict, Epoch, GcPolicy,
    KeptManifest, Listed, ManifestConflict, ManifestView, ObjectOwner, Protocol, RecoveryError, RecoveryPlan, Role,
    RunId, SortedRun, TakenOutcome, Tree, WalHeader, WalId, WalKind, WalLog, WriterEdit,
};

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
    /// The spec's action name.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Put { .. } => "Put",
            Action::FreezeWal { .. } => "FreezeWal",
            Action::UploadWal { .. } => "UploadWal",
            Action::HedgeWal { .. } => "HedgeWal",
            Action::WalDurable { .. } => "WalDurable",
            Action::UploadLost { .. } => "UploadLost",
            Action::Ack { .. } => "Ack",
            Action::FreezeMemtable { .. } => "FreezeMemtable",
            Action::FlushL0 { .. } => "FlushL0",
            Action::WriteManifest { .. } => "WriteManifest",
            Action::Close { .. } => "Close",
            Action::Crash { .. } => "Crash",
            Action::Recover => "Recover",
            Action::Fence { .. } => "Fence",
            Action::ClaimCompactor => "ClaimCompactor",
            Action::Compact { .. } => "Compact",
            Action::CompactCommit { .. } => "CompactCommit",
            Action::ReaderOpen => "ReaderOpen",
            Action::Tick => "Tick",
            Action::GcRun => "GcRun",
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
            _ => f.write_str(self.name()),
        }
    }
}

fn owner(epoch: Epoch) -> ObjectOwner {
    // One writer per epoch writes at most one object per WAL id, so the
    // (epoch, id) pair identifies an object; the token is not needed here.
    ObjectOwner { writer_epoch: epoch, token: 0 }
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

/// The outcome of one create of the next manifest version.
enum Attempt {
    Applied(u64),
    Fenced,
    /// Lost the race to `by`; `latest` is the version to re-read.
    Reapply { latest: u64, by: Role },
}

impl TidemarkModel {
    pub fn new(protocol: Protocol, bounds: Bounds) -> Self {
        Self { protocol, bounds, fence_jump: u64::from(bounds.inflight), eager_ack: false, forget_path_facts: false }
    }

    fn w(&self) -> u64 {
        u64::from(self.bounds.inflight)
    }

    /// The GC rule (and the SST-recording guard) in force.
    pub fn gc_policy(&self) -> GcPolicy {
        GcPolicy::new(self.protocol, u64::from(self.bounds.min_age))
    }

    /// A fresh database: manifest version 1 and the writer of epoch 1.
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

    /// The manifest bound: versions beyond `manifests + 1` are not explored
    /// (recoveries and compactor claims are bounded by their own counts).
    fn may_create(&self, s: &State) -> bool {
        s.store.latest_manifest().0 <= u64::from(self.bounds.manifests)
    }

    /// Creates manifest `version`. If it becomes the latest, a reader may
    /// have confirmed the previous latest until now: record its lease.
    fn insert_version(&self, s: &mut State, version: u64, m: ManifestVersion) {
        let (prev, latest) = s.store.latest_manifest();
        if version > prev {
            let lease = Lease {
                until: s.now.saturating_add(self.bounds.min_age),
                ssts: latest.tree.ssts().copied().collect(),
                replay_after_wal_id: latest.view.replay_after_wal_id,
            };
            s.leases.insert(prev, lease);
        }
        s.store.manifests.insert(version, m);
    }

    /// Whether an SST written at `created_at` may still be recorded now
    /// (`may_record_sst`).
    fn recordable(&self, s: &State, sst: &SstId, created_at: Tick) -> bool {
        let _ = sst; // the writer cannot see a deletion; only the age
        self.gc_policy().may_record_sst(u64::from(created_at), u64::from(s.now))
    }

    /// What `Close` is waiting for is done: nothing buffered, frozen, in
    /// flight or unflushed.
    fn drained(s: &State, w: &Writer) -> bool {
        w.buffer.is_empty()
            && w.frozen.is_empty()
            && w.memtable.is_empty()
            && w.imm.is_empty()
            && !s.uploads.iter().any(|u| u.owner == w.epoch)
    }

    /// The writer's next manifest update, if it has anything to record: the
    /// edit and the protocol's answer on its base.
    fn writer_update(&self, s: &State, w: &Writer) -> Option<(WriterEdit<SstId>, Result<(ManifestView, Tree<SstId>), ManifestConflict>)> {
        if w.flushed.iter().any(|f| !self.recordable(s, &f.sst, f.created_at)) {
            return None; // must be rewritten first (FlushL0)
        }
        let edit = WriterEdit {
            flushed: w.flushed.iter().map(|f| f.sst).collect(),
            flushed_through: w.flushed.iter().map(|f| f.last_wal_id).max(),
            close: w.closing && Self::drained(s, w),
            fences: w.fences.clone(),
        };
        let result = apply_writer_edit(&w.base_view, &w.base_tree, &w.log, &edit);
        match &result {
            Ok((view, tree)) if *view == w.base_view && *tree == w.base_tree => None,
            _ => Some((edit, result)),
        }
    }

    /// Creates `candidate` as version `version`, or learns why not, deciding
    /// with `on_manifest_created` and `on_manifest_taken`.
    fn try_create(&self, s: &mut State, role: Role, epoch: Epoch, candidate: ManifestVersion, version: u64) -> Attempt {
        let taken = match s.store.manifests.get(&version) {
            None => {
                self.insert_version(s, version, candidate.clone());
                let latest = s.store.latest_manifest().0;
                match on_manifest_created(self.protocol, version, latest) {
                    CreatedOutcome::Applied => return Attempt::Applied(version),
                    CreatedOutcome::SlotReopened { latest } => latest,
                }
            }
            Some(_) => version,
        };
        let Some(existing) = s.store.manifests.get(&taken) else { return Attempt::Fenced };
        match on_manifest_taken(role, epoch, candidate.token, &existing.view, existing.token) {
            TakenOutcome::Ours => Attempt::Applied(version),
            TakenOutcome::Fenced { .. } => Attempt::Fenced,
            TakenOutcome::Reapply => Attempt::Reapply { latest: s.store.latest_manifest().0, by: token_role(existing.token) },
        }
    }

    /// After `Reapply`: the base to apply the change on next (`reapply_base`).
    fn rebase(&self, s: &State, stale: (ManifestView, Tree<SstId>), latest: u64) -> Option<Base> {
        let m = s.store.manifests.get(&latest)?;
        let fresh = (m.view, m.tree.clone());
        let (view, tree) = reapply_base(self.protocol, &stale, &fresh).clone();
        Some(Base { version: latest, view, tree })
    }

    /// `Recover`'s list-and-walk (and `Fence`'s re-list): the protocol's chain walk.
    fn walk(&self, state: &State, view: &ManifestView, epoch: Epoch, clean_close: bool) -> Result<RecoveryPlan, RecoveryError> {
        let mut walk = ChainWalk::new(self.protocol, view, epoch, state.store.wals.keys().copied(), self.fence_jump)
            .after_clean_close(clean_close);
        while let Some(id) = walk.next_to_read() {
            match state.store.wals.get(&id) {
                Some(object) => walk.observe(id, object.header),
                None => break,
            }
        }
        walk.finish()
    }

    /// Drops a writer that can never acknowledge again (fenced, or its WAL id taken).
    fn stop(state: &mut State, epoch: Epoch) {
        state.writers.retain(|w| w.epoch != epoch);
    }

    /// `Ack`: every pending write whose WAL the watermark covers returns.
    fn ack(s: &mut State, epoch: Epoch) -> Option<()> {
        let claimed_at_ack = s.claimed_epoch();
        let w = s.writer_mut(epoch)?;
        let (ackable, pending): (Vec<_>, Vec<_>) = w.pending.iter().partition(|(_, wal)| w.log.may_ack(*wal));
        w.pending = pending;
        for (id, _) in ackable {
            s.acked.insert(id, AckInfo { epoch, claimed_at_ack });
        }
        Some(())
    }

    /// The create of a WAL holding `writes` was rejected (the object read
    /// back is another writer's): those writes are reported as not written
    /// (I10), and the writer stops. Other pending writes fail too, but their
    /// WALs may still land, as after a crash. A stop that no newer epoch
    /// caused is recorded for I12.
    fn reject(state: &mut State, epoch: Epoch, writes: &[WriteId]) {
        state.rejected.extend(writes.iter().copied());
        if state.claimed_epoch() <= epoch {
            state.stopped_without_successor.get_or_insert(epoch);
        }
        Self::stop(state, epoch);
    }

    /// A compactor that learned it is fenced stops (a zombie compactor rejected).
    fn stop_compactor(state: &mut State, epoch: Epoch) {
        state.compactors.retain(|c| c.epoch != epoch);
        state.seen.zombie_compactor_rejected = true;
    }

    /// `GcRun`: one GC run, atomic in the model: read `now`, list and read,
    /// decide `GcManifest`, `GcSst` and `GcWal` with `protocol::gc`, delete.
    fn gc_run(&self, s: &mut State) {
        let policy = self.gc_policy();
        let now = u64::from(s.now);
        let listed: Vec<Listed<u64>> =
            s.store.manifests.iter().map(|(v, m)| Listed { id: *v, created_at: u64::from(m.created_at) }).collect();
        let decided = policy.manifests(&listed, now);
        let kept: Vec<KeptManifest<'_, SstId>> = decided
            .keep
            .iter()
            .filter_map(|v| s.store.manifests.get(v))
            .map(|m| KeptManifest { view: &m.view, tree: &m.tree })
            .collect();
        let wals: Vec<Listed<WalId>> =
            s.store.wals.iter().map(|(id, o)| Listed { id: *id, created_at: u64::from(o.created_at) }).collect();
        let ssts: Vec<Listed<SstId>> =
            s.store.ssts.iter().map(|(id, o)| Listed { id: *id, created_at: u64::from(o.created_at) }).collect();
        // GC runs in the newest writer's process: it may know that writer's
        // unrecorded flush (only the gc-before-manifest mutant uses it).
        let unrecorded = s
            .writers
            .iter()
            .rev()
            .find(|w| w.phase == Phase::Active)
            .and_then(|w| w.flushed.iter().map(|f| f.last_wal_id).max());
        let dead_wals = policy.wals(&kept, &wals, now, unrecorded);
        let dead_ssts = policy.ssts(&kept, &ssts, &[], now);
        // I7: would any possible reader (of the latest version, or of one
        // still within its lease) read something this run deletes?
        let (v, latest) = s.store.latest_manifest();
        let latest_lease = Lease {
            until: Tick::MAX,
            ssts: latest.tree.ssts().copied().collect(),
            replay_after_wal_id: latest.view.replay_after_wal_id,
        };
        let leases = s.leases.iter().map(|(v, l)| (*v, l)).chain([(v, &latest_lease)]);
        for (version, lease) in leases {
            let sst = dead_ssts.iter().find(|id| lease.ssts.contains(id));
            let wal = dead_wals.iter().find(|id| **id > lease.replay_after_wal_id);
            let why = match (sst, wal) {
                (Some(id), _) => format!("GC deleted {id:?}, which a reader of v{version} within its lease reads"),
                (None, Some(id)) => format!("GC deleted wal {id}, which a reader of v{version} within its lease replays"),
                (None, None) => continue,
            };
            s.gc_broke_lease.get_or_insert(why);
            break;
        }
        for id in dead_wals {
            s.seen.gc_deleted_wal |= s.store.wals.remove(&id).is_some();
        }
        for id in dead_ssts {
            s.seen.gc_deleted_sst |= s.store.ssts.remove(&id).is_some();
        }
        for v in decided.delete {
            s.store.manifests.remove(&v);
        }
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
        match action {
            Action::Put { epoch } => {
                let id = s.next_write;
                s.next_write += 1;
                s.issued.entry(epoch).or_default().push(id);
                let w = s.writer_mut(epoch)?;
                let wal_id = w.log.next_wal_id(); // the buffer becomes this WAL
                w.buffer.push(id);
                w.memtable.push(id);
                w.pending.push((id, wal_id));
            }
            Action::FreezeWal { epoch } => {
                let w = s.writer_mut(epoch)?;
                let wal_id = w.log.freeze();
                let writes = std::mem::take(&mut w.buffer);
                w.frozen.insert(wal_id, writes);
            }
            Action::UploadWal { epoch, wal_id } => {
                let w = s.writer_mut(epoch)?;
                let writes = w.frozen.remove(&wal_id)?;
                let header = WalHeader { writer_epoch: epoch, kind: WalKind::Data };
                s.uploads.insert(Upload { wal_id, owner: epoch, object: WalObject { header, writes, created_at: 0 }, attempt: 0 });
            }
            Action::HedgeWal { epoch, wal_id } => {
                s.writer(epoch)?;
                let first = s.uploads.iter().find(|u| u.wal_id == wal_id && u.owner == epoch)?.clone();
                s.hedges += 1;
                s.uploads.insert(Upload { attempt: 1, ..first });
            }
            Action::WalDurable { epoch, wal_id, ambiguous } => {
                let upload = s.uploads.iter().find(|u| u.wal_id == wal_id && u.owner == epoch)?.clone();
                s.uploads.remove(&upload);
                // The other attempt of a hedged upload, still in flight.
                let sibling = s.uploads.iter().any(|u| u.wal_id == wal_id && u.owner == epoch);
                let hedged = sibling || upload.attempt > 0;
                // The store's answer: created if the id is free, else AlreadyExists.
                let created = match s.store.wals.get(&wal_id) {
                    None => {
                        s.store.wals.insert(wal_id, WalObject { created_at: s.now, ..upload.object.clone() });
                        !ambiguous
                    }
                    Some(_) => false,
                };
                if ambiguous && !sibling {
                    s.ambiguous += 1;
                }
                if s.is_alive(epoch) {
                    let outcome = if created {
                        CreateConflict::Ours
                    } else {
                        // AlreadyExists: read the object back and decide.
                        let existing = s.store.wals.get(&wal_id)?.header.writer_epoch;
                        resolve_create_conflict(self.protocol, owner(epoch), owner(existing))
                    };
                    match outcome {
                        CreateConflict::Ours => {
                            if !created && hedged {
                                s.seen.hedge_read_back_as_ours = true;
                            } else if ambiguous {
                                s.seen.ambiguous_create_resolved = true;
                            }
                            s.writer_mut(epoch)?.log.on_wal_durable(wal_id);
                            if self.eager_ack {
                                Self::ack(&mut s, epoch)?;
                            }
                        }
                        CreateConflict::Fenced { .. } => {
                            s.seen.zombie_upload_rejected = true;
                            Self::reject(&mut s, epoch, &upload.object.writes);
                        }
                        CreateConflict::TakenByOther { .. } => Self::reject(&mut s, epoch, &upload.object.writes),
                    }
                }
            }
            Action::UploadLost { epoch, wal_id } => {
                // One attempt (of a hedged upload, either: they are the same object).
                let upload = s.uploads.iter().find(|u| u.wal_id == wal_id && u.owner == epoch)?.clone();
                s.uploads.remove(&upload);
            }
            Action::Ack { epoch } => Self::ack(&mut s, epoch)?,
            Action::FreezeMemtable { epoch } => {
                let w = s.writer_mut(epoch)?;
                // The buffer is empty, so every memtable write is in a frozen WAL.
                let last_wal_id = w.log.next_wal_id() - 1;
                let writes = std::mem::take(&mut w.memtable);
                w.imm.push(ImmMemtable { writes, last_wal_id });
            }
            Action::FlushL0 { epoch } => {
                let stale = {
                    let w = s.writer(epoch)?;
                    w.flushed.iter().position(|f| !self.recordable(&s, &f.sst, f.created_at))
                };
                let now = s.now;
                let w = s.writer_mut(epoch)?;
                let id = SstId::L0(epoch, w.next_sst);
                w.next_sst += 1;
                let writes = match stale {
                    // Too old to record: write the same memtable again.
                    Some(i) => {
                        let f = w.flushed.get_mut(i)?;
                        f.sst = id;
                        f.created_at = now;
                        f.writes.clone()
                    }
                    None => {
                        let imm = w.imm.remove(0);
                        w.flushed.push(Flushed { sst: id, last_wal_id: imm.last_wal_id, writes: imm.writes.clone(), created_at: now });
                        imm.writes
                    }
                };
                s.store.ssts.insert(id, SstObject { writes, created_at: now });
            }
            Action::WriteManifest { epoch } => {
                let w = s.writer(epoch)?;
                let (edit, result) = self.writer_update(&s, w)?;
                let (view, tree) = match result {
                    Ok(next) => next,
                    Err(ManifestConflict::Fenced { .. }) => {
                        Self::stop(&mut s, epoch);
                        return Some(s);
                    }
                    Err(_) => return None,
                };
                let version = w.manifest_version + 1;
                let stale = (w.base_view, w.base_tree.clone());
                let uploading = s.uploads.iter().any(|u| u.owner == epoch) || !w.frozen.is_empty();
                let candidate = ManifestVersion { view, tree, token: token(Role::Writer, epoch), created_at: s.now };
                match self.try_create(&mut s, Role::Writer, epoch, candidate.clone(), version) {
                    Attempt::Applied(v) => {
                        let recorded: Vec<WriteId> = s
                            .writer(epoch)?
                            .flushed
                            .iter()
                            .flat_map(|f| f.writes.iter().copied())
                            .collect();
                        s.committed.writes.extend(recorded);
                        s.committed.replay_after_wal_id = s.committed.replay_after_wal_id.max(view.replay_after_wal_id);
                        s.committed.wal_id_last_seen = s.committed.wal_id_last_seen.max(view.wal_id_last_seen);
                        if uploading {
                            s.seen.manifest_while_uploading = true;
                        }
                        let w = s.writer_mut(epoch)?;
                        w.manifest_version = v;
                        w.base_view = candidate.view;
                        w.base_tree = candidate.tree;
                        w.flushed.clear();
                        if edit.close {
                            // A closed writer never uploads again: its process ends.
                            Self::stop(&mut s, epoch);
                        }
                    }
                    Attempt::Fenced => Self::stop(&mut s, epoch),
                    Attempt::Reapply { latest, by } => {
                        let base = self.rebase(&s, stale, latest)?;
                        if by == Role::Compactor {
                            s.seen.writer_reapplied = true;
                        }
                        let w = s.writer_mut(epoch)?;
                        w.manifest_version = base.version;
                        w.base_view = base.view;
                        w.base_tree = base.tree;
                    }
                }
            }
            Action::Close { epoch } => {
                s.closes += 1;
                s.writer_mut(epoch)?.closing = true;
            }
            Action::Crash { epoch } => {
                s.writer(epoch)?;
                s.crashes += 1;
                Self::stop(&mut s, epoch);
            }
            Action::Recover => {
                if s.writers.iter().any(|w| w.phase == Phase::Active) {
                    s.zombies += 1;
                }
                s.recoveries += 1;
                // Claim the epoch: create the next version. A closed writer
                // needs no fence (`after_clean_close`).
                let (version, latest) = s.store.latest_manifest();
                let clean_close = latest.view.writer_closed;
                let view = claim_epoch(&latest.view);
                let epoch = view.writer_epoch;
                let claimed =
                    ManifestVersion { view, tree: latest.tree.clone(), token: token(Role::Writer, epoch), created_at: s.now };
                let claimed_version = version + 1;
                self.insert_version(&mut s, claimed_version, claimed.clone());
                match self.walk(&s, &claimed.view, epoch, clean_close) {
                    Ok(plan) => {
                        let log = plan.wal_log(self.protocol, self.w());
                        let fences = plan.fences.clone();
                        let phase = Phase::Recovering { claimed_version, plan, clean_close };
                        let mut w = Writer::new(epoch, phase, log, claimed_version, &claimed);
                        w.fences = fences;
                        s.writers.push(w)
                    }
                    Err(error) => s.recovery = Some(RecoveryOutcome::Failed { epoch, error }),
                }
            }
            Action::Fence { epoch } => {
                let w = s.writer(epoch)?;
                let Phase::Recovering { claimed_version, plan, clean_close } = &w.phase else { return None };
                let (claimed_version, clean_close) = (*claimed_version, *clean_close);
                let plan = plan.clone();
                let view = w.base_view;
                let base_tree = w.base_tree.clone();
                // AlreadyExists: read it back. Ours (an earlier attempt of
                // this create landed): the fence is placed; another's: walk again.
                let conflict = plan.fence.and_then(|f| s.store.wals.get(&f.wal_id).map(|o| (f.wal_id, o.header.writer_epoch)));
                let decided = conflict.map(|(wal_id, existing)| {
                    (wal_id, existing, on_fence_conflict(self.protocol, resolve_create_conflict(self.protocol, owner(epoch), owner(existing))))
                });
                if let Some((wal_id, existing, FenceConflict::GiveUp)) = decided {
                    s.recovery = Some(RecoveryOutcome::GaveUp { epoch, wal_id, owner: existing });
                    Self::stop(&mut s, epoch);
                    return Some(s);
                }
                let placed = matches!(decided, Some((_, _, FenceConflict::Placed)));
                if let Some(fence) = plan.fence.filter(|_| !placed) {
                    if s.store.wals.contains_key(&fence.wal_id) {
                        // AlreadyExists, not ours: an older upload landed since the listing.
                        match self.walk(&s, &view, epoch, clean_close) {
                            Ok(plan) => {
                                let w = s.writer_mut(epoch)?;
                                w.log = plan.wal_log(self.protocol, self.w());
                                w.fences = plan.fences.clone();
                                w.phase = Phase::Recovering { claimed_version, plan, clean_close };
                            }
                            Err(error) => {
                                s.recovery = Some(RecoveryOutcome::Failed { epoch, error });
                                Self::stop(&mut s, epoch);
                            }
                        }
                        return Some(s);
                    }
                    let object = WalObject { header: fence.header, writes: Vec::new(), created_at: s.now };
                    s.store.wals.insert(fence.wal_id, object);
                } else if clean_close && plan.fence.is_none() {
                    s.seen.recovered_after_close_without_fence = true;
                }
                // Replay: the SSTs of the latest version, re-read now (the
                // claimed one may be superseded and its SSTs deleted since:
                // recovery is a reader, bound by the lease), then the chain.
                let _ = base_tree;
                let (latest_version, latest) = s.store.latest_manifest();
                let (latest_view, latest_tree) = (latest.view, latest.tree.clone());
                let mut writes = match s.tree_writes(&latest_tree) {
                    Ok(writes) => writes,
                    Err(sst) => {
                        s.recovery = Some(RecoveryOutcome::MissingSst { epoch, sst });
                        Self::stop(&mut s, epoch);
                        return Some(s);
                    }
                };
                let replayed: Vec<WriteId> = plan
                    .replay
                    .iter()
                    .flat_map(|id| s.store.wals.get(id).map(|o| o.writes.clone()).unwrap_or_default())
                    .collect();
                writes.extend(replayed.iter().copied());
                s.recovery = Some(RecoveryOutcome::Recovered { epoch, writes, replayed_wals: plan.replay.len() as u8 });
                let w = s.writer_mut(epoch)?;
                w.phase = Phase::Active;
                w.memtable = replayed;
                w.manifest_version = latest_version;
                w.base_view = latest_view;
                w.base_tree = latest_tree;
            }
            Action::ClaimCompactor => {
                s.compactor_claims += 1;
                let (version, latest) = s.store.latest_manifest();
                let view = claim_compactor_epoch(&latest.view);
                let epoch = view.compactor_epoch;
                let claimed =
                    ManifestVersion { view, tree: latest.tree.clone(), token: token(Role::Compactor, epoch), created_at: s.now };
                self.insert_version(&mut s, version + 1, claimed.clone());
                s.committed.compactor_epoch = s.committed.compactor_epoch.max(epoch);
                let base = Base { version: version + 1, view: claimed.view, tree: claimed.tree };
                s.compactors.push(Compactor { epoch, base, job: None, output_created_at: 0, next_sst: 0 });
            }
            Action::Compact { epoch } => {
                let (version, latest) = s.store.latest_manifest();
                let latest = latest.clone();
                if latest.view.compactor_epoch > epoch {
                    // Re-read shows a newer compactor: this one is a zombie.
                    Self::stop_compactor(&mut s, epoch);
                    return Some(s);
                }
                let writes = s.tree_writes(&latest.tree).ok()?;
                let now = s.now;
                let c = s.compactor_mut(epoch)?;
                let seq = c.next_sst;
                c.next_sst += 1;
                let out = SstId::Out(epoch, seq);
                let run_id: RunId = epoch * 16 + u64::from(seq);
                c.job = Some(Compaction {
                    compactor_epoch: epoch,
                    l0_inputs: latest.tree.l0.clone(),
                    run_inputs: latest.tree.runs.iter().map(|r| r.id).collect(),
                    output: SortedRun { id: run_id, ssts: vec![out] },
                });
                c.base = Base { version, view: latest.view, tree: latest.tree };
                c.output_created_at = now;
                s.store.ssts.insert(out, SstObject { writes, created_at: now });
            }
            Action::CompactCommit { epoch } => {
                let c = s.compactor(epoch)?.clone();
                let job = c.job.clone()?;
                if !job.output.ssts.iter().all(|o| self.recordable(&s, o, c.output_created_at)) {
                    // Too old to record: drop it (its output is garbage).
                    s.compactor_mut(epoch)?.job = None;
                    return Some(s);
                }
                let (view, tree) = match apply_compaction(&c.base.view, &c.base.tree, &job) {
                    Ok(next) => next,
                    Err(ManifestConflict::Fenced { .. }) => {
                        Self::stop_compactor(&mut s, epoch);
                        return Some(s);
                    }
                    Err(_) => {
                        s.compactor_mut(epoch)?.job = None;
                        return Some(s);
                    }
                };
                let candidate = ManifestVersion { view, tree, token: token(Role::Compactor, epoch), created_at: s.now };
                match self.try_create(&mut s, Role::Compactor, epoch, candidate.clone(), c.base.version + 1) {
                    Attempt::Applied(v) => {
                        let outputs: Vec<WriteId> = job
                            .output
                            .ssts
                            .iter()
                            .flat_map(|o| s.store.ssts.get(o).map(|x| x.writes.clone()).unwrap_or_default())
                            .collect();
                        s.committed.writes.extend(outputs);
                        for r in &job.run_inputs {
                            s.committed.runs.remove(r);
                        }
                        s.committed.runs.insert(job.output.id);
                        let c = s.compactor_mut(epoch)?;
                        c.base = Base { version: v, view: candidate.view, tree: candidate.tree };
                        c.job = None;
                    }
                    Attempt::Fenced => Self::stop_compactor(&mut s, epoch),
                    Attempt::Reapply { latest, .. } => {
                        let base = self.rebase(&s, (c.base.view, c.base.tree.clone()), latest)?;
                        s.compactor_mut(epoch)?.base = base;
                    }
                }
            }
            Action::ReaderOpen => {
                s.readers_opened += 1;
                let (version, latest) = s.store.latest_manifest();
                let ssts = latest.tree.ssts().copied().collect();
                // Like the engine's read-only open: walk the chain, never fence.
                let Ok(plan) = self.walk(&s, &latest.view, Epoch::MAX, false) else { return Some(s) };
                let wals = plan.replay.into_iter().collect();
                s.readers.insert(Reader { version, confirmed_at: s.now, ssts, wals });
            }
            Action::Tick => {
                s.now += 1;
                let (now, lease) = (s.now, self.bounds.min_age);
                s.readers.retain(|r| u16::from(now) < u16::from(r.confirmed_at) + u16::from(lease));
                s.leases.retain(|_, l| now < l.until);
            }
            Action::GcRun => {
                s.gc_runs += 1;
                self.gc_run(&mut s);
            }
        }
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
