//! Claims and stops: what a claimant does when its create of the next
//! version finds it taken, and when a process learns that a newer epoch of
//! its role holds the store.
//!
//! A claimant (`Recover`'s epoch claim, `ClaimCompactor`) holds no epoch until
//! its create lands, so nothing can fence it: a version someone else created
//! means "claim again, above it". Only a process that already holds an epoch
//! is fenced, by a newer epoch of its own role.

use super::{Epoch, ManifestView, Role};

/// What a claim's create that reported `AlreadyExists` means, from the
/// object read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClaimTaken {
    /// Our own earlier attempt landed (an ambiguous create): the claim holds.
    Ours,
    /// Another process created the version: read the latest and claim above it.
    ClaimAgain,
}

/// Decides a claim's lost race by the token of the object read back.
pub fn on_claim_taken(my_token: u64, existing_token: u64) -> ClaimTaken {
    if existing_token == my_token {
        ClaimTaken::Ours
    } else {
        ClaimTaken::ClaimAgain
    }
}

/// The newer epoch of `role` that `latest` shows, if any: a process holding
/// `my_epoch` of that role must stop (I5 for the writer; a zombie compactor
/// for the compactor).
pub fn fenced_by(role: Role, my_epoch: Epoch, latest: &ManifestView) -> Option<Epoch> {
    let theirs = match role {
        Role::Writer => latest.writer_epoch,
        Role::Compactor => latest.compactor_epoch,
        // A client holds no epoch: nothing fences it.
        Role::Client => return None,
    };
    (theirs > my_epoch).then_some(theirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_never_fenced_only_ours_or_again() {
        assert_eq!(on_claim_taken(7, 7), ClaimTaken::Ours);
        assert_eq!(on_claim_taken(7, 8), ClaimTaken::ClaimAgain);
    }

    #[test]
    fn a_newer_epoch_of_the_same_role_fences() {
        let v = ManifestView { writer_epoch: 4, compactor_epoch: 2, ..Default::default() };
        assert_eq!(fenced_by(Role::Writer, 3, &v), Some(4));
        assert_eq!(fenced_by(Role::Writer, 4, &v), None);
        assert_eq!(fenced_by(Role::Compactor, 2, &v), None, "the writer's epoch is not the compactor's");
        assert_eq!(fenced_by(Role::Compactor, 1, &v), Some(2));
    }
}
