//! The read path: one consistent view per read, and the streaming iterator
//! that walks it block by block.

use bytes::Bytes;
use futures::Stream;

use super::{DbInner, OpenTree};
use crate::error::Result;
use crate::iter::{KeyRange, MergeIter, ScanOptions, Source};
use crate::memtable::ImmMemtable;
use crate::sst::Entry;
use crate::sync::{lock, Arc, StdArc};

impl DbInner {
    /// What a scan of `range` reads, captured in one critical section: the
    /// active memtable's entries in `range`, the immutable memtables and the
    /// tree. `flush_l0` adds an SST to `l0` before it removes the memtable
    /// from `mem.imm`, each under its own lock; holding `mem` and then `tree`
    /// (always in this order) sees either both or only the SST, never neither,
    /// so a write acknowledged before the scan began is in the view.
    pub(super) fn read_view(&self, range: &KeyRange) -> ReadView {
        let mem = lock(&self.mem);
        let active = mem.active.range(range).map(|(k, v)| (k.clone(), v.clone())).collect();
        let imm = mem.imm.clone();
        let tree = lock(&self.tree).clone();
        ReadView { active, imm, tree }
    }
}

/// One consistent state for a read (see [`DbInner::read_view`]).
pub(super) struct ReadView {
    /// The active memtable's entries in the range, newest state of each key.
    active: Vec<Entry>,
    /// Immutable memtables, oldest first.
    imm: Vec<Arc<ImmMemtable>>,
    /// The open SSTs: L0 and sorted runs.
    tree: StdArc<OpenTree>,
}

impl ReadView {
    /// The iterator over `range` in `dir`; it holds the view's tree, so GC
    /// of this process keeps every SST it may still read.
    pub(super) fn iter(self, range: &KeyRange, opts: ScanOptions) -> DbIterator {
        let dir = opts.direction;
        let mut sources = vec![Source::mem(self.active, dir)];
        for imm in self.imm.iter().rev() {
            sources.push(Source::mem(imm.table.range(range).map(|(k, v)| (k.clone(), v.clone())), dir));
        }
        sources.extend(self.tree.sources(range, opts));
        DbIterator { merge: MergeIter::with_direction(sources, dir, true), _tree: self.tree }
    }
}

/// A scan in progress: live keys and values in key order (or reverse), read
/// from the consistent view it was created with. SSTs are read a read-ahead
/// batch of blocks at a time per L0 SST or sorted run, so memory stays
/// bounded however large the range. Holding it keeps this process's GC from
/// deleting the SSTs it reads.
pub struct DbIterator {
    merge: MergeIter,
    /// The tree the sources read (see `DbInner::ssts_in_use`).
    _tree: StdArc<OpenTree>,
}

impl std::fmt::Debug for DbIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbIterator")
    }
}

impl DbIterator {
    /// An iterator over entries already merged (the `scan-without-snapshot` mutant).
    #[cfg(feature = "mutants")]
    pub(super) fn from_entries(ascending: Vec<Entry>, dir: crate::iter::Direction, tree: StdArc<OpenTree>) -> Self {
        DbIterator { merge: MergeIter::with_direction(vec![Source::mem(ascending, dir)], dir, true), _tree: tree }
    }

    /// The next live key and value, `None` at the end of the range.
    pub async fn next(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        loop {
            match self.merge.next().await? {
                Some((k, Some(v))) => return Ok(Some((k, v))),
                Some((_, None)) => continue,
                None => return Ok(None),
            }
        }
    }

    /// Every remaining entry, in memory (for small ranges and tests).
    pub async fn collect_vec(mut self) -> Result<Vec<(Bytes, Bytes)>> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await? {
            out.push(e);
        }
        Ok(out)
    }

    /// The iterator as a `futures::Stream`; it ends after the first error.
    pub fn into_stream(self) -> impl Stream<Item = Result<(Bytes, Bytes)>> + Send + 'static {
        futures::stream::unfold(Some(self), |state| async move {
            let mut it = state?;
            match it.next().await {
                Ok(Some(e)) => Some((Ok(e), Some(it))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}
