//! Garbage collection: observes the store (lists SSTs, WALs and manifests,
//! then reads the latest version), asks the protocol what may be deleted
//! (`GcPolicy::plan`: `GcSst`, `GcWal`, `GcManifest`), deletes it, and drops
//! expired checkpoints with a client edit (`CheckpointExpire`).
//!
//! Everything GC must keep for other processes is recorded in the latest
//! manifest (its tree, the checkpoints and the SSTs they need, each role's
//! SST floor), so a pass reads one manifest, however many versions are
//! listed: its cost does not grow with use.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::inner::DbInner;
use super::manifest_store::{ClientCommit, Committed};
use crate::error::Result;
use crate::manifest::ManifestObject;
use crate::paths::SstName;
use crate::protocol::{
    expired, CheckpointEdit, GcCaller, GcPolicy, Listed, ListedSst, Observed, Retired, SortedRun, Tree, WalId,
};
use crate::sync::Arc;
use crate::trace::TraceEvent;

/// What one GC pass deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Superseded manifest versions deleted (`GcManifest`).
    pub manifests: usize,
    /// SSTs deleted (`GcSst`).
    pub ssts: usize,
    /// WALs deleted (`GcWal`).
    pub wals: usize,
    /// Expired checkpoints dropped (`CheckpointExpire`).
    pub checkpoints_expired: usize,
}

/// Runs a GC pass every `gc_interval` for the writer of this process.
pub(super) async fn periodic(inner: Arc<DbInner>) {
    loop {
        tokio::time::sleep(inner.settings.gc_interval).await;
        if inner.commit.failure().is_some() {
            return;
        }
        if let Err(e) = super::l0_flush::refresh_pin(&inner).await {
            tracing::warn!(error = %e, "moving the writer's pin failed; the next pass retries");
        }
        if let Err(e) = run(&inner, GcCaller::Writer(inner.epoch)).await {
            tracing::warn!(error = %e, "GC pass failed; the next pass retries");
        }
    }
}

fn modified_ms(m: &object_store::ObjectMeta) -> u64 {
    m.last_modified.timestamp_millis().max(0) as u64
}

/// The tree with SST ids only: what the plan compares listings against.
fn ids(tree: Tree<crate::manifest::SstHandle>) -> Tree<u128> {
    Tree {
        l0: tree.l0.iter().map(|h| h.id).collect(),
        runs: tree.runs.iter().map(|r| SortedRun { id: r.id, ssts: r.ssts.iter().map(|h| h.id).collect() }).collect(),
        fences: tree.fences,
        checkpoints: tree.checkpoints,
        retired: tree.retired.into_iter().map(|r| Retired { sst: r.sst.id, version: r.version }).collect(),
    }
}

/// One GC pass as `caller`: observe, decide, delete SSTs, then WALs, then
/// manifest versions (a crash part-way leaves only garbage), then drop the
/// checkpoints that expired. A pass of a process the latest version shows
/// fenced deletes nothing.
pub(crate) async fn run(inner: &DbInner, caller: GcCaller) -> Result<GcStats> {
    let store = inner.store.as_ref();
    let layout = &inner.layout;
    let policy = GcPolicy::new(inner.settings.protocol, inner.settings.gc_min_age.as_millis() as u64);
    let now = inner.settings.clock.now_ms();

    // The listings first, then the latest version: an SST recorded after
    // the listing is referenced by it or kept by its owner's floor.
    let listed: Vec<_> = store.list(Some(&layout.sst_dir())).try_collect().await?;
    let names: Vec<(SstName, u64)> = listed.iter().filter_map(|m| Some((layout.parse_sst(&m.location)?, modified_ms(m)))).collect();
    let ssts: Vec<ListedSst<u128>> = names
        .iter()
        .map(|(n, modified)| ListedSst {
            id: n.id,
            origin: n.owner.origin(n.epoch, n.id),
            // The ULID's time, unless the store saw the object later.
            created_at: ulid::Ulid(n.id).timestamp_ms().max(*modified),
        })
        .collect();
    let listed: Vec<_> = store.list(Some(&layout.wal_dir())).try_collect().await?;
    let wals: Vec<Listed<WalId>> =
        listed.iter().filter_map(|m| Some(Listed { id: layout.parse_wal(&m.location)?, created_at: modified_ms(m) })).collect();
    let listed: Vec<_> = store.list(Some(&layout.manifest_dir())).try_collect().await?;
    let manifests: Vec<Listed<u64>> = listed
        .iter()
        .filter_map(|m| Some(Listed { id: layout.parse_manifest(&m.location)?, created_at: modified_ms(m) }))
        .collect();
    let Some(latest) = inner.manifests.latest().await? else { return Ok(GcStats::default()) };
    let view = latest.view();
    #[allow(unused_mut)]
    let mut tree = ids(latest.tree());
    #[cfg(feature = "mutants")]
    if inner.settings.gc_forgets_retired {
        tree.retired.clear();
    }
    #[cfg(feature = "mutants")]
    if inner.settings.gc_forgets_checkpoints {
        tree.checkpoints.clear();
    }
    let plan = policy.plan(&Observed {
        latest: &view,
        tree: &tree,
        manifests: &manifests,
        wals: &wals,
        ssts: &ssts,
        now,
        caller,
        unrecorded_flush: None,
    });
    let epoch = match caller {
        GcCaller::Standalone => 0,
        GcCaller::Writer(e) | GcCaller::Compactor(e) => e,
    };
    let step = |event| inner.tracer.emit(epoch, event);
    step(TraceEvent::GcRun {
        caller,
        now,
        grace: policy.min_age,
        version: latest.version,
        ssts: plan.ssts.clone(),
        wals: plan.wals.clone(),
        manifests: plan.manifests.clone(),
    });

    let mut stats = GcStats::default();
    for id in &plan.ssts {
        if let Some((n, _)) = names.iter().find(|(n, _)| n.id == *id) {
            delete(inner, &layout.sst_at(n.id, n.owner, n.epoch)).await?;
            stats.ssts += 1;
        }
    }
    if !plan.ssts.is_empty() {
        step(TraceEvent::GcSst { ssts: plan.ssts.clone() });
    }
    for id in &plan.wals {
        delete(inner, &layout.wal(*id)).await?;
        stats.wals += 1;
    }
    if !plan.wals.is_empty() {
        step(TraceEvent::GcWal { wals: plan.wals.clone() });
    }
    for v in &plan.manifests {
        delete(inner, &layout.manifest(*v)).await?;
        stats.manifests += 1;
    }
    if !plan.manifests.is_empty() {
        step(TraceEvent::GcManifest { versions: plan.manifests.clone() });
    }
    if !caller_is_fenced(&latest, caller) {
        stats.checkpoints_expired = expire_checkpoints(inner, &latest, now, policy.min_age).await?;
    }
    Ok(stats)
}

fn caller_is_fenced(latest: &ManifestObject, caller: GcCaller) -> bool {
    match caller {
        GcCaller::Standalone => false,
        GcCaller::Writer(e) => latest.writer_epoch > e,
        GcCaller::Compactor(e) => latest.compactor_epoch > e,
    }
}

/// `CheckpointExpire`: drops the checkpoints expired at `now` (with `grace`)
/// from the manifest, through the one commit path. Returns how many.
async fn expire_checkpoints(inner: &DbInner, latest: &ManifestObject, now: u64, grace: u64) -> Result<usize> {
    let gone = expired(&latest.tree(), now, grace);
    if gone.is_empty() {
        return Ok(0);
    }
    let edit = ClientCommit { protocol: inner.settings.protocol, edit: CheckpointEdit::Expire { now, grace } };
    match inner.manifests.commit(latest, &edit, |_| ()).await? {
        Committed::Applied { version, .. } => {
            inner.tracer.emit(0, TraceEvent::CheckpointExpire { version: version.version, now, grace, dropped: gone.clone() });
            Ok(gone.len())
        }
        Committed::Fenced { .. } | Committed::Refused(_) => Ok(0),
    }
}

async fn delete(inner: &DbInner, path: &object_store::path::Path) -> Result<()> {
    match inner.store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
