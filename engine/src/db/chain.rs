//! Reading the WAL chain as recovery does (`ChainWalk`): list `wal/`, read
//! the chain positions ahead in id order, and hand each header to the walk.
//! A writer's open, a read-only open and fsck all read it here.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;

use super::manifest_store::RACE_ATTEMPTS;
use crate::bounds::{self, ObjectKind};
use crate::error::{Error, Result};
use crate::manifest::ManifestObject;
use crate::memtable::MemState;
use crate::paths::Layout;
use crate::protocol::{
    ChainStep, ChainWalk, Epoch, Follower, ManifestView, Protocol, RecoveryError, RecoveryPlan, WalId, WalKind,
    MAX_INFLIGHT_WAL_UPLOADS,
};
use crate::store::read;
use crate::wal_object::{decode_wal, DecodedWal};

/// WAL reads in flight at once during recovery, at most, and the bytes
/// they may hold (by their listed sizes; at least one read): open time must
/// not grow by one round trip per WAL on a slow store, and memory must not
/// grow with the number of WALs read ahead.
const RECOVERY_READS_MAX: usize = 256;
const RECOVERY_READ_AHEAD_BYTES: u64 = 64 << 20;

/// Whether one more read of `size` bytes may start with `reads` reads of
/// `bytes` bytes in flight.
fn may_read_ahead(reads: usize, bytes: u64, size: u64) -> bool {
    reads == 0 || (reads < RECOVERY_READS_MAX && bytes.saturating_add(size) <= RECOVERY_READ_AHEAD_BYTES)
}

/// Whether a tidemark database lives under `root`: a manifest is listed
/// there. A writer's open creates one, so this tells "open" from "create"
/// without creating anything. See [`store_for_url`](crate::store_for_url)
/// for an example.
pub async fn database_exists(store: &dyn ObjectStore, root: &Path) -> Result<bool> {
    let layout = Layout::new(root.clone());
    let listed: Vec<_> = store.list(Some(&layout.manifest_dir())).try_collect().await?;
    Ok(listed.iter().any(|m| layout.parse_manifest(&m.location).is_some()))
}

/// The WAL chain as a walk found it.
pub struct ChainContents {
    /// What the walk decided: the WALs to replay, the fence to place, the
    /// next WAL id.
    pub plan: RecoveryPlan,
    /// The WAL ids the listing found.
    pub listed: Vec<WalId>,
    /// Decoded WAL objects on the chain (data, fences and skipped ones).
    pub wals: BTreeMap<WalId, DecodedWal>,
}

/// Lists `wal/` and walks the chain for `view` without claiming an epoch
/// (a read-only open, fsck): every WAL on the chain must be of an epoch the
/// manifests record. `MissingWal` names the object (I1); a corrupt WAL, or
/// one larger than `wal_limit` bytes, is `Corrupt`.
pub async fn read_chain(
    store: &dyn ObjectStore,
    layout: &Layout,
    protocol: Protocol,
    view: &ManifestView,
    wal_limit: u64,
) -> Result<ChainContents> {
    walk_chain(store, layout, protocol, view, None, false, wal_limit).await
}

/// `read_chain` for a recovery that claimed `epoch` (recorded in `view`),
/// made from a version with `writer_closed` if `claimed_from_closed`
/// (`ChainWalk::after_clean_close`: no fence is needed).
pub async fn read_chain_with(
    store: &dyn ObjectStore,
    layout: &Layout,
    protocol: Protocol,
    view: &ManifestView,
    epoch: Epoch,
    claimed_from_closed: bool,
    wal_limit: u64,
) -> Result<ChainContents> {
    walk_chain(store, layout, protocol, view, Some(epoch), claimed_from_closed, wal_limit).await
}

/// Reads WAL `path`, refused as `Corrupt` from its listed size if that is
/// above `limit`, before any request.
async fn read_wal(store: &dyn ObjectStore, path: Path, listed: u64, limit: u64) -> Result<Bytes> {
    if listed > limit {
        return Err(Error::corrupt(path.to_string(), ObjectKind::Wal.too_large(listed, limit)));
    }
    read(store, &path, ObjectKind::Wal, limit).await
}

/// Chain reads ahead of the walk, in id order, within the read-ahead budget.
struct ReadAhead<'a> {
    store: &'a dyn ObjectStore,
    layout: &'a Layout,
    limit: u64,
    pending: std::iter::Peekable<std::vec::IntoIter<(WalId, u64)>>,
    in_flight: FuturesOrdered<BoxFuture<'a, (WalId, u64, Result<Bytes>)>>,
    bytes: u64,
}

impl<'a> ReadAhead<'a> {
    fn fill(&mut self) {
        while let Some(&(id, listed)) = self.pending.peek() {
            // An object refused by its size costs nothing in flight.
            let size = if listed > self.limit { 0 } else { listed };
            if !may_read_ahead(self.in_flight.len(), self.bytes, size) {
                break;
            }
            self.pending.next();
            self.bytes += size;
            let (store, limit, path) = (self.store, self.limit, self.layout.wal(id));
            self.in_flight.push_back(Box::pin(async move { (id, size, read_wal(store, path, listed, limit).await) }));
        }
    }

    async fn next(&mut self) -> Option<(WalId, Result<Bytes>)> {
        self.fill();
        let (id, size, result) = self.in_flight.next().await?;
        self.bytes -= size;
        Some((id, result))
    }
}

async fn walk_chain(
    store: &dyn ObjectStore,
    layout: &Layout,
    protocol: Protocol,
    view: &ManifestView,
    claimed: Option<Epoch>,
    claimed_from_closed: bool,
    wal_limit: u64,
) -> Result<ChainContents> {
    let listed: Vec<_> = store.list(Some(&layout.wal_dir())).try_collect().await?;
    let sizes: BTreeMap<WalId, u64> = listed.iter().filter_map(|m| Some((layout.parse_wal(&m.location)?, m.size))).collect();
    let ids: Vec<WalId> = sizes.keys().copied().collect();
    let epoch = claimed.unwrap_or(Epoch::MAX);
    let mut walk = ChainWalk::new(protocol, view, epoch, ids.iter().copied(), MAX_INFLIGHT_WAL_UPLOADS)
        .after_clean_close(claimed_from_closed);
    // The walk is sequential, but chain positions are nearly always
    // consecutive listed ids: read ahead in id order, within a budget, so
    // open time does not grow with one round trip per WAL.
    let candidates: Vec<(WalId, u64)> = sizes.range(view.replay_after_wal_id.saturating_add(1)..).map(|(i, s)| (*i, *s)).collect();
    let mut reads = ReadAhead {
        store,
        layout,
        limit: wal_limit,
        pending: candidates.into_iter().peekable(),
        in_flight: FuturesOrdered::new(),
        bytes: 0,
    };
    let mut wals = BTreeMap::new();
    let mut last_read = None;
    while let Some(id) = walk.next_to_read() {
        let path = layout.wal(id);
        let bytes = loop {
            match reads.next().await {
                Some((got, result)) if got == id => break result,
                Some((got, _)) if got < id => continue, // skipped by a fence's jump
                _ => break read_wal(store, path.clone(), sizes.get(&id).copied().unwrap_or(0), wal_limit).await,
            }
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(Error::ObjectStore(object_store::Error::NotFound { .. })) => {
                return Err(Error::MissingWal { id, path: path.to_string() })
            }
            Err(e) => return Err(e),
        };
        let wal = decode_wal(&path, bytes)?;
        walk.observe(id, wal.header);
        wals.insert(id, wal);
        last_read = Some(id);
    }
    let plan = match walk.finish() {
        Ok(plan) => plan,
        // A newer epoch on the chain fences this recovery, if a writer of
        // that epoch exists: else the WAL is corrupt, not a writer.
        Err(RecoveryError::Fenced { by }) => {
            let at = last_read.map_or_else(|| layout.wal_dir().to_string(), |id| layout.wal(id).to_string());
            return Err(match check_claimed(store, layout, view, by, &at).await {
                Ok(()) => Error::Fenced { writer_epoch: epoch, by },
                Err(e) => e,
            });
        }
        Err(RecoveryError::MissingWal { id, .. }) => return Err(Error::MissingWal { id, path: layout.wal(id).to_string() }),
        // A stored id that would push the chain out of range: the object
        // holding it is corrupt.
        Err(e @ RecoveryError::OutOfRange { wal_id, .. }) => {
            return Err(Error::corrupt(
                wal_id.map_or_else(|| layout.manifest_dir().to_string(), |id| layout.wal(id).to_string()),
                e.to_string(),
            ))
        }
    };
    check_epochs(store, layout, view, claimed, &wals).await?;
    Ok(ChainContents { plan, listed: ids, wals })
}

/// Lists `wal/` and walks the chain on from where `follower` stopped,
/// exactly where a recovery would replay (`protocol::Follower`): along the
/// chain, through fences, skipping fenced writers' uploads, never past the
/// first missing position (or a checkpoint's `wal_end`). Returns the data
/// WALs to apply, in chain order.
pub(crate) async fn follow_chain(
    store: &dyn ObjectStore,
    layout: &Layout,
    follower: &mut Follower,
    wal_limit: u64,
) -> Result<Vec<(WalId, DecodedWal)>> {
    let listed: Vec<_> = store.list(Some(&layout.wal_dir())).try_collect().await?;
    let sizes: BTreeMap<WalId, u64> = listed.iter().filter_map(|m| Some((layout.parse_wal(&m.location)?, m.size))).collect();
    let listed: BTreeSet<WalId> = sizes.keys().copied().collect();
    let mut applied = Vec::new();
    while let Some(id) = follower.next_to_read(&listed) {
        let path = layout.wal(id);
        // A live checkpoint keeps every WAL past its replay point: a
        // position that was listed and is gone means the checkpoint lapsed.
        let bytes = match read_wal(store, path.clone(), sizes.get(&id).copied().unwrap_or(0), wal_limit).await {
            Ok(b) => b,
            Err(Error::ObjectStore(object_store::Error::NotFound { .. })) => {
                return Err(Error::MissingWal { id, path: path.to_string() })
            }
            Err(e) => return Err(e),
        };
        let wal = decode_wal(&path, bytes)?;
        if follower.observe(id, wal.header) == ChainStep::Replay {
            applied.push((id, wal));
        }
    }
    Ok(applied)
}

/// The newest epoch whose WALs may be on the chain without a newer manifest:
/// a recovery that claimed `c` finds data of epochs below `c` only (its own
/// come later) and fences of `c` at most (its own, placed on an earlier
/// walk); a read without a claim finds epochs up to the manifest's.
fn newest_expected(view: &ManifestView, claimed: Option<Epoch>, kind: WalKind) -> Epoch {
    match (claimed, kind) {
        (Some(c), WalKind::Data) => c.saturating_sub(1),
        (Some(c), WalKind::Fence { .. }) => c,
        (None, _) => view.writer_epoch,
    }
}

/// Every WAL on the chain is of an epoch some writer claimed: a WAL's writer
/// claims its epoch in a manifest before it writes one, so an epoch above
/// every manifest's (listed after the WAL was read) names no writer, and the
/// WAL is `Corrupt`, never a writer to be fenced by.
async fn check_epochs(
    store: &dyn ObjectStore,
    layout: &Layout,
    view: &ManifestView,
    claimed: Option<Epoch>,
    wals: &BTreeMap<WalId, DecodedWal>,
) -> Result<()> {
    let unexpected = wals.iter().filter(|(_, w)| w.header.writer_epoch > newest_expected(view, claimed, w.header.kind));
    for (id, wal) in unexpected {
        let by = wal.header.writer_epoch;
        // A data WAL of the claimed epoch is never legitimate: this writer
        // has written none yet.
        let own = claimed == Some(by) && wal.header.kind == WalKind::Data;
        if own {
            return Err(epoch_never_claimed(layout.wal(*id).as_ref(), by, view.writer_epoch));
        }
        check_claimed(store, layout, view, by, layout.wal(*id).as_ref()).await?;
    }
    Ok(())
}

/// `Ok` if a manifest listed now records a writer epoch of at least `by`
/// (a newer writer claimed it); else `Corrupt` naming `at`, the WAL with
/// that epoch.
async fn check_claimed(store: &dyn ObjectStore, layout: &Layout, view: &ManifestView, by: Epoch, at: &str) -> Result<()> {
    if by <= view.writer_epoch {
        return Ok(());
    }
    let latest = latest_writer_epoch(store, layout).await?.max(view.writer_epoch);
    if by <= latest {
        Ok(())
    } else {
        Err(epoch_never_claimed(at, by, latest))
    }
}

/// [`check_claimed`] for a writer of `epoch` whose create of `path` found
/// an object of epoch `by`.
pub(super) async fn check_claimed_epoch(store: &dyn ObjectStore, layout: &Layout, epoch: Epoch, by: Epoch, path: &Path) -> Result<()> {
    let view = ManifestView { writer_epoch: epoch, ..Default::default() };
    check_claimed(store, layout, &view, by, path.as_ref()).await
}

fn epoch_never_claimed(at: &str, by: Epoch, latest: Epoch) -> Error {
    Error::corrupt(
        at,
        format!(
            "writer_epoch {by} is above every writer epoch a manifest records ({latest}): no writer of that epoch ever \
             existed, so this is not a WAL tidemark wrote; move it out of wal/ and run fsck"
        ),
    )
}

/// The writer epoch of the newest manifest listed now (a version GC deleted
/// meanwhile was not the newest: list again).
async fn latest_writer_epoch(store: &dyn ObjectStore, layout: &Layout) -> Result<Epoch> {
    for _ in 0..RACE_ATTEMPTS {
        let listed: Vec<_> = store.list(Some(&layout.manifest_dir())).try_collect().await?;
        let Some(version) = listed.iter().filter_map(|m| layout.parse_manifest(&m.location)).max() else { return Ok(0) };
        let path = layout.manifest(version);
        match read(store, &path, ObjectKind::Manifest, bounds::MAX_MANIFEST_BYTES).await {
            Ok(bytes) => return Ok(ManifestObject::decode(path.as_ref(), &bytes)?.writer_epoch),
            Err(Error::ObjectStore(object_store::Error::NotFound { .. })) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::InvalidArgument(format!("the newest manifest was deleted {RACE_ATTEMPTS} times while being read")))
}

/// A writer without a merge operator refuses WALs to replay that hold
/// merge operands, naming the setting: its first L0 flush could not fold
/// them. (A read-only open replays them; a read of such a key fails.)
pub(super) fn refuse_operands_without_operator(chain: &ChainContents, op: &crate::value::MergeOp) -> Result<()> {
    if op.is_some() {
        return Ok(());
    }
    for id in &chain.plan.replay {
        let Some(wal) = chain.wals.get(id) else { continue };
        if let Some((k, _, _)) = wal.entries.iter().find(|(_, _, v)| matches!(v, crate::value::Value::Merge(_))) {
            return Err(crate::value::no_operator(k, Some(*id)));
        }
    }
    Ok(())
}

/// The WALs the plan replays, in a fresh memtable; also the highest
/// sequence number replayed.
pub(super) fn replay(chain: &ChainContents) -> (MemState, Option<u64>) {
    let mem = MemState::default();
    let mut max: Option<u64> = None;
    for id in &chain.plan.replay {
        if let Some(wal) = chain.wals.get(id) {
            for (k, seq, v) in &wal.entries {
                mem.active.insert(k.clone(), *seq, v.clone());
                max = max.max(Some(*seq));
            }
        }
    }
    (mem, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_ahead_stays_within_its_byte_budget_but_always_reads_one() {
        assert!(may_read_ahead(0, 0, u64::MAX), "one read, whatever its size");
        assert!(may_read_ahead(1, 32 << 20, 32 << 20));
        assert!(!may_read_ahead(1, 32 << 20, (32 << 20) + 1));
        assert!(!may_read_ahead(RECOVERY_READS_MAX, 0, 0), "a count cap for empty objects");
        assert!(may_read_ahead(RECOVERY_READS_MAX - 1, 0, 0));
    }

    #[test]
    fn a_recovery_expects_older_data_and_its_own_fence_a_read_the_manifests_epochs() {
        let view = ManifestView { writer_epoch: 5, ..Default::default() };
        let fence = WalKind::Fence { next_wal_id: 9 };
        assert_eq!(newest_expected(&view, Some(5), WalKind::Data), 4);
        assert_eq!(newest_expected(&view, Some(5), fence), 5);
        assert_eq!(newest_expected(&view, None, WalKind::Data), 5);
        assert_eq!(newest_expected(&view, None, fence), 5);
    }
}
