//! The exit code of `tidemark put` tells whether the write
//! is durable, even when many processes write one database at once (each
//! `put` opens a writer and fences the others).
#![cfg(not(loom))]

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};

const PROCESSES: usize = 8;
const ROUNDS: usize = 20;

/// Exit codes (cli/README.md).
const OK: i32 = 0;
const NOT_WRITTEN: i32 = 1;
const OUTCOME_UNKNOWN: i32 = 3;

fn spawn_put(url: &str, key: &str, value: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["--url", url, "put", key, value])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs")
}

fn read_all(dir: &std::path::Path) -> BTreeMap<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).expect("store");
        let db = tidemark::Db::open_read_only("", std::sync::Arc::new(fs)).await.expect("opens read-only");
        let rows = db.scan(..).await.expect("scans").collect_vec().await.expect("scans");
        rows.into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&v).into_owned()))
            .collect()
    })
}

#[test]
fn concurrent_puts_exit_zero_only_when_durable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let mut outcomes: Vec<(String, String, Output)> = Vec::new();
    for round in 0..ROUNDS {
        let children: Vec<_> = (0..PROCESSES)
            .map(|p| {
                let (key, value) = (format!("p{p}-r{round:02}"), format!("value of p{p} in round {round}"));
                let child = spawn_put(&url, &key, &value);
                (key, value, child)
            })
            .collect();
        for (key, value, child) in children {
            outcomes.push((key, value, child.wait_with_output().expect("waits")));
        }
    }
    // Read back with the library, as a fresh reader would after a crash.
    let stored = read_all(dir.path());
    let mut counts: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (key, value, out) in &outcomes {
        let code = out.status.code().unwrap_or(-1);
        let present = stored.get(key) == Some(value);
        let count = counts.entry(code).or_default();
        if present {
            count.0 += 1;
        } else {
            count.1 += 1;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ok = match code {
            OK => present,
            NOT_WRITTEN => !present && stderr.contains("not written"),
            OUTCOME_UNKNOWN => stderr.contains("outcome unknown"),
            _ => false,
        };
        if !ok {
            wrong.push(format!("{key}: exit {code}, durable={present}: {}", stderr.trim()));
        }
    }
    let summary: Vec<String> =
        counts.iter().map(|(code, (durable, absent))| format!("exit {code}: {durable} durable, {absent} absent")).collect();
    eprintln!("{} puts: {}", outcomes.len(), summary.join("; "));
    assert!(wrong.is_empty(), "{} exit codes lie ({}):\n{}", wrong.len(), summary.join("; "), wrong.join("\n"));
    assert!(counts.get(&OK).is_some_and(|c| c.0 > 0), "some puts succeed: {}", summary.join("; "));
}
