//! Transient faults are retried, persistent ones surface as clear errors,
//! and ambiguous creates are resolved by reading the object back.

use object_store::memory::InMemory;
use object_store::ObjectStore;
use tidemark::sync::StdArc;
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
    match db.put("k", "v").await {
        Err(Error::ObjectStore(e)) => assert!(e.to_string().contains("permanent fault"), "{e}"),
        other => panic!("expected an object store error, got {other:?}"),
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
