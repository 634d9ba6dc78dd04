//! The frontier no in-order write path passes on a store (`--bound`).
//!
//! An ideal engine, simulated from the store's own latency sampler: writes
//! arrive at a fixed rate, a WAL is frozen every `interval` (the gather that
//! spends the PUT budget most evenly), its upload takes one draw, a hedge
//! sent `hedge` after the freeze takes another and the WAL is durable at the
//! first to land, and a write is acknowledged once its WAL and every earlier
//! one are durable (recovery replays WALs in order and stops at a gap, I3).
//! It spends no CPU and waits on no timer, so its p99 at a PUT rate is a
//! floor for any engine built this way, tidemark and SlateDB alike.
//!
//! `carry` adds a protocol neither engine has: a WAL still in flight when the
//! next one freezes has its writes copied into that one, so whichever lands
//! first makes them durable (a free hedge, but recovery would have to pass a
//! WAL that a later one supersedes). It shows what such a change could buy.

use tidemark::testing::{Latency, LatencySampler};

/// One way of spending PUTs: a WAL every `interval_ms`, a hedge after
/// `hedge_ms` (none when `None`), and whether in-flight writes are carried.
/// With `timer`, every freeze, hedge and answer happens at the next
/// millisecond tick, as a tokio runtime's timer makes them (the store's
/// latency and the engine's own waits are both sleeps).
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub interval_ms: f64,
    pub hedge_ms: Option<f64>,
    pub carry: bool,
    pub timer: bool,
}

/// A policy's figures: medians over the seeds.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub policy: Policy,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub puts_per_sec: f64,
}

/// Runs `policy` for `seconds` of writes arriving at `rate` per second, with
/// upload latencies drawn from `latency` seeded by `seed`: (p50, p99, PUT/s).
pub fn simulate(latency: &Latency, seed: u64, rate: u64, seconds: u64, policy: Policy) -> (f64, f64, f64) {
    let mut sampler = LatencySampler::new(latency.clone(), seed);
    let mut draw = || sampler.sample().0.as_secs_f64() * 1e3;
    let t = policy.interval_ms;
    let tick = |at: f64| if policy.timer { at.ceil() } else { at };
    let wals = (seconds as f64 * 1e3 / t) as usize;
    let mut puts = 0u64;
    // When each WAL's own copies land.
    let mut landed = Vec::with_capacity(wals);
    for k in 1..=wals {
        let frozen = tick(k as f64 * t);
        let mut done = tick(frozen + draw());
        puts += 1;
        if let Some(d) = policy.hedge_ms {
            let sent = tick(frozen + d);
            if done > sent {
                done = done.min(tick(sent + draw()));
                puts += 1;
            }
        }
        landed.push(done);
    }
    let gap = 1e3 / rate as f64;
    let mut latencies = Vec::with_capacity((seconds * rate) as usize);
    let mut acked = 0f64;
    for k in 0..wals {
        // With `carry`, WAL k's writes ride in every later WAL frozen while
        // they are not yet durable.
        let mut durable = landed[k];
        let mut j = k + 1;
        while policy.carry && j < wals && durable > tick((j + 1) as f64 * t) {
            durable = durable.min(landed[j]);
            j += 1;
        }
        acked = acked.max(durable);
        let (from, to) = ((k as f64 * t / gap).floor() as u64 + 1, (((k + 1) as f64 * t) / gap).floor() as u64);
        latencies.extend((from..=to).map(|i| acked - i as f64 * gap));
    }
    let q = |v: &mut Vec<f64>, q: f64| {
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((v.len() as f64 * q) as usize).min(v.len() - 1);
        *v.select_nth_unstable_by(i, f64::total_cmp).1
    };
    (q(&mut latencies, 0.5), q(&mut latencies, 0.99), puts as f64 / seconds as f64)
}

/// Every policy of the grid (a WAL every 1 to 30 ms, no hedge or one after
/// 2 to 30 ms), each the median over `seeds`.
pub fn frontier(latency: &Latency, seeds: &[u64], rate: u64, seconds: u64, carry: bool, timer: bool) -> Vec<Point> {
    let intervals = (4..=120).map(|i| i as f64 * 0.25);
    let hedges = std::iter::once(None).chain((2..=30).map(|d| Some(d as f64)));
    let hedges: Vec<Option<f64>> = hedges.collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut points = Vec::new();
    for interval_ms in intervals {
        for &hedge_ms in &hedges {
            let policy = Policy { interval_ms, hedge_ms, carry, timer };
            let runs: Vec<(f64, f64, f64)> = seeds.iter().map(|&s| simulate(latency, s, rate, seconds, policy)).collect();
            points.push(Point {
                policy,
                p50_ms: median(runs.iter().map(|r| r.0).collect()),
                p99_ms: median(runs.iter().map(|r| r.1).collect()),
                puts_per_sec: median(runs.iter().map(|r| r.2).collect()),
            });
        }
    }
    points
}

/// The lowest p99 among `points` spending at most `cap` PUTs a second.
pub fn best_under(points: &[Point], cap: f64) -> Option<Point> {
    points.iter().filter(|p| p.puts_per_sec <= cap).min_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms)).copied()
}

pub fn describe(p: &Point) -> String {
    let hedge = p.policy.hedge_ms.map_or("no hedge".to_string(), |d| format!("hedge after {d} ms"));
    format!("a WAL every {} ms, {hedge}: p50 {:.1}, p99 {:.1} ms at {:.1} PUT/s", p.policy.interval_ms, p.p50_ms, p.p99_ms, p.puts_per_sec)
}

/// The floors `--bound` and the acceptance run show: in order and carried,
/// each with no timer and on a millisecond timer.
pub const FLOORS: [(bool, bool, &str); 4] = [
    (false, false, "in order, no timer"),
    (false, true, "in order, 1 ms timer"),
    (true, false, "carried, no timer"),
    (true, true, "carried, 1 ms timer"),
];

/// `--bound`: each floor's p99 at a range of PUT rates, and at `also`.
pub fn print(kind_name: &str, latency: &Latency, seeds: &[u64], rate: u64, seconds: u64, also: &[f64]) {
    let mut caps = vec![50.0, 75.0, 100.0, 125.0, 150.0, 175.0, 200.0, 300.0, 500.0, 1000.0];
    caps.extend(also.iter().copied().filter(|c| c.is_finite() && *c > 0.0));
    caps.sort_by(f64::total_cmp);
    let floors: Vec<Vec<Point>> = FLOORS.iter().map(|&(carry, timer, _)| frontier(latency, seeds, rate, seconds, carry, timer)).collect();
    println!("The floor on {kind_name} at {rate} writes/s ({seconds} s, medians over seeds {seeds:?}; no CPU):");
    for ((_, _, name), points) in FLOORS.iter().zip(&floors) {
        println!();
        println!("{name}:");
        println!();
        println!("| PUT/s at most | p99 ms | the best policy |");
        println!("|---|---|---|");
        for &cap in &caps {
            match best_under(points, cap) {
                Some(p) => println!("| {cap} | {:.1} | {} |", p.p99_ms, describe(&p)),
                None => println!("| {cap} | - | - |"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// On a constant store a write waits for its WAL's freeze and one upload:
    /// the p99 is the interval plus the latency, less one arrival gap.
    #[test]
    fn a_constant_store_costs_the_interval_plus_one_upload() {
        let latency = Latency::Constant(Duration::from_millis(5));
        let base = Policy { interval_ms: 10.0, hedge_ms: None, carry: false, timer: false };
        let (_, p99, puts) = simulate(&latency, 1, 1000, 10, base);
        assert!((p99 - 14.0).abs() < 0.2, "p99 {p99}");
        assert!((puts - 100.0).abs() < 0.5, "PUT/s {puts}");
        // On whole milliseconds the timer changes nothing.
        let (_, timed, _) = simulate(&latency, 1, 1000, 10, Policy { timer: true, ..base });
        assert_eq!(timed, p99);
    }

    /// Hedging and carrying only ever lower a tail; a tighter cap never
    /// finds a lower floor.
    #[test]
    fn hedges_and_carries_lower_the_tail_and_caps_are_monotone() {
        let latency = Latency::s3_express();
        let base = Policy { interval_ms: 8.0, hedge_ms: None, carry: false, timer: false };
        let (_, plain, _) = simulate(&latency, 3, 2000, 10, base);
        let (_, hedged, _) = simulate(&latency, 3, 2000, 10, Policy { hedge_ms: Some(8.0), ..base });
        let (_, carried, _) = simulate(&latency, 3, 2000, 10, Policy { carry: true, ..base });
        assert!(hedged < plain && carried < plain, "{plain} {hedged} {carried}");
        let (_, timed, _) = simulate(&latency, 3, 2000, 10, Policy { hedge_ms: Some(8.0), timer: true, ..base });
        assert!(timed > hedged, "a timer only delays: {hedged} {timed}");
        let points = frontier(&latency, &[1], 2000, 2, false, false);
        let (low, high) = (best_under(&points, 100.0).unwrap(), best_under(&points, 200.0).unwrap());
        assert!(high.p99_ms <= low.p99_ms && low.puts_per_sec <= 100.0);
    }
}
