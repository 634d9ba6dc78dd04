//! The errors the CLI's exit codes rest on: a write's outcome (not written,
//! or unknown) and permanent store errors that are not retried.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutOptions, PutPayload, PutResult, Result};
use tidemark::{Db, Error, Settings};

/// Counts creates and can fail them the way a real store would.
#[derive(Debug)]
struct Wrapper {
    inner: Arc<dyn ObjectStore>,
    puts: AtomicU32,
    /// Every put fails as LocalFileSystem fails in a read-only directory.
    permission_denied: bool,
    /// Creates under `wal/` store the object, then return a transient
    /// error (a reply lost after the upload landed).
    fail_wal_puts: AtomicBool,
}

impl Wrapper {
    fn new(inner: Arc<dyn ObjectStore>, permission_denied: bool) -> Arc<Self> {
        Arc::new(Wrapper {
            inner,
            puts: AtomicU32::new(0),
            permission_denied,
            fail_wal_puts: AtomicBool::new(false),
        })
    }
}

impl std::fmt::Display for Wrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wrapper({})", self.inner)
    }
}

fn local_error(kind: std::io::ErrorKind, what: &str) -> object_store::Error {
    object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(std::io::Error::new(kind, what.to_string())) }
}

#[async_trait]
impl ObjectStore for Wrapper {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        if self.permission_denied {
            return Err(local_error(std::io::ErrorKind::PermissionDenied, "Permission denied (os error 13)"));
        }
        if self.fail_wal_puts.load(Ordering::SeqCst) && location.as_ref().contains("wal/") {
            self.inner.put_opts(location, payload, opts).await?;
            return Err(local_error(std::io::ErrorKind::ConnectionReset, "connection reset after the upload"));
        }
        self.inner.put_opts(location, payload, opts).await
    }
    tidemark::delegate_object_store!(inner =>
        put_multipart_opts, get_opts, get_ranges, delete_stream, list, list_with_delimiter, copy_opts, rename_opts);
}

/// A permission error is reported after one attempt, not after
/// `max_retries` backoffs.
#[tokio::test]
async fn permission_denied_is_not_retried() {
    let store = Wrapper::new(Arc::new(InMemory::new()), true);
    let settings = Settings::default();
    assert!(settings.max_retries > 0, "the test needs retries to be possible");
    let err = Db::open_with("db", store.clone(), settings).await.expect_err("every create is denied");
    assert_eq!(store.puts.load(Ordering::SeqCst), 1, "one attempt, no retries: {err}");
    assert!(err.to_string().contains("Permission denied"), "a clear error: {err}");
}

/// On a real directory: a put into a read-only directory fails at
/// once. Skipped where the permission is not enforced (root).
#[cfg(unix)]
#[tokio::test]
async fn put_into_a_read_only_directory_fails_at_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(dir.path().join("probe"), b"x").is_ok() {
        eprintln!("skipped: permissions are not enforced for this user (root)");
        return;
    }
    let store = Wrapper::new(fs, false);
    let err = Db::open_with("", store.clone(), Settings::default()).await.expect_err("the directory is read-only");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(store.puts.load(Ordering::SeqCst), 1, "one attempt, no retries: {err}");
}

/// A write whose WAL upload failed with a store error may have
/// landed: it is `OutcomeUnknown`, never reported as not written. Here it
/// did land, and a reader sees it.
#[tokio::test]
async fn a_write_whose_upload_failed_has_an_unknown_outcome() {
    let store = Wrapper::new(Arc::new(InMemory::new()), false);
    let settings = Settings { max_retries: 0, ..Settings::default() };
    let db = Db::open_with("db", store.clone(), settings).await.unwrap();
    db.put("before", "1").await.unwrap();
    store.fail_wal_puts.store(true, Ordering::SeqCst);
    let err = db.put("k", "v").await.expect_err("the upload reported a failure");
    assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err:?}");
    assert!(err.to_string().contains("outcome unknown"), "{err}");
    // A later write is rejected before it is appended: it was not written.
    let later = db.put("later", "2").await.expect_err("the writer stopped");
    assert!(!matches!(later, Error::OutcomeUnknown { .. }), "{later:?}");
    drop(db);
    store.fail_wal_puts.store(false, Ordering::SeqCst);
    let reader = Db::open_read_only("db", store.clone()).await.unwrap();
    assert_eq!(reader.get("k").await.unwrap().as_deref(), Some(&b"v"[..]), "the ambiguous upload landed");
    assert_eq!(reader.get("later").await.unwrap(), None);
}

/// A write whose WAL was rejected by a newer writer's fence is
/// `Fenced` (not written), and it is indeed absent.
#[tokio::test]
async fn a_write_whose_wal_was_rejected_is_fenced_and_absent() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let old = Db::open("db", store.clone()).await.unwrap();
    old.put("a", "1").await.unwrap();
    let new = Db::open("db", store.clone()).await.unwrap();
    let err = old.put("b", "2").await.expect_err("fenced");
    assert!(matches!(err, Error::Fenced { .. }), "{err:?}");
    let err = old.put("c", "3").await.expect_err("stays fenced");
    assert!(matches!(err, Error::Fenced { .. }), "{err:?}");
    let close = old.close().await;
    assert!(close.is_ok() || matches!(close, Err(Error::Fenced { .. })), "{close:?}");
    new.close().await.unwrap();
    let reader = Db::open_read_only("db", store).await.unwrap();
    assert_eq!(reader.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(reader.get("b").await.unwrap(), None);
    assert_eq!(reader.get("c").await.unwrap(), None);
}
