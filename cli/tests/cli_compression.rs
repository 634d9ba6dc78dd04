//! `--compression`: puts under each codec share one database, fsck and
//! `manifest` name each SST's codec, and a codec the CLI does not know is a usage error.
#![cfg(not(loom))]

use std::process::{Command, Output};

fn tidemark(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidemark")).args(["--url", url]).args(args).output().expect("runs")
}

#[test]
fn puts_under_every_codec_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let value = "{\"user\":\"ada\",\"role\":\"admin\",\"active\":true}".repeat(20);
    for (i, codec) in ["none", "lz4", "zstd", "zstd:9"].iter().enumerate() {
        let out = tidemark(&url, &["--compression", codec, "put", &format!("key{i}"), &value]);
        assert!(out.status.success(), "{codec}: {}", String::from_utf8_lossy(&out.stderr));
        if i == 2 {
            // Three L0 SSTs, one per codec (compaction starts at four).
            let fsck = tidemark(&url, &["fsck"]);
            let report = String::from_utf8_lossy(&fsck.stdout);
            assert!(fsck.status.success(), "{report}");
            for codec in ["none", "lz4", "zstd"] {
                assert!(report.contains(&format!("compression {codec})")), "fsck names no {codec} SST:\n{report}");
            }
            // `manifest` shows each L0 SST's codec, oldest last.
            let m = tidemark(&url, &["manifest"]);
            let json: serde_json::Value = serde_json::from_slice(&m.stdout).expect("manifest is JSON");
            let mut codecs: Vec<&str> = json["l0"].as_array().unwrap().iter().map(|s| s["compression"].as_str().unwrap()).collect();
            codecs.sort_unstable();
            assert_eq!(codecs, ["lz4", "none", "zstd"], "{json}");
        }
    }
    // The fourth close compacted all of them into zstd:9 SSTs.
    let fsck = tidemark(&url, &["fsck"]);
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
    let scan = tidemark(&url, &["scan"]);
    assert_eq!(String::from_utf8_lossy(&scan.stdout).lines().count(), 4);
    let get = tidemark(&url, &["get", "key2"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), value);
}

#[test]
fn an_unknown_codec_or_level_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    for (codec, says) in [("snappy", "snappy"), ("zstd:99", "zstd level"), ("zstd:x", "not a number")] {
        let out = tidemark(&url, &["--compression", codec, "put", "k", "v"]);
        assert_eq!(out.status.code(), Some(2), "{codec}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{codec}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a refused command created objects");
}
