//! WAL objects: an SST of one WAL's writes, with the writer's header (epoch,
//! kind, token) in its meta section, so recovery can tell a fence from data
//! and one writer's object from another's.

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::protocol::{Epoch, ObjectOwner, WalHeader, WalId, WalKind, MAX_ID};
use crate::sst::{decode_all, SeqEntry, SstBuilder};

/// 2: entries carry their write's sequence number.
const WAL_META_VERSION: u16 = 2;

#[derive(Serialize, Deserialize)]
enum KindRepr {
    Data,
    Fence { next_wal_id: WalId },
}

#[derive(Serialize, Deserialize)]
struct WalMeta {
    format_version: u16,
    writer_epoch: Epoch,
    kind: KindRepr,
    token: u64,
}

/// A decoded WAL object.
#[derive(Clone, Debug)]
pub struct DecodedWal {
    /// What the object is (data WAL or fence) and which writer made it.
    pub header: WalHeader,
    /// The writer's token, unique per created object: tells our own object
    /// from another's after an ambiguous create.
    pub token: u64,
    /// The WAL's writes, one per key (the last write to a key wins), each
    /// with its sequence number.
    pub entries: Vec<SeqEntry>,
}

impl DecodedWal {
    /// Who created the object, as `protocol::resolve_create_conflict` compares owners.
    pub fn owner(&self) -> ObjectOwner {
        ObjectOwner { writer_epoch: self.header.writer_epoch, token: self.token }
    }
}

/// Encodes a WAL: `writes` in write order, possibly repeating keys; the last
/// write to a key wins, with its sequence number (the whole WAL applies
/// atomically on replay, and no snapshot outlives a crash).
pub fn encode_wal(header: WalHeader, token: u64, writes: impl IntoIterator<Item = SeqEntry>, block_size: usize) -> Bytes {
    let mut latest: std::collections::BTreeMap<Bytes, (u64, Option<Bytes>)> = std::collections::BTreeMap::new();
    for (k, seq, v) in writes {
        latest.insert(k, (seq, v));
    }
    let mut b = SstBuilder::new(block_size);
    for (k, (seq, v)) in latest {
        // Keys come sorted and unique from the map, so `add` cannot fail.
        let _ = b.add(k, seq, v);
    }
    let kind = match header.kind {
        WalKind::Data => KindRepr::Data,
        WalKind::Fence { next_wal_id } => KindRepr::Fence { next_wal_id },
    };
    let meta = WalMeta { format_version: WAL_META_VERSION, writer_epoch: header.writer_epoch, kind, token };
    b.finish(&postcard::to_stdvec(&meta).unwrap_or_default())
}

/// Decodes a WAL object read whole; any damage is `Error::Corrupt` naming it.
pub fn decode_wal(path: &Path, bytes: Bytes) -> Result<DecodedWal> {
    let (meta, entries) = decode_all(path, bytes)?;
    let meta: WalMeta = postcard::from_bytes(&meta)
        .map_err(|e| Error::corrupt(path.to_string(), format!("WAL header does not decode: {e}")))?;
    if meta.format_version != WAL_META_VERSION {
        return Err(Error::corrupt(
            path.to_string(),
            format!("unsupported WAL header format version {} (this build reads {WAL_META_VERSION})", meta.format_version),
        ));
    }
    // Bounds at decode time: recovery derives the next
    // chain position from these, and the writer's epoch is compared with
    // every later one.
    if meta.writer_epoch > MAX_ID {
        return Err(Error::corrupt(
            path.to_string(),
            format!("writer_epoch {} leaves no room for the next epoch", meta.writer_epoch),
        ));
    }
    if let KindRepr::Fence { next_wal_id } = meta.kind {
        if next_wal_id > MAX_ID {
            return Err(Error::corrupt(
                path.to_string(),
                format!("fence next_wal_id {next_wal_id} is above the WAL id bound {MAX_ID}"),
            ));
        }
    }
    let kind = match meta.kind {
        KindRepr::Data => WalKind::Data,
        KindRepr::Fence { next_wal_id } => WalKind::Fence { next_wal_id },
    };
    Ok(DecodedWal { header: WalHeader { writer_epoch: meta.writer_epoch, kind }, token: meta.token, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn round_trip_keeps_the_last_write_per_key() {
        let header = WalHeader { writer_epoch: 3, kind: WalKind::Data };
        let writes = vec![(b("k"), 7, Some(b("1"))), (b("a"), 8, None), (b("k"), 9, Some(b("2")))];
        let obj = encode_wal(header, 99, writes, 4096);
        let d = decode_wal(&Path::from("wal/1"), obj).unwrap();
        assert_eq!(d.header, header);
        assert_eq!(d.token, 99);
        assert_eq!(d.entries, vec![(b("a"), 8, None), (b("k"), 9, Some(b("2")))]);
    }

    #[test]
    fn fence_round_trips() {
        let header = WalHeader { writer_epoch: 2, kind: WalKind::Fence { next_wal_id: 70 } };
        let d = decode_wal(&Path::from("wal/6"), encode_wal(header, 1, vec![], 4096)).unwrap();
        assert_eq!(d.header, header);
        assert!(d.entries.is_empty());
    }
}
