//! A scan whose SST reads are slow (as on S3) while a flush moves a memtable
//! into L0 still sees every write. Regression test for a bug found by
//! `crash-check --s3 --zombies`: `scan` read the L0 list before the
//! memtables, so writes that moved from a memtable into a new SST during the
//! SST reads were in neither.
#![cfg(not(loom))]

mod common;

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{GetOptions, GetResult, ObjectStore, Result};
use common::wait_for;
use tidemark::internals::paths::Layout;
use tidemark::{Db, Settings};

/// Delays reads of the chosen paths.
#[derive(Debug, Default)]
struct SlowReads {
    inner: InMemory,
    slow: Mutex<Vec<Path>>,
}

impl SlowReads {
    async fn maybe_wait(&self, location: &Path) {
        let slow = self.slow.lock().expect("lock").contains(location);
        if slow {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    }
}

impl fmt::Display for SlowReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlowReads")
    }
}

#[async_trait]
impl ObjectStore for SlowReads {
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.maybe_wait(location).await;
        self.inner.get_opts(location, options).await
    }
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.maybe_wait(location).await;
        self.inner.get_ranges(location, ranges).await
    }
    tidemark::delegate_object_store!(inner =>
        put_opts, put_multipart_opts, delete_stream, list, list_with_delimiter, copy_opts, rename_opts);
}

async fn wait_for_l0(db: &Db, n: usize) {
    wait_for(&format!("L0 flush number {n}"), || async { db.manifest().await.l0.len() >= n }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_sees_writes_flushed_to_l0_while_it_reads_ssts() {
    let store = Arc::new(SlowReads::default());
    let settings = Settings::default().with_l0_sst_size_bytes(1024).with_compactor(false);
    let db = Arc::new(Db::open_with("db", store.clone(), settings).await.expect("open"));
    let filler = |tag: &str, i: usize| (format!("{tag}/{i:03}"), "x".repeat(64));
    for i in 0..20 {
        let (k, v) = filler("a", i);
        db.put(k, v).await.expect("put");
    }
    wait_for_l0(&db, 1).await;
    db.put("mine", "1").await.expect("put");

    // Reads of the SSTs that exist now take 400 ms; the scan starts on them.
    let existing: Vec<Path> = db
        .manifest()
        .await
        .l0
        .iter()
        .map(|h| Layout::new(Path::from("db")).sst(h))
        .collect();
    *store.slow.lock().expect("lock") = existing;
    let scanner = db.clone();
    // A full scan: it reads the blocks of every SST.
    let scan = tokio::spawn(async move { scanner.scan(..).await?.collect_vec().await });
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Meanwhile the memtable holding "mine" fills up and goes to L0.
    let before = db.manifest().await.l0.len();
    for i in 0..20 {
        let (k, v) = filler("b", i);
        db.put(k, v).await.expect("put");
    }
    wait_for_l0(&db, before + 1).await;
    assert!(!scan.is_finished(), "the scan must still be reading SSTs when the flush completes");

    let rows = scan.await.expect("task").expect("scan");
    assert!(rows.contains(&(Bytes::from("mine"), Bytes::from("1"))), "the scan lost a write that moved into L0");
    // Exactly what was written before the scan started.
    assert_eq!(rows.len(), 20 + 1, "{rows:?}");
}
