//! The oracle: what each writer issued and what was acknowledged, and the
//! check that a recovered state is allowed by I3 and I4.
//!
//! Writers own disjoint keys, so each writer's history is sequential: the
//! state of its keys after recovery must be its base state plus a prefix of
//! its steps (I4) that includes every acknowledged step (I3, and I5 for a
//! zombie's acknowledgements). A step whose call failed with an error other
//! than `OutcomeUnknown` was not written (`Db::write_with`'s contract) and
//! must not survive. Keys writers share are checked by [`crate::shared`].
//!
//! **Merges and expiring values.** A step writes puts, deletes and merge
//! operands; the state after a prefix applies them in order: a put sets the
//! key, a delete clears it, a merge folds its operand onto what the key
//! holds with the harness's operator, [`tidemark::Concat`] (`current ++
//! operand`, or the operand alone onto nothing), so a lost, duplicated or
//! reordered operand shows in the value. A put may expire: the engine
//! stamps `expires_at = now + ttl` on the schedule's clock during the call,
//! so the oracle knows it only within a window ([`Expiry`]: the call's start
//! plus the ttl, its return plus the ttl). The state is therefore kept per
//! key as a [`Cell`] (the last put with its expiry window, and the operands
//! written on top of it), and judged at each read's own window on the same
//! clock ([`Window`]): a value must be visible to a read that ended before
//! its earliest expiry, must be invisible to a read that began after its
//! latest, and may be either in between; once expired it is as if deleted
//! where it was written (the operands on top of it fold onto nothing). A
//! snapshot or a held scan is judged at its read's time, not at its making.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;

/// One write of a step to one of the writer's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// A put that lives `ttl` from its stamp (`None`: forever).
    Put(Bytes, Option<Duration>),
    Delete,
    /// A merge operand, folded onto what the key holds.
    Merge(Bytes),
}

impl Write {
    /// A put that never expires (`Some`) or a delete (`None`).
    pub fn plain(v: Option<Bytes>) -> Self {
        v.map_or(Write::Delete, |v| Write::Put(v, None))
    }
}

/// Where an expiring put's `expires_at` lies, in ms on the schedule clock:
/// at least `lo` (its call began at `lo - ttl`), at most `hi` (its call
/// returned at `hi - ttl`; `u64::MAX` while it may still be stamped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub lo: u64,
    pub hi: u64,
}

/// A read's window on the schedule clock (ms): when its call began and
/// when it returned. The engine judges expiry at some instant within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: u64,
    pub end: u64,
}

impl Window {
    /// Any time at all: every expiring value may be either visible or not.
    pub const ANY: Window = Window { start: 0, end: u64::MAX };

    pub fn new(start: u64, end: u64) -> Self {
        Window { start, end: end.max(start) }
    }
}

/// What a key holds by the history, before a read's time judges it: the
/// last put (with the window its expiry lies in, if it expires), or nothing
/// (never written, deleted, or known to have expired), and the merge
/// operands written on top of it, in write order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    pub value: Option<(Bytes, Option<Expiry>)>,
    pub operands: Vec<Bytes>,
}

/// A writer's keys as the history defines them.
pub type State = BTreeMap<Bytes, Cell>;

/// The harness's merge operator, [`tidemark::Concat`], as the oracle
/// specifies it: the operands appended in order to the value beneath them,
/// or to nothing.
pub fn fold(base: Option<&Bytes>, operands: &[Bytes]) -> Option<Bytes> {
    if base.is_none() && operands.is_empty() {
        return None;
    }
    let mut out = base.map(|b| b.to_vec()).unwrap_or_default();
    for o in operands {
        out.extend_from_slice(o);
    }
    Some(out.into())
}

impl Cell {
    /// A value that never expires (a state read back, in tests).
    pub fn plain(v: Bytes) -> Self {
        Cell { value: Some((v, None)), operands: Vec::new() }
    }

    fn apply(&mut self, w: &Write, expiry: impl Fn(Duration) -> Expiry) {
        match w {
            Write::Put(v, ttl) => {
                self.value = Some((v.clone(), ttl.map(expiry)));
                self.operands.clear();
            }
            Write::Delete => {
                self.value = None;
                self.operands.clear();
            }
            Write::Merge(o) => self.operands.push(o.clone()),
        }
    }

    fn is_empty(&self) -> bool {
        self.value.is_none() && self.operands.is_empty()
    }

    /// What a read sees while the value lives.
    pub fn live(&self) -> Option<Bytes> {
        fold(self.value.as_ref().map(|(v, _)| v), &self.operands)
    }

    /// What a read sees once the value expired: the operands alone.
    pub fn expired(&self) -> Option<Bytes> {
        fold(None, &self.operands)
    }

    fn expiry(&self) -> Option<Expiry> {
        self.value.as_ref().and_then(|(_, e)| *e)
    }

    /// What a read in `w` may see: the live value, the expired one, or
    /// (while `w` overlaps the expiry's window) either.
    pub fn outcomes(&self, w: Window) -> Vec<Option<Bytes>> {
        match self.expiry() {
            Some(e) if w.start >= e.hi => vec![self.expired()],
            Some(e) if w.end < e.lo => vec![self.live()],
            Some(_) => vec![self.live(), self.expired()],
            None => vec![self.live()],
        }
    }

    pub fn allows(&self, w: Window, seen: Option<&Bytes>) -> bool {
        self.outcomes(w).iter().any(|o| o.as_ref() == seen)
    }

    /// Narrows the expiry by what a read in `w` saw (which it allows): seen
    /// live, it expires after `w.start`; seen expired, it had expired by
    /// `w.end`, and every later read finds it gone (the clock never goes
    /// back), as if deleted.
    fn refine(&mut self, w: Window, seen: Option<&Bytes>) {
        let Some(e) = self.expiry() else { return };
        let (live, expired) = (self.live(), self.expired());
        if live == expired {
            return;
        }
        if seen == expired.as_ref() {
            self.value = None;
        } else if seen == live.as_ref() {
            if let Some((_, Some(e2))) = &mut self.value {
                e2.lo = e.lo.max(w.start.saturating_add(1)).min(e.hi);
            }
        }
    }

    /// Which expiry rule a read in `w` that saw `seen` broke, if it is one:
    /// the value seen after its latest expiry, or missing before its
    /// earliest.
    fn expiry_broken(&self, w: Window, seen: Option<&Bytes>) -> Option<&'static str> {
        let e = self.expiry()?;
        if self.live().as_ref() == seen && w.start >= e.hi {
            return Some(EXPIRED_VALUE_SEEN);
        }
        if self.expired().as_ref() == seen && w.end < e.lo {
            return Some(UNEXPIRED_VALUE_MISSING);
        }
        None
    }
}

/// A value read after the latest time its put can have expired.
pub const EXPIRED_VALUE_SEEN: &str = "ExpiredValueSeen";
/// An expiring value missing from a read that ended before the earliest
/// time its put can expire.
pub const UNEXPIRED_VALUE_MISSING: &str = "UnexpiredValueMissing";

fn show(v: Option<&Bytes>) -> String {
    match v {
        Some(v) => format!("{:?}", String::from_utf8_lossy(v)),
        None => "absent".into(),
    }
}

/// A key a read saw differently from every state allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub key: Bytes,
    pub seen: Option<Bytes>,
    /// What the read could have seen there.
    pub allowed: Vec<Option<Bytes>>,
    /// The key's expiry window, if its value expires.
    pub expiry: Option<Expiry>,
    pub window: Window,
    /// [`EXPIRED_VALUE_SEEN`] or [`UNEXPIRED_VALUE_MISSING`] when only the
    /// read's time makes it wrong; `None` for any other difference.
    pub expiry_rule: Option<&'static str>,
}

impl Mismatch {
    /// The invariant a read that shows this breaks: [`EXPIRED_VALUE_SEEN`]
    /// for a value seen after its latest expiry (nothing else shows it),
    /// else `otherwise`. A value missing before its earliest expiry keeps
    /// the read's own invariant: against one state, a write the read missed
    /// looks the same (the prefix judge tells them apart, [`Violation::Expiry`]).
    pub fn invariant(&self, otherwise: &'static str) -> &'static str {
        match self.expiry_rule {
            Some(EXPIRED_VALUE_SEEN) => EXPIRED_VALUE_SEEN,
            _ => otherwise,
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Times on the paused clock are shown from its origin.
        let rel = |ms: u64| ms.checked_sub(crate::clock::ORIGIN_MS).unwrap_or(ms);
        let allowed: Vec<String> = self.allowed.iter().map(|v| show(v.as_ref())).collect();
        write!(
            f,
            "key {} = {} read in [{}, {}] ms, allowed {}",
            String::from_utf8_lossy(&self.key),
            show(self.seen.as_ref()),
            rel(self.window.start),
            rel(self.window.end),
            allowed.join(" or ")
        )?;
        if let Some(e) = self.expiry {
            let hi = if e.hi == u64::MAX { "unknown".to_string() } else { rel(e.hi).to_string() };
            write!(f, " (its put expires in [{}, {hi}] ms)", rel(e.lo))?;
        }
        match self.expiry_rule {
            Some(EXPIRED_VALUE_SEEN) => write!(f, ": seen after its latest expiry"),
            Some(_) => write!(f, ": missing before its earliest expiry"),
            None => Ok(()),
        }
    }
}

fn mismatch(key: &Bytes, cell: Option<&Cell>, w: Window, seen: Option<&Bytes>) -> Mismatch {
    let none = Cell::default();
    let cell = cell.unwrap_or(&none);
    Mismatch {
        key: key.clone(),
        seen: seen.cloned(),
        allowed: cell.outcomes(w),
        expiry: cell.expiry(),
        window: w,
        expiry_rule: cell.expiry_broken(w, seen),
    }
}

/// The first key where `observed`, read in `w`, is not what `state` allows.
pub fn compare(state: &State, observed: &BTreeMap<Bytes, Bytes>, w: Window) -> Option<Mismatch> {
    let mut keys: Vec<&Bytes> = state.keys().chain(observed.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().find_map(|k| {
        let cell = state.get(k);
        let seen = observed.get(k);
        let ok = match cell {
            Some(c) => c.allows(w, seen),
            None => seen.is_none(),
        };
        (!ok).then(|| mismatch(k, cell, w, seen))
    })
}

/// What a read in `w` of `state` met: keys holding merge operands, keys
/// whose put had surely expired (the read began after its latest expiry),
/// and keys whose put may or may not have (the read overlaps its window).
pub fn tally(state: &State, w: Window) -> [u64; 3] {
    let mut t = [0; 3];
    for cell in state.values() {
        t[0] += u64::from(!cell.operands.is_empty());
        if let Some(e) = cell.expiry() {
            t[1] += u64::from(w.start >= e.hi);
            t[2] += u64::from(w.start < e.hi && w.end >= e.lo);
        }
    }
    t
}

/// Narrows `state`'s expiries by a read in `w` that saw `observed` (which
/// it allows); keys known to hold nothing are dropped.
pub fn refine(state: &mut State, observed: &BTreeMap<Bytes, Bytes>, w: Window) {
    for (k, cell) in state.iter_mut() {
        cell.refine(w, observed.get(k));
    }
    state.retain(|_, c| !c.is_empty());
}

/// Checks the next entry a held scan of `state` (begun in `w`) yields after
/// key `after`: every key between them must be allowed to be absent, and
/// the entry's value allowed (`None`: the scan ended, so every key after
/// `after` must be allowed to be absent).
pub fn check_entry(state: &State, w: Window, after: Option<&Bytes>, entry: Option<(&Bytes, &Bytes)>) -> Option<Mismatch> {
    let past = |k: &Bytes| after.is_none_or(|a| k > a);
    let before = |k: &Bytes| entry.is_none_or(|(e, _)| k < e);
    for (k, cell) in state.iter().filter(|(k, _)| past(k) && before(k)) {
        if !cell.allows(w, None) {
            return Some(mismatch(k, Some(cell), w, None));
        }
    }
    let (k, v) = entry?;
    let cell = state.get(k);
    let ok = cell.is_some_and(|c| c.allows(w, Some(v)));
    (!ok).then(|| mismatch(k, cell, w, Some(v)))
}

/// One atomic step of a writer: a put, a delete, a merge, or a batch of them.
#[derive(Clone, Debug)]
pub struct Step {
    pub writes: Vec<(Bytes, Write)>,
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
    /// The schedule clock (ms) when its call began, and the latest it can
    /// have stamped its expiries: when the call returned, or when its
    /// process was gone (`u64::MAX` until then).
    pub began_ms: u64,
    pub stamped_by: u64,
}

impl Step {
    fn expiry(&self, ttl: Duration) -> Expiry {
        let ttl = ttl.as_millis() as u64;
        Expiry { lo: self.began_ms.saturating_add(ttl), hi: self.stamped_by.saturating_add(ttl) }
    }
}

/// What one writer did since the last recovery.
#[derive(Clone, Debug, Default)]
pub struct WriterHistory {
    /// The state of this writer's keys at the last recovery.
    pub base: State,
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
    /// The state is a prefix of the history but for the time: a value seen
    /// after its latest expiry, or missing before its earliest.
    Expiry { writer: usize, prefix: usize, mismatch: Mismatch },
}

impl Violation {
    /// The invariant's number and name, as in the spec.
    pub fn invariant(&self) -> &'static str {
        match self {
            Violation::AckedWriteLost { .. } => "I3 NoAckedWriteLost",
            Violation::NotAPrefix { .. } => "I4 PrefixConsistent",
            Violation::NotWrittenSurvived { .. } => "NotWrittenStaysAbsent",
            Violation::LaterStepSeen { .. } => "I4 PrefixConsistent",
            Violation::Expiry { mismatch, .. } => mismatch.expiry_rule.unwrap_or("I4 PrefixConsistent"),
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
                "I4 violated: writer {writer} key {} = {} matches no prefix of its history",
                String::from_utf8_lossy(key),
                show(observed.as_ref())
            ),
            Violation::NotWrittenSurvived { writer, step } => write!(
                f,
                "NotWrittenStaysAbsent violated: writer {writer} step {step} failed with an error that promises it was not written, but it survived"
            ),
            Violation::LaterStepSeen { writer, step } => write!(
                f,
                "I4 violated: a read-only view of writer {writer}'s keys holds step {step}, whose call began after the view was opened"
            ),
            Violation::Expiry { writer, prefix, mismatch } => write!(
                f,
                "{} violated: writer {writer}'s keys are its first {prefix} steps but for the time: {mismatch}",
                self.invariant()
            ),
        }
    }
}

/// A live read's expectation, taken as the read began (see
/// [`WriterHistory::read_check`]).
#[derive(Clone, Debug)]
pub struct ReadCheck {
    writer: usize,
    expected: State,
}

impl ReadCheck {
    /// Checks a scan of the writer's whole key range, read in `w`; the
    /// error names the invariant (`read-your-writes`, or an expiry rule).
    pub fn scan(&self, seen: &BTreeMap<Bytes, Bytes>, w: Window) -> Result<(), (&'static str, String)> {
        match compare(&self.expected, seen, w) {
            None => Ok(()),
            Some(m) => Err((
                m.invariant("read-your-writes"),
                format!(
                    "writer {} scanned {} keys, but its history as the scan began has {} (first difference: {m})",
                    self.writer,
                    seen.len(),
                    self.expected.len()
                ),
            )),
        }
    }

    /// What a read in `w` met ([`tally`]).
    pub fn tally(&self, w: Window) -> [u64; 3] {
        tally(&self.expected, w)
    }

    /// Checks a point read of one of the writer's keys, read in `w`.
    pub fn get(&self, key: &Bytes, seen: Option<&Bytes>, w: Window) -> Result<(), (&'static str, String)> {
        let cell = self.expected.get(key);
        if cell.map_or(seen.is_none(), |c| c.allows(w, seen)) {
            return Ok(());
        }
        let m = mismatch(key, cell, w, seen);
        Err((m.invariant("read-your-writes"), format!("writer {} read {m}, against its history as the read began", self.writer)))
    }
}

/// What a view of a writer's keys was found to be (see
/// [`WriterHistory::check_follow`]).
#[derive(Clone, Debug)]
pub struct Seen {
    /// The first and the last prefix the view may be.
    pub first: usize,
    pub last: usize,
    /// The state the view holds, narrowed by what it showed: later reads
    /// of the same view are judged against it at their own time.
    pub state: State,
}

impl WriterHistory {
    /// Records a step whose call began at logical time `at` and at `began_ms`
    /// on the schedule clock; returns its index.
    pub fn issue_at(&mut self, writes: Vec<(Bytes, Write)>, at: u64, began_ms: u64) -> usize {
        self.steps.push(Step { writes, acked: false, not_written: false, issued_at: at, acked_at: None, began_ms, stamped_by: u64::MAX });
        self.steps.len() - 1
    }

    /// Records a step whose call began and returned at clock time 0 (tests).
    pub fn issue(&mut self, writes: Vec<(Bytes, Write)>) -> usize {
        let step = self.issue_at(writes, 0, 0);
        self.returned(step, 0);
        step
    }

    /// The step's call returned at `ms` on the schedule clock: its expiries
    /// were stamped by then.
    pub fn returned(&mut self, step: usize, ms: u64) {
        if let Some(s) = self.steps.get_mut(step) {
            s.stamped_by = s.stamped_by.min(ms);
        }
    }

    /// Every process that could still stamp a step is gone at `ms`.
    pub fn close_windows(&mut self, ms: u64) {
        for s in &mut self.steps {
            s.stamped_by = s.stamped_by.min(ms.max(s.began_ms));
        }
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
    pub fn state_after(&self, p: usize) -> State {
        let mut state = self.base.clone();
        for step in &self.steps[..p.min(self.steps.len())] {
            for (k, w) in &step.writes {
                let cell = state.entry(k.clone()).or_default();
                cell.apply(w, |ttl| step.expiry(ttl));
                if cell.is_empty() {
                    state.remove(k);
                }
            }
        }
        state
    }

    /// The current state as this writer's own reads must see it.
    pub fn current(&self) -> State {
        self.state_after(self.steps.len())
    }

    /// What a read of this writer's keys that begins now must return: every
    /// step issued so far, acknowledged or not, since a live writer reads its
    /// own writes. Writers own disjoint keys and issue one call at a time, so
    /// nothing changes these keys while the read runs; a read that returns
    /// anything else missed a write that happened before it began (or broke
    /// an expiry, judged at the read's window).
    pub fn read_check(&self, writer: usize) -> ReadCheck {
        ReadCheck { writer, expected: self.current() }
    }

    /// Checks a recovered state of this writer's keys, read in `w`; on
    /// success returns the surviving prefix length and makes that prefix's
    /// state, narrowed by what was read, the new base.
    pub fn check_and_rebase(&mut self, writer: usize, observed: &BTreeMap<Bytes, Bytes>, w: Window) -> Result<usize, Violation> {
        let required = self.steps.iter().rposition(|s| s.acked).map_or(0, |i| i + 1);
        let p = self.judge(writer, required, self.steps.len(), observed, w)?;
        let mut base = self.state_after(p);
        refine(&mut base, observed, w);
        self.base = base;
        self.steps.clear();
        Ok(p)
    }

    /// Checks the view a read-only open found of this writer's keys: the
    /// open began at logical time `began` and returned at `ended`, and the
    /// view was read in `w`. The view is a prefix of the history (I4)
    /// holding no step reported not written, and none whose call began after
    /// the open returned; with `complete` (the open ran within its lease, so
    /// nothing it read was deleted under it), it holds every step
    /// acknowledged before the open began (I3 for readers).
    pub fn check_view(
        &self,
        writer: usize,
        (began, ended): (u64, u64),
        observed: &BTreeMap<Bytes, Bytes>,
        complete: bool,
        w: Window,
    ) -> Result<Seen, Violation> {
        self.check_follow(writer, (began, ended), observed, complete, 0, w)
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
        w: Window,
    ) -> Result<Seen, Violation> {
        let (began, ended) = window;
        let required = match complete {
            true => self.steps.iter().rposition(|s| s.acked_at.is_some_and(|t| t < began)).map_or(0, |i| i + 1),
            false => 0,
        }
        .max(at_least);
        let issued = self.steps.iter().position(|s| s.issued_at > ended).unwrap_or(self.steps.len());
        let last = self.judge(writer, required, issued, observed, w)?;
        let first = (required..=last).find(|&p| compare(&self.state_after(p), observed, w).is_none()).unwrap_or(last);
        let mut state = self.state_after(last);
        refine(&mut state, observed, w);
        Ok(Seen { first, last, state })
    }

    /// Which prefix `observed` (read in `w`) is: one of at least `required`
    /// steps, at most `upto`, before any step not written.
    fn judge(&self, writer: usize, required: usize, upto: usize, observed: &BTreeMap<Bytes, Bytes>, w: Window) -> Result<usize, Violation> {
        // No prefix may include a step that was not written.
        let limit = self.steps.iter().position(|s| s.not_written).unwrap_or(self.steps.len()).min(upto);
        let states: Vec<State> = (0..=self.steps.len()).map(|p| self.state_after(p)).collect();
        let matching: Vec<usize> = (0..states.len()).filter(|&p| compare(&states[p], observed, w).is_none()).collect();
        if let Some(&p) = matching.iter().rev().find(|&&p| p >= required && p <= limit) {
            return Ok(p);
        }
        match matching.iter().rev().find(|&&p| p >= required) {
            Some(_) => match self.steps.iter().position(|s| s.not_written).filter(|&i| i == limit) {
                Some(step) => Err(Violation::NotWrittenSurvived { writer, step }),
                None => Err(Violation::LaterStepSeen { writer, step: limit }),
            },
            None => match matching.iter().rev().find(|&&p| p <= limit).or(matching.last()) {
                Some(&p) => Err(Violation::AckedWriteLost { writer, step: required.saturating_sub(1), surviving_prefix: p }),
                None => {
                    // A prefix allowed but for the read's time: an expiry
                    // broken (named so only when no prefix explains the state
                    // exactly: a lost write of a value that expires later is
                    // I3 above, not an early expiry).
                    let timeless = (required..=limit).rev().find(|&p| compare(&states[p], observed, Window::ANY).is_none());
                    if let Some((prefix, mismatch)) = timeless.and_then(|p| Some((p, compare(&states[p], observed, w)?))) {
                        return Err(Violation::Expiry { writer, prefix, mismatch });
                    }
                    // Name the first key that differs from the full history's state.
                    let full = &states[states.len() - 1];
                    let key = compare(full, observed, w).map(|m| m.key).or_else(|| observed.keys().next().cloned()).unwrap_or_default();
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

    fn put(k: &str, v: &str) -> (Bytes, Write) {
        (b(k), Write::Put(b(v), None))
    }

    fn del(k: &str) -> (Bytes, Write) {
        (b(k), Write::Delete)
    }

    fn merge(k: &str, o: &str) -> (Bytes, Write) {
        (b(k), Write::Merge(b(o)))
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<Bytes, Bytes> {
        pairs.iter().map(|(k, v)| (b(k), b(v))).collect()
    }

    /// What a read at any time sees of a state without expiring values.
    fn plain(state: &State) -> BTreeMap<Bytes, Bytes> {
        state.iter().filter_map(|(k, c)| Some((k.clone(), c.live()?))).collect()
    }

    const NOW: Window = Window { start: 0, end: 0 };

    fn history() -> WriterHistory {
        let mut h = WriterHistory::default();
        h.issue(vec![put("k1", "v1")]);
        h.issue(vec![put("k2", "v2"), del("k1")]);
        h.issue(vec![put("k3", "v3")]);
        h
    }

    #[test]
    fn any_prefix_holding_the_acked_steps_is_allowed() {
        let mut h = history();
        h.ack(0);
        let observed = plain(&h.state_after(2));
        assert_eq!(h.check_and_rebase(0, &observed, NOW), Ok(2));
        assert_eq!(plain(&h.base), observed);
        assert!(h.steps.is_empty());
    }

    #[test]
    fn a_lost_acknowledged_step_is_i3() {
        let mut h = history();
        h.ack(1);
        let observed = plain(&h.state_after(1));
        let v = h.check_and_rebase(0, &observed, NOW).unwrap_err();
        assert_eq!(v, Violation::AckedWriteLost { writer: 0, step: 1, surviving_prefix: 1 });
        assert_eq!(v.invariant(), "I3 NoAckedWriteLost");
    }

    #[test]
    fn a_later_step_without_an_earlier_one_is_i4() {
        let mut h = history();
        // Step 2 survived, step 1 (k2) did not: no prefix matches.
        let mut observed = plain(&h.state_after(1));
        observed.insert(b("k3"), b("v3"));
        let v = h.check_and_rebase(0, &observed, NOW).unwrap_err();
        assert_eq!(v.invariant(), "I4 PrefixConsistent");
    }

    #[test]
    fn a_read_must_see_every_step_issued_before_it_began() {
        let h = history();
        let check = h.read_check(0);
        assert_eq!(check.scan(&plain(&h.current()), NOW), Ok(()));
        assert!(check.scan(&plain(&h.state_after(2)), NOW).is_err(), "a scan missing step 2 (k3) is caught");
        assert_eq!(check.get(&b("k3"), Some(&b("v3")), NOW), Ok(()));
        assert_eq!(check.get(&b("k1"), None, NOW), Ok(()), "k1 was deleted by step 1");
        assert!(check.get(&b("k3"), None, NOW).is_err(), "a get missing step 2 is caught");
        assert!(check.get(&b("k1"), Some(&b("v1")), NOW).is_err(), "a get seeing a deleted value is caught");
    }

    #[test]
    fn a_step_reported_not_written_must_not_survive() {
        let mut h = history();
        h.not_written(2);
        let mut ok = h.clone();
        assert_eq!(ok.check_and_rebase(0, &plain(&h.state_after(2)), NOW), Ok(2), "everything before it may survive");
        let v = h.check_and_rebase(0, &plain(&h.state_after(3)), NOW).unwrap_err();
        assert_eq!(v, Violation::NotWrittenSurvived { writer: 0, step: 2 });
        assert_eq!(v.invariant(), "NotWrittenStaysAbsent");
    }

    #[test]
    fn a_half_applied_batch_is_i4() {
        let mut h = history();
        let mut observed = plain(&h.state_after(1));
        observed.insert(b("k2"), b("v2")); // the batch's put without its delete
        assert!(matches!(h.check_and_rebase(0, &observed, NOW), Err(Violation::NotAPrefix { .. })));
    }

    #[test]
    fn a_read_only_view_holds_what_was_acknowledged_before_it_and_nothing_issued_after() {
        let mut h = WriterHistory::default();
        h.issue_at(vec![put("k1", "v1")], 1, 0);
        h.ack_at(0, 2);
        h.issue_at(vec![put("k2", "v2")], 3, 0);
        h.issue_at(vec![put("k3", "v3")], 9, 0);
        h.ack_at(1, 10);
        let last = |r: Result<Seen, Violation>| r.map(|s| s.last);
        let s = |p: usize| plain(&h.state_after(p));
        // An open that ran from 5 to 8: step 0 acknowledged before, step 2 issued after.
        assert_eq!(last(h.check_view(0, (5, 8), &s(1), true, NOW)), Ok(1));
        assert_eq!(last(h.check_view(0, (5, 8), &s(2), true, NOW)), Ok(2), "step 1 was in flight: either");
        let lost = h.check_view(0, (5, 8), &s(0), true, NOW).unwrap_err();
        assert_eq!(lost.invariant(), "I3 NoAckedWriteLost");
        assert_eq!(last(h.check_view(0, (5, 8), &s(0), false, NOW)), Ok(0), "past its lease a view may be older");
        assert!(h.check_view(0, (5, 8), &s(3), true, NOW).is_err(), "step 2 began after the open returned");
        assert_eq!(last(h.check_view(0, (5, 12), &s(3), true, NOW)), Ok(3));
    }

    #[test]
    fn a_following_view_never_goes_back_before_the_one_it_follows() {
        let mut h = WriterHistory::default();
        h.issue_at(vec![put("k1", "v1")], 1, 0);
        h.issue_at(vec![del("k1")], 2, 0);
        h.issue_at(vec![put("k2", "v2")], 3, 0);
        let s = |p: usize| plain(&h.state_after(p));
        let span = |r: Result<Seen, Violation>| r.map(|s| (s.first, s.last));
        // Nothing acknowledged: any prefix may be seen, and prefixes 0 and 2
        // are equal (a put undone by a delete).
        assert_eq!(span(h.check_follow(0, (5, 8), &s(0), true, 0, NOW)), Ok((0, 2)));
        // After a view at prefix 1, prefix 0's state is a step back.
        assert_eq!(span(h.check_follow(0, (5, 8), &s(1), true, 0, NOW)), Ok((1, 1)));
        assert!(h.check_follow(0, (9, 12), &s(0), true, 1, NOW).is_ok(), "prefix 2 looks like 0: not a step back");
        let back = h.check_follow(0, (9, 12), &s(1), true, 3, NOW).unwrap_err();
        assert_eq!(back.invariant(), "I3 NoAckedWriteLost");
    }

    #[test]
    fn merge_operands_fold_in_order_onto_the_last_put_or_onto_nothing() {
        let mut h = WriterHistory::default();
        h.issue(vec![merge("k", "+a")]);
        h.issue(vec![merge("k", "+b"), put("j", "x")]);
        h.issue(vec![put("k", "v"), merge("k", "+c")]);
        h.issue(vec![merge("k", "+d")]);
        h.issue(vec![del("k"), merge("k", "+e")]);
        assert_eq!(plain(&h.state_after(2)), map(&[("k", "+a+b"), ("j", "x")]));
        assert_eq!(plain(&h.state_after(4)), map(&[("k", "v+c+d"), ("j", "x")]));
        assert_eq!(plain(&h.current()), map(&[("k", "+e"), ("j", "x")]));
        h.ack_all();
        let check = h.read_check(0);
        for wrong in ["+e+e", "v+c+d+e", "+d+e", ""] {
            let (invariant, _) = check.get(&b("k"), Some(&b(wrong)), NOW).unwrap_err();
            assert_eq!(invariant, "read-your-writes", "{wrong}");
        }
        // A lost, duplicated or reordered operand matches no prefix.
        let mut lost = h.clone();
        lost.steps.truncate(4);
        for wrong in ["v+d", "v+c+c+d", "v+d+c"] {
            let v = lost.clone().check_and_rebase(0, &map(&[("k", wrong), ("j", "x")]), NOW).unwrap_err();
            assert_eq!(v.invariant(), "I4 PrefixConsistent", "{wrong}");
        }
        assert_eq!(lost.check_and_rebase(0, &map(&[("k", "v+c+d"), ("j", "x")]), NOW), Ok(4));
    }

    /// A history on the clock: a put of `k` = "old" that never expires,
    /// then at 100..110 ms a put of "new" that lives 50 ms (expires in
    /// [150, 160]), then a merge "+m" at 120..121.
    fn expiring() -> WriterHistory {
        let mut h = WriterHistory::default();
        h.issue(vec![put("k", "old")]);
        let s = h.issue_at(vec![(b("k"), Write::Put(b("new"), Some(Duration::from_millis(50))))], 1, 100);
        h.returned(s, 110);
        let s = h.issue_at(vec![merge("k", "+m")], 2, 120);
        h.returned(s, 121);
        h
    }

    #[test]
    fn an_expiring_value_is_judged_at_each_read_against_its_expiry_window() {
        let h = expiring();
        let check = h.read_check(0);
        let w = Window::new;
        let (new, gone) = (b("new+m"), b("+m"));
        // Before the earliest expiry: visible, and nothing else.
        assert_eq!(check.get(&b("k"), Some(&new), w(130, 149)), Ok(()));
        let (inv, detail) = check.get(&b("k"), Some(&gone), w(130, 149)).unwrap_err();
        assert_eq!(inv, "read-your-writes", "a read missing a write looks the same against one state");
        assert!(detail.contains("missing before its earliest expiry"), "{detail}");
        // Within the window: either.
        assert_eq!(check.get(&b("k"), Some(&new), w(140, 155)), Ok(()));
        assert_eq!(check.get(&b("k"), Some(&gone), w(140, 155)), Ok(()));
        // After the latest: only the operands on top, folded onto nothing.
        assert_eq!(check.get(&b("k"), Some(&gone), w(160, 170)), Ok(()));
        let (inv, _) = check.get(&b("k"), Some(&new), w(160, 170)).unwrap_err();
        assert_eq!(inv, EXPIRED_VALUE_SEEN);
        // The older value never comes back from under the expired one.
        let (inv, _) = check.get(&b("k"), Some(&b("old+m")), w(160, 170)).unwrap_err();
        assert_eq!(inv, "read-your-writes");
        let (inv, _) = check.scan(&map(&[("k", "old+m")]), w(160, 170)).unwrap_err();
        assert_eq!(inv, "read-your-writes");
    }

    #[test]
    fn a_recovered_expiring_value_is_judged_at_the_recovery_read() {
        let mut h = expiring();
        h.ack_all();
        let v = h.clone().check_and_rebase(0, &map(&[("k", "new+m")]), Window::new(200, 201)).unwrap_err();
        assert_eq!(v.invariant(), EXPIRED_VALUE_SEEN, "{v}");
        let v = h.clone().check_and_rebase(0, &map(&[("k", "old+m")]), Window::new(200, 201)).unwrap_err();
        assert_eq!(v.invariant(), "I4 PrefixConsistent", "{v}");
        let v = h.clone().check_and_rebase(0, &map(&[("k", "+m")]), Window::new(130, 131)).unwrap_err();
        assert_eq!(v.invariant(), UNEXPIRED_VALUE_MISSING, "{v}");
        // Seen expired at 152..153: from then on it is gone for good.
        let mut seen = h.clone();
        assert_eq!(seen.check_and_rebase(0, &map(&[("k", "+m")]), Window::new(152, 153)), Ok(3));
        assert_eq!(seen.base.get(&b("k")).map(|c| c.value.clone()), Some(None));
        // Seen live at 152..153: it expires after 152.
        let mut live = h;
        assert_eq!(live.check_and_rebase(0, &map(&[("k", "new+m")]), Window::new(152, 153)), Ok(3));
        let e = live.base.get(&b("k")).and_then(|c| c.expiry());
        assert_eq!(e, Some(Expiry { lo: 153, hi: 160 }));
        // A step whose call never returned may be stamped until its process ended.
        let mut open = WriterHistory::default();
        open.issue_at(vec![(b("k"), Write::Put(b("v"), Some(Duration::from_millis(10))))], 1, 100);
        assert!(open.read_check(0).get(&b("k"), Some(&b("v")), Window::new(1000, 1001)).is_ok());
        open.close_windows(300);
        let (inv, _) = open.read_check(0).get(&b("k"), Some(&b("v")), Window::new(1000, 1001)).unwrap_err();
        assert_eq!(inv, EXPIRED_VALUE_SEEN);
    }

    #[test]
    fn a_held_scan_is_checked_entry_by_entry_at_its_start() {
        let h = expiring();
        let mut state = h.current();
        state.insert(b("a"), Cell::plain(b("x")));
        let w = Window::new(200, 201);
        assert_eq!(check_entry(&state, w, None, Some((&b("a"), &b("x")))), None);
        assert_eq!(check_entry(&state, w, Some(&b("a")), Some((&b("k"), &b("+m")))), None);
        assert_eq!(check_entry(&state, w, Some(&b("k")), None), None);
        let m = check_entry(&state, w, Some(&b("a")), Some((&b("k"), &b("new+m")))).unwrap();
        assert_eq!(m.expiry_rule, Some(EXPIRED_VALUE_SEEN));
        assert!(check_entry(&state, w, Some(&b("a")), None).is_some(), "k's operands are still there");
        assert!(check_entry(&state, w, None, Some((&b("k"), &b("+m")))).is_some(), "a was skipped");
    }
}
