//! Memtables: the sorted in-memory tables reads consult before L0.
//!
//! A memtable keeps every version of a key, keyed by (key, seq descending),
//! so a snapshot that holds it reads the versions as of its sequence number
//! while writes go on.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::protocol::WalId;
use crate::sst::SeqEntry;
use crate::sync::{lock, Arc, Mutex};

#[derive(Debug, Default)]
struct Table {
    map: BTreeMap<(Bytes, Reverse<u64>), Option<Bytes>>,
    bytes: usize,
}

/// A sorted table of writes (`None` = tombstone), every version kept.
/// Shared (`Arc`) by the database and the snapshots and scans that read it.
#[derive(Debug, Default)]
pub struct Memtable {
    table: Mutex<Table>,
}

/// The map range holding every version of the keys in `range`.
type MapBound = Bound<(Bytes, Reverse<u64>)>;
fn map_bounds(range: &(Bound<Bytes>, Bound<Bytes>)) -> (MapBound, MapBound) {
    let start = match &range.0 {
        Bound::Included(k) => Bound::Included((k.clone(), Reverse(u64::MAX))),
        Bound::Excluded(k) => Bound::Excluded((k.clone(), Reverse(0))),
        Bound::Unbounded => Bound::Unbounded,
    };
    let end = match &range.1 {
        Bound::Included(k) => Bound::Included((k.clone(), Reverse(0))),
        Bound::Excluded(k) => Bound::Excluded((k.clone(), Reverse(u64::MAX))),
        Bound::Unbounded => Bound::Unbounded,
    };
    (start, end)
}

/// Whether `BTreeMap::range` accepts the bounds (it panics on a start past
/// the end, which a user's range such as `"b".."a"` would give).
fn valid((start, end): &(MapBound, MapBound)) -> bool {
    match (start, end) {
        (Bound::Excluded(a), Bound::Excluded(b)) => a < b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a <= b,
        _ => true,
    }
}

/// The first map key of `key`'s versions at or below `seq`.
fn at(key: &[u8], seq: u64) -> (Bytes, Reverse<u64>) {
    (Bytes::copy_from_slice(key), Reverse(seq))
}

impl Memtable {
    /// Inserts the write of `key` with sequence number `seq`; returns the
    /// table's size in bytes.
    pub fn insert(&self, key: Bytes, seq: u64, value: Option<Bytes>) -> usize {
        let mut t = lock(&self.table);
        t.bytes += key.len() + value.as_ref().map_or(0, Bytes::len) + 40;
        t.map.insert((key, Reverse(seq)), value);
        t.bytes
    }

    /// Bytes held (keys, values and per-entry overhead).
    pub fn bytes(&self) -> usize {
        lock(&self.table).bytes
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.table).map.is_empty()
    }

    /// The newest version of `key` with a sequence number `<= seq`.
    pub fn get(&self, key: &[u8], seq: u64) -> Option<(u64, Option<Bytes>)> {
        let t = lock(&self.table);
        let ((k, Reverse(s)), v) = t.map.range(at(key, seq)..).next()?;
        (k.as_ref() == key).then(|| (*s, v.clone()))
    }

    /// For each key in `range`, its newest version with a sequence number
    /// `<= seq`, in key order.
    pub fn range_at(&self, range: &(Bound<Bytes>, Bound<Bytes>), seq: u64) -> Vec<SeqEntry> {
        self.range_at_limit(range, seq, usize::MAX)
    }

    /// At most `max` keys of `range` as [`Memtable::range_at`] gives them,
    /// from the front (`reverse` false) or from the back, in that order: a
    /// scan reads a memtable a batch at a time, not its whole range at once.
    pub fn range_at_batch(&self, range: &(Bound<Bytes>, Bound<Bytes>), seq: u64, reverse: bool, max: usize) -> Vec<SeqEntry> {
        if !reverse {
            return self.range_at_limit(range, seq, max);
        }
        let bounds = map_bounds(range);
        if !valid(&bounds) {
            return Vec::new();
        }
        let t = lock(&self.table);
        let mut out: Vec<SeqEntry> = Vec::new();
        // Backwards, a key's versions come oldest first: the last one at or
        // below `seq` before the key changes is its version as of `seq`.
        let mut cand: Option<SeqEntry> = None;
        for ((k, Reverse(s)), v) in t.map.range(bounds).rev() {
            if cand.as_ref().is_some_and(|(ck, _, _)| ck != k) {
                out.extend(cand.take());
                if out.len() >= max {
                    return out;
                }
            }
            if *s <= seq {
                cand = Some((k.clone(), *s, v.clone()));
            }
        }
        out.extend(cand);
        out
    }

    fn range_at_limit(&self, range: &(Bound<Bytes>, Bound<Bytes>), seq: u64, max: usize) -> Vec<SeqEntry> {
        let bounds = map_bounds(range);
        if !valid(&bounds) {
            return Vec::new();
        }
        let t = lock(&self.table);
        let mut out: Vec<SeqEntry> = Vec::new();
        for ((k, Reverse(s)), v) in t.map.range(bounds) {
            if *s > seq || out.last().is_some_and(|(last, _, _)| last == k) {
                continue;
            }
            if out.len() >= max {
                break;
            }
            out.push((k.clone(), *s, v.clone()));
        }
        out
    }

    /// Every key's newest version (what `FlushL0` writes).
    pub fn newest(&self) -> Vec<SeqEntry> {
        self.range_at(&(Bound::Unbounded, Bound::Unbounded), u64::MAX)
    }

    /// The highest sequence number held, if any.
    pub fn max_seq(&self) -> Option<u64> {
        lock(&self.table).map.keys().map(|(_, Reverse(s))| *s).max()
    }
}

/// A frozen memtable waiting for `FlushL0`: its writes are in WALs `<= last_wal_id`.
#[derive(Debug)]
pub struct ImmMemtable {
    pub table: Arc<Memtable>,
    pub last_wal_id: WalId,
}

/// The active memtable and the frozen ones, oldest first.
#[derive(Debug, Default)]
pub struct MemState {
    pub active: Arc<Memtable>,
    pub imm: Vec<Arc<ImmMemtable>>,
    /// The sequence number of the newest write in a memtable: a read view
    /// taken under the same lock sees exactly the writes up to it.
    pub last_seq: u64,
}

impl MemState {
    /// Bytes held in memtables not yet in L0.
    pub fn unflushed_bytes(&self) -> usize {
        self.active.bytes() + self.imm.iter().map(|m| m.table.bytes()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn reads_as_of_a_seq_see_the_versions_of_that_seq() {
        let m = Memtable::default();
        m.insert(b("a"), 1, Some(b("a1")));
        m.insert(b("b"), 2, Some(b("b2")));
        m.insert(b("a"), 3, None);
        m.insert(b("a"), 5, Some(b("a5")));
        assert_eq!(m.get(b"a", 0), None);
        assert_eq!(m.get(b"a", 2), Some((1, Some(b("a1")))));
        assert_eq!(m.get(b"a", 4), Some((3, None)));
        assert_eq!(m.get(b"a", u64::MAX), Some((5, Some(b("a5")))));
        let all = (Bound::Unbounded, Bound::Unbounded);
        assert_eq!(m.range_at(&all, 2), vec![(b("a"), 1, Some(b("a1"))), (b("b"), 2, Some(b("b2")))]);
        assert_eq!(m.range_at(&all, 3), vec![(b("a"), 3, None), (b("b"), 2, Some(b("b2")))]);
        let from_b = (Bound::Excluded(b("a")), Bound::Included(b("b")));
        assert_eq!(m.range_at(&from_b, 9), vec![(b("b"), 2, Some(b("b2")))]);
        assert_eq!(m.newest()[0], (b("a"), 5, Some(b("a5"))));
        assert_eq!(m.max_seq(), Some(5));
    }
}
