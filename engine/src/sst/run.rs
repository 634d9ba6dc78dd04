//! SSTs as a manifest lists them, opened on first use, and sorted runs: SSTs
//! with disjoint key ranges in key order, so a point read opens at most one
//! SST per run.

use object_store::path::Path;
use object_store::ObjectStore;

use super::SstReader;
use crate::bounds::ObjectKind;
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::manifest::{SortedRun, SstHandle};
use crate::sync::{Arc, StdArc};
use crate::value::Value;

/// An SST of the current manifest. Its footer, index and filter are read on
/// first use, not at open, so opening a database costs the same however
/// many SSTs it has.
pub struct SstRef {
    /// The manifest's handle: id, size and key range.
    pub handle: SstHandle,
    path: Path,
    /// The largest SST a reader with these settings accepts
    /// (`bounds::max_sst_bytes`): a handle recording more is `Corrupt`
    /// before anything is read.
    size_limit: u64,
    store: StdArc<dyn ObjectStore>,
    /// The database's block cache, for the reader's data blocks.
    cache: BlockCache,
    reader: crate::sync::task::OnceCell<Arc<SstReader>>,
}

impl std::fmt::Debug for SstRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SstRef({}, open: {})", self.path, self.reader.initialized())
    }
}

impl SstRef {
    /// An SST not yet opened; its first read opens it, reading `path` from
    /// `store` (no more than `size_limit` bytes) and its blocks through `cache`.
    pub fn new(handle: SstHandle, path: Path, store: StdArc<dyn ObjectStore>, cache: BlockCache, size_limit: u64) -> Self {
        Self { handle, path, size_limit, store, cache, reader: crate::sync::task::OnceCell::new() }
    }

    /// The reader if the SST has been opened (metrics: resident bytes).
    pub fn open_reader(&self) -> Option<&Arc<SstReader>> {
        self.reader.get()
    }

    /// The SST's object.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open reader, reading the SST's tail the first time.
    ///
    /// Reads pick SSTs of a run by the handles' key ranges, so the handle
    /// must record exactly the SST's first and last key, which its index
    /// holds: a narrower range would hide keys from reads silently. A
    /// mismatch is `Corrupt` naming the SST, and reads open an SST (an L0
    /// SST, a run's SSTs around a key) before they trust its handle's "no".
    pub async fn reader(&self) -> Result<&Arc<SstReader>> {
        self.open().await
    }

    /// As [`SstRef::reader`] for a scan. The SST is opened with its bloom
    /// filter, as for a point read: a scan checks every block it reads
    /// against the filter, so a filter that lacks a key of its SST is
    /// `Corrupt` to a scan, never a value that `get` (trusting the filter)
    /// would miss (found by the `db_open` fuzz target: get and scan
    /// disagreed when scans opened SSTs without filters).
    pub async fn scan_reader(&self) -> Result<&Arc<SstReader>> {
        self.open().await
    }

    async fn open(&self) -> Result<&Arc<SstReader>> {
        self.reader
            .get_or_try_init(|| async {
                if self.handle.size > self.size_limit {
                    return Err(Error::corrupt(self.path.to_string(), ObjectKind::Sst.too_large(self.handle.size, self.size_limit)));
                }
                let (store, path, size) = (self.store.clone(), self.path.clone(), Some(self.handle.size));
                let r = SstReader::open(store, path, size).await?;
                let r = r.with_block_cache(self.cache.clone(), self.handle.id);
                let recorded = Some((self.handle.first_key.clone(), self.handle.last_key.clone()));
                let held = r.key_range();
                if held != recorded {
                    return Err(Error::corrupt(
                        self.path.to_string(),
                        format!(
                            "the manifest records its keys as {:?}..={:?}, but it holds {:?}",
                            self.handle.first_key, self.handle.last_key, held
                        ),
                    ));
                }
                Ok(Arc::new(r))
            })
            .await
    }

    /// Point read: `None` if the key is not in this SST, else its version.
    /// The SST is opened even for a key outside the handle's range: the
    /// handle's "no" is trusted only once opening has checked it against the
    /// SST's own first and last key (once per SST).
    pub async fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.reader().await?.get(key).await
    }
}

/// An open sorted run: its SSTs in key order.
#[derive(Debug)]
pub struct RunReader {
    /// The run's id in the manifest.
    pub id: u64,
    /// Its SSTs, in key order with disjoint ranges.
    pub ssts: Vec<Arc<SstRef>>,
}

impl RunReader {
    /// A run from its manifest entry and its SSTs in the same order.
    pub fn new(run: &SortedRun, ssts: Vec<Arc<SstRef>>) -> Self {
        Self { id: run.id, ssts }
    }

    /// The SST whose key range holds `key`, if any.
    pub fn sst_for(&self, key: &[u8]) -> Option<&Arc<SstRef>> {
        let i = self.ssts.partition_point(|s| s.handle.last_key.as_ref() < key);
        self.ssts.get(i).filter(|s| s.handle.first_key.as_ref() <= key)
    }

    /// Point read: `None` if no SST of the run holds `key`, else its version. A key between two SSTs' ranges (or beyond the first or
    /// last) is looked up in the SSTs on either side: the handles' "no"
    /// rests on them, and opening them checks their handles.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let i = self.ssts.partition_point(|s| s.handle.last_key.as_ref() < key);
        if let Some(sst) = self.ssts.get(i).filter(|s| s.handle.first_key.as_ref() <= key) {
            return sst.get(key).await;
        }
        for sst in &self.ssts[i.saturating_sub(1)..(i + 1).min(self.ssts.len())] {
            if let Some(v) = sst.get(key).await? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}
