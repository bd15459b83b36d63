//! The domain's lifecycle as the toolstack drives it: shutdown
//! requests, the application's stop signal, and closing devices on the
//! way out.
//!
//! The control task (started by [`entry!`](crate::entry) for a domU)
//! watches `control/shutdown`. On `poweroff`, `halt` or `reboot` it
//! raises the stop signal ([`stop_requested`]: apps select on it and
//! return), gives the app a short grace, closes every device registered
//! with [`register_closer`] (netfront and blkfront go Closing → Closed
//! and end their grants), drains the console and ends the domain with
//! the matching `SCHEDOP_shutdown` reason. `suspend` goes to
//! [`suspend::suspend_and_resume`].

#[cfg(target_os = "none")]
mod control;
pub mod suspend;

#[cfg(target_os = "none")]
pub use control::{run_async, run_bare, run_sync, CLOSE_LIMIT, STOP_GRACE};

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;

use kernel::AppError;
use spin::Mutex;

/// What a closer's future gives back: `Ok` once the device is closed,
/// or why it could not be closed cleanly.
pub type CloseResult = Result<(), AppError>;

/// A boxed close action, as the registry keeps it.
type CloseFuture = Pin<Box<dyn Future<Output = CloseResult> + Send>>;
type CloseAction = Box<dyn FnOnce() -> CloseFuture + Send>;

/// Names a registered closer, to take it back with [`unregister_closer`]
/// (a device dropped before the shutdown has nothing left to close).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CloserId(u64);

struct Closer {
    id: CloserId,
    name: &'static str,
    close: CloseAction,
}

struct Registry {
    next_id: u64,
    closers: Vec<Closer>,
}

static CLOSERS: Mutex<Registry> = Mutex::new(Registry {
    next_id: 0,
    closers: Vec::new(),
});

/// Registers how to close a device on shutdown: `close` is called once,
/// by the control task, after the app stopped; its future closes the
/// device (xenbus Closing → Closed, grants ended). `name` says what it
/// is in the shutdown log (`vif/0`, `vbd/51712`). Closers run in the
/// reverse order of registration, each with a bounded wait.
pub fn register_closer<F, Fut>(name: &'static str, close: F) -> CloserId
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = CloseResult> + Send + 'static,
{
    let mut registry = CLOSERS.lock();
    let id = CloserId(registry.next_id);
    registry.next_id = registry.next_id.wrapping_add(1);
    registry.closers.push(Closer {
        id,
        name,
        close: Box::new(move || Box::pin(close()) as CloseFuture),
    });
    id
}

/// Takes back a closer (its device was closed or dropped already).
/// Returns whether it was still registered.
pub fn unregister_closer(id: CloserId) -> bool {
    let mut registry = CLOSERS.lock();
    let before = registry.closers.len();
    registry.closers.retain(|closer| closer.id != id);
    registry.closers.len() != before
}

/// Takes every registered closer, newest first (devices opened last are
/// closed first).
fn take_closers() -> Vec<(&'static str, CloseAction)> {
    let mut closers = core::mem::take(&mut CLOSERS.lock().closers);
    closers.reverse();
    closers
        .into_iter()
        .map(|closer| (closer.name, closer.close))
        .collect()
}

/// How many closers are registered.
pub fn registered_closers() -> usize {
    CLOSERS.lock().closers.len()
}

pub(crate) static STOP: crate::task::Signal = crate::task::Signal::new();

/// Completes once the toolstack asked the domain to stop (poweroff,
/// halt or reboot). Apps select on it and return `Ok(())`; one that
/// does not is stopped anyway after a short grace.
pub async fn stop_requested() {
    STOP.wait().await
}

/// Whether a stop was requested.
pub fn is_stop_requested() -> bool {
    STOP.is_set()
}

/// What closing one device came to.
#[derive(Debug)]
pub struct Closed {
    /// The closer's name.
    pub name: &'static str,
    /// Its outcome.
    pub result: CloseResult,
}

/// Runs every registered closer, newest first, one after the other, each
/// bounded by `wait` (given the closer's future, it returns the outcome;
/// the guest passes a timeout, the host tests a plain await).
// The control task (guest only) is its caller.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) async fn close_devices_with<W, WF>(mut wait: W) -> Vec<Closed>
where
    W: FnMut(CloseFuture) -> WF,
    WF: Future<Output = CloseResult>,
{
    let mut outcomes = Vec::new();
    for (name, close) in take_closers() {
        let result = wait(close()).await;
        outcomes.push(Closed { name, result });
    }
    outcomes
}

#[cfg(test)]
mod tests;
