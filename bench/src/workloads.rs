//! The workloads, each over [`Db`] so both engines run the same code.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;

use crate::engines::Db;
use crate::Res;

pub fn key(prefix: &str, i: u64) -> Bytes {
    Bytes::from(format!("{prefix}{i:010}"))
}

/// What a workload measured, before the store's counts are added.
pub struct Measured {
    pub ops: u64,
    pub writes: u64,
    pub elapsed: Duration,
    pub latency_us: Option<Histogram<u64>>,
    /// Open loop, with a slow-write threshold: writes whose time inside
    /// `put` was over it (the engine should have reported each), and
    /// writes over it only because the client started them late (the
    /// spawned task ran late: the host's CPU, not the engine).
    pub over: Option<Over>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Over {
    pub in_engine: u64,
    pub client_late: u64,
}

pub async fn closed_loop(db: &Db, writers: u64, run_for: Duration, value: Bytes) -> Res<Measured> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db = db.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            let mut i = 0;
            while start.elapsed() < run_for {
                let t = Instant::now();
                db.put(key(&format!("w{w:03}-"), i), value.clone(), true).await?;
                h.record(t.elapsed().as_micros() as u64)?;
                i += 1;
            }
            Res::Ok(h)
        }));
    }
    let mut latency = Histogram::<u64>::new(3)?;
    for t in tasks {
        latency.add(t.await??)?;
    }
    let ops = latency.len();
    Ok(Measured { ops, writes: ops, elapsed: start.elapsed(), latency_us: Some(latency), over: None })
}

/// Durable writes arriving at `rate` a second whatever the engine does;
/// each one's latency counts from its scheduled arrival, so a stall shows
/// as the queue it builds. With `threshold`, writes over it are split into
/// those slow inside `put` and those whose task only started late.
pub async fn open_loop(db: &Db, rate: u64, run_for: Duration, value: Bytes, threshold: Option<Duration>) -> Res<Measured> {
    let n = rate * run_for.as_secs();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Res<(u64, u64)>>();
    for i in 0..n {
        let at = start + interval * i as u32;
        tokio::time::sleep_until(at).await;
        let (db, value, tx) = (db.clone(), value.clone(), tx.clone());
        tokio::spawn(async move {
            let issued = tokio::time::Instant::now();
            let r = db.put(key("open-", i), value, true).await.map(|()| {
                let done = tokio::time::Instant::now();
                ((done - at).as_micros() as u64, (done - issued).as_micros() as u64)
            });
            let _ = tx.send(r);
        });
    }
    drop(tx);
    let mut latency = Histogram::<u64>::new(3)?;
    let mut over = Over::default();
    while let Some(r) = rx.recv().await {
        let (total, inside) = r?;
        latency.record(total)?;
        if let Some(t) = threshold {
            let t = t.as_micros() as u64;
            if inside > t {
                over.in_engine += 1;
            } else if total > t {
                over.client_late += 1;
            }
        }
    }
    Ok(Measured { ops: n, writes: n, elapsed: start.elapsed(), latency_us: Some(latency), over: threshold.map(|_| over) })
}

pub async fn fire_and_forget(db: &Db, n: u64, value: Bytes) -> Res<Measured> {
    let start = Instant::now();
    for i in 0..n {
        db.put(key("fire-", i), value.clone(), false).await?;
    }
    db.flush().await?;
    Ok(Measured { ops: n, writes: n, elapsed: start.elapsed(), latency_us: None, over: None })
}

/// Reads of keys that exist, after the data was flushed and the engine
/// reopened (so reads go to SSTs): one pass cold, one warm.
pub async fn reads(db: &Db, n: u64) -> Res<Measured> {
    let mut h = Histogram::<u64>::new(3)?;
    let start = Instant::now();
    for i in 0..n {
        let k = key("fire-", i.wrapping_mul(2_654_435_761) % n);
        let t = Instant::now();
        if db.get(k.clone()).await?.is_none() {
            return Err(format!("{k:?} was written but is not found").into());
        }
        h.record(t.elapsed().as_micros() as u64)?;
    }
    Ok(Measured { ops: n, writes: 0, elapsed: start.elapsed(), latency_us: Some(h), over: None })
}

/// CPU seconds this process has used (user and system, every thread), from
/// `/proc/self/stat` (Linux; ticks of 10 ms).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    const TICKS_PER_SECOND: f64 = 100.0;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// The peak resident set size of this process (Linux `VmHWM`): in a child
/// that ran one plan, that plan's peak.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
