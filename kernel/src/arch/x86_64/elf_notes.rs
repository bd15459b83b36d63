//! The `.note.Xen` ELF notes: how Xen's loaders know what this image is.
//!
//! Both Xen's own dom0 builder and libxc (behind `xl create`) read these
//! from the `PT_NOTE` segment that `link.ld` emits. Each note is the
//! standard ELF note layout (namesz, descsz, type, "Xen\0", descriptor),
//! 4-byte aligned. The type numbers are from `xen/elfnote.h`.
//!
//! - `GUEST_OS`, `GUEST_VERSION`, `XEN_VERSION`, `LOADER`: identification;
//!   `LOADER = "generic"` asks for the plain ELF loader.
//! - `VIRT_BASE = 0`, `PADDR_OFFSET = 0`: virtual addresses equal the
//!   ELF's physical addresses (we link at 1 MiB); Xen maps the image and
//!   its bootstrap structures 1:1 above virtual address 0.
//! - `ENTRY`: `_start`. `HYPERCALL_PAGE`: the page Xen fills with stubs.
//! - `PHYS32_ENTRY`: `pvh_start`, where a PVH guest (dom0 with
//!   `dom0=pvh`, or a domU with `type = "pvh"`) starts in 32-bit mode.
//! - `FEATURES = "!writable_page_tables"`: we update page tables through
//!   hypercalls, never by writing them directly.

core::arch::global_asm!(
    ".macro xen_note_begin type",
    "  .balign 4",
    "  .long 2f - 1f",
    "  .long 4f - 3f",
    "  .long \\type",
    "1: .asciz \"Xen\"",
    "2: .balign 4",
    "3:",
    ".endm",
    ".macro xen_note_end",
    "4: .balign 4",
    ".endm",
    ".pushsection .note.Xen, \"a\", @note",
    // Named so link.ld can demand it (`EXTERN`): otherwise the linker
    // would not pull this object out of the kernel's archive at all.
    ".globl __xen_elf_notes",
    "__xen_elf_notes:",
    // XEN_ELFNOTE_GUEST_OS
    "xen_note_begin 6",
    "  .asciz \"Paravane\"",
    "xen_note_end",
    // XEN_ELFNOTE_GUEST_VERSION
    "xen_note_begin 7",
    concat!("  .asciz \"", env!("CARGO_PKG_VERSION"), "\""),
    "xen_note_end",
    // XEN_ELFNOTE_XEN_VERSION
    "xen_note_begin 5",
    "  .asciz \"xen-3.0\"",
    "xen_note_end",
    // XEN_ELFNOTE_LOADER
    "xen_note_begin 8",
    "  .asciz \"generic\"",
    "xen_note_end",
    // XEN_ELFNOTE_VIRT_BASE
    "xen_note_begin 3",
    "  .quad 0",
    "xen_note_end",
    // XEN_ELFNOTE_PADDR_OFFSET
    "xen_note_begin 4",
    "  .quad 0",
    "xen_note_end",
    // XEN_ELFNOTE_ENTRY
    "xen_note_begin 1",
    "  .quad _start",
    "xen_note_end",
    // XEN_ELFNOTE_HYPERCALL_PAGE
    "xen_note_begin 2",
    "  .quad hypercall_page",
    "xen_note_end",
    // XEN_ELFNOTE_PHYS32_ENTRY: the PVH entry (32-bit physical address)
    "xen_note_begin 18",
    "  .long pvh_start",
    "xen_note_end",
    // XEN_ELFNOTE_FEATURES
    "xen_note_begin 10",
    "  .asciz \"!writable_page_tables\"",
    "xen_note_end",
    ".popsection",
    options(att_syntax)
);
