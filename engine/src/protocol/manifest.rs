//! What a manifest version records, and how recovery claims an epoch.

use super::{Epoch, SstSeq, WalId, WalLog};

/// The protocol-relevant scalar fields of a manifest version.
///
/// The engine's manifest object carries more (the [`Tree`](super::Tree) of
/// SSTs, fences and checkpoints, a token); the protocol decides these. The
/// writer owns `writer_epoch`, `wal_id_last_seen`, `replay_after_wal_id`,
/// `writer_closed` and `writer_sst_floor`; the compactor owns
/// `compactor_epoch` and `compactor_sst_floor`. Each copies the other's
/// fields forward unchanged (I8). An edit's result carries the version it
/// creates: `version + 1` of the version it was applied on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManifestView {
    /// The manifest version these fields are (or will be) stored in.
    pub version: u64,
    /// `writer_epoch`: the epoch of the newest writer that claimed the store.
    pub writer_epoch: Epoch,
    /// `wal_id_last_seen`: the newest WAL this manifest says exists (I1).
    pub wal_id_last_seen: WalId,
    /// `replay_after_wal_id`: every write in WALs `<=` this is in listed SSTs.
    pub replay_after_wal_id: WalId,
    /// `compactor_epoch`: the epoch of the newest compactor that claimed the
    /// store; an older compactor's update is `Fenced`.
    pub compactor_epoch: Epoch,
    /// `writer_closed`: the writer of `writer_epoch` closed cleanly (`Close`)
    /// and will never upload again, so the next recovery needs no fence.
    pub writer_closed: bool,
    /// Every SST of `writer_epoch` that its writer may still record has a
    /// sequence number at least this (GC deletes the writer's unrecorded SSTs
    /// below it).
    pub writer_sst_floor: SstSeq,
    /// The same for the compactor of `compactor_epoch`.
    pub compactor_sst_floor: SstSeq,
}

/// `WriteManifest`: the next version a writer records.
///
/// `flushed_through` is the last data WAL whose writes are all in L0 SSTs this
/// version lists (from `FlushL0`), if any new ones. `wal_id_last_seen` comes
/// from [`WalLog::wal_id_last_seen`], which in the shipped protocol is the
/// durable watermark, never `next_wal_id` (I1).
///
/// The compactor's field is copied forward; `writer_closed` is false (only
/// [`apply_writer_edit`](super::apply_writer_edit) with `close` sets it).
pub fn next_manifest(current: &ManifestView, log: &WalLog, flushed_through: Option<WalId>) -> ManifestView {
    ManifestView {
        version: current.version.saturating_add(1),
        writer_epoch: log.writer_epoch(),
        wal_id_last_seen: log.wal_id_last_seen(),
        replay_after_wal_id: current.replay_after_wal_id.max(flushed_through.unwrap_or(0)),
        writer_closed: false,
        ..*current
    }
}

/// `Recover`, step 1: the version a recovering writer creates to claim its
/// epoch. It keeps the WAL fields, so recovery still finds what the previous
/// version required; creating it with `PutMode::Create` fences older writers'
/// manifest writes. `writer_closed` is reset: the new writer is running.
/// Whether the *claimed-from* version was closed decides the fence (see
/// [`ChainWalk::after_clean_close`](super::ChainWalk::after_clean_close)).
pub fn claim_epoch(current: &ManifestView) -> ManifestView {
    // Saturating, never wrapping: an epoch past `MAX_ID` is refused before
    // the claimed version is written (`ManifestObject::successor`).
    ManifestView {
        version: current.version.saturating_add(1),
        writer_epoch: current.writer_epoch.saturating_add(1),
        writer_closed: false,
        writer_sst_floor: 0,
        ..*current
    }
}

/// `ClaimCompactor`: the version a starting compactor creates to claim its
/// epoch. Every writer field is kept; creating it with `PutMode::Create`
/// makes every older compactor's later update `Fenced` (on re-read).
pub fn claim_compactor_epoch(current: &ManifestView) -> ManifestView {
    // Saturating, as in `claim_epoch`.
    ManifestView {
        version: current.version.saturating_add(1),
        compactor_epoch: current.compactor_epoch.saturating_add(1),
        compactor_sst_floor: 0,
        ..*current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol;

    #[test]
    fn next_manifest_takes_the_watermark_and_the_flush() {
        let mut log = WalLog::new(Protocol::Shipped, 3, 1, 4);
        log.freeze();
        log.freeze();
        log.on_wal_durable(1);
        let current = ManifestView { version: 4, writer_epoch: 3, compactor_epoch: 2, writer_closed: true, compactor_sst_floor: 6, ..Default::default() };
        let next = next_manifest(&current, &log, Some(1));
        assert_eq!(
            next,
            ManifestView {
                version: 5,
                writer_epoch: 3,
                wal_id_last_seen: 1,
                replay_after_wal_id: 1,
                compactor_epoch: 2,
                writer_closed: false,
                writer_sst_floor: 0,
                compactor_sst_floor: 6
            }
        );
        let again = next_manifest(&next, &log, None);
        assert_eq!(again.replay_after_wal_id, 1, "replay_after_wal_id never moves back");
    }

    #[test]
    fn claim_bumps_the_epoch_and_reopens() {
        let m = ManifestView {
            version: 8,
            writer_epoch: 4,
            wal_id_last_seen: 9,
            replay_after_wal_id: 7,
            compactor_epoch: 3,
            writer_closed: true,
            writer_sst_floor: 5,
            compactor_sst_floor: 6,
        };
        assert_eq!(claim_epoch(&m), ManifestView { version: 9, writer_epoch: 5, writer_closed: false, writer_sst_floor: 0, ..m });
        assert_eq!(claim_compactor_epoch(&m), ManifestView { version: 9, compactor_epoch: 4, compactor_sst_floor: 0, ..m });
    }
}
