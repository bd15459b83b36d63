//! `_start`: where Xen enters a 64-bit PV guest.
//!
//! Xen starts vCPU 0 in 64-bit mode at the `XEN_ELFNOTE_ENTRY` address,
//! with `rsi` holding the virtual address of `start_info` and `rsp` on a
//! small bootstrap stack inside the initial mapping, events masked. We
//! move to a stack of our own in `.bss` (so its size is ours to choose)
//! and call into Rust.
//!
//! The boot stack (every task runs on it: the executor has no stacks of
//! its own) has a guard page below it, which boot unmaps
//! ([`install_boot_stack_guard`] for PV, `pvh_paging` for PVH), so that
//! an overflow faults instead of silently overwriting whatever `.bss`
//! holds below. What the fault then looks like differs by mode:
//!
//! - PVH: the page fault cannot push its frame on the exhausted stack, so
//!   the CPU raises a double fault, which the IDT sends to a stack of its
//!   own (IST 1 in our TSS, see `pvh_entry`); the kernel's crash report
//!   names the guard page.
//! - PV: Xen delivers a fault to a ring-3 kernel by writing a bounce
//!   frame at the current `rsp`, and there is no IST for PV guests; that
//!   write hits the guard page too, so Xen crashes the domain itself and
//!   says so on its console (`domain_crash_sync called from entry.S`).
//!   The guest prints nothing more, but nothing below the stack is
//!   corrupted.
//!
//! The guard catches frames that step into it. Rust's stack probes make
//! a frame larger than a page touch each page on the way down, so a big
//! frame cannot jump over it.

use core::ops::Range;
use pv_arch::abi::start_info::StartInfo;

/// Size of the boot stack (shared with the PVH entry: only one runs).
pub(super) const BOOT_STACK_SIZE: usize = 64 * 1024;

/// Size of the guard below it: one page.
const GUARD_SIZE: usize = 4096;

/// The boot stack and, below it, its guard page. Page aligned so the
/// guard is a page of its own; the stack top is then 16-byte aligned as
/// the SysV ABI wants at a call.
#[repr(C, align(4096))]
pub(super) struct GuardedBootStack {
    guard: [u8; GUARD_SIZE],
    stack: [u8; BOOT_STACK_SIZE],
}

/// Offset of the stack's top from the start of [`BOOT_STACK`]: what the
/// entry code loads into `rsp`.
pub(super) const BOOT_STACK_TOP: usize = size_of::<GuardedBootStack>();

/// Written only by the CPU through `rsp`; Rust never forms a reference.
pub(super) static mut BOOT_STACK: GuardedBootStack = GuardedBootStack {
    guard: [0; GUARD_SIZE],
    stack: [0; BOOT_STACK_SIZE],
};

/// The guard page's addresses (virtual; equal to physical in PVH).
pub fn boot_stack_guard() -> Range<u64> {
    let start = (&raw const BOOT_STACK) as u64;
    start..start + GUARD_SIZE as u64
}

/// The boot stack's addresses, guard excluded.
pub fn boot_stack() -> Range<u64> {
    let guard = boot_stack_guard();
    guard.end..guard.end + BOOT_STACK_SIZE as u64
}

/// Whether a fault at `fault_address`, with the stack pointer at `rsp`,
/// is the boot stack running into its guard page: for crash reports.
pub fn hit_boot_stack_guard(fault_address: u64, rsp: u64) -> bool {
    let guard = boot_stack_guard();
    // `rsp` may still be just above the guard (a push that faulted) or
    // inside it (a frame allocated, then touched).
    guard.contains(&fault_address) || (guard.start..guard.end + 64).contains(&rsp)
}

/// PV: unmaps the guard page. Called after `mm::init`, whose direct map
/// maps every frame (ours included) at `pfn * 4096`. PVH's page tables
/// leave it out from the start (`pvh_paging::init`).
pub fn install_boot_stack_guard() -> Result<(), pv_arch::Errno> {
    if crate::platform::is_pvh() {
        return Ok(());
    }
    // SAFETY: the guard page is ours (inside `BOOT_STACK`) and nothing
    // refers to it: the stack grows down to its top and no further. Its
    // frame stays reserved (part of the image), only unmapped.
    unsafe {
        pv_arch::hypercall::va_mapping::update_va_mapping(boot_stack_guard().start as usize, 0, 0)
    }
}

core::arch::global_asm!(
    ".pushsection .text.entry, \"ax\", @progbits",
    ".globl _start",
    "_start:",
    "  cld",
    "  lea {stack}+{size}(%rip), %rsp",
    "  xor %ebp, %ebp",
    "  mov %rsi, %rdi",
    "  call {main}",
    "  ud2",
    ".popsection",
    stack = sym BOOT_STACK,
    size = const BOOT_STACK_TOP,
    main = sym pv_entry,
    options(att_syntax)
);

/// Called by `_start` on the boot stack with Xen's `start_info` pointer.
extern "C" fn pv_entry(start_info: *const StartInfo) -> ! {
    // SAFETY: Xen's PV ABI guarantees `rsi` at entry points to the
    // `start_info` page, mapped in the initial region and never freed; we
    // only read it, and `pv_main` copies what it needs before anything
    // could remap that page.
    let start_info = unsafe { &*start_info };
    crate::boot::pv_main(start_info)
}

/// Bytes of the boot stack ever written (it starts zeroed in `.bss`, and
/// grows down), and its size: how deep the kernel has gone, for a margin
/// check (going further faults on the guard page).
pub fn boot_stack_high_water() -> (usize, usize) {
    // SAFETY: a place projection into the static; no reference is formed
    // and nothing is read here.
    let base = unsafe { (&raw const BOOT_STACK.stack).cast::<u8>() };
    let untouched = (0..BOOT_STACK_SIZE)
        // SAFETY: reads bytes inside the static; below the live stack
        // pointer nothing writes them concurrently (one vCPU, and the
        // upcall runs on the stack above us).
        .take_while(|&i| unsafe { base.add(i).read_volatile() } == 0)
        .count();
    (BOOT_STACK_SIZE - untouched, BOOT_STACK_SIZE)
}
