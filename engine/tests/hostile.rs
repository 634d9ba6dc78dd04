//! Bad and hostile data: every byte flip and truncation of small WAL, SST and
//! manifest objects, empty objects, future format versions and random bytes
//! give `Error::Corrupt` naming the object — never a panic or a wrong read.
#![cfg(not(loom))]

use bytes::Bytes;
use object_store::path::Path;
use proptest::prelude::*;
use tidemark::internals::manifest::{ManifestObject, SstHandle, MANIFEST_FORMAT_VERSION};
use tidemark::internals::protocol::{WalHeader, WalKind};
use tidemark::internals::sst::{decode_all, SstBuilder};
use tidemark::internals::wal_object::{decode_wal, encode_wal};
use tidemark::Error;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn small_wal() -> Bytes {
    let header = WalHeader { writer_epoch: 7, kind: WalKind::Data };
    let s = 7 << 32; // epoch 7's sequence numbers
    encode_wal(header, 42, vec![(b("alpha"), s + 1, tidemark::internals::value::Value::Put(b("1"))), (b("beta"), s + 2, tidemark::internals::value::Value::Delete), (b("gamma"), s + 3, tidemark::internals::value::Value::Put(b("333")))], 64, &None).expect("entries without merge operands")
}

fn small_sst() -> Bytes {
    let mut builder = SstBuilder::new(64);
    for i in 0..12 {
        builder.add(Bytes::from(format!("key{i:02}")), i, tidemark::internals::value::Value::from_option(Some(Bytes::from(format!("value{i}"))))).unwrap();
    }
    builder.finish(b"meta")
}

fn small_manifest() -> ManifestObject {
    let sst = |id: u128, epoch: u64| SstHandle { id, owner: tidemark::SstOwner::Writer, epoch, size: 900, first_key: b("a"), last_key: b("z") };
    ManifestObject {
        version: 9,
        writer_epoch: 3,
        compactor_epoch: 1,
        token: 77,
        wal_id_last_seen: 130,
        replay_after_wal_id: 66,
        writer_closed: false,
        fences: vec![12],
        l0: vec![sst(3, 2), sst(2, 1)],
        runs: vec![tidemark::internals::manifest::SortedRun { id: 1, ssts: vec![sst(1, 1)] }],
        ..ManifestObject::empty()
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

/// Crafting SSTs whose checksums are valid but whose sections disagree, to
/// reach the structure behind the checksums (issue 17, cases 2 to 5).
mod craft {
    use bytes::Bytes;

    pub const MAGIC: u32 = 0x5444_4d4b;

    /// The filter as `sst::bloom` builds it (k = 7, 10 bits per key).
    pub fn bloom(keys: &[&str], k: u8) -> Vec<u8> {
        let nbits = (keys.len() * 10).max(64).next_multiple_of(8);
        let mut bits = vec![0u8; nbits / 8];
        for key in keys {
            let (h1, h2) = hashes(key.as_bytes());
            for i in 0..u32::from(k) {
                let bit = h1.wrapping_add(i.wrapping_mul(h2)) as usize % nbits;
                bits[bit / 8] |= 1 << (bit % 8);
            }
        }
        let mut out = vec![k];
        out.extend_from_slice(&bits);
        out
    }

    fn hashes(key: &[u8]) -> (u32, u32) {
        (crc32c::crc32c(key), crc32c::crc32c_append(0x9e37_79b9, key) | 1)
    }

    pub fn may_contain(filter: &[u8], key: &str) -> bool {
        let (k, bits) = (filter[0], &filter[1..]);
        let nbits = bits.len() * 8;
        let (h1, h2) = hashes(key.as_bytes());
        (0..u32::from(k)).all(|i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) as usize % nbits;
            bits[bit / 8] & (1 << (bit % 8)) != 0
        })
    }

    pub fn seal(mut body: Vec<u8>) -> Vec<u8> {
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    /// An SST: `blocks` in this physical order; `index` gives each block's
    /// (first, last) key as the index records it (default: the real ones);
    /// `filter` the filter body (default: over every key).
    pub struct Raw<'a> {
        pub blocks: Vec<Vec<(&'a str, &'a str)>>,
        pub index: Option<Vec<(&'a str, &'a str)>>,
        pub filter: Option<Vec<u8>>,
        pub meta: Vec<u8>,
        pub version: u16,
    }

    impl<'a> Raw<'a> {
        pub fn new(blocks: Vec<Vec<(&'a str, &'a str)>>) -> Self {
            Raw { blocks, index: None, filter: None, meta: Vec::new(), version: 2 }
        }

        pub fn build(&self) -> Bytes {
            let mut out = Vec::new();
            let mut index: Vec<(Vec<u8>, Vec<u8>, u64, u32)> = Vec::new();
            for (i, block) in self.blocks.iter().enumerate() {
                let mut body = Vec::new();
                for (k, v) in block {
                    body.extend_from_slice(&(k.len() as u32).to_le_bytes());
                    body.extend_from_slice(k.as_bytes());
                    body.extend_from_slice(&1u64.to_le_bytes()); // seq
                    body.push(1);
                    body.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    body.extend_from_slice(v.as_bytes());
                }
                let sealed = seal(body);
                let (first, last) = match &self.index {
                    Some(ix) => ix[i],
                    None => (block[0].0, block[block.len() - 1].0),
                };
                index.push((first.as_bytes().to_vec(), last.as_bytes().to_vec(), out.len() as u64, sealed.len() as u32));
                out.extend_from_slice(&sealed);
            }
            let keys: Vec<&str> = self.blocks.iter().flatten().map(|(k, _)| *k).collect();
            let index_off = out.len() as u64;
            let index = seal(postcard::to_stdvec(&index).unwrap());
            let filter = seal(self.filter.clone().unwrap_or_else(|| bloom(&keys, 7)));
            let meta = seal(self.meta.clone());
            out.extend_from_slice(&index);
            out.extend_from_slice(&filter);
            out.extend_from_slice(&meta);
            let mut footer = Vec::new();
            footer.extend_from_slice(&MAGIC.to_le_bytes());
            footer.extend_from_slice(&self.version.to_le_bytes());
            footer.extend_from_slice(&0u16.to_le_bytes());
            footer.extend_from_slice(&index_off.to_le_bytes());
            footer.extend_from_slice(&(index.len() as u32).to_le_bytes());
            footer.extend_from_slice(&(filter.len() as u32).to_le_bytes());
            footer.extend_from_slice(&(meta.len() as u32).to_le_bytes());
            out.extend_from_slice(&seal(footer));
            Bytes::from(out)
        }
    }
}

mod crafted {
    use std::ops::Bound;

    use bytes::Bytes;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
    use tidemark::internals::protocol::{WalHeader, WalKind};
    use tidemark::internals::sst::{decode_all, SstReader};
    use tidemark::internals::sync::StdArc;
    use tidemark::internals::wal_object::{decode_wal, encode_wal};
    use tidemark::Error;

    use super::craft::{bloom, may_contain, Raw};

    const ALL: (Bound<Bytes>, Bound<Bytes>) = (Bound::Unbounded, Bound::Unbounded);

    async fn open(bytes: Bytes) -> (Path, Result<SstReader, Error>) {
        let store: StdArc<dyn ObjectStore> = StdArc::new(InMemory::new());
        let path = Path::from("db/compacted/x.sst");
        store.put(&path, PutPayload::from(bytes)).await.unwrap();
        let r = SstReader::open(store, path.clone(), None).await;
        (path, r)
    }

    fn corrupt_with<T: std::fmt::Debug>(r: Result<T, Error>, path: &Path, needle: &str) {
        match r {
            Err(Error::Corrupt { path: p, reason }) => {
                assert_eq!(p, path.as_ref());
                assert!(reason.contains(needle), "{reason:?} does not say {needle:?}");
            }
            other => panic!("expected Corrupt ({needle}), got {other:?}"),
        }
    }

    fn blocks() -> Vec<Vec<(&'static str, &'static str)>> {
        vec![vec![("a", "1"), ("b", "2")], vec![("c", "3"), ("d", "4")]]
    }

    /// The control: the crafter builds what the reader accepts.
    #[tokio::test]
    async fn a_well_formed_crafted_sst_reads_back() {
        let (_, r) = open(Raw::new(blocks()).build()).await;
        let r = r.unwrap();
        assert_eq!(r.get(b"c").await.unwrap(), Some(tidemark::internals::value::Value::Put(Bytes::from("3"))));
        assert_eq!(r.scan(&ALL).await.unwrap().len(), 4);
    }

    /// A filter that lacks a key inside a block (neither its first nor its
    /// last, which the open checks): `get` trusts the filter's "no" (it
    /// reads no block), while `scan` used to return the value: the reader
    /// checks every key of every block it reads against the filter, so the
    /// scan is an error instead of disagreeing, and fsck finds it.
    #[tokio::test]
    async fn a_bloom_filter_lacking_a_key_fails_the_read_that_would_disagree() {
        let filter = bloom(&["a", "c", "d", "e"], 7);
        assert!(!may_contain(&filter, "b"), "pick another key: the filter holds b by chance");
        let mut raw = Raw::new(vec![vec![("a", "1"), ("b", "2"), ("c", "3")], vec![("d", "4"), ("e", "5")]]);
        raw.filter = Some(filter);
        let bytes = raw.build();
        let (path, r) = open(bytes.clone()).await;
        let r = r.unwrap();
        corrupt_with(r.scan(&ALL).await, &path, "bloom filter lacks key");
        corrupt_with(r.get(b"a").await, &path, "bloom filter lacks key");
        assert_eq!(r.get(b"b").await.unwrap(), None, "the stated limit: a point read trusts the filter's no");
        assert_eq!(r.get(b"d").await.unwrap(), Some(tidemark::internals::value::Value::Put(Bytes::from("4"))), "the other block is sound");
        corrupt_with(decode_all(&path, bytes), &path, "bloom filter lacks key");
    }

    /// A filter that lacks a key the index names (a block's first or last),
    /// or that was built over no keys at all, is refused when the SST is
    /// opened: no point read trusts its "no".
    #[tokio::test]
    async fn a_bloom_filter_lacking_a_key_the_index_names_is_refused_at_open() {
        let cases: [(&[&str], &str); 4] = [(&["a", "c", "d"], "b"), (&["b", "c", "d"], "a"), (&["a", "b", "c"], "d"), (&[], "a")];
        for (keys, lacking) in cases {
            let filter = bloom(keys, 7);
            assert!(!may_contain(&filter, lacking), "the filter holds {lacking} by chance");
            let mut raw = Raw::new(blocks());
            raw.filter = Some(filter);
            let (path, r) = open(raw.build()).await;
            corrupt_with(r, &path, "bloom filter lacks key");
        }
    }

    /// A filter this build could not have written (k = 0 passes every key:
    /// harmless; k = 200 or no bits) is refused when the SST is opened.
    #[tokio::test]
    async fn a_malformed_bloom_filter_is_refused_at_open() {
        for filter in [vec![], vec![7], bloom(&["a"], 200), bloom(&["a"], 0)] {
            let mut raw = Raw::new(blocks());
            raw.filter = Some(filter);
            let (path, r) = open(raw.build()).await;
            corrupt_with(r, &path, "bloom filter");
        }
    }

    /// Issue 17, case 3: index entries out of order. In physical order with
    /// descending keys the open refuses them; an index that claims sorted
    /// spans its blocks do not hold makes the read an error, never an
    /// unsorted scan or a missed key.
    #[tokio::test]
    async fn index_entries_out_of_order_never_give_an_unsorted_scan_or_a_missed_key() {
        let swapped = vec![vec![("c", "3"), ("d", "4")], vec![("a", "1"), ("b", "2")]];
        let (path, r) = open(Raw::new(swapped.clone()).build()).await;
        corrupt_with(r, &path, "out of order");
        let mut lying = Raw::new(swapped);
        lying.index = Some(vec![("a", "b"), ("c", "d")]);
        let bytes = lying.build();
        let (path, r) = open(bytes.clone()).await;
        let r = r.unwrap();
        corrupt_with(r.scan(&ALL).await, &path, "disagree with the index");
        for key in ["a", "b", "c", "d"] {
            corrupt_with(r.get(key.as_bytes()).await, &path, "disagree with the index");
        }
        corrupt_with(decode_all(&path, bytes), &path, "disagree with the index");
    }

    /// The header of a WAL of epoch 0, whose sequence numbers include the
    /// crafted entries' (1).
    fn wal_meta() -> Vec<u8> {
        let wal = encode_wal(WalHeader { writer_epoch: 0, kind: WalKind::Data }, 42, [], 4096, &None).expect("entries without merge operands");
        decode_all(&Path::from("w"), wal).unwrap().0.to_vec()
    }

    /// Issue 17, case 4: `decode_wal` refuses entries unsorted or repeated
    /// across blocks (each block alone is sorted; the index claims sorted,
    /// disjoint spans, which the old decoder never compared with the blocks).
    #[test]
    fn wal_entries_unsorted_or_repeated_across_blocks_are_corrupt() {
        let path = Path::from("db/wal/00000000000000000003.sst");
        let mut ok = Raw::new(vec![vec![("a", "1")], vec![("b", "2")]]);
        ok.meta = wal_meta();
        assert_eq!(decode_wal(&path, ok.build()).unwrap().entries.len(), 2, "the control decodes");
        let cases: [(Vec<Vec<(&str, &str)>>, &str); 3] = [
            (vec![vec![("b", "2")], vec![("a", "1")]], "unsorted"),
            (vec![vec![("a", "1")], vec![("a", "2")]], "repeated"),
            (vec![vec![("a", "1"), ("c", "3")], vec![("b", "2"), ("d", "4")]], "interleaved"),
        ];
        for (blocks, what) in cases {
            let mut raw = Raw::new(blocks);
            raw.index = Some(vec![("a", "a"), ("b", "b")]);
            if what == "interleaved" {
                raw.index = Some(vec![("a", "c"), ("d", "d")]);
            }
            raw.meta = wal_meta();
            match decode_wal(&path, raw.build()) {
                Err(Error::Corrupt { path: p, .. }) => assert_eq!(p, path.as_ref(), "{what}"),
                other => panic!("{what}: expected Corrupt, got {other:?}"),
            }
        }
    }

    /// Issue 17, case 5: SST and WAL header format versions other than this
    /// build's are refused by name.
    #[test]
    fn ssts_and_wal_headers_of_other_format_versions_are_refused_by_name() {
        let path = Path::from("s");
        for version in [0u16, 1, 5, u16::MAX] {
            let mut raw = Raw::new(blocks());
            raw.version = version;
            corrupt_with(
                decode_all(&path, raw.build()),
                &path,
                &format!("unsupported SST format version {version} (this build reads 2 to 4)"),
            );
        }
        for version in [0u16, 1, 300] {
            // postcard: the u16 format_version is the first field, a varint.
            let mut meta = postcard::to_stdvec(&version).unwrap();
            meta.extend_from_slice(&wal_meta()[1..]);
            let mut raw = Raw::new(blocks());
            raw.meta = meta;
            corrupt_with(
                decode_wal(&path, raw.build()),
                &path,
                &format!("unsupported WAL header format version {version} (this build reads 2)"),
            );
        }
    }
}
