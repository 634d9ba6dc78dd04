//! A GC run: observe, decide with `protocol::gc`, delete.

use tidemark::internals::protocol::{KeptManifest, Listed, WalId};

use crate::model::TidemarkModel;
use crate::state::*;

impl TidemarkModel {
    pub(crate) fn gc_run(&self, s: &mut State) -> Option<()> {
        s.gc_runs += 1;
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
        Some(())
    }
}
