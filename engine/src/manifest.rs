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
pub const MANIFEST_FORMAT_VERSION: u16 = 2;
const HEADER_LEN: usize = 10;

/// A handle on an L0 SST the manifest lists. The writer's epoch is part of
/// the SST's name, so a fenced writer's late flush can never take the name
/// of an SST its successor needs (both may hold the same `next_sst_id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SstHandle {
    pub writer_epoch: Epoch,
    pub id: u64,
    pub size: u64,
}

/// One manifest version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    pub version: u64,
    pub writer_epoch: Epoch,
    /// Unique per created object, to recognise our own after an ambiguous create.
    pub token: u64,
    pub wal_id_last_seen: WalId,
    pub replay_after_wal_id: WalId,
    pub next_sst_id: u64,
    /// L0 SSTs, newest first.
    pub l0: Vec<SstHandle>,
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

    /// The next version: the protocol's `view`, a fresh token, and the given
    /// SST fields. Every manifest a writer creates is built here.
    pub fn successor(&self, view: ManifestView, next_sst_id: u64, l0: Vec<SstHandle>) -> ManifestObject {
        ManifestObject {
            version: self.version + 1,
            writer_epoch: view.writer_epoch,
            token: rand::random(),
            wal_id_last_seen: view.wal_id_last_seen,
            replay_after_wal_id: view.replay_after_wal_id,
            next_sst_id,
            l0,
        }
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
        if version > MANIFEST_FORMAT_VERSION {
            return Err(c(format!(
                "format version {version} is newer than supported {MANIFEST_FORMAT_VERSION}"
            )));
        }
        let len = u32::from_le_bytes([framed[6], framed[7], framed[8], framed[9]]) as usize;
        if len != framed.len() - HEADER_LEN {
            return Err(c("manifest length field disagrees with its size".into()));
        }
        postcard::from_bytes(&framed[HEADER_LEN..]).map_err(|e| c(format!("manifest does not decode: {e}")))
    }
}
