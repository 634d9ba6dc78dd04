#![no_main]
//! `ManifestObject::decode`: never panics; what it accepts is within the
//! bounds (`tidemark::internals::bounds`: ids and versions at most
//! `MAX_ID`, epochs at most `MAX_EPOCH`, entries within their counts, run
//! ids of claimed compactor epochs, runs in key order) and round-trips
//! through `encode`.
use libfuzzer_sys::fuzz_target;
use tidemark::internals::bounds::{run_epoch, MAX_EPOCH, MAX_FENCES, MAX_ID, MAX_L0_SSTS, MAX_RUNS, MAX_SSTS_PER_RUN};
use tidemark::internals::manifest::ManifestObject;
use tidemark_fuzz::{prepare, reseal_manifest};

fuzz_target!(|data: &[u8]| {
    let Some((obj, _)) = prepare(data, reseal_manifest) else { return };
    if let Ok(m) = ManifestObject::decode("manifest/1.manifest", &obj) {
        assert!(m.version <= MAX_ID && m.writer_epoch <= MAX_EPOCH && m.compactor_epoch <= MAX_EPOCH);
        assert!(m.wal_id_last_seen <= MAX_ID && m.replay_after_wal_id <= MAX_ID);
        assert!(m.l0.len() <= MAX_L0_SSTS && m.runs.len() <= MAX_RUNS && m.fences.len() <= MAX_FENCES);
        for run in &m.runs {
            assert!(run.ssts.len() <= MAX_SSTS_PER_RUN && run_epoch(run.id) <= m.compactor_epoch);
            assert!(run.ssts.windows(2).all(|w| w[0].last_key < w[1].first_key));
        }
        let again = ManifestObject::decode("m", &m.encode()).expect("re-encoded manifest decodes");
        assert_eq!(again, m);
    }
});
