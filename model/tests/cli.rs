//! The `check-model` binary: bad arguments, JSON output, the explorer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn check_model() -> Command {
    Command::new(env!("CARGO_BIN_EXE_check-model"))
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    for args in [
        &["--protocol", "at-thaw"][..],
        &["--writes", "0"],
        &["--inflight", "0"],
        &["--crashes", "9"],
        &["--inflight", "99"],
        &["--no-such-flag"],
        &["--big", "--deep"],
        &["--hedges", "9"],
    ] {
        let out = check_model().args(args).output().expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.trim().is_empty() && stderr.lines().count() <= 8, "{args:?}: {stderr}");
    }
    let out = check_model().args(["--protocol", "at-thaw"]).output().expect("runs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown protocol `at-thaw`"));
}

#[test]
fn json_reports_a_mutant_counterexample_and_exit_1() {
    let out = check_model()
        .args(["--json", "--protocol", "at-freeze", "--writes", "1", "--zombies", "0", "--manifests", "2"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let run = &doc["runs"][0];
    assert_eq!(run["protocol"], "at-freeze");
    assert!(run["unique_states"].as_u64().unwrap_or(0) > 0);
    let props = run["properties"].as_array().expect("properties");
    let i1 = props.iter().find(|p| p["name"] == "I1 ManifestWalsDurable").expect("I1");
    assert_eq!(i1["kind"], "always");
    assert_eq!(i1["holds"], false);
    let actions: Vec<&str> = i1["counterexample"].as_array().expect("steps").iter().filter_map(|s| s["action"].as_str()).collect();
    assert_eq!(actions, ["Put", "FreezeWal", "WriteManifest"]);
}

/// Starts `check-model <args> explore` on a free loopback port; returns the
/// child and the address.
fn start_explorer(args: &[&str]) -> (std::process::Child, String) {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let addr = format!("127.0.0.1:{port}");
    let child = check_model()
        .args(args)
        .args(["explore", "--addr", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    (child, addr)
}

/// One HTTP/1.0 GET; the body once the server answers (retried until it listens).
fn get(addr: &str, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if !response.is_empty() {
                return response;
            }
        }
        assert!(Instant::now() < deadline, "explorer did not answer {path}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn explorer_answers_over_http_on_loopback() {
    let (mut child, addr) = start_explorer(&["--writes", "1"]);
    let response = get(&addr, "/.status");
    let _ = child.kill();
    let _ = child.wait();
    assert!(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"), "{response}");
}

/// The page opens on the shortest counterexample: `/.landing` names its
/// path (Put, FreezeWal, WriteManifest for at-freeze's I1), the page asks
/// for it, and the status links I1 to it.
#[test]
fn explorer_opens_on_the_shortest_counterexample() {
    let (mut child, addr) = start_explorer(&["--protocol", "at-freeze", "--wal-only"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let landing = loop {
        let response = get(&addr, "/.landing");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if json["done"] == true {
            break json;
        }
        assert!(Instant::now() < deadline, "hunt did not finish");
        std::thread::sleep(Duration::from_millis(200));
    };
    let page = get(&addr, "/");
    let status = get(&addr, "/.status");
    let _ = child.kill();
    let _ = child.wait();
    let path = landing["path"].as_str().expect("a counterexample");
    assert_eq!(path.split('/').count(), 4, "the initial state and three steps: {path}");
    assert_eq!(landing["violated"][0], "I1 ManifestWalsDurable");
    assert!(page.contains("/.landing") && page.contains("Stateright Explorer"), "{page}");
    assert!(status.contains(&format!("\"I1 ManifestWalsDurable\",\"{path}\"")), "{status}");
}
