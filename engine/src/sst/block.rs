//! Data blocks: length-prefixed entries, each with its write's sequence
//! number, sealed with a crc32c.

use bytes::Bytes;

use super::SeqEntry;
use crate::bounds::MAX_SEQ;
use crate::value::Value;

/// Entry tags: what kind of version follows the sequence number.
const TAG_DELETE: u8 = 0;
const TAG_PUT: u8 = 1;
const TAG_MERGE: u8 = 2;
/// `expires_at:u64 vlen:u32 value then_tag:u8 [tlen:u32 then]`.
const TAG_EXPIRING: u8 = 3;

fn put_bytes(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(v);
}

pub(crate) fn encode_entry(out: &mut Vec<u8>, key: &[u8], seq: u64, value: &Value) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&seq.to_le_bytes());
    match value {
        Value::Delete => out.push(TAG_DELETE),
        Value::Put(v) => {
            out.push(TAG_PUT);
            put_bytes(out, v);
        }
        Value::Merge(v) => {
            out.push(TAG_MERGE);
            put_bytes(out, v);
        }
        Value::Expiring { value, expires_at, then } => {
            out.push(TAG_EXPIRING);
            out.extend_from_slice(&expires_at.to_le_bytes());
            put_bytes(out, value);
            match then {
                None => out.push(0),
                Some(t) => {
                    out.push(1);
                    put_bytes(out, t);
                }
            }
        }
    }
}

/// Encoded size of one entry.
pub(crate) fn entry_len(key: &[u8], value: &Value) -> usize {
    let body = match value {
        Value::Delete => 0,
        Value::Put(v) | Value::Merge(v) => 4 + v.len(),
        Value::Expiring { value, then, .. } => 8 + 4 + value.len() + 1 + then.as_ref().map_or(0, |t| 4 + t.len()),
    };
    4 + key.len() + 8 + 1 + body
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

fn read_tag(body: &Bytes, pos: &mut usize) -> Result<u8, String> {
    let tag = *body.get(*pos).ok_or("entry truncated")?;
    *pos += 1;
    Ok(tag)
}

fn read_bytes(body: &Bytes, pos: &mut usize) -> Result<Bytes, String> {
    let len = read_u32(body, pos)?;
    read_slice(body, pos, len)
}

/// The entry of a verified block body at `pos`, and where the next begins;
/// its sequence number must be within [`MAX_SEQ`].
fn entry_at(body: &Bytes, mut pos: usize) -> Result<(SeqEntry, usize), String> {
    let klen = read_u32(body, &mut pos)?;
    let key = read_slice(body, &mut pos, klen)?;
    let raw = read_slice(body, &mut pos, 8)?;
    let seq = u64::from_le_bytes([raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7]]);
    if seq > MAX_SEQ {
        return Err(format!("entry seq {seq} is above the sequence number bound {MAX_SEQ}"));
    }
    let value = match read_tag(body, &mut pos)? {
        TAG_DELETE => Value::Delete,
        TAG_PUT => Value::Put(read_bytes(body, &mut pos)?),
        TAG_MERGE => Value::Merge(read_bytes(body, &mut pos)?),
        TAG_EXPIRING => {
            let raw = read_slice(body, &mut pos, 8)?;
            let expires_at = u64::from_le_bytes([raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7]]);
            let value = read_bytes(body, &mut pos)?;
            let then = match read_tag(body, &mut pos)? {
                0 => None,
                1 => Some(read_bytes(body, &mut pos)?),
                t => return Err(format!("unknown expiry tag {t}")),
            };
            Value::Expiring { value, expires_at, then }
        }
        t => return Err(format!("unknown entry tag {t}")),
    };
    Ok(((key, seq, value), pos))
}

/// Decodes a verified block body; keys must be strictly increasing and
/// sequence numbers within [`MAX_SEQ`].
pub(crate) fn decode_block(body: &Bytes) -> Result<Vec<SeqEntry>, String> {
    let mut out: Vec<SeqEntry> = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let (entry, next) = entry_at(body, pos)?;
        if out.last().is_some_and(|(prev, _, _)| *prev >= entry.0) {
            return Err("keys out of order".into());
        }
        out.push(entry);
        pos = next;
    }
    Ok(out)
}

/// A verified block body read an entry at a time, from either end: a scan
/// holds the block's bytes and an offset per entry, not the decoded block.
#[derive(Debug)]
pub struct BlockCursor {
    body: Bytes,
    /// Where each entry begins; `front..back` are still to read.
    offsets: Vec<u32>,
    front: usize,
    back: usize,
}

impl BlockCursor {
    /// Checks `body` as [`decode_block`] does and records where entries begin.
    pub(crate) fn new(body: Bytes) -> Result<Self, String> {
        let mut offsets = Vec::new();
        let mut prev: Option<Bytes> = None;
        let mut pos = 0;
        while pos < body.len() {
            let ((key, _, _), next) = entry_at(&body, pos)?;
            if prev.as_ref().is_some_and(|p| *p >= key) {
                return Err("keys out of order".into());
            }
            offsets.push(u32::try_from(pos).map_err(|_| "block larger than 4 GiB")?);
            prev = Some(key);
            pos = next;
        }
        let back = offsets.len();
        Ok(Self { body, offsets, front: 0, back })
    }

    fn at(&self, i: usize) -> Option<SeqEntry> {
        // Every offset was decoded in `new`: this cannot fail.
        self.offsets.get(i).and_then(|&pos| entry_at(&self.body, pos as usize).ok()).map(|(e, _)| e)
    }

    /// The first entry (checks in `new`), without consuming it.
    pub(crate) fn first(&self) -> Option<SeqEntry> {
        self.at(0)
    }

    /// The last entry, without consuming it.
    pub(crate) fn last(&self) -> Option<SeqEntry> {
        self.offsets.len().checked_sub(1).and_then(|i| self.at(i))
    }

    /// Every entry, in key order (for checks that need them all once).
    pub(crate) fn all(&self) -> impl Iterator<Item = SeqEntry> + '_ {
        (0..self.offsets.len()).filter_map(|i| self.at(i))
    }

    /// The next entry from the front.
    pub fn next_front(&mut self) -> Option<SeqEntry> {
        (self.front < self.back).then(|| self.front += 1).and_then(|()| self.at(self.front - 1))
    }

    /// The next entry from the back.
    pub fn next_back(&mut self) -> Option<SeqEntry> {
        (self.front < self.back).then(|| self.back -= 1).and_then(|()| self.at(self.back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(keys: &[&str]) -> Bytes {
        let mut out = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let v = Bytes::from(format!("v{i}"));
            let value = match i % 4 {
                0 => Value::Delete,
                1 => Value::Put(v),
                2 => Value::Merge(v),
                _ => Value::Expiring { value: v.clone(), expires_at: i as u64, then: (i % 8 == 3).then_some(v) },
            };
            encode_entry(&mut out, k.as_bytes(), i as u64, &value);
        }
        Bytes::from(out)
    }

    #[test]
    fn a_cursor_reads_what_decode_block_decodes_from_either_end() {
        let b = body(&["a", "b", "c", "d", "e"]);
        let whole = decode_block(&b).unwrap();
        let mut c = BlockCursor::new(b.clone()).unwrap();
        assert_eq!(std::iter::from_fn(|| c.next_front()).collect::<Vec<_>>(), whole);
        let mut c = BlockCursor::new(b.clone()).unwrap();
        let mut rev: Vec<_> = std::iter::from_fn(|| c.next_back()).collect();
        rev.reverse();
        assert_eq!(rev, whole);
        // From both ends at once, each entry once.
        let mut c = BlockCursor::new(b).unwrap();
        let (f, l) = (c.next_front(), c.next_back());
        assert_eq!((f.as_ref(), l.as_ref()), (whole.first(), whole.last()));
        assert_eq!(std::iter::from_fn(|| c.next_front()).count(), 3);
        assert!(c.next_back().is_none());
    }

    #[test]
    fn a_cursor_refuses_what_decode_block_refuses() {
        let unsorted = body(&["a", "c", "b"]);
        assert_eq!(BlockCursor::new(unsorted.clone()).unwrap_err(), decode_block(&unsorted).unwrap_err());
        let truncated = body(&["a", "b"]).slice(..10);
        assert!(BlockCursor::new(truncated.clone()).is_err() && decode_block(&truncated).is_err());
    }
}
