//! The invariants I1–I5 (`always`) and the `sometimes` properties that show
//! the exploration is not vacuous. Numbers and names follow spec/protocol.md.

use stateright::Property;
use tidemark::protocol::{ChainWalk, Protocol, RecoveryError, WalId};

use crate::model::TidemarkModel;
use crate::state::{RecoveryOutcome, State, WriteId};

pub const I1: &str = "I1 ManifestWalsDurable";
pub const I2: &str = "I2 RecoveryNeverFails";
pub const I3: &str = "I3 NoAckedWriteLost";
pub const I4: &str = "I4 PrefixConsistent";
pub const I5: &str = "I5 FencedWriterAcksNothing";

/// Every property; the ambiguous-create example only when the bounds allow one.
pub fn all(ambiguous: bool) -> Vec<Property<TidemarkModel>> {
    let mut props = vec![
        Property::always(I1, |_, s: &State| i1_violation(s).is_none()),
        Property::always(I2, |_, s: &State| i2_violation(s).is_none()),
        Property::always(I3, |_, s: &State| i3_violation(s).is_none()),
        Property::always(I4, |_, s: &State| i4_violation(s).is_none()),
        Property::always(I5, |_, s: &State| i5_violation(s).is_none()),
        Property::sometimes("crash with uploads in flight", |_, s: &State| {
            s.uploads.iter().any(|u| !s.is_alive(u.owner))
        }),
        Property::sometimes("uploads complete out of order", |_, s: &State| {
            s.writers.iter().any(|w| !w.log.watermark().completed_above().is_empty())
        }),
        Property::sometimes("manifest written while uploads in flight", |_, s: &State| s.seen.manifest_while_uploading),
        Property::sometimes("recovery replays WALs", |_, s: &State| {
            matches!(s.recovery, Some(RecoveryOutcome::Recovered { replayed_wals, .. }) if replayed_wals > 0)
        }),
        Property::sometimes("zombie upload rejected", |_, s: &State| s.seen.zombie_upload_rejected),
    ];
    if ambiguous {
        props.push(Property::sometimes("ambiguous create read back as ours", |_, s: &State| {
            s.seen.ambiguous_create_resolved
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

/// The violation message of an `always` property, by name.
pub fn explain(name: &str, s: &State) -> Option<String> {
    match name {
        I1 => i1_violation(s),
        I2 => i2_violation(s),
        I3 => i3_violation(s),
        I4 => i4_violation(s),
        I5 => i5_violation(s),
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
