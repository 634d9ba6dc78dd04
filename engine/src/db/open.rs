//! Opening a database: claim the epoch, walk the WAL chain, fence, replay —
//! each step decided by `protocol` (see spec/protocol.md, `Recover`, `Fence`).

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use crate::sync::task::Notify;
use tracing::Instrument;

use super::{background, Db, DbInner, OpenTree};
use crate::commit::CommitLog;
use crate::error::{Error, Result};
use crate::manifest::{ManifestObject, SstHandle};
use crate::memtable::MemState;
use crate::paths::Layout;
use crate::store::Stores;
use crate::protocol::{
    claim_epoch, on_fence_conflict, resolve_create_conflict, ChainWalk, FenceConflict, Epoch, ManifestView, ObjectOwner, Protocol,
    RecoveryError, RecoveryPlan, WalId, WalLog, MAX_INFLIGHT_WAL_UPLOADS,
};
use crate::settings::Settings;
use crate::cache::BlockCache;
use crate::sst::{RunReader, SstRef};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, StdArc};
use crate::trace::{TraceEvent, Tracer};
use crate::wal_object::{decode_wal, encode_wal, DecodedWal};

/// Attempts at a create race (epoch claim, fence) before giving up.
pub(crate) const RACE_ATTEMPTS: usize = 32;
/// WAL objects read ahead at once during recovery, at least and at most:
/// the count is sized from the listed objects' sizes so that about
/// `RECOVERY_READ_AHEAD_BYTES` are in flight (issue 16: 1,000 WALs read 16
/// at a time took 2.1x SlateDB's open on a 50 ms store).
const RECOVERY_READS_MIN: usize = 16;
const RECOVERY_READS_MAX: usize = 256;
const RECOVERY_READ_AHEAD_BYTES: u64 = 64 << 20;

/// How many chain reads to keep in flight for WALs of these sizes.
fn recovery_reads(sizes: impl Iterator<Item = u64>) -> usize {
    let (count, total) = sizes.fold((0u64, 0u64), |(n, t), s| (n + 1, t.saturating_add(s)));
    let mean = total.checked_div(count).unwrap_or(0).max(1);
    usize::try_from(RECOVERY_READ_AHEAD_BYTES / mean)
        .unwrap_or(usize::MAX)
        .clamp(RECOVERY_READS_MIN, RECOVERY_READS_MAX)
}

fn create_opts() -> PutOptions {
    PutOptions { mode: PutMode::Create, ..Default::default() }
}

/// Creates `path` with `bytes`; `Ok(true)` if created, `Ok(false)` if it existed.
pub(crate) async fn create(store: &dyn ObjectStore, path: &Path, bytes: Bytes) -> Result<bool> {
    match store.put_opts(path, PutPayload::from(bytes), create_opts()).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn read(store: &dyn ObjectStore, path: &Path) -> Result<Bytes> {
    Ok(store.get(path).await?.bytes().await?)
}

/// The latest manifest, or `None` for a new database.
pub(crate) async fn latest_manifest(store: &dyn ObjectStore, layout: &Layout) -> Result<Option<ManifestObject>> {
    let listed: Vec<_> = store.list(Some(&layout.manifest_dir())).try_collect().await?;
    let Some(version) = listed.iter().filter_map(|m| layout.parse_manifest(&m.location)).max() else {
        return Ok(None);
    };
    let path = layout.manifest(version);
    let m = ManifestObject::decode(path.as_ref(), &read(store, &path).await?)?;
    if m.version != version {
        return Err(Error::corrupt(path.to_string(), format!("holds version {} under the name of {version}", m.version)));
    }
    Ok(Some(m))
}

/// Whether a tidemark database lives under `root`: a manifest is listed there.
pub async fn database_exists(store: &dyn ObjectStore, root: &Path) -> Result<bool> {
    let layout = Layout::new(root.clone());
    let listed: Vec<_> = store.list(Some(&layout.manifest_dir())).try_collect().await?;
    Ok(listed.iter().any(|m| layout.parse_manifest(&m.location).is_some()))
}

/// The WAL chain as a walk found it.
pub struct ChainContents {
    pub plan: RecoveryPlan,
    /// The WAL ids the listing found.
    pub listed: Vec<WalId>,
    /// Decoded WAL objects on the chain (data, fences and skipped ones).
    pub wals: BTreeMap<WalId, DecodedWal>,
}

/// Lists `wal/` and walks the chain for `view` as `epoch` (`ChainWalk`).
/// `MissingWal` names the object (I1); a corrupt WAL is `Corrupt`.
pub async fn read_chain(
    store: &dyn ObjectStore,
    layout: &Layout,
    protocol: Protocol,
    view: &ManifestView,
    epoch: Epoch,
) -> Result<ChainContents> {
    read_chain_with(store, layout, protocol, view, epoch, false).await
}

/// `read_chain` for a recovery whose claim was made from a version with
/// `writer_closed` (`ChainWalk::after_clean_close`: no fence is needed).
pub async fn read_chain_with(
    store: &dyn ObjectStore,
    layout: &Layout,
    protocol: Protocol,
    view: &ManifestView,
    epoch: Epoch,
    claimed_from_closed: bool,
) -> Result<ChainContents> {
    let listed: Vec<_> = store.list(Some(&layout.wal_dir())).try_collect().await?;
    let mut ids: Vec<WalId> = listed.iter().filter_map(|m| layout.parse_wal(&m.location)).collect();
    ids.sort_unstable();
    let mut walk = ChainWalk::new(protocol, view, epoch, ids.iter().copied(), MAX_INFLIGHT_WAL_UPLOADS)
        .after_clean_close(claimed_from_closed);
    // The walk is sequential, but chain positions are nearly always
    // consecutive listed ids: read ahead in id order, a bounded number at
    // once, so open time does not grow with one round trip per WAL.
    let candidates: Vec<WalId> = ids.iter().copied().filter(|id| *id > view.replay_after_wal_id).collect();
    let in_flight = recovery_reads(
        listed.iter().filter(|m| layout.parse_wal(&m.location).is_some_and(|id| id > view.replay_after_wal_id)).map(|m| m.size),
    );
    let reads: Vec<_> = candidates
        .into_iter()
        .map(|id| {
            let path = layout.wal(id);
            async move { (id, read(store, &path).await) }
        })
        .collect();
    let mut reads = futures::stream::iter(reads).buffered(in_flight);
    let mut wals = BTreeMap::new();
    while let Some(id) = walk.next_to_read() {
        let path = layout.wal(id);
        let bytes = loop {
            match reads.next().await {
                Some((got, result)) if got == id => break result,
                Some((got, _)) if got < id => continue, // skipped by a fence's jump
                _ => break read(store, &path).await,
            }
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(Error::ObjectStore(object_store::Error::NotFound { .. })) => {
                return Err(Error::MissingWal { id, path: path.to_string() })
            }
            Err(e) => return Err(e),
        };
        let wal = decode_wal(&path, bytes)?;
        walk.observe(id, wal.header);
        wals.insert(id, wal);
    }
    let plan = walk.finish().map_err(|e| match e {
        RecoveryError::MissingWal { id, .. } => Error::MissingWal { id, path: layout.wal(id).to_string() },
        RecoveryError::Fenced { by } => Error::Fenced { writer_epoch: epoch, by },
        // A stored id that would push the chain out of range: the object
        // holding it is corrupt (issue 17, case 1).
        RecoveryError::OutOfRange { wal_id, .. } => Error::corrupt(
            wal_id.map_or_else(|| layout.manifest_dir().to_string(), |id| layout.wal(id).to_string()),
            e.to_string(),
        ),
    })?;
    Ok(ChainContents { plan, listed: ids, wals })
}

/// `Recover` step 1: create the next manifest version with a new epoch.
/// Also returns whether the version it claimed from was cleanly closed.
async fn claim(store: &dyn ObjectStore, layout: &Layout) -> Result<(ManifestObject, bool)> {
    for _ in 0..RACE_ATTEMPTS {
        let latest = latest_manifest(store, layout).await?.unwrap_or_else(ManifestObject::empty);
        let claimed = latest.successor(layout, claim_epoch(&latest.view()), latest.tree())?;
        let path = layout.manifest(claimed.version);
        if create(store, &path, claimed.encode()).await? {
            return Ok((claimed, latest.writer_closed));
        }
        // AlreadyExists: ours (a retried create), or another writer won the race.
        if let Ok(existing) = ManifestObject::decode(path.as_ref(), &read(store, &path).await?) {
            if existing.token == claimed.token && existing.writer_epoch == claimed.writer_epoch {
                return Ok((claimed, latest.writer_closed));
            }
        }
    }
    Err(Error::InvalidArgument(format!("could not claim an epoch after {RACE_ATTEMPTS} racing attempts")))
}

/// The tree of a manifest: every SST it lists, L0 and runs, opened lazily
/// (`SstRef`); SSTs already open in `known` (by path) are reused.
pub(crate) fn open_tree_with(
    store: &StdArc<dyn ObjectStore>,
    cache: &BlockCache,
    layout: &Layout,
    m: &ManifestObject,
    known: &std::collections::HashMap<String, Arc<SstRef>>,
) -> OpenTree {
    let sst = |h: &SstHandle| {
        let path = layout.sst(h.id);
        match known.get(path.as_ref()) {
            Some(r) => r.clone(),
            None => Arc::new(SstRef::new(h.clone(), path, store.clone(), cache.clone())),
        }
    };
    let l0 = m.l0.iter().map(sst).collect();
    let runs = m.runs.iter().map(|run| Arc::new(RunReader::new(run, run.ssts.iter().map(sst).collect()))).collect();
    OpenTree { l0, runs }
}

fn replay(chain: &ChainContents) -> (MemState, Option<u64>) {
    let mem = MemState::default();
    let mut max: Option<u64> = None;
    for id in &chain.plan.replay {
        if let Some(wal) = chain.wals.get(id) {
            for (k, seq, v) in &wal.entries {
                mem.active.insert(k.clone(), *seq, v.clone());
                max = max.max(Some(*seq));
            }
        }
    }
    (mem, max)
}

/// What a writer's open and a read-only open decide differently; everything
/// else of `DbInner` is built in one place, `DbInner::new`, so a new field
/// cannot be forgotten in one of the two opens.
struct Opened<'a> {
    stores: Stores,
    layout: Layout,
    settings: Settings,
    tracer: Tracer,
    epoch: Epoch,
    log: WalLog,
    /// The manifest whose SSTs are opened and which the handle starts from.
    manifest: ManifestObject,
    /// The WALs replayed into the memtable (`RecoveryPlan::replay`).
    chain: &'a ChainContents,
    fences: Vec<WalId>,
    read_only: bool,
}

impl DbInner {
    /// Opens the manifest's SSTs and replays the chain's WALs into a fresh
    /// memtable, with sequence numbers from `seq_base`.
    fn new(o: Opened<'_>) -> Arc<DbInner> {
        let Opened { stores, layout, settings, tracer, epoch, log, manifest, chain, fences, read_only } = o;
        let Stores { store, requests, hedge_stats } = stores;
        let block_cache = BlockCache::new(settings.block_cache_bytes);
        let tree = StdArc::new(open_tree_with(&store, &block_cache, &layout, &manifest, &Default::default()));
        let (mut mem, replayed) = replay(chain);
        let next_seq = super::seq_base(epoch, replayed);
        mem.last_seq = next_seq.saturating_sub(1);
        Arc::new(DbInner {
            store,
            layout,
            epoch,
            tracer,
            commit: CommitLog::new(log),
            mem: Mutex::new(mem),
            next_seq: crate::sync::AtomicU64::new(next_seq),
            // The first tree is registered too: a scan begun before the
            // first compaction keeps its SSTs from GC like any other.
            trees: Mutex::new(vec![StdArc::downgrade(&tree)]),
            tree: Mutex::new(tree),
            compaction: crate::sync::task::Mutex::new(Default::default()),
            pinned: Mutex::new(Default::default()),
            wake_compactor: Notify::new(),
            manifest: crate::sync::task::Mutex::new(manifest),
            wake_flusher: Notify::new(),
            wake_l0: Notify::new(),
            durable_changed: Notify::new(),
            space_freed: Notify::new(),
            memtable_full: AtomicBool::new(false),
            uploads_in_flight: AtomicUsize::new(0),
            read_only,
            hedge_stats,
            fences,
            block_cache,
            requests,
            settings,
        })
    }
}

impl Db {
    /// Opens the database a URL names: `file:///dir`, `memory://`, `s3://bucket/prefix`.
    pub async fn open_url(url: &str, settings: Settings) -> Result<Db> {
        let (store, root) = crate::store::url::store_for_url(url)?;
        Db::open_with(root, store, settings).await
    }

    /// Opens (or creates) the database under `path` with default settings.
    pub async fn open(path: impl Into<Path>, store: StdArc<dyn ObjectStore>) -> Result<Db> {
        Self::open_with(path, store, Settings::default()).await
    }

    /// Opens as a new writer: claims an epoch, replays, fences older writers.
    pub async fn open_with(path: impl Into<Path>, store: StdArc<dyn ObjectStore>, settings: Settings) -> Result<Db> {
        settings.validate()?;
        let layout = Layout::new(path.into());
        let stores = Stores::new(store, &settings, &layout);
        let store = stores.store.as_ref();
        crate::store::probe::require_create_if_absent(store, layout.root(), settings.max_retries).await?;
        let tracer = Tracer::new(settings.recorder.clone());
        let (claimed, claimed_from_closed) = claim(store, &layout).await?;
        // The span covers the rest of recovery. It is attached with
        // `Instrument`, not held as an entered guard: a guard is not `Send`,
        // and held across the awaits below it made this future not `Send`, so
        // a database could not be opened inside `tokio::spawn` (issue 11).
        let span = tracing::info_span!("Recover", writer_epoch = claimed.writer_epoch, version = claimed.version);
        Self::recover(stores, layout, tracer, claimed, claimed_from_closed, settings).instrument(span).await
    }

    /// `Recover` after the epoch is claimed: walk the chain, fence, replay,
    /// start the background tasks.
    async fn recover(
        stores: Stores,
        layout: Layout,
        tracer: Tracer,
        claimed: ManifestObject,
        claimed_from_closed: bool,
        settings: Settings,
    ) -> Result<Db> {
        let protocol = settings.protocol;
        let epoch = claimed.writer_epoch;
        let store = &stores.store;
        tracer.emit(epoch, TraceEvent::Recover { version: claimed.version });
        let mut chain = None;
        for _ in 0..RACE_ATTEMPTS {
            let contents =
                read_chain_with(store.as_ref(), &layout, protocol, &claimed.view(), epoch, claimed_from_closed).await?;
            let Some(fence) = contents.plan.fence else {
                chain = Some(contents);
                break;
            };
            let token = rand::random();
            let path = layout.wal(fence.wal_id);
            let bytes = encode_wal(fence.header, token, [], settings.block_size);
            let mut fenced = create(store.as_ref(), &path, bytes).await?;
            if !fenced {
                // AlreadyExists: ours after a retry, or an old upload landed: walk again.
                let existing = decode_wal(&path, read(store.as_ref(), &path).await?)?;
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
        let claimed = match latest_manifest(store.as_ref(), &layout).await? {
            Some(latest) if latest.version > claimed.version => {
                if latest.writer_epoch > epoch {
                    return Err(Error::Fenced { writer_epoch: epoch, by: latest.writer_epoch });
                }
                latest
            }
            _ => claimed,
        };
        let log: WalLog = plan.wal_log(protocol, settings.max_inflight_wal_uploads);
        let fences = plan.fences.clone();
        let inner = DbInner::new(Opened {
            stores,
            layout,
            settings,
            tracer,
            epoch,
            log,
            manifest: claimed,
            chain: &chain,
            fences,
            read_only: false,
        });
        let tasks = background::spawn(&inner);
        let db = Db { inner, tasks: Mutex::new(tasks) };
        // A large replay goes to L0 before the first write is accepted, so
        // the next open does not replay it again.
        let replayed = crate::sync::lock(&db.inner.mem).active.bytes();
        if replayed >= db.inner.settings.l0_sst_size_bytes {
            background::flush_all(&db.inner).await?;
        }
        Ok(db)
    }

    /// Opens without claiming an epoch or fencing: a snapshot for reads that
    /// leaves a running writer undisturbed. Writes fail with `InvalidArgument`.
    pub async fn open_read_only(path: impl Into<Path>, store: StdArc<dyn ObjectStore>) -> Result<Db> {
        let settings = Settings::default();
        let layout = Layout::new(path.into());
        let stores = Stores::new(store, &settings, &layout);
        let m = latest_manifest(stores.store.as_ref(), &layout).await?.unwrap_or_else(ManifestObject::empty);
        let chain = read_chain(stores.store.as_ref(), &layout, Protocol::Shipped, &m.view(), Epoch::MAX).await?;
        let epoch = m.writer_epoch;
        let inner = DbInner::new(Opened {
            stores,
            layout,
            settings,
            tracer: Tracer::default(),
            epoch,
            log: WalLog::new(Protocol::Shipped, epoch, chain.plan.gap, 1),
            manifest: m,
            chain: &chain,
            fences: Vec::new(),
            read_only: true,
        });
        Ok(Db { inner, tasks: Mutex::new(Vec::new()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_reads_follow_the_listed_sizes() {
        // Small WALs: as many reads as the cap allows.
        assert_eq!(recovery_reads(std::iter::repeat_n(2_000, 1_000)), RECOVERY_READS_MAX);
        // 1 MiB WALs: 64 of them make the read-ahead budget.
        assert_eq!(recovery_reads(std::iter::repeat_n(1 << 20, 1_000)), 64);
        // Huge WALs, or absurd listed sizes: never fewer than the floor.
        assert_eq!(recovery_reads(std::iter::repeat_n(64 << 20, 10)), RECOVERY_READS_MIN);
        assert_eq!(recovery_reads([u64::MAX, u64::MAX].into_iter()), RECOVERY_READS_MIN);
        // Nothing listed, or empty objects: no division by zero.
        assert_eq!(recovery_reads(std::iter::empty()), RECOVERY_READS_MAX);
        assert_eq!(recovery_reads([0, 0].into_iter()), RECOVERY_READS_MAX);
    }
}
