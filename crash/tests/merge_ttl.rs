//! Merge operands and expiring values in crash schedules (issue 27): the
//! writers' batches mix puts (short, medium, long and default time-to-live,
//! or none), deletes and merge operands (`tidemark::Concat`, each operand
//! naming its write), and the oracle folds the operands in write order and
//! judges each expiring value at each read's window on the schedule clock.
//! The shipped engine passes; a compaction that drops older operands and
//! one that drops expired values above the bottom run are caught.

use tidemark_crash::schedule::{run, Config, EngineMutant, Injected, Report};

fn lifecycle(seed: u64) -> Config {
    Config::new(seed).with_lifecycle()
}

fn reports(seeds: std::ops::Range<u64>, cfg: impl Fn(u64) -> Config) -> Vec<Report> {
    seeds.map(|seed| run(&cfg(seed))).collect()
}

/// Schedules of `seeds` that fail, and the invariants they break.
fn caught(seeds: std::ops::Range<u64>, cfg: impl Fn(u64) -> Config) -> Vec<String> {
    reports(seeds, cfg).into_iter().filter_map(|r| r.failure.map(|f| f.invariant)).collect()
}

#[test]
fn shipped_folds_operands_and_expires_values_as_the_oracle_says() {
    let mut exercised = Injected::default();
    let default_ttl = (0..60).filter(|&s| lifecycle(s).default_ttl.is_some()).count();
    assert!(default_ttl >= 5, "a quarter of the seeds give the writers a default ttl: {default_ttl} of 60");
    for report in reports(0..60, lifecycle).into_iter().chain(reports(0..60, Config::new)) {
        assert!(report.failure.is_none(), "seed {}: {:?}", report.seed, report.failure);
        exercised.add(&report.injected);
    }
    assert!(exercised.merged_keys_read > 500, "reads met merge operands: {exercised:?}");
    assert!(exercised.expired_keys_read > 200, "reads met values past their latest expiry: {exercised:?}");
    assert!(exercised.expiring_keys_in_doubt > 10, "reads overlapped an expiry's window: {exercised:?}");
}

#[test]
fn a_compaction_that_drops_older_operands_is_caught() {
    let found = caught(0..40, |s| Config { mutant: Some(EngineMutant::CompactionDropsOperands), ..lifecycle(s) });
    assert!(found.len() >= 15, "compaction-drops-operands: {} of 40 lifecycle schedules", found.len());
    // The folded value lacks operands (or the value beneath them): no
    // prefix of the history, before or after a recovery's passes.
    let named = ["CompactionKeepsState", "I4 PrefixConsistent", "I3 NoAckedWriteLost", "UnexpiredValueMissing", "read-your-writes"];
    assert!(found.iter().all(|i| named.contains(&i.as_str())), "{found:?}");
}

#[test]
fn a_compaction_that_drops_expired_values_above_the_bottom_is_caught() {
    let found = caught(0..40, |s| Config { mutant: Some(EngineMutant::ExpiredValuesVanish), ..lifecycle(s) });
    assert!(found.len() >= 15, "expired-values-vanish: {} of 40 lifecycle schedules", found.len());
    // An older value comes back from under the expired one, or the
    // operands on top of it are lost with it.
    let named = ["CompactionKeepsState", "I4 PrefixConsistent", "I3 NoAckedWriteLost", "read-your-writes", "ScanStable", "SnapshotStable"];
    assert!(found.iter().all(|i| named.contains(&i.as_str())), "{found:?}");
}
