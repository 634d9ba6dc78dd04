//! The engine over a real S3 protocol (the CLI's S3 tests are in
//! cli/tests/cli_s3.rs): a local moto server that
//! `./test.sh` starts (scripts/s3-server.sh) and names in
//! `TIDEMARK_S3_ENDPOINT`. Each test makes its own bucket.
//!
//! Without the variable the tests say they were skipped and how to run them
//! (`scripts/with-s3.sh cargo test -p tidemark --features aws --test s3`); with `CI=true`
//! they fail instead, so CI never skips them.
#![cfg(all(not(loom), feature = "aws"))]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tidemark::internals::paths::Layout;
use tidemark::internals::protocol::{resolve_create_conflict, CreateConflict, ObjectOwner, Protocol, WalHeader, WalKind};
use tidemark::internals::wal_object::{decode_wal, encode_wal};
use tidemark::{Db, Error, Settings, WriteBatch, WriteOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ENDPOINT_VAR: &str = "TIDEMARK_S3_ENDPOINT";
const HOW_TO_RUN: &str = "scripts/with-s3.sh cargo test -p tidemark --features aws --test s3";

/// A bucket of its own on the local server.
struct S3 {
    endpoint: String,
    bucket: String,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

impl S3 {
    /// The server named by `TIDEMARK_S3_ENDPOINT` with a new bucket, or
    /// `None` (and a note on stderr) when the variable is unset outside CI.
    fn setup(test: &str) -> Option<S3> {
        let endpoint = match std::env::var(ENDPOINT_VAR) {
            Ok(e) if !e.trim().is_empty() => e.trim().trim_end_matches('/').to_string(),
            _ if in_ci() => panic!("CI is set but {ENDPOINT_VAR} is not: the local S3 server did not start (./test.sh starts it)"),
            _ => {
                // Written to the stream directly, past the test harness's
                // output capture, so the note shows in a passing run.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED s3::{test}: {ENDPOINT_VAR} is not set; to run the S3 tests against a local moto server: {HOW_TO_RUN}"
                );
                return None;
            }
        };
        let nonce = rand::random::<u32>();
        let mut bucket = format!("tm-{nonce:08x}-{}", test.replace('_', "-"));
        bucket.truncate(63);
        let bucket = bucket.trim_end_matches('-').to_string();
        create_bucket(&endpoint, &bucket);
        Some(S3 { endpoint, bucket })
    }

    fn builder(&self, endpoint: &str) -> AmazonS3Builder {
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(&self.bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_allow_http(true)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(self.builder(&self.endpoint).build().expect("S3 store"))
    }

    /// The same bucket reached through `proxy`.
    fn store_via(&self, proxy: &Proxy) -> Arc<dyn ObjectStore> {
        let options = ClientOptions::new().with_allow_http(true).with_timeout(Duration::from_secs(10));
        Arc::new(self.builder(&format!("http://{}", proxy.addr)).with_client_options(options).build().expect("S3 store"))
    }

    fn host_port(&self) -> String {
        host_port(&self.endpoint)
    }
}

fn host_port(endpoint: &str) -> String {
    endpoint.trim_start_matches("http://").trim_end_matches('/').to_string()
}

/// Creates a bucket with a plain HTTP request (moto needs no signature for it).
fn create_bucket(endpoint: &str, bucket: &str) {
    let addr = host_port(endpoint);
    let mut conn = std::net::TcpStream::connect(&addr).unwrap_or_else(|e| panic!("cannot reach the S3 server at {addr}: {e}"));
    write!(conn, "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "creating bucket {bucket}: {}", answer.lines().next().unwrap_or(""));
}

macro_rules! s3_or_skip {
    ($test:expr) => {
        match S3::setup($test) {
            Some(s3) => s3,
            None => return,
        }
    };
}

fn small() -> Settings {
    Settings::default().with_l0_sst_size_bytes(2048)
}

fn b(s: impl Into<String>) -> Bytes {
    Bytes::from(s.into())
}

async fn list(store: &Arc<dyn ObjectStore>, dir: &Path) -> Vec<Path> {
    let mut v: Vec<Path> = store.list(Some(dir)).map_ok(|m| m.location).try_collect().await.expect("list");
    v.sort();
    v
}

fn create_opts() -> PutOptions {
    PutOptions { mode: PutMode::Create, ..Default::default() }
}

#[tokio::test]
async fn round_trip_and_reopen() {
    let s3 = s3_or_skip!("round_trip_and_reopen");
    let store = s3.store();
    let db = Db::open_with("db", store.clone(), small()).await.expect("open");
    for i in 0..200 {
        db.put(format!("key{i:03}"), format!("value{i}")).await.expect("put");
    }
    db.delete("key007").await.expect("delete");
    let mut batch = WriteBatch::new();
    batch.put("batch/a", "1");
    batch.put("batch/b", "2");
    db.write(batch).await.expect("batch");
    assert_eq!(db.get("key042").await.expect("get").as_deref(), Some(&b"value42"[..]));
    db.close().await.expect("close");

    let layout = Layout::new(Path::from("db"));
    assert!(!list(&store, &layout.sst_dir()).await.is_empty(), "memtables were flushed to L0 SSTs on S3");
    assert!(list(&store, &Path::from("db/probe")).await.is_empty(), "the compare-and-set probe cleans up");

    for reopened in [
        Db::open_with("db", store.clone(), small()).await.expect("reopen"),
        Db::open_read_only("db", s3.store()).await.expect("read-only open"),
    ] {
        assert_eq!(reopened.get("key042").await.expect("get").as_deref(), Some(&b"value42"[..]));
        assert_eq!(reopened.get("key007").await.expect("get"), None);
        let all = reopened.scan(..).await.expect("scan").collect_vec().await.expect("scan");
        assert_eq!(all.len(), 199 + 2);
        assert_eq!(reopened.scan_prefix("batch/").await.expect("scan").collect_vec().await.expect("scan").len(), 2);
        reopened.close().await.expect("close");
    }
}

#[tokio::test]
async fn recovery_after_a_crash_keeps_every_acknowledged_write() {
    let s3 = s3_or_skip!("recovery_after_a_crash_keeps_every_acknowledged_write");
    let store = s3.store();
    let db = Arc::new(Db::open_with("db", store.clone(), small()).await.expect("open"));
    let mut writers = Vec::new();
    for w in 0..8 {
        let db = db.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                db.put(format!("w{w}/{i:02}"), format!("{w}-{i}")).await.expect("durable put");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    // Fire-and-forget writes may be lost in a crash; they must not break recovery.
    for i in 0..20 {
        db.put_with(format!("loose/{i}"), "x", &WriteOptions { await_durable: false }).await.expect("put");
    }
    let epoch = db.writer_epoch();
    drop(db); // a crash: no close, no final manifest

    let db = Db::open_with("db", s3.store(), small()).await.expect("recovery");
    assert!(db.writer_epoch() > epoch);
    for w in 0..8 {
        let rows = db.scan_prefix(format!("w{w}/")).await.expect("scan").collect_vec().await.expect("scan");
        assert_eq!(rows.len(), 25, "writer {w} lost acknowledged writes");
        assert_eq!(rows[24].1, b(format!("{w}-24")));
    }
    db.close().await.expect("close");
}

#[tokio::test]
async fn a_second_writer_fences_the_first() {
    let s3 = s3_or_skip!("a_second_writer_fences_the_first");
    let first = Db::open_with("db", s3.store(), small()).await.expect("open first");
    first.put("from-first", "1").await.expect("put");
    let second = Db::open_with("db", s3.store(), small()).await.expect("open second");
    assert!(second.writer_epoch() > first.writer_epoch());
    match first.put("late", "x").await {
        Err(Error::Fenced { writer_epoch, by }) => {
            assert_eq!(writer_epoch, first.writer_epoch());
            assert_eq!(by, second.writer_epoch());
        }
        other => panic!("the fenced writer's put must fail with Fenced, got {other:?}"),
    }
    assert_eq!(second.get("from-first").await.expect("get").as_deref(), Some(&b"1"[..]));
    second.put("from-second", "2").await.expect("put");
    second.close().await.expect("close");
    let third = Db::open_read_only("db", s3.store()).await.expect("read-only");
    assert_eq!(third.get("late").await.expect("get"), None, "a fenced write is never visible");
    assert_eq!(third.get("from-second").await.expect("get").as_deref(), Some(&b"2"[..]));
}

/// `contenders` creates of one path at once: exactly one must win, the rest
/// get `AlreadyExists`, and the object holds the winner's bytes.
async fn race_creates(store: &Arc<dyn ObjectStore>, path: &Path, bodies: Vec<Bytes>) -> usize {
    let mut tasks = Vec::new();
    for body in bodies.iter().cloned() {
        let store = store.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move { store.put_opts(&path, PutPayload::from(body), create_opts()).await }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Ok(_) => winners.push(i),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("a racing create of {path} failed: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "racing creates of {path}: winners {winners:?}");
    let stored = store.get(path).await.expect("get").bytes().await.expect("body");
    assert_eq!(stored, bodies[winners[0]], "{path} holds the winner's bytes");
    winners[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_manifest_and_wal_creates_have_one_winner() {
    let s3 = s3_or_skip!("racing_manifest_and_wal_creates_have_one_winner");
    let store = s3.store();
    let layout = Layout::new(Path::from("db"));
    const ROUNDS: u64 = 10;
    const CONTENDERS: u64 = 16;
    for round in 1..=ROUNDS {
        let manifests = (0..CONTENDERS).map(|c| b(format!("manifest {round} of contender {c}"))).collect();
        race_creates(&store, &layout.manifest(round), manifests).await;
        // WAL objects as rival writers would write them; the winner is the
        // one whose read-back resolves as ours.
        let owners: Vec<ObjectOwner> = (1..=CONTENDERS).map(|e| ObjectOwner { writer_epoch: e, token: rand::random() }).collect();
        let wals = owners
            .iter()
            .map(|o| encode_wal(WalHeader { writer_epoch: o.writer_epoch, kind: WalKind::Data }, o.token, [], 4096, &None).expect("entries without merge operands"))
            .collect();
        let path = layout.wal(round);
        let winner = race_creates(&store, &path, wals).await;
        let existing = decode_wal(&path, store.get(&path).await.expect("get").bytes().await.expect("body")).expect("decode");
        let ours: Vec<usize> =
            (0..owners.len()).filter(|&i| resolve_create_conflict(Protocol::Shipped, owners[i], existing.owner()) == CreateConflict::Ours).collect();
        assert_eq!(ours, vec![winner], "exactly the winner reads its WAL back as ours");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_leave_exactly_one_writer() {
    let s3 = s3_or_skip!("racing_writers_leave_exactly_one_writer");
    const WRITERS: usize = 6;
    // Joined rather than spawned: `Db::open_with`'s future is not `Send`
    // (it holds a tracing span guard). The requests still race on the wire.
    let opens = (0..WRITERS).map(|_| Db::open_with("db", s3.store(), small()));
    let mut dbs = Vec::new();
    for o in futures::future::join_all(opens).await {
        match o {
            Ok(db) => dbs.push(db),
            // Fenced while still recovering: a newer writer got there first.
            Err(Error::Fenced { .. }) => {}
            Err(e) => panic!("a racing open failed with {e}"),
        }
    }
    assert!(!dbs.is_empty());
    let epochs: BTreeSet<u64> = dbs.iter().map(|d| d.writer_epoch()).collect();
    assert_eq!(epochs.len(), dbs.len(), "every writer claimed its own epoch");
    // Each manifest version was won by exactly one writer: versions 1..=N, one epoch each.
    let store = s3.store();
    let layout = Layout::new(Path::from("db"));
    let manifests = list(&store, &layout.manifest_dir()).await;
    assert_eq!(manifests.len(), WRITERS, "one manifest version per open: {manifests:?}");
    let mut survivors = Vec::new();
    for db in &dbs {
        match db.put(format!("from-{}", db.writer_epoch()), "x").await {
            Ok(()) => survivors.push(db.writer_epoch()),
            Err(Error::Fenced { .. }) => {}
            Err(e) => panic!("a racing writer's put failed with {e}"),
        }
    }
    let newest = *epochs.last().expect("an epoch");
    assert_eq!(survivors, vec![newest], "only the newest writer may write");
    let check = Db::open_read_only("db", s3.store()).await.expect("read-only");
    let rows = check.scan_prefix("from-").await.expect("scan").collect_vec().await.expect("scan");
    assert_eq!(rows.len(), 1, "{rows:?}");
}

#[tokio::test]
async fn a_store_without_conditional_put_is_refused() {
    let s3 = s3_or_skip!("a_store_without_conditional_put_is_refused");
    let unsafe_store: Arc<dyn ObjectStore> =
        Arc::new(s3.builder(&s3.endpoint).with_conditional_put(S3ConditionalPut::Disabled).build().expect("store"));
    match Db::open_with("db", unsafe_store.clone(), small()).await {
        Err(e @ Error::NoCompareAndSet { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("PutMode::Create") && msg.contains("AWS_CONDITIONAL_PUT"), "{msg}");
        }
        Err(e) => panic!("expected NoCompareAndSet, got {e}"),
        Ok(_) => panic!("a store without conditional put was opened for writing"),
    }
    assert!(list(&s3.store(), &Path::from("db/manifest")).await.is_empty(), "nothing was claimed");
    // Reads need no compare-and-set.
    let db = Db::open_read_only("db", unsafe_store).await.expect("read-only open");
    assert_eq!(db.get("k").await.expect("get"), None);
}

// ---------------------------------------------------------------------------
// A fault-injecting TCP proxy in front of the server: it can refuse a
// request (the connection drops before the request reaches the server) or
// lose a response (the server acted, the client sees the connection drop).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Drop the connection before forwarding the request: nothing lands.
    Refuse,
    /// Forward the request, drop the connection when the answer comes: it
    /// landed, but the client sees a failure.
    LoseResponse,
}

struct Fault {
    method: &'static str,
    path_contains: &'static str,
    action: Action,
    remaining: u32,
}

struct Proxy {
    addr: std::net::SocketAddr,
    faults: Arc<Mutex<Vec<Fault>>>,
    fired: Arc<Mutex<Vec<(Action, String)>>>,
    requests: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let faults: Arc<Mutex<Vec<Fault>>> = Arc::default();
        let fired: Arc<Mutex<Vec<(Action, String)>>> = Arc::default();
        let requests = Arc::new(AtomicUsize::new(0));
        let (f, fi, r) = (faults.clone(), fired.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream.clone(), f.clone(), fi.clone(), r.clone()));
            }
        });
        Proxy { addr, faults, fired, requests }
    }

    fn inject(&self, method: &'static str, path_contains: &'static str, action: Action, times: u32) {
        self.faults.lock().expect("lock").push(Fault { method, path_contains, action, remaining: times });
    }

    fn fired(&self) -> Vec<(Action, String)> {
        self.fired.lock().expect("lock").clone()
    }
}

/// `METHOD TARGET` if `chunk` starts a request.
fn request_line(chunk: &[u8]) -> Option<(String, String)> {
    let end = chunk.windows(2).take(8192).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&chunk[..end]).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    version.starts_with("HTTP/1.").then(|| (method.to_string(), target.to_string()))
}

async fn relay(
    client: TcpStream,
    upstream: String,
    faults: Arc<Mutex<Vec<Fault>>>,
    fired: Arc<Mutex<Vec<(Action, String)>>>,
    requests: Arc<AtomicUsize>,
) {
    let Ok(server) = TcpStream::connect(&upstream).await else { return };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let lose = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lose_in_relay = lose.clone();
    let answers = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if lose_in_relay.load(Ordering::SeqCst) {
                return; // the answer is lost; dropping the half closes the client's side
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((method, target)) = request_line(&buf[..n]) {
            requests.fetch_add(1, Ordering::SeqCst);
            let action = {
                let mut faults = faults.lock().expect("lock");
                faults
                    .iter_mut()
                    .find(|f| f.remaining > 0 && f.method == method && target.contains(f.path_contains))
                    .map(|f| {
                        f.remaining -= 1;
                        f.action
                    })
            };
            if let Some(action) = action {
                fired.lock().expect("lock").push((action, format!("{method} {target}")));
                match action {
                    Action::Refuse => {
                        answers.abort();
                        return;
                    }
                    Action::LoseResponse => lose.store(true, Ordering::SeqCst),
                }
            }
        }
        if to_server.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = answers.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_without_losing_an_acknowledged_write() {
    let s3 = s3_or_skip!("transient_failures_are_retried_without_losing_an_acknowledged_write");
    let proxy = Proxy::start(s3.host_port()).await;
    let flaky = s3.store_via(&proxy);
    // Recovery's listings and manifest reads, and the first WAL uploads, fail.
    proxy.inject("GET", "list-type=2", Action::Refuse, 2);
    proxy.inject("GET", "/manifest/", Action::Refuse, 1);
    proxy.inject("PUT", "/wal/", Action::Refuse, 3);
    let db = Db::open_with("db", flaky.clone(), small()).await.expect("open through the flaky proxy");
    db.put("first", "1").await.expect("a put whose WAL upload failed three times");
    db.close().await.expect("close");
    let db = Db::open_with("db", flaky, small()).await.expect("reopen through the flaky proxy");
    for i in 0..30 {
        db.put(format!("k{i:02}"), format!("v{i}")).await.expect("put");
    }
    db.close().await.expect("close");
    let fired = proxy.fired();
    assert_eq!(fired.len(), 6, "every injected fault fired: {fired:?}");
    assert!(proxy.requests.load(Ordering::SeqCst) > fired.len());

    let check = Db::open_read_only("db", s3.store()).await.expect("open directly");
    assert_eq!(check.get("first").await.expect("get").as_deref(), Some(&b"1"[..]));
    assert_eq!(check.scan_prefix("k").await.expect("scan").collect_vec().await.expect("scan").len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_landed_but_reported_failure_is_read_back_as_ours() {
    let s3 = s3_or_skip!("a_create_that_landed_but_reported_failure_is_read_back_as_ours");
    let proxy = Proxy::start(s3.host_port()).await;
    let flaky = s3.store_via(&proxy);
    // The epoch claim (manifest v1) and the first data WAL land, but their
    // answers are lost; the retries get 412, which must resolve as ours.
    proxy.inject("PUT", "/manifest/", Action::LoseResponse, 1);
    proxy.inject("PUT", "/wal/", Action::LoseResponse, 2);
    let db = Db::open_with("db", flaky, small()).await.expect("open");
    assert_eq!(db.writer_epoch(), 1, "the landed claim of manifest v1 was read back as ours");
    db.put("k", "v").await.expect("a put whose WAL create landed but reported failure");
    let fired = proxy.fired();
    assert_eq!(fired.len(), 3, "every injected fault fired: {fired:?}");
    assert!(fired.iter().all(|(a, _)| *a == Action::LoseResponse));
    db.close().await.expect("close");

    let store = s3.store();
    let layout = Layout::new(Path::from("db"));
    let manifests = list(&store, &layout.manifest_dir()).await;
    assert_eq!(layout.parse_manifest(&manifests[0]), Some(1));
    let check = Db::open_with("db", store, small()).await.expect("reopen");
    assert_eq!(check.get("k").await.expect("get").as_deref(), Some(&b"v"[..]));
    check.close().await.expect("close");
}
