//! Requests a [`FaultStore`](super::FaultStore) holds in flight until the
//! test lands or drops them: uploads (the object lands when released),
//! listings (taken when asked, answered when released: a stale view of the
//! store, as a LIST whose response is slow) and reads (sent to the store when
//! released: a slow GET sees what landed meanwhile).

use object_store::path::Path;
use object_store::{ObjectMeta, PutOptions, PutPayload, PutResult, Result};

use crate::sync::task::oneshot;

/// What kind of request is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldKind {
    /// A put: lands when released.
    Upload,
    /// A listing, answered when released with what the store held when it
    /// was asked.
    Listing,
    /// A read, sent to the store when released.
    Read,
}

/// A request held in flight, as a test sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldRequest {
    /// Unique among this store's held requests, in the order they were held.
    pub id: u64,
    pub kind: HeldKind,
    /// The object (or, for a listing, the prefix).
    pub path: Path,
}

pub(super) struct HeldPut {
    pub(super) path: Path,
    pub(super) payload: PutPayload,
    pub(super) opts: PutOptions,
    /// Decided when the put was issued: it lands and reports a conflict
    /// (with the label of the clone it was issued through).
    pub(super) ambiguous: Option<&'static str>,
    pub(super) reply: oneshot::Sender<Result<PutResult>>,
}

pub(super) enum Waiting {
    Put(HeldPut),
    List { prefix: Path, listed: Vec<ObjectMeta>, reply: oneshot::Sender<Vec<ObjectMeta>> },
    Read { path: Path, go: oneshot::Sender<()> },
}

pub(super) struct Held {
    pub(super) id: u64,
    pub(super) waiting: Waiting,
}

impl Held {
    pub(super) fn request(&self) -> HeldRequest {
        let (kind, path) = match &self.waiting {
            Waiting::Put(p) => (HeldKind::Upload, p.path.clone()),
            Waiting::List { prefix, .. } => (HeldKind::Listing, prefix.clone()),
            Waiting::Read { path, .. } => (HeldKind::Read, path.clone()),
        };
        HeldRequest { id: self.id, kind, path }
    }

    pub(super) fn is_put_of(&self, path: &Path) -> bool {
        matches!(&self.waiting, Waiting::Put(p) if &p.path == path)
    }
}

/// What to hold, by path prefix.
#[derive(Default)]
pub(super) struct HoldRules {
    pub(super) uploads: Vec<String>,
    pub(super) listings: Vec<String>,
    pub(super) reads: Vec<String>,
}

impl HoldRules {
    pub(super) fn holds(rules: &[String], path: &str) -> bool {
        rules.iter().any(|p| path.starts_with(p.as_str()))
    }
}
