//! The SST format, used for L0 SSTs and for WAL objects.
//!
//! ```text
//! object  := block* index filter meta footer
//! block   := codec:u8 (entry* | plain_len:u32 compressed(entry*)) crc32c
//! entry   := klen:u32 key seq:u64 tag:u8 version
//! version := (tag 0, delete) | (1, put) vlen:u32 value | (2, merge) vlen:u32 operand
//!          | (3, expiring) expires_at:u64 vlen:u32 value then:u8 [tlen:u32 then]
//! index   := postcard(Vec<BlockHandle>) crc32c
//! filter  := k:u8 bits crc32c       (bloom filter over the keys)
//! meta    := caller bytes crc32c    (WAL header, for WAL objects)
//! footer  := magic:u32 version:u16 codec:u16 index_off:u64 index_len:u32
//!            filter_len:u32 meta_len:u32 crc32c:u32      (32 bytes)
//! ```
//! Every section carries a crc32c, so a flipped byte anywhere is detected.
//! The footer's codec is the one the writer was set to (tools show it); each
//! block says how it is stored itself ([`codec`]). Formats 2 (blocks of bare
//! entries, codec 0) and 3 (tags 0 and 1 only) are still read.
//! A point read fetches the footer region and then one block (`get_range`).

mod block;
mod bloom;
mod builder;
pub(crate) mod codec;
mod reader;
mod run;

pub use block::BlockCursor;
pub use codec::Compression;
pub use builder::SstBuilder;
pub use reader::{decode_all, SstReader};
pub use run::{RunReader, SstRef};

use serde::{Deserialize, Serialize};

/// A key's value as a read sees it: `None` is a tombstone.
pub type Entry = (bytes::Bytes, Option<bytes::Bytes>);

/// A key's version in an SST or memtable, with the sequence number of the
/// write that made it.
pub type SeqEntry = (bytes::Bytes, u64, crate::value::Value);

pub(crate) const MAGIC: u32 = 0x5444_4d4b; // "TDMK"
/// 2: every entry carries its write's sequence number. 3: every block
/// starts with its codec, and the footer records the writer's. 4: merge
/// operands and expiring values (entry tags 2 and 3).
pub(crate) const FORMAT_VERSION: u16 = 4;
/// The oldest format this build reads.
pub(crate) const OLDEST_FORMAT_VERSION: u16 = 2;
pub(crate) const FOOTER_LEN: usize = 32;

/// Where a data block lives and which keys it spans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockHandle {
    pub first_key: Vec<u8>,
    pub last_key: Vec<u8>,
    pub offset: u64,
    pub len: u32,
}

/// Appends the crc32c of `body` to it.
pub(crate) fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// Verifies and strips a trailing crc32c.
pub(crate) fn unseal<'a>(section: &'a [u8], what: &str) -> Result<&'a [u8], String> {
    let split = section.len().checked_sub(4).ok_or_else(|| format!("{what} shorter than its checksum"))?;
    let (body, crc) = section.split_at(split);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != stored {
        return Err(format!("{what} checksum mismatch"));
    }
    Ok(body)
}
