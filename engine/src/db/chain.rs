//! Reading the WAL chain as recovery does (`ChainWalk`): list `wal/`, read
//! the chain positions ahead in id order, and hand each header to the walk.
//! A writer's open, a read-only open and fsck all read it here.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::{Error, Result};
use crate::memtable::MemState;
use crate::paths::Layout;
use crate::protocol::{ChainWalk, Epoch, ManifestView, Protocol, RecoveryError, RecoveryPlan, WalId, MAX_INFLIGHT_WAL_UPLOADS};
use crate::store::read;
use crate::wal_object::{decode_wal, DecodedWal};

/// WAL objects read ahead at once during recovery, at least and at most:
/// the count is sized from the listed objects' sizes so that about
/// `RECOVERY_READ_AHEAD_BYTES` are in flight: open time must not grow by
/// one round trip per WAL on a slow store.
const RECOVERY_READS_MIN: usize = 16;
const RECOVERY_READS_MAX: usize = 256;
const RECOVERY_READ_AHEAD_BYTES: u64 = 64 << 20;

/// How many chain reads to keep in flight for WALs of these sizes.
fn recovery_reads(sizes: impl Iterator<Item = u64>) -> usize {
    let (count, total) = sizes.fold((0u64, 0u64), |(n, t), s| (n + 1, t.saturating_add(s)));
    let mean = total.checked_div(count).unwrap_or(0).max(1);
    usize::try_from(RECOVERY_READ_AHEAD_BYTES / mean)
        .unwrap_or(usize::MAX)
        .clamp(RECOVERY_READS_MIN, RECOVERY_READS_MAX)
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

/// Lists `wal/` and walks the chain for `view` as `epoch` (`ChainWalk`).
/// `MissingWal` names the object (I1); a corrupt WAL is `Corrupt`.
pub async fn read_chain(
    store: &dyn ObjectStore,
    layout: &Layout,
    protocol: Protocol,
    view: &ManifestView,
    epoch: Epoch,
) -> Result<ChainContents> {
    read_chain_with(store, layout, protocol, view, epoch, false).await
}

/// `read_chain` for a recovery whose claim was made from a version with
/// `writer_closed` (`ChainWalk::after_clean_close`: no fence is needed).
pub async fn read_chain_with(
    store: &dyn ObjectStore,
    layout: &Layout,
    protocol: Protocol,
    view: &ManifestView,
    epoch: Epoch,
    claimed_from_closed: bool,
) -> Result<ChainContents> {
    let listed: Vec<_> = store.list(Some(&layout.wal_dir())).try_collect().await?;
    let mut ids: Vec<WalId> = listed.iter().filter_map(|m| layout.parse_wal(&m.location)).collect();
    ids.sort_unstable();
    let mut walk = ChainWalk::new(protocol, view, epoch, ids.iter().copied(), MAX_INFLIGHT_WAL_UPLOADS)
        .after_clean_close(claimed_from_closed);
    // The walk is sequential, but chain positions are nearly always
    // consecutive listed ids: read ahead in id order, a bounded number at
    // once, so open time does not grow with one round trip per WAL.
    let candidates: Vec<WalId> = ids.iter().copied().filter(|id| *id > view.replay_after_wal_id).collect();
    let in_flight = recovery_reads(
        listed.iter().filter(|m| layout.parse_wal(&m.location).is_some_and(|id| id > view.replay_after_wal_id)).map(|m| m.size),
    );
    let reads: Vec<_> = candidates
        .into_iter()
        .map(|id| {
            let path = layout.wal(id);
            async move { (id, read(store, &path).await) }
        })
        .collect();
    let mut reads = futures::stream::iter(reads).buffered(in_flight);
    let mut wals = BTreeMap::new();
    while let Some(id) = walk.next_to_read() {
        let path = layout.wal(id);
        let bytes = loop {
            match reads.next().await {
                Some((got, result)) if got == id => break result,
                Some((got, _)) if got < id => continue, // skipped by a fence's jump
                _ => break read(store, &path).await,
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
    }
    let plan = walk.finish().map_err(|e| match e {
        RecoveryError::MissingWal { id, .. } => Error::MissingWal { id, path: layout.wal(id).to_string() },
        RecoveryError::Fenced { by } => Error::Fenced { writer_epoch: epoch, by },
        // A stored id that would push the chain out of range: the object
        // holding it is corrupt.
        RecoveryError::OutOfRange { wal_id, .. } => Error::corrupt(
            wal_id.map_or_else(|| layout.manifest_dir().to_string(), |id| layout.wal(id).to_string()),
            e.to_string(),
        ),
    })?;
    Ok(ChainContents { plan, listed: ids, wals })
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
    fn recovery_reads_follow_the_listed_sizes() {
        // Small WALs: as many reads as the cap allows.
        assert_eq!(recovery_reads(std::iter::repeat_n(2_000, 1_000)), RECOVERY_READS_MAX);
        // 1 MiB WALs: 64 of them make the read-ahead budget.
        assert_eq!(recovery_reads(std::iter::repeat_n(1 << 20, 1_000)), 64);
        // Huge WALs, or absurd listed sizes: never fewer than the floor.
        assert_eq!(recovery_reads(std::iter::repeat_n(64 << 20, 10)), RECOVERY_READS_MIN);
        assert_eq!(recovery_reads([u64::MAX, u64::MAX].into_iter()), RECOVERY_READS_MIN);
        // Nothing listed, or empty objects: no division by zero.
        assert_eq!(recovery_reads(std::iter::empty()), RECOVERY_READS_MAX);
        assert_eq!(recovery_reads([0, 0].into_iter()), RECOVERY_READS_MAX);
    }
}
