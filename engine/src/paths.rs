//! Object layout under a database root: `wal/`, `compacted/`, `manifest/`.
//!
//! Ids are zero-padded to 20 digits so lexicographic listing order is id order.

use object_store::path::Path;

use crate::protocol::WalId;

/// SST `id` as its object is named, `compacted/<ULID>.sst`: its ULID, the
/// form in which a user finds it in the store (and `tidemark manifest` prints it).
///
/// ```
/// assert_eq!(tidemark::sst_name(0), "00000000000000000000000000");
/// assert_eq!(tidemark::sst_name(u128::MAX), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
/// ```
pub fn sst_name(id: u128) -> String {
    ulid::Ulid(id).to_string()
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

    /// SST `id` (a ULID): unique without coordination, so two writers (one
    /// of them fenced) or two compactors never create the same object.
    pub fn sst(&self, id: u128) -> Path {
        self.sst_dir().join(format!("{}.sst", sst_name(id)))
    }

    /// The SST id of a listed path, `None` for anything else.
    pub fn parse_sst(&self, path: &Path) -> Option<u128> {
        let name = path.filename()?.strip_suffix(".sst")?;
        ulid::Ulid::from_string(name).ok().map(|u| u.0)
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
        assert_eq!(l.parse_sst(&l.sst(id)), Some(id));
        assert_eq!(l.parse_sst(&Path::from("db/compacted/x.sst")), None);
    }
}
