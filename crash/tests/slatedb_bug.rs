//! SlateDB's `wal_id_last_seen` bug reproduced on the real engine: with the
//! `at-freeze` mutant a manifest references a WAL whose upload is held back,
//! the process crashes, the upload never lands, and reopening fails with
//! `Error::MissingWal`. The shipped protocol survives the same schedule.

use std::time::Duration;

use object_store::memory::InMemory;
use object_store::ObjectStore;
use tidemark::internals::protocol::Protocol;
use tidemark::internals::sync::StdArc;
use tidemark::testing::FaultStore;
use tidemark::{Db, Error, Settings, WriteOptions};

/// Writes until a manifest has been written while a WAL upload is held,
/// then crashes with that upload lost; returns the reopen result.
async fn schedule(protocol: Protocol) -> (tidemark::Result<Db>, u64, u64) {
    let inner: StdArc<dyn ObjectStore> = StdArc::new(InMemory::new());
    let fault = FaultStore::new(inner.clone(), 1);
    let settings = Settings::default()
        .with_protocol(protocol)
        .with_l0_sst_size_bytes(256)
        .with_max_unflushed_bytes(1 << 20)
        .with_flush_interval(Duration::from_millis(1))
        // Freeze a WAL every millisecond even while uploads are in flight:
        // the schedule needs FreezeWal while an L0 upload is held.
        .with_wal_put_budget(tidemark::PutBudget::Unlimited);
    let db = Db::open_with("db", StdArc::new(fault.clone()), settings).await.expect("open");
    // From now on, every WAL and SST upload is held in flight.
    fault.hold_prefix("db/wal/");
    fault.hold_prefix("db/compacted/");
    let fire = WriteOptions { await_durable: false };
    let mut written = 0;
    let sst_held = |fault: &FaultStore| fault.held().into_iter().find(|p| p.as_ref().starts_with("db/compacted/"));
    // Fill the memtable until FreezeMemtable starts an L0 upload (the
    // memtable is recorded only once its WALs are durable: they land)...
    while sst_held(&fault).is_none() && written < 200 {
        db.put_with(format!("key{written:03}"), "x".repeat(40), &fire).await.expect("write");
        written += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
        for wal in fault.held().into_iter().filter(|p| p.as_ref().starts_with("db/wal/")) {
            fault.release(&wal).await;
        }
    }
    let sst = sst_held(&fault).expect("an L0 SST upload is in flight");
    // Every WAL so far has landed; every later one is held.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let durable = db.durable_wal_id();
    // ...then FreezeWal twice more while it is in flight...
    for i in 0..2 {
        db.put_with(format!("late{i}"), "y", &fire).await.expect("write");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ...then let the SST land: WriteManifest follows.
    fault.release(&sst).await;
    for _ in 0..200 {
        if db.manifest().await.version >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let m = db.manifest().await;
    assert!(m.version >= 2, "a memtable flush wrote a manifest");
    assert!(!fault.held().is_empty(), "WAL uploads are in flight");
    // Crash: the process dies and its held uploads never land.
    drop(db);
    for path in fault.held() {
        fault.lose(&path);
    }
    (Db::open("db", inner).await, m.wal_id_last_seen, durable)
}

#[tokio::test]
async fn at_freeze_references_an_unwritten_wal_and_cannot_restart() {
    let (reopened, wal_id_last_seen, durable) = schedule(Protocol::AtFreeze).await;
    assert!(wal_id_last_seen > durable, "the manifest named a WAL beyond the durable watermark");
    match reopened {
        Err(Error::MissingWal { id, path }) => {
            assert!(id > durable && id <= wal_id_last_seen, "wal {id}");
            assert!(path.starts_with("db/wal/"), "{path}");
        }
        other => panic!("expected MissingWal, got {other:?}"),
    }
}

#[tokio::test]
async fn shipped_protocol_reopens_after_the_same_schedule() {
    let (reopened, wal_id_last_seen, durable) = schedule(Protocol::Shipped).await;
    assert_eq!(wal_id_last_seen, durable, "I1: the manifest records only the durable watermark");
    let db = reopened.expect("recovery succeeds (I2)");
    assert!(db.get("key000").await.expect("read").is_some(), "the flushed memtable's writes are in L0");
}
