//! The compactor: size-tiered merges of L0 into sorted runs and of sorted
//! runs into larger ones, recorded by compare-and-set on the manifest.
//!
//! Which SSTs to merge is policy (here); what the manifest update must
//! preserve is the protocol's (`Compact` in spec/protocol.md): it removes
//! exactly its inputs, puts the output where they were, and never loses a
//! writer's update (a lost race is re-read and re-applied).

use std::time::Duration;

use super::background::{open_tree, try_create_manifest, upload_sst, Created};
use super::DbInner;
use crate::error::{Error, Result};
use crate::iter::{MergeIter, RunSource, Source, SstSource};
use crate::manifest::{ManifestObject, SortedRun, SstHandle};
use crate::protocol::Epoch;
use crate::sst::SstBuilder;
use crate::sync::{lock, Arc};

/// The compactor's own state in this process.
#[derive(Debug, Default)]
pub(crate) struct CompactorState {
    /// The compactor epoch this process claimed, once it compacted.
    epoch: Option<Epoch>,
}

/// One compaction: L0 SSTs (newest first) and a contiguous slice of runs
/// (newest first), merged into one run.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub l0: Vec<SstHandle>,
    pub runs: Vec<u64>,
    /// The output is the oldest run: tombstones can be dropped, no older
    /// run can hold the key they shadow.
    pub bottom: bool,
}

/// The scheduler's choice, from the latest manifest: all of L0 once it
/// reaches `l0_max_ssts`; else, with more than `max_sorted_runs` runs, the
/// newest window of at least two adjacent runs of similar size (within 4x),
/// or the two newest runs.
pub(crate) fn pick(m: &ManifestObject, l0_max_ssts: usize, max_sorted_runs: usize) -> Option<Job> {
    if m.l0.len() >= l0_max_ssts {
        return Some(Job { l0: m.l0.clone(), runs: Vec::new(), bottom: m.runs.is_empty() });
    }
    if m.runs.len() <= max_sorted_runs {
        return None;
    }
    let sizes: Vec<u64> = m.runs.iter().map(|r| r.size().max(1)).collect();
    let mut best = (0, 2);
    for start in 0..sizes.len() {
        let mut end = start + 1;
        let (mut lo, mut hi) = (sizes[start], sizes[start]);
        while end < sizes.len() {
            let (l, h) = (lo.min(sizes[end]), hi.max(sizes[end]));
            if h > l.saturating_mul(4) {
                break;
            }
            (lo, hi) = (l, h);
            end += 1;
        }
        if end - start >= 2 && end - start > best.1 - best.0 {
            best = (start, end);
        }
    }
    let (start, end) = best;
    let runs = m.runs[start..end].iter().map(|r| r.id).collect();
    Some(Job { l0: Vec::new(), runs, bottom: end == m.runs.len() })
}

/// The background compactor: wakes when L0 grows, compacts while needed.
pub(super) async fn run(inner: Arc<DbInner>) {
    loop {
        tokio::select! {
            _ = inner.wake_compactor.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if inner.commit.failure().is_some() {
            return;
        }
        if let Err(e) = compact_while_needed(&inner).await {
            tracing::warn!(error = %e, "Compact failed; retrying later");
            if matches!(e, Error::Fenced { .. }) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Compacts until the scheduler finds nothing to do.
pub(crate) async fn compact_while_needed(inner: &Arc<DbInner>) -> Result<()> {
    let mut state = inner.compaction.lock().await;
    loop {
        let manifest = inner.manifest.lock().await.clone();
        let Some(job) = pick(&manifest, inner.settings.l0_max_ssts, inner.settings.max_sorted_runs) else {
            return Ok(());
        };
        compact(inner, &mut state, job).await?;
        inner.space_freed.notify_waiters();
    }
}

/// Merges the job's inputs into new SSTs (newest value wins; tombstones
/// dropped only into the bottom run), split by size, then records the run.
async fn compact(inner: &Arc<DbInner>, state: &mut CompactorState, job: Job) -> Result<()> {
    let tree = lock(&inner.tree).clone();
    let range = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
    let mut sources = Vec::new();
    for h in &job.l0 {
        let path = inner.layout.sst(h.id);
        let reader = tree.l0.iter().find(|r| r.path() == &path).cloned();
        let Some(reader) = reader else {
            return Err(Error::corrupt(path.to_string(), "an L0 input of the compaction is not open"));
        };
        sources.push(Source::Sst(SstSource::new(reader, range.clone())));
    }
    for id in &job.runs {
        let Some(run) = tree.runs.iter().find(|r| r.id == *id) else {
            return Err(Error::InvalidArgument(format!("sorted run {id} is not open")));
        };
        sources.push(Source::Run(RunSource::new(run, range.clone())));
    }
    let epoch = claim(inner, state).await?;
    let mut merge = MergeIter::new(sources, job.bottom);
    let mut outputs: Vec<SstHandle> = Vec::new();
    let mut builder = SstBuilder::new(inner.settings.block_size);
    let target = inner.settings.compacted_sst_size_bytes;
    let mut entries = 0u64;
    while let Some((k, v)) = merge.next().await? {
        builder.add(k, v)?;
        entries += 1;
        if builder.estimated_size() >= target {
            let full = std::mem::replace(&mut builder, SstBuilder::new(inner.settings.block_size));
            outputs.extend(upload_sst(inner, full.finish(&[]), epoch).await?);
        }
    }
    if !builder.is_empty() {
        outputs.extend(upload_sst(inner, builder.finish(&[]), epoch).await?);
    }
    let result = commit(inner, epoch, &job, outputs.clone()).await;
    for h in &outputs {
        lock(&inner.pinned).remove(&h.id);
    }
    let version = result?;
    tracing::info!(
        action = "Compact",
        compactor_epoch = epoch,
        version,
        l0_inputs = job.l0.len(),
        run_inputs = job.runs.len(),
        outputs = outputs.len(),
        entries,
        bottom = job.bottom,
        "Compact"
    );
    Ok(())
}

/// `ClaimCompactor`: the first compaction of this process claims
/// `compactor_epoch + 1` with a manifest version of its own.
async fn claim(inner: &Arc<DbInner>, state: &mut CompactorState) -> Result<Epoch> {
    if let Some(e) = state.epoch {
        return Ok(e);
    }
    let mut manifest = inner.manifest.lock().await;
    for _ in 0..super::open::RACE_ATTEMPTS {
        let mut next = manifest.successor(manifest.view(), manifest.l0.clone());
        next.compactor_epoch = manifest.compactor_epoch + 1;
        match try_create_manifest(inner, &next).await? {
            Created::Ours => {
                state.epoch = Some(next.compactor_epoch);
                *manifest = next;
                return Ok(manifest.compactor_epoch);
            }
            Created::Taken(existing) => {
                if existing.writer_epoch > inner.epoch {
                    return Err(Error::Fenced { writer_epoch: inner.epoch, by: existing.writer_epoch });
                }
                *manifest = reread(inner, existing).await?;
            }
        }
    }
    Err(Error::InvalidArgument("could not claim a compactor epoch".into()))
}

/// The newest manifest, at least as new as `seen`.
async fn reread(inner: &DbInner, seen: ManifestObject) -> Result<ManifestObject> {
    Ok(match super::open::latest_manifest(inner.store.as_ref(), &inner.layout).await? {
        Some(latest) if latest.version > seen.version => latest,
        _ => seen,
    })
}

/// `Compact`'s manifest update on top of `latest`: removes exactly the
/// inputs and puts the output run where they were. `None` if an input is
/// gone (another compactor took it: the outputs become orphans for GC).
fn apply_compaction(latest: &ManifestObject, job: &Job, output: &SortedRun) -> Option<ManifestObject> {
    let l0_ids: Vec<u128> = job.l0.iter().map(|h| h.id).collect();
    if !l0_ids.iter().all(|id| latest.l0.iter().any(|h| h.id == *id)) {
        return None;
    }
    if !job.runs.iter().all(|id| latest.runs.iter().any(|r| r.id == *id)) {
        return None;
    }
    let mut next = latest.successor(latest.view(), latest.l0.iter().filter(|h| !l0_ids.contains(&h.id)).cloned().collect());
    let mut runs = Vec::with_capacity(latest.runs.len() + 1);
    let mut placed = false;
    if job.runs.is_empty() {
        // Merged L0 is newer than every existing run.
        runs.push(output.clone());
        placed = true;
    }
    for r in &latest.runs {
        if job.runs.contains(&r.id) {
            if !placed {
                runs.push(output.clone());
                placed = true;
            }
        } else {
            runs.push(r.clone());
        }
    }
    runs.retain(|r| !r.ssts.is_empty());
    next.runs = runs;
    next.next_run_id = latest.next_run_id.max(output.id + 1);
    Some(next)
}

/// Records the compaction by compare-and-set; a writer's version in between
/// is re-read and the compaction re-applied on top of it.
async fn commit(inner: &Arc<DbInner>, epoch: Epoch, job: &Job, outputs: Vec<SstHandle>) -> Result<u64> {
    let mut manifest = inner.manifest.lock().await;
    for _ in 0..super::open::RACE_ATTEMPTS {
        if manifest.compactor_epoch > epoch {
            return Err(Error::Fenced { writer_epoch: epoch, by: manifest.compactor_epoch });
        }
        let output = SortedRun { id: manifest.next_run_id, ssts: outputs.clone() };
        let Some(next) = apply_compaction(&manifest, job, &output) else {
            return Err(Error::InvalidArgument("compaction inputs are no longer in the manifest".into()));
        };
        match try_create_manifest(inner, &next).await? {
            Created::Ours => {
                let tree = open_tree(inner, &next).await?;
                *manifest = next;
                let _mem = lock(&inner.mem);
                *lock(&inner.tree) = Arc::new(tree);
                return Ok(manifest.version);
            }
            Created::Taken(existing) => {
                if existing.writer_epoch > inner.epoch {
                    return Err(Error::Fenced { writer_epoch: inner.epoch, by: existing.writer_epoch });
                }
                *manifest = reread(inner, existing).await?;
            }
        }
    }
    Err(Error::InvalidArgument("compaction lost the manifest race too many times".into()))
}
