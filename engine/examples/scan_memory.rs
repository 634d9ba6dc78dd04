//! Peak memory of a streaming scan (issue 11, item 4): writes 1,000,000
//! small keys to a local directory, closes (memtables flushed to SSTs, L0
//! compacted into sorted runs), then, in a fresh process so the writer's
//! heap does not hide the figure, reopens and scans every key twice.
//!
//! A counting global allocator gives exact figures: the peak of live heap
//! bytes during a scan minus the live bytes before it, and what stays live
//! after it (the indexes of the SSTs the first scan opened, kept by design
//! for later reads). The second scan finds the SSTs open, so its peak is
//! the scan's own memory, printed next to block size x sources and
//! read-ahead x sources. VmHWM is printed too. Once with one block per
//! request, once with the default read-ahead.
//!
//! `cargo run --release --example scan_memory [keys]`

use std::time::Instant;

use tidemark::{Db, Settings, WriteBatch, WriteOptions};

#[path = "../tests/common/counting_alloc.rs"]
mod counting_alloc;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0)
}

fn settings() -> Settings {
    // 4 MiB memtables: a million keys make a few dozen L0 SSTs, compacted
    // into several sorted runs, each split into 8 MiB SSTs.
    let mut s = Settings::default().with_l0_sst_size_bytes(4 << 20).with_compacted_sst_size_bytes(8 << 20);
    s.max_sorted_runs = 4;
    s
}

async fn write(url: &str, keys: u64) -> tidemark::Result<()> {
    let db = Db::open_url(url, settings()).await?;
    let start = Instant::now();
    let fire = WriteOptions { await_durable: false };
    for chunk in 0..keys.div_ceil(1000) {
        let mut b = WriteBatch::new();
        for i in chunk * 1000..((chunk + 1) * 1000).min(keys) {
            b.put(format!("key{i:010}"), format!("v{i}"));
        }
        db.write_with(b, &fire).await?;
    }
    db.close().await?;
    println!("wrote {keys} keys in {:.1} s (peak RSS of the writer {} MiB)", start.elapsed().as_secs_f64(), status_kib("VmHWM:") >> 10);
    Ok(())
}

/// One scan of every key; returns (keys, seconds, peak heap above the
/// live bytes before it, live bytes after it above those before it).
async fn scan_once(db: &Db, opts: tidemark::ScanOptions) -> tidemark::Result<(u64, f64, usize, isize)> {
    let before = counting_alloc::reset_peak();
    let start = Instant::now();
    let mut it = db.scan_with(.., opts).await?;
    let mut n = 0u64;
    while let Some((_k, _v)) = it.next().await? {
        n += 1;
    }
    drop(it);
    let secs = start.elapsed().as_secs_f64();
    let peak = counting_alloc::peak().saturating_sub(before);
    let kept = counting_alloc::live() as isize - before as isize;
    Ok((n, secs, peak, kept))
}

async fn scan(url: &str, keys: u64, read_ahead_bytes: u64) -> tidemark::Result<()> {
    // No block cache: the figure is the scan's own memory (the cache is a
    // separate budget, `block_cache_bytes`, that a scan would fill).
    let s = settings().with_block_cache_bytes(0);
    let block = s.block_size as u64;
    let db = Db::open_url(url, s).await?;
    let m = db.manifest().await;
    let sources = (m.l0.len() + m.runs.len()) as u64;
    let ssts = m.ssts().count();
    let hwm_before = status_kib("VmHWM:");
    let opts = tidemark::ScanOptions { read_ahead_bytes, ..Default::default() };
    let (n, secs, first_peak, opened) = scan_once(&db, opts).await?;
    let hwm_after = status_kib("VmHWM:");
    assert_eq!(n, keys, "the scan returns every key");
    let (n2, secs2, peak, kept) = scan_once(&db, opts).await?;
    assert_eq!(n2, keys, "the second scan returns every key");
    let metrics = db.metrics();
    println!(
        "read-ahead {read_ahead_bytes} B: {n} keys from {} L0 SSTs + {} sorted runs ({ssts} SSTs), {secs:.2} s (SSTs closed), {secs2:.2} s (open)",
        m.l0.len(),
        m.runs.len()
    );
    println!(
        "  heap, first scan: peak +{} KiB, of which kept after it (indexes of the {} SSTs it opened) {} KiB",
        first_peak >> 10,
        metrics.open_ssts,
        opened >> 10
    );
    println!(
        "  heap, second scan (SSTs open): peak +{} KiB ({peak} B), kept {kept} B; bound: block size {block} B x {sources} sources = {} KiB, read-ahead x sources = {} KiB",
        peak >> 10,
        block * sources >> 10,
        read_ahead_bytes.max(block) * sources >> 10
    );
    println!(
        "  VmHWM before {hwm_before} KiB, after the first scan {hwm_after} KiB (+{} KiB); resident index and filter bytes of open SSTs {} KiB (scans load no filter: tests/scan_memory_bound.rs); block cache {} KiB",
        hwm_after.saturating_sub(hwm_before),
        metrics.index_filter_bytes >> 10,
        metrics.block_cache.bytes >> 10
    );
    db.close().await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--scan-only") {
        let (url, keys, read_ahead) = (&args[2], args[3].parse().unwrap_or(0), args[4].parse().unwrap_or(0));
        return Ok(scan(url, keys, read_ahead).await?);
    }
    let keys: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("tidemark-scan-memory-{}", std::process::id()));
    let url = format!("file://{}", dir.display());
    std::fs::create_dir_all(&dir)?;
    write(&url, keys).await?;
    // A fresh process: the writer's freed heap would otherwise stay resident
    // and hide what the scan adds.
    // Once a block per request, once with the default read-ahead.
    let exe = std::env::current_exe()?;
    for read_ahead in [0, tidemark::internals::iter::READ_AHEAD] {
        let args = ["--scan-only".to_string(), url.clone(), keys.to_string(), read_ahead.to_string()];
        let status = std::process::Command::new(&exe).args(args).status()?;
        if !status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("the scan process failed: {status}").into());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
