//! Acknowledgement waiters: a slot a writer awaits until its WAL is durable.
//!
//! The outcome and the waker live under one lock, and the commit log moves a
//! slot out of its waiter map before completing it, so a completion can never
//! slip between a waiter's check and its registration (no lost wake-up).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::protocol::Epoch;
use crate::sync::{lock, Arc, Mutex};

/// Why a write will never be acknowledged by this writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckError {
    /// A newer epoch fenced this writer (I5).
    Fenced {
        /// The newer epoch.
        by: Epoch,
    },
    /// The database was closed before the write became durable.
    Closed,
    /// The WAL upload failed for good.
    Failed(String),
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::Fenced { by } => write!(f, "fenced by epoch {by}"),
            AckError::Closed => f.write_str("closed"),
            AckError::Failed(reason) => write!(f, "WAL upload failed: {reason}"),
        }
    }
}

struct SlotState {
    outcome: Option<Result<(), AckError>>,
    waker: Option<Waker>,
}

/// One pending acknowledgement.
pub(crate) struct AckSlot {
    state: Mutex<SlotState>,
}

impl AckSlot {
    pub(crate) fn new() -> Self {
        Self { state: Mutex::new(SlotState { outcome: None, waker: None }) }
    }

    /// Sets the outcome once and wakes the waiter, if it is parked.
    pub(crate) fn complete(&self, outcome: Result<(), AckError>) {
        let waker = {
            let mut state = lock(&self.state);
            if state.outcome.is_some() {
                return;
            }
            state.outcome = Some(outcome);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A future that resolves when the write is acknowledged or can never be.
pub struct AckWait {
    ready: Option<Result<(), AckError>>,
    slot: Option<Arc<AckSlot>>,
}

impl AckWait {
    pub(crate) fn ready(outcome: Result<(), AckError>) -> Self {
        Self { ready: Some(outcome), slot: None }
    }

    pub(crate) fn pending(slot: Arc<AckSlot>) -> Self {
        Self { ready: None, slot: Some(slot) }
    }

    /// The outcome if already decided, without waiting.
    pub fn try_outcome(&self) -> Option<Result<(), AckError>> {
        if let Some(ready) = &self.ready {
            return Some(ready.clone());
        }
        self.slot.as_ref().and_then(|slot| lock(&slot.state).outcome.clone())
    }
}

impl Future for AckWait {
    type Output = Result<(), AckError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(ready) = this.ready.take() {
            return Poll::Ready(ready);
        }
        let Some(slot) = &this.slot else {
            return Poll::Ready(Err(AckError::Failed("acknowledgement polled after completion".into())));
        };
        let mut state = lock(&slot.state);
        match state.outcome.take() {
            Some(outcome) => {
                drop(state);
                this.slot = None;
                Poll::Ready(outcome)
            }
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
