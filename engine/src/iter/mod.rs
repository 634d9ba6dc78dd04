//! Sorted sources (memtable ranges, SSTs, sorted runs) and the k-way merge
//! that reads and compaction share: one merge, so a scan and a compaction can
//! never disagree about which version of a key is the newest.
//!
//! Sources are given newest first; for a key held by several sources the
//! newest source's entry wins. SSTs are read a block at a time, so memory
//! stays bounded by a block per source however large the range.

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

use bytes::Bytes;

use crate::error::Result;
use crate::sst::{Entry, RunReader, SstRef};
use crate::sync::Arc;

/// Bytes of consecutive blocks a scan or compaction fetches per request:
/// few requests on a store that charges latency per call, bounded memory
/// per source.
pub const READ_AHEAD: u64 = 256 << 10;

/// A key range, owned.
pub type KeyRange = (Bound<Bytes>, Bound<Bytes>);

/// An SST read block by block (opened on the first read).
pub struct SstSource {
    sst: Arc<SstRef>,
    range: KeyRange,
    /// The overlapping blocks still to read, once the SST is open.
    blocks: Option<std::ops::Range<usize>>,
    buf: VecDeque<Entry>,
}

impl SstSource {
    pub fn new(sst: Arc<SstRef>, range: KeyRange) -> Self {
        let blocks = (!overlaps(&range, &sst.handle.first_key, &sst.handle.last_key)).then_some(0..0);
        Self { sst, range, blocks, buf: VecDeque::new() }
    }

    async fn fill(&mut self) -> Result<()> {
        while self.buf.is_empty() {
            let reader = self.sst.reader().await?;
            let blocks = self.blocks.get_or_insert_with(|| reader.blocks_in(&self.range));
            if blocks.start >= blocks.end {
                return Ok(());
            }
            // Read ahead: up to READ_AHEAD bytes of blocks in one request.
            let n = reader.blocks_within(blocks.start, blocks.end, READ_AHEAD);
            let batch = blocks.start..blocks.start + n;
            blocks.start += n;
            let range = &self.range;
            self.buf.extend(reader.read_blocks(batch).await?.into_iter().filter(|(k, _)| range.contains(k)));
        }
        Ok(())
    }
}

/// A sorted run read SST after SST.
pub struct RunSource {
    ssts: VecDeque<Arc<SstRef>>,
    range: KeyRange,
    current: Option<SstSource>,
}

impl RunSource {
    pub fn new(run: &RunReader, range: KeyRange) -> Self {
        let ssts = run
            .ssts
            .iter()
            .filter(|s| overlaps(&range, &s.handle.first_key, &s.handle.last_key))
            .cloned()
            .collect();
        Self { ssts, range, current: None }
    }

    async fn fill(&mut self) -> Result<()> {
        loop {
            if let Some(cur) = &mut self.current {
                cur.fill().await?;
                if !cur.buf.is_empty() {
                    return Ok(());
                }
            }
            match self.ssts.pop_front() {
                Some(next) => self.current = Some(SstSource::new(next, self.range.clone())),
                None => {
                    self.current = None;
                    return Ok(());
                }
            }
        }
    }

    fn buf(&mut self) -> Option<&mut VecDeque<Entry>> {
        self.current.as_mut().map(|c| &mut c.buf)
    }
}

/// Whether `[first, last]` overlaps `range`.
pub fn overlaps(range: &KeyRange, first: &[u8], last: &[u8]) -> bool {
    let below = match &range.1 {
        Bound::Included(end) => first > end.as_ref(),
        Bound::Excluded(end) => first >= end.as_ref(),
        Bound::Unbounded => false,
    };
    let above = match &range.0 {
        Bound::Included(start) => last < start.as_ref(),
        Bound::Excluded(start) => last <= start.as_ref(),
        Bound::Unbounded => false,
    };
    !below && !above
}

/// One sorted source of a merge.
pub enum Source {
    /// Entries already in memory (a memtable's range), sorted, unique keys.
    Mem(VecDeque<Entry>),
    Sst(SstSource),
    Run(RunSource),
}

impl Source {
    async fn fill(&mut self) -> Result<()> {
        match self {
            Source::Mem(_) => Ok(()),
            Source::Sst(s) => s.fill().await,
            Source::Run(r) => r.fill().await,
        }
    }

    fn buf(&mut self) -> Option<&mut VecDeque<Entry>> {
        match self {
            Source::Mem(v) => Some(v),
            Source::Sst(s) => Some(&mut s.buf),
            Source::Run(r) => r.buf(),
        }
    }

    fn head_key(&mut self) -> Option<Bytes> {
        self.buf().and_then(|b| b.front()).map(|(k, _)| k.clone())
    }

    fn pop(&mut self) -> Option<Entry> {
        self.buf().and_then(|b| b.pop_front())
    }
}

/// The k-way merge: each key once, from the newest source holding it.
pub struct MergeIter {
    sources: Vec<Source>,
    drop_tombstones: bool,
}

impl MergeIter {
    /// `sources` newest first. With `drop_tombstones`, deleted keys are
    /// skipped (reads, and compactions into the oldest run); otherwise a
    /// tombstone is returned as `(key, None)` (compactions that must keep
    /// shadowing older runs).
    pub fn new(sources: Vec<Source>, drop_tombstones: bool) -> Self {
        Self { sources, drop_tombstones }
    }

    /// The next entry in key order.
    pub async fn next(&mut self) -> Result<Option<Entry>> {
        loop {
            let mut best: Option<(usize, Bytes)> = None;
            for (i, s) in self.sources.iter_mut().enumerate() {
                s.fill().await?;
                if let Some(k) = s.head_key() {
                    if best.as_ref().is_none_or(|(_, b)| k < *b) {
                        best = Some((i, k));
                    }
                }
            }
            let Some((winner, key)) = best else { return Ok(None) };
            let mut entry = None;
            for (i, s) in self.sources.iter_mut().enumerate() {
                if s.head_key().as_ref() == Some(&key) {
                    let e = s.pop();
                    if i == winner {
                        entry = e;
                    }
                }
            }
            match entry {
                Some((_, None)) if self.drop_tombstones => continue,
                Some(e) => return Ok(Some(e)),
                None => continue,
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

    fn mem(entries: &[(&str, Option<&str>)]) -> Source {
        Source::Mem(entries.iter().map(|(k, v)| (b(k), v.map(b))).collect())
    }

    async fn drain(mut m: MergeIter) -> Vec<Entry> {
        let mut out = Vec::new();
        while let Some(e) = m.next().await.unwrap() {
            out.push(e);
        }
        out
    }

    #[tokio::test]
    async fn the_newest_source_wins_and_tombstones_shadow_older_values() {
        let newest = mem(&[("a", Some("new")), ("c", None)]);
        let oldest = mem(&[("a", Some("old")), ("b", Some("b")), ("c", Some("old-c"))]);
        let kept = drain(MergeIter::new(vec![newest, oldest], false)).await;
        assert_eq!(kept, vec![(b("a"), Some(b("new"))), (b("b"), Some(b("b"))), (b("c"), None)]);
        let newest = mem(&[("a", Some("new")), ("c", None)]);
        let oldest = mem(&[("a", Some("old")), ("b", Some("b")), ("c", Some("old-c"))]);
        let live = drain(MergeIter::new(vec![newest, oldest], true)).await;
        assert_eq!(live, vec![(b("a"), Some(b("new"))), (b("b"), Some(b("b")))]);
    }
}
