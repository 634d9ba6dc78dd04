//! The fault store's own tests: each fault, hold and crash behaves as documented.

use super::*;
use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::ObjectStoreExt;

fn store(seed: u64) -> (FaultStore, StdArc<dyn ObjectStore>) {
    let inner: StdArc<dyn ObjectStore> = Arc::new(InMemory::new());
    (FaultStore::new(inner.clone(), seed), inner)
}

fn create() -> PutOptions {
    PutOptions { mode: PutMode::Create, ..Default::default() }
}

#[tokio::test]
async fn counts_and_fails_the_kth_operation_transiently() {
    let (fs, _) = store(1);
    fs.fail_op(2, FaultKind::Transient(1));
    let p = Path::from("a");
    fs.put(&p, Bytes::from_static(b"x").into()).await.unwrap();
    assert!(fs.get(&p).await.is_err(), "op 2 fails");
    assert!(fs.get(&p).await.is_ok(), "op 3 succeeds: the fault was transient");
    assert_eq!(fs.ops(), 3);
}

#[tokio::test]
async fn prefix_faults_can_be_permanent() {
    let (fs, _) = store(1);
    fs.fail_prefix("wal/", FaultKind::Permanent);
    for _ in 0..3 {
        assert!(fs.put(&Path::from("wal/1"), Bytes::new().into()).await.is_err());
    }
    assert!(fs.put(&Path::from("manifest/1"), Bytes::new().into()).await.is_ok());
}

#[tokio::test]
async fn held_uploads_land_in_the_chosen_order() {
    let (fs, inner) = store(1);
    fs.hold_prefix("wal/");
    let a = tokio::spawn({
        let fs = fs.clone();
        async move { fs.put_opts(&Path::from("wal/1"), Bytes::from_static(b"1").into(), create()).await }
    });
    let b = tokio::spawn({
        let fs = fs.clone();
        async move { fs.put_opts(&Path::from("wal/2"), Bytes::from_static(b"2").into(), create()).await }
    });
    while fs.held().len() < 2 {
        tokio::task::yield_now().await;
    }
    assert!(inner.head(&Path::from("wal/2")).await.is_err(), "nothing landed yet");
    assert!(fs.release(&Path::from("wal/2")).await);
    assert!(b.await.unwrap().is_ok());
    assert!(inner.head(&Path::from("wal/2")).await.is_ok());
    assert!(fs.lose(&Path::from("wal/1")));
    assert!(a.await.unwrap().is_err());
    assert!(inner.head(&Path::from("wal/1")).await.is_err(), "a lost upload never lands");
}

#[tokio::test]
async fn ambiguous_create_lands_but_reports_already_exists() {
    let (fs, inner) = store(1);
    fs.ambiguous_creates("manifest/", 1);
    let p = Path::from("manifest/1");
    let err = fs.put_opts(&p, Bytes::from_static(b"m").into(), create()).await.unwrap_err();
    assert!(matches!(err, object_store::Error::AlreadyExists { .. }));
    assert_eq!(inner.get(&p).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"m"));
}

/// Each ambiguous create is recorded with the label of the clone it was
/// issued through, also when a held one is released through another clone.
#[tokio::test]
async fn ambiguous_creates_are_recorded_with_their_callers_label() {
    let (fs, _) = store(1);
    fs.ambiguous_creates("manifest/", 3);
    let client = fs.labelled("client");
    assert!(client.put_opts(&Path::from("manifest/1"), Bytes::new().into(), create()).await.is_err());
    assert!(fs.put_opts(&Path::from("manifest/2"), Bytes::new().into(), create()).await.is_err());
    fs.hold_prefix("manifest/");
    let held = tokio::spawn({
        let gc = fs.labelled("gc");
        async move { gc.put_opts(&Path::from("manifest/3"), Bytes::new().into(), create()).await }
    });
    while fs.held().is_empty() {
        tokio::task::yield_now().await;
    }
    assert!(client.release(&Path::from("manifest/3")).await);
    assert!(matches!(held.await.unwrap(), Err(object_store::Error::AlreadyExists { .. })));
    let injected = fs.injected();
    let made = [("manifest/1", "client"), ("manifest/2", ""), ("manifest/3", "gc")].map(|(p, by)| (Path::from(p), by));
    assert_eq!(injected.ambiguous, made);
}

#[tokio::test]
async fn ambiguous_conditional_update_lands_but_reports_precondition() {
    let (fs, inner) = store(1);
    let p = Path::from("manifest/current");
    let first = inner.put(&p, Bytes::from_static(b"v1").into()).await.unwrap();
    fs.ambiguous_creates("manifest/", 1);
    let update = PutOptions {
        mode: PutMode::Update(object_store::UpdateVersion { e_tag: first.e_tag, version: first.version }),
        ..Default::default()
    };
    let err = fs.put_opts(&p, Bytes::from_static(b"v2").into(), update).await.unwrap_err();
    assert!(matches!(err, object_store::Error::Precondition { .. }), "{err:?}");
    assert_eq!(inner.get(&p).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"v2"), "the update landed");
}

#[tokio::test]
async fn random_faults_fail_calls_transiently_and_make_held_creates_ambiguous() {
    let (fs, inner) = store(1);
    fs.random_faults(RandomFaults { transient: 0.3, ambiguous: 1.0 }, 5);
    let p = Path::from("x");
    let mut failures = 0;
    for _ in 0..40 {
        if fs.get(&p).await.is_err_and(|e| matches!(e, object_store::Error::Generic { .. })) {
            failures += 1;
        }
    }
    assert!(failures > 0 && failures < 40, "some calls fail transiently: {failures} of 40");
    assert_eq!(fs.injected().transient, failures);

    // A held create decided ambiguous lands when released and reports AlreadyExists.
    fs.random_faults(RandomFaults { transient: 0.0, ambiguous: 1.0 }, 5);
    fs.hold_prefix("wal/");
    let w = Path::from("wal/1");
    let put = tokio::spawn({
        let fs = fs.clone();
        let w = w.clone();
        async move { fs.put_opts(&w, Bytes::from_static(b"1").into(), create()).await }
    });
    while fs.held().is_empty() {
        tokio::task::yield_now().await;
    }
    assert!(fs.release(&w).await);
    assert!(matches!(put.await.unwrap(), Err(object_store::Error::AlreadyExists { .. })));
    assert!(inner.head(&w).await.is_ok(), "the create landed");
    assert_eq!(fs.injected().ambiguous, vec![(w, "")]);
    // An unconditional put is never ambiguous.
    assert!(fs.put(&Path::from("y"), Bytes::new().into()).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn delayed_reads_take_seeded_time_on_the_paused_clock_and_fail_after_a_crash() {
    let elapsed = |seed: u64| async move {
        let (fs, inner) = store(1);
        let p = Path::from("a");
        inner.put(&p, Bytes::from_static(b"x").into()).await.unwrap();
        fs.delay_reads(Duration::from_millis(2), seed);
        let start = tokio::time::Instant::now();
        let mut each = Vec::new();
        for _ in 0..8 {
            let t = tokio::time::Instant::now();
            assert_eq!(fs.get(&p).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"x"));
            assert_eq!(fs.get_range(&p, 0..1).await.unwrap(), Bytes::from_static(b"x"));
            assert_eq!(fs.list(None).collect::<Vec<_>>().await.len(), 1);
            each.push(t.elapsed());
        }
        (start.elapsed(), each)
    };
    let (total, each) = elapsed(7).await;
    assert!(total > Duration::from_millis(8), "24 reads of up to 2 ms each took {total:?}");
    assert!(each.iter().all(|d| *d <= Duration::from_millis(6)), "each read waits at most 2 ms: {each:?}");
    assert_eq!(elapsed(7).await, (total, each.clone()), "the same seed, the same delays");
    assert_ne!(elapsed(8).await.1, each, "another seed, other delays");

    // A read whose delay spans a crash fails.
    let (fs, inner) = store(1);
    let p = Path::from("a");
    inner.put(&p, Bytes::from_static(b"x").into()).await.unwrap();
    fs.delay_reads(Duration::from_millis(50), 3);
    let read = tokio::spawn({
        let fs = fs.clone();
        async move { fs.get(&p).await.map(|_| ()) }
    });
    tokio::task::yield_now().await;
    fs.crash().await;
    assert!(read.await.unwrap().is_err(), "a read delayed past the crash fails");
}

#[tokio::test]
async fn crash_fails_every_later_call_and_settles_held_uploads_by_seed() {
    let mut outcomes = Vec::new();
    for seed in 0..16 {
        let (fs, inner) = store(seed);
        fs.hold_prefix("wal/");
        let put = tokio::spawn({
            let fs = fs.clone();
            async move { fs.put_opts(&Path::from("wal/1"), Bytes::from_static(b"1").into(), create()).await }
        });
        while fs.held().is_empty() {
            tokio::task::yield_now().await;
        }
        fs.crash_at(fs.ops() + 1);
        assert!(fs.get(&Path::from("x")).await.is_err(), "the crashing op fails");
        assert!(fs.is_crashed());
        assert!(put.await.unwrap().is_err(), "the crashed caller never sees success");
        assert!(fs.list(None).next().await.unwrap().is_err());
        outcomes.push(inner.head(&Path::from("wal/1")).await.is_ok());
    }
    assert!(outcomes.contains(&true) && outcomes.contains(&false), "both fates occur: {outcomes:?}");
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{what} never happened");
}

#[tokio::test]
async fn a_held_listing_shows_the_store_as_it_was_asked() {
    let (fs, inner) = store(1);
    inner.put(&Path::from("wal/1"), Bytes::from_static(b"1").into()).await.unwrap();
    fs.hold_listings("wal");
    let listing = tokio::spawn({
        let fs = fs.clone();
        async move { fs.list(Some(&Path::from("wal"))).try_collect::<Vec<_>>().await }
    });
    until("the listing is held", || fs.held_requests().len() == 1).await;
    let held = fs.held_requests().remove(0);
    assert_eq!((held.kind, held.path.as_ref()), (HeldKind::Listing, "wal"));
    assert!(fs.held().is_empty(), "`held` names uploads only");
    // An object lands while the listing's answer is in flight: it is not in it.
    inner.put(&Path::from("wal/2"), Bytes::from_static(b"2").into()).await.unwrap();
    assert!(fs.release_request(held.id).await);
    let listed: Vec<String> = listing.await.unwrap().unwrap().into_iter().map(|m| m.location.to_string()).collect();
    assert_eq!(listed, vec!["wal/1"]);
    // Other prefixes are not held.
    assert_eq!(fs.list(Some(&Path::from("manifest"))).collect::<Vec<_>>().await.len(), 0);
}

#[tokio::test]
async fn a_held_read_sees_what_landed_before_its_release_and_a_crash_fails_it() {
    let (fs, inner) = store(1);
    fs.hold_reads("manifest/");
    let p = Path::from("manifest/1");
    let read = tokio::spawn({
        let (fs, p) = (fs.clone(), p.clone());
        async move { fs.get(&p).await.map(|_| ()) }
    });
    until("the read is held", || fs.held_requests().len() == 1).await;
    inner.put(&p, Bytes::from_static(b"m").into()).await.unwrap();
    let id = fs.held_requests()[0].id;
    assert!(fs.release_request(id).await);
    assert!(read.await.unwrap().is_ok(), "the read went to the store after the object landed");

    let read = tokio::spawn({
        let fs = fs.clone();
        async move { fs.head(&p).await.map(|_| ()) }
    });
    until("the head is held", || fs.held_requests().len() == 1).await;
    fs.crash().await;
    assert!(read.await.unwrap().is_err(), "a read held past a crash fails");
}

#[tokio::test(start_paused = true)]
async fn listings_and_heads_show_creation_times_on_the_given_clock() {
    let inner: StdArc<dyn ObjectStore> = Arc::new(InMemory::new());
    let times = CreationTimes::new();
    let clock = || -> StdArc<dyn Clock> { StdArc::new(crate::clock::TokioClock::starting_at(1_000_000)) };
    let a = FaultStore::new(inner.clone(), 1).with_clock(clock(), times.clone());
    a.hold_prefix("sst/");
    let p = Path::from("sst/1");
    let put = tokio::spawn({
        let (a, p) = (a.clone(), p.clone());
        async move { a.put_opts(&p, Bytes::from_static(b"s").into(), create()).await }
    });
    until("the upload is held", || a.held().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(a.release(&p).await);
    put.await.unwrap().unwrap();
    assert_eq!(times.get(&p), Some(1_000_040), "stamped when it landed, not when it was asked");
    // Another process's store over the same inner store sees the same time.
    let b = FaultStore::new(inner.clone(), 2).with_clock(clock(), times.clone());
    let ms = |m: &ObjectMeta| m.last_modified.timestamp_millis();
    let listed: Vec<ObjectMeta> = b.list(Some(&Path::from("sst"))).try_collect().await.unwrap();
    assert_eq!(listed.iter().map(ms).collect::<Vec<_>>(), vec![1_000_040]);
    assert_eq!(ms(&b.head(&p).await.unwrap()), 1_000_040);
    assert_eq!(times.under("sst/"), vec![(p.clone(), 1_000_040)]);
    // A store without a clock shows the inner store's (wall-clock) time.
    assert_ne!(ms(&inner.head(&p).await.unwrap()), 1_000_040);
}

#[tokio::test]
async fn a_listing_that_passed_its_verdict_before_a_crash_fails_instead_of_waiting() {
    // On a store with real latency the inner listing may still be running
    // when the crash comes; what it then holds must fail, not wait for a
    // release that never comes.
    let (fs, _inner) = store(1);
    fs.hold_listings("db");
    fs.crash().await;
    let listing = fs.listing(Some(Path::from("db")));
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), listing.into_future()).await;
    let (item, _) = first.expect("the listing answers at once");
    assert!(item.expect("one item").is_err(), "the crash fails the listing");
    assert!(fs.held().is_empty(), "nothing is held after a crash");
}
