//! Fire-and-forget puts (`await_durable = false`) into `InMemory` from one
//! task: a quick figure for the hot path, not a benchmark against SlateDB.
//!
//! `cargo run --release --example fire_and_forget [puts]`

use std::time::Instant;

use object_store::memory::InMemory;
use tidemark::internals::sync::StdArc;
use tidemark::{Db, WriteOptions};

#[tokio::main]
async fn main() -> tidemark::Result<()> {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let db = Db::open("db", StdArc::new(InMemory::new())).await?;
    let value = bytes::Bytes::from(vec![b'v'; 100]);
    let fire = WriteOptions { await_durable: false };
    let start = Instant::now();
    for i in 0..n {
        db.put_with(format!("key{i:010}"), value.clone(), &fire).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    db.flush().await?;
    println!("{n} puts of 100-byte values in {secs:.2} s: {:.0} puts/s", n as f64 / secs);
    db.close().await
}
