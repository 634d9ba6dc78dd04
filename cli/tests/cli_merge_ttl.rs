//! `put --ttl`, `merge` and `--merge-operator` from the command line.
#![cfg(not(loom))]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

const USAGE: i32 = 2;
const NOT_FOUND: i32 = 4;

fn tidemark(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidemark")).arg("--url").arg(url).args(args).output().expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn merge_folds_operands_with_the_named_operator() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    for n in ["5", "10", "-3"] {
        let o = tidemark(&url, &["--merge-operator", "add", "merge", "hits", n]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(stdout(&tidemark(&url, &["--merge-operator", "add", "get", "hits"])), "12\n");
    assert_eq!(stdout(&tidemark(&url, &["--merge-operator", "add", "scan"])), "hits\t12\n");
    // Without the operator: a usage error for merge, an error (not a wrong
    // value) for a read of the key.
    let merge = tidemark(&url, &["merge", "hits", "1"]);
    assert_eq!(merge.status.code(), Some(USAGE));
    assert!(String::from_utf8_lossy(&merge.stderr).contains("--merge-operator"));
    let get = tidemark(&url, &["get", "hits"]);
    assert_eq!(get.status.code(), Some(1), "{}", stdout(&get));
    assert!(String::from_utf8_lossy(&get.stderr).contains("merge operator"));
    // concat appends, onto a put value.
    assert!(tidemark(&url, &["put", "log", "a"]).status.success());
    assert!(tidemark(&url, &["--merge-operator", "concat", "merge", "log", ",b"]).status.success());
    assert_eq!(stdout(&tidemark(&url, &["--merge-operator", "concat", "get", "log"])), "a,b\n");
    let bad = tidemark(&url, &["--merge-operator", "mul", "get", "log"]);
    assert_eq!(bad.status.code(), Some(USAGE));
}

#[test]
fn a_put_with_a_ttl_is_gone_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let start = Instant::now();
    assert!(tidemark(&url, &["put", "--ttl", "2s", "session", "alice"]).status.success());
    assert!(tidemark(&url, &["put", "kept", "bob"]).status.success());
    let early = tidemark(&url, &["get", "session"]);
    if start.elapsed() < Duration::from_millis(1500) {
        assert_eq!(stdout(&early), "alice\n");
    }
    std::thread::sleep(Duration::from_millis(2100).saturating_sub(start.elapsed()));
    assert_eq!(tidemark(&url, &["get", "session"]).status.code(), Some(NOT_FOUND));
    assert_eq!(stdout(&tidemark(&url, &["scan"])), "kept\tbob\n");
    let bad = tidemark(&url, &["put", "--ttl", "soon", "k", "v"]);
    assert_eq!(bad.status.code(), Some(USAGE));
}
