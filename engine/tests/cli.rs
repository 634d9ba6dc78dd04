//! The `tidemark` command line: round trips, fsck, and errors.
#![cfg(not(loom))]

use std::process::{Command, Output};

fn tidemark(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidemark")).arg("--url").arg(url).args(args).output().expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn put_get_scan_manifest_fsck_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    for (k, v) in [("apple", "red"), ("avocado", "green"), ("banana", "yellow")] {
        assert!(tidemark(&url, &["put", k, v]).status.success());
    }
    let got = tidemark(&url, &["get", "avocado"]);
    assert!(got.status.success());
    assert_eq!(stdout(&got), "green\n");
    let missing = tidemark(&url, &["get", "cherry"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stderr(&missing).trim(), "not found");
    assert!(tidemark(&url, &["delete", "apple"]).status.success());
    let scan = tidemark(&url, &["scan", "--prefix", "a"]);
    assert_eq!(stdout(&scan), "avocado\tgreen\n");
    let limited = tidemark(&url, &["scan", "--limit", "1"]);
    assert_eq!(stdout(&limited).lines().count(), 1);
    let manifest = tidemark(&url, &["manifest"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&manifest)).expect("manifest is JSON");
    assert!(json["writer_epoch"].as_u64().unwrap_or(0) >= 4);
    let fsck = tidemark(&url, &["fsck"]);
    assert!(fsck.status.success(), "{}", stdout(&fsck));
    assert!(stdout(&fsck).contains("no problems"));
}

fn sst_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("compacted")).unwrap().flatten().map(|e| e.path()).collect();
    v.sort();
    v
}

/// `close()` flushes the memtable to L0, so after two CLI puts the data is
/// in SSTs the manifest requires: fsck reads every one of them.
#[test]
fn fsck_reports_a_corrupt_or_missing_sst() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    assert!(tidemark(&url, &["put", "k", "v"]).status.success());
    assert!(tidemark(&url, &["put", "k2", "v2"]).status.success());
    // Corrupt the newest SST's first data block.
    let ssts = sst_files(dir.path());
    let victim = ssts.last().unwrap().clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[2] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();
    let fsck = tidemark(&url, &["fsck"]);
    assert_eq!(fsck.status.code(), Some(1));
    assert!(stdout(&fsck).contains("Corrupt"), "{}", stdout(&fsck));
    // Remove it: the manifest requires it.
    std::fs::remove_file(&victim).unwrap();
    let fsck = tidemark(&url, &["fsck"]);
    assert_eq!(fsck.status.code(), Some(1));
    assert!(stdout(&fsck).contains("not found"), "{}", stdout(&fsck));
    let get = tidemark(&url, &["get", "k"]);
    assert_eq!(get.status.code(), Some(1));
    assert_eq!(stderr(&get).lines().count(), 1, "one clear line: {}", stderr(&get));
}

#[test]
fn bad_arguments_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark")).args(["get", "k"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "missing --url");
    let out = tidemark("memory://", &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = tidemark("gopher://x", &["get", "k"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unsupported URL scheme"), "{}", stderr(&out));
}
