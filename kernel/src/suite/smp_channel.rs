//! An [`EventChannel`] bound to vCPU 1 through the kernel's event API
//! ([`EventChannel::bind_to_vcpu`]): a task pinned to vCPU 1 waiting on
//! it is woken there by vCPU 1 alone, and moved back to vCPU 0 the
//! channel is delivered there again.
//!
//! How "by vCPU 1 alone" is shown: while the event is sent and the task
//! completes, vCPU 0 spins in this check with upcalls masked, running no
//! executor and handing over no events, so nothing on vCPU 0 can wake
//! the task; the task records the vCPU it ran on.

use super::{Ctx, Outcome};
use crate::events::EventChannel;
use crate::{sched, smp, suite_fail};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, Ordering};
use pv_arch::abi::xen::DOMID_SELF;
use pv_arch::hypercall::event_channel as evtchn;

/// The vCPU the check drives.
const VCPU: u32 = 1;
/// "Not woken yet" in the task's record.
const NOT_YET: u32 = u32::MAX;

/// Spins (no executor, no hand-over on vCPU 0) until `done` or 2 s.
fn spin_until(done: impl Fn() -> bool) -> bool {
    let deadline = crate::time::now_ns() + 2_000_000_000;
    while !done() {
        if crate::time::now_ns() > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// The check (see the module docs).
pub(super) fn channel_bound_to_vcpu1_wakes_its_task_there(_: &Ctx<'_>) -> Outcome {
    if let Err(outcome) = super::smp::events_on_second_vcpu() {
        return outcome;
    }
    let mut local = match EventChannel::alloc_unbound(DOMID_SELF) {
        Ok(channel) => channel,
        Err(e) => return suite_fail!("alloc_unbound: {e}"),
    };
    let remote = match evtchn::bind_interdomain(DOMID_SELF, local.port()) {
        Ok(port) => super::smp::Closing(port),
        Err(e) => return suite_fail!("EVTCHNOP_bind_interdomain(self, {}): {e}", local.port()),
    };
    if let Err(e) = local.bind_to_vcpu(VCPU) {
        return suite_fail!("bind_to_vcpu(1): {e}");
    }
    match local.status() {
        Ok(st) if st.vcpu == VCPU && local.vcpu() == VCPU => {}
        other => {
            return suite_fail!(
                "after bind_to_vcpu(1): status {other:?}, vcpu() {}",
                local.vcpu()
            )
        }
    }
    let channel = Arc::new(local);
    let woken_on = Arc::new(AtomicU32::new(NOT_YET));
    let task = {
        let (channel, woken_on) = (channel.clone(), woken_on.clone());
        sched::spawn_on(VCPU, async move {
            channel.wait().await;
            woken_on.store(smp::current_vcpu(), Ordering::SeqCst);
        })
    };
    if let Err(e) = task {
        return suite_fail!("spawn_on(1): {e}");
    }
    let (_, stray_before) = crate::events::counters();
    if let Err(e) = evtchn::evtchn_send(remote.0) {
        return suite_fail!("EVTCHNOP_send({}): {e}", remote.0);
    }
    if !spin_until(|| woken_on.load(Ordering::SeqCst) != NOT_YET) {
        return suite_fail!("the task on vCPU 1 was not woken within 2 s while vCPU 0 stood by");
    }
    let ran_on = woken_on.load(Ordering::SeqCst);
    if ran_on != VCPU {
        return suite_fail!("the waiting task ran on vCPU {ran_on}, not 1");
    }
    // The task ends (dropping its reference) right after its record.
    spin_until(|| Arc::strong_count(&channel) == 1);
    let Some(mut channel) = Arc::into_inner(channel) else {
        return suite_fail!("the task still holds the channel");
    };
    crate::events::wake_waiters();
    let (_, stray_after) = crate::events::counters();
    if stray_after != stray_before {
        return suite_fail!("vCPU 0 saw a stray event ({stray_before} -> {stray_after})");
    }
    // Back to vCPU 0: delivered and handed over there again.
    if let Err(e) = channel.bind_to_vcpu(0) {
        return suite_fail!("bind_to_vcpu(0): {e}");
    }
    let _ = channel.take_fired();
    if let Err(e) = evtchn::evtchn_send(remote.0) {
        return suite_fail!("EVTCHNOP_send({}) after the move back: {e}", remote.0);
    }
    if !super::smp::wait_for(|| channel.take_fired()) {
        return suite_fail!("moved back to vCPU 0, the channel's event was not seen within 2 s");
    }
    match channel.status() {
        Ok(st) if st.vcpu == 0 => Outcome::PassWith(alloc::format!(
            "port {} woke its task on vCPU 1 with vCPU 0 standing by; back on vCPU 0 it fires there",
            channel.port()
        )),
        other => suite_fail!("status after moving back: {other:?}"),
    }
}
