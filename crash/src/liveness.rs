//! Liveness checks (issue 14): after every recovery the new writer makes
//! progress within a bound, and openers that race all finish, all but one
//! fenced, within a bound. On the paused clock a bound is virtual time: a
//! writer that can never flush (the old SST naming, `sst-names-without-epoch`)
//! or whose upload window never frees (`window-never-freed`) runs into it at
//! no real cost, and the seed replays exactly.

use std::time::Duration;

use bytes::Bytes;
use object_store::ObjectStore;
use tidemark::internals::sync::Arc;
use tidemark::internals::trace::MemoryRecorder;
use tidemark::Error;

use crate::db_api as api;
use crate::config::Config;

/// How long a recovered writer may take for its durable puts, an L0 flush
/// and a manifest write (the harness's uploads land at once after a
/// recovery; the flushers wake every few milliseconds).
pub const PROGRESS_BOUND: Duration = Duration::from_secs(10);
/// How long racing openers may take, all together, to open and try a put.
pub const RACE_BOUND: Duration = Duration::from_secs(30);

/// Keys the probes write: outside every writer's range and the shared keys.
fn probe_key(i: usize) -> Bytes {
    Bytes::from(format!("live/{i:03}"))
}

/// The recovered writer makes `W + 1` durable puts one after another (its
/// window of W uploads must free as uploads complete), then one put larger
/// than a memtable, whose `FlushL0` and `WriteManifest` must follow: the
/// manifest's `replay_after_wal_id` must reach the put's WAL.
pub async fn progress(db: &api::Db, max_inflight: usize, l0_sst_size: usize) -> Result<(), String> {
    let work = async {
        for i in 0..max_inflight + 1 {
            api::write(db, vec![(probe_key(i), api::Write::Put(Bytes::from_static(b"p"), tidemark::Ttl::Default))], true)
                .await
                .map_err(|e| format!("durable put {i} of the recovered writer failed: {e}"))?;
        }
        let big = Bytes::from(vec![b'x'; l0_sst_size + 1]);
        api::write(db, vec![(probe_key(999), api::Write::Put(big, tidemark::Ttl::Default))], true)
            .await
            .map_err(|e| format!("the recovered writer's memtable-sized put failed: {e}"))?;
        let target = db.durable_wal_id();
        loop {
            if db.manifest().await.replay_after_wal_id >= target {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    match tokio::time::timeout(PROGRESS_BOUND, work).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the recovered writer (epoch {}) did not make {} durable puts, flush its memtable to L0 and write a manifest within {PROGRESS_BOUND:?} (durable_wal_id {}, manifest replay_after_wal_id {})",
            db.writer_epoch(),
            max_inflight + 2,
            db.durable_wal_id(),
            db.manifest().await.replay_after_wal_id,
        )),
    }
}

/// Whether `e` says the writer was fenced (directly, or as the cause of an
/// unknown outcome).
fn is_fenced(e: &Error) -> bool {
    match e {
        Error::Fenced { .. } => true,
        Error::OutcomeUnknown { cause } => is_fenced(cause),
        _ => false,
    }
}

/// What a race of openers came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaceOutcome {
    pub openers: usize,
    pub fenced: usize,
}

/// `n` processes open the store at once; each that opens tries a durable
/// put. Every one must finish within [`RACE_BOUND`]; exactly one put
/// succeeds, that of the newest epoch that opened, and every other opener is
/// fenced (its open or its put fails with `Fenced`). The winner then closes.
pub async fn race(
    store: &Arc<dyn ObjectStore>,
    cfg: &Config,
    recorder: &MemoryRecorder,
    n: usize,
    clock: Arc<dyn tidemark::Clock>,
) -> Result<RaceOutcome, String> {
    let work = async {
        let opens = (0..n).map(|_| api::open(store.clone(), cfg, recorder, clock.clone()));
        let opened = futures::future::join_all(opens).await;
        let mut fenced = 0;
        let mut dbs = Vec::new();
        for (i, o) in opened.into_iter().enumerate() {
            match o {
                Ok(db) => dbs.push((i, db)),
                Err(e) if is_fenced(&e) => fenced += 1,
                Err(e) => return Err(format!("racing opener {i} of {n} failed, not fenced: {e}")),
            }
        }
        let puts = dbs.iter().map(|(i, db)| {
            api::write(db, vec![(probe_key(500 + i), api::Write::Put(Bytes::from_static(b"race"), tidemark::Ttl::Default))], true)
        });
        let put = futures::future::join_all(puts).await;
        let newest = dbs.iter().map(|(_, db)| db.writer_epoch()).max();
        let mut winners = Vec::new();
        for ((i, db), r) in dbs.iter().zip(put) {
            match r {
                Ok(()) => winners.push((i, db)),
                Err(e) if is_fenced(&e) => fenced += 1,
                Err(e) => return Err(format!("racing opener {i} of {n} (epoch {}): put failed, not fenced: {e}", db.writer_epoch())),
            }
        }
        match winners.as_slice() {
            [(_, db)] if Some(db.writer_epoch()) == newest => {
                api::close_ref(db).await.map_err(|e| format!("the winner of {n} racing openers failed to close: {e}"))?;
            }
            _ => {
                let epochs: Vec<u64> = winners.iter().map(|(_, db)| db.writer_epoch()).collect();
                return Err(format!(
                    "{n} racing openers: the puts of epochs {epochs:?} succeeded; exactly one, of the newest epoch {newest:?}, may"
                ));
            }
        }
        Ok(RaceOutcome { openers: n, fenced })
    };
    match tokio::time::timeout(RACE_BOUND, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("{n} racing openers did not all open (or get fenced) and try a put within {RACE_BOUND:?}")),
    }
}
