//! A bloom filter over an SST's keys (about 1% false positives at 10 bits/key).

const BITS_PER_KEY: usize = 10;
const HASHES: u8 = 7;

fn hashes(key: &[u8]) -> (u32, u32) {
    let h1 = crc32c::crc32c(key);
    let h2 = crc32c::crc32c_append(0x9e37_79b9, key) | 1;
    (h1, h2)
}

/// Builds the filter section body: `k` then the bit array.
pub(crate) fn build(keys: &[&[u8]]) -> Vec<u8> {
    let nbits = (keys.len() * BITS_PER_KEY).max(64).next_multiple_of(8);
    let mut bits = vec![0u8; nbits / 8];
    for key in keys {
        let (h1, h2) = hashes(key);
        for i in 0..u32::from(HASHES) {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) as usize % nbits;
            bits[bit / 8] |= 1 << (bit % 8);
        }
    }
    let mut out = Vec::with_capacity(bits.len() + 1);
    out.push(HASHES);
    out.extend_from_slice(&bits);
    out
}

/// Checks that a filter section body is one this build writes: `k` equal to
/// [`HASHES`] and a bit array of at least 64 bits. A point read trusts the
/// filter's "no", so a malformed one is refused when the SST is opened.
pub(crate) fn check(filter: &[u8]) -> Result<(), String> {
    match filter.split_first() {
        Some((&HASHES, bits)) if bits.len() >= 8 => Ok(()),
        Some((&k, bits)) => Err(format!("bloom filter is malformed ({k} hashes, {} bits)", bits.len() * 8)),
        None => Err("bloom filter is empty".into()),
    }
}

/// Whether `key` may be in the set; `false` is definite.
pub(crate) fn may_contain(filter: &[u8], key: &[u8]) -> bool {
    let Some((&k, bits)) = filter.split_first() else { return true };
    let nbits = bits.len() * 8;
    if nbits == 0 {
        return true;
    }
    let (h1, h2) = hashes(key);
    (0..u32::from(k)).all(|i| {
        let bit = h1.wrapping_add(i.wrapping_mul(h2)) as usize % nbits;
        bits[bit / 8] & (1 << (bit % 8)) != 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let keys: Vec<Vec<u8>> = (0..1000u32).map(|i| format!("key{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let f = build(&refs);
        assert!(refs.iter().all(|k| may_contain(&f, k)));
        let fp = (0..10_000u32).filter(|i| may_contain(&f, format!("other{i}").as_bytes())).count();
        assert!(fp < 300, "{fp} false positives in 10000");
    }
}
