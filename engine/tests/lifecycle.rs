//! Many processes on one bucket: followers, durable checkpoints, a
//! compactor and GC of their own, and a lifecycle whose cost per close does
//! not grow with use.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use tidemark::{
    collect_garbage, compact, delete_checkpoint, fsck, list_checkpoints, CheckpointHolder, CheckpointOptions, Db, DbReader,
    Error, ReaderOptions, Settings, StoreRef, TokioClock,
};

fn store() -> StoreRef {
    Arc::new(InMemory::new())
}

/// Small SSTs and an eager compactor, GC at min age 0: every superseded
/// object goes at once unless a checkpoint keeps it.
fn churn() -> Settings {
    Settings::default()
        .with_l0_sst_size_bytes(512)
        .with_max_unflushed_bytes(8 << 10)
        .with_l0_max_ssts(2)
        .with_compacted_sst_size_bytes(1024)
        .with_gc_min_age(Duration::ZERO)
        .with_gc_interval(Duration::from_millis(20))
}

fn manual(settings: Settings) -> ReaderOptions {
    ReaderOptions { poll_interval: None, settings, ..Default::default() }
}

fn key(i: u32) -> Bytes {
    Bytes::from(format!("key{i:05}"))
}

async fn count(store: &StoreRef, dir: &str) -> usize {
    use futures::TryStreamExt;
    let listed: Vec<_> = store.list(Some(&format!("db/{dir}").into())).try_collect().await.unwrap();
    listed.len()
}

#[tokio::test]
async fn a_follower_sees_every_acknowledged_write_after_a_poll_across_compaction_and_gc() {
    let store = store();
    let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
    let reader = DbReader::open("db", store.clone(), manual(churn())).await.unwrap();
    let mut last_version = reader.position().await.0;
    for round in 0..20u32 {
        for i in 0..50 {
            db.put(key(i), format!("v{round}")).await.unwrap();
        }
        db.delete(key(round)).await.unwrap();
        reader.poll().await.unwrap();
        for i in 0..50 {
            let want = (i != round).then(|| Bytes::from(format!("v{round}")));
            assert_eq!(reader.get(key(i)).await.unwrap(), want, "round {round} key {i}");
        }
        // I14: views never go backwards.
        let version = reader.position().await.0;
        assert!(version >= last_version);
        last_version = version;
    }
    let m = db.manifest().await;
    assert!(!m.runs.is_empty(), "compaction ran: {m:?}");
    reader.close().await.unwrap();
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_held_follower_snapshot_survives_compaction_and_gc_at_min_age_zero() {
    let store = store();
    let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
    for i in 0..200 {
        db.put(key(i), "old").await.unwrap();
    }
    db.flush().await.unwrap();
    let reader = DbReader::open("db", store.clone(), manual(churn())).await.unwrap();
    let snap = reader.snapshot().await.unwrap();
    for round in 0..5 {
        for i in 0..200 {
            db.put(key(i), format!("new{round}")).await.unwrap();
        }
        db.flush().await.unwrap();
        reader.poll().await.unwrap();
    }
    tidemark::collect_garbage("db", store.clone(), churn()).await.unwrap();
    // The snapshot still reads its SSTs: the reader's checkpoint kept them.
    let rows = snap.scan(..).await.unwrap().collect_vec().await.unwrap();
    assert_eq!(rows.len(), 200);
    assert!(rows.iter().all(|(_, v)| v == "old"));
    assert_eq!(reader.get(key(7)).await.unwrap().as_deref(), Some(&b"new4"[..]));
    drop(snap);
    reader.close().await.unwrap();
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_durable_checkpoint_is_exactly_the_state_at_its_creation_until_deleted() {
    let store = store();
    let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
    for i in 0..100 {
        db.put(key(i), "before").await.unwrap();
    }
    db.delete(key(3)).await.unwrap();
    let cp = db.checkpoint(CheckpointOptions::default()).await.unwrap();
    assert_eq!(cp.holder, CheckpointHolder::Client);
    assert!(cp.wal_end.is_some());
    for i in 0..100 {
        db.put(key(i), "after").await.unwrap();
    }
    db.put(key(3), "after").await.unwrap();
    db.put("extra", "after").await.unwrap();
    db.close().await.unwrap();
    // Another writer, compaction and GC at min age 0 in between.
    let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
    db.put("later", "x").await.unwrap();
    db.flush().await.unwrap();
    collect_garbage("db", store.clone(), churn()).await.unwrap();

    let backup = DbReader::open_checkpoint("db", store.clone(), cp.id).await.unwrap();
    let rows = backup.scan(..).await.unwrap().collect_vec().await.unwrap();
    assert_eq!(rows.len(), 99, "every write before the checkpoint, none after");
    assert!(rows.iter().all(|(_, v)| v == "before"));
    assert_eq!(backup.get(key(3)).await.unwrap(), None);
    assert!(list_checkpoints(store.clone(), "db").await.unwrap().iter().any(|c| c.id == cp.id));

    delete_checkpoint(store.clone(), "db", cp.id).await.unwrap();
    match DbReader::open_checkpoint("db", store.clone(), cp.id).await {
        Err(Error::CheckpointGone { id, .. }) => assert_eq!(id, cp.id),
        other => panic!("a deleted checkpoint opened: {other:?}"),
    }
    db.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_follower_that_cannot_refresh_in_time_stops_reading() {
    let store = store();
    let settings = Settings::default().with_clock(Arc::new(TokioClock::new()));
    let db = Db::open_with("db", store.clone(), settings.clone()).await.unwrap();
    db.put("k", "v").await.unwrap();
    let opts = ReaderOptions { checkpoint_lifetime: Duration::from_secs(10), ..manual(settings.clone()) };
    let reader = DbReader::open("db", store.clone(), opts).await.unwrap();
    assert_eq!(reader.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    // Polled at half-life: refreshed, reads go on.
    tokio::time::advance(Duration::from_secs(6)).await;
    reader.poll().await.unwrap();
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(reader.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    // Not polled for a whole lifetime: expired on the reader's own clock.
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(matches!(reader.get("k").await, Err(Error::CheckpointGone { .. })));
    assert!(matches!(reader.poll().await, Err(Error::CheckpointGone { .. })));
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_closed_follower_releases_what_it_pinned() {
    let store = store();
    let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
    for i in 0..100 {
        db.put(key(i), "a").await.unwrap();
    }
    let reader = DbReader::open("db", store.clone(), manual(churn())).await.unwrap();
    for i in 0..100 {
        db.put(key(i), "b").await.unwrap();
    }
    db.flush().await.unwrap();
    assert!(list_checkpoints(store.clone(), "db").await.unwrap().iter().any(|c| c.holder == CheckpointHolder::Client));
    reader.close().await.unwrap();
    assert!(!list_checkpoints(store.clone(), "db").await.unwrap().iter().any(|c| c.holder == CheckpointHolder::Client));
    db.close().await.unwrap();
    collect_garbage("db", store.clone(), churn()).await.unwrap();
    assert_eq!(count(&store, "manifest").await, 1, "only the latest version is left");
}

#[tokio::test]
async fn a_standalone_compactor_and_gc_keep_the_tree_small_beside_a_writer() {
    let store = store();
    let writer_settings = churn().with_compactor(false).with_gc_interval(Duration::ZERO);
    let db = Db::open_with("db", store.clone(), writer_settings).await.unwrap();
    for round in 0..6u32 {
        for i in 0..80 {
            db.put(key(i), format!("r{round}")).await.unwrap();
        }
        db.flush().await.unwrap();
    }
    let before = db.manifest().await.l0.len();
    assert!(before > 2, "L0 grew with the writer's compactor off: {before}");
    let runs = compact("db", store.clone(), churn()).await.unwrap();
    assert!(runs >= 1);
    // The writer's own pin keeps the L0 SSTs its current tree reads.
    let stats = collect_garbage("db", store.clone(), churn()).await.unwrap();
    assert_eq!(stats.ssts, 0, "the writer still reads them: {stats:?}");
    // The writer goes on on top of the compactor's version; its close
    // drops its pin, and the compacted L0 goes.
    db.put("after", "x").await.unwrap();
    db.flush().await.unwrap();
    db.close().await.unwrap();
    let stats = collect_garbage("db", store.clone(), churn()).await.unwrap();
    assert!(stats.ssts >= before, "the compacted L0 SSTs were collected: {stats:?}");
    let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
    for i in 0..80 {
        assert_eq!(db.get(key(i)).await.unwrap().as_deref(), Some(&b"r5"[..]));
    }
    assert_eq!(db.get("after").await.unwrap().as_deref(), Some(&b"x"[..]));
    db.close().await.unwrap();
    let report = fsck(store.as_ref(), "db".into()).await;
    assert_eq!(report.problems(), 0, "{report:?}");
}

/// A writer with its own compactor, fenced by a standalone compactor that
/// found work; then ten rounds of writes. Returns the writer, or why the
/// writes did not all succeed within a minute (of the paused clock).
async fn writes_after_a_standalone_compactor_fenced_ours(store: &StoreRef, settings: &Settings) -> Result<Db, String> {
    let db = Db::open_with("db", store.clone(), settings.clone()).await.unwrap();
    for i in 0..200u32 {
        db.put(key(i), "first").await.unwrap();
    }
    db.flush().await.unwrap();
    let ours = db.manifest().await.compactor_epoch;
    assert!(ours >= 1, "the writer's compactor ran");
    // Another machine's compactor claims the next compactor epoch at its
    // first compaction (it merges every pair of runs, so it finds work).
    let mut elsewhere = settings.clone();
    elsewhere.max_sorted_runs = 1;
    let mut i = 0;
    while db.manifest().await.compactor_epoch == ours {
        assert!(i < 2_000, "the standalone compactor found work");
        db.put(key(i % 200), "first").await.unwrap();
        compact("db", store.clone(), elsewhere.clone()).await.unwrap();
        i += 1;
    }
    let writes = async {
        for round in 0..10u32 {
            for i in 0..200u32 {
                db.put(key(i), format!("r{round}")).await?;
            }
            db.flush().await?;
        }
        Ok::<(), Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(60), writes).await {
        Ok(Ok(())) => Ok(db),
        Ok(Err(e)) => Err(format!("a write failed: {e}")),
        Err(_) => Err("the writes stalled for a minute".into()),
    }
}

/// A writer whose own compactor a standalone one fences leaves L0 to the
/// compactor elsewhere: its writes go on past `l0_max_ssts` (up to the
/// bound a manifest may hold) rather than wait for a compactor that no
/// longer runs here, and a later standalone run compacts what gathered.
/// The mutant `fenced-compactor-holds-l0` (the writer still waits) stalls.
#[tokio::test(start_paused = true)]
async fn a_writer_whose_compactor_is_fenced_by_a_standalone_one_keeps_writing() {
    let store = store();
    let settings = churn().with_gc_interval(Duration::ZERO);
    let db = writes_after_a_standalone_compactor_fenced_ours(&store, &settings).await.unwrap();
    let l0 = db.manifest().await.l0.len();
    assert!(l0 > settings.l0_max_ssts, "L0 grew past its limit, left to the compactor elsewhere: {l0}");
    assert!(compact("db", store.clone(), settings.clone()).await.unwrap() >= 1);
    db.put("after", "x").await.unwrap();
    for i in 0..200u32 {
        assert_eq!(db.get(key(i)).await.unwrap().as_deref(), Some(&b"r9"[..]));
    }
    db.close().await.unwrap();
    let report = fsck(store.as_ref(), "db".into()).await;
    assert_eq!(report.problems(), 0, "{report:?}");

    let mut mutant = settings.clone();
    mutant.fenced_compactor_holds_l0 = true;
    let stalled = writes_after_a_standalone_compactor_fenced_ours(&self::store(), &mutant).await;
    assert!(stalled.is_err(), "fenced-compactor-holds-l0: the writes went on");
}

/// 10,000 writes (puts and deletes over 500 keys) by a writer with its
/// compactor and GC off, while `tidemark::compact` and
/// `tidemark::collect_garbage` run as processes of their own (GC at min age
/// 0) every 500 writes; optionally a durable checkpoint taken first. Every
/// scan and get agrees with an oracle map, and so does a reopen; returns
/// the most SSTs seen between passes, the SSTs, manifests and WALs left at
/// the end, and the checkpoint's state as it reads then (if one was taken)
/// beside the state at its creation.
async fn ten_thousand_writes_beside_standalone_passes(
    with_checkpoint: bool,
) -> ((usize, usize, usize, usize), Option<(std::collections::BTreeMap<Bytes, Bytes>, std::collections::BTreeMap<Bytes, Bytes>)>) {
    use std::collections::BTreeMap;
    use tidemark::WriteOptions;
    let store = store();
    let writer = churn().with_compactor(false).with_gc_interval(Duration::ZERO);
    let db = Db::open_with("db", store.clone(), writer).await.unwrap();
    let mut oracle: BTreeMap<Bytes, Bytes> = BTreeMap::new();
    for i in 0..100u32 {
        db.put(key(i), "at-checkpoint").await.unwrap();
        oracle.insert(key(i), Bytes::from("at-checkpoint"));
    }
    // Flushed first, so the checkpoint's own version holds an SST that
    // compaction then retires: GC must keep that one, and only that one.
    db.flush().await.unwrap();
    let cp = match with_checkpoint {
        true => Some((db.checkpoint(CheckpointOptions::default()).await.unwrap(), oracle.clone())),
        false => None,
    };
    let fast = WriteOptions { await_durable: false };
    let mut most_ssts = 0;
    for n in 0..10_000u32 {
        let k = key((n * 7919) % 500);
        if n % 11 == 0 {
            db.delete_with(k.clone(), &fast).await.unwrap();
            oracle.remove(&k);
        } else {
            let v = Bytes::from(format!("v{n}"));
            db.put_with(k.clone(), v.clone(), &fast).await.unwrap();
            oracle.insert(k, v);
        }
        if n % 500 == 499 {
            db.flush().await.unwrap();
            compact("db", store.clone(), churn()).await.unwrap();
            collect_garbage("db", store.clone(), churn()).await.unwrap();
            let seen: BTreeMap<Bytes, Bytes> = db.scan(..).await.unwrap().collect_vec().await.unwrap().into_iter().collect();
            assert!(seen == oracle, "after {} writes the scan differs from the oracle", n + 1);
            for i in (0..500).step_by(37) {
                assert_eq!(db.get(key(i)).await.unwrap(), oracle.get(&key(i)).cloned(), "key {i} after {} writes", n + 1);
            }
            most_ssts = most_ssts.max(count(&store, "compacted").await);
        }
    }
    db.close().await.unwrap();
    compact("db", store.clone(), churn()).await.unwrap();
    collect_garbage("db", store.clone(), churn()).await.unwrap();
    let left = (most_ssts, count(&store, "compacted").await, count(&store, "manifest").await, count(&store, "wal").await);
    let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
    let seen: BTreeMap<Bytes, Bytes> = db.scan(..).await.unwrap().collect_vec().await.unwrap().into_iter().collect();
    assert!(seen == oracle, "the reopened database differs from the oracle");
    db.close().await.unwrap();
    let mut checkpoint = None;
    if let Some((cp, at_creation)) = cp {
        let backup = DbReader::open_checkpoint("db", store.clone(), cp.id).await.unwrap();
        let rows = backup.scan(..).await.unwrap().collect_vec().await.unwrap().into_iter().collect();
        backup.close().await.unwrap();
        checkpoint = Some((rows, at_creation));
    }
    (left, checkpoint)
}

/// Issue 23's acceptance at its scale: beside a standalone compactor and
/// GC the store stays bounded over 10,000 writes and every read agrees with
/// the oracle; a durable checkpoint taken first still reads exactly its
/// state after them.
#[tokio::test]
async fn ten_thousand_writes_beside_a_standalone_compactor_and_gc_stay_bounded_and_agree_with_an_oracle() {
    let ((most, ssts, manifests, wals), _) = ten_thousand_writes_beside_standalone_passes(false).await;
    eprintln!("without a checkpoint: at most {most} SSTs between passes; at the end {ssts} SSTs, {manifests} manifests, {wals} WALs");
    assert!(most <= 120 && ssts <= 80, "SSTs stay bounded: at most {most} between passes, {ssts} at the end");
    assert!(manifests <= 3 && wals <= 3, "{manifests} manifests and {wals} WALs are left");
    let ((most, ssts, manifests, wals), checkpoint) = ten_thousand_writes_beside_standalone_passes(true).await;
    eprintln!("with a durable checkpoint: at most {most} SSTs between passes; at the end {ssts} SSTs, {manifests} manifests, {wals} WALs");
    assert!(wals <= 3, "a durable checkpoint keeps its WALs up to its wal_end only: {wals} left");
    assert!(
        most <= 125 && ssts <= 85 && manifests <= 4,
        "a durable checkpoint keeps its own version's SSTs only: at most {most} SSTs between passes, {ssts} SSTs and {manifests} manifests at the end"
    );
    let (read, at_creation) = checkpoint.expect("a checkpoint was taken");
    assert!(read == at_creation, "the checkpoint reads exactly its state after 10,000 writes, compactions and GC");
}

/// Short-lived processes: the requests of one open/put/close round stay
/// flat as rounds accumulate at the default `gc_min_age` (5 min).
#[tokio::test]
async fn open_put_close_rounds_cost_the_same_at_the_thousandth_as_at_the_tenth() {
    let store = store();
    let mut gets = Vec::new();
    for round in 0..300u32 {
        let db = Db::open_with("db", store.clone(), Settings::default()).await.unwrap();
        db.put(key(round), "v").await.unwrap();
        db.close().await.unwrap();
        gets.push(db.metrics().requests.reads());
    }
    let early: u64 = gets[10..20].iter().sum();
    let late: u64 = gets[290..300].iter().sum();
    assert!(late <= early + 10, "reads per round grew: {:?} .. {:?}", &gets[10..20], &gets[290..300]);
}

/// `gc_min_age` between 0 and the commit timeout: compaction succeeds and
/// writes never stall at the L0 limit.
#[tokio::test]
async fn writes_and_compaction_go_on_at_any_gc_min_age() {
    for min_age in [Duration::from_secs(1), Duration::from_secs(29), Duration::from_secs(31)] {
        let store = store();
        let settings = churn().with_gc_min_age(min_age);
        let db = Db::open_with("db", store.clone(), settings).await.unwrap();
        let writes = async {
            for i in 0..2_000u32 {
                db.put(key(i % 300), format!("v{i}")).await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(60), writes).await.expect("writes stalled");
        db.flush().await.unwrap();
        let m = db.manifest().await;
        assert!(!m.runs.is_empty(), "compaction recorded runs at gc_min_age {min_age:?}");
        db.close().await.unwrap();
    }
}

/// The durable-checkpoint scenario run with GC mutants: each loses data the
/// checkpoint or a held view needs, which the checks above would report.
#[tokio::test]
async fn gc_mutants_lose_what_checkpoints_and_retired_ssts_keep() {
    use tidemark::internals::protocol::Protocol;
    for mutant in [Protocol::GcIgnoresCheckpoints, Protocol::GcIgnoresRetired] {
        let store = store();
        let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
        for i in 0..200 {
            db.put(key(i), "before").await.unwrap();
        }
        db.flush().await.unwrap();
        let cp = db.checkpoint(CheckpointOptions::default()).await.unwrap();
        for round in 0..4 {
            for i in 0..200 {
                db.put(key(i), format!("after{round}")).await.unwrap();
            }
            db.flush().await.unwrap();
        }
        db.close().await.unwrap();
        collect_garbage("db", store.clone(), churn().with_protocol(mutant)).await.unwrap();
        let read = async {
            let backup = DbReader::open_checkpoint("db", store.clone(), cp.id).await?;
            backup.scan(..).await?.collect_vec().await
        };
        match read.await {
            Ok(rows) => assert!(
                rows.len() != 200 || rows.iter().any(|(_, v)| v != "before"),
                "{mutant:?}: the checkpoint still read its state"
            ),
            Err(e) => assert!(!matches!(e, Error::CheckpointGone { .. }), "{mutant:?}: {e}"),
        }
    }
}

/// A fenced writer (a zombie) keeps running GC at min age 0 while the new
/// writer flushes and compacts: nothing the new writer needs is deleted.
#[tokio::test]
async fn a_fenced_writers_gc_deletes_nothing_the_new_writer_needs() {
    let store = store();
    let zombie = Db::open_with("db", store.clone(), churn()).await.unwrap();
    for i in 0..100 {
        zombie.put(key(i), "zombie").await.unwrap();
    }
    let db = Db::open_with("db", store.clone(), churn()).await.unwrap();
    for round in 0..10u32 {
        for i in 0..100 {
            db.put(key(i), format!("r{round}")).await.unwrap();
        }
        db.flush().await.unwrap();
        // The zombie's periodic GC runs between the new writer's steps.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let rows = db.scan(..).await.unwrap().collect_vec().await.unwrap();
        assert_eq!(rows.len(), 100, "round {round}");
        assert!(rows.iter().all(|(_, v)| *v == format!("r{round}")));
    }
    assert!(zombie.put("late", "x").await.is_err(), "the zombie is fenced");
    db.close().await.unwrap();
    let report = fsck(store.as_ref(), "db".into()).await;
    assert_eq!(report.problems(), 0, "{report:?}");
}

/// Durable checkpoints taken between compactions, each followed at once by
/// a standalone compaction and GC at min age 0, then many more of both:
/// each checkpoint reads exactly its state after every pass. The version
/// after each pinned one removes SSTs the checkpoint reads, and no
/// follower's pin keeps retired SSTs alive, so any compaction that judges
/// a checkpoint by the wrong tree, or GC that deletes a retired SST it
/// needs, loses a read here.
#[tokio::test]
async fn durable_checkpoints_between_compactions_read_as_created_after_many_more() {
    use std::collections::BTreeMap;
    let store = store();
    let writer = churn().with_compactor(false).with_gc_interval(Duration::ZERO);
    let db = Db::open_with("db", store.clone(), writer).await.unwrap();
    let mut oracle: BTreeMap<Bytes, Bytes> = BTreeMap::new();
    let mut live: Vec<(u128, BTreeMap<Bytes, Bytes>)> = Vec::new();
    let mut deleted_ssts = 0;
    for round in 0..24u32 {
        for n in 0..60u32 {
            let k = key((n * 7 + round * 13) % 200);
            if (n + round) % 9 == 0 {
                db.delete(k.clone()).await.unwrap();
                oracle.remove(&k);
            } else {
                let v = Bytes::from(format!("r{round}n{n}"));
                db.put(k.clone(), v.clone()).await.unwrap();
                oracle.insert(k, v);
            }
        }
        db.flush().await.unwrap();
        if round % 3 == 0 {
            let cp = tidemark::create_checkpoint(store.clone(), "db", CheckpointOptions::default()).await.unwrap();
            live.push((cp.id, oracle.clone()));
            if live.len() > 3 {
                delete_checkpoint(store.clone(), "db", live.remove(0).0).await.unwrap();
            }
        }
        let before = count(&store, "compacted").await;
        compact("db", store.clone(), churn()).await.unwrap();
        collect_garbage("db", store.clone(), churn()).await.unwrap();
        deleted_ssts += before.saturating_sub(count(&store, "compacted").await);
        for (id, state) in &live {
            let backup = DbReader::open_checkpoint("db", store.clone(), *id)
                .await
                .unwrap_or_else(|e| panic!("round {round}: checkpoint {id:032x} no longer opens: {e}"));
            let rows: BTreeMap<Bytes, Bytes> = match backup.scan(..).await {
                Ok(scan) => scan.collect_vec().await,
                Err(e) => Err(e),
            }
            .unwrap_or_else(|e| panic!("round {round}: checkpoint {id:032x} no longer reads (I16): {e}"))
            .into_iter()
            .collect();
            assert!(&rows == state, "round {round}: checkpoint {id:032x} shows {} keys, not the {} it was made with", rows.len(), state.len());
            backup.close().await.unwrap();
        }
    }
    assert!(deleted_ssts > 20, "GC deleted what compactions retired and no checkpoint reads: {deleted_ssts} SSTs");
    let seen: BTreeMap<Bytes, Bytes> = db.scan(..).await.unwrap().collect_vec().await.unwrap().into_iter().collect();
    assert!(seen == oracle, "the writer reads its own state");
    db.close().await.unwrap();
}
