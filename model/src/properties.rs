//! The invariants I1–I12 (`always`) and the `sometimes` properties that show
//! the exploration is not vacuous. Numbers and names follow spec/protocol.md.
//!
//! I11 and I12 are bounded-progress (liveness) properties: they are judged
//! only in terminal states, where no action is enabled any more. The model
//! is finite and every path ends, so "every path ends with recovery done
//! and every write settled" is what `eventually` means at these bounds.

use stateright::{Model, Property};
use tidemark::internals::protocol::{ChainWalk, Protocol, RecoveryError, WalId};

use crate::model::{Bounds, TidemarkModel};
use crate::state::{Phase, RecoveryOutcome, State, WriteId};

pub const I1: &str = "I1 ManifestWalsDurable";
pub const I2: &str = "I2 RecoveryNeverFails";
pub const I3: &str = "I3 NoAckedWriteLost";
pub const I4: &str = "I4 PrefixConsistent";
pub const I5: &str = "I5 FencedWriterAcksNothing";
pub const I6: &str = "I6 ManifestSstsExist";
pub const I7: &str = "I7 NothingNeededDeleted";
pub const I8: &str = "I8 NoManifestUpdateLost";
pub const I9: &str = "I9 FencesListed";
pub const I10: &str = "I10 RejectedWriteNeverRecovered";
pub const I11: &str = "I11 RecoveryCompletes";
pub const I12: &str = "I12 WritesSettle";

/// Every `always` property, in order.
pub const ALWAYS: [&str; 12] = [I1, I2, I3, I4, I5, I6, I7, I8, I9, I10, I11, I12];

/// Every property; each `sometimes` example only when the bounds allow it.
pub fn all(b: &Bounds) -> Vec<Property<TidemarkModel>> {
    let mut props = vec![
        Property::always(I1, |_, s: &State| i1_violation(s).is_none()),
        Property::always(I2, |_, s: &State| i2_violation(s).is_none()),
        Property::always(I3, |_, s: &State| i3_violation(s).is_none()),
        Property::always(I4, |_, s: &State| i4_violation(s).is_none()),
        Property::always(I5, |_, s: &State| i5_violation(s).is_none()),
        Property::always(I6, |_, s: &State| i6_violation(s).is_none()),
        Property::always(I7, |m: &TidemarkModel, s: &State| i7_violation(m, s).is_none()),
        Property::always(I8, |_, s: &State| i8_violation(s).is_none()),
        Property::always(I9, |_, s: &State| i9_violation(s).is_none()),
        Property::always(I10, |_, s: &State| i10_violation(s).is_none()),
        Property::always(I11, |m: &TidemarkModel, s: &State| i11_violation(m, s).is_none()),
        Property::always(I12, |m: &TidemarkModel, s: &State| i12_violation(m, s).is_none()),

        Property::sometimes("manifest written while uploads in flight", |_, s: &State| s.seen.manifest_while_uploading),
        Property::sometimes("recovery replays WALs", |_, s: &State| {
            matches!(s.recovery, Some(RecoveryOutcome::Recovered { replayed_wals, .. }) if replayed_wals > 0)
        }),
        Property::sometimes("zombie upload rejected", |_, s: &State| s.seen.zombie_upload_rejected),
    ];
    if b.writes > 1 && b.inflight > 1 {
        props.push(Property::sometimes("uploads complete out of order", |_, s: &State| {
            s.writers.iter().any(|w| !w.log.watermark().completed_above().is_empty())
        }));
    }
    if b.crashes > 0 {
        props.push(Property::sometimes("crash with uploads in flight", |_, s: &State| {
            s.uploads.iter().any(|u| !s.is_alive(u.owner))
        }));
    }
    if b.ambiguous > 0 {
        props.push(Property::sometimes("ambiguous create read back as ours", |_, s: &State| {
            s.seen.ambiguous_create_resolved
        }));
    }
    if b.hedges > 0 {
        props.push(Property::sometimes("hedged upload read back as ours", |_, s: &State| s.seen.hedge_read_back_as_ours));
    }
    if b.compactors > 0 {
        props.push(Property::sometimes("compaction committed", |_, s: &State| !s.committed.runs.is_empty()));
        props.push(Property::sometimes("writer re-applied after losing to the compactor", |_, s: &State| {
            s.seen.writer_reapplied
        }));
    }
    if b.compactors > 1 {
        props.push(Property::sometimes("zombie compactor rejected", |_, s: &State| s.seen.zombie_compactor_rejected));
    }
    if b.gcs > 0 && b.ticks >= b.min_age {
        props.push(Property::sometimes("GC ran while a superseded version was leased", |_, s: &State| {
            s.gc_runs > 0 && s.leases.keys().any(|v| s.store.manifests.contains_key(v)) && s.seen.gc_deleted_sst
        }));
        props.push(Property::sometimes("GC deleted a WAL", |_, s: &State| s.seen.gc_deleted_wal));
        props.push(Property::sometimes("GC deleted an SST", |_, s: &State| s.seen.gc_deleted_sst));
        props.push(Property::sometimes("GC deleted a manifest", |_, s: &State| {
            (s.store.manifests.len() as u64) < s.store.latest_manifest().0
        }));
    }
    if b.readers > 0 {
        props.push(Property::sometimes("reader reads an old version after a newer one", |m: &TidemarkModel, s: &State| {
            let latest = s.store.latest_manifest().0;
            s.readers.iter().any(|r| r.version < latest && reader_missing(m, s, r).is_none())
        }));
    }
    if b.closes > 0 {
        props.push(Property::sometimes("clean close, then recovery without a fence", |_, s: &State| {
            s.seen.recovered_after_close_without_fence
        }));
    }
    props
}

/// I1: the first chain position the latest manifest requires that is missing.
/// The check walks the chain as the shipped protocol does, whatever variant
/// is being checked, so a mutant cannot weaken its own invariant.
pub fn i1_violation(s: &State) -> Option<String> {
    let (version, latest) = s.store.latest_manifest();
    let mut walk = ChainWalk::new(Protocol::Shipped, &latest.view, u64::MAX, s.store.wals.keys().copied(), 1);
    while let Some(id) = walk.next_to_read() {
        walk.observe(id, s.store.wals.get(&id)?.header);
    }
    match walk.finish() {
        Err(RecoveryError::MissingWal { id, wal_id_last_seen }) => Some(format!(
            "manifest v{version} records wal_id_last_seen={wal_id_last_seen}, but wal {id} does not exist"
        )),
        _ => None,
    }
}

/// I2: the latest recovery failed.
pub fn i2_violation(s: &State) -> Option<String> {
    match &s.recovery {
        Some(RecoveryOutcome::Failed { epoch, error }) => Some(format!("Recover of epoch {epoch} failed: {error}")),
        Some(RecoveryOutcome::MissingSst { epoch, sst }) => {
            Some(format!("Recover of epoch {epoch} failed: the manifest references {sst:?}, which does not exist"))
        }
        _ => None,
    }
}

fn recovered(s: &State) -> Option<(u64, &Vec<WriteId>)> {
    match &s.recovery {
        Some(RecoveryOutcome::Recovered { epoch, writes, .. }) => Some((*epoch, writes)),
        _ => None,
    }
}

/// I3: a write acknowledged before the latest recovery claimed its epoch is
/// not among the recovered writes.
pub fn i3_violation(s: &State) -> Option<String> {
    let (epoch, writes) = recovered(s)?;
    s.acked
        .iter()
        .find(|(id, ack)| ack.claimed_at_ack < epoch && !writes.contains(id))
        .map(|(id, ack)| format!("write {id} acked by epoch {} is lost after Recover of epoch {epoch}", ack.epoch))
}

/// I4: in the recovered writes, each epoch's writes must be exactly a prefix
/// of that epoch's issue order.
pub fn i4_violation(s: &State) -> Option<String> {
    let (_, writes) = recovered(s)?;
    for (epoch, issued) in &s.issued {
        let survived: Vec<WriteId> = writes.iter().copied().filter(|w| issued.contains(w)).collect();
        if issued.get(..survived.len()) != Some(&survived[..]) {
            return Some(format!(
                "epoch {epoch} issued {issued:?} but {survived:?} survived, which is not a prefix"
            ));
        }
    }
    None
}

/// I5: a write acknowledged by an older epoch after the latest recovered
/// epoch claimed the store is not visible to that epoch.
pub fn i5_violation(s: &State) -> Option<String> {
    let (epoch, writes) = recovered(s)?;
    s.acked
        .iter()
        .find(|(id, ack)| ack.epoch < epoch && ack.claimed_at_ack >= epoch && !writes.contains(id))
        .map(|(id, ack)| {
            format!("zombie epoch {} acked write {id} after epoch {epoch} claimed the store; epoch {epoch} never sees it", ack.epoch)
        })
}

/// I6: an SST the latest manifest references (L0 or a run) is missing.
pub fn i6_violation(s: &State) -> Option<String> {
    let (version, latest) = s.store.latest_manifest();
    latest
        .tree
        .ssts()
        .find(|id| !s.store.ssts.contains_key(id))
        .map(|id| format!("manifest v{version} references {id:?}, which does not exist"))
}

/// What a reader within its lease needs and the store no longer has.
fn reader_missing(m: &TidemarkModel, s: &State, r: &crate::state::Reader) -> Option<String> {
    let in_lease = u16::from(s.now) < u16::from(r.confirmed_at) + u16::from(m.bounds.min_age);
    if !in_lease {
        return None;
    }
    if let Some(id) = r.ssts.iter().find(|id| !s.store.ssts.contains_key(id)) {
        return Some(format!("a reader of v{} (within its lease) reads {id:?}, which was deleted", r.version));
    }
    r.wals
        .iter()
        .find(|id| !s.store.wals.contains_key(id))
        .map(|id| format!("a reader of v{} (within its lease) replays wal {id}, which was deleted", r.version))
}

/// I7: something a live reader within its lease, or an in-progress flush or
/// compaction that may still be recorded, needs was deleted. (What a
/// recovery and a fenced writer's successor need is I1–I5 and I9.)
pub fn i7_violation(m: &TidemarkModel, s: &State) -> Option<String> {
    if let Some(why) = &s.gc_broke_lease {
        return Some(why.clone());
    }
    if let Some(why) = s.readers.iter().find_map(|r| reader_missing(m, s, r)) {
        return Some(why);
    }
    let policy = m.gc_policy();
    // An output is in progress from its write until it is recorded, unless it
    // grew too old to record (then it is rewritten, and GC may take it).
    let deleted_young = |id: &crate::state::SstId, created_at: u8| {
        !s.store.ssts.contains_key(id) && policy.may_record_sst(u64::from(created_at), u64::from(s.now))
    };
    for w in &s.writers {
        if let Some(f) = w.flushed.iter().find(|f| deleted_young(&f.sst, f.created_at)) {
            return Some(format!("epoch {}'s flushed L0 {:?} was deleted before it was recorded", w.epoch, f.sst));
        }
    }
    for c in &s.compactors {
        if let Some(job) = &c.job {
            if let Some(id) = job.output.ssts.iter().find(|id| deleted_young(id, c.output_created_at)) {
                return Some(format!("compactor {}'s output {id:?} was deleted before it was committed", c.epoch));
            }
        }
    }
    None
}

/// I8: a successful manifest update of the writer or the compactor is no
/// longer in the latest version.
pub fn i8_violation(s: &State) -> Option<String> {
    let (version, latest) = s.store.latest_manifest();
    let reachable: std::collections::BTreeSet<WriteId> = latest
        .tree
        .ssts()
        .flat_map(|id| s.store.ssts.get(id).map(|o| o.writes.clone()).unwrap_or_default())
        .collect();
    if let Some(w) = s.committed.writes.iter().find(|w| !reachable.contains(w)) {
        return Some(format!("write {w} was recorded by a successful update, but no SST of manifest v{version} holds it"));
    }
    let v = &latest.view;
    if v.replay_after_wal_id < s.committed.replay_after_wal_id || v.wal_id_last_seen < s.committed.wal_id_last_seen {
        return Some(format!(
            "a writer update recorded replay_after_wal_id={} wal_id_last_seen={}, manifest v{version} has {} and {}",
            s.committed.replay_after_wal_id, s.committed.wal_id_last_seen, v.replay_after_wal_id, v.wal_id_last_seen
        ));
    }
    if v.compactor_epoch < s.committed.compactor_epoch {
        return Some(format!("compactor epoch {} was claimed, manifest v{version} has {}", s.committed.compactor_epoch, v.compactor_epoch));
    }
    s.committed
        .runs
        .iter()
        .find(|id| !latest.tree.runs.iter().any(|r| r.id == **id))
        .map(|id| format!("run {id} of a committed compaction is not in manifest v{version}"))
}

/// I9: a fence at or below the latest manifest's `replay_after_wal_id` is not
/// listed in it, so GC could not know to keep it.
pub fn i9_violation(s: &State) -> Option<String> {
    let (version, latest) = s.store.latest_manifest();
    s.store
        .wals
        .iter()
        .find(|(id, o)| o.is_fence() && **id <= latest.view.replay_after_wal_id && !latest.tree.fences.contains(id))
        .map(|(id, _)| {
            format!(
                "fence wal {id} <= replay_after_wal_id={} of manifest v{version}, which does not list it",
                latest.view.replay_after_wal_id
            )
        })
}

/// I10: a write whose own WAL create was rejected (read back as another
/// writer's object, so the caller was told it was not written) is among the
/// writes the latest recovery made visible.
pub fn i10_violation(s: &State) -> Option<String> {
    let (epoch, writes) = recovered(s)?;
    s.rejected
        .iter()
        .find(|id| writes.contains(id))
        .map(|id| format!("write {id} was reported as not written (its WAL create was rejected), yet Recover of epoch {epoch} made it visible"))
}

/// Whether no action is enabled in `s` (the end of every path through it).
pub fn is_terminal(m: &TidemarkModel, s: &State) -> bool {
    // Fast paths: an upload in flight can always return (`WalDurable`), a
    // recovering writer can always `Fence`, a buffer can always `FreezeWal`.
    if !s.uploads.is_empty()
        || s.writers.iter().any(|w| matches!(w.phase, Phase::Recovering { .. }) || !w.buffer.is_empty())
    {
        return false;
    }
    let mut actions = Vec::new();
    m.actions(s, &mut actions);
    !actions.into_iter().any(|a| m.next_state(s, a).is_some_and(|next| m.within_boundary(&next)))
}

/// I11 (progress): a terminal state in which a recovery has not completed:
/// a writer is still recovering, or the latest recovery did not end `Recovered`.
pub fn i11_violation(m: &TidemarkModel, s: &State) -> Option<String> {
    let stuck = s.writers.iter().find(|w| matches!(w.phase, Phase::Recovering { .. }));
    let failed = s.recovery.as_ref().is_some_and(|r| !matches!(r, RecoveryOutcome::Recovered { .. }));
    if stuck.is_none() && !failed {
        return None;
    }
    if !is_terminal(m, s) {
        return None;
    }
    Some(match stuck {
        Some(w) => format!("no action is enabled, and epoch {} is still recovering", w.epoch),
        None => format!("no action is enabled, and the latest recovery did not complete: {:?}", s.recovery),
    })
}

/// I12 (progress): a terminal state in which a write has not settled: a
/// live writer has a write it never acknowledged (its watermark does not
/// cover its WALs), or a writer stopped as fenced (or with its WAL id
/// taken) although no newer epoch had claimed the store.
pub fn i12_violation(m: &TidemarkModel, s: &State) -> Option<String> {
    let unsettled = s.writers.iter().find(|w| {
        w.phase == Phase::Active
            && (!w.pending.is_empty() || !w.buffer.is_empty() || w.log.durable_wal_id() + 1 < w.log.next_wal_id())
    });
    if unsettled.is_none() && s.stopped_without_successor.is_none() {
        return None;
    }
    if !is_terminal(m, s) {
        return None;
    }
    if let Some(epoch) = s.stopped_without_successor {
        let lost: Vec<WriteId> = s
            .issued
            .get(&epoch)
            .map(|ws| ws.iter().copied().filter(|w| !s.acked.contains_key(w)).collect())
            .unwrap_or_default();
        return Some(format!(
            "epoch {epoch} stopped as fenced though no newer epoch claimed the store; its writes {lost:?} never settle"
        ));
    }
    unsettled.map(|w| {
        let pending: Vec<WriteId> = w.pending.iter().map(|(id, _)| *id).collect();
        format!(
            "no action is enabled, and epoch {} still holds writes {pending:?} unacknowledged (durable_wal_id={}, next_wal_id={})",
            w.epoch,
            w.log.durable_wal_id(),
            w.log.next_wal_id()
        )
    })
}

/// The violation message of an `always` property, by name.
pub fn explain(model: &TidemarkModel, name: &str, s: &State) -> Option<String> {
    match name {
        I1 => i1_violation(s),
        I2 => i2_violation(s),
        I3 => i3_violation(s),
        I4 => i4_violation(s),
        I5 => i5_violation(s),
        I6 => i6_violation(s),
        I7 => i7_violation(model, s),
        I8 => i8_violation(s),
        I9 => i9_violation(s),
        I10 => i10_violation(s),
        I11 => i11_violation(model, s),
        I12 => i12_violation(model, s),
        _ => None,
    }
}

/// The WAL ids a writer has frozen but not made durable (for step details).
pub fn not_durable(s: &State, epoch: u64) -> Vec<WalId> {
    let mut ids: Vec<WalId> = s.uploads.iter().filter(|u| u.owner == epoch).map(|u| u.wal_id).collect();
    if let Some(w) = s.writer(epoch) {
        ids.extend(w.frozen.keys());
    }
    ids.sort_unstable();
    ids
}
