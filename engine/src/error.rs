//! The one error type callers match on.

use crate::protocol::{Epoch, WalId};

/// Everything that can go wrong, with variants a caller can act on: each
/// variant says what it means and what to do about it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// use tidemark::{Db, Error, Settings};
///
/// let db = Db::open_url("memory://", Settings::default()).await?;
/// // Bad input is refused before anything is written.
/// assert!(matches!(db.put("", "v").await, Err(Error::InvalidArgument(_))));
/// db.close().await?;
/// assert!(matches!(db.put("k", "v").await, Err(Error::Closed)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A newer writer (epoch `by`) took over; this one acknowledges nothing
    /// more (I5). Drop this handle: another process owns the database now;
    /// open again only if this process should take it back.
    #[error("Fenced: writer epoch {writer_epoch} was fenced by epoch {by}")]
    Fenced {
        /// The epoch of this (fenced) writer.
        writer_epoch: Epoch,
        /// The newer epoch that fenced it.
        by: Epoch,
    },
    /// I1 violated: the manifest requires a WAL that is not in the store, so
    /// acknowledged writes would be lost: the open refuses rather than lose
    /// them silently. Run [`fsck()`](crate::fsck()), and look for the object
    /// (a store or a copy that lost it, a wrong root path).
    #[error("MissingWal: wal {id} ({path}) is required by the manifest but does not exist")]
    MissingWal {
        /// The WAL id the chain needs.
        id: WalId,
        /// The object it should be at.
        path: String,
    },
    /// An object failed its checksum or does not decode. Retrying will not
    /// help; run [`fsck()`](crate::fsck()) to see what else is damaged.
    #[error("Corrupt: {path}: {reason}")]
    Corrupt {
        /// The damaged object.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A WAL id this writer needed holds another writer's object: another
    /// writer is active on the same database. Only one writer can own it;
    /// drop this handle, or open again to take over.
    #[error("WalIdTaken: wal {id} holds an object of epoch {owner_epoch}")]
    WalIdTaken {
        /// The WAL id that was taken.
        id: WalId,
        /// The epoch of the writer whose object holds it.
        owner_epoch: Epoch,
    },
    /// The object store failed (after retries, where they apply). A failed
    /// writer stops acknowledging; open the database again once the store
    /// answers.
    #[error("ObjectStore: {0}")]
    ObjectStore(#[source] object_store::Error),
    /// The store cannot be used as it is configured, and retrying will not
    /// help: an S3 bucket that does not exist, credentials the store
    /// refuses, an endpoint that does not answer or that is plain HTTP
    /// without `AWS_ALLOW_HTTP`. `fix` says what to change.
    #[error("{problem}: {fix}")]
    StoreAccess {
        /// What is wrong, in one line.
        problem: String,
        /// The change that fixes it.
        fix: String,
    },
    /// The store does not honour create-if-absent (`PutMode::Create`), which
    /// every fence and epoch claim rests on: refused at writable open. Use
    /// a store (or S3 endpoint) with conditional creates, or open read-only.
    #[error("NoCompareAndSet: {store}: {detail}")]
    NoCompareAndSet {
        /// The store that was probed.
        store: String,
        /// What the probe saw.
        detail: String,
    },
    /// The handle was closed ([`Db::close`](crate::Db::close)); open the
    /// database again to write.
    #[error("Closed: the database is closed")]
    Closed,
    /// Bad input from the caller: empty or oversize keys and values, bad
    /// settings or URLs, a write to a read-only handle. Nothing was written;
    /// fix the input.
    #[error("InvalidArgument: {0}")]
    InvalidArgument(String),
    /// A reader found no database where it was pointed (no manifest).
    /// Check the URL or path; a writer's open creates one.
    #[error("no tidemark database at {location}")]
    NoDatabase {
        /// Where it looked.
        location: String,
    },
    /// The write was appended, then the writer failed (fenced, a store
    /// failure, closed) before it was acknowledged, and its WAL may have been
    /// uploaded: it may or may not be durable. A write rejected before it
    /// was appended, or whose WAL was rejected, fails with its cause instead
    /// and was not written. Read the key after reopening to learn which; a
    /// write that is safe to repeat can simply be retried.
    #[error("outcome unknown: the write may or may not be durable ({cause})")]
    OutcomeUnknown {
        /// Why the writer failed.
        cause: Box<Error>,
    },
    /// The checkpoint a reader reads through is gone: dropped by its holder,
    /// or expired (its holder stopped refreshing it) and dropped by GC, so
    /// what it pinned may have been deleted. Nothing wrong was read; open
    /// the reader again (a follower re-opens on its own at its next poll).
    #[error("checkpoint {id:032x} is gone (expired or deleted): {detail}")]
    CheckpointGone {
        /// The checkpoint's id.
        id: u128,
        /// What was found.
        detail: String,
    },
    /// Memtables are over `max_unflushed_bytes` and every `FlushL0` has
    /// failed for `waited_ms` (the store refuses SST uploads or manifest
    /// writes): the write was refused before it was appended, and nothing
    /// was written. Writes acknowledged before are durable in their WALs.
    /// Retry once the store answers; the writer flushes on its own.
    #[error("FlushStalled: no memtable could be flushed to L0 for {waited_ms} ms: {cause}")]
    FlushStalled {
        /// How long flushes have failed.
        waited_ms: u64,
        /// The last flush's error.
        cause: String,
    },
}

impl From<object_store::Error> for Error {
    /// A store failure whose cause tidemark recognises (a missing bucket,
    /// refused credentials, an endpoint that does not answer) becomes
    /// [`Error::StoreAccess`]; any other stays [`Error::ObjectStore`].
    fn from(e: object_store::Error) -> Self {
        match crate::store::s3::diagnosis(&e) {
            Some(d) => Error::StoreAccess { problem: d.problem.clone(), fix: d.fix.clone() },
            None => Error::ObjectStore(e),
        }
    }
}

impl Error {
    pub(crate) fn corrupt(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt { path: path.into(), reason: reason.into() }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
