//! The model's transitions, one function per spec action, grouped by the
//! process that takes them. Each mutates the cloned state in place and
//! returns `None` when the action does not apply (the step is not taken).

mod compactor;
mod gc;
mod reader;
mod writer;

use tidemark::internals::protocol::{
    on_manifest_created, on_manifest_taken, reapply_base, ChainWalk, CreatedOutcome, Epoch, ManifestView, ObjectOwner,
    RecoveryError, RecoveryPlan, Role, TakenOutcome, Tree,
};

use crate::model::{token_role, TidemarkModel};
use crate::state::*;

pub(crate) fn owner(epoch: Epoch) -> ObjectOwner {
    // One writer per epoch writes at most one object per WAL id, so the
    // (epoch, id) pair identifies an object; the token is not needed here.
    ObjectOwner { writer_epoch: epoch, token: 0 }
}

/// The outcome of one create of the next manifest version.
pub(crate) enum Attempt {
    Applied(u64),
    Fenced,
    /// Lost the race to `by`; `latest` is the version to re-read.
    Reapply { latest: u64, by: Role },
}

impl TidemarkModel {
    pub(crate) fn insert_version(&self, s: &mut State, version: u64, m: ManifestVersion) {
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

    pub(crate) fn try_create(&self, s: &mut State, role: Role, epoch: Epoch, candidate: ManifestVersion, version: u64) -> Attempt {
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

    pub(crate) fn rebase(&self, s: &State, stale: (ManifestView, Tree<SstId>), latest: u64) -> Option<Base> {
        let m = s.store.manifests.get(&latest)?;
        let fresh = (m.view, m.tree.clone());
        let (view, tree) = reapply_base(self.protocol, &stale, &fresh).clone();
        Some(Base { version: latest, view, tree })
    }

    pub(crate) fn walk(&self, state: &State, view: &ManifestView, epoch: Epoch, clean_close: bool) -> Result<RecoveryPlan, RecoveryError> {
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

    pub(crate) fn stop(state: &mut State, epoch: Epoch) {
        state.writers.retain(|w| w.epoch != epoch);
    }

    pub(crate) fn reject(state: &mut State, epoch: Epoch, writes: &[WriteId]) {
        state.rejected.extend(writes.iter().copied());
        if state.claimed_epoch() <= epoch {
            state.stopped_without_successor.get_or_insert(epoch);
        }
        Self::stop(state, epoch);
    }

    pub(crate) fn stop_compactor(state: &mut State, epoch: Epoch) {
        state.compactors.retain(|c| c.epoch != epoch);
        state.seen.zombie_compactor_rejected = true;
    }
}
