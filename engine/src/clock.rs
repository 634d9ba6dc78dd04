//! The one clock every age decision reads: GC's `now`, the creation time in
//! an SST's name, checkpoint expiry. The engine's default is the wall clock;
//! a harness gives the paused tokio clock, so a schedule can age objects
//! past `gc_min_age` and replay exactly. The tested path and the shipped path
//! differ only in the clock given.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as some clock tells them: the one
/// source of "now" for every age decision (GC's `gc_min_age`, SST creation
/// times), given to a database with [`Settings::with_clock`](crate::Settings::with_clock).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tidemark::Result<()> {
/// use std::sync::Arc;
/// use tidemark::{Clock, Db, Settings, TokioClock};
///
/// // A harness that pauses tokio's time ages objects exactly as it sleeps.
/// let clock = TokioClock::new();
/// let t0 = clock.now_ms();
/// let db = Db::open_url("memory://", Settings::default().with_clock(Arc::new(clock))).await?;
/// db.put("k", "v").await?;
/// assert!(clock.now_ms() >= t0);
/// db.close().await
/// # }
/// ```
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The wall clock (`SystemTime`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

/// tokio's clock: the wall-clock time when it was made, advanced by tokio's
/// `Instant` since. Under a paused runtime (`tokio::time::pause`) it moves
/// only when tokio's time does, so schedules that sleep age objects exactly.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    origin_ms: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock starting at the wall clock's now. Needs a tokio runtime.
    pub fn new() -> Self {
        Self::starting_at(SystemClock.now_ms())
    }

    /// A clock that reads `origin_ms` now and moves with tokio's time from
    /// here: a harness that runs several processes one after another, each
    /// on a fresh paused runtime, continues one schedule's time across them
    /// (and a seed replays exactly, whatever the wall clock says).
    pub fn starting_at(origin_ms: u64) -> Self {
        Self { origin_ms, start: tokio::time::Instant::now() }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.origin_ms.saturating_add(self.start.elapsed().as_millis() as u64)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_moves_with_paused_time_only() {
        let c = TokioClock::new();
        let t0 = c.now_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(c.now_ms(), t0, "wall time passing does not move a paused clock");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        assert_eq!(c.now_ms(), t0 + 250);
    }
}
