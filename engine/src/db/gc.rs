//! Garbage collection: lists the store, asks the protocol what may be
//! deleted (`GcManifest`, `GcSst`, `GcWal`), deletes it.
//!
//! Nothing is deleted that a kept manifest version references; a version is
//! kept while it is the latest or its successor is younger than
//! `gc_min_age` (read-only handles may still use it); unreferenced objects
//! must be at least `gc_min_age` old (a flush or compaction in another
//! process may be about to record them); fences are never deleted.

use std::time::{SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::open::read;
use super::DbInner;
use crate::error::Result;
use crate::manifest::ManifestObject;
use crate::protocol::{GcPolicy, KeptManifest, Listed, SortedRun, Tree, WalId};
use crate::sync::{lock, Arc};

/// What one GC pass deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    pub manifests: usize,
    pub ssts: usize,
    pub wals: usize,
}

/// Runs a GC pass every `gc_interval`.
pub(super) async fn periodic(inner: Arc<DbInner>) {
    loop {
        tokio::time::sleep(inner.settings.gc_interval).await;
        if inner.commit.failure().is_some() {
            return;
        }
        if let Err(e) = run(&inner).await {
            tracing::warn!(error = %e, "GC pass failed; the next pass retries");
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn modified_ms(m: &object_store::ObjectMeta) -> u64 {
    m.last_modified.timestamp_millis().max(0) as u64
}

/// One GC pass: reads the clock once, lists, asks `protocol::gc`, deletes
/// SSTs and WALs, then manifests (a crash part-way leaves only garbage).
pub(crate) async fn run(inner: &DbInner) -> Result<GcStats> {
    let store = inner.store.as_ref();
    let layout = &inner.layout;
    let policy = GcPolicy::new(inner.settings.protocol, inner.settings.gc_min_age.as_millis() as u64);
    let now = now_ms();

    // Order matters with a zero `gc_min_age`: SSTs and WALs are listed and
    // this process's pins read *before* the manifests. An SST in the
    // listing is then either still pinned (its flush or compaction is not
    // recorded yet) or recorded in a manifest this pass will read.
    let mut stats = GcStats::default();
    let ssts: Vec<_> = store.list(Some(&layout.sst_dir())).try_collect().await?;
    let listed_ssts: Vec<Listed<u128>> = ssts
        .iter()
        .filter_map(|m| {
            let id = layout.parse_sst(&m.location)?;
            // The ULID's time, unless the store saw the object later.
            Some(Listed { id, created_at: ulid::Ulid(id).timestamp_ms().max(modified_ms(m)) })
        })
        .collect();
    let mut pinned: Vec<u128> = lock(&inner.pinned).iter().copied().collect();
    pinned.extend(inner.ssts_in_use());
    let wals: Vec<_> = store.list(Some(&layout.wal_dir())).try_collect().await?;
    let listed_wals: Vec<Listed<WalId>> = wals
        .iter()
        .filter_map(|m| Some(Listed { id: layout.parse_wal(&m.location)?, created_at: modified_ms(m) }))
        .collect();
    let listed: Vec<_> = store.list(Some(&layout.manifest_dir())).try_collect().await?;
    let versions: Vec<Listed<u64>> = listed
        .iter()
        .filter_map(|m| Some(Listed { id: layout.parse_manifest(&m.location)?, created_at: modified_ms(m) }))
        .collect();
    let plan = policy.manifests(&versions, now);
    let mut manifests = Vec::new();
    for v in &plan.keep {
        let path = layout.manifest(*v);
        match read(store, &path).await {
            Ok(bytes) => manifests.push(ManifestObject::decode(path.as_ref(), &bytes)?),
            // Deleted by another GC since the listing: it keeps nothing.
            Err(crate::Error::ObjectStore(object_store::Error::NotFound { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    if manifests.is_empty() {
        return Ok(GcStats::default());
    }
    let views: Vec<_> = manifests.iter().map(|m| (m.view(), m.tree())).collect();
    let trees: Vec<(crate::protocol::ManifestView, Tree<u128>)> = views
        .iter()
        .map(|(v, t)| {
            let ids = Tree {
                l0: t.l0.iter().map(|h| h.id).collect(),
                runs: t.runs.iter().map(|r| SortedRun { id: r.id, ssts: r.ssts.iter().map(|h| h.id).collect() }).collect(),
                fences: t.fences.clone(),
                ..Tree::default()
            };
            (*v, ids)
        })
        .collect();
    let kept: Vec<KeptManifest<'_, u128>> = trees.iter().map(|(view, tree)| KeptManifest { view, tree }).collect();

    for id in policy.ssts(&kept, &listed_ssts, &pinned, now) {
        delete(inner, &layout.sst(id)).await?;
        tracing::info!(action = "GcSst", sst = %ulid::Ulid(id), "GcSst");
        stats.ssts += 1;
    }
    for id in policy.wals(&kept, &listed_wals, now, None) {
        delete(inner, &layout.wal(id)).await?;
        tracing::info!(action = "GcWal", wal_id = id, "GcWal");
        stats.wals += 1;
    }
    for v in &plan.delete {
        delete(inner, &layout.manifest(*v)).await?;
        tracing::info!(action = "GcManifest", version = v, "GcManifest");
        stats.manifests += 1;
    }
    Ok(stats)
}

async fn delete(inner: &DbInner, path: &object_store::path::Path) -> Result<()> {
    match inner.store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
