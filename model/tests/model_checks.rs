//! The model's checks: the shipped protocol holds, every mutant is caught by
//! the property it breaks, and counterexamples are shortest.

use stateright::Model;
use tidemark::internals::protocol::{ActionName, Protocol};
use tidemark_model::model::LifecycleBounds;
use tidemark_model::properties::{self, I1, I10, I11, I12, I13, I14, I15, I16, I2, I3, I4, I5, I6, I7, I8, I9};
use tidemark_model::report;
use tidemark_model::shortest::shortest_path;
use tidemark_model::{Action, Bounds, State, TidemarkModel};

fn violation_of<'a>(model: &'a TidemarkModel, name: &'a str) -> impl Fn(&State) -> bool + 'a {
    move |s| properties::explain(model, name, s).is_some()
}

fn shortest_in(model: &TidemarkModel, property: &str) -> Option<Vec<Action>> {
    shortest_path(model, violation_of(model, property), 5_000_000).map(|t| t.steps.into_iter().map(|(a, _)| a).collect())
}

fn shortest(protocol: Protocol, bounds: Bounds, property: &str) -> Option<Vec<Action>> {
    shortest_in(&TidemarkModel::new(protocol, bounds), property)
}

/// The model `check-model --all` hunts `protocol` in.
fn hunted(protocol: Protocol) -> TidemarkModel {
    report::mutant_model(protocol, Bounds::DEFAULT, LifecycleBounds::NONE)
}

/// The model `protocol` is hunted in, for `other` (the shipped protocol, to
/// show it holds where the mutant fails).
fn hunted_as(protocol: Protocol, other: Protocol) -> TidemarkModel {
    TidemarkModel { protocol: other, ..hunted(protocol) }
}

fn names(path: &[Action]) -> Vec<&'static str> {
    path.iter().map(|a| a.name().as_str()).collect()
}

/// The default bounds without the second compactor claim and the close:
/// small enough for breadth-first searches that must find nothing.
const SMALL: Bounds = Bounds { compactors: 1, closes: 0, ..Bounds::DEFAULT };

/// The WAL protocol's bounds with two writes: small enough for exhaustive
/// searches that must find nothing.
const WAL2: Bounds = Bounds { writes: 2, ..Bounds::WAL_ONLY };

#[test]
fn shipped_protocol_holds_at_default_bounds() {
    let mut model = TidemarkModel::new(Protocol::Shipped, Bounds::DEFAULT);
    model.eager_ack = true;
    let run = report::check_with(model, 2, report::Search::Dfs, |_, _, _| {});
    for p in &run.properties {
        assert!(p.holds, "{} {} does not hold: {:?}", p.kind, p.name, p.violation);
    }
    assert!(run.unique_states > 100_000, "the exploration is not trivially small: {}", run.unique_states);
    let found: Vec<&str> = run.properties.iter().filter(|p| p.kind == "sometimes").map(|p| p.name.as_str()).collect();
    for example in [
        "compaction committed",
        "writer re-applied after losing to the compactor",
        "zombie compactor rejected",
        "GC deleted a WAL",
        "GC deleted an SST",
        "GC deleted a manifest",
        "GC deleted after other steps changed the store",
        "GC kept a retired SST a checkpoint pins",
        "GC deleted a retired SST",
        "follower applied a WAL past its version",
        "follower adopted a newer version",
        "clean close, then recovery without a fence",
        "zombie upload rejected",
    ] {
        assert!(found.contains(&example), "{example} is not checked at the default bounds: {found:?}");
    }
    let always = run.properties.iter().filter(|p| p.kind == "always").count();
    assert_eq!(always, 16, "I1..I16");
}

/// Followers' checkpoints refresh and expire, a durable checkpoint is
/// created, refreshed and expired, and GC runs over all of it: the
/// lifecycle at one write, by breadth-first search for any violation.
#[test]
fn shipped_protocol_holds_through_refreshes_and_expiry() {
    let bounds = Bounds { compactors: 1, closes: 0, zombies: 0, ticks: 2, gcs: 1, ..Bounds::DEFAULT };
    let model = TidemarkModel::with_lifecycle(Protocol::Shipped, bounds, LifecycleBounds { checkpoints: 1, ttl: 2 });
    let any = |s: &State| properties::ALWAYS.iter().any(|p| properties::explain(&model, p, s).is_some());
    assert!(shortest_path(&model, any, 5_000_000).is_none());
    let mut dfs = model.clone();
    dfs.eager_ack = true;
    let run = report::check_with(dfs, 2, report::Search::Dfs, |_, _, _| {});
    let found: Vec<&str> = run.properties.iter().filter(|p| p.kind == "sometimes" && p.holds).map(|p| p.name.as_str()).collect();
    for example in ["follower refreshed its checkpoint", "durable checkpoint refreshed", "expired checkpoint dropped", "durable checkpoint outlived a newer version"] {
        assert!(found.contains(&example), "{example}: {found:?}");
    }
}

#[test]
fn at_freeze_breaks_i1_and_i2() {
    assert!(shortest(Protocol::AtFreeze, Bounds::WAL_ONLY, I1).is_some());
    assert!(shortest(Protocol::AtFreeze, Bounds::WAL_ONLY, I2).is_some());
    for p in [I3, I4, I5] {
        assert!(shortest(Protocol::AtFreeze, WAL2, p).is_none(), "{p}");
    }
}

#[test]
fn max_completed_loses_acknowledged_writes() {
    let path = shortest(Protocol::MaxCompleted, WAL2, I3).expect("I3 violated");
    assert!(path.iter().any(|a| matches!(a, Action::Ack { .. })), "{path:?}");
    assert!(shortest(Protocol::MaxCompleted, WAL2, I1).is_some());
}

#[test]
fn replay_across_gap_breaks_prefix_consistency() {
    let path = shortest(Protocol::ReplayAcrossGap, WAL2, I4).expect("I4 violated");
    assert!(matches!(path.last(), Some(Action::Fence { .. })), "{path:?}");
}

#[test]
fn no_fence_lets_a_zombie_ack_what_the_new_epoch_never_sees() {
    let path = shortest(Protocol::NoFence, WAL2, I5).expect("I5 violated");
    assert!(matches!(path.last(), Some(Action::Ack { epoch: 1 })), "{path:?}");
    // Without zombies the fence is not what protects the log.
    assert!(shortest(Protocol::NoFence, Bounds { zombies: 0, ..WAL2 }, I5).is_none());
}

/// One breadth-first search over small default-like bounds for a state
/// violating any of I1..I16, independent of Stateright's checker.
#[test]
fn shipped_protocol_has_no_counterexample_by_direct_search() {
    let model = TidemarkModel::new(Protocol::Shipped, SMALL);
    let any = |s: &State| properties::ALWAYS.iter().any(|p| properties::explain(&model, p, s).is_some());
    assert!(shortest_path(&model, any, 5_000_000).is_none());
}

#[test]
fn gc_before_manifest_deletes_wals_recovery_and_followers_still_need() {
    let path = shortest_in(&hunted(Protocol::GcBeforeManifest), I7).expect("I7 violated");
    let names = names(&path);
    assert!(names.contains(&"FlushL0") && !names.contains(&"WriteManifest"), "deleted before the manifest: {names:?}");
    assert_eq!(names[names.len() - 2..], ["GcRun", "GcWal"]);
    // The consequence for recovery too: after a crash, an acknowledged write is lost or recovery fails.
    let crash = Bounds { crashes: 1, zombies: 0, compactors: 0, closes: 0, readers: 0, ..Bounds::DEFAULT };
    assert!(shortest(Protocol::GcBeforeManifest, crash, I3).is_some() || shortest(Protocol::GcBeforeManifest, crash, I2).is_some());
    assert!(shortest(Protocol::Shipped, crash, I3).is_none());
}

#[test]
fn blind_manifest_write_loses_the_other_roles_update() {
    let path = shortest(Protocol::BlindManifestWrite, Bounds::DEFAULT, I8).expect("I8 violated");
    assert!(path.iter().any(|a| matches!(a, Action::ClaimCompactor)), "{path:?}");
    assert!(matches!(path.last(), Some(Action::WriteManifest { .. } | Action::CompactCommit { .. })), "{path:?}");
}

#[test]
fn gc_deleting_a_fence_lets_a_zombie_ack_what_its_successor_never_sees() {
    let path = shortest_in(&hunted(Protocol::GcDeletesFences), I5).expect("I5 violated");
    let gc = path.iter().position(|a| matches!(a, Action::GcWal)).expect("GC deletes the fence");
    assert!(path[gc..].iter().any(|a| matches!(a, Action::WalDurable { epoch: 1, .. })), "{path:?}");
    assert!(matches!(path.last(), Some(Action::Ack { epoch: 1 })), "{path:?}");
    assert!(shortest_in(&hunted_as(Protocol::GcDeletesFences, Protocol::Shipped), I5).is_none());
}

/// gc-ignores-retired: a compaction retires the L0 SST the writer's tree
/// still reads (its pin is older), and GC takes it (I7).
#[test]
fn gc_ignoring_retired_ssts_deletes_what_a_pinned_version_reads() {
    let path = shortest_in(&hunted(Protocol::GcIgnoresRetired), I7).expect("I7 violated");
    let names = names(&path);
    let commit = names.iter().position(|n| *n == "CompactCommit").expect("a compaction retires the SST");
    assert!(names[commit..].ends_with(&["GcRun", "GcSst"]), "{names:?}");
    // Without a compaction nothing is retired: the mutant is the shipped protocol.
    let bounds = Bounds { compactors: 0, ..SMALL };
    assert!(shortest(Protocol::GcIgnoresRetired, bounds, I7).is_none());
}

/// gc-ignores-checkpoints: caught like gc-ignores-retired, and also without
/// any compaction, where a follower's pin holds the WALs it applied.
#[test]
fn gc_ignoring_checkpoints_deletes_what_a_follower_reads() {
    assert!(shortest_in(&hunted(Protocol::GcIgnoresCheckpoints), I7).is_some());
    let bounds = Bounds { compactors: 0, zombies: 0, closes: 0, ..Bounds::DEFAULT };
    let path = shortest(Protocol::GcIgnoresCheckpoints, bounds, I7).expect("I7 violated by a follower's WALs");
    let names = names(&path);
    let open = names.iter().position(|n| *n == "FollowerOpen").expect("a follower");
    assert!(names[open..].ends_with(&["GcRun", "GcWal"]), "{names:?}");
    assert!(shortest(Protocol::Shipped, bounds, I7).is_none());
}

/// gc-ignores-floors: GC takes an L0 SST its writer is about to record: I7
/// at once, and I6 once the manifest records it.
#[test]
fn gc_ignoring_floors_deletes_an_output_about_to_be_recorded() {
    let path = shortest_in(&hunted(Protocol::GcIgnoresFloors), I7).expect("I7 violated");
    assert_eq!(names(&path), ["Put", "FreezeWal", "FreezeMemtable", "FlushL0", "GcRun", "GcSst"]);
    // I6: GC decides before the manifest records the SST and deletes after,
    // or deletes first and the manifest records a missing SST.
    let path = shortest_in(&hunted(Protocol::GcIgnoresFloors), I6).expect("I6 violated");
    let names = names(&path);
    let run = names.iter().position(|n| *n == "GcRun").expect("a GC pass");
    assert!(names[run..].contains(&"WriteManifest") && names[run..].contains(&"GcSst"), "{names:?}");
    assert!(matches!(path.last().map(Action::name), Some(ActionName::WriteManifest | ActionName::GcSst)), "{names:?}");
}

/// Whether any state reachable in `model` breaks I13, I14 or I15 (one
/// exhaustive breadth-first search for all three).
fn follower_invariant_breaks(model: &TidemarkModel) -> bool {
    let any = |s: &State| [I13, I14, I15].iter().any(|p| properties::explain(model, p, s).is_some());
    shortest_path(model, any, 5_000_000).is_some()
}

/// follower-applies-past-gap: WAL 2 landed, WAL 1 did not; the follower
/// shows WAL 2's write, which no recovery would replay (I13), in 7 steps.
#[test]
fn follower_applying_past_a_gap_shows_what_recovery_drops() {
    let model = hunted(Protocol::FollowerAppliesPastGap);
    let path = shortest_in(&model, I13).expect("I13 violated");
    assert_eq!(names(&path), ["Put", "FreezeWal", "Put", "FreezeWal", "UploadWal", "WalDurable", "FollowerOpen"]);
    assert!(matches!(path[4], Action::UploadWal { wal_id: 2, .. }), "{path:?}");
}

/// follower-ignores-fences: a zombie's WAL lands inside its successor's
/// fence jump; the follower reads the fence as an empty WAL, goes on into
/// the jump, and shows the fenced write (I13, I15), in 9 steps.
#[test]
fn follower_ignoring_fences_shows_a_fenced_write() {
    let model = hunted(Protocol::FollowerIgnoresFences);
    let path = shortest_in(&model, I15).expect("I15 violated");
    let names = names(&path);
    let fence = names.iter().position(|n| *n == "Fence").expect("a fence");
    assert!(names[..fence].contains(&"Recover") && names.last() == Some(&"FollowerOpen"), "{names:?}");
    assert!(shortest_in(&model, I13).is_some());
    // The three follower mutants are hunted at the same bounds, where the
    // shipped protocol breaks none of I13-I15.
    for m in [Protocol::FollowerAppliesPastGap, Protocol::FollowerDropsApplied] {
        assert_eq!(hunted(m).bounds, model.bounds, "{m}");
    }
    assert!(!follower_invariant_breaks(&hunted_as(Protocol::FollowerIgnoresFences, Protocol::Shipped)));
}

/// follower-drops-applied: a follower applied WAL 1 past its version; a
/// recovery's claim creates a newer version that does not hold WAL 1's
/// write in its SSTs; adopting it, the follower forgets WAL 1 and stops
/// showing the write (I14), in 7 steps.
#[test]
fn follower_dropping_applied_wals_goes_backwards() {
    let model = hunted(Protocol::FollowerDropsApplied);
    let path = shortest_in(&model, I14).expect("I14 violated");
    let names = names(&path);
    let open = names.iter().position(|n| *n == "FollowerOpen").expect("a follower");
    assert!(names[..open].contains(&"WalDurable") && names.last() == Some(&"FollowerPoll"), "{names:?}");
}

/// checkpoint-expiry-off-by-one: GC judges a durable checkpoint expired at
/// its expiry instant and plans to delete its version; the holder refreshes
/// it at that same instant; GC deletes: a live checkpoint has lost its
/// version (I7) and no longer opens as created (I16), in 6 steps.
#[test]
fn checkpoint_refreshed_at_its_expiry_instant_loses_its_version() {
    let model = hunted(Protocol::CheckpointExpiryOffByOne);
    let path = shortest_in(&model, I7).expect("I7 violated");
    let names = names(&path);
    assert_eq!(names.first(), Some(&"CheckpointCreate"));
    let (run, refresh) = (names.iter().position(|n| *n == "GcRun"), names.iter().position(|n| *n == "CheckpointRefresh"));
    assert!(names.contains(&"Tick") && run < refresh && names.last() == Some(&"GcManifest"), "{names:?}");
    assert!(shortest_in(&model, I16).is_some());
    // The shipped protocol refuses that refresh: nothing to find, at the
    // hunt's bounds without the zombies (an exhaustive search).
    let small = Bounds { zombies: 0, compactors: 1, ..model.bounds };
    let shipped = TidemarkModel::with_lifecycle(Protocol::Shipped, small, model.lifecycle);
    assert!(shortest_in(&TidemarkModel::with_lifecycle(Protocol::CheckpointExpiryOffByOne, small, model.lifecycle), I7).is_some());
    let any = |s: &State| [I7, I8, I16].iter().any(|p| properties::explain(&shipped, p, s).is_some());
    assert!(shortest_path(&shipped, any, 5_000_000).is_none());
}

#[test]
fn a_create_in_a_slot_gc_emptied_is_not_trusted() {
    let path = shortest_in(&hunted(Protocol::TrustReopenedSlot), I8).expect("I8 violated");
    let gc = path.iter().position(|a| matches!(a, Action::GcManifest)).expect("GC emptied the slot");
    assert!(matches!(path.last(), Some(Action::WriteManifest { .. } | Action::CompactCommit { .. })), "{path:?}");
    assert!(gc < path.len() - 1);
}

/// The shipped protocol found a real gap here first: a recovery that
/// replayed the SSTs of the version it claimed, after a compaction and GC had
/// removed them (I2). Recovery re-reads the latest version before replaying.
#[test]
fn recovery_after_compaction_and_gc_sees_every_write() {
    let bounds = Bounds { readers: 0, ..SMALL };
    let model = TidemarkModel::new(Protocol::Shipped, bounds);
    let any = |s: &State| [I2, I3, I6, I9].iter().any(|p| properties::explain(&model, p, s).is_some());
    assert!(shortest_path(&model, any, 5_000_000).is_none());
}

/// The SlateDB bug, step by step: FreezeWal, WriteManifest and Crash come
/// before the Recover that fails.
#[test]
fn slatedb_bug_story_is_the_shortest_i2_counterexample() {
    let bounds = Bounds { zombies: 0, ..Bounds::WAL_ONLY };
    let path = shortest(Protocol::AtFreeze, bounds, I2).expect("I2 violated under at-freeze");
    assert!(path.len() <= 10, "{} steps", path.len());
    let names: Vec<&str> = path.iter().map(|a| a.name().as_str()).collect();
    assert_eq!(names, ["Put", "FreezeWal", "WriteManifest", "Crash", "Recover"]);
    let model = TidemarkModel::new(Protocol::AtFreeze, bounds);
    let trace = shortest_path(&model, violation_of(&model, I2), 1_000_000).expect("found");
    let steps = report::describe(&model, &trace);
    assert!(steps[2].detail.contains("wal_id_last_seen=1") && steps[2].detail.contains("durable_wal_id=0"), "{steps:?}");
    assert!(steps[4].detail.contains("MissingWal"), "{steps:?}");
}

/// Every path of `depth` steps from the initial state (exhaustive, no dedup).
fn any_path_violates(model: &TidemarkModel, state: &State, depth: usize, property: &str) -> bool {
    if properties::explain(model, property, state).is_some() {
        return true;
    }
    if depth == 0 {
        return false;
    }
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    actions
        .into_iter()
        .filter_map(|a| model.next_state(state, a))
        .any(|next| any_path_violates(model, &next, depth - 1, property))
}

/// Minimality, checked independently of the breadth-first search: the
/// at-freeze I1 counterexample has 3 steps, and no path of 2 reaches I1.
#[test]
fn counterexamples_are_shortest() {
    let model = TidemarkModel::new(Protocol::AtFreeze, WAL2);
    let init = model.initial_state();
    let path = shortest(Protocol::AtFreeze, WAL2, I1).expect("violated");
    assert_eq!(path.len(), 3, "{path:?}");
    assert!(!any_path_violates(&model, &init, 2, I1));
    assert!(any_path_violates(&model, &init, 3, I1));
    // And for a longer one: replay-across-gap's I4 path.
    let model = TidemarkModel::new(Protocol::ReplayAcrossGap, WAL2);
    let path = shortest(Protocol::ReplayAcrossGap, WAL2, I4).expect("violated");
    assert!(!any_path_violates(&model, &init, path.len() - 1, I4));
}

/// exists-is-ours: an `AlreadyExists` taken as success without reading back.
/// A zombie's upload that finds its successor's fence acknowledges writes
/// the successor never replays (I5).
#[test]
fn exists_is_ours_acks_on_a_fence() {
    let path = shortest_in(&hunted(Protocol::ExistsIsOurs), I5).expect("I5 violated");
    assert_eq!(path.len(), 7, "{path:?}");
    let fence = path.iter().position(|a| matches!(a, Action::Fence { epoch: 2 })).expect("a fence");
    let landed = path.iter().position(|a| matches!(a, Action::WalDurable { epoch: 1, .. })).expect("the zombie's upload");
    assert!(fence < landed, "the zombie's create finds the fence: {path:?}");
    assert!(matches!(path.last(), Some(Action::Ack { epoch: 1 })), "{path:?}");
    assert!(shortest(Protocol::Shipped, SMALL, I5).is_none());
}

/// exists-is-fenced: an `AlreadyExists` on the writer's own object (an
/// ambiguous create) taken as fenced. The writer reports the write as not
/// written, and the next recovery replays it (I10) — 6 steps.
#[test]
fn exists_is_fenced_reports_a_durable_write_as_rejected() {
    let bounds = hunted(Protocol::ExistsIsFenced).bounds;
    assert_eq!(bounds.ambiguous, 1);
    let path = shortest(Protocol::ExistsIsFenced, bounds, I10).expect("I10 violated");
    let names: Vec<&str> = path.iter().map(|a| a.name().as_str()).collect();
    assert_eq!(names, ["Put", "FreezeWal", "UploadWal", "WalDurable", "Recover", "Fence"], "{path:?}");
    assert!(matches!(path[3], Action::WalDurable { epoch: 1, ambiguous: true, .. }), "{path:?}");
    // The shipped protocol reads its own object back: nothing to find.
    for p in [I10, I11, I12] {
        assert!(shortest(Protocol::Shipped, bounds, p).is_none(), "{p}");
    }
    // Without an ambiguous create or a hedge, the two are indistinguishable.
    assert!(shortest(Protocol::ExistsIsFenced, Bounds { ambiguous: 0, ..bounds }, I10).is_none());
}

/// The liveness side: with no recovery at all, exists-is-fenced leaves a
/// writer stopped although nobody fenced it; every path ends with its write
/// unsettled (I12), in a terminal state.
#[test]
fn exists_is_fenced_fails_the_progress_property() {
    let bounds = Bounds { zombies: 0, crashes: 0, ..hunted(Protocol::ExistsIsFenced).bounds };
    let model = TidemarkModel::new(Protocol::ExistsIsFenced, bounds);
    let trace = shortest_path(&model, violation_of(&model, I12), 5_000_000).expect("I12 violated");
    let last = trace.steps.last().map(|(_, s)| s).expect("steps");
    assert!(properties::is_terminal(&model, last), "judged only where no action is enabled");
    assert!(properties::explain(&model, I12, last).is_some_and(|why| why.contains("no newer epoch")));
    assert!(shortest(Protocol::ExistsIsFenced, bounds, I10).is_none(), "no recovery: only the progress property sees it");
    assert!(shortest(Protocol::Shipped, bounds, I12).is_none());
}

/// Hedged uploads: two identical creates of one WAL in flight. The shipped
/// protocol settles the loser's `AlreadyExists` by reading back its own
/// object; exists-is-fenced is caught through a hedge alone (no ambiguous
/// create), and exists-is-ours is caught as before.
#[test]
fn hedged_uploads_are_settled_by_reading_back() {
    let hedged = Bounds { hedges: 1, ambiguous: 0, zombies: 1, crashes: 0, ..WAL2 };
    let path = shortest(Protocol::ExistsIsFenced, hedged, I10).expect("I10 violated through a hedge");
    assert!(path.iter().any(|a| matches!(a, Action::HedgeWal { .. })), "{path:?}");
    assert!(shortest(Protocol::ExistsIsFenced, hedged, I12).is_some());
    assert!(shortest(Protocol::ExistsIsOurs, hedged, I5).is_some());
    let run = report::check(Protocol::Shipped, Bounds { writes: 1, ..hedged }, 2, |_, _, _| {});
    for p in &run.properties {
        assert!(p.holds, "{} {} does not hold with hedges: {:?}", p.kind, p.name, p.violation);
    }
    assert!(run.properties.iter().any(|p| p.name == "hedged upload read back as ours"));
}

/// I10-I12 hold for the shipped protocol with an ambiguous create, a hedge,
/// a crash and a zombie (two writes, W = 2), by direct search.
#[test]
fn shipped_protocol_settles_every_write_with_hedges_and_ambiguous_creates() {
    let bounds = Bounds { hedges: 1, ..WAL2 };
    let model = TidemarkModel::new(Protocol::Shipped, bounds);
    let any = |s: &State| properties::ALWAYS.iter().any(|p| properties::explain(&model, p, s).is_some());
    assert!(shortest_path(&model, any, 20_000_000).is_none());
}

/// fence-race-gives-up: a recovery whose fence create finds a zombie's late
/// upload at the fence id gives up instead of listing again. It reports no
/// error (I2 holds) and acknowledges nothing wrongly; only the progress
/// property sees it: the path ends with the latest recovery not completed (I11).
#[test]
fn fence_race_gives_up_leaves_recovery_incomplete() {
    let bounds = hunted(Protocol::FenceRaceGivesUp).bounds;
    let model = TidemarkModel::new(Protocol::FenceRaceGivesUp, bounds);
    let trace = shortest_path(&model, violation_of(&model, I11), 5_000_000).expect("I11 violated");
    let last = trace.steps.last().map(|(_, s)| s).expect("steps");
    assert!(properties::is_terminal(&model, last), "judged only where no action is enabled");
    let why = properties::explain(&model, I11, last).expect("I11");
    assert!(why.contains("GaveUp"), "{why}");
    let path: Vec<&Action> = trace.steps.iter().map(|(a, _)| a).collect();
    let recover = path.iter().position(|a| matches!(a, Action::Recover)).expect("a recovery");
    let landed = path.iter().position(|a| matches!(a, Action::WalDurable { epoch: 1, .. })).expect("the zombie's upload lands");
    let fence = path.iter().position(|a| matches!(a, Action::Fence { epoch: 2 })).expect("the fence");
    assert!(recover < landed && landed < fence, "the upload lands between the listing and the fence: {path:?}");
    // No other property fails on the way, nor anywhere at these bounds.
    for state in std::iter::once(&trace.init).chain(trace.steps.iter().map(|(_, s)| s)) {
        for p in properties::ALWAYS.iter().filter(|p| **p != I11) {
            assert!(properties::explain(&model, p, state).is_none(), "{p} on the path: {path:?}");
        }
    }
    for p in [I2, I3, I5, I10] {
        assert!(shortest(Protocol::FenceRaceGivesUp, bounds, p).is_none(), "{p}");
    }
    // The shipped protocol walks again and fences above the late upload.
    assert!(shortest(Protocol::Shipped, bounds, I11).is_none());
}

fn hash_of(s: &State) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// The depth-first search leaves the path facts (`State::seen`) out of a
/// state's identity, and only them; the breadth-first search keeps them.
#[test]
fn depth_first_identity_forgets_only_the_path_facts() {
    let mut model = TidemarkModel::new(Protocol::Shipped, WAL2);
    let a = model.initial_state();
    let mut b = a.clone();
    b.seen.zombie_upload_rejected = true;
    assert_ne!(hash_of(&a), hash_of(&b), "breadth-first: path facts identify");
    model.forget_path_facts = true;
    let a = model.initial_state();
    let mut b = a.clone();
    b.seen.zombie_upload_rejected = true;
    assert_eq!(hash_of(&a), hash_of(&b), "depth-first: path facts do not identify");
    b.next_write += 1;
    assert_ne!(hash_of(&a), hash_of(&b), "depth-first: everything else does");
}

/// At two writes of the WAL bound set, the depth-first search reaches the
/// same verdict on every property as the breadth-first one, in fewer states.
#[test]
fn depth_first_search_checks_what_breadth_first_checks() {
    let bfs = report::check_with(TidemarkModel::new(Protocol::Shipped, WAL2), 2, report::Search::Bfs, |_, _, _| {});
    let dfs = report::check_with(TidemarkModel::new(Protocol::Shipped, WAL2), 2, report::Search::Dfs, |_, _, _| {});
    assert_eq!(bfs.properties.len(), dfs.properties.len());
    for (b, d) in bfs.properties.iter().zip(&dfs.properties) {
        assert_eq!(b.name, d.name);
        assert!(b.holds && d.holds, "{} {}: bfs {} dfs {}", b.kind, b.name, b.holds, d.holds);
    }
    assert!(dfs.unique_states < bfs.unique_states, "dfs {} bfs {}", dfs.unique_states, bfs.unique_states);
}
