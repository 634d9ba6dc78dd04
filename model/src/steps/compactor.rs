//! The compactor's actions: claiming its epoch, merging, committing.

use tidemark::internals::protocol::{
    apply_compaction, claim_compactor_epoch, Compaction, Epoch, ManifestConflict, ManifestView, Role, RunId, SortedRun,
};

use super::Attempt;
use crate::model::{token, TidemarkModel};
use crate::state::*;

impl TidemarkModel {
    /// `ClaimCompactor`: a compactor (re)starts by creating the next version
    /// with the next compactor epoch.
    pub(crate) fn claim_compactor(&self, s: &mut State) -> Option<()> {
        s.compactor_claims += 1;
        let (version, latest) = s.store.latest_manifest();
        let view = claim_compactor_epoch(&latest.view);
        let epoch = view.compactor_epoch;
        let claimed =
            ManifestVersion { view, tree: latest.tree.clone(), token: token(Role::Compactor, epoch), created_at: self.stamp(s) };
        self.insert_version(s, version + 1, claimed.clone());
        s.committed.compactor_epoch = s.committed.compactor_epoch.max(epoch);
        let base = Base { version: version + 1, view: claimed.view, tree: claimed.tree };
        s.compactors.push(Compactor { epoch, base, job: None, next_sst: 0 });
        Some(())
    }

    /// `Compact`: reads the latest version, merges all of L0 and every run
    /// into one output SST and writes it.
    pub(crate) fn compact(&self, s: &mut State, epoch: Epoch) -> Option<()> {
        let (version, latest) = s.store.latest_manifest();
        let latest = latest.clone();
        if latest.view.compactor_epoch > epoch {
            // Re-read shows a newer compactor: this one is a zombie.
            Self::stop_compactor(s, epoch);
            return Some(());
        }
        let writes = s.tree_writes(&latest.tree).ok()?;
        let now = self.stamp(s);
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
            // One job at a time: after it, nothing below the next output.
            sst_floor: u128::from(seq) + 1,
        });
        c.base = Base { version, view: latest.view, tree: latest.tree };
        s.store.ssts.insert(out, SstObject { writes, created_at: now });
        Some(())
    }

    /// `CompactCommit`: creates the next version with the compaction applied
    /// (`apply_compaction`); a lost race re-reads and re-applies, a fenced
    /// compactor stops, and a compaction whose inputs are gone is dropped.
    pub(crate) fn compact_commit(&self, s: &mut State, epoch: Epoch) -> Option<()> {
        let c = s.compactor(epoch)?.clone();
        let job = c.job.clone()?;
        // The trees of pinned versions still in the store (the engine reads
        // them before its commit; a deleted one is judged without its tree).
        let pinned = |v: u64| s.store.manifests.get(&v).map(|m| &m.tree);
        let inputs: Vec<_> = job
            .l0_inputs
            .iter()
            .chain(c.base.tree.runs.iter().filter(|r| job.run_inputs.contains(&r.id)).flat_map(|r| r.ssts.iter()))
            .cloned()
            .collect();
        let durable_pin = c.base.tree.checkpoints.iter().any(|k| k.reads_only_its_version());
        let (view, tree) = match apply_compaction(self.protocol, &c.base.view, &c.base.tree, &job, pinned) {
            Ok(next) => next,
            Err(ManifestConflict::Fenced { .. }) => {
                Self::stop_compactor(s, epoch);
                return Some(());
            }
            Err(_) => {
                s.compactor_mut(epoch)?.job = None;
                return Some(());
            }
        };
        let candidate = ManifestVersion { view, tree, token: token(Role::Compactor, epoch), created_at: self.stamp(s) };
        match self.try_create(s, Role::Compactor, epoch, candidate.clone(), c.base.version + 1) {
            Attempt::Applied(v) => {
                s.seen.retired_left_unread |=
                    durable_pin && inputs.iter().any(|i| !candidate.tree.retired.iter().any(|r| r.sst == *i));
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
                c.base = Base { version: v, view: ManifestView { version: v, ..candidate.view }, tree: candidate.tree };
                c.job = None;
            }
            Attempt::Fenced => Self::stop_compactor(s, epoch),
            Attempt::Reapply { latest, .. } => {
                let base = self.rebase(s, (c.base.view, c.base.tree.clone()), latest)?;
                s.compactor_mut(epoch)?.base = base;
            }
        }
        Some(())
    }
}
