//! `--wal-url`: WALs (and fences) in a store of their own, SSTs and
//! manifests under `--url`; every command reads the two as one database.
#![cfg(not(loom))]

use std::path::Path;
use std::process::{Command, Output};

fn tidemark(url: &str, wal_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("--url")
        .arg(url)
        .arg("--wal-url")
        .arg(wal_url)
        .args(args)
        .output()
        .expect("runs")
}

fn files(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut v: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

#[test]
fn wals_live_in_the_wal_store_and_every_command_reads_both() {
    let (main, wal) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = format!("file://{}", main.path().display());
    let wal_url = format!("file://{}", wal.path().display());
    for (k, v) in [("apple", "red"), ("banana", "yellow")] {
        let put = tidemark(&url, &wal_url, &["put", k, v]);
        assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    }
    // The WALs and fences went to the WAL store; manifests and SSTs stayed.
    assert!(!files(&wal.path().join("wal")).is_empty(), "no WAL in the WAL store");
    assert!(files(&main.path().join("wal")).is_empty(), "a WAL under --url: {:?}", files(&main.path().join("wal")));
    assert!(!files(&main.path().join("manifest")).is_empty());
    assert!(files(&wal.path().join("manifest")).is_empty());
    let got = tidemark(&url, &wal_url, &["get", "banana"]);
    assert!(got.status.success());
    assert_eq!(String::from_utf8_lossy(&got.stdout), "yellow\n");
    let fsck = tidemark(&url, &wal_url, &["fsck"]);
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
}
