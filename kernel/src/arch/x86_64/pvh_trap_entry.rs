//! PVH's interrupt descriptor table and its entry stubs.
//!
//! In PVH the kernel runs in ring 0 and the CPU itself delivers
//! exceptions through our IDT: the frame is the hardware one (`rip`,
//! `cs`, `rflags`, `rsp`, `ss`, plus an error code for some vectors),
//! without the `rcx`/`r11` pair Xen adds for PV, and the way back is a
//! plain `iretq`. Event upcalls arrive as the interrupt vector we name
//! in `HVM_PARAM_CALLBACK_IRQ` ([`CALLBACK_VECTOR`]); Xen injects it
//! while `evtchn_upcall_pending` is set and interrupts are enabled, so
//! the kernel keeps `RFLAGS.IF` clear except in its idle `sti; hlt`.
//!
//! There is one 16-byte stub per vector, generated with `.rept`: each
//! pushes a 0 error code where the CPU pushes none, then its vector
//! ([`super::trap_entry::EVENT_VECTOR`] for the callback vector, so the
//! shared handler needs no PVH case), and joins the common path, which
//! builds the same [`super::trap_entry::TrapFrame`] as the PV stubs and
//! calls the same `traps::trap_handler`.

use super::pvh_entry::CODE_SELECTOR;
use super::trap_entry::save_call_restore;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

/// The vector Xen raises for event upcalls (Linux picks the same one).
pub const CALLBACK_VECTOR: u8 = 0xf3;

/// Bytes between consecutive stubs.
const STUB_STRIDE: usize = 16;

core::arch::global_asm!(
    ".pushsection .text.pvh_trap_entry, \"ax\", @progbits",
    ".balign 16",
    ".globl paravane_pvh_stubs",
    "paravane_pvh_stubs:",
    ".set paravane_vec, 0",
    ".rept 256",
    "  .balign 16",
    // Vectors with a CPU-pushed error code: #DF #TS #NP #SS #GP #PF #AC
    // #CP #VC #SX (8, 10-14, 17, 21, 29, 30).
    "  .if (paravane_vec == 8) || (paravane_vec >= 10 && paravane_vec <= 14) || (paravane_vec == 17) || (paravane_vec == 21) || (paravane_vec == 29) || (paravane_vec == 30)",
    "  .else",
    "  pushq $0",
    "  .endif",
    "  .if paravane_vec == {callback}",
    "  pushq $256",
    "  .else",
    "  pushq $paravane_vec",
    "  .endif",
    "  jmp paravane_pvh_trap_common",
    "  .set paravane_vec, paravane_vec + 1",
    ".endr",
    "paravane_pvh_trap_common:",
    save_call_restore!(),
    "  iretq",
    ".popsection",
    callback = const CALLBACK_VECTOR,
    handler = sym crate::traps::trap_handler,
    options(att_syntax)
);

unsafe extern "C" {
    /// The first of the 256 stubs; stub `n` is at `+ n * 16`.
    fn paravane_pvh_stubs();
}

/// One 16-byte 64-bit interrupt gate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    /// Present, DPL 0, type 0xE (interrupt gate: IF cleared on entry).
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const EMPTY: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn interrupt(handler: u64, dpl: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: CODE_SELECTOR,
            ist: 0,
            type_attr: 0x8e | (dpl << 5),
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

/// Filled once by [`init`], then only read by the CPU.
static mut IDT: Idt = Idt([Gate::EMPTY; 256]);

/// Fills the IDT with the stubs and loads it.
pub fn init() {
    let base = paravane_pvh_stubs as *const () as usize as u64;
    // SAFETY: runs once at boot with interrupts off, before any
    // exception can be taken through the IDT; nothing else references
    // `IDT`. Every gate points at a stub of the table above, in our
    // 64-bit code segment.
    unsafe {
        let idt = &raw mut IDT;
        for (vector, gate) in (*idt).0.iter_mut().enumerate() {
            // int3 and into may be raised on purpose (the suite does).
            let dpl = if vector == 3 || vector == 4 { 3 } else { 0 };
            *gate = Gate::interrupt(base + (vector * STUB_STRIDE) as u64, dpl);
            if vector == 8 {
                // A double fault gets a stack of its own (the TSS's IST):
                // a boot-stack overflow is one, with no stack left.
                gate.ist = super::pvh_entry::DOUBLE_FAULT_IST;
            }
        }
    }
    load();
}

/// Loads the IDT [`init`] filled on the calling vCPU (vCPU 0 at boot; a
/// PVH secondary vCPU when it starts: one IDT serves every vCPU).
pub fn load() {
    // SAFETY: `IDT` is a static filled once by `init` before any vCPU
    // loads it and only read by the CPUs afterwards; every gate points
    // at a stub in our code segment.
    unsafe {
        lidt(&DescriptorTablePointer {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: VirtAddr::new((&raw const IDT) as u64),
        });
    }
}
