//! Networking: smoltcp over netfront, with blocking TCP helpers.
//!
//! [`NetConfig::from_cmdline`] reads a static IPv4 address
//! (`ip=10.0.0.2/24`) and an optional gateway (`gw=10.0.0.1`) from the
//! command line. In the guest, [`Net::connect`] brings up the domain's
//! first vif (`device/vif/0`) and an smoltcp interface over it; the
//! `tcp_*` methods block (polling the interface, sleeping on the vif's
//! event channel or smoltcp's next timer in between) until they can
//! return. Single-threaded: one [`Net`] owns the device and the sockets.

use core::fmt;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// Static IPv4 configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Our address and prefix.
    pub address: Ipv4Cidr,
    /// The default gateway, if any.
    pub gateway: Option<Ipv4Address>,
}

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

fn parse_ipv4(text: &str) -> Option<Ipv4Address> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        *octet = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Address::from(octets))
}

impl NetConfig {
    /// Reads `ip=A.B.C.D/PREFIX` (prefix 24 if absent) and `gw=A.B.C.D`.
    pub fn from_cmdline(cmdline: &str) -> Result<NetConfig, NetError> {
        let ip = crate::arg(cmdline, "ip").ok_or(NetError::Config("no ip= given"))?;
        let (addr, prefix) = match ip.split_once('/') {
            Some((addr, prefix)) => (
                addr,
                prefix
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= 32)
                    .ok_or(NetError::Config("bad prefix in ip="))?,
            ),
            None => (ip, 24),
        };
        let address = parse_ipv4(addr).ok_or(NetError::Config("bad address in ip="))?;
        let gateway = match crate::arg(cmdline, "gw") {
            Some(gw) => Some(parse_ipv4(gw).ok_or(NetError::Config("bad gw="))?),
            None => None,
        };
        Ok(NetConfig {
            address: Ipv4Cidr::new(address, prefix),
            gateway,
        })
    }
}

#[cfg(target_os = "none")]
pub use guest::{Net, TcpHandle};

#[cfg(target_os = "none")]
mod guest {
    use alloc::format;
    use alloc::vec;
    use alloc::vec::Vec;

    use drivers_pv::netfront::guest::{connect, GuestVif};
    use drivers_pv::netfront::NetStats;
    use kernel::{events, time};
    use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant;
    use smoltcp::wire::{EthernetAddress, IpCidr, IpEndpoint};

    use super::{NetConfig, NetError};
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
        iface: Interface,
        sockets: SocketSet<'static>,
        config: NetConfig,
    }

    fn now() -> Instant {
        Instant::from_micros((time::now_ns() / 1000) as i64)
    }

    impl Net {
        /// Connects xenstore (if needed) and vif 0, configured from the
        /// command line.
        pub fn connect(env: &Env<'_>) -> Result<Net, NetError> {
            let config = NetConfig::from_cmdline(env.cmdline())?;
            if !drivers_pv::xenstore::guest::is_connected() {
                drivers_pv::xenstore::guest::connect(env.boot())
                    .map_err(|e| NetError::Device(format!("xenstore: {e}")))?;
            }
            let mut vif = connect(0).map_err(|e| NetError::Device(format!("{e}")))?;
            let mac = EthernetAddress(vif.netfront().mac());
            let mut iface = Interface::new(Config::new(mac.into()), vif.netfront(), now());
            iface.update_ip_addrs(|addrs| {
                let _ = addrs.push(IpCidr::Ipv4(config.address));
            });
            if let Some(gateway) = config.gateway {
                iface
                    .routes_mut()
                    .add_default_ipv4_route(gateway)
                    .map_err(|_| NetError::Config("route table full"))?;
            }
            Ok(Net {
                vif,
                iface,
                sockets: SocketSet::new(Vec::new()),
                config,
            })
        }

        /// The configuration in use.
        pub fn config(&self) -> NetConfig {
            self.config
        }

        /// Disconnects the vif from its back end and frees everything.
        pub fn shutdown(self) -> Result<(), NetError> {
            self.vif
                .disconnect()
                .map_err(|e| NetError::Device(format!("{e}")))
        }

        /// Our MAC address.
        pub fn mac(&self) -> [u8; 6] {
            self.vif.netfront_ref().mac()
        }

        /// The device's counters.
        pub fn stats(&self) -> NetStats {
            self.vif.netfront_ref().stats()
        }

        /// Runs the interface once (frames in and out, timers).
        pub fn poll(&mut self) {
            self.iface
                .poll(now(), self.vif.netfront(), &mut self.sockets);
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
            if delay_ns == 0 || device.final_check() || device.channel().take_fired() {
                return;
            }
            if time::set_deadline(time::now_ns() + delay_ns).is_ok() {
                events::block();
            }
        }

        /// Polls and waits until `done` says yes or `timeout_ns` passes.
        fn block_until(
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

        /// A TCP socket listening on `port`.
        pub fn tcp_listen(&mut self, port: u16) -> Result<TcpHandle, NetError> {
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
                tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            );
            socket
                .listen(port)
                .map_err(|_| NetError::Socket("listen"))?;
            Ok(TcpHandle(self.sockets.add(socket)))
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

        /// Reads what has arrived (waiting for something); 0 once the peer
        /// has closed its side and everything was read.
        pub fn tcp_read(&mut self, handle: TcpHandle, buf: &mut [u8]) -> Result<usize, NetError> {
            let mut read = 0;
            self.block_until(None, |net| {
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

        /// Queues all of `data` for sending (waiting for room).
        pub fn tcp_write_all(&mut self, handle: TcpHandle, data: &[u8]) -> Result<(), NetError> {
            let mut sent = 0;
            self.block_until(None, |net| {
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
            self.sockets.remove(handle.0);
            // Let the last ACK or FIN go out.
            self.poll();
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_comes_from_the_command_line() {
        let config = NetConfig::from_cmdline("x=1 ip=10.0.0.2/24 gw=10.0.0.1").unwrap();
        assert_eq!(config.address.address(), Ipv4Address::new(10, 0, 0, 2));
        assert_eq!(config.address.prefix_len(), 24);
        assert_eq!(config.gateway, Some(Ipv4Address::new(10, 0, 0, 1)));
        let config = NetConfig::from_cmdline("ip=192.168.1.9").unwrap();
        assert_eq!(config.address.prefix_len(), 24);
        assert_eq!(config.gateway, None);
        for bad in [
            "",
            "ip=10.0.0",
            "ip=10.0.0.2/33",
            "ip=10.0.0.256",
            "ip=1.2.3.4 gw=x",
        ] {
            assert!(NetConfig::from_cmdline(bad).is_err(), "{bad}");
        }
    }
}
