//! The engines and settings a record names, and one handle over either
//! engine so each workload is written once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::Res;

/// A WAL PUT budget as the bench names it (`tidemark::PutBudget`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Budget {
    /// WALs per median upload time.
    PerUpload(f64),
    PerSecond(f64),
    /// Dollars per million writes at this price per 1,000 PUTs.
    Usd(f64, f64),
    Unlimited,
}

impl Budget {
    /// `1.25x` (per upload time), `200/s`, `$0.1@0.00113` (dollars per
    /// million writes at a price per 1,000 PUTs) or `unlimited`.
    pub fn parse(s: &str) -> Result<Budget, String> {
        let num = |t: &str| t.parse::<f64>().map_err(|e| format!("{s}: {e}"));
        if s == "unlimited" {
            Ok(Budget::Unlimited)
        } else if let Some(x) = s.strip_suffix('x') {
            Ok(Budget::PerUpload(num(x)?))
        } else if let Some(x) = s.strip_suffix("/s") {
            Ok(Budget::PerSecond(num(x)?))
        } else if let Some((usd, price)) = s.strip_prefix('$').and_then(|r| r.split_once('@')) {
            Ok(Budget::Usd(num(usd)?, num(price)?))
        } else {
            Err(format!("{s}: a budget is Nx, N/s, $USD@PRICE or unlimited"))
        }
    }

    pub fn tidemark(self) -> tidemark::PutBudget {
        match self {
            Budget::PerUpload(k) => tidemark::PutBudget::PerUploadTime(k),
            Budget::PerSecond(r) => tidemark::PutBudget::PerSecond(r),
            Budget::Usd(usd, price) => tidemark::PutBudget::UsdPerMillionWrites { usd, usd_per_1000_puts: price },
            Budget::Unlimited => tidemark::PutBudget::Unlimited,
        }
    }

    pub fn label(self) -> String {
        match self {
            Budget::PerUpload(k) => format!("{k}x"),
            Budget::PerSecond(r) => format!("{r}/s"),
            Budget::Usd(usd, price) => format!("${usd}@{price}"),
            Budget::Unlimited => "unlimited".into(),
        }
    }
}

/// An engine and its settings, as a record names it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum Config {
    /// tidemark at its defaults.
    Tidemark,
    /// tidemark with hedging off.
    TidemarkNoHedge,
    /// tidemark with one WAL upload at a time (SlateDB's shape).
    TidemarkW1,
    /// tidemark with this WAL PUT budget (the frontier's points).
    TidemarkBudget(Budget),
    /// SlateDB with this flush interval (ms); 100 is its default.
    SlateDb(u64),
}

impl Config {
    pub fn engine(self) -> &'static str {
        match self {
            Config::Tidemark | Config::TidemarkBudget(_) => "tidemark",
            Config::TidemarkNoHedge => "tidemark-no-hedge",
            Config::TidemarkW1 => "tidemark-w1",
            Config::SlateDb(_) => "slatedb-0.18",
        }
    }

    /// What sets this engine's trade of PUTs for latency: tidemark's PUT
    /// budget, SlateDB's flush interval.
    pub fn setting(self, args: &crate::Args) -> String {
        match self {
            Config::SlateDb(ms) => format!("{ms} ms"),
            Config::TidemarkBudget(b) => b.label(),
            _ => match &args.tidemark_budget {
                Some(b) => b.label(),
                None => "default".into(),
            },
        }
    }

    pub fn is_tidemark(self) -> bool {
        !matches!(self, Config::SlateDb(_))
    }

    pub fn tidemark_settings(self, args: &crate::Args, slow_write: Option<Duration>) -> tidemark::Settings {
        let mut s = tidemark::Settings::default().with_compactor(false).with_gc_interval(Duration::ZERO);
        if let Some(w) = args.tidemark_w {
            s = s.with_max_inflight_wal_uploads(w);
        }
        if let Some(ms) = args.tidemark_gap_ms {
            s = s.with_burst_gap(Duration::from_millis(ms));
        }
        if let Some(b) = args.tidemark_budget {
            s = s.with_wal_put_budget(b.tidemark());
        }
        if let Some(b) = args.tidemark_hedge_budget {
            s = s.with_hedge(tidemark::HedgeSettings { budget: b, ..tidemark::HedgeSettings::default() });
        }
        if let Some(t) = slow_write {
            s = s.with_slow_write(tidemark::SlowWrite::After(t));
        }
        match self {
            Config::TidemarkNoHedge => s.with_hedge(tidemark::HedgeSettings::off()),
            Config::TidemarkW1 => s.with_max_inflight_wal_uploads(1),
            Config::TidemarkBudget(b) => s.with_wal_put_budget(b.tidemark()),
            _ => s,
        }
    }
}

/// Opens `config` over `store` (and, if given, WALs in `wal_store`).
pub async fn open(
    config: Config,
    store: Arc<dyn ObjectStore>,
    wal_store: Option<Arc<dyn ObjectStore>>,
    args: &crate::Args,
    slow_write: Option<Duration>,
) -> Res<Db> {
    Ok(match config {
        Config::SlateDb(ms) => {
            let settings = slatedb::config::Settings {
                compactor_options: None,
                garbage_collector_options: None,
                flush_interval: Some(Duration::from_millis(ms)),
                ..Default::default()
            };
            let mut builder = slatedb::Db::builder("bench", store).with_settings(settings);
            if let Some(w) = wal_store {
                builder = builder.with_wal_object_store(w);
            }
            Db::Slate(Arc::new(builder.build().await?))
        }
        _ => {
            let mut settings = config.tidemark_settings(args, slow_write);
            if let Some(w) = wal_store {
                settings = settings.with_wal_store(w, "bench-wal");
            }
            Db::Tidemark(Arc::new(tidemark::Db::open_with("bench", store, settings).await?))
        }
    })
}

/// Either engine, so a workload is written once: the operations a workload
/// needs, each mapped onto the engine's own API.
#[derive(Clone)]
pub enum Db {
    Tidemark(Arc<tidemark::Db>),
    Slate(Arc<slatedb::Db>),
}

impl Db {
    pub async fn put(&self, key: Bytes, value: Bytes, durable: bool) -> Res<()> {
        match self {
            Db::Tidemark(d) => Ok(d.put_with(key, value, &tidemark::WriteOptions { await_durable: durable }).await?),
            Db::Slate(d) => {
                let handle = d.put(key, value).await?;
                if durable {
                    handle.await_durable().await?;
                }
                Ok(())
            }
        }
    }

    pub async fn get(&self, key: Bytes) -> Res<Option<Bytes>> {
        match self {
            Db::Tidemark(d) => Ok(d.get(key).await?),
            Db::Slate(d) => Ok(d.get(key).await?),
        }
    }

    pub async fn flush(&self) -> Res<()> {
        match self {
            Db::Tidemark(d) => Ok(d.flush().await?),
            Db::Slate(d) => Ok(d.flush().await?),
        }
    }

    pub async fn close(&self) -> Res<()> {
        match self {
            Db::Tidemark(d) => Ok(d.close().await?),
            Db::Slate(d) => Ok(d.close().await?),
        }
    }

    pub fn hedges(&self) -> Option<u64> {
        match self {
            Db::Tidemark(d) => {
                let h = d.hedge_counts();
                Some(h.create_hedges + h.read_hedges)
            }
            Db::Slate(_) => None,
        }
    }

    /// tidemark's slow writes so far (`Db::metrics().slow_writes`).
    pub fn slow_writes(&self) -> Option<tidemark::SlowWrites> {
        match self {
            Db::Tidemark(d) => Some(d.metrics().slow_writes),
            Db::Slate(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse() {
        assert_eq!(Budget::parse("1.25x"), Ok(Budget::PerUpload(1.25)));
        assert_eq!(Budget::parse("200/s"), Ok(Budget::PerSecond(200.0)));
        assert_eq!(Budget::parse("$0.1@0.00113"), Ok(Budget::Usd(0.1, 0.00113)));
        assert_eq!(Budget::parse("unlimited"), Ok(Budget::Unlimited));
        assert!(Budget::parse("fast").is_err());
    }
}
