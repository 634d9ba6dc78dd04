//! The invariants I1–I16 (`always`) and the `sometimes` properties that show
//! the exploration is not vacuous. Numbers and names follow spec/protocol.md.
//!
//! I11 and I12 are bounded-progress (liveness) properties: they are judged
//! only in terminal states, where no action is enabled any more. The model
//! is finite and every path ends, so "every path ends with recovery done
//! and every write settled" is what `eventually` means at these bounds.

use std::collections::BTreeSet;

use stateright::{Model, Property};
use tidemark::internals::protocol::{may_use, ChainWalk, CheckpointOwner, Follower as FollowCursor, Protocol, RecoveryError, WalId, WalKind};

use crate::model::{Bounds, LifecycleBounds, TidemarkModel};
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
pub const I13: &str = "I13 FollowerViewIsDurablePrefix";
pub const I14: &str = "I14 FollowerViewMonotone";
pub const I15: &str = "I15 NoFencedWriteFollowed";
pub const I16: &str = "I16 CheckpointOpensAsCreated";

/// Every `always` property, in order.
pub const ALWAYS: [&str; 16] = [I1, I2, I3, I4, I5, I6, I7, I8, I9, I10, I11, I12, I13, I14, I15, I16];

/// Every property; each `sometimes` example only when the bounds allow it.
pub fn all(b: &Bounds, l: &LifecycleBounds) -> Vec<Property<TidemarkModel>> {
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
        Property::always(I13, |_, s: &State| i13_violation(s).is_none()),
        Property::always(I14, |_, s: &State| i14_violation(s).is_none()),
        Property::always(I15, |_, s: &State| i15_violation(s).is_none()),
        Property::always(I16, |m: &TidemarkModel, s: &State| i16_violation(m, s).is_none()),

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
    if b.gcs > 0 {
        props.push(Property::sometimes("GC deleted a WAL", |_, s: &State| s.seen.gc_deleted_wal));
        props.push(Property::sometimes("GC deleted an SST", |_, s: &State| s.seen.gc_deleted_sst));
        props.push(Property::sometimes("GC deleted a manifest", |_, s: &State| {
            (s.store.manifests.len() as u64) < s.store.latest_manifest().0
        }));
        props.push(Property::sometimes("GC deleted after other steps changed the store", |_, s: &State| {
            s.seen.gc_deleted_after_interleaving
        }));
    }
    if b.gcs > 0 && b.compactors > 0 {
        props.push(Property::sometimes("GC kept a retired SST a checkpoint pins", |_, s: &State| s.seen.gc_kept_retired));
        props.push(Property::sometimes("GC deleted a retired SST", |_, s: &State| s.seen.gc_deleted_retired));
    }
    if b.readers > 0 {
        props.push(Property::sometimes("follower applied a WAL past its version", |_, s: &State| s.seen.follower_applied_wal));
        props.push(Property::sometimes("follower adopted a newer version", |_, s: &State| s.seen.follower_adopted));
    }
    if b.readers > 0 && 2 * u16::from(b.ticks) >= u16::from(l.ttl) {
        props.push(Property::sometimes("follower refreshed its checkpoint", |_, s: &State| s.seen.follower_refreshed));
    }
    if b.readers > 0 && b.ticks > l.ttl {
        props.push(Property::sometimes("follower lapsed after its checkpoint expired", |_, s: &State| s.seen.follower_lapsed));
    }
    if l.checkpoints > 0 {
        props.push(Property::sometimes("durable checkpoint outlived a newer version", |_, s: &State| {
            let latest = s.store.latest_manifest().1;
            latest.tree.checkpoints.iter().any(|c| s.made.contains_key(&c.id) && c.version < latest.view.version)
        }));
    }
    if l.checkpoints > 0 && b.gcs > 0 {
        props.push(Property::sometimes("GC deleted a WAL past a durable checkpoint's wal_end", |_, s: &State| s.seen.gc_past_wal_end));
    }
    if l.checkpoints > 0 && b.compactors > 0 {
        props.push(Property::sometimes("compaction retired an SST no durable checkpoint reads, unrecorded", |_, s: &State| {
            s.seen.retired_left_unread
        }));
    }
    if l.checkpoints > 0 && b.ticks > 0 {
        props.push(Property::sometimes("durable checkpoint refreshed", |_, s: &State| s.seen.checkpoint_refreshed));
    }
    if (l.checkpoints > 0 || b.readers > 0) && b.ticks >= l.ttl {
        props.push(Property::sometimes("expired checkpoint dropped", |_, s: &State| s.seen.checkpoint_expired_removed));
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

/// I7: something GC deleted is needed by a live durable checkpoint (its
/// version, that version's SSTs, the WALs up to its `wal_end`), a live
/// follower's view (its version's SSTs, the WALs it applied), a live writer
/// (its tree's SSTs, the WALs its recovery replays), or an output its writer
/// or compactor may still record. Liveness is the holder's own judgement
/// (`may_use`), and a writer or compactor is live while no newer epoch of
/// its role claimed the store.
pub fn i7_violation(m: &TidemarkModel, s: &State) -> Option<String> {
    let _ = m;
    let (_, latest) = s.store.latest_manifest();
    let now = u64::from(s.now);
    let sst_gone = |id| !s.store.ssts.contains_key(id);
    let wal_gone = |id| !s.store.wals.contains_key(id);
    for c in latest.tree.checkpoints.iter().filter(|c| may_use(c.expires_at, now)) {
        let Some(made) = s.made.get(&c.id) else { continue };
        let Some(pinned) = s.store.manifests.get(&c.version) else {
            return Some(format!("checkpoint {} pins v{}, which was deleted", c.id, c.version));
        };
        if let Some(id) = pinned.tree.ssts().find(|id| sst_gone(id)) {
            return Some(format!("checkpoint {} pins v{}, whose {id:?} was deleted", c.id, c.version));
        }
        if let Some(id) = made.wals.iter().find(|id| wal_gone(id)) {
            return Some(format!("checkpoint {} replays wal {id}, which was deleted", c.id));
        }
    }
    for f in s.followers.iter().filter(|f| !f.lapsed && may_use(Some(u64::from(f.expires_at)), now)) {
        if let Some(id) = f.base.tree.ssts().find(|id| sst_gone(id)) {
            return Some(format!("follower {} reads v{}, whose {id:?} was deleted", f.id, f.base.version));
        }
        if let Some(id) = f.cursor.applied().iter().find(|id| wal_gone(id)) {
            return Some(format!("follower {} applied wal {id} past v{}, which was deleted", f.id, f.base.version));
        }
    }
    for w in s.writers.iter().filter(|w| w.epoch >= latest.view.writer_epoch) {
        if let Some(id) = w.base_tree.ssts().find(|id| sst_gone(id)) {
            return Some(format!("epoch {}'s tree (v{}) reads {id:?}, which was deleted", w.epoch, w.manifest_version));
        }
        if let Some(f) = w.flushed.iter().find(|f| sst_gone(&f.sst)) {
            return Some(format!("epoch {}'s flushed L0 {:?} was deleted before it was recorded", w.epoch, f.sst));
        }
        if let Phase::Recovering { plan, .. } = &w.phase {
            if let Some(id) = plan.replay.iter().find(|id| wal_gone(id)) {
                return Some(format!("epoch {}'s recovery replays wal {id}, which was deleted", w.epoch));
            }
        }
    }
    for c in s.compactors.iter().filter(|c| c.epoch >= latest.view.compactor_epoch) {
        if let Some(id) = c.job.iter().flat_map(|j| j.output.ssts.iter()).find(|id| sst_gone(id)) {
            return Some(format!("compactor {}'s output {id:?} was deleted before it was committed", c.epoch));
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
    for (id, (pinned, expires_at)) in &s.committed.checkpoints {
        let recorded = latest.tree.checkpoints.iter().find(|c| c.id == *id).map(|c| (c.version, c.expires_at));
        if recorded != Some((*pinned, *expires_at)) {
            return Some(format!(
                "checkpoint {id} was last recorded pinning v{pinned} until {expires_at:?}, manifest v{version} has {recorded:?}"
            ));
        }
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
        I13 => i13_violation(s),
        I14 => i14_violation(s),
        I15 => i15_violation(s),
        I16 => i16_violation(model, s),
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

/// What a recovery would see now: the latest version's writes and the chain
/// after it, walked as the shipped protocol walks it. `None` if an SST the
/// latest version references is missing (I6 reports that).
pub fn durable_history(s: &State) -> Option<BTreeSet<WriteId>> {
    let (_, latest) = s.store.latest_manifest();
    let mut writes: BTreeSet<WriteId> = s.tree_writes(&latest.tree).ok()?.into_iter().collect();
    let mut walk = ChainWalk::new(Protocol::Shipped, &latest.view, u64::MAX, s.store.wals.keys().copied(), 1);
    while let Some(id) = walk.next_to_read() {
        walk.observe(id, s.store.wals.get(&id)?.header);
    }
    let replayed = match walk.finish() {
        Ok(plan) => plan.replay,
        Err(RecoveryError::MissingWal { .. }) => return None, // I1 reports that
        Err(_) => Vec::new(),
    };
    writes.extend(s.wal_writes(&replayed));
    Some(writes)
}

/// I13: a follower shows a write that a recovery now would not see, or
/// shows a writer's writes out of order (a later one without an earlier).
pub fn i13_violation(s: &State) -> Option<String> {
    if s.followers.is_empty() {
        return None;
    }
    let durable = durable_history(s)?;
    for f in &s.followers {
        if let Some(w) = f.view.iter().find(|w| !durable.contains(w)) {
            return Some(format!("follower {} shows write {w}, which a recovery now would not see", f.id));
        }
        for (epoch, issued) in &s.issued {
            let shown: Vec<WriteId> = issued.iter().copied().filter(|w| f.view.contains(w)).collect();
            if issued.get(..shown.len()) != Some(&shown[..]) {
                return Some(format!("follower {} shows {shown:?} of epoch {epoch}'s {issued:?}, which is not a prefix", f.id));
            }
        }
    }
    None
}

/// I14: a follower's view lost a write it showed before.
pub fn i14_violation(s: &State) -> Option<String> {
    s.followers.iter().find_map(|f| {
        f.shown
            .iter()
            .find(|w| !f.view.contains(w))
            .map(|w| format!("follower {} showed write {w}, and its view at v{} no longer does", f.id, f.base.version))
    })
}

/// I15: a follower shows a fenced write: one reported as not written (I10),
/// or one from a WAL inside a fence's jump, where only fenced writers' late
/// uploads land.
pub fn i15_violation(s: &State) -> Option<String> {
    let jumps: Vec<(WalId, WalId)> = s
        .store
        .wals
        .iter()
        .filter_map(|(id, o)| match o.header.kind {
            WalKind::Fence { next_wal_id } => Some((*id, next_wal_id)),
            WalKind::Data => None,
        })
        .collect();
    for f in &s.followers {
        if let Some(w) = f.view.iter().find(|w| s.rejected.contains(w)) {
            return Some(format!("follower {} shows write {w}, which was reported as not written", f.id));
        }
        if let Some((id, (fence, next))) =
            f.cursor.applied().iter().find_map(|id| jumps.iter().find(|(g, n)| g < id && id < n).map(|j| (id, *j)))
        {
            return Some(format!("follower {} applied wal {id}, inside fence {fence}'s jump to {next}", f.id));
        }
    }
    None
}

/// I16: a live durable checkpoint does not open to exactly the state at
/// its creation (its version, that version's SSTs, its chain up to `wal_end`).
pub fn i16_violation(m: &TidemarkModel, s: &State) -> Option<String> {
    let (_, latest) = s.store.latest_manifest();
    let now = u64::from(s.now);
    for c in latest.tree.checkpoints.iter().filter(|c| c.owner == CheckpointOwner::Client && may_use(c.expires_at, now)) {
        let Some(made) = s.made.get(&c.id) else { continue };
        let opened = s.store.manifests.get(&c.version).and_then(|pinned| s.tree_writes(&pinned.tree).ok()).map(|writes| {
            let mut walk = FollowCursor::for_checkpoint(m.protocol, c);
            let listed = s.listed_wals();
            while let Some(id) = walk.next_to_read(&listed) {
                match s.store.wals.get(&id) {
                    Some(o) => {
                        walk.observe(id, o.header);
                    }
                    None => break,
                }
            }
            let mut all: BTreeSet<WriteId> = writes.into_iter().collect();
            all.extend(s.wal_writes(walk.applied()));
            all
        });
        if opened.as_ref() != Some(&made.writes) {
            return Some(format!("checkpoint {} opens to {opened:?}, but held {:?} when it was created", c.id, made.writes));
        }
    }
    None
}
