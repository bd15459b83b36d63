//! Event-channel operations (`xen/event_channel.h`).

/// An event-channel port number (`evtchn_port_t`).
pub type EvtchnPort = u32;

/// `EVTCHNOP_send`: notify the remote end of a port.
pub const EVTCHNOP_SEND: u32 = 4;

/// `struct evtchn_send`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EvtchnSend {
    /// Local port to notify through.
    pub port: EvtchnPort,
}
