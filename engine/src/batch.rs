//! Write batches and write options.

use bytes::Bytes;

use crate::sst::Entry;

/// An atomic group of puts and deletes: it lands in one WAL, all or nothing.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) ops: Vec<Entry>,
    pub(crate) bytes: usize,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> &mut Self {
        let (k, v) = (key.into(), value.into());
        self.bytes += k.len() + v.len() + 16;
        self.ops.push((k, Some(v)));
        self
    }

    pub fn delete(&mut self, key: impl Into<Bytes>) -> &mut Self {
        let k = key.into();
        self.bytes += k.len() + 16;
        self.ops.push((k, None));
        self
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Per-write options.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// Return only once the write's WAL is covered by the durable watermark.
    pub await_durable: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self { await_durable: true }
    }
}
