#![no_main]
//! A whole database with one object replaced (issue 17). Input: a mode byte
//! (odd = re-seal the checksums), a byte choosing the object (the latest
//! manifest, a WAL to replay, an L0 or sorted-run SST, the WAL after the
//! last one, or the one after that, behind a gap), then the object. On a copy of the base database (see
//! `tidemark_fuzz::base`): read-only open, read-write open (recovery,
//! fence, replay), `get` of every key, `scan`, `scan_prefix`, a put, close,
//! reopen.
//!
//! Oracles, besides no panic, OOM or hang (libFuzzer's limits):
//! - a database fsck finds clean opens for writing and takes a put, and
//!   the original database is clean;
//! - `get` agrees with `scan`, and `scan_prefix` with `scan`;
//! - the read-only and the read-write view agree;
//! - an acknowledged put survives close and reopen (the database reopens,
//!   the put is there, and so is everything the writer saw);
//! - an object without valid checksums (even mode) yields an error or
//!   exactly the original data: every read that succeeds returns it;
//! - the original object itself yields the original data with no error.
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tidemark::{Db, Settings};
use tidemark_fuzz::base::{self, Base, Slot};

const PUT_KEY: &str = "fuzz-put";
const PUT_VALUE: &str = "acknowledged";
const PREFIXES: [&[u8]; 5] = [b"a", b"b0", b"c", b"e", b"\xff"];

/// What an input may yield.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// The original object: the original data, and no operation fails.
    Exactly,
    /// Checksums broken: each read that succeeds returns the original data.
    OriginalOrError,
    /// Valid checksums, other content: only the consistency oracles.
    Consistent,
}

type View = BTreeMap<Bytes, Bytes>;

/// The settings of the read-write opens: the base's, with the protocol
/// named by `TIDEMARK_FUZZ_PROTOCOL` when built with feature `mutants`
/// (the read-only open always runs the shipped one).
fn settings() -> Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS
        .get_or_init(|| {
            let s = base::settings();
            match std::env::var("TIDEMARK_FUZZ_PROTOCOL") {
                Ok(name) if cfg!(feature = "mutants") => {
                    s.with_protocol(name.parse().unwrap_or_else(|e| panic!("TIDEMARK_FUZZ_PROTOCOL: {e}")))
                }
                Ok(_) => panic!("TIDEMARK_FUZZ_PROTOCOL needs a build with feature `mutants`"),
                Err(_) => s,
            }
        })
        .clone()
}

fn state() -> &'static (tokio::runtime::Runtime, Base) {
    static STATE: OnceLock<(tokio::runtime::Runtime, Base)> = OnceLock::new();
    STATE.get_or_init(|| {
        // TIDEMARK_FUZZ_LOG=debug (an env filter): the engine's log on
        // stderr, to see what an input does.
        if let Ok(filter) = std::env::var("TIDEMARK_FUZZ_LOG") {
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        let base = rt.block_on(base::build());
        (rt, base)
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, base) = state();
    let [mode, choice, obj @ ..] = data else { return };
    let slot = &base.slots[*choice as usize % base.slots.len()];
    let reseal = slot.kind.reseal();
    let mut obj = obj.to_vec();
    let sealed = mode & 1 == 1;
    if sealed {
        reseal(&mut obj);
    }
    let checksums_valid = sealed || {
        let mut again = obj.clone();
        reseal(&mut again);
        again == obj
    };
    let expect = if slot.original.as_deref() == Some(&obj[..]) {
        Expect::Exactly
    } else if !checksums_valid {
        Expect::OriginalOrError
    } else {
        Expect::Consistent
    };
    rt.block_on(run(base, slot, obj, expect));
});

async fn run(base: &Base, slot: &Slot, obj: Vec<u8>, expect: Expect) {
    let store: Arc<dyn ObjectStore> = Arc::new(base.store.fork());
    store.put(&slot.path, PutPayload::from(obj)).await.expect("in-memory put");
    let original = (expect != Expect::Consistent).then_some(&base.data);
    let exact = expect == Expect::Exactly;
    let what = format!("{} replaced ({expect:?})", slot.path);
    // fsck first: a database it finds clean must open for writing and take
    // a put (and the original database is clean).
    let report = tidemark::fsck_with(store.as_ref(), Path::from(""), &settings()).await;
    let clean = report.problems() == 0;
    assert!(!exact || clean, "fsck finds problems in the original database: {:?}", report.findings);

    let ro_view = match Db::open_read_only_with("", store.clone(), base::settings()).await {
        Ok(db) => check_view(&db, base, original, exact, &format!("read-only, {what}")).await,
        Err(e) => {
            assert!(!exact, "read-only open of the original database failed: {e}");
            None
        }
    };
    let rw = match Db::open_with("", store.clone(), settings()).await {
        Ok(db) => db,
        Err(e) => {
            assert!(!exact, "read-write open of the original database failed: {e}");
            assert!(!clean, "fsck finds the database clean, but the read-write open fails: {e}, {what}");
            return;
        }
    };
    let rw_view = check_view(&rw, base, original, exact, &format!("read-write, {what}")).await;
    if let (Some(ro), Some(rw)) = (&ro_view, &rw_view) {
        assert_eq!(ro, rw, "the read-only and the read-write view disagree, {what}");
    }
    let acked = rw.put(PUT_KEY, PUT_VALUE).await;
    assert!(!clean || acked.is_ok(), "fsck finds the database clean, but a put fails: {acked:?}, {what}");
    let closed = rw.close().await;
    drop(rw);
    assert!(!exact || (acked.is_ok() && closed.is_ok()), "put or close failed on the original database: {acked:?} {closed:?}");
    let reopened = Db::open_with("", store.clone(), settings()).await;
    if acked.is_err() {
        if let Ok(db) = reopened {
            check_view(&db, base, None, false, &format!("reopened, {what}")).await;
        }
        return;
    }
    // The put was acknowledged: the database must reopen and hold it (I3),
    // and hold everything the writer saw (or what the original holds).
    let db = reopened.unwrap_or_else(|e| panic!("an acknowledged put, then the database does not reopen: {e}, {what}"));
    let got = db.get(PUT_KEY).await;
    assert_eq!(got.as_ref().ok().cloned().flatten().as_deref(), Some(PUT_VALUE.as_bytes()), "acknowledged put lost: {got:?}, {what}");
    let before = rw_view.as_ref().or(original).map(|v| {
        let mut v = v.clone();
        v.insert(Bytes::from(PUT_KEY), Bytes::from(PUT_VALUE));
        v
    });
    check_view(&db, base, before.as_ref(), exact, &format!("reopened, {what}")).await;
    let closed = db.close().await;
    assert!(!exact || closed.is_ok(), "close after reopen failed on the original database: {closed:?}");
}

/// Reads everything: `scan`, `get` of every key written and every key the
/// scan returned, `scan_prefix`. Checks that they agree with each other
/// and, given `expected`, that every read that succeeds returns it; with
/// `exact`, that none fails. The scan, if it succeeded.
async fn check_view(db: &Db, base: &Base, expected: Option<&View>, exact: bool, what: &str) -> Option<View> {
    let scan = match db.scan(..).await {
        Ok(it) => it.collect_vec().await,
        Err(e) => Err(e),
    };
    assert!(!exact || scan.is_ok(), "scan failed: {scan:?}, {what}");
    let scan: Option<View> = scan.ok().map(|entries| {
        assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "scan is not sorted and unique, {what}");
        entries.into_iter().collect()
    });
    if let (Some(s), Some(e)) = (&scan, expected) {
        assert_eq!(s, e, "scan differs from the expected data, {what}");
    }
    let mut keys: Vec<Bytes> = base.keys.clone();
    keys.push(Bytes::from(PUT_KEY));
    keys.extend(scan.iter().flat_map(|s| s.keys().cloned()));
    for k in &keys {
        match db.get(k).await {
            Ok(v) => {
                if let Some(s) = &scan {
                    assert_eq!(v.as_ref(), s.get(k), "get disagrees with scan on {k:?}, {what}");
                }
                if let Some(e) = expected {
                    assert_eq!(v.as_ref(), e.get(k), "get differs from the expected data on {k:?}, {what}");
                }
            }
            Err(e) => assert!(!exact, "get {k:?} failed: {e}, {what}"),
        }
    }
    for p in PREFIXES {
        let got = match db.scan_prefix(Bytes::from_static(p)).await {
            Ok(it) => it.collect_vec().await,
            Err(e) => Err(e),
        };
        match got {
            Ok(got) => {
                assert!(got.iter().all(|(k, _)| k.starts_with(p)), "scan_prefix {p:?} returned a key outside it, {what}");
                for view in scan.iter().chain(expected) {
                    let want: Vec<(Bytes, Bytes)> =
                        view.iter().filter(|(k, _)| k.starts_with(p)).map(|(k, v)| (k.clone(), v.clone())).collect();
                    assert_eq!(got, want, "scan_prefix {p:?} disagrees with scan or the expected data, {what}");
                }
            }
            Err(e) => assert!(!exact, "scan_prefix {p:?} failed: {e}, {what}"),
        }
    }
    scan
}
