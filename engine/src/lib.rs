//! tidemark: an embedded key-value store on object storage.
//!
//! Every decision about write ordering lives in [`protocol`], a sans-IO core
//! that the Stateright model in `tidemark-model` executes exhaustively and the
//! runtime executes for real.

pub mod commit;
pub mod protocol;
pub mod sync;
pub mod trace;
#[cfg(feature = "test-util")]
pub mod testing;
