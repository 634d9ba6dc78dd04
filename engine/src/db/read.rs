//! The read path: one consistent view per read, and the streaming iterator
//! that walks it block by block.

use std::ops::RangeBounds;

use bytes::Bytes;
use futures::Stream;

use super::inner::DbInner;
use super::tree::OpenTree;
use crate::error::Result;
use crate::clock::Clock;
use crate::iter::{KeyRange, MemSource, MergeIter, Mode, ScanOptions, Source};
use crate::memtable::{ImmMemtable, Memtable};
#[cfg(feature = "mutants")]
use crate::sst::SeqEntry;
use crate::sync::{lock, Arc, StdArc};
use crate::value::{self, MergeOp, Value};

impl DbInner {
    /// What a read sees, captured in one critical section: the newest
    /// sequence number in memory, the memtables and the tree. `flush_l0`
    /// adds an SST to `l0` before it removes the memtable from `mem.imm`,
    /// each under its own lock; holding `mem` and then `tree` (always in
    /// this order) sees either both or only the SST, never neither, so a
    /// write acknowledged before the read began is in the view. Writes
    /// after it have higher sequence numbers: the active memtable, which
    /// keeps changing, is read as of `seq`.
    pub(super) fn read_view(&self) -> ReadView {
        let mem = lock(&self.mem);
        let tree = lock(&self.tree).clone();
        ReadView {
            seq: mem.last_seq,
            active: mem.active.clone(),
            imm: mem.imm.clone(),
            tree,
            op: self.settings.merge_operator.clone(),
            clock: self.settings.clock.clone(),
        }
    }
}

/// One consistent state for reads (see [`DbInner::read_view`]): an
/// implicit snapshot for each plain read, held by a [`Snapshot`].
#[derive(Clone)]
pub(super) struct ReadView {
    /// The newest write the view sees.
    seq: u64,
    /// The memtable that was active, read as of `seq`.
    active: Arc<Memtable>,
    /// Immutable memtables, oldest first.
    imm: Vec<Arc<ImmMemtable>>,
    /// The open SSTs: L0 and sorted runs. Holding it keeps this process's
    /// GC from deleting them (`DbInner::ssts_in_use`).
    tree: StdArc<OpenTree>,
    /// Folds merge operands.
    op: MergeOp,
    /// Judges expiry (at each read, not at the view's making: an expired
    /// value is invisible from its expiry on, snapshots included).
    clock: StdArc<dyn Clock>,
}

impl ReadView {
    /// The iterator over `range`; it holds the view's tree.
    pub(super) fn iter(&self, range: &KeyRange, opts: ScanOptions) -> DbIterator {
        let dir = opts.direction;
        let table = |t: &Arc<Memtable>| Source::Memtable(MemSource::new(t.clone(), range.clone(), self.seq, dir));
        let mut sources = vec![table(&self.active)];
        for imm in self.imm.iter().rev() {
            sources.push(table(&imm.table));
        }
        sources.extend(self.tree.sources(range, opts));
        let mode = Mode::Read { now_ms: self.clock.now_ms() };
        DbIterator { merge: MergeIter::with_direction(sources, dir, mode, self.op.clone()), _tree: self.tree.clone() }
    }

    /// The value of `key` in the view: its versions from memtables, then L0
    /// SSTs newest first, then sorted runs newest first (at most one SST
    /// each), folded until one hides the rest (`value::fold`), judged at
    /// the database clock's now.
    pub(super) async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let mut versions: Vec<(u64, Value)> = self.active.get(key, self.seq);
        for m in self.imm.iter().rev() {
            if versions.last().is_some_and(|(_, v)| v.hides_older()) {
                break;
            }
            versions.extend(m.table.get(key, self.seq));
        }
        if !versions.last().is_some_and(|(_, v)| v.hides_older()) {
            self.get_stored(key, &mut versions).await?;
        }
        match value::fold(&self.op, key, versions)? {
            Some((_, v)) => value::read(&self.op, key, v, self.clock.now_ms()),
            None => Ok(None),
        }
    }

    /// Appends `key`'s versions in L0 and the runs, newest first, until one
    /// hides the rest.
    async fn get_stored(&self, key: &[u8], versions: &mut Vec<(u64, Value)>) -> Result<()> {
        // Every L0 SST may hold the key, whatever its handle says, until
        // opening it has checked the handle: those not yet open are opened
        // at once, concurrently (once per SST); an SST that fails to open
        // fails the read only if the read gets to it.
        if self.tree.l0.iter().any(|s| s.open_reader().is_none()) {
            futures::future::join_all(self.tree.l0.iter().map(|s| s.reader())).await;
        }
        // Sequence numbers of stored versions are not needed: only the
        // newest version's is kept by the fold, and a stored version is
        // never the newest once a memtable held the key.
        // Whether the version pushed hides the rest.
        let push = |versions: &mut Vec<(u64, Value)>, v: Value| {
            let hides = v.hides_older();
            versions.push((0, v));
            hides
        };
        for sst in &self.tree.l0 {
            if let Some(v) = sst.get(key).await? {
                if push(versions, v) {
                    return Ok(());
                }
            }
        }
        for run in &self.tree.runs {
            if let Some(v) = run.get(key).await? {
                if push(versions, v) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// A consistent read view as of one sequence number ([`Db::snapshot`](crate::Db::snapshot)):
/// reads see every write up to `seq()` and none after, across memtable
/// flushes, compactions and GC. It holds the memtables and the SST tree of
/// its moment, so compaction never has to keep old versions for it and GC
/// of this process never deletes what it reads; the cost is that memory
/// and SSTs it holds live as long as it does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
/// db.put("a", "1").await?;
/// let snap = db.snapshot();
/// db.delete("a").await?;
/// db.put("b", "2").await?;
/// assert_eq!(snap.get("a").await?.as_deref(), Some(&b"1"[..])); // deleted since
/// assert_eq!(snap.get("b").await?, None); // written since
/// assert!(db.snapshot().seq() > snap.seq());
/// db.close().await
/// # }
/// ```
#[derive(Clone)]
pub struct Snapshot {
    pub(super) view: ReadView,
    pub(super) max_key_size: usize,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot(seq={})", self.view.seq)
    }
}

impl Snapshot {
    /// The sequence number of the newest write this snapshot sees.
    pub fn seq(&self) -> u64 {
        self.view.seq
    }

    /// The manifest version whose SSTs this snapshot reads: what GC in
    /// another process keeps for it only while that version's successor is
    /// younger than `gc_min_age` (this process's GC keeps them while the
    /// snapshot lives).
    pub fn manifest_version(&self) -> u64 {
        self.view.tree.pin.version
    }

    /// The value of `key` as of the snapshot.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        super::check_key(key, self.max_key_size)?;
        self.view.get(key).await
    }

    /// Live keys and values in `range` as of the snapshot, in key order.
    pub async fn scan(&self, range: impl RangeBounds<Bytes>) -> Result<DbIterator> {
        self.scan_with(range, ScanOptions::default()).await
    }

    /// As [`Snapshot::scan`], in descending key order.
    pub async fn scan_rev(&self, range: impl RangeBounds<Bytes>) -> Result<DbIterator> {
        self.scan_with(range, ScanOptions::reverse()).await
    }

    /// Keys starting with `prefix` as of the snapshot, in key order.
    pub async fn scan_prefix(&self, prefix: impl Into<Bytes>) -> Result<DbIterator> {
        self.scan_with(super::prefix_range(prefix.into()), ScanOptions::default()).await
    }

    /// A scan of `range` with `opts`, as of the snapshot.
    pub async fn scan_with(&self, range: impl RangeBounds<Bytes>, opts: ScanOptions) -> Result<DbIterator> {
        let range: KeyRange = (range.start_bound().cloned(), range.end_bound().cloned());
        Ok(self.view.iter(&range, opts))
    }
}

/// A scan in progress: live keys and values in key order (or reverse), read
/// from the consistent view it was created with. Each L0 SST or sorted run
/// holds one raw read-ahead batch and one decoded block, each memtable one
/// batch of keys, so memory stays bounded however large the range. Holding it keeps this process's GC from
/// deleting the SSTs it reads.
///
/// Read it with [`next`](DbIterator::next), as a `futures::Stream` with
/// [`into_stream`](DbIterator::into_stream), or all at once with
/// [`collect_vec`](DbIterator::collect_vec).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// use futures::TryStreamExt;
///
/// let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
/// for i in 0..10u32 {
///     db.put(format!("k{i}"), i.to_string()).await?;
/// }
/// let mut it = db.scan(..).await?;
/// let mut sum = 0;
/// while let Some((_key, value)) = it.next().await? {
///     sum += std::str::from_utf8(&value).unwrap().parse::<u32>().unwrap();
/// }
/// assert_eq!(sum, 45);
///
/// // The same scan as a stream, with the stream combinators.
/// let keys: Vec<_> = db.scan(..).await?.into_stream().map_ok(|(k, _)| k).try_collect().await?;
/// assert_eq!(keys.len(), 10);
/// db.close().await
/// # }
/// ```
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
    pub(super) fn from_entries(ascending: Vec<SeqEntry>, dir: crate::iter::Direction, tree: StdArc<OpenTree>, mode: Mode, op: MergeOp) -> Self {
        DbIterator { merge: MergeIter::with_direction(vec![Source::entries(ascending, dir)], dir, mode, op), _tree: tree }
    }

    /// The next live key and value, `None` at the end of the range.
    pub async fn next(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        loop {
            match self.merge.next().await? {
                Some((k, _, Value::Put(v))) => return Ok(Some((k, v))),
                Some(_) => continue,
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
