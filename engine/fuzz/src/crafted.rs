//! Crafted-field mutations of the base database's objects, as seeds for
//! `db_open`: each is one object with valid checksums and one hostile
//! field, at or just above a bound of `tidemark::internals::bounds`, or a
//! narrowed key range or filter that a point read must not trust. The
//! fuzzer starts from them, so it reaches the checks behind them.

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use tidemark::internals::bounds::{run_id, seq_range, MAX_EPOCH, MAX_L0_SSTS};
use tidemark::internals::manifest::{ManifestObject, SstHandle};
use tidemark::internals::protocol::{WalHeader, WalKind};
use tidemark::internals::wal_object::{decode_wal, encode_wal};

use crate::base::{settings, Base, Kind};

/// A seed: the slot it replaces, a name, and the object.
pub struct Crafted {
    pub slot: usize,
    pub name: String,
    pub object: Bytes,
}

#[derive(Serialize, Deserialize)]
struct BlockHandle {
    first_key: Vec<u8>,
    last_key: Vec<u8>,
    offset: u64,
    len: u32,
}

/// An SST's sections, to rewrite the index or the filter and rebuild.
struct Sections {
    blocks: Vec<u8>,
    index: Vec<BlockHandle>,
    filter: Vec<u8>,
    meta: Vec<u8>,
}

fn sealed(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

impl Sections {
    fn parse(obj: &[u8]) -> Option<Sections> {
        let footer = obj.get(obj.len().checked_sub(32)?..)?;
        let index_off = u64::from_le_bytes(footer[8..16].try_into().ok()?) as usize;
        let lens: Vec<usize> =
            [16, 20, 24].iter().map(|at| u32::from_le_bytes(footer[*at..*at + 4].try_into().unwrap()) as usize).collect();
        let (i, f, m) = (index_off, index_off + lens[0], index_off + lens[0] + lens[1]);
        let body = |r: std::ops::Range<usize>| obj.get(r.start..r.end.checked_sub(4)?).map(<[u8]>::to_vec);
        Some(Sections {
            blocks: obj.get(..index_off)?.to_vec(),
            index: postcard::from_bytes(&body(i..f)?).ok()?,
            filter: body(f..m)?,
            meta: body(m..m + lens[2])?,
        })
    }

    fn build(&self) -> Bytes {
        let mut out = self.blocks.clone();
        let index_off = out.len() as u64;
        let index = sealed(postcard::to_stdvec(&self.index).unwrap());
        let filter = sealed(self.filter.clone());
        let meta = sealed(self.meta.clone());
        for s in [&index, &filter, &meta] {
            out.extend_from_slice(s);
        }
        let mut footer = Vec::new();
        footer.extend_from_slice(&0x5444_4d4bu32.to_le_bytes());
        footer.extend_from_slice(&2u16.to_le_bytes());
        footer.extend_from_slice(&0u16.to_le_bytes());
        footer.extend_from_slice(&index_off.to_le_bytes());
        for s in [&index, &filter, &meta] {
            footer.extend_from_slice(&(s.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(&sealed(footer));
        Bytes::from(out)
    }
}

/// Every crafted seed for the base database.
pub fn seeds(base: &Base) -> Vec<Crafted> {
    let mut out = Vec::new();
    let manifest_slot = base.slots.iter().position(|s| s.kind == Kind::Manifest).expect("a manifest slot");
    let m = ManifestObject::decode("base", base.slots[manifest_slot].original.as_ref().unwrap()).expect("base manifest");
    let mut manifest = |name: &str, f: &dyn Fn(&mut ManifestObject)| {
        let mut m = m.clone();
        f(&mut m);
        out.push(Crafted { slot: manifest_slot, name: format!("manifest-{name}"), object: m.encode() });
    };
    manifest("writer-epoch-last", &|m| m.writer_epoch = MAX_EPOCH);
    manifest("writer-epoch-above", &|m| m.writer_epoch = MAX_EPOCH + 1);
    manifest("writer-epoch-2^32", &|m| m.writer_epoch = 1 << 32);
    manifest("compactor-epoch-last", &|m| m.compactor_epoch = MAX_EPOCH);
    manifest("compactor-epoch-2^32-1", &|m| m.compactor_epoch = (1 << 32) - 1);
    manifest("run-id-of-a-future-compactor", &|m| {
        if let Some(run) = m.runs.first_mut() {
            run.id = run_id(m.compactor_epoch + 1, 1).unwrap();
        }
    });
    manifest("l0-above-the-bound", &|m| {
        let h = m.l0[0].clone();
        m.l0 = (0..=MAX_L0_SSTS as u128).map(|i| SstHandle { id: h.id + 100 + i, ..h.clone() }).collect();
    });
    manifest("l0-handle-narrowed", &|m| {
        let h = &mut m.l0[0];
        let mut first = h.first_key.to_vec();
        first.push(0);
        h.first_key = Bytes::from(first);
    });
    manifest("run-handle-narrowed", &|m| {
        if let Some(h) = m.runs.first_mut().and_then(|r| r.ssts.last_mut()) {
            let mut last = h.last_key.to_vec();
            last.pop();
            if last >= h.first_key.to_vec() {
                h.last_key = Bytes::from(last);
            }
        }
    });

    // A WAL at the chain's next position of an epoch no manifest records,
    // and entries at and above the end of their epoch's sequence numbers.
    let next = base.slots.iter().position(|s| s.kind == Kind::Wal && s.original.is_none()).expect("the next WAL slot");
    let wal = |epoch: u64, seq: u64| {
        let entry = (Bytes::from_static(b"ghost"), seq, tidemark::internals::value::Value::Put(Bytes::from_static(b"boo")));
        encode_wal(WalHeader { writer_epoch: epoch, kind: WalKind::Data }, 0, [entry], settings().block_size, &None).expect("entries without merge operands")
    };
    let start = |e: u64| seq_range(e).map_or(1, |r| *r.start());
    let end = |e: u64| seq_range(e).map_or(1, |r| *r.end());
    for (name, object) in [
        ("wal-epoch-plus-1000", wal(m.writer_epoch + 1000, start(m.writer_epoch + 1000))),
        ("wal-epoch-last", wal(MAX_EPOCH, start(MAX_EPOCH))),
        ("wal-seq-last", wal(m.writer_epoch, end(m.writer_epoch))),
        ("wal-seq-above", wal(m.writer_epoch, end(m.writer_epoch) + 1)),
    ] {
        out.push(Crafted { slot: next, name: name.into(), object });
    }
    // A replayed WAL rewritten with an epoch above the manifest's.
    if let Some((slot, original)) =
        base.slots.iter().enumerate().find_map(|(i, s)| (s.kind == Kind::Wal).then_some((i, s.original.clone()?)))
    {
        let w = decode_wal(&Path::from("wal"), original).expect("base WAL");
        let epoch = m.writer_epoch + 1;
        let entries = w.entries.into_iter().map(|(k, _, v)| (k, start(epoch), v)).take(1);
        let object = encode_wal(WalHeader { writer_epoch: epoch, kind: WalKind::Data }, 0, entries, settings().block_size, &None).expect("entries without merge operands");
        out.push(Crafted { slot, name: "wal-replayed-epoch-above-the-manifest".into(), object });
    }

    // SSTs: an index entry narrowed, a filter lacking the first key, a
    // filter over no keys.
    for (slot, s) in base.slots.iter().enumerate().filter(|(_, s)| s.kind == Kind::Sst) {
        let Some(sections) = s.original.as_deref().and_then(Sections::parse) else { continue };
        if sections.index.len() >= 3 {
            let mut narrowed = Sections::parse(s.original.as_deref().unwrap()).unwrap();
            let first = narrowed.index[1].first_key.clone();
            narrowed.index[1].last_key = first;
            out.push(Crafted { slot, name: format!("sst{slot}-index-entry-narrowed"), object: narrowed.build() });
        }
        let mut empty = Sections::parse(s.original.as_deref().unwrap()).unwrap();
        empty.filter = std::iter::once(7u8).chain(std::iter::repeat_n(0, 8)).collect();
        out.push(Crafted { slot, name: format!("sst{slot}-filter-over-no-keys"), object: empty.build() });
        let mut zeroed = sections;
        if let Some(bits) = zeroed.filter.get_mut(1..) {
            bits.iter_mut().step_by(2).for_each(|b| *b = 0);
        }
        out.push(Crafted { slot, name: format!("sst{slot}-filter-half-cleared"), object: zeroed.build() });
    }
    out
}
