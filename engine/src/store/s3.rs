//! `s3://bucket/prefix` stores: object_store's S3 client with retries bounded
//! in time, and failures that say what to fix.
//!
//! A first contact that fails (a bucket that does not exist, credentials the
//! store refuses, an endpoint that does not answer, a plain-HTTP endpoint
//! without `AWS_ALLOW_HTTP`) is reported as one [`StoreAccess`] line naming
//! the fix, which `Error::from` turns into `Error::StoreAccess`.
//!
//! The client retries each request for at most `RETRY_TIMEOUT` (10 s); what
//! it gives up on is marked `AlreadyRetried`, so the `RetryStore` every `Db`
//! stacks on top does not multiply that bound. A request that cannot reach
//! the endpoint therefore fails within `UNREACHABLE_BOUND` (17 s).

use std::fmt;

/// A store that cannot be used as it is configured: `problem` says what is
/// wrong, `fix` what to change. Retrying does not help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAccess {
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for StoreAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.problem, self.fix)
    }
}

impl std::error::Error for StoreAccess {}

/// The [`StoreAccess`] diagnosis somewhere in `e`'s chain of causes.
pub fn diagnosis(e: &object_store::Error) -> Option<&StoreAccess> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(d) = c.downcast_ref::<StoreAccess>() {
            return Some(d);
        }
        cause = c.source();
    }
    None
}

#[cfg(feature = "aws")]
pub(crate) use client::open;

#[cfg(feature = "aws")]
mod client {
    use std::ops::Range;
    use std::time::Duration;

    use async_trait::async_trait;
    use bytes::Bytes;
    use futures::stream::{BoxStream, StreamExt};
    use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
    use object_store::client::{HttpError, HttpErrorKind};
    use object_store::path::Path;
    use object_store::{
        BackoffConfig, ClientConfigKey, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, RetryConfig,
    };

    use super::StoreAccess;
    use crate::error::Error;
    use crate::store::retry::AlreadyRetried;
    use crate::sync::StdArc;

    /// How long object_store's S3 client retries one request (backoff between
    /// attempts, at most `MAX_RETRIES` of them). The AWS SDKs make three
    /// attempts by default; this is more patient than that, and short enough
    /// that a wrong endpoint is reported while the user still waits for it.
    pub(crate) const RETRY_TIMEOUT: Duration = Duration::from_secs(10);
    /// The most retries of one request within `RETRY_TIMEOUT`.
    pub(crate) const MAX_RETRIES: usize = 10;
    /// The longest pause between two attempts.
    pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);
    /// How long one attempt may take to connect: object_store's default, which
    /// `AWS_CONNECT_TIMEOUT` overrides.
    pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The longest a request to an endpoint that does not answer takes to fail:
    /// retries start until `RETRY_TIMEOUT`, then one last pause and one last
    /// connection attempt.
    pub(crate) const UNREACHABLE_BOUND: Duration =
        Duration::from_secs(RETRY_TIMEOUT.as_secs() + MAX_BACKOFF.as_secs() + CONNECT_TIMEOUT.as_secs());

    /// Where credentials come from, as object_store picks them (static keys
    /// first, then web identity, container, instance metadata).
    #[derive(Debug)]
    enum Credentials {
        Static,
        /// Fetched over HTTP from this URL (STS, the container agent, IMDS).
        Fetched { from: String, how: &'static str },
    }

    /// What the messages name: the endpoint, the bucket and its prefix.
    #[derive(Debug)]
    struct Context {
        endpoint: String,
        bucket: String,
        prefix: String,
        region: String,
        credentials: Credentials,
    }

    /// `s3://bucket/prefix`, configured from the standard environment
    /// (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ALLOW_HTTP`, web identity and
    /// container credentials, instance metadata: whatever object_store's
    /// `AmazonS3Builder::from_env` reads). Conditional put is always
    /// ETag-based (`If-None-Match: *` on creates): tidemark cannot run
    /// without it, and `Db::open_with` refuses a store that ignores it.
    pub(crate) fn open(url: &url::Url) -> crate::Result<(StdArc<dyn ObjectStore>, Path)> {
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| Error::InvalidArgument(format!("`{url}` names no bucket: use s3://bucket/prefix")))?;
        let prefix = url.path().trim_matches('/').to_string();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(RetryConfig {
                backoff: BackoffConfig { max_backoff: MAX_BACKOFF, ..BackoffConfig::default() },
                max_retries: MAX_RETRIES,
                retry_timeout: RETRY_TIMEOUT,
            });
        if std::env::var_os("AWS_CONNECT_TIMEOUT").is_none() {
            let timeout = format!("{}s", CONNECT_TIMEOUT.as_secs());
            builder = builder.with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), timeout);
        }
        let context = context(&builder, bucket, &prefix);
        refuse_plain_http(&builder, &context)?;
        let store = builder
            .build()
            .map_err(|e| Error::InvalidArgument(format!("S3 configuration for `{url}`: {e}")))?;
        Ok((StdArc::new(S3Store { inner: store, context: StdArc::new(context) }), Path::from(prefix)))
    }

    fn context(builder: &AmazonS3Builder, bucket: &str, prefix: &str) -> Context {
        let get = |key: AmazonS3ConfigKey| builder.get_config_value(&key).filter(|v| !v.is_empty());
        let region = get(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
        let endpoint = get(AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| get(AmazonS3ConfigKey::Endpoint))
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let credentials = if get(AmazonS3ConfigKey::AccessKeyId).is_some() || get(AmazonS3ConfigKey::SecretAccessKey).is_some() {
            Credentials::Static
        } else if let (Some(_), Some(_)) = (get(AmazonS3ConfigKey::WebIdentityTokenFile), get(AmazonS3ConfigKey::RoleArn)) {
            let from = get(AmazonS3ConfigKey::StsEndpoint).unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
            Credentials::Fetched { from, how: "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN): STS" }
        } else if get(AmazonS3ConfigKey::ContainerCredentialsRelativeUri).is_some() {
            Credentials::Fetched { from: "http://169.254.170.2".into(), how: "the container credentials endpoint" }
        } else if let Some(full) = get(AmazonS3ConfigKey::ContainerCredentialsFullUri) {
            Credentials::Fetched { from: full, how: "the container credentials endpoint" }
        } else {
            let from = get(AmazonS3ConfigKey::MetadataEndpoint).unwrap_or_else(|| "http://169.254.169.254".into());
            Credentials::Fetched { from, how: "AWS_ACCESS_KEY_ID is not set, and the instance metadata service" }
        };
        Context { endpoint, bucket: bucket.to_string(), prefix: prefix.to_string(), region, credentials }
    }

    /// object_store's S3 client refuses `http://` unless allowed, with an
    /// error that reads "HTTP error: builder error" on the first request; it
    /// is known before any request is made.
    fn refuse_plain_http(builder: &AmazonS3Builder, context: &Context) -> crate::Result<()> {
        let allowed = builder
            .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
            .is_some_and(|v| ["true", "1", "yes", "on", "y"].iter().any(|t| v.eq_ignore_ascii_case(t)));
        if context.endpoint.to_ascii_lowercase().starts_with("http://") && !allowed {
            return Err(Error::StoreAccess {
                problem: format!("the S3 endpoint {} is plain HTTP, which the S3 client refuses by default", context.endpoint),
                fix: "set AWS_ALLOW_HTTP=true to allow it, or use an https:// endpoint".into(),
            });
        }
        Ok(())
    }

    /// The deepest cause in `e`'s chain (for a refused connection,
    /// "Connection refused (os error 111)").
    fn root_cause(e: &object_store::Error) -> String {
        let mut last: &(dyn std::error::Error + 'static) = e;
        while let Some(next) = last.source() {
            last = next;
        }
        last.to_string()
    }

    fn http_kind(e: &object_store::Error) -> Option<HttpErrorKind> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cause {
            if let Some(h) = c.downcast_ref::<HttpError>() {
                return Some(h.kind());
            }
            cause = c.source();
        }
        None
    }

    /// The `<Code>` of an S3 error response, if the failure carries one.
    fn s3_code(text: &str) -> Option<&str> {
        let start = text.find("<Code>")? + "<Code>".len();
        let len = text[start..].find("</Code>")?;
        Some(&text[start..start + len])
    }

    impl Context {
        fn location(&self) -> String {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }

        fn unreachable_fix(&self) -> String {
            format!(
                "check AWS_ENDPOINT_URL (and AWS_REGION) and that the server runs and is reachable \
                 (each request is retried for {} s, and fails within {} s)",
                RETRY_TIMEOUT.as_secs(),
                UNREACHABLE_BOUND.as_secs()
            )
        }

        /// What `e` means for a user, when it is one of the failures whose
        /// fix is known.
        fn diagnose(&self, e: &object_store::Error) -> Option<StoreAccess> {
            let text = e.to_string();
            let access = |problem: String, fix: &str| Some(StoreAccess { problem, fix: fix.to_string() });
            if let Credentials::Fetched { from, how } = &self.credentials {
                if text.contains(from.as_str()) {
                    return access(
                        format!("no AWS credentials: {how} at {from} provided none ({})", root_cause(e)),
                        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary \
                         keys); ~/.aws and AWS_PROFILE are not read",
                    );
                }
            }
            let endpoint = &self.endpoint;
            match s3_code(&text) {
                Some("NoSuchBucket") => {
                    return access(
                        format!("the bucket `{}` does not exist at {endpoint}", self.bucket),
                        "create it first (tidemark creates objects under its prefix, never the bucket), or name \
                         an existing bucket in the URL",
                    )
                }
                Some("InvalidAccessKeyId") => {
                    return access(
                        format!("{endpoint} does not know the access key id in AWS_ACCESS_KEY_ID"),
                        "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that AWS_ENDPOINT_URL names the \
                         store they belong to",
                    )
                }
                Some("SignatureDoesNotMatch") => {
                    return access(
                        format!("{endpoint} rejected the request signature"),
                        "check AWS_SECRET_ACCESS_KEY (it does not belong to AWS_ACCESS_KEY_ID)",
                    )
                }
                Some(code @ ("ExpiredToken" | "InvalidToken" | "TokenRefreshRequired")) => {
                    return access(
                        format!("{endpoint} refused the session token ({code})"),
                        "refresh AWS_SESSION_TOKEN together with the keys issued with it",
                    )
                }
                Some(code @ ("AccessDenied" | "AllAccessDisabled" | "AccountProblem")) => {
                    return access(
                        format!("{endpoint} denied these credentials access to {} ({code})", self.location()),
                        "grant them s3:ListBucket on the bucket and s3:GetObject, s3:PutObject and s3:DeleteObject \
                         under the prefix, or use other credentials",
                    )
                }
                Some(code @ ("AuthorizationHeaderMalformed" | "PermanentRedirect" | "IllegalLocationConstraintException")) => {
                    return access(
                        format!("the bucket `{}` is not in region {} ({code})", self.bucket, self.region),
                        "set AWS_REGION to the bucket's region",
                    )
                }
                _ => {}
            }
            if text.contains("Received redirect without LOCATION") || text.contains("status code: 301") {
                return access(
                    format!("{endpoint} redirected the request: the bucket `{}` is not in region {}", self.bucket, self.region),
                    "set AWS_REGION to the bucket's region",
                );
            }
            match http_kind(e) {
                Some(HttpErrorKind::Connect) => {
                    access(format!("cannot connect to the S3 endpoint {endpoint} ({})", root_cause(e)), &self.unreachable_fix())
                }
                Some(HttpErrorKind::Timeout) => access(
                    format!("the S3 endpoint {endpoint} did not answer in time ({})", root_cause(e)),
                    &self.unreachable_fix(),
                ),
                _ => None,
            }
        }

        /// A failure the client gave up on: diagnosed where its fix is
        /// known, and in every case marked `AlreadyRetried` (or left as the
        /// answer it is: not found, already exists, precondition failed).
        fn failure(&self, e: object_store::Error) -> object_store::Error {
            use object_store::Error as E;
            if let Some(d) = self.diagnose(&e) {
                // The client's own message (with its request id) stays in the log.
                tracing::debug!(error = %e, diagnosis = %d, "S3 request failed");
                // `Generic`, whatever the answer's kind: a missing bucket is
                // not a missing object, so it is never `NotFound`.
                return E::Generic { store: "S3", source: Box::new(AlreadyRetried(Box::new(d))) };
            }
            match e {
                E::Generic { store, source } => E::Generic { store, source: Box::new(AlreadyRetried(source)) },
                other => other,
            }
        }
    }

    /// The S3 client with its failures passed through `Context::failure`.
    /// Only a request's own outcome is mapped: a body that fails part-way
    /// is left to the `RetryStore` above, which reads bodies whole.
    #[derive(Debug)]
    struct S3Store {
        inner: AmazonS3,
        context: StdArc<Context>,
    }

    impl std::fmt::Display for S3Store {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.inner.fmt(f)
        }
    }

    impl S3Store {
        fn mapped<T>(&self, r: Result<T>) -> Result<T> {
            r.map_err(|e| self.context.failure(e))
        }

        fn mapped_stream<T: Send + 'static>(&self, s: BoxStream<'static, Result<T>>) -> BoxStream<'static, Result<T>> {
            let context = self.context.clone();
            s.map(move |r| r.map_err(|e| context.failure(e))).boxed()
        }
    }

    #[async_trait]
    impl ObjectStore for S3Store {
        async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
            self.mapped(self.inner.put_opts(location, payload, opts).await)
        }

        async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
            self.mapped(self.inner.put_multipart_opts(location, opts).await)
        }

        async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
            self.mapped(self.inner.get_opts(location, options).await)
        }

        async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
            self.mapped(self.inner.get_ranges(location, ranges).await)
        }

        fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
            self.mapped_stream(self.inner.delete_stream(locations))
        }

        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.mapped_stream(self.inner.list(prefix))
        }

        fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
            self.mapped_stream(self.inner.list_with_offset(prefix, offset))
        }

        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
            self.mapped(self.inner.list_with_delimiter(prefix).await)
        }

        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
            self.mapped(self.inner.copy_opts(from, to, options).await)
        }

        async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
            self.mapped(self.inner.rename_opts(from, to, options).await)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn context() -> Context {
            Context {
                endpoint: "http://127.0.0.1:9".into(),
                bucket: "b".into(),
                prefix: "db".into(),
                region: "us-east-1".into(),
                credentials: Credentials::Static,
            }
        }

        fn s3_answer(code: &str) -> object_store::Error {
            let body = format!("Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>");
            object_store::Error::Generic { store: "S3", source: body.into() }
        }

        fn fix(e: &object_store::Error) -> Option<String> {
            super::super::diagnosis(e).map(|d| d.to_string())
        }

        #[test]
        fn known_s3_answers_name_their_fix_and_are_not_retried_again() {
            let c = context();
            for (code, needle) in [
                ("NoSuchBucket", "create it first"),
                ("InvalidAccessKeyId", "check AWS_ACCESS_KEY_ID"),
                ("SignatureDoesNotMatch", "check AWS_SECRET_ACCESS_KEY"),
                ("ExpiredToken", "refresh AWS_SESSION_TOKEN"),
                ("AccessDenied", "s3:PutObject"),
                ("AuthorizationHeaderMalformed", "set AWS_REGION"),
            ] {
                let mapped = c.failure(s3_answer(code));
                let line = fix(&mapped).unwrap_or_else(|| panic!("{code} is diagnosed"));
                assert!(line.contains(needle), "{code}: {line}");
                assert!(!line.contains('\n'), "one line: {line}");
                assert!(crate::store::retry::is_permanent(&mapped), "{code} is not retried again");
                assert!(matches!(Error::from(mapped), Error::StoreAccess { .. }), "{code}");
            }
        }

        #[test]
        fn a_missing_bucket_is_not_a_missing_object() {
            let c = context();
            let e = object_store::Error::NotFound {
                path: "db/probe/x".into(),
                source: "<Error><Code>NoSuchBucket</Code></Error>".into(),
            };
            let mapped = c.failure(e);
            assert!(!matches!(mapped, object_store::Error::NotFound { .. }), "{mapped:?}");
            assert!(fix(&mapped).is_some_and(|f| f.contains("the bucket `b` does not exist at http://127.0.0.1:9")));
        }

        #[test]
        fn other_failures_keep_their_kind_and_text() {
            let c = context();
            let missing = c.failure(object_store::Error::NotFound { path: "db/wal/1".into(), source: "404".into() });
            assert!(matches!(missing, object_store::Error::NotFound { .. }), "an absent object stays NotFound");
            let busy = c.failure(object_store::Error::Generic { store: "S3", source: "503 Slow Down after 10 retries".into() });
            assert_eq!(busy.to_string(), "Generic S3 error: 503 Slow Down after 10 retries");
            assert!(fix(&busy).is_none());
            assert!(crate::store::retry::is_permanent(&busy), "the client already retried it");
        }

        #[test]
        fn credentials_fetched_from_a_silent_endpoint_are_missing_credentials() {
            let c = Context {
                credentials: Credentials::Fetched { from: "http://169.254.169.254".into(), how: "the instance metadata service" },
                ..context()
            };
            let e = object_store::Error::Generic {
                store: "S3",
                source: "Error performing PUT http://169.254.169.254/latest/api/token in 1s - timed out".into(),
            };
            let line = fix(&c.failure(e)).expect("diagnosed");
            assert!(line.starts_with("no AWS credentials") && line.contains("set AWS_ACCESS_KEY_ID"), "{line}");
        }
    }
}
