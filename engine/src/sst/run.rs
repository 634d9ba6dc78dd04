//! Sorted runs: SSTs with disjoint key ranges in key order, so a point read
//! opens at most one SST per run.

use bytes::Bytes;

use super::SstReader;
use crate::error::{Error, Result};
use crate::manifest::{SortedRun, SstHandle};
use crate::sync::Arc;

/// An open sorted run: each SST's handle (key range) and its reader.
#[derive(Debug)]
pub struct RunReader {
    pub id: u64,
    pub ssts: Vec<(SstHandle, Arc<SstReader>)>,
}

impl RunReader {
    /// A run from its manifest entry and readers opened in the same order.
    ///
    /// Point reads pick an SST by the handles' key ranges and scans skip SSTs
    /// by them, so each handle must record exactly its SST's first and last
    /// key (from the SST's index, already in memory): a narrower range would
    /// hide keys from reads silently. A mismatch is `Corrupt` naming the SST.
    pub fn new(run: &SortedRun, readers: Vec<Arc<SstReader>>) -> Result<Self> {
        if readers.len() != run.ssts.len() {
            return Err(Error::InvalidArgument(format!("sorted run {}: {} readers for {} SSTs", run.id, readers.len(), run.ssts.len())));
        }
        for (h, r) in run.ssts.iter().zip(&readers) {
            let recorded = Some((h.first_key.clone(), h.last_key.clone()));
            let held = r.key_range();
            if held != recorded {
                return Err(Error::corrupt(
                    r.path().to_string(),
                    format!(
                        "sorted run {} records its keys as {:?}..={:?}, but it holds {:?}",
                        run.id, h.first_key, h.last_key, held
                    ),
                ));
            }
        }
        Ok(Self { id: run.id, ssts: run.ssts.iter().cloned().zip(readers).collect() })
    }

    /// The SST whose key range holds `key`, if any.
    pub fn sst_for(&self, key: &[u8]) -> Option<&Arc<SstReader>> {
        let i = self.ssts.partition_point(|(h, _)| h.last_key.as_ref() < key);
        self.ssts.get(i).filter(|(h, _)| h.first_key.as_ref() <= key).map(|(_, r)| r)
    }

    /// Point read: `None` if no SST of the run holds `key`, `Some(None)` for a tombstone.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Option<Bytes>>> {
        match self.sst_for(key) {
            Some(sst) => sst.get(key).await,
            None => Ok(None),
        }
    }
}
