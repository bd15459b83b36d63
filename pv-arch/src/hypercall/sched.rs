//! `HYPERVISOR_sched_op`: yield, block, shut down.

use super::raw::hypercall;
use crate::abi::event_channel::EvtchnPort;
use crate::abi::sched::{
    SchedPoll, SchedShutdown, SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD,
};
use crate::abi::xen::hypercall_nr;
use crate::errno::Errno;

/// Why the domain stops (`SHUTDOWN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ShutdownReason {
    /// Exited normally.
    Poweroff = crate::abi::sched::SHUTDOWN_POWEROFF,
    /// Wants to be restarted.
    Reboot = crate::abi::sched::SHUTDOWN_REBOOT,
    /// Crashed.
    Crash = crate::abi::sched::SHUTDOWN_CRASH,
}

/// `SCHEDOP_yield`: let another vCPU run; we stay runnable.
pub fn sched_yield() -> Result<(), Errno> {
    // SAFETY: SCHEDOP_yield takes no memory argument.
    unsafe {
        hypercall(
            hypercall_nr::SCHED_OP,
            [u64::from(SCHEDOP_YIELD), 0, 0, 0, 0],
        )
    }
    .map(drop)
}

/// `SCHEDOP_block`: sleep until an event is pending for this vCPU.
///
/// Xen clears the vCPU's upcall mask as it blocks, so events must be
/// ready to be delivered (or checked by polling) when it returns.
pub fn sched_block() -> Result<(), Errno> {
    // SAFETY: SCHEDOP_block takes no memory argument.
    unsafe {
        hypercall(
            hypercall_nr::SCHED_OP,
            [u64::from(SCHEDOP_BLOCK), 0, 0, 0, 0],
        )
    }
    .map(drop)
}

/// `SCHEDOP_poll`: block until one of `ports` is pending or system time
/// reaches `timeout_ns` (0 would wait for ever, so it is refused here
/// with `EINVAL` before Xen sees it). `Ok` when woken either way; Xen
/// refuses a port it never allocated with `EINVAL`.
pub fn sched_poll(ports: &[EvtchnPort], timeout_ns: u64) -> Result<(), Errno> {
    if timeout_ns == 0 {
        return Err(Errno::EINVAL);
    }
    let nr_ports = u32::try_from(ports.len()).map_err(|_| Errno::EINVAL)?;
    let arg = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports,
        timeout: timeout_ns,
    };
    // SAFETY: Xen reads one `sched_poll` from `arg` and `nr_ports` ports
    // from `ports`, both borrowed for the call; it writes neither.
    unsafe {
        hypercall(
            hypercall_nr::SCHED_OP,
            [u64::from(SCHEDOP_POLL), &raw const arg as u64, 0, 0, 0],
        )
    }
    .map(drop)
}

/// `SCHEDOP_shutdown`: stop this domain. Returns only if Xen refused.
pub fn sched_shutdown(reason: ShutdownReason) -> Errno {
    let arg = SchedShutdown {
        reason: reason as u32,
    };
    // SAFETY: Xen reads one `sched_shutdown` from `arg`, which lives on our
    // stack for the duration of the call.
    let result = unsafe {
        hypercall(
            hypercall_nr::SCHED_OP,
            [u64::from(SCHEDOP_SHUTDOWN), &raw const arg as u64, 0, 0, 0],
        )
    };
    match result {
        // A successful shutdown does not return; if it did, say so.
        Ok(_) => Errno::EINTR,
        Err(errno) => errno,
    }
}

/// `SCHEDOP_shutdown(SHUTDOWN_suspend)`: suspends the domain so the
/// toolstack can save or migrate it. A PV guest passes the machine frame
/// of its `start_info` in the third argument register (`rdx`, the
/// "suspend record" the toolstack rewrites and hands back in the new
/// domain); PVH passes 0. Returns when the domain runs again: `Ok(0)`
/// in a new domain (restored or migrated), `Ok(1)` if the suspend was
/// cancelled and the domain resumed in place (the toolstack set the
/// return value to 1), or what Xen refused with.
///
/// # Safety
///
/// The caller must have made the domain fit to be saved: no page table
/// may name a frame that is not the guest's (Xen's shared info page,
/// grant-table frames, foreign mappings), and it must rebuild what a new
/// domain lacks before anything uses it (see `kernel::suspend`).
pub unsafe fn sched_suspend(start_info_mfn: u64) -> Result<u64, Errno> {
    let arg = SchedShutdown {
        reason: crate::abi::sched::SHUTDOWN_SUSPEND,
    };
    // SAFETY: Xen reads one `sched_shutdown` from `arg`, on our stack for
    // the duration of the call; the rest is the caller's promise.
    unsafe {
        hypercall(
            hypercall_nr::SCHED_OP,
            [
                u64::from(SCHEDOP_SHUTDOWN),
                &raw const arg as u64,
                start_info_mfn,
                0,
                0,
            ],
        )
    }
}

/// `SCHEDOP_remote_shutdown`: shut down domain `domid` (privileged).
pub fn remote_shutdown(domid: u16, reason: u32) -> Result<(), Errno> {
    let arg = crate::abi::sched::SchedRemoteShutdown {
        domain_id: domid,
        reason,
    };
    // SAFETY: Xen reads one `sched_remote_shutdown` from `arg`.
    unsafe {
        hypercall(
            hypercall_nr::SCHED_OP,
            [
                u64::from(crate::abi::sched::SCHEDOP_REMOTE_SHUTDOWN),
                &raw const arg as u64,
                0,
                0,
                0,
            ],
        )
    }
    .map(drop)
}

/// A `SCHEDOP_*` command Xen does not know (for the suite).
pub fn unknown_command(cmd: u32) -> Result<(), Errno> {
    let scratch = [0u64; 8];
    // SAFETY: an unknown command reads nothing; the buffer is valid anyway.
    unsafe {
        hypercall(
            hypercall_nr::SCHED_OP,
            [u64::from(cmd), scratch.as_ptr() as u64, 0, 0, 0],
        )
    }
    .map(drop)
}
