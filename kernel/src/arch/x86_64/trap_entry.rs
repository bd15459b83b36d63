//! Assembly entry points Xen bounces exceptions and event upcalls to.
//!
//! A 64-bit PV guest kernel runs in ring 3, so Xen, not the CPU, builds
//! the exception frame on our stack: `rcx`, `r11` (which Xen used to get
//! back into the guest), then for exceptions with one the error code,
//! then `rip`, `cs`, `rflags`, `rsp`, `ss` as hardware would. Each stub
//! restores `rcx`/`r11` from that frame, pushes a uniform
//! `(vector, error code)` pair, saves every general register, and calls
//! Rust with a pointer to the resulting [`TrapFrame`]. Returning goes
//! through `HYPERVISOR_iret`: a plain `iretq` from our ring-3 kernel back
//! into itself faults under Xen 4.17 (we tried), and the hypercall also
//! restores the event upcall mask the interrupted code had.
//!
//! Event upcalls use the same frame minus the error code; the stub marks
//! them with vector [`EVENT_VECTOR`]. The failsafe callback (Xen could not
//! load our segment registers on a return) never returns.
//!
//! The probe routines at the end are the only instructions allowed to
//! fault and continue: the page-fault handler recognises their address
//! and resumes at their exit with a failure flag (an exception-table
//! fixup, as Linux does), so the conformance suite can check that a
//! mapping really faults.

/// The saved state of an interrupted context, as the stubs lay it out.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TrapFrame {
    /// General registers, in the reverse of the order pushed.
    pub r15: u64,
    #[allow(missing_docs)]
    pub r14: u64,
    #[allow(missing_docs)]
    pub r13: u64,
    #[allow(missing_docs)]
    pub r12: u64,
    #[allow(missing_docs)]
    pub r11: u64,
    #[allow(missing_docs)]
    pub r10: u64,
    #[allow(missing_docs)]
    pub r9: u64,
    #[allow(missing_docs)]
    pub r8: u64,
    /// Frame pointer of the interrupted code: the backtrace starts here.
    pub rbp: u64,
    #[allow(missing_docs)]
    pub rdi: u64,
    #[allow(missing_docs)]
    pub rsi: u64,
    #[allow(missing_docs)]
    pub rdx: u64,
    #[allow(missing_docs)]
    pub rcx: u64,
    #[allow(missing_docs)]
    pub rbx: u64,
    #[allow(missing_docs)]
    pub rax: u64,
    /// Exception vector, or [`EVENT_VECTOR`].
    pub vector: u64,
    /// The error code (0 where the exception has none).
    pub error_code: u64,
    /// Where the interrupted code was.
    pub rip: u64,
    /// Its code segment (Xen keeps the saved upcall mask in bits 32..40).
    pub cs: u64,
    #[allow(missing_docs)]
    pub rflags: u64,
    #[allow(missing_docs)]
    pub rsp: u64,
    #[allow(missing_docs)]
    pub ss: u64,
}

/// The pseudo-vector the event-upcall stub records.
pub const EVENT_VECTOR: u64 = 256;

/// Exceptions that push an error code (Intel SDM vol. 3, table 6-1).
pub const HAS_ERROR_CODE: [u8; 7] = [8, 10, 11, 12, 13, 14, 17];

/// Saves every general register as a [`TrapFrame`] below the `(vector,
/// error code)` pair, calls `{handler}` with a pointer to it, restores
/// the registers and drops the pair: the part of the entry path both
/// modes share (PVH's stubs in `pvh_trap_entry` use it too).
macro_rules! save_call_restore {
    () => {
        concat!(
            "  pushq %rax\n  pushq %rbx\n  pushq %rcx\n  pushq %rdx\n",
            "  pushq %rsi\n  pushq %rdi\n  pushq %rbp\n  pushq %r8\n",
            "  pushq %r9\n  pushq %r10\n  pushq %r11\n  pushq %r12\n",
            "  pushq %r13\n  pushq %r14\n  pushq %r15\n",
            "  movq %rsp, %rdi\n  cld\n  call {handler}\n",
            "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n",
            "  popq %r11\n  popq %r10\n  popq %r9\n  popq %r8\n",
            "  popq %rbp\n  popq %rdi\n  popq %rsi\n  popq %rdx\n",
            "  popq %rcx\n  popq %rbx\n  popq %rax\n",
            "  addq $16, %rsp\n"
        )
    };
}
pub(super) use save_call_restore;

macro_rules! trap_stub {
    ($name:literal, $vector:literal, noerr) => {
        concat!(
            ".globl ",
            $name,
            "\n",
            $name,
            ":\n",
            "  movq (%rsp), %rcx\n  movq 8(%rsp), %r11\n  leaq 16(%rsp), %rsp\n",
            "  pushq $0\n  pushq $",
            $vector,
            "\n  jmp paravane_trap_common\n"
        )
    };
    ($name:literal, $vector:literal, err) => {
        concat!(
            ".globl ",
            $name,
            "\n",
            $name,
            ":\n",
            "  movq (%rsp), %rcx\n  movq 8(%rsp), %r11\n  leaq 16(%rsp), %rsp\n",
            "  pushq $",
            $vector,
            "\n  jmp paravane_trap_common\n"
        )
    };
}

core::arch::global_asm!(
    ".pushsection .text.trap_entry, \"ax\", @progbits",
    trap_stub!("paravane_trap_0", "0", noerr),
    trap_stub!("paravane_trap_1", "1", noerr),
    trap_stub!("paravane_trap_2", "2", noerr),
    trap_stub!("paravane_trap_3", "3", noerr),
    trap_stub!("paravane_trap_4", "4", noerr),
    trap_stub!("paravane_trap_5", "5", noerr),
    trap_stub!("paravane_trap_6", "6", noerr),
    trap_stub!("paravane_trap_7", "7", noerr),
    trap_stub!("paravane_trap_9", "9", noerr),
    trap_stub!("paravane_trap_10", "10", err),
    trap_stub!("paravane_trap_11", "11", err),
    trap_stub!("paravane_trap_12", "12", err),
    trap_stub!("paravane_trap_13", "13", err),
    trap_stub!("paravane_trap_14", "14", err),
    trap_stub!("paravane_trap_16", "16", noerr),
    trap_stub!("paravane_trap_17", "17", err),
    trap_stub!("paravane_trap_18", "18", noerr),
    trap_stub!("paravane_trap_19", "19", noerr),
    trap_stub!("paravane_event_callback", "256", noerr),
    // Save everything, call Rust, restore everything, return.
    "paravane_trap_common:",
    save_call_restore!(),
    // HYPERVISOR_iret wants `rax, r11, rcx, flags` on top of the frame.
    // Its stub in the hypercall page pushes rcx, r11 and rax itself, so
    // we push only `flags` and jump (not call) there. Xen restores the
    // registers and the iret frame, and sets the upcall mask from the
    // saved RFLAGS.IF (which it derived from the mask at entry).
    "  pushq $0",
    "  jmp hypercall_page + {iret_stub}",
    // Failsafe: the frame holds rcx, r11, ds, es, fs, gs, then the iret
    // frame. There is no sane state to return to.
    ".globl paravane_failsafe_callback",
    "paravane_failsafe_callback:",
    "  movq %rsp, %rdi",
    "  andq $-16, %rsp",
    "  call {failsafe}",
    "  ud2",
    // probe_read(addr) -> (value in rax, faulted in rdx)
    ".globl paravane_probe_read",
    "paravane_probe_read:",
    "  xorl %edx, %edx",
    ".globl paravane_probe_read_insn",
    "paravane_probe_read_insn:",
    "  movq (%rdi), %rax",
    ".globl paravane_probe_exit",
    "paravane_probe_exit:",
    "  ret",
    // probe_write(addr, value) -> faulted in rdx
    ".globl paravane_probe_write",
    "paravane_probe_write:",
    "  xorl %edx, %edx",
    ".globl paravane_probe_write_insn",
    "paravane_probe_write_insn:",
    "  movq %rsi, (%rdi)",
    "  ret",
    ".popsection",
    handler = sym crate::traps::trap_handler,
    failsafe = sym crate::traps::failsafe_handler,
    iret_stub = const pv_arch::abi::xen::hypercall_nr::IRET * pv_arch::hypercall::page::STUB_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    /// Start of the stub for vector N (see the `trap_stub!` list).
    pub fn paravane_trap_0();
    #[allow(missing_docs)]
    pub fn paravane_trap_1();
    /// The NMI entry (PV: registered as `CALLBACKTYPE_nmi`, not in the
    /// trap table, which Xen does not use for NMIs).
    pub fn paravane_trap_2();
    #[allow(missing_docs)]
    pub fn paravane_trap_3();
    #[allow(missing_docs)]
    pub fn paravane_trap_4();
    #[allow(missing_docs)]
    pub fn paravane_trap_5();
    #[allow(missing_docs)]
    pub fn paravane_trap_6();
    #[allow(missing_docs)]
    pub fn paravane_trap_7();
    #[allow(missing_docs)]
    pub fn paravane_trap_9();
    #[allow(missing_docs)]
    pub fn paravane_trap_10();
    #[allow(missing_docs)]
    pub fn paravane_trap_11();
    #[allow(missing_docs)]
    pub fn paravane_trap_12();
    #[allow(missing_docs)]
    pub fn paravane_trap_13();
    #[allow(missing_docs)]
    pub fn paravane_trap_14();
    #[allow(missing_docs)]
    pub fn paravane_trap_16();
    #[allow(missing_docs)]
    pub fn paravane_trap_17();
    #[allow(missing_docs)]
    pub fn paravane_trap_18();
    #[allow(missing_docs)]
    pub fn paravane_trap_19();
    /// The event-upcall entry.
    pub fn paravane_event_callback();
    /// The failsafe-callback entry.
    pub fn paravane_failsafe_callback();
    /// The faulting instruction of the read probe.
    pub fn paravane_probe_read_insn();
    /// The faulting instruction of the write probe.
    pub fn paravane_probe_write_insn();
    /// Where a faulted probe resumes (with `rdx` = 1).
    pub fn paravane_probe_exit();
}

/// The exception stubs by vector, for the trap table.
pub fn exception_stubs() -> [(u8, usize); 17] {
    [
        (0, paravane_trap_0 as *const () as usize),
        (1, paravane_trap_1 as *const () as usize),
        (3, paravane_trap_3 as *const () as usize),
        (4, paravane_trap_4 as *const () as usize),
        (5, paravane_trap_5 as *const () as usize),
        (6, paravane_trap_6 as *const () as usize),
        (7, paravane_trap_7 as *const () as usize),
        (9, paravane_trap_9 as *const () as usize),
        (10, paravane_trap_10 as *const () as usize),
        (11, paravane_trap_11 as *const () as usize),
        (12, paravane_trap_12 as *const () as usize),
        (13, paravane_trap_13 as *const () as usize),
        (14, paravane_trap_14 as *const () as usize),
        (16, paravane_trap_16 as *const () as usize),
        (17, paravane_trap_17 as *const () as usize),
        (18, paravane_trap_18 as *const () as usize),
        (19, paravane_trap_19 as *const () as usize),
    ]
}

/// A probe touched memory that is not mapped as it asked (the page fault
/// was caught; `traps::last_probe_fault` has the address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeFault;

/// Reads 8 bytes at `addr`, reporting a page fault instead of dying.
pub fn probe_read(addr: usize) -> Result<u64, ProbeFault> {
    let value: u64;
    let faulted: u64;
    // SAFETY: the probe reads one aligned-or-not qword; if the address is
    // not readable the resulting page fault is caught by the trap handler
    // (it recognises `paravane_probe_read_insn`) and we resume at the
    // probe's exit with rdx = 1. No Rust memory is written.
    unsafe {
        core::arch::asm!(
            "call paravane_probe_read",
            in("rdi") addr,
            out("rax") value,
            out("rdx") faulted,
            options(att_syntax)
        );
    }
    if faulted == 0 {
        Ok(value)
    } else {
        Err(ProbeFault)
    }
}

/// Writes 8 bytes at `addr`, reporting a page fault instead of dying.
///
/// # Safety
///
/// If the write succeeds it changes memory: `addr` must not be memory
/// Rust code relies on (use it on pages set aside for the test).
pub unsafe fn probe_write(addr: usize, value: u64) -> Result<(), ProbeFault> {
    let faulted: u64;
    // SAFETY: as for `probe_read`; what the write changes is the caller's
    // responsibility per `# Safety`.
    unsafe {
        core::arch::asm!(
            "call paravane_probe_write",
            in("rdi") addr,
            in("rsi") value,
            out("rdx") faulted,
            options(att_syntax)
        );
    }
    if faulted == 0 {
        Ok(())
    } else {
        Err(ProbeFault)
    }
}
