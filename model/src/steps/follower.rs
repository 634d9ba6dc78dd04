//! A follower's actions. Its view is the SSTs of the version it adopted
//! plus the WALs it applied past that version (`protocol::Follower`); its
//! client checkpoint keeps both from GC while it lives.

use tidemark::internals::protocol::{apply_checkpoint_edit, may_use, CheckpointEdit, CheckpointId, Follower as FollowCursor, Role};

use super::Attempt;
use crate::model::{token, TidemarkModel, FIRST_FOLLOWER};
use crate::state::*;

impl TidemarkModel {
    /// `FollowerOpen`: creates a checkpoint on the latest version (pinning
    /// the version it creates), then reads that version and applies the
    /// chain after it. Nothing is read before the checkpoint exists.
    pub(crate) fn follower_open(&self, s: &mut State) -> Option<()> {
        let id = FIRST_FOLLOWER + CheckpointId::from(s.followers_opened);
        s.followers_opened += 1;
        let expires_at = s.now.saturating_add(self.lifecycle.ttl);
        let (version, latest) = s.store.latest_manifest();
        let edit = CheckpointEdit::Create { id, expires_at: Some(u64::from(expires_at)), wal_end: None };
        let (view, tree) = apply_checkpoint_edit(self.protocol, &latest.view, &latest.tree, &edit).ok()?;
        let created = ManifestVersion { view, tree: tree.clone(), token: token(Role::Client, id as u64), created_at: self.stamp(s) };
        self.insert_version(s, version + 1, created);
        s.committed.checkpoints.insert(id, (version + 1, Some(u64::from(expires_at))));
        let base = Base { version: version + 1, view, tree };
        let writes = s.tree_writes(&base.tree).ok()?;
        let follower = Follower {
            id,
            cursor: FollowCursor::open(self.protocol, &view),
            base,
            expires_at,
            lapsed: false,
            view: writes.iter().copied().collect(),
            shown: writes.into_iter().collect(),
        };
        s.followers.push(follower);
        self.apply_chain(s, id)
    }

    /// `FollowerPoll`: reads the latest version and adopts it if it is newer
    /// (keeping the WALs it applied past that version), then lists WALs and
    /// applies the chain past where it stopped.
    pub(crate) fn follower_poll(&self, s: &mut State, id: CheckpointId) -> Option<()> {
        let f = s.follower(id)?;
        if f.lapsed || !may_use(Some(u64::from(f.expires_at)), u64::from(s.now)) {
            return None;
        }
        let (version, latest) = s.store.latest_manifest();
        if version > f.base.version {
            let base = Base { version, view: latest.view, tree: latest.tree.clone() };
            self.adopt(s, id, base)?;
        }
        self.apply_chain(s, id)
    }

    /// `FollowerRefresh`: from the version it holds, creates the next one
    /// with its checkpoint extended and moved there (`CheckpointEdit::Refresh`),
    /// and adopts it. A lost race adopts the latest version instead (the
    /// next refresh starts from it); a refusal (expired, or dropped by GC)
    /// ends the follower: it reads nothing more.
    pub(crate) fn follower_refresh(&self, s: &mut State, id: CheckpointId) -> Option<()> {
        let f = s.follower(id)?.clone();
        if f.lapsed {
            return None;
        }
        let now = u64::from(s.now);
        let expires_at = s.now.saturating_add(self.lifecycle.ttl);
        let edit = CheckpointEdit::Refresh { id, now, expires_at: Some(u64::from(expires_at)), move_pin: true };
        let (view, tree) = match apply_checkpoint_edit(self.protocol, &f.base.view, &f.base.tree, &edit) {
            Ok(next) => next,
            Err(_) => {
                s.follower_mut(id)?.lapsed = true;
                s.seen.follower_lapsed = true;
                return Some(());
            }
        };
        let candidate = ManifestVersion { view, tree, token: token(Role::Client, id as u64), created_at: self.stamp(s) };
        match self.try_create(s, Role::Client, id as u64, candidate.clone(), f.base.version + 1) {
            Attempt::Applied(v) => {
                s.committed.checkpoints.insert(id, (v, Some(u64::from(expires_at))));
                s.seen.follower_refreshed = true;
                s.follower_mut(id)?.expires_at = expires_at;
                let base = Base { version: v, view: tidemark::internals::protocol::ManifestView { version: v, ..candidate.view }, tree: candidate.tree };
                self.adopt(s, id, base)
            }
            // A client is never fenced; on a lost race it reads the latest.
            Attempt::Fenced | Attempt::Reapply { .. } => {
                let (version, latest) = s.store.latest_manifest();
                let base = Base { version, view: latest.view, tree: latest.tree.clone() };
                self.adopt(s, id, base)
            }
        }
    }

    /// Moves follower `id` to `base` (a newer version it read or created).
    fn adopt(&self, s: &mut State, id: CheckpointId, base: Base) -> Option<()> {
        let writes = s.tree_writes(&base.tree).ok()?;
        let f = s.follower(id)?;
        let mut cursor = f.cursor.clone();
        if !cursor.adopt(&base.view) {
            return None;
        }
        let mut view: std::collections::BTreeSet<WriteId> = writes.into_iter().collect();
        view.extend(s.wal_writes(cursor.applied()));
        s.seen.follower_adopted = true;
        let f = s.follower_mut(id)?;
        f.base = base;
        f.cursor = cursor;
        f.shown.extend(view.iter().copied());
        f.view = view;
        Some(())
    }

    /// Applies the chain as far as the listing allows (`Follower::next_to_read`).
    fn apply_chain(&self, s: &mut State, id: CheckpointId) -> Option<()> {
        let listed = s.listed_wals();
        let mut cursor = s.follower(id)?.cursor.clone();
        let before = cursor.applied().len();
        while let Some(wal_id) = cursor.next_to_read(&listed) {
            let header = s.store.wals.get(&wal_id)?.header;
            cursor.observe(wal_id, header);
        }
        let new: Vec<WriteId> = s.wal_writes(&cursor.applied()[before..]);
        s.seen.follower_applied_wal |= cursor.applied().len() > before;
        let f = s.follower_mut(id)?;
        f.cursor = cursor;
        f.view.extend(new.iter().copied());
        f.shown.extend(new);
        Some(())
    }
}
