//! A fault-injecting [`ObjectStore`] wrapper, composable like object_store's
//! own `ThrottledStore` or `LimitStore`.
//!
//! One `FaultStore` is one process's view of a shared inner store. It counts
//! operations, fails chosen operations, holds uploads, listings and reads in
//! flight until the test releases or drops them ([`held`]), turns a landed
//! create into the `AlreadyExists` an S3 retry would report, and crashes:
//! from then on every call fails and each held upload either lands or never
//! does, decided by the seed. It can delay reads by seeded amounts (on
//! tokio's clock, so a paused clock keeps a seed exact), which makes a read
//! span other tasks' store calls, as on a real object store. With
//! [`RandomFaults`] it fails seeded calls transiently and makes seeded
//! conditional puts ambiguous, recording what it injected
//! ([`FaultStore::injected`]) for trace conformance. Given a clock, it shows
//! each object's creation time on that clock in listings and heads
//! ([`stamps`]), so GC ages objects on the harness's clock.

mod faults;
mod held;
mod stamps;
#[cfg(all(test, not(loom)))]
mod tests;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, ObjectMeta, ObjectStore, PutMode, PutOptions, PutPayload, PutResult, Result,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::clock::Clock;
use crate::sync::task::oneshot;
use crate::sync::{lock, Arc, Mutex, StdArc};

pub use faults::{FaultKind, InjectedFaults, RandomFaults};
pub use held::{HeldKind, HeldRequest};
pub use stamps::CreationTimes;

use faults::{injected, PrefixFault, Verdict};
use held::{Held, HeldPut, HoldRules, Waiting};
use stamps::Stamper;

struct State {
    ops: u64,
    fail_ops: Vec<(u64, FaultKind)>,
    prefix_faults: Vec<PrefixFault>,
    hold: HoldRules,
    held: Vec<Held>,
    next_held: u64,
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
    stamper: Option<Stamper>,
    /// Requests held so far, by kind: uploads, listings, reads.
    held_total: [u64; 3],
}

/// The fault-injecting wrapper. Cheap to clone: clones share state.
#[derive(Clone)]
pub struct FaultStore {
    inner: StdArc<dyn ObjectStore>,
    state: Arc<Mutex<State>>,
    /// Who calls through this clone ([`FaultStore::labelled`]), recorded
    /// with each ambiguous create it injects.
    label: &'static str,
}

impl FaultStore {
    /// A clone sharing this store's state whose ambiguous creates are
    /// recorded as `label`'s ([`InjectedFaults::ambiguous`]): processes of
    /// different roles on one store tell a checker who made an object whose
    /// create they never heard back about.
    pub fn labelled(&self, label: &'static str) -> Self {
        Self { label, ..self.clone() }
    }

    /// Wraps `inner`; every random choice derives from `seed`.
    pub fn new(inner: StdArc<dyn ObjectStore>, seed: u64) -> Self {
        let state = State {
            ops: 0,
            fail_ops: Vec::new(),
            prefix_faults: Vec::new(),
            hold: HoldRules::default(),
            held: Vec::new(),
            next_held: 0,
            ambiguous: Vec::new(),
            crash_at: None,
            crashed: false,
            rng: StdRng::seed_from_u64(seed),
            read_delay: None,
            random: None,
            injected: InjectedFaults::default(),
            stamper: None,
            held_total: [0; 3],
        };
        Self { inner, state: Arc::new(Mutex::new(state)), label: "" }
    }

    /// The wrapped store, as another process would see it after a crash.
    pub fn inner(&self) -> StdArc<dyn ObjectStore> {
        self.inner.clone()
    }

    /// Operations seen so far (each trait call counts once).
    pub fn ops(&self) -> u64 {
        lock(&self.state).ops
    }

    /// Records when each object lands, on `clock`, in `times` (shared with
    /// the other processes' stores), and shows that time as `last_modified`
    /// in listings, heads and reads. Objects landed before, or by a store
    /// without a clock, keep the inner store's time.
    pub fn with_clock(self, clock: StdArc<dyn Clock>, times: CreationTimes) -> Self {
        lock(&self.state).stamper = Some(Stamper { clock, times });
        self
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
        lock(&self.state).hold.uploads.push(prefix.to_string());
    }

    /// Holds listings of prefixes starting with `prefix`: each is taken when
    /// asked and answered when released, so the caller acts on a view the
    /// store may have moved past (uploads landed, objects deleted).
    pub fn hold_listings(&self, prefix: &str) {
        lock(&self.state).hold.listings.push(prefix.to_string());
    }

    /// Holds reads (`get_opts`, `head`, `get_ranges`) of paths starting with
    /// `prefix`: each goes to the store only when released.
    pub fn hold_reads(&self, prefix: &str) {
        lock(&self.state).hold.reads.push(prefix.to_string());
    }

    /// Stops holding new requests of every kind (held ones stay held).
    pub fn stop_holding(&self) {
        lock(&self.state).hold = HoldRules::default();
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
        let state = lock(&self.state);
        state.held.iter().filter_map(|h| matches!(h.waiting, Waiting::Put(_)).then(|| h.request().path)).collect()
    }

    /// How many uploads, listings and reads were held so far.
    pub fn held_total(&self) -> [u64; 3] {
        lock(&self.state).held_total
    }

    /// Every request held in flight (uploads, listings, reads), oldest first.
    pub fn held_requests(&self) -> Vec<HeldRequest> {
        lock(&self.state).held.iter().map(Held::request).collect()
    }

    /// Lands the held upload of `path` (if held): the object is written, and
    /// the waiting caller, if still there, gets the store's answer.
    pub async fn release(&self, path: &Path) -> bool {
        let held = {
            let mut state = lock(&self.state);
            let Some(i) = state.held.iter().position(|h| h.is_put_of(path)) else { return false };
            state.held.remove(i)
        };
        self.settle(held).await;
        true
    }

    /// Releases the held request `id` (see [`FaultStore::held_requests`]):
    /// an upload lands, a listing is answered, a read goes to the store.
    pub async fn release_request(&self, id: u64) -> bool {
        let held = {
            let mut state = lock(&self.state);
            let Some(i) = state.held.iter().position(|h| h.id == id) else { return false };
            state.held.remove(i)
        };
        self.settle(held).await;
        true
    }

    /// Releases every held request in an order shuffled by the seed; returns
    /// the paths in that order.
    pub async fn release_all_seeded(&self) -> Vec<Path> {
        let held = {
            let mut state = lock(&self.state);
            let mut held = std::mem::take(&mut state.held);
            held.shuffle(&mut state.rng);
            held
        };
        let order = held.iter().map(|h| h.request().path).collect();
        for h in held {
            self.settle(h).await;
        }
        order
    }

    /// Drops the held upload of `path`: it never lands; the caller sees an error.
    pub fn lose(&self, path: &Path) -> bool {
        let mut state = lock(&self.state);
        let Some(i) = state.held.iter().position(|h| h.is_put_of(path)) else { return false };
        if let Waiting::Put(p) = state.held.remove(i).waiting {
            let _ = p.reply.send(Err(injected("upload lost", p.path.as_ref())));
        }
        true
    }

    /// Crashes now: every later call fails; each held upload lands or is
    /// lost, by the seed; held listings and reads fail. Returns the paths
    /// that landed.
    pub async fn crash(&self) -> Vec<Path> {
        let (land, lost) = {
            let mut state = lock(&self.state);
            state.crashed = true;
            let held = std::mem::take(&mut state.held);
            let mut land = Vec::new();
            let mut lost = Vec::new();
            // Listings and reads are dropped here: their callers see an error.
            for p in held.into_iter().filter_map(|h| match h.waiting {
                Waiting::Put(p) => Some(p),
                _ => None,
            }) {
                if state.rng.random_bool(0.5) {
                    land.push(p);
                } else {
                    lost.push(p);
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
            if self.inner.put_opts(&h.path, h.payload, h.opts).await.is_ok() {
                self.stamp(&h.path);
            }
            let _ = h.reply.send(Err(injected("crashed", h.path.as_ref())));
        }
        landed
    }

    /// Answers a held request.
    async fn settle(&self, held: Held) {
        match held.waiting {
            Waiting::Put(p) => {
                let is_update = matches!(p.opts.mode, PutMode::Update(_));
                let result = self.inner.put_opts(&p.path, p.payload, p.opts).await;
                if result.is_ok() {
                    self.stamp(&p.path);
                }
                let _ = p.reply.send(self.answer(&p.path, is_update, p.ambiguous, result));
            }
            Waiting::List { listed, reply, .. } => {
                let _ = reply.send(listed);
            }
            Waiting::Read { go, .. } => {
                let _ = go.send(());
            }
        }
    }

    /// Holds `waiting` and returns its id. After a crash nothing is held:
    /// `waiting` is dropped, so its caller sees the crash at once (a listing
    /// that was still reading the inner store when the crash came would
    /// otherwise wait for a release that never comes).
    fn hold(&self, waiting: Waiting) -> Option<u64> {
        let mut state = lock(&self.state);
        if state.crashed {
            return None;
        }
        let id = state.next_held;
        state.next_held += 1;
        let kind = match waiting {
            Waiting::Put(_) => 0,
            Waiting::List { .. } => 1,
            Waiting::Read { .. } => 2,
        };
        state.held_total[kind] += 1;
        state.held.push(Held { id, waiting });
        Some(id)
    }

    fn stamper(&self) -> Option<Stamper> {
        lock(&self.state).stamper.clone()
    }

    fn stamp(&self, path: &Path) {
        if let Some(s) = self.stamper() {
            s.landed(path);
        }
    }

    fn restamp(&self, meta: &mut ObjectMeta) {
        if let Some(s) = self.stamper() {
            s.restamp(meta);
        }
    }

    /// The answer the caller of a landed (or refused) put sees: for an
    /// ambiguous one that landed, the conflict a retry would have reported.
    fn answer(&self, path: &Path, is_update: bool, ambiguous: Option<&'static str>, result: Result<PutResult>) -> Result<PutResult> {
        let Some(label) = ambiguous.filter(|_| result.is_ok()) else { return result };
        lock(&self.state).injected.ambiguous.push((path.clone(), label));
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
        lock(&self.state).verdict(path)
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

    /// What every read does before it reaches the store: its delay, the
    /// schedule's verdict, and, if reads of its path are held, the wait
    /// until it is released (a crash meanwhile fails it).
    async fn before_read(&self, location: &Path) -> Result<()> {
        self.delay_read().await;
        self.gate(location.as_ref()).await?;
        let hold = HoldRules::holds(&lock(&self.state).hold.reads, location.as_ref());
        if hold {
            let (go, wait) = oneshot::channel();
            self.hold(Waiting::Read { path: location.clone(), go });
            if wait.await.is_err() {
                return Err(injected("crashed", location.as_ref()));
            }
        }
        Ok(())
    }

    /// A listing that passed its verdict: taken now; held if listings of
    /// `prefix` are; shown with stamped times.
    fn listing(&self, prefix: Option<Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let path = prefix.as_ref().map(|p| p.to_string()).unwrap_or_default();
        let (hold, stamper) = {
            let state = lock(&self.state);
            (HoldRules::holds(&state.hold.listings, &path), state.stamper.clone())
        };
        let listed = self.inner.list(prefix.as_ref());
        let restamp = move |mut m: ObjectMeta| {
            if let Some(s) = &stamper {
                s.restamp(&mut m);
            }
            m
        };
        if !hold {
            return listed.map_ok(restamp).boxed();
        }
        let this = self.clone();
        stream::once(async move {
            let listed: Vec<ObjectMeta> = match listed.try_collect().await {
                Ok(v) => v,
                Err(e) => return stream::iter(vec![Err(e)]).boxed(),
            };
            let (reply, answer) = oneshot::channel();
            this.hold(Waiting::List { prefix: Path::from(path.as_str()), listed, reply });
            match answer.await {
                Ok(listed) => stream::iter(listed.into_iter().map(restamp).map(Ok).collect::<Vec<_>>()).boxed(),
                Err(_) => stream::iter(vec![Err(injected("crashed", &path))]).boxed(),
            }
        })
        .flatten()
        .boxed()
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
            let hold = HoldRules::holds(&state.hold.uploads, path);
            let conditional = matches!(opts.mode, PutMode::Create | PutMode::Update(_));
            (hold, (conditional && state.take_ambiguous(path)).then_some(self.label))
        };
        if hold {
            let (reply, answer) = oneshot::channel();
            self.hold(Waiting::Put(HeldPut { path: location.clone(), payload, opts, ambiguous, reply }));
            return match answer.await {
                Ok(result) => result,
                Err(_) => Err(injected("upload abandoned", path)),
            };
        }
        let is_update = matches!(opts.mode, PutMode::Update(_));
        let result = self.inner.put_opts(location, payload, opts).await;
        if result.is_ok() {
            self.stamp(location);
        }
        self.answer(location, is_update, ambiguous, result)
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.before_read(location).await?;
        let mut result = self.inner.get_opts(location, options).await?;
        self.restamp(&mut result.meta);
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        self.before_read(location).await?;
        self.inner.get_ranges(location, ranges).await
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.delay_read().await;
        self.gate(prefix.map(|p| p.as_ref()).unwrap_or_default()).await?;
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        for m in &mut result.objects {
            self.restamp(m);
        }
        Ok(result)
    }

    // Every other request meets the schedule's verdict for the object it
    // writes (copies and renames keep the inner store's times).
    crate::delegate_object_store!(inner, before |this, request| {
        this.gate(request.path()).await?;
    } => put_multipart_opts, copy_opts, rename_opts);

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let this = self.clone();
        locations
            .then(move |path| {
                let this = this.clone();
                async move {
                    let path = path?;
                    this.gate(path.as_ref()).await?;
                    let mut out = this.inner.delete_stream(stream::iter([Ok(path)]).boxed());
                    let result = match out.next().await {
                        Some(result) => result,
                        None => Err(injected("delete returned nothing", "")),
                    };
                    if let (Ok(p), Some(s)) = (&result, this.stamper()) {
                        s.deleted(p);
                    }
                    result
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let path = prefix.map(|p| p.to_string()).unwrap_or_default();
        let this = self.clone();
        let prefix = prefix.cloned();
        if let Some(d) = self.next_read_delay() {
            // The operation is counted when the listing starts, as without a
            // delay; a crash during the delay fails the listing.
            return stream::once(async move {
                tokio::time::sleep(d).await;
                match this.check(&path) {
                    Verdict::Proceed => this.listing(prefix),
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
            Verdict::Proceed => self.listing(prefix),
            Verdict::Fail(what) => stream::iter([Err(injected(what, &path))]).boxed(),
            Verdict::Crash => stream::once(async move {
                this.crash().await;
                Err(injected("crashed", &path))
            })
            .boxed(),
        }
    }
}
