//! The model's transitions, one function per spec action, grouped by the
//! process that takes them. Each mutates the cloned state in place and
//! returns `None` when the action does not apply (the step is not taken).

mod checkpoint;
mod compactor;
mod follower;
mod gc;
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
    /// Creates manifest `version` (a create that found the slot free). The
    /// object records the version it is stored as, whatever view it was
    /// built from (a stale one, for `blind-manifest-write`).
    pub(crate) fn insert_version(&self, s: &mut State, version: u64, mut m: ManifestVersion) {
        m.view.version = version;
        s.store.manifests.insert(version, m);
    }

    /// Creates `candidate` as version `version`, or learns why not, deciding
    /// with `on_manifest_created` and `on_manifest_taken`. `epoch` is the
    /// caller's epoch of its role (a client's checkpoint id).
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

    /// After `Reapply`: the base to apply the change on next (`reapply_base`).
    pub(crate) fn rebase(&self, s: &State, stale: (ManifestView, Tree<SstId>), latest: u64) -> Option<Base> {
        let m = s.store.manifests.get(&latest)?;
        let fresh = (m.view, m.tree.clone());
        let (view, tree) = reapply_base(self.protocol, &stale, &fresh).clone();
        Some(Base { version: latest, view, tree })
    }

    /// `Recover`'s list-and-walk (and `Fence`'s re-list): the protocol's chain walk.
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

    /// Drops a writer that can never acknowledge again (fenced, or its WAL id taken).
    pub(crate) fn stop(state: &mut State, epoch: Epoch) {
        state.writers.retain(|w| w.epoch != epoch);
    }

    /// The create of a WAL holding `writes` was rejected (the object read
    /// back is another writer's): those writes are reported as not written
    /// (I10), and the writer stops. Other pending writes fail too, but their
    /// WALs may still land, as after a crash. A stop that no newer epoch
    /// caused is recorded for I12.
    pub(crate) fn reject(state: &mut State, epoch: Epoch, writes: &[WriteId]) {
        state.rejected.extend(writes.iter().copied());
        if state.claimed_epoch() <= epoch {
            state.stopped_without_successor.get_or_insert(epoch);
        }
        Self::stop(state, epoch);
    }

    /// A compactor that learned it is fenced stops (a zombie compactor rejected).
    pub(crate) fn stop_compactor(state: &mut State, epoch: Epoch) {
        state.compactors.retain(|c| c.epoch != epoch);
        state.seen.zombie_compactor_rejected = true;
    }

    /// `Tick`: the clock advances.
    pub(crate) fn tick(&self, s: &mut State) -> Option<()> {
        s.now += 1;
        Some(())
    }
}
