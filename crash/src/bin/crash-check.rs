//! `crash-check`: runs crash schedules (seeds x crash points) and reports
//! every violation of I2-I5 the oracle finds.
//!
//! The last line is always `schedules: N, violations: V, seconds: S`; with
//! `--json` a single JSON document is printed instead. Exit 0 when there are
//! no violations, 1 when there are, 2 on bad arguments.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

use clap::Parser;
use tidemark::internals::protocol::Protocol;
use tidemark_crash::schedule::{self, CompactorPlace, Config, Conformance, EngineMutant, Failure, GcAge};

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
    /// Compaction, GC, a read-only handle and long-lived views in every
    /// schedule, zombies on a third of the seeds, held listings and hedges
    /// on half (without it, seeds 2 mod 5 compact and collect).
    #[arg(long)]
    lifecycle: bool,
    /// `gc_min_age` of the schedules that collect, in milliseconds of the
    /// paused clock, instead of the seed's choice (0, or 40 s with the clock
    /// jumping and the store resting between processes).
    #[arg(long, value_name = "MS")]
    gc_min_age_ms: Option<u64>,
    /// Hedged WAL creates and reads with a 0.5-2 ms threshold in every
    /// schedule (without it, a quarter of the seeds, half with --lifecycle).
    #[arg(long)]
    hedges: bool,
    /// WALs and fences in a store of their own (`Settings::wal_store`),
    /// SSTs and manifests in the main one: only where WALs live changes, so
    /// every schedule and mutant behaves as with one store.
    #[arg(long)]
    wal_store: bool,
    /// Where the schedules that compact run their compactor: `writer` (its
    /// own), `standalone` (`tidemark::compact` runs beside writers whose
    /// compactor is off) or `both` (the standalone one fences the writer's);
    /// without it, a third of the seeds each.
    #[arg(long, value_name = "PLACE", value_parser = CompactorPlace::from_str)]
    compactor: Option<CompactorPlace>,
    /// Run a mutant protocol instead of the shipped one, or an engine
    /// mutant (a bug planted outside the protocol core):
    /// `scan-without-snapshot` (a scan reads L0 before the memtables),
    /// `sst-names-without-epoch` (L0 SSTs named from the manifest),
    /// `window-never-freed` (a completed upload never frees its window slot),
    /// `compact-before-upload` (a compaction recorded before its outputs
    /// exist), `tombstones-above-bottom` (every compaction drops tombstones),
    /// `hedge-exists-is-ours` (a hedged create's `AlreadyExists` taken as ours),
    /// `gc-forgets-retired` (GC plans without the retired SSTs),
    /// `gc-forgets-checkpoints` (GC plans without the checkpoints),
    /// `pin-ignores-held-views` (the writer's pin ignores held views),
    /// `follower-skips-wals` (a follower's poll skips the WALs past its
    /// manifest), `fenced-compactor-holds-l0` (a writer waits on its fenced
    /// compactor), `compaction-drops-operands` (a compaction keeps only the
    /// newest input's version of a key), `expired-values-vanish` (a
    /// compaction above the bottom run drops an expired value, so an older
    /// one comes back).
    #[arg(long, value_name = "NAME")]
    mutant: Option<String>,
    /// Delay every read of the seeds that delay reads (half of them) by up to
    /// this many microseconds, drawn by seed; 0 turns read delays off.
    #[arg(long, value_name = "MICROS")]
    read_delay_us: Option<u64>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// Print every violation (seed, round, invariant), not only the first.
    #[arg(long)]
    list: bool,
    /// Fail if more schedule traces than this are skipped by trace
    /// conformance (a step the replay cannot place). On the paused clock a
    /// seed set's skips are fixed, so one more is a finding: a runtime bug
    /// often shows first as a trace the model cannot follow.
    /// `CONFORMANCE_STRICT=1 ... --list` names them.
    #[arg(long, value_name = "N")]
    max_skipped: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let engine_mutant = args.mutant.as_deref().and_then(|m| m.parse::<EngineMutant>().ok());
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
    // Seeds whose SSTs are stored plain, with LZ4, with zstd.
    let mut codecs = [0u64; 3];
    for seed in args.seed_start..args.seed_start + args.seeds {
        let mut cfg = Config::new(seed);
        if args.faults {
            cfg = cfg.with_faults();
        }
        if args.lifecycle {
            cfg = cfg.with_lifecycle();
        }
        if let Some(ms) = args.gc_min_age_ms {
            cfg.gc_age = GcAge::Fixed(std::time::Duration::from_millis(ms));
        }
        if args.hedges {
            cfg = cfg.with_hedges();
        }
        cfg.wal_store |= args.wal_store;
        if let Some(place) = args.compactor {
            cfg.compactor = place;
        }
        cfg.ops = args.ops as usize;
        cfg.writers = args.writers as usize;
        cfg.rounds = args.rounds as usize;
        cfg.zombies |= args.zombies;
        cfg.protocol = protocol;
        cfg.mutant = engine_mutant;
        if let (Some(us), false) = (args.read_delay_us, cfg.read_delay.is_zero()) {
            cfg.read_delay = std::time::Duration::from_micros(us);
        }
        cfg.wall_clock = args.wall_clock || args.s3;
        cfg.store = store.clone();
        codecs[match cfg.compression {
            tidemark::Compression::None => 0,
            tidemark::Compression::Lz4 => 1,
            tidemark::Compression::Zstd { .. } => 2,
        }] += 1;
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
            "engine_mutant": engine_mutant.map(EngineMutant::name),
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
        if args.list {
            for f in &failures {
                let detail: String = f.detail.chars().take(300).collect();
                println!("violation: seed {} round {}: {}: {detail}", f.seed, f.round, f.invariant);
            }
        }
        if let Some(f) = failures.first() {
            // u64::MAX: the round crashed at a seeded tick, not at a store op.
            let crash = match f.crash_op {
                u64::MAX => "crash at a seeded tick".to_string(),
                op => format!("crash at store op {op}"),
            };
            println!("first violation: seed {} round {} {crash}: {}: {}", f.seed, f.round, f.invariant, f.detail);
            println!("reproduce: crash-check --seeds 1 --seed-start {} {}", f.seed, reproduce_flags(&args));
        }
        println!("protocol: {}", protocol.name());
        if let Some(m) = engine_mutant {
            println!("engine mutant: {}", m.name());
        }
        println!(
            "faults injected: {} transient errors, {} ambiguous creates ({} of WALs and fences); racing openers: {} ({} fenced)",
            injected.transient, injected.ambiguous_creates, injected.ambiguous_wals, injected.racers, injected.racers_fenced
        );
        println!(
            "exercised: {} held listings, {} held reads, {} hedged WAL creates; {} read-only opens ({} reads), {} held views checked ({} across an SST deletion); {} standalone GC passes, {} standalone compactions; {} follower polls; {} durable checkpoints made ({} while writers wrote), {} opens of them checked; {} checkpoints of crashed followers deleted",
            injected.held_listings,
            injected.held_reads,
            injected.create_hedges,
            injected.read_only_opens,
            injected.read_only_reads,
            injected.views_checked,
            injected.views_across_gc,
            injected.standalone_gc_passes,
            injected.standalone_compactions,
            injected.follower_polls,
            injected.checkpoints_made,
            injected.live_checkpoints,
            injected.checkpoint_opens,
            injected.dead_followers_dropped
        );
        println!(
            "merges and expiry: {} keys read holding merge operands, {} read after their put surely expired, {} read within their put's expiry window",
            injected.merged_keys_read, injected.expired_keys_read, injected.expiring_keys_in_doubt
        );
        println!("SST compression: {} seeds plain, {} LZ4, {} zstd", codecs[0], codecs[1], codecs[2]);
        if let Some(store) = &store {
            println!("store: {store} (a prefix per schedule, wall clock)");
        }
        println!("trace conformance: {} of {schedules} schedule traces replayed through the model{}", conformance.replayed, conformance.skipped_text());
        println!("schedules: {schedules}, violations: {}, seconds: {seconds:.1}", failures.len());
    }
    let skipped: u64 = conformance.skipped.values().sum();
    let too_many_skipped = args.max_skipped.filter(|&most| skipped > most);
    if let Some(most) = too_many_skipped {
        eprintln!(
            "trace conformance skipped {skipped} traces, more than --max-skipped {most}: \
             CONFORMANCE_STRICT=1 with the same flags and --list names them"
        );
    }
    if failures.is_empty() && too_many_skipped.is_none() {
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
    if args.lifecycle {
        flags.push_str(" --lifecycle");
    }
    if let Some(ms) = args.gc_min_age_ms {
        flags.push_str(&format!(" --gc-min-age-ms {ms}"));
    }
    if args.hedges {
        flags.push_str(" --hedges");
    }
    if args.wal_store {
        flags.push_str(" --wal-store");
    }
    if let Some(place) = args.compactor {
        flags.push_str(&format!(" --compactor {}", place.name()));
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
