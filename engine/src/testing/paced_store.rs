//! An [`ObjectStore`] wrapper that slows chosen creates, before they reach
//! the store or after they landed, on tokio's clock (so a paused clock keeps
//! tests exact). A slow request lands late; a slow reply has already landed.
//! Hedged creates (issue 16) are tested with it: a hedge of a slow reply
//! finds its own first attempt and reports `AlreadyExists`.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

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
    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
