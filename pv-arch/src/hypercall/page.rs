//! The hypercall page: 4 KiB in our text that Xen fills with call stubs.
//!
//! For a PV guest Xen writes the stubs while building the domain, because
//! the kernel's ELF notes name this page (`XEN_ELFNOTE_HYPERCALL_PAGE`).
//! Until Xen fills it, the page holds `int3` bytes, so a call through an
//! unfilled page traps at once instead of running garbage.

core::arch::global_asm!(
    ".pushsection .text.hypercall_page, \"ax\", @progbits",
    ".balign 4096",
    ".globl hypercall_page",
    "hypercall_page:",
    ".fill 4096, 1, 0xcc",
    ".size hypercall_page, 4096",
    ".popsection",
    options(att_syntax)
);

unsafe extern "C" {
    /// The page of stubs; only its address is ever used.
    static hypercall_page: [u8; 4096];
}

/// Size of one stub; hypercall `nr` lives at `hypercall_page + nr * 32`.
pub const STUB_SIZE: usize = 32;

/// Virtual address of the hypercall page (for the ELF note and diagnostics).
pub fn address() -> usize {
    (&raw const hypercall_page) as usize
}

/// Address of the stub for hypercall number `nr`.
pub fn stub(nr: usize) -> usize {
    debug_assert!(nr < 4096 / STUB_SIZE);
    address() + nr * STUB_SIZE
}
