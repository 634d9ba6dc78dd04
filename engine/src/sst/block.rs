//! Data blocks: length-prefixed entries, each with its write's sequence
//! number, sealed with a crc32c.

use bytes::Bytes;

use super::SeqEntry;
use crate::protocol::MAX_ID;

pub(crate) fn encode_entry(out: &mut Vec<u8>, key: &[u8], seq: u64, value: Option<&[u8]>) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&seq.to_le_bytes());
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
    }
}

/// Encoded size of one entry.
pub(crate) fn entry_len(key: &[u8], value: Option<&[u8]>) -> usize {
    4 + key.len() + 8 + 1 + value.map_or(0, |v| 4 + v.len())
}

fn read_u32(body: &Bytes, pos: &mut usize) -> Result<usize, String> {
    let raw = body.get(*pos..*pos + 4).ok_or("entry truncated")?;
    *pos += 4;
    Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
}

fn read_slice(body: &Bytes, pos: &mut usize, len: usize) -> Result<Bytes, String> {
    let end = pos.checked_add(len).filter(|end| *end <= body.len()).ok_or("entry length beyond the block")?;
    let out = body.slice(*pos..end);
    *pos = end;
    Ok(out)
}

/// Decodes a verified block body; keys must be strictly increasing and
/// sequence numbers within [`MAX_ID`].
pub(crate) fn decode_block(body: &Bytes) -> Result<Vec<SeqEntry>, String> {
    let mut out: Vec<SeqEntry> = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let klen = read_u32(body, &mut pos)?;
        let key = read_slice(body, &mut pos, klen)?;
        let raw = read_slice(body, &mut pos, 8)?;
        let seq = u64::from_le_bytes([raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7]]);
        if seq > MAX_ID {
            return Err(format!("entry seq {seq} is above the sequence number bound {MAX_ID}"));
        }
        let tag = *body.get(pos).ok_or("entry truncated")?;
        pos += 1;
        let value = match tag {
            0 => None,
            1 => {
                let vlen = read_u32(body, &mut pos)?;
                Some(read_slice(body, &mut pos, vlen)?)
            }
            t => return Err(format!("unknown entry tag {t}")),
        };
        if out.last().is_some_and(|(prev, _, _)| *prev >= key) {
            return Err("keys out of order".into());
        }
        out.push((key, seq, value));
    }
    Ok(out)
}
