//! WAL objects: an SST of one WAL's writes, with the writer's header (epoch,
//! kind, token) in its meta section, so recovery can tell a fence from data
//! and one writer's object from another's.

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::error::{Error, Result};
use crate::protocol::{Epoch, ObjectOwner, WalHeader, WalId, WalKind, MAX_ID};
use crate::sst::{decode_all, SeqEntry, SstBuilder};
use crate::value::{self, MergeOp};

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

/// Encodes a WAL: `writes` in write order, possibly repeating keys; a key's
/// writes fold to one entry (the last put or delete wins, merge operands
/// fold with `op`), with the newest sequence number (the whole WAL applies
/// atomically on replay, and no snapshot outlives a crash). Fails only for
/// merge operands without a merge operator.
pub fn encode_wal(header: WalHeader, token: u64, writes: impl IntoIterator<Item = SeqEntry>, block_size: usize, op: &MergeOp) -> Result<Bytes> {
    // Sequence numbers follow write order: key order, each key's writes
    // newest first, is the chain order `fold_chains` takes.
    let mut writes: Vec<SeqEntry> = writes.into_iter().collect();
    writes.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut b = SstBuilder::new(block_size);
    for (k, seq, v) in value::fold_chains(op, writes)? {
        b.add(k, seq, v)?;
    }
    let kind = match header.kind {
        WalKind::Data => KindRepr::Data,
        WalKind::Fence { next_wal_id } => KindRepr::Fence { next_wal_id },
    };
    let meta = WalMeta { format_version: WAL_META_VERSION, writer_epoch: header.writer_epoch, kind, token };
    Ok(b.finish(&postcard::to_stdvec(&meta).unwrap_or_default()))
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
    // Bounds at decode time (`crate::bounds`): recovery derives the next
    // chain position from these, the writer's epoch is compared with every
    // later one, and a writer numbers its writes from `epoch << 32` up, above
    // every write it replays, so each entry must be one of its epoch's.
    let Some(seqs) = bounds::seq_range(meta.writer_epoch) else {
        return Err(Error::corrupt(
            path.to_string(),
            format!(
                "writer_epoch {} leaves no room for the next epoch (epochs are at most {})",
                meta.writer_epoch,
                bounds::MAX_EPOCH
            ),
        ));
    };
    if let Some((k, seq, _)) = entries.iter().find(|(_, seq, _)| !seqs.contains(seq)) {
        return Err(Error::corrupt(
            path.to_string(),
            format!(
                "entry {k:?} has seq {seq}, not one of writer_epoch {}'s sequence numbers {}..={}",
                meta.writer_epoch,
                seqs.start(),
                seqs.end()
            ),
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
    use crate::value::Value;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn round_trip_keeps_the_last_write_per_key() {
        let header = WalHeader { writer_epoch: 3, kind: WalKind::Data };
        let s = 3 << 32;
        let writes = vec![(b("k"), s + 7, Value::Put(b("1"))), (b("a"), s + 8, Value::Delete), (b("k"), s + 9, Value::Put(b("2")))];
        let obj = encode_wal(header, 99, writes, 4096, &None).unwrap();
        let d = decode_wal(&Path::from("wal/1"), obj).unwrap();
        assert_eq!(d.header, header);
        assert_eq!(d.token, 99);
        assert_eq!(d.entries, vec![(b("a"), s + 8, Value::Delete), (b("k"), s + 9, Value::Put(b("2")))]);
    }

    #[test]
    fn merge_operands_in_one_wal_fold_in_write_order() {
        let header = WalHeader { writer_epoch: 3, kind: WalKind::Data };
        let s = 3 << 32;
        let op: MergeOp = Some(crate::sync::StdArc::new(crate::value::Concat));
        let expiring = Value::Expiring { value: b("e"), expires_at: 77, then: None };
        let writes = vec![
            (b("k"), s + 1, Value::Merge(b("a"))),
            (b("k"), s + 2, Value::Merge(b("b"))),
            (b("p"), s + 3, Value::Put(b("x"))),
            (b("p"), s + 4, Value::Merge(b("y"))),
            (b("t"), s + 5, expiring.clone()),
        ];
        let d = decode_wal(&Path::from("wal/1"), encode_wal(header, 1, writes.clone(), 4096, &op).unwrap()).unwrap();
        assert_eq!(d.entries, vec![(b("k"), s + 2, Value::Merge(b("ab"))), (b("p"), s + 4, Value::Put(b("xy"))), (b("t"), s + 5, expiring)]);
        assert!(encode_wal(header, 1, writes, 4096, &None).is_err(), "operands without an operator");
    }

    #[test]
    fn an_entry_outside_its_epochs_sequence_numbers_is_corrupt() {
        let header = WalHeader { writer_epoch: 3, kind: WalKind::Data };
        for seq in [(3 << 32) - 1, 4 << 32, MAX_ID] {
            let obj = encode_wal(header, 1, vec![(b("k"), seq, Value::Delete)], 4096, &None).unwrap();
            match decode_wal(&Path::from("wal/1"), obj) {
                Err(Error::Corrupt { reason, .. }) => assert!(reason.contains(&format!("seq {seq}")), "{reason}"),
                other => panic!("seq {seq}: {other:?}"),
            }
        }
        let obj = encode_wal(header, 1, vec![(b("k"), (4 << 32) - 1, Value::Delete)], 4096, &None).unwrap();
        assert!(decode_wal(&Path::from("wal/1"), obj).is_ok(), "the last of epoch 3's numbers");
    }

    #[test]
    fn fence_round_trips() {
        let header = WalHeader { writer_epoch: 2, kind: WalKind::Fence { next_wal_id: 70 } };
        let d = decode_wal(&Path::from("wal/6"), encode_wal(header, 1, vec![], 4096, &None).unwrap()).unwrap();
        assert_eq!(d.header, header);
        assert!(d.entries.is_empty());
    }
}
