//! Traps and callbacks: Xen delivers exceptions where the trap table
//! says, fills in the fault address, and refuses bad registrations.

use super::{expect_errno, Applies, Ctx, Outcome, Test};
use crate::arch::x86_64::trap_entry::{probe_read, probe_write};
use crate::suite_fail;
use crate::traps;
use pv_arch::abi::callback::CALLBACKTYPE_EVENT;
use pv_arch::hypercall::traps as op;
use pv_arch::Errno;

/// An address in the guest half that nothing maps: above the direct map
/// and the mapping window `mm` keeps at 0x4000_0000_0000.
const UNMAPPED: usize = 0x0000_6000_0000_0000;
/// Start of Xen's read-only machine-to-phys table in a 64-bit PV guest.
const M2P: usize = 0xffff_8000_0000_0000;

fn int3_delivered(_: &Ctx<'_>) -> Outcome {
    let before = traps::int3_count();
    // SAFETY: int3 traps into our handler, which counts it and returns
    // to the next instruction; no state is changed.
    unsafe { core::arch::asm!("int3") };
    match traps::int3_count() - before {
        1 => Outcome::Pass,
        n => suite_fail!("expected 1 int3 delivery, saw {n}"),
    }
}

fn page_fault_reports_address(_: &Ctx<'_>) -> Outcome {
    match probe_read(UNMAPPED + 0x18) {
        Ok(v) => suite_fail!("read of an unmapped address returned {v:#x}"),
        Err(_) if traps::last_probe_fault() == (UNMAPPED + 0x18) as u64 => Outcome::Pass,
        Err(_) => suite_fail!("cr2 was {:#x}", traps::last_probe_fault()),
    }
}

fn page_tables_read_only(ctx: &Ctx<'_>) -> Outcome {
    let pt = ctx.boot.pt_base as usize;
    let Ok(entry) = probe_read(pt) else {
        return suite_fail!("cannot read our own L4 at {pt:#x}");
    };
    // Writing the same value back must still fault: PV page tables are
    // mapped read-only and changed only by hypercall.
    // SAFETY: if the write went through it would store the value already
    // there; the point of the test is that it faults.
    match unsafe { probe_write(pt, entry) } {
        Err(_) => Outcome::Pass,
        Ok(()) => suite_fail!("a write to the live L4 at {pt:#x} succeeded"),
    }
}

fn m2p_readable_not_writable(_: &Ctx<'_>) -> Outcome {
    let Ok(value) = probe_read(M2P) else {
        return suite_fail!("the m2p table at {M2P:#x} is not readable");
    };
    // SAFETY: expected to fault; if not, it stores the value read.
    match unsafe { probe_write(M2P, value) } {
        Err(_) => Outcome::Pass,
        Ok(()) => suite_fail!("the m2p table is writable"),
    }
}

fn trap_table_resubmit(_: &Ctx<'_>) -> Outcome {
    match op::set_trap_table(&traps::trap_table()) {
        Ok(()) => Outcome::Pass,
        Err(e) => suite_fail!("re-installing the trap table failed: {e}"),
    }
}

fn callback_unknown_type(_: &Ctx<'_>) -> Outcome {
    // SAFETY: Xen must refuse the type before looking at the address.
    // It answers an unknown callback type as an unknown operation.
    expect_errno(unsafe { op::register_callback(99, 0, 0) }, Errno::ENOSYS)
}

fn event_callback_not_unregistrable(_: &Ctx<'_>) -> Outcome {
    expect_errno(op::unregister_callback(CALLBACKTYPE_EVENT), Errno::EINVAL)
}

/// The `traps` group.
pub const TESTS: &[Test] = &[
    Test {
        group: "traps",
        name: "int3_delivered_to_handler",
        applies: Applies::Both,
        run: int3_delivered,
    },
    Test {
        group: "traps",
        name: "page_fault_reports_cr2",
        applies: Applies::Both,
        run: page_fault_reports_address,
    },
    Test {
        group: "traps",
        name: "page_tables_mapped_read_only",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: page_tables_read_only,
    },
    Test {
        group: "traps",
        name: "m2p_readable_not_writable",
        applies: Applies::Pv(super::PV_M2P),
        run: m2p_readable_not_writable,
    },
    Test {
        group: "traps",
        name: "set_trap_table_again",
        applies: Applies::Pv(super::PV_TRAP_TABLE),
        run: trap_table_resubmit,
    },
    Test {
        group: "traps",
        name: "callback_unknown_type_enosys",
        applies: Applies::Pv(super::PV_TRAP_TABLE),
        run: callback_unknown_type,
    },
    Test {
        group: "traps",
        name: "event_callback_unregister_einval",
        applies: Applies::Pv(super::PV_TRAP_TABLE),
        run: event_callback_not_unregistrable,
    },
];
