//! Sorted sources (memtable ranges, SSTs, sorted runs) and the k-way merge
//! that reads and compaction share: one merge, so a scan and a compaction can
//! never disagree about which version of a key is the newest.
//!
//! Sources are given newest first; for a key held by several sources the
//! versions fold newest first (`value::fold`): the newest wins unless it is
//! a merge operand, which folds into the versions beneath it. Each source
//! holds at most one decoded block (or one batch of memtable entries) and,
//! for SSTs, its raw read-ahead, so memory stays bounded per source however
//! large the range.

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

use bytes::Bytes;

use crate::error::Result;
use crate::memtable::Memtable;
use crate::sst::{BlockCursor, RunReader, SeqEntry, SstRef};
use crate::sync::Arc;
use crate::value::{self, MergeOp, Value};

/// Bytes of consecutive blocks a scan or compaction fetches per request:
/// few requests on a store that charges latency per call, bounded memory
/// per source.
pub const READ_AHEAD: u64 = 256 << 10;

/// A key range, owned.
pub type KeyRange = (Bound<Bytes>, Bound<Bytes>);

/// The order a scan yields keys in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// Ascending keys.
    #[default]
    Forward,
    /// Descending keys.
    Reverse,
}

/// Keys a memtable source copies out per batch (under the memtable's lock).
const MEM_BATCH: usize = 128;

/// How a scan reads ([`Db::scan_with`](crate::Db::scan_with) has an example).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanOptions {
    /// The order of keys.
    pub direction: Direction,
    /// Bytes of consecutive blocks fetched per request from each SST (at
    /// least one block: zero reads a block at a time, the least memory; more
    /// means fewer requests). A source holds this many raw bytes and one
    /// decoded block.
    pub read_ahead_bytes: u64,
    /// Whether blocks read from the store enter the block cache (default
    /// true, as RocksDB's `ReadOptions::fill_cache`): a scan of cold data
    /// sets it false so it does not evict the hot set. Cached blocks are
    /// used either way.
    pub fill_cache: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self { direction: Direction::Forward, read_ahead_bytes: READ_AHEAD, fill_cache: true }
    }
}

impl ScanOptions {
    /// The default options in descending key order (as [`Db::scan_rev`](crate::Db::scan_rev) uses).
    pub fn reverse() -> Self {
        Self { direction: Direction::Reverse, ..Self::default() }
    }
}

/// An SST read block by block (opened on the first read), in either
/// direction: it holds one read-ahead batch of raw blocks and decodes one
/// entry at a time (a [`BlockCursor`]).
pub struct SstSource {
    sst: Arc<SstRef>,
    range: KeyRange,
    opts: ScanOptions,
    /// The overlapping blocks still to fetch, once the SST is open.
    blocks: Option<std::ops::Range<usize>>,
    /// Fetched blocks not yet decoded (index, bytes), next first.
    raw: VecDeque<(usize, Bytes)>,
    /// The block being read.
    cursor: Option<BlockCursor>,
    /// The next entry in range, at most one.
    buf: VecDeque<SeqEntry>,
}

impl SstSource {
    /// `range` of `sst`, forward, with the default read-ahead.
    pub fn new(sst: Arc<SstRef>, range: KeyRange) -> Self {
        Self::with_options(sst, range, ScanOptions::default())
    }

    /// `range` of `sst`, read as `opts` says.
    ///
    /// The SST is opened even if its handle's range misses `range`: the
    /// handle is trusted only once opening has checked it against the SST's
    /// own first and last key (once per SST); the blocks read are then
    /// chosen by the checked index.
    pub fn with_options(sst: Arc<SstRef>, range: KeyRange, opts: ScanOptions) -> Self {
        Self { sst, range, opts, blocks: None, raw: VecDeque::new(), cursor: None, buf: VecDeque::new() }
    }

    async fn fill(&mut self) -> Result<()> {
        while self.buf.is_empty() {
            if let Some(cursor) = &mut self.cursor {
                let next = match self.opts.direction {
                    Direction::Forward => cursor.next_front(),
                    Direction::Reverse => cursor.next_back(),
                };
                match next {
                    Some(e) if self.range.contains(&e.0) => self.buf.push_back(e),
                    Some(_) => {}
                    None => self.cursor = None,
                }
                continue;
            }
            let reader = self.sst.scan_reader().await?;
            if let Some((i, raw)) = self.raw.pop_front() {
                self.cursor = Some(reader.block_cursor(i, &raw)?);
                continue;
            }
            let blocks = self.blocks.get_or_insert_with(|| reader.blocks_in(&self.range));
            if blocks.start >= blocks.end {
                return Ok(());
            }
            // Read ahead: up to `read_ahead_bytes` of blocks in one request,
            // from the front or from the back.
            let read_ahead = self.opts.read_ahead_bytes;
            let batch = match self.opts.direction {
                Direction::Forward => {
                    let n = reader.blocks_within(blocks.start, blocks.end, read_ahead);
                    blocks.start += n;
                    blocks.start - n..blocks.start
                }
                Direction::Reverse => {
                    let n = reader.blocks_within_back(blocks.start, blocks.end, read_ahead);
                    blocks.end -= n;
                    blocks.end..blocks.end + n
                }
            };
            let fetched = batch.clone().zip(reader.fetch_raw_blocks(batch, self.opts.fill_cache).await?);
            match self.opts.direction {
                Direction::Forward => self.raw.extend(fetched),
                Direction::Reverse => self.raw.extend(fetched.rev()),
            }
        }
        Ok(())
    }
}

/// A memtable's range as of a sequence number, copied out a batch of
/// `MEM_BATCH` keys at a time (the memtable may be large; a scan holds
/// one batch of it).
pub struct MemSource {
    table: Arc<Memtable>,
    /// What is left to read: the bound behind the last key read moves.
    range: KeyRange,
    seq: u64,
    dir: Direction,
    done: bool,
    buf: VecDeque<SeqEntry>,
}

impl MemSource {
    /// `range` of `table` as of sequence number `seq`, in direction `dir`.
    pub fn new(table: Arc<Memtable>, range: KeyRange, seq: u64, dir: Direction) -> Self {
        Self { table, range, seq, dir, done: false, buf: VecDeque::new() }
    }

    fn fill(&mut self) {
        if !self.buf.is_empty() || self.done {
            return;
        }
        let reverse = self.dir == Direction::Reverse;
        let batch = self.table.range_at_batch(&self.range, self.seq, reverse, MEM_BATCH);
        self.done = batch.len() < MEM_BATCH;
        if let Some((last, _, _)) = batch.last() {
            match self.dir {
                Direction::Forward => self.range.0 = Bound::Excluded(last.clone()),
                Direction::Reverse => self.range.1 = Bound::Excluded(last.clone()),
            }
        }
        self.buf.extend(batch);
    }
}

/// A sorted run read SST after SST (one SST open for reading at a time).
pub struct RunSource {
    ssts: VecDeque<Arc<SstRef>>,
    range: KeyRange,
    opts: ScanOptions,
    current: Option<SstSource>,
}

impl RunSource {
    /// `range` of `run`, forward, with the default read-ahead.
    pub fn new(run: &RunReader, range: KeyRange) -> Self {
        Self::with_options(run, range, ScanOptions::default())
    }

    /// `range` of `run`, read as `opts` says.
    ///
    /// The SSTs whose handles overlap `range`, and the one on either side:
    /// the handles' "not here" rests on those neighbours, which opening
    /// checks (a point read does the same, `RunReader::get`).
    pub fn with_options(run: &RunReader, range: KeyRange, opts: ScanOptions) -> Self {
        // Sorted, disjoint handles: those below the range are a prefix,
        // those above it a suffix.
        let below = run.ssts.partition_point(|s| is_below(&range, &s.handle.last_key));
        let above = run.ssts.len() - run.ssts.iter().rev().take_while(|s| is_above(&range, &s.handle.first_key)).count();
        let (from, to) = (below.saturating_sub(1), (above.max(below) + 1).min(run.ssts.len()));
        let ssts = run.ssts[from..to].iter().cloned().collect();
        Self { ssts, range, opts, current: None }
    }

    async fn fill(&mut self) -> Result<()> {
        loop {
            if let Some(cur) = &mut self.current {
                cur.fill().await?;
                if !cur.buf.is_empty() {
                    return Ok(());
                }
            }
            let next = match self.opts.direction {
                Direction::Forward => self.ssts.pop_front(),
                Direction::Reverse => self.ssts.pop_back(),
            };
            match next {
                Some(next) => self.current = Some(SstSource::with_options(next, self.range.clone(), self.opts)),
                None => {
                    self.current = None;
                    return Ok(());
                }
            }
        }
    }

    fn buf(&mut self) -> Option<&mut VecDeque<SeqEntry>> {
        self.current.as_mut().map(|c| &mut c.buf)
    }
}

/// Whether every key up to `last` is below `range`.
fn is_below(range: &KeyRange, last: &[u8]) -> bool {
    match &range.0 {
        Bound::Included(start) => last < start.as_ref(),
        Bound::Excluded(start) => last <= start.as_ref(),
        Bound::Unbounded => false,
    }
}

/// Whether every key from `first` on is above `range`.
fn is_above(range: &KeyRange, first: &[u8]) -> bool {
    match &range.1 {
        Bound::Included(end) => first > end.as_ref(),
        Bound::Excluded(end) => first >= end.as_ref(),
        Bound::Unbounded => false,
    }
}

/// Whether `[first, last]` overlaps `range`.
pub fn overlaps(range: &KeyRange, first: &[u8], last: &[u8]) -> bool {
    !is_below(range, last) && !is_above(range, first)
}

/// One sorted source of a merge.
pub enum Source {
    /// Entries already in memory, in the merge's direction.
    Entries(VecDeque<SeqEntry>),
    /// A memtable read a batch at a time.
    Memtable(MemSource),
    /// An L0 SST, block by block.
    Sst(SstSource),
    /// A sorted run, SST after SST.
    Run(RunSource),
}

impl Source {
    /// A source of entries held in memory, given in ascending key order.
    pub fn entries(ascending: impl IntoIterator<Item = SeqEntry>, dir: Direction) -> Self {
        let mut v: VecDeque<SeqEntry> = ascending.into_iter().collect();
        if dir == Direction::Reverse {
            v.make_contiguous().reverse();
        }
        Source::Entries(v)
    }

    async fn fill(&mut self) -> Result<()> {
        match self {
            Source::Entries(_) => Ok(()),
            Source::Memtable(t) => {
                t.fill();
                Ok(())
            }
            Source::Sst(s) => s.fill().await,
            Source::Run(r) => r.fill().await,
        }
    }

    fn buf(&mut self) -> Option<&mut VecDeque<SeqEntry>> {
        match self {
            Source::Entries(v) => Some(v),
            Source::Memtable(t) => Some(&mut t.buf),
            Source::Sst(s) => Some(&mut s.buf),
            Source::Run(r) => r.buf(),
        }
    }

    fn head_key(&mut self) -> Option<Bytes> {
        self.buf().and_then(|b| b.front()).map(|(k, _, _)| k.clone())
    }

    /// Every entry of `key` at the head, newest first (a memtable gives a
    /// key's chain of versions together; other sources one entry).
    async fn pop_key(&mut self, key: &Bytes, out: &mut Vec<(u64, Value)>) -> Result<()> {
        loop {
            if self.head_key().as_ref() != Some(key) {
                return Ok(());
            }
            if let Some((_, seq, v)) = self.buf().and_then(|b| b.pop_front()) {
                out.push((seq, v));
            }
            self.fill().await?;
        }
    }
}

/// The k-way merge: each key once, its versions from every source folded
/// newest first, in either direction. It pulls from a source only when that
/// source's buffer is empty, so it holds per source one decoded block (or
/// memtable batch) and, for SSTs and runs, one raw read-ahead batch.
pub struct MergeIter {
    sources: Vec<Source>,
    dir: Direction,
    mode: Mode,
    op: MergeOp,
    mutant: CompactMutant,
    /// One key's versions, reused from key to key.
    versions: Vec<(u64, Value)>,
}

/// Compaction mutants the crash harness must catch (feature `mutants`;
/// always `None` otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CompactMutant {
    /// The shipped behaviour.
    #[default]
    None,
    /// `compaction-drops-operands`: only the newest source's version of a key is kept.
    DropsOperands,
    /// `expired-values-vanish`: an expired value is dropped, not tombstoned.
    ExpiredVanish,
}

/// What a merge makes of a key's folded versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reads at `now_ms` (the database clock): each live key with its value
    /// as a `Value::Put`; deleted and expired keys are skipped.
    Read {
        /// The time expiry is judged at.
        now_ms: u64,
    },
    /// A compaction at `now_ms` (`value::compact`): `bottom` when no older
    /// run can hold a key (tombstones go, operands fold onto nothing);
    /// otherwise tombstones and operands stay for the runs beneath.
    Compact {
        /// The time expiry is judged at.
        now_ms: u64,
        /// Whether the output is the oldest run.
        bottom: bool,
    },
}

impl MergeIter {
    /// `sources` newest first, each in `Direction::Forward` order.
    pub fn new(sources: Vec<Source>, mode: Mode, op: MergeOp) -> Self {
        Self::with_direction(sources, Direction::Forward, mode, op)
    }

    /// As [`MergeIter::new`], the sources built for `dir`.
    pub fn with_direction(sources: Vec<Source>, dir: Direction, mode: Mode, op: MergeOp) -> Self {
        Self { sources, dir, mode, op, mutant: CompactMutant::None, versions: Vec::new() }
    }

    /// The same merge with a compaction mutant planted (the crash harness's).
    pub fn with_mutant(mut self, mutant: CompactMutant) -> Self {
        self.mutant = mutant;
        self
    }

    /// The next entry in the merge's direction, with its sequence number.
    pub async fn next(&mut self) -> Result<Option<SeqEntry>> {
        loop {
            let mut best: Option<Bytes> = None;
            for s in self.sources.iter_mut() {
                s.fill().await?;
                if let Some(k) = s.head_key() {
                    let better = match (&best, self.dir) {
                        (None, _) => true,
                        (Some(b), Direction::Forward) => k < *b,
                        (Some(b), Direction::Reverse) => k > *b,
                    };
                    if better {
                        best = Some(k);
                    }
                }
            }
            let Some(key) = best else { return Ok(None) };
            // Every source's entries for `key` leave, folded newest first.
            self.versions.clear();
            for s in self.sources.iter_mut() {
                s.pop_key(&key, &mut self.versions).await?;
            }
            if self.mutant == CompactMutant::DropsOperands {
                self.versions.truncate(1);
            }
            let Some((seq, v)) = value::fold(&self.op, &key, self.versions.drain(..))? else { continue };
            let out = match self.mode {
                Mode::Read { now_ms } => value::read(&self.op, &key, v, now_ms)?.map(Value::Put),
                Mode::Compact { now_ms, .. }
                    if self.mutant == CompactMutant::ExpiredVanish
                        && matches!(v, Value::Expiring { expires_at, .. } if expires_at <= now_ms) =>
                {
                    None
                }
                Mode::Compact { now_ms, bottom } => value::compact(&self.op, &key, v, now_ms, bottom)?,
            };
            if let Some(v) = out {
                return Ok(Some((key, seq, v)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    const READ: Mode = Mode::Read { now_ms: 0 };
    const KEEP: Mode = Mode::Compact { now_ms: 0, bottom: false };

    fn mem(entries: &[(&str, Option<&str>)]) -> Source {
        Source::entries(entries.iter().map(|(k, v)| (b(k), 0, Value::from_option(v.map(b)))), Direction::Forward)
    }

    fn mem_rev(entries: &[(&str, Option<&str>)]) -> Source {
        Source::entries(entries.iter().map(|(k, v)| (b(k), 0, Value::from_option(v.map(b)))), Direction::Reverse)
    }

    async fn drain(mut m: MergeIter) -> Vec<crate::sst::Entry> {
        let mut out = Vec::new();
        while let Some((k, _, v)) = m.next().await.unwrap() {
            let v = match v {
                Value::Put(v) => Some(v),
                Value::Delete => None,
                other => panic!("unexpected {other:?}"),
            };
            out.push((k, v));
        }
        out
    }

    #[tokio::test]
    async fn the_newest_source_wins_and_tombstones_shadow_older_values() {
        let newest = mem(&[("a", Some("new")), ("c", None)]);
        let oldest = mem(&[("a", Some("old")), ("b", Some("b")), ("c", Some("old-c"))]);
        let kept = drain(MergeIter::new(vec![newest, oldest], KEEP, None)).await;
        assert_eq!(kept, vec![(b("a"), Some(b("new"))), (b("b"), Some(b("b"))), (b("c"), None)]);
        let newest = mem(&[("a", Some("new")), ("c", None)]);
        let oldest = mem(&[("a", Some("old")), ("b", Some("b")), ("c", Some("old-c"))]);
        let live = drain(MergeIter::new(vec![newest, oldest], READ, None)).await;
        assert_eq!(live, vec![(b("a"), Some(b("new"))), (b("b"), Some(b("b")))]);
    }

    /// A memtable read in batches of `MEM_BATCH` keys, in both directions
    /// and as of a sequence number, yields what one `range_at` copy does.
    #[tokio::test]
    async fn a_memtable_source_in_batches_equals_the_whole_range() {
        let table = Arc::new(Memtable::default());
        let mut seq = 0;
        for round in 0..3u64 {
            for i in (0..1000u64).filter(|i| i % (round + 2) == 0) {
                seq += 1;
                let value = Value::from_option((i % 11 != 0).then(|| b(&format!("v{round}-{i}"))));
                table.insert(b(&format!("k{i:05}")), seq, value);
            }
        }
        let ranges: [KeyRange; 3] = [
            (Bound::Unbounded, Bound::Unbounded),
            (Bound::Included(b("k00100")), Bound::Excluded(b("k00800"))),
            (Bound::Excluded(b("k00300")), Bound::Included(b("k00301"))),
        ];
        for at in [seq / 3, seq / 2, seq] {
            for range in &ranges {
                let whole = table.range_at(range, at);
                async fn read(table: &Arc<Memtable>, range: &KeyRange, at: u64, dir: Direction) -> Vec<SeqEntry> {
                    let src = Source::Memtable(MemSource::new(table.clone(), range.clone(), at, dir));
                    let mut m = MergeIter::with_direction(vec![src], dir, KEEP, None);
                    let mut out = Vec::new();
                    while let Some(e) = m.next().await.unwrap() {
                        out.push(e);
                    }
                    out
                }
                assert!(whole.len() > 2 * MEM_BATCH || range.0 != Bound::Unbounded, "several batches");
                assert_eq!(read(&table, range, at, Direction::Forward).await, whole, "forward at {at}, {range:?}");
                let mut rev = read(&table, range, at, Direction::Reverse).await;
                rev.reverse();
                assert_eq!(rev, whole, "reverse at {at}, {range:?}");
            }
        }
        let backwards: KeyRange = (Bound::Included(b("k2")), Bound::Excluded(b("k1")));
        assert!(table.range_at_batch(&backwards, seq, false, 8).is_empty() && table.range_at_batch(&backwards, seq, true, 8).is_empty());
    }

    #[tokio::test]
    async fn reverse_merge_yields_the_same_winners_backwards() {
        let newest = &[("a", Some("new")), ("c", None), ("d", Some("d"))];
        let oldest = &[("a", Some("old")), ("b", Some("b")), ("c", Some("old-c"))];
        let mut fwd = drain(MergeIter::new(vec![mem(newest), mem(oldest)], READ, None)).await;
        let rev = drain(MergeIter::with_direction(vec![mem_rev(newest), mem_rev(oldest)], Direction::Reverse, READ, None)).await;
        assert_eq!(rev.first(), Some(&(b("d"), Some(b("d")))));
        fwd.reverse();
        assert_eq!(rev, fwd);
    }
}
