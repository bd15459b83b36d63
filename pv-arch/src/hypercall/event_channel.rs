//! `HYPERVISOR_event_channel_op`: create, bind, signal and close ports.
//!
//! Each wrapper fills the operation's struct, passes its address, and
//! returns the OUT fields Xen wrote back.

use super::raw::hypercall;
use crate::abi::event_channel::*;
use crate::abi::xen::{hypercall_nr, DomId, DOMID_SELF};
use crate::errno::Errno;

/// Issues `EVTCHNOP_<cmd>` on `arg`, which Xen may read and write.
fn op<T>(cmd: u32, arg: &mut T) -> Result<(), Errno> {
    // SAFETY: every caller passes the struct that `cmd` expects (the
    // pairing is fixed in this module); it lives on the caller's stack,
    // mutably borrowed for the call, so Xen's reads and writes of it are
    // in bounds and race with nothing.
    unsafe {
        hypercall(
            hypercall_nr::EVENT_CHANNEL_OP,
            [u64::from(cmd), arg as *mut T as u64, 0, 0, 0],
        )
    }
    .map(drop)
}

/// `EVTCHNOP_send`: notify the remote end of `port`.
pub fn evtchn_send(port: EvtchnPort) -> Result<(), Errno> {
    op(EVTCHNOP_SEND, &mut EvtchnSend { port })
}

/// `EVTCHNOP_alloc_unbound`: a new port that `remote_dom` may bind to.
pub fn alloc_unbound(remote_dom: DomId) -> Result<EvtchnPort, Errno> {
    alloc_unbound_for(DOMID_SELF, remote_dom)
}

/// `EVTCHNOP_alloc_unbound` with an explicit owning domain (`dom` other
/// than `DOMID_SELF` needs privilege; the suite checks the refusal).
pub fn alloc_unbound_for(dom: DomId, remote_dom: DomId) -> Result<EvtchnPort, Errno> {
    let mut arg = EvtchnAllocUnbound {
        dom,
        remote_dom,
        port: 0,
    };
    op(EVTCHNOP_ALLOC_UNBOUND, &mut arg)?;
    Ok(arg.port)
}

/// `EVTCHNOP_bind_interdomain`: connect to `remote_port` of `remote_dom`.
pub fn bind_interdomain(remote_dom: DomId, remote_port: EvtchnPort) -> Result<EvtchnPort, Errno> {
    let mut arg = EvtchnBindInterdomain {
        remote_dom,
        remote_port,
        local_port: 0,
    };
    op(EVTCHNOP_BIND_INTERDOMAIN, &mut arg)?;
    Ok(arg.local_port)
}

/// `EVTCHNOP_bind_virq`: a port for virtual IRQ `virq` on `vcpu`.
pub fn bind_virq(virq: u32, vcpu: u32) -> Result<EvtchnPort, Errno> {
    let mut arg = EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    op(EVTCHNOP_BIND_VIRQ, &mut arg)?;
    Ok(arg.port)
}

/// `EVTCHNOP_bind_ipi`: a port for inter-processor notifications to `vcpu`.
pub fn bind_ipi(vcpu: u32) -> Result<EvtchnPort, Errno> {
    let mut arg = EvtchnBindIpi { vcpu, port: 0 };
    op(EVTCHNOP_BIND_IPI, &mut arg)?;
    Ok(arg.port)
}

/// `EVTCHNOP_close`.
pub fn close(port: EvtchnPort) -> Result<(), Errno> {
    op(EVTCHNOP_CLOSE, &mut EvtchnClose { port })
}

/// `EVTCHNOP_status` of our own `port`.
pub fn status(port: EvtchnPort) -> Result<EvtchnStatus, Errno> {
    status_of(DOMID_SELF, port)
}

/// `EVTCHNOP_status` of `port` in domain `dom`.
pub fn status_of(dom: DomId, port: EvtchnPort) -> Result<EvtchnStatus, Errno> {
    let mut arg = EvtchnStatus {
        dom,
        port,
        ..EvtchnStatus::default()
    };
    op(EVTCHNOP_STATUS, &mut arg)?;
    Ok(arg)
}

/// `EVTCHNOP_unmask`: clear the mask bit and redeliver if pending.
pub fn unmask(port: EvtchnPort) -> Result<(), Errno> {
    op(EVTCHNOP_UNMASK, &mut EvtchnUnmask { port })
}

/// `EVTCHNOP_bind_vcpu`: deliver `port` to another vCPU.
pub fn bind_vcpu(port: EvtchnPort, vcpu: u32) -> Result<(), Errno> {
    op(EVTCHNOP_BIND_VCPU, &mut EvtchnBindVcpu { port, vcpu })
}

/// `EVTCHNOP_init_control`: switch to the FIFO ABI for `vcpu`, with its
/// control block at byte `offset` of frame `control_gfn` (an MFN for a PV
/// guest). Returns `link_bits`.
///
/// # Safety
///
/// On success Xen maps `control_gfn` and writes the control block into
/// it from then on: the frame must be one we keep for that alone (not
/// memory Rust owns some other way) for as long as the domain uses the
/// FIFO ABI.
pub unsafe fn init_control(control_gfn: u64, offset: u32, vcpu: u32) -> Result<u8, Errno> {
    let mut arg = EvtchnInitControl {
        control_gfn,
        offset,
        vcpu,
        link_bits: 0,
        _pad: [0; 7],
    };
    op(EVTCHNOP_INIT_CONTROL, &mut arg)?;
    Ok(arg.link_bits)
}

/// `EVTCHNOP_expand_array`: add one page (`array_gfn`) of FIFO event words.
///
/// # Safety
///
/// On success Xen maps `array_gfn` and writes event words into it for
/// the rest of the domain's life: the frame must be one we keep for that
/// alone (not memory Rust owns some other way).
pub unsafe fn expand_array(array_gfn: u64) -> Result<(), Errno> {
    op(EVTCHNOP_EXPAND_ARRAY, &mut EvtchnExpandArray { array_gfn })
}

/// `EVTCHNOP_set_priority` (FIFO ABI only).
pub fn set_priority(port: EvtchnPort, priority: u32) -> Result<(), Errno> {
    op(
        EVTCHNOP_SET_PRIORITY,
        &mut EvtchnSetPriority { port, priority },
    )
}

/// An `EVTCHNOP_*` command number Xen does not know, for the suite's
/// check that unknown commands are refused. The argument is a zeroed
/// 64-byte buffer.
pub fn unknown_command(cmd: u32) -> Result<(), Errno> {
    op(cmd, &mut [0u64; 8])
}
