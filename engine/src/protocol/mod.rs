//! The sans-IO protocol core: every decision about write ordering, once.
//!
//! Nothing here performs I/O, awaits, or reads a clock. The Stateright model
//! (`tidemark-model`) calls these functions for every transition it explores,
//! and the engine runtime calls the same functions on the real store, so the
//! checked protocol and the shipped protocol cannot drift apart.
//!
//! Vocabulary and invariant numbers (I1–I9) follow `spec/protocol.md`.

mod compaction;
mod conflict;
pub mod gc;
mod manifest;
mod recovery;
mod variant;
mod wal_log;
mod watermark;

pub use conflict::{resolve_create_conflict, CreateConflict, ObjectOwner};
pub use compaction::{
    apply_compaction, apply_writer_edit, on_manifest_created, on_manifest_taken, reapply_base, Compaction,
    CreatedOutcome, ManifestConflict, Role, RunId, SortedRun, TakenOutcome, Tree, WriterEdit,
};
pub use gc::{GcPolicy, KeptManifest, Listed, ManifestGc, Time};
pub use manifest::{claim_compactor_epoch, claim_epoch, next_manifest, ManifestView};
pub use recovery::{ChainWalk, RecoveryError, RecoveryPlan, WalHeader, WalKind};
pub use variant::{Protocol, UnknownProtocol};
pub use wal_log::{WalLog, MAX_INFLIGHT_WAL_UPLOADS};
pub use watermark::DurableWatermark;

/// Identifier of a WAL object, `wal/<id>.sst`. Ids start at 1; 0 means "none".
pub type WalId = u64;

/// A writer's epoch; each recovery claims a strictly larger one.
pub type Epoch = u64;
