//! Manifest objects: `manifest/<version>.manifest`, immutable, created with
//! `PutMode::Create`, encoded with postcard inside a checksummed frame.
//!
//! ```text
//! frame := magic:u32 format_version:u16 len:u32 payload crc32c:u32
//! ```

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::paths::Layout;
use crate::protocol::{Epoch, ManifestView, SortedRun as ProtocolRun, Tree, WalId, MAX_ID};

const MAGIC: u32 = 0x544d_4d46; // "TMMF"
/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT_VERSION: u16 = 3;
const HEADER_LEN: usize = 10;

/// A handle on an SST the manifest lists (L0 or in a sorted run).
///
/// SSTs are named by a ULID: unique without coordination, so a fenced
/// writer's late flush, a zombie compactor's output and the live writer's
/// flush can never take each other's names, and the name carries the
/// creation time GC needs to judge an unreferenced object's age.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SstHandle {
    /// The ULID of the object `compacted/<ulid>.sst`.
    pub id: u128,
    /// The epoch of the writer or compactor that created it (diagnostics).
    pub writer_epoch: Epoch,
    pub size: u64,
    /// The smallest and largest key in the SST (a sorted run's SSTs have
    /// disjoint ranges, so a point read opens at most one per run).
    pub first_key: Bytes,
    pub last_key: Bytes,
}

impl SstHandle {
    /// The SST's creation time in milliseconds since the Unix epoch (from its ULID).
    pub fn created_at_ms(&self) -> u64 {
        ulid::Ulid(self.id).timestamp_ms()
    }

    /// A new, unique SST id, timestamped now.
    pub fn new_id() -> u128 {
        ulid::Ulid::new().0
    }
}

/// A sorted run: SSTs with disjoint key ranges, in key order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortedRun {
    pub id: u64,
    pub ssts: Vec<SstHandle>,
}

impl SortedRun {
    pub fn size(&self) -> u64 {
        self.ssts.iter().map(|h| h.size).sum()
    }
}

/// One manifest version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    pub version: u64,
    pub writer_epoch: Epoch,
    /// The epoch of the newest compactor; bumped by each compactor's claim.
    pub compactor_epoch: Epoch,
    /// Unique per created object, to recognise our own after an ambiguous create.
    pub token: u64,
    pub wal_id_last_seen: WalId,
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
}

impl ManifestObject {
    /// The scalar fields the protocol decides.
    pub fn view(&self) -> ManifestView {
        ManifestView {
            version: self.version,
            writer_epoch: self.writer_epoch,
            wal_id_last_seen: self.wal_id_last_seen,
            replay_after_wal_id: self.replay_after_wal_id,
            compactor_epoch: self.compactor_epoch,
            writer_closed: self.writer_closed,
            writer_sst_floor: 0,
            compactor_sst_floor: 0,
        }
    }

    /// The SSTs and fences, as the protocol sees them.
    pub fn tree(&self) -> Tree<SstHandle> {
        Tree {
            l0: self.l0.clone(),
            runs: self.runs.iter().map(|r| ProtocolRun { id: r.id, ssts: r.ssts.clone() }).collect(),
            fences: self.fences.clone(),
            ..Tree::default()
        }
    }

    /// The manifest of a database that has none yet (version 0).
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
        }
    }

    /// The next version, as the protocol decided its fields and tree, with a
    /// fresh token. Every manifest tidemark creates is built here, so this is
    /// where a value derived from a stored one (the next version, a claimed
    /// epoch, which the protocol core saturates) is checked against
    /// [`MAX_ID`] before it is written: a version the next open would refuse
    /// is never created. The error names this version's object and the field.
    pub fn successor(&self, layout: &Layout, view: ManifestView, tree: Tree<SstHandle>) -> Result<ManifestObject> {
        let c = |r: String| Error::corrupt(layout.manifest(self.version).to_string(), r);
        let version = Self::version_after(layout, self.version)?;
        if view.writer_epoch > MAX_ID {
            return Err(c(format!("writer_epoch {} leaves no room for the next epoch", self.writer_epoch)));
        }
        if view.compactor_epoch > MAX_ID {
            return Err(c(format!("compactor_epoch {} leaves no room for the next epoch", self.compactor_epoch)));
        }
        for (field, value) in [("wal_id_last_seen", view.wal_id_last_seen), ("replay_after_wal_id", view.replay_after_wal_id)] {
            if value > MAX_ID {
                return Err(c(format!("{field} {value} is above the WAL id bound {MAX_ID}")));
            }
        }
        Ok(ManifestObject {
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
        })
    }

    /// The version a create after `version` takes: `version + 1`, checked
    /// against [`MAX_ID`] (a version above it would be refused by the next
    /// open). The error names the manifest `version`.
    pub fn version_after(layout: &Layout, version: u64) -> Result<u64> {
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
    pub fn decode(path: &str, bytes: &[u8]) -> Result<Self> {
        let c = |r: String| Error::corrupt(path, r);
        if bytes.len() < HEADER_LEN + 4 {
            return Err(c(format!("{} bytes is too short for a manifest", bytes.len())));
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

    /// Refuses ids, epochs and versions above [`MAX_ID`] at decode time, so
    /// no arithmetic on them can overflow and nothing is written on top of
    /// them (issue 17, case 1), and SST handles whose key ranges reads could
    /// not trust. Names the field.
    fn check_bounds(&self) -> std::result::Result<(), String> {
        let epochs = [("writer_epoch", self.writer_epoch), ("compactor_epoch", self.compactor_epoch)];
        for (field, value) in epochs {
            if value > MAX_ID {
                return Err(format!("{field} {value} leaves no room for the next epoch"));
            }
        }
        if self.version > MAX_ID {
            return Err(format!("version {} leaves no room for the next version", self.version));
        }
        // Reads trust the handles' key ranges: a run is binary-searched by
        // them (`RunReader::sst_for`) and scanned in their order.
        for h in self.ssts() {
            if h.first_key > h.last_key {
                return Err(format!("SST {} has first_key {:?} after last_key {:?}", ulid::Ulid(h.id), h.first_key, h.last_key));
            }
        }
        for run in &self.runs {
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
