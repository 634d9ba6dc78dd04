//! `FlushL0` and the writer's `WriteManifest`: immutable memtables become L0
//! SSTs, oldest first, each recorded by the writer's manifest edit through
//! the one commit loop; `Close` records the last one with `writer_closed`.

use std::time::Duration;

use super::inner::DbInner;
use super::manifest_store::{Committed, WriterCommit};
use super::wal_writer::freeze_memtable;
use crate::error::{Error, Result};
use crate::manifest::{ManifestObject, SstOwner};
use crate::memtable::Memtable;
use crate::protocol::{Protocol, WriterEdit};
use crate::sst::SstBuilder;
use crate::sync::{lock, Arc, Ordering};
use crate::trace::TraceEvent;

/// Writes immutable memtables to L0 until aborted.
pub(super) async fn run(inner: Arc<DbInner>) {
    loop {
        tokio::select! {
            _ = inner.wake_l0.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        loop {
            if inner.commit.failure().is_some() || lock(&inner.mem).imm.is_empty() {
                break;
            }
            // Compaction is behind: hold memtables (writers then wait on
            // `max_unflushed_bytes`) until L0 is back under its limit, and
            // never record more L0 SSTs than a manifest may hold.
            let l0 = lock(&inner.tree).l0.len();
            if (inner.compacts_here() && l0 >= inner.settings.l0_max_ssts) || l0 >= crate::bounds::MAX_L0_SSTS {
                inner.wake_compactor.notify_one();
                let _ = tokio::time::timeout(Duration::from_millis(50), inner.space_freed.notified()).await;
                continue;
            }
            let flushed = flush_oldest(&inner).await;
            inner.flush_failing.record(flushed.as_ref().map(|_| ()));
            match flushed {
                Ok(_) => inner.space_freed.notify_waiters(),
                Err(e) => {
                    tracing::error!(error = %e, "FlushL0 failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
            }
        }
    }
}

/// An immutable memtable as SST bytes: each key's newest version (merge
/// operands folded into what they are written on), with its sequence number
/// (snapshots that need older ones hold the memtable itself). Fails only
/// for merge operands without a merge operator.
fn build_sst(table: &Memtable, settings: &crate::settings::Settings) -> crate::error::Result<bytes::Bytes> {
    let mut b = SstBuilder::new(settings.block_size).with_compression(settings.compression);
    for (k, seq, v) in crate::value::fold_chains(&settings.merge_operator, table.newest())? {
        b.add(k, seq, v)?;
    }
    Ok(b.finish(&[]))
}

/// Mutant `sst-names-without-epoch` (`Settings::sst_names_without_epoch`):
/// the name an L0 flush from `manifest` takes, from the manifest alone (the
/// next id, and no epoch), so a zombie and its successor pick the same one.
fn sst_name_from_manifest(inner: &DbInner, manifest: &ManifestObject) -> Option<(u128, crate::protocol::Epoch)> {
    #[cfg(feature = "mutants")]
    if inner.settings.sst_names_without_epoch {
        return Some((manifest.ssts().map(|h| h.id).max().map_or(ulid::Ulid::from_parts(1, 1).0, |id| id + 1), 0));
    }
    let _ = (inner, manifest);
    None
}

/// `FlushL0` then `WriteManifest` for the oldest immutable memtable, if any.
/// Returns whether one was flushed. Holds the manifest lock throughout, so
/// the background flusher and `close()` never flush the same memtable twice.
pub(super) async fn flush_oldest(inner: &Arc<DbInner>) -> Result<bool> {
    let mut manifest = inner.manifest.lock().await;
    let Some(imm) = lock(&inner.mem).imm.first().cloned() else { return Ok(false) };
    wait_durable_through(inner, imm.last_wal_id).await?;
    let bytes = build_sst(&imm.table, &inner.settings)?;
    let named = sst_name_from_manifest(inner, &manifest);
    let handle = inner.upload_sst(bytes, SstOwner::Writer, inner.epoch, named).await?;
    inner.emit(TraceEvent::FlushL0 { size: handle.as_ref().map_or(0, |h| h.size), last_wal_id: imm.last_wal_id });
    // While closing, the manifest that records the last memtable is the
    // close manifest (`writer_closed`), as the spec's `Close` has it.
    let last = {
        let mem = lock(&inner.mem);
        mem.imm.len() == 1 && mem.active.is_empty()
    };
    let edit = WriterEdit {
        flushed: handle.iter().cloned().collect(),
        flushed_through: Some(imm.last_wal_id),
        close: last && inner.commit.closed_and_durable() && inner.uploads_in_flight.load(Ordering::Acquire) == 0,
        fences: inner.fences.clone(),
        pin: None,
        sst_floor: 0,
    };
    // On an error the SST stays pinned: the create may have landed.
    commit_writer_edit(inner, &mut manifest, &edit).await?;
    inner.unpin(&edit.flushed);
    // The SST joins the tree and the memtable leaves memory in one critical
    // section under both locks, the order readers take them in: a reader
    // sees the writes in one place or the other, never in neither.
    let tree = inner.open_tree(&manifest);
    let l0 = tree.l0.len();
    {
        let mut mem = lock(&inner.mem);
        inner.set_tree(tree);
        mem.imm.retain(|m| !Arc::ptr_eq(m, &imm));
    }
    if l0 >= super::compactor::l0_trigger(inner.settings.l0_max_ssts) {
        inner.wake_compactor.notify_one();
    }
    Ok(true)
}

/// Waits until `WalLog::may_flush_memtable` allows recording a memtable
/// whose writes end in `last_wal_id`; a failed writer records nothing.
async fn wait_durable_through(inner: &DbInner, last_wal_id: crate::protocol::WalId) -> Result<()> {
    loop {
        let changed = inner.durable_changed.notified();
        if let Some(e) = inner.commit.failure() {
            return Err(inner.ack_error(e));
        }
        if inner.commit.with_log(|log| log.may_flush_memtable(last_wal_id)) {
            return Ok(());
        }
        // The memtable's last WAL is frozen with it, so its upload is
        // already under way: wait for it, never force an early one.
        let _ = tokio::time::timeout(Duration::from_millis(5), changed).await;
    }
}

/// Flushes every immutable memtable and the active one (`close()`, a large replay).
pub(super) async fn flush_all(inner: &Arc<DbInner>) -> Result<()> {
    freeze_memtable(inner);
    while flush_oldest(inner).await? {}
    Ok(())
}

/// `Close`'s manifest: `writer_closed`, so the next recovery knows no upload
/// of this writer can still land and needs no fence.
pub(super) async fn record_close(inner: &DbInner) -> Result<()> {
    let mut manifest = inner.manifest.lock().await;
    if manifest.writer_closed && manifest.writer_epoch == inner.epoch {
        return Ok(()); // The last flush already recorded it.
    }
    let edit = WriterEdit { close: true, fences: inner.fences.clone(), ..WriterEdit::default() };
    commit_writer_edit(inner, &mut manifest, &edit).await?;
    inner.adopt_held(&manifest);
    Ok(())
}

/// A writer edit that records nothing new but moves the writer's pin up to
/// its oldest tree still in use, so GC may collect what compactions
/// retired behind it (a writer that writes nothing else would otherwise
/// hold them for good). Returns whether a version was written.
pub(super) async fn refresh_pin(inner: &DbInner) -> Result<bool> {
    let mut manifest = inner.manifest.lock().await;
    // Once `Close` began, the writer's next edits are its last flushes and
    // its close: a pin-only edit between them would record a closing writer
    // as done too early, and one after the close would clear
    // `writer_closed` (the close drops the pin anyway).
    if inner.commit.closing() {
        return Ok(false);
    }
    let latest = inner.manifests.reread(manifest.clone()).await?;
    let pinned = latest.checkpoints.iter().find(|c| c.holder == crate::manifest::CheckpointHolder::Writer(inner.epoch));
    let stale = pinned.is_some_and(|c| c.version < inner.oldest_live_tree().version);
    if latest.retired.is_empty() || !stale {
        return Ok(false);
    }
    *manifest = latest;
    let edit = WriterEdit { fences: inner.fences.clone(), ..WriterEdit::default() };
    commit_writer_edit(inner, &mut manifest, &edit).await?;
    inner.adopt_held(&manifest);
    Ok(true)
}

/// The writer's `WriteManifest` (and `Close`) through the one commit loop:
/// a lost race is decided by `on_manifest_taken` (the compactor's update is
/// re-read and the edit re-applied on top of it, I8; a newer writer epoch
/// fences this writer, I5).
async fn commit_writer_edit(inner: &DbInner, manifest: &mut ManifestObject, edit: &WriterEdit<crate::manifest::SstHandle>) -> Result<()> {
    // The floor is past every SST of this writer but those still being
    // written (and those this edit records).
    let edit = WriterEdit { sst_floor: inner.sst_floor(SstOwner::Writer, &edit.flushed), ..edit.clone() };
    let change = WriterCommit {
        epoch: inner.epoch,
        log: &inner.commit,
        edit: &edit,
        oldest_live: inner.oldest_live_tree(),
        held_view: inner.oldest_held_view(),
    };
    let committed = inner
        .manifests
        .commit(manifest, &change, |next| {
            // I1 at the point it must hold: the version records only WALs the
            // watermark covers (a mutant may not: the checkers must catch it).
            assert!(
                inner.settings.protocol != Protocol::Shipped || next.wal_id_last_seen <= inner.commit.durable_wal_id(),
                "I1: manifest {} records wal_id_last_seen {} above durable_wal_id {}",
                next.version,
                next.wal_id_last_seen,
                inner.commit.durable_wal_id()
            );
            inner.emit(TraceEvent::WriteManifest {
                version: next.version,
                wal_id_last_seen: next.wal_id_last_seen,
                replay_after_wal_id: next.replay_after_wal_id,
                pin: next
                    .checkpoints
                    .iter()
                    .find(|c| c.id == crate::protocol::writer_pin_id(next.writer_epoch))
                    .map(|c| (c.version, c.replay_after_wal_id)),
            })
        })
        .await?;
    match committed {
        Committed::Applied { version, .. } => {
            *manifest = version;
            Ok(())
        }
        Committed::Fenced { by } => Err(inner.fenced(by)),
        Committed::Refused(conflict) => Err(Error::InvalidArgument(format!("writer manifest update refused: {conflict:?}"))),
    }
}
