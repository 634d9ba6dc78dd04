//! A Stateright model of tidemark's write-ordering protocol: freeze, upload,
//! manifest write, crash, recovery, fencing and zombie writers.
//!
//! The model holds no copy of the protocol's decisions: every transition
//! that orders anything calls `tidemark::internals::protocol`, the same code the engine
//! runs. See `spec/protocol.md` for the actions and the invariants I1–I12.

pub mod explorer;
pub mod model;
mod steps;
pub mod properties;
pub mod report;
pub mod shortest;
pub mod state;

pub use model::{Action, Bounds, TidemarkModel};
pub use state::State;
