//! What a database costs: block cache figures and object-store requests by
//! kind, as [`Db::metrics`](crate::Db::metrics) reports them.
//!
//! Requests are counted by the store chain's `CountingStore`, inside its
//! retries, so each attempt of a retried request is counted.

use std::fmt;

use serde::Serialize;

use crate::cache::BlockCacheStats;

/// Store requests by kind. A multi-range read (`get_ranges`) counts once
/// under `get_range`; a delete stream counts each object it deletes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreRequests {
    /// Whole-object GETs (WALs, manifests).
    pub get: u64,
    /// Ranged GETs (SST tails and blocks).
    pub get_range: u64,
    /// Metadata reads (`head`).
    pub head: u64,
    /// Unconditional PUTs (`PutMode::Overwrite`; SSTs).
    pub put: u64,
    /// Create-if-absent PUTs (`PutMode::Create`; WALs, fences, manifests).
    pub put_create: u64,
    /// Conditional updates (`PutMode::Update`).
    pub conditional_update: u64,
    /// Multipart uploads started.
    pub multipart: u64,
    /// Listings (`list`, `list_with_offset`, `list_with_delimiter`).
    pub list: u64,
    /// Objects deleted (GC of WALs, SSTs and manifests).
    pub delete: u64,
    /// Copies and renames.
    pub copy: u64,
}

impl StoreRequests {
    fn kinds(&self) -> [(&'static str, u64); 10] {
        [
            ("get", self.get),
            ("get_range", self.get_range),
            ("head", self.head),
            ("put", self.put),
            ("put_create", self.put_create),
            ("conditional_update", self.conditional_update),
            ("multipart", self.multipart),
            ("list", self.list),
            ("delete", self.delete),
            ("copy", self.copy),
        ]
    }

    /// Every request, of any kind.
    pub fn total(&self) -> u64 {
        self.kinds().iter().map(|(_, n)| n).sum()
    }

    /// Reads of object bytes or metadata (`get`, `get_range`, `head`).
    pub fn reads(&self) -> u64 {
        self.get + self.get_range + self.head
    }

    /// The requests made since `earlier` was taken (counters only grow).
    pub fn since(&self, earlier: &StoreRequests) -> StoreRequests {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        StoreRequests {
            get: d(self.get, earlier.get),
            get_range: d(self.get_range, earlier.get_range),
            head: d(self.head, earlier.head),
            put: d(self.put, earlier.put),
            put_create: d(self.put_create, earlier.put_create),
            conditional_update: d(self.conditional_update, earlier.conditional_update),
            multipart: d(self.multipart, earlier.multipart),
            list: d(self.list, earlier.list),
            delete: d(self.delete, earlier.delete),
            copy: d(self.copy, earlier.copy),
        }
    }
}

/// A database's metrics at one moment ([`Db::metrics`](crate::Db::metrics)).
/// `Display` prints a table; `Serialize` gives the same figures to a
/// metrics pipeline.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// use std::sync::Arc;
/// use object_store::memory::InMemory;
/// use tidemark::{Db, Settings};
///
/// let store = Arc::new(InMemory::new());
/// let db = Db::open("db", store.clone()).await?;
/// db.put("k", "v").await?;
/// db.close().await?; // the memtable goes to an L0 SST
///
/// let db = Db::open("db", store).await?;
/// db.get("k").await?; // reads the SST's block from the store ...
/// db.get("k").await?; // ... and then from the block cache
/// let m = db.metrics();
/// assert_eq!(m.open_ssts, 1);
/// assert_eq!((m.block_cache.misses, m.block_cache.hits), (1, 1));
/// println!("{m}");
/// db.close().await
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Metrics {
    /// The block cache's budget, contents and hits
    /// ([`Settings::block_cache_bytes`](crate::Settings::block_cache_bytes)).
    pub block_cache: BlockCacheStats,
    /// SSTs of the current tree whose index and filter are in memory.
    pub open_ssts: u64,
    /// Bytes of those indexes and filters (resident, outside the cache budget).
    pub index_filter_bytes: u64,
    /// Requests made to the store since the database was opened.
    pub requests: StoreRequests,
    /// Hedged creates and reads ([`Settings::hedge`](crate::Settings::hedge)); their second attempts
    /// are among `requests`.
    pub hedges: crate::store::HedgeCounts,
    /// Durable writes slower than `Settings::slow_write`, by what they
    /// waited on longest (each is also logged as `SlowWrite`).
    pub slow_writes: crate::db::SlowWrites,
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.block_cache;
        let lookups = c.hits + c.misses;
        writeln!(f, "block cache")?;
        writeln!(f, "  {:<20} {:>14}", "capacity_bytes", c.capacity_bytes)?;
        writeln!(f, "  {:<20} {:>14}", "hits", c.hits)?;
        writeln!(f, "  {:<20} {:>14}", "misses", c.misses)?;
        if lookups > 0 {
            writeln!(f, "  {:<20} {:>13.1}%", "hit_ratio", 100.0 * c.hits as f64 / lookups as f64)?;
        }
        writeln!(f, "  {:<20} {:>14}", "bytes", c.bytes)?;
        writeln!(f, "  {:<20} {:>14}", "entries", c.entries)?;
        writeln!(f, "open SSTs")?;
        writeln!(f, "  {:<20} {:>14}", "open_ssts", self.open_ssts)?;
        writeln!(f, "  {:<20} {:>14}", "index_filter_bytes", self.index_filter_bytes)?;
        let h = &self.hedges;
        writeln!(f, "hedged requests")?;
        writeln!(f, "  {:<20} {:>14}", "create_hedges", h.create_hedges)?;
        writeln!(f, "  {:<20} {:>14}", "create_hedges_won", h.create_hedges_won)?;
        writeln!(f, "  {:<20} {:>14}", "read_hedges", h.read_hedges)?;
        writeln!(f, "  {:<20} {:>14}", "read_hedges_won", h.read_hedges_won)?;
        writeln!(f, "  {:<20} {:>14}", "hedges_denied", h.create_hedges_denied + h.read_hedges_denied)?;
        let w = &self.slow_writes;
        writeln!(f, "slow writes")?;
        writeln!(f, "  {:<20} {:>14}", "slow_writes", w.total)?;
        for (cause, n) in &w.by_cause {
            writeln!(f, "  {:<20} {:>14}", cause.name(), n)?;
        }
        writeln!(f, "store requests")?;
        for (name, n) in self.requests.kinds() {
            writeln!(f, "  {name:<20} {n:>14}")?;
        }
        write!(f, "  {:<20} {:>14}", "total", self.requests.total())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn metrics_print_as_a_table() {
        let m = Metrics {
            block_cache: BlockCacheStats { capacity_bytes: 64 << 20, hits: 3, misses: 1, bytes: 4160, entries: 1 },
            open_ssts: 2,
            index_filter_bytes: 900,
            requests: StoreRequests { get_range: 5, put_create: 2, ..Default::default() },
            hedges: crate::store::HedgeCounts { create_hedges: 1, ..Default::default() },
            slow_writes: Default::default(),
        };
        let text = m.to_string();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
        for row in [["hits", "3"], ["hit_ratio", "75.0%"], ["create_hedges", "1"], ["get_range", "5"], ["put_create", "2"], ["total", "7"]] {
            assert!(rows.contains(&row.to_vec()), "no row {row:?} in\n{text}");
        }
        let json = serde_json::to_value(&m).expect("serialize");
        assert_eq!(json["requests"]["put_create"], 2);
        assert_eq!(json["block_cache"]["misses"], 1);
    }
}
