//! `pvh_start`: where Xen enters a PVH guest (`XEN_ELFNOTE_PHYS32_ENTRY`).
//!
//! A PVH guest starts like a multiboot kernel, not like a PV one: 32-bit
//! protected mode, paging off, flat 4 GiB code and data segments, no
//! stack, interrupts off, and `%ebx` holding the physical address of the
//! `hvm_start_info` structure (Xen's `arch-x86/hvm/start_info.h`). The
//! kernel is a real ring-0 kernel here and owns its page tables.
//!
//! The 32-bit code does the least that reaches Rust: it identity-maps
//! the first 1 GiB with 2 MiB pages (the image sits at 1 MiB and Xen puts
//! `hvm_start_info`, the command line and the memory map right after
//! it), turns on PAE and long mode, loads a GDT with one 64-bit code and
//! one data segment, and jumps to 64-bit code, which switches to the
//! boot stack and calls [`crate::boot::pvh_main`]. The final page tables
//! (all of the first 4 GiB, page 0 left unmapped) are built in Rust with
//! the `x86_64` crate ([`super::pvh_paging`]).
//!
//! The bootstrap tables live in `.bss`, which Xen's ELF loader zeroes.

use super::pv_entry::{BOOT_STACK, BOOT_STACK_SIZE};

/// The GDT selectors `pvh_start` loads (also used for the IDT).
pub const CODE_SELECTOR: u16 = 0x08;

/// One 4 KiB table of 512 entries, as the CPU wants it.
#[repr(C, align(4096))]
struct Table([u64; 512]);

/// Written only by `pvh_start` before paging is on; Rust never reads it.
static mut BOOT_PML4: Table = Table([0; 512]);
/// See [`BOOT_PML4`].
static mut BOOT_PDPT: Table = Table([0; 512]);
/// See [`BOOT_PML4`].
static mut BOOT_PD: Table = Table([0; 512]);

core::arch::global_asm!(
    // The GDT: null, 64-bit ring-0 code (0x08), ring-0 data (0x10). In
    // `.data` because the CPU sets the accessed bits in it.
    ".pushsection .data.pvh_gdt, \"aw\", @progbits",
    ".balign 16",
    ".globl paravane_pvh_gdt",
    "paravane_pvh_gdt:",
    "  .quad 0",
    "  .quad 0x00af9a000000ffff",
    "  .quad 0x00cf92000000ffff",
    "paravane_pvh_gdt_end:",
    ".balign 16",
    // `lgdt` in 32-bit mode reads a 16-bit limit and a 32-bit base; the
    // 64-bit form reads 8 bytes of base, so give it 8 (the image is below
    // 4 GiB, the upper half is zero).
    "paravane_pvh_gdt_ptr:",
    "  .word paravane_pvh_gdt_end - paravane_pvh_gdt - 1",
    "  .quad paravane_pvh_gdt",
    ".popsection",
    ".pushsection .text.entry, \"ax\", @progbits",
    ".code32",
    ".globl pvh_start",
    "pvh_start:",
    "  cld",
    "  cli",
    // %esi survives to 64-bit code: hvm_start_info's physical address.
    "  movl %ebx, %esi",
    // PD: 512 × 2 MiB, present + writable + large.
    "  movl ${pd}, %edi",
    "  movl $0x83, %eax",
    "  movl $512, %ecx",
    "1:",
    "  movl %eax, (%edi)",
    "  movl $0, 4(%edi)",
    "  addl $0x200000, %eax",
    "  addl $8, %edi",
    "  loop 1b",
    "  movl ${pdpt}, %edi",
    "  movl ${pd}, %eax",
    "  orl $3, %eax",
    "  movl %eax, (%edi)",
    "  movl ${pml4}, %edi",
    "  movl ${pdpt}, %eax",
    "  orl $3, %eax",
    "  movl %eax, (%edi)",
    "  movl %edi, %cr3",
    // CR4.PAE, then EFER.LME (and NXE, which the final tables may use).
    "  movl %cr4, %eax",
    "  orl $0x20, %eax",
    "  movl %eax, %cr4",
    "  movl $0xc0000080, %ecx",
    "  rdmsr",
    "  orl $0x900, %eax",
    "  wrmsr",
    // CR0.PG and WP: long mode is active from here.
    "  movl %cr0, %eax",
    "  orl $0x80010001, %eax",
    "  movl %eax, %cr0",
    "  lgdt paravane_pvh_gdt_ptr",
    "  ljmp $0x08, $paravane_pvh_long",
    ".code64",
    "paravane_pvh_long:",
    "  movl $0x10, %eax",
    "  movl %eax, %ds",
    "  movl %eax, %es",
    "  movl %eax, %ss",
    "  xorl %eax, %eax",
    "  movl %eax, %fs",
    "  movl %eax, %gs",
    "  leaq {stack}+{size}(%rip), %rsp",
    "  xorl %ebp, %ebp",
    "  movl %esi, %edi",
    "  call {main}",
    "  ud2",
    ".popsection",
    pml4 = sym BOOT_PML4,
    pdpt = sym BOOT_PDPT,
    pd = sym BOOT_PD,
    stack = sym BOOT_STACK,
    size = const BOOT_STACK_SIZE,
    main = sym pvh_entry,
    options(att_syntax)
);

/// Called by `pvh_start` in long mode, on the boot stack, with the
/// physical (= virtual, below 1 GiB) address of `hvm_start_info`.
extern "C" fn pvh_entry(start_info_paddr: u32) -> ! {
    crate::boot::pvh_main(u64::from(start_info_paddr))
}
