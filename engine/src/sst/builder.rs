//! Building an SST object in memory.

use bytes::Bytes;

use super::block::{encode_entry, entry_len};
use super::codec::{self, Compression};
use super::{bloom, seal, BlockHandle, FORMAT_VERSION, MAGIC};
use crate::error::{Error, Result};
use crate::value::Value;

/// Accumulates sorted entries and produces a whole SST object.
pub struct SstBuilder {
    block_size: usize,
    compression: Compression,
    out: Vec<u8>,
    block: Vec<u8>,
    block_first: Option<Bytes>,
    last_key: Option<Bytes>,
    index: Vec<BlockHandle>,
    keys: Vec<Bytes>,
}

impl SstBuilder {
    /// A builder cutting data blocks at about `block_size` bytes.
    pub fn new(block_size: usize) -> Self {
        Self {
            block_size: block_size.max(64),
            compression: Compression::None,
            out: Vec::new(),
            block: Vec::new(),
            block_first: None,
            last_key: None,
            index: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// Compresses data blocks with `c` (each block that shrinks).
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }

    /// Adds an entry written with sequence number `seq`; keys must be
    /// strictly increasing.
    pub fn add(&mut self, key: Bytes, seq: u64, value: Value) -> Result<()> {
        if self.last_key.as_ref().is_some_and(|last| *last >= key) {
            return Err(Error::InvalidArgument("SST keys must be added in strictly increasing order".into()));
        }
        if !self.block.is_empty() && self.block.len() + entry_len(&key, &value) > self.block_size {
            self.cut_block();
        }
        encode_entry(&mut self.block, &key, seq, &value);
        if self.block_first.is_none() {
            self.block_first = Some(key.clone());
        }
        self.keys.push(key.clone());
        self.last_key = Some(key);
        Ok(())
    }

    /// Bytes written so far (the data blocks, as stored), to split output by size.
    pub fn estimated_size(&self) -> usize {
        self.out.len() + self.block.len()
    }

    /// Whether no entry was added.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn cut_block(&mut self) {
        let (Some(first), Some(last)) = (self.block_first.take(), self.last_key.clone()) else { return };
        let sealed = seal(codec::encode(self.compression, &self.block));
        self.block.clear();
        self.index.push(BlockHandle {
            first_key: first.to_vec(),
            last_key: last.to_vec(),
            offset: self.out.len() as u64,
            len: sealed.len() as u32,
        });
        self.out.extend_from_slice(&sealed);
    }

    /// Finishes the object with `meta` (opaque caller bytes) in its meta section.
    pub fn finish(mut self, meta: &[u8]) -> Bytes {
        self.cut_block();
        let index_off = self.out.len() as u64;
        let index = seal(postcard::to_stdvec(&self.index).unwrap_or_default());
        let keys: Vec<&[u8]> = self.keys.iter().map(|k| k.as_ref()).collect();
        let filter = seal(bloom::build(&keys));
        let meta = seal(meta.to_vec());
        self.out.extend_from_slice(&index);
        self.out.extend_from_slice(&filter);
        self.out.extend_from_slice(&meta);
        let mut footer = Vec::with_capacity(super::FOOTER_LEN);
        footer.extend_from_slice(&MAGIC.to_le_bytes());
        footer.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        footer.extend_from_slice(&u16::from(self.compression.id()).to_le_bytes());
        footer.extend_from_slice(&index_off.to_le_bytes());
        footer.extend_from_slice(&(index.len() as u32).to_le_bytes());
        footer.extend_from_slice(&(filter.len() as u32).to_le_bytes());
        footer.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        self.out.extend_from_slice(&seal(footer));
        Bytes::from(self.out)
    }
}
