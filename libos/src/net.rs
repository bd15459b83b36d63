//! Networking: smoltcp over netfront, with blocking TCP helpers.
//!
//! The configuration (a static address or DHCP) comes from the command
//! line or xenstore (see [`crate::netconfig`]). In the guest,
//! [`Net::connect`] brings up the domain's first vif (`device/vif/0`) and
//! an smoltcp interface over it, seeded from [`crate::rng`], and (with
//! `ip=dhcp`) waits for a lease (see [`crate::dhcp`]). The `tcp_*` methods
//! here and the `udp_*` ones in [`crate::udp`] block (polling the
//! interface, sleeping on the vif's event channel or smoltcp's next timer
//! in between) until they can return, or until their timeout passes: a
//! TCP socket's reads and writes give up after [`Net::set_timeout`]'s
//! limit, so one silent peer cannot stall a server. Single-threaded: one
//! [`Net`] owns the device and the sockets.

use core::fmt;

pub use crate::netconfig::{IpSetup, NetConfig, SetupSource};

/// What can go wrong in networking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The command line has no `ip=`, or a bad `ip=`/`gw=`.
    Config(&'static str),
    /// The device could not be brought up (the reason).
    Device(alloc::string::String),
    /// A socket call failed (smoltcp's reason).
    Socket(&'static str),
    /// The connection is gone (reset, or closed before all was sent).
    Closed,
    /// Nothing happened in time.
    Timeout,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Config(what) => write!(f, "net config: {what}"),
            NetError::Device(why) => write!(f, "net device: {why}"),
            NetError::Socket(why) => write!(f, "socket: {why}"),
            NetError::Closed => f.write_str("connection closed"),
            NetError::Timeout => f.write_str("timed out"),
        }
    }
}

#[cfg(target_os = "none")]
pub use guest::{Net, TcpHandle};

#[cfg(target_os = "none")]
mod guest {
    use alloc::collections::BTreeMap;
    use alloc::format;
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    use drivers_pv::netfront::guest::{connect, GuestVif};
    use drivers_pv::netfront::NetStats;
    use drivers_pv::xenbus_state::MacAddress;
    use drivers_pv::xenstore::TxId;
    use kernel::{events, println, time};
    use rand_core::Rng as _;
    use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant;
    use smoltcp::wire::{EthernetAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr};

    use super::{IpSetup, NetConfig, NetError, SetupSource};
    use crate::rng::Rng;
    use crate::Env;

    /// Socket buffer size, each way.
    const TCP_BUFFER: usize = 64 * 1024;
    /// The longest sleep between polls when smoltcp has no timer.
    const MAX_SLEEP_NS: u64 = 100_000_000;

    /// A TCP socket owned by a [`Net`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct TcpHandle(SocketHandle);

    /// The network: netfront, an smoltcp interface, its sockets.
    pub struct Net {
        vif: GuestVif,
        pub(crate) iface: Interface,
        pub(crate) sockets: SocketSet<'static>,
        /// The configuration in effect (unspecified until DHCP leases).
        pub(crate) config: NetConfig,
        /// The DHCP client's socket, with `ip=dhcp`.
        pub(crate) dhcp: Option<SocketHandle>,
        /// Seeded once; ephemeral ports come from it.
        pub(crate) rng: Rng,
        /// Per-socket limit on each blocking read or write, in ns.
        timeouts: BTreeMap<SocketHandle, u64>,
    }

    pub(crate) fn now() -> Instant {
        Instant::from_micros((time::now_ns() / 1000) as i64)
    }

    /// The vif backend's `ip` key (xl's `vif = ['ip=…']`), if any.
    fn xenstore_ip() -> Option<String> {
        let xs = drivers_pv::xenstore::guest::xenstore().ok()?;
        kernel::sched::block_on(async {
            let backend = xs
                .read_string(TxId::NONE, "device/vif/0/backend")
                .await
                .ok()?;
            xs.read_string(TxId::NONE, &format!("{backend}/ip"))
                .await
                .ok()
        })
    }

    impl Net {
        /// Connects xenstore (if needed) and vif 0, configured from the
        /// command line or xenstore (see [`crate::netconfig`]); with DHCP,
        /// waits for a lease.
        pub fn connect(env: &Env<'_>) -> Result<Net, NetError> {
            if !drivers_pv::xenstore::guest::is_connected() {
                drivers_pv::xenstore::guest::connect(env.boot())
                    .map_err(|e| NetError::Device(format!("xenstore: {e}")))?;
            }
            let (setup, source) = IpSetup::from_sources(env.cmdline(), xenstore_ip)?;
            let mut vif = kernel::sched::block_on(connect(0))
                .map_err(|e| NetError::Device(format!("{e}")))?;
            let mac = vif.netfront().mac();
            let mut rng = Rng::new(&mac);
            let mut iface_config = Config::new(EthernetAddress(mac).into());
            // TCP initial sequence numbers and DHCP transaction ids.
            iface_config.random_seed = rng.next_u64();
            let iface = Interface::new(iface_config, vif.netfront(), now());
            println!(
                "net: setup {} (from the {}), random seed from {}",
                match setup {
                    IpSetup::Static(_) => "static",
                    IpSetup::Dhcp => "dhcp",
                },
                match source {
                    SetupSource::Cmdline => "command line",
                    SetupSource::Xenstore => "vif's xenstore ip",
                },
                rng.seed_source()
            );
            let mut net = Net {
                vif,
                iface,
                sockets: SocketSet::new(Vec::new()),
                config: NetConfig {
                    address: Ipv4Cidr::new(Ipv4Address::UNSPECIFIED, 0),
                    gateway: None,
                },
                dhcp: None,
                rng,
                timeouts: BTreeMap::new(),
            };
            match setup {
                IpSetup::Static(config) => net.apply_config(Some(config))?,
                IpSetup::Dhcp => net.dhcp_start(env)?,
            }
            Ok(net)
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
            self.config = config.unwrap_or(NetConfig {
                address: Ipv4Cidr::new(Ipv4Address::UNSPECIFIED, 0),
                gateway: None,
            });
            Ok(())
        }

        /// The configuration in use.
        pub fn config(&self) -> NetConfig {
            self.config
        }

        /// The network's generator (seeded at [`Net::connect`]; not
        /// cryptographic, see [`crate::rng`]).
        pub fn rng(&mut self) -> &mut Rng {
            &mut self.rng
        }

        /// Disconnects the vif from its back end and frees everything.
        pub fn shutdown(self) -> Result<(), NetError> {
            kernel::sched::block_on(self.vif.disconnect())
                .map_err(|e| NetError::Device(format!("{e}")))
        }

        /// Our MAC address (`Display` prints `aa:bb:cc:dd:ee:ff`).
        pub fn mac(&self) -> MacAddress {
            MacAddress(self.vif.netfront_ref().mac())
        }

        /// The device's counters.
        pub fn stats(&self) -> NetStats {
            self.vif.netfront_ref().stats()
        }

        /// Runs the interface once (frames in and out, timers, DHCP).
        pub fn poll(&mut self) {
            self.iface
                .poll(now(), self.vif.netfront(), &mut self.sockets);
            self.dhcp_poll();
        }

        /// Sleeps until the vif's event channel fires or smoltcp's next
        /// timer is due (at most 100 ms), unless work is waiting already.
        pub fn wait(&mut self) {
            let delay_ns = match self.iface.poll_delay(now(), &self.sockets) {
                Some(delay) => delay.total_micros().saturating_mul(1000),
                None => MAX_SLEEP_NS,
            }
            .min(MAX_SLEEP_NS);
            let device = self.vif.netfront();
            if delay_ns == 0 || device.final_check() || device.take_fired() {
                return;
            }
            if time::set_deadline(time::now_ns() + delay_ns).is_ok() {
                events::block();
            }
        }

        /// Polls and waits until `done` says yes or `timeout_ns` passes.
        pub(crate) fn block_until(
            &mut self,
            timeout_ns: Option<u64>,
            mut done: impl FnMut(&mut Net) -> Option<Result<(), NetError>>,
        ) -> Result<(), NetError> {
            let deadline = timeout_ns.map(|t| time::now_ns().saturating_add(t));
            loop {
                self.poll();
                if let Some(result) = done(self) {
                    return result;
                }
                if deadline.is_some_and(|d| time::now_ns() > d) {
                    return Err(NetError::Timeout);
                }
                self.wait();
            }
        }

        fn tcp(&mut self, handle: TcpHandle) -> &mut tcp::Socket<'static> {
            self.sockets.get_mut::<tcp::Socket>(handle.0)
        }

        fn new_tcp() -> tcp::Socket<'static> {
            tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
                tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            )
        }

        /// Frees a socket and whatever we kept about it.
        fn remove(&mut self, handle: SocketHandle) {
            self.sockets.remove(handle);
            self.timeouts.remove(&handle);
        }

        /// Limits each later [`Net::tcp_read`] and [`Net::tcp_write_all`]
        /// on `handle` to `timeout_ns` (`None`: wait for ever, the
        /// default). They fail with [`NetError::Timeout`] when it passes.
        pub fn set_timeout(&mut self, handle: TcpHandle, timeout_ns: Option<u64>) {
            match timeout_ns {
                Some(ns) => self.timeouts.insert(handle.0, ns),
                None => self.timeouts.remove(&handle.0),
            };
        }

        fn timeout(&self, handle: TcpHandle) -> Option<u64> {
            self.timeouts.get(&handle.0).copied()
        }

        /// A TCP socket listening on `port`.
        pub fn tcp_listen(&mut self, port: u16) -> Result<TcpHandle, NetError> {
            let mut socket = Net::new_tcp();
            socket
                .listen(port)
                .map_err(|_| NetError::Socket("listen"))?;
            Ok(TcpHandle(self.sockets.add(socket)))
        }

        /// Connects to `remote` from a random ephemeral port, waiting up to
        /// `timeout_ns` for the handshake.
        pub fn tcp_connect(
            &mut self,
            remote: IpEndpoint,
            timeout_ns: u64,
        ) -> Result<TcpHandle, NetError> {
            let mut socket = Net::new_tcp();
            let port = self.rng.ephemeral_port();
            socket
                .connect(self.iface.context(), remote, port)
                .map_err(|_| NetError::Socket("connect"))?;
            let handle = TcpHandle(self.sockets.add(socket));
            let result = self.block_until(Some(timeout_ns), |net| {
                let socket = net.tcp(handle);
                match socket.state() {
                    tcp::State::Established => Some(Ok(())),
                    tcp::State::Closed => Some(Err(NetError::Closed)),
                    _ => None,
                }
            });
            match result {
                Ok(()) => Ok(handle),
                Err(e) => {
                    self.remove(handle.0);
                    Err(e)
                }
            }
        }

        /// The local and remote ends of a connection.
        pub fn tcp_endpoints(
            &mut self,
            handle: TcpHandle,
        ) -> (Option<IpEndpoint>, Option<IpEndpoint>) {
            let socket = self.tcp(handle);
            (socket.local_endpoint(), socket.remote_endpoint())
        }

        /// Waits (up to `timeout_ns`, if given) for a connection on a
        /// listening socket; returns the peer.
        pub fn tcp_accept(
            &mut self,
            handle: TcpHandle,
            timeout_ns: Option<u64>,
        ) -> Result<IpEndpoint, NetError> {
            let mut peer = None;
            self.block_until(timeout_ns, |net| {
                let socket = net.tcp(handle);
                if socket.may_send() || socket.may_recv() {
                    peer = socket.remote_endpoint();
                    Some(Ok(()))
                } else {
                    None
                }
            })?;
            peer.ok_or(NetError::Closed)
        }

        /// Reads what has arrived (waiting for something, up to the
        /// socket's timeout); 0 once the peer has closed its side and
        /// everything was read.
        pub fn tcp_read(&mut self, handle: TcpHandle, buf: &mut [u8]) -> Result<usize, NetError> {
            let mut read = 0;
            self.block_until(self.timeout(handle), |net| {
                let socket = net.tcp(handle);
                if socket.can_recv() {
                    return Some(
                        socket
                            .recv_slice(buf)
                            .map(|n| read = n)
                            .map_err(|_| NetError::Socket("recv")),
                    );
                }
                if !socket.may_recv() {
                    return Some(Ok(()));
                }
                None
            })?;
            Ok(read)
        }

        /// Queues all of `data` for sending (waiting for room, up to the
        /// socket's timeout in all).
        pub fn tcp_write_all(&mut self, handle: TcpHandle, data: &[u8]) -> Result<(), NetError> {
            let mut sent = 0;
            self.block_until(self.timeout(handle), |net| {
                let socket = net.tcp(handle);
                if !socket.may_send() {
                    return Some(Err(NetError::Closed));
                }
                if socket.can_send() {
                    match socket.send_slice(&data[sent..]) {
                        Ok(n) => sent += n,
                        Err(_) => return Some(Err(NetError::Socket("send"))),
                    }
                }
                (sent == data.len()).then_some(Ok(()))
            })
        }

        /// Closes our side, waits (up to `timeout_ns`) until everything was
        /// sent and acknowledged and the connection is closed, then frees
        /// the socket.
        pub fn tcp_close(&mut self, handle: TcpHandle, timeout_ns: u64) -> Result<(), NetError> {
            self.tcp(handle).close();
            let result = self.block_until(Some(timeout_ns), |net| {
                let socket = net.tcp(handle);
                matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait)
                    .then_some(Ok(()))
            });
            self.remove(handle.0);
            // Let the last ACK or FIN go out.
            self.poll();
            result
        }

        /// Resets the connection (RST, for a peer we give up on) and frees
        /// the socket without waiting.
        pub fn tcp_abort(&mut self, handle: TcpHandle) {
            self.tcp(handle).abort();
            // Send the RST before the socket is gone.
            self.poll();
            self.remove(handle.0);
        }
    }
}
