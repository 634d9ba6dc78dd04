//! The model's state: the object store, the live writers, uploads in flight,
//! and what was issued, acknowledged and recovered.
//!
//! Everything is kept in ordered collections so that states hash and compare
//! deterministically (Stateright replays paths by re-executing actions).

use std::collections::{BTreeMap, BTreeSet};

use tidemark::protocol::{Epoch, ManifestView, RecoveryError, RecoveryPlan, WalHeader, WalId, WalLog};

/// An abstract write: one `Put`, identified by issue order.
pub type WriteId = u16;

/// An L0 SST: the writer's epoch and its per-writer sequence number.
pub type SstId = (Epoch, u8);

/// A WAL object in the store, or one being uploaded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WalObject {
    pub header: WalHeader,
    pub writes: Vec<WriteId>,
}

/// One manifest version: the protocol fields and the L0 list (oldest first).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManifestVersion {
    pub view: ManifestView,
    pub l0: Vec<SstId>,
}

/// The object store: objects are only ever created, never overwritten.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Store {
    pub wals: BTreeMap<WalId, WalObject>,
    pub ssts: BTreeMap<SstId, Vec<WriteId>>,
    pub manifests: BTreeMap<u64, ManifestVersion>,
}

impl Store {
    /// The latest manifest version and its number.
    pub fn latest_manifest(&self) -> (u64, &ManifestVersion) {
        match self.manifests.iter().next_back() {
            Some((v, m)) => (*v, m),
            None => unreachable!("the initial state holds manifest version 1"),
        }
    }
}

/// A WAL upload in flight: it survives its writer's crash and may land later.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Upload {
    pub wal_id: WalId,
    pub owner: Epoch,
    pub object: WalObject,
}

/// An immutable memtable: its writes are all in WALs `<= last_wal_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImmMemtable {
    pub writes: Vec<WriteId>,
    pub last_wal_id: WalId,
}

/// What a writer is doing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Claimed its epoch (manifest `claimed_version`), listed and walked the
    /// WAL chain; the fence is next.
    Recovering { claimed_version: u64, plan: RecoveryPlan },
    /// Accepting writes.
    Active,
}

/// One live writer process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Writer {
    pub epoch: Epoch,
    pub phase: Phase,
    /// The protocol core's WAL bookkeeping (next id, watermark, window).
    pub log: WalLog,
    /// The mutable WAL buffer.
    pub buffer: Vec<WriteId>,
    /// Frozen WALs whose upload has not started.
    pub frozen: BTreeMap<WalId, Vec<WriteId>>,
    pub memtable: Vec<WriteId>,
    pub imm: Vec<ImmMemtable>,
    /// L0 SSTs written but not yet recorded in a manifest: (id, last_wal_id).
    pub flushed: Vec<(SstId, WalId)>,
    pub next_sst: u8,
    /// The manifest version this writer last created (its view of the state).
    pub manifest_version: u64,
    /// Writes not yet acknowledged, with the WAL each is in.
    pub pending: Vec<(WriteId, WalId)>,
}

impl Writer {
    /// A writer with empty buffers whose last manifest is `manifest_version`.
    pub fn new(epoch: Epoch, phase: Phase, log: WalLog, manifest_version: u64) -> Self {
        Writer {
            epoch,
            phase,
            log,
            buffer: Vec::new(),
            frozen: BTreeMap::new(),
            memtable: Vec::new(),
            imm: Vec::new(),
            flushed: Vec::new(),
            next_sst: 0,
            manifest_version,
            pending: Vec::new(),
        }
    }
}

/// An acknowledged durable write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AckInfo {
    /// The epoch of the writer that acknowledged it.
    pub epoch: Epoch,
    /// The newest epoch claimed in the store when it was acknowledged.
    pub claimed_at_ack: Epoch,
}

/// The latest recovery's result.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RecoveryOutcome {
    /// Recovery of `epoch` completed with these writes visible, in order.
    Recovered { epoch: Epoch, writes: Vec<WriteId>, replayed_wals: u8 },
    /// Recovery of `epoch` failed: the database cannot start (I2).
    Failed { epoch: Epoch, error: RecoveryError },
}

/// Facts about the path so far, for the `sometimes` properties.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seen {
    pub manifest_while_uploading: bool,
    pub zombie_upload_rejected: bool,
    pub ambiguous_create_resolved: bool,
}

/// The whole model state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub store: Store,
    pub uploads: BTreeSet<Upload>,
    /// Live writers, oldest epoch first; the last is the newest.
    pub writers: Vec<Writer>,
    /// Each epoch's writes in issue order.
    pub issued: BTreeMap<Epoch, Vec<WriteId>>,
    pub acked: BTreeMap<WriteId, AckInfo>,
    pub next_write: WriteId,
    pub recovery: Option<RecoveryOutcome>,
    pub crashes: u8,
    pub recoveries: u8,
    pub zombies: u8,
    pub ambiguous: u8,
    pub seen: Seen,
}

impl State {
    pub fn writer(&self, epoch: Epoch) -> Option<&Writer> {
        self.writers.iter().find(|w| w.epoch == epoch)
    }

    pub fn writer_mut(&mut self, epoch: Epoch) -> Option<&mut Writer> {
        self.writers.iter_mut().find(|w| w.epoch == epoch)
    }

    /// The newest epoch claimed in any manifest version.
    pub fn claimed_epoch(&self) -> Epoch {
        self.store.latest_manifest().1.view.writer_epoch
    }

    pub fn is_alive(&self, epoch: Epoch) -> bool {
        self.writer(epoch).is_some()
    }
}
