//! Background work: `FreezeWal` and `UploadWal` (up to W in flight, inside
//! the protocol's window), `WalDurable`, `FreezeMemtable`, `FlushL0` and
//! `WriteManifest`.

use std::time::Duration;

use object_store::PutPayload;
use tokio::task::{JoinHandle, JoinSet};

use super::open::{create, read};
use super::{DbInner, OpenTree};
use crate::commit::{AckError, FrozenWal};
use crate::error::{Error, Result};
use crate::manifest::{ManifestObject, SstHandle};
use crate::memtable::{ImmMemtable, Memtable};
use crate::protocol::{
    apply_writer_edit, on_manifest_created, on_manifest_taken, reapply_base, resolve_create_conflict, CreateConflict,
    CreatedOutcome, ManifestConflict, ObjectOwner, Role, TakenOutcome, WalHeader, WalKind, WriterEdit,
};
use futures::TryStreamExt;
use crate::sst::{SeqEntry, SstBuilder, SstReader, SstRef};
use crate::sync::{lock, Arc, Ordering};
use crate::trace::TraceEvent;
use crate::wal_object::{decode_wal, encode_wal};

pub(super) fn spawn(inner: &Arc<DbInner>) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(wal_flusher(inner.clone())), tokio::spawn(l0_flusher(inner.clone()))];
    if inner.settings.compactor {
        tasks.push(tokio::spawn(super::compactor::run(inner.clone())));
    }
    if !inner.settings.gc_interval.is_zero() {
        tasks.push(tokio::spawn(super::gc::periodic(inner.clone())));
    }
    tasks
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
        // The freeze policy (`WalLog::window_has_room`): gather until the
        // frozen WAL could start uploading at once.
        while !inner.commit.with_log(|log| log.window_has_room()) && inner.commit.failure().is_none() {
            let _ = tokio::time::timeout(Duration::from_millis(2), inner.durable_changed.notified()).await;
            while uploads.try_join_next().is_some() {}
        }
        if inner.commit.failure().is_some() {
            continue;
        }
        // A burst of writers (all those one acknowledgement released) comes
        // in over a moment: gather it into one WAL instead of freezing the
        // first writer's alone — until as many have written as were
        // released (`CommitLog::burst_gathered`), at most `burst_gap`. A
        // lone writer's next write is frozen at once.
        let gap = inner.settings.burst_gap;
        if !gap.is_zero() && uploads.is_empty() && inner.commit.buffer_bytes() < inner.settings.wal_size_bytes {
            let gathered = async {
                while !inner.commit.burst_gathered() {
                    inner.wake_flusher.notified().await;
                }
            };
            let _ = tokio::time::timeout(gap, gathered).await;
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
            if window_never_freed(&inner)
                && inner.uploads_in_flight.load(Ordering::Acquire) >= inner.settings.max_inflight_wal_uploads as usize
            {
                let _ = tokio::time::timeout(Duration::from_millis(2), inner.durable_changed.notified()).await;
                continue;
            }
            match inner.commit.start_upload_with(wal_id, || inner.emit(TraceEvent::UploadWal { wal_id })) {
                Ok(true) => {
                    inner.uploads_in_flight.fetch_add(1, Ordering::AcqRel);
                    let task = inner.clone();
                    uploads.spawn(async move {
                        upload_wal(task.clone(), frozen).await;
                        if !window_never_freed(&task) {
                            task.uploads_in_flight.fetch_sub(1, Ordering::AcqRel);
                        }
                        task.durable_changed.notify_waiters();
                    });
                    break;
                }
                Ok(false) => {
                    let _ = tokio::time::timeout(Duration::from_millis(2), inner.durable_changed.notified()).await;
                }
                Err(_) => break,
            }
        }
        // While an upload is in flight the next WAL gathers for
        // `upload_gather`, unless it is full or every upload completes first:
        // uploads overlap only when one is slow, and a steady load costs
        // about one PUT per upload time (issue 16: request cost).
        let gather = inner.settings.upload_gather;
        if !gather.is_zero() && !uploads.is_empty() && inner.commit.buffer_bytes() < inner.settings.wal_size_bytes {
            let drained = async { while uploads.join_next().await.is_some() {} };
            tokio::select! {
                _ = tokio::time::sleep(gather) => {}
                _ = drained => {}
            }
        }
        // More may be waiting: writers notified once while we were busy.
        if inner.commit.buffer_bytes() > 0 {
            inner.wake_flusher.notify_one();
        }
    }
}

/// Mutant `window-never-freed` (`Settings::window_never_freed`).
fn window_never_freed(inner: &DbInner) -> bool {
    #[cfg(feature = "mutants")]
    return inner.settings.window_never_freed;
    #[cfg(not(feature = "mutants"))]
    {
        let _ = inner;
        false
    }
}

/// Mutant `sst-names-without-epoch` (`Settings::sst_names_without_epoch`):
/// the id an L0 flush from `manifest` takes, named from the manifest alone.
fn sst_id_from_manifest(inner: &DbInner, manifest: &ManifestObject) -> Option<u128> {
    #[cfg(feature = "mutants")]
    if inner.settings.sst_names_without_epoch {
        let listed = manifest.l0.iter().chain(manifest.runs.iter().flat_map(|r| r.ssts.iter()));
        return Some(listed.map(|h| h.id).max().map_or(ulid::Ulid::from_parts(1, 1).0, |id| id + 1));
    }
    let _ = (inner, manifest);
    None
}

/// `FreezeMemtable` together with `FreezeWal`, under the commit lock, so the
/// memtable's writes are exactly those in WALs `<= last_wal_id`.
pub(super) fn freeze_memtable(inner: &DbInner) -> Option<FrozenWal<SeqEntry>> {
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
async fn upload_wal(inner: Arc<DbInner>, frozen: FrozenWal<SeqEntry>) {
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
                Ok(existing) => resolve_create_conflict(inner.settings.protocol, ObjectOwner { writer_epoch: inner.epoch, token }, existing.owner()),
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
            inner.commit.wal_durable_with(
                wal_id,
                |durable_wal_id| inner.emit(TraceEvent::WalDurable { wal_id, durable_wal_id }),
                |acked| inner.record(TraceEvent::Ack { wal_id: acked }),
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
            if inner.commit.failure().is_some() || lock(&inner.mem).imm.is_empty() {
                break;
            }
            // Compaction is behind: hold memtables (writers then wait on
            // `max_unflushed_bytes`) until L0 is back under its limit.
            if inner.settings.compactor && lock(&inner.tree).l0.len() >= inner.settings.l0_max_ssts {
                inner.wake_compactor.notify_one();
                let _ = tokio::time::timeout(Duration::from_millis(50), inner.space_freed.notified()).await;
                continue;
            }
            match flush_oldest(&inner).await {
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

/// Writes an immutable memtable as an SST (not yet recorded anywhere).
fn build_sst(table: &Memtable, block_size: usize) -> bytes::Bytes {
    let mut b = SstBuilder::new(block_size);
    // Each key's newest version, with its sequence number: snapshots that
    // need older ones hold this memtable itself. Keys come sorted and
    // unique, so `add` cannot fail.
    for (k, seq, v) in table.newest() {
        let _ = b.add(k, seq, v);
    }
    b.finish(&[])
}

/// Creates a new SST object under a fresh name and returns its handle; the
/// id stays pinned (GC of this process leaves it alone) until the caller
/// records it in a manifest or gives up.
pub(super) async fn upload_sst(inner: &DbInner, bytes: bytes::Bytes, epoch: u64) -> Result<Option<SstHandle>> {
    upload_sst_named(inner, bytes, epoch, None).await
}

/// `upload_sst` under `id` if given (mutant `sst-names-without-epoch`).
async fn upload_sst_named(inner: &DbInner, bytes: bytes::Bytes, epoch: u64, id: Option<u128>) -> Result<Option<SstHandle>> {
    let reader = SstReader::from_bytes(object_store::path::Path::from(""), bytes.clone())?;
    let Some((first_key, last_key)) = reader.key_range() else { return Ok(None) };
    let id = id.unwrap_or_else(SstHandle::new_id);
    lock(&inner.pinned).insert(id);
    let path = inner.layout.sst(id);
    // A fresh ULID is unique: AlreadyExists can only be our own retried create.
    if !create(inner.store.as_ref(), &path, bytes.clone()).await? {
        let existing = read(inner.store.as_ref(), &path).await?;
        if existing != bytes {
            lock(&inner.pinned).remove(&id);
            return Err(Error::corrupt(path.to_string(), "a fresh SST name holds other bytes"));
        }
    }
    Ok(Some(SstHandle { id, writer_epoch: epoch, size: bytes.len() as u64, first_key, last_key }))
}

/// `FlushL0` then `WriteManifest` for the oldest immutable memtable, if any.
/// Returns whether one was flushed. Holds the manifest lock throughout, so
/// the background flusher and `close()` never flush the same memtable twice.
async fn flush_oldest(inner: &Arc<DbInner>) -> Result<bool> {
    let mut manifest = inner.manifest.lock().await;
    let Some(imm) = lock(&inner.mem).imm.first().cloned() else { return Ok(false) };
    let bytes = build_sst(&imm.table, inner.settings.block_size);
    let named = sst_id_from_manifest(inner, &manifest);
    let handle = upload_sst_named(inner, bytes, inner.epoch, named).await?;
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
        ..WriterEdit::default()
    };
    commit_writer_edit(inner, &mut manifest, &edit).await?;
    if let Some(h) = &handle {
        lock(&inner.pinned).remove(&h.id);
    }
    // The SST joins the tree and the memtable leaves memory in one critical
    // section under both locks, the order readers take them in: a reader
    // sees the writes in one place or the other, never in neither.
    let tree = open_tree(inner, &manifest).await?;
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

/// Flushes every immutable memtable and the active one (`close()`).
pub(super) async fn flush_all(inner: &Arc<DbInner>) -> Result<()> {
    freeze_memtable(inner);
    while flush_oldest(inner).await? {}
    Ok(())
}

/// `WriteManifest` (and `Close`) of the writer: creates version v+1 with
/// the protocol's `apply_writer_edit` on top of `manifest`. A lost race is
/// decided by `on_manifest_taken`: the compactor's update is re-read and the
/// edit re-applied on top of it (no update is lost, I8); a newer writer
/// epoch means this writer is fenced (I5). A create that landed in a slot GC
/// had emptied is not the latest (`on_manifest_created`): re-applied too.
pub(crate) async fn commit_writer_edit(
    inner: &DbInner,
    manifest: &mut ManifestObject,
    edit: &WriterEdit<SstHandle>,
) -> Result<()> {
    let protocol = inner.settings.protocol;
    let mut content = manifest.clone();
    let mut slot = manifest.version;
    for _ in 0..super::open::RACE_ATTEMPTS {
        let applied = inner.commit.with_log(|log| apply_writer_edit(&content.view(), &content.tree(), log, edit));
        let (view, tree) = match applied {
            Ok(next) => next,
            Err(ManifestConflict::Fenced { by }) => return Err(fenced(inner, by)),
            Err(other) => return Err(Error::InvalidArgument(format!("writer manifest update refused: {other:?}"))),
        };
        let mut next = content.successor(&inner.layout, view, tree)?;
        next.version = ManifestObject::version_after(&inner.layout, slot)?;
        // A create that reported `AlreadyExists` and reads back as ours (an
        // S3 retry or a hedge whose other attempt landed) is our manifest
        // write like any other: recorded, and checked for a reopened slot.
        let landed = match try_create_manifest(inner, &next).await? {
            Created::Ours => Ok(()),
            Created::Taken(existing) => {
                match on_manifest_taken(Role::Writer, inner.epoch, next.token, &existing.view(), existing.token) {
                    TakenOutcome::Ours => Ok(()),
                    TakenOutcome::Fenced { by } => return Err(fenced(inner, by)),
                    TakenOutcome::Reapply => Err(existing),
                }
            }
        };
        let latest = match landed {
            Ok(()) => {
                // Recorded as soon as the create is known to be ours (no
                // await between), so a crash cannot fall between the object
                // and its step.
                inner.emit(TraceEvent::WriteManifest {
                    version: next.version,
                    wal_id_last_seen: next.wal_id_last_seen,
                    replay_after_wal_id: next.replay_after_wal_id,
                });
                match created_outcome(inner, next.version).await? {
                    CreatedOutcome::Applied => {
                        *manifest = next;
                        return Ok(());
                    }
                    CreatedOutcome::SlotReopened { latest } => read_manifest(inner, latest).await?,
                }
            }
            Err(existing) => reread(inner, existing).await?,
        };
        content = reapply_base(protocol, &content, &latest).clone();
        slot = latest.version;
    }
    Err(Error::InvalidArgument("manifest update lost the race too many times".into()))
}

/// This writer learnt it is fenced by a newer epoch: it acknowledges nothing more (I5).
fn fenced(inner: &DbInner, by: crate::protocol::Epoch) -> Error {
    inner.commit.fail_with(AckError::Fenced { by }, || inner.emit(TraceEvent::Fenced { by }));
    Error::Fenced { writer_epoch: inner.epoch, by }
}

/// `on_manifest_created`: whether the version just created is the latest.
pub(crate) async fn created_outcome(inner: &DbInner, created: u64) -> Result<CreatedOutcome> {
    let listed: Vec<_> = inner.store.list(Some(&inner.layout.manifest_dir())).try_collect().await?;
    let latest = listed.iter().filter_map(|m| inner.layout.parse_manifest(&m.location)).max().unwrap_or(created);
    Ok(on_manifest_created(inner.settings.protocol, created, latest))
}

/// Manifest `version`, read and checked.
pub(crate) async fn read_manifest(inner: &DbInner, version: u64) -> Result<ManifestObject> {
    let path = inner.layout.manifest(version);
    let m = ManifestObject::decode(path.as_ref(), &read(inner.store.as_ref(), &path).await?)?;
    if m.version != version {
        return Err(Error::corrupt(path.to_string(), format!("holds version {} under the name of {version}", m.version)));
    }
    Ok(m)
}

/// The newest manifest, at least as new as `seen`.
pub(crate) async fn reread(inner: &DbInner, seen: ManifestObject) -> Result<ManifestObject> {
    Ok(match super::open::latest_manifest(inner.store.as_ref(), &inner.layout).await? {
        Some(latest) if latest.version > seen.version => latest,
        _ => seen,
    })
}

/// The outcome of a manifest create.
pub(crate) enum Created {
    Ours,
    /// Another object holds the version.
    Taken(ManifestObject),
}

/// Creates `next`; on `AlreadyExists` reads the object back: ours (an
/// earlier attempt landed) or another's.
pub(crate) async fn try_create_manifest(inner: &DbInner, next: &ManifestObject) -> Result<Created> {
    let path = inner.layout.manifest(next.version);
    let store = inner.store.as_ref();
    if create(store, &path, next.encode()).await? {
        return Ok(Created::Ours);
    }
    let existing = ManifestObject::decode(path.as_ref(), &read(store, &path).await?)?;
    if existing.token == next.token && existing.writer_epoch == next.writer_epoch {
        return Ok(Created::Ours);
    }
    Ok(Created::Taken(existing))
}

/// The open tree of `manifest`: readers already open are reused, the
/// others are opened (their tails read) concurrently.
pub(crate) async fn open_tree(inner: &DbInner, manifest: &ManifestObject) -> Result<OpenTree> {
    let current = lock(&inner.tree).clone();
    let mut known: std::collections::HashMap<String, Arc<SstRef>> = std::collections::HashMap::new();
    for r in current.l0.iter().chain(current.runs.iter().flat_map(|run| run.ssts.iter())) {
        known.insert(r.path().to_string(), r.clone());
    }
    Ok(super::open::open_tree_with(&inner.store, &inner.block_cache, &inner.layout, manifest, &known))
}

/// `Close`'s manifest: `writer_closed`, so the next recovery knows no upload
/// of this writer can still land and needs no fence.
pub(crate) async fn record_close(inner: &DbInner) -> Result<()> {
    let mut manifest = inner.manifest.lock().await;
    if manifest.writer_closed && manifest.writer_epoch == inner.epoch {
        return Ok(()); // The last flush already recorded it.
    }
    let edit = WriterEdit { close: true, fences: inner.fences.clone(), ..WriterEdit::default() };
    commit_writer_edit(inner, &mut manifest, &edit).await
}
