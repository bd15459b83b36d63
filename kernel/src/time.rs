//! Time: Xen's system time, the wall clock, and the one-shot timer.
//!
//! System time is nanoseconds since the domain's boot: Xen publishes a
//! (TSC stamp, system time, scale) triple per vCPU in `vcpu_time_info`,
//! and we extrapolate with the TSC, so reading the time costs no
//! hypercall. The wall clock is the `wc_*` base in `shared_info` plus
//! system time. The timer is `VCPUOP_set_singleshot_timer`, which raises
//! `VIRQ_TIMER`; Xen's default 10 ms periodic tick is stopped at boot so
//! an idle guest really sleeps.

use crate::shared_info;
use core::sync::atomic::{AtomicU64, Ordering};
use pv_arch::hypercall::vcpu;
use pv_arch::Errno;

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// The TSC now.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; Xen lets PV guests run it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The latest time [`now_ns`] returned.
static LAST_NS: AtomicU64 = AtomicU64::new(0);

/// Xen system time now, in nanoseconds; never less than an earlier
/// reading. Xen recalibrates about once a second, and the new
/// `(stamp, system_time)` pair need not continue the old extrapolation
/// exactly (under emulation it can be a little behind it): time that ran
/// backwards would stretch deadlines already computed.
pub fn now_ns() -> u64 {
    let info = shared_info::time_info();
    let now = info.system_time_at(rdtsc());
    LAST_NS.fetch_max(now, Ordering::Relaxed).max(now)
}

/// The wall clock now: `(seconds, nanoseconds)` since the Unix epoch.
pub fn wallclock() -> (u64, u32) {
    let (base_sec, base_nsec) = shared_info::wallclock_base();
    let total = u128::from(base_sec) * u128::from(NS_PER_SEC)
        + u128::from(base_nsec)
        + u128::from(now_ns());
    (
        (total / u128::from(NS_PER_SEC)) as u64,
        (total % u128::from(NS_PER_SEC)) as u32,
    )
}

/// The TSC frequency Xen's scale implies, in Hz.
pub fn tsc_hz() -> Option<u64> {
    shared_info::time_info().tsc_frequency_hz()
}

/// Stops the periodic tick. Called once at boot.
pub fn init() -> Result<(), Errno> {
    vcpu::stop_periodic_timer(0)
}

/// Arms the one-shot timer for system time `deadline_ns` (a deadline in
/// the past fires at once).
pub fn set_deadline(deadline_ns: u64) -> Result<(), Errno> {
    vcpu::set_singleshot_timer(0, deadline_ns, false)
}

/// vCPU 0's [`VcpuLife`] now.
pub fn vcpu_life() -> Result<crate::vcpu_life::VcpuLife, Errno> {
    use pv_arch::abi::vcpu::{
        RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING,
    };
    let info = vcpu::get_runstate_info(0)?;
    Ok(crate::vcpu_life::VcpuLife {
        running_ns: info.time[RUNSTATE_RUNNING as usize],
        runnable_ns: info.time[RUNSTATE_RUNNABLE as usize],
        blocked_ns: info.time[RUNSTATE_BLOCKED as usize],
        offline_ns: info.time[RUNSTATE_OFFLINE as usize],
    })
}

/// Time vCPU 0 has spent running and blocked, from Xen's accounting
/// (`VCPUOP_get_runstate_info`): `(running_ns, blocked_ns)`.
pub fn runstate() -> Result<(u64, u64), Errno> {
    use pv_arch::abi::vcpu::{RUNSTATE_BLOCKED, RUNSTATE_RUNNING};
    let info = vcpu::get_runstate_info(0)?;
    Ok((
        info.time[RUNSTATE_RUNNING as usize],
        info.time[RUNSTATE_BLOCKED as usize],
    ))
}
