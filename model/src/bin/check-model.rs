//! `check-model`: exhaustively checks tidemark's protocol (or a mutant) with
//! Stateright and prints the figures, each property's result, and shortest
//! counterexamples in the spec's action names.
//!
//! Exit status: 0 when everything checked passes (with `--all`: the shipped
//! protocol passes and every mutant is caught), 1 when a property fails,
//! 2 on bad arguments.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tidemark::internals::protocol::Protocol;
use tidemark_model::report::{self, render_counterexample, Run};
use tidemark_model::model::LifecycleBounds;
use tidemark_model::{Bounds, TidemarkModel};

/// A search clones and frees millions of small collections a second; glibc
/// malloc took a third of the profile of `--big --writes 3`.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "check-model", about = "Model-check tidemark's WAL/manifest/recovery protocol with Stateright")]
struct Args {
    /// Protocol to check: shipped, or a mutant (see `--all`, or model/README.md).
    #[arg(long, default_value = "shipped", global = true)]
    protocol: String,
    /// Check the shipped protocol and every mutant, and print a table.
    #[arg(long)]
    all: bool,
    /// Print the results as one JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// Start from the deeper bound set (the default plus an ambiguous create).
    #[arg(long, global = true)]
    deep: bool,
    /// Start from the big WAL bound set (4 writes, W=3, 2 crashes, a zombie,
    /// an ambiguous create).
    #[arg(long, global = true)]
    big: bool,
    /// Start from the deep lifecycle set (2 writes, a zombie, a compactor, a GC pass over
    /// aged objects, a follower, 1 tick; about 70 M states).
    #[arg(long, global = true)]
    lifecycle: bool,
    /// Search breadth-first, with Ack a step of its own, keeping every state of the
    /// frontier in memory (the default is depth-first with Ack inside WalDurable).
    #[arg(long, global = true)]
    bfs: bool,
    /// Search depth-first (the default; kept for scripts).
    #[arg(long, global = true, conflicts_with = "bfs")]
    dfs: bool,
    /// Acknowledge inside WalDurable, as the engine does (the default; with --bfs, opt in).
    #[arg(long, global = true)]
    eager_ack: bool,
    /// Total Puts.
    #[arg(long, global = true)]
    writes: Option<u8>,
    /// W: WAL uploads in flight per writer.
    #[arg(long, global = true)]
    inflight: Option<u8>,
    /// Crashes.
    #[arg(long, global = true)]
    crashes: Option<u8>,
    /// Recoveries while an older writer still runs (zombies); 0 leaves only crashes.
    #[arg(long, global = true)]
    zombies: Option<u8>,
    /// Creates that land but report AlreadyExists (may be 0).
    #[arg(long, global = true)]
    ambiguous: Option<u8>,
    /// Hedged WAL uploads: second identical creates of a WAL in flight (may be 0).
    #[arg(long, global = true)]
    hedges: Option<u8>,
    /// Manifest creates (writer, compactor, recovery claims).
    #[arg(long, global = true)]
    manifests: Option<u8>,
    /// Compactor claims (2 lets one become a zombie; 0 turns compaction off).
    #[arg(long, global = true)]
    compactors: Option<u8>,
    /// GC runs (0 turns GC off).
    #[arg(long, global = true)]
    gcs: Option<u8>,
    /// Followers started (0: none).
    #[arg(long, global = true)]
    readers: Option<u8>,
    /// Durable checkpoints created (0: none).
    #[arg(long, global = true)]
    checkpoints: Option<u8>,
    /// A client checkpoint's lifetime, in ticks.
    #[arg(long, global = true)]
    ttl: Option<u8>,
    /// Clock ticks (checkpoint expiry, GC ages).
    #[arg(long, global = true)]
    ticks: Option<u8>,
    /// Clean closes (0: none).
    #[arg(long, global = true)]
    closes: Option<u8>,
    /// GC's grace (min_age), in ticks: younger objects are kept, checkpoints live that long past expiry.
    #[arg(long = "min-age", global = true)]
    min_age: Option<u8>,
    /// Start from the WAL-only bound set (no compaction, GC, readers, closes or clock).
    #[arg(long, global = true)]
    wal_only: bool,
    /// Checker threads.
    #[arg(long, default_value_t = 2, global = true)]
    threads: usize,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the Stateright web explorer for the chosen protocol and bounds.
    Explore {
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: String,
    },
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("check-model: {msg}");
    ExitCode::from(2)
}

/// The bounds from the flags, or a message naming the bad one.
fn bounds(args: &Args) -> Result<(Bounds, LifecycleBounds), String> {
    let (mut b, mut l) = match (args.deep, args.wal_only, args.big, args.lifecycle) {
        (true, false, false, false) => (Bounds::DEEP, LifecycleBounds::NONE),
        (false, true, false, false) => (Bounds::WAL_ONLY, LifecycleBounds::NONE),
        (false, false, true, false) => (Bounds::BIG, LifecycleBounds::NONE),
        (false, false, false, true) => (Bounds::LIFECYCLE, LifecycleBounds::NONE),
        (false, false, false, false) => (Bounds::DEFAULT, LifecycleBounds::NONE),
        _ => return Err("--deep, --wal-only, --big and --lifecycle are alternatives".into()),
    };
    let set = |name: &str, v: Option<u8>, min: u8, max: u8, slot: &mut u8| -> Result<(), String> {
        if let Some(v) = v {
            if v < min || v > max {
                return Err(format!("--{name} must be between {min} and {max}, got {v}"));
            }
            *slot = v;
        }
        Ok(())
    };
    let mut writes = u8::try_from(b.writes).unwrap_or(u8::MAX);
    set("writes", args.writes, 1, 12, &mut writes)?;
    b.writes = u16::from(writes);
    set("inflight", args.inflight, 1, 8, &mut b.inflight)?;
    set("crashes", args.crashes, 0, 6, &mut b.crashes)?;
    set("zombies", args.zombies, 0, 4, &mut b.zombies)?;
    set("ambiguous", args.ambiguous, 0, 4, &mut b.ambiguous)?;
    set("hedges", args.hedges, 0, 4, &mut b.hedges)?;
    set("manifests", args.manifests, 1, 12, &mut b.manifests)?;
    set("compactors", args.compactors, 0, 4, &mut b.compactors)?;
    set("gcs", args.gcs, 0, 4, &mut b.gcs)?;
    set("readers", args.readers, 0, 4, &mut b.readers)?;
    set("ticks", args.ticks, 0, 6, &mut b.ticks)?;
    set("closes", args.closes, 0, 4, &mut b.closes)?;
    set("min-age", args.min_age, 0, 6, &mut b.min_age)?;
    set("checkpoints", args.checkpoints, 0, 4, &mut l.checkpoints)?;
    set("ttl", args.ttl, 1, 6, &mut l.ttl)?;
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok((b, l))
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let (bounds, lifecycle) = match bounds(&args) {
        Ok(b) => b,
        Err(msg) => return usage_error(&msg),
    };
    let protocol: Protocol = match args.protocol.parse() {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Some(Command::Explore { addr }) = &args.command {
        return explore(TidemarkModel::with_lifecycle(protocol, bounds, lifecycle), addr);
    }
    let protocols: Vec<Protocol> = if args.all { Protocol::ALL.to_vec() } else { vec![protocol] };
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = std::time::Duration::ZERO;
    let runs: Vec<Run> = protocols
        .iter()
        .map(|&p| {
            if args.all && p.is_mutant() {
                return report::hunt(report::mutant_model(p, bounds, lifecycle));
            }
            let search = if args.bfs { report::Search::Bfs } else { report::Search::Dfs };
            let mut model = TidemarkModel::with_lifecycle(p, bounds, lifecycle);
            model.eager_ack = !args.bfs || args.eager_ack;
            report::check_with(model, args.threads, search, |states, unique, elapsed| {
                let line = format!("[{p}] {states} states, {unique} unique, {:.0} s", elapsed.as_secs_f64());
                if terminal {
                    eprint!("\r{line}   ");
                    let _ = std::io::stderr().flush();
                } else if elapsed >= last_line + std::time::Duration::from_secs(5) {
                    // Logs get a line every five seconds, not a carriage-return stream.
                    eprintln!("{line}");
                    last_line = elapsed;
                }
            })
        })
        .collect();
    if terminal {
        eprint!("\r{:70}\r", "");
    }
    if args.json {
        println!("{}", serde_json::json!({ "runs": runs }));
    } else if args.all {
        print_table(&runs);
    } else {
        print_run(&runs[0]);
    }
    let ok = if args.all {
        runs.iter().all(|r| if r.protocol == "shipped" { r.passes() } else { !r.violated().is_empty() })
    } else {
        runs.iter().all(Run::passes)
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_run(run: &Run) {
    let b = &run.bounds;
    println!("protocol:      {}", run.protocol);
    println!(
        "bounds:        writes={} inflight(W)={} crashes={} zombies={} ambiguous={} hedges={} manifests={}",
        b.writes, b.inflight, b.crashes, b.zombies, b.ambiguous, b.hedges, b.manifests
    );
    println!(
        "               compactors={} gcs={} followers={} checkpoints={} ticks={} ttl={} closes={} min_age={}",
        b.compactors, b.gcs, b.readers, run.lifecycle.checkpoints, b.ticks, run.lifecycle.ttl, b.closes, b.min_age
    );
    println!("search:        {:?}{}", run.search, if run.eager_ack { ", Ack inside WalDurable (eager_ack)" } else { "" });
    println!("states:        {}", run.states);
    println!("unique states: {}", run.unique_states);
    println!("max depth:     {}", run.max_depth);
    println!("seconds:       {:.2}", run.seconds);
    println!("states/second: {:.0}", run.states as f64 / run.seconds.max(1e-9));
    println!("properties:");
    for p in &run.properties {
        let verdict = match (p.kind, p.holds) {
            ("always", true) => "holds",
            ("always", false) => "VIOLATED",
            (_, true) => "found",
            (_, false) => "NOT FOUND",
        };
        println!("  {:9} {:45} {verdict}", p.kind, p.name);
    }
    for p in run.violated() {
        println!("\nshortest counterexample for {} ({} steps):", p.name, p.counterexample.len());
        print!("{}", render_counterexample(p));
    }
}

fn print_table(runs: &[Run]) {
    println!(
        "{:28} {:10} {:40} {:>6} {:>10} {:>8}",
        "protocol", "result", "violates", "steps", "states", "seconds"
    );
    for r in runs {
        let violated = r.violated();
        let (result, names, steps) = if r.protocol == "shipped" {
            let missing: Vec<&str> = r.properties.iter().filter(|p| !p.holds).map(|p| p.name.as_str()).collect();
            (if missing.is_empty() { "passes" } else { "FAILS" }, missing.join(", "), String::from("-"))
        } else if violated.is_empty() {
            ("NOT CAUGHT", String::new(), String::from("-"))
        } else {
            let names: Vec<String> = violated.iter().map(|p| p.name.split(' ').next().unwrap_or("").to_string()).collect();
            let shortest = violated.iter().map(|p| p.counterexample.len()).min().unwrap_or(0);
            ("caught", names.join(", "), shortest.to_string())
        };
        println!(
            "{:28} {:10} {:40} {:>6} {:>10} {:>8.2}",
            r.protocol, result, names, steps, r.unique_states, r.seconds
        );
    }
    for r in runs.iter().filter(|r| r.protocol != "shipped") {
        if let Some(p) = r.violated().into_iter().min_by_key(|p| p.counterexample.len()) {
            println!("\n{}: shortest counterexample for {}:", r.protocol, p.name);
            print!("{}", render_counterexample(p));
        }
    }
}

fn explore(model: TidemarkModel, addr: &str) -> ExitCode {
    let Ok(socket) = addr.parse::<std::net::SocketAddr>() else {
        return usage_error(&format!("--addr must be host:port, got `{addr}`"));
    };
    let protocol = model.protocol;
    println!("Stateright explorer for protocol `{protocol}`: http://{addr}/");
    println!("searching for the shortest counterexample; the page opens on it once found...");
    let _ = std::io::stdout().flush();
    let url = format!("http://{addr}/#/steps/");
    let printer = move |landing: &tidemark_model::explorer::Landing| {
        match &landing.path {
            Some(path) => println!("shortest counterexample ({}): {url}{path}", landing.violated.join(", ")),
            None => println!("no property is violated at these bounds; the page opens on the initial state"),
        }
        let _ = std::io::stdout().flush();
    };
    match tidemark_model::explorer::serve(model, socket, report::SHORTEST_BUDGET, printer) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("check-model: cannot listen on {addr}: {e}");
            ExitCode::from(1)
        }
    }
}
