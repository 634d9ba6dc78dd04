//! `Db::open_url`: `file:///dir`, `memory://`, `s3://bucket/prefix`.

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::{Error, Result};
use crate::sync::StdArc;

/// The store and root path a URL names, for a writer: a `file://` directory
/// that does not exist yet is created.
pub fn store_for_url(url: &str) -> Result<(StdArc<dyn ObjectStore>, Path)> {
    store_for(url, true)
}

/// The store and root path a URL names, for reading: nothing is created, and
/// a `file://` directory that does not exist is [`Error::NoDatabase`].
pub fn store_for_url_read_only(url: &str) -> Result<(StdArc<dyn ObjectStore>, Path)> {
    store_for(url, false)
}

/// The directory a `file:` URL names. `file:///abs/dir` is absolute;
/// `file:rel/dir` (no slash after the colon) is relative to the working
/// directory, taken literally (the `url` crate would otherwise read it as
/// `/rel/dir`).
fn file_dir(url: &str, parsed: &url::Url) -> Result<std::path::PathBuf> {
    if let Some(rel) = url.strip_prefix("file:").filter(|r| !r.starts_with('/') && !r.is_empty()) {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::InvalidArgument(format!("`{url}` is relative, but the working directory is unknown: {e}")))?;
        return Ok(cwd.join(rel));
    }
    parsed
        .to_file_path()
        .map_err(|_| Error::InvalidArgument(format!("bad file URL `{url}`: use file:///absolute/dir or file:relative/dir")))
}

fn store_for(url: &str, create: bool) -> Result<(StdArc<dyn ObjectStore>, Path)> {
    let parsed = url::Url::parse(url).map_err(|e| Error::InvalidArgument(format!("bad URL `{url}`: {e}")))?;
    match parsed.scheme() {
        "memory" => Ok((StdArc::new(InMemory::new()), Path::from(parsed.path().trim_matches('/')))),
        "file" => {
            let dir = file_dir(url, &parsed)?;
            if create {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::InvalidArgument(format!("cannot create {}: {e}", dir.display())))?;
            } else if !dir.is_dir() {
                return Err(Error::NoDatabase { location: format!("{url} ({} is not a directory)", dir.display()) });
            }
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| Error::InvalidArgument(format!("cannot open {}: {e}", dir.display())))?;
            Ok((StdArc::new(fs), Path::from("")))
        }
        "s3" => s3(&parsed),
        other => Err(Error::InvalidArgument(format!("unsupported URL scheme `{other}` (use file://, memory:// or s3://)"))),
    }
}

/// `s3://bucket/prefix`, configured from the standard environment
/// (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ALLOW_HTTP`, web identity and
/// container credentials, instance metadata: whatever object_store's
/// `AmazonS3Builder::from_env` reads). Conditional put is always ETag-based
/// (`If-None-Match: *` on creates): tidemark cannot run without it, and
/// `Db::open_with` refuses a store that ignores it.
#[cfg(feature = "aws")]
fn s3(url: &url::Url) -> Result<(StdArc<dyn ObjectStore>, Path)> {
    let bucket = url
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| Error::InvalidArgument(format!("`{url}` names no bucket: use s3://bucket/prefix")))?;
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
        .build()
        .map_err(|e| Error::InvalidArgument(format!("S3 configuration for `{url}`: {e}")))?;
    Ok((StdArc::new(store), Path::from(url.path().trim_matches('/'))))
}

#[cfg(not(feature = "aws"))]
fn s3(_: &url::Url) -> Result<(StdArc<dyn ObjectStore>, Path)> {
    Err(Error::InvalidArgument(
        "s3:// URLs need tidemark's `aws` feature (on by default; this build has default-features = false)".into(),
    ))
}
