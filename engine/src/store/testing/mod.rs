//! Test utilities (feature `test-util`): stores that misbehave on purpose.

mod fault_store;
mod latency_store;
mod paced_store;

pub use fault_store::{CreationTimes, FaultKind, FaultStore, HeldKind, HeldRequest, InjectedFaults, RandomFaults};
pub use latency_store::{Latency, LatencySampler, LatencyStore, RequestCounts};
pub use paced_store::PacedStore;
