//! The oracle for keys several writers overwrite (issue 14, shared keys):
//! writers of one process, a zombie and its successor.
//!
//! Every recovered value of a shared key must be the last write to it in
//! some order of the writes that is consistent with real time and holds
//! every acknowledged write: a write `w` can be last unless an acknowledged
//! write to the key began after `w`'s call returned (that write is ordered
//! after `w`, and it survived). A write still in flight at the crash can be
//! last. A write whose call promised it was not written is never a value.
//! Real time is a logical clock the harness ticks under its lock as calls
//! begin and return. Per key this is one pass over its writes.
//!
//! A live read must return a write not overwritten, before the read began, by
//! a write of the reader's own process that returned before the read began.
//! A write of the other process (zombie or successor) is allowed as it
//! stands: which of them a process sees depends on replay, not on real time.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

/// The prefix of shared keys (writers' own keys are `wNN/...`).
pub const PREFIX: &str = "s/";

/// Whether `key` is a shared key.
pub fn is_shared(key: &[u8]) -> bool {
    key.starts_with(PREFIX.as_bytes())
}

/// One write to a shared key.
#[derive(Clone, Debug)]
struct Write {
    value: Option<Bytes>,
    writer: usize,
    step: usize,
    process: usize,
    invoked: u64,
    /// When its call returned (`None`: still in flight).
    returned: Option<u64>,
    acked: bool,
    not_written: bool,
}

/// What a recovered state or a live read breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inconsistency {
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.invariant, self.detail)
    }
}

fn show(v: Option<&Bytes>) -> String {
    match v {
        Some(v) => format!("{:?}", String::from_utf8_lossy(v)),
        None => "absent".into(),
    }
}

/// The writes to a key as a violation reports them: value, who, and when.
fn history(writes: &[Write]) -> String {
    let each: Vec<String> = writes
        .iter()
        .map(|w| {
            let returned = w.returned.map_or("in flight".to_string(), |r| r.to_string());
            format!(
                "{} by p{} w{} s{} [{}..{returned}]{}{}",
                show(w.value.as_ref()),
                w.process,
                w.writer,
                w.step,
                w.invoked,
                if w.acked { " acked" } else { "" },
                if w.not_written { " not-written" } else { "" }
            )
        })
        .collect();
    format!("[{}]", each.join(", "))
}

/// The writes to shared keys since the last recovery, and the state it found.
#[derive(Clone, Debug, Default)]
pub struct SharedKeys {
    /// The logical clock: ticks at every call's start and return.
    clock: u64,
    base: BTreeMap<Bytes, Bytes>,
    writes: BTreeMap<Bytes, Vec<Write>>,
}

impl SharedKeys {
    /// Ticks the clock and returns the new time.
    pub fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Records the shared-key part of writer `writer`'s step `step` (issued
    /// by `process`) as it begins.
    pub fn issue(&mut self, writer: usize, step: usize, process: usize, writes: &[(Bytes, Option<Bytes>)]) {
        let invoked = self.tick();
        for (k, v) in writes.iter().filter(|(k, _)| is_shared(k)) {
            let w = Write { value: v.clone(), writer, step, process, invoked, returned: None, acked: false, not_written: false };
            self.writes.entry(k.clone()).or_default().push(w);
        }
    }

    fn each(&mut self, writer: usize, step: usize, f: impl Fn(&mut Write)) {
        for w in self.writes.values_mut().flat_map(|ws| ws.iter_mut()).filter(|w| w.writer == writer && w.step == step) {
            f(w);
        }
    }

    /// The step's call returned: acknowledged (`acked`), not written, or neither.
    pub fn returned(&mut self, writer: usize, step: usize, acked: bool, not_written: bool) {
        let now = self.tick();
        self.each(writer, step, |w| {
            w.returned = Some(now);
            w.acked |= acked;
            w.not_written |= not_written;
        });
    }

    /// `flush()` of `writer` returned: every step it issued is durable.
    pub fn ack_all(&mut self, writer: usize) {
        for w in self.writes.values_mut().flat_map(|ws| ws.iter_mut()).filter(|w| w.writer == writer) {
            w.acked = true;
        }
    }

    /// Every shared key written or found.
    pub fn keys(&self) -> Vec<Bytes> {
        let mut keys: Vec<Bytes> = self.base.keys().chain(self.writes.keys()).cloned().collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Checks a live read of `key` by `process` that began at `began` and
    /// returned `seen`.
    pub fn check_read(&self, key: &Bytes, process: usize, began: u64, seen: Option<&Bytes>) -> Result<(), Inconsistency> {
        let writes: &[Write] = self.writes.get(key).map_or(&[], |w| w.as_slice());
        // Whether an own-process write that began after `t` returned before the read began.
        // A write whose call promised it was not written overwrites nothing.
        let overwritten_before = |t: u64| {
            writes.iter().any(|w| w.process == process && !w.not_written && w.invoked > t && w.returned.is_some_and(|r| r < began))
        };
        let base_ok = self.base.get(key) == seen && !overwritten_before(0);
        let write_ok = writes.iter().any(|w| {
            w.value.as_ref() == seen
                && !w.not_written
                && (w.process != process || !overwritten_before(w.returned.unwrap_or(u64::MAX)))
        });
        if base_ok || write_ok {
            return Ok(());
        }
        Err(Inconsistency {
            invariant: "SharedKeyReadConsistent",
            detail: format!(
                "process {process} read shared key {} = {} at {began}, which no write allows: an own-process write returned before the read began overwrote it, or no write wrote it (base {}; writes {})",
                String::from_utf8_lossy(key),
                show(seen),
                show(self.base.get(key)),
                history(writes)
            ),
        })
    }

    /// Checks the recovered value of one shared key.
    fn check_key(&self, key: &Bytes, observed: Option<&Bytes>) -> Result<(), Inconsistency> {
        let writes: &[Write] = self.writes.get(key).map_or(&[], |w| w.as_slice());
        // The latest start of an acknowledged write (the base counts as one at 0).
        let latest_acked = writes.iter().filter(|w| w.acked && !w.not_written).map(|w| w.invoked).max().unwrap_or(0);
        let may_be_last = |returned: Option<u64>| returned.is_none_or(|r| r > latest_acked);
        let base_ok = self.base.get(key) == observed && latest_acked == 0;
        if base_ok || writes.iter().any(|w| w.value.as_ref() == observed && !w.not_written && may_be_last(w.returned)) {
            return Ok(());
        }
        let name = String::from_utf8_lossy(key);
        if let Some(w) = writes.iter().find(|w| w.not_written && w.value.is_some() && w.value.as_ref() == observed) {
            return Err(Inconsistency {
                invariant: "NotWrittenStaysAbsent",
                detail: format!(
                    "shared key {name} = {}: writer {} step {} failed with an error promising it was not written",
                    show(observed),
                    w.writer,
                    w.step
                ),
            });
        }
        let acked = writes.iter().filter(|w| w.acked && w.invoked == latest_acked).map(|w| (w.writer, w.step)).next();
        match acked {
            Some((writer, step)) => Err(Inconsistency {
                invariant: "I3 NoAckedWriteLost",
                detail: format!(
                    "shared key {name} = {}, but writer {writer} step {step} was acknowledged and began after every write of that value returned (if any)",
                    show(observed)
                ),
            }),
            None => Err(Inconsistency {
                invariant: "I4 PrefixConsistent",
                detail: format!("shared key {name} = {}, which no write wrote", show(observed)),
            }),
        }
    }

    /// Checks a recovered state of the shared keys; on success it becomes
    /// the base of the next round.
    pub fn check_and_rebase(&mut self, observed: &BTreeMap<Bytes, Bytes>) -> Result<(), Inconsistency> {
        let mut keys = self.keys();
        keys.extend(observed.keys().cloned());
        keys.sort();
        keys.dedup();
        for k in &keys {
            self.check_key(k, observed.get(k))?;
        }
        self.base = observed.clone();
        self.writes.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn put(v: &str) -> Vec<(Bytes, Option<Bytes>)> {
        vec![(b("s/k"), Some(b(v)))]
    }

    fn state(v: Option<&str>) -> BTreeMap<Bytes, Bytes> {
        v.map(|v| BTreeMap::from([(b("s/k"), b(v))])).unwrap_or_default()
    }

    #[test]
    fn a_later_acknowledged_overwrite_must_survive() {
        let mut s = SharedKeys::default();
        s.issue(0, 0, 0, &put("a"));
        s.returned(0, 0, true, false);
        s.issue(1, 0, 0, &put("b"));
        s.returned(1, 0, true, false);
        assert!(s.clone().check_and_rebase(&state(Some("b"))).is_ok());
        let v = s.clone().check_and_rebase(&state(Some("a"))).unwrap_err();
        assert_eq!(v.invariant, "I3 NoAckedWriteLost", "{v}");
        assert_eq!(s.clone().check_and_rebase(&state(None)).unwrap_err().invariant, "I3 NoAckedWriteLost");
        assert_eq!(s.check_and_rebase(&state(Some("zz"))).unwrap_err().invariant, "I3 NoAckedWriteLost");
    }

    #[test]
    fn concurrent_writes_may_end_in_either_order() {
        let mut s = SharedKeys::default();
        s.issue(0, 0, 0, &put("a"));
        s.issue(1, 0, 1, &put("b"));
        s.returned(0, 0, true, false);
        s.returned(1, 0, true, false);
        assert!(s.clone().check_and_rebase(&state(Some("a"))).is_ok());
        assert!(s.clone().check_and_rebase(&state(Some("b"))).is_ok());
        assert!(s.check_and_rebase(&state(None)).is_err(), "both were acknowledged");
    }

    #[test]
    fn unacknowledged_writes_may_be_lost_but_not_written_ones_never_survive() {
        let mut s = SharedKeys::default();
        s.issue(0, 0, 0, &put("a"));
        s.returned(0, 0, false, false);
        s.issue(1, 0, 0, &put("b"));
        s.returned(1, 0, false, true);
        assert!(s.clone().check_and_rebase(&state(None)).is_ok());
        assert!(s.clone().check_and_rebase(&state(Some("a"))).is_ok());
        assert_eq!(s.check_and_rebase(&state(Some("b"))).unwrap_err().invariant, "NotWrittenStaysAbsent");
    }

    #[test]
    fn a_live_read_sees_the_own_process_write_that_returned_before_it() {
        let mut s = SharedKeys::default();
        s.issue(0, 0, 0, &put("a"));
        s.returned(0, 0, false, false);
        s.issue(1, 0, 1, &put("z")); // another process: allowed as it stands
        s.issue(1, 1, 0, &put("b"));
        s.returned(1, 1, false, false);
        let began = s.tick();
        let k = b("s/k");
        assert!(s.check_read(&k, 0, began, Some(&b("b"))).is_ok());
        assert!(s.check_read(&k, 0, began, Some(&b("z"))).is_ok());
        assert_eq!(s.check_read(&k, 0, began, Some(&b("a"))).unwrap_err().invariant, "SharedKeyReadConsistent");
        assert!(s.check_read(&k, 0, began, None).is_err(), "the base was overwritten too");
        assert!(s.check_read(&k, 1, began, Some(&b("a"))).is_ok(), "process 1 need not see process 0's writes");
    }

    #[test]
    fn a_write_promised_not_written_overwrites_nothing_and_is_never_read() {
        let mut s = SharedKeys::default();
        s.issue(0, 0, 0, &put("a"));
        s.returned(0, 0, false, false);
        s.issue(1, 0, 0, &put("b"));
        s.returned(1, 0, false, true);
        let began = s.tick();
        let k = b("s/k");
        assert!(s.check_read(&k, 0, began, Some(&b("a"))).is_ok(), "the failed write did not overwrite a");
        assert_eq!(s.check_read(&k, 0, began, Some(&b("b"))).unwrap_err().invariant, "SharedKeyReadConsistent");
    }
}
