//! Blocking sockets for synchronous apps: each call runs the async one
//! with `kernel::sched::block_on` (so the runner and every spawned task
//! keep running meanwhile). For the app's top level only: code that
//! tasks call must use the async types and `.await` instead.
//!
//! [`TcpStream`] implements `embedded-io`'s `Read` and `Write`.

use core::time::Duration;

use kernel::sched::block_on;

use super::{IpEndpoint, ListenOptions, Net, NetError};
use crate::Env;

/// [`Net::connect`], blocking.
pub fn connect(env: &Env<'_>) -> Result<Net, NetError> {
    block_on(Net::connect(env))
}

/// [`Net::shutdown`], blocking.
pub fn shutdown(net: &Net) -> Result<(), NetError> {
    block_on(net.shutdown())
}

/// A blocking [`super::TcpListener`].
pub struct TcpListener(super::TcpListener);

impl TcpListener {
    /// Listens on `port` (see [`super::TcpListener::bind`]).
    pub fn bind(net: &Net, port: u16) -> Result<TcpListener, NetError> {
        super::TcpListener::bind(net, port).map(TcpListener)
    }

    /// Listens on `port` with `options`.
    pub fn bind_with(
        net: &Net,
        port: u16,
        options: ListenOptions,
    ) -> Result<TcpListener, NetError> {
        super::TcpListener::bind_with(net, port, options).map(TcpListener)
    }

    /// Waits (up to `limit`, if given) for a connection.
    pub fn accept(&self, limit: Option<Duration>) -> Result<(TcpStream, IpEndpoint), NetError> {
        let (stream, peer) = block_on(super::with_timeout(limit, self.0.accept()))?;
        Ok((TcpStream(stream), peer))
    }
}

/// A blocking [`super::TcpStream`].
pub struct TcpStream(super::TcpStream);

impl TcpStream {
    /// Connects to `remote`, waiting up to `limit` for the handshake.
    pub fn connect(net: &Net, remote: IpEndpoint, limit: Duration) -> Result<TcpStream, NetError> {
        block_on(super::with_timeout(
            Some(limit),
            super::TcpStream::connect(net, remote),
        ))
        .map(TcpStream)
    }

    /// See [`super::TcpStream::set_timeout`].
    pub fn set_timeout(&mut self, limit: Option<Duration>) {
        self.0.set_timeout(limit);
    }

    /// The peer's address and port.
    pub fn remote_endpoint(&self) -> Option<IpEndpoint> {
        self.0.remote_endpoint()
    }

    /// Closes our side (dropping the stream does too).
    pub fn close(&mut self) {
        self.0.close();
    }

    /// Resets the connection.
    pub fn abort(&mut self) {
        self.0.abort();
    }

    /// The async stream inside.
    pub fn into_async(self) -> super::TcpStream {
        self.0
    }
}

impl embedded_io::ErrorType for TcpStream {
    type Error = NetError;
}

impl embedded_io::Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        block_on(self.0.read(buf))
    }
}

impl embedded_io::Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        block_on(self.0.write(buf))
    }

    fn flush(&mut self) -> Result<(), NetError> {
        block_on(self.0.flush())
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        block_on(self.0.write_all(buf))
    }
}

/// A blocking [`super::UdpSocket`].
pub struct UdpSocket(super::UdpSocket);

impl UdpSocket {
    /// Binds `port` (`0`: ephemeral).
    pub fn bind(net: &Net, port: u16) -> Result<UdpSocket, NetError> {
        super::UdpSocket::bind(net, port).map(UdpSocket)
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// See [`super::UdpSocket::set_timeout`].
    pub fn set_timeout(&mut self, limit: Option<Duration>) {
        self.0.set_timeout(limit);
    }

    /// Sends one datagram.
    pub fn send_to(&mut self, data: &[u8], to: IpEndpoint) -> Result<(), NetError> {
        block_on(self.0.send_to(data, to))
    }

    /// Receives one datagram.
    pub fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, IpEndpoint), NetError> {
        block_on(self.0.recv_from(buf))
    }
}
