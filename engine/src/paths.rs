//! Object layout under a database root: `wal/`, `compacted/`, `manifest/`.
//!
//! Ids are zero-padded to 20 digits so lexicographic listing order is id order.

use object_store::path::Path;

use crate::manifest::{SstHandle, SstOwner};
use crate::protocol::{Epoch, WalId};

/// An SST's object name without the directory and suffix: its ULID, then
/// its owner and epoch (`w` for the writer's L0 flushes, `c` for a
/// compactor's outputs), `<ULID>-w<epoch>` — the form in which a user finds
/// it in the store, and `tidemark manifest` prints it. GC reads the owner
/// from a listing.
///
/// ```
/// # use tidemark::SstOwner;
/// assert_eq!(tidemark::sst_name(0, SstOwner::Writer, 3), "00000000000000000000000000-w3");
/// assert_eq!(tidemark::sst_name(u128::MAX, SstOwner::Compactor, 12), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ-c12");
/// ```
pub fn sst_name(id: u128, owner: SstOwner, epoch: Epoch) -> String {
    let tag = match owner {
        SstOwner::Writer => 'w',
        SstOwner::Compactor => 'c',
    };
    format!("{}-{tag}{epoch}", ulid::Ulid(id))
}

/// What an SST's name says: its id, owner and epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SstName {
    pub(crate) id: u128,
    pub(crate) owner: SstOwner,
    pub(crate) epoch: Epoch,
}

/// Parses a name `sst_name` made; anything else is `None`.
fn parse_sst_name(name: &str) -> Option<SstName> {
    let (ulid, rest) = name.split_once('-')?;
    let owner = match rest.as_bytes().first()? {
        b'w' => SstOwner::Writer,
        b'c' => SstOwner::Compactor,
        _ => return None,
    };
    let digits = &rest[1..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    Some(SstName { id: ulid::Ulid::from_string(ulid).ok()?.0, owner, epoch: digits.parse().ok()? })
}

/// WAL `id` as its object is named, `wal/<id>.sst`: 20 digits, zero-padded
/// so that listing order is id order.
///
/// ```
/// assert_eq!(tidemark::wal_name(42), "00000000000000000042");
/// ```
pub fn wal_name(id: WalId) -> String {
    format!("{id:020}")
}

/// Paths of one database's objects.
#[derive(Clone, Debug)]
pub struct Layout {
    root: Path,
}

fn parse_id(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Layout {
    /// The layout of the database under `root`.
    pub fn new(root: Path) -> Self {
        Self { root }
    }

    /// The database's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `wal/`: WAL objects and fences.
    pub fn wal_dir(&self) -> Path {
        self.root.clone().join("wal")
    }

    /// `compacted/`: SSTs, L0 and sorted runs alike.
    pub fn sst_dir(&self) -> Path {
        self.root.clone().join("compacted")
    }

    /// `manifest/`: the numbered manifest versions.
    pub fn manifest_dir(&self) -> Path {
        self.root.clone().join("manifest")
    }

    /// WAL `id`, `wal/<20 digits>.sst` (a fence is a WAL with no entries).
    pub fn wal(&self, id: WalId) -> Path {
        self.wal_dir().join(format!("{}.sst", wal_name(id)))
    }

    /// The SST a handle names. Its ULID is unique without coordination, so
    /// two writers (one of them fenced) or two compactors never create the
    /// same object.
    pub fn sst(&self, h: &SstHandle) -> Path {
        self.sst_at(h.id, h.owner, h.epoch)
    }

    /// SST `id` of `owner` at `epoch`, `compacted/<sst_name>.sst`.
    pub fn sst_at(&self, id: u128, owner: SstOwner, epoch: Epoch) -> Path {
        self.sst_dir().join(format!("{}.sst", sst_name(id, owner, epoch)))
    }

    /// What a listed SST's name says, `None` for anything else.
    pub(crate) fn parse_sst(&self, path: &Path) -> Option<SstName> {
        parse_sst_name(path.filename()?.strip_suffix(".sst")?)
    }

    /// Manifest `version`, `manifest/<20 digits>.manifest`.
    pub fn manifest(&self, version: u64) -> Path {
        self.manifest_dir().join(format!("{version:020}.manifest"))
    }

    /// The WAL id of a listed path, `None` for anything else.
    pub fn parse_wal(&self, path: &Path) -> Option<WalId> {
        parse_id(path.filename()?, ".sst")
    }

    /// The manifest version of a listed path, `None` for anything else.
    pub fn parse_manifest(&self, path: &Path) -> Option<u64> {
        parse_id(path.filename()?, ".manifest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_foreign_files_are_ignored() {
        let l = Layout::new(Path::from("db"));
        assert_eq!(l.wal(7).as_ref(), "db/wal/00000000000000000007.sst");
        assert_eq!(l.parse_wal(&l.wal(7)), Some(7));
        assert_eq!(l.parse_manifest(&l.manifest(12)), Some(12));
        assert_eq!(l.parse_wal(&Path::from("db/wal/notes.txt")), None);
        assert_eq!(l.parse_wal(&Path::from("db/wal/7.sst")), None);
        let id = ulid::Ulid::new().0;
        let name = l.parse_sst(&l.sst_at(id, SstOwner::Compactor, 7));
        assert_eq!(name, Some(SstName { id, owner: SstOwner::Compactor, epoch: 7 }));
        assert_eq!(l.parse_sst(&Path::from("db/compacted/x.sst")), None);
        for bad in ["ULID-w1", "01ARZ3NDEKTSV4RRFFQ69G5FAV.sst", "01ARZ3NDEKTSV4RRFFQ69G5FAV-x1", "01ARZ3NDEKTSV4RRFFQ69G5FAV-w", "01ARZ3NDEKTSV4RRFFQ69G5FAV-w01"] {
            assert_eq!(l.parse_sst(&Path::from(format!("db/compacted/{bad}.sst"))), None, "{bad}");
        }
    }
}
