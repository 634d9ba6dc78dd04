//! `crash-check`: runs crash schedules (seeds x crash points) and reports
//! every violation of I2-I5 the oracle finds.
//!
//! The last line is always `schedules: N, violations: V, seconds: S`; with
//! `--json` a single JSON document is printed instead. Exit 0 when there are
//! no violations, 1 when there are, 2 on bad arguments.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use tidemark::internals::protocol::Protocol;
use tidemark_crash::schedule::{self, Config, Conformance, Failure};

#[derive(Parser, Debug)]
#[command(name = "crash-check", about = "Crash-consistency schedules against the tidemark engine")]
struct Args {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    seed_start: u64,
    /// Operations per writer per round.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    ops: u64,
    /// Concurrent writers per process.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=64))]
    writers: u64,
    /// Crashes per schedule.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=100))]
    rounds: u64,
    /// Crash at every store operation of round 0 (exhaustive crash points),
    /// not at one seeded point.
    #[arg(long)]
    every_op: bool,
    /// Keep the old Db running while a new one recovers (checks I5).
    #[arg(long)]
    zombies: bool,
    /// Run on the wall clock: timing differs from run to run, so a seed does
    /// not replay exactly (the default paused clock makes every seed exact).
    #[arg(long)]
    wall_clock: bool,
    /// Run over the S3 server named by TIDEMARK_S3_ENDPOINT (a new bucket,
    /// a prefix per schedule) instead of in memory; implies --wall-clock.
    #[arg(long)]
    s3: bool,
    /// Seeded store faults in every schedule (transient errors on any call,
    /// creates and conditional updates that land and report a conflict,
    /// delayed reads), zombies on even seeds; without it, seeds 3 mod 5 have
    /// them.
    #[arg(long)]
    faults: bool,
    /// Run a mutant protocol instead of the shipped one, or an engine
    /// mutant: `scan-without-snapshot` (issue 11's scan bug: a scan reads L0
    /// before the memtables, so a concurrent L0 flush hides writes),
    /// `sst-names-without-epoch` (the zombie SST bug: L0 SSTs named from the
    /// manifest), `window-never-freed` (a completed upload never frees its
    /// window slot).
    #[arg(long, value_name = "NAME")]
    mutant: Option<String>,
    /// Delay every read of the seeds that delay reads (half of them) by up to
    /// this many microseconds, drawn by seed; 0 turns read delays off.
    #[arg(long, value_name = "MICROS")]
    read_delay_us: Option<u64>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// The engine mutants `--mutant` accepts besides the protocol mutants.
const SCAN_WITHOUT_SNAPSHOT: &str = "scan-without-snapshot";
const SST_NAMES_WITHOUT_EPOCH: &str = "sst-names-without-epoch";
const WINDOW_NEVER_FREED: &str = "window-never-freed";
const ENGINE_MUTANTS: [&str; 3] = [SCAN_WITHOUT_SNAPSHOT, SST_NAMES_WITHOUT_EPOCH, WINDOW_NEVER_FREED];

fn main() -> ExitCode {
    let args = Args::parse();
    let engine_mutant = args.mutant.as_deref().filter(|m| ENGINE_MUTANTS.contains(m));
    let scan_without_snapshot = engine_mutant == Some(SCAN_WITHOUT_SNAPSHOT);
    let protocol_mutant = args.mutant.as_deref().filter(|_| engine_mutant.is_none());
    let protocol = match protocol_mutant.map(str::parse::<Protocol>).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => {
            eprintln!("crash-check: {e}");
            return ExitCode::from(2);
        }
    };
    let store = match args.s3 {
        false => None,
        true => match tidemark_crash::s3::bucket_from_env() {
            Ok(store) => Some(store),
            Err(e) => {
                eprintln!("crash-check: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let start = Instant::now();
    let mut schedules = 0u64;
    let mut failures: Vec<Failure> = Vec::new();
    let mut conformance = ConformanceTally::default();
    let mut injected = schedule::Injected::default();
    for seed in args.seed_start..args.seed_start + args.seeds {
        let mut cfg = Config::new(seed);
        if args.faults {
            cfg = cfg.with_faults();
        }
        cfg.ops = args.ops as usize;
        cfg.writers = args.writers as usize;
        cfg.rounds = args.rounds as usize;
        cfg.zombies |= args.zombies;
        cfg.protocol = protocol;
        cfg.scan_without_snapshot = scan_without_snapshot;
        cfg.sst_names_without_epoch = engine_mutant == Some(SST_NAMES_WITHOUT_EPOCH);
        cfg.window_never_freed = engine_mutant == Some(WINDOW_NEVER_FREED);
        if let (Some(us), false) = (args.read_delay_us, cfg.read_delay.is_zero()) {
            cfg.read_delay = std::time::Duration::from_micros(us);
        }
        cfg.wall_clock = args.wall_clock || args.s3;
        cfg.store = store.clone();
        if args.every_op {
            // Learn how many store operations round 0 performs, then crash at each.
            cfg.crash_op = Some(u64::MAX);
            let probe = schedule::run(&Config { rounds: 1, ..cfg.clone() });
            schedules += 1;
            conformance.add(probe.conformance);
            injected.add(&probe.injected);
            failures.extend(probe.failure);
            for k in 1..=probe.round0_ops {
                cfg.crash_op = Some(k);
                schedules += 1;
                let report = schedule::run(&cfg);
                conformance.add(report.conformance);
                injected.add(&report.injected);
                failures.extend(report.failure);
            }
        } else {
            schedules += 1;
            let report = schedule::run(&cfg);
            conformance.add(report.conformance);
            injected.add(&report.injected);
            failures.extend(report.failure);
        }
        if !args.json && std::io::stderr().is_terminal() && start.elapsed().as_secs() >= 2 {
            eprint!("\rseed {}/{}: schedules {schedules}, violations {}   ", seed - args.seed_start + 1, args.seeds, failures.len());
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let doc = serde_json::json!({
            "protocol": protocol.name(),
            "engine_mutant": engine_mutant,
            "faults": args.faults,
            "injected": injected,
            "schedules": schedules,
            "violations": failures.len(),
            "seconds": seconds,
            "conformance_replayed": conformance.replayed,
            "conformance_skipped": conformance.skipped,
            "first_violation": failures.first(),
        });
        println!("{doc}");
    } else {
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
        let mut by_invariant: std::collections::BTreeMap<&str, u64> = Default::default();
        for f in &failures {
            *by_invariant.entry(f.invariant.as_str()).or_default() += 1;
        }
        if !by_invariant.is_empty() {
            let parts: Vec<String> = by_invariant.iter().map(|(i, n)| format!("{i}: {n}")).collect();
            println!("violations by invariant: {}", parts.join(", "));
        }
        if let Some(f) = failures.first() {
            println!(
                "first violation: seed {} round {} crash at store op {}: {}: {}",
                f.seed, f.round, f.crash_op, f.invariant, f.detail
            );
            println!("reproduce: crash-check --seeds 1 --seed-start {} {}", f.seed, reproduce_flags(&args));
        }
        println!("protocol: {}", protocol.name());
        if let Some(m) = engine_mutant {
            println!("engine mutant: {m}");
        }
        println!(
            "faults injected: {} transient errors, {} ambiguous creates ({} of WALs and fences); racing openers: {} ({} fenced)",
            injected.transient, injected.ambiguous_creates, injected.ambiguous_wals, injected.racers, injected.racers_fenced
        );
        if let Some(store) = &store {
            println!("store: {store} (a prefix per schedule, wall clock)");
        }
        println!("trace conformance: {} of {schedules} schedule traces replayed through the model{}", conformance.replayed, conformance.skipped_text());
        println!("schedules: {schedules}, violations: {}, seconds: {seconds:.1}", failures.len());
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn reproduce_flags(args: &Args) -> String {
    let mut flags = format!("--ops {} --writers {} --rounds {}", args.ops, args.writers, args.rounds);
    if args.every_op {
        flags.push_str(" --every-op");
    }
    if args.zombies {
        flags.push_str(" --zombies");
    }
    if args.faults {
        flags.push_str(" --faults");
    }
    if args.s3 {
        flags.push_str(" --s3");
    } else if args.wall_clock {
        flags.push_str(" --wall-clock");
    }
    if let Some(us) = args.read_delay_us {
        flags.push_str(&format!(" --read-delay-us {us}"));
    }
    if let Some(m) = &args.mutant {
        flags.push_str(&format!(" --mutant {m}"));
    }
    flags
}

/// How many traces were replayed through the model, and why the rest were not.
#[derive(Default)]
struct ConformanceTally {
    replayed: u64,
    skipped: std::collections::BTreeMap<&'static str, u64>,
}

impl ConformanceTally {
    fn add(&mut self, c: Conformance) {
        match c {
            Conformance::Replayed => self.replayed += 1,
            Conformance::Skipped(why) => *self.skipped.entry(why).or_default() += 1,
        }
    }

    fn skipped_text(&self) -> String {
        let parts: Vec<String> = self.skipped.iter().map(|(why, n)| format!("{n} {why}")).collect();
        match parts.is_empty() {
            true => String::new(),
            false => format!(" (skipped: {})", parts.join(", ")),
        }
    }
}
