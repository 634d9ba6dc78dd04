//! What a [`FaultStore`](super::FaultStore) injects, and the verdict it gives
//! each operation before the operation reaches the store.

use rand::Rng;

use super::State;

/// How an injected fault behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Fails this many times, then the operation succeeds.
    Transient(u32),
    /// Fails every time.
    Permanent,
}

pub(super) struct PrefixFault {
    pub(super) prefix: String,
    pub(super) kind: FaultKind,
    pub(super) failed: u32,
}

/// Seeded faults on every call, drawn by their own generator (crash
/// schedules with faults): each call may fail transiently before
/// it reaches the store (the engine's `RetryStore` retries it), and each
/// conditional put may land and then report what a retried request whose
/// first attempt landed sees (`AlreadyExists` for a create, `Precondition`
/// for an update conditional on the old version).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomFaults {
    /// Chance that a call fails with a transient (`Generic`) error.
    pub transient: f64,
    /// Chance that a conditional put lands and reports a conflict.
    pub ambiguous: f64,
}

/// What [`RandomFaults`] injected so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InjectedFaults {
    pub transient: u64,
    /// Paths whose conditional put landed and reported a conflict, in order,
    /// each with the label of the clone it was issued through
    /// ([`FaultStore::labelled`](super::FaultStore::labelled); empty if none).
    pub ambiguous: Vec<(object_store::path::Path, &'static str)>,
}

/// The error every injected failure is: a `Generic` error of the store
/// `FaultStore`, so a harness can tell an injected failure from the engine's.
pub(super) fn injected(what: &str, path: &str) -> object_store::Error {
    object_store::Error::Generic { store: "FaultStore", source: format!("{what} at {path}").into() }
}

/// What to do with one operation, decided under the lock.
pub(super) enum Verdict {
    Proceed,
    Fail(&'static str),
    Crash,
}

impl State {
    /// Counts the operation on `path` and decides whether it fails.
    pub(super) fn verdict(&mut self, path: &str) -> Verdict {
        self.ops += 1;
        let k = self.ops;
        if self.crashed {
            return Verdict::Fail("crashed");
        }
        if self.crash_at == Some(k) {
            return Verdict::Crash;
        }
        if let Some(i) = self.fail_ops.iter().position(|(op, _)| *op == k) {
            let (_, kind) = self.fail_ops[i];
            match kind {
                FaultKind::Permanent => return Verdict::Fail("permanent fault"),
                FaultKind::Transient(n) => {
                    if n <= 1 {
                        self.fail_ops.remove(i);
                    } else {
                        // Later retries are later operations: move the fault to the next op.
                        self.fail_ops[i] = (k + 1, FaultKind::Transient(n - 1));
                    }
                    return Verdict::Fail("transient fault");
                }
            }
        }
        if let Some((faults, rng)) = self.random.as_mut() {
            if faults.transient > 0.0 && rng.random_bool(faults.transient.min(1.0)) {
                self.injected.transient += 1;
                return Verdict::Fail("transient fault");
            }
        }
        for fault in self.prefix_faults.iter_mut().filter(|f| path.starts_with(&f.prefix)) {
            match fault.kind {
                FaultKind::Permanent => return Verdict::Fail("permanent fault"),
                FaultKind::Transient(n) if fault.failed < n => {
                    fault.failed += 1;
                    return Verdict::Fail("transient fault");
                }
                FaultKind::Transient(_) => {}
            }
        }
        Verdict::Proceed
    }

    /// Whether a conditional put to `path` lands and reports a conflict:
    /// one of the counted `ambiguous_creates`, else a seeded random one.
    pub(super) fn take_ambiguous(&mut self, path: &str) -> bool {
        if let Some((_, n)) = self.ambiguous.iter_mut().find(|(p, n)| *n > 0 && path.starts_with(p.as_str())) {
            *n -= 1;
            return true;
        }
        match self.random.as_mut() {
            Some((faults, rng)) => faults.ambiguous > 0.0 && rng.random_bool(faults.ambiguous.min(1.0)),
            None => false,
        }
    }
}
