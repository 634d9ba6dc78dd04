//! Write batches and write options.

use std::time::Duration;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::value::Value;

/// The longest time-to-live a put may ask for (about 100 years): an expiry
/// is a time in milliseconds, which must not overflow.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How long a put lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ttl {
    /// [`Settings::default_ttl`](crate::Settings::default_ttl).
    #[default]
    Default,
    /// Forever, whatever the default.
    NoExpiry,
    /// Invisible to every read from this long after the write on (judged on
    /// [`Settings::clock`](crate::Settings::clock)); at most about 100 years.
    ExpireAfter(Duration),
}

/// Per-put options ([`Db::put_with_options`](crate::Db::put_with_options),
/// [`WriteBatch::put_with`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// use std::time::Duration;
/// use tidemark::{Db, PutOptions, Settings, Ttl, WriteOptions};
///
/// let db = Db::open_url("memory://", Settings::default()).await?;
/// let session = PutOptions { ttl: Ttl::ExpireAfter(Duration::from_secs(3600)) };
/// db.put_with_options("session/42", "alice", &session, &WriteOptions::default()).await?;
/// assert!(db.get("session/42").await?.is_some()); // gone an hour from now
/// db.close().await
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// How long the value lives.
    pub ttl: Ttl,
}

/// One op of a batch, before the write stamps its expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Put(Bytes, Ttl),
    Delete,
    Merge(Bytes),
}

impl Op {
    /// The version this op writes at `now_ms`, with `default_ttl` for `Ttl::Default`.
    pub(crate) fn version(&self, now_ms: u64, default_ttl: Option<Duration>) -> Result<Value> {
        Ok(match self {
            Op::Delete => Value::Delete,
            Op::Merge(v) => Value::Merge(v.clone()),
            Op::Put(v, ttl) => {
                let ttl = match ttl {
                    Ttl::Default => default_ttl,
                    Ttl::NoExpiry => None,
                    Ttl::ExpireAfter(d) => Some(*d),
                };
                match ttl {
                    None => Value::Put(v.clone()),
                    Some(d) => Value::Expiring { value: v.clone(), expires_at: expiry(now_ms, d)?, then: None },
                }
            }
        })
    }

    /// The value or operand's bytes, for the size checks.
    pub(crate) fn payload(&self) -> Option<&Bytes> {
        match self {
            Op::Put(v, _) | Op::Merge(v) => Some(v),
            Op::Delete => None,
        }
    }
}

/// `now_ms + ttl`, refused above [`MAX_TTL`] rather than wrapped.
fn expiry(now_ms: u64, ttl: Duration) -> Result<u64> {
    if ttl > MAX_TTL {
        return Err(Error::InvalidArgument(format!("ttl {ttl:?} is longer than the longest allowed, {MAX_TTL:?}")));
    }
    now_ms.checked_add(ttl.as_millis() as u64).ok_or_else(|| Error::InvalidArgument(format!("ttl {ttl:?} overflows the clock")))
}

/// An atomic group of puts, deletes and merges: it lands in one WAL, all or nothing,
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
    pub(crate) ops: Vec<(Bytes, Op)>,
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
        self.put_with(key, value, PutOptions::default())
    }

    /// Adds a put of `value` at `key` with `opts` (its time-to-live).
    pub fn put_with(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>, opts: PutOptions) -> &mut Self {
        let (k, v) = (key.into(), value.into());
        // An expiring value is stored with its expiry (8 bytes more).
        self.bytes += k.len() + v.len() + 24;
        self.ops.push((k, Op::Put(v, opts.ttl)));
        self
    }

    /// Adds a delete of `key` (a tombstone, which hides every older value).
    pub fn delete(&mut self, key: impl Into<Bytes>) -> &mut Self {
        let k = key.into();
        self.bytes += k.len() + 16;
        self.ops.push((k, Op::Delete));
        self
    }

    /// Adds a merge of `operand` into `key`'s value (see
    /// [`MergeOperator`](crate::MergeOperator)); writing the batch needs a
    /// merge operator in the settings.
    pub fn merge(&mut self, key: impl Into<Bytes>, operand: impl Into<Bytes>) -> &mut Self {
        let (k, v) = (key.into(), operand.into());
        self.bytes += k.len() + v.len() + 16;
        self.ops.push((k, Op::Merge(v)));
        self
    }

    /// The number of puts, deletes and merges in the batch.
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
