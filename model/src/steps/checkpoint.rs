//! Durable checkpoints (a backup, `tidemark checkpoint create`) and GC's
//! edit that drops expired checkpoints. Each is one client edit on the
//! latest version, read and created in one step.

use std::collections::BTreeSet;

use tidemark::internals::protocol::{apply_checkpoint_edit, expired, CheckpointEdit, CheckpointId, Follower as FollowCursor, Role};

use crate::model::{token, TidemarkModel};
use crate::state::*;

impl TidemarkModel {
    /// `CheckpointCreate`: walks the chain after the latest version (as a
    /// recovery would) to find `wal_end`, then creates the next version with
    /// a checkpoint pinning it. What opening it must show is recorded (I16).
    pub(crate) fn checkpoint_create(&self, s: &mut State) -> Option<()> {
        s.checkpoints_made += 1;
        let id = CheckpointId::from(s.checkpoints_made);
        let (version, latest) = s.store.latest_manifest();
        let (view, tree) = (latest.view, latest.tree.clone());
        let mut walk = FollowCursor::open(self.protocol, &view);
        let listed = s.listed_wals();
        while let Some(wal_id) = walk.next_to_read(&listed) {
            walk.observe(wal_id, s.store.wals.get(&wal_id)?.header);
        }
        let mut writes: BTreeSet<WriteId> = s.tree_writes(&tree).ok()?.into_iter().collect();
        writes.extend(s.wal_writes(walk.applied()));
        let expires_at = u64::from(s.now.saturating_add(self.lifecycle.ttl));
        let edit = CheckpointEdit::Create { id, expires_at: Some(expires_at), wal_end: Some(walk.last_read()) };
        let (view, tree) = apply_checkpoint_edit(self.protocol, &view, &tree, &edit).ok()?;
        let created = ManifestVersion { view, tree, token: token(Role::Client, id as u64), created_at: self.stamp(s) };
        self.insert_version(s, version + 1, created);
        s.committed.checkpoints.insert(id, (version + 1, Some(expires_at)));
        s.made.insert(id, Made { writes, wals: walk.applied().to_vec() });
        Some(())
    }

    /// `CheckpointRefresh`: its holder extends it; the pin stays. Refused
    /// once expired (`may_refresh`): the holder must not read through it.
    pub(crate) fn checkpoint_refresh(&self, s: &mut State, id: CheckpointId) -> Option<()> {
        let now = u64::from(s.now);
        let expires_at = u64::from(s.now.saturating_add(self.lifecycle.ttl));
        let edit = CheckpointEdit::Refresh { id, now, expires_at: Some(expires_at), move_pin: false };
        let (version, latest) = s.store.latest_manifest();
        match apply_checkpoint_edit(self.protocol, &latest.view, &latest.tree, &edit) {
            Ok((view, tree)) => {
                let pinned = tree.checkpoints.iter().find(|c| c.id == id)?.version;
                let created = ManifestVersion { view, tree, token: token(Role::Client, id as u64), created_at: self.stamp(s) };
                self.insert_version(s, version + 1, created);
                s.committed.checkpoints.insert(id, (pinned, Some(expires_at)));
                s.seen.checkpoint_refreshed = true;
            }
            // Refused: the holder gives the checkpoint up.
            Err(_) => {
                s.made.remove(&id);
            }
        }
        Some(())
    }

    /// `CheckpointDelete`: its holder drops it.
    pub(crate) fn checkpoint_delete(&self, s: &mut State, id: CheckpointId) -> Option<()> {
        let (version, latest) = s.store.latest_manifest();
        let (view, tree) = apply_checkpoint_edit(self.protocol, &latest.view, &latest.tree, &CheckpointEdit::Delete { id }).ok()?;
        let created = ManifestVersion { view, tree, token: token(Role::Client, id as u64), created_at: self.stamp(s) };
        self.insert_version(s, version + 1, created);
        s.committed.checkpoints.remove(&id);
        s.made.remove(&id);
        Some(())
    }

    /// `CheckpointExpire`: GC's edit drops the checkpoints expired at its
    /// clock (with its grace), and with them what only they kept.
    pub(crate) fn checkpoint_expire(&self, s: &mut State) -> Option<()> {
        let (now, grace) = (u64::from(s.now), u64::from(self.bounds.min_age));
        let (version, latest) = s.store.latest_manifest();
        let gone = expired(&latest.tree, now, grace);
        let edit = CheckpointEdit::Expire { now, grace };
        let (view, tree) = apply_checkpoint_edit(self.protocol, &latest.view, &latest.tree, &edit).ok()?;
        let created = ManifestVersion { view, tree, token: token(Role::Client, 0), created_at: self.stamp(s) };
        self.insert_version(s, version + 1, created);
        for id in gone {
            s.committed.checkpoints.remove(&id);
        }
        s.seen.checkpoint_expired_removed = true;
        Some(())
    }
}
