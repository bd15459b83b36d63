//! `HYPERVISOR_vcpu_op` and `HYPERVISOR_set_timer_op`: timers and
//! per-vCPU accounting.

use super::raw::hypercall;
use crate::abi::vcpu::*;
use crate::abi::xen::hypercall_nr;
use crate::errno::Errno;

/// Issues `VCPUOP_<cmd>` for `vcpu` with `arg` (may be null for no arg).
///
/// # Safety
///
/// `arg` must be null or point to the struct `cmd` expects, valid for
/// Xen's reads and writes during the call.
unsafe fn vcpu_op(cmd: u32, vcpu: u32, arg: u64) -> Result<u64, Errno> {
    // SAFETY: forwarded to the caller's contract.
    unsafe {
        hypercall(
            hypercall_nr::VCPU_OP,
            [u64::from(cmd), u64::from(vcpu), arg, 0, 0],
        )
    }
}

/// `VCPUOP_set_singleshot_timer`: fire VIRQ_TIMER at system time
/// `deadline_ns`. With `future_only`, a deadline already past is refused
/// (`ETIME`) instead of firing at once.
pub fn set_singleshot_timer(vcpu: u32, deadline_ns: u64, future_only: bool) -> Result<(), Errno> {
    let arg = VcpuSetSingleshotTimer {
        timeout_abs_ns: deadline_ns,
        flags: if future_only { VCPU_SSHOTTMR_FUTURE } else { 0 },
    };
    // SAFETY: Xen reads one `vcpu_set_singleshot_timer` from `arg`.
    unsafe { vcpu_op(VCPUOP_SET_SINGLESHOT_TIMER, vcpu, &raw const arg as u64) }.map(drop)
}

/// `VCPUOP_stop_singleshot_timer`.
pub fn stop_singleshot_timer(vcpu: u32) -> Result<(), Errno> {
    // SAFETY: no argument.
    unsafe { vcpu_op(VCPUOP_STOP_SINGLESHOT_TIMER, vcpu, 0) }.map(drop)
}

/// `VCPUOP_set_periodic_timer`: fire VIRQ_TIMER every `period_ns`.
pub fn set_periodic_timer(vcpu: u32, period_ns: u64) -> Result<(), Errno> {
    let arg = VcpuSetPeriodicTimer { period_ns };
    // SAFETY: Xen reads one `vcpu_set_periodic_timer` from `arg`.
    unsafe { vcpu_op(VCPUOP_SET_PERIODIC_TIMER, vcpu, &raw const arg as u64) }.map(drop)
}

/// `VCPUOP_stop_periodic_timer`: PV vCPUs start with a 10 ms tick we do
/// not want (an idle guest should not wake up a hundred times a second).
pub fn stop_periodic_timer(vcpu: u32) -> Result<(), Errno> {
    // SAFETY: no argument.
    unsafe { vcpu_op(VCPUOP_STOP_PERIODIC_TIMER, vcpu, 0) }.map(drop)
}

/// `VCPUOP_get_runstate_info`: time `vcpu` spent running, runnable,
/// blocked and offline.
pub fn get_runstate_info(vcpu: u32) -> Result<VcpuRunstateInfo, Errno> {
    let mut arg = VcpuRunstateInfo::default();
    // SAFETY: Xen writes one `vcpu_runstate_info` into `arg`.
    unsafe { vcpu_op(VCPUOP_GET_RUNSTATE_INFO, vcpu, &raw mut arg as u64) }?;
    Ok(arg)
}

/// `VCPUOP_is_up`: whether `vcpu` is running (1) or down (0).
pub fn is_up(vcpu: u32) -> Result<bool, Errno> {
    // SAFETY: no argument.
    unsafe { vcpu_op(VCPUOP_IS_UP, vcpu, 0) }.map(|r| r != 0)
}

/// `HYPERVISOR_set_timer_op`: the older one-shot timer (0 cancels).
pub fn set_timer_op(deadline_ns: u64) -> Result<(), Errno> {
    // SAFETY: takes a plain number.
    unsafe { hypercall(hypercall_nr::SET_TIMER_OP, [deadline_ns, 0, 0, 0, 0]) }.map(drop)
}
