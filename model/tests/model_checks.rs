//! The model's checks: the shipped protocol holds, every mutant is caught by
//! the property it breaks, and counterexamples are shortest.

use stateright::Model;
use tidemark::protocol::Protocol;
use tidemark_model::properties::{self, I1, I2, I3, I4, I5};
use tidemark_model::report;
use tidemark_model::shortest::shortest_path;
use tidemark_model::{Action, Bounds, State, TidemarkModel};

fn violation_of(name: &str) -> impl Fn(&State) -> bool + '_ {
    move |s| properties::explain(name, s).is_some()
}

fn shortest(protocol: Protocol, bounds: Bounds, property: &str) -> Option<Vec<Action>> {
    let model = TidemarkModel::new(protocol, bounds);
    shortest_path(&model, violation_of(property), 5_000_000).map(|t| t.steps.into_iter().map(|(a, _)| a).collect())
}

#[test]
fn shipped_protocol_holds_at_default_bounds() {
    let run = report::check(Protocol::Shipped, Bounds::DEFAULT, 2, |_, _, _| {});
    for p in &run.properties {
        assert!(p.holds, "{} {} does not hold: {:?}", p.kind, p.name, p.violation);
    }
    assert!(run.unique_states > 100_000, "the exploration is not trivially small: {}", run.unique_states);
    let sometimes = run.properties.iter().filter(|p| p.kind == "sometimes").count();
    assert_eq!(sometimes, if Bounds::DEFAULT.ambiguous > 0 { 6 } else { 5 });
}

#[test]
fn at_freeze_breaks_i1_and_i2() {
    assert!(shortest(Protocol::AtFreeze, Bounds::DEFAULT, I1).is_some());
    assert!(shortest(Protocol::AtFreeze, Bounds::DEFAULT, I2).is_some());
    for p in [I3, I4, I5] {
        assert!(shortest(Protocol::AtFreeze, Bounds { writes: 2, ..Bounds::DEFAULT }, p).is_none(), "{p}");
    }
}

#[test]
fn max_completed_loses_acknowledged_writes() {
    let path = shortest(Protocol::MaxCompleted, Bounds::DEFAULT, I3).expect("I3 violated");
    assert!(path.iter().any(|a| matches!(a, Action::Ack { .. })), "{path:?}");
    assert!(shortest(Protocol::MaxCompleted, Bounds::DEFAULT, I1).is_some());
}

#[test]
fn replay_across_gap_breaks_prefix_consistency() {
    let path = shortest(Protocol::ReplayAcrossGap, Bounds::DEFAULT, I4).expect("I4 violated");
    assert!(matches!(path.last(), Some(Action::Fence { .. })), "{path:?}");
}

#[test]
fn no_fence_lets_a_zombie_ack_what_the_new_epoch_never_sees() {
    let path = shortest(Protocol::NoFence, Bounds::DEFAULT, I5).expect("I5 violated");
    assert!(matches!(path.last(), Some(Action::Ack { epoch: 1 })), "{path:?}");
    // Without zombies the fence is not what protects the log.
    assert!(shortest(Protocol::NoFence, Bounds { zombies: 0, ..Bounds::DEFAULT }, I5).is_none());
}

#[test]
fn shipped_protocol_has_no_counterexample_by_direct_search() {
    for p in [I1, I2, I3, I4, I5] {
        assert!(shortest(Protocol::Shipped, Bounds::DEFAULT, p).is_none(), "{p}");
    }
}

/// The SlateDB bug, step by step: FreezeWal, WriteManifest and Crash come
/// before the Recover that fails.
#[test]
fn slatedb_bug_story_is_the_shortest_i2_counterexample() {
    let bounds = Bounds { zombies: 0, ..Bounds::DEFAULT };
    let path = shortest(Protocol::AtFreeze, bounds, I2).expect("I2 violated under at-freeze");
    assert!(path.len() <= 10, "{} steps", path.len());
    let names: Vec<&str> = path.iter().map(Action::name).collect();
    assert_eq!(names, ["Put", "FreezeWal", "WriteManifest", "Crash", "Recover"]);
    let model = TidemarkModel::new(Protocol::AtFreeze, bounds);
    let trace = shortest_path(&model, violation_of(I2), 1_000_000).expect("found");
    let steps = report::describe(&model, &trace);
    assert!(steps[2].detail.contains("wal_id_last_seen=1") && steps[2].detail.contains("durable_wal_id=0"), "{steps:?}");
    assert!(steps[4].detail.contains("MissingWal"), "{steps:?}");
}

/// Every path of `depth` steps from the initial state (exhaustive, no dedup).
fn any_path_violates(model: &TidemarkModel, state: &State, depth: usize, property: &str) -> bool {
    if properties::explain(property, state).is_some() {
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
    let model = TidemarkModel::new(Protocol::AtFreeze, Bounds::DEFAULT);
    let init = model.initial_state();
    let path = shortest(Protocol::AtFreeze, Bounds::DEFAULT, I1).expect("violated");
    assert_eq!(path.len(), 3, "{path:?}");
    assert!(!any_path_violates(&model, &init, 2, I1));
    assert!(any_path_violates(&model, &init, 3, I1));
    // And for a longer one: replay-across-gap's I4 path.
    let model = TidemarkModel::new(Protocol::ReplayAcrossGap, Bounds::DEFAULT);
    let path = shortest(Protocol::ReplayAcrossGap, Bounds::DEFAULT, I4).expect("violated");
    assert!(!any_path_violates(&model, &init, path.len() - 1, I4));
}
