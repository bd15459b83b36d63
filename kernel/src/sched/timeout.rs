//! [`Timeout`]: a future bounded by a deadline.
//!
//! Every wait on another domain (a backend's state change, a xenstore
//! reply, a peer's bytes) needs a limit, and writing that limit as a
//! loop around `now_ns()` is how waits come to block the vCPU. Wrap the
//! future instead: [`Timeout`] polls it and the deadline's sleep
//! together, and completes with whichever comes first.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

/// The deadline passed before the future completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

impl core::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("timed out")
    }
}

/// `future`, or [`TimedOut`] once `deadline` (any future that completes
/// at the deadline, usually the executor's `Sleep`) completes first.
pub struct Timeout<F, D> {
    future: F,
    deadline: D,
}

impl<F, D> Timeout<F, D> {
    /// Bounds `future` by `deadline`.
    pub fn new(future: F, deadline: D) -> Self {
        Timeout { future, deadline }
    }
}

impl<F: Future + Unpin, D: Future<Output = ()> + Unpin> Future for Timeout<F, D> {
    type Output = Result<F::Output, TimedOut>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The future first: work that is ready wins over a deadline that
        // passed while we were not polled.
        if let Poll::Ready(value) = Pin::new(&mut self.future).poll(cx) {
            return Poll::Ready(Ok(value));
        }
        match Pin::new(&mut self.deadline).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use core::task::Waker;

    fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn ready_work_wins_over_a_passed_deadline() {
        let mut both = Timeout::new(core::future::ready(5), core::future::ready(()));
        assert_eq!(poll_once(&mut both), Poll::Ready(Ok(5)));
    }

    #[test]
    fn a_passed_deadline_ends_pending_work() {
        let mut late = Timeout::new(
            Box::pin(core::future::pending::<u8>()),
            core::future::ready(()),
        );
        assert_eq!(poll_once(&mut late), Poll::Ready(Err(TimedOut)));
        let mut waiting = Timeout::new(
            Box::pin(core::future::pending::<u8>()),
            Box::pin(core::future::pending::<()>()),
        );
        assert_eq!(poll_once(&mut waiting), Poll::Pending);
    }
}
