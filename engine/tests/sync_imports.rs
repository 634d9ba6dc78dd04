//! Keeps `engine/src/sync.rs` the one place that names `std::sync`,
//! `tokio::sync` or `loom`,
//! so the loom suite always permutes the engine's real synchronisation.
#![cfg(not(loom))]

use std::path::Path;

/// Lines of `source` that name `std::sync` or `loom::` (comments excluded).
fn offending_lines(source: &str) -> Vec<(usize, String)> {
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            code.contains("std::sync") || code.contains("tokio::sync") || names_loom(code)
        })
        .map(|(i, line)| (i + 1, line.trim().to_string()))
        .collect()
}

/// Whether `code` names the `loom` crate (not merely a word ending in "loom").
fn names_loom(code: &str) -> bool {
    code.match_indices("loom").any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = &code[i + 4..];
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_') && (after.starts_with("::") || after.starts_with(';'))
    })
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source tree").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_sync_rs_names_std_sync_or_loom() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "found the engine's sources");
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("sync.rs")) {
        let text = std::fs::read_to_string(file).expect("readable");
        for (line, code) in offending_lines(&text) {
            offenders.push(format!("{}:{line}: {code}", file.display()));
        }
    }
    assert!(offenders.is_empty(), "import sync types from crate::sync only:\n{}", offenders.join("\n"));
}

#[test]
fn the_scanner_catches_direct_imports() {
    assert_eq!(offending_lines("use std::sync::Mutex;").len(), 1);
    assert_eq!(offending_lines("let a = std::sync::Arc::new(1);").len(), 1);
    assert_eq!(offending_lines("use loom::sync::Arc;").len(), 1);
    assert_eq!(offending_lines("use tokio::sync::Notify;").len(), 1);
    assert!(offending_lines("use crate::sync::Arc; // not std::sync").is_empty());
    assert!(offending_lines("bloom::build(&keys)").is_empty());
}
