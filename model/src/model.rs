//! The protocol model: actions with the spec's names, whose every ordering
//! decision is made by `tidemark::protocol`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use stateright::{Model, Property};
use tidemark::protocol::{
    claim_epoch, next_manifest, resolve_create_conflict, ChainWalk, CreateConflict, Epoch, ManifestView,
    ObjectOwner, Protocol, RecoveryError, RecoveryPlan, WalHeader, WalId, WalKind, WalLog,
};

use crate::properties;
use crate::state::*;

/// Bounds of the exploration. Every bound is at least 1 except `ambiguous`.
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
    /// Manifest versions written (bounds `WriteManifest` churn).
    pub manifests: u8,
}

impl Bounds {
    /// The default bounds: W = 2, one crash, one zombie, one ambiguous create.
    pub const DEFAULT: Bounds = Bounds { writes: 3, inflight: 2, crashes: 1, zombies: 1, ambiguous: 1, manifests: 3 };
    /// A deeper set: W = 3, two crashes, an ambiguous create (8 M states, ~90 s, 4 GB).
    pub const DEEP: Bounds = Bounds { writes: 3, inflight: 3, crashes: 2, zombies: 1, ambiguous: 1, manifests: 3 };
}

/// The model: a protocol variant under bounds.
#[derive(Clone, Debug)]
pub struct TidemarkModel {
    pub protocol: Protocol,
    pub bounds: Bounds,
    /// How far a fence moves the chain (`inflight_cap` of `ChainWalk`): W in
    /// the checked model, `MAX_INFLIGHT_WAL_UPLOADS` when replaying engine traces.
    pub fence_jump: u64,
}

/// One step, named as in the spec. Ids and epochs identify the step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Put { epoch: Epoch },
    FreezeWal { epoch: Epoch },
    UploadWal { epoch: Epoch, wal_id: WalId },
    /// The upload lands. With `ambiguous`, the create succeeded but reports
    /// `AlreadyExists`, and the writer reads the object back.
    WalDurable { epoch: Epoch, wal_id: WalId, ambiguous: bool },
    /// A crashed writer's upload that never lands.
    UploadLost { epoch: Epoch, wal_id: WalId },
    Ack { epoch: Epoch },
    FreezeMemtable { epoch: Epoch },
    FlushL0 { epoch: Epoch },
    WriteManifest { epoch: Epoch },
    Crash { epoch: Epoch },
    Recover,
    Fence { epoch: Epoch },
}

impl Action {
    /// The spec's action name.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Put { .. } => "Put",
            Action::FreezeWal { .. } => "FreezeWal",
            Action::UploadWal { .. } => "UploadWal",
            Action::WalDurable { .. } => "WalDurable",
            Action::UploadLost { .. } => "UploadLost",
            Action::Ack { .. } => "Ack",
            Action::FreezeMemtable { .. } => "FreezeMemtable",
            Action::FlushL0 { .. } => "FlushL0",
            Action::WriteManifest { .. } => "WriteManifest",
            Action::Crash { .. } => "Crash",
            Action::Recover => "Recover",
            Action::Fence { .. } => "Fence",
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
            | Action::Crash { epoch }
            | Action::Fence { epoch } => write!(f, "{} epoch={epoch}", self.name()),
            Action::UploadWal { epoch, wal_id } | Action::UploadLost { epoch, wal_id } => {
                write!(f, "{} wal={wal_id} epoch={epoch}", self.name())
            }
            Action::WalDurable { epoch, wal_id, ambiguous } => {
                write!(f, "WalDurable wal={wal_id} epoch={epoch}{}", if *ambiguous { " (ambiguous)" } else { "" })
            }
            Action::Recover => f.write_str("Recover"),
        }
    }
}

fn owner(epoch: Epoch) -> ObjectOwner {
    // One writer per epoch writes at most one object per WAL id, so the
    // (epoch, id) pair identifies an object; the token is not needed here.
    ObjectOwner { writer_epoch: epoch, token: 0 }
}

impl TidemarkModel {
    pub fn new(protocol: Protocol, bounds: Bounds) -> Self {
        Self { protocol, bounds, fence_jump: u64::from(bounds.inflight) }
    }

    fn w(&self) -> u64 {
        u64::from(self.bounds.inflight)
    }

    /// A fresh database: manifest version 1 and the writer of epoch 1.
    pub fn initial_state(&self) -> State {
        let view = ManifestView { writer_epoch: 1, ..ManifestView::default() };
        let writer = Writer::new(1, Phase::Active, WalLog::new(self.protocol, 1, 1, self.w()), 1);
        State {
            store: Store {
                wals: BTreeMap::new(),
                ssts: BTreeMap::new(),
                manifests: BTreeMap::from([(1, ManifestVersion { view, l0: Vec::new() })]),
            },
            uploads: BTreeSet::new(),
            writers: vec![writer],
            issued: BTreeMap::new(),
            acked: BTreeMap::new(),
            next_write: 0,
            recovery: None,
            crashes: 0,
            recoveries: 0,
            zombies: 0,
            ambiguous: 0,
            seen: Seen::default(),
        }
    }

    /// The manifest a writer would write now, if it has anything to record.
    fn manifest_update(&self, state: &State, w: &Writer) -> Option<ManifestVersion> {
        let current = state.store.manifests.get(&w.manifest_version)?;
        let flushed_through = w.flushed.iter().map(|(_, last)| *last).max();
        let view = next_manifest(&current.view, &w.log, flushed_through);
        let mut l0 = current.l0.clone();
        l0.extend(w.flushed.iter().map(|(id, _)| *id));
        let changed = view != current.view || l0 != current.l0;
        changed.then_some(ManifestVersion { view, l0 })
    }

    /// `Recover`'s list-and-walk (and `Fence`'s re-list): the protocol's chain walk.
    fn walk(&self, state: &State, view: &ManifestView, epoch: Epoch) -> Result<RecoveryPlan, RecoveryError> {
        let mut walk = ChainWalk::new(self.protocol, view, epoch, state.store.wals.keys().copied(), self.fence_jump);
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
            let epoch = w.epoch;
            match &w.phase {
                Phase::Recovering { .. } => actions.push(Action::Fence { epoch }),
                Phase::Active => {
                    if state.next_write < b.writes {
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
                    if w.pending.iter().any(|(_, wal)| w.log.may_ack(*wal)) {
                        actions.push(Action::Ack { epoch });
                    }
                    if w.buffer.is_empty() && !w.memtable.is_empty() {
                        actions.push(Action::FreezeMemtable { epoch });
                    }
                    if !w.imm.is_empty() {
                        actions.push(Action::FlushL0 { epoch });
                    }
                    if (state.store.manifests.len() as u8) < b.manifests && self.manifest_update(state, w).is_some() {
                        actions.push(Action::WriteManifest { epoch });
                    }
                }
            }
            if state.crashes < b.crashes {
                actions.push(Action::Crash { epoch });
            }
        }
        for u in &state.uploads {
            actions.push(Action::WalDurable { epoch: u.owner, wal_id: u.wal_id, ambiguous: false });
            let live = state.is_alive(u.owner);
            if live && state.ambiguous < b.ambiguous && !state.store.wals.contains_key(&u.wal_id) {
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
                s.uploads.insert(Upload { wal_id, owner: epoch, object: WalObject { header, writes } });
            }
            Action::WalDurable { epoch, wal_id, ambiguous } => {
                let upload = s.uploads.iter().find(|u| u.wal_id == wal_id && u.owner == epoch)?.clone();
                s.uploads.remove(&upload);
                let landed = match s.store.wals.get(&wal_id) {
                    None => {
                        s.store.wals.insert(wal_id, upload.object.clone());
                        !ambiguous
                    }
                    Some(_) => false,
                };
                if ambiguous {
                    s.ambiguous += 1;
                }
                if s.is_alive(epoch) {
                    let outcome = if landed {
                        CreateConflict::Ours
                    } else {
                        // AlreadyExists: read the object back and decide.
                        let existing = s.store.wals.get(&wal_id)?.header.writer_epoch;
                        resolve_create_conflict(owner(epoch), owner(existing))
                    };
                    match outcome {
                        CreateConflict::Ours => {
                            if ambiguous {
                                s.seen.ambiguous_create_resolved = true;
                            }
                            s.writer_mut(epoch)?.log.on_wal_durable(wal_id);
                        }
                        CreateConflict::Fenced { .. } => {
                            s.seen.zombie_upload_rejected = true;
                            Self::stop(&mut s, epoch);
                        }
                        CreateConflict::TakenByOther { .. } => Self::stop(&mut s, epoch),
                    }
                }
            }
            Action::UploadLost { epoch, wal_id } => {
                let upload = s.uploads.iter().find(|u| u.wal_id == wal_id && u.owner == epoch)?.clone();
                s.uploads.remove(&upload);
            }
            Action::Ack { epoch } => {
                let claimed_at_ack = s.claimed_epoch();
                let w = s.writer_mut(epoch)?;
                let (ackable, pending): (Vec<_>, Vec<_>) = w.pending.iter().partition(|(_, wal)| w.log.may_ack(*wal));
                w.pending = pending;
                for (id, _) in ackable {
                    s.acked.insert(id, AckInfo { epoch, claimed_at_ack });
                }
            }
            Action::FreezeMemtable { epoch } => {
                let w = s.writer_mut(epoch)?;
                // The buffer is empty, so every memtable write is in a frozen WAL.
                let last_wal_id = w.log.next_wal_id() - 1;
                let writes = std::mem::take(&mut w.memtable);
                w.imm.push(ImmMemtable { writes, last_wal_id });
            }
            Action::FlushL0 { epoch } => {
                let w = s.writer_mut(epoch)?;
                let imm = w.imm.remove(0);
                let id = (epoch, w.next_sst);
                w.next_sst += 1;
                w.flushed.push((id, imm.last_wal_id));
                s.store.ssts.insert(id, imm.writes);
            }
            Action::WriteManifest { epoch } => {
                let w = s.writer(epoch)?;
                let update = self.manifest_update(&s, w)?;
                let version = w.manifest_version + 1;
                let uploading = s.uploads.iter().any(|u| u.owner == epoch) || !w.frozen.is_empty();
                match s.store.manifests.get(&version) {
                    None => {
                        s.store.manifests.insert(version, update);
                        let w = s.writer_mut(epoch)?;
                        w.manifest_version = version;
                        w.flushed.clear();
                        if uploading {
                            s.seen.manifest_while_uploading = true;
                        }
                    }
                    Some(existing) => match resolve_create_conflict(owner(epoch), owner(existing.view.writer_epoch)) {
                        CreateConflict::Ours => return None,
                        _ => Self::stop(&mut s, epoch),
                    },
                }
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
                // Claim the epoch: create the next manifest version.
                let (version, latest) = s.store.latest_manifest();
                let claimed = ManifestVersion { view: claim_epoch(&latest.view), l0: latest.l0.clone() };
                let epoch = claimed.view.writer_epoch;
                let claimed_version = version + 1;
                s.store.manifests.insert(claimed_version, claimed.clone());
                match self.walk(&s, &claimed.view, epoch) {
                    Ok(plan) => {
                        let log = plan.wal_log(self.protocol, self.w());
                        s.writers.push(Writer::new(epoch, Phase::Recovering { claimed_version, plan }, log, claimed_version))
                    }
                    Err(error) => s.recovery = Some(RecoveryOutcome::Failed { epoch, error }),
                }
            }
            Action::Fence { epoch } => {
                let w = s.writer(epoch)?;
                let Phase::Recovering { claimed_version, plan } = &w.phase else { return None };
                let claimed_version = *claimed_version;
                let plan = plan.clone();
                if let Some(fence) = plan.fence {
                    if s.store.wals.contains_key(&fence.wal_id) {
                        // AlreadyExists: an older upload landed since the listing.
                        let view = s.store.manifests.get(&claimed_version)?.view;
                        match self.walk(&s, &view, epoch) {
                            Ok(plan) => {
                                let w = s.writer_mut(epoch)?;
                                w.log = plan.wal_log(self.protocol, self.w());
                                w.phase = Phase::Recovering { claimed_version, plan };
                            }
                            Err(error) => {
                                s.recovery = Some(RecoveryOutcome::Failed { epoch, error });
                                Self::stop(&mut s, epoch);
                            }
                        }
                        return Some(s);
                    }
                    s.store.wals.insert(fence.wal_id, WalObject { header: fence.header, writes: Vec::new() });
                }
                // Replay: the manifest's SSTs, then the chain's WALs in order.
                let l0 = &s.store.manifests.get(&claimed_version)?.l0;
                let mut writes: Vec<WriteId> =
                    l0.iter().flat_map(|id| s.store.ssts.get(id).cloned().unwrap_or_default()).collect();
                let replayed: Vec<WriteId> = plan
                    .replay
                    .iter()
                    .flat_map(|id| s.store.wals.get(id).map(|o| o.writes.clone()).unwrap_or_default())
                    .collect();
                writes.extend(replayed.iter().copied());
                s.recovery = Some(RecoveryOutcome::Recovered {
                    epoch,
                    writes,
                    replayed_wals: plan.replay.len() as u8,
                });
                let w = s.writer_mut(epoch)?;
                w.phase = Phase::Active;
                w.memtable = replayed;
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::all(self.bounds.ambiguous > 0)
    }

    fn within_boundary(&self, state: &State) -> bool {
        state.next_write <= self.bounds.writes
    }

    fn format_action(&self, action: &Action) -> String {
        action.to_string()
    }
}
