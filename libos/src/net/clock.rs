//! Time for the network stack: Xen's clock and the executor's deadlines
//! in the guest; on the host (the tests), a clock the test sets.
//!
//! Everything above this module reads time and bounds waits through it,
//! so the stack's logic runs unchanged in host tests.

use core::future::Future;
use core::time::Duration;

use super::NetError;

/// smoltcp's time for system time `ns`.
pub(crate) fn instant(ns: u64) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(ns / 1000).unwrap_or(i64::MAX))
}

/// System time for smoltcp's `instant` (negative: 0).
pub(crate) fn ns_of(instant: smoltcp::time::Instant) -> u64 {
    u64::try_from(instant.total_micros())
        .unwrap_or(0)
        .saturating_mul(1000)
}

/// The system time `limit` from now (saturating).
pub(crate) fn deadline_after(limit: Duration) -> u64 {
    let ns = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
    now_ns().saturating_add(ns)
}

#[cfg(target_os = "none")]
mod imp {
    use super::*;

    pub(crate) fn now_ns() -> u64 {
        kernel::time::now_ns()
    }

    /// `future`, or [`NetError::Timeout`] at system time `deadline_ns`.
    pub(crate) async fn timeout_at<T, F>(deadline_ns: u64, future: F) -> Result<T, NetError>
    where
        F: Future<Output = Result<T, NetError>>,
    {
        let future = core::pin::pin!(future);
        match kernel::sched::timeout_at(deadline_ns, future).await {
            Ok(result) => result,
            Err(kernel::sched::TimedOut) => Err(NetError::Timeout),
        }
    }
}

#[cfg(not(target_os = "none"))]
mod imp {
    use super::*;
    use core::pin::pin;
    use core::task::Poll;

    /// The host's clock (ns): fixed outside the tests.
    #[cfg(not(test))]
    pub(crate) fn now_ns() -> u64 {
        1_000_000_000
    }

    #[cfg(test)]
    std::thread_local! {
        /// Each test's clock (ns; tests run on threads of their own),
        /// moved by [`set_now_ns`].
        static NOW_NS: core::cell::Cell<u64> = const { core::cell::Cell::new(1_000_000_000) };
    }

    #[cfg(test)]
    pub(crate) fn now_ns() -> u64 {
        NOW_NS.with(core::cell::Cell::get)
    }

    /// Moves the test's clock.
    #[cfg(test)]
    pub(crate) fn set_now_ns(ns: u64) {
        NOW_NS.with(|now| now.set(ns));
    }

    /// `future`, or [`NetError::Timeout`] if it is still pending when
    /// polled at or after `deadline_ns` (the host tests poll by hand).
    pub(crate) async fn timeout_at<T, F>(deadline_ns: u64, future: F) -> Result<T, NetError>
    where
        F: Future<Output = Result<T, NetError>>,
    {
        let mut future = pin!(future);
        core::future::poll_fn(|cx| match future.as_mut().poll(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending if now_ns() >= deadline_ns => Poll::Ready(Err(NetError::Timeout)),
            Poll::Pending => Poll::Pending,
        })
        .await
    }
}

pub(crate) use imp::*;
