//! Tasks for applications: the kernel's executor (`spawn`, `spawn_on` a
//! given vCPU once `kernel::smp::start_secondaries` brought it up, `sleep`,
//! `timeout`, `yield_now`), plus the few pieces servers need between
//! their tasks: [`select`] of two futures, a one-shot [`Signal`] (a
//! connection task telling the accept loop to stop), a [`Notify`] that
//! hands one permit at a time (work arrived: wake up and look), and a
//! [`Mutex`] for state tasks share (held only between `.await`s).

use alloc::vec::Vec;
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Poll, Waker};

#[cfg(target_os = "none")]
pub use kernel::sched::{sleep, sleep_until, spawn, spawn_on, timeout, yield_now, TimedOut};
/// A lock for state shared by tasks: never hold it across an `.await`.
pub use spin::Mutex;

/// Which of [`select`]'s futures finished first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first.
    Left(A),
    /// The second.
    Right(B),
}

/// Runs `a` and `b` together until one finishes (`a` is polled first);
/// the other is dropped.
pub async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(value) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(value));
        }
        if let Poll::Ready(value) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(value));
        }
        Poll::Pending
    })
    .await
}

/// A flag and the tasks waiting for it: the one mechanism under
/// [`Signal`] (waiting leaves the flag up) and [`Notify`] (waiting takes
/// it down).
#[derive(Default)]
struct WakeFlag {
    raised: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
}

impl WakeFlag {
    const fn new() -> WakeFlag {
        WakeFlag {
            raised: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// Raises the flag, then wakes every waiter.
    fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        for waker in core::mem::take(&mut *self.waiters.lock()) {
            waker.wake();
        }
    }

    fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    /// Looks at the flag, taking it down if `take`.
    fn check(&self, take: bool) -> bool {
        if take {
            self.raised.swap(false, Ordering::SeqCst)
        } else {
            self.is_raised()
        }
    }

    /// Completes once the flag is up (taking it down if `take`).
    async fn wait(&self, take: bool) {
        poll_fn(|cx| {
            if self.check(take) {
                return Poll::Ready(());
            }
            let mut waiters = self.waiters.lock();
            // Checked again under the lock: `raise` takes it after
            // raising the flag, so it cannot slip in between.
            if self.check(take) {
                return Poll::Ready(());
            }
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// A flag that tasks can wait for: once [`Signal::set`], every
/// [`Signal::wait`] completes, now and later.
#[derive(Default)]
pub struct Signal(WakeFlag);

impl Signal {
    /// A signal not yet set.
    pub const fn new() -> Signal {
        Signal(WakeFlag::new())
    }

    /// Sets it and wakes every waiter.
    pub fn set(&self) {
        self.0.raise();
    }

    /// Whether it is set.
    pub fn is_set(&self) -> bool {
        self.0.is_raised()
    }

    /// Completes once it is set.
    pub async fn wait(&self) {
        self.0.wait(false).await
    }
}

/// A wake-up with one stored permit: [`Notify::notify`] wakes the
/// waiters, or, if nobody waits yet, leaves a permit that the next
/// [`Notify::notified`] takes at once. So a task that checks its
/// condition and then awaits `notified()` cannot miss a `notify` that
/// came in between.
#[derive(Default)]
pub struct Notify(WakeFlag);

impl Notify {
    /// No permit, no waiters.
    pub const fn new() -> Notify {
        Notify(WakeFlag::new())
    }

    /// Leaves a permit and wakes every waiter (one of them takes it).
    pub fn notify(&self) {
        self.0.raise();
    }

    /// Completes once a permit is there, taking it.
    pub async fn notified(&self) {
        self.0.wait(true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use core::sync::atomic::AtomicUsize;
    use core::task::Context;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_signal_wakes_its_waiters_and_stays_set() {
        let signal = Signal::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut first = Box::pin(signal.wait());
        let mut second = Box::pin(signal.wait());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        signal.set();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "one waker, registered once"
        );
        assert!(first.as_mut().poll(&mut cx).is_ready());
        assert!(second.as_mut().poll(&mut cx).is_ready());
        assert!(Box::pin(signal.wait()).as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn select_takes_the_first_ready() {
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        let signal = Signal::new();
        let mut both = Box::pin(select(signal.wait(), async { 7 }));
        assert_eq!(both.as_mut().poll(&mut cx), Poll::Ready(Either::Right(7)));
        signal.set();
        let mut both = Box::pin(select(signal.wait(), async { 7 }));
        assert_eq!(both.as_mut().poll(&mut cx), Poll::Ready(Either::Left(())));
    }

    #[test]
    fn a_notify_before_the_wait_is_kept_and_taken_once() {
        let notify = Notify::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        notify.notify();
        assert!(Box::pin(notify.notified())
            .as_mut()
            .poll(&mut cx)
            .is_ready());
        let mut waiting = Box::pin(notify.notified());
        assert!(
            waiting.as_mut().poll(&mut cx).is_pending(),
            "the permit was taken"
        );
        notify.notify();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
        assert!(Box::pin(notify.notified())
            .as_mut()
            .poll(&mut cx)
            .is_pending());
    }
}
