//! The one network stack: the device, the smoltcp interface and every
//! socket under one lock, and the runner task that drives them.
//!
//! [`Shared`] is the lock (a spin lock: one vCPU and cooperative tasks,
//! so it is never contended; no upcall takes it; it is held for one
//! socket call or one runner [`Stack::turn`], never across an `.await`).
//! A turn takes the received frames in one at a time (topping up the
//! listeners between frames, so a burst of SYNs finds a listening
//! socket for each), sends what the sockets have, applies DHCP's news,
//! frees closed sockets whose owners dropped them, and says when the next
//! turn is due: at once (more work waits), at smoltcp's next timer, or
//! never (`None`: only an event or a socket call will wake the runner).
//! [`run`] is the runner: turn, then await the device's event channels,
//! a socket call's kick, or the deadline, whichever comes first. The
//! socket futures register their wakers with smoltcp (its `async`
//! feature), which wakes them when the socket's state or buffers change.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use smoltcp::iface::{Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr};
use spin::Mutex;

use super::clock;
use super::tcp::ListenOptions;
use super::{NetConfig, NetError, NetStats, LINGER};
use crate::rng::Rng;

/// Frames a turn takes in before it lets other tasks run.
const FRAMES_PER_TURN: usize = 64;

/// No address, no gateway.
pub(crate) const UNCONFIGURED: NetConfig = NetConfig {
    address: Ipv4Cidr::new(Ipv4Address::UNSPECIFIED, 0),
    gateway: None,
};

/// What the stack needs from the network device beyond smoltcp's
/// `Device`: whether frames wait, and a way to be woken when its event
/// channels fire.
pub(crate) trait Link: Send {
    /// The smoltcp device.
    type Device: smoltcp::phy::Device;
    /// The device, for smoltcp.
    fn device(&mut self) -> &mut Self::Device;
    /// Whether received frames wait; if not, arms the device's
    /// notification (after this, only an event brings news).
    fn final_check(&mut self) -> bool;
    /// Whether an event fired since the last look; if not, `cx` is woken
    /// when one does.
    fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool;
    /// The device's counters.
    fn stats(&self) -> NetStats;
    /// Whether the link is up (a device is under the interface, see
    /// [`super::link`]).
    fn is_up(&self) -> bool;
}

#[cfg(target_os = "none")]
pub(crate) type ActiveLink = super::guest::VifLink;
#[cfg(not(target_os = "none"))]
pub(crate) type ActiveLink = host::LoopbackLink;

/// The host's link: a loopback device (for the tests).
#[cfg(not(target_os = "none"))]
pub(crate) mod host {
    use super::*;
    use crate::net::link::Swappable;
    use alloc::collections::VecDeque;
    use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
    use smoltcp::time::Instant;

    /// Every frame sent comes back in (smoltcp's `Loopback`, which
    /// cannot say whether frames wait).
    pub(crate) struct Loopback {
        queue: VecDeque<Vec<u8>>,
    }

    pub(crate) struct LoopRx(Vec<u8>);

    impl phy::RxToken for LoopRx {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            f(&self.0)
        }
    }

    pub(crate) struct LoopTx<'a>(&'a mut VecDeque<Vec<u8>>);

    impl phy::TxToken for LoopTx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut frame = vec![0; len];
            let result = f(&mut frame);
            self.0.push_back(frame);
            result
        }
    }

    impl phy::Device for Loopback {
        type RxToken<'a> = LoopRx;
        type TxToken<'a> = LoopTx<'a>;

        fn receive(&mut self, _: Instant) -> Option<(LoopRx, LoopTx<'_>)> {
            let frame = self.queue.pop_front()?;
            Some((LoopRx(frame), LoopTx(&mut self.queue)))
        }

        fn transmit(&mut self, _: Instant) -> Option<LoopTx<'_>> {
            Some(LoopTx(&mut self.queue))
        }

        fn capabilities(&self) -> DeviceCapabilities {
            let mut caps = DeviceCapabilities::default();
            caps.max_transmission_unit = 1514;
            caps.medium = Medium::Ethernet;
            caps.checksum = ChecksumCapabilities::ignored();
            caps
        }
    }

    /// The loopback device as the stack's link (in a [`Swappable`], so
    /// the tests can pull it out and put it back).
    pub(crate) struct LoopbackLink {
        pub(crate) device: Swappable<Loopback>,
    }

    impl Loopback {
        /// Puts `frame` in as if it had arrived (tests).
        #[cfg(test)]
        pub(crate) fn inject(&mut self, frame: Vec<u8>) {
            self.queue.push_back(frame);
        }
    }

    impl LoopbackLink {
        pub(crate) fn new() -> LoopbackLink {
            LoopbackLink {
                device: Swappable::new(Loopback {
                    queue: VecDeque::new(),
                }),
            }
        }
    }

    impl Link for LoopbackLink {
        type Device = Swappable<Loopback>;
        fn device(&mut self) -> &mut Swappable<Loopback> {
            &mut self.device
        }
        fn final_check(&mut self) -> bool {
            self.device.get().is_some_and(|d| !d.queue.is_empty())
        }
        fn poll_fired(&mut self, _cx: &mut Context<'_>) -> bool {
            false
        }
        fn stats(&self) -> NetStats {
            NetStats::default()
        }
        fn is_up(&self) -> bool {
            self.device.is_up()
        }
    }
}

/// A TCP listener's sockets.
struct Listener {
    port: u16,
    options: ListenOptions,
    /// The socket in `Listen` state, waiting for a SYN (none while the
    /// backlog is full).
    listening: Option<SocketHandle>,
    /// Sockets that took a SYN, not yet accepted (handshaking, or
    /// established and waiting for [`Stack::poll_accept`]).
    pending: VecDeque<SocketHandle>,
    waker: Option<Waker>,
}

/// A socket whose owner dropped it, kept until it has closed.
struct Orphan {
    handle: SocketHandle,
    tcp: bool,
    /// When to give up (TCP: reset it; UDP: drop what is queued).
    deadline_ns: u64,
    aborted: bool,
}

/// What [`Stack::turn`] says about the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Turn {
    /// Work is left (frames beyond this turn's share): run again soon.
    pub(crate) again: bool,
    /// When smoltcp (or a closing socket) next needs a turn; `None`:
    /// only an event or a socket call.
    pub(crate) deadline_ns: Option<u64>,
}

/// What the runner has done: how often it turned and what woke it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunnerStats {
    /// Turns run.
    pub turns: u64,
    /// Wake-ups by the device's event channels.
    pub events: u64,
    /// Wake-ups by a socket call (something to send or room to take).
    pub kicks: u64,
    /// Wake-ups by smoltcp's (or a closing socket's) deadline.
    pub deadlines: u64,
    /// Frames taken in.
    pub frames: u64,
    /// Retransmitted SYNs of connections we already have, dropped.
    pub duplicate_syns: u64,
}

impl core::fmt::Display for RunnerStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "runner {} turns, woken by {} events, {} kicks, {} deadlines; {} frames in, {} duplicate SYNs dropped",
            self.turns, self.events, self.kicks, self.deadlines, self.frames, self.duplicate_syns
        )
    }
}

/// Whether a socket that took a SYN is ready to hand to the app.
fn acceptable(state: tcp::State) -> bool {
    matches!(state, tcp::State::Established | tcp::State::CloseWait)
}

/// Whether `frame` is a TCP SYN (without ACK) from a peer and port we
/// already have a connection with, to a local port of ours.
pub(crate) fn is_duplicate_syn(frame: &[u8], connections: &[(IpEndpoint, u16)]) -> bool {
    use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket};
    let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    if ethernet.ethertype() != EthernetProtocol::Ipv4 {
        return false;
    }
    let Ok(ip) = Ipv4Packet::new_checked(ethernet.payload()) else {
        return false;
    };
    if ip.next_header() != IpProtocol::Tcp {
        return false;
    }
    let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
        return false;
    };
    if !tcp.syn() || tcp.ack() {
        return false;
    }
    let peer = IpEndpoint::new(ip.src_addr().into(), tcp.src_port());
    connections.contains(&(peer, tcp.dst_port()))
}

/// The device as the ingress side of a turn sees it: a SYN that repeats
/// one of our connections' (a client retransmitting while our SYN-ACK
/// was slow) is dropped here. smoltcp gives a segment to the first
/// socket that accepts it, and a listening socket accepts any SYN: when
/// the fresh listening socket sits in an earlier slot than the
/// connection, the repeat would open a second connection on the same
/// addresses, whose answers make the client reset both. The connection
/// resends its SYN-ACK on its own timer.
struct Ingress<'a, D: smoltcp::phy::Device> {
    device: &'a mut D,
    connections: &'a [(IpEndpoint, u16)],
    duplicates: &'a mut u64,
}

/// A received frame, copied (empty for a dropped one: smoltcp skips it).
struct IngressFrame(Vec<u8>);

impl smoltcp::phy::RxToken for IngressFrame {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl<D: smoltcp::phy::Device> smoltcp::phy::Device for Ingress<'_, D> {
    type RxToken<'b>
        = IngressFrame
    where
        Self: 'b;
    type TxToken<'b>
        = D::TxToken<'b>
    where
        Self: 'b;

    fn receive(
        &mut self,
        timestamp: smoltcp::time::Instant,
    ) -> Option<(IngressFrame, D::TxToken<'_>)> {
        use smoltcp::phy::RxToken as _;
        let (rx, tx) = self.device.receive(timestamp)?;
        let mut frame = rx.consume(|bytes| bytes.to_vec());
        if is_duplicate_syn(&frame, self.connections) {
            *self.duplicates += 1;
            frame.clear();
        }
        Some((IngressFrame(frame), tx))
    }

    fn transmit(&mut self, timestamp: smoltcp::time::Instant) -> Option<D::TxToken<'_>> {
        self.device.transmit(timestamp)
    }

    fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
        self.device.capabilities()
    }
}

/// The device, the interface and the sockets.
pub(crate) struct Stack {
    pub(crate) link: ActiveLink,
    pub(crate) iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    /// The configuration in effect (unspecified until DHCP leases).
    pub(crate) config: NetConfig,
    /// The DHCP client's socket, with `ip=dhcp`.
    pub(crate) dhcp: Option<SocketHandle>,
    /// The task waiting for a lease.
    pub(crate) lease_waker: Option<Waker>,
    /// Seeded once; ephemeral ports come from it.
    pub(crate) rng: Rng,
    listeners: BTreeMap<u32, Listener>,
    next_listener: u32,
    orphans: Vec<Orphan>,
    runner: Option<Waker>,
    kicked: bool,
    pub(crate) runner_stats: RunnerStats,
    /// Every TCP connection's (peer, local port), for [`Ingress`].
    connections: Vec<(IpEndpoint, u16)>,
}

impl Stack {
    pub(crate) fn new(link: ActiveLink, iface: Interface, rng: Rng) -> Stack {
        Stack {
            link,
            iface,
            sockets: SocketSet::new(Vec::new()),
            config: UNCONFIGURED,
            dhcp: None,
            lease_waker: None,
            rng,
            listeners: BTreeMap::new(),
            next_listener: 0,
            orphans: Vec::new(),
            runner: None,
            kicked: false,
            runner_stats: RunnerStats::default(),
            connections: Vec::new(),
        }
    }

    /// Sockets in the set (every kind).
    pub(crate) fn socket_count(&self) -> usize {
        self.sockets.iter().count()
    }

    /// Asks the runner for a turn (a socket call left something to
    /// send, or room to receive).
    pub(crate) fn kick(&mut self) {
        self.kicked = true;
        if let Some(waker) = self.runner.take() {
            waker.wake();
        }
    }

    /// Whether the runner should run a turn now; if not, `cx` is woken
    /// by the next kick or device event.
    pub(crate) fn poll_runner(&mut self, cx: &mut Context<'_>) -> bool {
        if self.kicked {
            self.runner_stats.kicks += 1;
            return true;
        }
        if self.link.poll_fired(cx) {
            self.runner_stats.events += 1;
            return true;
        }
        self.runner = Some(cx.waker().clone());
        false
    }

    /// One runner turn at system time `now_ns` (see the module docs).
    pub(crate) fn turn(&mut self, now_ns: u64) -> Turn {
        self.kicked = false;
        self.runner_stats.turns += 1;
        let now = clock::instant(now_ns);
        self.iface.poll_maintenance(now);
        let mut frames = 0;
        self.note_connections();
        while frames < FRAMES_PER_TURN {
            let mut ingress = Ingress {
                device: self.link.device(),
                connections: &self.connections,
                duplicates: &mut self.runner_stats.duplicate_syns,
            };
            match self
                .iface
                .poll_ingress_single(now, &mut ingress, &mut self.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => {
                    self.refill_listeners();
                    self.note_connections();
                }
            }
            frames += 1;
        }
        self.runner_stats.frames += frames as u64;
        while self
            .iface
            .poll_egress(now, self.link.device(), &mut self.sockets)
            != PollResult::None
        {}
        self.dhcp_poll();
        self.refill_listeners();
        self.reap(now_ns);
        let again = frames == FRAMES_PER_TURN || self.link.final_check() || self.kicked;
        let smoltcp_ns = self
            .iface
            .poll_at(now, &self.sockets)
            // Due now after sending all it could: the device is full;
            // its event (tx answered) or a millisecond brings room.
            .map(|at| clock::ns_of(at).max(now_ns.saturating_add(1_000_000)));
        let orphan_ns = self
            .orphans
            .iter()
            .filter(|o| !o.aborted)
            .map(|o| o.deadline_ns)
            .min();
        let deadline_ns = match (smoltcp_ns, orphan_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Turn { again, deadline_ns }
    }

    /// Records every TCP connection's (peer, local port) for [`Ingress`].
    fn note_connections(&mut self) {
        self.connections.clear();
        for (_, socket) in self.sockets.iter() {
            if let smoltcp::socket::Socket::Tcp(tcp) = socket {
                if let (Some(remote), Some(local)) = (tcp.remote_endpoint(), tcp.local_endpoint()) {
                    self.connections.push((remote, local.port));
                }
            }
        }
    }

    /// Puts `config` on the interface (or takes every address and the
    /// default route away with `None`).
    pub(crate) fn apply_config(&mut self, config: Option<NetConfig>) -> Result<(), NetError> {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some(config) = config {
                let _ = addrs.push(IpCidr::Ipv4(config.address));
            }
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(gateway) = config.and_then(|c| c.gateway) {
            self.iface
                .routes_mut()
                .add_default_ipv4_route(gateway)
                .map_err(|_| NetError::Config("route table full"))?;
        }
        self.config = config.unwrap_or(UNCONFIGURED);
        if let Some(waker) = self.lease_waker.take() {
            waker.wake();
        }
        Ok(())
    }

    /// A TCP socket with these buffers.
    pub(crate) fn new_tcp(rx_buffer: usize, tx_buffer: usize) -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; rx_buffer]),
            tcp::SocketBuffer::new(vec![0; tx_buffer]),
        )
    }

    /// The TCP socket `handle` (it must be one: handles never leave
    /// this module's callers, and each is removed only by its owner).
    pub(crate) fn tcp(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    /// The UDP socket `handle` (see [`Stack::tcp`]).
    pub(crate) fn udp(&mut self, handle: SocketHandle) -> &mut udp::Socket<'static> {
        self.sockets.get_mut::<udp::Socket>(handle)
    }

    /// Starts listening on `port`; returns the listener's id.
    pub(crate) fn add_listener(
        &mut self,
        port: u16,
        options: ListenOptions,
    ) -> Result<u32, NetError> {
        if port == 0 {
            return Err(NetError::Socket("listen on port 0"));
        }
        if self.listeners.values().any(|l| l.port == port) {
            return Err(NetError::Socket("port already has a listener"));
        }
        let id = self.next_listener;
        self.next_listener = self.next_listener.wrapping_add(1);
        self.listeners.insert(
            id,
            Listener {
                port,
                options,
                listening: None,
                pending: VecDeque::new(),
                waker: None,
            },
        );
        self.refill_listeners();
        if self
            .listeners
            .get(&id)
            .is_some_and(|l| l.listening.is_none())
        {
            self.listeners.remove(&id);
            return Err(NetError::Socket("listen"));
        }
        Ok(id)
    }

    /// For each listener: moves a listening socket that took a SYN to
    /// the pending queue, frees pending sockets that died, listens again
    /// while the backlog has room, and wakes the listener's task if a
    /// connection can be accepted.
    fn refill_listeners(&mut self) {
        let sockets = &mut self.sockets;
        for listener in self.listeners.values_mut() {
            if let Some(handle) = listener.listening {
                if sockets.get::<tcp::Socket>(handle).state() != tcp::State::Listen {
                    listener.pending.push_back(handle);
                    listener.listening = None;
                }
            }
            listener.pending.retain(|&handle| {
                let closed = sockets.get::<tcp::Socket>(handle).state() == tcp::State::Closed;
                if closed {
                    sockets.remove(handle);
                }
                !closed
            });
            if listener.listening.is_none() && listener.pending.len() < listener.options.backlog {
                let options = listener.options;
                let mut socket = Stack::new_tcp(options.rx_buffer, options.tx_buffer);
                if socket.listen(listener.port).is_ok() {
                    listener.listening = Some(sockets.add(socket));
                }
            }
            let ready = listener
                .pending
                .iter()
                .any(|&h| acceptable(sockets.get::<tcp::Socket>(h).state()));
            if ready {
                if let Some(waker) = listener.waker.take() {
                    waker.wake();
                }
            }
        }
    }

    /// An established connection of listener `id`, if one waits; if
    /// not, `cx` is woken when one does.
    pub(crate) fn poll_accept(
        &mut self,
        id: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Result<SocketHandle, NetError>> {
        let sockets = &self.sockets;
        let Some(listener) = self.listeners.get_mut(&id) else {
            return Poll::Ready(Err(NetError::Closed));
        };
        let position = listener
            .pending
            .iter()
            .position(|&h| acceptable(sockets.get::<tcp::Socket>(h).state()));
        match position.and_then(|at| listener.pending.remove(at)) {
            Some(handle) => {
                // Room in the backlog again.
                self.refill_listeners();
                Poll::Ready(Ok(handle))
            }
            None => {
                listener.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Stops listener `id`: its listening socket goes, and connections
    /// not yet accepted are reset.
    pub(crate) fn remove_listener(&mut self, id: u32, now_ns: u64) {
        let Some(listener) = self.listeners.remove(&id) else {
            return;
        };
        if let Some(handle) = listener.listening {
            self.sockets.remove(handle);
        }
        for handle in listener.pending {
            self.tcp(handle).abort();
            self.orphans.push(Orphan {
                handle,
                tcp: true,
                deadline_ns: now_ns,
                aborted: true,
            });
        }
        self.kick();
    }

    /// Hands a TCP socket whose owner is gone to the runner: it is
    /// closed (a FIN after what is queued) and freed once closed, or
    /// reset after [`LINGER`].
    pub(crate) fn orphan_tcp(&mut self, handle: SocketHandle, now_ns: u64) {
        self.tcp(handle).close();
        self.orphans.push(Orphan {
            handle,
            tcp: true,
            deadline_ns: now_ns.saturating_add(LINGER.as_nanos() as u64),
            aborted: false,
        });
        self.kick();
    }

    /// Hands a UDP socket whose owner is gone to the runner: freed once
    /// its queued datagrams are out (or after [`LINGER`]).
    pub(crate) fn orphan_udp(&mut self, handle: SocketHandle, now_ns: u64) {
        self.orphans.push(Orphan {
            handle,
            tcp: false,
            deadline_ns: now_ns.saturating_add(LINGER.as_nanos() as u64),
            aborted: false,
        });
        self.kick();
    }

    /// Frees orphans that are done; resets TCP ones past their deadline
    /// (their RST goes out in the next turn, which this asks for).
    fn reap(&mut self, now_ns: u64) {
        let sockets = &mut self.sockets;
        let mut again = false;
        self.orphans.retain_mut(|orphan| {
            let done = if orphan.tcp {
                let socket = sockets.get_mut::<tcp::Socket>(orphan.handle);
                match socket.state() {
                    tcp::State::Closed | tcp::State::TimeWait => true,
                    _ if now_ns >= orphan.deadline_ns && !orphan.aborted => {
                        socket.abort();
                        orphan.aborted = true;
                        again = true;
                        false
                    }
                    _ => false,
                }
            } else {
                sockets.get::<udp::Socket>(orphan.handle).send_queue() == 0
                    || now_ns >= orphan.deadline_ns
            };
            if done {
                sockets.remove(orphan.handle);
            }
            !done
        });
        if again {
            self.kicked = true;
        }
    }
}

/// The stack behind its lock; `None` once shut down.
pub(crate) struct Shared {
    stack: Mutex<Option<Stack>>,
    /// The device's counters when the stack was shut down.
    final_stats: Mutex<NetStats>,
}

impl Shared {
    pub(crate) fn new(stack: Stack) -> Arc<Shared> {
        Arc::new(Shared {
            stack: Mutex::new(Some(stack)),
            final_stats: Mutex::new(NetStats::default()),
        })
    }

    /// Runs `f` on the stack; [`NetError::Down`] after a shutdown.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Stack) -> Result<T, NetError>,
    ) -> Result<T, NetError> {
        match self.stack.lock().as_mut() {
            Some(stack) => f(stack),
            None => Err(NetError::Down),
        }
    }

    /// Polls `f` on the stack; ready with [`NetError::Down`] after a
    /// shutdown.
    pub(crate) fn poll_with<T>(
        &self,
        f: impl FnOnce(&mut Stack) -> Poll<Result<T, NetError>>,
    ) -> Poll<Result<T, NetError>> {
        match self.stack.lock().as_mut() {
            Some(stack) => f(stack),
            None => Poll::Ready(Err(NetError::Down)),
        }
    }

    /// Takes the stack out (the runner then ends, and every socket call
    /// gives [`NetError::Down`]).
    pub(crate) fn take(&self) -> Option<Stack> {
        let stack = self.stack.lock().take()?;
        *self.final_stats.lock() = stack.link.stats();
        if let Some(stack_runner) = &stack.runner {
            stack_runner.wake_by_ref();
        }
        Some(stack)
    }

    /// The device's counters.
    pub(crate) fn stats(&self) -> NetStats {
        match self.stack.lock().as_ref() {
            Some(stack) => stack.link.stats(),
            None => *self.final_stats.lock(),
        }
    }
}

/// Completes when the runner has work: a kick, a device event, or the
/// stack going away.
struct RunnerWait<'a> {
    shared: &'a Shared,
}

impl Future for RunnerWait<'_> {
    type Output = Result<(), NetError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.shared.poll_with(|stack| {
            if stack.poll_runner(cx) {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
    }
}

/// The runner task: turns, then awaits work (see the module docs).
/// Ends when the stack is shut down.
pub(crate) async fn run(shared: Arc<Shared>) {
    loop {
        let Ok(turn) = shared.with(|stack| Ok(stack.turn(clock::now_ns()))) else {
            return;
        };
        if turn.again {
            kernel::sched::executor::YieldNow::new().await;
            continue;
        }
        let wait = RunnerWait { shared: &shared };
        let woke = match turn.deadline_ns {
            Some(deadline_ns) => match clock::timeout_at(deadline_ns, wait).await {
                Err(NetError::Timeout) => {
                    let _ = shared.with(|stack| {
                        stack.runner_stats.deadlines += 1;
                        Ok(())
                    });
                    Ok(())
                }
                other => other,
            },
            None => wait.await,
        };
        if woke == Err(NetError::Down) {
            return;
        }
    }
}
