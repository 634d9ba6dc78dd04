//! Seeded workloads: each writer's sequence of puts, deletes, batches,
//! scans, gets, flushes, snapshots and long-lived scans, with and without
//! `await_durable`.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::Rng;

/// One operation a writer performs.
#[derive(Clone, Debug)]
pub enum Op {
    /// An atomic write of one or more keys (`None` deletes).
    Write { writes: Vec<(Bytes, Option<Bytes>)>, await_durable: bool },
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

/// A seeded sequence of `n` operations for `writer`; with `shared`, some
/// writes and reads go to the keys all writers share. Each value names its
/// write, padded with `pad` bytes (more bytes per write: more flushes).
pub fn generate(rng: &mut StdRng, writer: usize, round: usize, n: usize, shared: bool, pad: usize) -> Vec<Op> {
    (0..n)
        .map(|i| {
            let value = |j: usize| Some(Bytes::from(format!("w{writer}-r{round}-op{i}-{j}{:.<pad$}", "")));
            match rng.random_range(0..100) {
                0..=47 => {
                    let k = rng.random_range(0..KEYS_PER_WRITER);
                    Op::Write { writes: vec![(pick(rng, writer, k, shared), value(0))], await_durable: rng.random_bool(0.4) }
                }
                48..=61 => {
                    let k = rng.random_range(0..KEYS_PER_WRITER);
                    Op::Write { writes: vec![(pick(rng, writer, k, shared), None)], await_durable: rng.random_bool(0.4) }
                }
                62..=79 => {
                    let len = rng.random_range(2..=3);
                    let mut writes: Vec<(Bytes, Option<Bytes>)> = Vec::with_capacity(len);
                    for j in 0..len {
                        let k = rng.random_range(0..KEYS_PER_WRITER);
                        let k = pick(rng, writer, k, shared);
                        if writes.iter().all(|(existing, _)| existing != &k) {
                            let v = if rng.random_bool(0.8) { value(j) } else { None };
                            writes.push((k, v));
                        }
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
