//! The one error type callers match on.

use crate::protocol::{Epoch, WalId};

/// Everything that can go wrong, with variants a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A newer writer (epoch `by`) took over; this one acknowledges nothing more (I5).
    #[error("Fenced: writer epoch {writer_epoch} was fenced by epoch {by}")]
    Fenced { writer_epoch: Epoch, by: Epoch },
    /// I1 violated: the manifest requires a WAL that is not in the store.
    #[error("MissingWal: wal {id} ({path}) is required by the manifest but does not exist")]
    MissingWal { id: WalId, path: String },
    /// An object failed its checksum or does not decode.
    #[error("Corrupt: {path}: {reason}")]
    Corrupt { path: String, reason: String },
    /// A WAL id this writer needed holds another writer's object.
    #[error("WalIdTaken: wal {id} holds an object of epoch {owner_epoch}")]
    WalIdTaken { id: WalId, owner_epoch: Epoch },
    /// The object store failed (after retries, where they apply).
    #[error("ObjectStore: {0}")]
    ObjectStore(#[source] object_store::Error),
    /// The store cannot be used as it is configured, and retrying will not
    /// help: an S3 bucket that does not exist, credentials the store
    /// refuses, an endpoint that does not answer or that is plain HTTP
    /// without `AWS_ALLOW_HTTP`. `fix` says what to change.
    #[error("{problem}: {fix}")]
    StoreAccess { problem: String, fix: String },
    /// The store does not honour create-if-absent (`PutMode::Create`), which
    /// every fence and epoch claim rests on: refused at writable open.
    #[error("NoCompareAndSet: {store}: {detail}")]
    NoCompareAndSet { store: String, detail: String },
    /// The database was closed.
    #[error("Closed: the database is closed")]
    Closed,
    /// Bad input from the caller: oversize keys, bad settings or URLs.
    #[error("InvalidArgument: {0}")]
    InvalidArgument(String),
    /// A reader found no database where it was pointed (no manifest).
    #[error("no tidemark database at {location}")]
    NoDatabase { location: String },
    /// The write was appended, then the writer failed (fenced, a store
    /// failure, closed) before it was acknowledged, and its WAL may have been
    /// uploaded: it may or may not be durable. A write rejected before it
    /// was appended, or whose WAL was rejected, fails with its cause instead
    /// and was not written.
    #[error("outcome unknown: the write may or may not be durable ({cause})")]
    OutcomeUnknown { cause: Box<Error> },
}

impl From<object_store::Error> for Error {
    /// A store failure whose cause the store layer diagnosed (see
    /// `store::s3`) becomes [`Error::StoreAccess`]; any other stays
    /// [`Error::ObjectStore`].
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
