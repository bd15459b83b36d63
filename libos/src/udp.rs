//! UDP sockets on a [`Net`](crate::net::Net): bind, send to, receive from.
//!
//! Blocking like the TCP calls: [`Net::udp_recv_from`] polls and sleeps
//! until a datagram arrives or its timeout passes; [`Net::udp_send_to`]
//! queues one datagram (waiting, up to its timeout, for room in the
//! socket's buffer) and pushes it towards the device. smoltcp does not
//! fragment here, so a datagram must fit one Ethernet frame
//! ([`MAX_DATAGRAM`] bytes of payload).
//!
//! [`Net::udp_recv_from`]: crate::net::Net::udp_recv_from
//! [`Net::udp_send_to`]: crate::net::Net::udp_send_to

/// The most payload one datagram carries: a 1500-byte MTU less the IPv4
/// (20) and UDP (8) headers.
pub const MAX_DATAGRAM: usize = 1472;

#[cfg(target_os = "none")]
pub use guest::UdpHandle;

#[cfg(target_os = "none")]
mod guest {
    use alloc::vec;

    use smoltcp::iface::SocketHandle;
    use smoltcp::socket::udp;
    use smoltcp::wire::IpEndpoint;

    use super::MAX_DATAGRAM;
    use crate::net::{Net, NetError};

    /// Datagrams each socket queues, each way.
    const QUEUED: usize = 32;

    /// A UDP socket owned by a [`Net`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct UdpHandle(SocketHandle);

    impl Net {
        fn udp(&mut self, handle: UdpHandle) -> &mut udp::Socket<'static> {
            self.sockets.get_mut::<udp::Socket>(handle.0)
        }

        /// A UDP socket bound to `port` on every address we have (`0`: a
        /// random ephemeral port). Returns it and the port.
        pub fn udp_bind(&mut self, port: u16) -> Result<(UdpHandle, u16), NetError> {
            let buffer = || {
                udp::PacketBuffer::new(
                    vec![udp::PacketMetadata::EMPTY; QUEUED],
                    vec![0; QUEUED * MAX_DATAGRAM],
                )
            };
            let mut socket = udp::Socket::new(buffer(), buffer());
            let port = if port == 0 {
                self.rng.ephemeral_port()
            } else {
                port
            };
            socket.bind(port).map_err(|_| NetError::Socket("bind"))?;
            Ok((UdpHandle(self.sockets.add(socket)), port))
        }

        /// Sends `data` as one datagram to `to` (waiting up to `timeout_ns`
        /// for buffer room, if the socket's queue is full).
        pub fn udp_send_to(
            &mut self,
            handle: UdpHandle,
            data: &[u8],
            to: IpEndpoint,
            timeout_ns: Option<u64>,
        ) -> Result<(), NetError> {
            if data.len() > MAX_DATAGRAM {
                return Err(NetError::Socket("datagram larger than one frame"));
            }
            self.block_until(timeout_ns, |net| {
                let socket = net.udp(handle);
                if !socket.can_send() {
                    return None;
                }
                Some(match socket.send_slice(data, to) {
                    Ok(()) => Ok(()),
                    Err(udp::SendError::BufferFull) => return None,
                    Err(udp::SendError::Unaddressable) => Err(NetError::Socket("unaddressable")),
                })
            })?;
            // Out it goes (or into smoltcp's ARP wait).
            self.poll();
            Ok(())
        }

        /// Waits (up to `timeout_ns`, if given) for a datagram; copies it
        /// into `buf` and returns its length and sender. A datagram longer
        /// than `buf` is dropped with an error.
        pub fn udp_recv_from(
            &mut self,
            handle: UdpHandle,
            buf: &mut [u8],
            timeout_ns: Option<u64>,
        ) -> Result<(usize, IpEndpoint), NetError> {
            let mut got = None;
            self.block_until(timeout_ns, |net| {
                let socket = net.udp(handle);
                if !socket.can_recv() {
                    return None;
                }
                Some(match socket.recv_slice(buf) {
                    Ok((n, meta)) => {
                        got = Some((n, meta.endpoint));
                        Ok(())
                    }
                    Err(udp::RecvError::Truncated) => {
                        Err(NetError::Socket("datagram larger than the buffer"))
                    }
                    Err(udp::RecvError::Exhausted) => return None,
                })
            })?;
            got.ok_or(NetError::Socket("recv"))
        }

        /// Closes and frees the socket.
        pub fn udp_close(&mut self, handle: UdpHandle) {
            self.udp(handle).close();
            self.sockets.remove(handle.0);
        }
    }
}
