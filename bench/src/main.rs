//! `compare`: tidemark against SlateDB 0.18 in one run, on the same kind of
//! object store: in-memory objects behind object_store's `ThrottledStore`,
//! which adds a fixed latency to every request, as a remote store would.
//!
//! Each engine gets a fresh store with the same throttle. Every figure in
//! the table comes from this one run, and each ratio is tidemark / SlateDB.
//! SlateDB's compactor and garbage collector are switched off because
//! tidemark has neither yet, so both engines do the same work. Everything
//! else is at each engine's defaults. SlateDB runs twice: once at its
//! default `flush_interval` (100 ms), and once at tidemark's (5 ms).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use object_store::memory::InMemory;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use object_store::ObjectStore;

#[derive(Parser, Debug)]
#[command(name = "compare", about = "tidemark vs SlateDB on a throttled object store")]
struct Args {
    /// Latency added to every PUT (milliseconds).
    #[arg(long, default_value_t = 10)]
    put_latency_ms: u64,
    /// Latency added to every GET and LIST (milliseconds).
    #[arg(long, default_value_t = 5)]
    get_latency_ms: u64,
    /// Fire-and-forget puts from one task.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    puts: u64,
    /// Concurrent writers that await durability.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    writers: u64,
    /// Durable puts per writer.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..))]
    durable_puts: u64,
    /// Point reads of existing keys after the load.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    gets: u64,
    /// tidemark's W (`max_inflight_wal_uploads`); its default when not given.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    tidemark_inflight: Option<u64>,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    value_bytes: u64,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The operations a scenario needs, for either engine.
trait Engine: Send + Sync + 'static {
    fn put(&self, key: Bytes, value: Bytes, durable: bool) -> impl Future<Output = Res<()>> + Send;
    fn get(&self, key: Bytes) -> impl Future<Output = Res<Option<Bytes>>> + Send;
    fn flush(&self) -> impl Future<Output = Res<()>> + Send;
    fn close(&self) -> impl Future<Output = Res<()>> + Send;
}

impl Engine for tidemark::Db {
    async fn put(&self, key: Bytes, value: Bytes, durable: bool) -> Res<()> {
        Ok(self.put_with(key, value, &tidemark::WriteOptions { await_durable: durable }).await?)
    }
    async fn get(&self, key: Bytes) -> Res<Option<Bytes>> {
        Ok(tidemark::Db::get(self, key).await?)
    }
    async fn flush(&self) -> Res<()> {
        Ok(tidemark::Db::flush(self).await?)
    }
    async fn close(&self) -> Res<()> {
        Ok(tidemark::Db::close(self).await?)
    }
}

impl Engine for slatedb::Db {
    async fn put(&self, key: Bytes, value: Bytes, durable: bool) -> Res<()> {
        let handle = slatedb::Db::put(self, key, value).await?;
        if durable {
            handle.await_durable().await?;
        }
        Ok(())
    }
    async fn get(&self, key: Bytes) -> Res<Option<Bytes>> {
        Ok(slatedb::Db::get(self, key).await?)
    }
    async fn flush(&self) -> Res<()> {
        Ok(slatedb::Db::flush(self).await?)
    }
    async fn close(&self) -> Res<()> {
        Ok(slatedb::Db::close(self).await?)
    }
}

fn store(args: &Args) -> Arc<dyn ObjectStore> {
    let config = ThrottleConfig {
        wait_put_per_call: Duration::from_millis(args.put_latency_ms),
        wait_get_per_call: Duration::from_millis(args.get_latency_ms),
        wait_list_per_call: Duration::from_millis(args.get_latency_ms),
        ..ThrottleConfig::default()
    };
    Arc::new(ThrottledStore::new(InMemory::new(), config))
}

fn key(i: u64) -> Bytes {
    Bytes::from(format!("key{i:010}"))
}

/// One engine's figures.
#[derive(Default, Clone, Copy)]
struct Figures {
    fire_puts_per_s: f64,
    durable_puts_per_s: f64,
    durable_p50_ms: f64,
    durable_p99_ms: f64,
    gets_per_s: f64,
    get_p50_us: f64,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn run<E: Engine>(db: Arc<E>, args: &Args) -> Res<Figures> {
    let mut f = Figures::default();
    let value = Bytes::from(vec![b'v'; args.value_bytes as usize]);

    // Fire-and-forget: one task, then one flush to make it all durable.
    let start = Instant::now();
    for i in 0..args.puts {
        db.put(key(i), value.clone(), false).await?;
    }
    db.flush().await?;
    f.fire_puts_per_s = args.puts as f64 / start.elapsed().as_secs_f64();

    // Durable: concurrent writers, each put awaited until durable.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.writers {
        let db = db.clone();
        let value = value.clone();
        let n = args.durable_puts;
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            for i in 0..n {
                let t = Instant::now();
                db.put(Bytes::from(format!("durable{w:04}-{i:06}")), value.clone(), true).await?;
                h.record(t.elapsed().as_micros() as u64)?;
            }
            Res::Ok(h)
        }));
    }
    let mut latency = Histogram::<u64>::new(3)?;
    for t in tasks {
        latency.add(t.await??)?;
    }
    f.durable_puts_per_s = (args.writers * args.durable_puts) as f64 / start.elapsed().as_secs_f64();
    f.durable_p50_ms = ms(&latency, 0.5);
    f.durable_p99_ms = ms(&latency, 0.99);

    // Point reads of keys written above, in a scattered order.
    let mut latency = Histogram::<u64>::new(3)?;
    let start = Instant::now();
    for i in 0..args.gets {
        let k = key(i.wrapping_mul(2_654_435_761) % args.puts);
        let t = Instant::now();
        if db.get(k.clone()).await?.is_none() {
            return Err(format!("{k:?} was written but is not found").into());
        }
        latency.record(t.elapsed().as_nanos() as u64)?;
    }
    f.gets_per_s = args.gets as f64 / start.elapsed().as_secs_f64();
    f.get_p50_us = latency.value_at_quantile(0.5) as f64 / 1000.0;
    db.close().await?;
    Ok(f)
}

async fn slatedb(args: &Args, flush_interval: Option<Duration>) -> Res<Figures> {
    let mut settings = slatedb::config::Settings { compactor_options: None, garbage_collector_options: None, ..Default::default() };
    if let Some(d) = flush_interval {
        settings.flush_interval = Some(d);
    }
    let db = slatedb::Db::builder("bench", store(args)).with_settings(settings).build().await?;
    run(Arc::new(db), args).await
}

#[tokio::main]
async fn main() -> Res<()> {
    let args = Args::parse();
    println!(
        "store: InMemory behind ThrottledStore, PUT +{} ms, GET/LIST +{} ms; values {} B",
        args.put_latency_ms, args.get_latency_ms, args.value_bytes
    );
    let mut settings = tidemark::Settings::default();
    if let Some(w) = args.tidemark_inflight {
        settings = settings.with_max_inflight_wal_uploads(w);
    }
    println!("tidemark: W = {}, flush_interval = {:?}", settings.max_inflight_wal_uploads, settings.flush_interval);
    let t = run(Arc::new(tidemark::Db::open_with("bench", store(&args), settings).await?), &args).await?;
    let s = slatedb(&args, None).await?;
    let s5 = slatedb(&args, Some(Duration::from_millis(5))).await?;
    println!();
    println!("| measure | tidemark | SlateDB 0.18 | ratio | SlateDB, flush_interval 5 ms | ratio |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, get: fn(&Figures) -> f64, unit: &str| {
        let (a, b, c) = (get(&t), get(&s), get(&s5));
        println!("| {name} | {a:.2} {unit} | {b:.2} {unit} | {:.2} | {c:.2} {unit} | {:.2} |", a / b, a / c);
    };
    row(&format!("fire-and-forget puts ({} from one task, then flush)", args.puts), |f| f.fire_puts_per_s, "/s");
    row(
        &format!("durable puts ({} writers x {})", args.writers, args.durable_puts),
        |f| f.durable_puts_per_s,
        "/s",
    );
    row("durable put latency p50", |f| f.durable_p50_ms, "ms");
    row("durable put latency p99", |f| f.durable_p99_ms, "ms");
    row(&format!("point reads ({} from one task)", args.gets), |f| f.gets_per_s, "/s");
    row("point read latency p50", |f| f.get_p50_us, "us");
    println!();
    println!("ratio = tidemark / SlateDB: above 1 is better for tidemark in rates, worse in latencies.");
    Ok(())
}
