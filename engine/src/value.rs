//! What a write leaves at a key: a value, a tombstone, a merge operand, or a
//! value with an expiry; and how versions stack when a read, a flush or a
//! compaction meets several of them for one key.
//!
//! WALs and SSTs keep one entry per key (memtables keep every version, for
//! snapshots), so versions are combined where sources meet: a merge operand on top of
//! anything folds into it with the [`MergeOperator`]; anything else hides
//! what is beneath. An expiring value carries what the key holds once it
//! expires (`then`), so operands folded onto it stay right on both sides of
//! its expiry, and an expired value hides older ones like a tombstone.

use std::fmt;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::sst::SeqEntry;
use crate::sync::StdArc;

/// Combines merge operands with the value beneath them (counters, appends,
/// sets): a write that changes a value without reading it. Set it with
/// [`Settings::with_merge_operator`](crate::Settings::with_merge_operator);
/// every process that opens the database needs the same operator.
///
/// `merge(key, existing, operand)` is `operand` applied to `existing`
/// (`None`: no value). It must be deterministic and associative, because
/// flushes and compactions combine two operands before the value beneath them
/// is known: `merge(k, Some(&merge(k, x, a)), b)` must equal
/// `merge(k, x, Some(&merge(k, Some(a), b)))` for every `x`, including `None`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// use std::sync::Arc;
/// use tidemark::{Db, MergeOperator, Settings};
///
/// /// A counter: operands and values are decimal integers.
/// #[derive(Debug)]
/// struct Add;
/// impl MergeOperator for Add {
///     fn merge(&self, _key: &[u8], existing: Option<&[u8]>, operand: &[u8]) -> bytes::Bytes {
///         let n = |b: Option<&[u8]>| b.and_then(|b| std::str::from_utf8(b).ok()?.parse::<i64>().ok()).unwrap_or(0);
///         (n(existing) + n(Some(operand))).to_string().into()
///     }
/// }
///
/// let db = Db::open_url("memory://", Settings::default().with_merge_operator(Arc::new(Add))).await?;
/// db.merge("hits", "1").await?;
/// db.merge("hits", "41").await?;
/// assert_eq!(db.get("hits").await?.as_deref(), Some(&b"42"[..]));
/// db.close().await
/// # }
/// ```
pub trait MergeOperator: Send + Sync + fmt::Debug {
    /// `operand` applied to `existing` (`None` when the key holds no value).
    fn merge(&self, key: &[u8], existing: Option<&[u8]>, operand: &[u8]) -> Bytes;
}

/// The operator a database was given, if any.
pub(crate) type MergeOp = Option<StdArc<dyn MergeOperator>>;

/// One version of a key, as memtables, WALs and SSTs store it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A tombstone: the key holds nothing, whatever is beneath.
    Delete,
    /// A value, hiding whatever is beneath.
    Put(Bytes),
    /// A merge operand: folds into whatever is beneath it.
    Merge(Bytes),
    /// `value` until `expires_at` (milliseconds on the database's clock),
    /// then `then` (`None`: nothing). Hides whatever is beneath, before and
    /// after its expiry.
    Expiring {
        /// The value before `expires_at`.
        value: Bytes,
        /// When it expires, in ms since the epoch on the database's clock.
        expires_at: u64,
        /// What the key holds from `expires_at` on: the merge operands
        /// written on top of the value, folded onto nothing.
        then: Option<Bytes>,
    },
}

impl Value {
    /// `Put(v)` for `Some(v)`, `Delete` for `None`.
    pub fn from_option(v: Option<Bytes>) -> Self {
        v.map_or(Value::Delete, Value::Put)
    }

    /// Whether nothing beneath this version can change what the key holds.
    pub fn hides_older(&self) -> bool {
        !matches!(self, Value::Merge(_))
    }

    /// Bytes of payload (for memtable and batch accounting).
    pub fn payload_len(&self) -> usize {
        match self {
            Value::Delete => 0,
            Value::Put(v) | Value::Merge(v) => v.len(),
            Value::Expiring { value, then, .. } => value.len() + then.as_ref().map_or(0, Bytes::len) + 8,
        }
    }

}

/// The refusal of merge operands met without an operator: by a read of
/// `key`, or by a writer's open replaying WAL `wal` (whose first L0 flush
/// could not fold them).
pub(crate) fn no_operator(key: &[u8], wal: Option<u64>) -> Error {
    let found = match wal {
        Some(id) => format!("wal {id} holds merge operands (key {:?})", String::from_utf8_lossy(key)),
        None => format!("key {:?} holds merge operands", String::from_utf8_lossy(key)),
    };
    Error::InvalidArgument(format!(
        "{found}, but no merge operator is set (Settings::with_merge_operator); \
         open the database with the operator it was written with"
    ))
}

/// Applies `operand` to `existing` with `op`, or fails naming the key.
fn apply(op: &MergeOp, key: &[u8], existing: Option<&[u8]>, operand: &[u8]) -> Result<Bytes> {
    match op {
        Some(op) => Ok(op.merge(key, existing, operand)),
        None => Err(no_operator(key, None)),
    }
}

/// `newer` written on top of `older` at one key. A merge operand folds into
/// what is beneath it (two operands combine into one, by associativity);
/// anything else hides `older`.
pub(crate) fn stack(op: &MergeOp, key: &[u8], newer: Value, older: &Value) -> Result<Value> {
    let Value::Merge(operand) = newer else { return Ok(newer) };
    Ok(match older {
        Value::Delete => Value::Put(apply(op, key, None, &operand)?),
        Value::Put(v) => Value::Put(apply(op, key, Some(v), &operand)?),
        Value::Merge(a) => Value::Merge(apply(op, key, Some(a), &operand)?),
        Value::Expiring { value, expires_at, then } => Value::Expiring {
            value: apply(op, key, Some(value), &operand)?,
            expires_at: *expires_at,
            then: Some(apply(op, key, then.as_deref(), &operand)?),
        },
    })
}

/// Folds one key's versions, given newest first, until one hides the rest:
/// the combined version and the newest sequence number, `None` if empty.
pub(crate) fn fold(op: &MergeOp, key: &[u8], newest_first: impl IntoIterator<Item = (u64, Value)>) -> Result<Option<(u64, Value)>> {
    let mut versions = newest_first.into_iter();
    let Some((seq, mut acc)) = versions.next() else { return Ok(None) };
    for (_, older) in versions {
        if acc.hides_older() {
            break;
        }
        acc = stack(op, key, acc, &older)?;
    }
    Ok(Some((seq, acc)))
}

/// Folds each key's chain of versions in `entries` (key order, each key's
/// versions newest first, as memtables give them) to one entry per key, as
/// an SST or a WAL object holds them.
pub(crate) fn fold_chains(op: &MergeOp, entries: Vec<SeqEntry>) -> Result<Vec<SeqEntry>> {
    let mut out: Vec<SeqEntry> = Vec::new();
    let mut chain: Vec<(u64, Value)> = Vec::new();
    let mut key: Option<Bytes> = None;
    let finish = |key: Option<Bytes>, chain: &mut Vec<(u64, Value)>, out: &mut Vec<SeqEntry>| -> Result<()> {
        if let Some(k) = key {
            if let Some((seq, v)) = fold(op, &k, chain.drain(..))? {
                out.push((k, seq, v));
            }
        }
        Ok(())
    };
    for (k, seq, v) in entries {
        if key.as_ref() != Some(&k) {
            finish(key.take(), &mut chain, &mut out)?;
            key = Some(k);
        }
        chain.push((seq, v));
    }
    finish(key, &mut chain, &mut out)?;
    Ok(out)
}

/// What a read returns for a key whose versions folded to `v` (nothing
/// older exists): operands with nothing beneath fold onto no value.
pub(crate) fn read(op: &MergeOp, key: &[u8], v: Value, now_ms: u64) -> Result<Option<Bytes>> {
    Ok(match v {
        Value::Delete => None,
        Value::Put(v) => Some(v),
        Value::Merge(a) => Some(apply(op, key, None, &a)?),
        Value::Expiring { value, expires_at, then } => {
            if now_ms < expires_at {
                Some(value)
            } else {
                then
            }
        }
    })
}

/// What a compaction writes for a key whose versions folded to `v`, at time
/// `now_ms`; `bottom` when no older run can hold the key. An expired value
/// becomes what it expires into (a tombstone if nothing, so an older value
/// beneath never reappears); at the bottom, tombstones go and operands fold
/// onto nothing. `None`: write nothing.
pub(crate) fn compact(op: &MergeOp, key: &[u8], v: Value, now_ms: u64, bottom: bool) -> Result<Option<Value>> {
    let v = match v {
        Value::Expiring { expires_at, then, .. } if expires_at <= now_ms => Value::from_option(then),
        v => v,
    };
    if !bottom {
        return Ok(Some(v));
    }
    Ok(match v {
        Value::Delete => None,
        Value::Merge(a) => Some(Value::Put(apply(op, key, None, &a)?)),
        v => Some(v),
    })
}

/// Concatenates operands onto the value: `existing ++ operand`. Associative,
/// so it can serve as [`MergeOperator`] for appends (logs, lists).
#[derive(Clone, Copy, Debug, Default)]
pub struct Concat;

impl MergeOperator for Concat {
    fn merge(&self, _key: &[u8], existing: Option<&[u8]>, operand: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(existing.map_or(0, <[u8]>::len) + operand.len());
        out.extend_from_slice(existing.unwrap_or_default());
        out.extend_from_slice(operand);
        out.into()
    }
}

/// A signed 64-bit counter in decimal text: the value is the sum of the
/// operands. A value or operand that is not a decimal integer counts as 0,
/// and the sum saturates rather than wrap.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddI64;

impl MergeOperator for AddI64 {
    fn merge(&self, _key: &[u8], existing: Option<&[u8]>, operand: &[u8]) -> Bytes {
        let n = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(0);
        existing.map_or(0, n).saturating_add(n(operand)).to_string().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn op() -> MergeOp {
        Some(StdArc::new(Concat))
    }

    #[test]
    fn operands_fold_in_sequence_order_onto_the_newest_value_beneath() {
        let versions = vec![(9, Value::Merge(b("c"))), (7, Value::Merge(b("b"))), (5, Value::Put(b("a"))), (2, Value::Put(b("old")))];
        assert_eq!(fold(&op(), b"k", versions).unwrap(), Some((9, Value::Put(b("abc")))));
        // Two operands alone combine into one, which folds later.
        let top = fold(&op(), b"k", vec![(9, Value::Merge(b("c"))), (7, Value::Merge(b("b")))]).unwrap().unwrap();
        assert_eq!(top, (9, Value::Merge(b("bc"))));
        assert_eq!(fold(&op(), b"k", vec![top, (5, Value::Put(b("a")))]).unwrap(), Some((9, Value::Put(b("abc")))));
        assert_eq!(read(&op(), b"k", Value::Merge(b("bc")), 0).unwrap(), Some(b("bc")));
        // A tombstone under operands is nothing.
        assert_eq!(fold(&op(), b"k", vec![(3, Value::Merge(b("x"))), (2, Value::Delete), (1, Value::Put(b("a")))]).unwrap(), Some((3, Value::Put(b("x")))));
        assert!(matches!(fold(&None, b"k", vec![(3, Value::Merge(b("x"))), (2, Value::Delete)]), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn an_expiring_value_carries_its_operands_past_its_expiry() {
        let put = Value::Expiring { value: b("a"), expires_at: 100, then: None };
        let (_, v) = fold(&op(), b"k", vec![(4, Value::Merge(b("b"))), (3, put.clone())]).unwrap().unwrap();
        assert_eq!(v, Value::Expiring { value: b("ab"), expires_at: 100, then: Some(b("b")) });
        assert_eq!(read(&op(), b"k", v.clone(), 99).unwrap(), Some(b("ab")));
        assert_eq!(read(&op(), b"k", v.clone(), 100).unwrap(), Some(b("b")));
        assert_eq!(read(&op(), b"k", put.clone(), 100).unwrap(), None);
        // Compaction after expiry: what it expired into; a bare expired put
        // becomes a tombstone above older runs and nothing at the bottom.
        assert_eq!(compact(&op(), b"k", v.clone(), 100, false).unwrap(), Some(Value::Put(b("b"))));
        assert_eq!(compact(&op(), b"k", v, 99, true).unwrap().map(|v| v.hides_older()), Some(true));
        assert_eq!(compact(&op(), b"k", put.clone(), 100, false).unwrap(), Some(Value::Delete));
        assert_eq!(compact(&op(), b"k", put, 100, true).unwrap(), None);
        assert_eq!(compact(&op(), b"k", Value::Merge(b("x")), 0, true).unwrap(), Some(Value::Put(b("x"))));
    }

    #[test]
    fn the_shipped_operators_are_associative() {
        let ops: [&dyn MergeOperator; 2] = [&Concat, &AddI64];
        for m in ops {
            for x in [None, Some(&b"7"[..]), Some(&b"-3"[..])] {
                let (a, c) = (&b"5"[..], &b"11"[..]);
                let left = m.merge(b"k", Some(&m.merge(b"k", x, a)), c);
                let right = m.merge(b"k", x, &m.merge(b"k", Some(a), c));
                assert_eq!(left, right, "{m:?} at {x:?}");
            }
        }
        assert_eq!(AddI64.merge(b"k", Some(i64::MAX.to_string().as_bytes()), b"1"), i64::MAX.to_string().as_bytes());
    }
}
