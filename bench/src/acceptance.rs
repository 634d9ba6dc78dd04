//! The acceptance run (`--acceptance`): every figure the write path is held
//! to, with each ratio taken from runs of the same invocation.
//!
//! Open loop at 2,000 writes/s over `--seeds` seeds, the engines
//! alternating within each seed: on `s3-express` (tidemark's defaults,
//! SlateDB at 1, 5, 10 and 25 ms), on `s3-tail` (tidemark, SlateDB at
//! 10 ms), with tidemark's WALs on an `s3-express` store beside SSTs on an
//! `s3-tail` one; then on `s3-express` beside two busy processes, where
//! tidemark reports every write slower than 10x its idle p99 (the median
//! over the seeds above) with what it waited on.

use tidemark::testing::Latency;

use crate::bound;
use crate::engines::Config;
use crate::report::{self, Group};
use crate::{run_plans, store_distribution, Args, Plan, Record, Res, StoreKind};

const RATE: u64 = 2000;
const SLATEDB_EXPRESS_MS: [u64; 4] = [1, 5, 10, 25];
/// Busy processes beside the engines in the hog phase.
const HOGS: u32 = 2;

pub fn run(args: &Args, out: &mut Option<std::fs::File>, records: &mut Vec<Record>) -> Res<()> {
    let seconds = args.seconds.unwrap_or(30);
    let seeds: Vec<u64> = args.seed_list().collect();
    let (_, drawn_p99, _) = store_distribution(StoreKind::S3Express, args);
    let single_p99 = crate::timed_put_p99(StoreKind::S3Express, args)?;
    println!("store S3Express: one PUT p99 {single_p99:.1} ms timed through the store (2,000 PUTs), {drawn_p99:.1} ms drawn (100,000 draws)");
    let mut idle = Vec::new();
    for &seed in &seeds {
        idle.push(Plan::open_loop(StoreKind::S3Express, Config::Tidemark, RATE, seconds, seed));
        for ms in SLATEDB_EXPRESS_MS {
            idle.push(Plan::open_loop(StoreKind::S3Express, Config::SlateDb(ms), RATE, seconds, seed));
        }
        idle.push(Plan::open_loop(StoreKind::S3Tail, Config::Tidemark, RATE, seconds, seed));
        idle.push(Plan::open_loop(StoreKind::S3Tail, Config::SlateDb(10), RATE, seconds, seed));
        let mut split = Plan::open_loop(StoreKind::S3Tail, Config::Tidemark, RATE, seconds, seed);
        split.wal_store = Some(StoreKind::S3Express);
        idle.push(split);
    }
    run_plans(&idle, args, out, records)?;
    let express = |engine: &str, setting: &str| find(records, StoreKind::S3Express, None, 0, engine, setting);
    let idle_p99 = express("tidemark", "default").and_then(|g| g.median(|r| r.p99_ms)).ok_or("no idle tidemark run")?;
    let threshold_ms = 10.0 * idle_p99;
    let mut hog = Vec::new();
    for &seed in &seeds {
        let mut t = Plan::open_loop(StoreKind::S3Express, Config::Tidemark, RATE, seconds, seed);
        (t.hog, t.slow_write_ms) = (HOGS, Some(threshold_ms));
        let mut s = Plan::open_loop(StoreKind::S3Express, Config::SlateDb(10), RATE, seconds, seed);
        s.hog = HOGS;
        hog.extend([t, s]);
    }
    run_plans(&hog, args, out, records)?;
    report::print_table(records);
    report::print_spread(records);
    report::print_ratios(records);
    print_checks(records, (single_p99, drawn_p99), idle_p99, threshold_ms, (crate::latency_of(StoreKind::S3Express, args), seeds.clone()), seconds);
    Ok(())
}

fn find<'a>(records: &'a [Record], store: StoreKind, wal: Option<StoreKind>, hog: u32, engine: &str, setting: &str) -> Option<Group<'a>> {
    // The group borrows only `records`.
    let records: Vec<&Record> = records
        .iter()
        .filter(|r| r.store == store && r.wal_store == wal && r.hog == hog && r.engine == engine && r.setting == setting && r.rate == Some(RATE))
        .collect();
    (!records.is_empty()).then_some(Group { records })
}

struct Check {
    name: String,
    target: String,
    measured: String,
    pass: bool,
}

/// `single_p99`: one PUT's p99 timed through the store, and as drawn from
/// its distribution (which no request through a timer can reach).
///
/// `floor`: the store's latency and the seeds, for the ideal engine's p99.
fn print_checks(records: &[Record], (single_p99, drawn_p99): (f64, f64), idle_p99: f64, threshold_ms: f64, floor: (Latency, Vec<u64>), seconds: u64) {
    let mut checks = Vec::new();
    let p99 = |r: &Record| r.p99_ms;
    let express = |engine: &str, setting: &str| find(records, StoreKind::S3Express, None, 0, engine, setting);
    let (Some(t), Some(tail_t), Some(tail_s)) = (
        express("tidemark", "default"),
        find(records, StoreKind::S3Tail, None, 0, "tidemark", "default"),
        find(records, StoreKind::S3Tail, None, 0, "slatedb-0.18", "10 ms"),
    ) else {
        println!("acceptance: some runs are missing");
        return;
    };
    let t_p99 = t.median(p99).unwrap_or(f64::NAN);
    checks.push(Check {
        name: "s3-express p99 / one PUT's p99 (timed through the store)".into(),
        target: "<= 1.5".into(),
        measured: format!("{t_p99:.1} / {single_p99:.1} ms = {:.2}", t_p99 / single_p99),
        pass: t_p99 <= 1.5 * single_p99,
    });
    checks.push(Check {
        name: "s3-express p99 / one PUT's p99 (drawn, no timer)".into(),
        target: "(shown)".into(),
        measured: format!("{t_p99:.1} / {drawn_p99:.1} ms = {:.2}", t_p99 / drawn_p99),
        pass: true,
    });
    let best = SLATEDB_EXPRESS_MS
        .iter()
        .filter_map(|ms| express("slatedb-0.18", &format!("{ms} ms")).map(|g| (*ms, g)))
        .min_by(|a, b| a.1.median(p99).unwrap_or(f64::MAX).total_cmp(&b.1.median(p99).unwrap_or(f64::MAX)));
    if let Some((ms, s)) = best {
        let (s_p99, s_puts, t_puts) = (s.median(p99).unwrap_or(f64::NAN), s.median(|r| Some(r.puts_per_sec)).unwrap_or(f64::NAN), t.median(|r| Some(r.puts_per_sec)).unwrap_or(f64::NAN));
        checks.push(Check {
            name: format!("s3-express p99 / SlateDB's best ({ms} ms)"),
            target: "<= 0.7".into(),
            measured: format!("{t_p99:.1} / {s_p99:.1} ms = {:.2}", t_p99 / s_p99),
            pass: t_p99 <= 0.7 * s_p99,
        });
        checks.push(Check {
            name: format!("s3-express PUT/s / SlateDB at {ms} ms"),
            target: "<= 1.5".into(),
            measured: format!("{t_puts:.1} / {s_puts:.1} = {:.2}", t_puts / s_puts),
            pass: t_puts <= 1.5 * s_puts,
        });
        // The floor under both targets at once: an ideal engine's p99 at
        // the PUT rate the second target allows, from the same seeds; and
        // how far tidemark is above the floor at its own PUT rate.
        let (latency, seeds) = floor;
        for (carry, timer, how) in bound::FLOORS {
            let points = bound::frontier(&latency, &seeds, RATE, seconds, carry, timer);
            if let Some(p) = bound::best_under(&points, 1.5 * s_puts) {
                checks.push(Check {
                    name: format!("floor: an ideal engine ({how}, no CPU) at 1.5x SlateDB's PUTs, p99 / SlateDB's best"),
                    target: "(shown)".into(),
                    measured: format!("{:.1} / {s_p99:.1} ms = {:.2} ({})", p.p99_ms, p.p99_ms / s_p99, bound::describe(&p)),
                    pass: true,
                });
            }
            if let (Some(p), false, true) = (bound::best_under(&points, t_puts), carry, timer) {
                checks.push(Check {
                    name: format!("s3-express p99 / the floor ({how}) at tidemark's PUT rate"),
                    target: "(shown)".into(),
                    measured: format!("{t_p99:.1} / {:.1} ms = {:.2} ({})", p.p99_ms, t_p99 / p.p99_ms, bound::describe(&p)),
                    pass: true,
                });
            }
        }
    }
    let worst = t.max(p99).unwrap_or(f64::NAN);
    checks.push(Check {
        name: "s3-express worst seed's p99 / median seed's".into(),
        target: "<= 2".into(),
        measured: format!("{worst:.1} / {t_p99:.1} ms = {:.2}", worst / t_p99),
        pass: worst <= 2.0 * t_p99,
    });
    let ratio = |f: fn(&Record) -> Option<f64>| tail_t.median(f).unwrap_or(f64::NAN) / tail_s.median(f).unwrap_or(f64::NAN);
    for (name, f, limit) in [
        ("p50", (|r: &Record| r.p50_ms) as fn(&Record) -> Option<f64>, 1.0),
        ("p99", |r: &Record| r.p99_ms, 0.35),
        ("p999", |r: &Record| r.p999_ms, 0.35),
        ("PUT/s", |r: &Record| Some(r.puts_per_sec), 1.5),
    ] {
        checks.push(Check {
            name: format!("s3-tail {name} / SlateDB at 10 ms"),
            target: format!("<= {limit}"),
            measured: format!("{:.1} / {:.1} = {:.2}", tail_t.median(f).unwrap_or(f64::NAN), tail_s.median(f).unwrap_or(f64::NAN), ratio(f)),
            pass: ratio(f) <= limit,
        });
    }
    if let Some(split) = find(records, StoreKind::S3Tail, Some(StoreKind::S3Express), 0, "tidemark", "default") {
        let sp = split.median(p99).unwrap_or(f64::NAN);
        checks.push(Check {
            name: "WALs on s3-express, SSTs on s3-tail: p99 / all on s3-express".into(),
            target: "<= 1.2".into(),
            measured: format!("{sp:.1} / {t_p99:.1} ms = {:.2}", sp / t_p99),
            pass: sp <= 1.2 * t_p99,
        });
    }
    for ms in SLATEDB_EXPRESS_MS {
        if let Some(s) = express("slatedb-0.18", &format!("{ms} ms")) {
            let (a, b) = (t.median(|r| r.cpu_us_per_write).unwrap_or(f64::NAN), s.median(|r| r.cpu_us_per_write).unwrap_or(f64::NAN));
            checks.push(Check {
                name: format!("s3-express CPU per durable write / SlateDB at {ms} ms"),
                target: "<= 1".into(),
                measured: format!("{a:.1} / {b:.1} µs = {:.2}", a / b),
                pass: a <= b,
            });
        }
    }
    if let (Some(th), Some(sh)) = (
        find(records, StoreKind::S3Express, None, HOGS, "tidemark", "default"),
        find(records, StoreKind::S3Express, None, HOGS, "slatedb-0.18", "10 ms"),
    ) {
        let (tw, sw) = (th.max(p99).unwrap_or(f64::NAN), sh.max(p99).unwrap_or(f64::NAN));
        checks.push(Check {
            name: "CPU hog, s3-express: worst seed's p99 / SlateDB's (10 ms)".into(),
            target: "<= 1".into(),
            measured: format!("{tw:.1} / {sw:.1} ms = {:.2}", tw / sw),
            pass: tw <= sw,
        });
        let over: u64 = th.records.iter().filter_map(|r| r.over_in_engine).sum();
        let logged: u64 = th.records.iter().filter_map(|r| r.slow_writes).sum();
        let late: u64 = th.records.iter().filter_map(|r| r.over_client_late).sum();
        let unexplained = th.records.iter().map(|r| r.over_in_engine.unwrap_or(0).saturating_sub(r.slow_writes.unwrap_or(0))).sum::<u64>();
        let causes = th.records.iter().map(|r| report::slow(r)).collect::<Vec<_>>().join("; ");
        checks.push(Check {
            name: format!("CPU hog: writes over 10x the idle p99 ({threshold_ms:.0} ms = 10 x {idle_p99:.1}) without a logged cause"),
            target: "0".into(),
            measured: format!(
                "{unexplained} ({over} over it inside put, {logged} logged: {causes}; {late} more only because the client's task started late)"
            ),
            pass: unexplained == 0,
        });
    }
    println!();
    println!("| acceptance | target | measured (medians over seeds) | met |");
    println!("|---|---|---|---|");
    for c in checks {
        let met = match (c.target.as_str(), c.pass) {
            ("(shown)", _) => "—",
            (_, true) => "yes",
            (_, false) => "**no**",
        };
        println!("| {} | {} | {} | {met} |", c.name, c.target, c.measured);
    }
}
