//! `HYPERVISOR_hvm_op`: the HVM parameters a PVH guest reads and sets.
//!
//! A PVH guest has no `start_info` page naming its xenstore and console
//! rings; it asks for them here (`HVM_PARAM_STORE_*`,
//! `HVM_PARAM_CONSOLE_*`) and tells Xen how to deliver event upcalls
//! (`HVM_PARAM_CALLBACK_IRQ`). A PV guest gets `ENOSYS`/`EINVAL` back.

use super::raw::hypercall;
use crate::abi::hvm::{XenHvmParam, HVMOP_GET_PARAM, HVMOP_SET_PARAM};
use crate::abi::xen::{hypercall_nr, DomId};
use crate::errno::Errno;

/// `HVMOP_get_param`: the value of parameter `index` of `domid`.
pub fn get_param(domid: DomId, index: u32) -> Result<u64, Errno> {
    let mut arg = XenHvmParam {
        domid,
        pad: 0,
        index,
        value: 0,
    };
    // SAFETY: Xen reads and writes one `xen_hvm_param` in `arg`, which
    // lives on our stack for the call; getting a parameter changes nothing.
    unsafe {
        hypercall(
            hypercall_nr::HVM_OP,
            [u64::from(HVMOP_GET_PARAM), &raw mut arg as u64, 0, 0, 0],
        )
    }?;
    Ok(arg.value)
}

/// `HVMOP_set_param`: sets parameter `index` of `domid` to `value`.
///
/// # Safety
///
/// Some parameters change how Xen treats the guest: `HVM_PARAM_CALLBACK_IRQ`
/// with a vector makes Xen inject that vector, so an IDT entry must
/// handle it before interrupts are enabled.
pub unsafe fn set_param(domid: DomId, index: u32, value: u64) -> Result<(), Errno> {
    let arg = XenHvmParam {
        domid,
        pad: 0,
        index,
        value,
    };
    // SAFETY: Xen reads `arg`; the effect is the caller's contract.
    unsafe {
        hypercall(
            hypercall_nr::HVM_OP,
            [u64::from(HVMOP_SET_PARAM), &raw const arg as u64, 0, 0, 0],
        )
    }
    .map(|_| ())
}
