//! Followers: read-only handles on any machine that keep up with the writer.
//!
//! A follower holds a client checkpoint (refreshed before it expires), adopts
//! newer manifest versions as they appear, and applies the WALs past its
//! version exactly where a recovery would replay them: along the chain from
//! `replay_after_wal_id + 1`, through fences to their targets, skipping a
//! fenced writer's uploads, and never past the first missing position. So
//! each view it shows is a prefix of the durable history (I13), it never
//! shows a write a recovery drops (I15), and since adopting a version keeps
//! what it applied beyond that version, its views never go backwards (I14).
//!
//! The same walk, bounded by `wal_end`, opens a durable checkpoint
//! ([`Follower::for_checkpoint`]).

use std::collections::BTreeSet;

use super::recovery::{ChainCursor, ChainStep};
use super::{Checkpoint, ManifestView, Protocol, WalHeader, WalId};

/// A follower's position: the version it reads and the WALs it applied past it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Follower {
    protocol: Protocol,
    version: u64,
    replay_after_wal_id: WalId,
    cursor: ChainCursor,
    /// Data WALs applied past `replay_after_wal_id`, in chain order.
    applied: Vec<WalId>,
    /// A durable checkpoint's `wal_end`: the walk stops after it.
    limit: Option<WalId>,
    /// The walk cannot go on: a stored id left the id range.
    stuck: bool,
}

impl Follower {
    /// A follower reading `view` (its own checkpoint's version), before any
    /// WAL is applied.
    pub fn open(protocol: Protocol, view: &ManifestView) -> Self {
        let (cursor, stuck) = match ChainCursor::after(view.replay_after_wal_id) {
            Ok(c) => (c, false),
            Err(_) => (ChainCursor { next: WalId::MAX, max_fence_epoch: 0, last_read: view.replay_after_wal_id }, true),
        };
        Follower {
            protocol,
            version: view.version,
            replay_after_wal_id: view.replay_after_wal_id,
            cursor,
            applied: Vec::new(),
            limit: None,
            stuck,
        }
    }

    /// The walk that opens a durable checkpoint: from its pinned version's
    /// replay point up to its `wal_end`, no further.
    pub fn for_checkpoint(protocol: Protocol, checkpoint: &Checkpoint) -> Self {
        let view = ManifestView {
            version: checkpoint.version,
            replay_after_wal_id: checkpoint.replay_after_wal_id,
            ..ManifestView::default()
        };
        Follower { limit: checkpoint.wal_end, ..Follower::open(protocol, &view) }
    }

    /// The manifest version this follower reads.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// `replay_after_wal_id` of that version.
    pub fn replay_after_wal_id(&self) -> WalId {
        self.replay_after_wal_id
    }

    /// The data WALs applied past the version, in chain order.
    pub fn applied(&self) -> &[WalId] {
        &self.applied
    }

    /// The last chain position read (a durable checkpoint's `wal_end`).
    pub fn last_read(&self) -> WalId {
        self.cursor.last_read
    }

    /// Adopts a newer version (`FollowerPoll`, `FollowerRefresh`). WALs applied beyond its
    /// `replay_after_wal_id` stay applied (their writes are not in its SSTs),
    /// and the walk goes on from where it was, or from the version's replay
    /// point if that is further. Returns false, changing nothing, for a
    /// version that is not newer.
    pub fn adopt(&mut self, view: &ManifestView) -> bool {
        if view.version <= self.version {
            return false;
        }
        self.version = view.version;
        self.replay_after_wal_id = view.replay_after_wal_id;
        match self.protocol {
            // Mutant: the new version's SSTs are taken as the whole view.
            #[cfg(feature = "mutants")]
            Protocol::FollowerDropsApplied => self.applied.clear(),
            _ => self.applied.retain(|w| *w > view.replay_after_wal_id),
        }
        if self.cursor.next <= view.replay_after_wal_id {
            match ChainCursor::after(view.replay_after_wal_id) {
                Ok(c) => self.cursor = c,
                Err(_) => self.stuck = true,
            }
        }
        true
    }

    /// The chain position to read next, given the WAL listing; `None` at the
    /// first missing position (or past a checkpoint's `wal_end`).
    pub fn next_to_read(&self, listed: &BTreeSet<WalId>) -> Option<WalId> {
        if self.stuck || self.limit.is_some_and(|end| self.cursor.next > end) {
            return None;
        }
        let next = self.cursor.next;
        if listed.contains(&next) {
            return Some(next);
        }
        match self.protocol {
            // Mutant: jump the gap to the next listed WAL.
            #[cfg(feature = "mutants")]
            Protocol::FollowerAppliesPastGap => listed.range(next..).next().copied().filter(|w| self.limit.is_none_or(|end| *w <= end)),
            _ => None,
        }
    }

    /// Records the header of the object at [`Follower::next_to_read`]
    /// (`wal_id`) and decides it.
    pub fn observe(&mut self, wal_id: WalId, header: WalHeader) -> ChainStep {
        #[cfg(feature = "mutants")]
        if self.protocol == Protocol::FollowerIgnoresFences && matches!(header.kind, super::WalKind::Fence { .. }) {
            // Mutant: a fence is read as an empty WAL; the chain goes on at
            // the next id, through a fenced writer's late uploads.
            self.cursor.next = wal_id.saturating_add(1);
            self.cursor.last_read = wal_id;
            return ChainStep::Skip;
        }
        // Chain positions only grow; a gap jumped by a mutant moves the cursor too.
        self.cursor.next = self.cursor.next.max(wal_id);
        match self.cursor.step(wal_id, header) {
            Ok(ChainStep::Replay) => {
                self.applied.push(wal_id);
                ChainStep::Replay
            }
            Ok(step) => step,
            Err(_) => {
                self.stuck = true;
                ChainStep::Skip
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::recovery::tests::{data, fence};
    use crate::protocol::CheckpointOwner;
    use std::collections::BTreeMap;

    fn view(version: u64, replay_after_wal_id: WalId) -> ManifestView {
        ManifestView { version, replay_after_wal_id, ..ManifestView::default() }
    }

    /// Applies everything the listing allows.
    fn poll(f: &mut Follower, store: &BTreeMap<WalId, WalHeader>) {
        let listed: BTreeSet<WalId> = store.keys().copied().collect();
        while let Some(id) = f.next_to_read(&listed) {
            f.observe(id, store[&id]);
        }
    }

    #[test]
    fn applies_the_contiguous_chain_and_waits_at_the_gap() {
        let mut store = BTreeMap::from([(1, data(1)), (2, data(1)), (4, data(1))]);
        let mut f = Follower::open(Protocol::Shipped, &view(2, 0));
        poll(&mut f, &store);
        assert_eq!(f.applied(), [1, 2], "never past the gap at 3");
        store.insert(3, data(1));
        poll(&mut f, &store);
        assert_eq!(f.applied(), [1, 2, 3, 4], "the gap filled: the chain goes on");
    }

    #[test]
    fn follows_fences_and_skips_fenced_uploads() {
        // Epoch 2 fenced at 2 and continues at 6; epoch 1's late upload at 3.
        let store = BTreeMap::from([(1, data(1)), (2, fence(2, 6)), (3, data(1)), (6, data(2))]);
        let mut f = Follower::open(Protocol::Shipped, &view(2, 0));
        poll(&mut f, &store);
        assert_eq!(f.applied(), [1, 6]);
        assert_eq!(f.last_read(), 6);
    }

    #[test]
    fn adopting_keeps_what_lies_past_the_new_version() {
        let store = BTreeMap::from([(1, data(1)), (2, data(1)), (3, data(1))]);
        let mut f = Follower::open(Protocol::Shipped, &view(2, 0));
        poll(&mut f, &store);
        assert!(!f.adopt(&view(2, 2)), "not newer");
        assert!(f.adopt(&view(5, 2)));
        assert_eq!((f.version(), f.replay_after_wal_id(), f.applied()), (5, 2, &[3][..]));
        assert_eq!(f.next_to_read(&store.keys().copied().collect()), None, "still at the gap after 3");
        // A version past the follower's position restarts the walk there.
        let mut behind = Follower::open(Protocol::Shipped, &view(2, 0));
        assert!(behind.adopt(&view(6, 2)));
        poll(&mut behind, &store);
        assert_eq!(behind.applied(), [3]);
    }

    #[test]
    fn a_checkpoint_replays_up_to_its_wal_end_only() {
        let store = BTreeMap::from([(3, data(1)), (4, data(1)), (5, data(1))]);
        let ck = Checkpoint { id: 1, version: 4, replay_after_wal_id: 2, wal_end: Some(4), expires_at: None, owner: CheckpointOwner::Client };
        let mut f = Follower::for_checkpoint(Protocol::Shipped, &ck);
        poll(&mut f, &store);
        assert_eq!(f.applied(), [3, 4]);
    }

    #[test]
    fn ids_out_of_range_stop_the_walk() {
        let store = BTreeMap::from([(1, fence(2, u64::MAX))]);
        let mut f = Follower::open(Protocol::Shipped, &view(2, 0));
        poll(&mut f, &store);
        assert!(f.applied().is_empty());
        let f = Follower::open(Protocol::Shipped, &view(2, u64::MAX));
        assert_eq!(f.next_to_read(&BTreeSet::from([1])), None);
    }

    #[cfg(feature = "mutants")]
    #[test]
    fn drops_applied_mutant_forgets_wals_past_the_new_version() {
        let store = BTreeMap::from([(1, data(1)), (2, data(1))]);
        let mut f = Follower::open(Protocol::FollowerDropsApplied, &view(2, 0));
        poll(&mut f, &store);
        assert!(f.adopt(&view(3, 1)));
        assert!(f.applied().is_empty(), "WAL 2 is past version 3 but forgotten");
        poll(&mut f, &store);
        assert!(f.applied().is_empty(), "and never read again");
    }

    #[cfg(feature = "mutants")]
    #[test]
    fn mutants_apply_past_gaps_and_through_fences() {
        let store = BTreeMap::from([(1, data(1)), (3, data(1))]);
        let mut f = Follower::open(Protocol::FollowerAppliesPastGap, &view(2, 0));
        poll(&mut f, &store);
        assert_eq!(f.applied(), [1, 3], "3 without 2");
        let store = BTreeMap::from([(1, fence(2, 5)), (2, data(1)), (5, data(2))]);
        let mut f = Follower::open(Protocol::FollowerIgnoresFences, &view(2, 0));
        poll(&mut f, &store);
        assert_eq!(f.applied(), [2], "a fenced writer's upload, then the gap at 3");
    }
}
