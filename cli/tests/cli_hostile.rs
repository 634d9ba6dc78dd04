//! The CLI on hostile data: objects with valid checksums whose contents
//! are wrong. Commands refuse them with one clear error, fsck reports them,
//! and no write is acknowledged on top of them.
#![cfg(not(loom))]

use std::process::{Command, Output};

use tidemark::internals::bounds::MAX_EPOCH;
use tidemark::Manifest;

/// Exit codes (cli/README.md).
const ERROR: i32 = 1;
const NOT_FOUND: i32 = 4;
const PROBLEMS: i32 = 5;

fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// Rewrites the first key of an SST's first data block (same length, a
/// smaller last byte) and re-seals the block: the object keeps its size and
/// every checksum, but the block no longer matches its index entry. The
/// block is plain (its codec byte, 0, comes first).
fn shift_first_key(sst: &mut [u8]) {
    let footer = &sst[sst.len() - 32..];
    let index_off = u64::from_le_bytes(footer[8..16].try_into().unwrap()) as usize;
    assert_eq!(sst[0], 0, "a plain block");
    let first_len = u32::from_le_bytes(sst[1..5].try_into().unwrap()) as usize;
    sst[1 + 4 + first_len - 1] -= 1;
    // Only one block in a one-entry SST: it spans everything before the index.
    let resealed = seal(sst[..index_off - 4].to_vec());
    sst[..index_off].copy_from_slice(&resealed);
}

fn tidemark(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidemark")).arg("--url").arg(url).args(args).output().expect("runs")
}

/// An SST whose block disagrees with its index (every checksum valid):
/// reads fail on it (exit 1, an error), fsck reports it (exit 5, a problem
/// found).
#[test]
fn fsck_exits_5_on_an_sst_whose_blocks_disagree_with_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    assert!(tidemark(&url, &["put", "k", "v"]).status.success());
    let ok = tidemark(&url, &["fsck"]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    let ssts: Vec<_> = std::fs::read_dir(dir.path().join("compacted")).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(ssts.len(), 1, "close flushed the put to one L0 SST");
    let mut bytes = std::fs::read(&ssts[0]).unwrap();
    shift_first_key(&mut bytes);
    std::fs::write(&ssts[0], &bytes).unwrap();
    let scan = tidemark(&url, &["scan"]);
    assert_eq!(scan.status.code(), Some(ERROR), "reads reject it");
    let out = tidemark(&url, &["fsck"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(PROBLEMS), "{stdout}");
    assert!(stdout.contains("FAIL") && stdout.contains("disagree with the index"), "{stdout}");
}

/// With a hostile manifest (valid checksum, a field at or near `u64::MAX`)
/// a put is refused, "not written" (exit 1), never acknowledged on top of a
/// state the next open would refuse, and every command names the object
/// and the field.
#[test]
fn the_cli_never_acknowledges_a_put_on_a_hostile_manifest() {
    use std::process::Command;
    let run = |url: &str, args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_tidemark")).arg("--url").arg(url).args(args).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    // (field, the hostile value, whether read-only commands still read: a
    // value at the bound decodes, only the next epoch would not)
    for (field, set, readable) in [
        ("writer_epoch", (|m: &mut Manifest| m.writer_epoch = u64::MAX) as fn(&mut Manifest), false),
        ("replay_after_wal_id", |m| m.replay_after_wal_id = u64::MAX, false),
        ("writer_epoch", |m| m.writer_epoch = MAX_EPOCH, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        assert_eq!(run(&url, &["put", "k", "v"]).0, Some(0));
        let mdir = dir.path().join("manifest");
        let latest = std::fs::read_dir(&mdir).unwrap().flatten().map(|e| e.path()).max().unwrap();
        let mut m = Manifest::decode("m", &std::fs::read(&latest).unwrap()).unwrap();
        m.version += 1;
        set(&mut m);
        std::fs::write(mdir.join(format!("{:020}.manifest", m.version)), m.encode()).unwrap();
        let (code, out) = run(&url, &["put", "k2", "v2"]);
        assert_eq!(code, Some(ERROR), "{field}: {out}");
        assert!(out.contains("not written") && out.contains(field), "{field}: {out}");
        let (code, out) = run(&url, &["get", "k"]);
        if readable {
            assert_eq!((code, out.as_str()), (Some(0), "v\n"), "{field}");
        } else {
            assert_eq!(code, Some(ERROR), "{field}: {out}");
            assert!(out.contains("Corrupt") && out.contains(field), "{field}: {out}");
        }
        let (code, out) = run(&url, &["get", "k2"]);
        if readable {
            assert_eq!(code, Some(NOT_FOUND), "{field}: the refused put is absent: {out}");
        } else {
            assert_eq!(code, Some(ERROR), "{field}: {out}");
        }
    }
}

