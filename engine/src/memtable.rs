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
use crate::value::Value;

#[derive(Debug, Default)]
struct Table {
    map: BTreeMap<(Bytes, Reverse<u64>), Value>,
    bytes: usize,
}

/// A sorted table of writes, every version kept. Reads take, per key, its
/// versions newest first down to the first that hides older ones (a merge
/// operand does not): the caller folds them (`value::fold`).
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
    pub fn insert(&self, key: Bytes, seq: u64, value: Value) -> usize {
        let mut t = lock(&self.table);
        t.bytes += key.len() + value.payload_len() + 40;
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

    /// The versions of `key` with sequence numbers `<= seq`, newest first,
    /// down to the first that hides older ones.
    pub fn get(&self, key: &[u8], seq: u64) -> Vec<(u64, Value)> {
        let t = lock(&self.table);
        let mut out: Vec<(u64, Value)> = Vec::new();
        for ((k, Reverse(s)), v) in t.map.range(at(key, seq)..) {
            if k.as_ref() != key || out.last().is_some_and(|(_, last)| last.hides_older()) {
                break;
            }
            out.push((*s, v.clone()));
        }
        out
    }

    /// For each key in `range`, its versions with sequence numbers `<= seq`
    /// down to the first that hides older ones, newest first, in key order.
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
        let mut keys = 0;
        // Backwards, a key's versions come oldest first: those at or below
        // `seq` from the last that hides older ones are the key's chain,
        // emitted newest first once the key changes.
        let mut cand: Vec<SeqEntry> = Vec::new();
        for ((k, Reverse(s)), v) in t.map.range(bounds).rev() {
            if cand.first().is_some_and(|(ck, _, _)| ck != k) {
                out.extend(cand.drain(..).rev());
                keys += 1;
                if keys >= max {
                    return out;
                }
            }
            if *s <= seq {
                if v.hides_older() {
                    cand.clear();
                }
                cand.push((k.clone(), *s, v.clone()));
            }
        }
        out.extend(cand.drain(..).rev());
        out
    }

    fn range_at_limit(&self, range: &(Bound<Bytes>, Bound<Bytes>), seq: u64, max: usize) -> Vec<SeqEntry> {
        let bounds = map_bounds(range);
        if !valid(&bounds) {
            return Vec::new();
        }
        let t = lock(&self.table);
        let mut out: Vec<SeqEntry> = Vec::new();
        let mut keys = 0;
        for ((k, Reverse(s)), v) in t.map.range(bounds) {
            let same_key = out.last().is_some_and(|(last, _, _)| last == k);
            if *s > seq || (same_key && out.last().is_some_and(|(_, _, last)| last.hides_older())) {
                continue;
            }
            if !same_key {
                if keys >= max {
                    break;
                }
                keys += 1;
            }
            out.push((k.clone(), *s, v.clone()));
        }
        out
    }

    /// Every key's versions down to the first that hides older ones, newest
    /// first (what `FlushL0` folds and writes).
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
        let put = |s: &str| Value::Put(b(s));
        m.insert(b("a"), 1, put("a1"));
        m.insert(b("b"), 2, put("b2"));
        m.insert(b("a"), 3, Value::Delete);
        m.insert(b("a"), 5, put("a5"));
        assert_eq!(m.get(b"a", 0), vec![]);
        assert_eq!(m.get(b"a", 2), vec![(1, put("a1"))]);
        assert_eq!(m.get(b"a", 4), vec![(3, Value::Delete)]);
        assert_eq!(m.get(b"a", u64::MAX), vec![(5, put("a5"))]);
        let all = (Bound::Unbounded, Bound::Unbounded);
        assert_eq!(m.range_at(&all, 2), vec![(b("a"), 1, put("a1")), (b("b"), 2, put("b2"))]);
        assert_eq!(m.range_at(&all, 3), vec![(b("a"), 3, Value::Delete), (b("b"), 2, put("b2"))]);
        let from_b = (Bound::Excluded(b("a")), Bound::Included(b("b")));
        assert_eq!(m.range_at(&from_b, 9), vec![(b("b"), 2, put("b2"))]);
        assert_eq!(m.newest()[0], (b("a"), 5, put("a5")));
        assert_eq!(m.max_seq(), Some(5));
    }

    #[test]
    fn a_key_with_merge_operands_reads_down_to_the_version_they_fold_into() {
        let m = Memtable::default();
        let (put, merge) = (|s: &str| Value::Put(b(s)), |s: &str| Value::Merge(b(s)));
        m.insert(b("a"), 1, put("old"));
        m.insert(b("a"), 2, put("base"));
        m.insert(b("a"), 3, merge("x"));
        m.insert(b("a"), 4, merge("y"));
        m.insert(b("b"), 5, merge("z"));
        let chain_a = vec![(4, merge("y")), (3, merge("x")), (2, put("base"))];
        assert_eq!(m.get(b"a", 9), chain_a);
        assert_eq!(m.get(b"a", 3), chain_a[1..].to_vec());
        let all = (Bound::Unbounded, Bound::Unbounded);
        let flat: Vec<SeqEntry> = chain_a.iter().map(|(s, v)| (b("a"), *s, v.clone())).chain([(b("b"), 5, merge("z"))]).collect();
        assert_eq!(m.range_at(&all, 9), flat);
        // A batch of one key holds its whole chain, in either direction.
        assert_eq!(m.range_at_batch(&all, 9, false, 1), flat[..3].to_vec());
        assert_eq!(m.range_at_batch(&all, 9, true, 1), flat[3..].to_vec());
        assert_eq!(m.range_at_batch(&all, 9, true, 2), [&flat[3..], &flat[..3]].concat());
    }
}
