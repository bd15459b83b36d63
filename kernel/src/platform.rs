//! The boot-mode boundary: everything that differs between PV and PVH.
//!
//! One kernel image boots either way (`XEN_ELFNOTE_ENTRY` for PV,
//! `XEN_ELFNOTE_PHYS32_ENTRY` for PVH). The entry code records the mode
//! here, and the few places where the two interfaces really differ ask
//! this module instead of testing the mode themselves. Drivers, xenstore
//! and libos never see the difference: a frame number they hand to Xen
//! (`Page::mfn`) is a machine frame in PV and a guest frame in PVH,
//! which is exactly what Xen expects from each.
//!
//! | concern | PV | PVH |
//! |---|---|---|
//! | entry | 64-bit, `rsi` = `start_info` (`arch::x86_64::pv_entry`) | 32-bit, `ebx` = `hvm_start_info` (`arch::x86_64::pvh_entry`) |
//! | hypercall page | filled by the domain builder (ELF note) | written by Xen when we write the CPUID-named MSR |
//! | page tables | Xen's bootstrap tables, extended through `mmu_update` ([`crate::mm`]) | our own identity map (`arch::x86_64::pvh_paging`) |
//! | frames | p2m/M2P translation | guest frames, identity |
//! | console, xenstore | `start_info` | `HVM_PARAM_{CONSOLE,STORE}_{PFN,EVTCHN}` |
//! | shared info, grant frames | machine frames mapped with `update_va_mapping` | placed with `XENMEM_add_to_physmap` ([`crate::fixmap::place`]) |
//! | exceptions | virtual IDT (`set_trap_table`), Xen's bounce frame, `HYPERVISOR_iret` | our IDT, hardware frame, `iretq` |
//! | event upcall | `callback_op` callback, gated by `evtchn_upcall_mask` | `HVM_PARAM_CALLBACK_IRQ` vector, gated by `RFLAGS.IF` |
//! | idle | `SCHEDOP_block` (unmasks and sleeps atomically) | `sti; hlt` (the interrupt shadow makes it atomic; the upcall skips a `hlt` it interrupted, for emulators that drop the shadow) |
//! | page-fault address | `vcpu_info.arch.cr2` | `CR2` |

use crate::boot_info::BootMode;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

static MODE: AtomicU8 = AtomicU8::new(0);

/// Records how we booted. Called once, by the entry code.
pub fn set_mode(mode: BootMode) {
    MODE.store(
        match mode {
            BootMode::Pv => 0,
            BootMode::Pvh => 1,
        },
        Ordering::Relaxed,
    );
}

/// How we booted.
pub fn mode() -> BootMode {
    match MODE.load(Ordering::Relaxed) {
        0 => BootMode::Pv,
        _ => BootMode::Pvh,
    }
}

/// Whether we booted PVH.
pub fn is_pvh() -> bool {
    mode() == BootMode::Pvh
}

/// The address of the last page fault.
pub fn fault_address() -> u64 {
    match mode() {
        BootMode::Pv => crate::shared_info::cr2().unwrap_or(0),
        BootMode::Pvh => crate::arch::x86_64::pvh_paging::fault_address(),
    }
}

/// Installs the exception (and, for PV, callback) entry points.
pub fn install_traps() -> Result<(), pv_arch::Errno> {
    match mode() {
        BootMode::Pv => crate::traps::init(),
        BootMode::Pvh => {
            crate::arch::x86_64::pvh_trap_entry::init();
            Ok(())
        }
    }
}

/// Sleeps until an event upcall has run (or returns at once if Xen has
/// one pending). Events are held back everywhere else, so an upcall only
/// ever interrupts this function.
pub fn wait_for_event() {
    match mode() {
        BootMode::Pv => {
            // Xen unmasks upcalls and sleeps in one step; a pending event
            // is delivered to our callback as the hypercall returns.
            let _ = pv_arch::hypercall::sched::sched_block();
            crate::shared_info::upcall_mask().store(1, Ordering::SeqCst);
        }
        BootMode::Pvh => wait_for_event_pvh(),
    }
}

/// PVH's idle step on any vCPU: `sti; hlt; cli`, returning once an
/// upcall has run (or at once if one was due). Interrupts must be off.
pub fn wait_for_event_pvh() {
    if is_pvh() {
        // SAFETY: `paravane_pvh_idle` is `sti; hlt; cli; ret` (see
        // `PVH_IDLE`): interrupts are enabled only around the `hlt`,
        // our IDT is installed, and the callback vector's handler
        // runs the upcall and returns into the routine (past the
        // `hlt` if it interrupted before it, see
        // [`skip_idle_hlt`]); it returns with interrupts disabled
        // again. It clobbers nothing but flags. Not `nomem`: the
        // upcall that runs inside writes memory (the fired-port
        // bitmap), so this must be a compiler barrier too.
        unsafe { core::arch::asm!("call {idle}", idle = sym paravane_pvh_idle) };
    }
}

// The PVH idle routine, in its own section so the upcall can recognise
// it. `sti; hlt` is atomic on hardware: the one-instruction interrupt
// shadow after `sti` defers a pending interrupt until the `hlt` has
// begun, and the interrupt then ends the halt. An emulator that drops
// the shadow delivers the interrupt *before* the `hlt` instead; the
// handler then returns to the `hlt`, which halts with the event already
// handled and nothing left to wake us: a lost wake-up. QEMU's software
// SVM does exactly that (its VMRUN does not reload the VMCB's
// `int_state`, so a #VMEXIT between the `sti` and the `hlt` -- where
// QEMU checks for host interrupts, the `sti` ending its translation
// block -- loses the shadow), and the PVH conformance suite hung in 2
// of 41 runs. So the upcall handler moves a saved RIP that points at
// one of these `hlt`s past it ([`skip_idle_hlt`]): the idle returns and
// the executor looks again. `paravane_pvh_idle_unshadowed` is the
// suite's way to make that happen on purpose (a `nop` between the `sti`
// and the `hlt`, so an upcall already due is taken right at the `hlt`).
core::arch::global_asm!(
    ".pushsection .text.paravane_pvh_idle, \"ax\", @progbits",
    ".globl paravane_pvh_idle",
    "paravane_pvh_idle:",
    "  sti",
    ".globl paravane_pvh_idle_hlt",
    "paravane_pvh_idle_hlt:",
    "  hlt",
    "  cli",
    "  ret",
    ".globl paravane_pvh_idle_unshadowed",
    "paravane_pvh_idle_unshadowed:",
    "  sti",
    "  nop",
    ".globl paravane_pvh_idle_unshadowed_hlt",
    "paravane_pvh_idle_unshadowed_hlt:",
    "  hlt",
    "  cli",
    "  ret",
    ".popsection",
    options(att_syntax)
);

unsafe extern "C" {
    fn paravane_pvh_idle();
    fn paravane_pvh_idle_hlt();
    fn paravane_pvh_idle_unshadowed();
    fn paravane_pvh_idle_unshadowed_hlt();
}

/// Upcalls that arrived before an idle `hlt` had started (see
/// [`skip_idle_hlt`]).
static UPCALLS_BEFORE_HLT: AtomicU64 = AtomicU64::new(0);

/// Called by the upcall handler with the interrupted RIP: if it is one of
/// the idle routine's `hlt`s (the interrupt came before the halt began,
/// which the `sti` shadow should have prevented), returns the RIP after
/// it, so the handler resumes there instead of halting with the event
/// already taken. Counted ([`upcalls_before_hlt`]).
pub fn skip_idle_hlt(rip: u64) -> Option<u64> {
    let hlts = [
        paravane_pvh_idle_hlt as *const () as usize as u64,
        paravane_pvh_idle_unshadowed_hlt as *const () as usize as u64,
    ];
    if hlts.contains(&rip) {
        UPCALLS_BEFORE_HLT.fetch_add(1, Ordering::Relaxed);
        // `hlt` is one byte (0xf4).
        Some(rip + 1)
    } else {
        None
    }
}

/// How many upcalls interrupted the idle routine before its `hlt`: each
/// one a wake-up that would have been lost without [`skip_idle_hlt`].
pub fn upcalls_before_hlt() -> u64 {
    UPCALLS_BEFORE_HLT.load(Ordering::Relaxed)
}

/// PVH, for the suite: idles with a `nop` between the `sti` and the
/// `hlt`, so an upcall that is already due is taken with the saved RIP
/// at the `hlt` (what an emulator that drops the `sti` shadow does to
/// [`wait_for_event`]). Returns once an upcall has run.
pub fn wait_for_event_unshadowed() {
    if is_pvh() {
        // SAFETY: as in `wait_for_event`: the routine enables interrupts
        // only around its `hlt`, the IDT and the callback vector are set
        // up, and it returns with interrupts disabled.
        unsafe { core::arch::asm!("call {idle}", idle = sym paravane_pvh_idle_unshadowed) };
    }
}

/// Sets up upcall delivery once the IDT is installed: PVH names the
/// callback vector; PV registered its callback in [`install_traps`].
pub fn enable_upcalls() -> Result<(), pv_arch::Errno> {
    if !is_pvh() {
        return Ok(());
    }
    use pv_arch::abi::hvm::{hvm_callback_via_vector, HVM_PARAM_CALLBACK_IRQ};
    use pv_arch::abi::xen::DOMID_SELF;
    let vector = crate::arch::x86_64::pvh_trap_entry::CALLBACK_VECTOR;
    // SAFETY: the IDT has a stub for `vector` that runs the upcall
    // (installed by `install_traps`, which boot runs first), and
    // interrupts stay disabled except in `wait_for_event`.
    unsafe {
        pv_arch::hypercall::hvm::set_param(
            DOMID_SELF,
            HVM_PARAM_CALLBACK_IRQ,
            hvm_callback_via_vector(vector),
        )
    }
}

/// Writes to Xen's HVM debug port (I/O port 0xe9): Xen prints each line
/// on its own console as `(dN) …`. PVH only, for failures before the
/// console exists (a domU may not use `console_io`).
pub fn debug_port_write_fmt(args: core::fmt::Arguments<'_>) {
    struct Port;
    impl core::fmt::Write for Port {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for byte in s.bytes() {
                // SAFETY: port 0xe9 is Xen's debug console for HVM
                // guests; writing it has no other effect.
                unsafe {
                    core::arch::asm!("outb %al, $0xe9", in("al") byte, options(att_syntax, nomem, nostack))
                };
            }
            Ok(())
        }
    }
    if is_pvh() {
        let _ = core::fmt::Write::write_fmt(&mut Port, args);
    }
}

/// Stops this vCPU for good, without Xen's help (PVH, when not even
/// hypercalls work).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: interrupts are off; `hlt` just stops the vCPU.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
