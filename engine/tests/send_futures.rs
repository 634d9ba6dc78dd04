//! Issue 11, defect 2: every public async method of `Db` returns a `Send`
//! future, so a database can be opened and used inside `tokio::spawn` on a
//! multi-thread runtime, as any server does. `Db::open` once held a tracing
//! span guard (not `Send`) across its awaits.
//!
//! The assertions are checked by the compiler: a future that is not `Send`
//! makes this file fail to build. The futures are constructed and dropped
//! without being awaited, except in the spawn test.
#![cfg(not(loom))]

use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use tidemark::{Db, Settings, WriteBatch, WriteOptions};

/// Compiles only if `T` is `Send`.
fn assert_send<T: Send>(_: &T) {}

fn store() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

/// The futures of opening a database.
#[test]
fn open_futures_are_send() {
    let open = Db::open("db", store());
    assert_send(&open);
    let open_with = Db::open_with("db", store(), Settings::default());
    assert_send(&open_with);
    let open_url = Db::open_url("memory://", Settings::default());
    assert_send(&open_url);
    let open_read_only = Db::open_read_only("db", store());
    assert_send(&open_read_only);
}

/// The futures of every method of an open handle.
#[tokio::test]
async fn handle_futures_are_send() {
    let db = Db::open("db", store()).await.expect("open");
    let opts = WriteOptions::default();
    assert_send(&db.put("k", "v"));
    assert_send(&db.put_with("k", "v", &opts));
    assert_send(&db.write(WriteBatch::new()));
    assert_send(&db.write_with(WriteBatch::new(), &opts));
    assert_send(&db.delete("k"));
    assert_send(&db.delete_with("k", &opts));
    assert_send(&db.get("k"));
    assert_send(&db.scan(Bytes::from_static(b"a")..Bytes::from_static(b"z")));
    assert_send(&db.scan(..));
    assert_send(&db.scan_prefix("k"));
    assert_send(&db.scan_rev(..));
    assert_send(&db.scan_prefix_rev("k"));
    assert_send(&db.scan_with(.., tidemark::ScanOptions::reverse()));
    // The iterator itself, the future of its `next`, and its stream form.
    let mut iter = db.scan(..).await.expect("scan");
    assert_send(&iter.next());
    assert_send(&iter);
    let stream = db.scan(..).await.expect("scan").into_stream();
    assert_send(&stream);
    drop(stream);
    assert_send(&db.scan(..).await.expect("scan").collect_vec());
    // Snapshots: the handle and the futures of its reads.
    let snap = db.snapshot();
    assert_send(&snap);
    assert_send(&snap.get("k"));
    assert_send(&snap.scan(..));
    assert_send(&snap.scan_rev(..));
    assert_send(&snap.scan_prefix("k"));
    assert_send(&db.flush());
    assert_send(&db.manifest());
    assert_send(&db.close());
    db.close().await.expect("close");
}

/// The use: open, write, read and close inside `tokio::spawn` on a
/// multi-thread runtime (which requires `Send + 'static`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_opens_and_works_inside_tokio_spawn() {
    let store = store();
    let task = tokio::spawn(async move {
        let db = Db::open("db", store).await?;
        db.put("greeting", "hello").await?;
        let read = db.get("greeting").await?;
        let scanned = db.scan_prefix("greet").await?.collect_vec().await?;
        db.close().await?;
        Ok::<_, tidemark::Error>((read, scanned.len()))
    });
    let (read, scanned) = task.await.expect("the spawned task ran").expect("open, put, get, scan and close succeed");
    assert_eq!(read.as_deref(), Some(&b"hello"[..]));
    assert_eq!(scanned, 1);
}
