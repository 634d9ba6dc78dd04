//! Garbage collection: lists the store, asks the protocol what may be
//! deleted (`GcManifest`, `GcSst`, `GcWal`), deletes it.
//!
//! Nothing is deleted that a kept manifest version references; a version is
//! kept while it is the latest or its successor is younger than
//! `gc_min_age` (read-only handles may still use it); unreferenced objects
//! must be at least `gc_min_age` old (a flush or compaction in another
//! process may be about to record them); fences are never deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::open::read;
use super::DbInner;
use crate::error::Result;
use crate::manifest::ManifestObject;
use crate::protocol::WalId;
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

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn ms(t: chrono_like::Timestamp) -> u64 {
    t
}

/// Object ages come from the store's `last_modified` (and SST names).
mod chrono_like {
    pub type Timestamp = u64;
}

/// One GC pass.
pub(crate) async fn run(inner: &DbInner) -> Result<GcStats> {
    let store = inner.store.as_ref();
    let layout = &inner.layout;
    let now = now_ms();
    let min_age = inner.settings.gc_min_age.as_millis() as u64;
    let age = |created: u64| now.saturating_sub(created);

    let listed: Vec<_> = store.list(Some(&layout.manifest_dir())).try_collect().await?;
    let versions: BTreeMap<u64, u64> = listed
        .iter()
        .filter_map(|m| Some((layout.parse_manifest(&m.location)?, m.last_modified.timestamp_millis().max(0) as u64)))
        .collect();
    let Some((&latest, _)) = versions.iter().next_back() else { return Ok(GcStats::default()) };
    // Kept: the latest, and every version whose successor is younger than
    // min_age (a reader may have read it within its lease).
    let kept: BTreeSet<u64> = versions
        .keys()
        .copied()
        .filter(|v| *v == latest || versions.get(&(v + 1)).is_some_and(|created| age(ms(*created)) < min_age))
        .collect();
    let mut manifests = Vec::new();
    for v in &kept {
        let path = layout.manifest(*v);
        match read(store, &path).await {
            Ok(bytes) => manifests.push(ManifestObject::decode(path.as_ref(), &bytes)?),
            // Deleted by another GC since the listing: nothing to keep for it.
            Err(crate::Error::ObjectStore(object_store::Error::NotFound { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    let Some(newest) = manifests.iter().max_by_key(|m| m.version) else { return Ok(GcStats::default()) };
    let referenced: BTreeSet<u128> = manifests.iter().flat_map(|m| m.ssts().map(|h| h.id)).collect();
    let fences: BTreeSet<WalId> = manifests.iter().flat_map(|m| m.fences.iter().copied()).collect();
    let wal_floor = manifests.iter().map(|m| m.replay_after_wal_id).min().unwrap_or(0);
    let _ = newest;

    let mut stats = GcStats::default();
    // GcSst: unreferenced, old enough, not pinned by this process.
    let ssts: Vec<_> = store.list(Some(&layout.sst_dir())).try_collect().await?;
    let pinned = lock(&inner.pinned).clone();
    for m in &ssts {
        let Some(id) = layout.parse_sst(&m.location) else { continue };
        let created = ulid::Ulid(id).timestamp_ms().max(m.last_modified.timestamp_millis().max(0) as u64);
        if referenced.contains(&id) || pinned.contains(&id) || age(created) < min_age {
            continue;
        }
        delete(inner, &m.location).await?;
        tracing::info!(action = "GcSst", path = %m.location, "GcSst");
        stats.ssts += 1;
    }
    // GcWal: below every kept version's replay point, old enough, no fence.
    let wals: Vec<_> = store.list(Some(&layout.wal_dir())).try_collect().await?;
    for m in &wals {
        let Some(id) = layout.parse_wal(&m.location) else { continue };
        if id > wal_floor || fences.contains(&id) || age(m.last_modified.timestamp_millis().max(0) as u64) < min_age {
            continue;
        }
        delete(inner, &m.location).await?;
        tracing::info!(action = "GcWal", wal_id = id, "GcWal");
        stats.wals += 1;
    }
    // GcManifest: versions neither latest nor within a reader's lease.
    for v in versions.keys().filter(|v| !kept.contains(v)) {
        delete(inner, &layout.manifest(*v)).await?;
        tracing::info!(action = "GcManifest", version = v, "GcManifest");
        stats.manifests += 1;
    }
    let _ = Duration::ZERO;
    Ok(stats)
}

async fn delete(inner: &DbInner, path: &object_store::path::Path) -> Result<()> {
    match inner.store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
