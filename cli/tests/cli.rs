//! The `tidemark` command line: round trips, fsck, exit codes, the
//! manifest's ids, and errors.
#![cfg(not(loom))]

use std::process::{Command, Output};

/// Exit codes (cli/README.md).
const ERROR: i32 = 1;
const USAGE: i32 = 2;
const NOT_FOUND: i32 = 4;
const PROBLEMS: i32 = 5;

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
    assert_eq!(missing.status.code(), Some(NOT_FOUND));
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
    assert_eq!(fsck.status.code(), Some(PROBLEMS));
    assert!(stdout(&fsck).contains("Corrupt"), "{}", stdout(&fsck));
    // Remove it: the manifest requires it.
    std::fs::remove_file(&victim).unwrap();
    let fsck = tidemark(&url, &["fsck"]);
    assert_eq!(fsck.status.code(), Some(PROBLEMS));
    assert!(stdout(&fsck).contains("not found"), "{}", stdout(&fsck));
    // A point read opens every L0 SST newer than where it finds its key (to
    // check each handle's range against the SST once), so both reads meet
    // the missing newest SST: each fails with one clear line naming it.
    for k in ["k", "k2"] {
        let got = tidemark(&url, &["get", k]);
        assert_eq!(got.status.code(), Some(ERROR), "{k}: an error, not \"not found\"");
        assert_eq!(stderr(&got).lines().count(), 1, "one clear line: {}", stderr(&got));
        assert!(stderr(&got).contains(&victim.file_name().unwrap().to_string_lossy().into_owned()), "{}", stderr(&got));
    }
}

#[test]
fn bad_arguments_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark")).args(["get", "k"]).output().unwrap();
    assert_eq!(out.status.code(), Some(USAGE), "missing --url");
    let out = tidemark("memory://", &["frobnicate"]);
    assert_eq!(out.status.code(), Some(USAGE));
    let out = tidemark("gopher://x", &["get", "k"]);
    assert_eq!(out.status.code(), Some(ERROR));
    assert!(stderr(&out).contains("unsupported URL scheme"), "{}", stderr(&out));
}

fn tidemark_in(dir: &std::path::Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidemark")).current_dir(dir).arg("--url").arg(url).args(args).output().expect("runs")
}

fn tidemark_stdin(url: &str, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("--url")
        .arg(url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child.stdin.take().expect("stdin").write_all(input).expect("writes stdin");
    child.wait_with_output().expect("runs")
}

/// Read-only commands create nothing and say clearly that
/// there is no database.
#[test]
fn read_only_commands_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let url = format!("file://{}", missing.display());
    for args in [&["get", "k"][..], &["scan"], &["manifest"], &["fsck"]] {
        let out = tidemark(&url, args);
        assert_eq!(out.status.code(), Some(ERROR), "{args:?}");
        assert!(stderr(&out).contains("no tidemark database at"), "{args:?}: {}", stderr(&out));
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
    // An existing directory without a database: the same error, nothing written.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let url = format!("file://{}", empty.display());
    for args in [&["get", "k"][..], &["scan"], &["manifest"], &["fsck"]] {
        let out = tidemark(&url, args);
        assert_eq!(out.status.code(), Some(ERROR), "{args:?}");
        assert!(stderr(&out).contains("no tidemark database at"), "{args:?}: {}", stderr(&out));
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "{args:?} wrote into {}", empty.display());
    }
    let out = tidemark("memory://", &["get", "k"]);
    assert!(stderr(&out).contains("no tidemark database at memory://"), "{}", stderr(&out));
    // A writer still creates its directory.
    let url = format!("file://{}", missing.display());
    assert!(tidemark(&url, &["put", "k", "v"]).status.success());
    assert_eq!(stdout(&tidemark(&url, &["get", "k"])), "v\n");
}

/// `file:rel/dir` is relative to the working directory
/// (the `url` crate alone reads it as `/rel/dir`).
#[test]
fn relative_file_urls_resolve_against_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("tidemark-rel-{}", std::process::id());
    let url = format!("file:{name}/db");
    let at_root = std::path::Path::new("/").join(&name);
    let put = tidemark_in(dir.path(), &url, &["put", "k", "v"]);
    let created_at_root = at_root.exists();
    if created_at_root {
        let _ = std::fs::remove_dir_all(&at_root);
    }
    assert!(put.status.success(), "{}", stderr(&put));
    assert!(!created_at_root, "put created {}", at_root.display());
    assert!(dir.path().join(&name).join("db").join("manifest").is_dir(), "the database is under the working directory");
    let got = tidemark_in(dir.path(), &url, &["get", "k"]);
    assert_eq!(stdout(&got), "v\n", "{}", stderr(&got));
    // Read-only and relative: still nothing created.
    let other = tidemark_in(dir.path(), "file:nothing/here", &["scan"]);
    assert_eq!(other.status.code(), Some(ERROR));
    assert!(stderr(&other).contains("no tidemark database at"), "{}", stderr(&other));
    assert!(!dir.path().join("nothing").exists());
}

/// Large and binary values through `--value-file` (and
/// stdin), keys that are not UTF-8, and every output format.
#[cfg(unix)]
#[test]
fn binary_and_large_values() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("db").display());
    // 200 KB of every byte value: too long for an argument list.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &big).unwrap();
    let put = tidemark(&url, &["put", "big", "--value-file", file.to_str().unwrap()]);
    assert!(put.status.success(), "{}", stderr(&put));
    let raw = tidemark(&url, &["get", "big", "--format", "raw"]);
    assert!(raw.status.success());
    assert!(raw.stdout == big, "raw output is the value's bytes exactly ({} bytes)", raw.stdout.len());
    // From stdin.
    let put = tidemark_stdin(&url, &["put", "from-stdin", "--value-file", "-"], &big[..1000]);
    assert!(put.status.success(), "{}", stderr(&put));
    assert_eq!(tidemark(&url, &["get", "from-stdin", "--format", "raw"]).stdout, &big[..1000]);
    // A key and value that are not UTF-8, as hex, as base64 and as raw argument bytes.
    let put = tidemark(&url, &["--input", "hex", "put", "ff00fe", "80c3"]);
    assert!(put.status.success(), "{}", stderr(&put));
    let hex = tidemark(&url, &["--input", "hex", "get", "ff00fe", "--format", "hex"]);
    assert_eq!(stdout(&hex), "80c3\n");
    let b64 = tidemark(&url, &["--input", "base64", "get", "/wD+", "--format", "base64"]);
    assert_eq!(stdout(&b64), "gMM=\n");
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["--url", &url, "put"])
        .arg(OsStr::from_bytes(b"raw\xffkey"))
        .arg(OsStr::from_bytes(b"raw\xfevalue"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let got = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["--url", &url, "get"])
        .arg(OsStr::from_bytes(b"raw\xffkey"))
        .args(["--format", "raw"])
        .output()
        .unwrap();
    assert_eq!(got.stdout, b"raw\xfevalue");
    // JSON lines escape what needs escaping and give non-UTF-8 as base64.
    assert!(tidemark(&url, &["put", "quote\"tab\tnl\n", "line1\nline2 \"q\" \\ \u{1}"]).status.success());
    let scan = tidemark(&url, &["scan", "--format", "json"]);
    assert!(scan.status.success());
    let rows: Vec<serde_json::Value> =
        stdout(&scan).lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(rows.len(), 5, "{}", stdout(&scan));
    let quoted = rows.iter().find(|r| r["key"] == "quote\"tab\tnl\n").expect("the escaped key");
    assert_eq!(quoted["value"], "line1\nline2 \"q\" \\ \u{1}");
    let binary = rows.iter().find(|r| r["key_base64"] == "/wD+").expect("a non-UTF-8 key as base64");
    assert_eq!(binary["value_base64"], "gMM=");
    let big_row = rows.iter().find(|r| r["key"] == "big").expect("big");
    assert!(big_row.get("value_base64").is_some(), "200 KB of binary is not UTF-8");
    // hex scan: KEY<TAB>VALUE, one line per row.
    let scan = tidemark(&url, &["--input", "hex", "scan", "--prefix", "ff", "--format", "hex"]);
    assert_eq!(stdout(&scan), "ff00fe\t80c3\n");
    // Bad input is a usage error and writes nothing.
    let bad = tidemark(&url, &["--input", "hex", "put", "zz", "00"]);
    assert_eq!(bad.status.code(), Some(USAGE));
    assert!(stderr(&bad).contains("not hex"), "{}", stderr(&bad));
    assert_eq!(tidemark(&url, &["scan", "--format", "raw"]).status.code(), Some(USAGE), "raw is for get");
    let both = tidemark(&url, &["put", "k", "v", "--value-file", file.to_str().unwrap()]);
    assert_eq!(both.status.code(), Some(USAGE), "VALUE and --value-file conflict");
}

fn wal_objects(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("wal")).unwrap().flatten().map(|e| e.path()).collect();
    v.sort();
    v
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A write that was sent but not acknowledged, and whose
/// outcome the writer cannot learn, exits 3 and says so. The WAL id the
/// next writer will use (learnt from a dry run on a copy) is taken in
/// advance by a directory, so its create meets `AlreadyExists` and the
/// object there cannot be read back.
#[test]
fn a_write_with_an_unknown_outcome_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let url = format!("file://{}", db.display());
    assert!(tidemark(&url, &["put", "a", "1"]).status.success());
    let copy = dir.path().join("copy");
    copy_dir(&db, &copy);
    let before = wal_objects(&copy);
    assert!(tidemark(&format!("file://{}", copy.display()), &["put", "b", "2"]).status.success());
    let data_wal = wal_objects(&copy).into_iter().filter(|p| !before.contains(p)).max().expect("the dry run wrote a WAL");
    let taken = db.join("wal").join(data_wal.file_name().expect("a file name"));
    std::fs::create_dir(&taken).unwrap();
    let put = tidemark(&url, &["put", "b", "2"]);
    assert_eq!(put.status.code(), Some(3), "{}", stderr(&put));
    assert!(stderr(&put).contains("outcome unknown: the write may or may not be durable"), "{}", stderr(&put));
    // A write rejected before it is sent is "not written" (exit 1).
    let empty_key = tidemark(&url, &["put", "", "v"]);
    assert_eq!(empty_key.status.code(), Some(ERROR));
    assert!(stderr(&empty_key).contains("not written"), "{}", stderr(&empty_key));
}

fn names_in(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(suffix)).map(str::to_string))
        .collect();
    v.sort();
    v
}

/// `manifest` prints every SST id as its object is named
/// (`compacted/<ULID>.sst`) and every WAL id as in `wal/<20 digits>.sst`,
/// so that each can be found in the store by the name printed.
#[test]
fn manifest_ids_are_the_names_of_the_objects() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        assert!(tidemark(&url, &["put", k, v]).status.success());
    }
    let out = tidemark(&url, &["manifest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("manifest is JSON");
    let ssts = names_in(&dir.path().join("compacted"), ".sst");
    let l0: Vec<&serde_json::Value> = json["l0"].as_array().expect("l0").iter().collect();
    assert!(!l0.is_empty(), "each close flushed an L0 SST: {json}");
    for sst in l0 {
        let id = sst["id"].as_str().unwrap_or_else(|| panic!("an SST id is a string: {sst}"));
        assert!(ssts.iter().any(|n| n == id), "compacted/{id}.sst is not among {ssts:?}");
    }
    let wals = names_in(&dir.path().join("wal"), ".sst");
    let last_seen = json["wal_id_last_seen"].as_str().expect("a WAL id is a string");
    assert_eq!(last_seen.len(), 20, "{last_seen}");
    assert!(wals.iter().any(|n| n == last_seen), "wal/{last_seen}.sst is not among {wals:?}");
    assert_eq!(json["writer_epoch"].as_u64(), Some(3), "epochs stay numbers: {json}");
}

/// A script tells "no such key" (exit 4, stderr `not found`) from a failed
/// read (exit 1, one line naming the cause), and fsck's "problem found"
/// (exit 5) from fsck failing to run (exit 1).
#[test]
fn not_found_and_errors_have_different_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    assert!(tidemark(&url, &["put", "k", "v"]).status.success());
    let absent = tidemark(&url, &["get", "other"]);
    assert_eq!((absent.status.code(), stderr(&absent).trim()), (Some(NOT_FOUND), "not found"));
    // Every manifest unreadable: the read fails, it does not answer "absent".
    for m in std::fs::read_dir(dir.path().join("manifest")).unwrap().flatten() {
        std::fs::write(m.path(), b"not a manifest").unwrap();
    }
    let broken = tidemark(&url, &["get", "other"]);
    assert_eq!(broken.status.code(), Some(ERROR), "{}", stderr(&broken));
    assert_eq!(stderr(&broken).lines().count(), 1, "{}", stderr(&broken));
    assert!(stderr(&broken).contains("Corrupt"), "{}", stderr(&broken));
    let fsck = tidemark(&url, &["fsck"]);
    assert_eq!(fsck.status.code(), Some(PROBLEMS), "{}", stdout(&fsck));
    let nothing = tidemark(&format!("file://{}", dir.path().join("none").display()), &["fsck"]);
    assert_eq!(nothing.status.code(), Some(ERROR), "no database: fsck could not run");
}
