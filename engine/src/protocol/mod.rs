//! The sans-IO protocol core: every decision about write ordering, once.
//!
//! Nothing here performs I/O, awaits, or reads a clock. The Stateright model
//! (`tidemark-model`) calls these functions for every transition it explores,
//! and the engine runtime calls the same functions on the real store, so the
//! checked protocol and the shipped protocol cannot drift apart.
//!
//! Vocabulary and invariant numbers (I1–I16) follow `spec/protocol.md`.

mod action;
mod checkpoint;
mod claim;
mod compaction;
mod conflict;
mod follow;
mod freeze;
pub mod gc;
mod latency;
mod manifest;
mod recovery;
mod variant;
mod wal_log;
mod watermark;

pub use action::{ActionName, UnknownAction};
pub use checkpoint::{
    apply_checkpoint_edit, expired, may_refresh, may_use, prune_retired, writer_pin_id, Checkpoint, CheckpointEdit,
    CheckpointId, CheckpointOwner, CheckpointRefused, Pin, Retired,
};
pub use claim::{fenced_by, on_claim_taken, ClaimTaken};
pub use conflict::{on_fence_conflict, on_read_back_missing, resolve_create_conflict, CreateConflict, FenceConflict, ObjectOwner};
pub use compaction::{
    apply_compaction, apply_writer_edit, claim_writer, on_manifest_created, on_manifest_gone, on_manifest_taken, reapply_base,
    Compaction, CreatedOutcome, GoneOutcome, ManifestConflict, Role, RunId, SortedRun, TakenOutcome, Tree, WriterEdit,
};
pub use freeze::{FreezeInputs, FreezePolicy, FreezeStep, GatherReason, PutBudget, PutPacer, MIN_PUTS_PER_SECOND, PACER_DEPTH};
pub use latency::{LatencyEstimator, LatencySummary, LATENCY_WINDOW, MIN_TAIL_SAMPLES};
pub use follow::Follower;
pub use gc::{may_still_record, GcCaller, GcPlan, GcPolicy, KeptManifest, Listed, ListedSst, ManifestGc, Observed, SstOrigin, Time};
pub use manifest::{claim_compactor_epoch, claim_epoch, next_manifest, ManifestView};
pub use recovery::{ChainStep, ChainWalk, RecoveryError, RecoveryPlan, WalHeader, WalKind, WAL_ID_HEADROOM};
pub use variant::{Protocol, UnknownProtocol};
pub use wal_log::{WalLog, MAX_INFLIGHT_WAL_UPLOADS, MAX_WAL_ID};
pub use watermark::DurableWatermark;

/// Identifier of a WAL object, `wal/<id>.sst`. Ids start at 1; 0 means "none".
pub type WalId = u64;

/// A writer's epoch; each recovery claims a strictly larger one.
pub type Epoch = u64;

/// An SST's place in its writer's or compactor's monotonic sequence (a ULID
/// in the engine, a counter in the model): the SST floors compare these.
pub type SstSeq = u128;

/// The largest WAL id, epoch or manifest version tidemark reads or writes.
///
/// Each of them is only ever incremented by one (or, for a fence's jump, by
/// at most [`MAX_INFLIGHT_WAL_UPLOADS`]), so no honest store comes near this
/// bound; a value above it comes from a bug or a hostile writer. Decoders
/// refuse such a value as `Corrupt`, and a value derived from a stored one
/// (the next epoch, the next version, a fence's `next_wal_id`) is checked
/// against the bound *before* it is written, so that nothing is ever
/// acknowledged on top of a state the next open would refuse. The protocol
/// core never wraps: it uses checked or saturating arithmetic, and a
/// saturated value is above the bound and refused where it would be written.
pub const MAX_ID: u64 = u64::MAX / 2;
