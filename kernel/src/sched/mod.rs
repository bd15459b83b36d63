//! Tasks: the kernel's executor, timers and sleeping (see [`executor`]).
//!
//! On the guest the [`Platform`](executor::Platform) is Xen: the clock is
//! [`crate::time::now_ns`], and idling arms the one-shot timer for the
//! earliest deadline and blocks in `SCHEDOP_block` until an event
//! (the timer's `VIRQ_TIMER` or any other port) arrives.

pub mod executor;
pub mod timeout;

pub use timeout::{TimedOut, Timeout};

#[cfg(target_os = "none")]
mod guest {
    use super::executor::{Executor, ExecutorStats, Platform, Sleep, TaskId, YieldNow};
    use crate::events::{self, EventChannel};
    use crate::time;
    use core::future::Future;
    use core::time::Duration;
    use pv_arch::abi::event_channel::VIRQ_TIMER;
    use pv_arch::Errno;
    use spin::Mutex;

    static EXECUTOR: Executor = Executor::new();
    /// Kept bound so Xen has a port to raise when the timer fires.
    static TIMER: Mutex<Option<EventChannel>> = Mutex::new(None);

    struct Xen;

    impl Platform for Xen {
        fn now_ns(&self) -> u64 {
            time::now_ns()
        }
        fn idle(&self, deadline: Option<u64>) {
            if let Some(deadline) = deadline {
                // A failure here would mean sleeping without a wake-up;
                // fall back to yielding so timers are still polled.
                if time::set_deadline(deadline).is_err() {
                    let _ = pv_arch::hypercall::sched::sched_yield();
                    return;
                }
            }
            events::block();
        }
    }

    /// Binds the timer VIRQ. Called once at boot, after `events::init`.
    pub fn init() -> Result<(), Errno> {
        *TIMER.lock() = Some(EventChannel::bind_virq(VIRQ_TIMER)?);
        Ok(())
    }

    /// Spawns a task.
    pub fn spawn(task: impl Future<Output = ()> + Send + 'static) -> TaskId {
        EXECUTOR.spawn(task)
    }

    /// Runs `future` and all spawned tasks until `future` completes.
    pub fn block_on<F: Future>(future: F) -> F::Output {
        EXECUTOR.block_on(&Xen, future)
    }

    /// Completes after `duration`.
    pub fn sleep(duration: Duration) -> Sleep {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        sleep_until(time::now_ns().saturating_add(ns))
    }

    /// Completes at system time `deadline_ns`.
    pub fn sleep_until(deadline_ns: u64) -> Sleep {
        EXECUTOR.sleep_until(time::now_ns, deadline_ns)
    }

    /// `future`, or [`super::TimedOut`] if `duration` passes first.
    pub fn timeout<F: Future + Unpin>(duration: Duration, future: F) -> super::Timeout<F, Sleep> {
        super::Timeout::new(future, sleep(duration))
    }

    /// `future`, or [`super::TimedOut`] if system time reaches
    /// `deadline_ns` first.
    pub fn timeout_at<F: Future + Unpin>(deadline_ns: u64, future: F) -> super::Timeout<F, Sleep> {
        super::Timeout::new(future, sleep_until(deadline_ns))
    }

    /// Lets other tasks run.
    pub fn yield_now() -> YieldNow {
        YieldNow::new()
    }

    /// The executor's counters.
    pub fn stats() -> ExecutorStats {
        EXECUTOR.stats()
    }

    /// How many times the timer VIRQ fired.
    pub fn timer_fires() -> u64 {
        TIMER.lock().as_ref().map_or(0, EventChannel::count)
    }
}

#[cfg(target_os = "none")]
pub use guest::{
    block_on, init, sleep, sleep_until, spawn, stats, timeout, timeout_at, timer_fires, yield_now,
};
