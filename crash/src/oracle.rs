//! The oracle: what each writer issued and what was acknowledged, and the
//! check that a recovered state is allowed by I3 and I4.
//!
//! Writers own disjoint keys, so each writer's history is sequential: the
//! state of its keys after recovery must be its base state plus a prefix of
//! its steps (I4) that includes every acknowledged step (I3, and I5 for a
//! zombie's acknowledgements). A step whose call failed with an error other
//! than `OutcomeUnknown` was not written (`Db::write_with`'s contract) and
//! must not survive. Keys writers share are checked by [`crate::shared`].

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

/// One atomic step of a writer: a put, a delete, or a batch of them.
#[derive(Clone, Debug)]
pub struct Step {
    pub writes: Vec<(Bytes, Option<Bytes>)>,
    /// Acknowledged durable: its call returned with `await_durable`, or a
    /// later `flush()` returned.
    pub acked: bool,
    /// Its call failed with an error that promises the write was not
    /// written (anything but `OutcomeUnknown`, e.g. `Fenced`).
    pub not_written: bool,
    /// The harness's logical time when its call began, and when it was
    /// acknowledged (a read-only open that began later must see it).
    pub issued_at: u64,
    pub acked_at: Option<u64>,
}

/// What one writer did since the last recovery.
#[derive(Clone, Debug, Default)]
pub struct WriterHistory {
    /// The state of this writer's keys at the last recovery (absent = none).
    pub base: BTreeMap<Bytes, Bytes>,
    pub steps: Vec<Step>,
}

/// Which invariant a recovered state breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// I3 (or I5 for a zombie): an acknowledged step is missing.
    AckedWriteLost { writer: usize, step: usize, surviving_prefix: usize },
    /// I4: the surviving state is no prefix of the writer's history.
    NotAPrefix { writer: usize, key: Bytes, observed: Option<Bytes> },
    /// A step whose call reported it was not written (e.g. `Fenced`) survived.
    NotWrittenSurvived { writer: usize, step: usize },
    /// A view taken before a step's call began holds it (I4 for readers).
    LaterStepSeen { writer: usize, step: usize },
}

impl Violation {
    /// The invariant's number and name, as in the spec.
    pub fn invariant(&self) -> &'static str {
        match self {
            Violation::AckedWriteLost { .. } => "I3 NoAckedWriteLost",
            Violation::NotAPrefix { .. } => "I4 PrefixConsistent",
            Violation::NotWrittenSurvived { .. } => "NotWrittenStaysAbsent",
            Violation::LaterStepSeen { .. } => "I4 PrefixConsistent",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::AckedWriteLost { writer, step, surviving_prefix } => write!(
                f,
                "I3 violated: writer {writer} step {step} was acknowledged but only its first {surviving_prefix} steps survived"
            ),
            Violation::NotAPrefix { writer, key, observed } => write!(
                f,
                "I4 violated: writer {writer} key {} = {:?} matches no prefix of its history",
                String::from_utf8_lossy(key),
                observed.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())
            ),
            Violation::NotWrittenSurvived { writer, step } => write!(
                f,
                "NotWrittenStaysAbsent violated: writer {writer} step {step} failed with an error that promises it was not written, but it survived"
            ),
            Violation::LaterStepSeen { writer, step } => write!(
                f,
                "I4 violated: a read-only view of writer {writer}'s keys holds step {step}, whose call began after the view was opened"
            ),
        }
    }
}

/// A live read's expectation, taken as the read began (see
/// [`WriterHistory::read_check`]).
#[derive(Clone, Debug)]
pub struct ReadCheck {
    writer: usize,
    expected: BTreeMap<Bytes, Bytes>,
}

impl ReadCheck {
    /// Checks a scan of the writer's whole key range.
    pub fn scan(&self, seen: &BTreeMap<Bytes, Bytes>) -> Result<(), String> {
        if seen == &self.expected {
            return Ok(());
        }
        let differs = self
            .expected
            .keys()
            .chain(seen.keys())
            .find(|k| seen.get(*k) != self.expected.get(*k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        Err(format!(
            "writer {} scanned {} keys, but its history as the scan began has {} (first difference at {differs})",
            self.writer,
            seen.len(),
            self.expected.len()
        ))
    }

    /// Checks a point read of one of the writer's keys.
    pub fn get(&self, key: &Bytes, seen: Option<&Bytes>) -> Result<(), String> {
        let expected = self.expected.get(key);
        if seen == expected {
            return Ok(());
        }
        let show = |v: Option<&Bytes>| v.map(|v| String::from_utf8_lossy(v).into_owned());
        Err(format!(
            "writer {} read {} = {:?}, but its history as the read began has {:?}",
            self.writer,
            String::from_utf8_lossy(key),
            show(seen),
            show(expected)
        ))
    }
}

impl WriterHistory {
    /// Records a step; returns its index for a later [`WriterHistory::ack`].
    pub fn issue(&mut self, writes: Vec<(Bytes, Option<Bytes>)>) -> usize {
        self.issue_at(writes, 0)
    }

    /// Records a step whose call began at logical time `at`.
    pub fn issue_at(&mut self, writes: Vec<(Bytes, Option<Bytes>)>, at: u64) -> usize {
        self.steps.push(Step { writes, acked: false, not_written: false, issued_at: at, acked_at: None });
        self.steps.len() - 1
    }

    pub fn ack(&mut self, step: usize) {
        self.ack_at(step, 0);
    }

    /// The step was acknowledged at logical time `at`.
    pub fn ack_at(&mut self, step: usize, at: u64) {
        if let Some(s) = self.steps.get_mut(step) {
            s.acked = true;
            s.acked_at.get_or_insert(at);
        }
    }

    /// The step's call failed with an error promising it was not written.
    pub fn not_written(&mut self, step: usize) {
        if let Some(s) = self.steps.get_mut(step) {
            s.not_written = true;
        }
    }

    /// `flush()` returned: everything issued so far is durable.
    pub fn ack_all(&mut self) {
        self.ack_all_at(0);
    }

    /// `flush()` returned at logical time `at`.
    pub fn ack_all_at(&mut self, at: u64) {
        for s in &mut self.steps {
            s.acked = true;
            s.acked_at.get_or_insert(at);
        }
    }

    /// Every key this writer has touched.
    pub fn keys(&self) -> Vec<Bytes> {
        let mut keys: Vec<Bytes> = self.base.keys().cloned().collect();
        keys.extend(self.steps.iter().flat_map(|s| s.writes.iter().map(|(k, _)| k.clone())));
        keys.sort();
        keys.dedup();
        keys
    }

    /// The state after the base and the first `p` steps.
    pub fn state_after(&self, p: usize) -> BTreeMap<Bytes, Bytes> {
        let mut state = self.base.clone();
        for step in &self.steps[..p.min(self.steps.len())] {
            for (k, v) in &step.writes {
                match v {
                    Some(v) => state.insert(k.clone(), v.clone()),
                    None => state.remove(k),
                };
            }
        }
        state
    }

    /// The current state as this writer's own reads must see it.
    pub fn current(&self) -> BTreeMap<Bytes, Bytes> {
        self.state_after(self.steps.len())
    }

    /// What a read of this writer's keys that begins now must return: every
    /// step issued so far, acknowledged or not, since a live writer reads its
    /// own writes. Writers own disjoint keys and issue one call at a time, so
    /// nothing changes these keys while the read runs; a read that returns
    /// anything else missed a write that happened before it began.
    pub fn read_check(&self, writer: usize) -> ReadCheck {
        ReadCheck { writer, expected: self.current() }
    }

    /// Checks a recovered state of this writer's keys; on success returns the
    /// surviving prefix length and makes the observed state the new base.
    pub fn check_and_rebase(&mut self, writer: usize, observed: &BTreeMap<Bytes, Bytes>) -> Result<usize, Violation> {
        let required = self.steps.iter().rposition(|s| s.acked).map_or(0, |i| i + 1);
        let result = self.judge(writer, required, self.steps.len(), observed);
        if result.is_ok() {
            self.base = observed.clone();
            self.steps.clear();
        }
        result
    }

    /// Checks the view a read-only open found of this writer's keys: the
    /// open began at logical time `began` and returned at `ended`. The view
    /// is a prefix of the history (I4) holding no step reported not written,
    /// and none whose call began after the open returned; with `complete`
    /// (the open ran within its lease, so nothing it read was deleted under
    /// it), it holds every step acknowledged before the open began (I3 for
    /// readers). Returns the prefix length.
    pub fn check_view(
        &self,
        writer: usize,
        (began, ended): (u64, u64),
        observed: &BTreeMap<Bytes, Bytes>,
        complete: bool,
    ) -> Result<usize, Violation> {
        self.check_follow(writer, (began, ended), observed, complete, 0).map(|(_, last)| last)
    }

    /// As [`WriterHistory::check_view`], for a view that follows an earlier
    /// one of the same reader: it may not go back before the prefix
    /// `at_least` that view showed (I14). Returns the first and the last
    /// prefix the view may be (a put undone by a delete leaves two prefixes
    /// equal): the next view must reach at least the first.
    pub fn check_follow(
        &self,
        writer: usize,
        window: (u64, u64),
        observed: &BTreeMap<Bytes, Bytes>,
        complete: bool,
        at_least: usize,
    ) -> Result<(usize, usize), Violation> {
        let (began, ended) = window;
        let required = match complete {
            true => self.steps.iter().rposition(|s| s.acked_at.is_some_and(|t| t < began)).map_or(0, |i| i + 1),
            false => 0,
        }
        .max(at_least);
        let issued = self.steps.iter().position(|s| s.issued_at > ended).unwrap_or(self.steps.len());
        let last = self.judge(writer, required, issued, observed)?;
        let first = (required..=last).find(|&p| &self.state_after(p) == observed).unwrap_or(last);
        Ok((first, last))
    }

    /// Which prefix `observed` is: one of at least `required` steps, at most
    /// `upto`, before any step not written.
    fn judge(&self, writer: usize, required: usize, upto: usize, observed: &BTreeMap<Bytes, Bytes>) -> Result<usize, Violation> {
        // No prefix may include a step that was not written.
        let limit = self.steps.iter().position(|s| s.not_written).unwrap_or(self.steps.len()).min(upto);
        let matching: Vec<usize> = (0..=self.steps.len()).filter(|&p| &self.state_after(p) == observed).collect();
        match matching.iter().rev().find(|&&p| p >= required && p <= limit) {
            Some(&p) => Ok(p),
            None if matching.iter().any(|&p| p > limit && p >= required) => {
                match self.steps.iter().position(|s| s.not_written).filter(|&i| i == limit) {
                    Some(step) => Err(Violation::NotWrittenSurvived { writer, step }),
                    None => Err(Violation::LaterStepSeen { writer, step: limit }),
                }
            }
            None => match matching.iter().rev().find(|&&p| p <= limit).or(matching.last()) {
                Some(&p) => Err(Violation::AckedWriteLost { writer, step: required.saturating_sub(1), surviving_prefix: p }),
                None => {
                    // Name the first key that differs from every prefix's state.
                    let full = self.current();
                    let key = self
                        .keys()
                        .into_iter()
                        .find(|k| observed.get(k) != full.get(k))
                        .or_else(|| observed.keys().next().cloned())
                        .unwrap_or_default();
                    Err(Violation::NotAPrefix { writer, observed: observed.get(&key).cloned(), key })
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn history() -> WriterHistory {
        let mut h = WriterHistory::default();
        h.issue(vec![(b("k1"), Some(b("v1")))]);
        h.issue(vec![(b("k2"), Some(b("v2"))), (b("k1"), None)]);
        h.issue(vec![(b("k3"), Some(b("v3")))]);
        h
    }

    #[test]
    fn any_prefix_holding_the_acked_steps_is_allowed() {
        let mut h = history();
        h.ack(0);
        let observed = h.state_after(2);
        assert_eq!(h.check_and_rebase(0, &observed), Ok(2));
        assert_eq!(h.base, observed);
        assert!(h.steps.is_empty());
    }

    #[test]
    fn a_lost_acknowledged_step_is_i3() {
        let mut h = history();
        h.ack(1);
        let observed = h.state_after(1);
        let v = h.check_and_rebase(0, &observed).unwrap_err();
        assert_eq!(v, Violation::AckedWriteLost { writer: 0, step: 1, surviving_prefix: 1 });
        assert_eq!(v.invariant(), "I3 NoAckedWriteLost");
    }

    #[test]
    fn a_later_step_without_an_earlier_one_is_i4() {
        let mut h = history();
        // Step 2 survived, step 1 (k2) did not: no prefix matches.
        let mut observed = h.state_after(1);
        observed.insert(b("k3"), b("v3"));
        let v = h.check_and_rebase(0, &observed).unwrap_err();
        assert_eq!(v.invariant(), "I4 PrefixConsistent");
    }

    #[test]
    fn a_read_must_see_every_step_issued_before_it_began() {
        let h = history();
        let check = h.read_check(0);
        assert_eq!(check.scan(&h.current()), Ok(()));
        assert!(check.scan(&h.state_after(2)).is_err(), "a scan missing step 2 (k3) is caught");
        assert_eq!(check.get(&b("k3"), Some(&b("v3"))), Ok(()));
        assert_eq!(check.get(&b("k1"), None), Ok(()), "k1 was deleted by step 1");
        assert!(check.get(&b("k3"), None).is_err(), "a get missing step 2 is caught");
        assert!(check.get(&b("k1"), Some(&b("v1"))).is_err(), "a get seeing a deleted value is caught");
    }

    #[test]
    fn a_step_reported_not_written_must_not_survive() {
        let mut h = history();
        h.not_written(2);
        let mut ok = h.clone();
        assert_eq!(ok.check_and_rebase(0, &h.state_after(2)), Ok(2), "everything before it may survive");
        let v = h.check_and_rebase(0, &h.state_after(3)).unwrap_err();
        assert_eq!(v, Violation::NotWrittenSurvived { writer: 0, step: 2 });
        assert_eq!(v.invariant(), "NotWrittenStaysAbsent");
    }

    #[test]
    fn a_half_applied_batch_is_i4() {
        let mut h = history();
        let mut observed = h.state_after(1);
        observed.insert(b("k2"), b("v2")); // the batch's put without its delete
        assert!(matches!(h.check_and_rebase(0, &observed), Err(Violation::NotAPrefix { .. })));
    }

    #[test]
    fn a_read_only_view_holds_what_was_acknowledged_before_it_and_nothing_issued_after() {
        let mut h = WriterHistory::default();
        h.issue_at(vec![(b("k1"), Some(b("v1")))], 1);
        h.ack_at(0, 2);
        h.issue_at(vec![(b("k2"), Some(b("v2")))], 3);
        h.issue_at(vec![(b("k3"), Some(b("v3")))], 9);
        h.ack_at(1, 10);
        // An open that ran from 5 to 8: step 0 acknowledged before, step 2 issued after.
        assert_eq!(h.check_view(0, (5, 8), &h.state_after(1), true), Ok(1));
        assert_eq!(h.check_view(0, (5, 8), &h.state_after(2), true), Ok(2), "step 1 was in flight: either");
        let lost = h.check_view(0, (5, 8), &h.state_after(0), true).unwrap_err();
        assert_eq!(lost.invariant(), "I3 NoAckedWriteLost");
        assert_eq!(h.check_view(0, (5, 8), &h.state_after(0), false), Ok(0), "past its lease a view may be older");
        assert!(h.check_view(0, (5, 8), &h.state_after(3), true).is_err(), "step 2 began after the open returned");
        assert_eq!(h.check_view(0, (5, 12), &h.state_after(3), true), Ok(3));
    }

    #[test]
    fn a_following_view_never_goes_back_before_the_one_it_follows() {
        let mut h = WriterHistory::default();
        h.issue_at(vec![(b("k1"), Some(b("v1")))], 1);
        h.issue_at(vec![(b("k1"), None)], 2);
        h.issue_at(vec![(b("k2"), Some(b("v2")))], 3);
        // Nothing acknowledged: any prefix may be seen, and prefixes 0 and 2
        // are equal (a put undone by a delete).
        assert_eq!(h.check_follow(0, (5, 8), &h.state_after(0), true, 0), Ok((0, 2)));
        // After a view at prefix 1, prefix 0's state is a step back.
        assert_eq!(h.check_follow(0, (5, 8), &h.state_after(1), true, 0), Ok((1, 1)));
        assert!(h.check_follow(0, (9, 12), &h.state_after(0), true, 1).is_ok(), "prefix 2 looks like 0: not a step back");
        let back = h.check_follow(0, (9, 12), &h.state_after(1), true, 3).unwrap_err();
        assert_eq!(back.invariant(), "I3 NoAckedWriteLost");
    }
}
