//! A fault-injecting [`ObjectStore`] wrapper, composable like object_store's
//! own `ThrottledStore` or `LimitStore`.
//!
//! One `FaultStore` is one process's view of a shared inner store. It counts
//! operations, fails chosen operations, holds uploads in flight until the
//! test lands or drops them, turns a landed create into the `AlreadyExists`
//! an S3 retry would report, and crashes: from then on every call fails and
//! each held upload either lands or never does, decided by the seed. It can
//! also delay reads by seeded amounts (on tokio's clock, so a paused clock
//! keeps a seed exact), which makes a read span other tasks' store calls, as
//! on a real object store (a scan that is not one consistent view is caught
//! only when an L0 flush finishes while it awaits its SST reads). With [`RandomFaults`] it fails seeded
//! calls transiently and makes seeded conditional puts ambiguous, recording
//! what it injected ([`FaultStore::injected`]) for trace conformance.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, PutMode, PutOptions, PutPayload, PutResult, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use crate::sync::task::oneshot;

use crate::sync::{lock, Arc, Mutex, StdArc};

/// How an injected fault behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Fails this many times, then the operation succeeds.
    Transient(u32),
    /// Fails every time.
    Permanent,
}

struct PrefixFault {
    prefix: String,
    kind: FaultKind,
    failed: u32,
}

struct HeldPut {
    path: Path,
    payload: PutPayload,
    opts: PutOptions,
    /// Decided when the put was issued: it lands and reports a conflict.
    ambiguous: bool,
    reply: oneshot::Sender<Result<PutResult>>,
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
    /// Calls failed with a transient error.
    pub transient: u64,
    /// Paths whose conditional put landed and reported a conflict, in order.
    pub ambiguous: Vec<Path>,
}

struct State {
    ops: u64,
    fail_ops: Vec<(u64, FaultKind)>,
    prefix_faults: Vec<PrefixFault>,
    hold_prefixes: Vec<String>,
    held: Vec<HeldPut>,
    ambiguous: Vec<(String, u32)>,
    crash_at: Option<u64>,
    crashed: bool,
    rng: StdRng,
    /// Reads wait a duration drawn from `0..=max` by this generator (its
    /// own, so turning delays on leaves the crash's choices as they were).
    read_delay: Option<(Duration, StdRng)>,
    /// Seeded faults on every call, with their own generator.
    random: Option<(RandomFaults, StdRng)>,
    injected: InjectedFaults,
}

/// The fault-injecting wrapper. Cheap to clone: clones share state.
#[derive(Clone)]
pub struct FaultStore {
    inner: StdArc<dyn ObjectStore>,
    state: Arc<Mutex<State>>,
}

fn injected(what: &str, path: &str) -> object_store::Error {
    object_store::Error::Generic { store: "FaultStore", source: format!("{what} at {path}").into() }
}

/// What to do with one operation, decided under the lock.
enum Verdict {
    Proceed,
    Fail(&'static str),
    Crash,
}

impl FaultStore {
    /// Wraps `inner`; every random choice derives from `seed`.
    pub fn new(inner: StdArc<dyn ObjectStore>, seed: u64) -> Self {
        let state = State {
            ops: 0,
            fail_ops: Vec::new(),
            prefix_faults: Vec::new(),
            hold_prefixes: Vec::new(),
            held: Vec::new(),
            ambiguous: Vec::new(),
            crash_at: None,
            crashed: false,
            rng: StdRng::seed_from_u64(seed),
            read_delay: None,
            random: None,
            injected: InjectedFaults::default(),
        };
        Self { inner, state: Arc::new(Mutex::new(state)) }
    }

    /// The wrapped store, as another process would see it after a crash.
    pub fn inner(&self) -> StdArc<dyn ObjectStore> {
        self.inner.clone()
    }

    /// Operations seen so far (each trait call counts once).
    pub fn ops(&self) -> u64 {
        lock(&self.state).ops
    }

    /// Fails the `k`-th operation (1-based) with `kind`.
    pub fn fail_op(&self, k: u64, kind: FaultKind) {
        lock(&self.state).fail_ops.push((k, kind));
    }

    /// Fails operations on paths starting with `prefix`.
    pub fn fail_prefix(&self, prefix: &str, kind: FaultKind) {
        lock(&self.state).prefix_faults.push(PrefixFault { prefix: prefix.to_string(), kind, failed: 0 });
    }

    /// Holds puts to paths starting with `prefix` in flight until released.
    pub fn hold_prefix(&self, prefix: &str) {
        lock(&self.state).hold_prefixes.push(prefix.to_string());
    }

    /// Stops holding new puts (held ones stay held).
    pub fn stop_holding(&self) {
        lock(&self.state).hold_prefixes.clear();
    }

    /// The next `times` conditional puts under `prefix` land, then report
    /// what a retried request whose first attempt landed sees: a create
    /// (`PutMode::Create`) gets `AlreadyExists`, a conditional update
    /// (`PutMode::Update`) gets `Precondition`.
    pub fn ambiguous_creates(&self, prefix: &str, times: u32) {
        lock(&self.state).ambiguous.push((prefix.to_string(), times));
    }

    /// Injects [`RandomFaults`] on every later call, drawn by `seed` (a
    /// generator of their own, so the crash's choices stay as they were).
    pub fn random_faults(&self, faults: RandomFaults, seed: u64) {
        lock(&self.state).random = Some((faults, StdRng::seed_from_u64(seed)));
    }

    /// What [`FaultStore::random_faults`] and [`FaultStore::ambiguous_creates`]
    /// injected so far.
    pub fn injected(&self) -> InjectedFaults {
        lock(&self.state).injected.clone()
    }

    /// Delays every read (`get_opts`, and so `get`, `get_range` and `head`;
    /// `get_ranges`; `list`; `list_with_delimiter`) by a duration drawn
    /// uniformly from `0..=max` in microseconds, by `seed`. The delay is a
    /// `tokio::time::sleep`: on a paused clock it costs no real time and a
    /// seed still replays exactly. A read delayed past a crash fails.
    pub fn delay_reads(&self, max: Duration, seed: u64) {
        lock(&self.state).read_delay = Some((max, StdRng::seed_from_u64(seed)));
    }

    /// The next read's delay, if reads are delayed.
    fn next_read_delay(&self) -> Option<Duration> {
        let mut state = lock(&self.state);
        let (max, rng) = state.read_delay.as_mut()?;
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Some(Duration::from_micros(rng.random_range(0..=micros)))
    }

    /// Waits out the next read's delay (nothing when reads are not delayed).
    async fn delay_read(&self) {
        if let Some(d) = self.next_read_delay() {
            tokio::time::sleep(d).await;
        }
    }

    /// Crashes when the `k`-th operation starts (that operation fails too).
    pub fn crash_at(&self, k: u64) {
        lock(&self.state).crash_at = Some(k);
    }

    /// Whether this view has crashed.
    pub fn is_crashed(&self) -> bool {
        lock(&self.state).crashed
    }

    /// Paths of uploads held in flight, oldest first.
    pub fn held(&self) -> Vec<Path> {
        lock(&self.state).held.iter().map(|h| h.path.clone()).collect()
    }

    /// Lands the held upload of `path` (if held): the object is written, and
    /// the waiting caller, if still there, gets the store's answer.
    pub async fn release(&self, path: &Path) -> bool {
        let held = {
            let mut state = lock(&self.state);
            let Some(i) = state.held.iter().position(|h| &h.path == path) else { return false };
            state.held.remove(i)
        };
        self.land(held).await;
        true
    }

    /// Lands every held upload in an order shuffled by the seed; returns it.
    pub async fn release_all_seeded(&self) -> Vec<Path> {
        let held = {
            let mut state = lock(&self.state);
            let mut held = std::mem::take(&mut state.held);
            held.shuffle(&mut state.rng);
            held
        };
        let order = held.iter().map(|h| h.path.clone()).collect();
        for h in held {
            self.land(h).await;
        }
        order
    }

    /// Drops the held upload of `path`: it never lands; the caller sees an error.
    pub fn lose(&self, path: &Path) -> bool {
        let mut state = lock(&self.state);
        let Some(i) = state.held.iter().position(|h| &h.path == path) else { return false };
        let held = state.held.remove(i);
        let _ = held.reply.send(Err(injected("upload lost", held.path.as_ref())));
        true
    }

    /// Crashes now: every later call fails; each held upload lands or is lost,
    /// by the seed. Returns the paths that landed.
    pub async fn crash(&self) -> Vec<Path> {
        let (land, lost) = {
            let mut state = lock(&self.state);
            state.crashed = true;
            let held = std::mem::take(&mut state.held);
            let mut land = Vec::new();
            let mut lost = Vec::new();
            for h in held {
                if state.rng.random_bool(0.5) {
                    land.push(h);
                } else {
                    lost.push(h);
                }
            }
            (land, lost)
        };
        if std::env::var_os("CRASH_DEBUG").is_some() {
            let name = |h: &HeldPut| h.path.filename().unwrap_or("").trim_start_matches('0').to_string();
            eprintln!(
                "  crash: lands {:?}, lost {:?}",
                land.iter().map(name).collect::<Vec<_>>(),
                lost.iter().map(name).collect::<Vec<_>>()
            );
        }
        for h in lost {
            let _ = h.reply.send(Err(injected("crashed", h.path.as_ref())));
        }
        let mut landed = Vec::new();
        for h in land {
            landed.push(h.path.clone());
            // The object lands; the crashed caller never learns of it.
            let _ = self.inner.put_opts(&h.path, h.payload, h.opts).await;
            let _ = h.reply.send(Err(injected("crashed", h.path.as_ref())));
        }
        landed
    }

    async fn land(&self, held: HeldPut) {
        let is_update = matches!(held.opts.mode, PutMode::Update(_));
        let result = self.inner.put_opts(&held.path, held.payload, held.opts).await;
        let _ = held.reply.send(self.answer(&held.path, is_update, held.ambiguous, result));
    }

    /// The answer the caller of a landed (or refused) put sees: for an
    /// ambiguous one that landed, the conflict a retry would have reported.
    fn answer(&self, path: &Path, is_update: bool, ambiguous: bool, result: Result<PutResult>) -> Result<PutResult> {
        if !(ambiguous && result.is_ok()) {
            return result;
        }
        lock(&self.state).injected.ambiguous.push(path.clone());
        // The first attempt landed; the retry finds the object (a create)
        // or its new version (an update conditional on the old one).
        let source = "injected: a retried request found its own earlier attempt".into();
        Err(match is_update {
            true => object_store::Error::Precondition { path: path.to_string(), source },
            false => object_store::Error::AlreadyExists { path: path.to_string(), source },
        })
    }

    /// Counts the operation and decides whether it fails.
    fn check(&self, path: &str) -> Verdict {
        let mut state = lock(&self.state);
        state.ops += 1;
        let k = state.ops;
        if state.crashed {
            return Verdict::Fail("crashed");
        }
        if state.crash_at == Some(k) {
            return Verdict::Crash;
        }
        if let Some(i) = state.fail_ops.iter().position(|(op, _)| *op == k) {
            let (_, kind) = state.fail_ops[i];
            match kind {
                FaultKind::Permanent => return Verdict::Fail("permanent fault"),
                FaultKind::Transient(n) => {
                    if n <= 1 {
                        state.fail_ops.remove(i);
                    } else {
                        // Later retries are later operations: move the fault to the next op.
                        state.fail_ops[i] = (k + 1, FaultKind::Transient(n - 1));
                    }
                    return Verdict::Fail("transient fault");
                }
            }
        }
        if let Some((faults, rng)) = state.random.as_mut() {
            if faults.transient > 0.0 && rng.random_bool(faults.transient.min(1.0)) {
                state.injected.transient += 1;
                return Verdict::Fail("transient fault");
            }
        }
        for fault in state.prefix_faults.iter_mut().filter(|f| path.starts_with(&f.prefix)) {
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

    async fn gate(&self, path: &str) -> Result<()> {
        match self.check(path) {
            Verdict::Proceed => Ok(()),
            Verdict::Fail(what) => Err(injected(what, path)),
            Verdict::Crash => {
                self.crash().await;
                Err(injected("crashed", path))
            }
        }
    }
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.gate(location.as_ref()).await?;
        let path = location.as_ref();
        let (hold, ambiguous) = {
            let mut state = lock(&self.state);
            let hold = state.hold_prefixes.iter().any(|p| path.starts_with(p.as_str()));
            let conditional = matches!(opts.mode, PutMode::Create | PutMode::Update(_));
            let counted = conditional
                && match state.ambiguous.iter_mut().find(|(p, n)| *n > 0 && path.starts_with(p.as_str())) {
                    Some((_, n)) => {
                        *n -= 1;
                        true
                    }
                    None => false,
                };
            let random = conditional
                && !counted
                && match state.random.as_mut() {
                    Some((faults, rng)) => faults.ambiguous > 0.0 && rng.random_bool(faults.ambiguous.min(1.0)),
                    None => false,
                };
            (hold, counted || random)
        };
        if hold {
            let (reply, answer) = oneshot::channel();
            lock(&self.state).held.push(HeldPut { path: location.clone(), payload, opts, ambiguous, reply });
            return match answer.await {
                Ok(result) => result,
                Err(_) => Err(injected("upload abandoned", path)),
            };
        }
        let is_update = matches!(opts.mode, PutMode::Update(_));
        let result = self.inner.put_opts(location, payload, opts).await;
        self.answer(location, is_update, ambiguous, result)
    }

    // Reads may be delayed first (`delay_reads`); then every request meets
    // the schedule's verdict for the object it reads or writes.
    crate::delegate_object_store!(inner, before |this, request| {
        if request.is_read() {
            this.delay_read().await;
        }
        this.gate(request.path()).await?;
    } => put_multipart_opts, get_opts, get_ranges, list_with_delimiter, copy_opts, rename_opts);

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let this = self.clone();
        locations
            .then(move |path| {
                let this = this.clone();
                async move {
                    let path = path?;
                    this.gate(path.as_ref()).await?;
                    let mut out = this.inner.delete_stream(stream::iter([Ok(path)]).boxed());
                    match out.next().await {
                        Some(result) => result,
                        None => Err(injected("delete returned nothing", "")),
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let path = prefix.map(|p| p.to_string()).unwrap_or_default();
        if let Some(d) = self.next_read_delay() {
            // The operation is counted when the listing starts, as without a
            // delay; a crash during the delay fails the listing.
            let this = self.clone();
            let prefix = prefix.cloned();
            return stream::once(async move {
                tokio::time::sleep(d).await;
                match this.check(&path) {
                    Verdict::Proceed => this.inner.list(prefix.as_ref()),
                    Verdict::Fail(what) => stream::iter([Err(injected(what, &path))]).boxed(),
                    Verdict::Crash => {
                        this.crash().await;
                        stream::iter([Err(injected("crashed", &path))]).boxed()
                    }
                }
            })
            .flatten()
            .boxed();
        }
        match self.check(&path) {
            Verdict::Proceed => self.inner.list(prefix),
            Verdict::Fail(what) => stream::iter([Err(injected(what, &path))]).boxed(),
            Verdict::Crash => {
                let this = self.clone();
                stream::once(async move {
                    this.crash().await;
                    Err(injected("crashed", &path))
                })
                .boxed()
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use bytes::Bytes;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    fn store(seed: u64) -> (FaultStore, StdArc<dyn ObjectStore>) {
        let inner: StdArc<dyn ObjectStore> = Arc::new(InMemory::new());
        (FaultStore::new(inner.clone(), seed), inner)
    }

    fn create() -> PutOptions {
        PutOptions { mode: PutMode::Create, ..Default::default() }
    }

    #[tokio::test]
    async fn counts_and_fails_the_kth_operation_transiently() {
        let (fs, _) = store(1);
        fs.fail_op(2, FaultKind::Transient(1));
        let p = Path::from("a");
        fs.put(&p, Bytes::from_static(b"x").into()).await.unwrap();
        assert!(fs.get(&p).await.is_err(), "op 2 fails");
        assert!(fs.get(&p).await.is_ok(), "op 3 succeeds: the fault was transient");
        assert_eq!(fs.ops(), 3);
    }

    #[tokio::test]
    async fn prefix_faults_can_be_permanent() {
        let (fs, _) = store(1);
        fs.fail_prefix("wal/", FaultKind::Permanent);
        for _ in 0..3 {
            assert!(fs.put(&Path::from("wal/1"), Bytes::new().into()).await.is_err());
        }
        assert!(fs.put(&Path::from("manifest/1"), Bytes::new().into()).await.is_ok());
    }

    #[tokio::test]
    async fn held_uploads_land_in_the_chosen_order() {
        let (fs, inner) = store(1);
        fs.hold_prefix("wal/");
        let a = tokio::spawn({
            let fs = fs.clone();
            async move { fs.put_opts(&Path::from("wal/1"), Bytes::from_static(b"1").into(), create()).await }
        });
        let b = tokio::spawn({
            let fs = fs.clone();
            async move { fs.put_opts(&Path::from("wal/2"), Bytes::from_static(b"2").into(), create()).await }
        });
        while fs.held().len() < 2 {
            tokio::task::yield_now().await;
        }
        assert!(inner.head(&Path::from("wal/2")).await.is_err(), "nothing landed yet");
        assert!(fs.release(&Path::from("wal/2")).await);
        assert!(b.await.unwrap().is_ok());
        assert!(inner.head(&Path::from("wal/2")).await.is_ok());
        assert!(fs.lose(&Path::from("wal/1")));
        assert!(a.await.unwrap().is_err());
        assert!(inner.head(&Path::from("wal/1")).await.is_err(), "a lost upload never lands");
    }

    #[tokio::test]
    async fn ambiguous_create_lands_but_reports_already_exists() {
        let (fs, inner) = store(1);
        fs.ambiguous_creates("manifest/", 1);
        let p = Path::from("manifest/1");
        let err = fs.put_opts(&p, Bytes::from_static(b"m").into(), create()).await.unwrap_err();
        assert!(matches!(err, object_store::Error::AlreadyExists { .. }));
        assert_eq!(inner.get(&p).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"m"));
    }

    #[tokio::test]
    async fn ambiguous_conditional_update_lands_but_reports_precondition() {
        let (fs, inner) = store(1);
        let p = Path::from("manifest/current");
        let first = inner.put(&p, Bytes::from_static(b"v1").into()).await.unwrap();
        fs.ambiguous_creates("manifest/", 1);
        let update = PutOptions {
            mode: PutMode::Update(object_store::UpdateVersion { e_tag: first.e_tag, version: first.version }),
            ..Default::default()
        };
        let err = fs.put_opts(&p, Bytes::from_static(b"v2").into(), update).await.unwrap_err();
        assert!(matches!(err, object_store::Error::Precondition { .. }), "{err:?}");
        assert_eq!(inner.get(&p).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"v2"), "the update landed");
    }

    #[tokio::test]
    async fn random_faults_fail_calls_transiently_and_make_held_creates_ambiguous() {
        let (fs, inner) = store(1);
        fs.random_faults(RandomFaults { transient: 0.3, ambiguous: 1.0 }, 5);
        let p = Path::from("x");
        let mut failures = 0;
        for _ in 0..40 {
            if fs.get(&p).await.is_err_and(|e| matches!(e, object_store::Error::Generic { .. })) {
                failures += 1;
            }
        }
        assert!(failures > 0 && failures < 40, "some calls fail transiently: {failures} of 40");
        assert_eq!(fs.injected().transient, failures);

        // A held create decided ambiguous lands when released and reports AlreadyExists.
        fs.random_faults(RandomFaults { transient: 0.0, ambiguous: 1.0 }, 5);
        fs.hold_prefix("wal/");
        let w = Path::from("wal/1");
        let put = tokio::spawn({
            let fs = fs.clone();
            let w = w.clone();
            async move { fs.put_opts(&w, Bytes::from_static(b"1").into(), create()).await }
        });
        while fs.held().is_empty() {
            tokio::task::yield_now().await;
        }
        assert!(fs.release(&w).await);
        assert!(matches!(put.await.unwrap(), Err(object_store::Error::AlreadyExists { .. })));
        assert!(inner.head(&w).await.is_ok(), "the create landed");
        assert_eq!(fs.injected().ambiguous, vec![w]);
        // An unconditional put is never ambiguous.
        assert!(fs.put(&Path::from("y"), Bytes::new().into()).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_reads_take_seeded_time_on_the_paused_clock_and_fail_after_a_crash() {
        let elapsed = |seed: u64| async move {
            let (fs, inner) = store(1);
            let p = Path::from("a");
            inner.put(&p, Bytes::from_static(b"x").into()).await.unwrap();
            fs.delay_reads(Duration::from_millis(2), seed);
            let start = tokio::time::Instant::now();
            let mut each = Vec::new();
            for _ in 0..8 {
                let t = tokio::time::Instant::now();
                assert_eq!(fs.get(&p).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"x"));
                assert_eq!(fs.get_range(&p, 0..1).await.unwrap(), Bytes::from_static(b"x"));
                assert_eq!(fs.list(None).collect::<Vec<_>>().await.len(), 1);
                each.push(t.elapsed());
            }
            (start.elapsed(), each)
        };
        let (total, each) = elapsed(7).await;
        assert!(total > Duration::from_millis(8), "24 reads of up to 2 ms each took {total:?}");
        assert!(each.iter().all(|d| *d <= Duration::from_millis(6)), "each read waits at most 2 ms: {each:?}");
        assert_eq!(elapsed(7).await, (total, each.clone()), "the same seed, the same delays");
        assert_ne!(elapsed(8).await.1, each, "another seed, other delays");

        // A read whose delay spans a crash fails.
        let (fs, inner) = store(1);
        let p = Path::from("a");
        inner.put(&p, Bytes::from_static(b"x").into()).await.unwrap();
        fs.delay_reads(Duration::from_millis(50), 3);
        let read = tokio::spawn({
            let fs = fs.clone();
            async move { fs.get(&p).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        fs.crash().await;
        assert!(read.await.unwrap().is_err(), "a read delayed past the crash fails");
    }

    #[tokio::test]
    async fn crash_fails_every_later_call_and_settles_held_uploads_by_seed() {
        let mut outcomes = Vec::new();
        for seed in 0..16 {
            let (fs, inner) = store(seed);
            fs.hold_prefix("wal/");
            let put = tokio::spawn({
                let fs = fs.clone();
                async move { fs.put_opts(&Path::from("wal/1"), Bytes::from_static(b"1").into(), create()).await }
            });
            while fs.held().is_empty() {
                tokio::task::yield_now().await;
            }
            fs.crash_at(fs.ops() + 1);
            assert!(fs.get(&Path::from("x")).await.is_err(), "the crashing op fails");
            assert!(fs.is_crashed());
            assert!(put.await.unwrap().is_err(), "the crashed caller never sees success");
            assert!(fs.list(None).next().await.unwrap().is_err());
            outcomes.push(inner.head(&Path::from("wal/1")).await.is_ok());
        }
        assert!(outcomes.contains(&true) && outcomes.contains(&false), "both fates occur: {outcomes:?}");
    }
}
