//! Hedged WAL uploads (issue 16) through a whole `Db`: a straggling create is
//! answered by its hedge, and a hedge that finds its own first attempt
//! (`AlreadyExists`) is read back and resolved as ours, not as fenced.

use std::time::Duration;

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tidemark::{HedgeSettings, internals::store::HedgeStore};
use tidemark::internals::protocol::Protocol;
use tidemark::internals::sync::StdArc;
use tidemark::testing::PacedStore;
use tidemark::{Db, Error, Settings};

const SLOW: Duration = Duration::from_secs(1);

fn stores() -> (StdArc<PacedStore>, StdArc<dyn ObjectStore>) {
    let inner: StdArc<dyn ObjectStore> = StdArc::new(InMemory::new());
    (StdArc::new(PacedStore::new(inner.clone())), inner)
}

/// Hedges after exactly `ms`, whatever the recent latencies.
fn hedge_after(ms: u64) -> HedgeSettings {
    let d = Duration::from_millis(ms);
    HedgeSettings { budget: 0.1, min_delay: d, max_delay: d }
}

fn settings() -> Settings {
    Settings::default().with_hedge(hedge_after(50)).with_compactor(false).with_gc_interval(Duration::ZERO)
}

fn create() -> PutOptions {
    PutOptions { mode: PutMode::Create, ..Default::default() }
}

#[tokio::test(start_paused = true)]
async fn hedge_store_answers_a_straggler_with_its_hedge() {
    let (paced, inner) = stores();
    paced.pace("wal/", SLOW, Duration::ZERO, 1);
    let store = HedgeStore::new(paced, hedge_after(50));
    let start = tokio::time::Instant::now();
    store.put_opts(&Path::from("wal/1.sst"), PutPayload::from_static(b"x"), create()).await.expect("create");
    assert_eq!(start.elapsed(), Duration::from_millis(50), "the hedge, sent at 50 ms, answers at once");
    let c = store.stats().counts();
    assert_eq!((c.creates, c.create_hedges, c.create_hedges_won), (1, 1, 1));
    assert!(inner.head(&Path::from("wal/1.sst")).await.is_ok(), "the hedge landed");
}

#[tokio::test(start_paused = true)]
async fn hedge_store_budget_bounds_hedges_and_zero_turns_them_off() {
    let (paced, _) = stores();
    paced.pace("w/", SLOW, Duration::ZERO, 1000);
    let store = HedgeStore::new(paced.clone(), hedge_after(50));
    for i in 0..100 {
        let _ = store.put_opts(&Path::from(format!("w/{i}")), PutPayload::from_static(b"x"), create()).await;
    }
    let c = store.stats().counts();
    // A full bucket of 8 hedges to start with and a tenth of one per
    // create: at most 18 hedges for 100 creates.
    assert!((16..=18).contains(&c.create_hedges), "{c:?}");

    let off = HedgeStore::new(paced, HedgeSettings::off());
    let start = tokio::time::Instant::now();
    off.put_opts(&Path::from("w/off"), PutPayload::from_static(b"x"), create()).await.expect("create");
    assert_eq!(start.elapsed(), SLOW);
    assert_eq!(off.stats().counts().create_hedges, 0);
}

#[tokio::test(start_paused = true)]
async fn hedge_store_never_hedges_overwrites() {
    let (paced, _) = stores();
    paced.pace("m/", SLOW, Duration::ZERO, 1);
    let store = HedgeStore::new(paced, hedge_after(50));
    store.put(&Path::from("m/1"), PutPayload::from_static(b"x")).await.expect("overwrite");
    assert_eq!(store.stats().counts().create_hedges, 0);
}

/// The first attempt lands at once but its reply takes 1 s. The hedge,
/// sent at 50 ms, finds the object: `AlreadyExists`. The writer reads it
/// back, finds its own token (`resolve_create_conflict`: ours) and
/// acknowledges at about 50 ms instead of 1 s.
#[tokio::test(start_paused = true)]
async fn a_hedge_that_finds_its_own_wal_acknowledges_it() {
    let (paced, inner) = stores();
    let db = Db::open_with("db", paced.clone(), settings()).await.expect("open");
    paced.pace("db/wal/", Duration::ZERO, SLOW, 1);
    let start = tokio::time::Instant::now();
    db.put("k", "v").await.expect("durable");
    assert!(start.elapsed() < Duration::from_millis(200), "acknowledged after {:?}", start.elapsed());
    let c = db.hedge_counts();
    assert_eq!((c.create_hedges, c.create_hedges_won), (1, 1), "{c:?}");
    drop(db);
    let db = Db::open_with("db", inner, settings()).await.expect("reopen");
    assert_eq!(db.get("k").await.expect("get").as_deref(), Some(&b"v"[..]));
}

/// The same schedule under the mutant `exists-is-fenced`: the writer takes
/// its own WAL for a newer writer's and reports the write as fenced, yet the
/// write is durable. This is the lie the checkers must catch (issue 14).
#[tokio::test(start_paused = true)]
async fn exists_is_fenced_reports_a_durable_write_as_fenced() {
    let (paced, inner) = stores();
    let db = Db::open_with("db", paced.clone(), settings().with_protocol(Protocol::ExistsIsFenced)).await.expect("open");
    paced.pace("db/wal/", Duration::ZERO, SLOW, 1);
    let got = db.put("k", "v").await;
    assert!(matches!(got, Err(Error::Fenced { .. })), "{got:?}");
    drop(db);
    let db = Db::open_with("db", inner, settings()).await.expect("reopen");
    assert_eq!(db.get("k").await.expect("get").as_deref(), Some(&b"v"[..]), "the 'fenced' write is durable");
}
