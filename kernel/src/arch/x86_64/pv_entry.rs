//! `_start`: where Xen enters a 64-bit PV guest.
//!
//! Xen starts vCPU 0 in 64-bit mode at the `XEN_ELFNOTE_ENTRY` address,
//! with `rsi` holding the virtual address of `start_info` and `rsp` on a
//! small bootstrap stack inside the initial mapping, events masked. We
//! move to a stack of our own in `.bss` (so its size is ours to choose)
//! and call into Rust.

use pv_arch::abi::start_info::StartInfo;

/// Size of the boot stack (shared with the PVH entry: only one runs).
pub(super) const BOOT_STACK_SIZE: usize = 64 * 1024;

/// The boot stack: 16-byte aligned as the SysV ABI wants at a call.
#[repr(C, align(16))]
pub(super) struct BootStack([u8; BOOT_STACK_SIZE]);

/// Written only by the CPU through `rsp`; Rust never forms a reference.
pub(super) static mut BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_SIZE]);

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
    size = const BOOT_STACK_SIZE,
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
/// check (there is no guard page below it).
pub fn boot_stack_high_water() -> (usize, usize) {
    let base = (&raw const BOOT_STACK).cast::<u8>();
    let untouched = (0..BOOT_STACK_SIZE)
        // SAFETY: reads bytes inside the static; below the live stack
        // pointer nothing writes them concurrently (one vCPU, and the
        // upcall runs on the stack above us).
        .take_while(|&i| unsafe { base.add(i).read_volatile() } == 0)
        .count();
    (BOOT_STACK_SIZE - untouched, BOOT_STACK_SIZE)
}
