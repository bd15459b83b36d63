//! Secondary vCPUs going offline and coming back while the guest runs:
//! what `xl vcpu-set` asks for (libos watches the toolstack's
//! `cpu/N/availability` keys and calls these).
//!
//! Offline is cooperative. Xen would stop a vCPU from outside
//! (`VCPUOP_down` of another vCPU), but it could be stopped in the
//! middle of a task's poll, holding a lock or a task nobody else may
//! poll. So [`take_offline`] (on another vCPU) first moves the vCPU's
//! event channels back to vCPU 0 (`EVTCHNOP_bind_vcpu`, as
//! `EventChannel::bind_to_vcpu` does: masked while moving, an event
//! recorded but not handed over carried along), then asks the vCPU to
//! stop and kicks it. The vCPU sees the request at the top of its idle
//! loop, between turns, so no task of its own is mid-poll. It hands its
//! queued pinned tasks to the shared queue and stops serving
//! ([`crate::sched`]'s `take_offline`: a pinned task woken later goes to
//! the shared queue too), and stops itself with `VCPUOP_down`. Its IPI
//! (kick) port stays bound to it: Xen does not move IPIs, and an event
//! on it waits, pending, for its return.
//!
//! [`bring_online`] restarts it with `VCPUOP_up`: Xen resumes it right
//! after its own `VCPUOP_down`, and it serves the executor again. A
//! vCPU never started before is started as at boot (its context, its
//! `vcpu_info`, its kick port), in order: vCPU ids stay a prefix, as the
//! toolstack's `xl vcpu-set N` makes them.

use super::area::area;
use super::bring_up::{finish_start, start};
use super::{is_alive, vcpus_started, SmpError};
use crate::println;
use core::sync::atomic::Ordering;
use core::time::Duration;
use pv_arch::hypercall::vcpu;
use pv_arch::Errno;

/// How long a vCPU gets to reach its idle loop or to stop.
const STEP_LIMIT_NS: u64 = 2_000_000_000;

/// Waits, sleeping a millisecond at a time, until `done` or the limit.
async fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = crate::time::now_ns() + STEP_LIMIT_NS;
    while !done() {
        if crate::time::now_ns() > deadline {
            return false;
        }
        crate::sched::sleep(Duration::from_millis(1)).await;
    }
    true
}

/// Brings vCPU `id` online: restarts it if it went offline, or starts it
/// if it is the next never started (`EINVAL` for one further on, for
/// vCPU 0, or beyond the domain's vCPUs). `Ok` at once if it runs.
pub async fn bring_online(id: u32) -> Result<(), SmpError> {
    let fail = |step, errno| SmpError {
        vcpu: id,
        step,
        errno,
    };
    if id == 0 || id >= super::domain_vcpus() {
        return Err(fail("bringing online", Errno::EINVAL));
    }
    if is_alive(id) {
        return Ok(());
    }
    let first = id >= vcpus_started();
    if first {
        start(id)?;
    } else {
        // SAFETY: vCPU `id` was started with our context and stopped
        // itself in its idle loop (`go_offline_if_asked`), where it resumes.
        unsafe { vcpu::up(id) }.map_err(|e| fail("VCPUOP_up", e))?;
    }
    if !wait_until(|| is_alive(id)).await {
        return Err(fail("reaching its idle loop within 2 s", Errno::ETIMEDOUT));
    }
    if first {
        finish_start(id)
    } else {
        println!("smp: vCPU {id} back online");
        Ok(())
    }
}

/// Takes vCPU `id` offline (see the module docs) and returns how many
/// event channels moved to vCPU 0. `EINVAL` for vCPU 0, `EBUSY` when
/// called on vCPU `id` itself; `Ok` at once if it is not running.
pub async fn take_offline(id: u32) -> Result<usize, SmpError> {
    let fail = |step, errno| SmpError {
        vcpu: id,
        step,
        errno,
    };
    let Some(a) = area(id).filter(|_| id != 0) else {
        return Err(fail("taking offline", Errno::EINVAL));
    };
    if super::current_vcpu() == id {
        return Err(fail("taking itself offline from a task", Errno::EBUSY));
    }
    if !is_alive(id) {
        return Ok(0);
    }
    let ports = super::channel_ports(id);
    for &port in &ports {
        crate::events::move_port(port, 0).map_err(|e| fail("moving a channel to vCPU 0", e))?;
    }
    a.down_request.store(true, Ordering::SeqCst);
    super::kick(id).map_err(|e| fail("kicking it", e))?;
    if !wait_until(|| !is_alive(id) && vcpu::is_up(id) == Ok(false)).await {
        return Err(fail("stopping within 2 s", Errno::ETIMEDOUT));
    }
    println!(
        "smp: vCPU {id} offline ({} event channels moved to vCPU 0)",
        ports.len()
    );
    Ok(ports.len())
}

/// On vCPU `id`, at the top of its idle loop: stops it if
/// [`take_offline`] asked, and returns once it is back online (`false`
/// if it was not asked).
pub(super) fn go_offline_if_asked(id: u32) -> bool {
    let Some(a) = area(id) else { return false };
    if !a.down_request.load(Ordering::SeqCst) {
        return false;
    }
    crate::sched::secondary_offline(id);
    a.alive.store(false, Ordering::SeqCst);
    a.down_request.store(false, Ordering::SeqCst);
    // Returns when `bring_online` has Xen start it again.
    let _ = vcpu::down(id);
    crate::sched::secondary_online(id);
    a.alive.store(true, Ordering::SeqCst);
    true
}
