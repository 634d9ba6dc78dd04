//! Objects crafted as an attacker with write access to the bucket would:
//! valid checksums, one hostile field. Each case was once accepted with a
//! wrong or stuck outcome (writes refused for good with fsck calling the
//! database clean, a writer blamed on an epoch no writer had, a writer
//! stalled at the L0 limit, `get` returning a stale value, a deleted one or
//! nothing); each is now an error naming the object and the field, and fsck
//! reports it. Every crafted case keeps the promise that a database fsck
//! finds clean opens for writing and takes a put. The values are the ones
//! that were reported; `hostile_bounds.rs` walks every field's bound.
#![cfg(not(loom))]

#[path = "common/craft.rs"]
mod craft;

use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use tidemark::internals::bounds::MAX_EPOCH;
use tidemark::internals::manifest::SstHandle;
use tidemark::internals::protocol::{WalHeader, WalKind, MAX_ID};
use tidemark::internals::wal_object::encode_wal;
use tidemark::{Db, Error, Settings};

use craft::*;

fn assert_corrupt_naming<T: std::fmt::Debug>(r: Result<T, Error>, path: &str, field: &str, what: &str) {
    match r {
        Err(Error::Corrupt { path: p, reason }) => {
            assert_eq!(p, path, "{what}: names the object");
            assert!(reason.contains(field), "{what}: {reason:?} does not name {field}");
        }
        other => panic!("{what}: want Corrupt naming {path} and {field}, got {other:?}"),
    }
}

fn assert_reported(problems: &[String], path: &str, field: &str, what: &str) {
    assert!(
        problems.iter().any(|p| p.contains(path) && p.contains(field)),
        "{what}: fsck reports no problem naming {path} and {field}: {problems:?}"
    );
}

/// A closed database holding `k = v` in an L0 SST.
async fn seeded() -> std::sync::Arc<dyn object_store::ObjectStore> {
    let store = store();
    write_closed(&store, settings(), &[("k", Some("v"))]).await;
    store
}

/// Epochs decode accepted although the arithmetic on them could not take
/// them: every put failed ("sequence number ... above the bound") or no
/// compaction succeeded, with fsck calling the database clean.
#[tokio::test]
async fn epochs_the_arithmetic_cannot_take_are_refused_by_name() {
    let cases: [(&str, u64); 4] =
        [("writer_epoch", 1 << 31), ("writer_epoch", 1 << 32), ("compactor_epoch", (1 << 32) - 1), ("compactor_epoch", 1 << 32)];
    for (field, value) in cases {
        let what = format!("{field} = {value}");
        let store = seeded().await;
        let mut m = latest(&store).await;
        match field {
            "writer_epoch" => m.writer_epoch = value,
            _ => m.compactor_epoch = value,
        }
        let path = put_next_manifest(&store, &mut m).await;
        let problems = fsck_clean_implies_writable(&store, settings(), &what).await;
        assert_reported(&problems, path.as_ref(), field, &what);
        let opened = tokio::time::timeout(Duration::from_secs(60), Db::open_with(ROOT, store.clone(), settings())).await;
        assert_corrupt_naming(opened.expect("the open returns"), path.as_ref(), field, &what);
    }
}

/// A writer that keeps writing while compaction cannot run stops with an
/// error naming the cause once L0 is full, instead of waiting forever.
/// Here an L0 SST a compaction must read is corrupt, and a
/// `compactor_epoch` at `MAX_EPOCH` leaves none to claim; one of 2^32 - 1
/// is refused at open.
#[tokio::test]
async fn a_compaction_that_can_never_succeed_fails_the_writes_that_wait_for_it() {
    let s = Settings::default()
        .with_gc_interval(Duration::ZERO)
        .with_l0_max_ssts(2)
        .with_l0_sst_size_bytes(1024)
        .with_max_unflushed_bytes(4096)
        .with_wal_size_bytes(1024);
    let store = store();
    write_closed(&store, s.clone(), &[("a", Some("1")), ("b", Some("2"))]).await;
    let m = latest(&store).await;
    let sst = layout().sst(&m.l0[0]);
    let mut bytes = get(&store, &sst).await.to_vec();
    bytes[10] ^= 0x40; // inside the first data block: its checksum fails
    put(&store, &sst, Bytes::from(bytes)).await;
    assert_reported(&fsck_problems(&store).await, sst.as_ref(), "checksum", "the corrupt SST");

    let db = Db::open_with(ROOT, store.clone(), s.clone()).await.unwrap();
    let (i, e) = tokio::time::timeout(Duration::from_secs(60), writes_until_refused(&db)).await.expect("the writer stalls at the L0 limit");
    match e {
        Error::Corrupt { path, reason } => {
            assert_eq!(path, sst.to_string(), "put {i}: names the object compaction cannot read");
            assert!(reason.contains("compaction cannot run"), "put {i}: {reason}");
        }
        other => panic!("put {i}: want Corrupt naming {sst}, got {other:?}"),
    }
    drop(db);

    let store = seeded().await;
    let mut m = latest(&store).await;
    m.compactor_epoch = (1 << 32) - 1;
    let path = put_next_manifest(&store, &mut m).await;
    let opened = tokio::time::timeout(Duration::from_secs(60), Db::open_with(ROOT, store.clone(), s.clone())).await;
    assert_corrupt_naming(opened.expect("the open returns"), path.as_ref(), "compactor_epoch", "compactor_epoch 2^32 - 1");

    // At `MAX_EPOCH` the manifest decodes (its data stays readable) and
    // fsck reports it; a writer opens, and once L0 is full its writes fail
    // naming the field, since no compactor epoch is left to claim.
    let store = seeded().await;
    let mut m = latest(&store).await;
    m.compactor_epoch = MAX_EPOCH;
    let path = put_next_manifest(&store, &mut m).await;
    assert_reported(&fsck_problems(&store).await, path.as_ref(), "compactor_epoch", "compactor_epoch MAX_EPOCH");
    let db = Db::open_with(ROOT, store.clone(), s).await.expect("a manifest at the bound opens");
    assert_eq!(db.get("k").await.unwrap().as_deref(), Some(&b"v"[..]), "its data stays readable");
    let (i, e) = tokio::time::timeout(Duration::from_secs(60), writes_until_refused(&db)).await.expect("the writer stalls at the L0 limit");
    match e {
        Error::Corrupt { reason, .. } => {
            assert!(reason.contains("compactor_epoch") && reason.contains("compaction cannot run"), "put {i}: {reason}")
        }
        other => panic!("put {i}: want Corrupt naming compactor_epoch, got {other:?}"),
    }
}

/// Puts until one is refused: the index of that put and its error.
async fn writes_until_refused(db: &Db) -> (usize, Error) {
    for i in 0..10_000 {
        if let Err(e) = db.put(format!("key{i:05}"), "x".repeat(200)).await {
            return (i, e);
        }
    }
    panic!("10,000 puts succeeded with compaction failing");
}

/// A data WAL on the chain whose epoch is above every manifest's: its data
/// was read, fsck called the database clean, and every open for writing
/// failed as `Fenced` by a writer that never existed.
#[tokio::test]
async fn a_wal_of_an_epoch_no_manifest_records_is_corrupt_not_a_fence() {
    for above in [1000, MAX_ID] {
        let store = seeded().await;
        let m = latest(&store).await;
        let epoch = if above == MAX_ID { MAX_ID } else { m.writer_epoch + above };
        let at = next_wal_id(&store, &m).await;
        let path = layout().wal(at);
        let seq = if above == MAX_ID { 1 } else { epoch << 32 };
        let entries = [(Bytes::from("ghost"), seq, tidemark::internals::value::Value::Put(Bytes::from("boo")))];
        put(&store, &path, encode_wal(WalHeader { writer_epoch: epoch, kind: WalKind::Data }, 1, entries, 4096, &None).expect("entries without merge operands")).await;
        let what = format!("a WAL of epoch {epoch}");
        let problems = fsck_clean_implies_writable(&store, settings(), &what).await;
        assert_reported(&problems, path.as_ref(), "writer_epoch", &what);
        assert_corrupt_naming(Db::open_read_only(ROOT, store.clone()).await, path.as_ref(), "writer_epoch", &what);
        assert_corrupt_naming(Db::open_with(ROOT, store.clone(), settings()).await, path.as_ref(), "writer_epoch", &what);
    }
}

/// A database with an older L0 SST (`old` values) under a newer one that
/// overwrites `a1`, deletes `m5`, and alone holds `q7`, over several
/// blocks; returns the store and the newer SST's path.
async fn two_l0_ssts() -> (std::sync::Arc<dyn object_store::ObjectStore>, Path) {
    let store = store();
    let s = settings().with_compactor(false);
    write_closed(&store, s.clone(), &[("a1", Some("old")), ("m5", Some("old")), ("q7", None)]).await;
    let mut newer: Vec<(String, Option<String>)> = (0..20).map(|i| (format!("c{i:02}"), Some(format!("value{i:02}")))).collect();
    newer.push(("a1".into(), Some("new".into())));
    newer.push(("m5".into(), None));
    newer.push(("q7".into(), Some("only-here".into())));
    let pairs: Vec<(&str, Option<&str>)> = newer.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
    write_closed(&store, s, &pairs).await;
    let m = latest(&store).await;
    assert_eq!(m.l0.len(), 2, "two L0 SSTs: {m:?}");
    (store, layout().sst(&m.l0[0]))
}

/// What every crafted SST case must give: `get` of each key the newer SST
/// decides is an error naming it (never the stale value, the deleted one
/// brought back, or nothing), and so is a scan of just that key if
/// `range_scans` (a scan trusts the index entries of blocks it does not
/// read), the whole scan fails, fsck reports it.
async fn assert_reads_refuse(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    sst: &Path,
    keys: &[&str],
    range_scans: bool,
    what: &str,
) {
    let db = Db::open_read_only(ROOT, store.clone()).await.unwrap();
    for key in keys {
        match db.get(key).await {
            Err(Error::Corrupt { path, .. }) => assert_eq!(path, sst.to_string(), "{what}: get {key}"),
            other => panic!("{what}: get {key} gave {other:?}, not an error naming {sst}"),
        }
        if range_scans {
            let k = Bytes::copy_from_slice(key.as_bytes());
            let scanned = match db.scan(k.clone()..=k).await {
                Ok(it) => it.collect_vec().await,
                Err(e) => Err(e),
            };
            assert!(matches!(&scanned, Err(Error::Corrupt { path, .. }) if *path == sst.to_string()), "{what}: scan of {key}: {scanned:?}");
        }
    }
    let scanned = match db.scan(..).await {
        Ok(it) => it.collect_vec().await,
        Err(e) => Err(e),
    };
    assert!(scanned.is_err(), "{what}: the scan succeeded: {scanned:?}");
    let problems = fsck_clean_implies_writable(store, settings(), what).await;
    assert!(problems.iter().any(|p| p.contains(sst.as_ref())), "{what}: fsck does not name {sst}: {problems:?}");
}

/// An L0 handle's key range narrowed in the manifest: `get` skipped the SST
/// for keys outside it.
#[tokio::test]
async fn a_narrowed_l0_handle_is_an_error_not_a_stale_read() {
    for (first, last) in [("c00", "q7"), ("a1", "c19"), ("c00", "c19")] {
        let (store, sst) = two_l0_ssts().await;
        let mut m = latest(&store).await;
        let h: &mut SstHandle = &mut m.l0[0];
        h.first_key = Bytes::from(first);
        h.last_key = Bytes::from(last);
        put_next_manifest(&store, &mut m).await;
        let keys: Vec<&str> = ["a1", "m5", "q7"].into_iter().filter(|k| *k < first || *k > last).collect();
        assert_reads_refuse(&store, &sst, &keys, true, &format!("handle narrowed to {first}..={last}")).await;
    }
}

/// An index entry narrowed: a block's entry records a last key before the
/// block's real one, so a read of that key found no block.
#[tokio::test]
async fn a_narrowed_index_entry_is_an_error_not_a_missed_key() {
    let (store, sst) = two_l0_ssts().await;
    let mut parts = SstParts::parse(&get(&store, &sst).await);
    assert!(parts.index.len() >= 3, "several blocks: {}", parts.index.len());
    let keys = keys(&parts);
    // Block 1's last key, narrowed to the key before it.
    let last = parts.index[1].1.clone();
    let before = keys[keys.iter().position(|k| *k == last).unwrap() - 1].clone();
    assert!(before >= parts.index[1].0, "block 1 has two keys");
    parts.index[1].1 = before;
    let bytes = parts.build();
    let mut m = latest(&store).await;
    m.l0[0].size = bytes.len() as u64;
    put(&store, &sst, bytes).await;
    put_next_manifest(&store, &mut m).await;
    let key = String::from_utf8(last).unwrap();
    assert_reads_refuse(&store, &sst, &[key.as_str()], false, "an index entry narrowed").await;
}

/// A bloom filter lacking the key a read looks for (here the SST's first,
/// which the index names), or built over no keys: `get` trusted its "no".
#[tokio::test]
async fn a_bloom_filter_lacking_a_key_or_over_no_keys_is_an_error_not_a_stale_read() {
    for lacking in ["a1", "*"] {
        let (store, sst) = two_l0_ssts().await;
        let mut parts = SstParts::parse(&get(&store, &sst).await);
        let all = keys(&parts);
        let kept: Vec<&[u8]> = all.iter().map(|k| k.as_slice()).filter(|k| lacking != "*" && *k != lacking.as_bytes()).collect();
        parts.filter = bloom(&kept);
        let reads: Vec<&str> = if lacking == "*" { vec!["a1", "m5", "q7"] } else { vec!["a1"] };
        assert!(reads.iter().all(|k| !may_contain(&parts.filter, k.as_bytes())), "the filter holds a key by chance");
        let bytes = parts.build();
        let mut m = latest(&store).await;
        m.l0[0].size = bytes.len() as u64;
        put(&store, &sst, bytes).await;
        put_next_manifest(&store, &mut m).await;
        assert_reads_refuse(&store, &sst, &reads, true, &format!("a filter lacking {lacking}")).await;
    }
}

/// A sorted run's SST handle narrowed: a key between the narrowed handle
/// and its neighbour's fell in a gap no SST claimed; the read opens the
/// SSTs on either side of the gap, and the narrowed one fails its check.
#[tokio::test]
async fn a_narrowed_run_handle_is_an_error_not_a_missed_key() {
    let store = store();
    let s = settings().with_compacted_sst_size_bytes(200);
    let pairs: Vec<(String, Option<&str>)> = (0..40).map(|i| (format!("r{i:02}"), Some("run"))).collect();
    let pairs: Vec<(&str, Option<&str>)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    write_closed(&store, s.clone(), &pairs[..20]).await;
    write_closed(&store, s.clone(), &pairs[20..]).await;
    let mut m = latest(&store).await;
    assert!(m.l0.is_empty() && m.runs.len() == 1 && m.runs[0].ssts.len() >= 3, "a run of several SSTs: {m:?}");
    let h = &mut m.runs[0].ssts[1];
    let sst = layout().sst(&h);
    let hidden = String::from_utf8(h.last_key.to_vec()).unwrap();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    let before = keys[keys.iter().position(|k| *k == hidden).unwrap() - 1];
    assert!(before.as_bytes() >= h.first_key.as_ref(), "the SST holds two keys");
    h.last_key = Bytes::from(before.to_string());
    put_next_manifest(&store, &mut m).await;
    assert_reads_refuse(&store, &sst, &[hidden.as_str()], true, "a run handle narrowed").await;
}

/// A manifest with more L0 entries than a read should ever consult (the
/// report had a million, 29 MB, and reads of minutes): refused by name.
#[tokio::test]
async fn a_manifest_with_thousands_of_l0_entries_is_refused_by_name() {
    for n in [257usize, 1000] {
        let store = seeded().await;
        let mut m = latest(&store).await;
        let template = m.l0[0].clone();
        m.l0 = (0..n as u128).map(|i| SstHandle { id: template.id + 1 + i, ..template.clone() }).collect();
        let path = put_next_manifest(&store, &mut m).await;
        let what = format!("{n} L0 entries");
        assert_corrupt_naming(Db::open_read_only(ROOT, store.clone()).await, path.as_ref(), "l0 holds", &what);
        let problems = fsck_clean_implies_writable(&store, settings(), &what).await;
        assert_reported(&problems, path.as_ref(), "l0 holds", &what);
    }
}
