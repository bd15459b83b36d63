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
//! | idle | `SCHEDOP_block` (unmasks and sleeps atomically) | `sti; hlt` (the interrupt shadow makes it atomic) |
//! | page-fault address | `vcpu_info.arch.cr2` | `CR2` |

use crate::boot_info::BootMode;
use core::sync::atomic::{AtomicU8, Ordering};

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
        BootMode::Pvh => {
            // SAFETY: `sti; hlt` enables interrupts only for the `hlt`
            // (the one-instruction interrupt shadow after `sti` means an
            // interrupt pending now is taken at the `hlt`, never lost
            // before it); our IDT is installed, and the callback vector's
            // handler runs the upcall and returns here; `cli` restores
            // the rule that nothing else is ever interrupted. Not
            // `nomem`: the upcall that runs inside writes memory (port
            // flags, wakers), so this must be a compiler barrier too.
            unsafe { core::arch::asm!("sti", "hlt", "cli", options(nostack)) };
        }
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
