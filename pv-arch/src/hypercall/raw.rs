//! The raw hypercall: the one place that executes `call` into the page.
//!
//! Everything else in [`super`] builds on [`hypercall`]. It is `unsafe`
//! because a hypercall can do anything the guest kernel can: map memory,
//! hand pages away, read or write through any pointer argument.

use super::page;
use crate::errno::Errno;

/// Issues hypercall `nr` with up to five arguments and decodes the result.
///
/// # Safety
///
/// The caller must uphold the contract of hypercall `nr` with these
/// arguments: every pointer argument must point to memory valid for the
/// reads and writes Xen will do through it for the duration of the call,
/// and the call must not unmap, remap or give away memory that Rust code
/// still references.
pub unsafe fn hypercall(nr: usize, args: [u64; 5]) -> Result<u64, Errno> {
    let ret: i64;
    let entry = page::stub(nr);
    // SAFETY: `entry` is the address of a stub in the hypercall page that
    // Xen filled in. The stub preserves everything but rax (the result),
    // rcx and r11 (clobbered by `syscall`) and the argument registers,
    // which we declare clobbered because Xen may rewrite them. The call
    // uses our stack normally (no `nostack`). The caller upholds the
    // hypercall's own memory contract (see `# Safety`).
    unsafe {
        core::arch::asm!(
            "call *{entry}",
            entry = in(reg) entry,
            inlateout("rdi") args[0] => _,
            inlateout("rsi") args[1] => _,
            inlateout("rdx") args[2] => _,
            inlateout("r10") args[3] => _,
            inlateout("r8") args[4] => _,
            lateout("rax") ret,
            out("rcx") _,
            out("r11") _,
            options(att_syntax)
        );
    }
    Errno::from_ret(ret)
}
