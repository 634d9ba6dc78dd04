//! Garbage collection: which WALs, SSTs and manifest versions may be deleted.
//!
//! [`GcPolicy::plan`] decides from what one GC run observed: the listings and
//! the latest manifest version, and nothing else. Everything GC must keep
//! for other processes is recorded there:
//! - the latest version's tree, and its fences (never deleted: a zombie whose
//!   next upload is a fence's id would re-create it and acknowledge writes
//!   its successor never sees, I5);
//! - every live checkpoint's version, the SSTs compactions retired after it
//!   ([`Retired`](super::Retired)), and the WALs after its replay point;
//! - each role's SST floor: an SST not in the tree whose owner (named in the
//!   SST's name) may still record it is kept; anything else is garbage.
//!
//! No reader lease and no age is needed for safety: `min_age` is only an
//! optional grace (objects younger than it are kept, and a checkpoint stays
//! live that much past its expiry, the clock skew GC tolerates). GC's
//! observation and its deletions are separate steps, and every rule above
//! holds for anything another process does in between (I7).
//!
//! [`GcPolicy::manifests`], [`GcPolicy::wals`] and [`GcPolicy::ssts`] are the
//! rule the engine runs until it records checkpoints: every version younger
//! than `min_age` kept and read (a reader lease), unrecorded SSTs kept while
//! young ([`GcPolicy::may_record_sst`]).

use std::collections::BTreeSet;

use super::{Epoch, ManifestView, Protocol, Role, SstSeq, Tree, WalId};

/// A point in time, in caller-chosen units.
pub type Time = u64;

/// The GC rule in force: the protocol variant and the minimum age.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GcPolicy {
    pub protocol: Protocol,
    /// An optional grace: objects younger than this are never deleted, and a
    /// checkpoint stays live this long past its expiry ([`GcPolicy::plan`]).
    /// In the engine's versions-kept rule it is also the reader lease, and 0
    /// is safe there only for one process.
    pub min_age: Time,
}

/// An object as a listing shows it: its id and when it was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listed<K> {
    pub id: K,
    pub created_at: Time,
}

/// `GcManifest`'s decision over the listed manifest versions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ManifestGc {
    /// Versions to keep, ascending; the last is the latest. GC must read each
    /// of them and pass them to [`GcPolicy::wals`] and [`GcPolicy::ssts`].
    pub keep: Vec<u64>,
    /// Versions that may be deleted (`GcManifest`).
    pub delete: Vec<u64>,
}

/// A manifest version GC keeps, as read.
#[derive(Clone, Copy, Debug)]
pub struct KeptManifest<'a, S> {
    pub view: &'a ManifestView,
    pub tree: &'a Tree<S>,
}

/// Who wrote an SST and where in its writer's sequence: read from the SST's
/// name, so GC knows it from a listing without reading the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SstOrigin {
    /// `Writer` for an L0 flush, `Compactor` for a compaction output.
    pub role: Role,
    /// The writer's or compactor's epoch.
    pub epoch: Epoch,
    /// Its place in that process's monotonic sequence of SSTs.
    pub seq: SstSeq,
}

/// An SST as a listing shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListedSst<K> {
    pub id: K,
    pub origin: SstOrigin,
    pub created_at: Time,
}

/// The process a GC run belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GcCaller {
    /// A GC process of its own (`tidemark gc`).
    Standalone,
    /// The GC of the writer of this epoch.
    Writer(Epoch),
    /// The GC of the compactor of this epoch.
    Compactor(Epoch),
}

/// What one GC run observed: the listings, then the latest manifest version
/// read after them, and the time.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a, K> {
    pub latest: &'a ManifestView,
    pub tree: &'a Tree<K>,
    pub manifests: &'a [Listed<u64>],
    pub wals: &'a [Listed<WalId>],
    pub ssts: &'a [ListedSst<K>],
    pub now: Time,
    pub caller: GcCaller,
    /// What a writer in this process flushed to L0 but has not recorded in a
    /// durable manifest. The shipped rule ignores it (recovery replays those
    /// WALs until the manifest exists, I3); `gc-before-manifest` deletes up to it.
    pub unrecorded_flush: Option<WalId>,
}

/// A GC run's decisions, deleted in this order: SSTs, WALs, manifests (a
/// run that stops part-way leaves only garbage).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GcPlan<K> {
    /// `GcSst`.
    pub ssts: Vec<K>,
    /// `GcWal`.
    pub wals: Vec<WalId>,
    /// `GcManifest`.
    pub manifests: Vec<u64>,
}

impl<K> GcPlan<K> {
    pub fn is_empty(&self) -> bool {
        self.ssts.is_empty() && self.wals.is_empty() && self.manifests.is_empty()
    }
}

/// Whether the owner of an SST that `latest` does not reference may still
/// record it: a newer epoch than `latest` knows (it claimed after GC read
/// the manifest), or the current one, not closed, at or above its floor.
pub fn may_still_record(latest: &ManifestView, origin: &SstOrigin) -> bool {
    let (epoch, floor, closed) = match origin.role {
        Role::Writer => (latest.writer_epoch, latest.writer_sst_floor, latest.writer_closed),
        Role::Compactor => (latest.compactor_epoch, latest.compactor_sst_floor, false),
        Role::Client => return false,
    };
    origin.epoch > epoch || (origin.epoch == epoch && !closed && origin.seq >= floor)
}

impl GcPolicy {
    pub fn new(protocol: Protocol, min_age: Time) -> Self {
        GcPolicy { protocol, min_age }
    }

    /// Whether an object created at `created_at` is at least `min_age` old.
    /// A creation time after `now` (clock skew) is young.
    pub fn is_old(&self, created_at: Time, now: Time) -> bool {
        created_at.checked_add(self.min_age).is_some_and(|t| t <= now)
    }

    /// Decides a GC run from what it observed (`GcRun`).
    ///
    /// - `GcManifest`: every listed version below the latest that no live
    ///   checkpoint pins.
    /// - `GcSst`: every listed SST that the latest tree does not reference, no
    ///   live checkpoint needs (retired after the version it pins), and whose
    ///   owner may not record it any more ([`may_still_record`]).
    /// - `GcWal`: every listed WAL but the fences that no one needs: the
    ///   latest version needs those past its replay point, a live checkpoint
    ///   those past its replay point up to its `wal_end` (a durable one reads
    ///   no further; a follower's has none and reads the whole chain).
    ///
    /// Nothing younger than `min_age` is deleted, and a GC run of a process
    /// the latest version shows fenced deletes nothing.
    pub fn plan<K: Clone + Eq>(&self, o: &Observed<'_, K>) -> GcPlan<K> {
        let fenced = match o.caller {
            GcCaller::Standalone => false,
            GcCaller::Writer(e) => o.latest.writer_epoch > e,
            GcCaller::Compactor(e) => o.latest.compactor_epoch > e,
        };
        if fenced {
            return GcPlan { ssts: Vec::new(), wals: Vec::new(), manifests: Vec::new() };
        }
        let grace = self.min_age;
        let live: Vec<_> = match self.protocol {
            #[cfg(feature = "mutants")]
            Protocol::GcIgnoresCheckpoints => Vec::new(),
            _ => o.tree.checkpoints.iter().filter(|c| c.is_live(o.now, grace)).collect(),
        };
        let old = |created_at: Time| self.is_old(created_at, o.now);

        let mut manifests: Vec<u64> = o
            .manifests
            .iter()
            .filter(|m| m.id < o.latest.version && old(m.created_at) && !live.iter().any(|c| c.version == m.id))
            .map(|m| m.id)
            .collect();
        manifests.sort_unstable();
        manifests.dedup();

        let oldest_pin = live.iter().map(|c| c.version).min();
        let needed_retired = |id: &K| match self.protocol {
            #[cfg(feature = "mutants")]
            Protocol::GcIgnoresRetired => false,
            _ => o.tree.retired.iter().any(|r| r.sst == *id && oldest_pin.is_some_and(|p| p < r.version)),
        };
        let recordable = |origin: &SstOrigin| match self.protocol {
            #[cfg(feature = "mutants")]
            Protocol::GcIgnoresFloors => false,
            _ => may_still_record(o.latest, origin),
        };
        let ssts: Vec<K> = o
            .ssts
            .iter()
            .filter(|s| old(s.created_at))
            .filter(|s| !o.tree.ssts().any(|t| *t == s.id))
            .filter(|s| !needed_retired(&s.id))
            .filter(|s| !recordable(&s.origin))
            .map(|s| s.id.clone())
            .collect();

        let needed = |id: WalId| {
            id > o.latest.replay_after_wal_id
                || live.iter().any(|c| id > c.replay_after_wal_id && c.wal_end.is_none_or(|end| id <= end))
        };
        // The mutant also takes as flushed what a writer flushed to L0 but
        // has not recorded yet.
        let unrecorded = match self.protocol {
            #[cfg(feature = "mutants")]
            Protocol::GcBeforeManifest => o.unrecorded_flush.unwrap_or(0),
            _ => 0,
        };
        let keep_fences = match self.protocol {
            #[cfg(feature = "mutants")]
            Protocol::GcDeletesFences => false,
            _ => true,
        };
        let mut wals: Vec<WalId> = o
            .wals
            .iter()
            .filter(|w| (!needed(w.id) || w.id <= unrecorded) && old(w.created_at))
            .filter(|w| !(keep_fences && o.tree.fences.contains(&w.id)))
            .map(|w| w.id)
            .collect();
        wals.sort_unstable();
        wals.dedup();
        GcPlan { ssts, wals, manifests }
    }

    /// Guard of `WriteManifest`, `Close` and `CompactCommit` for every SST
    /// they add: an SST already `min_age` old may have been judged garbage by
    /// a GC run that had not seen this manifest yet, so it must be rewritten
    /// instead. `now` is when the manifest create will have completed (the
    /// engine adds its request timeout).
    pub fn may_record_sst(&self, created_at: Time, now: Time) -> bool {
        self.min_age == 0 || !self.is_old(created_at, now)
    }

    /// `GcManifest`: keep the latest version, and every version whose
    /// successor is younger than `min_age` (a reader may still use it: the
    /// reader lease). The successor is the next listed version, which is
    /// never older than the real one.
    pub fn manifests(&self, listed: &[Listed<u64>], now: Time) -> ManifestGc {
        let mut sorted: Vec<Listed<u64>> = listed.to_vec();
        sorted.sort_unstable();
        sorted.dedup_by_key(|l| l.id);
        let mut gc = ManifestGc::default();
        for (i, m) in sorted.iter().enumerate() {
            let keep = match sorted.get(i + 1) {
                None => true,
                Some(successor) => !self.is_old(successor.created_at, now),
            };
            if keep {
                gc.keep.push(m.id);
            } else {
                gc.delete.push(m.id);
            }
        }
        gc
    }

    /// `GcWal`: a WAL may be deleted only if every kept version replays
    /// after it (`id <= replay_after_wal_id` of each: no recovery or reader
    /// from a kept version reads it), it is `min_age` old, and it is not a
    /// fence (fences are listed in the kept manifests).
    ///
    /// `unrecorded_flush` is what a writer in this process has flushed to L0
    /// but not yet recorded in a durable manifest. The shipped protocol does
    /// not let it move anything: until that manifest exists, recovery replays
    /// those WALs (I3). The `gc-before-manifest` mutant deletes up to it.
    pub fn wals<S>(
        &self,
        kept: &[KeptManifest<'_, S>],
        listed: &[Listed<WalId>],
        now: Time,
        unrecorded_flush: Option<WalId>,
    ) -> Vec<WalId> {
        let Some(horizon) = kept.iter().map(|m| m.view.replay_after_wal_id).min() else {
            return Vec::new();
        };
        let horizon = match self.protocol {
            #[cfg(feature = "mutants")]
            Protocol::GcBeforeManifest => horizon.max(unrecorded_flush.unwrap_or(0)),
            _ => {
                let _ = unrecorded_flush;
                horizon
            }
        };
        let fences: BTreeSet<WalId> = kept.iter().flat_map(|m| m.tree.fences.iter().copied()).collect();
        let keep_fences = match self.protocol {
            #[cfg(feature = "mutants")]
            Protocol::GcDeletesFences => false,
            _ => true,
        };
        let mut out: Vec<WalId> = listed
            .iter()
            .filter(|w| w.id <= horizon && self.is_old(w.created_at, now))
            .filter(|w| !(keep_fences && fences.contains(&w.id)))
            .map(|w| w.id)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `GcSst`: an SST may be deleted only if no kept version references it
    /// (L0 or any run), it is `min_age` old (so not an in-progress flush or
    /// compaction output), and the caller has not pinned it (its own
    /// in-flight outputs).
    pub fn ssts<S: Clone + Eq>(&self, kept: &[KeptManifest<'_, S>], listed: &[Listed<S>], pinned: &[S], now: Time) -> Vec<S> {
        listed
            .iter()
            .filter(|s| self.is_old(s.created_at, now))
            .filter(|s| !pinned.contains(&s.id))
            .filter(|s| !kept.iter().any(|m| m.tree.ssts().any(|r| *r == s.id)))
            .map(|s| s.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Checkpoint, CheckpointOwner, Retired, SortedRun};

    const P: GcPolicy = GcPolicy { protocol: Protocol::Shipped, min_age: 10 };

    fn listed<K: Copy>(items: &[(K, Time)]) -> Vec<Listed<K>> {
        items.iter().map(|&(id, created_at)| Listed { id, created_at }).collect()
    }

    #[test]
    fn ages() {
        assert!(P.is_old(5, 15) && !P.is_old(6, 15) && !P.is_old(20, 15));
        assert!(P.may_record_sst(6, 15) && !P.may_record_sst(5, 15));
        assert!(!P.is_old(u64::MAX, 0));
        let zero = GcPolicy { min_age: 0, ..P };
        assert!(zero.is_old(15, 15) && zero.may_record_sst(0, 100));
    }

    #[test]
    fn manifests_keep_the_latest_and_versions_a_reader_may_hold() {
        // v1 superseded at 5 (old at 20), v2 superseded at 12 (young), v3 latest.
        let gc = P.manifests(&listed(&[(3, 12), (1, 0), (2, 5)]), 20);
        assert_eq!(gc, ManifestGc { keep: vec![2, 3], delete: vec![1] });
        // A latest version is kept however old.
        assert_eq!(P.manifests(&listed(&[(7, 0)]), 1000).keep, vec![7]);
        // A hole (v5 deleted): v4's successor is v6, no older than the real one.
        assert_eq!(P.manifests(&listed(&[(4, 0), (6, 15)]), 20).keep, vec![4, 6]);
    }

    fn tree(l0: &[u32], runs: &[&[u32]], fences: &[WalId]) -> Tree<u32> {
        Tree {
            l0: l0.to_vec(),
            runs: runs.iter().enumerate().map(|(i, s)| SortedRun { id: i as u64, ssts: s.to_vec() }).collect(),
            fences: fences.to_vec(),
            ..Tree::default()
        }
    }

    #[test]
    fn wals_below_every_kept_replay_point_old_and_not_fences() {
        let v_old = ManifestView { replay_after_wal_id: 4, ..Default::default() };
        let v_new = ManifestView { replay_after_wal_id: 9, ..Default::default() };
        let t = tree(&[], &[], &[3]);
        let kept = [KeptManifest { view: &v_old, tree: &t }, KeptManifest { view: &v_new, tree: &t }];
        let wals = listed(&[(1, 0), (2, 0), (3, 0), (4, 15), (5, 0), (9, 0)]);
        assert_eq!(P.wals(&kept, &wals, 20, Some(12)), vec![1, 2], "3 is a fence, 4 is young, 5.. replayed from v_old");
        assert_eq!(P.wals(&kept[1..], &wals, 20, None), vec![1, 2, 5, 9]);
        assert!(P.wals::<u32>(&[], &wals, 20, None).is_empty());
    }

    #[test]
    fn ssts_unreferenced_old_and_unpinned() {
        let v = ManifestView::default();
        let a = tree(&[1], &[&[2, 3]], &[]);
        let b = tree(&[4], &[], &[]);
        let kept = [KeptManifest { view: &v, tree: &a }, KeptManifest { view: &v, tree: &b }];
        let ssts = listed(&[(1, 0), (2, 0), (4, 0), (5, 0), (6, 0), (7, 15)]);
        assert_eq!(P.ssts(&kept, &ssts, &[6], 20), vec![5]);
    }

    #[cfg(feature = "mutants")]
    #[test]
    fn mutants_delete_too_much() {
        let v = ManifestView { replay_after_wal_id: 2, ..Default::default() };
        let t = tree(&[], &[], &[2]);
        let kept = [KeptManifest { view: &v, tree: &t }];
        let wals = listed(&[(1, 0), (2, 0), (3, 0)]);
        let early = GcPolicy { protocol: Protocol::GcBeforeManifest, ..P };
        assert_eq!(early.wals(&kept, &wals, 20, Some(3)), vec![1, 3]);
        let fences = GcPolicy { protocol: Protocol::GcDeletesFences, ..P };
        assert_eq!(fences.wals(&kept, &wals, 20, None), vec![1, 2]);
    }

    const Z: GcPolicy = GcPolicy { protocol: Protocol::Shipped, min_age: 0 };

    fn origin(role: Role, epoch: Epoch, seq: SstSeq) -> SstOrigin {
        SstOrigin { role, epoch, seq }
    }

    fn ck(version: u64, replay_after_wal_id: WalId, expires_at: Option<Time>) -> Checkpoint {
        Checkpoint { id: u128::from(version), version, replay_after_wal_id, wal_end: None, expires_at, owner: CheckpointOwner::Client }
    }

    /// A store as GC lists it, with the latest version `latest` of `tree`.
    struct Fixture {
        latest: ManifestView,
        tree: Tree<u32>,
        manifests: Vec<Listed<u64>>,
        wals: Vec<Listed<WalId>>,
        ssts: Vec<ListedSst<u32>>,
    }

    impl Fixture {
        fn plan(&self, policy: GcPolicy, now: Time, caller: GcCaller) -> GcPlan<u32> {
            policy.plan(&Observed {
                latest: &self.latest,
                tree: &self.tree,
                manifests: &self.manifests,
                wals: &self.wals,
                ssts: &self.ssts,
                now,
                caller,
                unrecorded_flush: Some(9),
            })
        }
    }

    /// Version 6 is latest; a client checkpoint pins version 3 (replay
    /// point 2) and expires at 10. SST 1 is in the tree; 2 was retired in
    /// version 4 (version 3 may read it), 3 in version 3 (it may not);
    /// 4 and 5 are unrecorded outputs of the current writer (floor 5) and
    /// 6 of an older compactor epoch.
    fn fixture() -> Fixture {
        let latest = ManifestView {
            version: 6,
            writer_epoch: 2,
            replay_after_wal_id: 5,
            compactor_epoch: 3,
            writer_sst_floor: 5,
            ..ManifestView::default()
        };
        let tree = Tree {
            l0: vec![1],
            fences: vec![2],
            checkpoints: vec![ck(3, 2, Some(10))],
            retired: vec![Retired { sst: 2, version: 4 }, Retired { sst: 3, version: 3 }],
            ..Tree::default()
        };
        let ssts = vec![
            ListedSst { id: 1, origin: origin(Role::Writer, 2, 1), created_at: 0 },
            ListedSst { id: 2, origin: origin(Role::Writer, 2, 2), created_at: 0 },
            ListedSst { id: 3, origin: origin(Role::Writer, 2, 3), created_at: 0 },
            ListedSst { id: 4, origin: origin(Role::Writer, 2, 4), created_at: 0 },
            ListedSst { id: 5, origin: origin(Role::Writer, 2, 5), created_at: 0 },
            ListedSst { id: 6, origin: origin(Role::Compactor, 2, 9), created_at: 0 },
        ];
        Fixture {
            latest,
            tree,
            manifests: listed(&[(2, 0), (3, 0), (5, 0), (6, 0), (7, 0)]),
            wals: listed(&[(1, 0), (2, 0), (3, 0), (6, 0)]),
            ssts,
        }
    }

    #[test]
    fn plan_keeps_what_the_latest_version_and_live_checkpoints_need() {
        let f = fixture();
        let plan = f.plan(Z, 9, GcCaller::Standalone);
        assert_eq!(plan.manifests, vec![2, 5], "3 is pinned, 6 is latest, 7 appeared after the read");
        assert_eq!(plan.ssts, vec![3, 4, 6], "1 referenced, 2 retired after the pin, 5 may still be recorded");
        assert_eq!(plan.wals, vec![1], "2 is a fence; 3 is after the checkpoint's replay point");
    }

    #[test]
    fn a_durable_checkpoint_keeps_its_chain_up_to_its_wal_end_only() {
        let mut f = fixture();
        f.wals = listed(&[(1, 0), (2, 0), (3, 0), (4, 0), (6, 0)]);
        assert_eq!(f.plan(Z, 9, GcCaller::Standalone).wals, vec![1], "a follower's checkpoint reads the whole chain");
        f.tree.checkpoints[0].wal_end = Some(3);
        let plan = f.plan(Z, 9, GcCaller::Standalone);
        assert_eq!(plan.wals, vec![1, 4], "3 is the checkpoint's; 4 is past its wal_end and flushed; 6 the latest needs");
    }

    #[test]
    fn an_expired_checkpoint_protects_nothing() {
        let f = fixture();
        let plan = f.plan(Z, 10, GcCaller::Standalone);
        assert_eq!(plan.manifests, vec![2, 3, 5]);
        assert_eq!(plan.ssts, vec![2, 3, 4, 6]);
        assert_eq!(plan.wals, vec![1, 3]);
        let grace = GcPolicy { min_age: 1, ..Z };
        assert_eq!(f.plan(grace, 10, GcCaller::Standalone).wals, vec![1], "live for the grace past its expiry");
    }

    #[test]
    fn unrecorded_ssts_follow_their_owners_floor_and_epoch() {
        let latest = ManifestView { writer_epoch: 2, writer_sst_floor: 5, compactor_epoch: 3, compactor_sst_floor: 2, ..ManifestView::default() };
        assert!(may_still_record(&latest, &origin(Role::Writer, 2, 5)));
        assert!(!may_still_record(&latest, &origin(Role::Writer, 2, 4)), "below the floor");
        assert!(!may_still_record(&latest, &origin(Role::Writer, 1, 9)), "a fenced writer never records");
        assert!(may_still_record(&latest, &origin(Role::Writer, 3, 0)), "claimed after GC read the manifest");
        assert!(!may_still_record(&ManifestView { writer_closed: true, ..latest }, &origin(Role::Writer, 2, 7)));
        assert!(may_still_record(&latest, &origin(Role::Compactor, 3, 2)));
        assert!(!may_still_record(&latest, &origin(Role::Compactor, 2, 7)));
        assert!(!may_still_record(&latest, &origin(Role::Client, 9, 9)));
    }

    #[test]
    fn young_objects_wait_and_fenced_processes_delete_nothing() {
        let f = fixture();
        let aged = GcPolicy { min_age: 5, ..Z };
        assert!(f.plan(aged, 4, GcCaller::Standalone).is_empty(), "nothing is 5 old at 4");
        assert!(f.plan(Z, 9, GcCaller::Writer(1)).is_empty(), "writer 1 is fenced by 2");
        assert!(f.plan(Z, 9, GcCaller::Compactor(2)).is_empty(), "compactor 2 is fenced by 3");
        assert_eq!(f.plan(Z, 9, GcCaller::Writer(2)), f.plan(Z, 9, GcCaller::Standalone));
    }

    #[cfg(feature = "mutants")]
    #[test]
    fn lifecycle_mutants_delete_what_someone_needs() {
        let f = fixture();
        let with = |protocol| f.plan(GcPolicy { protocol, ..Z }, 9, GcCaller::Standalone);
        let ignores = with(Protocol::GcIgnoresCheckpoints);
        assert!(ignores.manifests.contains(&3) && ignores.ssts.contains(&2) && ignores.wals.contains(&3));
        let retired = with(Protocol::GcIgnoresRetired);
        assert!(retired.ssts.contains(&2) && !retired.manifests.contains(&3));
        assert!(with(Protocol::GcIgnoresFloors).ssts.contains(&5));
        assert!(with(Protocol::GcDeletesFences).wals.contains(&2));
        assert_eq!(with(Protocol::GcBeforeManifest).wals, vec![1, 3, 6], "up to the unrecorded flush at 9, fences kept");
    }
}
