//! Conformance of the lifecycle steps: compactor claims and commits,
//! checkpoint edits, GC passes and followers, replayed on the model's store.
//!
//! Every manifest version any process creates is replayed in version order
//! (a process records its create after the create returns, so the trace may
//! hold them out of order): a writer's through the model's own transitions,
//! the others' through the protocol functions the engine decides with
//! (`claim_compactor_epoch`, `apply_checkpoint_edit`). On that store, GC's
//! decisions and followers' reads are judged by the protocol from the
//! model's state, not the engine's: a GC pass may delete only WALs and
//! versions the policy would let it delete with everything aged (I7), and a
//! follower may apply only the WALs its cursor reads on the model's store,
//! in order (no gap, no fenced write, nothing a recovery would not replay).
//! Which SSTs a compaction merges or GC deletes is not replayed: the model
//! names SSTs by process and sequence, the engine by ULID, and the oracle
//! judges every read of them.

use std::collections::BTreeSet;

use tidemark::internals::protocol::{
    apply_checkpoint_edit, claim_compactor_epoch, writer_pin_id, CheckpointEdit, CheckpointOwner,
    CheckpointRefused, Epoch, Follower as FollowCursor, GcCaller, GcPolicy, Listed, ManifestView,
    Observed, Role, Tree, WalId,
};
use tidemark::internals::trace::{TraceEvent, TraceStep};
use tidemark_model::model::token;
use tidemark_model::state::{ManifestVersion, SstId};
use tidemark_model::Action;

use super::Checker;

/// The manifest version step `e` creates, if it creates one.
pub(super) fn creates(e: &TraceEvent) -> Option<u64> {
    match e {
        TraceEvent::Recover { version }
        | TraceEvent::WriteManifest { version, .. }
        | TraceEvent::ClaimCompactor { version }
        | TraceEvent::CompactCommit { version }
        | TraceEvent::CheckpointCreate { version, .. }
        | TraceEvent::CheckpointRefresh { version, .. }
        | TraceEvent::CheckpointDelete { version, .. }
        | TraceEvent::CheckpointExpire { version, .. } => Some(*version),
        _ => None,
    }
}

/// Whether step `j` creates its version in a slot GC had emptied: a
/// `GcManifest` recorded before it deleted that version, so the version
/// it names was created first by another step (or an unrecorded process),
/// and this create is the engine's `SlotReopened`, replayed where it is.
/// (A create is recorded as soon as it lands, before anything else is
/// awaited; GC deletes a version only once a newer one exists.)
pub(super) fn recreates(steps: &[TraceStep], j: usize) -> bool {
    let Some(v) = creates(&steps[j].event) else { return false };
    steps[..j].iter().any(|s| matches!(&s.event, TraceEvent::GcManifest { versions } if versions.contains(&v)))
}

/// Whether `e` is a compactor's, GC's, checkpoint holder's or follower's step.
pub(super) fn is_lifecycle(e: &TraceEvent) -> bool {
    matches!(
        e,
        TraceEvent::ClaimCompactor { .. }
            | TraceEvent::Compact { .. }
            | TraceEvent::CompactCommit { .. }
            | TraceEvent::GcRun { .. }
            | TraceEvent::GcSst { .. }
            | TraceEvent::GcWal { .. }
            | TraceEvent::GcManifest { .. }
            | TraceEvent::CheckpointCreate { .. }
            | TraceEvent::CheckpointRefresh { .. }
            | TraceEvent::CheckpointDelete { .. }
            | TraceEvent::CheckpointExpire { .. }
            | TraceEvent::FollowerOpen { .. }
            | TraceEvent::FollowerPoll { .. }
    )
}

/// Whether `e` creates a version and is not a writer's step.
fn lifecycle_create(e: &TraceEvent) -> bool {
    is_lifecycle(e) && creates(e).is_some()
}

impl Checker {
    /// Before step `i` creates `version`: replays the creates of the versions
    /// below it that the trace records later. With `writers`, a writer's
    /// (and its steps before it) too. A version nobody recorded (a compactor
    /// or client that crashed before recording its create) is taken as an
    /// edit that changed no protocol field, unless it is a writer's
    /// ambiguous create.
    pub(super) fn versions_before(
        &mut self,
        steps: &[TraceStep],
        i: usize,
        version: u64,
        writers: bool,
    ) -> Result<(), String> {
        for _ in 0..256 {
            let next = self.state.store.latest_manifest().0 + 1;
            if next >= version {
                return Ok(());
            }
            let later = (i + 1..steps.len())
                .find(|&j| !self.done.contains(&j) && creates(&steps[j].event) == Some(next) && !recreates(steps, j));
            match later {
                Some(j) if lifecycle_create(&steps[j].event) => {
                    self.done.insert(j);
                    self.step(steps, j)
                        .map_err(|e| format!("{e} (step {j}, pulled before step {i})"))?;
                }
                Some(j) if writers => {
                    let by = steps[j].writer_epoch;
                    self.pull_forward(steps, i, by, |e| {
                        creates(e) == Some(next) && !lifecycle_create(e)
                    })?;
                }
                Some(_) => return Ok(()),
                None => {
                    let owner = self.ambiguous_manifests.get(&next).copied();
                    // A claim that landed unrecorded: the `Recover` arm decides.
                    if !writers && owner.is_some_and(|o| self.is_claim(o)) {
                        return Ok(());
                    }
                    self.place_unrecorded(steps, i, owner)?;
                }
            }
            if self.state.store.latest_manifest().0 + 1 == next {
                return Err(format!(
                    "version {next}, created before version {version}, did not replay"
                ));
            }
        }
        Err(format!("more than 256 versions before version {version}"))
    }

    /// Whether an ambiguous version whose object names writer epoch `owner`
    /// is a claim: a process of any other role copies the latest's epoch.
    pub(super) fn is_claim(&self, owner: Epoch) -> bool {
        owner > self.state.store.latest_manifest().1.view.writer_epoch
    }

    /// The next version, which no step records: created ambiguously with
    /// writer epoch `owner` (as the fault store saw it), or by a process
    /// that died before recording it. A claim is the model's claim by a
    /// process that crashed at once; a live writer's manifest write is its
    /// `WriteManifest`, if its model has one to make; anything else is a
    /// compactor's or client's edit.
    pub(super) fn place_unrecorded(&mut self, steps: &[TraceStep], i: usize, owner: Option<Epoch>) -> Result<(), String> {
        match owner {
            Some(o) if self.is_claim(o) => {
                self.apply(Action::Recover)?;
                let phantom = self.state.store.latest_manifest().1.view.writer_epoch;
                self.apply(Action::Crash { epoch: phantom })
            }
            Some(o) if self.state.is_alive(o) && self.land_ambiguous_manifest(&[o]) => Ok(()),
            _ => self.phantom_version(steps, i),
        }
    }

    /// The next version, created by a compactor or client that never
    /// recorded it (its process died first): taken as an edit that changed
    /// no protocol field, and that may have dropped any client checkpoint
    /// no later step names (a reader closing as it died): GC's plans are
    /// then judged without those, never against a pin that may be gone.
    pub(super) fn phantom_version(&mut self, steps: &[TraceStep], i: usize) -> Result<(), String> {
        let named: BTreeSet<u128> = steps[i..]
            .iter()
            .filter_map(|s| match &s.event {
                TraceEvent::CheckpointRefresh { id, .. }
                | TraceEvent::CheckpointDelete { id, .. }
                | TraceEvent::FollowerOpen { id, .. }
                | TraceEvent::FollowerPoll { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        let (latest, m) = self.state.store.latest_manifest();
        let (view, mut tree) = (m.view, m.tree.clone());
        tree.checkpoints
            .retain(|c| c.owner != CheckpointOwner::Client || named.contains(&c.id));
        self.insert_version(latest + 1, view, tree, token(Role::Client, 0))?;
        self.uncertain += 1;
        Ok(())
    }

    /// What a reader of `version` may have read: the object the model's
    /// store holds, or one a GC pass recorded earlier deleted (read before
    /// the deletion; a slot GC emptied may have held objects since).
    fn read_as(&self, version: u64) -> Vec<ManifestView> {
        let deleted = self.deleted.get(&version).into_iter().flatten();
        self.state.store.manifests.get(&version).into_iter().chain(deleted).map(|m| m.view).collect()
    }

    /// Creates `version` in the model's store: it must be the next one.
    pub(super) fn insert_version(
        &mut self,
        version: u64,
        view: ManifestView,
        tree: Tree<SstId>,
        token: u64,
    ) -> Result<(), String> {
        let next = self.state.store.latest_manifest().0 + 1;
        // Below the latest only in a slot GC emptied (`SlotReopened`): the
        // creator then reads the latest and re-applies or stops.
        let reopened = version < next && !self.state.store.manifests.contains_key(&version);
        if version != next && !reopened {
            return Err(format!(
                "the engine created version {version} where the model's next version is {next}"
            ));
        }
        // A reader may have read the version this one replaces.
        self.uncertain += u32::from(reopened);
        let view = ManifestView { version, ..view };
        self.state.store.manifests.insert(
            version,
            ManifestVersion {
                view,
                tree,
                token,
                created_at: 0,
            },
        );
        Ok(())
    }

    /// A client's (or GC's) checkpoint edit, applied by the protocol on the
    /// latest version as the engine's commit path applies it.
    fn checkpoint_edit(
        &mut self,
        steps: &[TraceStep],
        i: usize,
        version: u64,
        edit: CheckpointEdit,
    ) -> Result<(), String> {
        self.versions_before(steps, i, version, true)?;
        let (latest, m) = self.state.store.latest_manifest();
        match apply_checkpoint_edit(self.model.protocol, &m.view, &m.tree, &edit) {
            Ok((view, tree)) => {
                if let CheckpointEdit::Create { id, .. } = edit {
                    self.created.insert(id);
                }
                self.insert_version(version, view, tree, token(Role::Client, 1))
            }
            // The checkpoint of a follower that crashed before recording
            // its create (an unrecorded version), deleted by an operator:
            // the trace never shows it, so the model cannot hold it.
            Err(CheckpointRefused::Missing) if matches!(edit, CheckpointEdit::Delete { id } if !self.created.contains(&id)) => {
                self.uncertain += 1;
                let (view, tree) = (m.view, m.tree.clone());
                self.insert_version(version, view, tree, token(Role::Client, 1))
            }
            Err(refused) => Err(format!("the protocol refuses {edit:?} on version {latest} ({refused:?}); the engine created version {version}")),
        }
    }

    /// The writer's pin as the engine recorded it in `version`: at the
    /// version it created, or at an older one while views of its process
    /// still read an older tree (the engine's choice, which the model does
    /// not make); never newer than the version itself, and dropped only by
    /// a close.
    pub(super) fn writer_pin(
        &mut self,
        epoch: Epoch,
        version: u64,
        pin: Option<(u64, WalId)>,
    ) -> Result<(), String> {
        let Some(m) = self.state.store.manifests.get_mut(&version) else {
            return Ok(());
        };
        if m.token != token(Role::Writer, epoch) {
            return Ok(());
        }
        let id = writer_pin_id(epoch);
        match pin {
            Some((v, _)) if v > version => {
                self.verdict = true;
                Err(format!(
                    "the writer pinned version {v} in version {version}"
                ))
            }
            None if !m.view.writer_closed => Err(format!(
                "version {version} of an open writer has no writer pin"
            )),
            None => Ok(()),
            Some((v, replay_after_wal_id)) => {
                for c in m.tree.checkpoints.iter_mut().filter(|c| c.id == id) {
                    c.version = v;
                    c.replay_after_wal_id = replay_after_wal_id;
                }
                Ok(())
            }
        }
    }

    /// Replays the lifecycle step `i`.
    pub(super) fn lifecycle(&mut self, steps: &[TraceStep], i: usize) -> Result<(), String> {
        let epoch = steps[i].writer_epoch;
        match &steps[i].event {
            TraceEvent::ClaimCompactor { version } => {
                self.versions_before(steps, i, *version, true)?;
                let (_, m) = self.state.store.latest_manifest();
                let mut view = claim_compactor_epoch(&m.view);
                // A claim whose process died before recording it moved the epoch too.
                if epoch < view.compactor_epoch {
                    return Err(format!(
                        "compactor epoch {epoch} claimed over compactor epoch {}",
                        m.view.compactor_epoch
                    ));
                }
                view.compactor_epoch = epoch;
                let tree = m.tree.clone();
                self.insert_version(*version, view, tree, token(Role::Compactor, epoch))
            }
            TraceEvent::CompactCommit { version } => {
                self.versions_before(steps, i, *version, true)?;
                let (latest, m) = self.state.store.latest_manifest();
                if m.view.compactor_epoch != epoch && *version > latest {
                    self.verdict = true;
                    return Err(format!(
                        "compactor epoch {epoch} committed on version {latest}, which compactor epoch {} claimed (a fenced compactor's commit)",
                        m.view.compactor_epoch
                    ));
                }
                let (view, tree) = (m.view, m.tree.clone());
                self.insert_version(*version, view, tree, token(Role::Compactor, epoch))
            }
            TraceEvent::CheckpointCreate {
                id,
                version,
                expires_at,
                wal_end,
            } => self.checkpoint_edit(
                steps,
                i,
                *version,
                CheckpointEdit::Create {
                    id: *id,
                    expires_at: *expires_at,
                    wal_end: *wal_end,
                },
            ),
            TraceEvent::CheckpointRefresh {
                id,
                version,
                moved,
                now,
                expires_at,
            } => self.checkpoint_edit(
                steps,
                i,
                *version,
                CheckpointEdit::Refresh {
                    id: *id,
                    now: *now,
                    expires_at: *expires_at,
                    move_pin: *moved,
                },
            ),
            TraceEvent::CheckpointDelete { id, version } => {
                self.checkpoint_edit(steps, i, *version, CheckpointEdit::Delete { id: *id })
            }
            TraceEvent::CheckpointExpire {
                version,
                now,
                grace,
                ..
            } => self.checkpoint_edit(
                steps,
                i,
                *version,
                CheckpointEdit::Expire {
                    now: *now,
                    grace: *grace,
                },
            ),
            TraceEvent::Compact { .. } | TraceEvent::GcSst { .. } => Ok(()),
            TraceEvent::GcRun {
                caller,
                now,
                grace,
                version,
                wals,
                manifests,
                ..
            } => self.gc_run(steps, i, *caller, *now, *grace, *version, wals, manifests),
            TraceEvent::GcWal { wals } => {
                for w in wals {
                    self.state.store.wals.remove(w);
                }
                Ok(())
            }
            TraceEvent::GcManifest { versions } => {
                let latest = self.state.store.latest_manifest().0;
                for v in versions.iter().filter(|v| **v < latest) {
                    if let Some(m) = self.state.store.manifests.remove(v) {
                        self.deleted.entry(*v).or_default().push(m);
                    }
                }
                Ok(())
            }
            TraceEvent::FollowerOpen {
                id,
                version,
                applied,
            } => {
                self.versions_before(steps, i, *version + 1, true)?;
                let durable = self
                    .state
                    .store
                    .latest_manifest()
                    .1
                    .tree
                    .checkpoints
                    .iter()
                    .find(|c| c.id == *id && c.wal_end.is_some())
                    .copied();
                if let Some(c) = durable {
                    return self.follow(*id, FollowCursor::for_checkpoint(self.model.protocol, &c), applied);
                }
                let mut judged = Err(format!("follower {id:x} opened version {version}, which the model's store never held"));
                for view in self.read_as(*version) {
                    judged = self.follow(*id, FollowCursor::open(self.model.protocol, &view), applied);
                    if judged.is_ok() {
                        break;
                    }
                }
                judged
            }
            TraceEvent::FollowerPoll {
                id,
                version,
                applied,
            } => {
                let cursor = self
                    .followers
                    .get(id)
                    .cloned()
                    .ok_or_else(|| format!("follower {id:x} polled before it opened"))?;
                if *version <= cursor.version() {
                    return self.follow(*id, cursor, applied);
                }
                self.versions_before(steps, i, *version + 1, true)?;
                let mut judged = Err(format!("follower {id:x} adopted version {version}, which the model's store never held"));
                for view in self.read_as(*version) {
                    let mut read = cursor.clone();
                    judged = match read.adopt(&view) {
                        true => self.follow(*id, read, applied),
                        false => Err(format!("follower {id:x} adopted version {version}, which the protocol refuses")),
                    };
                    if judged.is_ok() {
                        break;
                    }
                }
                judged
            }
            e => Err(format!("{} is not a lifecycle step", e.action())),
        }
    }

    /// A GC pass's decision, judged by the policy on the model's store as
    /// the pass saw it (I7): the same latest version, clock and grace, with
    /// every object old enough, so the model's plan is the most it may
    /// delete. The engine's must be within it.
    #[allow(clippy::too_many_arguments)]
    fn gc_run(
        &mut self,
        steps: &[TraceStep],
        i: usize,
        caller: GcCaller,
        now: u64,
        grace: u64,
        version: u64,
        wals: &[WalId],
        manifests: &[u64],
    ) -> Result<(), String> {
        self.versions_before(steps, i, version + 1, true)?;
        self.land_listed(wals)?;
        let m = self.state.store.manifests.get(&version).ok_or_else(|| {
            format!("GC read version {version}, which the model's store does not hold")
        })?;
        let mut listed_manifests: BTreeSet<u64> =
            self.state.store.manifests.keys().copied().collect();
        listed_manifests.extend(manifests.iter().copied());
        let mut listed_wals: BTreeSet<WalId> = self.state.store.wals.keys().copied().collect();
        listed_wals.extend(wals.iter().copied());
        let manifests_listed: Vec<Listed<u64>> = listed_manifests
            .into_iter()
            .map(|id| Listed { id, created_at: 0 })
            .collect();
        let wals_listed: Vec<Listed<WalId>> = listed_wals
            .into_iter()
            .map(|id| Listed { id, created_at: 0 })
            .collect();
        let plan = GcPolicy::new(self.model.protocol, grace).plan::<SstId>(&Observed {
            latest: &ManifestView { version, ..m.view },
            tree: &m.tree,
            manifests: &manifests_listed,
            wals: &wals_listed,
            ssts: &[],
            now,
            caller,
            unrecorded_flush: None,
        });
        let wals_kept: Vec<WalId> = wals
            .iter()
            .copied()
            .filter(|w| !plan.wals.contains(w))
            .collect();
        let versions_kept: Vec<u64> = manifests
            .iter()
            .copied()
            .filter(|v| !plan.manifests.contains(v))
            .collect();
        if !wals_kept.is_empty() || !versions_kept.is_empty() {
            self.verdict = true;
            return Err(format!(
                "GC ({caller:?}) on version {version} planned to delete WALs {wals_kept:?} and versions {versions_kept:?}, which the protocol keeps (I7); the model's checkpoints there: {}",
                m.tree.checkpoints.iter().map(|c| format!("{:?} v{} after {} end {:?} expires {:?}", c.owner, c.version, c.replay_after_wal_id, c.wal_end, c.expires_at)).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(())
    }

    /// The WALs a follower applied, judged by its cursor on the model's store.
    fn follow(&mut self, id: u128, cursor: FollowCursor, applied: &[WalId]) -> Result<(), String> {
        self.land_listed(applied)?;
        let judged = self.follow_chain(id, cursor, applied);
        self.verdict = judged.is_err();
        judged
    }

    fn follow_chain(
        &mut self,
        id: u128,
        mut cursor: FollowCursor,
        applied: &[WalId],
    ) -> Result<(), String> {
        let listed = self.state.listed_wals();
        for w in applied {
            loop {
                let Some(next) = cursor.next_to_read(&listed) else {
                    return Err(format!("follower {id:x} applied wal {w}; the protocol reads nothing more (a gap, or past its end)"));
                };
                let header = self
                    .state
                    .store
                    .wals
                    .get(&next)
                    .map(|o| o.header)
                    .ok_or_else(|| format!("wal {next} vanished"))?;
                cursor.observe(next, header);
                let took = cursor.applied().last() == Some(&next);
                match (next == *w, took) {
                    (true, true) => break,
                    (true, false) => return Err(format!("follower {id:x} applied wal {w}, which the protocol does not apply (a fence or a fenced writer's)")),
                    (false, true) => {
                        return Err(format!(
                            "follower {id:x} applied wal {w} and skipped wal {next}, which the protocol applies first (cursor on version {} after wal {})",
                            cursor.version(),
                            cursor.replay_after_wal_id()
                        ))
                    }
                    (false, false) => {}
                }
                if next > *w {
                    return Err(format!(
                        "follower {id:x} applied wal {w}, which its chain passed"
                    ));
                }
            }
        }
        self.followers.insert(id, cursor);
        Ok(())
    }
}
