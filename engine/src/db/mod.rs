//! The database: the write path, the read path, and the handle's lifecycle.

mod background;
mod open;
pub mod url;

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

use bytes::Bytes;
use object_store::ObjectStore;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::batch::{WriteBatch, WriteOptions};
use crate::commit::{AckError, CommitLog};
use crate::error::{Error, Result};
use crate::manifest::ManifestObject;
use crate::memtable::MemState;
use crate::paths::Layout;
use crate::protocol::Epoch;
use crate::settings::Settings;
use crate::sst::{Entry, SstReader};
use crate::sync::{lock, Arc, AtomicBool, Mutex, Ordering, StdArc};
use crate::trace::{TraceEvent, Tracer};

pub use open::{read_chain, ChainContents};

/// State shared by the handle and its background tasks.
pub(crate) struct DbInner {
    pub(crate) store: StdArc<dyn ObjectStore>,
    pub(crate) layout: Layout,
    pub(crate) settings: Settings,
    pub(crate) epoch: Epoch,
    pub(crate) tracer: Tracer,
    pub(crate) commit: CommitLog<Entry>,
    pub(crate) mem: Mutex<MemState>,
    /// L0 SSTs, newest first.
    pub(crate) l0: Mutex<Vec<Arc<SstReader>>>,
    pub(crate) manifest: tokio::sync::Mutex<ManifestObject>,
    pub(crate) wake_flusher: Notify,
    pub(crate) wake_l0: Notify,
    pub(crate) durable_changed: Notify,
    pub(crate) space_freed: Notify,
    pub(crate) memtable_full: AtomicBool,
    pub(crate) read_only: bool,
}

impl DbInner {
    pub(crate) fn ack_error(&self, e: AckError) -> Error {
        match e {
            AckError::Fenced { by } => Error::Fenced { writer_epoch: self.epoch, by },
            AckError::Closed => Error::Closed,
            AckError::Failed(reason) => {
                Error::ObjectStore(object_store::Error::Generic { store: "tidemark", source: reason.into() })
            }
        }
    }

    pub(crate) fn emit(&self, event: TraceEvent) {
        self.tracer.emit(self.epoch, event);
    }
}

/// An open tidemark database. Cheap to share behind an `Arc`; all methods take `&self`.
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
    /// The writer epoch this handle claimed.
    pub fn writer_epoch(&self) -> Epoch {
        self.inner.epoch
    }

    /// `durable_wal_id`: every WAL of this writer up to it exists.
    pub fn durable_wal_id(&self) -> u64 {
        self.inner.commit.durable_wal_id()
    }

    /// The current manifest.
    pub async fn manifest(&self) -> ManifestObject {
        self.inner.manifest.lock().await.clone()
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("keys must not be empty".into()));
        }
        let max = self.inner.settings.max_key_size;
        if key.len() > max {
            return Err(Error::InvalidArgument(format!("key of {} bytes exceeds max_key_size {max}", key.len())));
        }
        Ok(())
    }

    pub async fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<()> {
        self.put_with(key, value, &WriteOptions::default()).await
    }

    pub async fn put_with(&self, key: impl Into<Bytes>, value: impl Into<Bytes>, opts: &WriteOptions) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.write_with(b, opts).await
    }

    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<()> {
        self.delete_with(key, &WriteOptions::default()).await
    }

    pub async fn delete_with(&self, key: impl Into<Bytes>, opts: &WriteOptions) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write_with(b, opts).await
    }

    pub async fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_with(batch, &WriteOptions::default()).await
    }

    /// `Put`: appends the batch atomically to the WAL buffer and memtable;
    /// with `await_durable`, waits until its WAL is covered by the watermark (`Ack`).
    pub async fn write_with(&self, batch: WriteBatch, opts: &WriteOptions) -> Result<()> {
        let inner = &self.inner;
        if inner.read_only {
            return Err(Error::InvalidArgument("this handle is read-only".into()));
        }
        if batch.is_empty() {
            return Ok(());
        }
        for (k, v) in &batch.ops {
            self.check_key(k)?;
            if let Some(v) = v {
                let max = inner.settings.max_value_size;
                if v.len() > max {
                    return Err(Error::InvalidArgument(format!("value of {} bytes exceeds max_value_size {max}", v.len())));
                }
            }
        }
        self.backpressure().await?;
        let bytes = batch.bytes;
        let ops = batch.ops;
        let (wal_id, active_bytes) = inner
            .commit
            .append(ops.clone(), bytes, |wal_id| {
                // Recorded under the commit lock, so a trace orders every Put
                // before the FreezeWal that takes it.
                if inner.tracer.is_recording() {
                    inner.emit(TraceEvent::Put { wal_id });
                }
                let mut mem = lock(&inner.mem);
                for (k, v) in ops {
                    mem.active.insert(k, v);
                }
                mem.active.bytes
            })
            .map_err(|e| inner.ack_error(e))?;
        let wal_full = inner.commit.buffer_bytes() >= inner.settings.wal_size_bytes;
        if active_bytes >= inner.settings.l0_sst_size_bytes {
            inner.memtable_full.store(true, Ordering::Release);
        }
        if opts.await_durable || wal_full || active_bytes >= inner.settings.l0_sst_size_bytes {
            inner.wake_flusher.notify_one();
        }
        if opts.await_durable {
            // `Ack` is recorded where it is decided, under the commit lock:
            // here if already covered, else when `WalDurable` releases us.
            let wait = match inner.tracer.is_recording() {
                true => inner.commit.wait_durable_with(wal_id, || inner.emit(TraceEvent::Ack { wal_id })),
                false => inner.commit.wait_durable(wal_id),
            };
            wait.await.map_err(|e| inner.ack_error(e))?;
        }
        Ok(())
    }

    /// Waits while memtables not yet in L0 exceed `max_unflushed_bytes`.
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
            inner.memtable_full.store(true, Ordering::Release);
            inner.wake_flusher.notify_one();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(10), inner.space_freed.notified()).await;
        }
    }

    /// The newest value of `key`, from memtables then L0 SSTs newest first.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.check_key(key)?;
        if let Some(v) = lock(&self.inner.mem).get(key) {
            return Ok(v);
        }
        let l0 = lock(&self.inner.l0).clone();
        for sst in l0 {
            if let Some(v) = sst.get(key).await? {
                return Ok(v);
            }
        }
        Ok(None)
    }

    /// Live keys and values in `range`, in key order.
    pub async fn scan(&self, range: impl RangeBounds<Bytes>) -> Result<Vec<(Bytes, Bytes)>> {
        let range = (range.start_bound().cloned(), range.end_bound().cloned());
        // The memtables are read before the L0 list: a flush adds its SST to
        // L0 before it drops the memtable, so every write is in one of the
        // two. (Read the other way round, a flush that finished while the
        // SSTs were being read took its writes out of both.)
        let mut newer: Vec<(Bytes, Option<Bytes>)> = Vec::new();
        {
            let mem = lock(&self.inner.mem);
            for imm in &mem.imm {
                newer.extend(imm.table.range(&range).map(|(k, v)| (k.clone(), v.clone())));
            }
            newer.extend(mem.active.range(&range).map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut merged: BTreeMap<Bytes, Option<Bytes>> = BTreeMap::new();
        let l0 = lock(&self.inner.l0).clone();
        for sst in l0.iter().rev() {
            merged.extend(sst.scan(&range).await?);
        }
        merged.extend(newer);
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }

    /// Keys starting with `prefix`, in order.
    pub async fn scan_prefix(&self, prefix: impl Into<Bytes>) -> Result<Vec<(Bytes, Bytes)>> {
        let prefix: Bytes = prefix.into();
        let end = prefix_end(&prefix);
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        self.scan((Bound::Included(prefix), upper)).await
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<()> {
        let inner = &self.inner;
        if inner.read_only {
            return Ok(());
        }
        let target = inner.commit.last_written_wal_id();
        inner.wake_flusher.notify_one();
        inner.commit.wait_durable(target).await.map_err(|e| inner.ack_error(e))
    }

    /// Graceful shutdown: flush, stop background tasks; later calls fail with `Closed`.
    pub async fn close(&self) -> Result<()> {
        let mut flushed = self.flush().await;
        if flushed.is_ok() && !self.inner.read_only {
            flushed = background::record_wal_progress(&self.inner).await;
        }
        self.inner.commit.fail(AckError::Closed);
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        match flushed {
            Err(Error::Closed) => Ok(()),
            other => other,
        }
    }
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
