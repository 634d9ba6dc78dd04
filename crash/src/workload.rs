//! Seeded workloads: each writer's sequence of puts, deletes, batches,
//! scans, gets and flushes, with and without `await_durable`.

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
    /// Read one of this writer's keys and compare with its own history.
    Get { key: Bytes },
    /// `flush()`: everything written so far becomes durable.
    Flush,
}

/// Keys per writer: small, so overwrites and deletes hit live keys.
const KEYS_PER_WRITER: u32 = 6;

/// The key `k` of writer `w`. Writers own disjoint key ranges.
pub fn key(writer: usize, k: u32) -> Bytes {
    Bytes::from(format!("w{writer:02}/k{k}"))
}

/// The key range of writer `w`, for scans: `[w.., w/\xff)`.
pub fn key_prefix(writer: usize) -> Bytes {
    Bytes::from(format!("w{writer:02}/"))
}

/// A seeded sequence of `n` operations for `writer`.
pub fn generate(rng: &mut StdRng, writer: usize, round: usize, n: usize) -> Vec<Op> {
    (0..n)
        .map(|i| {
            let value = |j: usize| Some(Bytes::from(format!("w{writer}-r{round}-op{i}-{j}")));
            match rng.random_range(0..100) {
                0..=47 => Op::Write {
                    writes: vec![(key(writer, rng.random_range(0..KEYS_PER_WRITER)), value(0))],
                    await_durable: rng.random_bool(0.4),
                },
                48..=61 => Op::Write {
                    writes: vec![(key(writer, rng.random_range(0..KEYS_PER_WRITER)), None)],
                    await_durable: rng.random_bool(0.4),
                },
                62..=79 => {
                    let len = rng.random_range(2..=3);
                    let mut writes: Vec<(Bytes, Option<Bytes>)> = Vec::with_capacity(len);
                    for j in 0..len {
                        let k = key(writer, rng.random_range(0..KEYS_PER_WRITER));
                        if writes.iter().all(|(existing, _)| existing != &k) {
                            let v = if rng.random_bool(0.8) { value(j) } else { None };
                            writes.push((k, v));
                        }
                    }
                    Op::Write { writes, await_durable: rng.random_bool(0.4) }
                }
                80..=87 => Op::Scan,
                88..=92 => Op::Get { key: key(writer, rng.random_range(0..KEYS_PER_WRITER)) },
                _ => Op::Flush,
            }
        })
        .collect()
}
