//! A store that ignores `PutMode::Create` is refused at writable open with
//! an error naming the missing capability and the fix; read-only opens and
//! stores that honour it are unaffected, and the probe leaves nothing behind.
#![cfg(not(loom))]

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, PutResult, Result};
use tidemark::{Db, Error};

/// Turns every create into an overwrite, as an S3-compatible server without
/// conditional writes does with `If-None-Match: *`.
#[derive(Debug)]
struct IgnoresCreate(Arc<dyn ObjectStore>);

impl fmt::Display for IgnoresCreate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IgnoresCreate({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for IgnoresCreate {
    async fn put_opts(&self, location: &Path, payload: PutPayload, mut opts: PutOptions) -> Result<PutResult> {
        if opts.mode == PutMode::Create {
            opts.mode = PutMode::Overwrite;
        }
        self.0.put_opts(location, payload, opts).await
    }
    tidemark::delegate_object_store!(0 =>
        put_multipart_opts, get_opts, delete_stream, list, list_with_delimiter, copy_opts, rename_opts);
}

async fn everything(store: &Arc<dyn ObjectStore>) -> Vec<Path> {
    store.list(None).map_ok(|m| m.location).try_collect().await.expect("list")
}

#[tokio::test]
async fn a_store_that_ignores_create_is_refused_with_the_fix_named() {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    // A database written through a safe store first, so reads have data.
    let db = Db::open("db", inner.clone()).await.expect("open");
    db.put("k", "v").await.expect("put");
    db.close().await.expect("close");
    let before = everything(&inner).await;

    let unsafe_store: Arc<dyn ObjectStore> = Arc::new(IgnoresCreate(inner.clone()));
    let err = match Db::open("db", unsafe_store.clone()).await {
        Ok(_) => panic!("a store that ignores PutMode::Create was opened for writing"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::NoCompareAndSet { .. }), "{err}");
    let msg = err.to_string();
    for needle in ["NoCompareAndSet", "IgnoresCreate", "PutMode::Create", "overwrote", "If-None-Match", "AWS_CONDITIONAL_PUT"] {
        assert!(msg.contains(needle), "the refusal names `{needle}`: {msg}");
    }
    assert_eq!(everything(&inner).await, before, "the refused open claimed nothing and left no probe object");

    // Reads need no compare-and-set and never probe.
    let reader = Db::open_read_only("db", unsafe_store).await.expect("read-only open");
    assert_eq!(reader.get("k").await.expect("get").as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn the_probe_leaves_nothing_behind() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = Db::open("db", store.clone()).await.expect("open");
    db.close().await.expect("close");
    let probes: Vec<Path> = everything(&store).await.into_iter().filter(|p| p.as_ref().starts_with("db/probe")).collect();
    assert!(probes.is_empty(), "{probes:?}");
}
