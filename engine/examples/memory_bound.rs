//! Writes 1 GiB with `await_durable = false` to a local directory and
//! reports peak resident memory, to check that backpressure bounds memory.
//!
//! `cargo run --release --example memory_bound [GiB]`

use std::time::Instant;

use tidemark::{Db, Settings, WriteOptions};

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

#[tokio::main]
async fn main() -> tidemark::Result<()> {
    let gib: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let dir = std::env::temp_dir().join(format!("tidemark-memory-bound-{}", std::process::id()));
    let url = format!("file://{}", dir.display());
    let settings = Settings::default();
    let bound = settings.max_unflushed_bytes;
    let db = Db::open_url(&url, settings).await?;
    let value = vec![b'v'; 1024];
    let fire = WriteOptions { await_durable: false };
    let total = gib << 30;
    let start = Instant::now();
    let mut written = 0u64;
    let mut i = 0u64;
    while written < total {
        db.put_with(format!("key{i:012}"), value.clone(), &fire).await?;
        written += 1024 + 15;
        i += 1;
    }
    db.flush().await?;
    let secs = start.elapsed().as_secs_f64();
    db.close().await?;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "wrote {} MiB in {i} puts ({:.0} puts/s, {:.1} s); max_unflushed_bytes = {} MiB; peak RSS = {} MiB",
        written >> 20,
        i as f64 / secs,
        secs,
        bound >> 20,
        peak_rss_mib()
    );
    Ok(())
}
