//! One writer of a live process: performs its operations in order,
//! recording each step before it is issued and its outcome after the call
//! returns, and checks every read it makes: live scans and gets against its
//! own history as the read began, and the snapshots and scans it holds
//! across later operations (and so across flushes, compactions and GC
//! passes) against its history as they were taken. Every read is judged at
//! its own window on the schedule clock (an expiring value must be visible
//! before its earliest expiry and gone after its latest, a held snapshot's
//! too); every write records the window its expiries were stamped in. A call that fails must
//! be explained by a crash, an injected fault, a fence (the zombie) or, for
//! a read, the end of its lease (`reads::judge`).

use std::collections::BTreeMap;

use bytes::Bytes;
use tidemark::internals::sync::{lock, Arc};
use tidemark::testing::FaultStore;
use tidemark::{DbIterator, Snapshot};

use crate::db_api as api;
use crate::oracle::{self, State, Window};
use crate::reads::{self, Lease, Leases};
use crate::schedule::Histories;
use crate::workload::{self, Op};

/// A writer task and what it needs to judge its calls.
pub(crate) struct WriterTask {
    pub(crate) db: Arc<api::Db>,
    pub(crate) process: usize,
    pub(crate) writer: usize,
    pub(crate) histories: Histories,
    /// The process's store (to tell whether it crashed).
    pub(crate) store: FaultStore,
    pub(crate) leases: Leases,
    /// Another process collects garbage beside this one (zombie mode): its
    /// views are safe only within their lease, not by this process's pins.
    pub(crate) beside: bool,
    /// This process is a zombie: a newer one takes over while it runs, so
    /// any of its calls may fail (fenced, or its WAL id taken).
    pub(crate) zombie: bool,
    /// How long the views are held after the last operation (`Config::linger`).
    pub(crate) linger: std::time::Duration,
    /// The process's `Settings::default_ttl` (what a `Ttl::Default` put gets).
    pub(crate) default_ttl: Option<std::time::Duration>,
}

/// A snapshot held across operations, with what it must show (judged at
/// each read's time, narrowed by what earlier reads showed).
struct HeldSnapshot {
    snap: Snapshot,
    expected: State,
    lease: Lease,
    deletions: u64,
}

/// A scan held across operations: it yields one entry per operation, each
/// judged at the time the scan began (`window`).
struct HeldScan {
    it: DbIterator,
    expected: State,
    window: Window,
    /// The last key it yielded, and how many it yielded.
    last: Option<Bytes>,
    seen: usize,
    lease: Lease,
    deletions: u64,
}

/// Whether the writer goes on after a call.
type Go = bool;

impl WriterTask {
    pub(crate) async fn run(self, plan: Vec<Op>) {
        let mut snapshot: Option<HeldSnapshot> = None;
        let mut scan: Option<HeldScan> = None;
        for op in plan {
            // The application does other work between calls: the flusher may
            // freeze between two fire-and-forget writes of one writer.
            tokio::task::yield_now().await;
            if let Some(s) = &mut scan {
                match self.advance(s).await {
                    Some(true) => {}
                    Some(false) => scan = None,
                    None => return,
                }
            }
            let go = match op {
                Op::Write { writes, await_durable } => self.write(writes, await_durable).await,
                Op::Flush => self.flush().await,
                Op::Scan => {
                    let held_ok = match &mut snapshot {
                        Some(s) => self.read_snapshot(s).await,
                        None => true,
                    };
                    held_ok && self.scan().await
                }
                Op::Get { key } => self.get(key).await,
                Op::Snapshot => {
                    let held_ok = match snapshot.take() {
                        Some(mut s) => self.read_snapshot(&mut s).await,
                        None => true,
                    };
                    snapshot = Some(self.take_snapshot());
                    held_ok
                }
                Op::Iterate => {
                    if let Some(mut s) = scan.take() {
                        if !self.drain(&mut s).await {
                            return;
                        }
                    }
                    match self.start_scan().await {
                        Some(s) => {
                            scan = Some(s);
                            true
                        }
                        None => false,
                    }
                }
            };
            if !go {
                return;
            }
        }
        // The plan is done: what it holds is read once more, after a while.
        if snapshot.is_some() || scan.is_some() {
            tokio::time::sleep(self.linger).await;
        }
        if let Some(s) = &mut snapshot {
            if !self.read_snapshot(s).await {
                return;
            }
        }
        if let Some(mut s) = scan {
            self.drain(&mut s).await;
        }
    }

    fn anomaly(&self, invariant: &'static str, detail: String) {
        lock(&self.histories).anomalies.push((invariant, detail));
    }

    /// A failed call of this writer: explained by a crash, an injected
    /// fault, or (a zombie's) a takeover; else a violation.
    fn write_failed(&self, e: &tidemark::Error, what: &str) {
        if !(self.zombie || self.store.is_crashed() || reads::injected(e)) {
            self.anomaly(
                "WriteSucceeds",
                format!("writer {}'s {what} failed with no crash, injected fault or newer writer to explain it: {e}", self.writer),
            );
        }
    }

    /// A failed read through a view with `lease` (see `reads::judge`).
    fn read_failed(&self, e: &tidemark::Error, lease: Lease, what: &str) {
        let what = format!("writer {}'s {what}", self.writer);
        if let Some((invariant, detail)) = reads::judge(e, self.store.is_crashed(), &self.leases, lease, self.now(), &what) {
            self.anomaly(invariant, detail);
        }
    }

    fn now(&self) -> u64 {
        use tidemark::Clock;
        self.leases.clock.now_ms()
    }

    /// A read's window: from `start` (read before the call) to now.
    fn window(&self, start: u64) -> Window {
        Window::new(start, self.now())
    }

    /// The lease of a view taken now: this process's pins, or (beside
    /// another process's GC) the manifest version it reads.
    fn lease(&self, snap: &Snapshot) -> Lease {
        match self.beside {
            true => Lease::Version(snap.manifest_version()),
            false => Lease::Pinned,
        }
    }

    fn deletions(&self) -> u64 {
        self.leases.times.deletions_under(api::SST_PREFIX)
    }

    /// A view held since `deletions` was checked: counts it, and whether an
    /// SST was deleted while it was held.
    fn view_checked(&self, deletions: u64) {
        let across = self.deletions() > deletions;
        let mut h = lock(&self.histories);
        h.injected.views_checked += 1;
        h.injected.views_across_gc += u64::from(across);
    }

    /// The oracle's record of a write to one of this writer's own keys:
    /// a put's time-to-live resolved as the engine does (`Ttl::Default`:
    /// the process's default).
    fn own_write(&self, w: &workload::Write) -> oracle::Write {
        match w {
            workload::Write::Put(v, ttl) => {
                let ttl = match ttl {
                    tidemark::Ttl::Default => self.default_ttl,
                    tidemark::Ttl::NoExpiry => None,
                    tidemark::Ttl::ExpireAfter(d) => Some(*d),
                };
                oracle::Write::Put(v.clone(), ttl)
            }
            workload::Write::Delete => oracle::Write::Delete,
            workload::Write::Merge(o) => oracle::Write::Merge(o.clone()),
        }
    }

    async fn write(&self, writes: Vec<(Bytes, workload::Write)>, await_durable: bool) -> Go {
        let step = {
            let mut h = lock(&self.histories);
            let own = writes.iter().filter(|(k, _)| !crate::shared::is_shared(k)).map(|(k, w)| (k.clone(), self.own_write(w))).collect();
            // Shared keys get puts that never expire and deletes only.
            let shared: Vec<(Bytes, Option<Bytes>)> = writes
                .iter()
                .filter(|(k, _)| crate::shared::is_shared(k))
                .map(|(k, w)| match w {
                    workload::Write::Put(v, _) => (k.clone(), Some(v.clone())),
                    _ => (k.clone(), None),
                })
                .collect();
            let at = h.shared.tick();
            // Read under the lock, before the call: the engine stamps
            // expiries within it, on the same clock.
            let began_ms = self.now();
            let step = h.histories[self.writer].issue_at(own, at, began_ms);
            h.shared.issue(self.writer, step, self.process, &shared);
            step
        };
        let result = api::write(&self.db, writes, await_durable).await;
        let returned_ms = self.now();
        let mut h = lock(&self.histories);
        h.histories[self.writer].returned(step, returned_ms);
        let not_written = result.as_ref().is_err_and(api::not_written);
        h.shared.returned(self.writer, step, result.is_ok() && await_durable, not_written);
        match result {
            Ok(()) if await_durable => {
                let at = h.shared.tick();
                h.histories[self.writer].ack_at(step, at);
                true
            }
            Ok(()) => true,
            Err(e) => {
                if not_written {
                    h.histories[self.writer].not_written(step);
                }
                drop(h);
                self.write_failed(&e, "write");
                false
            }
        }
    }

    async fn flush(&self) -> Go {
        match api::flush(&self.db).await {
            Ok(()) => {
                let mut h = lock(&self.histories);
                let at = h.shared.tick();
                h.histories[self.writer].ack_all_at(at);
                h.shared.ack_all(self.writer);
                true
            }
            Err(e) => {
                self.write_failed(&e, "flush");
                false
            }
        }
    }

    /// Read-your-writes: a live writer sees its own history as of the
    /// moment the read began.
    async fn scan(&self) -> Go {
        let check = lock(&self.histories).histories[self.writer].read_check(self.writer);
        let lease = self.lease(&self.db.snapshot());
        let start = self.now();
        match api::scan_prefix(&self.db, workload::key_prefix(self.writer)).await {
            Ok(seen) => match check.scan(&seen, {
                let w = self.window(start);
                lock(&self.histories).injected.tally(check.tally(w));
                w
            }) {
                Ok(()) => true,
                Err((invariant, anomaly)) => {
                    self.anomaly(invariant, anomaly);
                    false
                }
            },
            Err(e) => {
                self.read_failed(&e, lease, "scan");
                false
            }
        }
    }

    async fn get(&self, key: Bytes) -> Go {
        let lease = self.lease(&self.db.snapshot());
        if crate::shared::is_shared(&key) {
            let began = lock(&self.histories).shared.tick();
            let seen = match api::get(&self.db, key.clone()).await {
                Ok(seen) => seen,
                Err(e) => {
                    self.read_failed(&e, lease, "get of a shared key");
                    return false;
                }
            };
            let mut h = lock(&self.histories);
            h.shared.tick();
            return match h.shared.check_read(&key, self.process, began, seen.as_ref()) {
                Ok(()) => true,
                Err(anomaly) => {
                    h.anomalies.push((anomaly.invariant, anomaly.detail));
                    false
                }
            };
        }
        let check = lock(&self.histories).histories[self.writer].read_check(self.writer);
        let start = self.now();
        match api::get(&self.db, key.clone()).await {
            Ok(seen) => match check.get(&key, seen.as_ref(), self.window(start)) {
                Ok(()) => true,
                Err((invariant, anomaly)) => {
                    self.anomaly(invariant, anomaly);
                    false
                }
            },
            Err(e) => {
                self.read_failed(&e, lease, "get");
                false
            }
        }
    }

    fn take_snapshot(&self) -> HeldSnapshot {
        let expected: State = lock(&self.histories).histories[self.writer].current();
        let snap = self.db.snapshot();
        let lease = self.lease(&snap);
        HeldSnapshot { snap, expected, lease, deletions: self.deletions() }
    }

    /// Reads the writer's keys through a held snapshot: they must be as
    /// when it was taken, whatever was written, flushed, compacted and
    /// collected since, judged at this read's time.
    async fn read_snapshot(&self, s: &mut HeldSnapshot) -> Go {
        let start = self.now();
        let read = async { s.snap.scan_prefix(workload::key_prefix(self.writer)).await?.collect_vec().await };
        match read.await {
            Ok(seen) => {
                let seen: BTreeMap<Bytes, Bytes> = seen.into_iter().collect();
                let window = self.window(start);
                if let Some(m) = oracle::compare(&s.expected, &seen, window) {
                    self.anomaly(
                        m.invariant("SnapshotStable"),
                        format!(
                            "writer {}'s snapshot (seq {}) shows {} keys, but its history when it was taken has {} (first difference: {m})",
                            self.writer,
                            s.snap.seq(),
                            seen.len(),
                            s.expected.len()
                        ),
                    );
                    return false;
                }
                lock(&self.histories).injected.tally(oracle::tally(&s.expected, window));
                oracle::refine(&mut s.expected, &seen, window);
                self.view_checked(s.deletions);
                true
            }
            Err(e) => {
                self.read_failed(&e, s.lease, "read through a held snapshot");
                false
            }
        }
    }

    async fn start_scan(&self) -> Option<HeldScan> {
        let expected = lock(&self.histories).histories[self.writer].current();
        // The snapshot and the scan's view are taken in the same poll: the same tree.
        let lease = self.lease(&self.db.snapshot());
        let deletions = self.deletions();
        let start = self.now();
        match self.db.scan_prefix(workload::key_prefix(self.writer)).await {
            Ok(it) => Some(HeldScan { it, expected, window: self.window(start), last: None, seen: 0, lease, deletions }),
            Err(e) => {
                self.read_failed(&e, lease, "scan start");
                None
            }
        }
    }

    /// One entry of a held scan: `Some(true)` while it goes on, `Some(false)`
    /// once it ended as it should, `None` when the writer must stop.
    async fn advance(&self, s: &mut HeldScan) -> Option<bool> {
        match s.it.next().await {
            Ok(Some((k, v))) => {
                if let Some(m) = oracle::check_entry(&s.expected, s.window, s.last.as_ref(), Some((&k, &v))) {
                    self.anomaly(
                        m.invariant("ScanStable"),
                        format!(
                            "writer {}'s held scan yielded {} = {:?} as entry {}, but its history when the scan began differs: {m}",
                            self.writer,
                            String::from_utf8_lossy(&k),
                            String::from_utf8_lossy(&v),
                            s.seen,
                        ),
                    );
                    return None;
                }
                s.last = Some(k);
                s.seen += 1;
                Some(true)
            }
            Ok(None) => match oracle::check_entry(&s.expected, s.window, s.last.as_ref(), None) {
                None => {
                    self.view_checked(s.deletions);
                    Some(false)
                }
                Some(m) => {
                    self.anomaly(
                        m.invariant("ScanStable"),
                        format!("writer {}'s held scan ended after {} of {} keys: {m}", self.writer, s.seen, s.expected.len()),
                    );
                    None
                }
            },
            Err(e) => {
                self.read_failed(&e, s.lease, "held scan");
                None
            }
        }
    }

    /// Reads a held scan to its end.
    async fn drain(&self, s: &mut HeldScan) -> Go {
        loop {
            match self.advance(s).await {
                Some(true) => {}
                Some(false) => return true,
                None => return false,
            }
        }
    }
}
