//! One schedule's time, read by every process of it (`Settings::clock`) and
//! by the fault stores that stamp objects with their creation times.
//!
//! Each process runs on a fresh paused tokio runtime; the schedule's clock
//! continues across them: a process's clock is a [`TokioClock`] starting
//! where the previous process's time ended, so GC ages objects by the
//! schedule's own time and a seed replays exactly (the origin is fixed, not
//! the wall clock). Between processes the store can rest (its objects age
//! while no process runs), and within one the clock can jump forward (a
//! process descheduled for a while, or a clock stepped). On the wall-clock
//! modes it is the system clock.

use std::time::Duration;

use tidemark::internals::sync::{lock, Mutex, StdArc};
use tidemark::{Clock, SystemClock, TokioClock};

/// The schedule clock's origin on the paused modes: 2023-11-14, fixed so
/// that SST names (ULIDs carry their creation time) replay exactly.
pub const ORIGIN_MS: u64 = 1_700_000_000_000;

#[derive(Debug)]
struct State {
    /// The time when no process runs: where the last one ended, plus rests.
    idle_ms: u64,
    /// The running process's clock and the jumps made during it.
    running: Option<(TokioClock, u64)>,
    /// The latest time read: the clock never goes back.
    last_ms: u64,
}

/// The schedule's clock (see the module doc). Clones share it.
#[derive(Clone, Debug)]
pub struct ScheduleClock {
    state: Option<StdArc<Mutex<State>>>,
}

impl ScheduleClock {
    /// A clock on the schedule's paused time, starting at [`ORIGIN_MS`].
    pub fn paused() -> Self {
        let state = State { idle_ms: ORIGIN_MS, running: None, last_ms: ORIGIN_MS };
        Self { state: Some(StdArc::new(Mutex::new(state))) }
    }

    /// The system clock (the wall-clock modes): jumps and rests do nothing.
    pub fn wall() -> Self {
        Self { state: None }
    }

    /// Starts a process's time; call inside its runtime, before anything
    /// reads the clock. Returns the clock its `Settings` get.
    pub fn start_process(&self) -> StdArc<dyn Clock> {
        if let Some(state) = &self.state {
            let mut s = lock(state);
            let start = s.idle_ms.max(s.last_ms);
            s.running = Some((TokioClock::starting_at(start), 0));
        }
        StdArc::new(self.clone())
    }

    /// Ends the running process's time; call inside its runtime, after its
    /// last task ran. Later reads return that time until the next process.
    pub fn end_process(&self) {
        if let Some(state) = &self.state {
            let now = self.now_ms();
            let mut s = lock(state);
            s.running = None;
            s.idle_ms = now;
        }
    }

    /// Moves the clock forward by `d` at once: between processes, the store
    /// rests; within one, its time jumps (no timer fires for the jump).
    pub fn jump(&self, d: Duration) {
        if let Some(state) = &self.state {
            let ms = d.as_millis() as u64;
            let mut s = lock(state);
            match &mut s.running {
                Some((_, jumped)) => *jumped += ms,
                None => s.idle_ms += ms,
            }
        }
    }

    /// Whether this is the paused schedule clock (jumps and rests move it).
    pub fn is_paused(&self) -> bool {
        self.state.is_some()
    }
}

impl Clock for ScheduleClock {
    fn now_ms(&self) -> u64 {
        let Some(state) = &self.state else { return SystemClock.now_ms() };
        let mut s = lock(state);
        let now = match &s.running {
            Some((clock, jumped)) => clock.now_ms() + jumped,
            None => s.idle_ms,
        };
        s.last_ms = s.last_ms.max(now);
        s.last_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paused_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("runtime")
    }

    #[test]
    fn the_schedule_clock_continues_across_processes_rests_and_jumps() {
        let clock = ScheduleClock::paused();
        assert_eq!(clock.now_ms(), ORIGIN_MS);
        paused_runtime().block_on(async {
            let c = clock.start_process();
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert_eq!(c.now_ms(), ORIGIN_MS + 30);
            clock.jump(Duration::from_secs(5));
            assert_eq!(c.now_ms(), ORIGIN_MS + 5_030);
            tokio::time::sleep(Duration::from_millis(2)).await;
            clock.end_process();
        });
        assert_eq!(clock.now_ms(), ORIGIN_MS + 5_032, "no time passes between processes by itself");
        clock.jump(Duration::from_secs(40));
        paused_runtime().block_on(async {
            let c = clock.start_process();
            assert_eq!(c.now_ms(), ORIGIN_MS + 45_032, "the next process starts where the rest ended");
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(c.now_ms(), ORIGIN_MS + 45_033);
            clock.end_process();
        });
    }
}
