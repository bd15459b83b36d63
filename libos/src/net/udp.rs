//! UDP: [`UdpSocket`], async, in the style of `std::net::UdpSocket`.
//!
//! smoltcp does not fragment here, so a datagram must fit one Ethernet
//! frame ([`MAX_DATAGRAM`] bytes of payload). A socket is freed when
//! dropped, once what it queued has gone out.

use alloc::sync::Arc;
use alloc::vec;
use core::future::poll_fn;
use core::task::Poll;
use core::time::Duration;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::IpEndpoint;

use super::stack::Shared;
use super::{clock, Net, NetError};

/// The most payload one datagram carries: a 1500-byte MTU less the IPv4
/// (20) and UDP (8) headers.
pub const MAX_DATAGRAM: usize = 1472;

/// Datagrams each socket queues, each way.
const QUEUED: usize = 32;

/// A UDP socket bound to a port on every address we have.
pub struct UdpSocket {
    shared: Arc<Shared>,
    handle: SocketHandle,
    port: u16,
    timeout: Option<Duration>,
}

impl UdpSocket {
    /// Binds `port` (`0`: a random ephemeral port, see
    /// [`UdpSocket::port`]).
    pub fn bind(net: &Net, port: u16) -> Result<UdpSocket, NetError> {
        let shared = net.shared().clone();
        let (handle, port) = shared.with(|stack| {
            let buffer = || {
                udp::PacketBuffer::new(
                    vec![udp::PacketMetadata::EMPTY; QUEUED],
                    vec![0; QUEUED * MAX_DATAGRAM],
                )
            };
            let mut socket = udp::Socket::new(buffer(), buffer());
            let port = if port == 0 {
                stack.rng.ephemeral_port()
            } else {
                port
            };
            socket.bind(port).map_err(|_| NetError::Socket("bind"))?;
            Ok((stack.sockets.add(socket), port))
        })?;
        Ok(UdpSocket {
            shared,
            handle,
            port,
            timeout: None,
        })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Limits each later send and receive to `limit` (`None`: wait for
    /// ever, the default); they fail with [`NetError::Timeout`].
    pub fn set_timeout(&mut self, limit: Option<Duration>) {
        self.timeout = limit;
    }

    /// Sends `data` as one datagram to `to` (waiting for room if the
    /// socket's queue is full).
    pub async fn send_to(&mut self, data: &[u8], to: IpEndpoint) -> Result<(), NetError> {
        if data.len() > MAX_DATAGRAM {
            return Err(NetError::Socket("datagram larger than one frame"));
        }
        let handle = self.handle;
        let shared = &self.shared;
        let send = poll_fn(|cx| {
            shared.poll_with(|stack| {
                let socket = stack.udp(handle);
                let result = match socket.send_slice(data, to) {
                    Ok(()) => Ok(()),
                    Err(udp::SendError::BufferFull) => {
                        socket.register_send_waker(cx.waker());
                        return Poll::Pending;
                    }
                    Err(udp::SendError::Unaddressable) => Err(NetError::Socket("unaddressable")),
                };
                stack.kick();
                Poll::Ready(result)
            })
        });
        super::with_timeout(self.timeout, send).await
    }

    /// Waits for a datagram; copies it into `buf` and returns its length
    /// and sender. A datagram longer than `buf` is dropped with an error.
    pub async fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, IpEndpoint), NetError> {
        let handle = self.handle;
        let shared = &self.shared;
        let recv = poll_fn(|cx| {
            shared.poll_with(|stack| {
                let socket = stack.udp(handle);
                match socket.recv_slice(buf) {
                    Ok((n, meta)) => Poll::Ready(Ok((n, meta.endpoint))),
                    Err(udp::RecvError::Truncated) => {
                        Poll::Ready(Err(NetError::Socket("datagram larger than the buffer")))
                    }
                    Err(udp::RecvError::Exhausted) => {
                        socket.register_recv_waker(cx.waker());
                        Poll::Pending
                    }
                }
            })
        });
        super::with_timeout(self.timeout, recv).await
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let now = clock::now_ns();
        let _ = self.shared.with(|stack| {
            stack.orphan_udp(self.handle, now);
            Ok(())
        });
    }
}
