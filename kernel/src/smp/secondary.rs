//! What a secondary vCPU runs: its entry, its idle loop and its upcall.
//!
//! The entry is reached straight from the initial context
//! ([`super::bring_up`] puts its address in RIP, the vCPU id in RDI and
//! the top of the vCPU's stack, less the 8 bytes of a return address, in
//! RSP, as if it had been called). PVH first loads our GDT and IDT (Xen
//! starts the vCPU with flat segments of its own making and no
//! descriptor tables); PV needs nothing (the trap table and callbacks
//! came in the context). Upcalls are masked from the start (PV:
//! `evtchn_upcall_mask` set in the vCPU's `vcpu_info` before it was
//! started; PVH: `RFLAGS.IF` clear in the context).
//!
//! The idle loop serves the executor (tasks pinned to this vCPU and
//! shared ones, see `sched::executor`), checks for a pending upcall and
//! for queued tasks with upcalls masked, and only then blocks, in the same step that unmasks them (`SCHEDOP_block`,
//! or `sti; hlt` with its shadow and the upcall's `hlt` skip, see
//! `platform`): an event that arrives between the check and the block
//! wakes the block instead of being lost.

use super::area::{area, PerVcpu};
use crate::boot_info::BootMode;
use crate::events::two_level::{self, Bitmaps};
use crate::shared_info;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use pv_arch::abi::shared_info::VcpuInfo;
use pv_arch::hypercall::vcpu;

/// `evtchn_upcall_pending` of `info`.
fn upcall_pending(info: *mut VcpuInfo) -> &'static AtomicU8 {
    // SAFETY: `info` is a live `vcpu_info` (placed by bring-up, never
    // freed), a u8 field accessed only atomically by Xen and us.
    unsafe { AtomicU8::from_ptr(&raw mut (*info).evtchn_upcall_pending) }
}

/// `evtchn_upcall_mask` of `info`.
pub(super) fn upcall_mask(info: *mut VcpuInfo) -> &'static AtomicU8 {
    // SAFETY: as for `upcall_pending`.
    unsafe { AtomicU8::from_ptr(&raw mut (*info).evtchn_upcall_mask) }
}

/// The 2-level bitmaps as one secondary vCPU scans them: its own
/// selector, the shared words, only the ports it owns.
struct SecondaryBitmaps {
    info: *mut VcpuInfo,
    area: &'static PerVcpu,
}

impl Bitmaps for SecondaryBitmaps {
    fn selector(&self) -> &AtomicU64 {
        // SAFETY: an aligned u64 of a live `vcpu_info`, accessed only
        // atomically.
        unsafe { AtomicU64::from_ptr(&raw mut (*self.info).evtchn_pending_sel) }
    }
    fn pending(&self, i: usize) -> &AtomicU64 {
        shared_info::pending_word(i)
    }
    fn mask(&self, i: usize) -> &AtomicU64 {
        shared_info::mask_word(i)
    }
    fn owned(&self, i: usize) -> u64 {
        self.area.owned.word(i)
    }
}

/// A secondary vCPU's upcall: records the ports it owns that fired, in
/// its own area. Takes no lock (see the module docs of [`super`]).
pub(crate) fn secondary_upcall(id: u32) {
    let Some(area) = area(id) else { return };
    area.upcalls.fetch_add(1, Ordering::Relaxed);
    let info = shared_info::vcpu_info_of(id);
    upcall_pending(info).store(0, Ordering::SeqCst);
    if crate::events::abi_name() == "fifo" {
        // Its own control block and consumer: only its own queues.
        crate::events::fifo_consume(id, |port| {
            if area.owned.word(port as usize / 64) & (1 << (port % 64)) != 0 {
                area.fired.record(port);
            } else if !super::record_for_owner(port) {
                // Linked here before it moved to vCPU 0: vCPU 0's record
                // (kicked from this vCPU's task context).
                crate::events::record(port);
                super::note_crossed(0);
            }
        });
        return;
    }
    two_level::scan(&SecondaryBitmaps { info, area }, |port| {
        area.fired.record(port);
    });
}

/// Does what vCPU 0 asked of this vCPU.
fn serve_requests(id: u32, area: &PerVcpu) {
    let deadline = area.timer_request.swap(0, Ordering::SeqCst);
    if deadline != 0 {
        area.set_timer_result(vcpu::set_singleshot_timer(id, deadline, false));
    }
}

/// The secondary vCPU's idle loop; never returns.
fn idle_loop(id: u32) -> ! {
    let Some(area) = area(id) else {
        crate::platform::halt_forever()
    };
    // Xen's default periodic tick would wake it every 10 ms for nothing.
    let _ = vcpu::stop_periodic_timer(id);
    crate::sched::serve_on_secondary(id);
    area.alive.store(true, Ordering::SeqCst);
    let pv = crate::platform::mode() == BootMode::Pv;
    loop {
        if super::hotplug::go_offline_if_asked(id) {
            continue;
        }
        serve_requests(id, area);
        // Events of the channels bound here: their waiters (tasks
        // pinned here, typically) are queued before the turn.
        crate::events::wake_local_waiters(id);
        // Tasks pinned here, and shared ones (see `sched::executor`).
        crate::sched::secondary_turn(id);
        let info = shared_info::vcpu_info_of(id);
        // Upcalls are masked here: an event flagged since the last
        // upcall is taken now rather than slept on.
        if upcall_pending(info).load(Ordering::SeqCst) != 0 {
            secondary_upcall(id);
            continue;
        }
        // Marks it idle and looks at its queues once more: a task queued
        // before the mark runs now, one queued after it kicks us.
        if !crate::sched::secondary_prepare_idle(id) {
            continue;
        }
        if area.timer_request.load(Ordering::SeqCst) != 0 || super::has_channel_events(id) {
            crate::sched::secondary_end_idle(id);
            continue;
        }
        if pv {
            // Unmasks, checks for pending events and blocks in one step;
            // a pending event is delivered as the hypercall returns.
            let _ = pv_arch::hypercall::sched::sched_block();
            upcall_mask(info).store(1, Ordering::SeqCst);
        } else {
            crate::platform::wait_for_event_pvh();
        }
        crate::sched::secondary_end_idle(id);
        area.wakeups.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where a PV secondary vCPU starts (RDI = its id).
pub(super) extern "C" fn pv_entry(id: u64) -> ! {
    idle_loop(id as u32)
}

/// Where a PVH secondary vCPU starts (RDI = its id), interrupts off.
pub(super) extern "C" fn pvh_entry(id: u64) -> ! {
    crate::arch::x86_64::pvh_entry::load_descriptor_tables_on_secondary();
    idle_loop(id as u32)
}
