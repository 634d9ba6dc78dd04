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

#[test]
fn explorer_answers_over_http_on_loopback() {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = check_model()
        .args(["--writes", "1", "explore", "--addr", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = loop {
        if let Ok(mut stream) = TcpStream::connect(&addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = stream.write_all(b"GET /.status HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut body = String::new();
            let _ = stream.read_to_string(&mut body);
            if !body.is_empty() {
                break body;
            }
        }
        assert!(Instant::now() < deadline, "explorer did not answer");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"), "{response}");
}
