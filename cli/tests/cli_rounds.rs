//! A store that stays small however long it runs: 300 rounds of `tidemark --gc-min-age 0s put` on `file://`, each an open,
//! a put and a close, leave at most 60 objects; every key is readable and
//! fsck is clean.
#![cfg(not(loom))]

use std::process::{Command, Output};

fn tidemark(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["--gc-min-age", "0s", "--url", url])
        .args(args)
        .output()
        .expect("runs")
}

fn objects(dir: &std::path::Path) -> usize {
    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(dir)
}

#[test]
fn three_hundred_cli_rounds_leave_few_objects() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    for i in 0..300 {
        let out = tidemark(&url, &["put", &format!("key{i:03}"), &format!("value{i}")]);
        assert!(out.status.success(), "round {i}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let n = objects(dir.path());
    assert!(n <= 60, "{n} objects after 300 rounds");
    for i in (0..300).step_by(13) {
        let out = tidemark(&url, &["get", &format!("key{i:03}")]);
        assert!(out.status.success(), "key{i:03}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("value{i}"));
    }
    let scan = tidemark(&url, &["scan"]);
    assert_eq!(String::from_utf8_lossy(&scan.stdout).lines().count(), 300);
    let fsck = tidemark(&url, &["fsck"]);
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
    eprintln!("300 CLI rounds: {n} objects");
}
