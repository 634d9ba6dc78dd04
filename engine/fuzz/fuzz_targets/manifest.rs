#![no_main]
//! `ManifestObject::decode`: never panics; what it accepts is within the
//! bounds (every id, epoch and version at most `MAX_ID`, runs in key order)
//! and round-trips through `encode`.
use libfuzzer_sys::fuzz_target;
use tidemark::internals::manifest::ManifestObject;
use tidemark::internals::protocol::MAX_ID;
use tidemark_fuzz::{prepare, reseal_manifest};

fuzz_target!(|data: &[u8]| {
    let Some((obj, _)) = prepare(data, reseal_manifest) else { return };
    if let Ok(m) = ManifestObject::decode("manifest/1.manifest", &obj) {
        assert!(m.version <= MAX_ID && m.writer_epoch <= MAX_ID && m.compactor_epoch <= MAX_ID);
        assert!(m.wal_id_last_seen <= MAX_ID && m.replay_after_wal_id <= MAX_ID);
        for run in &m.runs {
            assert!(run.ssts.windows(2).all(|w| w[0].last_key < w[1].first_key));
        }
        let again = ManifestObject::decode("m", &m.encode()).expect("re-encoded manifest decodes");
        assert_eq!(again, m);
    }
});
