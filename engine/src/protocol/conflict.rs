//! Ambiguous creates: telling our own object from another writer's.
//!
//! object_store's S3 client retries 5xx/429 responses, so a create-if-absent
//! whose first attempt landed can return `AlreadyExists`. Every WAL and
//! manifest object carries its writer's epoch and a unique token; on a
//! conflict the writer reads the object back and decides here, never assuming
//! that it was fenced or that it won.

use super::{Epoch, Protocol};

/// Who wrote an object: the epoch and the per-object unique token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectOwner {
    /// The epoch of the writer that created it.
    pub writer_epoch: Epoch,
    /// The random token of that create.
    pub token: u64,
}

/// What a create that reported `AlreadyExists` actually means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CreateConflict {
    /// The object is ours: an earlier attempt landed. The create succeeded.
    Ours,
    /// A newer epoch holds the id: this writer is fenced (I5).
    Fenced { by: Epoch },
    /// An older or equal epoch's different object holds the id: a fenced or
    /// crashed writer's late upload. The id is unusable; never acknowledge on it.
    TakenByOther { owner: Epoch },
}

/// Decides a create conflict from the object read back.
pub fn resolve_create_conflict(protocol: Protocol, mine: ObjectOwner, existing: ObjectOwner) -> CreateConflict {
    match protocol {
        #[cfg(feature = "mutants")]
        Protocol::ExistsIsOurs => return CreateConflict::Ours,
        #[cfg(feature = "mutants")]
        Protocol::ExistsIsFenced => return CreateConflict::Fenced { by: existing.writer_epoch.max(mine.writer_epoch) },
        _ => {}
    }
    if existing == mine {
        CreateConflict::Ours
    } else if existing.writer_epoch > mine.writer_epoch {
        CreateConflict::Fenced { by: existing.writer_epoch }
    } else {
        CreateConflict::TakenByOther { owner: existing.writer_epoch }
    }
}

/// A data WAL's create reported `AlreadyExists`, and the read-back found no
/// object: it existed and was deleted since. Only GC deletes WALs, and only
/// at or below a manifest's `replay_after_wal_id`, whose writes are in SSTs
/// that manifest lists. If this writer's own latest manifest replays after
/// `wal_id` (it recorded the memtable of those writes), the WAL was ours and
/// its writes are durable: `Ours`. Otherwise nothing explains it: `None`,
/// and the writer fails rather than guess.
pub fn on_read_back_missing(wal_id: super::WalId, own_replay_after_wal_id: super::WalId) -> Option<CreateConflict> {
    (wal_id <= own_replay_after_wal_id).then_some(CreateConflict::Ours)
}

/// What `Fence` does when the create of its fence WAL reported
/// `AlreadyExists` and the object was read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FenceConflict {
    /// Our own earlier attempt landed: the fence is placed.
    Placed,
    /// Another writer's object holds the id (an older writer's late upload,
    /// or a newer epoch's): list and walk the chain again, which fences
    /// above it or finds this recovery fenced.
    WalkAgain,
    /// Recovery stops without completing (the open fails): only a mutant.
    GiveUp,
}

/// Decides what recovery does after its fence create hit `AlreadyExists`;
/// `conflict` is [`resolve_create_conflict`] of the object read back.
pub fn on_fence_conflict(protocol: Protocol, conflict: CreateConflict) -> FenceConflict {
    match conflict {
        CreateConflict::Ours => FenceConflict::Placed,
        #[cfg(feature = "mutants")]
        CreateConflict::TakenByOther { .. } if protocol == Protocol::FenceRaceGivesUp => FenceConflict::GiveUp,
        CreateConflict::Fenced { .. } | CreateConflict::TakenByOther { .. } => {
            let _ = protocol;
            FenceConflict::WalkAgain
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wal_gc_deleted_under_a_read_back_is_ours_only_below_our_replay_point() {
        assert_eq!(on_read_back_missing(7, 9), Some(CreateConflict::Ours));
        assert_eq!(on_read_back_missing(9, 9), Some(CreateConflict::Ours));
        assert_eq!(on_read_back_missing(10, 9), None);
    }

    #[test]
    fn a_fence_conflict_walks_again_unless_ours() {
        assert_eq!(on_fence_conflict(Protocol::Shipped, CreateConflict::Ours), FenceConflict::Placed);
        assert_eq!(on_fence_conflict(Protocol::Shipped, CreateConflict::Fenced { by: 4 }), FenceConflict::WalkAgain);
        assert_eq!(on_fence_conflict(Protocol::Shipped, CreateConflict::TakenByOther { owner: 2 }), FenceConflict::WalkAgain);
    }

    #[cfg(feature = "mutants")]
    #[test]
    fn fence_race_gives_up_gives_up_on_an_older_upload() {
        let p = Protocol::FenceRaceGivesUp;
        assert_eq!(on_fence_conflict(p, CreateConflict::TakenByOther { owner: 2 }), FenceConflict::GiveUp);
        assert_eq!(on_fence_conflict(p, CreateConflict::Ours), FenceConflict::Placed);
    }

    #[test]
    fn conflicts_resolve_by_epoch_and_token() {
        let me = ObjectOwner { writer_epoch: 3, token: 42 };
        assert_eq!(resolve_create_conflict(Protocol::Shipped, me, me), CreateConflict::Ours);
        assert_eq!(
            resolve_create_conflict(Protocol::Shipped, me, ObjectOwner { writer_epoch: 4, token: 1 }),
            CreateConflict::Fenced { by: 4 }
        );
        assert_eq!(
            resolve_create_conflict(Protocol::Shipped, me, ObjectOwner { writer_epoch: 2, token: 42 }),
            CreateConflict::TakenByOther { owner: 2 }
        );
        assert_eq!(
            resolve_create_conflict(Protocol::Shipped, me, ObjectOwner { writer_epoch: 3, token: 7 }),
            CreateConflict::TakenByOther { owner: 3 }
        );
    }
}
