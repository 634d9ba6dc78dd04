//! Read-only handles and the clock.

use tidemark::internals::protocol::Epoch;

use crate::model::TidemarkModel;
use crate::state::*;

impl TidemarkModel {
    pub(crate) fn reader_open(&self, s: &mut State) -> Option<()> {
        s.readers_opened += 1;
        let (version, latest) = s.store.latest_manifest();
        let ssts = latest.tree.ssts().copied().collect();
        // Like the engine's read-only open: walk the chain, never fence.
        let Ok(plan) = self.walk(s, &latest.view, Epoch::MAX, false) else { return Some(()) };
        let wals = plan.replay.into_iter().collect();
        s.readers.insert(Reader { version, confirmed_at: s.now, ssts, wals });
        Some(())
    }

    pub(crate) fn tick(&self, s: &mut State) -> Option<()> {
        s.now += 1;
        let (now, lease) = (s.now, self.bounds.min_age);
        s.readers.retain(|r| u16::from(now) < u16::from(r.confirmed_at) + u16::from(lease));
        s.leases.retain(|_, l| now < l.until);
        Some(())
    }
}
