//! Bad and hostile data: every byte flip and truncation of small WAL, SST and
//! manifest objects, empty objects, future format versions and random bytes
//! give `Error::Corrupt` naming the object — never a panic or a wrong read.
#![cfg(not(loom))]

use bytes::Bytes;
use object_store::path::Path;
use proptest::prelude::*;
use tidemark::manifest::{ManifestObject, SstHandle, MANIFEST_FORMAT_VERSION};
use tidemark::protocol::{WalHeader, WalKind};
use tidemark::sst::{decode_all, SstBuilder};
use tidemark::wal_object::{decode_wal, encode_wal};
use tidemark::Error;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn small_wal() -> Bytes {
    let header = WalHeader { writer_epoch: 7, kind: WalKind::Data };
    encode_wal(header, 42, vec![(b("alpha"), Some(b("1"))), (b("beta"), None), (b("gamma"), Some(b("333")))], 64)
}

fn small_sst() -> Bytes {
    let mut builder = SstBuilder::new(64);
    for i in 0..12 {
        builder.add(Bytes::from(format!("key{i:02}")), Some(Bytes::from(format!("value{i}")))).unwrap();
    }
    builder.finish(b"meta")
}

fn small_manifest() -> ManifestObject {
    let sst = |id: u128, epoch: u64| SstHandle { id, writer_epoch: epoch, size: 900, first_key: b("a"), last_key: b("z") };
    ManifestObject {
        version: 9,
        writer_epoch: 3,
        compactor_epoch: 1,
        token: 77,
        wal_id_last_seen: 130,
        replay_after_wal_id: 66,
        writer_closed: false,
        fences: vec![12],
        next_run_id: 2,
        l0: vec![sst(3, 2), sst(2, 1)],
        runs: vec![tidemark::manifest::SortedRun { id: 1, ssts: vec![sst(1, 1)] }],
    }
}

fn assert_corrupt(result: Result<impl std::fmt::Debug, Error>, path: &str, what: &str) {
    match result {
        Err(Error::Corrupt { path: p, .. }) => assert_eq!(p, path, "{what}"),
        other => panic!("{what}: expected Corrupt naming {path}, got {other:?}"),
    }
}

#[test]
fn every_byte_flip_of_a_small_wal_is_detected() {
    let obj = small_wal();
    let path = Path::from("db/wal/00000000000000000005.sst");
    assert!(decode_wal(&path, obj.clone()).is_ok());
    for i in 0..obj.len() {
        let mut bad = obj.to_vec();
        bad[i] ^= 0x01;
        assert_corrupt(decode_wal(&path, Bytes::from(bad)), path.as_ref(), &format!("flip at byte {i}"));
    }
    for len in 0..obj.len() {
        assert_corrupt(decode_wal(&path, obj.slice(..len)), path.as_ref(), &format!("truncated to {len}"));
    }
}

#[test]
fn every_byte_flip_of_a_small_sst_is_detected() {
    let obj = small_sst();
    let path = Path::from("db/compacted/00000000000000000001.sst");
    let (meta, entries) = decode_all(&path, obj.clone()).unwrap();
    assert_eq!((meta.as_ref(), entries.len()), (&b"meta"[..], 12));
    for i in 0..obj.len() {
        let mut bad = obj.to_vec();
        bad[i] ^= 0x80;
        assert_corrupt(decode_all(&path, Bytes::from(bad)), path.as_ref(), &format!("flip at byte {i}"));
    }
    for len in 0..obj.len() {
        assert_corrupt(decode_all(&path, obj.slice(..len)), path.as_ref(), &format!("truncated to {len}"));
    }
}

#[test]
fn every_byte_flip_of_a_manifest_is_detected() {
    let obj = small_manifest().encode();
    let path = "db/manifest/00000000000000000009.manifest";
    assert_eq!(ManifestObject::decode(path, &obj).unwrap(), small_manifest());
    for i in 0..obj.len() {
        let mut bad = obj.to_vec();
        bad[i] ^= 0x10;
        assert_corrupt(ManifestObject::decode(path, &bad), path, &format!("flip at byte {i}"));
    }
    for len in 0..obj.len() {
        assert_corrupt(ManifestObject::decode(path, &obj[..len]), path, &format!("truncated to {len}"));
    }
}

/// Every format version but this build's is refused by name (issue 17,
/// case 5): older layouts are not misread as the current one.
#[test]
fn manifests_of_other_format_versions_are_refused_by_name() {
    for version in [0u16, 1, 2, MANIFEST_FORMAT_VERSION + 1, u16::MAX] {
        if version == MANIFEST_FORMAT_VERSION {
            continue;
        }
        let mut obj = small_manifest().encode().to_vec();
        obj[4..6].copy_from_slice(&version.to_le_bytes());
        let n = obj.len() - 4;
        let crc = crc32c::crc32c(&obj[..n]);
        obj[n..].copy_from_slice(&crc.to_le_bytes());
        match ManifestObject::decode("m", &obj) {
            Err(Error::Corrupt { reason, .. }) => assert!(
                reason.contains(&format!("unsupported manifest format version {version} (this build reads {MANIFEST_FORMAT_VERSION})")),
                "{reason}"
            ),
            other => panic!("expected Corrupt for version {version}, got {other:?}"),
        }
    }
}

#[test]
fn empty_objects_are_corrupt() {
    assert_corrupt(decode_wal(&Path::from("w"), Bytes::new()), "w", "empty WAL");
    assert_corrupt(decode_all(&Path::from("s"), Bytes::new()), "s", "empty SST");
    assert_corrupt(ManifestObject::decode("m", &[]), "m", "empty manifest");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Decoders return an error, never panic, on arbitrary bytes.
    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let data = Bytes::from(bytes);
        let _ = decode_wal(&Path::from("w"), data.clone());
        let _ = decode_all(&Path::from("s"), data.clone());
        let _ = ManifestObject::decode("m", &data);
    }

    /// Arbitrary damage to a valid WAL (several flips) is still detected.
    #[test]
    fn damaged_wals_are_detected(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6)) {
        let obj = small_wal();
        let mut bad = obj.to_vec();
        for (i, x) in &flips {
            let at = i.index(bad.len());
            bad[at] ^= x;
        }
        if bad != obj.to_vec() {
            let detected = matches!(decode_wal(&Path::from("w"), Bytes::from(bad)), Err(Error::Corrupt { .. }));
            prop_assert!(detected, "damage went undetected");
        }
    }
}
