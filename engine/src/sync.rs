//! The one place that decides which synchronisation types the engine uses.
//!
//! Under `--cfg loom` these are loom's instrumented types, so the loom suite
//! permutes the engine's real code; otherwise they are `std`'s. No other
//! module of the engine names `std::sync` or `loom` (a test enforces it).

#[cfg(loom)]
pub use loom::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};

#[cfg(not(loom))]
pub use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};

/// `Arc` for values shared with other crates, such as object stores: always
/// std's, because object_store's API takes std's `Arc` and loom's cannot hold
/// a trait object. Never use it for state the loom suite must permute.
pub use std::sync::Arc as StdArc;

/// `Weak` of `StdArc`, for registries of shared values (the open SST
/// trees readers still hold).
pub use std::sync::Weak as StdWeak;

/// Async primitives for tasks (the manifest and compaction locks, flusher
/// wake-ups, SST readers opened once). They are tokio's under loom too: the
/// loom suite permutes the commit path, which uses none of them.
pub mod task {
    pub use tokio::sync::{oneshot, Mutex, Notify, OnceCell};
}

/// Threads, for code that spawns them (loom's under `--cfg loom`).
pub mod thread {
    #[cfg(loom)]
    pub use loom::thread::{spawn, yield_now, JoinHandle};
    #[cfg(not(loom))]
    pub use std::thread::{spawn, yield_now, JoinHandle};
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
///
/// A poisoned lock here only means another thread panicked mid-update; the
/// protected state machines are updated in single assignments, so carrying on
/// is sound and keeps one panic from cascading through every caller.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
