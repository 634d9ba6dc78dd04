//! A recovery whose fence id is taken by an older writer's late upload:
//! the successor lists its gap, the zombie's held upload lands at that very
//! id, and the successor's fence create is answered `AlreadyExists` by an
//! object of the older epoch. `protocol::on_fence_conflict` says walk again,
//! and the open completes (I11 RecoveryCompletes); the mutant
//! `fence-race-gives-up` fails the open. The random crash schedules never
//! land a late upload between a recovery's listing and its fence, so this
//! schedule is built by hand.
//!
//! Hedging is off: a hedge would hold a second attempt of the same WAL, and
//! this schedule releases attempts by name, one at a time.

use std::time::{Duration, Instant};

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;
use tidemark::HedgeSettings;
use tidemark::internals::protocol::Protocol;
use tidemark::internals::sync::StdArc;
use tidemark::testing::FaultStore;
use tidemark::{Db, Error, Settings, WriteOptions};

fn settings(protocol: Protocol) -> Settings {
    Settings::default()
        .with_protocol(protocol)
        .with_compactor(false)
        .with_gc_interval(Duration::ZERO)
        .with_hedge(HedgeSettings::off())
}

/// Waits until `cond` holds, failing the test after 10 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs the race under `protocol`; returns the successor's open, the
/// zombie's unacknowledged write as the successor reads it, and the
/// zombie's epoch.
async fn race(protocol: Protocol) -> (Result<(), Error>, Option<bytes::Bytes>, u64) {
    let inner: StdArc<dyn ObjectStore> = StdArc::new(InMemory::new());
    let fault = FaultStore::new(inner.clone(), 7);
    let zombie = Db::open_with("db", StdArc::new(fault.clone()), settings(protocol)).await.expect("zombie opens");
    let zombie_epoch = zombie.writer_epoch();

    // The zombie's next WAL upload is held: it will land late.
    fault.hold_prefix("db/wal/");
    zombie.put_with("z", "late", &WriteOptions { await_durable: false }).await.expect("buffered");
    until("the zombie's upload", || fault.held().len() == 1).await;
    let late: Path = fault.held()[0].clone();

    // The successor lists the chain (the late WAL is absent), finds its gap
    // at that id and creates its fence there: held as well.
    let store: StdArc<dyn ObjectStore> = StdArc::new(fault.clone());
    let opener = tokio::spawn(async move {
        let db = Db::open_with("db", store, settings(protocol)).await?;
        let z = db.get("z").await?;
        db.close().await?;
        Ok::<_, Error>(z)
    });
    until("the successor's fence create at the late WAL's id", || {
        fault.held().iter().filter(|p| **p == late).count() == 2
    })
    .await;

    // The zombie's upload lands first; the successor's create then finds the
    // id taken by an object of the older epoch. Later creates go through.
    fault.stop_holding();
    assert!(fault.release(&late).await, "the zombie's upload lands");
    assert!(fault.release(&late).await, "the successor's fence create is answered");
    let opened = opener.await.expect("the opener does not panic");
    drop(zombie);
    match opened {
        Ok(z) => (Ok(()), z, zombie_epoch),
        Err(e) => (Err(e), None, zombie_epoch),
    }
}

#[tokio::test]
async fn a_fence_id_taken_by_a_late_upload_is_walked_past() {
    let (opened, z, _) = race(Protocol::Shipped).await;
    opened.expect("the successor's recovery completes (I11)");
    // The late WAL landed before the fence, on the chain: its write is
    // recovered, though it was never acknowledged (allowed: not written
    // means not acknowledged, not absent).
    assert_eq!(z.as_deref(), Some(&b"late"[..]));
}

#[tokio::test]
async fn mutant_fence_race_gives_up_fails_the_open() {
    let (opened, _, zombie_epoch) = race(Protocol::FenceRaceGivesUp).await;
    match opened {
        Err(Error::WalIdTaken { owner_epoch, .. }) => assert_eq!(owner_epoch, zombie_epoch, "the zombie holds the id"),
        other => panic!("fence-race-gives-up should fail the open with WalIdTaken, got {other:?}"),
    }
}
