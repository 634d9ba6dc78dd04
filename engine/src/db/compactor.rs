//! The compactor: size-tiered merges of L0 into sorted runs and of sorted
//! runs into larger ones, recorded by compare-and-set on the manifest.
//!
//! Which SSTs to merge is policy (here); what the manifest update must
//! preserve is the protocol's (`Compact` in spec/protocol.md): it removes
//! exactly its inputs, puts the output where they were, and never loses a
//! writer's update (a lost race is re-read and re-applied).

use std::collections::BTreeMap;
use std::time::Duration;

use super::inner::DbInner;
use super::manifest_store::{Claim, CompactionCommit, Committed};
use crate::bounds;
use crate::error::{Error, Result};
use crate::iter::{CompactMutant, MergeIter, Mode, RunSource, Source, SstSource};
use crate::manifest::{ManifestObject, SstHandle, SstOwner};
use crate::protocol::{fenced_by, Compaction, Epoch, Role, SortedRun, Tree};
use crate::trace::TraceEvent;
use crate::sst::SstBuilder;
use crate::sync::{lock, Arc, Ordering};

/// The compactor's own state in this process.
#[derive(Debug, Default)]
pub(crate) struct CompactorState {
    /// The compactor epoch this process claimed, once it compacted.
    epoch: Option<Epoch>,
    /// Runs written under that epoch: a run's id is `epoch << 32 | count`,
    /// unique in the store's history.
    pub(super) runs: u64,
    /// Trees of the versions durable checkpoints pin (see `CompactionCommit`).
    pinned: BTreeMap<u64, Tree<SstHandle>>,
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

/// L0 is compacted once it holds this many SSTs: half its limit, so a
/// compaction usually finishes before `FlushL0` has to wait at the limit.
pub(crate) fn l0_trigger(l0_max_ssts: usize) -> usize {
    (l0_max_ssts / 2).max(2)
}

/// The scheduler's choice, from the latest manifest: all of L0 once it
/// reaches `l0_trigger`; else, with more than `max_sorted_runs` runs, the
/// newest window of at least two adjacent runs of similar size (within 4x),
/// or the two newest runs.
pub(crate) fn pick(m: &ManifestObject, l0_max_ssts: usize, max_sorted_runs: usize) -> Option<Job> {
    if m.l0.len() >= l0_trigger(l0_max_ssts) {
        // With as many runs as a manifest may hold, L0 merges into the
        // newest run instead of adding one.
        let runs: Vec<u64> = m.runs.iter().take(usize::from(m.runs.len() >= bounds::MAX_RUNS)).map(|r| r.id).collect();
        let bottom = m.runs.len() <= runs.len();
        return Some(Job { l0: m.l0.clone(), runs, bottom });
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
        let result = compact_while_needed(&inner).await;
        inner.compaction_result(&result);
        if let Err(e) = result {
            if let Error::Fenced { by, .. } = e {
                // A compactor elsewhere claimed a newer epoch: compaction is
                // its job now, and this writer stops waiting on its own.
                tracing::warn!(by, "compactor fenced by a compactor elsewhere; L0 is left to it");
                inner.compactor_fenced.store(true, Ordering::Release);
                inner.space_freed.notify_waiters();
                return;
            }
            tracing::warn!(error = %e, "Compact failed; retrying later");
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
        let path = inner.layout.sst(h);
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
    // Decided before any output is written: an epoch too large for a run id
    // fails the compaction cleanly instead of colliding with another run.
    let run_id = run_id(inner, epoch, state.runs)?;
    // Expiry is judged at the compaction's start, on the database clock.
    let mode = Mode::Compact { now_ms: inner.settings.clock.now_ms(), bottom: job.bottom || tombstones_above_bottom(inner) };
    let mut merge = MergeIter::new(sources, mode, inner.settings.merge_operator.clone()).with_mutant(compact_mutant(inner));
    let mut outputs: Vec<SstHandle> = Vec::new();
    let new_builder = || SstBuilder::new(inner.settings.block_size).with_compression(inner.settings.compression);
    let mut builder = new_builder();
    let target = inner.settings.compacted_sst_size_bytes;
    let mut entries = 0u64;
    while let Some((k, seq, v)) = merge.next().await? {
        builder.add(k, seq, v)?;
        entries += 1;
        // A run holds at most `MAX_SSTS_PER_RUN` SSTs: the last one takes the rest.
        if builder.estimated_size() >= target && outputs.len() + 1 < bounds::MAX_SSTS_PER_RUN {
            let full = std::mem::replace(&mut builder, new_builder());
            outputs.extend(upload_output(inner, full.finish(&[]), epoch).await?);
        }
    }
    if !builder.is_empty() {
        outputs.extend(upload_output(inner, builder.finish(&[]), epoch).await?);
    }
    state.runs += 1;
    inner.tracer.emit(
        epoch,
        TraceEvent::Compact {
            l0_inputs: job.l0.iter().map(|h| h.id).collect(),
            run_inputs: job.runs.clone(),
            outputs: outputs.iter().map(|h| h.id).collect(),
        },
    );
    let result = commit(inner, state, epoch, &job, SortedRun { id: run_id, ssts: outputs.clone() }).await;
    // Recorded, or given up on: either way the compactor's next floor passes
    // them, and GC collects what no manifest records.
    inner.unpin(&outputs);
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

/// Uploads one output SST: it exists before the compaction is recorded
/// (`CompactCommit` names only durable SSTs). The `compact-before-upload`
/// mutant starts the create and returns at once.
async fn upload_output(inner: &Arc<DbInner>, bytes: bytes::Bytes, epoch: Epoch) -> Result<Option<SstHandle>> {
    #[cfg(feature = "mutants")]
    if inner.settings.compact_before_upload {
        let Some(handle) = inner.sst_handle(&bytes, SstOwner::Compactor, epoch, None)? else { return Ok(None) };
        let (task, h) = (inner.clone(), handle.clone());
        tokio::spawn(async move {
            if let Err(e) = task.create_sst(&h, bytes).await {
                tracing::warn!(error = %e, "compaction output upload failed");
            }
        });
        return Ok(Some(handle));
    }
    inner.upload_sst(bytes, SstOwner::Compactor, epoch, None).await
}

/// Mutants `compaction-drops-operands` and `expired-values-vanish`.
fn compact_mutant(inner: &DbInner) -> CompactMutant {
    #[cfg(feature = "mutants")]
    {
        if inner.settings.compaction_drops_operands {
            return CompactMutant::DropsOperands;
        }
        if inner.settings.expired_values_vanish {
            return CompactMutant::ExpiredVanish;
        }
    }
    let _ = inner;
    CompactMutant::None
}

/// Mutant `tombstones-above-bottom` (`Settings::tombstones_above_bottom`):
/// tombstones are dropped by every compaction, not only into the bottom run.
fn tombstones_above_bottom(inner: &DbInner) -> bool {
    #[cfg(feature = "mutants")]
    return inner.settings.tombstones_above_bottom;
    #[cfg(not(feature = "mutants"))]
    {
        let _ = inner;
        false
    }
}

/// The id of this compactor's next run, `epoch << 32 | (runs + 1)`
/// ([`bounds::run_id`]): unique in the store's history only while both fit
/// their 32 bits. A claimed epoch always fits (decode and the claim keep
/// `compactor_epoch` within [`bounds::MAX_EPOCH`]); never a shift that
/// silently drops bits or a wrap.
fn run_id(inner: &DbInner, epoch: Epoch, runs: u64) -> Result<u64> {
    match runs.checked_add(1).and_then(|n| bounds::run_id(epoch, n)) {
        Some(id) => Ok(id),
        None if epoch > bounds::MAX_EPOCH => Err(Error::corrupt(
            inner.layout.manifest_dir().to_string(),
            format!("compactor_epoch {epoch} leaves no room for run ids (epoch << 32 | n)"),
        )),
        None => Err(Error::InvalidArgument(format!("compactor epoch {epoch} has written 2^32 runs; reopen to claim a new epoch"))),
    }
}

/// `ClaimCompactor`: the first compaction of this process claims
/// `compactor_epoch + 1` through the one commit loop (a version created
/// meanwhile is re-read and the claim made above it). A compactor in a
/// writer's process stops with its writer.
async fn claim(inner: &Arc<DbInner>, state: &mut CompactorState) -> Result<Epoch> {
    if let Some(e) = state.epoch {
        return Ok(e);
    }
    let mut manifest = inner.manifest.lock().await;
    let latest = inner.manifests.reread(manifest.clone()).await?;
    if let Some(by) = fenced_by(Role::Writer, inner.epoch, &latest.view()).filter(|_| !inner.read_only) {
        return Err(Error::Fenced { writer_epoch: inner.epoch, by });
    }
    let recorded = |next: &ManifestObject| inner.tracer.emit(next.compactor_epoch, TraceEvent::ClaimCompactor { version: next.version });
    match inner.manifests.commit(&latest, &Claim::Compactor, recorded).await? {
        Committed::Applied { version, .. } => {
            state.epoch = Some(version.compactor_epoch);
            let epoch = version.compactor_epoch;
            inner.adopt(&mut manifest, version);
            Ok(epoch)
        }
        Committed::Fenced { by } => Err(Error::Fenced { writer_epoch: inner.epoch, by }),
        Committed::Refused(c) => Err(Error::InvalidArgument(format!("compactor claim refused: {c:?}"))),
    }
}

/// `CompactCommit`: records the compaction with the protocol's
/// `apply_compaction` (exactly its inputs removed and retired, the output
/// where they were, the compactor's SST floor past its outputs) through the
/// one commit loop; a writer's version in between is re-read and the
/// compaction re-applied on top of it.
async fn commit(inner: &Arc<DbInner>, state: &mut CompactorState, epoch: Epoch, job: &Job, output: SortedRun<SstHandle>) -> Result<u64> {
    let sst_floor = inner.sst_floor(SstOwner::Compactor, &output.ssts);
    let compaction =
        Compaction { compactor_epoch: epoch, l0_inputs: job.l0.clone(), run_inputs: job.runs.clone(), output, sst_floor };
    // Read outside the manifest lock: a checkpoint created meanwhile is
    // judged without its tree, which keeps more, never less.
    let held = inner.manifest.lock().await.clone();
    inner.manifests.read_pinned_trees(&held, &mut state.pinned).await;
    let mut manifest = inner.manifest.lock().await;
    let recorded = |next: &ManifestObject| inner.tracer.emit(epoch, TraceEvent::CompactCommit { version: next.version });
    let edit = CompactionCommit { protocol: inner.settings.protocol, compaction: &compaction, pinned: &state.pinned };
    match inner.manifests.commit(&manifest, &edit, recorded).await? {
        Committed::Applied { version, .. } => {
            inner.adopt(&mut manifest, version);
            Ok(manifest.version)
        }
        Committed::Fenced { by } => Err(Error::Fenced { writer_epoch: epoch, by }),
        Committed::Refused(conflict) => Err(Error::InvalidArgument(format!("compaction not recorded: {conflict:?}"))),
    }
}
