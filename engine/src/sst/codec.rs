//! Data-block compression. Every block of format 3 says how it is stored
//! (its first byte), so SSTs written under different settings coexist, and
//! a block that would not shrink is kept plain. A compressed block states
//! its plain length, which is bounded (see [`max_plain_len`]) before
//! anything is allocated: a hostile length is `Corrupt`, never a large
//! allocation.

use bytes::Bytes;

use crate::bounds::{MAX_COMPRESSED_PLAIN_BYTES, MAX_COMPRESSION_RATIO};

/// How SST data blocks are compressed (`Settings::compression`). WALs are
/// never compressed: they sit on the durable-write path, and are read once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Blocks stored as they are.
    #[default]
    None,
    /// LZ4 (block format): cheap to write and to read.
    Lz4,
    /// Zstandard at `level` (1..=19): smaller, more CPU to write.
    Zstd { level: i32 },
}

/// The first byte of a format-3 block.
const PLAIN: u8 = 0;
const LZ4: u8 = 1;
const ZSTD: u8 = 2;

/// The zstd level `Compression::Zstd` takes when none is named.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

impl Compression {
    /// The id recorded in an SST's footer (and a block's first byte).
    pub(crate) fn id(self) -> u8 {
        match self {
            Compression::None => PLAIN,
            Compression::Lz4 => LZ4,
            Compression::Zstd { .. } => ZSTD,
        }
    }

    /// Why these settings cannot be used, if they cannot.
    pub(crate) fn invalid(self) -> Option<String> {
        match self {
            Compression::Zstd { level } if !(1..=19).contains(&level) => {
                Some(format!("zstd level must be within 1..=19, got {level}"))
            }
            _ => None,
        }
    }
}

/// The name of codec `id` (as recorded in a footer or a block), or why it
/// is not one this build reads.
pub(crate) fn name(id: u8) -> Result<&'static str, String> {
    match id {
        PLAIN => Ok("none"),
        LZ4 => Ok("lz4"),
        ZSTD => Ok("zstd"),
        other => Err(format!("unknown compression codec {other} (this build reads none, lz4 and zstd)")),
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Lz4 => f.write_str("lz4"),
            Compression::Zstd { level } => write!(f, "zstd:{level}"),
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;

    /// `none`, `lz4`, `zstd` or `zstd:LEVEL`.
    fn from_str(s: &str) -> Result<Self, String> {
        let c = match s.split_once(':') {
            None if s == "none" => Compression::None,
            None if s == "lz4" => Compression::Lz4,
            None if s == "zstd" => Compression::Zstd { level: DEFAULT_ZSTD_LEVEL },
            Some(("zstd", level)) => {
                let level = level.parse().map_err(|_| format!("zstd level {level:?} is not a number"))?;
                Compression::Zstd { level }
            }
            _ => return Err(format!("unknown compression {s:?}: expected none, lz4, zstd or zstd:LEVEL")),
        };
        match c.invalid() {
            Some(why) => Err(why),
            None => Ok(c),
        }
    }
}

/// The largest plain length a compressed block of `stored` bytes may state:
/// at most [`MAX_COMPRESSION_RATIO`] times what was read, and at most
/// [`MAX_COMPRESSED_PLAIN_BYTES`]. The writer keeps plain every block
/// outside it, so every block it writes is one a reader accepts.
pub(crate) fn max_plain_len(stored: usize) -> usize {
    stored.saturating_mul(MAX_COMPRESSION_RATIO).min(MAX_COMPRESSED_PLAIN_BYTES)
}

/// A block's stored form: `PLAIN` and the entries, or a codec, the plain
/// length (u32) and the compressed entries.
pub(crate) fn encode(c: Compression, plain: &[u8]) -> Vec<u8> {
    let packed = match c {
        Compression::None => None,
        Compression::Lz4 => Some(lz4_flex::block::compress(plain)),
        // An error (out of memory in the codec) keeps the block plain.
        Compression::Zstd { level } => zstd::bulk::compress(plain, level).ok(),
    };
    match packed {
        Some(packed) if packed.len() + 4 < plain.len() && plain.len() <= max_plain_len(packed.len()) => {
            let mut out = Vec::with_capacity(1 + 4 + packed.len());
            out.push(c.id());
            // Below MAX_COMPRESSED_PLAIN_BYTES, so within u32.
            out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
            out.extend_from_slice(&packed);
            out
        }
        _ => {
            let mut out = Vec::with_capacity(1 + plain.len());
            out.push(PLAIN);
            out.extend_from_slice(plain);
            out
        }
    }
}

/// The entries of a verified block body of format 3: the plain bytes,
/// decompressed into exactly the length the block states, which must be
/// within [`max_plain_len`].
pub(crate) fn decode(body: &Bytes) -> Result<Bytes, String> {
    let (&id, rest) = body.split_first().ok_or("block has no codec byte")?;
    if id == PLAIN {
        return Ok(body.slice(1..));
    }
    let codec = name(id)?;
    let (len, packed) = rest.split_at_checked(4).ok_or_else(|| format!("{codec} block shorter than its length"))?;
    let plain_len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if plain_len > max_plain_len(packed.len()) {
        return Err(format!(
            "{codec} block of {} bytes states a plain length of {plain_len}, above the bound of {} \
             ({MAX_COMPRESSION_RATIO} times its size, at most {MAX_COMPRESSED_PLAIN_BYTES})",
            packed.len(),
            max_plain_len(packed.len())
        ));
    }
    let plain = match id {
        LZ4 => lz4_flex::block::decompress(packed, plain_len).map_err(|e| format!("lz4 block does not decompress: {e}"))?,
        _ => zstd::bulk::decompress(packed, plain_len).map_err(|e| format!("zstd block does not decompress: {e}"))?,
    };
    if plain.len() != plain_len {
        return Err(format!("{codec} block decompressed to {} bytes, it states {plain_len}", plain.len()));
    }
    Ok(Bytes::from(plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes no codec shrinks (xorshift64).
    fn noise(n: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect()
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"{\"user\":\"ada\",\"n\":"[i % 18]).collect()
    }

    #[test]
    fn every_codec_returns_what_it_was_given() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd { level: 3 }] {
            for plain in [Vec::new(), b"x".to_vec(), text(4096), noise(4096)] {
                let stored = encode(c, &plain);
                assert_eq!(decode(&Bytes::from(stored)).unwrap(), plain, "{c}");
            }
        }
    }

    #[test]
    fn compressible_blocks_shrink_and_others_stay_plain() {
        let plain = text(4096);
        for c in [Compression::Lz4, Compression::Zstd { level: 3 }] {
            let stored = encode(c, &plain);
            assert_eq!(stored[0], c.id());
            assert!(stored.len() < plain.len() / 4, "{c}: {} bytes", stored.len());
        }
        // Random bytes do not shrink: kept plain, one byte longer.
        assert_eq!(encode(Compression::Lz4, &noise(4096))[0], PLAIN);
        assert_eq!(encode(Compression::Zstd { level: 3 }, &noise(4096))[0], PLAIN);
        // A block that shrinks past the ratio bound is kept plain too, so a
        // reader never refuses what a writer wrote.
        let zeros = vec![0u8; 1 << 20];
        let stored = encode(Compression::Zstd { level: 3 }, &zeros);
        assert!(stored[0] == PLAIN || zeros.len() <= max_plain_len(stored.len() - 5));
        assert_eq!(decode(&Bytes::from(stored)).unwrap(), zeros);
    }

    #[test]
    fn a_lying_plain_length_is_refused_before_anything_is_allocated() {
        let stored = encode(Compression::Lz4, &text(4096));
        for lie in [u32::MAX, 1 << 30, 4095, 4097] {
            let mut bad = stored.clone();
            bad[1..5].copy_from_slice(&lie.to_le_bytes());
            let err = decode(&Bytes::from(bad)).unwrap_err();
            assert!(err.contains("plain length") || err.contains("decompress"), "{lie}: {err}");
        }
        let mut unknown = stored;
        unknown[0] = 9;
        assert!(decode(&Bytes::from(unknown)).unwrap_err().contains("unknown compression codec 9"));
    }

    #[test]
    fn settings_parse_by_name() {
        assert_eq!("zstd".parse(), Ok(Compression::Zstd { level: DEFAULT_ZSTD_LEVEL }));
        assert_eq!("zstd:9".parse(), Ok(Compression::Zstd { level: 9 }));
        assert_eq!("lz4".parse::<Compression>().map(|c| c.to_string()), Ok("lz4".into()));
        assert!("zstd:40".parse::<Compression>().is_err());
        assert!("snappy".parse::<Compression>().unwrap_err().contains("snappy"));
    }
}
