//! Memtables: the sorted in-memory tables reads consult before L0.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

use bytes::Bytes;

use crate::protocol::WalId;
use crate::sync::Arc;

/// A sorted table of the latest write per key (`None` = tombstone).
#[derive(Debug, Default)]
pub struct Memtable {
    pub(crate) map: BTreeMap<Bytes, Option<Bytes>>,
    pub(crate) bytes: usize,
}

impl Memtable {
    pub fn insert(&mut self, key: Bytes, value: Option<Bytes>) {
        self.bytes += key.len() + value.as_ref().map_or(0, Bytes::len) + 32;
        self.map.insert(key, value);
    }

    pub fn get(&self, key: &[u8]) -> Option<&Option<Bytes>> {
        self.map.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn range<'a>(&'a self, range: &'a (Bound<Bytes>, Bound<Bytes>)) -> impl Iterator<Item = (&'a Bytes, &'a Option<Bytes>)> {
        self.map.range::<Bytes, _>((range.start_bound(), range.end_bound()))
    }
}

/// A frozen memtable waiting for `FlushL0`: its writes are in WALs `<= last_wal_id`.
#[derive(Debug)]
pub struct ImmMemtable {
    pub table: Memtable,
    pub last_wal_id: WalId,
}

/// The active memtable and the frozen ones, oldest first.
#[derive(Debug, Default)]
pub struct MemState {
    pub active: Memtable,
    pub imm: Vec<Arc<ImmMemtable>>,
}

impl MemState {
    /// Bytes held in memtables not yet in L0.
    pub fn unflushed_bytes(&self) -> usize {
        self.active.bytes + self.imm.iter().map(|m| m.table.bytes).sum::<usize>()
    }

    /// The newest write to `key` in memory, if any.
    pub fn get(&self, key: &[u8]) -> Option<Option<Bytes>> {
        if let Some(v) = self.active.get(key) {
            return Some(v.clone());
        }
        self.imm.iter().rev().find_map(|m| m.table.get(key).cloned())
    }
}
