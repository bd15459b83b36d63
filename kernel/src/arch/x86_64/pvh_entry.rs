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
//!
//! Before Rust's `pvh_main` runs, [`pvh_entry`] loads a task state
//! segment whose only use is IST 1: a stack of its own for the double
//! fault, which is what a boot-stack overflow becomes (the page fault on
//! the guard page cannot push its frame on the exhausted stack).

use super::pv_entry::{BOOT_STACK, BOOT_STACK_TOP};

/// The GDT selectors `pvh_start` loads (also used for the IDT).
pub const CODE_SELECTOR: u16 = 0x08;

/// The TSS descriptor's selector (a 16-byte system descriptor at GDT
/// slots 3 and 4, filled in by [`load_task_state`]).
const TSS_SELECTOR: u16 = 0x18;

/// The IST slot (1-based, as IDT gates name it) of the double-fault
/// stack; `pvh_trap_entry` puts it in the #DF gate.
pub const DOUBLE_FAULT_IST: u8 = 1;

/// Size of the double-fault stack: enough for the crash report (the
/// formatter and the console) and nothing else.
const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;

/// The double-fault stack; used only by the CPU through IST 1.
#[repr(C, align(16))]
struct DoubleFaultStack([u8; DOUBLE_FAULT_STACK_SIZE]);

/// Written only by the CPU through `rsp`; Rust never forms a reference.
static mut DOUBLE_FAULT_STACK: DoubleFaultStack = DoubleFaultStack([0; DOUBLE_FAULT_STACK_SIZE]);

/// The TSS: only its IST 1 entry is used (no ring changes in PVH, no
/// I/O bitmap). The CPU reads it; we write it once before `ltr`.
static mut TSS: x86_64::structures::tss::TaskStateSegment =
    x86_64::structures::tss::TaskStateSegment::new();

unsafe extern "C" {
    /// The GDT in the assembly below: five 8-byte slots.
    static mut paravane_pvh_gdt: [u64; 5];
}

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
    // The TSS descriptor (0x18, 16 bytes), filled in by load_task_state.
    "  .quad 0",
    "  .quad 0",
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
    size = const BOOT_STACK_TOP,
    main = sym pvh_entry,
    options(att_syntax)
);

/// Called by `pvh_start` in long mode, on the boot stack, with the
/// physical (= virtual, below 1 GiB) address of `hvm_start_info`.
extern "C" fn pvh_entry(start_info_paddr: u32) -> ! {
    load_task_state();
    crate::boot::pvh_main(u64::from(start_info_paddr))
}

/// The two words of a 64-bit TSS descriptor (available, present, DPL 0)
/// for a TSS at `base` of `size` bytes.
fn tss_descriptor(base: u64, size: usize) -> [u64; 2] {
    let limit = (size - 1) as u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, DPL 0, type 9: available 64-bit TSS
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

/// Points IST 1 at the double-fault stack, puts the TSS in the GDT and
/// loads it. Runs once, first thing in 64-bit Rust, interrupts off.
fn load_task_state() {
    let stack_top = (&raw const DOUBLE_FAULT_STACK) as u64 + DOUBLE_FAULT_STACK_SIZE as u64;
    let tss = &raw mut TSS;
    // SAFETY: runs once, single-threaded, before the IDT exists (so no
    // exception can use the TSS while it changes); `TSS` and the GDT's
    // slots 3 and 4 are written only here, through raw pointers, and
    // then read by the CPU alone. The selector names the descriptor just
    // written, which describes `TSS` exactly.
    unsafe {
        (*tss).interrupt_stack_table[usize::from(DOUBLE_FAULT_IST - 1)] =
            x86_64::VirtAddr::new(stack_top);
        let [low, high] = tss_descriptor(
            tss as u64,
            size_of::<x86_64::structures::tss::TaskStateSegment>(),
        );
        let gdt = &raw mut paravane_pvh_gdt;
        (*gdt)[3] = low;
        (*gdt)[4] = high;
        x86_64::instructions::tables::load_tss(x86_64::structures::gdt::SegmentSelector(
            TSS_SELECTOR,
        ));
    }
}

/// A PVH secondary vCPU's first step: Xen started it with flat 64-bit
/// segments of its own (selector 0) and no GDT or IDT, so it loads ours:
/// the GDT above (its TSS descriptor is vCPU 0's, busy, so no `ltr`
/// here: secondaries have no IST stack), code selector 0x08 through a
/// far return, the data selectors, and vCPU 0's IDT. Interrupts are off.
pub fn load_descriptor_tables_on_secondary() {
    use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
    use x86_64::structures::gdt::SegmentSelector;
    let pointer = x86_64::structures::DescriptorTablePointer {
        limit: (size_of::<[u64; 5]>() - 1) as u16,
        base: x86_64::VirtAddr::new((&raw const paravane_pvh_gdt) as u64),
    };
    // SAFETY: the GDT is a static that lives forever and holds the
    // 64-bit code (0x08) and data (0x10) descriptors vCPU 0 runs with;
    // loading it and those selectors changes nothing but this vCPU's
    // segment state, which nothing else relies on yet. Interrupts are
    // off until the IDT is loaded.
    unsafe {
        x86_64::instructions::tables::lgdt(&pointer);
        CS::set_reg(SegmentSelector(CODE_SELECTOR));
        SS::set_reg(SegmentSelector(0x10));
        DS::set_reg(SegmentSelector(0x10));
        ES::set_reg(SegmentSelector(0x10));
    }
    super::pvh_trap_entry::load();
}
