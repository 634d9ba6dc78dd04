//! Transient faults are retried, persistent ones surface as clear errors,
//! and ambiguous creates are resolved by reading the object back.

use object_store::memory::InMemory;
use object_store::ObjectStore;
use tidemark::internals::sync::StdArc;
use tidemark::testing::{FaultKind, FaultStore};
use tidemark::{Db, Error};

fn stores() -> (FaultStore, StdArc<dyn ObjectStore>) {
    let inner: StdArc<dyn ObjectStore> = StdArc::new(InMemory::new());
    (FaultStore::new(inner.clone(), 7), inner)
}

#[tokio::test]
async fn transient_upload_failures_are_retried_without_losing_the_write() {
    let (fault, inner) = stores();
    let db = Db::open("db", StdArc::new(fault.clone())).await.unwrap();
    fault.fail_prefix("db/wal/", FaultKind::Transient(3));
    db.put("k", "v").await.expect("retried until durable");
    drop(db);
    let db = Db::open("db", inner).await.unwrap();
    assert_eq!(db.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn a_persistent_failure_is_a_clear_error_and_acks_nothing() {
    let (fault, inner) = stores();
    let db = Db::open("db", StdArc::new(fault.clone())).await.unwrap();
    db.put("before", "1").await.unwrap();
    fault.fail_prefix("db/wal/", FaultKind::Permanent);
    // The upload was sent and failed: its outcome is unknown to the writer.
    match db.put("k", "v").await {
        Err(Error::OutcomeUnknown { cause }) => match *cause {
            Error::ObjectStore(e) => assert!(e.to_string().contains("permanent fault"), "{e}"),
            other => panic!("expected an object store error as the cause, got {other:?}"),
        },
        other => panic!("expected OutcomeUnknown from an object store error, got {other:?}"),
    }
    assert!(db.put("after", "2").await.is_err(), "the writer stays failed");
    drop(db);
    let db = Db::open("db", inner).await.unwrap();
    assert_eq!(db.get("before").await.unwrap().as_deref(), Some(&b"1"[..]), "acknowledged before the fault");
}

#[tokio::test]
async fn an_ambiguous_create_of_our_own_wal_counts_as_durable() {
    let (fault, inner) = stores();
    let db = Db::open("db", StdArc::new(fault.clone())).await.unwrap();
    fault.ambiguous_creates("db/wal/", 2);
    db.put("a", "1").await.expect("AlreadyExists on our own object is success");
    fault.ambiguous_creates("db/manifest/", 1);
    db.close().await.expect("the manifest create is ours too");
    let db = Db::open("db", inner).await.unwrap();
    assert_eq!(db.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
}

#[tokio::test]
async fn an_ambiguous_epoch_claim_is_recognised_as_ours() {
    let (fault, inner) = stores();
    fault.ambiguous_creates("db/manifest/", 1);
    fault.ambiguous_creates("db/wal/", 1); // the fence
    let db = Db::open("db", StdArc::new(fault.clone())).await.expect("claim and fence resolved by reading back");
    db.put("k", "v").await.unwrap();
    drop(db);
    assert!(Db::open("db", inner).await.is_ok());
}

/// A point read fetches the SST's tail once at open, then one block per get.
#[tokio::test]
async fn point_reads_fetch_only_the_block_they_need() {
    use object_store::ObjectStoreExt;
    use tidemark::internals::sst::{SstBuilder, SstReader};
    let (fault, _) = stores();
    let mut builder = SstBuilder::new(256);
    for i in 0..1000 {
        builder.add(bytes::Bytes::from(format!("key{i:04}")), i as u64, tidemark::internals::value::Value::from_option(Some(bytes::Bytes::from(vec![b'v'; 64])))).unwrap();
    }
    let object = builder.finish(&[]);
    let path = object_store::path::Path::from("db/compacted/1.sst");
    fault.put(&path, object.clone().into()).await.unwrap();
    let before = fault.ops();
    let reader = SstReader::open(StdArc::new(fault.clone()), path, Some(object.len() as u64)).await.unwrap();
    let after_open = fault.ops();
    assert!(after_open - before <= 2, "open reads the tail: {} ops", after_open - before);
    assert!(reader.get(b"key0500").await.unwrap().is_some());
    assert_eq!(fault.ops() - after_open, 1, "one ranged read for one block");
    assert!(reader.get(b"nope").await.unwrap().is_none());
    assert!(fault.ops() - after_open <= 2, "a bloom miss usually reads nothing");
}

/// A store holding flushed L0 SSTs, WALs not yet in L0, and manifests.
async fn populated_store() -> StdArc<dyn ObjectStore> {
    let inner: StdArc<dyn ObjectStore> = StdArc::new(InMemory::new());
    let settings = tidemark::Settings::default().with_l0_sst_size_bytes(300);
    let db = Db::open_with("db", inner.clone(), settings).await.unwrap();
    for i in 0..40 {
        db.put(format!("k{i:02}"), "v".repeat(30)).await.unwrap();
    }
    // A crash, not a close: recovery has WALs to replay and a fence to write
    // (a clean close leaves nothing to replay and needs no fence).
    drop(db);
    inner
}

/// Recovery lists, reads and creates (manifests, WALs, SSTs, the claim, the
/// fence). Failing each of those operations in turn, once or three times,
/// must neither fail the open nor lose a write.
#[tokio::test]
async fn every_operation_of_recovery_survives_transient_failures() {
    let probe = FaultStore::new(populated_store().await, 1);
    Db::open("db", StdArc::new(probe.clone())).await.unwrap();
    let ops = probe.ops();
    assert!(ops >= 5, "recovery performed {ops} store operations (list and read the manifest, claim, list and read WALs, fence)");
    for times in [1, 3] {
        for k in 1..=ops {
            let fault = FaultStore::new(populated_store().await, k);
            fault.fail_op(k, FaultKind::Transient(times));
            let db = Db::open("db", StdArc::new(fault.clone()))
                .await
                .unwrap_or_else(|e| panic!("op {k} failing {times}x: open failed: {e}"));
            let found = db.scan_prefix("k").await.unwrap().collect_vec().await.unwrap().len();
            assert_eq!(found, 40, "op {k} failing {times}x: every write survives");
        }
    }
}
