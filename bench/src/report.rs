//! Tables of the records: every run, the spread over seeds, and ratios of
//! tidemark to SlateDB.

use crate::{Record, StoreKind};

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn store_name(r: &Record) -> String {
    match r.wal_store {
        Some(w) => format!("{:?} (WALs on {w:?})", r.store),
        None => format!("{:?}", r.store),
    }
}

pub fn print_table(records: &[Record]) {
    println!("| workload | store | hog | engine | setting | seed | writers | rate | ops/s | p50 ms | p99 ms | p999 ms | max ms | PUT/s | GET/s | req/op | $/M writes | CPU µs/write | peak MB | stragglers | hedges | slow writes |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in records {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.1} | {:.1} | {:.3} | {} | {} | {} | {} | {} | {} |",
            r.workload,
            store_name(r),
            r.hog,
            r.engine,
            r.setting,
            r.seed,
            r.writers.map_or("-".into(), |w| w.to_string()),
            r.rate.map_or("-".into(), |w| w.to_string()),
            r.ops_per_sec,
            opt(r.p50_ms),
            opt(r.p99_ms),
            opt(r.p999_ms),
            opt(r.max_ms),
            r.puts_per_sec,
            r.gets_per_sec,
            r.requests_per_op,
            r.usd_per_million_writes.map_or("-".into(), |v| format!("{v:.3}")),
            opt(r.cpu_us_per_write),
            opt(r.peak_rss_mb),
            r.stragglers_met,
            r.hedges.map_or("-".into(), |h| h.to_string()),
            slow(r),
        );
    }
}

/// `n (cause n, ...)` of a tidemark record, `-` for SlateDB.
pub fn slow(r: &Record) -> String {
    match r.slow_writes {
        None => "-".into(),
        Some(0) => "0".into(),
        Some(n) => {
            let causes: Vec<String> = r.slow_causes.iter().map(|(c, k)| format!("{c} {k}")).collect();
            format!("{n} ({})", causes.join(", "))
        }
    }
}

/// The records of one group: the same workload, store, engine, setting,
/// rate, writers and hog, over its seeds.
#[derive(Clone, Debug)]
pub struct Group<'a> {
    pub records: Vec<&'a Record>,
}

impl<'a> Group<'a> {
    pub fn first(&self) -> &'a Record {
        self.records[0]
    }

    /// The median of `f` over the seeds (the lower middle of an even count).
    pub fn median(&self, f: impl Fn(&Record) -> Option<f64>) -> Option<f64> {
        let mut v: Vec<f64> = self.records.iter().filter_map(|r| f(r)).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[(v.len() - 1) / 2])
    }

    pub fn min(&self, f: impl Fn(&Record) -> Option<f64>) -> Option<f64> {
        self.records.iter().filter_map(|r| f(r)).reduce(f64::min)
    }

    pub fn max(&self, f: impl Fn(&Record) -> Option<f64>) -> Option<f64> {
        self.records.iter().filter_map(|r| f(r)).reduce(f64::max)
    }

    /// `median [min–max]`.
    pub fn spread(&self, f: impl Fn(&Record) -> Option<f64> + Copy) -> String {
        match (self.median(f), self.min(f), self.max(f)) {
            (Some(m), Some(lo), Some(hi)) if self.records.len() > 1 => format!("{m:.1} [{lo:.1}–{hi:.1}]"),
            (Some(m), ..) => format!("{m:.1}"),
            _ => "-".into(),
        }
    }

    /// The record of the median seed by p99 (for plots).
    pub fn median_record(&self) -> &'a Record {
        let mut v = self.records.clone();
        v.sort_by(|a, b| a.p99_ms.unwrap_or(0.0).total_cmp(&b.p99_ms.unwrap_or(0.0)));
        v[(v.len() - 1) / 2]
    }

    pub fn slow_total(&self) -> Option<u64> {
        self.records.iter().map(|r| r.slow_writes).sum()
    }
}

fn same_group(a: &Record, b: &Record) -> bool {
    a.workload == b.workload
        && a.store == b.store
        && a.wal_store == b.wal_store
        && a.hog == b.hog
        && a.engine == b.engine
        && a.setting == b.setting
        && a.rate == b.rate
        && a.writers == b.writers
}

/// The records grouped over their seeds, in first-seen order.
pub fn groups(records: &[Record]) -> Vec<Group<'_>> {
    let mut out: Vec<Group> = Vec::new();
    for r in records {
        match out.iter_mut().find(|g| same_group(g.first(), r)) {
            Some(g) => g.records.push(r),
            None => out.push(Group { records: vec![r] }),
        }
    }
    out
}

/// One row per group of the open loops: the median over the seeds and the
/// range `[min–max]`.
pub fn print_spread(records: &[Record]) {
    let gs: Vec<Group> = groups(records).into_iter().filter(|g| g.first().rate.is_some()).collect();
    if gs.is_empty() {
        return;
    }
    println!();
    println!("Over seeds: median [min–max]");
    println!();
    println!("| workload | store | hog | engine | setting | rate | seeds | p50 ms | p99 ms | p999 ms | max ms | PUT/s | CPU µs/write | slow writes |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for g in gs {
        let r = g.first();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.workload,
            store_name(r),
            r.hog,
            r.engine,
            r.setting,
            r.rate.map_or("-".into(), |w| w.to_string()),
            g.records.len(),
            g.spread(|r| r.p50_ms),
            g.spread(|r| r.p99_ms),
            g.spread(|r| r.p999_ms),
            g.spread(|r| r.max_ms),
            g.spread(|r| Some(r.puts_per_sec)),
            g.spread(|r| r.cpu_us_per_write),
            g.slow_total().map_or("-".into(), |n| n.to_string()),
        );
    }
}

/// tidemark (each of its settings) / SlateDB at 10 ms for each group of one
/// workload, store, writers and rate: medians over the seeds.
pub fn print_ratios(records: &[Record]) {
    let gs = groups(records);
    println!();
    println!("| workload | store | hog | tidemark setting | writers | rate | p50 ratio | p99 ratio | p999 ratio | PUT/s ratio | CPU ratio |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for t in gs.iter().filter(|g| g.first().engine.starts_with("tidemark") && g.first().workload != "frontier") {
        let tr = t.first();
        let Some(s) = gs.iter().find(|s| {
            let sr = s.first();
            sr.engine == "slatedb-0.18"
                && sr.setting == "10 ms"
                && sr.workload == tr.workload
                && sr.store == tr.store
                && sr.wal_store == tr.wal_store
                && sr.hog == tr.hog
                && sr.writers == tr.writers
                && sr.rate == tr.rate
        }) else {
            continue;
        };
        let ratio = |f: fn(&Record) -> Option<f64>| match (t.median(f), s.median(f)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {} | {} {} | {} | {} | {} | {} | {} | {} | {} |",
            tr.workload,
            store_name(tr),
            tr.hog,
            tr.engine,
            tr.setting,
            tr.writers.map_or("-".into(), |w| w.to_string()),
            tr.rate.map_or("-".into(), |w| w.to_string()),
            ratio(|r| r.p50_ms),
            ratio(|r| r.p99_ms),
            ratio(|r| r.p999_ms),
            ratio(|r| Some(r.puts_per_sec)),
            ratio(|r| r.cpu_us_per_write),
        );
    }
    println!("ratio = tidemark / SlateDB 0.18 at a 10 ms flush interval (medians over seeds): below 1 is better for tidemark.");
}

/// Whether `r` is an open loop at 2,000/s on `store` without hogs or a WAL store.
pub fn plain(r: &Record, store: StoreKind) -> bool {
    r.rate == Some(2000) && r.store == store && r.wal_store.is_none() && r.hog == 0
}
