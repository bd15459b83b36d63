//! Tasks: the kernel's executor, timers and sleeping (see [`executor`]).
//!
//! On the guest the [`Platform`](executor::Platform) is Xen: the clock is
//! [`crate::time::now_ns`], events the upcall recorded are handed over
//! with [`crate::events::wake_waiters`], and idling arms the one-shot
//! timer for the earliest deadline and blocks the vCPU in Xen
//! (`SCHEDOP_block` in PV, `sti; hlt` in PVH) until an event (the
//! timer's `VIRQ_TIMER` or any other port) arrives. Idle costs nothing:
//! there is no path on which the executor polls the clock in a loop.
//!
//! Once [`crate::smp::start_secondaries`] has run, every secondary vCPU
//! serves the executor too (its idle loop in `smp::secondary`): shared
//! tasks run wherever a vCPU is free, [`spawn_on`] pins one to a vCPU,
//! and a wake-up kicks an idle vCPU with its IPI port. Apps that never
//! start secondaries run exactly as on one vCPU (no kicks, no extra
//! hypercalls).
//!
//! [`block_on`] is for the top level only (an application's entry, a
//! suite check); [`try_block_on`] refuses a nested call with
//! [`NestedBlockOn`](executor::NestedBlockOn). See [`executor`].

pub mod executor;
#[cfg(test)]
mod stress_tests;
pub mod timeout;

pub use timeout::{TimedOut, Timeout};

#[cfg(target_os = "none")]
mod guest {
    use super::executor::{
        Executor, ExecutorStats, NestedBlockOn, Platform, Sleep, TaskId, Vcpus, YieldNow,
    };
    use crate::events::{self, EventChannel};
    use crate::time;
    use core::future::Future;
    use core::sync::atomic::{AtomicU64, Ordering};
    use core::time::Duration;
    use pv_arch::abi::event_channel::VIRQ_TIMER;
    use pv_arch::Errno;
    use spin::Mutex;

    static EXECUTOR: Executor = Executor::new();
    /// Times arming the one-shot timer failed (see `Xen::idle`).
    static SET_DEADLINE_FAILURES: AtomicU64 = AtomicU64::new(0);
    /// Kept bound so Xen has a port to raise when the timer fires.
    static TIMER: Mutex<Option<EventChannel>> = Mutex::new(None);

    struct Xen;

    impl Vcpus for Xen {
        fn current(&self) -> u32 {
            crate::smp::current_vcpu()
        }
        fn kick(&self, vcpu: u32) {
            // No kick port (not brought up): nothing of ours runs there.
            let _ = crate::smp::kick(vcpu);
        }
    }

    static XEN: Xen = Xen;

    impl Platform for Xen {
        fn now_ns(&self) -> u64 {
            time::now_ns()
        }
        fn wake_event_waiters(&self) {
            events::wake_waiters();
        }
        fn idle(&self, deadline: Option<u64>) {
            // Pages a backend still mapped when their owner dropped them
            // wait in the grant table's quarantine; with nothing else to
            // do, see whether it has let go (cheap when none wait).
            crate::grant::reap();
            if let Some(deadline) = deadline {
                if let Err(e) = time::set_deadline(deadline) {
                    // Xen refuses a one-shot timer only for another vCPU
                    // or an unreadable argument, neither of which we
                    // pass; blocking without the timer could sleep for
                    // ever, so yield instead, and say so (once).
                    SET_DEADLINE_FAILURES.fetch_add(1, Ordering::Relaxed);
                    if SET_DEADLINE_FAILURES.load(Ordering::Relaxed) == 1 {
                        log::error!("set_singleshot_timer failed ({e}): the executor yields instead of blocking");
                    }
                    let _ = pv_arch::hypercall::sched::sched_yield();
                    return;
                }
            }
            events::idle_until_event();
        }
    }

    /// Binds the timer VIRQ. Called once at boot, after `events::init`.
    pub fn init() -> Result<(), Errno> {
        *TIMER.lock() = Some(EventChannel::bind_virq(VIRQ_TIMER)?);
        Ok(())
    }

    /// After a resume in a new domain: the timer VIRQ is bound again (the
    /// old binding went with the old domain) and the periodic tick,
    /// which a new vCPU has again, is stopped. The one-shot timer is
    /// armed by the next idle for the earliest deadline, in the new
    /// domain's system time: a deadline that passed while we were away
    /// fires once, at the first idle.
    pub fn resume_in_new_domain() -> Result<(), Errno> {
        time::init()?;
        let old = TIMER.lock().replace(EventChannel::bind_virq(VIRQ_TIMER)?);
        // Stale: dropping it makes no hypercall.
        drop(old);
        Ok(())
    }

    /// Spawns a task (on any vCPU that serves the executor: vCPU 0, and
    /// every secondary once brought up).
    pub fn spawn(task: impl Future<Output = ()> + Send + 'static) -> TaskId {
        EXECUTOR.spawn(task)
    }

    /// Spawns a task that runs only on vCPU `vcpu`: `EINVAL` unless that
    /// vCPU runs Paravane code (vCPU 0, or one brought up by
    /// [`crate::smp::start_secondaries`]).
    pub fn spawn_on(
        vcpu: u32,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> Result<TaskId, Errno> {
        if vcpu >= crate::smp::vcpus_started() || (vcpu != 0 && !crate::smp::is_alive(vcpu)) {
            return Err(Errno::EINVAL);
        }
        EXECUTOR.spawn_on(vcpu, task).ok_or(Errno::EINVAL)
    }

    /// Called by secondary vCPU `vcpu` as it reaches its idle loop: it
    /// serves the executor from now on.
    pub(crate) fn serve_on_secondary(vcpu: u32) {
        EXECUTOR.set_vcpus(&XEN);
        EXECUTOR.serve(vcpu);
    }

    /// One turn of secondary vCPU `vcpu`: polls what is ready for it.
    pub(crate) fn secondary_turn(vcpu: u32) -> usize {
        EXECUTOR.run_turn(vcpu)
    }

    /// Secondary vCPU `vcpu` is about to block (upcalls masked): `false`
    /// if a task for it is queued (see the executor's docs).
    pub(crate) fn secondary_prepare_idle(vcpu: u32) -> bool {
        EXECUTOR.prepare_idle(vcpu)
    }

    /// Secondary vCPU `vcpu` is back from its block.
    pub(crate) fn secondary_end_idle(vcpu: u32) {
        EXECUTOR.end_idle(vcpu);
    }

    /// Secondary vCPU `vcpu` is about to go offline: its queued pinned
    /// tasks move to the shared queue and it serves nothing.
    pub(crate) fn secondary_offline(vcpu: u32) {
        EXECUTOR.take_offline(vcpu);
    }

    /// Secondary vCPU `vcpu` is back online.
    pub(crate) fn secondary_online(vcpu: u32) {
        EXECUTOR.bring_online(vcpu);
    }

    /// Runs `future` and all spawned tasks until `future` completes.
    /// For the top level only: called inside a task or another
    /// `block_on` it panics in debug builds (naming the caller); see
    /// [`super::executor`] for release builds.
    #[track_caller]
    pub fn block_on<F: Future>(future: F) -> F::Output {
        EXECUTOR.block_on(&Xen, future)
    }

    /// [`block_on`], or [`NestedBlockOn`] if a `block_on` is already
    /// running (this is a task, or inside the future being driven).
    pub fn try_block_on<F: Future>(future: F) -> Result<F::Output, NestedBlockOn> {
        EXECUTOR.try_block_on(&Xen, future)
    }

    /// Whether a `block_on` is running now (so calling one would nest).
    pub fn in_block_on() -> bool {
        EXECUTOR.in_block_on()
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

    /// Every live task's state and the armed timers, now (a crash
    /// dump, `control/sysrq`).
    pub fn snapshot() -> super::executor::ExecutorSnapshot {
        EXECUTOR.snapshot()
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
    block_on, in_block_on, init, resume_in_new_domain, sleep, sleep_until, snapshot, spawn,
    spawn_on, stats, timeout, timeout_at, timer_fires, try_block_on, yield_now,
};
#[cfg(target_os = "none")]
pub(crate) use guest::{
    secondary_end_idle, secondary_offline, secondary_online, secondary_prepare_idle,
    secondary_turn, serve_on_secondary,
};

pub use executor::{ExecutorSnapshot, NestedBlockOn, TaskState};
