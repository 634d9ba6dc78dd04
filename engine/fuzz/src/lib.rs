//! Shared by the fuzz targets: re-sealing checksums, so that the fuzzer
//! reaches the structure behind them (issue 17).
//!
//! Every target reads its first input byte as a mode: even = the rest is
//! the object as is (the checksums must catch damage); odd = the rest is
//! re-sealed first (every checksum the layout lets us find is recomputed),
//! so the decoders' structural checks are what stand between the bytes and
//! a read.

use serde::Deserialize;

pub mod base;
pub mod crafted;

fn put_crc(section: &mut [u8]) {
    if section.len() >= 4 {
        let n = section.len() - 4;
        let crc = crc32c::crc32c(&section[..n]);
        section[n..].copy_from_slice(&crc.to_le_bytes());
    }
}

#[derive(Deserialize)]
struct BlockHandle {
    _first_key: Vec<u8>,
    _last_key: Vec<u8>,
    offset: u64,
    len: u32,
}

/// Re-seals an SST (or WAL) object in place: the footer, the index, filter
/// and meta sections where the footer puts them, and every data block the
/// index names, as far as the lengths fit the object.
pub fn reseal_sst(obj: &mut [u8]) {
    let size = obj.len();
    if size < 32 {
        return;
    }
    let footer_at = size - 32;
    put_crc(&mut obj[footer_at..]);
    let f = &obj[footer_at..];
    let index_off = u64::from_le_bytes(f[8..16].try_into().unwrap()) as usize;
    let lens = [16, 20, 24].map(|at| u32::from_le_bytes(f[at..at + 4].try_into().unwrap()) as usize);
    let mut at = index_off;
    let mut sections = Vec::new();
    for len in lens {
        let Some(end) = at.checked_add(len).filter(|e| *e <= footer_at) else { return };
        sections.push(at..end);
        at = end;
    }
    for s in &sections {
        put_crc(&mut obj[s.clone()]);
    }
    let index = &obj[sections[0].clone()];
    if index.len() < 4 {
        return;
    }
    let Ok(handles) = postcard::from_bytes::<Vec<BlockHandle>>(&index[..index.len() - 4]) else { return };
    for h in handles {
        let (start, len) = (h.offset as usize, h.len as usize);
        if let Some(end) = start.checked_add(len).filter(|e| *e <= index_off) {
            put_crc(&mut obj[start..end]);
        }
    }
}

/// Re-seals a manifest frame: the length field and the trailing crc.
pub fn reseal_manifest(obj: &mut [u8]) {
    if obj.len() < 14 {
        return;
    }
    let payload = (obj.len() - 14) as u32;
    obj[6..10].copy_from_slice(&payload.to_le_bytes());
    put_crc(obj);
}

/// The object under test and whether it was re-sealed.
pub fn prepare(data: &[u8], reseal: fn(&mut [u8])) -> Option<(Vec<u8>, bool)> {
    let (&mode, rest) = data.split_first()?;
    let mut obj = rest.to_vec();
    let sealed = mode & 1 == 1;
    if sealed {
        reseal(&mut obj);
    }
    Some((obj, sealed))
}
