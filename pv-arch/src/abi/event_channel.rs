//! Event-channel operations (`xen/event_channel.h`), and the virtual IRQ
//! numbers they bind (`VIRQ_*`, from `xen/xen.h`).
//!
//! Every `EVTCHNOP_*` command of `HYPERVISOR_event_channel_op` takes a
//! pointer to the matching `Evtchn*` struct here. Ports are delivered
//! either through the 2-level bitmaps in the shared-info page or through
//! the FIFO ABI, whose control block and event-word bits are at the end
//! of this module.

use crate::abi::xen::DomId;

/// An event-channel port number (`evtchn_port_t`).
pub type EvtchnPort = u32;

/// `EVTCHNOP_bind_interdomain`: connect to a remote domain's unbound port.
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// `EVTCHNOP_bind_virq`: bind a port to a virtual IRQ.
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// `EVTCHNOP_bind_pirq`: bind a port to a physical IRQ (privileged).
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// `EVTCHNOP_close`: close a port.
pub const EVTCHNOP_CLOSE: u32 = 3;
/// `EVTCHNOP_send`: notify the remote end of a port.
pub const EVTCHNOP_SEND: u32 = 4;
/// `EVTCHNOP_status`: query a port's state.
pub const EVTCHNOP_STATUS: u32 = 5;
/// `EVTCHNOP_alloc_unbound`: allocate a port a given domain may connect to.
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// `EVTCHNOP_bind_ipi`: allocate a port for inter-vCPU notifications.
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// `EVTCHNOP_bind_vcpu`: choose which vCPU a port notifies.
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// `EVTCHNOP_unmask`: unmask a port, redelivering a pending event.
pub const EVTCHNOP_UNMASK: u32 = 9;
/// `EVTCHNOP_reset`: close all of a domain's ports.
pub const EVTCHNOP_RESET: u32 = 10;
/// `EVTCHNOP_init_control`: switch to the FIFO ABI for one vCPU.
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// `EVTCHNOP_expand_array`: give Xen another page of FIFO event words.
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// `EVTCHNOP_set_priority`: set a port's FIFO priority.
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;

/// `VIRQ_TIMER` (per vCPU): the timer fired or system time was updated.
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG` (per vCPU): the toolstack asks for a debug dump.
pub const VIRQ_DEBUG: u32 = 1;
/// `VIRQ_CONSOLE` (global, dom0): input on the hypervisor console.
pub const VIRQ_CONSOLE: u32 = 2;
/// `VIRQ_DOM_EXC` (global, dom0): some domain hit an exceptional event.
pub const VIRQ_DOM_EXC: u32 = 3;
/// `VIRQ_TBUF` (global, dom0): trace buffers have records.
pub const VIRQ_TBUF: u32 = 4;
/// `VIRQ_DEBUGGER` (global, dom0): a domain paused for the debugger.
pub const VIRQ_DEBUGGER: u32 = 6;
/// `VIRQ_XENOPROF` (per vCPU): a new profiling sample.
pub const VIRQ_XENOPROF: u32 = 7;
/// `VIRQ_CON_RING` (global, dom0): bytes arrived in the console ring.
pub const VIRQ_CON_RING: u32 = 8;
/// `VIRQ_PCPU_STATE` (global, dom0): a physical CPU changed state.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// `VIRQ_MEM_EVENT` (global, dom0): a memory event occurred.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// `VIRQ_ARGO` (global): an Argo message arrived.
pub const VIRQ_ARGO: u32 = 11;
/// `VIRQ_ENOMEM` (global, dom0): Xen's heap is running low.
pub const VIRQ_ENOMEM: u32 = 12;
/// `VIRQ_XENPMU` (per vCPU): a performance-counter interrupt.
pub const VIRQ_XENPMU: u32 = 13;
/// `VIRQ_ARCH_0`: first architecture-specific VIRQ (`VIRQ_ARCH_n` is
/// this plus `n`, up to 7).
pub const VIRQ_ARCH_0: u32 = 16;
/// `NR_VIRQS`: number of VIRQ numbers.
pub const NR_VIRQS: u32 = 24;

/// `EVTCHNSTAT_closed`: the port is not in use.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// `EVTCHNSTAT_unbound`: the port waits for a remote domain to connect.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// `EVTCHNSTAT_interdomain`: the port is connected to a remote domain.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// `EVTCHNSTAT_pirq`: the port is bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// `EVTCHNSTAT_virq`: the port is bound to a virtual IRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// `EVTCHNSTAT_ipi`: the port is bound for inter-vCPU notifications.
pub const EVTCHNSTAT_IPI: u32 = 5;

/// `BIND_PIRQ__WILL_SHARE`: the physical IRQ may be shared.
pub const BIND_PIRQ__WILL_SHARE: u32 = 1;

/// `struct evtchn_alloc_unbound`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    /// IN: domain to allocate in (unprivileged callers: `DOMID_SELF`).
    pub dom: DomId,
    /// IN: the domain allowed to connect (may be `DOMID_SELF`).
    pub remote_dom: DomId,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindInterdomain {
    /// IN: the remote domain.
    pub remote_dom: DomId,
    /// IN: its unbound port, allocated for us.
    pub remote_port: EvtchnPort,
    /// OUT: our new, connected port (Xen marks it pending once).
    pub local_port: EvtchnPort,
}

/// `struct evtchn_bind_virq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVirq {
    /// IN: the `VIRQ_*` number.
    pub virq: u32,
    /// IN: the vCPU to deliver to (global VIRQs: vCPU 0 at first).
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_pirq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindPirq {
    /// IN: the physical IRQ.
    pub pirq: u32,
    /// IN: `BIND_PIRQ__*` flags.
    pub flags: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_ipi`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindIpi {
    /// IN: the vCPU the port notifies (fixed for the port's life).
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_close`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnClose {
    /// IN: the port to close (a connected remote end becomes unbound).
    pub port: EvtchnPort,
}

/// `struct evtchn_send`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSend {
    /// Local port to notify through.
    pub port: EvtchnPort,
}

/// `evtchn_status.u`: what the port is bound to, by status.
///
/// Raw words standing in for the C union; use the accessor matching
/// [`EvtchnStatus::status`], or [`EvtchnStatus::binding`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatusU {
    raw: [u32; 2],
}

impl EvtchnStatusU {
    /// Wraps the union's two raw 32-bit words.
    pub const fn from_raw(raw: [u32; 2]) -> Self {
        EvtchnStatusU { raw }
    }

    /// The union's two raw 32-bit words.
    pub const fn raw(&self) -> [u32; 2] {
        self.raw
    }

    /// `u.unbound.dom`: the domain allowed to connect.
    pub const fn unbound_dom(&self) -> DomId {
        self.raw[0] as DomId
    }

    /// `u.interdomain`: the remote domain and port.
    pub const fn interdomain(&self) -> (DomId, EvtchnPort) {
        (self.raw[0] as DomId, self.raw[1])
    }

    /// `u.pirq`: the physical IRQ.
    pub const fn pirq(&self) -> u32 {
        self.raw[0]
    }

    /// `u.virq`: the virtual IRQ.
    pub const fn virq(&self) -> u32 {
        self.raw[0]
    }

    /// The union with `u.unbound.dom` set.
    pub const fn from_unbound(dom: DomId) -> Self {
        EvtchnStatusU {
            raw: [dom as u32, 0],
        }
    }

    /// The union with `u.interdomain` set.
    pub const fn from_interdomain(dom: DomId, port: EvtchnPort) -> Self {
        EvtchnStatusU {
            raw: [dom as u32, port],
        }
    }

    /// The union with `u.pirq` (or `u.virq`, the same word) set.
    pub const fn from_irq(irq: u32) -> Self {
        EvtchnStatusU { raw: [irq, 0] }
    }
}

/// `struct evtchn_status`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatus {
    /// IN: the domain owning the port (`DOMID_SELF` unless privileged).
    pub dom: DomId,
    /// IN: the port.
    pub port: EvtchnPort,
    /// OUT: one of the `EVTCHNSTAT_*` values.
    pub status: u32,
    /// OUT: the vCPU the port notifies.
    pub vcpu: u32,
    /// OUT: status-specific details.
    pub u: EvtchnStatusU,
}

/// A decoded [`EvtchnStatus`]: the state and what the port is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnBinding {
    /// `EVTCHNSTAT_closed`.
    Closed,
    /// `EVTCHNSTAT_unbound`: waiting for `remote_dom` to connect.
    Unbound {
        /// The domain allowed to connect.
        remote_dom: DomId,
    },
    /// `EVTCHNSTAT_interdomain`: connected to `(dom, port)`.
    Interdomain {
        /// The remote domain.
        dom: DomId,
        /// The remote port.
        port: EvtchnPort,
    },
    /// `EVTCHNSTAT_pirq`: bound to a physical IRQ.
    Pirq(u32),
    /// `EVTCHNSTAT_virq`: bound to a virtual IRQ.
    Virq(u32),
    /// `EVTCHNSTAT_ipi`: an inter-vCPU port.
    Ipi,
    /// A status value this ABI version does not define.
    Unknown(u32),
}

impl EvtchnStatus {
    /// Reads the union arm that [`EvtchnStatus::status`] says is valid.
    pub const fn binding(&self) -> EvtchnBinding {
        match self.status {
            EVTCHNSTAT_CLOSED => EvtchnBinding::Closed,
            EVTCHNSTAT_UNBOUND => EvtchnBinding::Unbound {
                remote_dom: self.u.unbound_dom(),
            },
            EVTCHNSTAT_INTERDOMAIN => {
                let (dom, port) = self.u.interdomain();
                EvtchnBinding::Interdomain { dom, port }
            }
            EVTCHNSTAT_PIRQ => EvtchnBinding::Pirq(self.u.pirq()),
            EVTCHNSTAT_VIRQ => EvtchnBinding::Virq(self.u.virq()),
            EVTCHNSTAT_IPI => EvtchnBinding::Ipi,
            other => EvtchnBinding::Unknown(other),
        }
    }
}

/// `struct evtchn_bind_vcpu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVcpu {
    /// IN: the port (not an IPI or per-vCPU VIRQ port).
    pub port: EvtchnPort,
    /// IN: the vCPU it should notify from now on.
    pub vcpu: u32,
}

/// `struct evtchn_unmask`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnUnmask {
    /// IN: the port to unmask.
    pub port: EvtchnPort,
}

/// `struct evtchn_reset`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnReset {
    /// IN: the domain whose ports to close (`DOMID_SELF` unless privileged).
    pub dom: DomId,
}

/// `struct evtchn_init_control`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnInitControl {
    /// IN: guest frame holding this vCPU's [`EvtchnFifoControlBlock`].
    pub control_gfn: u64,
    /// IN: byte offset of the control block within that frame.
    pub offset: u32,
    /// IN: the vCPU.
    pub vcpu: u32,
    /// OUT: bits in an event word's LINK field.
    pub link_bits: u8,
    /// Padding.
    pub _pad: [u8; 7],
}

/// `struct evtchn_expand_array`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnExpandArray {
    /// IN: guest frame of the next page of event words.
    pub array_gfn: u64,
}

/// `struct evtchn_set_priority`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSetPriority {
    /// IN: the port.
    pub port: EvtchnPort,
    /// IN: priority, [`EVTCHN_FIFO_PRIORITY_MAX`] (highest) to
    /// [`EVTCHN_FIFO_PRIORITY_MIN`].
    pub priority: u32,
}

/// `EVTCHN_2L_NR_CHANNELS`: ports the 2-level ABI can address on x86_64.
pub const EVTCHN_2L_NR_CHANNELS: u32 = 64 * 64;

/// `EVTCHN_FIFO_PRIORITY_MAX`: the highest FIFO priority.
pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
/// `EVTCHN_FIFO_PRIORITY_DEFAULT`: a new port's FIFO priority.
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
/// `EVTCHN_FIFO_PRIORITY_MIN`: the lowest FIFO priority.
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;
/// `EVTCHN_FIFO_MAX_QUEUES`: one queue per priority.
pub const EVTCHN_FIFO_MAX_QUEUES: usize = EVTCHN_FIFO_PRIORITY_MIN as usize + 1;

/// `event_word_t`: one port's FIFO event word.
pub type EventWord = u32;

/// `EVTCHN_FIFO_PENDING`: bit number of the PENDING flag in an event word.
pub const EVTCHN_FIFO_PENDING: u32 = 31;
/// `EVTCHN_FIFO_MASKED`: bit number of the MASKED flag.
pub const EVTCHN_FIFO_MASKED: u32 = 30;
/// `EVTCHN_FIFO_LINKED`: bit number of the LINKED flag (on a queue).
pub const EVTCHN_FIFO_LINKED: u32 = 29;
/// `EVTCHN_FIFO_BUSY`: bit number of the BUSY flag.
pub const EVTCHN_FIFO_BUSY: u32 = 28;
/// `EVTCHN_FIFO_LINK_BITS`: width of the LINK field (the next port).
pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;
/// `EVTCHN_FIFO_LINK_MASK`: the LINK field of an event word.
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;
/// `EVTCHN_FIFO_NR_CHANNELS`: ports the FIFO ABI can address.
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;

/// `struct evtchn_fifo_control_block`: one vCPU's FIFO queue heads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnFifoControlBlock {
    /// Bit `q` set: queue `q` has events ready.
    pub ready: u32,
    /// Reserved.
    pub _rsvd: u32,
    /// First port on each priority queue.
    pub head: [u32; EVTCHN_FIFO_MAX_QUEUES],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_decodes_the_valid_arm() {
        let mut st = EvtchnStatus {
            status: EVTCHNSTAT_INTERDOMAIN,
            u: EvtchnStatusU::from_interdomain(7, 42),
            ..EvtchnStatus::default()
        };
        assert_eq!(
            st.binding(),
            EvtchnBinding::Interdomain { dom: 7, port: 42 }
        );
        st.status = EVTCHNSTAT_UNBOUND;
        assert_eq!(st.binding(), EvtchnBinding::Unbound { remote_dom: 7 });
        st.status = EVTCHNSTAT_VIRQ;
        st.u = EvtchnStatusU::from_irq(VIRQ_TIMER);
        assert_eq!(st.binding(), EvtchnBinding::Virq(VIRQ_TIMER));
        st.status = 99;
        assert_eq!(st.binding(), EvtchnBinding::Unknown(99));
    }

    #[test]
    fn fifo_flag_bits_do_not_overlap_the_link() {
        for bit in [
            EVTCHN_FIFO_PENDING,
            EVTCHN_FIFO_MASKED,
            EVTCHN_FIFO_LINKED,
            EVTCHN_FIFO_BUSY,
        ] {
            assert_eq!((1u32 << bit) & EVTCHN_FIFO_LINK_MASK, 0);
        }
    }
}
