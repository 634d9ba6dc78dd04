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
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, ObjectMeta, ObjectStore,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use crate::sync::StdArc;

/// The first backoff; each retry doubles it, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Whether a failure may go away on its own. `Generic` is what network
/// errors, timeouts and server errors become, unless its cause is permanent
/// (see [`is_permanent`]). Every other kind is an answer (`NotFound`,
/// `AlreadyExists`, `Precondition`, `PermissionDenied`, `Unauthenticated`,
/// ...), and asking again cannot change it.
pub fn is_transient(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::Generic { .. } => !is_permanent(e),
        object_store::Error::JoinError { .. } => true,
        _ => false,
    }
}

/// Whether a failure is one that retrying cannot fix: a missing permission
/// or credential, a read-only or misconfigured location, or one the store
/// below has already retried to its own bound ([`AlreadyRetried`]).
/// object_store's local store reports these as `Generic` around an
/// `io::Error`, so the whole chain of causes is inspected (an
/// `object_store::Error` nested inside a `Generic` counts too).
pub fn is_permanent(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    use std::io::ErrorKind as K;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<AlreadyRetried>() {
            return true;
        }
        if let Some(os) = c.downcast_ref::<object_store::Error>() {
            if matches!(
                os,
                E::PermissionDenied { .. } | E::Unauthenticated { .. } | E::NotFound { .. } | E::UnknownConfigurationKey { .. }
            ) {
                return true;
            }
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                K::PermissionDenied
                    | K::ReadOnlyFilesystem
                    | K::NotADirectory
                    | K::IsADirectory
                    | K::InvalidInput
                    | K::Unsupported
            ) {
                return true;
            }
        }
        cause = c.source();
    }
    false
}

/// Marks a failure that the store below already retried to its own bound
/// (the S3 client `store_for_url` configures, whose retries are limited in
/// time): retrying it again here would multiply that bound by
/// `max_retries`. It reads as the failure it wraps, which is its source.
#[derive(Debug)]
pub struct AlreadyRetried(pub Box<dyn std::error::Error + Send + Sync>);

impl fmt::Display for AlreadyRetried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AlreadyRetried {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
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
    /// Retries each request to `inner` up to `max_retries` times on a
    /// transient failure.
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

    // Not retried: a multipart upload's parts are the caller's to retry, and
    // a delete stream is the caller's to restart.
    crate::delegate_object_store!(inner => put_multipart_opts, delete_stream);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::{AtomicUsize, Ordering};

    fn local_error(kind: std::io::ErrorKind) -> object_store::Error {
        // What object_store's LocalFileSystem returns for a failed create.
        object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(std::io::Error::new(kind, "test")) }
    }

    async fn attempts(e: fn() -> object_store::Error) -> usize {
        let calls = AtomicUsize::new(0);
        let got: Result<()> = with_retries(3, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Err(e()) }
        })
        .await;
        assert!(got.is_err());
        calls.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn permanent_errors_are_tried_once() {
        assert_eq!(attempts(|| local_error(std::io::ErrorKind::PermissionDenied)).await, 1);
        assert_eq!(attempts(|| local_error(std::io::ErrorKind::ReadOnlyFilesystem)).await, 1);
        assert_eq!(
            attempts(|| object_store::Error::PermissionDenied { path: "p".into(), source: "403".into() }).await,
            1
        );
        assert_eq!(
            attempts(|| object_store::Error::Unauthenticated { path: "p".into(), source: "401".into() }).await,
            1
        );
        assert_eq!(attempts(|| object_store::Error::NotFound { path: "p".into(), source: "no bucket".into() }).await, 1);
        // A permanent error nested in a Generic one.
        assert_eq!(
            attempts(|| object_store::Error::Generic {
                store: "S3",
                source: Box::new(object_store::Error::Unauthenticated { path: "p".into(), source: "401".into() }),
            })
            .await,
            1
        );
    }

    #[tokio::test]
    async fn failures_the_store_below_already_retried_are_tried_once() {
        let retried = || object_store::Error::Generic {
            store: "S3",
            source: Box::new(AlreadyRetried("connection refused after 10 retries".into())),
        };
        assert_eq!(attempts(retried).await, 1);
        assert_eq!(retried().to_string(), "Generic S3 error: connection refused after 10 retries");
    }

    #[tokio::test]
    async fn transient_errors_are_retried() {
        assert_eq!(attempts(|| local_error(std::io::ErrorKind::TimedOut)).await, 4);
        assert_eq!(attempts(|| object_store::Error::Generic { store: "S3", source: "503 Slow Down".into() }).await, 4);
    }
}
