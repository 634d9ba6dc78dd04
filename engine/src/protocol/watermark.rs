//! The durable watermark: how `durable_wal_id` advances as uploads complete.
//!
//! With several WAL uploads in flight, completions arrive in any order. The
//! watermark is the end of the contiguous durable prefix, never the highest
//! completed id: a write may only be acknowledged, and a manifest may only
//! reference a WAL, once every earlier WAL of the writer exists too (I1, I3).

use std::collections::BTreeSet;

use super::{Protocol, WalId};

/// `durable_wal_id` plus the completions above it that are not yet contiguous.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DurableWatermark {
    protocol: Protocol,
    durable_wal_id: WalId,
    /// Completed ids above `durable_wal_id`, waiting for the gap below them.
    completed_above: BTreeSet<WalId>,
}

impl DurableWatermark {
    /// A watermark for a writer whose WALs `<= durable_wal_id` are all durable
    /// (or are not its own, as after recovery's fence).
    pub fn new(protocol: Protocol, durable_wal_id: WalId) -> Self {
        Self { protocol, durable_wal_id, completed_above: BTreeSet::new() }
    }

    /// The highest id `d` such that every WAL of this writer `<= d` is durable.
    pub fn durable_wal_id(&self) -> WalId {
        self.durable_wal_id
    }

    /// Completed uploads above the watermark (out-of-order completions).
    pub fn completed_above(&self) -> &BTreeSet<WalId> {
        &self.completed_above
    }

    /// Whether a write in WAL `wal_id` is covered by the watermark (may be acked).
    pub fn covers(&self, wal_id: WalId) -> bool {
        wal_id <= self.durable_wal_id
    }

    /// `WalDurable`: the upload of `wal_id` completed. Returns the new
    /// `durable_wal_id` if it moved. The watermark never moves backward.
    pub fn on_wal_durable(&mut self, wal_id: WalId) -> Option<WalId> {
        if wal_id <= self.durable_wal_id {
            return None; // Already covered: a duplicate report changes nothing.
        }
        self.completed_above.insert(wal_id);
        let before = self.durable_wal_id;
        match self.protocol {
            #[cfg(feature = "mutants")]
            Protocol::MaxCompleted => {
                // Mutant: "max completed id" ignores gaps below it.
                if let Some(&max) = self.completed_above.iter().next_back() {
                    self.durable_wal_id = max;
                }
                self.completed_above.clear();
            }
            _ => {
                // Advance only over the contiguous prefix.
                while let Some(next) = self.durable_wal_id.checked_add(1) {
                    if !self.completed_above.remove(&next) {
                        break;
                    }
                    self.durable_wal_id = next;
                }
            }
        }
        debug_assert!(self.durable_wal_id >= before, "durable_wal_id moved backward");
        (self.durable_wal_id != before).then_some(self.durable_wal_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn out_of_order_completion_waits_for_the_gap() {
        let mut w = DurableWatermark::new(Protocol::Shipped, 0);
        assert_eq!(w.on_wal_durable(2), None);
        assert_eq!(w.on_wal_durable(3), None);
        assert_eq!(w.durable_wal_id(), 0);
        assert_eq!(w.on_wal_durable(1), Some(3));
        assert!(w.covers(3) && !w.covers(4));
        assert!(w.completed_above().is_empty());
    }

    #[test]
    fn duplicate_and_stale_reports_change_nothing() {
        let mut w = DurableWatermark::new(Protocol::Shipped, 5);
        assert_eq!(w.on_wal_durable(5), None);
        assert_eq!(w.on_wal_durable(3), None);
        assert_eq!(w.on_wal_durable(6), Some(6));
        assert_eq!(w.on_wal_durable(6), None);
        assert_eq!(w.durable_wal_id(), 6);
    }

    #[cfg(feature = "mutants")]
    #[test]
    fn max_completed_mutant_jumps_the_gap() {
        let mut w = DurableWatermark::new(Protocol::MaxCompleted, 0);
        assert_eq!(w.on_wal_durable(2), Some(2));
        assert!(w.covers(1), "the mutant covers WAL 1 although it is not durable");
    }

    proptest! {
        /// Against a simple oracle: after any completion order of any subset
        /// of ids, the watermark is the largest d with 1..=d all completed.
        #[test]
        fn watermark_is_the_contiguous_prefix(
            order in Just((1u64..=12).collect::<Vec<_>>()).prop_shuffle(),
            keep in 0usize..=12,
        ) {
            let mut w = DurableWatermark::new(Protocol::Shipped, 0);
            let mut done = BTreeSet::new();
            let mut last = 0;
            for &id in order.iter().take(keep) {
                w.on_wal_durable(id);
                done.insert(id);
                let oracle = (0..).take_while(|d| *d == 0 || done.contains(d)).last().unwrap_or(0);
                prop_assert_eq!(w.durable_wal_id(), oracle);
                prop_assert!(w.durable_wal_id() >= last, "moved backward");
                last = w.durable_wal_id();
                prop_assert!(w.completed_above().iter().all(|&c| c > w.durable_wal_id() + 1));
            }
        }
    }
}
