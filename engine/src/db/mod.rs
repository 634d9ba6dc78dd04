//! The database handle and its tasks, one job per module: `open` (claim,
//! fence, replay), `wal_writer` (freeze and upload WALs), `l0_flush`
//! (memtables to L0 and the writer's manifest edits), `compactor`, `gc`,
//! `read` (views and iterators), all over `inner` (the shared state),
//! `tree` (open SSTs), `chain` (reading the WAL chain) and `manifest_store`
//! (the one manifest commit path).

mod chain;
mod checkpoint;
mod compactor;
mod gc;
mod inner;
mod l0_flush;
mod manifest_store;
mod follower;
mod open;
mod read;
mod standalone;
mod stall;
mod tree;
mod wal_writer;

use std::ops::{Bound, RangeBounds};

use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::batch::{Op, PutOptions, WriteBatch, WriteOptions};
use crate::value::Value;
use crate::commit::{AckError, Appended};
use crate::error::{Error, Result};
use crate::iter::{KeyRange, ScanOptions};
use crate::manifest::ManifestObject;
use crate::protocol::Epoch;
use crate::sync::{lock, Arc, Mutex, Ordering};

pub use chain::{database_exists, read_chain, read_chain_with, ChainContents};
pub use checkpoint::{create_checkpoint, create_checkpoint_with, delete_checkpoint, delete_checkpoint_with, list_checkpoints, CheckpointOptions};
pub use follower::{DbReader, ReaderOptions};
pub use gc::GcStats;
pub use read::{DbIterator, Snapshot};
pub use standalone::{collect_garbage, compact};
pub use stall::{SlowWrites, StallCause};

use inner::DbInner;

/// An open tidemark database: a writer (one per database at a time; opening
/// a new one fences the old, I5) or a read-only handle. Share it behind an
/// `Arc`; all methods take `&self`. Call [`Db::close`] before dropping it:
/// a drop is a crash as far as durability goes (nothing acknowledged is lost,
/// but the next open must replay and fence).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// use std::sync::Arc;
/// use tidemark::{Db, Settings};
///
/// let db = Arc::new(Db::open_url("memory://", Settings::default()).await?);
/// let tasks: Vec<_> = (0..4)
///     .map(|i| {
///         let db = db.clone();
///         tokio::spawn(async move { db.put(format!("k{i}"), "v").await })
///     })
///     .collect();
/// for t in tasks {
///     t.await.expect("task")?; // concurrent writers share WAL uploads
/// }
/// assert_eq!(db.scan(..).await?.collect_vec().await?.len(), 4);
/// db.close().await
/// # }
/// ```
pub struct Db {
    inner: Arc<DbInner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db(root={}, epoch={})", self.inner.layout.root(), self.inner.epoch)
    }
}

impl Drop for Db {
    /// Dropping without `close()` is a crash as far as durability goes:
    /// background tasks stop; what was not durable may be lost, nothing acked is.
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

impl Db {
    /// The writer epoch this handle claimed at open (`Recover`): every open
    /// claims a higher one, and a writer fenced by a higher epoch stops
    /// (I5). A read-only handle reports the epoch of the manifest it read.
    pub fn writer_epoch(&self) -> Epoch {
        self.inner.epoch
    }

    /// Hedged creates and reads so far ([`Settings::hedge`](crate::Settings::hedge));
    /// also in [`Db::metrics`].
    pub fn hedge_counts(&self) -> crate::store::HedgeCounts {
        self.inner.hedge_stats.counts()
    }

    /// The durable watermark (`durable_wal_id`): every WAL of this writer
    /// up to this id exists in the store, so every write in them is durable.
    /// It moves forward only over a contiguous prefix of uploaded WALs.
    pub fn durable_wal_id(&self) -> u64 {
        self.inner.commit.durable_wal_id()
    }

    /// Block cache figures, the open SSTs' resident index and filter bytes,
    /// and the store requests made since open, by kind (see [`Metrics`](crate::Metrics)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
    /// let before = db.metrics().requests;
    /// db.put("k", "v").await?;
    /// let m = db.metrics();
    /// // A durable write costs one create-if-absent PUT of its WAL.
    /// assert_eq!(m.requests.since(&before).put_create, 1);
    /// assert!(m.to_string().contains("put_create")); // `Display` is a table
    /// db.close().await
    /// # }
    /// ```
    pub fn metrics(&self) -> crate::metrics::Metrics {
        let tree = lock(&self.inner.tree).clone();
        let open: Vec<u64> = tree
            .l0
            .iter()
            .chain(tree.runs.iter().flat_map(|r| r.ssts.iter()))
            .filter_map(|s| s.open_reader().map(|r| r.resident_bytes()))
            .collect();
        crate::metrics::Metrics {
            block_cache: self.inner.block_cache.stats(),
            open_ssts: open.len() as u64,
            index_filter_bytes: open.iter().sum(),
            requests: self.inner.requests.snapshot(),
            hedges: self.inner.hedge_stats.counts(),
            slow_writes: self.inner.stalls.counts(),
        }
    }

    /// The manifest version this handle last read or wrote: the epochs, the
    /// WAL range recovery replays and the SSTs (L0 and sorted runs).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
    /// let m = db.manifest().await;
    /// assert_eq!(m.writer_epoch, db.writer_epoch()); // the open claimed it
    /// assert_eq!(m.ssts().count(), 0); // nothing flushed to L0 yet
    /// db.close().await
    /// # }
    /// ```
    pub async fn manifest(&self) -> ManifestObject {
        self.inner.manifest.lock().await.clone()
    }

    /// The codec SST `id` of this handle's view was written with (`none`,
    /// `lz4`, `zstd`: its footer's), opening the SST if it is not open; its
    /// blocks may still be stored plain where compressing did not shrink them.
    pub async fn sst_compression(&self, id: u128) -> Result<&'static str> {
        let tree = lock(&self.inner.tree).clone();
        let sst = tree.l0.iter().chain(tree.runs.iter().flat_map(|r| r.ssts.iter())).find(|s| s.handle.id == id).cloned();
        match sst {
            Some(sst) => Ok(sst.reader().await?.compression()),
            None => Err(Error::InvalidArgument(format!("SST {id:032x} is not in this handle's view"))),
        }
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        check_key(key, self.inner.settings.max_key_size)
    }

    /// A consistent read view as of now: it sees every write made before
    /// this call returns and none after, however long it is held.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
    /// db.put("k", "old").await?;
    /// let snap = db.snapshot();
    /// db.put("k", "new").await?;
    /// db.put("k2", "v").await?;
    /// assert_eq!(snap.get("k").await?.as_deref(), Some(&b"old"[..]));
    /// assert_eq!(snap.scan(..).await?.collect_vec().await?.len(), 1); // no k2
    /// assert_eq!(db.get("k").await?.as_deref(), Some(&b"new"[..]));
    /// db.close().await
    /// # }
    /// ```
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { view: self.inner.read_view(), max_key_size: self.inner.settings.max_key_size }
    }

    /// A durable checkpoint of this database: a consistent backup holding
    /// every write acknowledged before the call, kept by GC in any process
    /// until it is deleted ([`delete_checkpoint`]) or, with a lifetime,
    /// expires. Open it elsewhere with [`DbReader::open_checkpoint`]. One
    /// manifest write; the writer goes on undisturbed.
    pub async fn checkpoint(&self, opts: CheckpointOptions) -> Result<crate::manifest::Checkpoint> {
        let inner = &self.inner;
        let client = checkpoint::Client::of(inner);
        let latest = inner.manifests.reread(inner.manifest.lock().await.clone()).await?;
        Ok(client.create(&latest, opts, true).await?.0)
    }

    /// Writes `value` at `key` and returns once it is durable (its WAL is
    /// under the durable watermark). As [`Db::write`] with a one-put batch.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
    /// db.put("k", "v1").await?;
    /// db.put("k", "v2").await?; // the newer write wins
    /// assert_eq!(db.get("k").await?.as_deref(), Some(&b"v2"[..]));
    /// db.delete("k").await?;
    /// assert_eq!(db.get("k").await?, None);
    /// db.close().await
    /// # }
    /// ```
    pub async fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<()> {
        self.put_with(key, value, &WriteOptions::default()).await
    }

    /// [`Db::put`] with options (e.g. [`WriteOptions`] `{ await_durable: false }`).
    pub async fn put_with(&self, key: impl Into<Bytes>, value: impl Into<Bytes>, opts: &WriteOptions) -> Result<()> {
        self.put_with_options(key, value, &PutOptions::default(), opts).await
    }

    /// [`Db::put`] with per-put options (its time-to-live) and write options.
    pub async fn put_with_options(&self, key: impl Into<Bytes>, value: impl Into<Bytes>, put: &PutOptions, opts: &WriteOptions) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put_with(key, value, *put);
        self.write_with(b, opts).await
    }

    /// Merges `operand` into `key`'s value with the settings'
    /// [`MergeOperator`](crate::MergeOperator) (a read-modify-write without
    /// the read) and returns once that is durable. Reads fold the operands
    /// written since the key's last put or delete, in write order.
    pub async fn merge(&self, key: impl Into<Bytes>, operand: impl Into<Bytes>) -> Result<()> {
        self.merge_with(key, operand, &WriteOptions::default()).await
    }

    /// [`Db::merge`] with options.
    pub async fn merge_with(&self, key: impl Into<Bytes>, operand: impl Into<Bytes>, opts: &WriteOptions) -> Result<()> {
        let mut b = WriteBatch::new();
        b.merge(key, operand);
        self.write_with(b, opts).await
    }

    /// Deletes `key` (writes a tombstone) and returns once that is durable.
    /// Deleting a key that does not exist is not an error.
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<()> {
        self.delete_with(key, &WriteOptions::default()).await
    }

    /// [`Db::delete`] with options.
    pub async fn delete_with(&self, key: impl Into<Bytes>, opts: &WriteOptions) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write_with(b, opts).await
    }

    /// Writes a [`WriteBatch`] atomically (one WAL) and returns once it is
    /// durable. See [`Db::write_with`] for what an error means.
    pub async fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_with(batch, &WriteOptions::default()).await
    }

    /// `Put`: appends the batch atomically to the WAL buffer and memtable;
    /// with `await_durable`, waits until its WAL is covered by the watermark (`Ack`).
    /// `Err(OutcomeUnknown)`: the batch was appended but not acknowledged and
    /// may be durable; any other error: the batch was not written.
    pub async fn write_with(&self, batch: WriteBatch, opts: &WriteOptions) -> Result<()> {
        let inner = &self.inner;
        if inner.read_only {
            return Err(Error::InvalidArgument("this handle is read-only".into()));
        }
        if batch.is_empty() {
            return Ok(());
        }
        for (k, op) in &batch.ops {
            self.check_key(k)?;
            if let Some(v) = op.payload() {
                let max = inner.settings.max_value_size;
                if v.len() > max {
                    return Err(Error::InvalidArgument(format!("value of {} bytes exceeds max_value_size {max}", v.len())));
                }
            }
            if matches!(op, Op::Merge(_)) && inner.settings.merge_operator.is_none() {
                return Err(Error::InvalidArgument("merge needs a merge operator (Settings::with_merge_operator)".into()));
            }
        }
        // Expiry is stamped here, on the database clock, before the batch
        // takes its sequence numbers.
        let now_ms = inner.settings.clock.now_ms();
        let ops: Vec<(Bytes, Value)> = batch
            .ops
            .iter()
            .map(|(k, op)| Ok((k.clone(), op.version(now_ms, inner.settings.default_ttl)?)))
            .collect::<Result<_>>()?;
        let bytes = batch.bytes;
        let limit = crate::bounds::wal_payload_limit(&inner.settings);
        if bytes as u64 > limit {
            return Err(Error::InvalidArgument(format!(
                "a batch of {bytes} bytes is more than a WAL holds ({limit} bytes: wal_size_bytes, or one key and value of \
                 max_key_size + max_value_size); split it or raise wal_size_bytes"
            )));
        }
        let began = inner.stalls.now();
        self.backpressure().await?;
        let appending = inner.stalls.now();
        let n = ops.len() as u64;
        let seqs = crate::bounds::seq_range(inner.epoch);
        // Asked under the commit lock, where the numbers are taken: the
        // batch's sequence numbers must all be this epoch's.
        let admit = || {
            let next = inner.next_seq.load(Ordering::Acquire);
            seqs.as_ref().is_some_and(|r| next.checked_add(n).is_some_and(|end| end - 1 <= *r.end()))
        };
        let (wal_id, active_bytes) = loop {
            // Both closures run under the commit lock: the items take their
            // sequence numbers in write order, and the memtable gets the same.
            let seqd = ops.iter().cloned().map(|(k, v)| (k, inner.next_seq.fetch_add(1, Ordering::AcqRel), v));
            let apply = |_| {
                let end = inner.next_seq.load(Ordering::Acquire);
                let mut mem = lock(&inner.mem);
                for ((k, v), seq) in ops.iter().cloned().zip(end - n..end) {
                    mem.active.insert(k, seq, v);
                }
                mem.last_seq = end - 1;
                mem.active.bytes()
            };
            match inner.commit.append_within(limit as usize, admit, seqd, bytes, apply) {
                Ok(Appended::Done(wal_id, active_bytes)) => break (wal_id, active_bytes),
                // The WAL buffer is at its limit: wait for the WAL writer to freeze it.
                Ok(Appended::BufferFull) => {
                    inner.flush_wanted.store(true, Ordering::Release);
                    inner.wake_flusher.notify_one();
                    let _ = tokio::time::timeout(std::time::Duration::from_millis(1), inner.durable_changed.notified()).await;
                }
                Ok(Appended::Refused) => {
                    return Err(Error::InvalidArgument(format!(
                        "writer epoch {} has used its sequence numbers ({}); reopen to claim a new writer epoch",
                        inner.epoch,
                        seqs.as_ref().map_or_else(|| "none".to_string(), |r| format!("{}..={}", r.start(), r.end()))
                    )))
                }
                Err(e) => return Err(inner.ack_error(e)),
            }
        };
        let wal_full = inner.commit.buffer_bytes() >= inner.settings.wal_size_bytes;
        if active_bytes >= inner.settings.l0_sst_size_bytes {
            inner.memtable_full.store(true, Ordering::Release);
        }
        if opts.await_durable {
            inner.flush_wanted.store(true, Ordering::Release);
        }
        if opts.await_durable || wal_full || active_bytes >= inner.settings.l0_sst_size_bytes {
            inner.wake_flusher.notify_one();
        }
        if opts.await_durable {
            let appended = inner.stalls.now();
            // `Ack` is decided (and recorded) under the commit lock: here if
            // already covered, else when `WalDurable` releases us.
            let wait = inner.commit.wait_durable(wal_id);
            wait.await.map_err(|e| inner.unacked_error(wal_id, e))?;
            let times = stall::WriteTimes { began, appending, appended, acked: inner.stalls.now() };
            inner.stalls.check(wal_id, times, inner.settings.slow_write.threshold(inner.stalls.upload_p99()));
        }
        Ok(())
    }

    /// Waits while memtables not yet in L0 exceed `max_unflushed_bytes`;
    /// fails if they cannot be flushed (`DbInner::flush_blocked`).
    async fn backpressure(&self) -> Result<()> {
        let inner = &self.inner;
        loop {
            let unflushed = lock(&inner.mem).unflushed_bytes();
            if unflushed <= inner.settings.max_unflushed_bytes {
                return Ok(());
            }
            if let Some(e) = inner.commit.failure() {
                return Err(inner.ack_error(e));
            }
            if let Some(e) = inner.flush_blocked() {
                return Err(e);
            }
            inner.memtable_full.store(true, Ordering::Release);
            inner.wake_flusher.notify_one();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(10), inner.space_freed.notified()).await;
        }
    }

    /// The newest value of `key` (`None` if absent or deleted), read in an
    /// implicit snapshot: the memtables and the SST tree are captured
    /// together, so an L0 flush or a compaction cannot move the key between
    /// two places unseen. It sees every write acknowledged before the call.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.check_key(key)?;
        self.inner.read_view().get(key).await
    }

    /// Live keys and values in `range`, in key order, as a stream
    /// ([`DbIterator`]): one consistent state, captured before any SST is
    /// read, read block by block as it goes. Ranges are of [`Bytes`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// use bytes::Bytes;
    ///
    /// let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
    /// for k in ["a", "b", "c", "d"] {
    ///     db.put(k, k.to_uppercase()).await?;
    /// }
    /// let mut it = db.scan(Bytes::from("b")..Bytes::from("d")).await?;
    /// assert_eq!(it.next().await?, Some((Bytes::from("b"), Bytes::from("B"))));
    /// assert_eq!(it.next().await?, Some((Bytes::from("c"), Bytes::from("C"))));
    /// assert_eq!(it.next().await?, None);
    ///
    /// let all = db.scan(..).await?.collect_vec().await?;
    /// assert_eq!(all.len(), 4);
    /// db.close().await
    /// # }
    /// ```
    pub async fn scan(&self, range: impl RangeBounds<Bytes>) -> Result<DbIterator> {
        self.scan_with(range, ScanOptions::default()).await
    }

    /// As [`Db::scan`], in descending key order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// use bytes::Bytes;
    ///
    /// let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
    /// for k in ["a", "b", "c"] {
    ///     db.put(k, "v").await?;
    /// }
    /// let keys: Vec<Bytes> = db.scan_rev(Bytes::from("b")..).await?.collect_vec().await?.into_iter().map(|(k, _)| k).collect();
    /// assert_eq!(keys, ["c", "b"]);
    /// db.close().await
    /// # }
    /// ```
    pub async fn scan_rev(&self, range: impl RangeBounds<Bytes>) -> Result<DbIterator> {
        self.scan_with(range, ScanOptions::reverse()).await
    }

    /// Keys starting with `prefix`, in key order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
    /// for k in ["user/1", "user/2", "users", "order/1"] {
    ///     db.put(k, "v").await?;
    /// }
    /// let users = db.scan_prefix("user/").await?.collect_vec().await?;
    /// let keys: Vec<&[u8]> = users.iter().map(|(k, _)| &k[..]).collect();
    /// assert_eq!(keys, [&b"user/1"[..], b"user/2"]);
    ///
    /// let newest = db.scan_prefix_rev("user/").await?.next().await?;
    /// assert_eq!(newest.map(|(k, _)| k), Some("user/2".into()));
    /// db.close().await
    /// # }
    /// ```
    pub async fn scan_prefix(&self, prefix: impl Into<Bytes>) -> Result<DbIterator> {
        self.scan_with(prefix_range(prefix.into()), ScanOptions::default()).await
    }

    /// Keys starting with `prefix`, in descending key order.
    pub async fn scan_prefix_rev(&self, prefix: impl Into<Bytes>) -> Result<DbIterator> {
        self.scan_with(prefix_range(prefix.into()), ScanOptions::reverse()).await
    }

    /// A scan of `range` in the direction, with the read-ahead and the
    /// cache policy of `opts`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// use tidemark::{Direction, ScanOptions};
    ///
    /// let db = tidemark::Db::open_url("memory://", tidemark::Settings::default()).await?;
    /// db.put("a", "1").await?;
    /// db.put("b", "2").await?;
    /// // A one-off export: reverse order, and keep its blocks out of the cache.
    /// let opts = ScanOptions { direction: Direction::Reverse, fill_cache: false, ..ScanOptions::default() };
    /// let rows = db.scan_with(.., opts).await?.collect_vec().await?;
    /// assert_eq!(rows[0].0, "b");
    /// db.close().await
    /// # }
    /// ```
    pub async fn scan_with(&self, range: impl RangeBounds<Bytes>, opts: ScanOptions) -> Result<DbIterator> {
        let range: KeyRange = (range.start_bound().cloned(), range.end_bound().cloned());
        #[cfg(feature = "mutants")]
        if self.inner.settings.scan_without_snapshot {
            return self.scan_without_snapshot(&range, opts.direction).await;
        }
        Ok(self.inner.read_view().iter(&range, opts))
    }

    /// A scan that is not one consistent view, kept as a mutant so the crash harness
    /// can show it catches it: it copies the tree, awaits the SST reads, and
    /// only then reads the memtables, so an L0 flush finishing in between
    /// moves a memtable's keys into an SST this scan did not include.
    #[cfg(feature = "mutants")]
    async fn scan_without_snapshot(&self, range: &KeyRange, dir: crate::iter::Direction) -> Result<DbIterator> {
        use crate::iter::{Direction, MergeIter, Mode, Source};
        let keep = Mode::Compact { now_ms: 0, bottom: false };
        let op = self.inner.settings.merge_operator.clone();
        let tree = lock(&self.inner.tree).clone();
        let mut from_ssts = Vec::new();
        let mut merge = MergeIter::new(tree.sources(range, ScanOptions::default()), keep, op.clone());
        while let Some(e) = merge.next().await? {
            from_ssts.push(e);
        }
        let mut sources = Vec::new();
        {
            let mem = lock(&self.inner.mem);
            sources.push(Source::entries(mem.active.range_at(range, mem.last_seq), Direction::Forward));
            for imm in mem.imm.iter().rev() {
                sources.push(Source::entries(imm.table.range_at(range, mem.last_seq), Direction::Forward));
            }
        }
        sources.push(Source::entries(from_ssts, Direction::Forward));
        let mut merged = Vec::new();
        let mut merge = MergeIter::new(sources, keep, op.clone());
        while let Some(e) = merge.next().await? {
            merged.push(e);
        }
        let read = Mode::Read { now_ms: self.inner.settings.clock.now_ms() };
        Ok(DbIterator::from_entries(merged, dir, tree, read, op))
    }

    /// Makes everything written so far durable: returns once the WAL holding
    /// the last write is under the durable watermark. Writes made with
    /// `await_durable: false` need it (or a later durable write, or `close`)
    /// to survive a crash; see [`WriteOptions`] for an example.
    pub async fn flush(&self) -> Result<()> {
        let inner = &self.inner;
        if inner.read_only {
            return Ok(());
        }
        let target = inner.commit.last_written_wal_id();
        inner.flush_wanted.store(true, Ordering::Release);
        inner.wake_flusher.notify_one();
        inner.commit.wait_durable(target).await.map_err(|e| inner.ack_error(e))
    }

    /// Graceful shutdown (`Close`): stop accepting writes, make everything
    /// written durable, flush the memtables to L0 and record a manifest with
    /// `writer_closed`, so the next open replays nothing and needs no fence;
    /// compact if L0 is over its limit and run one GC pass. Later calls fail
    /// with [`Error::Closed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> tidemark::Result<()> {
    /// use std::sync::Arc;
    /// use object_store::memory::InMemory;
    /// use tidemark::Db;
    ///
    /// let store = Arc::new(InMemory::new());
    /// let db = Db::open("db", store.clone()).await?;
    /// db.put("k", "v").await?;
    /// db.close().await?;
    ///
    /// let db = Db::open("db", store).await?; // replays nothing
    /// assert_eq!(db.manifest().await.l0.len(), 1); // the memtable went to L0 at close
    /// assert_eq!(db.get("k").await?.as_deref(), Some(&b"v"[..]));
    /// db.close().await
    /// # }
    /// ```
    pub async fn close(&self) -> Result<()> {
        let inner = &self.inner;
        if inner.read_only {
            inner.commit.fail(AckError::Closed);
            return Ok(());
        }
        let result = self.close_writer().await;
        inner.commit.fail(AckError::Closed);
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        match result {
            Err(Error::Closed) => Ok(()),
            other => other,
        }
    }

    async fn close_writer(&self) -> Result<()> {
        let inner = &self.inner;
        if let Some(e) = inner.commit.failure() {
            return Err(inner.ack_error(e));
        }
        let last = inner.commit.stop_appends();
        inner.flush_wanted.store(true, Ordering::Release);
        inner.wake_flusher.notify_one();
        inner.commit.wait_durable(last).await.map_err(|e| inner.ack_error(e))?;
        // Nothing of this writer may land after its close manifest.
        while inner.uploads_in_flight.load(Ordering::Acquire) > 0 {
            if let Some(e) = inner.commit.failure() {
                return Err(inner.ack_error(e));
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(5), inner.durable_changed.notified()).await;
        }
        l0_flush::flush_all(inner).await?;
        l0_flush::record_close(inner).await?;
        if inner.compacts_here() {
            compactor::compact_while_needed(inner).await?;
        }
        if !inner.settings.gc_interval.is_zero() {
            if let Err(e) = gc::run(inner, crate::protocol::GcCaller::Writer(inner.epoch)).await {
                tracing::warn!(error = %e, "GcManifest/GcSst/GcWal pass at close failed; the next pass retries");
            }
        }
        Ok(())
    }
}

/// Refuses an empty key or one longer than `max`.
fn check_key(key: &[u8], max: usize) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("keys must not be empty".into()));
    }
    if key.len() > max {
        return Err(Error::InvalidArgument(format!("key of {} bytes exceeds max_key_size {max}", key.len())));
    }
    Ok(())
}

/// The first sequence number of a writer of `epoch`: `epoch << 32`, above
/// every sequence number of an older writer (each gets 2^32 numbers,
/// [`crate::bounds::seq_range`]), so a write after a reopen is numbered above
/// every write before it, whatever was replayed. An epoch too large for that
/// leaves none (writes are refused, never wrapped).
pub(crate) fn seq_base(epoch: Epoch, replayed: Option<u64>) -> u64 {
    let base = crate::bounds::seq_range(epoch).map_or(crate::bounds::MAX_SEQ + 1, |r| *r.start());
    replayed.and_then(|s| s.checked_add(1)).map_or(base, |r| r.max(base))
}

/// The keys starting with `prefix`.
pub fn prefix_range(prefix: Bytes) -> KeyRange {
    let upper = match prefix_end(&prefix) {
        Some(e) => Bound::Excluded(e),
        None => Bound::Unbounded,
    };
    (Bound::Included(prefix), upper)
}

/// The smallest key greater than every key with `prefix`, if any.
fn prefix_end(prefix: &[u8]) -> Option<Bytes> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(Bytes::from(end));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::seq_base;
    use crate::protocol::MAX_ID;

    #[test]
    fn each_epoch_numbers_above_every_older_one_and_never_wraps() {
        assert_eq!(seq_base(0, None), 0);
        assert_eq!(seq_base(3, None), 3 << 32);
        assert!(seq_base(3, None) > (2 << 32) + u64::from(u32::MAX), "above every seq of epoch 2");
        assert_eq!(seq_base(3, Some(7)), 3 << 32, "replayed seqs of older epochs are below the base");
        assert_eq!(seq_base(3, Some((3 << 32) + 9)), (3 << 32) + 10, "above what was replayed");
        // An epoch with no room: the next seq is past MAX_ID, so the write
        // path refuses every write.
        assert_eq!(seq_base(1 << 31, None), MAX_ID + 1);
        assert_eq!(seq_base((1 << 31) - 1, None), ((1 << 31) - 1) << 32);
        assert_eq!(seq_base(u64::MAX, None), MAX_ID + 1);
        assert_eq!(seq_base(1, Some(u64::MAX)), 1 << 32, "a replayed u64::MAX is not wrapped");
    }
}
