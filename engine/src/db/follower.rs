//! `DbReader`: a read-only handle on any machine that follows the writer.
//!
//! A follower holds a client checkpoint of its own (so GC in any process
//! keeps what it reads), adopts newer manifest versions as they appear, and
//! applies the WALs past its version exactly where a recovery would replay
//! them (`protocol::Follower`): its views are prefixes of the durable
//! history (I13), never go backwards (I14) and never show a write a
//! recovery drops (I15). It refreshes its checkpoint at half its lifetime,
//! moving the pin forward when no older view of it is held; a follower that
//! could not refresh in time stops reading with [`Error::CheckpointGone`].
//! A durable checkpoint opens the same way, fixed at its creation state.

use std::collections::BTreeMap;
use std::ops::RangeBounds;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;

use super::chain::follow_chain;
use super::checkpoint::{find, Client, CheckpointOptions};
use super::inner::DbInner;
use super::manifest_store::ManifestStore;
use super::open::Opened;
use super::read::{DbIterator, Snapshot};
use crate::error::{Error, Result};
use crate::iter::{KeyRange, ScanOptions};
use crate::manifest::{CheckpointHolder, ManifestObject};
use crate::memtable::MemState;
use crate::paths::Layout;
use crate::protocol::{may_use, CheckpointId, Follower, Protocol, WalId, WalLog};
use crate::settings::Settings;
use crate::store::Stores;
use crate::sync::task::Mutex as TaskMutex;
use crate::sync::{lock, Arc, StdArc};
use crate::trace::{TraceEvent, Tracer};
use crate::wal_object::DecodedWal;
use crate::StoreRef;

/// How a [`DbReader`] follows the writer.
#[derive(Clone, Debug)]
pub struct ReaderOptions {
    /// The lifetime of the reader's checkpoint, refreshed at half of it. A
    /// reader that cannot reach the store for longer stops reading (GC may
    /// then collect what it pinned). Default 10 minutes.
    pub checkpoint_lifetime: Duration,
    /// How often a background task polls for new writes; `None`: only
    /// [`DbReader::poll`] does. Default 1 s.
    pub poll_interval: Option<Duration>,
    /// Engine settings (clock, block cache, store retries, trace recorder).
    pub settings: Settings,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            checkpoint_lifetime: Duration::from_secs(600),
            poll_interval: Some(Duration::from_secs(1)),
            settings: Settings::default(),
        }
    }
}

/// What the reader's checkpoint is.
#[derive(Clone, Copy, Debug)]
enum Holding {
    /// A follower's own checkpoint, refreshed as it goes.
    Own { id: CheckpointId, expires_at: Option<u64>, refreshed_at: u64, lifetime: Duration },
    /// A durable checkpoint someone else holds: a fixed state.
    Durable { id: CheckpointId },
}

struct FollowState {
    follower: Follower,
    holding: Holding,
    /// The data WALs applied past the version, by id.
    wals: BTreeMap<WalId, DecodedWal>,
    /// Why reads stopped, if they did.
    stopped: Option<Error>,
}

struct Shared {
    inner: Arc<DbInner>,
    /// Serialises polls with the capture of read views, so a pin moves only
    /// when no view of an older version is held.
    state: TaskMutex<FollowState>,
}

/// A read-only handle that follows the writer (or opens a durable
/// checkpoint). Reads see a prefix of the acknowledged writes that grows
/// with each poll.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// use std::sync::Arc;
/// use object_store::memory::InMemory;
/// let store: tidemark::StoreRef = Arc::new(InMemory::new());
/// let db = tidemark::Db::open("db", store.clone()).await?;
/// let opts = tidemark::ReaderOptions { poll_interval: None, ..Default::default() };
/// let reader = tidemark::DbReader::open("db", store.clone(), opts).await?;
/// db.put("k", "v").await?;
/// reader.poll().await?;
/// assert_eq!(reader.get("k").await?.as_deref(), Some(&b"v"[..]));
/// reader.close().await?;
/// db.close().await
/// # }
/// ```
pub struct DbReader {
    shared: StdArc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for DbReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DbReader({})", self.shared.inner.layout.root())
    }
}

impl Drop for DbReader {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// The manifest store and latest version of the database under `root`.
async fn latest(stores: &Stores, layout: &Layout, protocol: Protocol) -> Result<(ManifestStore, ManifestObject)> {
    let manifests = ManifestStore::new(stores.store.clone(), layout.clone(), protocol);
    let latest = manifests.latest().await?.ok_or_else(|| Error::NoDatabase { location: layout.root().to_string() })?;
    Ok((manifests, latest))
}

/// A memtable holding `wals` in chain order, and the newest sequence number.
fn memtable_of(wals: &BTreeMap<WalId, DecodedWal>, order: &[WalId]) -> (MemState, Option<u64>) {
    let mem = MemState::default();
    let mut max = None;
    for wal in order.iter().filter_map(|id| wals.get(id)) {
        for (k, seq, v) in &wal.entries {
            mem.active.insert(k.clone(), *seq, v.clone());
            max = max.max(Some(*seq));
        }
    }
    (mem, max)
}

impl DbReader {
    /// Opens a follower of the database under `path`: it records a
    /// checkpoint of its own (one manifest write), reads the latest state
    /// and then follows the writer, by itself every `poll_interval`.
    pub async fn open(path: impl Into<Path>, store: StoreRef, opts: ReaderOptions) -> Result<DbReader> {
        let settings = opts.settings.clone();
        let layout = Layout::new(path.into());
        let stores = Stores::new(store, &settings, &layout);
        let (manifests, latest) = latest(&stores, &layout, settings.protocol).await?;
        let tracer = Tracer::new(settings.recorder.clone());
        let client = Client::with_settings(&stores.store, &layout, &manifests, &settings, &tracer);
        let now = settings.clock.now_ms();
        let lifetime = opts.checkpoint_lifetime;
        let (cp, version) = client.create(&latest, CheckpointOptions { lifetime: Some(lifetime) }, false).await?;
        let holding = Holding::Own { id: cp.id, expires_at: cp.expires_at_ms, refreshed_at: now, lifetime };
        let follower = Follower::open(settings.protocol, &version.view());
        let reader = Self::start(stores, layout, settings, version, follower, holding).await?;
        Ok(match opts.poll_interval {
            Some(every) => reader.poll_every(every),
            None => reader,
        })
    }

    /// Opens durable checkpoint `id` of the database under `path`: exactly
    /// the state at its creation, whatever the writer did since. It fails
    /// with [`Error::CheckpointGone`] once the checkpoint is deleted.
    pub async fn open_checkpoint(path: impl Into<Path>, store: StoreRef, id: CheckpointId) -> Result<DbReader> {
        Self::open_checkpoint_with(path, store, id, Settings::default()).await
    }

    /// [`DbReader::open_checkpoint`] with `settings` (the block cache, the
    /// object sizes it accepts, the trace recorder).
    pub async fn open_checkpoint_with(path: impl Into<Path>, store: StoreRef, id: CheckpointId, settings: Settings) -> Result<DbReader> {
        let layout = Layout::new(path.into());
        let stores = Stores::new(store, &settings, &layout);
        let (manifests, latest) = latest(&stores, &layout, settings.protocol).await?;
        let cp = find(&latest, id)?;
        if cp.holder != CheckpointHolder::Client || cp.wal_end.is_none() {
            return Err(Error::InvalidArgument(format!("checkpoint {id:032x} is not a durable checkpoint")));
        }
        // The latest version records the checkpoint, so what it pins must
        // exist: a missing version is a lost object, not a lapsed checkpoint.
        let version = manifests.read(cp.version).await.map_err(|e| {
            Error::corrupt(layout.manifest(cp.version).to_string(), format!("pinned by live checkpoint {id:032x}, unreadable: {e}"))
        })?;
        let follower = Follower::for_checkpoint(settings.protocol, &cp.to_protocol());
        Self::start(stores, layout, settings, version, follower, Holding::Durable { id }).await
    }

    async fn start(
        stores: Stores,
        layout: Layout,
        settings: Settings,
        version: ManifestObject,
        mut follower: Follower,
        holding: Holding,
    ) -> Result<DbReader> {
        let applied = follow_chain(stores.store.as_ref(), &layout, &mut follower, crate::bounds::max_wal_bytes(&settings)).await?;
        let wals: BTreeMap<WalId, DecodedWal> = applied.into_iter().collect();
        let (mem, replayed) = memtable_of(&wals, follower.applied());
        let epoch = version.writer_epoch;
        let tracer = Tracer::new(settings.recorder.clone());
        let id = match holding {
            Holding::Own { id, .. } | Holding::Durable { id } => id,
        };
        tracer.emit(0, TraceEvent::FollowerOpen { id, version: version.version, applied: follower.applied().to_vec() });
        let inner = DbInner::new(Opened {
            stores,
            layout,
            log: WalLog::new(settings.protocol, epoch, follower.last_read().saturating_add(1), 1),
            settings,
            tracer,
            epoch,
            manifest: version,
            mem,
            replayed,
            fences: Vec::new(),
            read_only: true,
        });
        let state = FollowState { follower, holding, wals, stopped: None };
        Ok(DbReader { shared: StdArc::new(Shared { inner, state: TaskMutex::new(state) }), task: None })
    }

    fn poll_every(mut self, every: Duration) -> Self {
        let shared = StdArc::downgrade(&self.shared);
        self.task = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(shared) = shared.upgrade() else { return };
                if let Err(e) = shared.poll().await {
                    tracing::warn!(error = %e, "follower poll failed");
                    if lock_stopped(&shared).await {
                        return;
                    }
                }
            }
        }));
        self
    }

    /// Catches up with the writer now: adopts the latest manifest version,
    /// applies the WALs the chain holds past it, and refreshes the reader's
    /// checkpoint when half its lifetime has passed. Returns whether the
    /// view changed. A durable checkpoint's reader never changes.
    pub async fn poll(&self) -> Result<bool> {
        self.shared.poll().await
    }

    /// The manifest version the reader reads and the WALs it applied past it.
    pub async fn position(&self) -> (u64, Vec<WalId>) {
        let st = self.shared.state.lock().await;
        (st.follower.version(), st.follower.applied().to_vec())
    }

    /// Requests this reader made to the store, by kind: what following costs.
    pub fn requests(&self) -> crate::metrics::StoreRequests {
        self.shared.inner.requests.snapshot()
    }

    /// The checkpoint the reader holds.
    pub async fn checkpoint_id(&self) -> CheckpointId {
        match self.shared.state.lock().await.holding {
            Holding::Own { id, .. } | Holding::Durable { id } => id,
        }
    }

    /// The newest value of `key` in the reader's current view.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        super::check_key(key, self.shared.inner.settings.max_key_size)?;
        self.snapshot().await?.get(key).await
    }

    /// Live keys and values in `range`, in key order, of the current view.
    pub async fn scan(&self, range: impl RangeBounds<Bytes>) -> Result<DbIterator> {
        self.scan_with(range, ScanOptions::default()).await
    }

    /// As [`DbReader::scan`], with options.
    pub async fn scan_with(&self, range: impl RangeBounds<Bytes>, opts: ScanOptions) -> Result<DbIterator> {
        let range: KeyRange = (range.start_bound().cloned(), range.end_bound().cloned());
        Ok(self.shared.view().await?.iter(&range, opts))
    }

    /// The current view, held: later polls do not change it, and the
    /// reader's pin stays at or below its version while it lives.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot { view: self.shared.view().await?, max_key_size: self.shared.inner.settings.max_key_size })
    }

    /// Stops following and drops the reader's own checkpoint (one manifest
    /// write), so GC may collect what only it kept. A durable checkpoint's
    /// reader leaves the checkpoint in place.
    pub async fn close(mut self) -> Result<()> {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let mut st = self.shared.state.lock().await;
        let Holding::Own { id, .. } = st.holding else { return Ok(()) };
        st.stopped = Some(Error::InvalidArgument("the reader is closed".into()));
        let inner = &self.shared.inner;
        let latest = inner.manifests.latest().await?.ok_or_else(|| Error::NoDatabase { location: inner.layout.root().to_string() })?;
        if find(&latest, id).is_err() {
            return Ok(()); // Expired and dropped already.
        }
        match Client::of(inner).delete(&latest, id).await {
            Ok(_) | Err(Error::CheckpointGone { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}


async fn lock_stopped(shared: &Shared) -> bool {
    shared.state.lock().await.stopped.is_some()
}

impl Shared {
    /// A read view of the current state, if the reader may still read.
    async fn view(&self) -> Result<super::read::ReadView> {
        let st = self.state.lock().await;
        self.check(&st)?;
        Ok(self.inner.read_view())
    }

    /// Whether the reader may read through its checkpoint now.
    fn check(&self, st: &FollowState) -> Result<()> {
        if let Some(e) = &st.stopped {
            return Err(copy_error(e));
        }
        if let Holding::Own { id, expires_at, .. } = st.holding {
            if !may_use(expires_at, self.inner.settings.clock.now_ms()) {
                return Err(Error::CheckpointGone { id, detail: "it expired before the reader refreshed it".into() });
            }
        }
        Ok(())
    }

    async fn poll(&self) -> Result<bool> {
        let mut st = self.state.lock().await;
        self.check(&st)?;
        let Holding::Own { id, refreshed_at, lifetime, .. } = st.holding else { return Ok(false) };
        let inner = &self.inner;
        let latest = inner.manifests.latest().await?.ok_or_else(|| Error::NoDatabase { location: inner.layout.root().to_string() })?;
        if let Err(e) = find(&latest, id) {
            st.stopped = Some(copy_error(&e));
            return Err(e);
        }
        let now = inner.settings.clock.now_ms();
        let half = (lifetime.as_millis() as u64) / 2;
        let mut target = latest;
        if now >= refreshed_at.saturating_add(half) {
            // The pin moves only if no view of a version older than the one
            // read now is held (a snapshot or a scan in flight).
            let move_pin = inner.oldest_live_tree().version >= st.follower.version();
            match Client::of(inner).refresh(&target, id, lifetime, move_pin).await {
                Ok(v) => {
                    let expires_at = Some(now.saturating_add(lifetime.as_millis() as u64));
                    st.holding = Holding::Own { id, expires_at, refreshed_at: now, lifetime };
                    target = v;
                }
                Err(e @ Error::CheckpointGone { .. }) => {
                    st.stopped = Some(copy_error(&e));
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        let adopted = st.follower.adopt(&target.view());
        let applied = match follower_skips_wals(inner) {
            true => Vec::new(),
            false => follow_chain(inner.store.as_ref(), &inner.layout, &mut st.follower, crate::bounds::max_wal_bytes(&inner.settings)).await?,
        };
        if !adopted && applied.is_empty() {
            return Ok(false);
        }
        let st = &mut *st;
        let new: Vec<WalId> = applied.iter().map(|(w, _)| *w).collect();
        st.wals.extend(applied);
        let keep = st.follower.applied().to_vec();
        st.wals.retain(|w, _| keep.contains(w));
        let (mut mem, replayed) = memtable_of(&st.wals, &keep);
        let tree = adopted.then(|| inner.open_tree(&target));
        {
            let mut current = lock(&inner.mem);
            mem.last_seq = current.last_seq.max(replayed.unwrap_or(0));
            *current = mem;
            if let Some(tree) = tree {
                inner.set_tree(tree);
            }
        }
        if adopted {
            *inner.manifest.lock().await = target;
        }
        inner.tracer.emit(0, TraceEvent::FollowerPoll { id, version: st.follower.version(), applied: new });
        Ok(true)
    }
}

/// Mutant `follower-skips-wals` (`Settings::follower_skips_wals`).
fn follower_skips_wals(inner: &DbInner) -> bool {
    #[cfg(feature = "mutants")]
    return inner.settings.follower_skips_wals;
    #[cfg(not(feature = "mutants"))]
    {
        let _ = inner;
        false
    }
}

/// The error a stopped reader returns on every later call.
fn copy_error(e: &Error) -> Error {
    match e {
        Error::CheckpointGone { id, detail } => Error::CheckpointGone { id: *id, detail: detail.clone() },
        other => Error::InvalidArgument(format!("the reader stopped: {other}")),
    }
}
