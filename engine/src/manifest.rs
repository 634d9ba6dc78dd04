//! Manifest objects: `manifest/<version>.manifest`, immutable, created with
//! `PutMode::Create`, encoded with postcard inside a checksummed frame.
//!
//! ```text
//! frame := magic:u32 format_version:u16 len:u32 payload crc32c:u32
//! ```

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::error::{Error, Result};
use crate::paths::Layout;
use crate::protocol::{
    Checkpoint as ProtocolCheckpoint, CheckpointOwner, Epoch, ManifestView, Retired, Role, SortedRun as ProtocolRun, SstOrigin, Tree, WalId,
    MAX_ID,
};

const MAGIC: u32 = 0x544d_4d46; // "TMMF"
/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT_VERSION: u16 = 4;
const HEADER_LEN: usize = 10;

/// A handle on an SST the manifest lists (L0 or in a sorted run).
///
/// SSTs are named by a ULID: unique without coordination, so a fenced
/// writer's late flush, a zombie compactor's output and the live writer's
/// flush can never take each other's names, and the name carries the
/// creation time GC needs to judge an unreferenced object's age.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SstHandle {
    /// The ULID in the object's name, `compacted/<ULID>-<owner><epoch>.sst`:
    /// its creation time, and its place in its owner's monotonic sequence.
    pub id: u128,
    /// Who wrote it: an L0 flush of the writer or a compactor's output.
    pub owner: SstOwner,
    /// The epoch of the writer or compactor that wrote it.
    pub epoch: Epoch,
    /// The object's size in bytes.
    pub size: u64,
    /// The smallest and largest key in the SST (a sorted run's SSTs have
    /// disjoint ranges, so a point read opens at most one per run).
    pub first_key: Bytes,
    /// The largest key in the SST.
    pub last_key: Bytes,
}

impl SstHandle {
    /// The SST's creation time in milliseconds since the Unix epoch (from its ULID).
    pub fn created_at_ms(&self) -> u64 {
        ulid::Ulid(self.id).timestamp_ms()
    }

    /// A new, unique SST id, timestamped `now_ms` (the engine's clock).
    #[doc(hidden)]
    pub fn new_id(now_ms: u64) -> u128 {
        ulid::Ulid::from_parts(now_ms, rand::random()).0
    }

}

/// Which process wrote an SST; its name says so, so that GC knows from a
/// listing whether the owner may still record it (its SST floor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SstOwner {
    /// An L0 flush of the writer.
    Writer,
    /// A compaction's output.
    Compactor,
}

impl SstOwner {
    /// The protocol's role of this owner.
    pub(crate) fn role(self) -> Role {
        match self {
            SstOwner::Writer => Role::Writer,
            SstOwner::Compactor => Role::Compactor,
        }
    }

    /// The origin GC judges an unrecorded SST by.
    pub(crate) fn origin(self, epoch: Epoch, id: u128) -> SstOrigin {
        SstOrigin { role: self.role(), epoch, seq: id }
    }
}

/// Who holds a checkpoint (see [`Checkpoint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CheckpointHolder {
    /// The writer of this epoch, pinning what its own reads use.
    Writer(Epoch),
    /// A follower, a backup or a user's checkpoint.
    Client,
}

/// A checkpoint as the manifest records it: it pins manifest `version`,
/// that version's SSTs, and the WAL chain after `replay_after_wal_id` (for a
/// durable checkpoint up to `wal_end`), until it is dropped or expires. GC
/// deletes nothing a live checkpoint needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Unique in the store's history.
    pub id: u128,
    /// The pinned manifest version.
    pub version: u64,
    /// That version's `replay_after_wal_id`.
    pub replay_after_wal_id: WalId,
    /// A durable checkpoint's last WAL chain position: opening it replays
    /// the chain up to here, so it shows exactly the state at its creation.
    pub wal_end: Option<WalId>,
    /// Milliseconds since the Unix epoch after which it no longer protects
    /// anything; `None`: until deleted.
    pub expires_at_ms: Option<u64>,
    /// Who holds it.
    pub holder: CheckpointHolder,
}

impl Checkpoint {
    pub(crate) fn to_protocol(self) -> ProtocolCheckpoint {
        ProtocolCheckpoint {
            id: self.id,
            version: self.version,
            replay_after_wal_id: self.replay_after_wal_id,
            wal_end: self.wal_end,
            expires_at: self.expires_at_ms,
            owner: match self.holder {
                CheckpointHolder::Writer(e) => CheckpointOwner::Writer(e),
                CheckpointHolder::Client => CheckpointOwner::Client,
            },
        }
    }

    fn from_protocol(c: ProtocolCheckpoint) -> Checkpoint {
        Checkpoint {
            id: c.id,
            version: c.version,
            replay_after_wal_id: c.replay_after_wal_id,
            wal_end: c.wal_end,
            expires_at_ms: c.expires_at,
            holder: match c.owner {
                CheckpointOwner::Writer(e) => CheckpointHolder::Writer(e),
                CheckpointOwner::Client => CheckpointHolder::Client,
            },
        }
    }
}

/// An SST a compaction removed from the tree in manifest `version`: kept
/// while a live checkpoint pins an older version, whose tree may use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredSst {
    /// The SST.
    pub sst: SstHandle,
    /// The version that removed it.
    pub version: u64,
}

/// A sorted run: SSTs with disjoint key ranges, in key order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortedRun {
    /// The run's id, unique in the manifest; a newer run has a larger one.
    pub id: u64,
    /// The run's SSTs, in key order.
    pub ssts: Vec<SstHandle>,
}

impl SortedRun {
    /// The run's size in bytes (the sum of its SSTs').
    pub fn size(&self) -> u64 {
        self.ssts.iter().map(|h| h.size).sum()
    }
}

/// One manifest version, `manifest/<version>.manifest`: created once with
/// compare-and-set and never changed, it records the writer and compactor
/// epochs, the WAL range recovery replays and the SST tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    /// The version, the number in the object's name; each commit creates
    /// the next.
    pub version: u64,
    /// The epoch of the newest writer, claimed by its open (`Recover`).
    pub writer_epoch: Epoch,
    /// The epoch of the newest compactor; bumped by each compactor's claim.
    pub compactor_epoch: Epoch,
    /// Unique per created object, to recognise our own after an ambiguous create.
    pub token: u64,
    /// The newest WAL id the writer recorded: recovery's walk of the WAL
    /// chain must reach it (I1).
    pub wal_id_last_seen: WalId,
    /// WALs up to this id are in L0 SSTs: recovery replays only the ones after.
    pub replay_after_wal_id: WalId,
    /// The writer of `writer_epoch` closed cleanly: nothing of it is in
    /// flight and it never uploads again, so the next recovery needs no fence.
    pub writer_closed: bool,
    /// WAL ids that hold fences; GC never deletes them (a zombie could
    /// otherwise re-create the id and acknowledge writes no one replays).
    pub fences: Vec<WalId>,
    /// L0 SSTs, newest first.
    pub l0: Vec<SstHandle>,
    /// Sorted runs, newest first.
    pub runs: Vec<SortedRun>,
    /// Every SST of `writer_epoch` its writer may still record has an id at
    /// least this; GC deletes the writer's unrecorded SSTs below it.
    pub writer_sst_floor: u128,
    /// The same for the compactor of `compactor_epoch`.
    pub compactor_sst_floor: u128,
    /// Checkpoints: the writer's own pin and clients' (followers, backups).
    pub checkpoints: Vec<Checkpoint>,
    /// SSTs compactions removed while a checkpoint pinned an older version.
    pub retired: Vec<RetiredSst>,
}

impl ManifestObject {
    /// The scalar fields the protocol decides.
    pub(crate) fn view(&self) -> ManifestView {
        ManifestView {
            version: self.version,
            writer_epoch: self.writer_epoch,
            wal_id_last_seen: self.wal_id_last_seen,
            replay_after_wal_id: self.replay_after_wal_id,
            compactor_epoch: self.compactor_epoch,
            writer_closed: self.writer_closed,
            writer_sst_floor: self.writer_sst_floor,
            compactor_sst_floor: self.compactor_sst_floor,
        }
    }

    /// The SSTs and fences, as the protocol sees them.
    pub(crate) fn tree(&self) -> Tree<SstHandle> {
        Tree {
            l0: self.l0.clone(),
            runs: self.runs.iter().map(|r| ProtocolRun { id: r.id, ssts: r.ssts.clone() }).collect(),
            fences: self.fences.clone(),
            checkpoints: self.checkpoints.iter().map(|c| c.to_protocol()).collect(),
            retired: self.retired.iter().map(|r| Retired { sst: r.sst.clone(), version: r.version }).collect(),
        }
    }

    /// The manifest of a database that has none yet (version 0).
    #[doc(hidden)]
    pub fn empty() -> ManifestObject {
        ManifestObject {
            version: 0,
            writer_epoch: 0,
            compactor_epoch: 0,
            token: 0,
            wal_id_last_seen: 0,
            replay_after_wal_id: 0,
            writer_closed: false,
            fences: Vec::new(),
            l0: Vec::new(),
            runs: Vec::new(),
            writer_sst_floor: 0,
            compactor_sst_floor: 0,
            checkpoints: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// The next version, as the protocol decided its fields and tree, with a
    /// fresh token. Every manifest tidemark creates is built here, so this is
    /// where a value derived from a stored one (the next version, a claimed
    /// epoch, which the protocol core saturates) and the whole version are
    /// checked against their bounds ([`crate::bounds`]) before it is written:
    /// a version the next open would refuse is never created. The error
    /// names this version's object and the field.
    pub(crate) fn successor(&self, layout: &Layout, view: ManifestView, tree: Tree<SstHandle>) -> Result<ManifestObject> {
        let c = |r: String| Error::corrupt(layout.manifest(self.version).to_string(), r);
        let version = Self::version_after(layout, self.version)?;
        // The stored epoch is named: the claimed one is one above it.
        if view.writer_epoch > bounds::MAX_EPOCH {
            return Err(c(format!("writer_epoch {} leaves no room for the next epoch", self.writer_epoch)));
        }
        if view.compactor_epoch > bounds::MAX_EPOCH {
            return Err(c(format!("compactor_epoch {} leaves no room for the next epoch", self.compactor_epoch)));
        }
        ManifestObject {
            version,
            writer_epoch: view.writer_epoch,
            compactor_epoch: view.compactor_epoch,
            token: rand::random(),
            wal_id_last_seen: view.wal_id_last_seen,
            replay_after_wal_id: view.replay_after_wal_id,
            writer_closed: view.writer_closed,
            fences: tree.fences,
            l0: tree.l0,
            runs: tree.runs.into_iter().map(|r| SortedRun { id: r.id, ssts: r.ssts }).collect(),
            writer_sst_floor: view.writer_sst_floor,
            compactor_sst_floor: view.compactor_sst_floor,
            checkpoints: tree.checkpoints.into_iter().map(Checkpoint::from_protocol).collect(),
            retired: tree.retired.into_iter().map(|r| RetiredSst { sst: r.sst, version: r.version }).collect(),
        }
        .checked()
        .map_err(c)
    }

    /// This version if the next open would decode it ([`Self::check_bounds`]).
    fn checked(self) -> std::result::Result<Self, String> {
        self.check_bounds().map(|()| self)
    }

    /// The version a create after `version` takes: `version + 1`, checked
    /// against `MAX_ID` (a version above it would be refused by the next
    /// open). The error names the manifest `version`.
    pub(crate) fn version_after(layout: &Layout, version: u64) -> Result<u64> {
        version.checked_add(1).filter(|v| *v <= MAX_ID).ok_or_else(|| {
            Error::corrupt(
                layout.manifest(version).to_string(),
                format!("version {version} leaves no room for the next version"),
            )
        })
    }

    /// Every SST this version references, L0 and runs.
    pub fn ssts(&self) -> impl Iterator<Item = &SstHandle> {
        self.l0.iter().chain(self.runs.iter().flat_map(|r| r.ssts.iter()))
    }

    /// The object's bytes: the postcard payload in a checksummed frame.
    #[doc(hidden)]
    pub fn encode(&self) -> Bytes {
        let payload = postcard::to_stdvec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(payload.len() + HEADER_LEN + 4);
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&MANIFEST_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Bytes::from(out)
    }

    /// Decodes a manifest; any damage is `Error::Corrupt` naming `path`.
    #[doc(hidden)]
    pub fn decode(path: &str, bytes: &[u8]) -> Result<Self> {
        let c = |r: String| Error::corrupt(path, r);
        if bytes.len() < HEADER_LEN + 4 {
            return Err(c(format!("{} bytes is too short for a manifest", bytes.len())));
        }
        if bytes.len() as u64 > bounds::MAX_MANIFEST_BYTES {
            return Err(c(bounds::ObjectKind::Manifest.too_large(bytes.len() as u64, bounds::MAX_MANIFEST_BYTES)));
        }
        let (framed, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(framed).to_le_bytes() != crc {
            return Err(c("manifest checksum mismatch".into()));
        }
        if framed[0..4] != MAGIC.to_le_bytes() {
            return Err(c("not a tidemark manifest (bad magic)".into()));
        }
        let version = u16::from_le_bytes([framed[4], framed[5]]);
        if version != MANIFEST_FORMAT_VERSION {
            return Err(c(format!(
                "unsupported manifest format version {version} (this build reads {MANIFEST_FORMAT_VERSION})"
            )));
        }
        let len = u32::from_le_bytes([framed[6], framed[7], framed[8], framed[9]]) as usize;
        if len != framed.len() - HEADER_LEN {
            return Err(c("manifest length field disagrees with its size".into()));
        }
        let m: ManifestObject =
            postcard::from_bytes(&framed[HEADER_LEN..]).map_err(|e| c(format!("manifest does not decode: {e}")))?;
        m.check_bounds().map_err(c)?;
        Ok(m)
    }

    /// Refuses at decode time what the arithmetic on a field cannot take or
    /// what reads and compaction could not trust, naming the field: ids,
    /// versions and epochs above their bounds ([`crate::bounds`]: an epoch
    /// must leave room for its sequence numbers and run ids), more entries
    /// than a manifest may hold, SST handles whose key ranges reads could not
    /// trust, a run or SST listed twice, and a run id of a compactor epoch
    /// newer than `compactor_epoch` (the next compactor would take its id).
    /// The same checks run on every version before it is created.
    pub(crate) fn check_bounds(&self) -> std::result::Result<(), String> {
        let epochs = [("writer_epoch", self.writer_epoch), ("compactor_epoch", self.compactor_epoch)];
        for (field, value) in epochs {
            if value > bounds::MAX_EPOCH {
                return Err(format!(
                    "{field} {value} leaves no room for the next epoch (epochs are at most {}: epoch << 32 numbers its writes or runs)",
                    bounds::MAX_EPOCH
                ));
            }
        }
        if self.version > MAX_ID {
            return Err(format!("version {} leaves no room for the next version", self.version));
        }
        let runs: Vec<usize> = self.runs.iter().map(|r| r.ssts.len()).collect();
        bounds::check_manifest_entries(self.l0.len(), &runs, self.fences.len())?;
        bounds::check_lifecycle_entries(self.checkpoints.len(), self.retired.len())?;
        let mut ids = std::collections::BTreeSet::new();
        for h in self.ssts() {
            // Reads trust the handles' key ranges: a run is binary-searched by
            // them (`RunReader::sst_for`) and scanned in their order.
            if h.first_key > h.last_key {
                return Err(format!("SST {} has first_key {:?} after last_key {:?}", ulid::Ulid(h.id), h.first_key, h.last_key));
            }
            if h.epoch > bounds::MAX_EPOCH {
                return Err(format!("SST {} has epoch {} above the epoch bound {}", ulid::Ulid(h.id), h.epoch, bounds::MAX_EPOCH));
            }
            // A compaction removes its inputs by id: an SST listed twice
            // would be dropped twice.
            if !ids.insert(h.id) {
                return Err(format!("SST {} is listed twice", ulid::Ulid(h.id)));
            }
        }
        let mut run_ids = std::collections::BTreeSet::new();
        for run in &self.runs {
            if run.id > MAX_ID || bounds::run_epoch(run.id) > self.compactor_epoch {
                return Err(format!(
                    "sorted run id {} belongs to compactor epoch {}, above compactor_epoch {} (a run id is epoch << 32 | n)",
                    run.id,
                    bounds::run_epoch(run.id),
                    self.compactor_epoch
                ));
            }
            if !run_ids.insert(run.id) {
                return Err(format!("sorted run {} is listed twice", run.id));
            }
            if let Some(pair) = run.ssts.windows(2).find(|p| p[0].last_key >= p[1].first_key) {
                return Err(format!(
                    "sorted run {}: SSTs {} and {} are not in key order with disjoint ranges",
                    run.id,
                    ulid::Ulid(pair[0].id),
                    ulid::Ulid(pair[1].id)
                ));
            }
        }
        let wal_ids = [("wal_id_last_seen", self.wal_id_last_seen), ("replay_after_wal_id", self.replay_after_wal_id)];
        for (field, value) in wal_ids.into_iter().chain(self.fences.iter().map(|f| ("fences", *f))) {
            if value > MAX_ID {
                return Err(format!("{field} {value} is above the WAL id bound {MAX_ID}"));
            }
        }
        Ok(())
    }
}
