//! Merge operands and time-to-live through the whole engine: memtables, WAL
//! replay, L0 flushes, compactions and reopens, judged against a model that
//! replays each key's history at the read's time (an expired put acts as a
//! delete where it stands; merges after it fold onto nothing).
#![cfg(not(loom))]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tidemark::internals::sync::StdArc as Arc;
use tidemark::{Clock, Concat, Db, Error, PutOptions, Settings, TokioClock, Ttl, WriteBatch, WriteOptions};

/// One write to a key, as the model keeps it.
#[derive(Clone, Debug)]
enum Write {
    Put(Bytes, Option<u64>),
    Delete,
    Merge(Bytes),
}

/// Every key's writes in order, replayed at a time.
#[derive(Clone, Debug, Default)]
struct Model(BTreeMap<Bytes, Vec<Write>>);

impl Model {
    fn value(&self, key: &Bytes, now_ms: u64) -> Option<Bytes> {
        let mut v: Option<Bytes> = None;
        for w in self.0.get(key).into_iter().flatten() {
            v = match w {
                Write::Put(x, exp) if exp.map_or(true, |e| now_ms < e) => Some(x.clone()),
                Write::Put(..) | Write::Delete => None,
                Write::Merge(o) => Some([v.as_deref().unwrap_or_default(), o.as_ref()].concat().into()),
            };
        }
        v
    }

    fn state(&self, now_ms: u64) -> BTreeMap<Bytes, Bytes> {
        self.0.keys().filter_map(|k| self.value(k, now_ms).map(|v| (k.clone(), v))).collect()
    }
}

/// Tiny memtables and SSTs, so a short workload flushes and compacts often.
fn settings(clock: &TokioClock) -> Settings {
    plant(clock, |_| {})
}

/// [`settings`] with `mutate` applied (a planted mutant).
fn plant(clock: &TokioClock, mutate: impl Fn(&mut Settings)) -> Settings {
    let mut s = base(clock);
    mutate(&mut s);
    s
}

fn base(clock: &TokioClock) -> Settings {
    Settings::default()
        .with_l0_sst_size_bytes(1024)
        .with_max_unflushed_bytes(16 << 10)
        .with_l0_max_ssts(3)
        .with_compacted_sst_size_bytes(2048)
        .with_merge_operator(Arc::new(Concat))
        .with_clock(Arc::new(*clock))
}

/// Gets and scans both ways against the model at `now_ms`.
async fn check(db: &Db, model: &Model, now_ms: u64, what: &str) -> Result<(), String> {
    let want = model.state(now_ms);
    let scanned: BTreeMap<Bytes, Bytes> = db.scan(..).await.unwrap().collect_vec().await.unwrap().into_iter().collect();
    if scanned != want {
        return Err(format!("{what}: scan at {now_ms} gave {scanned:?}, the model {want:?}"));
    }
    let mut rev = db.scan_rev(..).await.unwrap().collect_vec().await.unwrap();
    rev.reverse();
    if rev != want.clone().into_iter().collect::<Vec<_>>() {
        return Err(format!("{what}: reverse scan at {now_ms} gave {rev:?}"));
    }
    for k in model.0.keys() {
        let got = db.get(k).await.unwrap();
        if got != want.get(k).cloned() {
            return Err(format!("{what}: get {k:?} at {now_ms} gave {got:?}, the model {:?}", want.get(k)));
        }
    }
    Ok(())
}

/// Random puts (some expiring), deletes, merges and mixed batches over few
/// keys, on tokio's paused clock so expiry is exact; time moves in whole
/// seconds and TTLs end on half seconds, so no read meets an expiry
/// boundary. Gets, scans both ways and a held snapshot agree with the model
/// after flushes, compactions, clean reopens and crashes.
#[tokio::test(start_paused = true)]
async fn merges_and_ttls_agree_with_the_model_across_flushes_compactions_and_reopens() {
    for seed in 0..3u64 {
        workload(seed, |_| {}).await.unwrap();
    }
}

/// The workload above must catch each compaction mutant on one of a few seeds.
#[cfg(feature = "mutants")]
#[tokio::test(start_paused = true)]
async fn the_model_catches_compactions_that_drop_operands_or_let_expired_values_vanish() {
    let mutants: [(&str, fn(&mut Settings)); 2] = [
        ("compaction-drops-operands", |s| s.compaction_drops_operands = true),
        ("expired-values-vanish", |s| s.expired_values_vanish = true),
    ];
    for (name, mutate) in mutants {
        let mut caught = None;
        for seed in 0..3u64 {
            if let Err(e) = workload(seed, mutate).await {
                caught = Some(e);
                break;
            }
        }
        assert!(caught.is_some(), "{name} went uncaught");
    }
}

async fn workload(seed: u64, mutate: fn(&mut Settings)) -> Result<(), String> {
    {
        let mut rng = StdRng::seed_from_u64(seed);
        let clock = TokioClock::new();
        let settings = |clock: &TokioClock| plant(clock, mutate);
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut db = Db::open_with("db", store.clone(), settings(&clock)).await.unwrap();
        let mut model = Model::default();
        let mut held: Option<(tidemark::Snapshot, Model)> = None;
        let keys: Vec<Bytes> = (0..24).map(|i| Bytes::from(format!("key{i:02}"))).collect();
        for step in 0..600u32 {
            let mut batch = WriteBatch::new();
            let mut writes = Vec::new();
            let n = if rng.random_ratio(1, 10) { 3 } else { 1 };
            for i in 0..n {
                let key = keys[rng.random_range(0..keys.len())].clone();
                let roll = rng.random_range(0..100);
                let now = clock.now_ms();
                let w = if roll < 30 {
                    let v = Bytes::from(format!("v{step}.{i}-{}", "x".repeat(rng.random_range(0..80))));
                    batch.put(key.clone(), v.clone());
                    Write::Put(v, None)
                } else if roll < 50 {
                    let v = Bytes::from(format!("t{step}.{i}"));
                    let ttl = Duration::from_millis(500 + 1000 * rng.random_range(0..4));
                    batch.put_with(key.clone(), v.clone(), PutOptions { ttl: Ttl::ExpireAfter(ttl) });
                    Write::Put(v, Some(now + ttl.as_millis() as u64))
                } else if roll < 60 {
                    batch.delete(key.clone());
                    Write::Delete
                } else {
                    let o = Bytes::from(format!("+{step}.{i}"));
                    batch.merge(key.clone(), o.clone());
                    Write::Merge(o)
                };
                writes.push((key, w));
            }
            db.write(batch).await.unwrap();
            for (k, w) in writes {
                model.0.entry(k).or_default().push(w);
            }
            if step % 20 == 19 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = clock.now_ms();
                check(&db, &model, now, &format!("seed {seed} step {step}")).await?;
                if let Some((snap, at)) = &held {
                    let got: BTreeMap<Bytes, Bytes> = snap.scan(..).await.unwrap().collect_vec().await.unwrap().into_iter().collect();
                    if got != at.state(now) {
                        return Err(format!("seed {seed} step {step}: a snapshot read {got:?}, its model {:?}", at.state(now)));
                    }
                }
                held = rng.random_ratio(1, 3).then(|| (db.snapshot(), model.clone()));
            }
            if step % 150 == 149 {
                held = None;
                if rng.random_bool(0.5) {
                    db.close().await.unwrap();
                } else {
                    db.flush().await.unwrap();
                    drop(db); // a crash after everything was durable
                }
                db = Db::open_with("db", store.clone(), settings(&clock)).await.unwrap();
                check(&db, &model, clock.now_ms(), &format!("seed {seed} reopened at step {step}")).await?;
            }
        }
        // Compaction into the bottom run folds operands and drops what
        // expired; the state stays the model's.
        let m = db.manifest().await;
        assert!(!m.runs.is_empty(), "seed {seed}: the workload compacted L0 into sorted runs");
        tokio::time::sleep(Duration::from_secs(10)).await;
        check(&db, &model, clock.now_ms(), &format!("seed {seed} after every TTL")).await?;
        db.close().await.unwrap();
    }
    Ok(())
}

/// An expired value hides the older value under it, in memory and after a
/// compaction has met it in every layer.
#[tokio::test(start_paused = true)]
async fn an_expired_value_never_lets_an_older_one_reappear() {
    let clock = TokioClock::new();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = Db::open_with("db", store.clone(), settings(&clock)).await.unwrap();
    db.put("k", "old").await.unwrap();
    db.flush().await.unwrap();
    let short = PutOptions { ttl: Ttl::ExpireAfter(Duration::from_secs(1)) };
    db.put_with_options("k", "new", &short, &WriteOptions::default()).await.unwrap();
    db.merge("k", "+m").await.unwrap();
    assert_eq!(db.get("k").await.unwrap().as_deref(), Some(&b"new+m"[..]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(db.get("k").await.unwrap().as_deref(), Some(&b"+m"[..]), "operands outlive the value they were merged onto");
    db.delete("k").await.unwrap();
    db.put_with_options("k", "gone", &short, &WriteOptions::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(db.get("k").await.unwrap(), None);
    // Push the key through flushes and compactions with filler.
    for i in 0..400u32 {
        db.put(format!("f{i:04}"), "y".repeat(100)).await.unwrap();
    }
    db.close().await.unwrap();
    let db = Db::open_with("db", store, settings(&clock)).await.unwrap();
    assert!(!db.manifest().await.runs.is_empty(), "the key went through a compaction");
    assert_eq!(db.get("k").await.unwrap(), None);
    assert_eq!(db.scan_prefix("k").await.unwrap().collect_vec().await.unwrap(), vec![]);
    db.close().await.unwrap();
}

#[tokio::test]
async fn the_default_ttl_applies_unless_a_put_says_otherwise() {
    let clock = TokioClock::new();
    tokio::time::pause();
    let s = settings(&clock).with_default_ttl(Duration::from_secs(60));
    let db = Db::open_with("db", Arc::new(InMemory::new()), s).await.unwrap();
    db.put("default", "d").await.unwrap();
    let forever = PutOptions { ttl: Ttl::NoExpiry };
    db.put_with_options("forever", "f", &forever, &WriteOptions::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(db.get("default").await.unwrap(), None);
    assert_eq!(db.get("forever").await.unwrap().as_deref(), Some(&b"f"[..]));
    db.close().await.unwrap();
}

#[tokio::test]
async fn absurd_ttls_and_merges_without_an_operator_are_refused() {
    let db = Db::open_url("memory://", Settings::default()).await.unwrap();
    let century = PutOptions { ttl: Ttl::ExpireAfter(Duration::from_secs(200 * 365 * 24 * 3600)) };
    let err = db.put_with_options("k", "v", &century, &WriteOptions::default()).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidArgument(m) if m.contains("ttl")), "{err}");
    let err = db.merge("k", "+1").await.unwrap_err();
    assert!(matches!(&err, Error::InvalidArgument(m) if m.contains("merge operator")), "{err}");
    assert_eq!(db.get("k").await.unwrap(), None, "nothing of the refused writes landed");
    db.close().await.unwrap();
    let bad = Settings::default().with_default_ttl(Duration::ZERO);
    assert!(matches!(Db::open_url("memory://", bad).await, Err(Error::InvalidArgument(_))));
}

/// Operands written with an operator and read without one: a clear error
/// naming the key, never a wrong value.
#[tokio::test]
async fn a_reader_without_the_operator_gets_an_error_not_a_wrong_value() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let with = Settings::default().with_merge_operator(Arc::new(Concat));
    let db = Db::open_with("db", store.clone(), with.clone()).await.unwrap();
    db.put("plain", "p").await.unwrap();
    db.merge("counter", "+1").await.unwrap();
    db.close().await.unwrap();
    let db = Db::open_with("db", store.clone(), Settings::default()).await.unwrap();
    assert_eq!(db.get("plain").await.unwrap().as_deref(), Some(&b"p"[..]));
    let err = db.get("counter").await.unwrap_err();
    assert!(matches!(&err, Error::InvalidArgument(m) if m.contains("counter") && m.contains("merge operator")), "{err}");
    assert!(db.scan(..).await.unwrap().collect_vec().await.is_err());
    drop(db);
    let db = Db::open_with("db", store.clone(), with.clone()).await.unwrap();
    assert_eq!(db.get("counter").await.unwrap().as_deref(), Some(&b"+1"[..]));
    // Operands in WALs still to replay: a writer's open refuses (its first
    // flush could not fold them); a read-only open replays them and fails
    // only the read of the key.
    db.merge("counter", "+2").await.unwrap();
    drop(db);
    let err = Db::open_with("db", store.clone(), Settings::default()).await.err().expect("refused");
    assert!(matches!(&err, Error::InvalidArgument(m) if m.contains("merge operator")), "{err}");
    let ro = Db::open_read_only("db", store.clone()).await.unwrap();
    assert_eq!(ro.get("plain").await.unwrap().as_deref(), Some(&b"p"[..]));
    assert!(matches!(ro.get("counter").await, Err(Error::InvalidArgument(_))));
    let db = Db::open_with("db", store, with).await.unwrap();
    assert_eq!(db.get("counter").await.unwrap().as_deref(), Some(&b"+1+2"[..]));
    db.close().await.unwrap();
}

/// A follower on another handle folds the writer's operands and judges
/// expiry on its own clock, from WAL replay and from SSTs alike.
#[tokio::test(start_paused = true)]
async fn a_follower_folds_operands_and_hides_expired_values() {
    let clock = TokioClock::new();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let db = Db::open_with("db", store.clone(), settings(&clock)).await.unwrap();
    db.put("base", "b").await.unwrap();
    for i in 0..300u32 {
        db.put(format!("f{i:04}"), "y".repeat(100)).await.unwrap(); // into L0 and runs
    }
    db.merge("base", "+1").await.unwrap();
    let short = PutOptions { ttl: Ttl::ExpireAfter(Duration::from_millis(1500)) };
    db.put_with_options("lease", "held", &short, &WriteOptions::default()).await.unwrap();
    let opts = tidemark::ReaderOptions { poll_interval: None, settings: settings(&clock), ..Default::default() };
    let reader = tidemark::DbReader::open("db", store, opts).await.unwrap();
    db.merge("base", "+2").await.unwrap();
    reader.poll().await.unwrap();
    assert_eq!(reader.get("base").await.unwrap().as_deref(), Some(&b"b+1+2"[..]));
    assert_eq!(reader.get("lease").await.unwrap().as_deref(), Some(&b"held"[..]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reader.get("lease").await.unwrap(), None);
    db.close().await.unwrap();
}
