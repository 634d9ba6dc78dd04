//! Trace conformance can fail: a real engine trace conforms to the model,
//! and the same trace with one step altered does not.

use object_store::memory::InMemory;
use tidemark::internals::protocol::Protocol;
use tidemark::internals::sync::StdArc;
use tidemark::internals::trace::{MemoryRecorder, TraceEvent, TraceStep};
use tidemark::{Db, Settings, WriteOptions};
use tidemark_crash::conformance;

async fn recorded_session() -> Vec<TraceStep> {
    let recorder = MemoryRecorder::new();
    // Compaction and GC steps are not replayed by conformance yet.
    let settings = Settings::default()
        .with_compactor(false)
        .with_gc_interval(std::time::Duration::ZERO)
        .with_recorder(StdArc::new(recorder.clone()))
        .with_l0_sst_size_bytes(400)
        .with_max_inflight_wal_uploads(4);
    let store = StdArc::new(InMemory::new());
    let db = Db::open_with("db", store.clone(), settings.clone()).await.unwrap();
    let fire = WriteOptions { await_durable: false };
    for i in 0..30 {
        db.put_with(format!("key{i:02}"), "a value of some length", &fire).await.unwrap();
        if i % 7 == 0 {
            db.put(format!("sync{i}"), "v").await.unwrap();
        }
    }
    db.close().await.unwrap();
    drop(db);
    let reopened = Db::open_with("db", store, settings).await.unwrap();
    reopened.put("after", "recovery").await.unwrap();
    reopened.close().await.unwrap();
    recorder.steps()
}

#[tokio::test]
async fn a_recorded_engine_trace_conforms_and_an_altered_one_does_not() {
    let steps = recorded_session().await;
    let names: Vec<&str> = steps.iter().map(|s| s.event.action()).collect();
    for action in ["Put", "FreezeWal", "UploadWal", "WalDurable", "Ack", "FreezeMemtable", "FlushL0", "WriteManifest", "Recover", "Fence"] {
        assert!(names.contains(&action), "the session exercised {action}: {names:?}");
    }
    // The first process closed before the second opened: record its end.
    let mut trace = steps.clone();
    let second = trace.iter().rposition(|s| matches!(s.event, TraceEvent::Recover { .. })).unwrap();
    trace.insert(second, TraceStep { writer_epoch: 1, event: TraceEvent::Crash { listed: vec![] } });
    if let Some(bad) = conformance::check(Protocol::Shipped, 4, &trace, &Default::default()) {
        panic!("the engine's own trace must conform: {bad}");
    }

    // A Put recorded into the wrong WAL.
    let mut wrong_wal = trace.clone();
    let i = wrong_wal.iter().position(|s| matches!(s.event, TraceEvent::Put { .. })).unwrap();
    if let TraceEvent::Put { wal_id } = &mut wrong_wal[i].event {
        *wal_id += 1;
    }
    let bad = conformance::check(Protocol::Shipped, 4, &wrong_wal, &Default::default()).expect("caught");
    assert_eq!(bad.index, i);

    // An upload with no FreezeWal before it.
    let mut no_freeze = trace.clone();
    let j = no_freeze.iter().position(|s| matches!(s.event, TraceEvent::FreezeWal { .. })).unwrap();
    no_freeze.remove(j);
    assert!(conformance::check(Protocol::Shipped, 4, &no_freeze, &Default::default()).is_some());

    // A watermark the engine claims but the protocol never reached (the
    // `max-completed` kind of mistake).
    let mut ahead = trace.clone();
    let k = ahead.iter().position(|s| matches!(s.event, TraceEvent::WalDurable { .. })).unwrap();
    if let TraceEvent::WalDurable { durable_wal_id, .. } = &mut ahead[k].event {
        *durable_wal_id += 5;
    }
    assert!(conformance::check(Protocol::Shipped, 4, &ahead, &Default::default()).is_some());

    // A manifest claiming a WAL the watermark does not cover (the SlateDB bug).
    let mut early = trace.clone();
    let m = early.iter().position(|s| matches!(s.event, TraceEvent::WriteManifest { .. })).unwrap();
    if let TraceEvent::WriteManifest { wal_id_last_seen, .. } = &mut early[m].event {
        *wal_id_last_seen += 1;
    }
    assert!(conformance::check(Protocol::Shipped, 4, &early, &Default::default()).is_some());
}

/// A session on the engine running `protocol` in which uploads complete out
/// of order and a manifest is written while WAL uploads are in flight.
async fn out_of_order_session(protocol: Protocol) -> Vec<TraceStep> {
    use std::time::Duration;
    use tidemark::testing::FaultStore;
    let recorder = MemoryRecorder::new();
    let settings = Settings::default()
        .with_protocol(protocol)
        .with_compactor(false)
        .with_gc_interval(std::time::Duration::ZERO)
        .with_recorder(StdArc::new(recorder.clone()))
        .with_l0_sst_size_bytes(256)
        .with_flush_interval(Duration::from_millis(1))
        .with_max_inflight_wal_uploads(4);
    let fault = FaultStore::new(StdArc::new(InMemory::new()), 11);
    let db = Db::open_with("db", StdArc::new(fault.clone()), settings).await.unwrap();
    fault.hold_prefix("db/wal/");
    fault.hold_prefix("db/compacted/");
    let fire = WriteOptions { await_durable: false };
    let held = |dir: &str| -> Vec<object_store::path::Path> {
        fault.held().into_iter().filter(|p| p.as_ref().starts_with(dir)).collect()
    };
    let mut i = 0;
    // A memtable is recorded only once its WALs are durable: they land until
    // its L0 upload starts (and is held)...
    while held("db/compacted/").is_empty() && i < 300 {
        db.put_with(format!("key{i:03}"), "x".repeat(40), &fire).await.unwrap();
        i += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
        for p in held("db/wal/") {
            fault.release(&p).await;
        }
    }
    // ...then later WALs are frozen and held.
    while held("db/wal/").len() < 3 && i < 600 {
        db.put_with(format!("key{i:03}"), "x".repeat(40), &fire).await.unwrap();
        i += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut wals = held("db/wal/");
    assert!(wals.len() >= 3 && !held("db/compacted/").is_empty(), "uploads in flight: {wals:?}");
    // Every WAL but the oldest lands, newest first: the watermark must wait.
    // A slow create is hedged, so a WAL can be held twice: release one
    // attempt of each other WAL, none of the oldest.
    wals.sort();
    wals.dedup();
    for p in wals[1..].iter().rev() {
        fault.release(p).await;
    }
    // The SST lands while the oldest WAL is still in flight: WriteManifest.
    for p in held("db/compacted/") {
        fault.release(&p).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !recorder.steps().iter().any(|s| matches!(s.event, TraceEvent::WriteManifest { .. })) {
        assert!(std::time::Instant::now() < deadline, "a manifest was written");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Close uploads what the last puts left in the memtable: nothing is
    // held from here on (a held upload would wait for ever).
    fault.stop_holding();
    for p in fault.held() {
        fault.release(&p).await;
    }
    db.close().await.unwrap();
    recorder.steps()
}

#[tokio::test]
async fn engine_mutants_conform_to_their_own_model_but_not_to_the_shipped_one() {
    for mutant in [Protocol::AtFreeze, Protocol::MaxCompleted] {
        let trace = out_of_order_session(mutant).await;
        if let Some(bad) = conformance::check(mutant, 4, &trace, &Default::default()) {
            for (i, s) in trace.iter().enumerate().take(bad.index + 1) {
                eprintln!("{i:4} epoch {} {:?}", s.writer_epoch, s.event);
            }
            panic!("{mutant:?}'s trace conforms to the {mutant:?} model: {bad}");
        }
        let bad = conformance::check(Protocol::Shipped, 4, &trace, &Default::default()).unwrap_or_else(|| panic!("{mutant:?} is caught"));
        let expected = match mutant {
            Protocol::AtFreeze => "WriteManifest",
            _ => "WalDurable",
        };
        assert_eq!(bad.step.event.action(), expected, "{mutant:?} caught at {bad}");
    }
    let shipped = out_of_order_session(Protocol::Shipped).await;
    assert!(conformance::check(Protocol::Shipped, 4, &shipped, &Default::default()).is_none(), "the shipped engine conforms");
}
