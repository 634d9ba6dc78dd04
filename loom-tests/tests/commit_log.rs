//! Loom permutations of the engine's real group-commit path
//! (`tidemark::internals::commit::CommitLog`) around `FreezeWal`, `WalDurable`, the
//! manifest's `wal_id_last_seen` snapshot and acknowledgement waiters.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p loom-tests --release`.
//! Every model uses `PREEMPTION_BOUND`; each test prints the interleavings
//! it explored (see loom-tests/README.md for the measured counts).
#![cfg(loom)]

use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use tidemark::internals::commit::{AckError, CommitLog};
use tidemark::internals::protocol::{ManifestView, Protocol, WalLog};

/// The preemption bound of every model here (see the design guide's loom facts).
const PREEMPTION_BOUND: usize = 3;

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(PREEMPTION_BOUND);
    b
}

/// Runs `f` under loom and reports how many interleavings it explored.
fn explore(name: &str, f: impl Fn() + Sync + Send + 'static) -> usize {
    let counter: &'static StdAtomicUsize = Box::leak(Box::new(StdAtomicUsize::new(0)));
    builder().check(move || {
        counter.fetch_add(1, Relaxed);
        f()
    });
    let n = counter.load(Relaxed);
    eprintln!("{name}: {n} interleavings at preemption bound {PREEMPTION_BOUND}");
    n
}

/// Expects loom to report a violation (the test's assertion panicking).
fn expect_violation(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder().check(f)));
    assert!(caught.is_err(), "{name}: the mutant was not caught");
    eprintln!("{name}: violation found, as expected");
}

fn log(protocol: Protocol) -> Arc<CommitLog<u32>> {
    Arc::new(CommitLog::new(WalLog::new(protocol, 1, 1, 4)))
}

/// Freezes `n` WALs holding one write each (ids 1..=n).
fn freeze_n(c: &CommitLog<u32>, n: u32) {
    for i in 1..=n {
        let (id, ()) = c.append([i], 1, |_| ()).expect("open");
        assert_eq!(id, u64::from(i));
        assert_eq!(c.freeze().map(|f| f.wal_id), Some(u64::from(i)));
    }
}

struct Landed([AtomicBool; 4]);

impl Landed {
    fn new() -> Arc<Self> {
        Arc::new(Landed([AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false)]))
    }
    /// The object exists (its create returned), before `WalDurable` is reported.
    fn land(&self, id: u64) {
        self.0[id as usize].store(true, SeqCst);
    }
    /// I1: every WAL `1..=upto` exists.
    fn all_up_to(&self, upto: u64) -> bool {
        (1..=upto).all(|id| self.0[id as usize].load(SeqCst))
    }
}

/// One thread per WAL id, each landing its object then reporting `WalDurable`.
fn spawn_uploads(c: &Arc<CommitLog<u32>>, landed: &Arc<Landed>, ids: &[u64]) -> Vec<thread::JoinHandle<()>> {
    ids.iter()
        .map(|&id| {
            let (c, landed) = (c.clone(), landed.clone());
            thread::spawn(move || {
                // A WAL can only be uploaded once frozen.
                while c.next_wal_id() <= id {
                    thread::yield_now();
                }
                landed.land(id);
                c.wal_durable(id);
            })
        })
        .collect()
}

/// Uploads of WALs 1..=3 complete on three threads in every order while the
/// main thread reads the watermark: it never passes the contiguous landed
/// prefix and never moves backward (I1 at the atomics level).
fn watermark_scenario(protocol: Protocol) {
    let c = log(protocol);
    freeze_n(&c, 3);
    let landed = Landed::new();
    let handles = spawn_uploads(&c, &landed, &[1, 2, 3]);
    // Observations are checked after the joins, so a violation fails the
    // model cleanly instead of unwinding past live loom threads.
    let observed: Vec<(u64, bool)> = (0..2)
        .map(|_| {
            let d = c.durable_wal_id();
            (d, landed.all_up_to(d))
        })
        .collect();
    for h in handles {
        h.join().expect("join");
    }
    let mut last = 0;
    for (d, exists) in observed {
        assert!(d >= last, "durable_wal_id moved backward: {last} -> {d}");
        assert!(exists, "durable_wal_id={d} covered a WAL that did not exist yet");
        last = d;
    }
    assert_eq!(c.durable_wal_id(), 3);
}

#[test]
fn watermark_never_passes_the_contiguous_durable_prefix() {
    explore("watermark", || watermark_scenario(Protocol::Shipped));
}

#[test]
fn watermark_mutant_max_completed_is_caught() {
    expect_violation("max-completed/watermark", || watermark_scenario(Protocol::MaxCompleted));
}

/// A manifest writer snapshots `wal_id_last_seen` while another thread runs
/// `FreezeWal` and two others report `WalDurable`: what it records is durable
/// at that moment (I1).
fn manifest_scenario(protocol: Protocol) {
    let c = log(protocol);
    freeze_n(&c, 1);
    let landed = Landed::new();
    let freezer = {
        let c = c.clone();
        thread::spawn(move || {
            c.append([2], 1, |_| ()).expect("open");
            c.freeze();
        })
    };
    let uploaders = spawn_uploads(&c, &landed, &[1, 2]);
    let view = c.next_manifest(&ManifestView::default(), None);
    let durable_then = landed.all_up_to(view.wal_id_last_seen);
    freezer.join().expect("join");
    for u in uploaders {
        u.join().expect("join");
    }
    assert!(durable_then, "manifest recorded wal_id_last_seen={} before that WAL existed", view.wal_id_last_seen);
}

#[test]
fn manifest_records_only_durable_wals() {
    explore("manifest snapshot", || manifest_scenario(Protocol::Shipped));
}

#[test]
fn manifest_mutant_at_freeze_is_caught() {
    expect_violation("at-freeze/manifest", || manifest_scenario(Protocol::AtFreeze));
}

/// Two writers append while `FreezeWal` runs: each write lands in exactly
/// one WAL, the one whose id `append` returned; none is lost or duplicated.
#[test]
fn appends_and_freeze_lose_and_duplicate_nothing() {
    explore("append vs freeze", || {
        let c = log(Protocol::Shipped);
        let writers: Vec<_> = [10u32, 20]
            .into_iter()
            .map(|base| {
                let c = c.clone();
                thread::spawn(move || {
                    (0..2).map(|i| (base + i, c.append([base + i], 1, |_| ()).expect("open").0)).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut frozen = Vec::new();
        frozen.extend(c.freeze());
        let returned: Vec<(u32, u64)> = writers.into_iter().flat_map(|w| w.join().expect("join")).collect();
        frozen.extend(c.freeze());
        let mut seen: Vec<(u32, u64)> =
            frozen.iter().flat_map(|f| f.items.iter().map(move |item| (*item, f.wal_id))).collect();
        seen.sort_unstable();
        let mut expected = returned;
        expected.sort_unstable();
        assert_eq!(seen, expected, "each write in exactly the WAL append named");
        let ids: Vec<u64> = frozen.iter().map(|f| f.wal_id).collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "WAL ids are consecutive: {ids:?}");
    });
}

/// A waiter for WAL 2 is released only once WALs 1 and 2 are durable, and is
/// always released then (no lost wake-up: loom reports a deadlock otherwise).
fn ack_scenario(protocol: Protocol) {
    let c = log(protocol);
    freeze_n(&c, 2);
    let landed = Landed::new();
    let waiter = {
        let (c, landed) = (c.clone(), landed.clone());
        thread::spawn(move || {
            let outcome = loom::future::block_on(c.wait_durable(2));
            assert_eq!(outcome, Ok(()));
            assert!(landed.all_up_to(2), "acknowledged before WALs 1..=2 exist");
        })
    };
    let uploaders = spawn_uploads(&c, &landed, &[2, 1]);
    for u in uploaders {
        u.join().expect("join");
    }
    waiter.join().expect("join");
}

#[test]
fn ack_waiters_are_released_exactly_when_covered() {
    explore("ack waiters", || ack_scenario(Protocol::Shipped));
}

#[test]
fn ack_mutant_max_completed_is_caught() {
    expect_violation("max-completed/ack", || ack_scenario(Protocol::MaxCompleted));
}

/// Fencing releases a pending waiter with the error, never with success (I5).
#[test]
fn fencing_releases_waiters_with_the_error() {
    explore("fence releases waiters", || {
        let c = log(Protocol::Shipped);
        freeze_n(&c, 1);
        let waiter = {
            let c = c.clone();
            thread::spawn(move || loom::future::block_on(c.wait_durable(1)))
        };
        let fencer = {
            let c = c.clone();
            thread::spawn(move || c.fail(AckError::Fenced { by: 2 }))
        };
        fencer.join().expect("join");
        assert_eq!(waiter.join().expect("join"), Err(AckError::Fenced { by: 2 }));
    });
}

/// Two writers append (each write goes into the memtable under the commit
/// lock, with the WAL id `append` named, as `Db::write_with` does) while
/// `FreezeMemtable` runs. The boundary `freeze_with` hands out splits the
/// writes exactly by WAL: the frozen memtable holds every write in a WAL
/// `<= last_wal_id` and no other, so replaying WALs after `last_wal_id`
/// never misses or repeats one of its writes. `split` takes the boundary and
/// the memtable in steps of their own after the freeze (the mistake this
/// check exists for).
fn memtable_boundary_scenario(split: bool) {
    type Mem = loom::sync::Mutex<Vec<(u32, u64)>>;
    let c = log(Protocol::Shipped);
    let active: Arc<Mem> = Arc::new(loom::sync::Mutex::new(Vec::new()));
    let take = |m: &Mem| std::mem::take(&mut *m.lock().expect("memtable lock"));
    let writers: Vec<_> = [10u32, 20]
        .into_iter()
        .map(|base| {
            let (c, active) = (c.clone(), active.clone());
            thread::spawn(move || {
                for item in [base, base + 1] {
                    let (named, ()) = c
                        .append([item], 1, |wal_id| active.lock().expect("memtable lock").push((item, wal_id)))
                        .expect("open");
                    assert!(named >= 1);
                }
            })
        })
        .collect();
    let (frozen, last) = if split {
        c.freeze();
        let last = c.next_wal_id() - 1;
        (take(&active), last)
    } else {
        c.freeze_with(|_, last| (take(&active), last)).1
    };
    for w in writers {
        w.join().expect("join");
    }
    let later = take(&active);
    let mut all: Vec<(u32, u64)> = frozen.iter().chain(&later).copied().collect();
    all.sort_unstable();
    let mut expected: Vec<(u32, u64)> = all.iter().filter(|(_, wal)| *wal <= last).copied().collect();
    expected.sort_unstable();
    let mut got = frozen.clone();
    got.sort_unstable();
    assert_eq!(got, expected, "the frozen memtable (last_wal_id {last}) holds exactly the writes in WALs <= {last}");
    assert!(later.iter().all(|(_, wal)| *wal > last), "a write after the boundary went to WAL <= {last}: {later:?}");
    assert_eq!(all.len(), 4, "no write lost or duplicated: {all:?}");
}

#[test]
fn memtable_boundary_matches_the_wals_of_its_writes() {
    explore("memtable boundary", || memtable_boundary_scenario(false));
}

#[test]
fn memtable_boundary_taken_outside_the_freeze_is_caught() {
    expect_violation("memtable boundary outside the freeze", || memtable_boundary_scenario(true));
}
