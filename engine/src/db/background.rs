//! Background work: `FreezeWal` and `UploadWal` (up to W in flight, inside
//! the protocol's window), `WalDurable`, `FreezeMemtable`, `FlushL0` and
//! `WriteManifest`.

use std::time::Duration;

use object_store::PutPayload;
use tokio::task::{JoinHandle, JoinSet};

use super::open::{create, read};
use super::DbInner;
use crate::commit::{AckError, FrozenWal};
use crate::error::{Error, Result};
use crate::manifest::{ManifestObject, SstHandle};
use crate::memtable::{ImmMemtable, Memtable};
use crate::protocol::{resolve_create_conflict, CreateConflict, ObjectOwner, WalHeader, WalKind};
use crate::sst::{Entry, SstBuilder, SstReader};
use crate::sync::{lock, Arc, Ordering};
use crate::trace::TraceEvent;
use crate::wal_object::{decode_wal, encode_wal};

pub(super) fn spawn(inner: &Arc<DbInner>) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(wal_flusher(inner.clone())), tokio::spawn(l0_flusher(inner.clone()))]
}

/// Freezes the WAL buffer (and the memtable when it is full) and starts
/// uploads as the window allows. Upload tasks live in a `JoinSet`, so they
/// stop when this task is aborted (a dropped `Db`).
async fn wal_flusher(inner: Arc<DbInner>) {
    let mut uploads = JoinSet::new();
    loop {
        tokio::select! {
            _ = inner.wake_flusher.notified() => {}
            _ = tokio::time::sleep(inner.settings.flush_interval) => {}
        }
        while uploads.try_join_next().is_some() {}
        if inner.commit.failure().is_some() {
            continue;
        }
        let frozen = if inner.memtable_full.swap(false, Ordering::AcqRel) {
            freeze_memtable(&inner)
        } else {
            inner.commit.freeze_with(|frozen, _| emit_freeze_wal(&inner, frozen)).0
        };
        let Some(frozen) = frozen else { continue };
        // The protocol's window: start WAL i only while i <= durable + W.
        // A failed writer starts nothing: outside the window a late upload
        // could land where a newer writer's fence jump does not reach, and
        // a fenced writer has nothing left to make durable.
        let wal_id = frozen.wal_id;
        loop {
            match inner.commit.start_upload_with(wal_id, || inner.emit(TraceEvent::UploadWal { wal_id })) {
                Ok(true) => {
                    uploads.spawn(upload_wal(inner.clone(), frozen));
                    break;
                }
                Ok(false) => {
                    let _ = tokio::time::timeout(Duration::from_millis(2), inner.durable_changed.notified()).await;
                }
                Err(_) => break,
            }
        }
        // Writers that arrive one after another (a burst released by one
        // ack) would otherwise each get a WAL of their own and fill the
        // window with tiny uploads, leaving the rest of the burst to wait a
        // whole upload longer. While an upload is in flight, let the next
        // WAL gather for `Settings::burst_gap` (short next to a PUT), unless
        // it is already full or every upload completes first (a fast store).
        let gap = inner.settings.burst_gap;
        if !gap.is_zero() && !uploads.is_empty() && inner.commit.buffer_bytes() < inner.settings.wal_size_bytes {
            let drained = async { while uploads.join_next().await.is_some() {} };
            tokio::select! {
                _ = tokio::time::sleep(gap) => {}
                _ = drained => {}
            }
        }
        // More may be waiting: writers notified once while we were busy.
        if inner.commit.buffer_bytes() > 0 {
            inner.wake_flusher.notify_one();
        }
    }
}

/// `FreezeMemtable` together with `FreezeWal`, under the commit lock, so the
/// memtable's writes are exactly those in WALs `<= last_wal_id`.
fn freeze_memtable(inner: &DbInner) -> Option<FrozenWal<Entry>> {
    let (frozen, froze_memtable) = inner.commit.freeze_with(|frozen, last| {
        // Recorded under the commit lock, FreezeWal first: the spec's
        // FreezeMemtable requires an empty WAL buffer.
        emit_freeze_wal(inner, frozen);
        let mut mem = lock(&inner.mem);
        if mem.active.is_empty() {
            return false;
        }
        let table = std::mem::take(&mut mem.active);
        mem.imm.push(Arc::new(ImmMemtable { table, last_wal_id: last }));
        inner.emit(TraceEvent::FreezeMemtable { last_wal_id: last });
        true
    });
    if froze_memtable {
        inner.wake_l0.notify_one();
    }
    frozen
}

fn emit_freeze_wal(inner: &DbInner, frozen: Option<crate::protocol::WalId>) {
    if let Some(wal_id) = frozen {
        inner.emit(TraceEvent::FreezeWal { wal_id });
    }
}

/// After `UploadWal` (recorded when it was started): creates `wal/<id>.sst`,
/// resolving an `AlreadyExists` by reading the object back; then
/// `WalDurable`, or the rejection that stops this writer.
async fn upload_wal(inner: Arc<DbInner>, frozen: FrozenWal<Entry>) {
    let wal_id = frozen.wal_id;
    let token: u64 = rand::random();
    let header = WalHeader { writer_epoch: inner.epoch, kind: WalKind::Data };
    let bytes = encode_wal(header, token, frozen.items, inner.settings.block_size);
    let path = inner.layout.wal(wal_id);
    // The store retries transient failures (`RetryStore`).
    let created = inner
        .store
        .put_opts(
            &path,
            PutPayload::from(bytes),
            object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() },
        )
        .await;
    let outcome = match created {
        Ok(_) => CreateConflict::Ours,
        Err(object_store::Error::AlreadyExists { .. }) => {
            let existing = match read(inner.store.as_ref(), &path).await {
                Ok(b) => decode_wal(&path, b),
                Err(e) => Err(e),
            };
            match existing {
                Ok(existing) => resolve_create_conflict(ObjectOwner { writer_epoch: inner.epoch, token }, existing.owner()),
                Err(e) => {
                    inner.commit.fail(AckError::Failed(format!("wal {wal_id}: cannot read back after AlreadyExists: {e}")));
                    return;
                }
            }
        }
        Err(e) => {
            tracing::error!(wal_id, error = %e, "UploadWal failed for good");
            inner.commit.fail(AckError::Failed(format!("upload of wal {wal_id} failed: {e}")));
            inner.durable_changed.notify_waiters();
            return;
        }
    };
    match outcome {
        CreateConflict::Ours => {
            // `WalDurable`, then the `Ack`s it releases, recorded under the
            // commit lock (before any later `Fenced` of this writer).
            let recording = inner.tracer.is_recording();
            inner.commit.wal_durable_with(
                wal_id,
                |durable_wal_id| inner.emit(TraceEvent::WalDurable { wal_id, durable_wal_id }),
                |acked| {
                    if recording {
                        inner.emit(TraceEvent::Ack { wal_id: acked });
                    }
                },
            );
        }
        CreateConflict::Fenced { by } => {
            tracing::warn!(wal_id, writer_epoch = inner.epoch, by, "Fenced");
            inner.commit.reject_with(wal_id, AckError::Fenced { by }, || inner.emit(TraceEvent::WalRejected { wal_id, held_by: by }));
        }
        CreateConflict::TakenByOther { owner } => {
            let err = AckError::Failed(format!("wal {wal_id} holds an object of epoch {owner}"));
            inner.commit.fail_with(err, || inner.emit(TraceEvent::WalRejected { wal_id, held_by: owner }));
        }
    }
    inner.durable_changed.notify_waiters();
}

/// Writes immutable memtables to L0, oldest first, each followed by a manifest.
async fn l0_flusher(inner: Arc<DbInner>) {
    loop {
        tokio::select! {
            _ = inner.wake_l0.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        loop {
            let Some(imm) = lock(&inner.mem).imm.first().cloned() else { break };
            if inner.commit.failure().is_some() {
                break;
            }
            match flush_l0(&inner, &imm).await {
                Ok(()) => {
                    lock(&inner.mem).imm.retain(|m| !Arc::ptr_eq(m, &imm));
                    inner.space_freed.notify_waiters();
                }
                Err(e) => {
                    tracing::error!(error = %e, "FlushL0 failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
            }
        }
    }
}

fn build_sst(table: &Memtable, block_size: usize) -> bytes::Bytes {
    let mut b = SstBuilder::new(block_size);
    for (k, v) in &table.map {
        // A memtable's keys are sorted and unique, so `add` cannot fail.
        let _ = b.add(k.clone(), v.clone());
    }
    b.finish(&[])
}

/// `FlushL0` then `WriteManifest` for one immutable memtable.
async fn flush_l0(inner: &Arc<DbInner>, imm: &ImmMemtable) -> Result<()> {
    let mut manifest = inner.manifest.lock().await;
    let sst_id = manifest.next_sst_id;
    let bytes = build_sst(&imm.table, inner.settings.block_size);
    let size = bytes.len() as u64;
    let path = inner.layout.sst(inner.epoch, sst_id);
    let store = inner.store.as_ref();
    let created = create(store, &path, bytes.clone()).await?;
    if !created {
        // The name carries our epoch, so only a previous attempt of ours
        // can have created it; anything else there is damage.
        let existing = read(store, &path).await?;
        if existing != bytes {
            return Err(Error::corrupt(path.to_string(), "an SST under this writer's name holds other bytes"));
        }
    }
    inner.emit(TraceEvent::FlushL0 { sst_id, last_wal_id: imm.last_wal_id });
    let view = inner.commit.next_manifest(&manifest.view(), Some(imm.last_wal_id));
    let mut l0 = vec![SstHandle { writer_epoch: inner.epoch, id: sst_id, size }];
    l0.extend(manifest.l0.iter().cloned());
    let next = manifest.successor(view, sst_id + 1, l0);
    write_manifest(inner, &next).await?;
    inner.emit(TraceEvent::WriteManifest {
        version: next.version,
        wal_id_last_seen: next.wal_id_last_seen,
        replay_after_wal_id: next.replay_after_wal_id,
    });
    let reader = SstReader::open(inner.store.clone(), path, Some(size)).await?;
    lock(&inner.l0).insert(0, Arc::new(reader));
    *manifest = next;
    Ok(())
}

/// `WriteManifest` with no new SST: records the current `wal_id_last_seen`
/// (from the durable watermark, I1) so the next recovery checks more.
pub(crate) async fn record_wal_progress(inner: &DbInner) -> Result<()> {
    let mut manifest = inner.manifest.lock().await;
    let view = inner.commit.next_manifest(&manifest.view(), None);
    if view == manifest.view() {
        return Ok(());
    }
    let next = manifest.successor(view, manifest.next_sst_id, manifest.l0.clone());
    write_manifest(inner, &next).await?;
    inner.emit(TraceEvent::WriteManifest {
        version: next.version,
        wal_id_last_seen: next.wal_id_last_seen,
        replay_after_wal_id: next.replay_after_wal_id,
    });
    *manifest = next;
    Ok(())
}

/// Creates manifest version `next.version`; a version created by another
/// writer means this one is fenced.
async fn write_manifest(inner: &DbInner, next: &ManifestObject) -> Result<()> {
    let path = inner.layout.manifest(next.version);
    let store = inner.store.as_ref();
    if create(store, &path, next.encode()).await? {
        return Ok(());
    }
    let existing = ManifestObject::decode(path.as_ref(), &read(store, &path).await?)?;
    match resolve_create_conflict(
        ObjectOwner { writer_epoch: inner.epoch, token: next.token },
        ObjectOwner { writer_epoch: existing.writer_epoch, token: existing.token },
    ) {
        CreateConflict::Ours => Ok(()),
        CreateConflict::Fenced { by } | CreateConflict::TakenByOther { owner: by } => {
            inner.commit.fail_with(AckError::Fenced { by }, || inner.emit(TraceEvent::Fenced { by }));
            Err(Error::Fenced { writer_epoch: inner.epoch, by })
        }
    }
}
