//! Crash schedules over a real S3 protocol (`crash-check --s3`): the inner
//! store is a bucket on the local server named by `TIDEMARK_S3_ENDPOINT`
//! (./test.sh starts moto; by hand: `scripts/with-s3.sh`), and each schedule
//! works under a prefix of its own. The S3 client is the crate's `s3`
//! feature (`cargo run --release -p tidemark-crash --features s3 --bin
//! crash-check -- --s3`).

#[cfg(feature = "s3")]
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "s3")]
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
#[cfg(feature = "s3")]
use object_store::ClientOptions;
use object_store::ObjectStore;
use tidemark::internals::sync::StdArc as Arc;

/// The variable that names the server, `http://127.0.0.1:PORT`.
pub const ENDPOINT_VAR: &str = "TIDEMARK_S3_ENDPOINT";

/// A new bucket on the server `TIDEMARK_S3_ENDPOINT` names, as an object
/// store. The client keeps no idle connections: every schedule phase runs
/// on a runtime of its own, and a pooled connection must not outlive the
/// runtime that opened it.
#[cfg(feature = "s3")]
pub fn bucket_from_env() -> Result<Arc<dyn ObjectStore>, String> {
    let endpoint = std::env::var(ENDPOINT_VAR)
        .ok()
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| format!("--s3 needs {ENDPOINT_VAR}=http://HOST:PORT (scripts/with-s3.sh starts a local server and sets it)"))?;
    let endpoint = endpoint.trim().trim_end_matches('/').to_string();
    let bucket = format!("tm-crash-{:08x}", rand::random::<u32>());
    create_bucket(&endpoint, &bucket)?;
    let options = ClientOptions::new().with_allow_http(true).with_pool_max_idle_per_host(0);
    let store = AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_bucket_name(&bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_client_options(options)
        .build()
        .map_err(|e| format!("S3 store for {endpoint}: {e}"))?;
    Ok(Arc::new(store))
}

/// Without the `s3` feature there is no S3 client: `--s3` says how to build one.
#[cfg(not(feature = "s3"))]
pub fn bucket_from_env() -> Result<Arc<dyn ObjectStore>, String> {
    Err("--s3 needs the S3 client: build with `--features s3` \
         (cargo run --release -p tidemark-crash --features s3 --bin crash-check -- --s3 ...)"
        .into())
}

/// `base` under a prefix no other schedule of this process uses.
pub fn schedule_store(base: &Arc<dyn ObjectStore>, seed: u64) -> Arc<dyn ObjectStore> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Arc::new(PrefixStore::new(base.clone(), Path::from(format!("seed-{seed}-{n}"))))
}

/// Creates `bucket` with one plain HTTP request (a local moto server needs
/// no signature for it).
#[cfg(feature = "s3")]
fn create_bucket(endpoint: &str, bucket: &str) -> Result<(), String> {
    let addr = endpoint.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).map_err(|e| format!("cannot reach the S3 server at {addr}: {e}"))?;
    write!(conn, "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("creating bucket {bucket}: {e}"))?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).map_err(|e| format!("creating bucket {bucket}: {e}"))?;
    match answer.starts_with("HTTP/1.1 200") {
        true => Ok(()),
        false => Err(format!("creating bucket {bucket}: {}", answer.lines().next().unwrap_or("no answer"))),
    }
}
