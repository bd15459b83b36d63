//! [`EventChannel`]: an owned, bound port that tasks can wait on.
//!
//! Any number of tasks may await [`EventChannel::wait`] on one channel:
//! the slot keeps one waker per waiting task, and an event wakes them
//! all (each `Wait` completes once the port's count has moved past the
//! value it saw when it started waiting).
//!
//! # Resume epochs
//!
//! A resume in a new domain (after `xl save`/`restore` or `migrate`)
//! leaves no port bound: Xen's new domain has only the console and
//! xenstore channels the toolstack made, under new numbers. Each channel
//! remembers the [`crate::suspend::epoch`] it was bound in; one from an
//! older epoch is *stale* ([`EventChannel::is_stale`]): its waits complete
//! at once, [`EventChannel::notify`] and [`EventChannel::close`] make no
//! hypercall (the port number may already name someone else's channel)
//! and fail with `Errno::ESTALE`, its counters read zero, and dropping it
//! touches nothing. The owner binds a new channel.

use super::runtime::{self, PORTS};
use super::slot::Slot;
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
    /// The resume epoch it was bound in (see the module docs).
    epoch: u64,
}

impl EventChannel {
    fn register(port: EvtchnPort, owned: bool) -> Result<EventChannel, Errno> {
        // An event recorded for this port number before it was ours
        // (a closed port reused) is not ours.
        runtime::forget(port);
        PORTS.lock().insert(port, Slot::default());
        let channel = EventChannel {
            port,
            owned,
            epoch: crate::suspend::epoch(),
        };
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

    /// Whether it was bound before the latest resume in a new domain
    /// (and so is bound no more; see the module docs).
    pub fn is_stale(&self) -> bool {
        self.epoch != crate::suspend::epoch()
    }

    /// The resume epoch it was bound in.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Notifies the other end; `ESTALE`, with no hypercall, if the
    /// channel is stale.
    pub fn notify(&self) -> Result<(), Errno> {
        if self.is_stale() {
            return Err(Errno::ESTALE);
        }
        op::evtchn_send(self.port)
    }

    /// The vCPU Xen notifies of this port (0 unless moved with
    /// [`EventChannel::bind_to_vcpu`], and 0 again once that vCPU went
    /// offline: `crate::smp` moves its channels back to vCPU 0).
    pub fn vcpu(&self) -> u32 {
        crate::smp::channel_owner(self.port)
    }

    /// Has Xen notify vCPU `vcpu` of this port (`EVTCHNOP_bind_vcpu`):
    /// that vCPU's upcall records its events and that vCPU's own task
    /// context hands them to the waiters (see the module docs).
    /// `EINVAL` for a vCPU that runs no Paravane code, `ESTALE` for a
    /// stale channel; Xen refuses some kinds of port (an IPI, `EINVAL`).
    /// On an error the channel stays where it was.
    pub fn bind_to_vcpu(&mut self, vcpu: u32) -> Result<(), Errno> {
        if self.is_stale() {
            return Err(Errno::ESTALE);
        }
        if vcpu != 0 && !crate::smp::is_alive(vcpu) {
            return Err(Errno::EINVAL);
        }
        move_port(self.port, vcpu)
    }
    /// What Xen says about this port.
    pub fn status(&self) -> Result<EvtchnStatus, Errno> {
        op::status(self.port)
    }

    /// Whether it fired since the last call (and clears that). Hands
    /// over what the upcall recorded first.
    pub fn take_fired(&self) -> bool {
        if self.is_stale() {
            return false;
        }
        runtime::wake_waiters();
        PORTS
            .lock()
            .get_mut(self.port)
            .is_some_and(Slot::take_fired)
    }

    /// How many times it fired since it was bound.
    pub fn count(&self) -> u64 {
        if self.is_stale() {
            return 0;
        }
        runtime::wake_waiters();
        PORTS.lock().get(self.port).map_or(0, Slot::count)
    }

    /// Completes when the port next fires (at once if it fired since
    /// the flag was last taken, which this takes). Every task waiting on
    /// the channel is woken by one event.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            channel: self,
            seen: None,
        }
    }

    /// Closes the port, reporting what Xen said (`ESTALE` for a stale
    /// channel, which is closed already).
    pub fn close(mut self) -> Result<(), Errno> {
        let result = self.close_now();
        core::mem::forget(self);
        result
    }

    fn close_now(&mut self) -> Result<(), Errno> {
        if self.is_stale() {
            // The port table was emptied at the resume; the number may be
            // a new channel's now: touch nothing.
            return Err(Errno::ESTALE);
        }
        runtime::mask(self.port);
        // Whoever still waits on it is woken (and sees it closed).
        let waiters = PORTS
            .lock()
            .remove(self.port)
            .map(Slot::into_waiters)
            .unwrap_or_default();
        runtime::forget(self.port);
        crate::smp::release_port(self.port);
        waiters.into_iter().for_each(core::task::Waker::wake);
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
    /// The port's count when this wait began (after its first poll).
    seen: Option<u64>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.channel.is_stale() {
            // Bound in an earlier domain: nothing will fire it again.
            return Poll::Ready(());
        }
        runtime::wake_waiters();
        let port = self.channel.port;
        let mut ports = PORTS.lock();
        match ports.get_mut(port) {
            Some(slot) => slot.poll_wait(&mut self.seen, cx.waker()),
            // Closed underneath us: nothing will ever fire.
            None => Poll::Ready(()),
        }
    }
}

/// Moves channel `port` to vCPU `vcpu` (see
/// [`EventChannel::bind_to_vcpu`]; the caller checked that `vcpu` runs
/// Paravane code). Also how `crate::smp` moves an offlined vCPU's
/// channels back to vCPU 0.
pub(crate) fn move_port(port: EvtchnPort, vcpu: u32) -> Result<(), Errno> {
    let old = crate::smp::channel_owner(port);
    if vcpu == old {
        return Ok(());
    }
    // Masked while it moves: an event that comes meanwhile stays
    // pending in Xen, which raises it again on the new vCPU at the
    // unmask below (both ABIs).
    runtime::mask(port);
    // What the old owner recorded and did not hand over yet goes to
    // vCPU 0's record, which any vCPU hands over.
    let carried = old != 0 && crate::smp::take_fired(old, port);
    crate::smp::release_port(port);
    let moved = if vcpu == 0 {
        op::bind_vcpu(port, 0)
    } else {
        // Claimed first, so no event of it reaches vCPU 0's scan
        // once Xen notifies the new vCPU.
        crate::smp::claim_channel_port(port, vcpu).and_then(|()| {
            op::bind_vcpu(port, vcpu).inspect_err(|_| crate::smp::release_port(port))
        })
    };
    if carried {
        runtime::record(port);
    }
    if moved.is_err() && old != 0 {
        // Still notifying the old vCPU: its upcall keeps it.
        let _ = crate::smp::claim_channel_port(port, old);
    }
    runtime::unmask(port)?;
    moved
}
