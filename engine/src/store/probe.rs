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
