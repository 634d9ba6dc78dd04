//! Trace conformance: replays a recorded engine trace through the Stateright
//! model's transition function and fails at the first step the model does
//! not allow, or whose outcome differs from what the engine reported.
//!
//! The model decides with the same protocol core, so a mismatch means the
//! engine took a step outside the checked protocol (or recorded it wrongly).

mod lifecycle;

use std::collections::BTreeMap;
use std::fmt;

use stateright::Model;
use tidemark::internals::protocol::{Epoch, Follower as FollowCursor, ManifestView, Protocol, Role, WalId, MAX_INFLIGHT_WAL_UPLOADS};
use tidemark::internals::trace::{TraceEvent, TraceStep};
use tidemark_model::model::token;
use tidemark_model::state::{ManifestVersion, Phase, State, Writer};
use tidemark_model::{Action, Bounds, TidemarkModel};

/// The first step the model rejects.
#[derive(Clone, Debug)]
pub struct Nonconformance {
    pub index: usize,
    pub step: TraceStep,
    pub reason: String,
    /// Set when the step is one the replay cannot judge yet (not a
    /// nonconformance): the trace is then counted as skipped, for this reason.
    pub unreplayable: Option<&'static str>,
}

/// Why a trace with ambiguous manifest creates may not replay: the engine
/// records no `WriteManifest` for a manifest create that landed but whose
/// outcome it never learnt (the create or its read-back failed, and the
/// flush was retried), so a later `Fenced`, or the retry's `WriteManifest`
/// one version higher, finds the model without that manifest.
pub const UNREPLAYABLE_AMBIGUOUS_MANIFEST: &str =
    "a step after an ambiguous manifest create the engine does not record";

/// Why a trace may not replay yet: a step the model rejects in a trace with
/// compaction, GC, checkpoint or follower steps. The replay places those
/// steps on the model's store (`lifecycle`) and judges GC's plans and
/// followers' reads there, but some interleavings of them with recoveries
/// and unrecorded creates it cannot place yet; such a trace is counted.
pub const UNREPLAYABLE_LIFECYCLE: &str = "a step the replay cannot place yet among compaction, GC, checkpoint and follower steps";

/// Why a trace may not replay: a recovery crashed after its fence create
/// landed but before it recorded `Fence`, and a listing later showed that
/// WAL id. A listing does not say whose object it is, so the model cannot
/// tell the dead recovery's fence from an upload in flight of the same id.
pub const UNREPLAYABLE_UNRECORDED_FENCE: &str =
    "a fence after a recovery that crashed before recording its own fence";

impl fmt::Display for Nonconformance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {} (epoch {} {:?}): {}", self.index, self.step.writer_epoch, self.step.event, self.reason)
    }
}

/// Bounds wide enough for a harness schedule. Compactor, GC, checkpoint and
/// follower steps are replayed on the model's store (`lifecycle`), not as
/// the model's own actions, so their bounds stay 0.
const BOUNDS: Bounds = Bounds {
    writes: u16::MAX,
    inflight: 4,
    crashes: 250,
    zombies: 250,
    ambiguous: 250,
    hedges: 0,
    manifests: 250,
    compactors: 0,
    gcs: 0,
    readers: 0,
    ticks: 0,
    closes: 250,
    min_age: 1,
};

struct Checker {
    model: TidemarkModel,
    state: State,
    /// Epochs whose uploads the model landed before the engine heard back
    /// (seen in another process's listing): their watermark may lead.
    landed_early: std::collections::BTreeSet<Epoch>,
    /// Steps already replayed ahead of their place (see `pull_forward`).
    done: std::collections::BTreeSet<usize>,
    /// WAL ids whose create landed and reported `AlreadyExists` (the fault
    /// store's record): their `WalDurable` is the model's ambiguous one.
    ambiguous: std::collections::BTreeSet<WalId>,
    /// Manifest versions whose create landed and reported `AlreadyExists`,
    /// with the writer epoch of the object that landed.
    ambiguous_manifests: BTreeMap<u64, Epoch>,
    /// `WriteManifest`s replayed before their writer recorded them (an
    /// ambiguous create another process saw first): skipped when recorded.
    pre_applied: std::collections::BTreeSet<(Epoch, u64)>,
    /// Each follower's cursor, as the protocol moves it on the model's store.
    followers: BTreeMap<u128, FollowCursor>,
    /// Placements the trace does not pin down: versions no step recorded
    /// (see `versions_before`), creates in slots GC emptied (a version
    /// number read before may name other contents now).
    uncertain: u32,
    /// Checkpoints whose create the trace recorded.
    created: std::collections::BTreeSet<u128>,
    /// Versions GC deleted, for the followers that read them first: every
    /// object a slot held, oldest first (GC may empty a slot again after a
    /// reopened create).
    deleted: BTreeMap<u64, Vec<ManifestVersion>>,
    /// Set when the failing step is a lifecycle verdict (a GC plan, a
    /// follower's WALs, a fenced compactor's commit), not a placement.
    verdict: bool,
    /// `CONFORMANCE_DEBUG` is set: every replayed step and the model's
    /// latest version after it go to stderr.
    debug: bool,
}

/// What the fault stores report as ambiguous: creates that landed and
/// reported `AlreadyExists` (the trace does not say; the store knows).
#[derive(Clone, Debug, Default)]
pub struct Ambiguous {
    pub wals: std::collections::BTreeSet<WalId>,
    /// Version -> the writer epoch of the manifest object that landed.
    pub manifests: BTreeMap<u64, Epoch>,
}

impl Checker {
    /// The model state before the engine's first open: no writer, and the
    /// empty manifest (version 0) the engine assumes when none exists. The
    /// first open's `Recover` claims version 1 from it, as in the engine.
    fn new(protocol: Protocol, max_inflight: u64) -> Self {
        let mut model = TidemarkModel::new(protocol, Bounds { inflight: max_inflight as u8, ..BOUNDS });
        model.fence_jump = MAX_INFLIGHT_WAL_UPLOADS;
        let mut state = model.initial_state();
        state.writers.clear();
        state.store.manifests = BTreeMap::from([(
            0,
            ManifestVersion::new(ManifestView::default(), 0),
        )]);
        Checker { model, state, landed_early: Default::default(), done: Default::default(), ambiguous: Default::default(), ambiguous_manifests: Default::default(), pre_applied: Default::default(), followers: Default::default(), uncertain: 0, created: Default::default(), deleted: Default::default(), verdict: false, debug: false }
    }

    fn apply(&mut self, action: Action) -> Result<(), String> {
        let mut enabled = Vec::new();
        self.model.actions(&self.state, &mut enabled);
        if !enabled.contains(&action) {
            let writers: Vec<String> = self
                .state
                .writers
                .iter()
                .map(|w| {
                    format!(
                        "epoch {} ({}) next_wal_id={} durable_wal_id={} frozen={:?}",
                        w.epoch,
                        if w.phase == Phase::Active { "active" } else { "recovering" },
                        w.log.next_wal_id(),
                        w.log.durable_wal_id(),
                        w.frozen.keys().collect::<Vec<_>>()
                    )
                })
                .collect();
            return Err(format!("the model does not allow {action} here (model writers: {})", writers.join("; ")));
        }
        match self.model.next_state(&self.state, action.clone()) {
            Some(next) => {
                self.state = next;
                Ok(())
            }
            None => Err(format!("{action} changes nothing in the model")),
        }
    }

    /// The writer's `WriteManifest`: the model's, or, when the model's
    /// writer has nothing new to record, the engine's pin refresh.
    fn write_manifest(&mut self, epoch: Epoch) -> Result<(), String> {
        let mut enabled = Vec::new();
        self.model.actions(&self.state, &mut enabled);
        if enabled.contains(&Action::WriteManifest { epoch }) || self.state.writer(epoch).is_none_or(|w| !w.flushed.is_empty() || w.closing) {
            return self.apply(Action::WriteManifest { epoch });
        }
        let mut next = self.state.clone();
        self.model.refresh_pin(&mut next, epoch).ok_or_else(|| format!("the model's writer {epoch} cannot refresh its pin"))?;
        self.state = next;
        Ok(())
    }

    /// A writer's create below the model's latest version, in a slot GC
    /// emptied: the engine's writer built on the version before it (one
    /// its own process's compactor created, which it adopts; the model's
    /// writer does not). The model's writer builds on it too, and the
    /// protocol decides the outcome (`SlotReopened`, then a re-apply).
    fn reopened_base(&mut self, epoch: Epoch, version: u64) {
        let latest = self.state.store.latest_manifest().0;
        if version > latest || self.state.store.manifests.contains_key(&version) {
            return;
        }
        self.uncertain += 1;
        let base = version - 1;
        let Some(m) = self.state.store.manifests.get(&base).or_else(|| self.deleted.get(&base).and_then(|d| d.last())).cloned() else { return };
        if let Some(w) = self.state.writer_mut(epoch) {
            if w.manifest_version < base {
                w.manifest_version = base;
                w.base_view = ManifestView { version: base, ..m.view };
                w.base_tree = m.tree;
            }
        }
    }

    /// The model's next manifest version landed ambiguously: replays it as
    /// the `WriteManifest` of the first of `epochs` the model allows it for.
    fn land_ambiguous_manifest(&mut self, epochs: &[Epoch]) -> bool {
        let next = self.state.store.latest_manifest().0 + 1;
        let Some(&owner) = self.ambiguous_manifests.get(&next) else { return false };
        for &epoch in epochs.iter().rev().filter(|&&e| e == owner) {
            let before = self.state.clone();
            // A write on a base other versions superseded is taken first: the
            // model's writer re-reads and writes again, as the engine's
            // commit loop does.
            for _ in 0..8 {
                let written = self.state.store.latest_manifest().0 >= next;
                if written || !self.state.is_alive(epoch) || self.apply(Action::WriteManifest { epoch }).is_err() {
                    break;
                }
            }
            if self.state.store.latest_manifest().0 == next && self.state.is_alive(epoch) {
                self.pre_applied.insert((epoch, next));
                return true;
            }
            self.state = before;
        }
        false
    }

    /// The model's writers that claimed and have not fenced yet.
    fn recovering(&self) -> Vec<Epoch> {
        let writers = self.state.writers.iter();
        writers.filter(|w| matches!(w.phase, Phase::Recovering { .. })).map(|w| w.epoch).collect()
    }

    fn writer(&self, epoch: Epoch) -> Result<&Writer, String> {
        self.state.writer(epoch).ok_or_else(|| format!("the model has no live writer of epoch {epoch}"))
    }

    /// Uploads in flight whose objects the engine's store listing shows
    /// land first (the model lets an upload land at any moment).
    fn land_listed(&mut self, listed: &[WalId]) -> Result<(), String> {
        let landed: Vec<(Epoch, WalId)> = self
            .state
            .uploads
            .iter()
            .filter(|u| listed.contains(&u.wal_id) && !self.state.store.wals.contains_key(&u.wal_id))
            .map(|u| (u.owner, u.wal_id))
            .collect();
        for (epoch, wal_id) in landed {
            self.landed_early.insert(epoch);
            self.apply(Action::WalDurable { epoch, wal_id, ambiguous: false })?;
        }
        Ok(())
    }

    /// Step `i` observed a store effect of process `by` whose own event was
    /// recorded later (each process records an action after its store call
    /// returns). Replays `by`'s steps after `i`, up to and including the
    /// first that `is_effect`, before step `i`; they are skipped later.
    fn pull_forward(&mut self, steps: &[TraceStep], i: usize, by: Epoch, is_effect: impl Fn(&TraceEvent) -> bool) -> Result<(), String> {
        let Some(j) = (i + 1..steps.len()).find(|&j| steps[j].writer_epoch == by && is_effect(&steps[j].event) && !self.done.contains(&j)) else {
            return Ok(()); // Nothing to pull: the step is judged as it stands.
        };
        for k in i + 1..=j {
            if steps[k].writer_epoch == by && self.done.insert(k) {
                self.step(steps, k).map_err(|e| format!("{e} (step {k}, pulled before step {i})"))?;
            }
        }
        Ok(())
    }

    /// `Fenced { by }` of `epoch` at step `i`: its manifest write lost to `by`.
    fn fenced(&mut self, steps: &[TraceStep], i: usize, epoch: Epoch, by: Epoch) -> Result<(), String> {
        let by = &by;
        let next_version = self.writer(epoch)?.manifest_version + 1;
        if !self.state.store.manifests.contains_key(&next_version) {
            // The version that fenced us was created by `by`, which
            // records it (its claim or its manifest write) afterwards.
            let creates_manifest = |e: &TraceEvent| matches!(e, TraceEvent::Recover { .. } | TraceEvent::WriteManifest { .. });
            self.pull_forward(steps, i, *by, creates_manifest)?;
        }
        if !self.state.store.manifests.values().any(|m| m.view.writer_epoch >= *by) {
            // The claim came after a compactor's or client's version.
            let creates_manifest = |e: &TraceEvent| matches!(e, TraceEvent::Recover { .. });
            self.pull_forward(steps, i, *by, creates_manifest)?;
        }
        if self.fenced_after_own_create(steps, i, epoch, *by)? {
            return Ok(());
        }
        self.apply(Action::WriteManifest { epoch })?;
        // Versions of other roles first re-apply the edit; the claim fences.
        for _ in 0..8 {
            if !self.state.is_alive(epoch) {
                break;
            }
            self.apply(Action::WriteManifest { epoch })?;
        }
        match self.state.is_alive(epoch) {
            true => Err("the model's manifest write succeeded where the engine's was fenced".into()),
            false => Ok(()),
        }
    }

    /// `on_manifest_created`: after its own manifest create landed (its
    /// `WriteManifest` is the writer's previous step), the writer listed a
    /// newer version, claimed by `by`, and re-applying its edit on it found
    /// itself fenced (I5). The model's `WriteManifest` folds the create and
    /// that check into one step, so when the writer has nothing left to
    /// record the model has no step to take: the newer claim is in the
    /// model's store, and the engine's writer stops, acknowledging nothing.
    fn fenced_after_own_create(&self, steps: &[TraceStep], i: usize, epoch: Epoch, by: Epoch) -> Result<bool, String> {
        // The WAL path runs beside the manifest path: its steps in between
        // (a `WalDurable` that landed meanwhile, `Put`s) do not count.
        let wal_path = |e: &TraceEvent| {
            matches!(e, TraceEvent::Put { .. } | TraceEvent::FreezeWal { .. } | TraceEvent::UploadWal { .. } | TraceEvent::WalDurable { .. } | TraceEvent::Ack { .. })
        };
        let previous = steps[..i].iter().rev().find(|s| s.writer_epoch == epoch && !wal_path(&s.event)).map(|s| &s.event);
        if !matches!(previous, Some(TraceEvent::WriteManifest { .. })) {
            return Ok(false);
        }
        let own = self.writer(epoch)?.manifest_version;
        let (latest, m) = self.state.store.latest_manifest();
        let mut enabled = Vec::new();
        self.model.actions(&self.state, &mut enabled);
        Ok(latest > own && m.view.writer_epoch == by && !enabled.contains(&Action::WriteManifest { epoch }))
    }

    fn step(&mut self, steps: &[TraceStep], i: usize) -> Result<(), String> {
        let r = self.step_inner(steps, i);
        if self.debug {
            let (v, m) = self.state.store.latest_manifest();
            let (w, c) = (m.view.writer_epoch, m.view.compactor_epoch);
            eprintln!("conformance: step {i} {:?} -> model latest version {v} (writer {w}, compactor {c}): {r:?}", steps[i].event);
        }
        r
    }

    fn step_inner(&mut self, steps: &[TraceStep], i: usize) -> Result<(), String> {
        let epoch = steps[i].writer_epoch;
        match &steps[i].event {
            TraceEvent::Put { wal_id } => {
                let next = self.writer(epoch)?.log.next_wal_id();
                if next != *wal_id {
                    return Err(format!("the engine put into wal {wal_id}, the model's buffer is wal {next}"));
                }
                self.apply(Action::Put { epoch })
            }
            TraceEvent::FreezeWal { wal_id } => {
                let next = self.writer(epoch)?.log.next_wal_id();
                if next != *wal_id {
                    return Err(format!("the engine froze wal {wal_id}, the model would freeze {next}"));
                }
                self.apply(Action::FreezeWal { epoch })
            }
            TraceEvent::UploadWal { wal_id } => self.apply(Action::UploadWal { epoch, wal_id: *wal_id }),
            TraceEvent::WalDurable { wal_id, durable_wal_id } => {
                let in_flight = self.state.uploads.iter().any(|u| u.owner == epoch && u.wal_id == *wal_id);
                if !self.state.is_alive(epoch) {
                    // The model stopped this writer (fenced); its upload still lands.
                    let landed = self.state.store.wals.get(wal_id).is_some_and(|o| o.header.writer_epoch == epoch);
                    return match (in_flight, landed) {
                        (true, _) => self.apply(Action::WalDurable { epoch, wal_id: *wal_id, ambiguous: false }),
                        (false, true) => Ok(()),
                        (false, false) => Err(format!("stopped epoch {epoch} reported wal {wal_id}, which it never uploaded")),
                    };
                }
                let landed_ours = self.state.store.wals.get(wal_id).is_some_and(|o| o.header.writer_epoch == epoch);
                if !(in_flight || landed_ours && self.landed_early.contains(&epoch)) {
                    return Err(format!("wal {wal_id} was never uploaded by epoch {epoch} in the model"));
                }
                if in_flight {
                    let ambiguous = self.ambiguous.contains(wal_id);
                    self.apply(Action::WalDurable { epoch, wal_id: *wal_id, ambiguous })?;
                }
                let model = self.writer(epoch)?.log.durable_wal_id();
                // Equal, unless the model already landed uploads this writer
                // has not heard about yet; never ahead of the model.
                let agrees = match self.landed_early.contains(&epoch) {
                    true => *durable_wal_id <= model,
                    false => *durable_wal_id == model,
                };
                if !agrees {
                    return Err(format!("durable_wal_id: engine {durable_wal_id}, model {model}"));
                }
                Ok(())
            }
            TraceEvent::WalRejected { wal_id, held_by } => {
                if !self.state.store.wals.contains_key(wal_id) {
                    // The holder's fence landed, but it records `Fence` only
                    // after its create returns: that step comes first.
                    self.pull_forward(steps, i, *held_by, |e| matches!(e, TraceEvent::Fence { .. }))?;
                    // No `Fence` to pull: the holder crashed between its
                    // fence landing and recording it, so the model never
                    // learns where that fence is.
                    if !self.state.store.wals.contains_key(wal_id) && died_before_fence(steps, *held_by) {
                        return Err(UNREPLAYABLE_UNRECORDED_FENCE.to_string());
                    }
                }
                // Stopped or not, the model lands this upload where the
                // holder's object already is: it must be rejected. An
                // ambiguous create of our own that landed is rejected only
                // by a mutant (`exists-is-fenced`); the model decides.
                let ambiguous = *held_by == epoch && self.ambiguous.contains(wal_id) && !self.state.store.wals.contains_key(wal_id);
                self.apply(Action::WalDurable { epoch, wal_id: *wal_id, ambiguous })?;
                match self.state.store.wals.get(wal_id).map(|o| o.header.writer_epoch) {
                    Some(owner) if owner == *held_by => Ok(()),
                    owner => Err(format!("the engine found wal {wal_id} held by epoch {held_by}, the model by {owner:?}")),
                }
            }
            TraceEvent::Ack { wal_id } => {
                if !self.writer(epoch)?.log.may_ack(*wal_id) {
                    return Err(format!("acknowledged a write in wal {wal_id} the model's watermark does not cover"));
                }
                if self.writer(epoch)?.pending.iter().any(|(_, w)| self.writer(epoch).is_ok_and(|x| x.log.may_ack(*w))) {
                    self.apply(Action::Ack { epoch })?;
                }
                Ok(())
            }
            TraceEvent::FreezeMemtable { last_wal_id } => {
                self.apply(Action::FreezeMemtable { epoch })?;
                let model = self.writer(epoch)?.imm.last().map_or(0, |m| m.last_wal_id);
                if model != *last_wal_id {
                    return Err(format!("memtable last_wal_id: engine {last_wal_id}, model {model}"));
                }
                Ok(())
            }
            // A writer the model stopped (its WAL id was taken by a fence) has
            // not heard yet: its L0 SST lands under its own name (see
            // `Layout::sst`) and no manifest can list it, since its next
            // manifest write must be `Fenced` (checked below).
            TraceEvent::FlushL0 { .. } if !self.state.is_alive(epoch) => Ok(()),
            // A flush whose SST or manifest write failed for good (a store
            // error after retries) is tried again, and recorded again for the
            // same memtable: the versions its writer creates in between do
            // not hold it, so the model flushes at the last attempt.
            TraceEvent::FlushL0 { last_wal_id, .. } if flushed_again(steps, i, *last_wal_id) => Ok(()),
            TraceEvent::FlushL0 { .. } => self.apply(Action::FlushL0 { epoch }),
            TraceEvent::WriteManifest { version, .. } if self.pre_applied.remove(&(epoch, *version)) => Ok(()),
            // A writer the model has fenced (its upload was rejected) whose
            // write landed in a slot GC emptied: the engine's writer finds
            // the newer version above it and learns it is fenced. The slot
            // holds an object again; what it holds no one adopts.
            TraceEvent::WriteManifest { version, .. } if !self.state.is_alive(epoch) && lifecycle::recreates(steps, i) => {
                let m = self.deleted.get(version).and_then(|d| d.last()).cloned().ok_or_else(|| format!("version {version} was never deleted"))?;
                self.insert_version(*version, m.view, m.tree, m.token)
            }
            TraceEvent::WriteManifest { version, wal_id_last_seen, replay_after_wal_id, pin } => {
                self.versions_before(steps, i, *version, false)?;
                if !self.ambiguous_manifests.is_empty() && *version > self.state.store.latest_manifest().0 + 1 {
                    return Err(UNREPLAYABLE_AMBIGUOUS_MANIFEST.to_string());
                }
                self.reopened_base(epoch, *version);
                let before: std::collections::BTreeSet<u64> = self.state.store.manifests.keys().copied().collect();
                self.write_manifest(epoch)?;
                // A compactor's or client's version took the slot: the
                // model's writer re-applies its edit on it and writes again,
                // as the engine's commit path does.
                for _ in 0..8 {
                    if self.state.store.latest_manifest().0 >= *version || !self.state.is_alive(epoch) {
                        break;
                    }
                    self.write_manifest(epoch)?;
                }
                // The model's writer, on a base older than the engine's (which
                // adopts its own process's compactor versions), may create in a
                // slot GC emptied that the engine's never touched: not in the store.
                let stray: Vec<u64> =
                    self.state.store.manifests.keys().copied().filter(|v| *v != *version && *v < *version && !before.contains(v)).collect();
                for v in stray {
                    self.state.store.manifests.remove(&v);
                }
                // A create in a slot GC had emptied below the latest version
                // (`SlotReopened`) lands there; the writer then re-applies.
                let (v, m) = match self.state.store.manifests.get(version) {
                    Some(m) if m.token == token(Role::Writer, epoch) => (*version, m),
                    _ => self.state.store.latest_manifest(),
                };
                let engine = (*version, *wal_id_last_seen, *replay_after_wal_id);
                let model = (v, m.view.wal_id_last_seen, m.view.replay_after_wal_id);
                // The engine decides `wal_id_last_seen` (under the commit
                // lock) before its create, and records the step after it
                // returns: a `WalDurable` recorded in between moved the
                // model's watermark but not the manifest's. An older durable
                // watermark is still durable (I1); a newer one never is.
                let lagging = engine.0 == model.0 && engine.2 == model.2 && engine.1 <= model.1;
                if engine != model && !lagging {
                    return Err(format!("manifest (version, wal_id_last_seen, replay_after_wal_id): engine {engine:?}, model {model:?}"));
                }
                if let Some(m) = self.state.store.manifests.get_mut(version) {
                    m.view.wal_id_last_seen = *wal_id_last_seen;
                }
                self.writer_pin(epoch, *version, *pin)
            }
            TraceEvent::Fenced { .. } if !self.state.is_alive(epoch) => Ok(()),
            TraceEvent::Fenced { by } => {
                let judged = self.fenced(steps, i, epoch, *by);
                match judged {
                    Err(_) if !self.ambiguous_manifests.is_empty() => Err(UNREPLAYABLE_AMBIGUOUS_MANIFEST.to_string()),
                    judged => judged,
                }
            }
            TraceEvent::Close => self.apply(Action::Close { epoch }),
            TraceEvent::Recover { version } => {
                // Landings the recovery's (final) listing saw happened before it.
                let listed = steps[i + 1..].iter().find_map(|s| match &s.event {
                    TraceEvent::Fence { listed, .. } if s.writer_epoch == epoch => Some(listed.clone()),
                    _ => None,
                });
                if let Some(listed) = &listed {
                    self.land_listed(listed)?;
                }
                self.versions_before(steps, i, *version, true)?;
                // Versions below the claim that landed ambiguously and were
                // never recorded (a claim whose process crashed while reading
                // it back, a live writer's manifest write, another role's edit).
                for _ in 0..8 {
                    let (v, _) = self.state.store.latest_manifest();
                    let Some(&owner) = self.ambiguous_manifests.get(&(v + 1)) else { break };
                    if v + 1 >= *version {
                        break;
                    }
                    self.place_unrecorded(steps, i, Some(owner))?;
                }
                // A claim whose create found a newer version above it (it
                // cannot tell a client's edit on it from a slot GC emptied)
                // claims again: the process leaves its first epoch behind
                // before fencing, writing nothing more under it, as a crash.
                let abandoned: Vec<Epoch> = self
                    .recovering()
                    .into_iter()
                    .filter(|e| {
                        // (A compactor's steps carry its own epoch.)
                        let own = |s: &&TraceStep| s.writer_epoch == *e && !lifecycle::is_lifecycle(&s.event);
                        !steps[i + 1..].iter().filter(own).any(|s| !matches!(s.event, TraceEvent::Crash { .. }))
                    })
                    .collect();
                for e in abandoned {
                    self.apply(Action::Crash { epoch: e })?;
                }
                // Racing openers: a recovery still fencing when this claim
                // landed records its `Fence` later. Its fence depends on its
                // own claim and listing, not on this one: it is replayed first.
                for e in self.recovering() {
                    self.pull_forward(steps, i, e, |ev| matches!(ev, TraceEvent::Fence { .. }))?;
                }
                self.apply(Action::Recover)?;
                let (v, m) = self.state.store.latest_manifest();
                if (v, m.view.writer_epoch) != (*version, epoch) {
                    return Err(format!("claimed (version, epoch): engine ({version}, {epoch}), model ({v}, {})", m.view.writer_epoch));
                }
                Ok(())
            }
            TraceEvent::Fence { wal_id, next_wal_id, listed, .. } => {
                self.land_listed(listed)?;
                for _ in 0..8 {
                    if self.writer(epoch)?.phase == Phase::Active {
                        break;
                    }
                    self.apply(Action::Fence { epoch })?;
                }
                let w = self.writer(epoch)?;
                if w.log.next_wal_id() != *next_wal_id {
                    if recovery_died_unrecorded(steps, i) {
                        return Err(UNREPLAYABLE_UNRECORDED_FENCE.to_string());
                    }
                    return Err(format!("fence at {wal_id}: engine continues at wal {next_wal_id}, model at {}", w.log.next_wal_id()));
                }
                Ok(())
            }
            TraceEvent::Crash { listed } => {
                self.land_listed(listed)?;
                // A manifest write whose create landed ambiguously, and whose
                // writer crashed while reading it back, was never recorded.
                self.land_ambiguous_manifest(&[epoch]);
                // A recovery that died after its fence create landed (the
                // engine never heard back) still left the fence in the store.
                let fence_landed = match self.state.writer(epoch).map(|w| &w.phase) {
                    Some(Phase::Recovering { plan, .. }) => plan.fence.is_some_and(|f| {
                        listed.contains(&f.wal_id) && !self.state.store.wals.contains_key(&f.wal_id)
                    }),
                    _ => false,
                };
                if fence_landed {
                    self.apply(Action::Fence { epoch })?;
                }
                if self.state.is_alive(epoch) {
                    self.apply(Action::Crash { epoch })?;
                }
                let lost: Vec<WalId> = self.state.uploads.iter().filter(|u| u.owner == epoch).map(|u| u.wal_id).collect();
                for wal_id in lost {
                    self.apply(Action::UploadLost { epoch, wal_id })?;
                }
                Ok(())
            }
            // Compaction, GC, checkpoint and follower steps.
            _ => self.lifecycle(steps, i),
        }
    }
}

/// Replays `steps` (a schedule starting from an empty store) through the
/// model of `protocol`. `Ok(None)` when the trace conforms; `Ok(Some(..))`
/// names the first nonconforming step.
/// `ambiguous` holds the WAL ids and manifest versions whose create landed
/// and reported `AlreadyExists` (a WAL's is replayed as the model's
/// ambiguous `WalDurable`).
pub fn check(
    protocol: Protocol,
    max_inflight: u64,
    steps: &[TraceStep],
    ambiguous: &Ambiguous,
) -> Option<Nonconformance> {
    let mut checker = Checker::new(protocol, max_inflight);
    checker.ambiguous = ambiguous.wals.clone();
    checker.ambiguous_manifests = ambiguous.manifests.clone();
    checker.debug = std::env::var_os("CONFORMANCE_DEBUG").is_some();
    if checker.debug {
        eprintln!("conformance: ambiguous creates {ambiguous:?}");
    }
    for i in 0..steps.len() {
        if checker.done.contains(&i) {
            continue;
        }
        if let Err(reason) = checker.step(steps, i) {
            // A lifecycle verdict on a replay that placed every version as
            // recorded is a nonconformance; anything else in a lifecycle
            // trace may be a placement the replay cannot make yet
            // (`CONFORMANCE_STRICT` reports those too). An ambiguous create
            // of a writer's process may be its own compactor's or GC's edit,
            // taken for the writer's.
            let judged = checker.verdict && checker.uncertain == 0 && checker.ambiguous_manifests.is_empty();
            let lifecycle = steps.iter().any(|s| lifecycle::is_lifecycle(&s.event)) && !judged && std::env::var_os("CONFORMANCE_STRICT").is_none();
            let unreplayable = [UNREPLAYABLE_AMBIGUOUS_MANIFEST, UNREPLAYABLE_UNRECORDED_FENCE]
                .into_iter()
                .find(|r| reason == *r)
                .or(lifecycle.then_some(UNREPLAYABLE_LIFECYCLE));
            return Some(Nonconformance { index: i, step: steps[i].clone(), reason, unreplayable });
        }
    }
    None
}

/// Whether the model's bounds can hold this trace (its writes are `u16` ids).
pub fn fits(steps: &[TraceStep]) -> bool {
    steps.iter().filter(|s| matches!(s.event, TraceEvent::Put { .. })).count() < usize::from(BOUNDS.writes)
}

/// Whether the writer of step `i` (a `FlushL0` of the memtable up to
/// `last_wal_id`) records the same flush again before it crashes.
fn flushed_again(steps: &[TraceStep], i: usize, last_wal_id: WalId) -> bool {
    let epoch = steps[i].writer_epoch;
    let own = steps[i + 1..].iter().filter(|s| s.writer_epoch == epoch);
    own.take_while(|s| !matches!(s.event, TraceEvent::Crash { .. }))
        .any(|s| matches!(s.event, TraceEvent::FlushL0 { last_wal_id: l, .. } if l == last_wal_id))
}

/// Whether `epoch` recorded `Recover` and then `Crash`, and never `Fence`.
fn died_before_fence(steps: &[TraceStep], epoch: Epoch) -> bool {
    let mut own = steps.iter().filter(|s| s.writer_epoch == epoch).map(|s| &s.event);
    own.any(|e| matches!(e, TraceEvent::Recover { .. }))
        && !steps.iter().any(|s| s.writer_epoch == epoch && matches!(s.event, TraceEvent::Fence { .. }))
        && steps.iter().any(|s| s.writer_epoch == epoch && matches!(s.event, TraceEvent::Crash { .. }))
}

/// Whether, before step `before`, some epoch recorded `Recover` and then
/// `Crash` with no `Fence` of its own in between.
fn recovery_died_unrecorded(steps: &[TraceStep], before: usize) -> bool {
    let mut recovering: std::collections::BTreeSet<Epoch> = Default::default();
    for s in &steps[..before] {
        match &s.event {
            TraceEvent::Recover { .. } => {
                recovering.insert(s.writer_epoch);
            }
            TraceEvent::Fence { .. } => {
                recovering.remove(&s.writer_epoch);
            }
            TraceEvent::Crash { .. } if recovering.contains(&s.writer_epoch) => return true,
            _ => {}
        }
    }
    false
}
