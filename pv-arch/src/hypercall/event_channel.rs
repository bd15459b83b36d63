//! `HYPERVISOR_event_channel_op`.

use super::raw::hypercall;
use crate::abi::event_channel::{EvtchnPort, EvtchnSend, EVTCHNOP_SEND};
use crate::abi::xen::hypercall_nr;
use crate::errno::Errno;

/// `EVTCHNOP_send`: notify the remote end of `port`.
pub fn evtchn_send(port: EvtchnPort) -> Result<(), Errno> {
    let arg = EvtchnSend { port };
    // SAFETY: Xen reads one `evtchn_send` from `arg`, alive on our stack.
    unsafe {
        hypercall(
            hypercall_nr::EVENT_CHANNEL_OP,
            [u64::from(EVTCHNOP_SEND), &raw const arg as u64, 0, 0, 0],
        )
    }
    .map(drop)
}
