//! The compactor: size-tiered merges of L0 into sorted runs and of sorted
//! runs into larger ones, recorded by compare-and-set on the manifest.
//!
//! Which SSTs to merge is policy (here); what the manifest update must
//! preserve is the protocol's (`Compact` in spec/protocol.md): it removes
//! exactly its inputs, puts the output where they were, and never loses a
//! writer's update (a lost race is re-read and re-applied).

use std::time::Duration;

use super::background::{created_outcome, open_tree, read_manifest, reread, try_create_manifest, upload_sst, Created};
use super::DbInner;
use crate::error::{Error, Result};
use crate::iter::{MergeIter, RunSource, Source, SstSource};
use crate::manifest::{ManifestObject, SstHandle};
use crate::protocol::{
    apply_compaction, claim_compactor_epoch, on_manifest_taken, reapply_base, Compaction, CreatedOutcome, Epoch,
    GcPolicy, ManifestConflict, Role, SortedRun, TakenOutcome,
};
use crate::sst::SstBuilder;
use crate::sync::{lock, Arc};

/// The compactor's own state in this process.
#[derive(Debug, Default)]
pub(crate) struct CompactorState {
    /// The compactor epoch this process claimed, once it compacted.
    epoch: Option<Epoch>,
    /// Runs written under that epoch: a run's id is `epoch << 32 | count`,
    /// unique in the store's history.
    runs: u64,
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
    // Decided before any output is written: an epoch too large for a run id
    // fails the compaction cleanly instead of colliding with another run.
    let run_id = run_id(inner, epoch, state.runs)?;
    let mut merge = MergeIter::new(sources, job.bottom);
    let mut outputs: Vec<SstHandle> = Vec::new();
    let mut builder = SstBuilder::new(inner.settings.block_size);
    let target = inner.settings.compacted_sst_size_bytes;
    let mut entries = 0u64;
    while let Some((k, seq, v)) = merge.next().await? {
        builder.add(k, seq, v)?;
        entries += 1;
        if builder.estimated_size() >= target {
            let full = std::mem::replace(&mut builder, SstBuilder::new(inner.settings.block_size));
            outputs.extend(upload_sst(inner, full.finish(&[]), epoch).await?);
        }
    }
    if !builder.is_empty() {
        outputs.extend(upload_sst(inner, builder.finish(&[]), epoch).await?);
    }
    state.runs += 1;
    let result = commit(inner, epoch, &job, SortedRun { id: run_id, ssts: outputs.clone() }).await;
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

/// The id of this compactor's next run: `epoch << 32 | (runs + 1)`, unique
/// in the store's history only while both fit their 32 bits. A
/// `compactor_epoch` read from the store that does not fit is `Corrupt`
/// (it takes 2^32 compactor claims to get there honestly); never a shift
/// that silently drops bits or a wrap (issue 17, case 1).
fn run_id(inner: &DbInner, epoch: Epoch, runs: u64) -> Result<u64> {
    let n = runs.checked_add(1).filter(|n| *n < 1 << 32);
    match (n, epoch < 1 << 32) {
        (Some(n), true) => Ok(epoch << 32 | n),
        (None, _) => Err(Error::InvalidArgument(format!("compactor epoch {epoch} has written 2^32 runs; reopen to claim a new epoch"))),
        (_, false) => Err(Error::corrupt(
            inner.layout.manifest_dir().to_string(),
            format!("compactor_epoch {epoch} leaves no room for run ids (epoch << 32 | n)"),
        )),
    }
}

/// `ClaimCompactor`: the first compaction of this process claims
/// `compactor_epoch + 1` with a manifest version of its own; a writer's
/// version in between is re-read and the claim re-applied.
async fn claim(inner: &Arc<DbInner>, state: &mut CompactorState) -> Result<Epoch> {
    if let Some(e) = state.epoch {
        return Ok(e);
    }
    let mut manifest = inner.manifest.lock().await;
    for _ in 0..super::open::RACE_ATTEMPTS {
        let next = manifest.successor(&inner.layout, claim_compactor_epoch(&manifest.view()), manifest.tree())?;
        let latest = match try_create_manifest(inner, &next).await? {
            Created::Ours => match created_outcome(inner, next.version).await? {
                CreatedOutcome::Applied => {
                    tracing::info!(action = "ClaimCompactor", compactor_epoch = next.compactor_epoch, version = next.version, "ClaimCompactor");
                    state.epoch = Some(next.compactor_epoch);
                    *manifest = next;
                    return Ok(manifest.compactor_epoch);
                }
                CreatedOutcome::SlotReopened { latest } => read_manifest(inner, latest).await?,
            },
            Created::Taken(existing) => {
                if existing.writer_epoch > inner.epoch {
                    return Err(Error::Fenced { writer_epoch: inner.epoch, by: existing.writer_epoch });
                }
                reread(inner, existing).await?
            }
        };
        *manifest = latest;
    }
    Err(Error::InvalidArgument("could not claim a compactor epoch".into()))
}

/// `CompactCommit`: records the compaction with the protocol's
/// `apply_compaction` (exactly its inputs removed, the output where they
/// were) by compare-and-set; a writer's version in between is re-read and
/// the compaction re-applied on top of it (`on_manifest_taken`).
async fn commit(inner: &Arc<DbInner>, epoch: Epoch, job: &Job, output: SortedRun<SstHandle>) -> Result<u64> {
    let policy = GcPolicy::new(inner.settings.protocol, inner.settings.gc_min_age.as_millis() as u64);
    let now = super::gc::now_ms() + COMMIT_TIMEOUT_MS;
    if let Some(old) = output.ssts.iter().find(|h| !policy.may_record_sst(h.created_at_ms(), now)) {
        return Err(Error::InvalidArgument(format!(
            "compaction output {} is older than gc_min_age before its manifest was written; raise gc_min_age",
            ulid::Ulid(old.id)
        )));
    }
    let compaction = Compaction { compactor_epoch: epoch, l0_inputs: job.l0.clone(), run_inputs: job.runs.clone(), output, sst_floor: 0 };
    let mut manifest = inner.manifest.lock().await;
    let mut content = manifest.clone();
    let mut slot = manifest.version;
    for _ in 0..super::open::RACE_ATTEMPTS {
        let (view, tree) = match apply_compaction(&content.view(), &content.tree(), &compaction) {
            Ok(next) => next,
            Err(ManifestConflict::Fenced { by }) => return Err(Error::Fenced { writer_epoch: epoch, by }),
            Err(other) => return Err(Error::InvalidArgument(format!("compaction not recorded: {other:?}"))),
        };
        let mut next = content.successor(&inner.layout, view, tree)?;
        next.version = ManifestObject::version_after(&inner.layout, slot)?;
        let latest = match try_create_manifest(inner, &next).await? {
            Created::Ours => match created_outcome(inner, next.version).await? {
                CreatedOutcome::Applied => {
                    let tree = open_tree(inner, &next).await?;
                    *manifest = next;
                    let _mem = lock(&inner.mem);
                    inner.set_tree(tree);
                    return Ok(manifest.version);
                }
                CreatedOutcome::SlotReopened { latest } => read_manifest(inner, latest).await?,
            },
            Created::Taken(existing) => {
                match on_manifest_taken(Role::Compactor, epoch, next.token, &existing.view(), existing.token) {
                    TakenOutcome::Ours => {
                        *manifest = next;
                        return Ok(manifest.version);
                    }
                    TakenOutcome::Fenced { by } => return Err(Error::Fenced { writer_epoch: epoch, by }),
                    TakenOutcome::Reapply => reread(inner, existing).await?,
                }
            }
        };
        content = reapply_base(inner.settings.protocol, &content, &latest).clone();
        slot = latest.version;
        *manifest = latest;
    }
    Err(Error::InvalidArgument("compaction lost the manifest race too many times".into()))
}

/// Time allowed for a manifest create to complete, added to `now` when
/// checking that an SST may still be recorded (`GcPolicy::may_record_sst`).
pub(crate) const COMMIT_TIMEOUT_MS: u64 = 30_000;
