//! An [`ObjectStore`] wrapper that slows chosen creates, before they reach
//! the store or after they landed, on tokio's clock (so a paused clock keeps
//! tests exact). A slow request lands late; a slow reply has already landed.
//! Hedged creates are tested with it: a hedge of a slow reply
//! finds its own first attempt and reports `AlreadyExists`.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use object_store::path::Path;
use object_store::{ObjectStore, PutOptions, PutPayload, PutResult, Result};

use crate::sync::{lock, Mutex, StdArc};

#[derive(Debug)]
struct Rule {
    prefix: String,
    before: Duration,
    after: Duration,
    times: u32,
}

/// Slows the next `times` puts under a prefix (see the module doc).
#[derive(Debug)]
pub struct PacedStore {
    inner: StdArc<dyn ObjectStore>,
    rules: Mutex<Vec<Rule>>,
}

impl PacedStore {
    /// `inner` with no pacing rule yet (see [`PacedStore::pace`]).
    pub fn new(inner: StdArc<dyn ObjectStore>) -> Self {
        Self { inner, rules: Mutex::new(Vec::new()) }
    }

    /// The next `times` puts under `prefix` wait `before` reaching the
    /// store and `after` before answering. Earlier rules match first.
    pub fn pace(&self, prefix: &str, before: Duration, after: Duration, times: u32) {
        lock(&self.rules).push(Rule { prefix: prefix.into(), before, after, times });
    }

    fn next(&self, path: &str) -> (Duration, Duration) {
        let mut rules = lock(&self.rules);
        match rules.iter_mut().find(|r| r.times > 0 && path.starts_with(r.prefix.as_str())) {
            Some(r) => {
                r.times -= 1;
                (r.before, r.after)
            }
            None => (Duration::ZERO, Duration::ZERO),
        }
    }
}

impl fmt::Display for PacedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PacedStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for PacedStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let (before, after) = self.next(location.as_ref());
        tokio::time::sleep(before).await;
        let r = self.inner.put_opts(location, payload, opts).await;
        tokio::time::sleep(after).await;
        r
    }
    crate::delegate_object_store!(inner =>
        put_multipart_opts, get_opts, delete_stream, list, list_with_delimiter, copy_opts, rename_opts);
}
