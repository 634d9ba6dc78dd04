//! Recovery: which WALs to replay, where the chain ends, and how to fence.
//!
//! The WAL chain starts at `replay_after_wal_id + 1` and follows consecutive
//! ids; a fence WAL redirects it to the id where its writer's WALs begin.
//! The walk stops at the first missing position (the gap): WALs beyond a gap
//! were never acknowledged (the watermark cannot pass a gap), and replaying
//! them would break I4. Recovery then fences at the gap so no older writer can
//! ever extend the chain it just replayed (I5).

use std::collections::BTreeSet;
use std::fmt;

use super::{Epoch, ManifestView, Protocol, WalId, WalLog, MAX_ID};

/// How many WAL ids a recovered writer must have left below
/// [`MAX_WAL_ID`](super::wal_log::MAX_WAL_ID): recovery refuses a chain that
/// leaves fewer (only a hostile or buggy store gets there), so a writer runs
/// out of ids only after 2^40 WALs without reopening (35 years at one WAL per
/// millisecond). Past that its uploads stop (`WalLog::may_start_upload`) and
/// nothing more is acknowledged, so the next recovery can still fence.
pub const WAL_ID_HEADROOM: u64 = 1 << 40;

/// What a WAL object holds, as far as the protocol cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WalKind {
    /// Writes of the writer with this epoch.
    Data,
    /// A fence written by recovery: the chain continues at `next_wal_id`, and
    /// the ids in between belong to fenced writers (never replayed).
    Fence { next_wal_id: WalId },
}

/// The header every WAL object carries: its writer's epoch and its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WalHeader {
    pub writer_epoch: Epoch,
    pub kind: WalKind,
}

/// Why recovery cannot complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecoveryError {
    /// I1 violated: the manifest requires WAL `id`, which does not exist.
    MissingWal { id: WalId, wal_id_last_seen: WalId },
    /// A newer epoch wrote into the chain: this recovery is itself fenced.
    Fenced { by: Epoch },
    /// A WAL id the walk derives from a stored value would leave the ids'
    /// range (above [`MAX_ID`], or fewer than [`WAL_ID_HEADROOM`] ids left for
    /// the new writer): `field` of the manifest (`wal_id: None`) or of WAL
    /// `wal_id` is `value`. Never wrapped: the engine reports it as `Corrupt`
    /// naming that object, and recovery writes nothing.
    OutOfRange { wal_id: Option<WalId>, field: &'static str, value: u64 },
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::MissingWal { id, wal_id_last_seen } => write!(
                f,
                "MissingWal: manifest references wal {wal_id_last_seen} (wal_id_last_seen), but wal {id} does not exist"
            ),
            RecoveryError::Fenced { by } => write!(f, "Fenced: epoch {by} wrote into the WAL chain"),
            RecoveryError::OutOfRange { wal_id, field, value } => {
                match wal_id {
                    Some(id) => write!(f, "wal {id}: ")?,
                    None => write!(f, "manifest: ")?,
                }
                write!(f, "{field} {value} leaves no room for the WAL ids after it")
            }
        }
    }
}

impl std::error::Error for RecoveryError {}

/// The fence recovery creates at the gap (`PutMode::Create`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fence {
    pub wal_id: WalId,
    pub header: WalHeader,
}

/// The outcome of a walk: what to replay and how the new writer continues.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecoveryPlan {
    pub writer_epoch: Epoch,
    /// Data WALs to replay, in chain order.
    pub replay: Vec<WalId>,
    /// Chain WALs skipped: uploads of writers fenced earlier in the chain.
    pub skipped: Vec<WalId>,
    /// The last data WAL replayed (or `replay_after_wal_id`): the recovered
    /// memtable's `last_wal_id`, so a later `replay_after_wal_id` never points
    /// at a fence.
    pub last_replayed_wal_id: WalId,
    /// The first missing chain position.
    pub gap: WalId,
    /// The fence to create at the gap. `None` after a clean close (see
    /// [`ChainWalk::after_clean_close`]) and for the `no-fence` mutant.
    pub fence: Option<Fence>,
    /// Every fence on the walked chain, and the one to create, ascending. The
    /// new writer records them in every manifest it writes
    /// ([`WriterEdit::fences`](super::WriterEdit::fences)), so GC knows
    /// them: a manifest whose `replay_after_wal_id >= f` lists fence `f` (I7).
    pub fences: Vec<WalId>,
    /// The first WAL id of the new writer.
    pub next_wal_id: WalId,
}

impl RecoveryPlan {
    /// The new writer's WAL log, continuing after the fence.
    pub fn wal_log(&self, protocol: Protocol, max_inflight: u64) -> WalLog {
        WalLog::new(protocol, self.writer_epoch, self.next_wal_id, max_inflight)
    }
}

/// One step along the WAL chain: what the object at the current position
/// means, decided once for recovery ([`ChainWalk`]), followers and
/// checkpoints ([`Follower`](super::Follower)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChainStep {
    /// Data of a writer not fenced earlier in the chain: replay it.
    Replay,
    /// Data of a writer fenced earlier in the chain: never acknowledged, skip it.
    Skip,
    /// A fence: the chain continues at its `next_wal_id`.
    Fence,
}

/// The position on the WAL chain and the newest fence epoch passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ChainCursor {
    /// The chain position to read next.
    pub(crate) next: WalId,
    /// The newest epoch of a fence passed since the start.
    pub(crate) max_fence_epoch: Epoch,
    /// The last position read (the start's predecessor before any).
    pub(crate) last_read: WalId,
}

impl ChainCursor {
    /// A cursor at the first position after `replay_after_wal_id`, or the
    /// error naming the field if that leaves the id range.
    pub(crate) fn after(replay_after_wal_id: WalId) -> Result<Self, RecoveryError> {
        match replay_after_wal_id.checked_add(1).filter(|s| *s <= MAX_ID) {
            Some(next) => Ok(ChainCursor { next, max_fence_epoch: 0, last_read: replay_after_wal_id }),
            None => Err(RecoveryError::OutOfRange { wal_id: None, field: "replay_after_wal_id", value: replay_after_wal_id }),
        }
    }

    /// Decides the object at the current position and moves past it.
    pub(crate) fn step(&mut self, wal_id: WalId, header: WalHeader) -> Result<ChainStep, RecoveryError> {
        // The position after this one; checked, since `wal_id` is a listed
        // name and a fence's `next_wal_id` a stored field.
        let Some(after) = wal_id.checked_add(1).filter(|a| *a <= MAX_ID) else {
            return Err(RecoveryError::OutOfRange { wal_id: Some(wal_id), field: "wal id", value: wal_id });
        };
        self.last_read = wal_id;
        match header.kind {
            WalKind::Fence { next_wal_id } => {
                if next_wal_id > MAX_ID {
                    return Err(RecoveryError::OutOfRange { wal_id: Some(wal_id), field: "next_wal_id", value: next_wal_id });
                }
                self.max_fence_epoch = self.max_fence_epoch.max(header.writer_epoch);
                // Fences only ever move the chain forward.
                self.next = next_wal_id.max(after);
                Ok(ChainStep::Fence)
            }
            WalKind::Data if header.writer_epoch < self.max_fence_epoch => {
                self.next = after;
                Ok(ChainStep::Skip)
            }
            WalKind::Data => {
                self.next = after;
                Ok(ChainStep::Replay)
            }
        }
    }
}

/// A sans-IO walk of the WAL chain. The caller lists `wal/`, then repeatedly
/// reads the header of [`ChainWalk::next_to_read`] and passes it to
/// [`ChainWalk::observe`], and finally calls [`ChainWalk::finish`].
#[derive(Clone, Debug)]
pub struct ChainWalk {
    protocol: Protocol,
    manifest: ManifestView,
    writer_epoch: Epoch,
    inflight_cap: u64,
    listed: BTreeSet<WalId>,
    cursor: ChainCursor,
    replay: Vec<WalId>,
    skipped: Vec<WalId>,
    last_replayed: WalId,
    fenced_by: Option<Epoch>,
    fences: Vec<WalId>,
    clean_close: bool,
    /// Set when a stored value would push the chain out of the id range.
    out_of_range: Option<RecoveryError>,
}

impl ChainWalk {
    /// Starts a walk for a recovering writer of `writer_epoch` (already
    /// claimed in `manifest`) over the listed WAL ids. `inflight_cap` bounds
    /// every writer's upload window (see `MAX_INFLIGHT_WAL_UPLOADS`).
    pub fn new(
        protocol: Protocol,
        manifest: &ManifestView,
        writer_epoch: Epoch,
        listed: impl IntoIterator<Item = WalId>,
        inflight_cap: u64,
    ) -> Self {
        let (cursor, out_of_range) = match ChainCursor::after(manifest.replay_after_wal_id) {
            Ok(cursor) => (cursor, None),
            Err(e) => (ChainCursor { next: MAX_ID, max_fence_epoch: 0, last_read: MAX_ID }, Some(e)),
        };
        let start = cursor.next;
        let mut walk = ChainWalk {
            protocol,
            manifest: *manifest,
            writer_epoch,
            inflight_cap: inflight_cap.max(1),
            listed: listed.into_iter().filter(|id| *id >= start).collect(),
            cursor,
            replay: Vec::new(),
            skipped: Vec::new(),
            last_replayed: manifest.replay_after_wal_id,
            fenced_by: None,
            fences: Vec::new(),
            clean_close: false,
            out_of_range,
        };
        walk.skip_gap_if_mutant();
        walk
    }

    /// `Recover` from a version whose writer closed cleanly (`writer_closed`
    /// of the version the claim was made *from*; `claim_epoch` resets it):
    /// no fence is written and the new writer continues at the gap. The
    /// closed writer never uploads again, and every older writer is already
    /// held below a fence on the chain (its uploads stay below that fence's
    /// jump, which the gap is at or beyond).
    pub fn after_clean_close(mut self, claimed_from_closed: bool) -> Self {
        self.clean_close = claimed_from_closed;
        self
    }

    /// The chain position whose header must be read next, or `None` when the
    /// walk has reached the gap.
    pub fn next_to_read(&self) -> Option<WalId> {
        if self.fenced_by.is_some() || self.out_of_range.is_some() {
            return None;
        }
        self.listed.contains(&self.cursor.next).then_some(self.cursor.next)
    }

    /// Records the header of the object at [`ChainWalk::next_to_read`].
    pub fn observe(&mut self, wal_id: WalId, header: WalHeader) {
        debug_assert_eq!(Some(wal_id), self.next_to_read(), "observed off the chain");
        if header.writer_epoch > self.writer_epoch {
            self.fenced_by = Some(header.writer_epoch);
            return;
        }
        match self.cursor.step(wal_id, header) {
            Err(e) => {
                self.out_of_range = Some(e);
                return;
            }
            Ok(ChainStep::Fence) => self.fences.push(wal_id),
            Ok(ChainStep::Skip) => self.skipped.push(wal_id),
            Ok(ChainStep::Replay) => {
                self.replay.push(wal_id);
                self.last_replayed = wal_id;
            }
        }
        self.skip_gap_if_mutant();
    }

    #[cfg(feature = "mutants")]
    fn skip_gap_if_mutant(&mut self) {
        if self.protocol == Protocol::ReplayAcrossGap && !self.listed.contains(&self.cursor.next) {
            // Mutant: jump over the gap to the next listed WAL.
            if let Some(&above) = self.listed.range(self.cursor.next..).next() {
                self.cursor.next = above;
            }
        }
    }

    #[cfg(not(feature = "mutants"))]
    fn skip_gap_if_mutant(&mut self) {}

    /// Ends the walk: checks I1 and decides the fence and the next WAL id.
    pub fn finish(self) -> Result<RecoveryPlan, RecoveryError> {
        if let Some(by) = self.fenced_by {
            return Err(RecoveryError::Fenced { by });
        }
        if let Some(e) = self.out_of_range {
            return Err(e);
        }
        debug_assert!(self.next_to_read().is_none(), "finish before the walk reached the gap");
        let gap = self.cursor.next;
        // I1: every chain position up to `wal_id_last_seen` must exist.
        if gap <= self.manifest.wal_id_last_seen {
            return Err(RecoveryError::MissingWal { id: gap, wal_id_last_seen: self.manifest.wal_id_last_seen });
        }
        let (fence, next_wal_id) = match self.protocol {
            _ if self.clean_close => (None, gap),
            #[cfg(feature = "mutants")]
            Protocol::NoFence => (None, gap),
            _ => {
                let next_wal_id = gap.saturating_add(self.inflight_cap);
                let header = WalHeader { writer_epoch: self.writer_epoch, kind: WalKind::Fence { next_wal_id } };
                (Some(Fence { wal_id: gap, header }), next_wal_id)
            }
        };
        // The new writer needs room for its WALs, and the recovery after it
        // room for a fence's jump above them (`MAX_WAL_ID`).
        let room = next_wal_id.checked_add(WAL_ID_HEADROOM).is_some_and(|end| end <= super::wal_log::MAX_WAL_ID);
        if !room {
            // Name the stored value the gap came from: the last fence on the
            // chain, else the last WAL, else the manifest.
            let (wal_id, field, value) = match (self.fences.last(), self.replay.last().max(self.skipped.last())) {
                (Some(&f), last) if last.is_none_or(|l| *l < f) => (Some(f), "next_wal_id", gap),
                (_, Some(&l)) => (Some(l), "wal id", l),
                _ => (None, "replay_after_wal_id", self.manifest.replay_after_wal_id),
            };
            return Err(RecoveryError::OutOfRange { wal_id, field, value });
        }
        let mut fences = self.fences;
        fences.extend(fence.map(|f| f.wal_id));
        fences.sort_unstable();
        fences.dedup();
        Ok(RecoveryPlan {
            fences,
            writer_epoch: self.writer_epoch,
            replay: self.replay,
            skipped: self.skipped,
            last_replayed_wal_id: self.last_replayed,
            gap,
            fence,
            next_wal_id,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    pub(in crate::protocol) fn data(epoch: Epoch) -> WalHeader {
        WalHeader { writer_epoch: epoch, kind: WalKind::Data }
    }

    pub(in crate::protocol) fn fence(epoch: Epoch, next_wal_id: WalId) -> WalHeader {
        WalHeader { writer_epoch: epoch, kind: WalKind::Fence { next_wal_id } }
    }

    fn walk(
        protocol: Protocol,
        manifest: ManifestView,
        epoch: Epoch,
        store: &BTreeMap<WalId, WalHeader>,
    ) -> Result<RecoveryPlan, RecoveryError> {
        let mut w = ChainWalk::new(protocol, &manifest, epoch, store.keys().copied(), 4);
        while let Some(id) = w.next_to_read() {
            w.observe(id, store[&id]);
        }
        w.finish()
    }

    fn manifest(last_seen: WalId, replay_after: WalId) -> ManifestView {
        ManifestView { writer_epoch: 1, wal_id_last_seen: last_seen, replay_after_wal_id: replay_after, ..Default::default() }
    }

    #[test]
    fn replay_stops_at_the_first_gap_and_fences_there() {
        let store = BTreeMap::from([(1, data(1)), (2, data(1)), (4, data(1))]);
        let plan = walk(Protocol::Shipped, manifest(2, 0), 2, &store).unwrap();
        assert_eq!(plan.replay, vec![1, 2]);
        assert_eq!(plan.gap, 3);
        assert_eq!(plan.fence, Some(Fence { wal_id: 3, header: fence(2, 7) }));
        assert_eq!(plan.next_wal_id, 7);
        assert_eq!(plan.last_replayed_wal_id, 2);
    }

    #[test]
    fn missing_referenced_wal_is_reported_not_panicked() {
        let store = BTreeMap::from([(1, data(1))]);
        let err = walk(Protocol::Shipped, manifest(2, 0), 2, &store).unwrap_err();
        assert_eq!(err, RecoveryError::MissingWal { id: 2, wal_id_last_seen: 2 });
        assert!(err.to_string().contains("wal 2 does not exist"));
    }

    #[test]
    fn fence_jumps_over_zombie_uploads() {
        // Epoch 2 fenced at 3 and continued at 7; a zombie of epoch 1 landed 4.
        let store = BTreeMap::from([(1, data(1)), (2, data(1)), (3, fence(2, 7)), (4, data(1)), (7, data(2))]);
        let plan = walk(Protocol::Shipped, manifest(7, 0), 3, &store).unwrap();
        assert_eq!(plan.replay, vec![1, 2, 7]);
        assert_eq!(plan.gap, 8);
        assert_eq!(plan.next_wal_id, 12);
        assert_eq!(plan.fences, vec![3, 8], "the fence passed and the fence placed");
    }

    #[test]
    fn chain_ending_at_a_fence_continues_at_its_target() {
        let store = BTreeMap::from([(3, fence(2, 7))]);
        let plan = walk(Protocol::Shipped, manifest(2, 2), 3, &store).unwrap();
        assert!(plan.replay.is_empty());
        assert_eq!(plan.gap, 7);
        assert_eq!(plan.last_replayed_wal_id, 2, "never a fence");
    }

    #[test]
    fn after_a_clean_close_recovery_continues_at_the_gap_without_a_fence() {
        let store = BTreeMap::from([(1, data(1)), (2, fence(2, 6))]);
        let m = manifest(1, 1);
        let mut w = ChainWalk::new(Protocol::Shipped, &m, 3, store.keys().copied(), 4).after_clean_close(true);
        while let Some(id) = w.next_to_read() {
            w.observe(id, store[&id]);
        }
        let plan = w.finish().unwrap();
        assert_eq!((plan.fence, plan.gap, plan.next_wal_id), (None, 6, 6));
        assert_eq!(plan.fences, vec![2], "the fence passed is still recorded");
        // I1 is checked all the same.
        let w = ChainWalk::new(Protocol::Shipped, &manifest(3, 1), 3, [1], 4).after_clean_close(true);
        assert_eq!(w.finish(), Err(RecoveryError::MissingWal { id: 2, wal_id_last_seen: 3 }));
    }

    #[test]
    fn older_epoch_after_a_fence_is_skipped() {
        let store = BTreeMap::from([(1, fence(2, 2)), (2, data(1)), (3, data(2))]);
        let plan = walk(Protocol::Shipped, manifest(0, 0), 3, &store).unwrap();
        assert_eq!(plan.replay, vec![3]);
        assert_eq!(plan.skipped, vec![2]);
    }

    #[test]
    fn a_newer_epoch_in_the_chain_fences_the_recovery() {
        let store = BTreeMap::from([(1, data(5))]);
        assert_eq!(walk(Protocol::Shipped, manifest(0, 0), 3, &store), Err(RecoveryError::Fenced { by: 5 }));
    }

    /// Stored ids near `u64::MAX` end the walk with `OutOfRange` naming the
    /// object and field; never a wrap or a panic (these run in debug builds,
    /// where overflow panics).
    #[test]
    fn stored_ids_out_of_range_are_refused_not_wrapped() {
        use crate::protocol::{MAX_ID, MAX_WAL_ID};
        let store = BTreeMap::from([(1, fence(2, u64::MAX))]);
        assert_eq!(
            walk(Protocol::Shipped, manifest(0, 0), 3, &store),
            Err(RecoveryError::OutOfRange { wal_id: Some(1), field: "next_wal_id", value: u64::MAX })
        );
        let err = walk(Protocol::Shipped, manifest(0, u64::MAX), 3, &BTreeMap::new()).unwrap_err();
        assert_eq!(err, RecoveryError::OutOfRange { wal_id: None, field: "replay_after_wal_id", value: u64::MAX });
        assert!(err.to_string().contains("replay_after_wal_id 18446744073709551615 leaves no room"), "{err}");
        // A listed name at the top of the range, reached by the chain.
        let store = BTreeMap::from([(u64::MAX, data(1))]);
        let err = walk(Protocol::Shipped, manifest(0, u64::MAX - 1), 3, &store).unwrap_err();
        assert!(matches!(err, RecoveryError::OutOfRange { .. }), "{err:?}");
        // A fence whose target leaves the next writer no room.
        let store = BTreeMap::from([(1, fence(2, MAX_ID))]);
        assert_eq!(
            walk(Protocol::Shipped, manifest(0, 0), 3, &store),
            Err(RecoveryError::OutOfRange { wal_id: Some(1), field: "next_wal_id", value: MAX_ID })
        );
        // The last id with room still recovers.
        let last = MAX_WAL_ID - WAL_ID_HEADROOM - 4;
        let plan = walk(Protocol::Shipped, manifest(last - 1, last - 1), 3, &BTreeMap::new()).unwrap();
        assert_eq!(plan.next_wal_id, last + 4);
    }

    #[cfg(feature = "mutants")]
    #[test]
    fn mutants_change_the_walk() {
        let store = BTreeMap::from([(1, data(1)), (3, data(1))]);
        let gap = walk(Protocol::ReplayAcrossGap, manifest(0, 0), 2, &store).unwrap();
        assert_eq!(gap.replay, vec![1, 3], "replays WAL 3 without WAL 2");
        let nofence = walk(Protocol::NoFence, manifest(0, 0), 2, &store).unwrap();
        assert_eq!((nofence.fence, nofence.next_wal_id), (None, 2));
    }
}
