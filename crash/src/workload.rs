//! Seeded workloads: each writer's sequence of puts (some expiring),
//! deletes, merges, batches mixing them, scans, gets, flushes, snapshots
//! and long-lived scans, with and without `await_durable`.

use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::Rng;
use tidemark::Ttl;

/// One write of an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// A put with its time-to-live (`Ttl::Default`: the schedule's
    /// `Settings::default_ttl`, if it has one).
    Put(Bytes, Ttl),
    Delete,
    /// A merge operand (the harness's operator is `tidemark::Concat`).
    Merge(Bytes),
}

/// One operation a writer performs.
#[derive(Clone, Debug)]
pub enum Op {
    /// An atomic write of one or more keys: puts, deletes and merges, in
    /// order (a writer's own key may appear more than once in a batch).
    Write { writes: Vec<(Bytes, Write)>, await_durable: bool },
    /// Scan this writer's keys and compare with its own history.
    Scan,
    /// Read one of this writer's keys and compare with its own history, or
    /// a shared key (checked by `shared::SharedKeys::check_read`).
    Get { key: Bytes },
    /// `flush()`: everything written so far becomes durable.
    Flush,
    /// Take a snapshot and hold it (reading the one held before, if any,
    /// first): later reads through it must see this writer's keys as now,
    /// across flushes, compactions and GC passes.
    Snapshot,
    /// Start a scan of this writer's keys and hold it: it yields one entry
    /// at each of the writer's later operations, and all of them must be
    /// this writer's keys as when it began.
    Iterate,
}

/// Keys per writer: small, so overwrites and deletes hit live keys.
const KEYS_PER_WRITER: u32 = 6;

/// The key `k` of writer `w`. Writers own disjoint key ranges (and may
/// share the keys of [`shared_key`]).
pub fn key(writer: usize, k: u32) -> Bytes {
    Bytes::from(format!("w{writer:02}/k{k}"))
}

/// The key range of writer `w`, for scans: `[w.., w/\xff)`.
pub fn key_prefix(writer: usize) -> Bytes {
    Bytes::from(format!("w{writer:02}/"))
}

/// Keys all writers share (`shared::PREFIX`): few, so writers overwrite
/// each other's values.
const SHARED_KEYS: u32 = 4;

/// Shared key `k`.
pub fn shared_key(k: u32) -> Bytes {
    Bytes::from(format!("{}k{k}", crate::shared::PREFIX))
}

/// A key for `writer`: its own key `k`, or with `shared` a shared key one
/// time in three (drawing nothing more when not `shared`, so schedules
/// without shared keys stay as they were).
fn pick(rng: &mut StdRng, writer: usize, k: u32, shared: bool) -> Bytes {
    if shared && rng.random_bool(0.35) {
        return shared_key(k % SHARED_KEYS);
    }
    key(writer, k)
}

/// Time-to-live of a short-lived put: it expires within a round (a round
/// lasts tens of milliseconds of the paused clock), so reads, flushes and
/// compactions meet it on both sides of its expiry.
pub const SHORT_TTL_MS: std::ops::RangeInclusive<u64> = 1..=30;
/// Of a medium one: it expires in a later round, during a recovery, or at
/// a jump of an aged schedule's clock (up to 8 s each).
pub const MEDIUM_TTL_MS: std::ops::RangeInclusive<u64> = 31..=3000;
/// Of a long one: never within a schedule.
pub const LONG_TTL: Duration = Duration::from_secs(3600);

/// The time-to-live of a put to a writer's own key: short, medium or long,
/// none, or the schedule's default.
fn ttl(rng: &mut StdRng) -> Ttl {
    match rng.random_range(0..100) {
        0..=29 => Ttl::ExpireAfter(Duration::from_millis(rng.random_range(SHORT_TTL_MS))),
        30..=44 => Ttl::ExpireAfter(Duration::from_millis(rng.random_range(MEDIUM_TTL_MS))),
        45..=54 => Ttl::ExpireAfter(LONG_TTL),
        55..=64 => Ttl::NoExpiry,
        _ => Ttl::Default,
    }
}

/// A seeded sequence of `n` operations for `writer`; with `shared`, some
/// writes and reads go to the keys all writers share. Each value names its
/// write, padded with `pad` bytes (more bytes per write: more flushes);
/// each merge operand names its write too (`+<round>.<op>.<j>`), so a
/// lost, duplicated or reordered operand shows in the folded value. Merges
/// and expiring puts go to the writer's own keys only: a shared key gets
/// puts that never expire and deletes.
pub fn generate(rng: &mut StdRng, writer: usize, round: usize, n: usize, shared: bool, pad: usize) -> Vec<Op> {
    (0..n)
        .map(|i| {
            let value = |j: usize| Bytes::from(format!("w{writer}-r{round}-op{i}-{j}{:.<pad$}", ""));
            let operand = |j: usize| Bytes::from(format!("+{round}.{i}.{j}"));
            // A put of value `j` to `key`: expiring only on an own key.
            let put = |rng: &mut StdRng, key: &Bytes, j: usize| match crate::shared::is_shared(key) {
                true => Write::Put(value(j), Ttl::NoExpiry),
                false => Write::Put(value(j), ttl(rng)),
            };
            match rng.random_range(0..100) {
                0..=35 => {
                    let k = rng.random_range(0..KEYS_PER_WRITER);
                    let key = pick(rng, writer, k, shared);
                    let write = put(rng, &key, 0);
                    Op::Write { writes: vec![(key, write)], await_durable: rng.random_bool(0.4) }
                }
                36..=47 => {
                    let k = rng.random_range(0..KEYS_PER_WRITER);
                    let key = pick(rng, writer, k, shared);
                    let write = match crate::shared::is_shared(&key) {
                        true => put(rng, &key, 0),
                        false => Write::Merge(operand(0)),
                    };
                    Op::Write { writes: vec![(key, write)], await_durable: rng.random_bool(0.4) }
                }
                48..=59 => {
                    let k = rng.random_range(0..KEYS_PER_WRITER);
                    Op::Write { writes: vec![(pick(rng, writer, k, shared), Write::Delete)], await_durable: rng.random_bool(0.4) }
                }
                60..=79 => {
                    let len = rng.random_range(2..=4);
                    let mut writes: Vec<(Bytes, Write)> = Vec::with_capacity(len);
                    for j in 0..len {
                        let k = rng.random_range(0..KEYS_PER_WRITER);
                        let k = pick(rng, writer, k, shared);
                        let is_shared = crate::shared::is_shared(&k);
                        // A shared key once per batch (its oracle takes one
                        // write per key and step); an own key any number of
                        // times, applied in order.
                        if is_shared && writes.iter().any(|(existing, _)| existing == &k) {
                            continue;
                        }
                        let write = match rng.random_range(0..100) {
                            0..=44 => put(rng, &k, j),
                            45..=79 if !is_shared => Write::Merge(operand(j)),
                            45..=79 => put(rng, &k, j),
                            _ => Write::Delete,
                        };
                        writes.push((k, write));
                    }
                    Op::Write { writes, await_durable: rng.random_bool(0.4) }
                }
                80..=85 => Op::Scan,
                86..=87 => Op::Snapshot,
                88..=89 => Op::Iterate,
                90..=94 => {
                    let k = rng.random_range(0..KEYS_PER_WRITER);
                    Op::Get { key: pick(rng, writer, k, shared) }
                }
                _ => Op::Flush,
            }
        })
        .collect()
}
