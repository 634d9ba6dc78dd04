//! Readers in a schedule, and the rule that judges a read that failed.
//!
//! Every read is checked by the oracle; a read that fails must be
//! explained: by its process's crash, by a fault the store injected, or by
//! the end of its lease (spec, section 9: GC keeps a manifest version, and
//! everything it needs, until its successor is `gc_min_age` old). A view
//! inside its own process is protected by that process's pins, which hold
//! against its own GC; another process's GC (a zombie beside its successor)
//! knows only the lease. Any other failed read is a violation: GC deleted
//! something a reader needed, or the engine failed without cause.

use std::time::Duration;

use tidemark::testing::{CreationTimes, FaultStore};
use tidemark::Clock;

use crate::clock::ScheduleClock;
use crate::db_api as api;
use crate::oracle::{State, Window};
use crate::schedule::Histories;
use crate::workload;
use tidemark::internals::sync::lock;

/// How long what a view reads is safe from GC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    /// Its process's pins protect it, and no other process collects
    /// garbage while it lives: a failed read is never explained by GC.
    Pinned,
    /// It reads manifest `version`: safe until the version's successor is
    /// `gc_min_age` old.
    Version(u64),
}

/// When leases end: the creation times the fault stores recorded, on the
/// schedule's clock, and the schedule's `gc_min_age`.
#[derive(Clone, Debug)]
pub struct Leases {
    pub times: CreationTimes,
    pub min_age: Duration,
    pub clock: ScheduleClock,
}

impl Leases {
    /// Manifest versions and their creation times, ascending.
    fn versions(&self) -> Vec<(u64, u64)> {
        let prefix = format!("{}/manifest/", api::ROOT);
        let mut v: Vec<(u64, u64)> =
            self.times.under(&prefix).iter().filter_map(|(p, t)| Some((api::parse_manifest(p)?, *t))).collect();
        v.sort_unstable();
        v
    }

    /// The newest manifest version created so far (0: none).
    pub fn latest_version(&self) -> u64 {
        self.versions().last().map_or(0, |(v, _)| *v)
    }

    /// Whether `lease` still held at `at` (ms on the schedule clock).
    pub fn holds(&self, lease: Lease, at: u64) -> bool {
        match lease {
            Lease::Pinned => true,
            Lease::Version(v) => match self.versions().into_iter().find(|(w, _)| *w > v) {
                None => true,
                Some((_, superseded)) => at < superseded.saturating_add(self.min_age.as_millis() as u64),
            },
        }
    }
}

/// Whether `e` is a failure the fault store injected (every such error
/// names the store `FaultStore`, including a crash's).
pub fn injected(e: &tidemark::Error) -> bool {
    e.to_string().contains("FaultStore")
}

/// The invariant a failed read that nothing explains breaks: I7 when an
/// object it needed was deleted, `ReadSucceeds` for any other failure.
pub fn unexplained(e: &tidemark::Error, what: &str) -> (&'static str, String) {
    let gone = matches!(e, tidemark::Error::ObjectStore(object_store::Error::NotFound { .. }) | tidemark::Error::MissingWal { .. })
        || e.to_string().contains("not found");
    let invariant = if gone { "I7 NothingNeededDeleted" } else { "ReadSucceeds" };
    (invariant, format!("{what} failed within its lease, with no crash or injected fault to explain it: {e}"))
}

/// Judges a failed read through a view with `lease`, finished at `at`:
/// `None` if the failure is explained, else the violation.
pub fn judge(e: &tidemark::Error, crashed: bool, leases: &Leases, lease: Lease, at: u64, what: &str) -> Option<(&'static str, String)> {
    if crashed || injected(e) || !leases.holds(lease, at) {
        return None;
    }
    Some(unexplained(e, what))
}

/// A read-only handle of one live process: opens beside the writers, holds
/// its view while the writers write, flush, compact and collect, and reads
/// it `rounds + 1` times, `pause` apart (the first a `pause` after the
/// open). Each read checks a new third of the writers against the oracle
/// (`check_view`: the handle's block cache holds what it read, so only a
/// first read of an SST shows whether GC deleted it) and reads the ones
/// checked before again: the same state, or an error once its lease ended.
/// With `checkpointed`, the handle is a `DbReader` with a checkpoint of its
/// own: GC in any process must keep what it reads, so no failed read of it
/// is explained by GC (its lease is `Pinned`). It follows the writers: before
/// every second read it polls, and its new view is checked as an open's is
/// (every write acknowledged before the poll began, nothing issued after it
/// returned) and against its previous view (never older, I14); the read
/// after it sees the same view again.
pub(crate) async fn read_only_handle(
    store: FaultStore,
    wal_store: bool,
    checkpointed: Option<Option<crate::config::EngineMutant>>,
    histories: Histories,
    leases: Leases,
    rounds: usize,
    pause: Duration,
) {
    let clock = leases.clock.clone();
    let (began, since) = {
        let mut h = lock(&histories);
        (h.shared.tick(), leases.latest_version())
    };
    let shared: std::sync::Arc<dyn object_store::ObjectStore> = std::sync::Arc::new(store.clone());
    let opened = match checkpointed {
        None => api::open_read_only(shared, wal_store, std::sync::Arc::new(clock.clone())).await.map(api::ReadOnly::Plain),
        Some(mutant) => {
            let recorder = lock(&histories).recorder.clone();
            api::open_checkpointed(shared, wal_store, std::sync::Arc::new(clock.clone()), mutant, &recorder).await.map(api::ReadOnly::Checkpointed)
        }
    };
    let checkpointed = checkpointed.is_some();
    let ended = lock(&histories).shared.tick();
    let db = match opened {
        Ok(db) => db,
        Err(e) => {
            if let Some(v) = judge(&e, store.is_crashed(), &leases, Lease::Version(since), clock.now_ms(), "a read-only open") {
                lock(&histories).anomalies.push(v);
            }
            return;
        }
    };
    let lease = match checkpointed {
        false => Lease::Version(db.version().await),
        true => Lease::Pinned,
    };
    // The open walked the WAL chain within its lease if the version it read
    // was not superseded `gc_min_age` before it returned: then nothing it
    // read was deleted under it, and it saw every acknowledged write.
    let complete = leases.holds(lease, clock.now_ms());
    let writers = {
        let mut h = lock(&histories);
        h.injected.read_only_opens += 1;
        h.histories.len()
    };
    // What each writer's keys showed in the current view, as the oracle
    // state it is (each later read of the view is judged at its own time).
    let mut seen: Vec<Option<State>> = vec![None; writers];
    // The window of the current view, and the prefix of each writer's
    // history the reader's views have reached.
    let mut window = (began, ended);
    let mut reached = vec![0usize; writers];
    for round in 0..=rounds {
        tokio::time::sleep(pause).await;
        let polled = checkpointed && round % 2 == 0 && round > 0;
        if polled {
            let began = lock(&histories).shared.tick();
            if let Err(e) = db.poll().await {
                if let Some(v) = judge(&e, store.is_crashed(), &leases, lease, clock.now_ms(), "a follower's poll") {
                    lock(&histories).anomalies.push(v);
                }
                return;
            }
            let mut h = lock(&histories);
            window = (began, h.shared.tick());
            h.injected.follower_polls += 1;
            seen.iter_mut().for_each(|s| *s = None);
        }
        let due: Vec<usize> = (0..writers).filter(|w| polled || seen[*w].is_some() || w % (rounds + 1) == round).collect();
        for &w in &due {
            let start = clock.now_ms();
            let state = match db.scan_prefix(workload::key_prefix(w)).await {
                Ok(state) => state,
                Err(e) => {
                    let what = format!("a scan of writer {w}'s keys through a read-only handle");
                    if let Some(v) = judge(&e, store.is_crashed(), &leases, lease, clock.now_ms(), &what) {
                        lock(&histories).anomalies.push(v);
                    }
                    return;
                }
            };
            let read_window = Window::new(start, clock.now_ms());
            let mut h = lock(&histories);
            h.injected.read_only_reads += 1;
            match &mut seen[w] {
                None => {
                    let what = if polled { "following reader after a poll" } else { "read-only handle" };
                    match h.histories[w].check_follow(w, window, &state, complete, reached[w], read_window) {
                        Ok(view) => {
                            reached[w] = view.first;
                            seen[w] = Some(view.state);
                        }
                        Err(v) => {
                            h.anomalies.push((v.invariant(), format!("{what}: {v}")));
                            return;
                        }
                    }
                }
                Some(view) => match crate::oracle::compare(view, &state, read_window) {
                    None => crate::oracle::refine(view, &state, read_window),
                    Some(m) => {
                        h.anomalies.push((
                            m.invariant("ReadOnlyViewFixed"),
                            format!("a read-only handle's view of writer {w}'s keys changed between its reads (read {round}): {m}"),
                        ));
                        return;
                    }
                },
            }
        }
        if std::env::var_os("CRASH_DEBUG").is_some() {
            eprintln!(
                "  read-only handle: version {lease:?} read {round} at {} (latest {}, lease holds {}, sst deletions {})",
                clock.now_ms() - crate::clock::ORIGIN_MS,
                leases.latest_version(),
                leases.holds(lease, clock.now_ms()),
                leases.times.deletions_under(api::SST_PREFIX)
            );
        }
    }
    // Done: a follower drops its checkpoint (one manifest write), which
    // must succeed unless the process crashed or the store failed it.
    if let Err(e) = db.close().await {
        if !store.is_crashed() && !injected(&e) {
            lock(&histories).anomalies.push(("CloseSucceeds", format!("closing a read-only handle failed: {e}")));
        }
    }
}
