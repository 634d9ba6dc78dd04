//! Manifest objects: `manifest/<version>.manifest`, immutable, created with
//! `PutMode::Create`, encoded with postcard inside a checksummed frame.
//!
//! ```text
//! frame := magic:u32 format_version:u16 len:u32 payload crc32c:u32
//! ```

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::protocol::{Epoch, ManifestView, WalId};

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
    /// The next sorted run id.
    pub next_run_id: u64,
    /// L0 SSTs, newest first.
    pub l0: Vec<SstHandle>,
    /// Sorted runs, newest first.
    pub runs: Vec<SortedRun>,
}

impl ManifestObject {
    /// The fields the protocol decides.
    pub fn view(&self) -> ManifestView {
        ManifestView {
            writer_epoch: self.writer_epoch,
            wal_id_last_seen: self.wal_id_last_seen,
            replay_after_wal_id: self.replay_after_wal_id,
            ..ManifestView::default()
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
            next_run_id: 1,
            l0: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// The next version: the protocol's `view`, a fresh token, and the given
    /// L0 list. Every manifest a writer creates is built here.
    pub fn successor(&self, view: ManifestView, l0: Vec<SstHandle>) -> ManifestObject {
        ManifestObject {
            version: self.version + 1,
            writer_epoch: view.writer_epoch,
            token: rand::random(),
            wal_id_last_seen: view.wal_id_last_seen,
            replay_after_wal_id: view.replay_after_wal_id,
            l0,
            ..self.clone()
        }
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
        postcard::from_bytes(&framed[HEADER_LEN..]).map_err(|e| c(format!("manifest does not decode: {e}")))
    }
}
