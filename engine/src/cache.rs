//! The block cache: data blocks of SSTs kept in memory under a byte budget
//! (`Settings::block_cache_bytes`), so a repeated read of a warm key costs no
//! store request.
//!
//! SSTs never change once written, so a cached block never goes stale: there
//! is no invalidation, and blocks of SSTs that compaction replaced and GC
//! deleted simply age out. Eviction and admission are moka's (TinyLFU), which
//! also keeps one-off reads such as compaction's from pushing hot blocks out.
//! Index and filter are not cached here: every open `SstReader` holds its
//! index for as long as the SST is in the tree, and its bloom filter from the
//! first point read on (a scan never loads one). A scan can keep its blocks
//! out of the cache with `ScanOptions::fill_cache: false`.

use bytes::Bytes;

use crate::sync::{AtomicU64, Ordering, StdArc};

/// A block: the SST's id (its ULID, unique in the store's history) and the
/// block's offset in the object.
type BlockKey = (u128, u64);

/// Bytes a cached block costs beyond its own, for the key and moka's entry.
const ENTRY_OVERHEAD: u64 = 64;

/// A cheap-to-clone handle on one database's block cache.
#[derive(Clone)]
pub struct BlockCache {
    /// `None` when the budget is zero: every block read goes to the store.
    blocks: Option<moka::sync::Cache<BlockKey, Bytes>>,
    capacity: u64,
    hits: StdArc<AtomicU64>,
    misses: StdArc<AtomicU64>,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockCache({} bytes)", self.capacity)
    }
}

impl Default for BlockCache {
    /// A disabled cache (readers of objects read whole, tests).
    fn default() -> Self {
        Self::new(0)
    }
}

/// What the block cache holds and how well it served, at one moment
/// (in [`Metrics`](crate::Metrics)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BlockCacheStats {
    /// The budget (`Settings::block_cache_bytes`); 0 means off.
    pub capacity_bytes: u64,
    /// Block reads served from memory.
    pub hits: u64,
    /// Block reads that went to the store (all of them when the cache is off).
    pub misses: u64,
    /// Bytes held, counting each block's bytes and a fixed entry overhead.
    pub bytes: u64,
    /// Blocks held.
    pub entries: u64,
}

impl BlockCache {
    /// A cache of at most `capacity_bytes` (0 turns caching off).
    pub fn new(capacity_bytes: u64) -> Self {
        let blocks = (capacity_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity_bytes)
                .weigher(|_: &BlockKey, b: &Bytes| u32::try_from(b.len() as u64 + ENTRY_OVERHEAD).unwrap_or(u32::MAX))
                .build()
        });
        Self {
            blocks,
            capacity: capacity_bytes,
            hits: StdArc::new(AtomicU64::new(0)),
            misses: StdArc::new(AtomicU64::new(0)),
        }
    }

    /// The block of SST `sst` at `offset`, if cached; counts a hit or a miss.
    pub fn get(&self, sst: u128, offset: u64) -> Option<Bytes> {
        let got = self.blocks.as_ref().and_then(|c| c.get(&(sst, offset)));
        let counter = if got.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        got
    }

    /// Caches a block read from the store. The bytes are copied, so the
    /// cache never keeps alive the rest of a larger read-ahead buffer and
    /// holds exactly what it weighs.
    pub fn insert(&self, sst: u128, offset: u64, block: &Bytes) {
        if let Some(c) = &self.blocks {
            c.insert((sst, offset), Bytes::copy_from_slice(block));
        }
    }

    /// The cache's figures now (pending inserts and evictions applied).
    pub fn stats(&self) -> BlockCacheStats {
        let (bytes, entries) = match &self.blocks {
            Some(c) => {
                // Apply pending inserts and evictions so the figures are current.
                c.run_pending_tasks();
                (c.weighted_size(), c.entry_count())
            }
            None => (0, 0),
        };
        BlockCacheStats {
            capacity_bytes: self.capacity,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes,
            entries,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_hits_and_misses_and_stays_within_budget() {
        let cache = BlockCache::new(64 << 10);
        assert!(cache.get(1, 0).is_none());
        cache.insert(1, 0, &Bytes::from(vec![7u8; 4096]));
        assert_eq!(cache.get(1, 0).as_deref(), Some(&[7u8; 4096][..]));
        assert!(cache.get(2, 0).is_none(), "another SST's block at the same offset is another block");
        for off in 0..100u64 {
            cache.insert(3, off * 4096, &Bytes::from(vec![1u8; 4096]));
        }
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (1, 2));
        assert!(s.bytes <= 64 << 10, "{} bytes held over a 64 KiB budget", s.bytes);
        assert!(s.entries > 0 && s.entries < 101);
    }

    #[test]
    fn zero_budget_caches_nothing() {
        let cache = BlockCache::new(0);
        cache.insert(1, 0, &Bytes::from_static(b"block"));
        assert!(cache.get(1, 0).is_none());
        assert_eq!(cache.stats(), BlockCacheStats { misses: 1, ..Default::default() });
    }
}
