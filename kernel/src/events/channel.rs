//! [`EventChannel`]: an owned, bound port that tasks can wait on.

use super::runtime::{self, Slot, PORTS};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use pv_arch::abi::event_channel::{EvtchnPort, EvtchnStatus};
use pv_arch::abi::xen::DomId;
use pv_arch::hypercall::event_channel as op;
use pv_arch::Errno;

/// A bound event-channel port, closed when dropped.
pub struct EventChannel {
    port: EvtchnPort,
    /// Ports Xen gave us at boot (console, xenstore) are not ours to close.
    owned: bool,
}

impl EventChannel {
    fn register(port: EvtchnPort, owned: bool) -> Result<EventChannel, Errno> {
        PORTS.lock().insert(port, Slot::default());
        let channel = EventChannel { port, owned };
        runtime::unmask(port)?;
        Ok(channel)
    }

    /// Binds virtual IRQ `virq` on vCPU 0.
    pub fn bind_virq(virq: u32) -> Result<EventChannel, Errno> {
        Self::register(op::bind_virq(virq, 0)?, true)
    }

    /// Allocates a port that `remote` may bind to.
    pub fn alloc_unbound(remote: DomId) -> Result<EventChannel, Errno> {
        Self::register(op::alloc_unbound(remote)?, true)
    }

    /// Connects to `remote_port` of domain `remote`.
    pub fn bind_interdomain(remote: DomId, remote_port: EvtchnPort) -> Result<EventChannel, Errno> {
        Self::register(op::bind_interdomain(remote, remote_port)?, true)
    }

    /// A port for notifying ourselves (vCPU 0).
    pub fn bind_ipi() -> Result<EventChannel, Errno> {
        Self::register(op::bind_ipi(0)?, true)
    }

    /// Adopts a port Xen bound for us at boot (xenstore, console); it is
    /// unregistered but not closed on drop.
    pub fn adopt(port: EvtchnPort) -> Result<EventChannel, Errno> {
        Self::register(port, false)
    }

    /// The port number.
    pub fn port(&self) -> EvtchnPort {
        self.port
    }

    /// Notifies the other end.
    pub fn notify(&self) -> Result<(), Errno> {
        op::evtchn_send(self.port)
    }

    /// What Xen says about this port.
    pub fn status(&self) -> Result<EvtchnStatus, Errno> {
        op::status(self.port)
    }

    /// Whether it fired since the last call (and clears that).
    pub fn take_fired(&self) -> bool {
        PORTS
            .lock()
            .get_mut(&self.port)
            .is_some_and(|slot| core::mem::take(&mut slot.fired))
    }

    /// How many times it fired since it was bound.
    pub fn count(&self) -> u64 {
        PORTS.lock().get(&self.port).map_or(0, |slot| slot.count)
    }

    /// Completes when the port next fires (at once if it fired already).
    pub fn wait(&self) -> Wait<'_> {
        Wait { channel: self }
    }

    /// Closes the port, reporting what Xen said.
    pub fn close(mut self) -> Result<(), Errno> {
        let result = self.close_now();
        core::mem::forget(self);
        result
    }

    fn close_now(&mut self) -> Result<(), Errno> {
        runtime::mask(self.port);
        PORTS.lock().remove(&self.port);
        if self.owned {
            op::close(self.port)
        } else {
            Ok(())
        }
    }
}

impl Drop for EventChannel {
    fn drop(&mut self) {
        let _ = self.close_now();
    }
}

/// The future returned by [`EventChannel::wait`].
pub struct Wait<'a> {
    channel: &'a EventChannel,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut ports = PORTS.lock();
        let Some(slot) = ports.get_mut(&self.channel.port) else {
            // Closed underneath us: nothing will ever fire.
            return Poll::Ready(());
        };
        if core::mem::take(&mut slot.fired) {
            Poll::Ready(())
        } else {
            slot.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}
