//! Running a check and describing its results: figures, properties, and
//! counterexamples as numbered steps in the spec's action names.

use std::time::{Duration, Instant};

use serde::Serialize;
use stateright::{Checker, Expectation, Model};
use tidemark::internals::protocol::Protocol;

use crate::model::{Action, Bounds, LifecycleBounds, TidemarkModel};
use crate::properties;
use crate::shortest::{shortest_path, shortest_path_counted, Trace};
use crate::state::{Phase, RecoveryOutcome, State};

/// A step of a counterexample.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub action: String,
    pub detail: String,
}

/// One property's result.
#[derive(Clone, Debug, Serialize)]
pub struct PropertyResult {
    pub name: String,
    pub kind: &'static str,
    /// `always`: no reachable state violates it; `sometimes`: an example was found.
    pub holds: bool,
    /// The shortest failing path of a violated `always` property (else empty).
    pub counterexample: Vec<Step>,
    /// Why the last state of the counterexample violates the property.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violation: Option<String>,
}

/// One checked protocol variant.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub protocol: String,
    pub bounds: Bounds,
    pub lifecycle: LifecycleBounds,
    /// `Ack` folded into `WalDurable` (`TidemarkModel::eager_ack`).
    pub eager_ack: bool,
    /// `Bfs` or `Dfs` (`hunt` searches breadth-first).
    pub search: Search,
    pub states: usize,
    pub unique_states: usize,
    pub max_depth: usize,
    pub seconds: f64,
    pub properties: Vec<PropertyResult>,
}

impl Run {
    /// Every `always` holds and every `sometimes` was found.
    pub fn passes(&self) -> bool {
        self.properties.iter().all(|p| p.holds)
    }

    /// The `always` properties violated.
    pub fn violated(&self) -> Vec<&PropertyResult> {
        self.properties.iter().filter(|p| p.kind == "always" && !p.holds).collect()
    }
}

/// Budget for the shortest-path search (unique states).
pub const SHORTEST_BUDGET: usize = 20_000_000;

/// The model a mutant is hunted in by `check-model --all`: the given bounds,
/// except that each mutant gets what its story needs (two writes, an
/// ambiguous create, a durable checkpoint) and, to keep the hunt short, no
/// process its story has no part for.
pub fn mutant_model(protocol: Protocol, bounds: Bounds, lifecycle: LifecycleBounds) -> TidemarkModel {
    let quiet = Bounds { compactors: 0, gcs: 0, ticks: 0, closes: 0, readers: 0, ..bounds };
    let (bounds, lifecycle) = match protocol.name() {
        "max-completed" | "replay-across-gap" => (Bounds { writes: bounds.writes.max(2), ..quiet }, lifecycle),
        "gc-deletes-fences" => (Bounds { writes: bounds.writes.max(2), compactors: 0, closes: 0, readers: 0, ..bounds }, lifecycle),
        // Only an AlreadyExists on the writer's own object tells it from the
        // shipped protocol: an ambiguous create (or a hedge) is needed.
        "exists-is-fenced" => (Bounds { ambiguous: bounds.ambiguous.max(1), ..quiet }, lifecycle),
        // The story is a zombie's late upload landing at the fence id.
        "fence-race-gives-up" => (quiet, lifecycle),
        // A WAL past a gap, or a zombie's WAL inside a fence's jump, and a
        // follower to read it.
        "follower-applies-past-gap" | "follower-ignores-fences" | "follower-drops-applied" => {
            (Bounds { writes: bounds.writes.max(2), readers: bounds.readers.max(1), ..quiet }, lifecycle)
        }
        // A durable checkpoint that expires, a tick, and a GC pass.
        "checkpoint-expiry-off-by-one" => (
            Bounds { gcs: bounds.gcs.max(1), ticks: bounds.ticks.max(1), min_age: 0, readers: 0, closes: 0, ..bounds },
            LifecycleBounds { checkpoints: lifecycle.checkpoints.max(1), ttl: 1 },
        ),
        _ => (bounds, lifecycle),
    };
    TidemarkModel::with_lifecycle(protocol, bounds, lifecycle)
}

/// Hunts a mutant: a breadth-first search that stops at the first state
/// violating any `always` property, so its path is a shortest
/// counterexample; every property that state violates is reported with it.
/// Not exhaustive (the figures are the states visited up to that depth).
pub fn hunt(model: TidemarkModel) -> Run {
    let start = Instant::now();
    let violated = |s: &State| properties::ALWAYS.iter().any(|p| properties::explain(&model, p, s).is_some());
    let (trace, visited) = shortest_path_counted(&model, violated, SHORTEST_BUDGET);
    let steps = trace.as_ref().map(|t| describe(&model, t)).unwrap_or_default();
    let last = trace.as_ref().map(|t| t.steps.last().map_or(&t.init, |(_, s)| s));
    let properties = model
        .properties()
        .into_iter()
        .filter(|p| p.expectation == Expectation::Always)
        .map(|p| {
            let why = last.and_then(|s| properties::explain(&model, p.name, s));
            PropertyResult {
                name: p.name.into(),
                kind: "always",
                holds: why.is_none(),
                counterexample: if why.is_some() { steps.clone() } else { vec![] },
                violation: why,
            }
        })
        .collect();
    Run {
        protocol: model.protocol.name().into(),
        bounds: model.bounds,
        lifecycle: model.lifecycle,
        eager_ack: false,
        search: Search::Bfs,
        states: visited,
        unique_states: visited,
        max_depth: trace.as_ref().map_or(0, |t| t.steps.len()),
        seconds: start.elapsed().as_secs_f64(),
        properties,
    }
}

/// How the state space is searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Search {
    /// Stateright's breadth-first checker: keeps every state of the
    /// frontier in memory (fast on small bounds, memory-bound on large ones).
    Bfs,
    /// Stateright's depth-first checker: keeps only fingerprints and the
    /// current paths, and identifies states without the path facts that
    /// only the `sometimes` examples read (`TidemarkModel::forget_path_facts`).
    Dfs,
}

/// Checks `protocol` under `bounds` with `threads` workers; `progress` gets
/// (states, unique states, elapsed) about once a second.
pub fn check(protocol: Protocol, bounds: Bounds, threads: usize, progress: impl FnMut(usize, usize, Duration)) -> Run {
    check_with(TidemarkModel::new(protocol, bounds), threads, Search::Bfs, progress)
}

/// [`check`] of a configured model, with the search chosen.
pub fn check_with(
    model: TidemarkModel,
    threads: usize,
    search: Search,
    progress: impl FnMut(usize, usize, Duration),
) -> Run {
    let start = Instant::now();
    let mut model = model;
    model.forget_path_facts = search == Search::Dfs;
    let builder = model.clone().checker().threads(threads.max(1));
    match search {
        Search::Bfs => finish(model, builder.spawn_bfs(), search, start, progress),
        Search::Dfs => finish(model, builder.spawn_dfs(), search, start, progress),
    }
}

fn finish(
    model: TidemarkModel,
    checker: impl Checker<TidemarkModel>,
    search: Search,
    start: Instant,
    mut progress: impl FnMut(usize, usize, Duration),
) -> Run {
    let protocol = model.protocol;
    let (bounds, lifecycle) = (model.bounds, model.lifecycle);
    let mut last = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(50));
        if last.elapsed() >= Duration::from_secs(1) {
            progress(checker.state_count(), checker.unique_state_count(), start.elapsed());
            last = Instant::now();
        }
    }
    let checker = checker.join();
    let seconds = start.elapsed().as_secs_f64();
    let discoveries = checker.discoveries();
    // Counterexamples in the spec's steps: `Ack` a step of its own, states
    // identified with their path facts (every path of the searched model is
    // a path of this one).
    let stepwise = TidemarkModel { eager_ack: false, forget_path_facts: false, ..model.clone() };
    let properties = model
        .properties()
        .into_iter()
        .map(|p| {
            let found = discoveries.contains_key(p.name);
            match p.expectation {
                Expectation::Always if found => {
                    let condition = p.condition;
                    let trace = shortest_path(&stepwise, |s| !condition(&stepwise, s), SHORTEST_BUDGET);
                    let (counterexample, violation) = match trace {
                        Some(trace) => {
                            let why = properties::explain(&stepwise, p.name, trace.steps.last().map_or(&trace.init, |(_, s)| s));
                            (describe(&stepwise, &trace), why)
                        }
                        None => (Vec::new(), Some("violated (no shortest path within budget)".into())),
                    };
                    PropertyResult { name: p.name.into(), kind: "always", holds: false, counterexample, violation }
                }
                Expectation::Always => {
                    PropertyResult { name: p.name.into(), kind: "always", holds: true, counterexample: vec![], violation: None }
                }
                _ => PropertyResult {
                    name: p.name.into(),
                    kind: "sometimes",
                    holds: found,
                    counterexample: vec![],
                    violation: None,
                },
            }
        })
        .collect();
    Run {
        protocol: protocol.name().into(),
        bounds,
        lifecycle,
        eager_ack: model.eager_ack,
        search,
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        max_depth: checker.max_depth(),
        seconds,
        properties,
    }
}

/// The steps of a trace, each with the state it concerns.
pub fn describe(model: &TidemarkModel, trace: &Trace<TidemarkModel>) -> Vec<Step> {
    let mut before = &trace.init;
    let mut steps = Vec::new();
    for (action, after) in &trace.steps {
        steps.push(Step { action: action.name().as_str().into(), detail: detail(model, before, action, after) });
        before = after;
    }
    steps
}

fn list<T: std::fmt::Debug>(items: &[T]) -> String {
    format!("{items:?}")
}

/// What a step did, in the spec's terms.
pub fn detail(model: &TidemarkModel, before: &State, action: &Action, after: &State) -> String {
    let durable = |s: &State, e| s.writer(e).map(|w| w.log.durable_wal_id());
    match action {
        Action::Put { epoch } => {
            let wal = before.writer(*epoch).map_or(0, |w| w.log.next_wal_id());
            format!("epoch={epoch} write={} into the buffer of wal {wal}", before.next_write)
        }
        Action::FreezeWal { epoch } => {
            let next = after.writer(*epoch).map_or(0, |w| w.log.next_wal_id());
            format!("epoch={epoch} wal={} frozen, next_wal_id={next}", next.saturating_sub(1))
        }
        Action::UploadWal { epoch, wal_id } => format!("epoch={epoch} wal={wal_id} upload started (create-if-absent)"),
        Action::WalDurable { epoch, wal_id, ambiguous } => {
            let holder = before.store.wals.get(wal_id).map(|o| o.header.writer_epoch);
            let landed = holder.is_none();
            if !before.is_alive(*epoch) {
                return format!("epoch={epoch} wal={wal_id} {} after its writer stopped", if landed { "landed" } else { "rejected (AlreadyExists)" });
            }
            let reply = match (landed, ambiguous) {
                (true, false) => "created".to_string(),
                (true, true) => "landed, but the reply is AlreadyExists (a retry, or a hedge's sibling landed first)".to_string(),
                (false, _) => format!("AlreadyExists, held by epoch {}", holder.unwrap_or(0)),
            };
            let decided = if landed && !ambiguous {
                String::new()
            } else {
                let existing = holder.unwrap_or(*epoch);
                let ours = tidemark::internals::protocol::ObjectOwner { writer_epoch: *epoch, token: 0 };
                let theirs = tidemark::internals::protocol::ObjectOwner { writer_epoch: existing, token: 0 };
                let decision = tidemark::internals::protocol::resolve_create_conflict(model.protocol, ours, theirs);
                format!("; read back (its object is epoch {existing}'s): {decision:?}")
            };
            match (after.is_alive(*epoch), durable(after, *epoch)) {
                (true, Some(d)) => format!("epoch={epoch} wal={wal_id} {reply}{decided}; durable_wal_id={d}"),
                _ => format!("epoch={epoch} wal={wal_id} {reply}{decided}; writer {epoch} stops, its writes in wal {wal_id} reported not written"),
            }
        }
        Action::HedgeWal { epoch, wal_id } => format!("epoch={epoch} wal={wal_id} hedge: a second identical create in flight"),
        Action::UploadLost { epoch, wal_id } => format!("epoch={epoch} wal={wal_id} never lands"),
        Action::Ack { epoch } => {
            let acked: Vec<_> = after.acked.keys().filter(|k| !before.acked.contains_key(k)).copied().collect();
            format!("epoch={epoch} writes={} acknowledged (durable_wal_id={})", list(&acked), durable(after, *epoch).unwrap_or(0))
        }
        Action::FreezeMemtable { epoch } => {
            let last = after.writer(*epoch).and_then(|w| w.imm.last()).map_or(0, |m| m.last_wal_id);
            format!("epoch={epoch} memtable frozen, last_wal_id={last}")
        }
        Action::FlushL0 { epoch } => {
            let sst = after.store.ssts.keys().find(|k| !before.store.ssts.contains_key(k));
            format!("epoch={epoch} L0 sst {sst:?} written")
        }
        Action::WriteManifest { epoch } => {
            let created = after.store.manifests.iter().find(|(v, m)| before.store.manifests.get(v) != Some(m));
            let (latest, _) = after.store.latest_manifest();
            match (created, after.writer(*epoch)) {
                (Some((v, m)), w) if w.is_none_or(|w| w.manifest_version == *v) => format!(
                    "v{v} wal_id_last_seen={} replay_after_wal_id={} l0={:?} runs={:?} fences={:?}{} (durable_wal_id={}, next_wal_id={})",
                    m.view.wal_id_last_seen,
                    m.view.replay_after_wal_id,
                    m.tree.l0,
                    m.tree.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
                    m.tree.fences,
                    if m.view.writer_closed { " writer_closed" } else { "" },
                    durable(after, *epoch).unwrap_or(0),
                    after.writer(*epoch).map_or(0, |w| w.log.next_wal_id())
                ),
                (Some((v, _)), Some(w)) => format!(
                    "epoch={epoch} created v{v}, but v{latest} exists (a slot GC emptied): re-read v{latest}, re-apply next as v{}",
                    w.manifest_version + 1
                ),
                (None, Some(w)) => format!(
                    "epoch={epoch} lost the race: v{} exists; re-read v{}, re-apply next as v{}",
                    before.writer(*epoch).map_or(0, |b| b.manifest_version + 1),
                    w.manifest_version,
                    w.manifest_version + 1
                ),
                (_, None) => format!("epoch={epoch} rejected: a newer writer claimed the store (fenced); writer {epoch} stops"),
            }
        }
        Action::Close { epoch } => format!("epoch={epoch} stops accepting writes; drains, flushes, records writer_closed"),
        Action::ClaimCompactor => {
            let (v, m) = after.store.latest_manifest();
            format!("compactor epoch {} claims manifest v{v}", m.view.compactor_epoch)
        }
        Action::Compact { epoch } => match after.compactor(*epoch).and_then(|c| c.job.as_ref().map(|j| (c, j))) {
            Some((c, job)) => format!(
                "compactor {epoch} read v{}: merges l0 {:?} and runs {:?} into run {} ({:?} written)",
                c.base.version, job.l0_inputs, job.run_inputs, job.output.id, job.output.ssts
            ),
            None => format!("compactor {epoch} re-read the manifest: a newer compactor claimed it; stops"),
        },
        Action::CompactCommit { epoch } => match (before.compactor(*epoch), after.compactor(*epoch)) {
            (_, None) => format!("compactor {epoch} fenced by a newer compactor; stops"),
            (_, Some(c)) if c.job.is_none() && c.base.version > before.store.latest_manifest().0 => {
                let m = after.store.manifests.get(&c.base.version);
                format!(
                    "v{} l0={:?} runs={:?}",
                    c.base.version,
                    m.map(|m| m.tree.l0.clone()).unwrap_or_default(),
                    m.map(|m| m.tree.runs.iter().map(|r| r.id).collect::<Vec<_>>()).unwrap_or_default()
                )
            }
            (_, Some(c)) if c.job.is_none() => format!("compactor {epoch} dropped its compaction (inputs gone or output too old)"),
            (_, Some(c)) => format!("compactor {epoch} lost the race; re-read v{}, re-apply next as v{}", c.base.version, c.base.version + 1),
        },
        Action::Tick => format!("now={}", after.now),
        Action::GcRun => match &after.gc {
            Some(plan) => {
                let (v, m) = before.store.latest_manifest();
                let pins: Vec<String> = m.tree.checkpoints.iter().map(|c| format!("{}@v{}", c.id, c.version)).collect();
                format!(
                    "at tick {}: reads v{v} (checkpoints {pins:?}); decides GcSst {:?}, GcWal {:?}, GcManifest {:?}",
                    after.now, plan.ssts, plan.wals, plan.manifests
                )
            }
            None => format!("at tick {}: nothing to delete", after.now),
        },
        Action::GcSst | Action::GcWal | Action::GcManifest => {
            let manifests: Vec<_> = before.store.manifests.keys().filter(|k| !after.store.manifests.contains_key(k)).collect();
            let ssts: Vec<_> = before.store.ssts.keys().filter(|k| !after.store.ssts.contains_key(k)).collect();
            let wals: Vec<_> = before.store.wals.keys().filter(|k| !after.store.wals.contains_key(k)).collect();
            match action {
                Action::GcSst => format!("deletes {ssts:?}"),
                Action::GcWal => format!("deletes wals {wals:?}"),
                _ => format!("deletes manifest versions {manifests:?}"),
            }
        }
        Action::FollowerOpen | Action::FollowerPoll { .. } | Action::FollowerRefresh { .. } => {
            let id = match action {
                Action::FollowerPoll { id } | Action::FollowerRefresh { id } => Some(*id),
                _ => after.followers.last().map(|f| f.id),
            };
            match id.and_then(|id| after.follower(id)) {
                Some(f) if f.lapsed => format!("follower {}: refresh refused (expired or dropped); it reads nothing more", f.id),
                Some(f) => {
                    let created = after.store.latest_manifest().0 > before.store.latest_manifest().0;
                    format!(
                        "follower {}{}: reads v{} (replay_after_wal_id={}), applied wals {:?}; shows {:?}; checkpoint expires at {}",
                        f.id,
                        if created { format!(" creates v{} with its checkpoint", after.store.latest_manifest().0) } else { String::new() },
                        f.base.version,
                        f.cursor.replay_after_wal_id(),
                        f.cursor.applied(),
                        f.view,
                        f.expires_at
                    )
                }
                None => String::new(),
            }
        }
        Action::CheckpointCreate | Action::CheckpointRefresh { .. } | Action::CheckpointDelete { .. } | Action::CheckpointExpire => {
            let (v, m) = after.store.latest_manifest();
            if v == before.store.latest_manifest().0 {
                return "refused: the checkpoint expired; its holder gives it up".into();
            }
            let cks: Vec<String> = m
                .tree
                .checkpoints
                .iter()
                .map(|c| format!("{}@v{} until {:?}{}", c.id, c.version, c.expires_at, c.wal_end.map_or(String::new(), |e| format!(" wal_end={e}"))))
                .collect();
            format!("creates v{v}; checkpoints {cks:?}")
        }
        Action::Crash { epoch } => {
            let inflight: Vec<_> = after.uploads.iter().filter(|u| u.owner == *epoch).map(|u| u.wal_id).collect();
            format!("epoch={epoch} process dies; uploads still in flight: {}", list(&inflight))
        }
        Action::Recover => {
            let (v, m) = after.store.latest_manifest();
            let closed = before.store.latest_manifest().1.view.writer_closed;
            let zombie = match before.writers.iter().find(|w| w.phase == Phase::Active) {
                Some(w) => format!(" (epoch {} still running: a zombie)", w.epoch),
                None => String::new(),
            };
            let listed: Vec<_> = after.store.wals.keys().copied().collect();
            match (&after.recovery, after.writers.last()) {
                (Some(RecoveryOutcome::Failed { epoch, error }), _) if after.recovery != before.recovery => {
                    format!("epoch={epoch} claims manifest v{v}{zombie}; listed wals {} -> failed: {error}", list(&listed))
                }
                (_, Some(w)) => match &w.phase {
                    Phase::Recovering { plan, .. } => format!(
                        "epoch={} claims manifest v{v}{zombie} (wal_id_last_seen={}, replay_after_wal_id={}); listed wals {}; replay {} then {}",
                        w.epoch,
                        m.view.wal_id_last_seen,
                        m.view.replay_after_wal_id,
                        list(&listed),
                        list(&plan.replay),
                        match plan.fence {
                            Some(f) => format!("fence at wal {}", f.wal_id),
                            None if closed => format!("continue at wal {} without a fence (claimed from writer_closed)", plan.next_wal_id),
                            None => format!("continue at wal {} without a fence", plan.next_wal_id),
                        }
                    ),
                    Phase::Active => format!("claims manifest v{v}"),
                },
                _ => format!("claims manifest v{v}"),
            }
        }
        Action::Fence { epoch } => match (&after.recovery, after.writer(*epoch)) {
            (Some(RecoveryOutcome::Recovered { writes, .. }), Some(w)) if w.phase == Phase::Active => {
                let fence = after.store.wals.iter().find(|(id, _)| !before.store.wals.contains_key(id));
                let what = match fence {
                    Some((id, _)) => format!("fence wal {id} created"),
                    None => "no fence written".to_string(),
                };
                format!("epoch={epoch} {what}; next_wal_id={}; recovered writes {}", w.log.next_wal_id(), list(writes))
            }
            (_, Some(w)) => match &w.phase {
                Phase::Recovering { plan, .. } => {
                    format!("epoch={epoch} fence create hit AlreadyExists; listed again, fence at wal {} next", plan.gap)
                }
                Phase::Active => String::new(),
            },
            (Some(RecoveryOutcome::Failed { error, .. }), None) => format!("epoch={epoch} listed again -> failed: {error}"),
            (Some(RecoveryOutcome::MissingSst { sst, .. }), None) => format!("epoch={epoch} replays the manifest's SSTs -> {sst:?} does not exist"),
            (Some(RecoveryOutcome::GaveUp { wal_id, owner, .. }), None) => {
                format!("epoch={epoch} fence create hit AlreadyExists: wal {wal_id} is epoch {owner}'s -> gave up")
            }
            _ => String::new(),
        },
    }
}

/// The counterexample as numbered lines, then the violation.
pub fn render_counterexample(p: &PropertyResult) -> String {
    let mut out = String::new();
    for (i, step) in p.counterexample.iter().enumerate() {
        out.push_str(&format!("  {}. {} {}\n", i + 1, step.action, step.detail));
    }
    out.push_str(&format!("  -> {} violated: {}\n", p.name, p.violation.as_deref().unwrap_or("")));
    out
}
