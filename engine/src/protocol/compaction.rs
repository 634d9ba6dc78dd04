//! Two manifest writers, one compare-and-set: what the writer's and the
//! compactor's manifest updates must preserve, and what a lost race means.
//!
//! Writer and compactor both create version `v + 1` with `PutMode::Create`.
//! The loser reads the existing `v + 1` and asks [`on_manifest_taken`]: its
//! own object (`Ours`), a newer epoch of its own role (`Fenced`), or the other
//! role's update (`Reapply`: re-read the latest and apply its change again on
//! top of it). Each `apply_*` function changes only its own role's fields and
//! copies every other field forward, so no successful update is lost (I8).
//! Which SSTs to merge is engine policy; this module only checks that a
//! compaction's inputs are still there and keeps the tree's order.

use std::collections::BTreeSet;

use super::checkpoint::{prune_retired, set_writer_pin};
use super::{claim_epoch, next_manifest, Checkpoint, CheckpointOwner, Epoch, ManifestView, Pin, Protocol, Retired, SstSeq, WalId, WalLog};

/// Identifier of a sorted run, unique in the store's history (the compactor
/// derives it from its epoch and a counter).
pub type RunId = u64;

/// A sorted run: SSTs with disjoint key ranges, in key order (the engine's
/// concern). `S` is the SST handle: small ids in the model, real handles in
/// the engine.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SortedRun<S> {
    pub id: RunId,
    pub ssts: Vec<S>,
}

/// The SSTs a manifest version references, the fences recorded in it, and
/// what GC must keep for older versions (checkpoints, retired SSTs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tree<S> {
    /// L0 SSTs, newest first. Reads consult them before any run.
    pub l0: Vec<S>,
    /// Sorted runs, newest first.
    pub runs: Vec<SortedRun<S>>,
    /// Ids of fence WALs, ascending. GC never deletes a fence, and learns
    /// where they are from here instead of reading every WAL: every manifest
    /// whose `replay_after_wal_id >= f` lists fence `f` (I9).
    pub fences: Vec<WalId>,
    /// Who still reads an older version (or this one): GC keeps what they pin.
    pub checkpoints: Vec<Checkpoint>,
    /// SSTs compactions removed from the tree while a checkpoint pinned an
    /// older version that references them (pruned by every edit once no
    /// checkpoint pins a version below their retirement).
    pub retired: Vec<Retired<S>>,
}

impl<S> Default for Tree<S> {
    fn default() -> Self {
        Tree { l0: Vec::new(), runs: Vec::new(), fences: Vec::new(), checkpoints: Vec::new(), retired: Vec::new() }
    }
}

impl<S> Tree<S> {
    /// Every SST this tree references: L0 first, then the runs, newest first.
    pub fn ssts(&self) -> impl Iterator<Item = &S> {
        self.l0.iter().chain(self.runs.iter().flat_map(|r| r.ssts.iter()))
    }
}

/// Which manifest writer is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Writer,
    Compactor,
    /// Checkpoint holders and GC's edit: no epoch, never fenced.
    Client,
}

/// Why an update cannot be applied to the latest version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManifestConflict {
    /// A newer epoch of the caller's own role claimed the store: stop.
    Fenced { by: Epoch },
    /// A compaction input is no longer in the latest version (another
    /// compaction took it): drop this compaction; its output is garbage.
    InputsGone,
    /// The compaction's inputs would break the tree's order: L0 inputs must be
    /// the oldest L0 SSTs, and run inputs contiguous (a prefix of the runs when
    /// L0 is merged). A policy bug, never a race.
    InvalidInputs,
    /// The latest version's `compactor_epoch` is older than the caller's: the
    /// caller's claim is not in the manifest's history.
    NotClaimed,
}

/// What a `WriteManifest` (or `Close`) adds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WriterEdit<S> {
    /// New L0 SSTs, oldest first. Each must pass
    /// [`GcPolicy::may_record_sst`](super::GcPolicy::may_record_sst).
    pub flushed: Vec<S>,
    /// The last WAL whose writes are all in `flushed` (and earlier L0).
    pub flushed_through: Option<WalId>,
    /// `Close`: this is the writer's last manifest; it will never upload again.
    pub close: bool,
    /// Fences this writer's recovery saw on the chain or placed
    /// ([`RecoveryPlan::fences`](super::RecoveryPlan::fences)); recorded in
    /// every manifest the writer writes.
    pub fences: Vec<WalId>,
    /// The writer's own pin: the oldest version any of its live trees or
    /// snapshots derives from; `None`: the version being created. Protects
    /// its reads from a compaction and a GC in other processes. `close`
    /// drops the pin, unless it is given (views of the process outlive it).
    pub pin: Option<Pin>,
    /// The smallest SST sequence number the writer may still record after
    /// this edit (an SST being written, or written and not yet recorded),
    /// else its next one: `ManifestView::writer_sst_floor`.
    pub sst_floor: SstSeq,
}

impl<S> Default for WriterEdit<S> {
    fn default() -> Self {
        WriterEdit { flushed: Vec::new(), flushed_through: None, close: false, fences: Vec::new(), pin: None, sst_floor: 0 }
    }
}

/// A compaction's update: remove the inputs, put the output run where they were.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Compaction<S> {
    pub compactor_epoch: Epoch,
    /// L0 SSTs merged: the oldest ones of the version the compactor read.
    pub l0_inputs: Vec<S>,
    /// Runs merged, contiguous in the runs list.
    pub run_inputs: Vec<RunId>,
    /// The merged run; with no SSTs (every entry dropped) no run is added.
    pub output: SortedRun<S>,
    /// The smallest SST sequence number the compactor may still record after
    /// this commit, else its next one: `ManifestView::compactor_sst_floor`.
    pub sst_floor: SstSeq,
}

/// The writer's next version on top of `latest`: the WAL fields from
/// [`next_manifest`] (I1), new L0 SSTs in front, the fences added, its SST
/// floor and its own pin set (or dropped by `close`), and every other field
/// copied unchanged.
pub fn apply_writer_edit<S: Clone + Eq>(
    latest_view: &ManifestView,
    latest_tree: &Tree<S>,
    log: &WalLog,
    edit: &WriterEdit<S>,
) -> Result<(ManifestView, Tree<S>), ManifestConflict> {
    if latest_view.writer_epoch > log.writer_epoch() {
        return Err(ManifestConflict::Fenced { by: latest_view.writer_epoch });
    }
    let mut view = next_manifest(latest_view, log, edit.flushed_through);
    view.writer_closed = edit.close;
    view.writer_sst_floor = if latest_view.writer_epoch == log.writer_epoch() {
        latest_view.writer_sst_floor.max(edit.sst_floor)
    } else {
        edit.sst_floor
    };
    let mut tree = latest_tree.clone();
    let present: Vec<&S> = latest_tree.ssts().collect();
    let mut l0: Vec<S> = edit.flushed.iter().rev().filter(|s| !present.contains(s)).cloned().collect();
    l0.extend(latest_tree.l0.iter().cloned());
    tree.l0 = l0;
    tree.fences = union(&latest_tree.fences, &edit.fences);
    let epoch = log.writer_epoch();
    match (edit.close, edit.pin) {
        // A close drops the writer's pin, unless views of its process still
        // read an older state (`pin`): it stays until the next writer claims.
        (true, None) => tree.checkpoints.retain(|c| c.owner != CheckpointOwner::Writer(epoch)),
        (true, Some(pin)) => set_writer_pin(&mut tree, epoch, pin),
        (false, pin) => {
            let here = Pin { version: view.version, replay_after_wal_id: view.replay_after_wal_id };
            set_writer_pin(&mut tree, epoch, pin.unwrap_or(here));
        }
    }
    prune_retired(&mut tree);
    Ok((view, tree))
}

/// `Recover`, step 1, with the tree: the claimed version ([`claim_epoch`])
/// drops the pins of older writers (they are fenced) and pins itself, so
/// the recovery may read the claimed version's SSTs whatever a compaction
/// and a GC in other processes do meanwhile.
pub fn claim_writer<S: Clone>(latest_view: &ManifestView, latest_tree: &Tree<S>) -> (ManifestView, Tree<S>) {
    let view = claim_epoch(latest_view);
    let mut tree = latest_tree.clone();
    tree.checkpoints.retain(|c| !matches!(c.owner, CheckpointOwner::Writer(e) if e < view.writer_epoch));
    set_writer_pin(&mut tree, view.writer_epoch, Pin { version: view.version, replay_after_wal_id: view.replay_after_wal_id });
    prune_retired(&mut tree);
    (view, tree)
}

/// Whether a holder of one of `checkpoints` may still read `sst`, which a
/// compaction removed from the tree in version `retired_in`: then it stays
/// recorded as retired and GC keeps it. Only holders of older versions can.
/// A durable checkpoint reads exactly its pinned version's tree, so it needs
/// the SST only if that tree holds it (`pinned_tree`; a tree not read counts
/// as holding it). A moving holder (a follower, a writer's pin) may read any
/// tree from its version on, so it needs everything retired after it.
pub fn still_read<'t, S: Eq + 't>(
    protocol: Protocol,
    checkpoints: &[Checkpoint],
    sst: &S,
    retired_in: u64,
    pinned_tree: &impl Fn(u64) -> Option<&'t Tree<S>>,
) -> bool {
    checkpoints.iter().filter(|c| c.version < retired_in).any(|c| {
        let precise = match protocol {
            #[cfg(feature = "mutants")]
            Protocol::RetiredByPinnedTree => true,
            _ => c.reads_only_its_version(),
        };
        !precise || pinned_tree(c.version).is_none_or(|t| t.ssts().any(|s| s == sst))
    })
}

/// The compactor's next version on top of `latest`: exactly its inputs
/// removed, the output run in their place (first if it merged L0, so runs stay
/// newest first; none if the output is empty), the inputs a checkpoint's
/// holder may still read ([`still_read`]) recorded as retired in the version
/// being created (and earlier entries no holder reads any more dropped), its
/// SST floor set, and every writer field, the fences and the checkpoints
/// copied unchanged. `pinned_tree` gives the trees of pinned versions the
/// compactor has read.
pub fn apply_compaction<'t, S: Clone + Eq + 't>(
    protocol: Protocol,
    latest_view: &ManifestView,
    latest_tree: &Tree<S>,
    c: &Compaction<S>,
    pinned_tree: impl Fn(u64) -> Option<&'t Tree<S>>,
) -> Result<(ManifestView, Tree<S>), ManifestConflict> {
    if latest_view.compactor_epoch > c.compactor_epoch {
        return Err(ManifestConflict::Fenced { by: latest_view.compactor_epoch });
    }
    if latest_view.compactor_epoch < c.compactor_epoch {
        return Err(ManifestConflict::NotClaimed);
    }
    if c.l0_inputs.is_empty() && c.run_inputs.is_empty() {
        return Err(ManifestConflict::InvalidInputs);
    }
    if !c.l0_inputs.iter().all(|s| latest_tree.l0.contains(s))
        || !c.run_inputs.iter().all(|id| latest_tree.runs.iter().any(|r| r.id == *id))
    {
        return Err(ManifestConflict::InputsGone);
    }
    // L0 inputs: the oldest L0 SSTs (a suffix of the newest-first list), so no
    // remaining L0 SST is older than data moved into a run.
    let keep = latest_tree.l0.len() - c.l0_inputs.len();
    if latest_tree.l0[keep..].iter().any(|s| !c.l0_inputs.contains(s)) || has_duplicates(&c.l0_inputs) {
        return Err(ManifestConflict::InvalidInputs);
    }
    // Run inputs: contiguous positions; starting at 0 when L0 is merged.
    let positions: Vec<usize> = latest_tree
        .runs
        .iter()
        .enumerate()
        .filter(|(_, r)| c.run_inputs.contains(&r.id))
        .map(|(i, _)| i)
        .collect();
    if positions.len() != c.run_inputs.len() || positions.windows(2).any(|w| w[1] != w[0] + 1) {
        return Err(ManifestConflict::InvalidInputs);
    }
    if !c.l0_inputs.is_empty() && positions.first().is_some_and(|&p| p != 0) {
        return Err(ManifestConflict::InvalidInputs);
    }
    let at = positions.first().copied().unwrap_or(0);
    if latest_tree.runs.iter().any(|r| r.id == c.output.id) && !c.run_inputs.contains(&c.output.id) {
        return Err(ManifestConflict::InvalidInputs);
    }
    let view = ManifestView {
        version: latest_view.version.saturating_add(1),
        compactor_sst_floor: latest_view.compactor_sst_floor.max(c.sst_floor),
        ..*latest_view
    };
    let mut tree = latest_tree.clone();
    let inputs = latest_tree.l0[keep..]
        .iter()
        .chain(latest_tree.runs.iter().filter(|r| c.run_inputs.contains(&r.id)).flat_map(|r| r.ssts.iter()));
    let read = |sst: &S, retired_in: u64| still_read(protocol, &latest_tree.checkpoints, sst, retired_in, &pinned_tree);
    tree.retired.retain(|r| read(&r.sst, r.version));
    let retired = inputs.filter(|sst| read(sst, view.version));
    tree.retired.extend(retired.map(|sst| Retired { sst: sst.clone(), version: view.version }));
    tree.l0.truncate(keep);
    tree.runs.retain(|r| !c.run_inputs.contains(&r.id));
    if !c.output.ssts.is_empty() {
        tree.runs.insert(at, c.output.clone());
    }
    prune_retired(&mut tree);
    Ok((view, tree))
}

/// What an existing version `v + 1`, found by a create that reported
/// `AlreadyExists`, means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TakenOutcome {
    /// Our own object (an ambiguous create landed): the update succeeded.
    Ours,
    /// A newer epoch of the caller's role: stop, never retry.
    Fenced { by: Epoch },
    /// Another writer's update (the other role, or a recovery's claim that
    /// did not fence us): re-read the latest version and apply the change
    /// again on top of it ([`reapply_base`]).
    Reapply,
}

/// Decides a lost manifest race from the existing version read back.
/// `my_epoch` is the caller's epoch of its role: `writer_epoch` for the
/// writer, `compactor_epoch` for the compactor (ignored for a client, which
/// is never fenced).
pub fn on_manifest_taken(
    role: Role,
    my_epoch: Epoch,
    my_token: u64,
    existing_view: &ManifestView,
    existing_token: u64,
) -> TakenOutcome {
    let theirs = match role {
        Role::Writer => existing_view.writer_epoch,
        Role::Compactor => existing_view.compactor_epoch,
        // A client has no epoch: its own object, or someone else's update.
        Role::Client => my_epoch,
    };
    if existing_token == my_token && theirs == my_epoch {
        TakenOutcome::Ours
    } else if theirs > my_epoch {
        TakenOutcome::Fenced { by: theirs }
    } else {
        TakenOutcome::Reapply
    }
}

/// After [`TakenOutcome::Reapply`]: the version to apply the change on. The
/// shipped protocol uses the latest version just read; the
/// `blind-manifest-write` mutant keeps its stale view (losing the other
/// role's update, I8).
pub fn reapply_base<'a, T: ?Sized>(protocol: Protocol, stale: &'a T, latest: &'a T) -> &'a T {
    match protocol {
        #[cfg(feature = "mutants")]
        Protocol::BlindManifestWrite => {
            let _ = latest;
            stale
        }
        _ => {
            let _ = stale;
            latest
        }
    }
}

/// What a create of version `created` that returned success means, given
/// the highest version listed right after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CreatedOutcome {
    /// `created` is the latest: the update is applied.
    Applied,
    /// A higher version exists: `created` was a slot GC had emptied (a
    /// superseded version deleted by `GcManifest`), so the update is not in
    /// the manifest's history. Read `latest` and treat it as
    /// [`on_manifest_taken`] of that version.
    SlotReopened { latest: u64 },
}

/// Decides whether a successful create of `created` is really the latest.
/// Needed because GC deletes superseded versions: a caller whose view is
/// older than the deleted version can create it again (found by the model).
pub fn on_manifest_created(protocol: Protocol, created: u64, latest_listed: u64) -> CreatedOutcome {
    match protocol {
        #[cfg(feature = "mutants")]
        Protocol::TrustReopenedSlot => CreatedOutcome::Applied,
        _ if latest_listed > created => CreatedOutcome::SlotReopened { latest: latest_listed },
        _ => CreatedOutcome::Applied,
    }
}

/// What a create that lost version `taken`'s slot does when the object that
/// took it is gone by the read-back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GoneOutcome {
    /// GC deleted the object, which it does only to superseded versions:
    /// `latest` is newer. Read it and go again on it, as after
    /// [`TakenOutcome::Reapply`] (an edit already recorded there applies
    /// idempotently), whoever made the deleted version.
    GoAgain { latest: u64 },
    /// No version above `taken` is listed, so nothing superseded the one
    /// that vanished: the store contradicts the protocol. An error, never a
    /// guess about whose the lost version was.
    Inconsistent,
}

/// Decides a create whose slot was taken by a version deleted before the
/// read-back, given the highest version listed after it. The model's create
/// and read-back are one step, so it never meets this; the crash harness
/// does (GC beside a writer and a compactor).
pub fn on_manifest_gone(taken: u64, latest_listed: Option<u64>) -> GoneOutcome {
    match latest_listed {
        Some(latest) if latest > taken => GoneOutcome::GoAgain { latest },
        _ => GoneOutcome::Inconsistent,
    }
}

fn union(a: &[WalId], b: &[WalId]) -> Vec<WalId> {
    a.iter().chain(b).copied().collect::<BTreeSet<_>>().into_iter().collect()
}

fn has_duplicates<S: Eq>(items: &[S]) -> bool {
    items.iter().enumerate().any(|(i, s)| items[..i].contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(epoch: Epoch, durable: WalId) -> WalLog {
        let mut log = WalLog::new(Protocol::Shipped, epoch, 1, 4);
        for id in 1..=durable {
            log.freeze();
            log.on_wal_durable(id);
        }
        log
    }

    fn run(id: RunId, ssts: &[u32]) -> SortedRun<u32> {
        SortedRun { id, ssts: ssts.to_vec() }
    }

    fn view(writer_epoch: Epoch, compactor_epoch: Epoch) -> ManifestView {
        ManifestView { writer_epoch, compactor_epoch, ..Default::default() }
    }

    #[test]
    fn writer_edit_prepends_l0_and_keeps_the_compactors_fields() {
        let latest = ManifestView { compactor_epoch: 7, ..view(2, 7) };
        let tree = Tree { l0: vec![3], runs: vec![run(9, &[1, 2])], fences: vec![4], ..Tree::default() };
        let latest = ManifestView { version: 3, compactor_sst_floor: 9, ..latest };
        let edit = WriterEdit { flushed: vec![5, 6], flushed_through: Some(2), fences: vec![4, 10], sst_floor: 7, ..WriterEdit::default() };
        let (v, t) = apply_writer_edit(&latest, &tree, &log(2, 2), &edit).unwrap();
        assert_eq!((v.version, v.writer_epoch, v.wal_id_last_seen, v.replay_after_wal_id, v.compactor_epoch), (4, 2, 2, 2, 7));
        assert_eq!((v.writer_sst_floor, v.compactor_sst_floor), (7, 9));
        assert!(!v.writer_closed);
        assert_eq!(t.l0, vec![6, 5, 3], "newest first");
        assert_eq!(t.runs, tree.runs, "runs untouched");
        assert_eq!(t.fences, vec![4, 10]);
        assert_eq!(t.checkpoints.len(), 1, "the writer's own pin");
        assert_eq!((t.checkpoints[0].version, t.checkpoints[0].replay_after_wal_id, t.checkpoints[0].owner), (4, 2, CheckpointOwner::Writer(2)));
        let closed = apply_writer_edit(&v, &t, &log(2, 2), &WriterEdit { close: true, ..WriterEdit::default() }).unwrap();
        assert!(closed.0.writer_closed);
        assert_eq!(closed.1.l0, vec![6, 5, 3]);
        assert_eq!(closed.0.writer_sst_floor, 7, "a floor never moves back within an epoch");
        assert!(closed.1.checkpoints.is_empty(), "a closed writer reads nothing more");
    }

    #[test]
    fn writer_pins_the_oldest_version_it_still_reads() {
        let tree = Tree::<u32> { retired: vec![Retired { sst: 1, version: 3 }], ..Tree::default() };
        let pin = Pin { version: 2, replay_after_wal_id: 0 };
        let (_, t) = apply_writer_edit(&ManifestView { version: 5, ..view(2, 0) }, &tree, &log(2, 0), &WriterEdit { pin: Some(pin), ..WriterEdit::default() }).unwrap();
        assert_eq!(t.checkpoints[0].version, 2);
        assert_eq!(t.retired.len(), 1, "version 2 may reference what version 3 retired");
        let (_, t) = apply_writer_edit(&ManifestView { version: 5, ..view(2, 0) }, &t, &log(2, 0), &WriterEdit::default()).unwrap();
        assert_eq!(t.checkpoints[0].version, 6);
        assert!(t.retired.is_empty());
    }

    #[test]
    fn a_claim_drops_older_writers_pins_and_pins_itself() {
        let mut tree = Tree::<u32>::default();
        set_writer_pin(&mut tree, 1, Pin { version: 2, replay_after_wal_id: 0 });
        tree.checkpoints.push(Checkpoint { id: 7, version: 2, replay_after_wal_id: 0, wal_end: Some(3), expires_at: None, owner: CheckpointOwner::Client });
        let latest = ManifestView { version: 4, replay_after_wal_id: 2, writer_sst_floor: 5, ..view(1, 0) };
        let (v, t) = claim_writer(&latest, &tree);
        assert_eq!((v.version, v.writer_epoch, v.writer_sst_floor), (5, 2, 0));
        let pins: Vec<(u64, CheckpointOwner)> = t.checkpoints.iter().map(|c| (c.version, c.owner)).collect();
        assert_eq!(pins, vec![(2, CheckpointOwner::Client), (5, CheckpointOwner::Writer(2))]);
    }

    #[test]
    fn writer_edit_is_fenced_by_a_newer_writer_only() {
        let tree = Tree::<u32>::default();
        let edit = WriterEdit::default();
        assert_eq!(apply_writer_edit(&view(3, 0), &tree, &log(2, 0), &edit), Err(ManifestConflict::Fenced { by: 3 }));
        assert!(apply_writer_edit(&view(2, 5), &tree, &log(2, 0), &edit).is_ok(), "a newer compactor is not our fence");
    }

    #[test]
    fn writer_edit_never_records_an_sst_twice() {
        let tree = Tree { l0: vec![], runs: vec![run(1, &[5])], fences: vec![], ..Tree::default() };
        let edit = WriterEdit { flushed: vec![5, 6], ..WriterEdit::default() };
        let (_, t) = apply_writer_edit(&view(1, 1), &tree, &log(1, 0), &edit).unwrap();
        assert_eq!(t.l0, vec![6]);
    }

    #[test]
    fn a_durable_checkpoint_keeps_retired_only_what_its_version_holds() {
        let durable = Checkpoint { id: 1, version: 3, replay_after_wal_id: 0, wal_end: Some(4), expires_at: None, owner: CheckpointOwner::Client };
        let v3 = Tree { l0: vec![11], ..Tree::default() };
        let latest = ManifestView { version: 5, ..view(4, 2) };
        let tree = |pin: Checkpoint| Tree { l0: vec![12, 11], checkpoints: vec![pin], retired: vec![Retired { sst: 9, version: 4 }], ..Tree::default() };
        let c = Compaction { compactor_epoch: 2, l0_inputs: vec![12, 11], run_inputs: vec![], output: run(3, &[20]), sst_floor: 0 };
        let retired = |p: Protocol, pin: Checkpoint, known: bool| {
            let (_, t) = apply_compaction(p, &latest, &tree(pin), &c, |v| (known && v == 3).then_some(&v3)).unwrap();
            t.retired.iter().map(|r| (r.sst, r.version)).collect::<Vec<_>>()
        };
        assert_eq!(retired(Protocol::Shipped, durable, true), vec![(11, 6)], "9 and 12 came after version 3");
        assert_eq!(retired(Protocol::Shipped, durable, false), vec![(9, 4), (12, 6), (11, 6)], "a tree not read holds everything");
        let follower = Checkpoint { wal_end: None, ..durable };
        assert_eq!(retired(Protocol::Shipped, follower, true), vec![(9, 4), (12, 6), (11, 6)], "a moving pin reads later trees");
        let writer = Checkpoint { owner: CheckpointOwner::Writer(4), ..follower };
        assert_eq!(retired(Protocol::Shipped, writer, true).len(), 3);
        let moved = Checkpoint { version: 4, ..follower };
        assert_eq!(retired(Protocol::Shipped, moved, true), vec![(12, 6), (11, 6)], "a pin at version 4 reads nothing retired in it");
        #[cfg(feature = "mutants")]
        assert_eq!(retired(Protocol::RetiredByPinnedTree, follower, true), vec![(11, 6)]);
    }

    #[test]
    fn compaction_replaces_exactly_its_inputs() {
        let latest = ManifestView { version: 5, wal_id_last_seen: 8, replay_after_wal_id: 6, writer_closed: true, ..view(4, 2) };
        let tree = Tree { l0: vec![13, 12, 11], runs: vec![run(1, &[5]), run(2, &[4])], fences: vec![3], ..Tree::default() };
        // Merge the two oldest L0 SSTs and the newest run: the output goes first.
        let c = Compaction { compactor_epoch: 2, l0_inputs: vec![11, 12], run_inputs: vec![1], output: run(3, &[20, 21]), sst_floor: 4 };
        let pinned = Checkpoint { id: 1, version: 3, replay_after_wal_id: 0, wal_end: None, expires_at: None, owner: CheckpointOwner::Client };
        let tree = Tree { checkpoints: vec![pinned], ..tree };
        let (v, t) = apply_compaction(Protocol::Shipped, &latest, &tree, &c, |_| None).unwrap();
        assert_eq!(v, ManifestView { version: latest.version + 1, compactor_sst_floor: 4, ..latest }, "every writer field copied");
        assert_eq!(t.l0, vec![13]);
        assert_eq!(t.runs, vec![run(3, &[20, 21]), run(2, &[4])]);
        assert_eq!(t.fences, vec![3]);
        assert_eq!(t.checkpoints, vec![pinned]);
        let retired: Vec<(u32, u64)> = t.retired.iter().map(|r| (r.sst, r.version)).collect();
        assert_eq!(retired, vec![(12, 6), (11, 6), (5, 6)], "the inputs, retired in the version being created");
        // Merge two runs only: the output takes their place.
        let tree = Tree { l0: vec![13], runs: vec![run(1, &[5]), run(2, &[4]), run(3, &[2])], fences: vec![], ..Tree::default() };
        let c = Compaction { compactor_epoch: 2, l0_inputs: vec![], run_inputs: vec![2, 3], output: run(4, &[7]), sst_floor: 0 };
        let (_, t) = apply_compaction(Protocol::Shipped, &latest, &tree, &c, |_| None).unwrap();
        assert_eq!(t.runs, vec![run(1, &[5]), run(4, &[7])]);
        assert_eq!(t.l0, vec![13]);
        assert!(t.retired.is_empty(), "no checkpoint: nothing older is read");
        // Every entry dropped: the inputs go, no empty run comes.
        let c = Compaction { compactor_epoch: 2, l0_inputs: vec![], run_inputs: vec![2, 3], output: run(4, &[]), sst_floor: 0 };
        let (_, t) = apply_compaction(Protocol::Shipped, &latest, &tree, &c, |_| None).unwrap();
        assert_eq!(t.runs, vec![run(1, &[5])]);
    }

    #[test]
    fn compaction_conflicts() {
        let tree = Tree { l0: vec![12, 11], runs: vec![run(1, &[5]), run(2, &[4])], fences: vec![], ..Tree::default() };
        let c = |l0: Vec<u32>, runs: Vec<RunId>| Compaction { compactor_epoch: 2, l0_inputs: l0, run_inputs: runs, output: run(9, &[1]), sst_floor: 0 };
        assert_eq!(apply_compaction(Protocol::Shipped, &view(1, 3), &tree, &c(vec![11], vec![]), |_| None), Err(ManifestConflict::Fenced { by: 3 }));
        assert_eq!(apply_compaction(Protocol::Shipped, &view(1, 1), &tree, &c(vec![11], vec![]), |_| None), Err(ManifestConflict::NotClaimed));
        assert_eq!(apply_compaction(Protocol::Shipped, &view(1, 2), &tree, &c(vec![10], vec![]), |_| None), Err(ManifestConflict::InputsGone));
        assert_eq!(apply_compaction(Protocol::Shipped, &view(1, 2), &tree, &c(vec![], vec![7]), |_| None), Err(ManifestConflict::InputsGone));
        assert_eq!(apply_compaction(Protocol::Shipped, &view(1, 2), &tree, &c(vec![12], vec![]), |_| None), Err(ManifestConflict::InvalidInputs), "not the oldest");
        assert_eq!(apply_compaction(Protocol::Shipped, &view(1, 2), &tree, &c(vec![11], vec![2]), |_| None), Err(ManifestConflict::InvalidInputs), "skips run 1");
        assert_eq!(apply_compaction(Protocol::Shipped, &view(1, 2), &tree, &c(vec![], vec![]), |_| None), Err(ManifestConflict::InvalidInputs));
        assert!(apply_compaction(Protocol::Shipped, &view(1, 2), &tree, &c(vec![11, 12], vec![1, 2]), |_| None).is_ok());
    }

    #[test]
    fn a_lost_race_is_ours_fenced_or_reapply() {
        let existing = view(3, 5);
        assert_eq!(on_manifest_gone(7, Some(9)), GoneOutcome::GoAgain { latest: 9 });
        assert_eq!(on_manifest_gone(7, Some(7)), GoneOutcome::Inconsistent, "the vanished version would be the latest");
        assert_eq!(on_manifest_gone(7, Some(3)), GoneOutcome::Inconsistent);
        assert_eq!(on_manifest_gone(7, None), GoneOutcome::Inconsistent);
        assert_eq!(on_manifest_taken(Role::Writer, 3, 42, &existing, 42), TakenOutcome::Ours);
        assert_eq!(on_manifest_taken(Role::Writer, 3, 42, &existing, 7), TakenOutcome::Reapply, "the compactor wrote it");
        assert_eq!(on_manifest_taken(Role::Writer, 2, 42, &existing, 7), TakenOutcome::Fenced { by: 3 });
        assert_eq!(on_manifest_taken(Role::Compactor, 5, 42, &existing, 42), TakenOutcome::Ours);
        assert_eq!(on_manifest_taken(Role::Compactor, 5, 42, &existing, 7), TakenOutcome::Reapply, "the writer wrote it");
        assert_eq!(on_manifest_taken(Role::Compactor, 4, 42, &existing, 7), TakenOutcome::Fenced { by: 5 });
        assert_eq!(on_manifest_taken(Role::Compactor, 4, 42, &existing, 42), TakenOutcome::Fenced { by: 5 }, "a token match of another epoch is not ours");
        assert_eq!(on_manifest_taken(Role::Client, 0, 42, &existing, 42), TakenOutcome::Ours);
        assert_eq!(on_manifest_taken(Role::Client, 0, 42, &existing, 7), TakenOutcome::Reapply, "a client is never fenced");
    }

    #[test]
    fn reapply_uses_the_latest_version() {
        assert_eq!(*reapply_base(Protocol::Shipped, &1, &2), 2);
        assert_eq!(on_manifest_created(Protocol::Shipped, 4, 4), CreatedOutcome::Applied);
        assert_eq!(on_manifest_created(Protocol::Shipped, 4, 6), CreatedOutcome::SlotReopened { latest: 6 });
    }

    #[cfg(feature = "mutants")]
    #[test]
    fn mutants_reapply_blind_and_trust_reopened_slots() {
        assert_eq!(*reapply_base(Protocol::BlindManifestWrite, &1, &2), 1);
        assert_eq!(on_manifest_created(Protocol::TrustReopenedSlot, 4, 6), CreatedOutcome::Applied);
    }
}
