//! `fsck`: checks everything a read path relies on, object by object, and
//! reports every problem it finds (not only the first).
//!
//! What is checked:
//! - every listed manifest version decodes (checksum, format version, the
//!   bounds on ids and epochs) and holds the version its name says;
//! - the latest manifest's invariants: I1 (the WAL chain from
//!   `replay_after_wal_id + 1` reaches `wal_id_last_seen`), its recorded
//!   fences exist and are fences, every L0 and sorted-run SST exists, has the
//!   size its handle records and decodes, its first and last keys are the
//!   handle's, each run's SSTs are in key order with disjoint ranges, and no
//!   SST or run id is listed twice;
//! - every WAL on the chain decodes with its entries sorted and unique;
//! - every SST decodes with each block matching its index entry (offset,
//!   first and last key), keys strictly increasing within and across blocks,
//!   and the bloom filter holding every key (`sst::decode_all`).
//!
//! Objects that no kept manifest references (orphans) are reported as
//! information, not as problems: an SST being flushed or compacted, a fenced
//! writer's late upload, or garbage GC has not deleted yet are all normal.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::db::read_chain;
use crate::manifest::{ManifestObject, SstHandle};
use crate::paths::Layout;
use crate::protocol::{Protocol, WalId, WalKind};
use crate::sst::decode_all;
use crate::wal_object::decode_wal;

/// One line of an fsck [`Report`](crate::FsckReport).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A check that passed.
    Ok(String),
    /// A problem: a read could fail or return wrong data.
    Problem(String),
    /// Informational: an object no kept manifest references.
    Orphan(String),
}

/// Everything fsck found, in the order it checked.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Each check that passed, each problem and each orphan, one per line.
    pub findings: Vec<Finding>,
}

impl Report {
    fn ok(&mut self, s: impl Into<String>) {
        self.findings.push(Finding::Ok(s.into()));
    }

    fn problem(&mut self, s: impl Into<String>) {
        self.findings.push(Finding::Problem(s.into()));
    }

    fn orphan(&mut self, s: impl Into<String>) {
        self.findings.push(Finding::Orphan(s.into()));
    }

    /// The number of problems (orphans are not problems).
    pub fn problems(&self) -> usize {
        self.findings.iter().filter(|f| matches!(f, Finding::Problem(_))).count()
    }

    /// The number of orphans.
    pub fn orphans(&self) -> usize {
        self.findings.iter().filter(|f| matches!(f, Finding::Orphan(_))).count()
    }
}

async fn read(store: &dyn ObjectStore, path: &Path) -> crate::Result<bytes::Bytes> {
    Ok(store.get(path).await?.bytes().await?)
}

/// Checks the database under `root`: every manifest version, the latest
/// one's invariants (I1 among them), the WAL chain and every SST, object by
/// object, reporting every problem rather than the first. Reads only; never
/// writes, so it is safe beside a running writer (which may show orphans:
/// objects it is still flushing).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// use std::sync::Arc;
/// use object_store::memory::InMemory;
///
/// let store = Arc::new(InMemory::new());
/// let db = tidemark::Db::open("db", store.clone()).await?;
/// db.put("k", "v").await?;
/// db.close().await?;
///
/// let report = tidemark::fsck(store.as_ref(), "db".into()).await;
/// assert_eq!(report.problems(), 0, "{:?}", report.findings);
/// assert!(report.findings.iter().any(|f| matches!(f, tidemark::FsckFinding::Ok(_))));
/// # Ok(())
/// # }
/// ```
pub async fn fsck(store: &dyn ObjectStore, root: Path) -> Report {
    let layout = Layout::new(root);
    let mut r = Report::default();
    let listed: Vec<Path> = match store.list(Some(layout.root())).map_ok(|m| m.location).try_collect().await {
        Ok(v) => v,
        Err(e) => {
            r.problem(format!("cannot list the database: {e}"));
            return r;
        }
    };
    let mut versions: Vec<u64> = listed.iter().filter_map(|p| layout.parse_manifest(p)).collect();
    versions.sort_unstable();
    let wal_ids: BTreeSet<WalId> = listed.iter().filter_map(|p| layout.parse_wal(p)).collect();
    let sst_ids: BTreeSet<u128> =
        listed.iter().filter(|p| p.prefix_matches(&layout.sst_dir())).filter_map(|p| layout.parse_sst(p)).collect();

    // Every kept manifest version.
    let mut kept: BTreeMap<u64, ManifestObject> = BTreeMap::new();
    for v in &versions {
        let path = layout.manifest(*v);
        match read(store, &path).await.and_then(|b| ManifestObject::decode(path.as_ref(), &b)) {
            Ok(m) if m.version == *v => {
                kept.insert(*v, m);
            }
            Ok(m) => r.problem(format!("{path}: holds version {} under the name of {v}", m.version)),
            Err(e) => r.problem(format!("{e}")),
        }
    }
    let Some(latest_version) = versions.last().copied() else {
        r.problem("no manifest".to_string());
        return r;
    };
    let Some(m) = kept.get(&latest_version).cloned() else {
        r.problem(format!("the latest manifest (version {latest_version}) cannot be read"));
        return r;
    };
    r.ok(format!(
        "manifest v{} writer_epoch={} compactor_epoch={} wal_id_last_seen={} replay_after_wal_id={} l0={} runs={} ({} versions kept)",
        m.version,
        m.writer_epoch,
        m.compactor_epoch,
        m.wal_id_last_seen,
        m.replay_after_wal_id,
        m.l0.len(),
        m.runs.len(),
        kept.len()
    ));

    // I1 and the WAL chain (each WAL decoded: blocks, order, uniqueness).
    let mut on_chain: BTreeSet<WalId> = BTreeSet::new();
    match read_chain(store, &layout, Protocol::Shipped, &m.view(), u64::MAX).await {
        Ok(chain) => {
            for (id, wal) in &chain.wals {
                on_chain.insert(*id);
                r.ok(format!("wal {id} ({:?}, {} entries)", wal.header.kind, wal.entries.len()));
            }
            r.ok(format!(
                "I1: the WAL chain reaches {} (wal_id_last_seen={})",
                chain.plan.gap.saturating_sub(1),
                m.wal_id_last_seen
            ));
        }
        Err(e) => r.problem(format!("WAL chain: {e}")),
    }

    // Recorded fences: ascending, present, and fences.
    if m.fences.windows(2).any(|w| w[0] >= w[1]) {
        r.problem(format!("{}: fences are not ascending and unique: {:?}", layout.manifest(m.version), m.fences));
    }
    for f in &m.fences {
        let path = layout.wal(*f);
        match read(store, &path).await.and_then(|b| decode_wal(&path, b)) {
            Ok(w) if matches!(w.header.kind, WalKind::Fence { .. }) => r.ok(format!("fence {path}")),
            Ok(_) => r.problem(format!("{path}: recorded as a fence in the manifest, but holds data")),
            Err(e) => r.problem(format!("fence {f} recorded in the manifest: {e}")),
        }
    }

    // Every SST the latest version references, and the tree's shape.
    let mut seen_ssts: BTreeSet<u128> = BTreeSet::new();
    for h in &m.l0 {
        check_sst(store, &layout, h, &mut seen_ssts, &mut r).await;
    }
    let mut run_ids = BTreeSet::new();
    for run in &m.runs {
        if !run_ids.insert(run.id) {
            r.problem(format!("sorted run {} is listed twice", run.id));
        }
        if run.ssts.is_empty() {
            r.problem(format!("sorted run {} has no SSTs", run.id));
        }
        for pair in run.ssts.windows(2) {
            if pair[0].last_key >= pair[1].first_key {
                r.problem(format!(
                    "sorted run {}: SSTs {} and {} are not in key order with disjoint ranges ({:?} >= {:?})",
                    run.id,
                    layout.sst(pair[0].id),
                    layout.sst(pair[1].id),
                    pair[0].last_key,
                    pair[1].first_key
                ));
            }
        }
        for h in &run.ssts {
            check_sst(store, &layout, h, &mut seen_ssts, &mut r).await;
        }
    }

    // Orphans: objects no kept manifest references.
    let referenced: BTreeSet<u128> = kept.values().flat_map(|k| k.ssts().map(|h| h.id)).collect();
    for id in sst_ids.difference(&referenced) {
        r.orphan(format!("{}: no kept manifest references it (an SST being written, or garbage for GC)", layout.sst(*id)));
    }
    let fences: BTreeSet<WalId> = kept.values().flat_map(|k| k.fences.iter().copied()).collect();
    let horizon = kept.values().map(|k| k.replay_after_wal_id).min().unwrap_or(0);
    for id in &wal_ids {
        if on_chain.contains(id) || fences.contains(id) {
            continue;
        }
        if *id <= horizon {
            r.orphan(format!("{}: below every kept manifest's replay_after_wal_id (garbage for GC)", layout.wal(*id)));
        } else if *id > m.replay_after_wal_id {
            r.orphan(format!("{}: not on the WAL chain (a fenced writer's upload, never replayed)", layout.wal(*id)));
        }
    }
    r
}

/// Checks one SST the manifest lists: it exists, its size and key range are
/// the handle's, and it decodes with every check reads rely on.
async fn check_sst(store: &dyn ObjectStore, layout: &Layout, h: &SstHandle, seen: &mut BTreeSet<u128>, r: &mut Report) {
    let path = layout.sst(h.id);
    if !seen.insert(h.id) {
        r.problem(format!("{path}: listed twice in the manifest"));
        return;
    }
    let bytes = match read(store, &path).await {
        Ok(b) => b,
        Err(e) => {
            r.problem(format!("{path}: required by the manifest but cannot be read: {e}"));
            return;
        }
    };
    if bytes.len() as u64 != h.size {
        r.problem(format!("{path}: {} bytes, but the manifest records {}", bytes.len(), h.size));
    }
    match decode_all(&path, bytes) {
        Ok((_, entries)) => {
            let (first, last) = (entries.first().map(|e| &e.0), entries.last().map(|e| &e.0));
            if first != Some(&h.first_key) || last != Some(&h.last_key) {
                r.problem(format!(
                    "{path}: keys span {first:?}..={last:?}, but the manifest records {:?}..={:?}",
                    h.first_key, h.last_key
                ));
            } else {
                r.ok(format!("sst {path} ({} entries)", entries.len()));
            }
        }
        Err(e) => r.problem(format!("{e}")),
    }
}
