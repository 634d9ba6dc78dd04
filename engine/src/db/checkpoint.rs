//! Checkpoints as clients make them: a durable checkpoint (a consistent
//! backup: the latest version and the WAL chain after it, pinned until
//! deleted or expired), listing and deleting them. Each change is a client
//! edit through the one commit path (`CheckpointCreate`, `CheckpointDelete`,
//! `CheckpointRefresh`); the protocol decides what each pins.

use std::time::Duration;

use object_store::path::Path;

use super::chain::follow_chain;
use super::manifest_store::{ClientCommit, Committed, ManifestStore, Refused};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::manifest::{Checkpoint, CheckpointHolder, ManifestObject};
use crate::paths::Layout;
use crate::protocol::{CheckpointEdit, CheckpointRefused, Follower, Protocol, WalId};
use crate::settings::Settings;
use crate::trace::{TraceEvent, Tracer};
use crate::StoreRef;

/// How long a checkpoint lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointOptions {
    /// Expire this long after creation unless refreshed; `None`: until deleted.
    pub lifetime: Option<Duration>,
}

/// What a client checkpoint edit needs: the manifests, the store, the clock.
pub(crate) struct Client<'a> {
    pub(crate) store: &'a StoreRef,
    pub(crate) layout: &'a Layout,
    pub(crate) manifests: &'a ManifestStore,
    pub(crate) protocol: Protocol,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) tracer: &'a Tracer,
    /// The largest WAL object a walk reads (`bounds::max_wal_bytes`).
    pub(crate) wal_limit: u64,
}

impl<'a> Client<'a> {
    /// The client of a running handle (a writer's `Db::checkpoint`, a
    /// follower's refreshes): its store, manifests, clock and tracer.
    pub(crate) fn of(inner: &'a super::inner::DbInner) -> Self {
        Client {
            store: &inner.store,
            layout: &inner.layout,
            manifests: &inner.manifests,
            protocol: inner.settings.protocol,
            clock: inner.settings.clock.as_ref(),
            tracer: &inner.tracer,
            wal_limit: crate::bounds::max_wal_bytes(&inner.settings),
        }
    }

    /// The client of a process of its own (a checkpoint command, a
    /// follower's open), as `settings` configure it.
    pub(crate) fn with_settings(
        store: &'a StoreRef,
        layout: &'a Layout,
        manifests: &'a ManifestStore,
        settings: &'a Settings,
        tracer: &'a Tracer,
    ) -> Self {
        Client {
            store,
            layout,
            manifests,
            protocol: settings.protocol,
            clock: settings.clock.as_ref(),
            tracer,
            wal_limit: crate::bounds::max_wal_bytes(settings),
        }
    }

    /// Creates a client checkpoint in the next version after `latest` (or
    /// after whatever version a racing update made). With `durable`, it also
    /// pins the WAL chain after that version up to its end now, so that it
    /// holds every write acknowledged before this call.
    pub(crate) async fn create(&self, latest: &ManifestObject, opts: CheckpointOptions, durable: bool) -> Result<(Checkpoint, ManifestObject)> {
        let id: u128 = rand::random();
        let expires_at = opts.lifetime.map(|l| self.clock.now_ms().saturating_add(l.as_millis() as u64));
        let mut latest = latest.clone();
        let mut walks = 0;
        let committed = loop {
            let wal_end = match durable {
                true => {
                    let (walked, end) = self.chain_end(latest.clone()).await?;
                    latest = walked;
                    Some(end)
                }
                false => None,
            };
            match self.commit(&latest, CheckpointEdit::Create { id, expires_at, wal_end }).await? {
                // The version moved past the walk's end while it walked: walk
                // again from the latest (its replay point is the new start).
                Err(CheckpointRefused::ChainMoved) if walks + 1 < CHAIN_END_ATTEMPTS => {
                    walks += 1;
                    latest = self.manifests.latest().await?.unwrap_or(latest);
                }
                other => break other,
            }
        };
        let version = match committed {
            Ok(version) => version,
            // The id is fresh and random: a version that records it already
            // is our own create, landed on an attempt whose outcome was lost
            // (and re-applied on top of it).
            Err(CheckpointRefused::Exists) => match self.manifests.latest().await? {
                Some(latest) if latest.checkpoints.iter().any(|c| c.id == id) => latest,
                _ => return Err(refused(id, CheckpointRefused::Missing)),
            },
            Err(r) => return Err(refused(id, r)),
        };
        let checkpoint = find(&version, id)?;
        // The version its edit created (found in a later one after a lost outcome).
        self.tracer.emit(0, TraceEvent::CheckpointCreate { id, version: checkpoint.version, expires_at, wal_end: checkpoint.wal_end });
        Ok((checkpoint, version))
    }

    /// Extends checkpoint `id` to `lifetime` from now; with `move_pin`, also
    /// moves it to the version this edit creates. Refused once it expired.
    pub(crate) async fn refresh(&self, latest: &ManifestObject, id: u128, lifetime: Duration, move_pin: bool) -> Result<ManifestObject> {
        let now = self.clock.now_ms();
        let expires_at = Some(now.saturating_add(lifetime.as_millis() as u64));
        let version = self.commit(latest, CheckpointEdit::Refresh { id, now, expires_at, move_pin }).await?.map_err(|r| refused(id, r))?;
        self.tracer.emit(0, TraceEvent::CheckpointRefresh { id, version: version.version, moved: move_pin, now, expires_at });
        Ok(version)
    }

    /// Drops checkpoint `id`.
    pub(crate) async fn delete(&self, latest: &ManifestObject, id: u128) -> Result<ManifestObject> {
        let version = self.commit(latest, CheckpointEdit::Delete { id }).await?.map_err(|r| refused(id, r))?;
        self.tracer.emit(0, TraceEvent::CheckpointDelete { id, version: version.version });
        Ok(version)
    }

    /// The edit through the one commit path: the version created, or why
    /// the protocol refused it on the latest version.
    async fn commit(&self, latest: &ManifestObject, edit: CheckpointEdit) -> Result<std::result::Result<ManifestObject, CheckpointRefused>> {
        match self.manifests.commit(latest, &ClientCommit { protocol: self.protocol, edit }, |_| ()).await? {
            Committed::Applied { version, .. } => Ok(Ok(version)),
            Committed::Refused(Refused::Checkpoint(r)) => Ok(Err(r)),
            Committed::Fenced { by } => Err(Error::InvalidArgument(format!("a checkpoint edit cannot be fenced (by {by})"))),
            Committed::Refused(r) => Err(Error::InvalidArgument(format!("checkpoint edit refused: {r:?}"))),
        }
    }

    /// The last chain position a walk from `m`'s replay point reaches now:
    /// every WAL acknowledged so far is at or before it. Nothing pins `m`
    /// during the walk, so GC may delete WALs a newer version no longer
    /// needs under it: a missing WAL with a newer version in place restarts
    /// the walk from that version (returned with the end), a few times.
    async fn chain_end(&self, mut m: ManifestObject) -> Result<(ManifestObject, WalId)> {
        let mut attempts = 0;
        loop {
            let mut follower = Follower::open(self.protocol, &m.view());
            match follow_chain(self.store.as_ref(), self.layout, &mut follower, self.wal_limit).await {
                Ok(_) => return Ok((m, follower.last_read())),
                Err(e @ Error::MissingWal { .. }) => {
                    attempts += 1;
                    match self.manifests.latest().await? {
                        Some(newer) if newer.version > m.version && attempts < CHAIN_END_ATTEMPTS => m = newer,
                        _ => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Walks a durable create makes before a missing WAL is its error: each
/// restart needs a newer version, so only a writer that commits and
/// collects faster than one walk can exhaust them.
const CHAIN_END_ATTEMPTS: usize = 8;

/// What a refused checkpoint edit tells its caller.
fn refused(id: u128, r: CheckpointRefused) -> Error {
    match r {
        CheckpointRefused::Missing => Error::CheckpointGone { id, detail: "the latest manifest does not record it".into() },
        CheckpointRefused::Expired => Error::CheckpointGone { id, detail: "it expired before it was refreshed".into() },
        CheckpointRefused::Exists => Error::InvalidArgument(format!("checkpoint {id:032x} exists already")),
        CheckpointRefused::NotClient => Error::InvalidArgument(format!("checkpoint {id:032x} is a writer's own pin")),
        CheckpointRefused::ChainMoved => Error::InvalidArgument(format!(
            "checkpoint {id:032x}: the manifest's replay point moved past the WAL chain's end on each of {CHAIN_END_ATTEMPTS} walks"
        )),
    }
}

/// Checkpoint `id` as `m` records it.
pub(crate) fn find(m: &ManifestObject, id: u128) -> Result<Checkpoint> {
    m.checkpoints
        .iter()
        .find(|c| c.id == id)
        .copied()
        .ok_or_else(|| Error::CheckpointGone { id, detail: format!("manifest version {} does not record it", m.version) })
}

/// The parts a client edit needs for the database under `root`.
async fn open(store: &StoreRef, root: Path, settings: &Settings) -> Result<(Layout, ManifestStore, ManifestObject)> {
    let layout = Layout::new(root);
    let manifests = ManifestStore::new(store.clone(), layout.clone(), settings.protocol);
    let latest = manifests.latest().await?.ok_or_else(|| Error::NoDatabase { location: layout.root().to_string() })?;
    Ok((layout, manifests, latest))
}

/// Creates a durable checkpoint of the database under `root`: a consistent
/// backup of every write acknowledged before the call, pinned (GC deletes
/// nothing it needs) until it is deleted or, with a lifetime, expires. It
/// does not disturb a running writer; open it with
/// [`DbReader::open_checkpoint`](crate::DbReader::open_checkpoint).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// use std::sync::Arc;
/// use object_store::memory::InMemory;
/// let store: tidemark::StoreRef = Arc::new(InMemory::new());
/// let db = tidemark::Db::open("db", store.clone()).await?;
/// db.put("k", "before").await?;
/// let cp = tidemark::create_checkpoint(store.clone(), "db", Default::default()).await?;
/// db.put("k", "after").await?;
/// let backup = tidemark::DbReader::open_checkpoint("db", store.clone(), cp.id).await?;
/// assert_eq!(backup.get("k").await?.as_deref(), Some(&b"before"[..]));
/// # db.close().await }
/// ```
pub async fn create_checkpoint(store: StoreRef, root: impl Into<Path>, opts: CheckpointOptions) -> Result<Checkpoint> {
    create_checkpoint_with(store, root, opts, Settings::default()).await
}

/// [`create_checkpoint`] with `settings`: the clock its expiry is judged
/// by, and the trace recorder its edit is recorded to.
pub async fn create_checkpoint_with(store: StoreRef, root: impl Into<Path>, opts: CheckpointOptions, settings: Settings) -> Result<Checkpoint> {
    let (layout, manifests, latest) = open(&store, root.into(), &settings).await?;
    let tracer = Tracer::new(settings.recorder.clone());
    let client = Client::with_settings(&store, &layout, &manifests, &settings, &tracer);
    Ok(client.create(&latest, opts, true).await?.0)
}

/// The checkpoints the latest manifest records: clients' (durable ones and
/// followers') and the writer's own pin.
pub async fn list_checkpoints(store: StoreRef, root: impl Into<Path>) -> Result<Vec<Checkpoint>> {
    let (_, _, latest) = open(&store, root.into(), &Settings::default()).await?;
    Ok(latest.checkpoints)
}

/// Deletes client checkpoint `id`: GC may then collect what only it kept.
pub async fn delete_checkpoint(store: StoreRef, root: impl Into<Path>, id: u128) -> Result<()> {
    delete_checkpoint_with(store, root, id, Settings::default()).await
}

/// [`delete_checkpoint`] with `settings` (the clock, the trace recorder).
pub async fn delete_checkpoint_with(store: StoreRef, root: impl Into<Path>, id: u128, settings: Settings) -> Result<()> {
    let (layout, manifests, latest) = open(&store, root.into(), &settings).await?;
    if find(&latest, id)?.holder != CheckpointHolder::Client {
        return Err(Error::InvalidArgument(format!("checkpoint {id:032x} is a writer's own pin; it goes with the writer")));
    }
    let tracer = Tracer::new(settings.recorder.clone());
    let client = Client::with_settings(&store, &layout, &manifests, &settings, &tracer);
    client.delete(&latest, id).await.map(|_| ())
}
