//! `Db::open_url`: `file:///dir`, `memory://`, `s3://bucket/prefix`.

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::{Error, Result};
use crate::sync::StdArc;

/// The store and root path a URL names, for a writer: a `file://` directory
/// that does not exist yet is created.
///
/// `s3://bucket/prefix` (feature `aws`) is configured from the standard
/// `AWS_*` environment variables. Its client retries each request for at
/// most 10 s, so a request to an endpoint that does not answer fails within
/// about 17 s (10 s of retries, a last pause of up to 2 s, a last 5 s
/// connection attempt). That failure, a bucket that does not exist, refused
/// credentials and a plain-HTTP endpoint without `AWS_ALLOW_HTTP=true` are
/// each an [`Error::StoreAccess`] that names the fix.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// let (store, root) = tidemark::store_for_url("memory:///db")?;
/// assert_eq!(root.as_ref(), "db");
/// assert!(!tidemark::database_exists(store.as_ref(), &root).await?);
///
/// let db = tidemark::Db::open(root.clone(), store.clone()).await?;
/// db.close().await?;
/// assert!(tidemark::database_exists(store.as_ref(), &root).await?);
///
/// assert!(matches!(tidemark::store_for_url("ftp://host/db"), Err(tidemark::Error::InvalidArgument(_))));
/// # Ok(())
/// # }
/// ```
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

#[cfg(feature = "aws")]
fn s3(url: &url::Url) -> Result<(StdArc<dyn ObjectStore>, Path)> {
    super::s3::open(url)
}

#[cfg(not(feature = "aws"))]
fn s3(_: &url::Url) -> Result<(StdArc<dyn ObjectStore>, Path)> {
    Err(Error::InvalidArgument(
        "s3:// URLs need tidemark's `aws` feature, which this build lacks (the `tidemark` CLI turns it on)".into(),
    ))
}
