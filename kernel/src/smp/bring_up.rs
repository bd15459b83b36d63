//! Bringing the secondary vCPUs up: `vcpu_info` placement, the initial
//! context of each mode, `VCPUOP_initialise` and `VCPUOP_up`.
//!
//! `vcpu_info`: every vCPU's is moved into one page of our `.bss`
//! ([`INFO_PAGE`], 64 bytes each) with `VCPUOP_register_vcpu_info`, vCPU
//! 0's included: the per-vCPU data then lives in memory the kernel owns
//! (as Linux does it, all vCPUs or none, so one rule finds every
//! `vcpu_info`), and a vCPU beyond the shared info page's 32 slots would
//! have no other. Xen allows the call only for the calling vCPU or one
//! that is down, so vCPU 0 places its own and then each secondary's
//! before starting it.
//!
//! Descriptor tables (PV): Xen lets vCPUs share GDT frames (it counts
//! type references on each frame, and wants them mapped read-only), but
//! Paravane gives Xen no GDT at all, on any vCPU: a 64-bit PV kernel
//! needs only the flat selectors Xen keeps in its reserved GDT entries
//! (`FLAT_KERNEL_CS`, …), so `gdt_ents` is 0, as for vCPU 0, which the
//! domain builder starts the same way. PVH secondaries load the GDT and
//! IDT vCPU 0 uses (`arch::x86_64::pvh_entry`).

use super::api::STARTED;
use super::area::{area, stack_top};
use super::{secondary, MAX_VCPUS};
use crate::boot_info::BootMode;
use crate::{println, shared_info};
use alloc::boxed::Box;
use core::sync::atomic::Ordering;
use pv_arch::abi::arch_x86::{
    xen_pfn_to_cr3, VcpuGuestContext, FLAT_KERNEL_CS, FLAT_KERNEL_SS, VGCF_IN_KERNEL,
};
use pv_arch::abi::hvm::{VcpuHvmContext, VCPU_HVM_MODE_64B};
use pv_arch::abi::shared_info::VcpuInfo;
use pv_arch::hypercall::{event_channel, vcpu};
use pv_arch::Errno;

const _: () = assert!(core::mem::size_of::<VcpuInfo>() == 64);

/// The page every vCPU's `vcpu_info` is placed in (slot = vCPU id).
#[repr(C, align(4096))]
struct InfoPage([[u8; 64]; 64]);

/// Shared with Xen once registered; reached only through raw pointers
/// and atomics ([`shared_info::vcpu_info_of`]).
static mut INFO_PAGE: InfoPage = InfoPage([[0; 64]; 64]);

/// Why bringing up the secondaries stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmpError {
    /// The vCPU being brought up.
    pub vcpu: u32,
    /// The step that failed.
    pub step: &'static str,
    /// Xen's answer.
    pub errno: Errno,
}

impl core::fmt::Display for SmpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "vCPU {}: {}: {}", self.vcpu, self.step, self.errno)
    }
}

fn slot(id: u32) -> *mut VcpuInfo {
    // SAFETY: a place projection into the static (id < 64 is checked by
    // the array index); no reference is formed.
    unsafe { (&raw mut INFO_PAGE.0[id as usize]).cast() }
}

/// The frame Xen knows [`INFO_PAGE`] by, and the byte offset of vCPU
/// `id`'s slot in it: for the suite, which compares what Xen keeps there.
pub fn vcpu_info_frame(id: u32) -> Option<(u64, u32)> {
    let va = slot(0) as u64;
    let frame = crate::mm::pfn_to_mfn(va / 4096)?;
    Some((frame, id * 64))
}

/// Places vCPU `id`'s `vcpu_info` in [`INFO_PAGE`].
fn place_vcpu_info(id: u32) -> Result<(), SmpError> {
    let fail = |step, errno| SmpError {
        vcpu: id,
        step,
        errno,
    };
    let (frame, offset) =
        vcpu_info_frame(id).ok_or(fail("finding the vcpu_info page's frame", Errno::EINVAL))?;
    // SAFETY: the slot is 64 bytes of a static page kept for Xen's
    // `vcpu_info`s alone, never freed, reached only through atomics and
    // volatile accesses once placed.
    unsafe { vcpu::register_vcpu_info(id, frame, offset) }
        .map_err(|e| fail("VCPUOP_register_vcpu_info", e))?;
    // SAFETY: `slot(id)` is the address just registered for `id`.
    unsafe { shared_info::place_vcpu_info(id, slot(id)) };
    Ok(())
}

/// The PV context a secondary vCPU starts with (the suite starts from it
/// to build contexts Xen must refuse).
pub fn pv_context(id: u32) -> Result<Box<VcpuGuestContext>, Errno> {
    let mut ctx = Box::new(VcpuGuestContext::zeroed());
    let top = stack_top(id);
    ctx.flags = VGCF_IN_KERNEL;
    ctx.user_regs.rip = secondary::pv_entry as *const () as usize as u64;
    // As if called: a (zero) return address below the aligned top.
    ctx.user_regs.rsp = top - 8;
    ctx.user_regs.rdi = u64::from(id);
    ctx.user_regs.cs = FLAT_KERNEL_CS;
    ctx.user_regs.ss = FLAT_KERNEL_SS;
    ctx.user_regs.rflags = 0x2;
    for entry in crate::traps::trap_table() {
        if entry.address != 0 {
            ctx.trap_ctxt[usize::from(entry.vector)] = entry;
        }
    }
    ctx.kernel_ss = u64::from(FLAT_KERNEL_SS);
    ctx.kernel_sp = top - 8;
    let root = crate::mm::root_table_mfn().ok_or(Errno::EINVAL)?;
    ctx.ctrlreg[3] = xen_pfn_to_cr3(root);
    let (event, failsafe) = crate::traps::callback_addresses();
    ctx.event_callback_eip = event;
    ctx.failsafe_callback_eip = failsafe;
    Ok(ctx)
}

/// The PVH context a secondary vCPU starts with: long mode on vCPU 0's
/// page tables and control registers (the suite starts from it too).
pub fn pvh_context(id: u32) -> VcpuHvmContext {
    use x86_64::registers::control::{Cr0, Cr3, Cr4};
    use x86_64::registers::model_specific::Efer;
    let mut ctx = VcpuHvmContext {
        mode: VCPU_HVM_MODE_64B,
        ..VcpuHvmContext::default()
    };
    let regs = &mut ctx.cpu_regs.x86_64;
    regs.rip = secondary::pvh_entry as *const () as usize as u64;
    regs.rsp = stack_top(id) - 8;
    regs.rdi = u64::from(id);
    // Interrupts off: the entry loads the IDT first.
    regs.rflags = 0x2;
    regs.cr0 = Cr0::read_raw();
    regs.cr3 = Cr3::read().0.start_address().as_u64();
    regs.cr4 = Cr4::read_raw();
    regs.efer = Efer::read_raw();
    ctx
}

/// Initialises vCPU `id` with its context (not started).
fn initialise(id: u32) -> Result<(), Errno> {
    match crate::platform::mode() {
        BootMode::Pv => {
            let ctx = pv_context(id)?;
            // SAFETY: the context runs `pv_entry` on vCPU `id`'s own
            // stack (static, used by nothing else), with our trap table,
            // callbacks and page tables, which live for the guest's life.
            unsafe { vcpu::initialise_pv(id, &ctx) }
        }
        BootMode::Pvh => {
            let ctx = pvh_context(id);
            // SAFETY: as for PV: `pvh_entry` on its own static stack,
            // with vCPU 0's page tables and control registers.
            unsafe { vcpu::initialise_hvm(id, &ctx) }
        }
    }
}

/// Whether the domain has more vCPUs than Paravane runs
/// ([`MAX_VCPUS`]): Xen knows a vCPU with that id.
pub fn domain_exceeds_max_vcpus() -> bool {
    vcpu::is_up(MAX_VCPUS as u32) != Err(Errno::ENOENT)
}

/// How many vCPUs the domain has (`VCPUOP_is_up` answers `ENOENT`
/// beyond the last), at most [`MAX_VCPUS`].
pub fn domain_vcpus() -> u32 {
    (1..MAX_VCPUS as u32)
        .find(|&id| vcpu::is_up(id) == Err(Errno::ENOENT))
        .unwrap_or(MAX_VCPUS as u32)
}

/// Brings up every vCPU the domain has beyond vCPU 0 (at most
/// [`MAX_VCPUS`]), one after the other with [`super::bring_online`], and
/// returns how many vCPUs run now. Prints one line per vCPU brought up,
/// or one saying the domain has a single vCPU. Called once, from task
/// context on vCPU 0; a second call returns the count again. (Apps that
/// follow the toolstack's choice of vCPUs use libos's `vcpus` instead.)
pub fn start_secondaries() -> Result<u32, SmpError> {
    if super::secondaries_started() {
        return Ok(super::vcpus_online());
    }
    let total = domain_vcpus();
    if total == 1 {
        println!("smp: the domain has one vCPU: nothing to bring up");
        return Ok(1);
    }
    crate::sched::block_on(async {
        for id in 1..total {
            super::bring_online(id).await?;
        }
        Ok(total)
    })
}

/// The first start of vCPU `id`, the next one never started (`id` =
/// [`super::vcpus_started`]): everything up to `VCPUOP_up` (the
/// caller waits for it to reach its idle loop, then calls
/// [`finish_start`]). vCPU 0's own share (its `vcpu_info` placed, its
/// kick port) is done with the first secondary.
pub(super) fn start(id: u32) -> Result<(), SmpError> {
    let fail = |step, errno| SmpError {
        vcpu: id,
        step,
        errno,
    };
    if id == 0 || id != super::vcpus_started() || id as usize >= MAX_VCPUS {
        return Err(fail("starting vCPUs in order", Errno::EINVAL));
    }
    if id == 1 {
        place_vcpu_info(0)?;
        bind_vcpu0_kick()?;
    }
    place_vcpu_info(id)?;
    // Upcalls masked until its idle loop blocks (Xen copied the old
    // slot's mask; make sure).
    secondary::upcall_mask(slot(id)).store(1, Ordering::SeqCst);
    // Its FIFO control block before it can be sent anything.
    crate::events::fifo_init_vcpu(id).map_err(|e| fail("EVTCHNOP_init_control", e))?;
    initialise(id).map_err(|e| fail("VCPUOP_initialise", e))?;
    // Counted before it runs, so its upcalls can claim ports.
    STARTED.store(id + 1, Ordering::SeqCst);
    // SAFETY: `id` was just initialised with a context meant for it.
    unsafe { vcpu::up(id) }.map_err(|e| fail("VCPUOP_up", e))
}

/// The rest of vCPU `id`'s first start, once it is in its idle loop:
/// its kick port (an IPI bound to it, claimed for its upcall).
pub(super) fn finish_start(id: u32) -> Result<(), SmpError> {
    let fail = |step, errno| SmpError {
        vcpu: id,
        step,
        errno,
    };
    let kick = event_channel::bind_ipi(id).map_err(|e| fail("EVTCHNOP_bind_ipi", e))?;
    super::claim_port(kick, id).map_err(|e| fail("claiming its IPI port", e))?;
    if let Some(a) = area(id) {
        a.kick_port.store(kick, Ordering::SeqCst);
    }
    crate::events::unmask(kick).map_err(|e| fail("EVTCHNOP_unmask", e))?;
    println!(
        "smp: vCPU {id} up ({}, {}, stack {:#x}, vcpu_info at {:#x}, kick port {kick})",
        crate::platform::mode(),
        crate::events::abi_name(),
        stack_top(id),
        slot(id) as u64,
    );
    Ok(())
}

/// vCPU 0's kick port: a task on a secondary that wakes vCPU 0's root
/// future or arms the earliest timer kicks vCPU 0 out of its idle. A
/// channel of the port table (so its events are not stray), kept open.
static VCPU0_KICK: spin::Mutex<Option<crate::events::EventChannel>> = spin::Mutex::new(None);

fn bind_vcpu0_kick() -> Result<(), SmpError> {
    let channel = crate::events::EventChannel::bind_ipi().map_err(|errno| SmpError {
        vcpu: 0,
        step: "EVTCHNOP_bind_ipi for vCPU 0",
        errno,
    })?;
    if let Some(a) = area(0) {
        a.kick_port.store(channel.port(), Ordering::SeqCst);
    }
    *VCPU0_KICK.lock() = Some(channel);
    Ok(())
}
