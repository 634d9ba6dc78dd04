//! Shortest counterexamples by breadth-first search over the `Model` trait.
//!
//! Stateright 0.31's checkers may record a later violating state over an
//! earlier one, so the path they report is not always the shortest. This
//! search checks every state of depth d before any of depth d + 1 and stops
//! at the first violation, so its path is a shortest one.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use stateright::Model;

/// A path: the initial state, then each action with the state it leads to.
pub struct Trace<M: Model> {
    pub init: M::State,
    pub steps: Vec<(M::Action, M::State)>,
}

fn fingerprint<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

/// Finds a shortest path from an initial state to a state where `violated`
/// holds, exploring at most `max_states` unique states. `None` if no such
/// state is reachable within the model's boundary (or the budget).
pub fn shortest_path<M>(model: &M, violated: impl Fn(&M::State) -> bool, max_states: usize) -> Option<Trace<M>>
where
    M: Model,
    M::State: Hash + Clone,
    M::Action: Clone,
{
    shortest_path_counted(model, violated, max_states).0
}

/// [`shortest_path`], also returning how many unique states it visited.
pub fn shortest_path_counted<M>(model: &M, violated: impl Fn(&M::State) -> bool, max_states: usize) -> (Option<Trace<M>>, usize)
where
    M: Model,
    M::State: Hash + Clone,
    M::Action: Clone,
{
    // Each node: its parent node and the action that reached it.
    let mut nodes: Vec<(usize, Option<M::Action>)> = Vec::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut frontier: Vec<(M::State, usize)> = Vec::new();
    for init in model.init_states() {
        if seen.insert(fingerprint(&init)) {
            nodes.push((usize::MAX, None));
            if violated(&init) {
                return (Some(Trace { init, steps: Vec::new() }), nodes.len());
            }
            frontier.push((init, nodes.len() - 1));
        }
    }
    let mut actions = Vec::new();
    while !frontier.is_empty() && nodes.len() < max_states {
        let mut next = Vec::new();
        for (state, node) in frontier {
            if !model.within_boundary(&state) {
                continue;
            }
            actions.clear();
            model.actions(&state, &mut actions);
            for action in actions.drain(..) {
                let Some(child) = model.next_state(&state, action.clone()) else { continue };
                if !seen.insert(fingerprint(&child)) {
                    continue;
                }
                nodes.push((node, Some(action)));
                let id = nodes.len() - 1;
                if violated(&child) {
                    return (Some(rebuild(model, &nodes, id)), nodes.len());
                }
                next.push((child, id));
            }
        }
        frontier = next;
    }
    (None, nodes.len())
}

/// Replays the actions from the root to `id` to recover every state.
fn rebuild<M>(model: &M, nodes: &[(usize, Option<M::Action>)], mut id: usize) -> Trace<M>
where
    M: Model,
    M::State: Clone,
    M::Action: Clone,
{
    let mut actions = Vec::new();
    while let Some((parent, Some(action))) = nodes.get(id) {
        actions.push(action.clone());
        id = *parent;
    }
    actions.reverse();
    // Node 0.. are initial states in init order; `id` is now the root index.
    let init = model.init_states().into_iter().nth(id).unwrap_or_else(|| unreachable!("root index is an init state"));
    let mut state = init.clone();
    let mut steps = Vec::new();
    for action in actions {
        match model.next_state(&state, action.clone()) {
            Some(next) => {
                state = next.clone();
                steps.push((action, next));
            }
            None => unreachable!("a recorded action applies again (the model is deterministic)"),
        }
    }
    Trace { init, steps }
}
