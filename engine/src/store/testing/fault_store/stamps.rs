//! Object ages on a given clock. A store stamps `last_modified` with its own
//! (wall) clock, but a harness that runs the engine on a paused clock needs
//! every age decision (GC's `min_age`, the reader lease) to read one clock:
//! the [`FaultStore`](super::FaultStore) records when each object landed, on
//! the clock it is given, and shows that time in listings and heads.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use object_store::path::Path;
use object_store::ObjectMeta;

use crate::clock::Clock;
use crate::sync::{lock, Arc, Mutex, StdArc};

/// When each object landed, in milliseconds on the clock of the process
/// that created it. Shared by every `FaultStore` over one inner store (the
/// processes of one schedule); a clone shares the record. Times are kept
/// after an object is deleted: a checker asks when a manifest version was
/// created to know when its predecessor's lease ended.
#[derive(Clone, Default)]
pub struct CreationTimes {
    times: Arc<Mutex<HashMap<String, u64>>>,
    /// Objects deleted through a stamping store, in order.
    deleted: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for CreationTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CreationTimes({} objects)", lock(&self.times).len())
    }
}

impl CreationTimes {
    pub fn new() -> Self {
        Self::default()
    }

    /// When `path` last landed, if a `FaultStore` saw it land.
    pub fn get(&self, path: &Path) -> Option<u64> {
        lock(&self.times).get(path.as_ref()).copied()
    }

    /// Every recorded object under `prefix`, with its time.
    pub fn under(&self, prefix: &str) -> Vec<(Path, u64)> {
        let mut out: Vec<(Path, u64)> =
            lock(&self.times).iter().filter(|(p, _)| p.starts_with(prefix)).map(|(p, t)| (Path::from(p.as_str()), *t)).collect();
        out.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        out
    }

    /// How many objects under `prefix` were deleted so far.
    pub fn deletions_under(&self, prefix: &str) -> u64 {
        lock(&self.deleted).iter().filter(|p| p.starts_with(prefix)).count() as u64
    }

    fn record(&self, path: &Path, ms: u64) {
        lock(&self.times).insert(path.to_string(), ms);
    }
}

/// A clock and the record it writes (see the module doc).
#[derive(Clone)]
pub(super) struct Stamper {
    pub(super) clock: StdArc<dyn Clock>,
    pub(super) times: CreationTimes,
}

impl Stamper {
    /// `path` landed now.
    pub(super) fn landed(&self, path: &Path) {
        self.times.record(path, self.clock.now_ms());
    }

    /// `path` was deleted.
    pub(super) fn deleted(&self, path: &Path) {
        lock(&self.times.deleted).push(path.to_string());
    }

    /// Shows the recorded creation time of `meta`'s object, if any.
    pub(super) fn restamp(&self, meta: &mut ObjectMeta) {
        if let Some(ms) = self.times.get(&meta.location) {
            meta.last_modified = (UNIX_EPOCH + Duration::from_millis(ms)).into();
        }
    }
}
