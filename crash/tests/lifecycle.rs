//! The storage lifecycle in crash schedules: compaction and GC on the
//! schedule's paused clock (objects age past `gc_min_age` as the clock
//! jumps and the store rests), read-only handles and held snapshots and
//! scans checked by the oracle, failed reads judged by crash, fault or
//! lease, held listings and hedged creates, durable checkpoints made at each
//! recovery and while writers write, and opened after every later round. The shipped engine passes; bugs
//! planted in the runtime (engine mutants) and in GC's rules (a protocol
//! mutant) are caught in at least one schedule in ten of their mode.

use tidemark::internals::protocol::Protocol;
use tidemark_crash::config::AGED_MIN_AGE;
use tidemark_crash::schedule::{run, CompactorPlace, Config, Conformance, EngineMutant, GcAge, Injected, Report};

fn lifecycle(seed: u64) -> Config {
    Config::new(seed).with_lifecycle()
}

fn reports(seeds: std::ops::Range<u64>, cfg: impl Fn(u64) -> Config) -> Vec<Report> {
    seeds.map(|seed| run(&cfg(seed))).collect()
}

#[test]
fn shipped_survives_lifecycle_schedules_and_exercises_them() {
    let mut exercised = Injected::default();
    for report in reports(0..120, lifecycle) {
        assert!(report.failure.is_none(), "seed {}: {:?}", report.seed, report.failure);
        // Every lifecycle trace is replayed through the model: compaction,
        // GC, checkpoint and follower steps are placed, none skipped.
        assert!(matches!(report.conformance, Conformance::Replayed), "seed {}: {:?}", report.seed, report.conformance);
        exercised.add(&report.injected);
    }
    assert!(exercised.held_listings > 100 && exercised.held_reads > 100, "listings and reads were held: {exercised:?}");
    assert!(exercised.create_hedges > 100, "hedged creates fired: {exercised:?}");
    assert!(exercised.read_only_opens > 100 && exercised.read_only_reads > 1000, "read-only handles read: {exercised:?}");
    assert!(exercised.views_checked > 300, "held snapshots and scans were read again: {exercised:?}");
    assert!(exercised.views_across_gc > 0, "some view lived across a GC pass that deleted an SST: {exercised:?}");
    assert!(exercised.follower_polls > 20, "following readers polled: {exercised:?}");
    assert!(exercised.standalone_compactions > 3, "standalone compactors compacted: {exercised:?}");
    assert!(exercised.checkpoints_made > 100 && exercised.checkpoint_opens > 100, "durable checkpoints were made and opened: {exercised:?}");
    assert!(exercised.live_checkpoints > 20, "durable checkpoints were made while writers wrote: {exercised:?}");
    assert!(exercised.dead_followers_dropped > 20, "crashed followers' checkpoints were deleted: {exercised:?}");
}

#[test]
fn a_standalone_compactor_is_checked_as_the_writers_own_is() {
    // Writers with their compactor off and `tidemark::compact` beside them:
    // the shipped engine passes, and a compaction recorded before its
    // outputs exist is caught in the standalone process too.
    let standalone = |s: u64| Config { compactor: CompactorPlace::Standalone, ..lifecycle(s) };
    let mut compactions = 0;
    for report in reports(0..100, standalone) {
        assert!(report.failure.is_none(), "seed {}: {:?}", report.seed, report.failure);
        compactions += report.injected.standalone_compactions;
    }
    assert!(compactions > 5, "standalone compactions: {compactions}");
    let found = caught(0..100, |s| Config { mutant: Some(EngineMutant::CompactBeforeUpload), ..standalone(s) });
    assert!(found.len() >= 10, "compact-before-upload, standalone: {} of 100 lifecycle schedules", found.len());
}

#[test]
fn a_writer_waiting_on_its_fenced_compactor_is_caught() {
    // Both compactors: the standalone one fences the writer's. A writer that
    // still holds its memtables at the L0 limit is stuck until its writes
    // give up (`FlushStalled`), which no crash or fault explains.
    let both = |s: u64| Config { compactor: CompactorPlace::Both, ..lifecycle(s) };
    let found = caught(0..300, |s| Config { mutant: Some(EngineMutant::FencedCompactorHoldsL0), ..both(s) });
    assert!(found.len() >= 3, "fenced-compactor-holds-l0: {} of 300 lifecycle schedules", found.len());
    assert!(found.iter().all(|i| i == "WriteSucceeds"), "{found:?}");
}

#[test]
fn objects_age_on_the_schedule_clock_and_gc_deletes_them() {
    // An aged schedule: `gc_min_age` 40 s of the paused clock, reached by
    // the clock's jumps and the store's rests, so GC deletes what was
    // compacted away; at 40 s of wall-clock time nothing would be old.
    let seed = (0..50).find(|&s| lifecycle(s).gc_age == GcAge::Aged && !lifecycle(s).zombies).expect("an aged seed");
    let cfg = lifecycle(seed);
    assert!(cfg.ages() && cfg.gc_min_age().0 == AGED_MIN_AGE);
    let report = run(&cfg);
    assert!(report.failure.is_none(), "{:?}", report.failure);
    let (a, b) = (run(&cfg), run(&cfg));
    assert_eq!(
        tidemark_crash::schedule::without_sst_ids(&a.trace),
        tidemark_crash::schedule::without_sst_ids(&b.trace),
        "an aged schedule replays exactly (its clock starts at a fixed origin)");
    let deleted: u64 = (0..50).filter(|&s| lifecycle(s).ages()).map(|s| run(&lifecycle(s)).injected.views_across_gc).sum();
    assert!(deleted > 0, "GC deleted SSTs under held views in aged schedules");
}

/// Schedules of `seeds` with `mutant` that fail, and the invariants they break.
fn caught(seeds: std::ops::Range<u64>, cfg: impl Fn(u64) -> Config) -> Vec<String> {
    reports(seeds, cfg).into_iter().filter_map(|r| r.failure.map(|f| f.invariant)).collect()
}

#[test]
fn compaction_recorded_before_its_outputs_exist_is_caught() {
    let found = caught(0..100, |s| Config { mutant: Some(EngineMutant::CompactBeforeUpload), ..lifecycle(s) });
    assert!(found.len() >= 10, "compact-before-upload: {} of 100 lifecycle schedules", found.len());
    assert!(found.iter().any(|i| i.starts_with("I7")), "a read found an output missing: {found:?}");
}

#[test]
fn tombstones_dropped_above_the_bottom_run_are_caught() {
    let found = caught(0..100, |s| Config { mutant: Some(EngineMutant::TombstonesAboveBottom), ..lifecycle(s) });
    assert!(found.len() >= 10, "tombstones-above-bottom: {} of 100 lifecycle schedules", found.len());
    assert!(found.iter().any(|i| i.starts_with("I4")), "a deleted key came back: {found:?}");
}

#[test]
fn gc_planning_without_the_retired_ssts_is_caught() {
    let found = caught(0..60, |s| Config { mutant: Some(EngineMutant::GcForgetsRetired), ..lifecycle(s) });
    assert!(found.len() >= 6, "gc-forgets-retired: {} of 60 lifecycle schedules", found.len());
    assert!(found.iter().all(|i| i.starts_with("I7") || i.starts_with("I16")), "a held view or a durable checkpoint lost an SST: {found:?}");
}

#[test]
fn a_follower_poll_that_skips_the_wals_is_caught() {
    let found = caught(0..60, |s| Config { mutant: Some(EngineMutant::FollowerSkipsWals), ..lifecycle(s) });
    assert!(found.len() >= 6, "follower-skips-wals: {} of 60 lifecycle schedules", found.len());
    assert!(found.iter().all(|i| i.starts_with("I3")), "a poll's view lacks acknowledged writes: {found:?}");
}

#[test]
fn a_writer_pin_that_ignores_held_views_is_caught() {
    // Crashed followers' checkpoints are deleted at each recovery: else they
    // keep every SST retired after them and mask the writer's pin.
    let found = caught(0..300, |s| Config { mutant: Some(EngineMutant::PinIgnoresHeldViews), ..lifecycle(s) });
    assert!(found.len() >= 60, "pin-ignores-held-views: {} of 300 lifecycle schedules", found.len());
    assert!(found.iter().all(|i| i.starts_with("I7")), "only held views lose SSTs: {found:?}");
}

#[test]
fn a_hedged_already_exists_taken_as_ours_is_caught() {
    let zombies_hedges = |s: u64| Config { zombies: true, ..Config::new(s).with_hedges() };
    let found = caught(0..100, |s| Config { mutant: Some(EngineMutant::HedgeExistsIsOurs), ..zombies_hedges(s) });
    assert!(found.len() >= 10, "hedge-exists-is-ours: {} of 100 zombie schedules with hedges", found.len());
    assert!(found.iter().all(|i| i.starts_with("I3") || i == "trace conformance"), "{found:?}");
    // The shipped engine passes the same schedules.
    for report in reports(0..100, zombies_hedges) {
        assert!(report.failure.is_none(), "seed {}: {:?}", report.seed, report.failure);
    }
}

#[test]
fn gc_ignoring_checkpoints_is_caught_by_checkpointed_readers() {
    let found = caught(0..60, |s| Config { protocol: Protocol::GcIgnoresCheckpoints, ..lifecycle(s) });
    assert!(found.len() >= 6, "gc-ignores-checkpoints: {} of 60 lifecycle schedules", found.len());
    // A WAL deleted under a follower or a checkpoint's walk also shows as
    // a view without acknowledged writes (I3) or a create that cannot walk.
    let deletion = ["I7 NothingNeededDeleted", "I16 CheckpointOpensAsCreated", "I3 NoAckedWriteLost", "CheckpointSucceeds"];
    assert!(found.iter().all(|i| deletion.contains(&i.as_str())), "{found:?}");
}

#[test]
fn gc_deleting_retired_ssts_is_caught_by_durable_checkpoints() {
    // A checkpoint made at each recovery is opened after every later round:
    // an SST of its version that a compaction retired and GC deleted leaves
    // it unreadable.
    let found = caught(0..60, |s| Config { protocol: Protocol::GcIgnoresRetired, ..lifecycle(s) });
    assert!(found.len() >= 30, "gc-ignores-retired: {} of 60 lifecycle schedules", found.len());
    assert!(found.iter().any(|i| i == "I16 CheckpointOpensAsCreated"), "{found:?}");
}

#[test]
fn gc_forgetting_checkpoints_is_caught_by_the_oracle_and_by_trace_conformance_alone() {
    use tidemark_crash::schedule::{Conformance, ORACLE_FIRST_CONFORMANCE_TOO};
    let found = reports(0..60, |s| Config { mutant: Some(EngineMutant::GcForgetsCheckpoints), ..lifecycle(s) });
    let failed = found.iter().filter(|r| r.failure.is_some()).count();
    assert!(failed >= 30, "gc-forgets-checkpoints: {failed} of 60 lifecycle schedules");
    // The trace up to the oracle's finding is replayed too: GC's plan
    // deletes versions or WALs the policy keeps on the model's store.
    let by_conformance = found.iter().filter(|r| r.conformance == Conformance::Skipped(ORACLE_FIRST_CONFORMANCE_TOO)).count();
    assert!(by_conformance >= 20, "trace conformance alone caught {by_conformance} of 60");
}
