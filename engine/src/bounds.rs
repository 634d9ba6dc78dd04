//! Every bound on a stored value, in one place: what decoders refuse above,
//! what the writer never goes beyond, and what fsck reports when a database
//! sits at a bound it cannot move past.
//!
//! Each bound is the one the arithmetic on the value needs, so that what
//! decodes can also be used: a writer epoch leaves room for its sequence
//! numbers (`epoch << 32`), a compactor epoch for its run ids
//! (`epoch << 32 | n`), a WAL id for a fence's jump and the next writer's
//! WALs ([`MAX_WAL_ID`], [`WAL_ID_HEADROOM`]), a version for the next one.
//! Object sizes and manifest entries are bounded too, so that no object can
//! take more memory than the format and the settings allow. The protocol
//! core never wraps (checked or saturating arithmetic); the values it
//! derives are checked against these bounds before anything is written.

use crate::protocol::Epoch;
use crate::settings::Settings;

pub use crate::protocol::{MAX_ID, MAX_INFLIGHT_WAL_UPLOADS, MAX_WAL_ID, WAL_ID_HEADROOM};

/// Sequence numbers each writer epoch owns: epoch `e` numbers its writes
/// from `e << SEQ_BITS` up, so a reopened writer's writes are numbered above
/// every older one's whatever was replayed.
pub const SEQ_BITS: u32 = 32;

/// The largest sequence number (that of the last write of epoch [`MAX_EPOCH`]).
pub const MAX_SEQ: u64 = MAX_ID;

/// The largest writer or compactor epoch: the last one whose sequence
/// numbers (writer) or run ids (compactor, `epoch << 32 | n`) end at or
/// below [`MAX_ID`]. Each open claims one writer epoch and each compactor
/// one compactor epoch, so an honest store needs 2^31 opens to get here.
/// A stored epoch at this bound still decodes (the data stays readable),
/// but there is no next epoch to claim: fsck reports it.
pub const MAX_EPOCH: Epoch = MAX_ID >> SEQ_BITS;

/// The sequence numbers of writer epoch `epoch`, `None` above [`MAX_EPOCH`].
pub fn seq_range(epoch: Epoch) -> Option<std::ops::RangeInclusive<u64>> {
    (epoch <= MAX_EPOCH).then(|| epoch << SEQ_BITS..=(epoch << SEQ_BITS) | u64::from(u32::MAX))
}

/// The id of run `n` (counting from 1) of compactor epoch `epoch`: unique
/// in the store's history; `None` when either leaves its bits.
pub fn run_id(epoch: Epoch, n: u64) -> Option<u64> {
    (epoch <= MAX_EPOCH && (1..=u64::from(u32::MAX)).contains(&n)).then_some((epoch << SEQ_BITS) | n)
}

/// The compactor epoch that wrote run `id`.
pub fn run_epoch(id: u64) -> Epoch {
    id >> SEQ_BITS
}

/// The most L0 SSTs a manifest holds. A point read consults every L0 SST,
/// so this bounds a read's work; `Settings::l0_max_ssts` must be below it,
/// and the writer holds its memtables (writes then wait, or fail if no
/// compactor runs) rather than record more.
pub const MAX_L0_SSTS: usize = 256;

/// The most sorted runs a manifest holds. The compactor keeps below it: at
/// the bound, an L0 compaction merges into the newest run instead of adding one.
pub const MAX_RUNS: usize = 256;

/// The most SSTs in one sorted run (4 TiB of 64 MiB SSTs). A compaction
/// whose output reaches it stops splitting: its last SST takes the rest.
pub const MAX_SSTS_PER_RUN: usize = 1 << 16;

/// The most fences a manifest records. Every recovery that fences adds one
/// (a clean close needs none); an open that would record one more is refused.
pub const MAX_FENCES: usize = 1 << 20;

/// The largest manifest object. A version larger than this is never
/// created (the update fails, naming the bound), and a larger object is
/// `Corrupt` from its size before it is read.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// The most checkpoints a manifest records: each is a follower, a backup or
/// a writer's pin, and every GC pass weighs each of them.
pub const MAX_CHECKPOINTS: usize = 1 << 12;

/// The most retired SSTs a manifest records (compacted away while an older
/// version is pinned): as many as a full tree holds.
pub const MAX_RETIRED: usize = MAX_RUNS * MAX_SSTS_PER_RUN;

/// The most a compressed data block may expand: its stated plain length is
/// at most this many times its stored bytes. LZ4 never exceeds about 255;
/// a zstd block that would (long runs of one byte) is kept plain by the
/// writer. A hostile length therefore allocates at most this multiple of
/// bytes already read.
pub const MAX_COMPRESSION_RATIO: usize = 256;

/// The largest plain length of a compressed data block (blocks are cut at
/// `block_size`; a larger one holds a single large value, kept plain above this).
pub const MAX_COMPRESSED_PLAIN_BYTES: usize = 64 << 20;

/// What a manifest may hold, checked at decode (`ManifestObject::decode`)
/// and on every version before it is created: entry counts and epochs.
/// The error names the field.
pub fn check_manifest_entries(l0: usize, runs: &[usize], fences: usize) -> Result<(), String> {
    if l0 > MAX_L0_SSTS {
        return Err(format!("l0 holds {l0} SSTs, above the bound of {MAX_L0_SSTS}"));
    }
    if runs.len() > MAX_RUNS {
        return Err(format!("runs holds {} sorted runs, above the bound of {MAX_RUNS}", runs.len()));
    }
    if let Some((i, n)) = runs.iter().enumerate().find(|(_, n)| **n > MAX_SSTS_PER_RUN) {
        return Err(format!("sorted run at position {i} holds {n} SSTs, above the bound of {MAX_SSTS_PER_RUN}"));
    }
    if fences > MAX_FENCES {
        return Err(format!("fences holds {fences} WAL ids, above the bound of {MAX_FENCES}"));
    }
    Ok(())
}

/// The lifecycle entries of a manifest, as [`check_manifest_entries`].
pub fn check_lifecycle_entries(checkpoints: usize, retired: usize) -> Result<(), String> {
    if checkpoints > MAX_CHECKPOINTS {
        return Err(format!("checkpoints holds {checkpoints} entries, above the bound of {MAX_CHECKPOINTS}"));
    }
    if retired > MAX_RETIRED {
        return Err(format!("retired holds {retired} SSTs, above the bound of {MAX_RETIRED}"));
    }
    Ok(())
}

/// Bytes a WAL's or an SST's encoding adds to the bytes of its writes (as
/// `WriteBatch` counts them): each block's index entry repeats its first
/// and last key, so at worst (one entry per block) the object is three
/// times its writes, plus the footer, meta and filter header.
pub fn encoded_bound(payload: u64) -> u64 {
    payload.saturating_mul(3).saturating_add(4096)
}

/// The bytes of the largest write batch: one entry of the largest key and
/// value, or `wal_size_bytes` of smaller ones. A larger batch is refused,
/// since it lands whole in one WAL.
pub fn max_batch_bytes(s: &Settings) -> u64 {
    (s.wal_size_bytes as u64).max(s.max_key_size as u64 + s.max_value_size as u64 + 16)
}

/// The most bytes of writes one WAL holds: the writer appends to a buffer
/// that is not empty only while it stays within this (else it waits for the
/// buffer to be frozen), and a batch is at most this.
pub fn wal_payload_limit(s: &Settings) -> u64 {
    max_batch_bytes(s)
}

/// The largest WAL object a writer with these settings creates; readers
/// refuse a larger one by its listed size, before reading it.
pub fn max_wal_bytes(s: &Settings) -> u64 {
    encoded_bound(wal_payload_limit(s))
}

/// The largest SST object a writer with these settings creates: a memtable
/// flush (the memtable is frozen at `l0_sst_size_bytes`, plus at most two
/// WAL buffers appended while the freeze waits for the upload window) or a
/// compaction output (split at `compacted_sst_size_bytes`, plus one entry).
pub fn max_sst_bytes(s: &Settings) -> u64 {
    let memtable = (s.l0_sst_size_bytes as u64).saturating_add(wal_payload_limit(s).saturating_mul(2));
    let compacted = (s.compacted_sst_size_bytes as u64).saturating_add(max_batch_bytes(s));
    encoded_bound(memtable.max(compacted))
}

/// The object-size bounds a reader applies, from its settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    pub wal_bytes: u64,
    pub sst_bytes: u64,
}

impl ReadLimits {
    pub fn of(s: &Settings) -> Self {
        ReadLimits { wal_bytes: max_wal_bytes(s), sst_bytes: max_sst_bytes(s) }
    }
}

/// Which object a bounded read reads, for the error that says what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Wal,
    Sst,
    Manifest,
}

impl ObjectKind {
    /// Why an object of `size` bytes is refused, and what to do about it.
    pub fn too_large(self, size: u64, limit: u64) -> String {
        let (what, from, fix) = match self {
            ObjectKind::Wal => (
                "a WAL",
                "with these settings (3 x (wal_size_bytes, or one key and value of max_key_size + max_value_size) + 4 KiB)",
                "if a writer with a larger wal_size_bytes or max_value_size wrote it, open with its settings; \
                 otherwise it is not a WAL tidemark wrote: move it out of wal/ and run fsck",
            ),
            ObjectKind::Sst => (
                "an SST",
                "with these settings (3 x (l0_sst_size_bytes + 2 WAL buffers, or compacted_sst_size_bytes + a batch) + 4 KiB)",
                "if a writer with larger SST sizes wrote it, open with its settings; \
                 otherwise restore the object from a backup",
            ),
            ObjectKind::Manifest => (
                "a manifest",
                "(MAX_MANIFEST_BYTES)",
                "it is not a manifest tidemark wrote: restore it from a backup, or move it aside so that \
                 the version before it is the latest, and run fsck",
            ),
        };
        format!("{size} bytes is more than {what} may hold, {limit} bytes {from}; {fix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_epoch_numbers_up_to_the_id_bound_and_no_further() {
        assert_eq!(MAX_EPOCH, (1 << 31) - 1);
        assert_eq!(seq_range(MAX_EPOCH).map(|r| *r.end()), Some(MAX_ID));
        assert_eq!(seq_range(MAX_EPOCH + 1), None);
        assert_eq!(seq_range(3), Some(3 << 32..=(3 << 32) + u64::from(u32::MAX)));
        assert_eq!(run_id(MAX_EPOCH, u64::from(u32::MAX)), Some(MAX_ID));
        assert_eq!(run_id(MAX_EPOCH + 1, 1), None);
        assert_eq!(run_id(2, 0), None);
        assert_eq!(run_id(2, 1 << 32), None);
        assert_eq!(run_epoch(run_id(7, 9).unwrap()), 7);
    }

    #[test]
    fn entry_counts_are_refused_above_their_bound_by_name() {
        assert!(check_manifest_entries(MAX_L0_SSTS, &[MAX_SSTS_PER_RUN; MAX_RUNS], MAX_FENCES).is_ok());
        let l0 = check_manifest_entries(MAX_L0_SSTS + 1, &[], 0).unwrap_err();
        assert!(l0.starts_with("l0 holds 257 SSTs"), "{l0}");
        assert!(check_manifest_entries(0, &[1; MAX_RUNS + 1], 0).unwrap_err().starts_with("runs holds"));
        assert!(check_manifest_entries(0, &[1, MAX_SSTS_PER_RUN + 1], 0).unwrap_err().contains("position 1"));
        assert!(check_manifest_entries(0, &[], MAX_FENCES + 1).unwrap_err().starts_with("fences holds"));
    }

    #[test]
    fn the_default_settings_bound_a_wal_well_below_a_gigabyte() {
        let s = Settings::default();
        assert!(max_wal_bytes(&s) < 64 << 20, "{}", max_wal_bytes(&s));
        assert!(max_sst_bytes(&s) < 512 << 20, "{}", max_sst_bytes(&s));
    }
}
