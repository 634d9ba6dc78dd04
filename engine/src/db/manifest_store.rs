//! The one manifest commit path. Every process that writes the manifest (the
//! writer's `WriteManifest` and `Close`, a recovery's epoch claim, the
//! compactor's claim and `CompactCommit`) goes through [`ManifestStore::commit`]:
//! build the next version from the one held, create it by compare-and-set,
//! and let `protocol` decide every outcome — ours, fenced, claim again,
//! re-apply on the latest, or a slot GC had reopened.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::ObjectStore;

use crate::bounds::{ObjectKind, MAX_MANIFEST_BYTES};
use crate::error::{Error, Result};
use crate::manifest::{ManifestObject, SstHandle};
use crate::paths::Layout;
use crate::protocol::{
    apply_checkpoint_edit, apply_compaction, apply_writer_edit, claim_compactor_epoch, claim_writer, on_claim_taken, CheckpointEdit, CheckpointRefused, Pin, on_manifest_created,
    on_manifest_gone, on_manifest_taken, reapply_base, ClaimTaken, GoneOutcome, Compaction, CreatedOutcome, Epoch, ManifestConflict, ManifestView, Protocol,
    Role, TakenOutcome, Tree, WriterEdit,
};
use crate::commit::CommitLog;
use crate::sst::SeqEntry;
use crate::store::{create, read};
use crate::sync::StdArc;

/// Attempts at a create race (epoch claim, fence, manifest update) before giving up.
pub(crate) const RACE_ATTEMPTS: usize = 32;

/// Listings tried after a create landed, to learn whether it is the latest.
const LISTING_ATTEMPTS: usize = 4;

/// A change to the manifest, applied by the protocol to whatever version is
/// the base of an attempt.
pub(crate) trait ManifestEdit {
    /// The role and epoch a lost race is judged as (`on_manifest_taken`);
    /// `None` for a claim, which holds no epoch yet (`on_claim_taken`).
    fn holder(&self) -> Option<(Role, Epoch)>;

    /// The next version's fields and tree on top of `base`.
    fn apply(&self, base: &ManifestObject) -> std::result::Result<(ManifestView, Tree<SstHandle>), Refused>;
}

/// The writer's `WriteManifest` (or `Close`): `wal_id_last_seen` comes from
/// the durable watermark read under the commit lock at each attempt (I1).
pub(crate) struct WriterCommit<'a> {
    pub(crate) epoch: Epoch,
    pub(crate) log: &'a CommitLog<SeqEntry>,
    pub(crate) edit: &'a WriterEdit<SstHandle>,
    /// The oldest version a tree of the writer's process still in use
    /// derives from. The writer's pin stays there if it is older than the
    /// base the edit is applied on; else the new version's tree holds every
    /// SST those trees read, and the pin moves to it.
    pub(crate) oldest_live: Pin,
    /// The oldest version a snapshot or scan of the writer's process still
    /// reads (the current tree counts only if someone else holds it): a
    /// close keeps the writer's pin there instead of dropping it.
    pub(crate) held_view: Option<Pin>,
}

impl ManifestEdit for WriterCommit<'_> {
    fn holder(&self) -> Option<(Role, Epoch)> {
        Some((Role::Writer, self.epoch))
    }

    fn apply(&self, base: &ManifestObject) -> std::result::Result<(ManifestView, Tree<SstHandle>), Refused> {
        let pin = match self.edit.close {
            true => self.held_view,
            false => (self.oldest_live.version < base.version).then_some(self.oldest_live),
        };
        let edit = WriterEdit { pin, ..self.edit.clone() };
        Ok(self.log.with_log(|log| apply_writer_edit(&base.view(), &base.tree(), log, &edit))?)
    }
}

/// A checkpoint holder's edit, or GC's `Expire` (a client: never fenced).
pub(crate) struct ClientCommit {
    pub(crate) protocol: Protocol,
    pub(crate) edit: CheckpointEdit,
}

impl ManifestEdit for ClientCommit {
    fn holder(&self) -> Option<(Role, Epoch)> {
        Some((Role::Client, 0))
    }

    fn apply(&self, base: &ManifestObject) -> std::result::Result<(ManifestView, Tree<SstHandle>), Refused> {
        Ok(apply_checkpoint_edit(self.protocol, &base.view(), &base.tree(), &self.edit)?)
    }
}

/// `CompactCommit`: exactly the inputs replaced by the output run.
pub(crate) struct CompactionCommit<'a> {
    pub(crate) protocol: Protocol,
    pub(crate) compaction: &'a Compaction<SstHandle>,
    /// Trees of the versions durable checkpoints pin, as read: an input no
    /// such tree holds need not be kept for that checkpoint (`still_read`).
    pub(crate) pinned: &'a BTreeMap<u64, Tree<SstHandle>>,
}

impl ManifestEdit for CompactionCommit<'_> {
    fn holder(&self) -> Option<(Role, Epoch)> {
        Some((Role::Compactor, self.compaction.compactor_epoch))
    }

    fn apply(&self, base: &ManifestObject) -> std::result::Result<(ManifestView, Tree<SstHandle>), Refused> {
        Ok(apply_compaction(self.protocol, &base.view(), &base.tree(), self.compaction, |v| self.pinned.get(&v))?)
    }
}

/// `Recover`'s claim of the next writer epoch, or `ClaimCompactor`.
pub(crate) enum Claim {
    Writer,
    Compactor,
}

impl ManifestEdit for Claim {
    fn holder(&self) -> Option<(Role, Epoch)> {
        None
    }

    fn apply(&self, base: &ManifestObject) -> std::result::Result<(ManifestView, Tree<SstHandle>), Refused> {
        Ok(match self {
            Claim::Writer => claim_writer(&base.view(), &base.tree()),
            Claim::Compactor => (claim_compactor_epoch(&base.view()), base.tree()),
        })
    }
}

/// Why the protocol refused an edit on the latest version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A role's update (`InputsGone`, ...; `Fenced` is [`Committed::Fenced`]).
    Conflict(ManifestConflict),
    /// A checkpoint edit (`Missing`, `Expired`, ...).
    Checkpoint(CheckpointRefused),
}

impl From<ManifestConflict> for Refused {
    fn from(c: ManifestConflict) -> Self {
        Refused::Conflict(c)
    }
}

impl From<CheckpointRefused> for Refused {
    fn from(c: CheckpointRefused) -> Self {
        Refused::Checkpoint(c)
    }
}

/// How a commit ended, short of a store error.
#[derive(Debug)]
pub(crate) enum Committed {
    /// The version is created and was the latest when listed after it;
    /// `base` is the version it was applied on.
    Applied { version: ManifestObject, base: ManifestObject },
    /// A newer epoch of the holder's role holds the store: stop for good.
    Fenced { by: Epoch },
    /// The protocol refused the edit on the latest version.
    Refused(Refused),
}

/// Manifest versions of one database: reads and the commit loop.
#[derive(Clone)]
pub(crate) struct ManifestStore {
    store: StdArc<dyn ObjectStore>,
    layout: Layout,
    protocol: Protocol,
}

impl ManifestStore {
    pub(crate) fn new(store: StdArc<dyn ObjectStore>, layout: Layout, protocol: Protocol) -> Self {
        Self { store, layout, protocol }
    }

    /// The newest listed version, or `None` for a new database. A version
    /// GC deleted between the listing and the read was not the latest: list again.
    pub(crate) async fn latest(&self) -> Result<Option<ManifestObject>> {
        let mut attempts = 0;
        loop {
            let Some(version) = self.latest_listed().await? else { return Ok(None) };
            match self.read(version).await {
                Err(Error::ObjectStore(object_store::Error::NotFound { .. })) if attempts < RACE_ATTEMPTS => attempts += 1,
                other => return other.map(Some),
            }
        }
    }

    /// The highest version a listing shows.
    async fn latest_listed(&self) -> Result<Option<u64>> {
        let listed: Vec<_> = self.store.list(Some(&self.layout.manifest_dir())).try_collect().await?;
        Ok(listed.iter().filter_map(|m| self.layout.parse_manifest(&m.location)).max())
    }

    /// Manifest `version`, read and checked against its name.
    pub(crate) async fn read(&self, version: u64) -> Result<ManifestObject> {
        let path = self.layout.manifest(version);
        let m = ManifestObject::decode(path.as_ref(), &self.read_object(&path).await?)?;
        if m.version != version {
            return Err(Error::corrupt(path.to_string(), format!("holds version {} under the name of {version}", m.version)));
        }
        Ok(m)
    }

    /// A manifest object's bytes, refused by its size above [`MAX_MANIFEST_BYTES`].
    async fn read_object(&self, path: &object_store::path::Path) -> Result<bytes::Bytes> {
        read(self.store.as_ref(), path, ObjectKind::Manifest, MAX_MANIFEST_BYTES).await
    }

    /// Keeps in `cache` the tree of every version a durable checkpoint in
    /// `m` pins, reading those not held yet (versions are immutable, so a
    /// tree once read stays right). A version that cannot be read is left
    /// out: the compaction then keeps everything for that checkpoint.
    pub(crate) async fn read_pinned_trees(&self, m: &ManifestObject, cache: &mut BTreeMap<u64, Tree<SstHandle>>) {
        let pinned: std::collections::BTreeSet<u64> =
            m.tree().checkpoints.iter().filter(|c| c.reads_only_its_version()).map(|c| c.version).collect();
        cache.retain(|v, _| pinned.contains(v));
        for v in pinned {
            if cache.contains_key(&v) {
                continue;
            }
            match self.read(v).await {
                Ok(pinned) => {
                    cache.insert(v, pinned.tree());
                }
                Err(e) => tracing::debug!(version = v, error = %e, "pinned version not read; its checkpoint keeps every retired SST"),
            }
        }
    }

    /// The newest version, at least as new as `seen`.
    pub(crate) async fn reread(&self, seen: ManifestObject) -> Result<ManifestObject> {
        Ok(match self.latest().await? {
            Some(latest) if latest.version > seen.version => latest,
            _ => seen,
        })
    }

    /// Applies `edit` and creates the next version by compare-and-set,
    /// starting from `held` (a claim starts from the latest). `on_landed`
    /// runs as soon as a create is known to be ours, before anything else is
    /// awaited, so a recorded trace cannot lose the step to a crash.
    pub(crate) async fn commit(
        &self,
        held: &ManifestObject,
        edit: &impl ManifestEdit,
        mut on_landed: impl FnMut(&ManifestObject),
    ) -> Result<Committed> {
        let mut base = held.clone();
        // The version to create follows the newest one seen, even when the
        // content is applied on another base (a mutant's stale view).
        let mut slot = held.version;
        for _ in 0..RACE_ATTEMPTS {
            let (view, tree) = match edit.apply(&base) {
                Ok(next) => next,
                Err(Refused::Conflict(ManifestConflict::Fenced { by })) => return Ok(Committed::Fenced { by }),
                Err(other) => return Ok(Committed::Refused(other)),
            };
            let mut next = base.successor(&self.layout, view, tree)?;
            next.version = ManifestObject::version_after(&self.layout, slot)?;
            let latest = match self.create(&next, edit).await? {
                Created::Ours => {
                    on_landed(&next);
                    match self.created_outcome(next.version).await? {
                        CreatedOutcome::Applied => return Ok(Committed::Applied { version: next, base }),
                        CreatedOutcome::SlotReopened { latest } => self.read(latest).await?,
                    }
                }
                Created::Fenced { by } => return Ok(Committed::Fenced { by }),
                Created::Taken(existing) => self.reread(existing).await?,
                Created::Gone => {
                    let latest = self.latest().await?;
                    match (on_manifest_gone(next.version, latest.as_ref().map(|m| m.version)), latest) {
                        (GoneOutcome::GoAgain { .. }, Some(latest)) => latest,
                        _ => {
                            return Err(Error::InvalidArgument(format!(
                                "manifest version {} was taken, then deleted, yet no newer version is listed",
                                next.version
                            )))
                        }
                    }
                }
            };
            // A claim always claims from the latest; a role's update is
            // applied again on it (`reapply_base`), never on its stale view.
            slot = latest.version;
            base = match edit.holder() {
                None => latest,
                Some(_) => reapply_base(self.protocol, &base, &latest).clone(),
            };
        }
        Err(Error::InvalidArgument(format!("manifest update lost the race {RACE_ATTEMPTS} times in a row")))
    }

    /// Creates `next`; on `AlreadyExists` reads the object back and lets the
    /// protocol decide whose it is.
    async fn create(&self, next: &ManifestObject, edit: &impl ManifestEdit) -> Result<Created> {
        let path = self.layout.manifest(next.version);
        let bytes = next.encode();
        // Never a version the next open would refuse by its size.
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(Error::InvalidArgument(format!(
                "manifest version {} would be {} bytes, above the {MAX_MANIFEST_BYTES} bytes a manifest may hold: \
                 raise compacted_sst_size_bytes so that runs hold fewer SSTs, or use shorter keys",
                next.version,
                bytes.len()
            )));
        }
        if create(self.store.as_ref(), &path, bytes).await? {
            return Ok(Created::Ours);
        }
        let existing = match self.read_object(&path).await {
            Ok(bytes) => ManifestObject::decode(path.as_ref(), &bytes)?,
            // The version that took the slot is gone (`on_manifest_gone`).
            Err(Error::ObjectStore(object_store::Error::NotFound { .. })) => return Ok(Created::Gone),
            Err(e) => return Err(e),
        };
        let ours = match edit.holder() {
            None => match on_claim_taken(next.token, existing.token) {
                ClaimTaken::Ours => true,
                ClaimTaken::ClaimAgain => false,
            },
            Some((role, epoch)) => match on_manifest_taken(role, epoch, next.token, &existing.view(), existing.token) {
                TakenOutcome::Ours => true,
                TakenOutcome::Fenced { by } => return Ok(Created::Fenced { by }),
                TakenOutcome::Reapply => false,
            },
        };
        Ok(if ours { Created::Ours } else { Created::Taken(existing) })
    }

    /// `on_manifest_created`: whether the version just created is the latest.
    /// The create has landed, so giving up here would leave the caller not
    /// knowing its own state: a failed listing is tried again (the store
    /// layer has already retried it) before the error is returned.
    async fn created_outcome(&self, created: u64) -> Result<CreatedOutcome> {
        let mut attempt = 0;
        let latest = loop {
            match self.latest_listed().await {
                Ok(latest) => break latest.unwrap_or(created),
                Err(e) if attempt + 1 >= LISTING_ATTEMPTS => return Err(e),
                Err(_) => attempt += 1,
            }
        };
        Ok(on_manifest_created(self.protocol, created, latest))
    }
}

/// The outcome of one manifest create.
enum Created {
    Ours,
    Fenced { by: Epoch },
    /// Another object holds the version: re-read and go again.
    Taken(ManifestObject),
    /// Another object held the version and is gone since (`on_manifest_gone`).
    Gone,
}
