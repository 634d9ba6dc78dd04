//! Test utilities (feature `test-util`): stores that misbehave on purpose.

mod fault_store;

pub use fault_store::{FaultKind, FaultStore, InjectedFaults, RandomFaults};
