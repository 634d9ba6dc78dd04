//! A writer and a follower sharing nothing but the bucket: the writer puts
//! at a fixed rate, the follower (`DbReader`, its own store handle) polls;
//! prints how long after its acknowledgement each write became visible to
//! the follower (lag p50/p99/max) and what an idle follower costs in store
//! requests per second.
//!
//! `cargo run --release --example follower_lag -- --url file:///tmp/lag --rate 200 --seconds 10 --poll-ms 50`
//! (an `s3://` URL needs `--features aws` and the AWS_* environment.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use tidemark::{Db, DbReader, ReaderOptions, Settings};

#[derive(Parser)]
struct Args {
    /// Where the database lives (file:///abs/dir, s3://bucket/prefix, ...).
    #[arg(long, default_value = "file:///tmp/tidemark-follower-lag")]
    url: String,
    /// Writes per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// How long the writer writes.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The follower's poll interval.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// How long the idle follower is measured.
    #[arg(long, default_value_t = 5)]
    idle_seconds: u64,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> tidemark::Result<()> {
    let args = Args::parse();
    let (store, root) = tidemark::store_for_url(&args.url)?;
    let db = Db::open_with(root.clone(), store, Settings::default()).await?;
    // The follower gets a store handle of its own, as on another machine.
    let (fstore, froot) = tidemark::store_for_url(&args.url)?;
    let opts = ReaderOptions { poll_interval: None, ..Default::default() };
    let reader = DbReader::open(froot, fstore, opts).await?;

    let total = args.rate * args.seconds;
    let acked: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; total as usize]));
    let writer = {
        let acked = acked.clone();
        let db = Arc::new(db);
        let w = db.clone();
        let task: tokio::task::JoinHandle<tidemark::Result<()>> = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate.max(1)));
            let mut puts: Vec<tokio::task::JoinHandle<tidemark::Result<()>>> = Vec::new();
            for i in 0..total {
                tick.tick().await;
                let (w, acked) = (w.clone(), acked.clone());
                puts.push(tokio::spawn(async move {
                    w.put(format!("lag{i:08}"), "v").await?;
                    acked.lock().expect("lock")[i as usize] = Some(Instant::now());
                    Ok(())
                }));
            }
            for p in puts {
                p.await.expect("put task")?;
            }
            tidemark::Result::Ok(())
        });
        (db, task)
    };

    let mut seen = vec![None::<Instant>; total as usize];
    let mut next = 0u64;
    let poll = Duration::from_millis(args.poll_ms);
    while next < total {
        tokio::time::sleep(poll).await;
        reader.poll().await?;
        let now = Instant::now();
        // Writes become visible in order (the follower's view is a prefix).
        while next < total && reader.get(format!("lag{next:08}")).await?.is_some() {
            seen[next as usize] = Some(now);
            next += 1;
        }
    }
    let (db, task) = writer;
    task.await.expect("writer task")?;
    let acked = acked.lock().expect("lock").clone();
    let mut lags: Vec<Duration> = acked
        .iter()
        .zip(&seen)
        .filter_map(|(a, s)| Some(s.as_ref()?.saturating_duration_since(*a.as_ref()?)))
        .collect();
    lags.sort();
    println!(
        "{} writes at {}/s, poll every {} ms: follower lag after the ack p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lags.len(),
        args.rate,
        args.poll_ms,
        pct(&lags, 0.5).as_secs_f64() * 1e3,
        pct(&lags, 0.99).as_secs_f64() * 1e3,
        lags.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );

    let before = reader.requests();
    let idle = Duration::from_secs(args.idle_seconds);
    let start = Instant::now();
    while start.elapsed() < idle {
        tokio::time::sleep(poll).await;
        reader.poll().await?;
    }
    let spent = reader.requests().since(&before);
    let secs = idle.as_secs_f64();
    println!(
        "idle follower, poll every {} ms: {:.1} requests/s ({:.1} LIST/s, {:.1} GET/s, {:.1} PUT/s)",
        args.poll_ms,
        spent.total() as f64 / secs,
        spent.list as f64 / secs,
        (spent.get + spent.get_range) as f64 / secs,
        (spent.put + spent.put_create) as f64 / secs
    );
    reader.close().await?;
    match Arc::try_unwrap(db) {
        Ok(db) => db.close().await,
        Err(_) => Ok(()),
    }
}
