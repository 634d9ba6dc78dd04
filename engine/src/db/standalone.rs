//! Compaction and GC as processes of their own: a machine with spare CPU
//! (or a cron job, or `tidemark compact` / `tidemark gc`) runs them against
//! the bucket while the writer runs elsewhere. Each works through the same
//! commit path and the same protocol decisions as the writer's own tasks:
//! the compactor claims a compactor epoch (fencing an older compactor), and
//! GC judges every object by the latest manifest's checkpoints and SST
//! floors, never by who is running.

use object_store::path::Path;

use super::inner::DbInner;
use super::manifest_store::ManifestStore;
use super::open::Opened;
use super::{compactor, gc, GcStats};
use crate::error::{Error, Result};
use crate::memtable::MemState;
use crate::paths::Layout;
use crate::protocol::{GcCaller, WalLog};
use crate::settings::Settings;
use crate::store::Stores;
use crate::sync::Arc;
use crate::trace::Tracer;
use crate::StoreRef;

/// A handle on the latest version with no memtable: what a compactor or a
/// GC of its own reads and updates.
async fn client_inner(path: Path, store: StoreRef, settings: Settings) -> Result<Arc<DbInner>> {
    let layout = Layout::new(path);
    let stores = Stores::new(store, &settings, &layout);
    let manifests = ManifestStore::new(stores.store.clone(), layout.clone(), settings.protocol);
    let latest = manifests.latest().await?.ok_or_else(|| Error::NoDatabase { location: layout.root().to_string() })?;
    let epoch = latest.writer_epoch;
    Ok(DbInner::new(Opened {
        stores,
        layout,
        log: WalLog::new(settings.protocol, epoch, latest.replay_after_wal_id.saturating_add(1), 1),
        tracer: Tracer::new(settings.recorder.clone()),
        settings,
        epoch,
        manifest: latest,
        mem: MemState::default(),
        replayed: None,
        fences: Vec::new(),
        read_only: true,
    }))
}

/// Compacts the database under `path` until its L0 and sorted runs are
/// within `settings` (`l0_max_ssts`, `max_sorted_runs`), as a compactor of
/// its own: it claims the next compactor epoch, so a compactor running
/// elsewhere (a writer's own, unless its `Settings::compactor` is off) is
/// fenced. Returns the number of compactions recorded.
pub async fn compact(path: impl Into<Path>, store: StoreRef, settings: Settings) -> Result<u64> {
    let inner = client_inner(path.into(), store, settings).await?;
    compactor::compact_while_needed(&inner).await?;
    let runs = inner.compaction.lock().await.runs;
    Ok(runs)
}

/// One GC pass over the database under `path`, as a process of its own:
/// deletes what no live checkpoint, SST floor or the latest version keeps
/// and what is older than `settings.gc_min_age`, then drops expired
/// checkpoints.
pub async fn collect_garbage(path: impl Into<Path>, store: StoreRef, settings: Settings) -> Result<GcStats> {
    let inner = client_inner(path.into(), store, settings).await?;
    gc::run(&inner, GcCaller::Standalone).await
}
