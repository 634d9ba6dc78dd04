//! Garbage collection: which WALs, SSTs and manifest versions may be deleted,
//! decided from what one GC run observed.
//!
//! A GC run reads the clock once (`now`), *then* lists manifests, reads the
//! versions it keeps, and lists WALs and SSTs; every age is judged against
//! that one `now`. Time is a plain number in units the caller picks (the model
//! counts ticks, the engine milliseconds); no clock is read here.
//!
//! `min_age` does three jobs (spec section "Garbage collection"):
//! - the reader lease: a read-only handle may use the version it read for
//!   `min_age` after it last confirmed that version was the latest, so a
//!   superseded version is kept until its successor is `min_age` old;
//! - in-progress outputs: an L0 SST or compaction output not yet in any
//!   manifest is younger than `min_age`, because no writer or compactor
//!   records an SST that is older ([`GcPolicy::may_record_sst`]);
//! - late objects: nothing younger than `min_age` is deleted at all.
//!
//! Fences are never deleted: a zombie writer whose next upload is a fence's
//! id would re-create it and acknowledge writes its successor never sees (I5).
//! Deleting them safely needs writer leases, which this version does not have.

use std::collections::BTreeSet;

use super::{ManifestView, Protocol, Tree, WalId};

/// A point in time, in caller-chosen units.
pub type Time = u64;

/// The GC rule in force: the protocol variant and the minimum age.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GcPolicy {
    /// The protocol variant (a mutant's GC rule under `mutants`).
    pub protocol: Protocol,
    /// Objects younger than this are never deleted; also the reader lease.
    /// 0 turns every age protection off: safe only when the one GC runs in the
    /// writer's process, pins its in-flight outputs, and no reader or
    /// separate compactor runs concurrently.
    pub min_age: Time,
}

/// An object as a listing shows it: its id and when it was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listed<K> {
    /// The object's id (WAL id, SST id, manifest version).
    pub id: K,
    /// When it was created, as the listing (and an SST's ULID) tells it.
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
    /// Its scalar fields (the WAL range it needs).
    pub view: &'a ManifestView,
    /// Its SSTs and fences.
    pub tree: &'a Tree<S>,
}

impl GcPolicy {
    /// The rule for `protocol` with objects protected until `min_age` old.
    pub fn new(protocol: Protocol, min_age: Time) -> Self {
        GcPolicy { protocol, min_age }
    }

    /// Whether an object created at `created_at` is at least `min_age` old.
    /// A creation time after `now` (clock skew) is young.
    pub fn is_old(&self, created_at: Time, now: Time) -> bool {
        created_at.checked_add(self.min_age).is_some_and(|t| t <= now)
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
                #[cfg(feature = "mutants")]
                Some(_) if self.protocol == Protocol::GcIgnoresReaders => false,
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
    use crate::protocol::SortedRun;

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
        let readers = GcPolicy { protocol: Protocol::GcIgnoresReaders, ..P };
        assert_eq!(readers.manifests(&listed(&[(1, 0), (2, 19)]), 20).delete, vec![1]);
    }
}
