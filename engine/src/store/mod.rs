//! The object-store decorators every `Db` stacks on the store it is given,
//! in the style of object_store's own wrappers (`ThrottledStore`,
//! `LimitStore`): each changes a few methods and forwards the rest
//! ([`wrap`]). Also the URL-to-store mapping (with the S3 client's
//! configuration and first-contact errors) and the compare-and-set probe.

mod counting;
mod hedge;
pub(crate) mod probe;
pub(crate) mod retry;
pub(crate) mod s3;
mod split;
pub(crate) mod url;
pub(crate) mod wrap;

#[cfg(feature = "test-util")]
pub mod testing;

pub use counting::{CountingStore, RequestCounters};
pub use hedge::{HedgeCounts, HedgeSettings, HedgeStats, HedgeStore};
pub use retry::RetryStore;
pub use split::SplitStore;

use object_store::path::Path;
use object_store::ObjectStore;

use crate::paths::Layout;
use crate::settings::Settings;
use crate::sync::StdArc;

/// The store chain of one `Db` and the counters its layers keep.
pub(crate) struct Stores {
    pub(crate) store: StdArc<dyn ObjectStore>,
    pub(crate) requests: StdArc<RequestCounters>,
    pub(crate) hedge_stats: StdArc<HedgeStats>,
    /// The WAL store's own chain and root, when WALs have a store of their
    /// own (`Settings::wal_store`): what its compare-and-set probe runs on.
    pub(crate) wal: Option<(StdArc<dyn ObjectStore>, Path)>,
}

/// One store's chain: the caller's store, then the request counter (so each
/// attempt of a retried or hedged request is counted), then the retries,
/// then hedged creates (under `hedge_creates_under`) and reads, so that a
/// hedge races a whole retried request. Counters are shared across chains.
fn chain(
    store: StdArc<dyn ObjectStore>,
    settings: &Settings,
    hedge_creates_under: Path,
    requests: &StdArc<RequestCounters>,
    hedge_stats: &StdArc<HedgeStats>,
) -> StdArc<dyn ObjectStore> {
    let counting = CountingStore::with_counters(store, requests.clone());
    let retried: StdArc<dyn ObjectStore> = StdArc::new(RetryStore::new(StdArc::new(counting), settings.max_retries));
    let hedged = HedgeStore::with_stats(retried, settings.hedge, hedge_stats.clone()).creates_under(hedge_creates_under);
    #[cfg(feature = "mutants")]
    let hedged = hedged.exists_is_ours(settings.hedge_exists_is_ours);
    StdArc::new(hedged)
}

impl Stores {
    /// The chain of the caller's store; with a WAL store, a chain of its
    /// own for it (its own latencies, so its own hedge delays) and a
    /// [`SplitStore`] that sends the WAL directory there.
    pub(crate) fn new(store: StdArc<dyn ObjectStore>, settings: &Settings, layout: &Layout) -> Stores {
        let requests = StdArc::new(RequestCounters::default());
        let hedge_stats = StdArc::new(HedgeStats::default());
        let main = chain(store, settings, layout.wal_dir(), &requests, &hedge_stats);
        match &settings.wal_store {
            None => Stores { store: main, requests, hedge_stats, wal: None },
            Some(w) => {
                let wal_layout = Layout::new(w.root.clone());
                let wal = chain(w.store.clone(), settings, wal_layout.wal_dir(), &requests, &hedge_stats);
                let split = SplitStore::new(main, layout.root(), wal.clone(), &w.root);
                Stores { store: StdArc::new(split), requests, hedge_stats, wal: Some((wal, w.root.clone())) }
            }
        }
    }
}

/// Creates `path` with `bytes` (`PutMode::Create`): `Ok(true)` if created,
/// `Ok(false)` if an object already held the name. The caller decides what
/// an existing object means (read it back: `protocol::resolve_create_conflict`).
pub(crate) async fn create(
    store: &dyn ObjectStore,
    path: &object_store::path::Path,
    bytes: bytes::Bytes,
) -> crate::Result<bool> {
    let opts = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
    match store.put_opts(path, object_store::PutPayload::from(bytes), opts).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The most bytes of a GET's body a layer may read ahead of the caller
/// (`RetryStore` reads bodies whole): a larger object is handed back unread,
/// for the caller to refuse by its size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimit(pub(crate) u64);

/// Reads a whole object of at most `limit` bytes. A larger one is `Corrupt`
/// naming it, from the size the store reports before the body is read
/// (`kind` says what the object should be and what to do about it); the
/// body is read no further than `limit` should the store's size be wrong.
pub(crate) async fn read(
    store: &dyn ObjectStore,
    path: &object_store::path::Path,
    kind: crate::bounds::ObjectKind,
    limit: u64,
) -> crate::Result<bytes::Bytes> {
    use futures::TryStreamExt;
    let too_large = |size: u64| crate::Error::corrupt(path.to_string(), kind.too_large(size, limit));
    let mut options = object_store::GetOptions::default();
    options.extensions.insert(BodyLimit(limit));
    let got = store.get_opts(path, options).await?;
    let size = got.meta.size;
    if size > limit {
        return Err(too_large(size));
    }
    let mut chunks = got.into_stream();
    let mut first: Option<bytes::Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    let mut read = 0u64;
    while let Some(chunk) = chunks.try_next().await? {
        read = read.saturating_add(chunk.len() as u64);
        if read > limit {
            return Err(too_large(read));
        }
        match &first {
            None => first = Some(chunk),
            Some(f) => {
                if rest.is_empty() {
                    rest.reserve(usize::try_from(size).unwrap_or(0));
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    // One chunk (an in-memory store, a small object) is returned as is.
    Ok(if rest.is_empty() { first.unwrap_or_default() } else { bytes::Bytes::from(rest) })
}
