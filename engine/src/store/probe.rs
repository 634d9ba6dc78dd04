//! The compare-and-set probe run by every writable open.
//!
//! Every safety argument in spec/protocol.md rests on one store primitive:
//! create-if-absent (`PutMode::Create`), which claims an epoch, fences a WAL
//! id and settles who owns an SST. A store that quietly overwrites instead
//! (an S3-compatible server without conditional writes, or object_store's S3
//! client with conditional put disabled) would let two writers both "win" and
//! lose acknowledged writes. So before claiming an epoch, `Db::open_with`
//! creates a scratch object under the database root twice: the first create
//! must succeed and the second must report `AlreadyExists`. Anything else
//! refuses the open with [`Error::NoCompareAndSet`]. Read-only opens skip it.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};
use super::retry::with_retries;

/// Where the probe's scratch objects live, under the database root. Nothing
/// else uses this directory, and recovery never lists it.
pub const PROBE_DIR: &str = "probe";

/// How to turn conditional writes on, for the refusal message.
const HOW_TO_ENABLE: &str = "tidemark needs create-if-absent (PutMode::Create) for fencing and will not \
write without it. For S3 and S3-compatible stores use a server that answers `If-None-Match: *` with \
412 (AWS S3, R2, MinIO, Tigris and Garage do; see the README, \"S3 and compatible stores\") and leave \
AWS_CONDITIONAL_PUT unset or set it to `etag`";

fn create_opts() -> PutOptions {
    PutOptions { mode: PutMode::Create, ..Default::default() }
}

fn refuse(store: &dyn ObjectStore, detail: String) -> Error {
    Error::NoCompareAndSet { store: store.to_string(), detail: format!("{detail}. {HOW_TO_ENABLE}") }
}

/// A create is "not found" only when what holds the object is missing (an
/// S3 bucket, a container) or when the endpoint is not the store meant. It
/// is the first request a writer makes, so this is where a user meets it;
/// `store_for_url` names a missing S3 bucket itself, this covers stores
/// built by hand.
fn not_found_on_create(path: &Path, e: &object_store::Error) -> Error {
    let detail = e.to_string();
    let detail = detail.lines().next().unwrap_or_default();
    Error::StoreAccess {
        problem: format!(
            "creating {path} was answered \"not found\" ({detail}): the bucket (or container) does not exist, \
             or the endpoint is not the store meant"
        ),
        fix: "create the bucket first (tidemark creates objects under its prefix, never the bucket), and check the \
              endpoint (AWS_ENDPOINT_URL)"
            .into(),
    }
}

/// Checks that `store` honours `PutMode::Create` under `root`; removes the
/// scratch object afterwards. `store` should already retry transient
/// failures (a `RetryStore`): a retried first create that had landed reports
/// `AlreadyExists`, which the random name makes ours.
pub async fn require_create_if_absent(store: &dyn ObjectStore, root: &Path, max_retries: u32) -> Result<()> {
    let path = root.clone().join(PROBE_DIR).join(format!("{:016x}.probe", rand::random::<u64>()));
    let first = Bytes::from_static(b"tidemark compare-and-set probe: first create");
    let second = Bytes::from_static(b"tidemark compare-and-set probe: second create");
    match store.put_opts(&path, PutPayload::from(first), create_opts()).await {
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
        Err(e @ (object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. })) => {
            return Err(refuse(store, format!("creating {path} with PutMode::Create is not supported: {e}")));
        }
        Err(e @ object_store::Error::NotFound { .. }) => return Err(not_found_on_create(&path, &e)),
        Err(e) => return Err(e.into()),
    }
    let verdict = match store.put_opts(&path, PutPayload::from(second), create_opts()).await {
        Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Ok(_) => Err(refuse(
            store,
            format!("a second create of {path} overwrote the object instead of reporting AlreadyExists"),
        )),
        Err(e @ (object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. })) => {
            Err(refuse(store, format!("creating {path} with PutMode::Create is not supported: {e}")))
        }
        Err(e) => Err(e.into()),
    };
    // Best effort: a leftover probe object is harmless (nothing lists the
    // directory), and a writer without delete permission is still safe.
    match with_retries(max_retries, || store.delete(&path)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => tracing::warn!(%path, error = %e, "could not delete the compare-and-set probe object"),
    }
    verdict
}

#[cfg(all(test, not(loom)))]
mod tests {
    use async_trait::async_trait;
    use object_store::memory::InMemory;
    use object_store::{PutOptions, PutPayload, PutResult};

    use super::*;
    use crate::sync::StdArc;

    /// Answers every put as a server whose bucket is gone answers it.
    #[derive(Debug)]
    struct NoBucket {
        inner: InMemory,
    }

    impl std::fmt::Display for NoBucket {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "NoBucket")
        }
    }

    #[async_trait]
    impl ObjectStore for NoBucket {
        async fn put_opts(&self, location: &Path, _: PutPayload, _: PutOptions) -> object_store::Result<PutResult> {
            Err(object_store::Error::NotFound { path: location.to_string(), source: "404 NoSuchBucket".into() })
        }
        crate::delegate_object_store!(inner =>
            put_multipart_opts, get_opts, get_ranges, delete_stream, list, list_with_delimiter, copy_opts, rename_opts);
    }

    #[tokio::test]
    async fn a_create_answered_not_found_names_the_missing_bucket() {
        let store: StdArc<dyn ObjectStore> = StdArc::new(NoBucket { inner: InMemory::new() });
        let err = require_create_if_absent(store.as_ref(), &Path::from("db"), 0).await.expect_err("no bucket");
        assert!(matches!(err, Error::StoreAccess { .. }), "{err:?}");
        let line = err.to_string();
        assert!(line.contains("create the bucket first") && !line.contains('\n'), "{line}");
    }
}
