//! `fsck`: checks everything a read path relies on, object by object, and
//! reports every problem it finds (not only the first).
//!
//! What is checked:
//! - every listed manifest version decodes (size, checksum, format version,
//!   the bounds of `crate::bounds` on ids, epochs and entries) and holds the
//!   version its name says;
//! - the latest manifest is not at a bound the next open, compaction or
//!   recovery cannot move past (its writer or compactor epoch the last one,
//!   its version the last one, its fences the most it may record);
//! - the latest manifest's invariants: I1 (the WAL chain from
//!   `replay_after_wal_id + 1` reaches `wal_id_last_seen`, and leaves the
//!   next writer its WAL ids), its recorded fences exist and are fences,
//!   every L0 and sorted-run SST exists, has the size its handle records and
//!   decodes, its first and last keys are the handle's, each run's SSTs are
//!   in key order with disjoint ranges, and no SST or run id is listed twice;
//! - every WAL on the chain is within the size bound, decodes with its
//!   entries sorted, unique and of its epoch's sequence numbers, and is of
//!   an epoch a manifest records;
//! - every SST decodes with each block matching its index entry (offset,
//!   first and last key), keys strictly increasing within and across blocks,
//!   and the bloom filter holding every key (read block by block, as reads do).
//!
//! Objects that no kept manifest references (orphans) are reported as
//! information, not as problems: an SST being flushed or compacted, a fenced
//! writer's late upload, or garbage GC has not deleted yet are all normal.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::bounds::{self, ObjectKind, ReadLimits, MAX_MANIFEST_BYTES};
use crate::db::read_chain;
use crate::manifest::{ManifestObject, SstHandle};
use crate::paths::Layout;
use crate::protocol::{Protocol, WalId, WalKind};
use crate::settings::Settings;
use crate::sst::SstReader;
use crate::store::read;
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

/// Checks the database under `root`: every manifest version, the latest
/// one's invariants (I1 among them), the WAL chain and every SST, object by
/// object, reporting every problem rather than the first. Reads only; never
/// writes, so it is safe beside a running writer (which may show orphans:
/// objects it is still flushing). Objects are accepted up to the default
/// settings' sizes; [`fsck_with`] takes the settings the database was written with.
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
    fsck_with(store, root, &Settings::default()).await
}

/// Checks the database under `root`, accepting objects as large as a writer
/// with `settings` writes them (`bounds::ReadLimits`). Reads only; never writes.
pub async fn fsck_with(store: &dyn ObjectStore, root: Path, settings: &Settings) -> Report {
    let limits = ReadLimits::of(settings);
    let layout = Layout::new(root);
    let mut r = Report::default();
    let listed: Vec<ObjectMeta> = match store.list(Some(layout.root())).try_collect().await {
        Ok(v) => v,
        Err(e) => {
            r.problem(format!("cannot list the database: {e}"));
            return r;
        }
    };
    let sizes: BTreeMap<&Path, u64> = listed.iter().map(|m| (&m.location, m.size)).collect();
    let listed: Vec<Path> = listed.iter().map(|m| m.location.clone()).collect();
    let mut versions: Vec<u64> = listed.iter().filter_map(|p| layout.parse_manifest(p)).collect();
    versions.sort_unstable();
    let wal_ids: BTreeSet<WalId> = listed.iter().filter_map(|p| layout.parse_wal(p)).collect();
    let sst_names: BTreeMap<u128, Path> = listed
        .iter()
        .filter(|p| p.prefix_matches(&layout.sst_dir()))
        .filter_map(|p| Some((layout.parse_sst(p)?.id, p.clone())))
        .collect();

    // Every kept manifest version, refused by its listed size if too large.
    let mut kept: BTreeMap<u64, ManifestObject> = BTreeMap::new();
    for v in &versions {
        let path = layout.manifest(*v);
        let size = sizes.get(&path).copied().unwrap_or(0);
        let bytes = if size > MAX_MANIFEST_BYTES {
            Err(crate::Error::corrupt(path.to_string(), ObjectKind::Manifest.too_large(size, MAX_MANIFEST_BYTES)))
        } else {
            read(store, &path, ObjectKind::Manifest, MAX_MANIFEST_BYTES).await
        };
        match bytes.and_then(|b| ManifestObject::decode(path.as_ref(), &b)) {
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

    // What decodes at a bound the next open or compaction cannot move past.
    for problem in stuck_at_a_bound(&m) {
        r.problem(format!("{}: {problem}", layout.manifest(m.version)));
    }

    // I1 and the WAL chain (each WAL decoded: blocks, order, uniqueness,
    // and of an epoch a manifest records).
    let mut on_chain: BTreeSet<WalId> = BTreeSet::new();
    match read_chain(store, &layout, Protocol::Shipped, &m.view(), limits.wal_bytes).await {
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
    let recorded: BTreeSet<WalId> = m.fences.iter().copied().collect();
    for f in &recorded {
        let path = layout.wal(*f);
        match read(store, &path, ObjectKind::Wal, limits.wal_bytes).await.and_then(|b| decode_wal(&path, b)) {
            Ok(w) if matches!(w.header.kind, WalKind::Fence { .. }) => r.ok(format!("fence {path}")),
            Ok(_) => r.problem(format!("{path}: recorded as a fence in the manifest, but holds data")),
            Err(e) => r.problem(format!("fence {f} recorded in the manifest: {e}")),
        }
    }

    // Every SST the latest version references, and the tree's shape.
    let mut seen_ssts: BTreeSet<u128> = BTreeSet::new();
    for h in &m.l0 {
        check_sst(store, &layout, h, limits.sst_bytes, &mut seen_ssts, &mut r).await;
    }
    let mut run_ids = BTreeSet::new();
    for run in &m.runs {
        if !run_ids.insert(run.id) {
            r.problem(format!("sorted run {} is listed twice", run.id));
        }
        if run.ssts.is_empty() {
            // Reads find nothing in it; a compaction that drops every entry
            // records no run, so only an older version leaves one.
            r.ok(format!("sorted run {} has no SSTs", run.id));
        }
        for pair in run.ssts.windows(2) {
            if pair[0].last_key >= pair[1].first_key {
                r.problem(format!(
                    "sorted run {}: SSTs {} and {} are not in key order with disjoint ranges ({:?} >= {:?})",
                    run.id,
                    layout.sst(&pair[0]),
                    layout.sst(&pair[1]),
                    pair[0].last_key,
                    pair[1].first_key
                ));
            }
        }
        for h in &run.ssts {
            check_sst(store, &layout, h, limits.sst_bytes, &mut seen_ssts, &mut r).await;
        }
    }

    // Orphans: objects no kept manifest references.
    let referenced: BTreeSet<u128> = kept
        .values()
        .flat_map(|k| k.ssts().map(|h| h.id).chain(k.retired.iter().map(|r| r.sst.id)))
        .collect();
    for (id, path) in &sst_names {
        if !referenced.contains(id) {
            r.orphan(format!("{path}: no kept manifest references it (an SST being written, or garbage for GC)"));
        }
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

/// Fields of the latest manifest at a bound the next step cannot move past:
/// they decode and reads work, but the next open, compaction or recovery
/// would be refused. Each names the field and what stops.
fn stuck_at_a_bound(m: &ManifestObject) -> Vec<String> {
    let mut out = Vec::new();
    if m.writer_epoch >= bounds::MAX_EPOCH {
        out.push(format!(
            "writer_epoch {} is the last epoch ({}): no writer can claim the next one, so the database opens read-only only",
            m.writer_epoch,
            bounds::MAX_EPOCH
        ));
    }
    if m.compactor_epoch >= bounds::MAX_EPOCH {
        out.push(format!(
            "compactor_epoch {} is the last epoch ({}): no compactor can claim the next one, so writes stop once L0 is full",
            m.compactor_epoch,
            bounds::MAX_EPOCH
        ));
    }
    if m.version >= bounds::MAX_ID {
        out.push(format!("version {} is the last version: no manifest can follow it", m.version));
    }
    if m.fences.len() >= bounds::MAX_FENCES {
        out.push(format!(
            "fences holds {} WAL ids, the most a manifest records ({}): a recovery that fences cannot record its fence",
            m.fences.len(),
            bounds::MAX_FENCES
        ));
    }
    out
}

/// Checks one SST the manifest lists: it exists, its size and key range are
/// the handle's, and it decodes with every check reads rely on. The SST is
/// read as reads do, its tail and then its blocks a few at a time, so its
/// size costs no memory.
async fn check_sst(store: &dyn ObjectStore, layout: &Layout, h: &SstHandle, limit: u64, seen: &mut BTreeSet<u128>, r: &mut Report) {
    let path = layout.sst(h);
    if !seen.insert(h.id) {
        r.problem(format!("{path}: listed twice in the manifest"));
        return;
    }
    if h.size > limit {
        r.problem(format!("{path}: {}", ObjectKind::Sst.too_large(h.size, limit)));
        return;
    }
    let reader = match SstReader::open_detached(store, path.clone(), Some(h.size)).await {
        Ok(reader) => reader,
        Err(crate::Error::ObjectStore(e)) => {
            r.problem(format!("{path}: required by the manifest but cannot be read: {e}"));
            return;
        }
        Err(e) => {
            r.problem(format!("{e}"));
            return;
        }
    };
    match check_blocks(store, &reader).await {
        Ok(entries) => {
            let recorded = Some((h.first_key.clone(), h.last_key.clone()));
            let held = reader.key_range();
            if held != recorded {
                let (first, last) = held.map_or((None, None), |(f, l)| (Some(f), Some(l)));
                r.problem(format!(
                    "{path}: keys span {first:?}..={last:?}, but the manifest records {:?}..={:?}",
                    h.first_key, h.last_key
                ));
            } else {
                r.ok(format!("sst {path} ({entries} entries, compression {})", reader.compression()));
            }
        }
        Err(e) => r.problem(format!("{e}")),
    }
}

/// Bytes of data blocks fsck reads at once.
const FSCK_READ_BYTES: u64 = 4 << 20;

/// Reads every data block of `reader`'s SST, checking each against its index
/// entry and the filter (`SstReader::decode_block`) and the keys strictly
/// increasing across blocks; the number of entries.
async fn check_blocks(store: &dyn ObjectStore, reader: &SstReader) -> crate::Result<u64> {
    let blocks = reader.block_count();
    let mut entries = 0u64;
    let mut last: Option<bytes::Bytes> = None;
    let mut i = 0;
    while i < blocks {
        let n = reader.blocks_within(i, blocks, FSCK_READ_BYTES);
        let span = reader.block_span(i..i + n).ok_or_else(|| crate::Error::corrupt(reader.path().to_string(), "block index out of range"))?;
        let raw = store.get_range(reader.path(), span.clone()).await?;
        if raw.len() as u64 != span.end - span.start {
            return Err(crate::Error::corrupt(reader.path().to_string(), "the store returned a short range"));
        }
        let mut at = 0usize;
        for b in i..i + n {
            let len = reader.block_span(b..b + 1).map_or(0, |s| (s.end - s.start) as usize);
            let block = reader.decode_block(b, &raw.slice(at..at + len))?;
            at += len;
            if let (Some(prev), Some((first, _, _))) = (&last, block.first()) {
                if prev >= first {
                    return Err(crate::Error::corrupt(
                        reader.path().to_string(),
                        format!("keys out of order across blocks: {prev:?} then {first:?}"),
                    ));
                }
            }
            entries += block.len() as u64;
            last = block.last().map(|e| e.0.clone()).or(last);
        }
        i += n;
    }
    Ok(entries)
}
