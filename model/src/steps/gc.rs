//! A GC pass, a process of its own: it observes (lists, then reads the
//! latest version), decides with `GcPolicy::plan`, and deletes in later
//! steps, so any other process may step in between. A pass that starts
//! while another has not finished deleting is that one crashing and a new
//! one starting; its remaining deletions never happen.

use tidemark::internals::protocol::{GcCaller, Listed, ListedSst, Observed, WalId};

use crate::model::TidemarkModel;
use crate::state::*;

impl TidemarkModel {
    /// `GcRun`: the observation and the decision.
    pub(crate) fn gc_run(&self, s: &mut State) -> Option<()> {
        s.gc_runs += 1;
        let manifests: Vec<Listed<u64>> =
            s.store.manifests.iter().map(|(v, m)| Listed { id: *v, created_at: u64::from(m.created_at) }).collect();
        let wals: Vec<Listed<WalId>> =
            s.store.wals.iter().map(|(id, o)| Listed { id: *id, created_at: u64::from(o.created_at) }).collect();
        let ssts: Vec<ListedSst<SstId>> = s
            .store
            .ssts
            .iter()
            .map(|(id, o)| ListedSst { id: *id, origin: id.origin(), created_at: u64::from(o.created_at) })
            .collect();
        let (_, latest) = s.store.latest_manifest();
        // The pass may run beside the newest writer; only the
        // gc-before-manifest mutant reads what that writer flushed but has
        // not recorded.
        let unrecorded_flush =
            s.writers.iter().rev().find(|w| w.phase == Phase::Active).and_then(|w| w.flushed.iter().map(|f| f.last_wal_id).max());
        let plan = self.gc_policy().plan(&Observed {
            latest: &latest.view,
            tree: &latest.tree,
            manifests: &manifests,
            wals: &wals,
            ssts: &ssts,
            now: u64::from(s.now),
            caller: GcCaller::Standalone,
            unrecorded_flush,
        });
        let retired_kept = latest.tree.retired.iter().any(|r| s.store.ssts.contains_key(&r.sst) && !plan.ssts.contains(&r.sst));
        s.seen.gc_kept_retired |= retired_kept;
        s.seen.gc_past_wal_end |= plan.wals.iter().any(|w| {
            latest.tree.checkpoints.iter().any(|c| *w > c.replay_after_wal_id && c.wal_end.is_some_and(|end| *w > end))
        });
        s.gc_interleaved = false;
        s.gc = (!plan.is_empty()).then_some(plan);
        Some(())
    }

    /// `GcSst`: deletes the SSTs the pass decided.
    pub(crate) fn gc_sst(&self, s: &mut State) -> Option<()> {
        let plan = s.gc.as_mut()?;
        let ssts = std::mem::take(&mut plan.ssts);
        let retired: Vec<SstId> = s.store.manifests.values().flat_map(|m| m.tree.retired.iter().map(|r| r.sst)).collect();
        for id in ssts {
            if s.store.ssts.remove(&id).is_some() {
                s.seen.gc_deleted_sst = true;
                s.seen.gc_deleted_retired |= retired.contains(&id);
            }
        }
        self.gc_step_done(s);
        Some(())
    }

    /// `GcWal`: deletes the WALs the pass decided.
    pub(crate) fn gc_wal(&self, s: &mut State) -> Option<()> {
        let plan = s.gc.as_mut()?;
        for id in std::mem::take(&mut plan.wals) {
            s.seen.gc_deleted_wal |= s.store.wals.remove(&id).is_some();
        }
        self.gc_step_done(s);
        Some(())
    }

    /// `GcManifest`: deletes the manifest versions the pass decided.
    pub(crate) fn gc_manifest(&self, s: &mut State) -> Option<()> {
        let plan = s.gc.as_mut()?;
        for v in std::mem::take(&mut plan.manifests) {
            s.store.manifests.remove(&v);
        }
        self.gc_step_done(s);
        Some(())
    }

    fn gc_step_done(&self, s: &mut State) {
        s.seen.gc_deleted_after_interleaving |= s.gc_interleaved;
        if s.gc.as_ref().is_some_and(|p| p.is_empty()) {
            s.gc = None;
        }
    }
}
