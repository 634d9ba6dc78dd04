//! Every stored numeric field at its decode bound and just above it
//! (`tidemark::internals::bounds`), in a real database: above the bound the
//! object is refused and fsck reports it naming the field; at the bound it
//! decodes; and in every case, a database fsck finds clean opens for
//! writing and takes a put.
#![cfg(not(loom))]

#[path = "common/craft.rs"]
mod craft;

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::ObjectStore;
use tidemark::internals::bounds::{
    max_sst_bytes, run_id, seq_range, MAX_EPOCH, MAX_FENCES, MAX_ID, MAX_L0_SSTS, MAX_RUNS, MAX_SEQ, MAX_SSTS_PER_RUN,
};
use tidemark::internals::manifest::{ManifestObject, SortedRun, SstHandle};
use tidemark::internals::protocol::{WalHeader, WalKind};
use tidemark::internals::sst::SstBuilder;
use tidemark::internals::wal_object::{decode_wal, encode_wal};

use craft::*;

/// A closed database with a sorted run (a compaction at the second close)
/// and an L0 SST over it.
async fn seeded() -> Arc<dyn ObjectStore> {
    let store = store();
    write_closed(&store, settings(), &[("a", Some("1")), ("b", Some("2"))]).await;
    write_closed(&store, settings(), &[("c", Some("3")), ("a", Some("4"))]).await;
    write_closed(&store, settings(), &[("d", Some("5"))]).await;
    let m = latest(&store).await;
    assert!(m.runs.len() == 1 && m.l0.len() == 1 && m.compactor_epoch >= 1, "a run and an L0 SST: {m:?}");
    store
}

type SetField = Box<dyn Fn(&mut ManifestObject, u64)>;
type MakeWal = Box<dyn Fn(&ManifestObject, u64) -> Bytes>;

/// How a case writes its hostile field into the database.
enum Craft {
    /// A manifest field (written as the next version).
    Manifest(SetField),
    /// The version itself (written under its own name).
    Version,
    /// A WAL at the chain's next position, from the latest manifest and the value.
    Wal(MakeWal),
    /// A valid WAL named by the value.
    WalName,
    /// An L0 SST with one entry of the value as its sequence number.
    EntrySeq,
}

struct Case {
    field: &'static str,
    bound: u64,
    craft: Craft,
}

fn handle_like(h: &SstHandle, id: u128, key: usize) -> SstHandle {
    let k = Bytes::from(format!("k{key:08}"));
    SstHandle { id, first_key: k.clone(), last_key: k, ..h.clone() }
}

fn cases() -> Vec<Case> {
    let m = |f: fn(&mut ManifestObject, u64)| Craft::Manifest(Box::new(f));
    vec![
        Case { field: "version", bound: MAX_ID, craft: Craft::Version },
        Case { field: "writer_epoch", bound: MAX_EPOCH, craft: m(|m, v| m.writer_epoch = v) },
        Case { field: "compactor_epoch", bound: MAX_EPOCH, craft: m(|m, v| m.compactor_epoch = v) },
        Case { field: "wal_id_last_seen", bound: MAX_ID, craft: m(|m, v| m.wal_id_last_seen = v) },
        Case { field: "replay_after_wal_id", bound: MAX_ID, craft: m(|m, v| m.replay_after_wal_id = v) },
        Case { field: "fences", bound: MAX_ID, craft: m(|m, v| m.fences.push(v)) },
        Case { field: "fences holds", bound: MAX_FENCES as u64, craft: m(|m, n| m.fences = vec![1; n as usize]) },
        Case {
            field: "l0 holds",
            bound: MAX_L0_SSTS as u64,
            craft: m(|m, n| {
                let h = m.l0[0].clone();
                m.l0 = (0..n as u128).map(|i| SstHandle { id: h.id + 1000 + i, ..h.clone() }).collect();
            }),
        },
        Case {
            field: "runs holds",
            bound: MAX_RUNS as u64,
            craft: m(|m, n| {
                let run = m.runs[0].clone();
                let epoch = m.compactor_epoch;
                m.runs = (0..n)
                    .map(|i| SortedRun {
                        id: run_id(epoch, i + 1).unwrap(),
                        ssts: vec![SstHandle { id: run.ssts[0].id + 1000 + u128::from(i), ..run.ssts[0].clone() }],
                    })
                    .collect();
            }),
        },
        Case {
            field: "SSTs, above the bound",
            bound: MAX_SSTS_PER_RUN as u64,
            craft: m(|m, n| {
                let h = m.runs[0].ssts[0].clone();
                m.runs[0].ssts = (0..n as usize).map(|i| handle_like(&h, h.id + 1000 + i as u128, i)).collect();
            }),
        },
        Case {
            field: "sorted run id",
            bound: 0, // the last run id of compactor_epoch: set from the manifest
            craft: m(|m, above| m.runs[0].id = run_id(m.compactor_epoch, u64::from(u32::MAX)).unwrap() + above),
        },
        Case { field: "has epoch", bound: MAX_EPOCH, craft: m(|m, v| m.l0[0].epoch = v) },
        Case { field: "more than an SST may hold", bound: max_sst_bytes(&settings()), craft: m(|m, v| m.l0[0].size = v) },
        Case {
            field: "writer_epoch",
            bound: MAX_EPOCH,
            craft: Craft::Wal(Box::new(|_, v| {
                let entries = [(Bytes::from("w"), seq_range(v).map_or(1, |r| *r.start()), tidemark::internals::value::Value::Put(Bytes::from("x")))];
                encode_wal(WalHeader { writer_epoch: v, kind: WalKind::Data }, 1, entries, 4096, &None).expect("entries without merge operands")
            })),
        },
        Case {
            field: "next_wal_id",
            bound: MAX_ID,
            craft: Craft::Wal(Box::new(|m, v| {
                encode_wal(WalHeader { writer_epoch: m.writer_epoch, kind: WalKind::Fence { next_wal_id: v } }, 1, [], 4096, &None).expect("entries without merge operands")
            })),
        },
        Case {
            field: "seq",
            bound: 0, // the last sequence number of the manifest's writer epoch
            craft: Craft::Wal(Box::new(|m, above| {
                let seq = *seq_range(m.writer_epoch).unwrap().end() + above;
                encode_wal(WalHeader { writer_epoch: m.writer_epoch, kind: WalKind::Data }, 1, [(Bytes::from("w"), seq, tidemark::internals::value::Value::Delete)], 4096, &None).expect("entries without merge operands")
            })),
        },
        Case { field: "wal name", bound: MAX_ID, craft: Craft::WalName },
        Case { field: "seq", bound: MAX_SEQ, craft: Craft::EntrySeq },
    ]
}

/// Writes the case's field at `value` (`above`: the value is the bound
/// plus one) and returns the object that holds it.
async fn craft(store: &Arc<dyn ObjectStore>, case: &Case, value: u64, above: bool) -> Path {
    let mut m = latest(store).await;
    match &case.craft {
        Craft::Manifest(set) => {
            set(&mut m, if case.bound == 0 { u64::from(above) } else { value });
            put_next_manifest(store, &mut m).await
        }
        Craft::Version => {
            m.version = value;
            let path = layout().manifest(value);
            put(store, &path, m.encode()).await;
            path
        }
        Craft::Wal(make) => {
            let path = layout().wal(next_wal_id(store, &m).await);
            put(store, &path, make(&m, if case.bound == 0 { u64::from(above) } else { value })).await;
            path
        }
        Craft::WalName => {
            let path = layout().wal(value);
            put(store, &path, encode_wal(WalHeader { writer_epoch: m.writer_epoch, kind: WalKind::Data }, 1, [], 4096, &None).expect("entries without merge operands")).await;
            path
        }
        Craft::EntrySeq => {
            let mut b = SstBuilder::new(4096);
            b.add(Bytes::from("zz"), value, tidemark::internals::value::Value::from_option(Some(Bytes::from("x")))).unwrap();
            let bytes = b.finish(&[]);
            let h = SstHandle {
                id: m.l0[0].id + 77,
                owner: tidemark::SstOwner::Writer,
                epoch: m.writer_epoch,
                size: bytes.len() as u64,
                first_key: Bytes::from("zz"),
                last_key: Bytes::from("zz"),
            };
            let path = layout().sst(&h);
            put(store, &path, bytes).await;
            m.l0.insert(0, h);
            put_next_manifest(store, &mut m).await;
            path
        }
    }
}

#[tokio::test]
async fn every_stored_field_at_its_bound_and_above_and_fsck_clean_implies_writable() {
    for case in cases() {
        for above in [false, true] {
            let store = seeded().await;
            let value = case.bound + u64::from(above && case.bound != 0);
            let what = format!("{} {} {value}", case.field, if above { "above the bound:" } else { "at the bound:" });
            let path = craft(&store, &case, value, above).await;
            let bytes = get(&store, &path).await;
            let decodes = match &case.craft {
                Craft::Manifest(_) | Craft::Version => ManifestObject::decode(path.as_ref(), &bytes).map(|_| ()),
                Craft::Wal(_) | Craft::WalName => decode_wal(&path, bytes).map(|_| ()),
                Craft::EntrySeq => tidemark::internals::sst::decode_all(&path, bytes).map(|_| ()),
            };
            let problems = fsck_clean_implies_writable(&store, settings(), &what).await;
            // A WAL named beyond the bound is never on a chain: an orphan
            // (informational), and the database stays writable.
            if above && !matches!(case.craft, Craft::WalName) {
                assert!(!problems.is_empty(), "{what}: fsck finds nothing");
                // A handle's size is checked where the SST is read: the
                // problem names the SST.
                let object = |p: &str| p.contains(path.as_ref()) || (case.field.contains("SST may hold") && p.contains("/compacted/"));
                let named = problems.iter().any(|p| object(p) && p.contains(case.field));
                assert!(named, "{what}: no problem names {path} and {}: {problems:?}", case.field);
            } else {
                assert!(decodes.is_ok(), "{what}: refused at the bound: {decodes:?}");
            }
            eprintln!("{what}: fsck {}", if problems.is_empty() { "clean, and writable".to_string() } else { format!("{} problem(s)", problems.len()) });
        }
    }
}

/// The fields fsck reports at their bound although they decode, because
/// the next open, compaction or recovery could not move past them.
#[tokio::test]
async fn fsck_reports_a_database_stuck_at_a_bound() {
    for (field, set) in [
        ("writer_epoch", (|m: &mut ManifestObject| m.writer_epoch = MAX_EPOCH) as fn(&mut ManifestObject)),
        ("compactor_epoch", |m| m.compactor_epoch = MAX_EPOCH),
        ("fences holds", |m| m.fences = vec![1; MAX_FENCES]),
    ] {
        let store = seeded().await;
        let mut m = latest(&store).await;
        set(&mut m);
        let path = put_next_manifest(&store, &mut m).await;
        let problems = fsck_problems(&store).await;
        assert!(problems.iter().any(|p| p.contains(path.as_ref()) && p.contains(field)), "{field}: {problems:?}");
    }
}
