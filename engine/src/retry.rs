//! Retries transient object-store failures with exponential backoff. It is a
//! composable `ObjectStore` wrapper in the style of object_store's own, and
//! every `Db` wraps its store in one. That way the WAL uploads, manifest
//! creates, listings and reads of recovery, and the SST reads of `get` all
//! retry in the same way.
//!
//! A retried create whose first attempt landed reports `AlreadyExists`. The
//! callers resolve that by reading the object back
//! (`protocol::resolve_create_conflict`) and never by assuming an outcome.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use crate::sync::StdArc;

/// The first backoff; each retry doubles it, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Whether a failure may go away on its own. `Generic` is what network
/// errors, timeouts and server errors become. Every other kind is an answer
/// (`NotFound`, `AlreadyExists`, `Precondition`, ...), and asking again
/// cannot change it.
pub fn is_transient(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Generic { .. } | object_store::Error::JoinError { .. })
}

/// Runs `op` until it succeeds, fails for good, or has been retried
/// `max_retries` times.
pub async fn with_retries<T, F, Fut>(max_retries: u32, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut delay = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if attempt < max_retries && is_transient(&e) => {
                tracing::warn!(attempt, error = %e, "transient object store error; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// An `ObjectStore` that retries every request's transient failures.
#[derive(Debug)]
pub struct RetryStore {
    inner: StdArc<dyn ObjectStore>,
    max_retries: u32,
}

impl RetryStore {
    pub fn new(inner: StdArc<dyn ObjectStore>, max_retries: u32) -> Self {
        Self { inner, max_retries }
    }
}

impl fmt::Display for RetryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetryStore({}, max_retries={})", self.inner, self.max_retries)
    }
}

#[async_trait]
impl ObjectStore for RetryStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        with_retries(self.max_retries, || self.inner.put_opts(location, payload.clone(), opts.clone())).await
    }

    /// Not retried: a multipart upload's parts are the caller's to retry.
    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    /// The request and its body are retried together: the body is read in
    /// full before returning. tidemark reads whole objects or single SST
    /// blocks, so a failure part-way through a body is retried as well.
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        with_retries(self.max_retries, || async {
            let got = self.inner.get_opts(location, options.clone()).await?;
            let (meta, range, attributes, extensions) =
                (got.meta.clone(), got.range.clone(), got.attributes.clone(), got.extensions.clone());
            let body = got.bytes().await?;
            let payload = GetResultPayload::Stream(stream::once(async move { Ok(body) }).boxed());
            Ok(GetResult { payload, meta, range, attributes, extensions })
        })
        .await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        with_retries(self.max_retries, || self.inner.get_ranges(location, ranges)).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    /// The whole listing is retried: it is collected before the first item
    /// is returned, so a failure part-way never yields a partial list.
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let inner = self.inner.clone();
        let prefix = prefix.cloned();
        let max_retries = self.max_retries;
        stream::once(async move {
            with_retries(max_retries, || inner.list(prefix.as_ref()).try_collect::<Vec<ObjectMeta>>()).await
        })
        .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        with_retries(self.max_retries, || self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        with_retries(self.max_retries, || self.inner.copy_opts(from, to, options.clone())).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        with_retries(self.max_retries, || self.inner.rename_opts(from, to, options.clone())).await
    }
}
