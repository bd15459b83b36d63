//! [`Slot`]: what the kernel knows about one bound port, and the rules
//! for waiting on it.
//!
//! A slot is changed only in task context, under the port table's lock:
//! [`Slot::raise`] when the executor hands over an event the upcall
//! recorded, [`Slot::poll_wait`] when a task polls its wait,
//! [`Slot::take_fired`] when code checks without waiting. Kept apart from
//! the guest glue so the host tests can run it.

use alloc::vec::Vec;
use core::task::{Poll, Waker};

/// One bound port's state.
#[derive(Default)]
pub struct Slot {
    /// Raised since the owner last looked.
    fired: bool,
    /// Times raised in total.
    count: u64,
    /// The tasks to wake when it is raised (one waker per task).
    waiters: Vec<Waker>,
}

impl Slot {
    /// The port was raised: marks and counts it, and returns the wakers
    /// of every waiting task (to be woken once the table is unlocked).
    pub fn raise(&mut self) -> Vec<Waker> {
        self.fired = true;
        self.count += 1;
        core::mem::take(&mut self.waiters)
    }

    /// Whether it was raised since the last look; clears that.
    pub fn take_fired(&mut self) -> bool {
        core::mem::take(&mut self.fired)
    }

    /// Times raised since it was bound.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The wakers still registered (the port is closing: wake them so
    /// they see it gone).
    pub fn into_waiters(self) -> Vec<Waker> {
        self.waiters
    }

    /// One poll of a wait. `seen` belongs to the wait: `None` before its
    /// first poll, then the count it started from. The first poll
    /// completes at once if the port was raised since the flag was last
    /// taken; later polls complete once the count has moved, so one event
    /// completes every wait that was pending when it came. Completing
    /// takes the flag (the event is handled).
    pub fn poll_wait(&mut self, seen: &mut Option<u64>, waker: &Waker) -> Poll<()> {
        let fired = match *seen {
            None => self.fired,
            Some(start) => self.count != start,
        };
        if fired {
            self.fired = false;
            return Poll::Ready(());
        }
        seen.get_or_insert(self.count);
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use core::sync::atomic::{AtomicU32, Ordering};

    /// A waker that counts its wake-ups (also for other modules' tests).
    pub(crate) struct CountingWaker(pub(crate) AtomicU32);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn counting() -> (Arc<CountingWaker>, Waker) {
        let inner = Arc::new(CountingWaker(AtomicU32::new(0)));
        (inner.clone(), Waker::from(inner))
    }

    fn wake_all(wakers: Vec<Waker>) {
        wakers.into_iter().for_each(Waker::wake);
    }

    #[test]
    fn one_event_wakes_and_completes_every_waiter() {
        let mut slot = Slot::default();
        let (a_count, a) = counting();
        let (b_count, b) = counting();
        let (mut a_seen, mut b_seen) = (None, None);
        assert_eq!(slot.poll_wait(&mut a_seen, &a), Poll::Pending);
        assert_eq!(slot.poll_wait(&mut b_seen, &b), Poll::Pending);
        wake_all(slot.raise());
        assert_eq!(a_count.0.load(Ordering::SeqCst), 1);
        assert_eq!(b_count.0.load(Ordering::SeqCst), 1);
        assert_eq!(slot.poll_wait(&mut a_seen, &a), Poll::Ready(()));
        // The first waiter took the flag; the second still completes.
        assert_eq!(slot.poll_wait(&mut b_seen, &b), Poll::Ready(()));
        assert_eq!(slot.count(), 1);
        assert!(!slot.take_fired());
    }

    #[test]
    fn a_wait_after_an_unseen_event_completes_at_once() {
        let mut slot = Slot::default();
        wake_all(slot.raise());
        let (_, waker) = counting();
        let mut seen = None;
        assert_eq!(slot.poll_wait(&mut seen, &waker), Poll::Ready(()));
        // That event is handled: the next wait waits.
        let mut seen = None;
        assert_eq!(slot.poll_wait(&mut seen, &waker), Poll::Pending);
    }

    #[test]
    fn repolling_a_waiter_registers_it_once() {
        let mut slot = Slot::default();
        let (count, waker) = counting();
        let mut seen = None;
        for _ in 0..5 {
            assert_eq!(slot.poll_wait(&mut seen, &waker), Poll::Pending);
        }
        wake_all(slot.raise());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn take_fired_sees_each_event_once() {
        let mut slot = Slot::default();
        assert!(!slot.take_fired());
        wake_all(slot.raise());
        wake_all(slot.raise());
        assert!(slot.take_fired());
        assert!(!slot.take_fired());
        assert_eq!(slot.count(), 2);
    }

    #[test]
    fn closing_hands_back_the_waiters() {
        let mut slot = Slot::default();
        let (count, waker) = counting();
        let _ = slot.poll_wait(&mut None, &waker);
        wake_all(slot.into_waiters());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}
