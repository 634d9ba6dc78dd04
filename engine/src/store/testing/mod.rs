//! Test utilities (feature `test-util`): stores that misbehave on purpose,
//! for tidemark's harnesses and for anyone testing code on top of it.
//! [`FaultStore`] fails, holds or drops requests by rule or at random (the
//! crash harness's faults), [`LatencyStore`] makes every request take a
//! drawn time (as a remote store does), and [`PacedStore`] slows chosen puts
//! (so an upload lands, or answers, late). Each wraps any `ObjectStore` and is
//! given to [`Db::open`](crate::Db::open) in its place.

mod fault_store;
mod latency_store;
mod paced_store;

pub use fault_store::{CreationTimes, FaultKind, FaultStore, HeldKind, HeldRequest, InjectedFaults, RandomFaults};
pub use latency_store::{Latency, LatencySampler, LatencyStore, RequestCounts};
pub use paced_store::PacedStore;
