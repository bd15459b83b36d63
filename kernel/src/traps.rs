//! Exceptions and upcalls: the virtual IDT and the callbacks Xen uses.
//!
//! [`init`] installs a trap table (`set_trap_table`) with one stub per
//! exception (see `arch::x86_64::trap_entry`) and registers the event and
//! failsafe callbacks (`callback_op`). Every entry lands in
//! [`trap_handler`]:
//!
//! - an event upcall goes to [`crate::events::upcall`] on vCPU 0, and to
//!   [`crate::smp`]'s own on a secondary vCPU;
//! - `int3` is counted and execution continues (the suite checks that
//!   Xen delivers it to our handler);
//! - a page fault on one of the probe instructions resumes at the probe's
//!   exit with a failure flag;
//! - anything else is fatal: a report (vector, name, error code, faulting
//!   address, registers, a frame-pointer backtrace) and `SHUTDOWN_crash`.

use crate::arch::x86_64::trap_entry::{self, TrapFrame, EVENT_VECTOR};
use crate::{console, shutdown};
use core::sync::atomic::{AtomicU64, Ordering};
use pv_arch::abi::arch_x86::{TrapInfo, FLAT_KERNEL_CS};
use pv_arch::abi::callback::{
    CALLBACKF_MASK_EVENTS, CALLBACKTYPE_EVENT, CALLBACKTYPE_FAILSAFE, CALLBACKTYPE_NMI,
};
use pv_arch::hypercall::traps::{register_callback, set_trap_table};
use pv_arch::Errno;

/// How many `int3` traps were delivered to us.
static INT3_COUNT: AtomicU64 = AtomicU64::new(0);
/// NMIs taken (`xl trigger DOMAIN nmi`, or a watchdog's).
static NMIS: AtomicU64 = AtomicU64::new(0);
/// NMIs already reported on the console.
static NMIS_REPORTED: AtomicU64 = AtomicU64::new(0);
/// Interrupt vectors that arrived with no handler (PVH).
static SPURIOUS: AtomicU64 = AtomicU64::new(0);
/// The address of the last caught probe fault.
static LAST_PROBE_FAULT: AtomicU64 = AtomicU64::new(0);

/// The trap table given to Xen (kept for the suite to resubmit).
pub fn trap_table() -> [TrapInfo; 18] {
    let mut table = [TrapInfo::default(); 18];
    for (slot, (vector, address)) in table.iter_mut().zip(trap_entry::exception_stubs()) {
        // int3 and into may be raised from any privilege level.
        let dpl = if vector == 3 || vector == 4 { 3 } else { 0 };
        *slot = TrapInfo {
            vector,
            flags: TrapInfo::make_flags(dpl, true),
            cs: FLAT_KERNEL_CS,
            address: address as u64,
        };
    }
    // The last entry stays zero: the terminator.
    table
}

/// The event and failsafe callback entry points (also what a secondary
/// vCPU's initial context names).
pub fn callback_addresses() -> (u64, u64) {
    (
        trap_entry::paravane_event_callback as *const () as usize as u64,
        trap_entry::paravane_failsafe_callback as *const () as usize as u64,
    )
}

/// Installs the trap table and the event and failsafe callbacks.
pub fn init() -> Result<(), Errno> {
    set_trap_table(&trap_table())?;
    // SAFETY: both addresses are the assembly entry points written for
    // exactly these bounce frames (see `trap_entry`).
    unsafe {
        register_callback(
            CALLBACKTYPE_EVENT,
            trap_entry::paravane_event_callback as *const () as usize as u64,
            CALLBACKF_MASK_EVENTS,
        )?;
        register_callback(
            CALLBACKTYPE_FAILSAFE,
            trap_entry::paravane_failsafe_callback as *const () as usize as u64,
            CALLBACKF_MASK_EVENTS,
        )?;
        // Xen bounces an NMI for this vCPU to this entry, masking further
        // NMIs until our `HYPERVISOR_iret` (the common return path).
        register_callback(
            CALLBACKTYPE_NMI,
            trap_entry::paravane_trap_2 as *const () as usize as u64,
            0,
        )?;
    }
    Ok(())
}

/// NMIs taken so far.
pub fn nmi_count() -> u64 {
    NMIS.load(Ordering::SeqCst)
}

/// Prints one line if NMIs arrived since the last report. Called from
/// task context (the idle path): the NMI handler itself may interrupt
/// anything, a holder of the console lock included, so it only counts.
pub fn report_nmis() {
    let taken = NMIS.load(Ordering::SeqCst);
    let reported = NMIS_REPORTED.swap(taken, Ordering::SeqCst);
    if taken > reported {
        crate::println!(
            "Paravane: NMI received ({} new, {taken} in all); no handler wants it, continuing",
            taken - reported
        );
    }
}

/// `int3` traps delivered so far.
pub fn int3_count() -> u64 {
    INT3_COUNT.load(Ordering::SeqCst)
}

/// Interrupts on vectors nobody handles (PVH only; always 0 in PV).
pub fn spurious_interrupts() -> u64 {
    SPURIOUS.load(Ordering::SeqCst)
}

/// The faulting address of the last probe that faulted.
pub fn last_probe_fault() -> u64 {
    LAST_PROBE_FAULT.load(Ordering::SeqCst)
}

/// Called by the assembly stubs with the saved state.
pub extern "C" fn trap_handler(frame: &mut TrapFrame) {
    match frame.vector {
        EVENT_VECTOR => {
            // PVH: an upcall taken before the idle `hlt` began must not
            // return to it (see `platform::skip_idle_hlt`).
            if let Some(after) = crate::platform::skip_idle_hlt(frame.rip) {
                frame.rip = after;
            }
            // Each vCPU takes its own upcalls (see `smp`).
            match crate::smp::current_vcpu() {
                0 => crate::events::upcall(),
                id => crate::smp::secondary_upcall(id),
            }
        }
        // PVH: a vector nobody asked for (no device interrupts are set
        // up); counted, and the interrupted code resumes.
        32..=255 => {
            SPURIOUS.fetch_add(1, Ordering::SeqCst);
        }
        // An NMI (`xl trigger nmi`): counted, reported later from task
        // context ([`report_nmis`]). In PVH it may land between the idle
        // `sti` and `hlt`; resume past the `hlt` so the report is not
        // held until the next event.
        2 => {
            NMIS.fetch_add(1, Ordering::SeqCst);
            if let Some(after) = crate::platform::skip_idle_hlt(frame.rip) {
                frame.rip = after;
            }
        }
        3 => {
            INT3_COUNT.fetch_add(1, Ordering::SeqCst);
        }
        14 if is_probe(frame.rip) => {
            LAST_PROBE_FAULT.store(crate::platform::fault_address(), Ordering::SeqCst);
            frame.rdx = 1;
            frame.rip = trap_entry::paravane_probe_exit as *const () as usize as u64;
        }
        _ => fatal(frame),
    }
}

fn is_probe(rip: u64) -> bool {
    rip == trap_entry::paravane_probe_read_insn as *const () as usize as u64
        || rip == trap_entry::paravane_probe_write_insn as *const () as usize as u64
}

/// Called when Xen cannot return to us (bad segment state).
pub extern "C" fn failsafe_handler(frame: *const u64) -> ! {
    console::emergency_write_fmt(format_args!(
        "FATAL: Xen failsafe callback (frame at {frame:p}): could not restore our segments\n"
    ));
    shutdown::crash()
}

/// The mnemonic of exception `vector`.
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        9 => "coprocessor segment overrun",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating point",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating point",
        _ => "unknown",
    }
}

fn fatal(frame: &TrapFrame) -> ! {
    let w = |args: core::fmt::Arguments<'_>| console::emergency_write_fmt(args);
    w(format_args!(
        "FATAL EXCEPTION: vector {} ({}) error code {:#x} at rip {:#x}\n",
        frame.vector,
        exception_name(frame.vector),
        frame.error_code,
        frame.rip
    ));
    if frame.vector == 14 {
        let cr2 = crate::platform::fault_address();
        let e = frame.error_code;
        w(format_args!(
            "  page fault address {cr2:#x}: {} {} in {} mode{}\n",
            if e & 1 != 0 {
                "protection violation"
            } else {
                "not present"
            },
            if e & 2 != 0 {
                "on write"
            } else if e & 16 != 0 {
                "on fetch"
            } else {
                "on read"
            },
            if e & 4 != 0 { "user" } else { "kernel" },
            if e & 8 != 0 { ", reserved bit set" } else { "" }
        ));
    }
    if matches!(frame.vector, 8 | 14) {
        use crate::arch::x86_64::pv_entry;
        if pv_entry::hit_boot_stack_guard(crate::platform::fault_address(), frame.rsp) {
            let guard = pv_entry::boot_stack_guard();
            w(format_args!(
                "  stack overflow: the boot stack ran into its guard page {:#x}-{:#x}\n",
                guard.start, guard.end
            ));
        }
    }
    w(format_args!(
        "  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n  rsi {:#018x} rdi {:#018x} rbp {:#018x} rsp {:#018x}\n  r8  {:#018x} r9  {:#018x} r10 {:#018x} r11 {:#018x}\n  r12 {:#018x} r13 {:#018x} r14 {:#018x} r15 {:#018x}\n  cs {:#x} ss {:#x} rflags {:#x}\n",
        frame.rax, frame.rbx, frame.rcx, frame.rdx, frame.rsi, frame.rdi, frame.rbp, frame.rsp,
        frame.r8, frame.r9, frame.r10, frame.r11, frame.r12, frame.r13, frame.r14, frame.r15,
        frame.cs & 0xffff, frame.ss, frame.rflags
    ));
    backtrace(frame.rbp);
    shutdown::crash()
}

/// Walks saved frame pointers (`[rbp]` = caller's rbp, `[rbp+8]` = return
/// address), reading each word with the fault-tolerant probe so a corrupt
/// chain ends the walk instead of faulting again.
fn backtrace(mut rbp: u64) {
    console::emergency_write_fmt(format_args!("  backtrace (frame pointers):\n"));
    for depth in 0..16 {
        if rbp == 0 || !rbp.is_multiple_of(8) {
            break;
        }
        let (Ok(next), Ok(ret)) = (
            trap_entry::probe_read(rbp as usize),
            trap_entry::probe_read(rbp as usize + 8),
        ) else {
            break;
        };
        if ret == 0 {
            break;
        }
        console::emergency_write_fmt(format_args!("    #{depth} {ret:#x}\n"));
        if next <= rbp {
            break;
        }
        rbp = next;
    }
}

/// PVH only: makes this vCPU triple-fault now, on purpose (an empty IDT,
/// then `int3`: the breakpoint, the #GP for its missing gate and the #DF
/// for that all fail to be delivered). Xen then shuts the domain down
/// with `d…v… Triple fault` in its log, which is how the rig's
/// post-mortem (the preserved domain's HVM state, `xen-hvmctx`) is
/// checked. In PV there is no IDT of ours to empty: an error.
pub fn triple_fault() -> Result<core::convert::Infallible, &'static str> {
    if !crate::platform::is_pvh() {
        return Err("a triple fault needs PVH: in PV, Xen owns the IDT");
    }
    let empty = x86_64::structures::DescriptorTablePointer {
        limit: 0,
        base: x86_64::VirtAddr::new(0),
    };
    // SAFETY: ending the domain is the point: with a zero-length IDT no
    // exception can be delivered, so the `int3` escalates to a triple
    // fault and Xen shuts the domain down; nothing runs after it.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("int3", options(noreturn));
    }
}

/// Reads 8 bytes at `address` with an ordinary load, so that an unmapped
/// address takes the fatal page-fault path (for the `fault` example and
/// its rig test). Safe to call: the worst outcome is the crash report.
pub fn read_u64_or_crash(address: u64) -> u64 {
    // SAFETY: a plain read; if `address` is unmapped the page fault is
    // fatal by design (the handler reports and crashes the domain), and if
    // it is mapped we only read, never write.
    unsafe { (address as *const u64).read_volatile() }
}
