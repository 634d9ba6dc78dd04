//! The open SSTs of one manifest version (L0 and sorted runs), as reads and
//! compaction use them.

use std::collections::HashMap;

use object_store::ObjectStore;

use crate::cache::BlockCache;
use crate::iter::{KeyRange, RunSource, ScanOptions, Source, SstSource};
use crate::manifest::{ManifestObject, SstHandle};
use crate::paths::Layout;
use crate::protocol::Pin;
use crate::sst::{RunReader, SstRef};
use crate::sync::{Arc, StdArc};

/// The SSTs of one manifest version, open: L0 newest first, runs newest first.
#[derive(Debug)]
pub(crate) struct OpenTree {
    pub(crate) l0: Vec<Arc<SstRef>>,
    pub(crate) runs: Vec<Arc<RunReader>>,
    /// The manifest version this tree is, and its replay point: while a
    /// reader holds the tree, the writer's pin stays at or below it.
    pub(crate) pin: Pin,
}

impl OpenTree {
    /// The tree of manifest `m`, every SST opened lazily (refused above
    /// `sst_limit` bytes); SSTs already open in `known` (by path) are reused
    /// with what they have read.
    pub(crate) fn of(
        store: &StdArc<dyn ObjectStore>,
        cache: &BlockCache,
        layout: &Layout,
        m: &ManifestObject,
        known: &HashMap<String, Arc<SstRef>>,
        sst_limit: u64,
    ) -> OpenTree {
        let sst = |h: &SstHandle| {
            let path = layout.sst(h);
            match known.get(path.as_ref()) {
                Some(r) => r.clone(),
                None => Arc::new(SstRef::new(h.clone(), path, store.clone(), cache.clone(), sst_limit)),
            }
        };
        let l0 = m.l0.iter().map(sst).collect();
        let runs = m.runs.iter().map(|run| Arc::new(RunReader::new(run, run.ssts.iter().map(sst).collect()))).collect();
        OpenTree { l0, runs, pin: Pin { version: m.version, replay_after_wal_id: m.replay_after_wal_id } }
    }

    /// Every open SST by path, to carry into the next tree.
    pub(crate) fn by_path(&self) -> HashMap<String, Arc<SstRef>> {
        self.ssts().map(|r| (r.path().to_string(), r.clone())).collect()
    }

    /// Every SST, L0 first, then the runs.
    pub(crate) fn ssts(&self) -> impl Iterator<Item = &Arc<SstRef>> {
        self.l0.iter().chain(self.runs.iter().flat_map(|r| r.ssts.iter()))
    }

    /// Sources for a merge over `range`, newest first.
    pub(crate) fn sources(&self, range: &KeyRange, opts: ScanOptions) -> Vec<Source> {
        let l0 = self.l0.iter().map(|r| Source::Sst(SstSource::with_options(r.clone(), range.clone(), opts)));
        let runs = self.runs.iter().map(|r| Source::Run(RunSource::with_options(r, range.clone(), opts)));
        l0.chain(runs).collect()
    }
}
