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

/// Which of Xen 4.18's guest-physical areas a vCPU can register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhysArea {
    /// `VCPUOP_register_runstate_phys_area`: a `vcpu_runstate_info`.
    Runstate,
    /// `VCPUOP_register_vcpu_time_phys_area`: a `vcpu_time_info`.
    VcpuTime,
}

impl PhysArea {
    fn cmd(self) -> u32 {
        match self {
            PhysArea::Runstate => VCPUOP_REGISTER_RUNSTATE_PHYS_AREA,
            PhysArea::VcpuTime => VCPUOP_REGISTER_VCPU_TIME_PHYS_AREA,
        }
    }
}

/// `VCPUOP_register_{runstate,vcpu_time}_phys_area`: from now on Xen
/// writes `vcpu`'s runstate or time info at guest-physical address
/// `gaddr` (a machine address in PV), whenever it changes, until
/// [`unregister_phys_area`].
///
/// # Safety
///
/// The memory at `gaddr` (the struct's size; Xen refuses an area that
/// crosses a page) must be owned by the caller for Xen to write at any
/// time, read only with volatile reads, and not be freed or reused
/// before [`unregister_phys_area`] succeeded.
pub unsafe fn register_phys_area(area: PhysArea, vcpu: u32, gaddr: u64) -> Result<(), Errno> {
    let arg = VcpuRegisterRunstateMemoryArea { addr: gaddr };
    // SAFETY: `arg` is one register struct (both ops take the same
    // single address), read during the call; what Xen writes later is
    // the caller's contract.
    unsafe { vcpu_op(area.cmd(), vcpu, &raw const arg as u64) }.map(drop)
}

/// Unregisters `vcpu`'s [`PhysArea`] (address `~0`): Xen stops writing
/// the area it named. Harmless when none is registered.
pub fn unregister_phys_area(area: PhysArea, vcpu: u32) -> Result<(), Errno> {
    let arg = VcpuRegisterRunstateMemoryArea {
        addr: PHYS_AREA_UNREGISTER,
    };
    // SAFETY: `arg` is read during the call; unregistering hands Xen no
    // memory.
    unsafe { vcpu_op(area.cmd(), vcpu, &raw const arg as u64) }.map(drop)
}

/// `VCPUOP_is_up`: whether `vcpu` is running (1) or down (0).
pub fn is_up(vcpu: u32) -> Result<bool, Errno> {
    // SAFETY: no argument.
    unsafe { vcpu_op(VCPUOP_IS_UP, vcpu, 0) }.map(|r| r != 0)
}

/// An all-zero initial context, larger than both `vcpu_guest_context`
/// (PV, about 5 KiB on x86_64) and `vcpu_hvm_context` (PVH): Xen copies
/// the one it expects from the front.
static ZERO_CONTEXT: [u64; 1024] = [0; 1024];

/// `VCPUOP_initialise` of `vcpu` with an all-zero context. Xen refuses a
/// vCPU that is already initialised (`EEXIST`) or does not exist
/// (`ENOENT`); a vCPU that is down and uninitialised would get the zero
/// context (or a refusal of it), which only matters once it is brought
/// [`up`].
pub fn initialise_zeroed(vcpu: u32) -> Result<(), Errno> {
    // SAFETY: Xen only reads the context (a static, never written).
    unsafe { vcpu_op(VCPUOP_INITIALISE, vcpu, ZERO_CONTEXT.as_ptr() as u64) }.map(drop)
}

/// `VCPUOP_initialise` of a PV vCPU with `context`: Xen checks it
/// (non-canonical addresses, a misaligned LDT, … are refused with
/// `EINVAL`), takes references on its page-table root and GDT frames,
/// and leaves the vCPU down unless `VGCF_online` is set. `EEXIST` for a
/// vCPU initialised already.
///
/// # Safety
///
/// Once the vCPU is up it runs `context` in this domain: the entry point,
/// stack, callbacks and page tables must be meant for it, and stay valid
/// for as long as the vCPU may run.
pub unsafe fn initialise_pv(
    vcpu: u32,
    context: &crate::abi::arch_x86::VcpuGuestContext,
) -> Result<(), Errno> {
    // SAFETY: Xen reads one `vcpu_guest_context` from `context` during
    // the call; what the vCPU then runs is the caller's contract.
    unsafe { vcpu_op(VCPUOP_INITIALISE, vcpu, context as *const _ as u64) }.map(drop)
}

/// `VCPUOP_initialise` of a PVH vCPU with `context` (the
/// `vcpu_hvm_context` form). `EINVAL` for what `arch_set_info_hvm_guest`
/// refuses (an unknown mode, `pad` not 0, a non-canonical RIP, CR0
/// without PG, CR4 without PAE, EFER without LME in 64-bit mode);
/// `EEXIST` for a vCPU initialised already.
///
/// # Safety
///
/// As for [`initialise_pv`].
pub unsafe fn initialise_hvm(
    vcpu: u32,
    context: &crate::abi::hvm::VcpuHvmContext,
) -> Result<(), Errno> {
    // SAFETY: Xen reads one `vcpu_hvm_context` from `context` during the
    // call; what the vCPU then runs is the caller's contract.
    unsafe { vcpu_op(VCPUOP_INITIALISE, vcpu, context as *const _ as u64) }.map(drop)
}

/// `VCPUOP_register_vcpu_info`: from now on Xen keeps `vcpu`'s
/// `vcpu_info` (64 bytes) at byte `offset` of frame `frame` (a machine
/// frame in PV, a guest frame in PVH), copying the current one there
/// first. Once per vCPU (`EINVAL` the second time); only by the vCPU
/// itself or for one that is down (`EINVAL` otherwise); `ENXIO` if the
/// struct would cross the frame's end.
///
/// # Safety
///
/// The 64 bytes must be memory the caller owns for good, never freed or
/// reused (there is no unregistering), and accessed only atomically or
/// volatilely, since Xen writes them at any time.
pub unsafe fn register_vcpu_info(vcpu: u32, frame: u64, offset: u32) -> Result<(), Errno> {
    let arg = VcpuRegisterVcpuInfo {
        mfn: frame,
        offset,
        rsvd: 0,
    };
    // SAFETY: `arg` is read during the call; the memory it names is the
    // caller's contract.
    unsafe { vcpu_op(VCPUOP_REGISTER_VCPU_INFO, vcpu, &raw const arg as u64) }.map(drop)
}

/// `VCPUOP_up`: start `vcpu` from its initialised context (no-op for a
/// vCPU already up; `ENOENT` for one the domain does not have, `EINVAL`
/// for one never initialised).
///
/// # Safety
///
/// If `vcpu` is down and initialised, it starts running the context it
/// was given, in this domain: that context must be code and a stack
/// meant for it.
pub unsafe fn up(vcpu: u32) -> Result<(), Errno> {
    // SAFETY: no argument; what the vCPU runs is the caller's contract.
    unsafe { vcpu_op(VCPUOP_UP, vcpu, 0) }.map(drop)
}

/// `VCPUOP_down`: stop `vcpu` (`ENOENT` for one the domain does not
/// have). Stopping the vCPU that makes the call stops the caller, so
/// callers name only other vCPUs.
pub fn down(vcpu: u32) -> Result<(), Errno> {
    // SAFETY: no argument.
    unsafe { vcpu_op(VCPUOP_DOWN, vcpu, 0) }.map(drop)
}

/// `HYPERVISOR_set_timer_op`: the older one-shot timer (0 cancels).
pub fn set_timer_op(deadline_ns: u64) -> Result<(), Errno> {
    // SAFETY: takes a plain number.
    unsafe { hypercall(hypercall_nr::SET_TIMER_OP, [deadline_ns, 0, 0, 0, 0]) }.map(drop)
}
