//! Every hypercall instruction the guest executes.
//!
//! A 64-bit PV guest calls into Xen through the *hypercall page*: a page of
//! our image that Xen fills with one 32-byte stub per hypercall
//! (`mov $nr, %eax; syscall; ret`). We tell Xen where it is with the
//! `XEN_ELFNOTE_HYPERCALL_PAGE` note; the page itself is defined in
//! [`page`]. Arguments go in `rdi`, `rsi`, `rdx`, `r10`, `r8`; the result
//! comes back in `rax`, a negative errno on failure. Xen may rewrite the
//! argument registers (a preempted hypercall is restarted with updated
//! arguments, and debug builds scribble on them on purpose), so the raw
//! calls treat them as clobbered, along with `rcx` and `r11`, which
//! `syscall` itself overwrites.
//!
//! [`raw`] holds the only inline assembly; the other submodules are typed,
//! safe wrappers, one per hypercall, returning `Result<_, Errno>`.

pub mod console;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod memory;
pub mod mmu;
pub mod multicall;
pub mod page;
pub mod raw;
pub mod sched;
pub mod traps;
pub mod va_mapping;
pub mod vcpu;
pub mod xen_version;
