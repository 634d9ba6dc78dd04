//! Checkpoints: what a manifest version records about who still reads an
//! older version, and the edits that create, refresh, move and drop them.
//!
//! A checkpoint pins a manifest version, that version's tree, and the WAL
//! chain after its `replay_after_wal_id` (for a durable checkpoint, up to
//! `wal_end`). GC reads only the latest manifest, so everything it must keep
//! for older versions is recorded there: the checkpoints, and the SSTs a
//! compaction removed from the tree while some checkpoint still pinned an
//! older version ([`Retired`]). Every edit keeps the rest of the manifest as
//! it found it (I8).

use super::{Epoch, ManifestView, Protocol, Time, Tree, WalId};

/// A checkpoint's identifier, unique in the store's history (random in the
/// engine).
pub type CheckpointId = u128;

/// Who holds a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckpointOwner {
    /// The writer of this epoch pins what its own live trees read; a claim of
    /// a newer epoch drops it (the older writer is fenced) and `Close` drops
    /// its own.
    Writer(Epoch),
    /// Anyone else: a follower, a backup, a checkpoint made by `db.checkpoint`
    /// or the command line. Dropped by its holder, or by GC once expired.
    Client,
}

/// A checkpoint as recorded in the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checkpoint {
    pub id: CheckpointId,
    /// The pinned manifest version. A client's checkpoint pins the version
    /// created by the edit that adds or moves it, so it always names a
    /// version that exists while the checkpoint is live.
    pub version: u64,
    /// `replay_after_wal_id` of the pinned version: GC keeps every WAL after it.
    pub replay_after_wal_id: WalId,
    /// A durable checkpoint's last chain position at creation: opening it
    /// replays the chain up to here and no further, so it shows exactly the
    /// state at its creation. `None` for a follower's or the writer's pin.
    pub wal_end: Option<WalId>,
    /// Live while `now < expires_at`; `None`: until dropped.
    pub expires_at: Option<Time>,
    pub owner: CheckpointOwner,
}

impl Checkpoint {
    /// A durable client checkpoint: its holder reads exactly the pinned
    /// version's tree (and WALs up to `wal_end`), never a later version.
    pub fn reads_only_its_version(&self) -> bool {
        self.owner == CheckpointOwner::Client && self.wal_end.is_some()
    }

    /// GC's judgement: whether the checkpoint still protects what it pins at
    /// GC's `now`. `grace` is the clock skew GC tolerates between itself and
    /// a holder (the holder stops at `expires_at` on its own clock).
    pub fn is_live(&self, now: Time, grace: Time) -> bool {
        self.expires_at.is_none_or(|e| now < e.saturating_add(grace))
    }
}

/// The holder's judgement: whether it may still read through a checkpoint
/// that expires at `expires_at` (reads after it fail with a clear error).
pub fn may_use(expires_at: Option<Time>, now: Time) -> bool {
    expires_at.is_none_or(|e| now < e)
}

/// Guard of a refresh that keeps the pin where it is: refused once the
/// checkpoint has expired at the refresher's `now`, because a GC may already
/// have judged it expired and be deleting what it pins. The
/// `checkpoint-expiry-off-by-one` mutant still refreshes at the expiry instant.
pub fn may_refresh(protocol: Protocol, expires_at: Option<Time>, now: Time) -> bool {
    match protocol {
        #[cfg(feature = "mutants")]
        Protocol::CheckpointExpiryOffByOne => expires_at.is_none_or(|e| now <= e),
        _ => may_use(expires_at, now),
    }
}

/// An SST a compaction removed from the tree in manifest `version`: older
/// versions' trees may still reference it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Retired<S> {
    pub sst: S,
    pub version: u64,
}

/// A version a holder's live view derives from, with its replay point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pin {
    pub version: u64,
    pub replay_after_wal_id: WalId,
}

/// A client's checkpoint edit. Each is applied on the latest version and
/// creates the next one (one compare-and-set path, `Role::Client`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckpointEdit {
    /// Adds a client checkpoint pinning the version being created.
    Create { id: CheckpointId, expires_at: Option<Time>, wal_end: Option<WalId> },
    /// Extends a client checkpoint to `expires_at`; with `move_pin` also moves
    /// it to the version being created (a follower that adopts that version
    /// and holds no older view). Refused if it has expired at `now`.
    Refresh { id: CheckpointId, now: Time, expires_at: Option<Time>, move_pin: bool },
    /// Drops a client checkpoint.
    Delete { id: CheckpointId },
    /// GC's edit: drops every checkpoint expired at `now` (with `grace`).
    Expire { now: Time, grace: Time },
}

/// Why a checkpoint edit does not apply to the latest version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckpointRefused {
    /// `Create` of an id already recorded.
    Exists,
    /// The checkpoint is not in the latest version (dropped by its holder,
    /// or by GC once expired): its holder must not read through it any more.
    Missing,
    /// `Refresh` after the expiry: GC may be deleting what it pinned.
    Expired,
    /// Not a client checkpoint: writers' pins change only with their own edits.
    NotClient,
    /// A durable `Create` whose `wal_end` is below the replay point of the
    /// version it would pin: the walk that found it started from an older
    /// version, and GC may since have deleted WALs that version needed, so
    /// the walk stopped at a gap before WALs already acknowledged. The
    /// creator walks again from the latest version (I3, I16).
    ChainMoved,
}

/// The next version after `latest` with a checkpoint edit applied. Every
/// field but the checkpoints (and the pruned `retired` entries) is copied.
pub fn apply_checkpoint_edit<S: Clone + Eq>(
    protocol: Protocol,
    latest_view: &ManifestView,
    latest_tree: &Tree<S>,
    edit: &CheckpointEdit,
) -> Result<(ManifestView, Tree<S>), CheckpointRefused> {
    let view = ManifestView { version: latest_view.version.saturating_add(1), ..*latest_view };
    let mut tree = latest_tree.clone();
    let here = Pin { version: view.version, replay_after_wal_id: view.replay_after_wal_id };
    match *edit {
        CheckpointEdit::Create { id, expires_at, wal_end } => {
            if tree.checkpoints.iter().any(|c| c.id == id) {
                return Err(CheckpointRefused::Exists);
            }
            if wal_end.is_some_and(|end| end < here.replay_after_wal_id) {
                return Err(CheckpointRefused::ChainMoved);
            }
            tree.checkpoints.push(Checkpoint {
                id,
                version: here.version,
                replay_after_wal_id: here.replay_after_wal_id,
                wal_end,
                expires_at,
                owner: CheckpointOwner::Client,
            });
        }
        CheckpointEdit::Refresh { id, now, expires_at, move_pin } => {
            let c = tree.checkpoints.iter_mut().find(|c| c.id == id).ok_or(CheckpointRefused::Missing)?;
            if c.owner != CheckpointOwner::Client {
                return Err(CheckpointRefused::NotClient);
            }
            if !may_refresh(protocol, c.expires_at, now) {
                return Err(CheckpointRefused::Expired);
            }
            c.expires_at = expires_at;
            if move_pin {
                c.version = here.version;
                c.replay_after_wal_id = here.replay_after_wal_id;
            }
        }
        CheckpointEdit::Delete { id } => {
            let at = tree.checkpoints.iter().position(|c| c.id == id).ok_or(CheckpointRefused::Missing)?;
            if tree.checkpoints[at].owner != CheckpointOwner::Client {
                return Err(CheckpointRefused::NotClient);
            }
            tree.checkpoints.remove(at);
        }
        CheckpointEdit::Expire { now, grace } => tree.checkpoints.retain(|c| c.is_live(now, grace)),
    }
    prune_retired(&mut tree);
    Ok((view, tree))
}

/// The checkpoints `Expire` at `now` would drop.
pub fn expired<S>(tree: &Tree<S>, now: Time, grace: Time) -> Vec<CheckpointId> {
    tree.checkpoints.iter().filter(|c| !c.is_live(now, grace)).map(|c| c.id).collect()
}

/// Drops `retired` entries no checkpoint in the list can need: an SST
/// retired in version `r` is referenced only by versions below `r`, and
/// every checkpoint (live or expired: no clock is read here) pins `r` or
/// later. A checkpoint created later pins a later version still.
pub fn prune_retired<S>(tree: &mut Tree<S>) {
    let oldest = tree.checkpoints.iter().map(|c| c.version).min();
    tree.retired.retain(|r| oldest.is_some_and(|o| o < r.version));
}

/// Sets the writer's own pin: replaces any pin of `epoch` with one at `pin`.
pub(crate) fn set_writer_pin<S>(tree: &mut Tree<S>, epoch: Epoch, pin: Pin) {
    tree.checkpoints.retain(|c| c.owner != CheckpointOwner::Writer(epoch));
    tree.checkpoints.push(Checkpoint {
        id: writer_pin_id(epoch),
        version: pin.version,
        replay_after_wal_id: pin.replay_after_wal_id,
        wal_end: None,
        expires_at: None,
        owner: CheckpointOwner::Writer(epoch),
    });
}

/// The id of the writer's pin: the epoch in the top half, so it never meets
/// a client's (random) id in practice and two epochs never share one.
pub fn writer_pin_id(epoch: Epoch) -> CheckpointId {
    (CheckpointId::from(epoch) << 64) | CheckpointId::from(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ck(id: CheckpointId, version: u64, expires_at: Option<Time>) -> Checkpoint {
        Checkpoint { id, version, replay_after_wal_id: version, wal_end: None, expires_at, owner: CheckpointOwner::Client }
    }

    fn tree(checkpoints: Vec<Checkpoint>, retired: &[(u32, u64)]) -> Tree<u32> {
        Tree { checkpoints, retired: retired.iter().map(|&(sst, version)| Retired { sst, version }).collect(), ..Tree::default() }
    }

    fn view(version: u64, replay_after_wal_id: WalId) -> ManifestView {
        ManifestView { version, replay_after_wal_id, writer_epoch: 2, ..ManifestView::default() }
    }

    #[test]
    fn liveness_for_gc_and_for_the_holder() {
        let c = ck(1, 3, Some(10));
        assert!(c.is_live(9, 0) && !c.is_live(10, 0));
        assert!(c.is_live(11, 2) && !c.is_live(12, 2), "GC tolerates the grace");
        assert!(may_use(Some(10), 9) && !may_use(Some(10), 10));
        assert!(ck(1, 3, None).is_live(u64::MAX, 0) && may_use(None, u64::MAX));
        assert!(!may_refresh(Protocol::Shipped, Some(10), 10), "refused at the expiry instant");
        assert!(may_refresh(Protocol::Shipped, Some(10), 9));
    }

    #[cfg(feature = "mutants")]
    #[test]
    fn off_by_one_mutant_refreshes_at_the_expiry_instant() {
        assert!(may_refresh(Protocol::CheckpointExpiryOffByOne, Some(10), 10));
        assert!(!may_refresh(Protocol::CheckpointExpiryOffByOne, Some(10), 11));
    }

    #[test]
    fn create_pins_the_version_being_created() {
        let (v, t) = apply_checkpoint_edit(
            Protocol::Shipped,
            &view(4, 7),
            &tree(vec![], &[]),
            &CheckpointEdit::Create { id: 9, expires_at: Some(20), wal_end: Some(8) },
        )
        .unwrap();
        assert_eq!(v, view(5, 7), "every other field copied");
        assert_eq!(t.checkpoints, vec![Checkpoint { id: 9, version: 5, replay_after_wal_id: 7, wal_end: Some(8), expires_at: Some(20), owner: CheckpointOwner::Client }]);
        let again = apply_checkpoint_edit(Protocol::Shipped, &v, &t, &CheckpointEdit::Create { id: 9, expires_at: None, wal_end: None });
        assert_eq!(again, Err(CheckpointRefused::Exists));
        // A walk that ended below the version's replay point is stale.
        let stale = apply_checkpoint_edit(Protocol::Shipped, &view(5, 7), &t, &CheckpointEdit::Create { id: 10, expires_at: None, wal_end: Some(6) });
        assert_eq!(stale, Err(CheckpointRefused::ChainMoved));
        assert!(apply_checkpoint_edit(Protocol::Shipped, &view(5, 7), &t, &CheckpointEdit::Create { id: 10, expires_at: None, wal_end: Some(7) }).is_ok());
    }

    #[test]
    fn refresh_extends_and_moves_unless_expired_or_missing() {
        let t = tree(vec![ck(1, 2, Some(10))], &[(50, 3)]);
        let refresh = |now, move_pin| CheckpointEdit::Refresh { id: 1, now, expires_at: Some(now + 10), move_pin };
        let (_, kept) = apply_checkpoint_edit(Protocol::Shipped, &view(6, 5), &t, &refresh(9, false)).unwrap();
        assert_eq!((kept.checkpoints[0].version, kept.checkpoints[0].expires_at), (2, Some(19)));
        assert_eq!(kept.retired.len(), 1, "still pinned below the retirement");
        let (_, moved) = apply_checkpoint_edit(Protocol::Shipped, &view(6, 5), &t, &refresh(9, true)).unwrap();
        assert_eq!((moved.checkpoints[0].version, moved.checkpoints[0].replay_after_wal_id), (7, 5));
        assert!(moved.retired.is_empty(), "nothing pins below version 3 any more");
        assert_eq!(apply_checkpoint_edit(Protocol::Shipped, &view(6, 5), &t, &refresh(10, false)), Err(CheckpointRefused::Expired));
        let missing = CheckpointEdit::Refresh { id: 2, now: 0, expires_at: None, move_pin: false };
        assert_eq!(apply_checkpoint_edit(Protocol::Shipped, &view(6, 5), &t, &missing), Err(CheckpointRefused::Missing));
    }

    #[test]
    fn delete_and_expire_drop_client_checkpoints_only() {
        let mut t = tree(vec![ck(1, 2, Some(10)), ck(2, 4, None)], &[(50, 3), (51, 5)]);
        set_writer_pin(&mut t, 3, Pin { version: 6, replay_after_wal_id: 5 });
        let (_, gone) = apply_checkpoint_edit(Protocol::Shipped, &view(6, 5), &t, &CheckpointEdit::Delete { id: 1 }).unwrap();
        assert_eq!(gone.checkpoints.iter().map(|c| c.id).collect::<Vec<_>>(), vec![2, writer_pin_id(3)]);
        assert_eq!(gone.retired, vec![Retired { sst: 51, version: 5 }], "version 4 is the oldest pin now");
        let pin = CheckpointEdit::Delete { id: writer_pin_id(3) };
        assert_eq!(apply_checkpoint_edit(Protocol::Shipped, &view(6, 5), &t, &pin), Err(CheckpointRefused::NotClient));
        assert_eq!(expired(&t, 10, 0), vec![1]);
        assert!(expired(&t, 10, 1).is_empty());
        let (_, swept) = apply_checkpoint_edit(Protocol::Shipped, &view(6, 5), &t, &CheckpointEdit::Expire { now: 10, grace: 0 }).unwrap();
        assert_eq!(swept.checkpoints.len(), 2, "the client checkpoint without expiry and the writer's pin stay");
    }

    #[test]
    fn retired_entries_are_pruned_without_a_clock() {
        let mut t = tree(vec![ck(1, 3, Some(0))], &[(50, 3), (51, 4)]);
        prune_retired(&mut t);
        assert_eq!(t.retired, vec![Retired { sst: 51, version: 4 }], "an expired checkpoint still holds what it pins");
        t.checkpoints.clear();
        prune_retired(&mut t);
        assert!(t.retired.is_empty(), "no checkpoint: no older version is read");
    }

    #[test]
    fn writer_pins_replace_each_other_per_epoch() {
        let mut t = tree(vec![], &[]);
        set_writer_pin(&mut t, 2, Pin { version: 3, replay_after_wal_id: 1 });
        set_writer_pin(&mut t, 2, Pin { version: 5, replay_after_wal_id: 4 });
        assert_eq!(t.checkpoints.len(), 1);
        assert_eq!((t.checkpoints[0].version, t.checkpoints[0].owner), (5, CheckpointOwner::Writer(2)));
        assert_ne!(writer_pin_id(2), writer_pin_id(3));
    }
}
