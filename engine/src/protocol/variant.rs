//! Which protocol variant runs: the shipped one, or a named mutant.
//!
//! Mutants are known-wrong orderings kept compiled (feature `mutants`) so that
//! every checker — model, loom suite, crash harness — can show it catches them.

use std::fmt;

/// The protocol variant whose decisions the core makes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// The checked protocol: `wal_id_last_seen` from the durable watermark,
    /// watermark over the contiguous durable prefix, replay stops at the
    /// first gap, recovery fences at that gap.
    #[default]
    Shipped,
    /// SlateDB's bug (#433, #1018): `wal_id_last_seen` taken at `FreezeWal`.
    #[cfg(feature = "mutants")]
    AtFreeze,
    /// The watermark is the highest completed upload, not the contiguous prefix.
    #[cfg(feature = "mutants")]
    MaxCompleted,
    /// Recovery replays every listed WAL, skipping over gaps.
    #[cfg(feature = "mutants")]
    ReplayAcrossGap,
    /// Recovery writes no fence WAL and continues right after the chain end.
    #[cfg(feature = "mutants")]
    NoFence,
    /// GC deletes WALs up to what a writer has flushed to L0 before the
    /// manifest that records the flush is durable.
    #[cfg(feature = "mutants")]
    GcBeforeManifest,
    /// After losing the manifest race, the next version is built from the
    /// stale view without re-reading the latest.
    #[cfg(feature = "mutants")]
    BlindManifestWrite,
    /// GC treats fences as ordinary WALs.
    #[cfg(feature = "mutants")]
    GcDeletesFences,
    /// A manifest create that succeeded is trusted even when a higher version
    /// exists (the slot was emptied by `GcManifest`).
    #[cfg(feature = "mutants")]
    TrustReopenedSlot,
    /// A create that reported `AlreadyExists` is taken as success without
    /// reading the object back (it may be a fence or another writer's WAL).
    #[cfg(feature = "mutants")]
    ExistsIsOurs,
    /// A create that reported `AlreadyExists` is taken as fenced without
    /// reading the object back (it may be our own earlier attempt that landed).
    #[cfg(feature = "mutants")]
    ExistsIsFenced,
    /// Recovery whose fence create finds an older writer's late upload at the
    /// fence id gives up (the open fails, "retry later") instead of listing
    /// again and fencing above it: recovery need not complete (I11).
    #[cfg(feature = "mutants")]
    FenceRaceGivesUp,
    /// A follower at a missing chain position applies the next listed WAL.
    #[cfg(feature = "mutants")]
    FollowerAppliesPastGap,
    /// A follower reads a fence as an empty WAL and goes on at the next id,
    /// into a fenced writer's late uploads.
    #[cfg(feature = "mutants")]
    FollowerIgnoresFences,
    /// A follower adopting a newer version forgets the WALs it applied past
    /// that version's replay point, though their writes are not in its SSTs.
    #[cfg(feature = "mutants")]
    FollowerDropsApplied,
    /// GC ignores checkpoints: it keeps only what the latest version needs.
    #[cfg(feature = "mutants")]
    GcIgnoresCheckpoints,
    /// GC deletes SSTs a compaction retired although a live checkpoint pins
    /// an older version that references them.
    #[cfg(feature = "mutants")]
    GcIgnoresRetired,
    /// GC deletes every SST the latest version does not reference, including
    /// outputs their writer or compactor is about to record.
    #[cfg(feature = "mutants")]
    GcIgnoresFloors,
    /// A compaction records an input as retired only if a checkpoint's pinned
    /// version holds it, for moving holders too (a follower, a writer's pin),
    /// which may read trees newer than the version they pin.
    #[cfg(feature = "mutants")]
    RetiredByPinnedTree,
    /// A refresh that keeps the pin is accepted at the expiry instant, when a
    /// GC may already have judged the checkpoint expired.
    #[cfg(feature = "mutants")]
    CheckpointExpiryOffByOne,
}

/// A protocol name that is neither `shipped` nor a compiled mutant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProtocol(pub String);

impl fmt::Display for UnknownProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.name()).collect();
        write!(f, "unknown protocol `{}` (known: {})", self.0, names.join(", "))
    }
}

impl std::error::Error for UnknownProtocol {}

impl Protocol {
    /// The shipped protocol followed by every compiled mutant.
    pub const ALL: &'static [Protocol] = &[
        Protocol::Shipped,
        #[cfg(feature = "mutants")]
        Protocol::AtFreeze,
        #[cfg(feature = "mutants")]
        Protocol::MaxCompleted,
        #[cfg(feature = "mutants")]
        Protocol::ReplayAcrossGap,
        #[cfg(feature = "mutants")]
        Protocol::NoFence,
        #[cfg(feature = "mutants")]
        Protocol::GcBeforeManifest,
        #[cfg(feature = "mutants")]
        Protocol::BlindManifestWrite,
        #[cfg(feature = "mutants")]
        Protocol::GcDeletesFences,
        #[cfg(feature = "mutants")]
        Protocol::TrustReopenedSlot,
        #[cfg(feature = "mutants")]
        Protocol::ExistsIsOurs,
        #[cfg(feature = "mutants")]
        Protocol::ExistsIsFenced,
        #[cfg(feature = "mutants")]
        Protocol::FenceRaceGivesUp,
        #[cfg(feature = "mutants")]
        Protocol::FollowerAppliesPastGap,
        #[cfg(feature = "mutants")]
        Protocol::FollowerIgnoresFences,
        #[cfg(feature = "mutants")]
        Protocol::FollowerDropsApplied,
        #[cfg(feature = "mutants")]
        Protocol::GcIgnoresCheckpoints,
        #[cfg(feature = "mutants")]
        Protocol::GcIgnoresRetired,
        #[cfg(feature = "mutants")]
        Protocol::GcIgnoresFloors,
        #[cfg(feature = "mutants")]
        Protocol::RetiredByPinnedTree,
        #[cfg(feature = "mutants")]
        Protocol::CheckpointExpiryOffByOne,
    ];

    /// The name used on command lines, in traces and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Shipped => "shipped",
            #[cfg(feature = "mutants")]
            Protocol::AtFreeze => "at-freeze",
            #[cfg(feature = "mutants")]
            Protocol::MaxCompleted => "max-completed",
            #[cfg(feature = "mutants")]
            Protocol::ReplayAcrossGap => "replay-across-gap",
            #[cfg(feature = "mutants")]
            Protocol::NoFence => "no-fence",
            #[cfg(feature = "mutants")]
            Protocol::GcBeforeManifest => "gc-before-manifest",
            #[cfg(feature = "mutants")]
            Protocol::BlindManifestWrite => "blind-manifest-write",
            #[cfg(feature = "mutants")]
            Protocol::GcDeletesFences => "gc-deletes-fences",
            #[cfg(feature = "mutants")]
            Protocol::TrustReopenedSlot => "trust-reopened-slot",
            #[cfg(feature = "mutants")]
            Protocol::ExistsIsOurs => "exists-is-ours",
            #[cfg(feature = "mutants")]
            Protocol::ExistsIsFenced => "exists-is-fenced",
            #[cfg(feature = "mutants")]
            Protocol::FenceRaceGivesUp => "fence-race-gives-up",
            #[cfg(feature = "mutants")]
            Protocol::FollowerAppliesPastGap => "follower-applies-past-gap",
            #[cfg(feature = "mutants")]
            Protocol::FollowerIgnoresFences => "follower-ignores-fences",
            #[cfg(feature = "mutants")]
            Protocol::FollowerDropsApplied => "follower-drops-applied",
            #[cfg(feature = "mutants")]
            Protocol::GcIgnoresCheckpoints => "gc-ignores-checkpoints",
            #[cfg(feature = "mutants")]
            Protocol::GcIgnoresRetired => "gc-ignores-retired",
            #[cfg(feature = "mutants")]
            Protocol::GcIgnoresFloors => "gc-ignores-floors",
            #[cfg(feature = "mutants")]
            Protocol::RetiredByPinnedTree => "retired-by-pinned-tree",
            #[cfg(feature = "mutants")]
            Protocol::CheckpointExpiryOffByOne => "checkpoint-expiry-off-by-one",
        }
    }

    /// Whether this is a known-wrong variant.
    pub fn is_mutant(self) -> bool {
        self != Protocol::Shipped
    }

    /// Every compiled mutant, in a stable order.
    pub fn mutants() -> impl Iterator<Item = Protocol> {
        Protocol::ALL.iter().copied().filter(|p| p.is_mutant())
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .iter()
            .copied()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownProtocol(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Protocol::ALL {
            assert_eq!(p.name().parse::<Protocol>(), Ok(*p));
        }
        let err = "at-thaw".parse::<Protocol>().unwrap_err();
        assert!(err.to_string().contains("unknown protocol `at-thaw`"));
    }

    #[test]
    fn shipped_is_default_and_not_a_mutant() {
        assert_eq!(Protocol::default(), Protocol::Shipped);
        assert!(!Protocol::Shipped.is_mutant());
        assert!(Protocol::mutants().all(|p| p.is_mutant()));
    }
}
