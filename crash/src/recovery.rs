//! A round's recovery: a new process opens the store with no faults and the
//! oracle checks what it sees (I2-I5, shared keys, live-read anomalies);
//! with readers, a read-only handle must see the same state, and a snapshot
//! and a scan taken at once must still show it after the liveness probe
//! wrote, flushed, compacted and `close()` ran its GC pass. Then the new
//! writer must make progress, and racing openers (if any) must finish.

use std::collections::BTreeMap;

use bytes::Bytes;
use tidemark::internals::sync::{lock, Arc};
use tidemark::testing::FaultStore;
use tidemark::{Clock, DbIterator, Snapshot};

use crate::config::{CompactorPlace, Config};
use crate::db_api as api;
use crate::liveness;
use crate::oracle::{compare, State, Window};
use crate::schedule::{failure, runtime, Failure, Histories, World};
use crate::workload;

/// What the recovery found, by writer, and the views it holds on it
/// across the probe and `close()`: this process's own snapshot and scan
/// (its pins keep what they read), or a read-only handle (only its lease
/// does; the two are never held together, as the pins would protect the
/// handle's SSTs too).
struct Held {
    states: Vec<State>,
    views: Views,
}

enum Views {
    /// The scan's expiring values are judged at its start (`window`).
    Own { snapshot: Snapshot, scan: DbIterator, window: Window },
    ReadOnly(api::ReadOnly),
}

/// A whole recovery (open, checks, probe, close, racing openers) must end
/// within this: a stuck open or close is a violation, not a hung harness.
const RECOVERY_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// A new process opens the store with no faults and checks every writer.
/// `last`: the schedule's last recovery, after which openers race (if any).
pub(crate) fn recovery_phase(cfg: &Config, world: &World, histories: &Histories, round: usize, last: bool) -> Result<(), Failure> {
    let fail = |invariant: &str, detail: String| failure(cfg, invariant, detail);
    let recorder = lock(histories).recorder.clone();
    let since = recorder.len();
    let rt = runtime(cfg);
    let result = rt.block_on(async {
        let clock = world.clock.start_process();
        let store = FaultStore::new(world.inner.clone(), cfg.seed).with_clock(clock.clone(), world.leases.times.clone());
        let recovery = recover(cfg, world, histories, &recorder, &store, clock, (round, last));
        let result = tokio::time::timeout(RECOVERY_LIMIT, recovery).await.unwrap_or_else(|_| {
            Err(("liveness: RecoveryFinishes", format!("the recovery, its checks and its writer's probe did not finish within {RECOVERY_LIMIT:?} on a store without faults")))
        });
        world.clock.end_process();
        result
    });
    let listed = rt.block_on(api::list_wals(&world.inner));
    api::record_crashes(&recorder, since, listed);
    result.map_err(|(invariant, detail)| fail(invariant, detail))
}

type Broken = (&'static str, String);

async fn recover(
    cfg: &Config,
    world: &World,
    histories: &Histories,
    recorder: &tidemark::internals::trace::MemoryRecorder,
    store: &FaultStore,
    clock: Arc<dyn Clock>,
    (round, last): (usize, bool),
) -> Result<(), Broken> {
    let db = api::open(Arc::new(store.clone()), cfg, recorder, clock.clone())
        .await
        .map_err(|e| ("I2 RecoveryNeverFails", format!("open after crash failed: {e}")))?;
    if let Some((invariant, anomaly)) = lock(histories).anomalies.first() {
        return Err((invariant, anomaly.clone()));
    }
    if cfg.compaction {
        let dropped = api::drop_dead_followers(Arc::new(store.clone()), cfg.wal_store, recorder)
            .await
            .map_err(|e| ("CheckpointSucceeds", format!("deleting the checkpoints of dead followers failed: {e}")))?;
        lock(histories).injected.dead_followers_dropped += dropped;
    }
    let scan_failed = |e: tidemark::Error| ("I2 RecoveryNeverFails", format!("scan after recovery failed: {e}"));
    // Shared keys first: where both checks would fail, the shared-key
    // oracle is the one shown to catch it.
    let observed = api::scan_prefix(&db, Bytes::from_static(crate::shared::PREFIX.as_bytes())).await.map_err(scan_failed)?;
    lock(histories).shared.check_and_rebase(&observed).map_err(|v| (v.invariant, v.detail))?;
    let writer_count = lock(histories).histories.len();
    let mut states = Vec::with_capacity(writer_count);
    for w in 0..writer_count {
        let start = clock.now_ms();
        let observed: BTreeMap<Bytes, Bytes> = api::scan_prefix(&db, workload::key_prefix(w)).await.map_err(scan_failed)?;
        let window = Window::new(start, clock.now_ms());
        let mut h = lock(histories);
        let met = crate::oracle::tally(&h.histories[w].current(), window);
        h.injected.tally(met);
        h.histories[w].check_and_rebase(w, &observed, window).map_err(|v| (v.invariant(), v.to_string()))?;
        states.push(h.histories[w].base.clone());
    }
    let held = match cfg.readers {
        true => {
            let own = (cfg.seed + round as u64) % 2 == 0;
            // With GC running, the handle holds a checkpoint (a plain read-only
            // handle is not protected from another process's GC).
            let checkpointed = cfg.compaction.then(|| clock.clone());
            Some(hold_views(&db, store, cfg.wal_store, (clock.clone(), checkpointed), states, own, histories).await?)
        }
        false => None,
    };
    let s = api::process_settings(cfg, recorder, clock.clone());
    liveness::progress(&db, s.max_inflight_wal_uploads as usize, s.l0_sst_size_bytes)
        .await
        .map_err(|e| ("liveness: RecoveredWriterProgresses", e))?;
    api::close_ref(&db).await.map_err(|e| ("CloseSucceeds", format!("close after recovery failed: {e}")))?;
    let states: Vec<_> = lock(histories).histories.iter().map(|h| h.base.clone()).collect();
    if cfg.compaction {
        if cfg.ages() {
            // The GC process runs a while later (the views are still held):
            // what the close and the compaction retired is old by then.
            world.clock.jump(crate::config::REST);
        }
        standalone_passes(cfg, recorder, store, clock.clone(), &states, histories).await?;
    }
    if let Some(held) = held {
        check_views(held, world, histories).await?;
    }
    if cfg.compaction {
        make_checkpoint(cfg, store, &states, histories).await?;
        check_checkpoints(cfg, store, histories, clock.clone()).await?;
    }
    drop(db);
    if cfg.racing_openers > 0 && last {
        let outcome = liveness::race(&(Arc::new(store.clone()) as Arc<dyn object_store::ObjectStore>), cfg, recorder, cfg.racing_openers, clock)
            .await
            .map_err(|e| ("liveness: RacingOpenersFinish", e))?;
        let mut h = lock(histories);
        h.injected.racers += outcome.openers as u64;
        h.injected.racers_fenced += outcome.fenced as u64;
    }
    Ok(())
}

/// After the recovered writer closed, with views of it still held: with
/// the compactor in a process of its own, one more run (the writer's L0
/// holds the recovery's flush and the probe's), then a standalone GC pass.
/// Both must succeed on a store without faults, and a handle opened after
/// them must read exactly the recovered state (`states`, the oracle's new
/// base); the held views are read after this.
async fn standalone_passes(
    cfg: &Config,
    recorder: &tidemark::internals::trace::MemoryRecorder,
    store: &FaultStore,
    clock: Arc<dyn Clock>,
    states: &[State],
    histories: &Histories,
) -> Result<(), Broken> {
    let shared: Arc<dyn object_store::ObjectStore> = Arc::new(store.clone());
    let mut settings = api::store_settings(cfg, recorder, clock.clone(), &shared);
    settings.max_sorted_runs = 1;
    if cfg.compactor != CompactorPlace::Writer {
        let runs = tidemark::compact(api::ROOT, shared.clone(), settings.clone())
            .await
            .map_err(|e| ("CompactSucceeds", format!("a standalone compaction after recovery failed: {e}")))?;
        lock(histories).injected.standalone_compactions += runs;
    }
    // And a standalone GC pass: what it deletes must be nothing the views
    // still held from the closed process read (its pin stays while they
    // live), nor anything the latest version needs.
    tidemark::collect_garbage(api::ROOT, shared.clone(), settings)
        .await
        .map_err(|e| ("GcSucceeds", format!("a standalone GC pass after recovery failed: {e}")))?;
    lock(histories).injected.standalone_gc_passes += 1;
    let passes = match cfg.compactor {
        CompactorPlace::Writer => "a GC pass after the writer's compactions",
        _ => "a compaction and a GC pass",
    };
    let ro = api::open_read_only(shared, cfg.wal_store, clock.clone())
        .await
        .map_err(|e| ("ReadSucceeds", format!("a read-only open after the standalone passes failed: {e}")))?;
    for (w, state) in states.iter().enumerate() {
        let start = clock.now_ms();
        let seen = api::scan_prefix(&ro, workload::key_prefix(w))
            .await
            .map_err(|e| ("ReadSucceeds", format!("a scan after the standalone passes failed: {e}")))?;
        if let Some(m) = compare(state, &seen, Window::new(start, clock.now_ms())) {
            let (n, k) = (seen.len(), state.len());
            return Err((
                m.invariant("CompactionKeepsState"),
                format!("after the standalone passes ({passes}) writer {w}'s keys differ from the recovered state: {m} ({n} keys seen, {k} recovered)"),
            ));
        }
    }
    Ok(())
}

/// Durable checkpoints live at once after a recovery made its own: the
/// oldest beyond these (the live phases' too) are deleted.
const CHECKPOINTS_KEPT: usize = 2;

/// Makes a durable checkpoint of the recovered state from a process of its
/// own (`tidemark checkpoint create`, no expiry) once the recovery's views
/// are checked (so it never protects what they read): every later round's
/// writes, compactions and GC passes, in any process, run beside it. Past
/// [`CHECKPOINTS_KEPT`] the oldest is deleted, so GC also runs after a
/// checkpoint is gone. The probe wrote only keys outside the writers'.
async fn make_checkpoint(cfg: &Config, store: &FaultStore, states: &[State], histories: &Histories) -> Result<(), Broken> {
    let recorder = lock(histories).recorder.clone();
    let cp = api::create_checkpoint(Arc::new(store.clone()), cfg.wal_store, &recorder)
        .await
        .map_err(|e| ("CheckpointSucceeds", format!("a durable checkpoint after recovery failed: {e}")))?;
    let oldest: Vec<u128> = {
        let mut h = lock(histories);
        h.checkpoints.push((cp.id, Some(states.to_vec())));
        h.injected.checkpoints_made += 1;
        let excess = h.checkpoints.len().saturating_sub(CHECKPOINTS_KEPT);
        h.checkpoints.drain(..excess).map(|(id, _)| id).collect()
    };
    for id in oldest {
        api::delete_checkpoint(Arc::new(store.clone()), cfg.wal_store, id, &recorder)
            .await
            .map_err(|e| ("CheckpointSucceeds", format!("deleting durable checkpoint {id:032x} failed: {e}")))?;
    }
    Ok(())
}

/// Opens every durable checkpoint made at this or an earlier recovery or
/// live phase, after the writers, compactors and GC passes since (the last
/// a standalone one on a store without faults): each must open and show
/// exactly the state it was made at (I16; a failed read means GC deleted
/// what it pins), or, if its maker crashed before reading it, read at all.
async fn check_checkpoints(cfg: &Config, store: &FaultStore, histories: &Histories, clock: Arc<dyn Clock>) -> Result<(), Broken> {
    let checkpoints = lock(histories).checkpoints.clone();
    for (id, states) in checkpoints {
        let broken = |e: tidemark::Error| ("I16 CheckpointOpensAsCreated", format!("durable checkpoint {id:032x} no longer reads: {e}"));
        let recorder = lock(histories).recorder.clone();
        let reader = api::open_checkpoint(Arc::new(store.clone()), cfg.wal_store, id, &recorder, clock.clone()).await.map_err(broken)?;
        let writers = lock(histories).histories.len();
        for w in 0..writers {
            let start = clock.now_ms();
            let seen = checkpoint_state(&reader, w).await.map_err(broken)?;
            let Some(state) = states.as_ref().and_then(|s| s.get(w)) else { continue };
            if let Some(m) = compare(state, &seen, Window::new(start, clock.now_ms())) {
                return Err((m.invariant("I16 CheckpointOpensAsCreated"), format!("durable checkpoint {id:032x} shows writer {w}'s keys otherwise than when it was made: {m}")));
            }
        }
        reader.close().await.map_err(broken)?;
        lock(histories).injected.checkpoint_opens += 1;
    }
    Ok(())
}

/// Writer `w`'s keys as a durable checkpoint shows them.
pub(crate) async fn checkpoint_state(reader: &tidemark::DbReader, w: usize) -> tidemark::Result<BTreeMap<Bytes, Bytes>> {
    Ok(reader.scan(tidemark::prefix_range(workload::key_prefix(w))).await?.collect_vec().await?.into_iter().collect())
}

/// Takes a snapshot and a scan of writer 0's keys (`own`), or opens a
/// read-only handle, and holds them across the probe's writes, its flush
/// and compaction, and the GC pass of `close()`. Nothing is read through
/// them yet: their first reads of their SSTs come after close (a block
/// cache would answer any later read).
async fn hold_views(
    db: &api::Db,
    store: &FaultStore,
    wal_store: bool,
    (clock, checkpointed): (Arc<dyn Clock>, Option<Arc<dyn Clock>>),
    states: Vec<State>,
    own: bool,
    histories: &Histories,
) -> Result<Held, Broken> {
    if own {
        let snapshot = db.snapshot();
        let start = clock.now_ms();
        let scan = db.scan_prefix(workload::key_prefix(0)).await.map_err(|e| ("ReadSucceeds", format!("scan after recovery failed: {e}")))?;
        let window = Window::new(start, clock.now_ms());
        return Ok(Held { states, views: Views::Own { snapshot, scan, window } });
    }
    // Nothing writes while the recovered writer has not begun its probe:
    // the handle must open.
    let shared: Arc<dyn object_store::ObjectStore> = Arc::new(store.clone());
    let ro = match checkpointed {
        None => api::open_read_only(shared, wal_store, clock).await.map(api::ReadOnly::Plain),
        Some(clock) => {
            let recorder = lock(histories).recorder.clone();
            api::open_checkpointed(shared, wal_store, clock, None, &recorder).await.map(api::ReadOnly::Checkpointed)
        }
    }
    .map_err(|e| ("ReadSucceeds", format!("a read-only open after recovery failed: {e}")))?;
    lock(histories).injected.read_only_opens += 1;
    Ok(Held { states, views: Views::ReadOnly(ro) })
}

/// Reads the held views after `close()`: the recovered state (this
/// process's GC kept what its own views read; the read-only handle's,
/// while its lease held).
async fn check_views(held: Held, world: &World, histories: &Histories) -> Result<(), Broken> {
    let Held { states, views } = held;
    match views {
        Views::Own { snapshot, scan, window } => {
            for (w, state) in states.iter().enumerate() {
                let start = world.clock.now_ms();
                let read = async { snapshot.scan_prefix(workload::key_prefix(w)).await?.collect_vec().await };
                let seen: BTreeMap<Bytes, Bytes> = read
                    .await
                    .map_err(|e| crate::reads::unexplained(&e, "a snapshot held across the probe and close"))?
                    .into_iter()
                    .collect();
                if let Some(m) = compare(state, &seen, Window::new(start, world.clock.now_ms())) {
                    return Err((
                        m.invariant("SnapshotStable"),
                        format!("a snapshot taken at recovery shows {} of writer {w}'s keys after close, not {}: {m}", seen.len(), state.len()),
                    ));
                }
            }
            let scanned: BTreeMap<Bytes, Bytes> = scan
                .collect_vec()
                .await
                .map_err(|e| crate::reads::unexplained(&e, "a scan held across the probe and close"))?
                .into_iter()
                .collect();
            if let Some(m) = compare(&states[0], &scanned, window) {
                return Err((
                    m.invariant("ScanStable"),
                    format!("a scan begun at recovery yields {} of writer 0's keys after close, not {}: {m}", scanned.len(), states[0].len()),
                ));
            }
            lock(histories).injected.views_checked += 2;
        }
        Views::ReadOnly(ro) => {
            let lease = match &ro {
                api::ReadOnly::Plain(_) => crate::reads::Lease::Version(ro.version().await),
                api::ReadOnly::Checkpointed(_) => crate::reads::Lease::Pinned,
            };
            for (w, state) in states.iter().enumerate() {
                let start = world.clock.now_ms();
                let read = ro.scan_prefix(workload::key_prefix(w)).await;
                let window = Window::new(start, world.clock.now_ms());
                match read {
                    Ok(seen) => match compare(state, &seen, window) {
                        None => lock(histories).injected.read_only_reads += 1,
                        Some(m) => {
                            return Err((
                                m.invariant("ReadOnlyViewFixed"),
                                format!("a read-only handle opened at recovery sees {} of writer {w}'s keys after close, not {}: {m}", seen.len(), state.len()),
                            ));
                        }
                    },
                    Err(e) => match crate::reads::judge(&e, false, &world.leases, lease, world.clock.now_ms(), "a read-only scan held across close") {
                        Some(v) => return Err(v),
                        None => break,
                    },
                }
            }
            ro.close().await.map_err(|e| ("CloseSucceeds", format!("closing a read-only handle held across close failed: {e}")))?;
        }
    }
    Ok(())
}
