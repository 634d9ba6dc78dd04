//! The writer's actions: the WAL write path, flushes, manifest writes,
//! `Close`, `Crash`, and recovery (`Recover`, `Fence`).

use tidemark::internals::protocol::{
    apply_writer_edit, claim_writer, on_fence_conflict, resolve_create_conflict, CreateConflict, Epoch, FenceConflict,
    ManifestConflict, ManifestView, Role, Tree, WalHeader, WalId, WalKind, WriterEdit,
};

use super::{owner, Attempt};
use crate::model::{token, TidemarkModel};
use crate::state::*;

/// The protocol's answer to an edit: the next version's fields and tree, or why not.
type Applied = Result<(ManifestView, Tree<SstId>), ManifestConflict>;

impl TidemarkModel {
    /// What `Close` is waiting for is done: nothing buffered, frozen, in
    /// flight or unflushed.
    pub(crate) fn drained(s: &State, w: &Writer) -> bool {
        w.buffer.is_empty()
            && w.frozen.is_empty()
            && w.memtable.is_empty()
            && w.imm.is_empty()
            && !s.uploads.iter().any(|u| u.owner == w.epoch)
    }

    /// The writer's next manifest update, if it has anything to record: the
    /// edit and the protocol's answer on its base. Its pin moves to the
    /// version it creates (its one live tree is its base), and its SST floor
    /// to its next sequence number (the edit records every SST it flushed).
    pub(crate) fn writer_update(&self, s: &State, w: &Writer) -> Option<(WriterEdit<SstId>, Applied)> {
        let edit = WriterEdit {
            flushed: w.flushed.iter().map(|f| f.sst).collect(),
            flushed_through: w.flushed.iter().map(|f| f.last_wal_id).max(),
            close: w.closing && Self::drained(s, w),
            fences: w.fences.clone(),
            pin: None,
            sst_floor: w.next_sst.into(),
        };
        let news = !edit.flushed.is_empty()
            || edit.close
            || w.log.wal_id_last_seen() > w.base_view.wal_id_last_seen
            || w.base_view.writer_epoch != w.epoch
            || edit.fences.iter().any(|f| !w.base_tree.fences.contains(f));
        news.then(|| {
            let result = apply_writer_edit(&w.base_view, &w.base_tree, &w.log, &edit);
            (edit, result)
        })
    }

    pub(crate) fn put(&self, s: &mut State, epoch: Epoch) -> Option<()> {
        let id = s.next_write;
        s.next_write += 1;
        s.issued.entry(epoch).or_default().push(id);
        let w = s.writer_mut(epoch)?;
        let wal_id = w.log.next_wal_id(); // the buffer becomes this WAL
        w.buffer.push(id);
        w.memtable.push(id);
        w.pending.push((id, wal_id));
        Some(())
    }

    pub(crate) fn freeze_wal(&self, s: &mut State, epoch: Epoch) -> Option<()> {
        let w = s.writer_mut(epoch)?;
        let wal_id = w.log.freeze();
        let writes = std::mem::take(&mut w.buffer);
        w.frozen.insert(wal_id, writes);
        Some(())
    }

    pub(crate) fn upload_wal(&self, s: &mut State, epoch: Epoch, wal_id: WalId) -> Option<()> {
        let w = s.writer_mut(epoch)?;
        let writes = w.frozen.remove(&wal_id)?;
        let header = WalHeader { writer_epoch: epoch, kind: WalKind::Data };
        s.uploads.insert(Upload { wal_id, owner: epoch, object: WalObject { header, writes, created_at: 0 }, attempt: 0 });
        Some(())
    }

    pub(crate) fn hedge_wal(&self, s: &mut State, epoch: Epoch, wal_id: WalId) -> Option<()> {
        s.writer(epoch)?;
        let first = s.uploads.iter().find(|u| u.wal_id == wal_id && u.owner == epoch)?.clone();
        s.hedges += 1;
        s.uploads.insert(Upload { attempt: 1, ..first });
        Some(())
    }

    pub(crate) fn wal_durable(&self, s: &mut State, epoch: Epoch, wal_id: WalId, ambiguous: bool) -> Option<()> {
        let upload = s.uploads.iter().find(|u| u.wal_id == wal_id && u.owner == epoch)?.clone();
        s.uploads.remove(&upload);
        // The other attempt of a hedged upload, still in flight.
        let sibling = s.uploads.iter().any(|u| u.wal_id == wal_id && u.owner == epoch);
        let hedged = sibling || upload.attempt > 0;
        // The store's answer: created if the id is free, else AlreadyExists.
        let created = match s.store.wals.get(&wal_id) {
            None => {
                let created_at = self.stamp(s);
                s.store.wals.insert(wal_id, WalObject { created_at, ..upload.object.clone() });
                !ambiguous
            }
            Some(_) => false,
        };
        if ambiguous && !sibling {
            s.ambiguous += 1;
        }
        if s.is_alive(epoch) {
            let outcome = if created {
                CreateConflict::Ours
            } else {
                // AlreadyExists: read the object back and decide.
                let existing = s.store.wals.get(&wal_id)?.header.writer_epoch;
                resolve_create_conflict(self.protocol, owner(epoch), owner(existing))
            };
            match outcome {
                CreateConflict::Ours => {
                    if !created && hedged {
                        s.seen.hedge_read_back_as_ours = true;
                    } else if ambiguous {
                        s.seen.ambiguous_create_resolved = true;
                    }
                    s.writer_mut(epoch)?.log.on_wal_durable(wal_id);
                    if self.eager_ack {
                        self.ack(s, epoch)?;
                    }
                }
                CreateConflict::Fenced { .. } => {
                    s.seen.zombie_upload_rejected = true;
                    Self::reject(s, epoch, &upload.object.writes);
                }
                CreateConflict::TakenByOther { .. } => Self::reject(s, epoch, &upload.object.writes),
            }
        }
        Some(())
    }

    pub(crate) fn ack(&self, s: &mut State, epoch: Epoch) -> Option<()> {
        let claimed_at_ack = s.claimed_epoch();
        let w = s.writer_mut(epoch)?;
        let (ackable, pending): (Vec<_>, Vec<_>) = w.pending.iter().partition(|(_, wal)| w.log.may_ack(*wal));
        w.pending = pending;
        for (id, _) in ackable {
            s.acked.insert(id, AckInfo { epoch, claimed_at_ack });
        }
        Some(())
    }

    pub(crate) fn upload_lost(&self, s: &mut State, epoch: Epoch, wal_id: WalId) -> Option<()> {
        // One attempt (of a hedged upload, either: they are the same object).
        let upload = s.uploads.iter().find(|u| u.wal_id == wal_id && u.owner == epoch)?.clone();
        s.uploads.remove(&upload);
        Some(())
    }

    pub(crate) fn freeze_memtable(&self, s: &mut State, epoch: Epoch) -> Option<()> {
        let w = s.writer_mut(epoch)?;
        // The buffer is empty, so every memtable write is in a frozen WAL.
        let last_wal_id = w.log.next_wal_id() - 1;
        let writes = std::mem::take(&mut w.memtable);
        w.imm.push(ImmMemtable { writes, last_wal_id });
        Some(())
    }

    pub(crate) fn flush_l0(&self, s: &mut State, epoch: Epoch) -> Option<()> {
        let now = self.stamp(s);
        let w = s.writer_mut(epoch)?;
        let id = SstId::L0(epoch, w.next_sst);
        w.next_sst += 1;
        let imm = w.imm.remove(0);
        w.flushed.push(Flushed { sst: id, last_wal_id: imm.last_wal_id, writes: imm.writes.clone() });
        s.store.ssts.insert(id, SstObject { writes: imm.writes, created_at: now });
        Some(())
    }

    pub(crate) fn write_manifest(&self, s: &mut State, epoch: Epoch) -> Option<()> {
        let w = s.writer(epoch)?;
        let (edit, result) = self.writer_update(s, w)?;
        self.commit_writer_edit(s, epoch, edit, result)
    }

    /// A writer edit that records nothing new and moves the writer's pin to
    /// the version it creates: the engine's pin refresh once the views that
    /// held an older tree are gone. The checked model's writer never holds
    /// such views (it pins every version it creates), so this is not one of
    /// its actions; trace conformance replays the engine's through it.
    pub fn refresh_pin(&self, s: &mut State, epoch: Epoch) -> Option<()> {
        let w = s.writer(epoch)?;
        let edit = WriterEdit {
            flushed: Vec::new(),
            flushed_through: None,
            close: false,
            fences: w.fences.clone(),
            pin: None,
            sst_floor: w.next_sst.into(),
        };
        let result = apply_writer_edit(&w.base_view, &w.base_tree, &w.log, &edit);
        self.commit_writer_edit(s, epoch, edit, result)
    }

    fn commit_writer_edit(&self, s: &mut State, epoch: Epoch, edit: WriterEdit<SstId>, result: Applied) -> Option<()> {
        let w = s.writer(epoch)?;
        let (view, tree) = match result {
            Ok(next) => next,
            Err(ManifestConflict::Fenced { .. }) => {
                Self::stop(s, epoch);
                return Some(());
            }
            Err(_) => return None,
        };
        let version = w.manifest_version + 1;
        let stale = (w.base_view, w.base_tree.clone());
        let uploading = s.uploads.iter().any(|u| u.owner == epoch) || !w.frozen.is_empty();
        let candidate = ManifestVersion { view, tree, token: token(Role::Writer, epoch), created_at: self.stamp(s) };
        match self.try_create(s, Role::Writer, epoch, candidate.clone(), version) {
            Attempt::Applied(v) => {
                let recorded: Vec<WriteId> = s
                    .writer(epoch)?
                    .flushed
                    .iter()
                    .flat_map(|f| f.writes.iter().copied())
                    .collect();
                s.committed.writes.extend(recorded);
                s.committed.replay_after_wal_id = s.committed.replay_after_wal_id.max(view.replay_after_wal_id);
                s.committed.wal_id_last_seen = s.committed.wal_id_last_seen.max(view.wal_id_last_seen);
                if uploading {
                    s.seen.manifest_while_uploading = true;
                }
                let w = s.writer_mut(epoch)?;
                w.manifest_version = v;
                w.base_view = ManifestView { version: v, ..candidate.view };
                w.base_tree = candidate.tree;
                w.flushed.clear();
                if edit.close {
                    // A closed writer never uploads again: its process ends.
                    Self::stop(s, epoch);
                }
            }
            Attempt::Fenced => Self::stop(s, epoch),
            Attempt::Reapply { latest, by } => {
                let base = self.rebase(s, stale, latest)?;
                if by == Role::Compactor {
                    s.seen.writer_reapplied = true;
                }
                let w = s.writer_mut(epoch)?;
                w.manifest_version = base.version;
                w.base_view = base.view;
                w.base_tree = base.tree;
            }
        }
        Some(())
    }

    pub(crate) fn close(&self, s: &mut State, epoch: Epoch) -> Option<()> {
        s.closes += 1;
        s.writer_mut(epoch)?.closing = true;
        Some(())
    }

    pub(crate) fn crash(&self, s: &mut State, epoch: Epoch) -> Option<()> {
        s.writer(epoch)?;
        s.crashes += 1;
        Self::stop(s, epoch);
        Some(())
    }

    pub(crate) fn recover(&self, s: &mut State) -> Option<()> {
        if s.writers.iter().any(|w| w.phase == Phase::Active) {
            s.zombies += 1;
        }
        s.recoveries += 1;
        // Claim the epoch: create the next version. A closed writer
        // needs no fence (`after_clean_close`).
        let (version, latest) = s.store.latest_manifest();
        let clean_close = latest.view.writer_closed;
        let (view, tree) = claim_writer(&latest.view, &latest.tree);
        let epoch = view.writer_epoch;
        let claimed = ManifestVersion { view, tree, token: token(Role::Writer, epoch), created_at: self.stamp(s) };
        let claimed_version = version + 1;
        self.insert_version(s, claimed_version, claimed.clone());
        match self.walk(s, &claimed.view, epoch, clean_close) {
            Ok(plan) => {
                let log = plan.wal_log(self.protocol, self.w());
                let fences = plan.fences.clone();
                let phase = Phase::Recovering { claimed_version, plan, clean_close };
                let mut w = Writer::new(epoch, phase, log, claimed_version, &claimed);
                w.fences = fences;
                s.writers.push(w)
            }
            Err(error) => s.recovery = Some(RecoveryOutcome::Failed { epoch, error }),
        }
        Some(())
    }

    pub(crate) fn fence(&self, s: &mut State, epoch: Epoch) -> Option<()> {
        let w = s.writer(epoch)?;
        let Phase::Recovering { claimed_version, plan, clean_close } = &w.phase else { return None };
        let (claimed_version, clean_close) = (*claimed_version, *clean_close);
        let plan = plan.clone();
        let view = w.base_view;
        // AlreadyExists: read it back. Ours (an earlier attempt of
        // this create landed): the fence is placed; another's: walk again.
        let conflict = plan.fence.and_then(|f| s.store.wals.get(&f.wal_id).map(|o| (f.wal_id, o.header.writer_epoch)));
        let decided = conflict.map(|(wal_id, existing)| {
            (wal_id, existing, on_fence_conflict(self.protocol, resolve_create_conflict(self.protocol, owner(epoch), owner(existing))))
        });
        if let Some((wal_id, existing, FenceConflict::GiveUp)) = decided {
            s.recovery = Some(RecoveryOutcome::GaveUp { epoch, wal_id, owner: existing });
            Self::stop(s, epoch);
            return Some(());
        }
        let placed = matches!(decided, Some((_, _, FenceConflict::Placed)));
        if let Some(fence) = plan.fence.filter(|_| !placed) {
            if s.store.wals.contains_key(&fence.wal_id) {
                // AlreadyExists, not ours: an older upload landed since the listing.
                match self.walk(s, &view, epoch, clean_close) {
                    Ok(plan) => {
                        let w = s.writer_mut(epoch)?;
                        w.log = plan.wal_log(self.protocol, self.w());
                        w.fences = plan.fences.clone();
                        w.phase = Phase::Recovering { claimed_version, plan, clean_close };
                    }
                    Err(error) => {
                        s.recovery = Some(RecoveryOutcome::Failed { epoch, error });
                        Self::stop(s, epoch);
                    }
                }
                return Some(());
            }
            let object = WalObject { header: fence.header, writes: Vec::new(), created_at: self.stamp(s) };
            s.store.wals.insert(fence.wal_id, object);
        } else if clean_close && plan.fence.is_none() {
            s.seen.recovered_after_close_without_fence = true;
        }
        // Replay: the SSTs of the latest version, re-read now (the claim's
        // pin keeps the claimed version's SSTs too), then the chain.
        let (latest_version, latest) = s.store.latest_manifest();
        let (latest_view, latest_tree) = (latest.view, latest.tree.clone());
        let mut writes = match s.tree_writes(&latest_tree) {
            Ok(writes) => writes,
            Err(sst) => {
                s.recovery = Some(RecoveryOutcome::MissingSst { epoch, sst });
                Self::stop(s, epoch);
                return Some(());
            }
        };
        let replayed: Vec<WriteId> = plan
            .replay
            .iter()
            .flat_map(|id| s.store.wals.get(id).map(|o| o.writes.clone()).unwrap_or_default())
            .collect();
        writes.extend(replayed.iter().copied());
        s.recovery = Some(RecoveryOutcome::Recovered { epoch, writes, replayed_wals: plan.replay.len() as u8 });
        let w = s.writer_mut(epoch)?;
        w.phase = Phase::Active;
        w.memtable = replayed;
        w.manifest_version = latest_version;
        w.base_view = latest_view;
        w.base_tree = latest_tree;
        Some(())
    }
}
