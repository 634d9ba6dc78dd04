//! Write batches and write options.

use bytes::Bytes;

use crate::sst::Entry;

/// An atomic group of puts and deletes: it lands in one WAL, all or nothing,
/// and its writes take consecutive sequence numbers, so no read or recovery
/// ever sees part of it. Give it to [`Db::write`](crate::Db::write).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
/// db.put("stale", "x").await?;
///
/// let mut batch = tidemark::WriteBatch::new();
/// batch.put("a", "1").put("b", "2").delete("stale");
/// assert_eq!(batch.len(), 3);
/// db.write(batch).await?; // one WAL: all three, or none
///
/// assert_eq!(db.get("b").await?.as_deref(), Some(&b"2"[..]));
/// assert_eq!(db.get("stale").await?, None);
/// db.close().await
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) ops: Vec<Entry>,
    pub(crate) bytes: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put of `value` at `key`; a later op on the same key in this
    /// batch wins.
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> &mut Self {
        let (k, v) = (key.into(), value.into());
        self.bytes += k.len() + v.len() + 16;
        self.ops.push((k, Some(v)));
        self
    }

    /// Adds a delete of `key` (a tombstone, which hides every older value).
    pub fn delete(&mut self, key: impl Into<Bytes>) -> &mut Self {
        let k = key.into();
        self.bytes += k.len() + 16;
        self.ops.push((k, None));
        self
    }

    /// The number of puts and deletes in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no op (writing it does nothing).
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Per-write options, for [`Db::write_with`](crate::Db::write_with) and
/// the other `_with` writes. The default waits for durability.
///
/// With `await_durable: false` a write returns once it is in the WAL buffer
/// and the memtable: it is visible to reads at once, but a crash before its
/// WAL is uploaded loses it. [`Db::flush`](crate::Db::flush) makes such
/// writes durable.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// use tidemark::{Db, Settings, WriteOptions};
///
/// let db = Db::open_url("memory://", Settings::default()).await?;
/// let fast = WriteOptions { await_durable: false };
/// for i in 0..100u32 {
///     db.put_with(format!("k{i:03}"), i.to_string(), &fast).await?; // no WAL upload awaited
/// }
/// assert_eq!(db.get("k042").await?.as_deref(), Some(&b"42"[..])); // visible already
/// db.flush().await?; // now all 100 are durable
/// db.close().await
/// # }
/// ```
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
