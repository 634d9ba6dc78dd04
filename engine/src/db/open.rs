//! Opening a database: claim the epoch, walk the WAL chain, fence, replay —
//! each step decided by `protocol` (see spec/protocol.md, `Recover`, `Fence`).

use object_store::path::Path;
use object_store::ObjectStore;
use tracing::Instrument;

use super::chain::{read_chain, read_chain_with, refuse_operands_without_operator, replay};
use super::inner::DbInner;
use super::manifest_store::{Claim, Committed, ManifestStore, RACE_ATTEMPTS};
use super::tree::OpenTree;
use super::{compactor, gc, l0_flush, wal_writer, Db};
use crate::bounds::{ObjectKind, ReadLimits};
use crate::cache::BlockCache;
use crate::commit::CommitLog;
use crate::error::{Error, Result};
use crate::manifest::ManifestObject;
use crate::memtable::MemState;
use crate::paths::Layout;
use crate::protocol::{
    fenced_by, on_fence_conflict, resolve_create_conflict, Epoch, FenceConflict, ObjectOwner, Protocol, Role, WalId, WalLog,
};
use crate::settings::Settings;
use crate::store::{create, read, Stores};
use crate::sync::task::{Mutex as TaskMutex, Notify};
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, StdArc};
use crate::trace::{TraceEvent, Tracer};
use crate::wal_object::{decode_wal, encode_wal};

/// `Recover` step 1: create the next manifest version with a new epoch,
/// through the one commit loop (a claim is never fenced: it claims again
/// above whatever version it finds). Also returns whether the version it
/// claimed from was cleanly closed.
async fn claim(manifests: &ManifestStore, tracer: &Tracer) -> Result<(ManifestObject, bool)> {
    let latest = manifests.latest().await?.unwrap_or_else(ManifestObject::empty);
    // `Recover` is recorded as soon as the claim is ours, before the listing
    // that checks for a reopened slot: a crash there leaves a claimed epoch.
    let recorded = |next: &ManifestObject| tracer.emit(next.writer_epoch, TraceEvent::Recover { version: next.version });
    match manifests.commit(&latest, &Claim::Writer, recorded).await? {
        Committed::Applied { version, base } => Ok((version, base.writer_closed)),
        Committed::Fenced { by } => Err(Error::InvalidArgument(format!("an epoch claim cannot be fenced (by {by})"))),
        Committed::Refused(c) => Err(Error::InvalidArgument(format!("epoch claim refused: {c:?}"))),
    }
}

/// What a writer's open and a read-only open decide differently; everything
/// else of `DbInner` is built in one place, `DbInner::new`, so a new field
/// cannot be forgotten in one of the two opens.
pub(super) struct Opened {
    pub(super) stores: Stores,
    pub(super) layout: Layout,
    pub(super) settings: Settings,
    pub(super) tracer: Tracer,
    pub(super) epoch: Epoch,
    pub(super) log: WalLog,
    /// The manifest whose SSTs are opened and which the handle starts from.
    pub(super) manifest: ManifestObject,
    /// The memtable the WALs were replayed into, and the highest sequence
    /// number replayed.
    pub(super) mem: MemState,
    pub(super) replayed: Option<u64>,
    pub(super) fences: Vec<WalId>,
    pub(super) read_only: bool,
}

impl DbInner {
    /// Opens the manifest's SSTs and replays the chain's WALs into a fresh
    /// memtable, with sequence numbers from `seq_base`.
    pub(super) fn new(o: Opened) -> Arc<DbInner> {
        let Opened { stores, layout, settings, tracer, epoch, log, manifest, mut mem, replayed, fences, read_only } = o;
        let Stores { store, requests, hedge_stats, wal: _ } = stores;
        let block_cache = BlockCache::new(settings.block_cache_bytes);
        let sst_limit = ReadLimits::of(&settings).sst_bytes;
        let tree = StdArc::new(OpenTree::of(&store, &block_cache, &layout, &manifest, &Default::default(), sst_limit));
        let manifests = ManifestStore::new(store.clone(), layout.clone(), settings.protocol);
        let next_seq = super::seq_base(epoch, replayed);
        mem.last_seq = next_seq.saturating_sub(1);
        Arc::new(DbInner {
            store,
            layout,
            epoch,
            commit: CommitLog::with_tracer(log, tracer.clone()),
            tracer,
            mem: Mutex::new(mem),
            next_seq: AtomicU64::new(next_seq),
            // The first tree is registered too: a scan begun before the
            // first compaction keeps its SSTs from GC like any other.
            trees: Mutex::new(vec![StdArc::downgrade(&tree)]),
            tree: Mutex::new(tree),
            compaction: TaskMutex::new(Default::default()),
            pinned: Mutex::new(Default::default()),
            last_sst_id: Mutex::new(0),
            wake_compactor: Notify::new(),
            manifests,
            manifest: TaskMutex::new(manifest),
            wake_flusher: Notify::new(),
            wake_l0: Notify::new(),
            durable_changed: Notify::new(),
            space_freed: Notify::new(),
            memtable_full: AtomicBool::new(false),
            flush_wanted: AtomicBool::new(false),
            uploads_in_flight: AtomicUsize::new(0),
            read_only,
            hedge_stats,
            fences,
            block_cache,
            requests,
            stalls: super::stall::StallLedger::new(),
            settings,
            compaction_failed: Mutex::new(None),
            compactor_fenced: AtomicBool::new(false),
            flush_failing: Default::default(),
            compaction_failing: Default::default(),
        })
    }
}

/// The background tasks of a writer: the WAL writer, the L0 flusher, and
/// (as configured) the compactor and periodic GC.
fn spawn(inner: &Arc<DbInner>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(wal_writer::run(inner.clone())), tokio::spawn(l0_flush::run(inner.clone()))];
    if inner.settings.compactor {
        tasks.push(tokio::spawn(compactor::run(inner.clone())));
    }
    if !inner.settings.gc_interval.is_zero() {
        tasks.push(tokio::spawn(gc::periodic(inner.clone())));
    }
    tasks
}

/// The compare-and-set probe on every store this writer creates objects
/// in: the main store under the database root and, if WALs have a store of
/// their own, that store under its root (fences are created there).
async fn probe(stores: &Stores, layout: &Layout, settings: &Settings) -> Result<()> {
    use crate::store::probe::require_create_if_absent;
    require_create_if_absent(stores.store.as_ref(), layout.root(), settings.max_retries).await?;
    if let Some((wal, root)) = &stores.wal {
        require_create_if_absent(wal.as_ref(), root, settings.max_retries).await?;
    }
    Ok(())
}

impl Db {
    /// Opens the database a URL names as a writer, creating it if there is
    /// none: `file:///dir`, `memory://` (a fresh in-memory store, gone with
    /// the handle), `s3://bucket/prefix` (feature `aws`; see [`store_for_url`](crate::store_for_url)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let url = format!("file://{}", dir.path().display());
    ///
    /// let db = tidemark::Db::open_url(&url, tidemark::Settings::default()).await?;
    /// db.put("k", "v").await?;
    /// db.close().await?;
    ///
    /// let db = tidemark::Db::open_url(&url, tidemark::Settings::default()).await?;
    /// assert_eq!(db.get("k").await?.as_deref(), Some(&b"v"[..]));
    /// db.close().await
    /// # }
    /// ```
    pub async fn open_url(url: &str, settings: Settings) -> Result<Db> {
        let (store, root) = crate::store::url::store_for_url(url)?;
        Db::open_with(root, store, settings).await
    }

    /// Opens (or creates) the database under `path` in `store` as a writer,
    /// with default settings. `store` is any `object_store` store that
    /// honours create-if-absent ([`Error::NoCompareAndSet`](crate::Error::NoCompareAndSet) otherwise).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// use std::sync::Arc;
    /// use object_store::memory::InMemory;
    ///
    /// let store = Arc::new(InMemory::new());
    /// let db = tidemark::Db::open("tenants/a", store.clone()).await?;
    /// db.put("k", "v").await?;
    /// db.close().await?;
    /// assert!(tidemark::database_exists(store.as_ref(), &"tenants/a".into()).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(path: impl Into<Path>, store: StdArc<dyn ObjectStore>) -> Result<Db> {
        Self::open_with(path, store, Settings::default()).await
    }

    /// Opens as a new writer with `settings` (`Recover`): claims the next
    /// writer epoch, walks the WAL chain, fences older writers so none of
    /// them can acknowledge another write (I5), and replays the WALs not yet
    /// in L0. A writer still running elsewhere fails with
    /// [`Error::Fenced`](crate::Error::Fenced) from then on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// use std::sync::Arc;
    /// use object_store::memory::InMemory;
    /// use tidemark::{Db, Error, Settings};
    ///
    /// let store = Arc::new(InMemory::new());
    /// let settings = Settings::default().with_compactor(false);
    /// let old = Db::open_with("db", store.clone(), settings.clone()).await?;
    /// old.put("k", "v").await?;
    ///
    /// let new = Db::open_with("db", store, settings).await?; // fences `old`
    /// assert!(new.writer_epoch() > old.writer_epoch());
    /// assert_eq!(new.get("k").await?.as_deref(), Some(&b"v"[..])); // replayed
    /// let err = old.put("k", "lost").await.unwrap_err();
    /// assert!(matches!(err, Error::Fenced { .. }), "{err}");
    /// new.close().await
    /// # }
    /// ```
    pub async fn open_with(path: impl Into<Path>, store: StdArc<dyn ObjectStore>, settings: Settings) -> Result<Db> {
        settings.validate()?;
        let layout = Layout::new(path.into());
        let stores = Stores::new(store, &settings, &layout);
        probe(&stores, &layout, &settings).await?;
        let tracer = Tracer::new(settings.recorder.clone());
        let manifests = ManifestStore::new(stores.store.clone(), layout.clone(), settings.protocol);
        let (claimed, claimed_from_closed) = claim(&manifests, &tracer).await?;
        // The span covers the rest of recovery. It is attached with
        // `Instrument`, not held as an entered guard: a guard is not `Send`,
        // so the open future would not be `Send` (it must run in `tokio::spawn`).
        let span = tracing::info_span!("Recover", writer_epoch = claimed.writer_epoch, version = claimed.version);
        Self::recover(stores, manifests, layout, tracer, claimed, claimed_from_closed, settings).instrument(span).await
    }

    /// `Recover` after the epoch is claimed: walk the chain, fence, replay,
    /// start the background tasks.
    async fn recover(
        stores: Stores,
        manifests: ManifestStore,
        layout: Layout,
        tracer: Tracer,
        claimed: ManifestObject,
        claimed_from_closed: bool,
        settings: Settings,
    ) -> Result<Db> {
        let protocol = settings.protocol;
        let limits = ReadLimits::of(&settings);
        let epoch = claimed.writer_epoch;
        let store = &stores.store;
        let mut chain = None;
        for _ in 0..RACE_ATTEMPTS {
            let contents = read_chain_with(
                store.as_ref(),
                &layout,
                protocol,
                &claimed.view(),
                epoch,
                claimed_from_closed,
                limits.wal_bytes,
            )
            .await?;
            let Some(fence) = contents.plan.fence else {
                chain = Some(contents);
                break;
            };
            // Every manifest this writer writes records its fences: never
            // place one that no manifest could record.
            let fences: std::collections::BTreeSet<WalId> = claimed.fences.iter().chain(&contents.plan.fences).copied().collect();
            if fences.len() > crate::bounds::MAX_FENCES {
                return Err(Error::corrupt(
                    layout.manifest(claimed.version).to_string(),
                    format!(
                        "fences holds {} WAL ids: recording this recovery's fence would pass the {} a manifest may hold",
                        claimed.fences.len(),
                        crate::bounds::MAX_FENCES
                    ),
                ));
            }
            let token = rand::random();
            let path = layout.wal(fence.wal_id);
            let bytes = encode_wal(fence.header, token, [], settings.block_size, &None)?;
            let mut fenced = create(store.as_ref(), &path, bytes).await?;
            if !fenced {
                // AlreadyExists: ours after a retry, or an old upload landed: walk again.
                let existing = decode_wal(&path, read(store.as_ref(), &path, ObjectKind::Wal, limits.wal_bytes).await?)?;
                let conflict = resolve_create_conflict(protocol, ObjectOwner { writer_epoch: epoch, token }, existing.owner());
                match on_fence_conflict(protocol, conflict) {
                    FenceConflict::Placed => fenced = true,
                    FenceConflict::WalkAgain => {}
                    FenceConflict::GiveUp => {
                        return Err(Error::WalIdTaken { id: fence.wal_id, owner_epoch: existing.owner().writer_epoch })
                    }
                }
            }
            if fenced {
                chain = Some(contents);
                break;
            }
        }
        let Some(chain) = chain else {
            return Err(Error::InvalidArgument(format!("could not place a fence after {RACE_ATTEMPTS} attempts")));
        };
        let plan = &chain.plan;
        tracer.emit(
            epoch,
            TraceEvent::Fence {
                wal_id: plan.fence.map_or(plan.gap, |f| f.wal_id),
                next_wal_id: plan.next_wal_id,
                replayed: plan.replay.clone(),
                listed: chain.listed.clone(),
            },
        );
        tracing::info!(writer_epoch = epoch, replayed = plan.replay.len(), next_wal_id = plan.next_wal_id, "Fence");
        // Replay the SSTs of the latest version, not of the claimed one: a
        // compactor (of another process) may have merged the claimed
        // version's L0 since, and GC deleted it (found by the model). The
        // compactor keeps every writer field, so the WAL replay stands.
        let claimed = manifests.reread(claimed).await?;
        if let Some(by) = fenced_by(Role::Writer, epoch, &claimed.view()) {
            return Err(Error::Fenced { writer_epoch: epoch, by });
        }
        let log: WalLog = plan.wal_log(protocol, settings.max_inflight_wal_uploads);
        refuse_operands_without_operator(&chain, &settings.merge_operator)?;
        let (mem, replayed) = replay(&chain);
        let fences = plan.fences.clone();
        let inner = DbInner::new(Opened {
            stores,
            layout,
            settings,
            tracer,
            epoch,
            log,
            manifest: claimed,
            mem,
            replayed,
            fences,
            read_only: false,
        });
        let tasks = spawn(&inner);
        let db = Db { inner, tasks: Mutex::new(tasks) };
        // A large replay goes to L0 before the first write is accepted, so
        // the next open does not replay it again.
        let replayed = crate::sync::lock(&db.inner.mem).active.bytes();
        if replayed >= db.inner.settings.l0_sst_size_bytes {
            l0_flush::flush_all(&db.inner).await?;
        }
        Ok(db)
    }

    /// Opens without claiming an epoch or fencing: a snapshot for reads that
    /// leaves a running writer undisturbed. It sees what the writer made
    /// durable before this call; writes fail with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// use std::sync::Arc;
    /// use object_store::memory::InMemory;
    /// use tidemark::Db;
    ///
    /// let store = Arc::new(InMemory::new());
    /// let writer = Db::open("db", store.clone()).await?;
    /// writer.put("k", "v").await?;
    ///
    /// let reader = Db::open_read_only("db", store).await?;
    /// assert_eq!(reader.get("k").await?.as_deref(), Some(&b"v"[..]));
    /// assert!(reader.put("k", "w").await.is_err());
    /// writer.put("k2", "v2").await?; // the writer is not fenced
    /// writer.close().await
    /// # }
    /// ```
    pub async fn open_read_only(path: impl Into<Path>, store: StdArc<dyn ObjectStore>) -> Result<Db> {
        Self::open_read_only_with(path, store, Settings::default()).await
    }

    /// [`Db::open_read_only`] with `settings`: the block cache, retries, and
    /// the object sizes a reader accepts (a database written with larger
    /// `wal_size_bytes` or SST sizes than the defaults is read with those).
    pub async fn open_read_only_with(path: impl Into<Path>, store: StdArc<dyn ObjectStore>, settings: Settings) -> Result<Db> {
        settings.validate()?;
        let layout = Layout::new(path.into());
        let stores = Stores::new(store, &settings, &layout);
        let manifests = ManifestStore::new(stores.store.clone(), layout.clone(), settings.protocol);
        let m = manifests.latest().await?.unwrap_or_else(ManifestObject::empty);
        let limits = ReadLimits::of(&settings);
        let chain = read_chain(stores.store.as_ref(), &layout, Protocol::Shipped, &m.view(), limits.wal_bytes).await?;
        let epoch = m.writer_epoch;
        let (mem, replayed) = replay(&chain);
        let inner = DbInner::new(Opened {
            stores,
            layout,
            settings,
            tracer: Tracer::default(),
            epoch,
            log: WalLog::new(Protocol::Shipped, epoch, chain.plan.gap, 1),
            manifest: m,
            mem,
            replayed,
            fences: Vec::new(),
            read_only: true,
        });
        Ok(Db { inner, tasks: Mutex::new(Vec::new()) })
    }
}
