//! `HYPERVISOR_set_trap_table` and `HYPERVISOR_callback_op`: where Xen
//! delivers exceptions and event upcalls.

use super::raw::hypercall;
use crate::abi::arch_x86::TrapInfo;
use crate::abi::callback::*;
use crate::abi::xen::hypercall_nr;
use crate::errno::Errno;

/// `set_trap_table`: install the virtual IDT. `table` must end with an
/// entry whose `address` is zero (checked: refused with `EINVAL` here
/// rather than letting Xen read past the slice).
pub fn set_trap_table(table: &[TrapInfo]) -> Result<(), Errno> {
    if table.last().is_none_or(|t| t.address != 0) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: Xen reads entries up to the terminating zero-address one,
    // which we just checked is inside `table`.
    unsafe {
        hypercall(
            hypercall_nr::SET_TRAP_TABLE,
            [table.as_ptr() as u64, 0, 0, 0, 0],
        )
    }
    .map(drop)
}

/// `CALLBACKOP_register` of `kind` (`CALLBACKTYPE_*`) at `address`.
///
/// # Safety
///
/// `address` must be code that handles Xen's bounce frame for that
/// callback type; Xen will jump there.
pub unsafe fn register_callback(kind: u16, address: u64, flags: u16) -> Result<(), Errno> {
    let arg = CallbackRegister {
        type_: kind,
        flags,
        address,
    };
    // SAFETY: Xen reads one `callback_register` from `arg`; that the
    // address is a proper handler is the caller's contract.
    unsafe {
        hypercall(
            hypercall_nr::CALLBACK_OP,
            [
                u64::from(CALLBACKOP_REGISTER),
                &raw const arg as u64,
                0,
                0,
                0,
            ],
        )
    }
    .map(drop)
}

/// `CALLBACKOP_unregister` of `kind`.
pub fn unregister_callback(kind: u16) -> Result<(), Errno> {
    let arg = CallbackUnregister {
        type_: kind,
        _unused: 0,
    };
    // SAFETY: Xen reads one `callback_unregister` from `arg`.
    unsafe {
        hypercall(
            hypercall_nr::CALLBACK_OP,
            [
                u64::from(CALLBACKOP_UNREGISTER),
                &raw const arg as u64,
                0,
                0,
                0,
            ],
        )
    }
    .map(drop)
}
