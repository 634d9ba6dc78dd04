//! The CLI over `s3://`, configured from the standard AWS environment, and
//! its first contact with a store that cannot be used: a missing bucket, a
//! plain-HTTP endpoint without `AWS_ALLOW_HTTP`, refused or missing
//! credentials, an unreachable endpoint. Each is one line on stderr that
//! names the fix, and exit 1.
//!
//! The tests that need a server use the local moto server that `./test.sh`
//! starts (scripts/s3-server.sh) and names in `TIDEMARK_S3_ENDPOINT`; without
//! it they say they were skipped and how to run them, and with `CI=true`
//! they fail instead. The unreachable-endpoint and plain-HTTP tests need no
//! server and always run.
#![cfg(all(not(loom), feature = "s3"))]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ENDPOINT_VAR: &str = "TIDEMARK_S3_ENDPOINT";
const HOW_TO_RUN: &str = "scripts/with-s3.sh cargo test -p tidemark-cli --test cli_s3";

/// Exit codes (cli/README.md).
const ERROR: i32 = 1;
const NOT_FOUND: i32 = 4;
const PROBLEMS: i32 = 5;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The local server's endpoint, or `None` (and a note on stderr) when it is
/// not running outside CI.
fn endpoint(test: &str) -> Option<String> {
    match std::env::var(ENDPOINT_VAR) {
        Ok(e) if !e.trim().is_empty() => Some(e.trim().trim_end_matches('/').to_string()),
        _ if in_ci() => panic!("CI is set but {ENDPOINT_VAR} is not: the local S3 server did not start (./test.sh starts it)"),
        _ => {
            // Written to the stream directly, past the test harness's
            // output capture, so the note shows in a passing run.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED cli_s3::{test}: {ENDPOINT_VAR} is not set; to run it against a local moto server: {HOW_TO_RUN}"
            );
            None
        }
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

/// A bucket name of this test's own (created or not).
fn bucket_name(test: &str) -> String {
    let mut bucket = format!("tm-{:08x}-{}", rand::random::<u32>(), test.replace('_', "-"));
    bucket.truncate(63);
    bucket.trim_end_matches('-').to_string()
}

/// The environment of a user who configured everything right for `endpoint`.
fn good_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

/// Runs the binary with exactly `env` as its AWS configuration.
fn tidemark(env: &[(&str, String)], url: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("AWS_")) {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("--url").arg(url).args(args).output().expect("runs the tidemark binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 1 and exactly one line on stderr that contains every `needle`.
fn assert_one_line(o: &Output, what: &str, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(ERROR), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{what}: `{needle}` missing from: {err}");
    }
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn every_cli_command_and_fsck_over_s3() {
    let Some(endpoint) = endpoint("every_cli_command_and_fsck_over_s3") else { return };
    let bucket = bucket_name("every_cli_command");
    create_bucket(&endpoint, &bucket);
    let env = good_env(&endpoint);
    let url = format!("s3://{bucket}/cli/db");
    for i in 0..10 {
        let put = tidemark(&env, &url, &["put", &format!("key{i}"), &format!("value{i}")]);
        assert!(put.status.success(), "put: {}", stderr(&put));
    }
    let got = tidemark(&env, &url, &["get", "key3"]);
    assert!(got.status.success(), "get: {}", stderr(&got));
    assert_eq!(stdout(&got), "value3\n");
    let missing = tidemark(&env, &url, &["get", "nope"]);
    assert_eq!(missing.status.code(), Some(NOT_FOUND));
    assert_eq!(stderr(&missing).trim(), "not found");
    assert!(tidemark(&env, &url, &["delete", "key0"]).status.success());
    let scan = tidemark(&env, &url, &["scan", "--prefix", "key", "--limit", "3"]);
    assert_eq!(stdout(&scan), "key1\tvalue1\nkey2\tvalue2\nkey3\tvalue3\n");
    assert_eq!(stdout(&tidemark(&env, &url, &["scan"])).lines().count(), 9);
    let manifest = tidemark(&env, &url, &["manifest"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&manifest)).expect("manifest is JSON");
    assert_eq!(json["writer_epoch"].as_u64(), Some(11), "ten puts and a delete, one writer each");
    let fsck = tidemark(&env, &url, &["fsck"]);
    assert!(fsck.status.success(), "{}", stdout(&fsck));
    assert!(stdout(&fsck).contains("fsck: no problems"), "{}", stdout(&fsck));

    // The objects are where the URL says, named as `manifest` prints them,
    // and fsck finds damage there: the last close flushed everything to
    // SSTs the manifest requires.
    let referenced = stdout(&fsck)
        .lines()
        .find_map(|l| l.strip_prefix("ok   sst ").and_then(|rest| rest.split(' ').next()).map(str::to_string))
        .expect("fsck lists the SSTs it checked");
    let name = referenced.strip_prefix("cli/db/compacted/").and_then(|n| n.strip_suffix(".sst"));
    let name = name.unwrap_or_else(|| panic!("an SST under the URL's prefix: {referenced}"));
    let ids: Vec<&str> = json["l0"].as_array().expect("l0").iter().filter_map(|s| s["id"].as_str()).collect();
    assert!(ids.contains(&name), "manifest prints {name} as its object is named: {ids:?}");
    delete_object(&endpoint, &bucket, &referenced);
    let damaged = tidemark(&env, &url, &["fsck"]);
    assert_eq!(damaged.status.code(), Some(PROBLEMS), "{}", stdout(&damaged));
    assert!(stdout(&damaged).contains("FAIL"), "{}", stdout(&damaged));

    let no_bucket = tidemark(&env, "s3:///db", &["get", "k"]);
    assert_eq!(no_bucket.status.code(), Some(ERROR));
    assert!(stderr(&no_bucket).contains("names no bucket"), "{}", stderr(&no_bucket));
}

/// Deletes an object through object_store's S3 client.
fn delete_object(endpoint: &str, bucket: &str, key: &str) {
    use object_store::ObjectStoreExt;
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_allow_http(true)
        .build()
        .expect("S3 store");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(store.delete(&object_store::path::Path::from(key))).expect("delete");
}

#[test]
fn a_missing_bucket_is_one_line_naming_the_fix() {
    let Some(endpoint) = endpoint("a_missing_bucket_is_one_line_naming_the_fix") else { return };
    let bucket = bucket_name("never-created");
    let url = format!("s3://{bucket}/db");
    let env = good_env(&endpoint);
    let needles = [&format!("the bucket `{bucket}` does not exist at {endpoint}")[..], "create it first"];
    assert_one_line(&tidemark(&env, &url, &["put", "k", "v"]), "put", &needles);
    assert_one_line(&tidemark(&env, &url, &["get", "k"]), "get", &needles);
    assert_one_line(&tidemark(&env, &url, &["fsck"]), "fsck", &needles);
}

/// Known before any request: no server needed.
#[test]
fn a_plain_http_endpoint_without_allow_http_names_the_fix() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let mut env = good_env(&endpoint);
    env.retain(|(k, _)| *k != "AWS_ALLOW_HTTP");
    for args in [&["put", "k", "v"][..], &["get", "k"]] {
        let out = tidemark(&env, "s3://bucket/db", args);
        assert_one_line(&out, &format!("{args:?}"), &[&endpoint, "plain HTTP", "set AWS_ALLOW_HTTP=true"]);
    }
    // The fix works: with it, the error is about the (closed) endpoint instead.
    let fixed = tidemark(&good_env(&endpoint), "s3://bucket/db", &["get", "k"]);
    assert!(!stderr(&fixed).contains("AWS_ALLOW_HTTP"), "{}", stderr(&fixed));
}

/// A put against a closed local port fails with one line naming the
/// endpoint and what to check, after the client's bounded retries (the
/// time is printed, not asserted).
#[test]
fn an_unreachable_endpoint_names_itself_and_the_fix() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let env = good_env(&endpoint);
    let start = Instant::now();
    let put = tidemark(&env, "s3://bucket/db", &["put", "k", "v"]);
    let took = start.elapsed();
    assert_one_line(&put, "put", &[&format!("cannot connect to the S3 endpoint {endpoint}"), "check AWS_ENDPOINT_URL"]);
    assert!(stderr(&put).contains("not written"), "{}", stderr(&put));
    let get = tidemark(&env, "s3://bucket/db", &["get", "k"]);
    assert_one_line(&get, "get", &[&endpoint, "check AWS_ENDPOINT_URL"]);
    eprintln!("a put against the closed port {endpoint} failed after {:.2} s", took.as_secs_f64());
}

/// Without credentials the client asks the instance metadata service; here
/// it points at a closed local port, so the answer is the same on any
/// machine.
#[test]
fn missing_credentials_name_the_variables_to_set() {
    let Some(endpoint) = endpoint("missing_credentials_name_the_variables_to_set") else { return };
    let bucket = bucket_name("no-credentials");
    create_bucket(&endpoint, &bucket);
    let metadata = format!("http://127.0.0.1:{}", closed_port());
    let mut env = good_env(&endpoint);
    env.retain(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET_ACCESS_KEY"));
    env.push(("AWS_METADATA_ENDPOINT", metadata.clone()));
    let out = tidemark(&env, &format!("s3://{bucket}/db"), &["put", "k", "v"]);
    assert_one_line(&out, "put", &["no AWS credentials", &metadata, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"]);
}

/// A second moto server that checks signatures (`INITIAL_NO_AUTH_ACTION_COUNT=0`),
/// started from the venv scripts/s3-server.sh installed; stopped on drop.
struct AuthServer {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AuthServer {
    fn start() -> AuthServer {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        // The binary is <target>/<profile>/tidemark; the venv is <target>/s3-venv.
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_tidemark"));
        let target = exe.parent().and_then(|p| p.parent()).expect("the target directory");
        let python = target.join("s3-venv").join("bin").join("python");
        assert!(python.exists(), "{ENDPOINT_VAR} is set but {} is missing (scripts/s3-server.sh installs it)", python.display());
        let dir = tempfile::tempdir().expect("tempdir");
        let port_file = dir.path().join("port");
        let child = Command::new(&python)
            .arg(root.join("scripts").join("moto-server.py"))
            .arg(&port_file)
            .arg(std::process::id().to_string())
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts moto");
        let mut server = AuthServer { child, endpoint: String::new(), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                if !port.trim().is_empty() {
                    server.endpoint = format!("http://127.0.0.1:{}", port.trim());
                    return server;
                }
            }
            assert!(server.child.try_wait().expect("wait").is_none(), "the checking moto server exited");
            assert!(Instant::now() < deadline, "the checking moto server did not start within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Credentials the server does not know: one line naming the variables.
#[test]
fn refused_credentials_name_the_variables_to_check() {
    if endpoint("refused_credentials_name_the_variables_to_check").is_none() {
        return;
    }
    let server = AuthServer::start();
    let mut env = good_env(&server.endpoint);
    for (k, v) in env.iter_mut() {
        if *k == "AWS_ACCESS_KEY_ID" {
            *v = "AKIAWRONGWRONGWRONG0".into();
        }
    }
    let needles = [&server.endpoint[..], "does not know the access key id", "check AWS_ACCESS_KEY_ID"];
    assert_one_line(&tidemark(&env, "s3://bucket/db", &["put", "k", "v"]), "put", &needles);
    assert_one_line(&tidemark(&env, "s3://bucket/db", &["get", "k"]), "get", &needles);
}
