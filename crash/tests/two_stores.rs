//! Crash schedules with WALs and fences in a store of their own
//! (`Settings::wal_store`): the protocol is unchanged, only where WALs are
//! kept, so the same schedules must pass and the same mutants must be caught
//! (every shipped schedule is also replayed through the model).

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use tidemark::internals::protocol::Protocol;
use tidemark::internals::sync::StdArc;
use tidemark::internals::trace::MemoryRecorder;
use tidemark_crash::conformance::{UNREPLAYABLE_AMBIGUOUS_MANIFEST, UNREPLAYABLE_LIFECYCLE, UNREPLAYABLE_UNRECORDED_FENCE};
use tidemark_crash::db_api;
use tidemark_crash::schedule::{run, Conformance, Config};

/// The schedules' processes keep their WALs where the WAL store's root says,
/// and only there: a WAL at `db/wal/<id>.sst` would be one recovery never reads.
#[tokio::test]
async fn the_schedules_wals_live_under_the_wal_stores_root() {
    let inner: StdArc<dyn ObjectStore> = StdArc::new(InMemory::new());
    let cfg = Config { wal_store: true, ..Config::new(0) };
    let db = db_api::open(inner.clone(), &cfg, &MemoryRecorder::new(), StdArc::new(tidemark::SystemClock)).await.expect("open");
    db.put("k", "v").await.expect("durable put");
    let names: Vec<String> = inner.list(None).map_ok(|m| m.location.to_string()).try_collect().await.expect("list");
    let wals: Vec<&String> = names.iter().filter(|n| n.ends_with(".sst") && n.contains("/wal/")).collect();
    assert!(!wals.is_empty(), "{names:?}");
    let root = format!("{}/wal/", db_api::WAL_STORE_ROOT);
    assert!(wals.iter().all(|n| n.starts_with(&root)), "{wals:?}");
    assert_eq!(db_api::list_wals(&inner).await.len(), wals.len(), "the harness lists them");
}

/// Schedules of seeds `from..to` with WALs in their own store (each
/// adjusted by `f`) that violate an invariant.
fn violations(from: u64, to: u64, f: impl Fn(Config) -> Config) -> Vec<u64> {
    (from..to)
        .filter(|&seed| {
            let cfg = f(Config { wal_store: true, ..Config::new(seed) });
            let report = run(&cfg);
            if cfg.protocol == Protocol::Shipped && report.failure.is_none() {
                let expected = Conformance::Replayed;
                let unreplayable = [UNREPLAYABLE_AMBIGUOUS_MANIFEST, UNREPLAYABLE_UNRECORDED_FENCE].map(Conformance::Skipped);
                let allowed =
                    report.conformance == expected || cfg.faults.is_some() && unreplayable.contains(&report.conformance)
                        || cfg.compaction && report.conformance == Conformance::Skipped(UNREPLAYABLE_LIFECYCLE);
                assert!(allowed, "seed {seed}: {:?}", report.conformance);
            }
            report.failure.is_some()
        })
        .collect()
}

#[test]
fn shipped_protocol_survives_crash_schedules_with_a_wal_store() {
    assert_eq!(violations(0, 2000, |c| c), Vec::<u64>::new());
    assert_eq!(violations(0, 500, |c| Config { zombies: true, ..c }), Vec::<u64>::new());
    assert_eq!(violations(0, 500, |c| c.with_faults()), Vec::<u64>::new());
}

#[test]
fn mutants_are_caught_with_a_wal_store() {
    for mutant in [Protocol::AtFreeze, Protocol::ReplayAcrossGap, Protocol::NoFence] {
        let found = violations(0, 100, |c| Config { protocol: mutant, ..c });
        assert!(!found.is_empty(), "{mutant}: no violation in 100 seeds with a WAL store");
    }
}
