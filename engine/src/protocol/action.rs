//! The spec's action names, once: traces, logs, the model and reports all
//! name a step through [`ActionName`], so a renamed action cannot drift.

use std::fmt;

/// Declares the enum, its `ALL` table and its `as_str` from one list.
macro_rules! action_names {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// A protocol action as `spec/protocol.md` names it (section 3).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ActionName {
            $($(#[$doc])* $name,)*
        }

        impl ActionName {
            /// Every action, in the spec's order.
            pub const ALL: &'static [ActionName] = &[$(ActionName::$name,)*];

            /// The name as the spec, traces and logs spell it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ActionName::$name => stringify!($name),)*
                }
            }
        }
    };
}

action_names! {
    /// A write is appended to the WAL buffer and the memtable.
    Put,
    /// The WAL buffer becomes an immutable WAL.
    FreezeWal,
    /// The upload (create-if-absent) of an immutable WAL starts.
    UploadWal,
    /// A second identical create of a WAL whose upload is slow.
    HedgeWal,
    /// A WAL create returned; the watermark may advance.
    WalDurable,
    /// A crashed writer's upload that never lands (the model's step).
    UploadLost,
    /// A WAL create found another writer's object: the writer stops (recorded outcome).
    WalRejected,
    /// Durable writes are acknowledged.
    Ack,
    /// The memtable becomes immutable.
    FreezeMemtable,
    /// An immutable memtable is written as an L0 SST.
    FlushL0,
    /// The writer creates the next manifest version.
    WriteManifest,
    /// A manifest create found a newer epoch of the writer's role (recorded outcome).
    Fenced,
    /// The writer shuts down cleanly.
    Close,
    /// A process dies; its uploads in flight land later or never.
    Crash,
    /// A new writer claims the next epoch and walks the WAL chain.
    Recover,
    /// The recovering writer fences the chain's gap and replays.
    Fence,
    /// A compactor claims the next compactor epoch.
    ClaimCompactor,
    /// A compactor merges SSTs into an output run.
    Compact,
    /// A compactor records its compaction in the next manifest version.
    CompactCommit,
    /// A follower creates its checkpoint, reads that version and the chain after it.
    FollowerOpen,
    /// A follower adopts the latest manifest version if newer and applies the WAL chain past where it stopped.
    FollowerPoll,
    /// A follower refreshes its checkpoint and moves its pin to the version it creates.
    FollowerRefresh,
    /// A client records a durable checkpoint of the latest state.
    CheckpointCreate,
    /// A holder extends its checkpoint's expiry.
    CheckpointRefresh,
    /// A holder drops its checkpoint.
    CheckpointDelete,
    /// GC's edit: drops the checkpoints that expired.
    CheckpointExpire,
    /// Time advances.
    Tick,
    /// A GC pass observes the store and decides what may be deleted.
    GcRun,
    /// GC deletes the SSTs its pass decided.
    GcSst,
    /// GC deletes the WALs its pass decided.
    GcWal,
    /// GC deletes the manifest versions its pass decided.
    GcManifest,
}

impl fmt::Display for ActionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the spec's actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownAction(pub String);

impl fmt::Display for UnknownAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown action `{}`", self.0)
    }
}

impl std::error::Error for UnknownAction {}

impl std::str::FromStr for ActionName {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActionName::ALL.iter().copied().find(|a| a.as_str() == s).ok_or_else(|| UnknownAction(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for (i, a) in ActionName::ALL.iter().enumerate() {
            assert_eq!(a.as_str().parse::<ActionName>(), Ok(*a));
            assert!(ActionName::ALL[..i].iter().all(|b| b.as_str() != a.as_str()), "{a} twice");
        }
        assert_eq!(ActionName::WalDurable.to_string(), "WalDurable");
        assert_eq!("Thaw".parse::<ActionName>(), Err(UnknownAction("Thaw".into())));
    }
}
