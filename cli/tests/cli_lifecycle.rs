//! Checkpoints, compaction and GC from the command line.
#![cfg(not(loom))]

use std::process::{Command, Output};

const USAGE: i32 = 2;

fn tidemark(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidemark")).arg("--url").arg(url).args(args).output().expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_checkpoint_reads_its_state_until_deleted_and_gc_and_compact_run_alone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    for i in 0..20 {
        assert!(tidemark(&url, &["put", &format!("k{i:02}"), "before"]).status.success());
    }
    let created = tidemark(&url, &["checkpoint", "create"]);
    assert!(created.status.success(), "{created:?}");
    let id = stdout(&created).trim().to_string();
    assert_eq!(id.len(), 32, "{id}");
    for i in 0..20 {
        assert!(tidemark(&url, &["put", &format!("k{i:02}"), "after"]).status.success());
    }
    let listed = stdout(&tidemark(&url, &["checkpoint", "list"]));
    assert!(listed.contains(&id) && listed.contains("durable"), "{listed}");

    let compact = tidemark(&url, &["compact"]);
    assert!(compact.status.success(), "{compact:?}");
    let gc = tidemark(&url, &["--gc-min-age", "0s", "gc"]);
    assert!(gc.status.success(), "{gc:?}");
    assert!(stdout(&gc).starts_with("deleted:"), "{}", stdout(&gc));

    assert_eq!(stdout(&tidemark(&url, &["get", "k07", "--checkpoint", &id])), "before\n");
    assert_eq!(stdout(&tidemark(&url, &["get", "k07"])), "after\n");
    let rows = stdout(&tidemark(&url, &["scan", "--checkpoint", &id]));
    assert_eq!(rows.lines().count(), 20);
    assert!(rows.lines().all(|l| l.ends_with("\tbefore")), "{rows}");

    assert!(tidemark(&url, &["checkpoint", "delete", &id]).status.success());
    let gone = tidemark(&url, &["get", "k07", "--checkpoint", &id]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("gone"), "{gone:?}");
    assert_eq!(tidemark(&url, &["checkpoint", "delete", "not-hex"]).status.code(), Some(USAGE));
    let fsck = tidemark(&url, &["fsck"]);
    assert!(fsck.status.success(), "{}", stdout(&fsck));
}
