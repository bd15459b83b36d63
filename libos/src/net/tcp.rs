//! TCP: [`TcpListener`] (accepts connections, each a [`TcpStream`]) and
//! [`TcpStream::connect`], async, in the style of `std::net`.
//!
//! A listener keeps one socket listening and tops it up as SYNs arrive
//! (the runner does, between frames), so any number of clients can be
//! connecting at once, up to [`ListenOptions::backlog`] not yet
//! accepted. A stream implements `embedded-io-async`'s `Read` and
//! `Write`; [`TcpStream::set_timeout`] bounds each read and write. A
//! stream closes when dropped: the FIN goes out after what was written,
//! and the runner frees the socket once the connection has closed (or
//! resets it after [`super::LINGER`]). Only one task should read (and
//! one write) a stream at a time: smoltcp keeps one waker each way.

use alloc::sync::Arc;
use core::future::poll_fn;
use core::task::Poll;
use core::time::Duration;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::IpEndpoint;

use super::stack::{Shared, Stack};
use super::{clock, Net, NetError};

/// How a [`TcpListener`] sets up the connections it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenOptions {
    /// Connections that may be handshaking or waiting to be accepted at
    /// once; SYNs beyond it are refused (reset).
    pub backlog: usize,
    /// Each connection's receive buffer (its window), in bytes.
    pub rx_buffer: usize,
    /// Each connection's send buffer, in bytes.
    pub tx_buffer: usize,
}

impl Default for ListenOptions {
    /// 64 pending connections, 16 KiB to receive and 32 KiB to send.
    fn default() -> ListenOptions {
        ListenOptions {
            backlog: 64,
            rx_buffer: 16 * 1024,
            tx_buffer: 32 * 1024,
        }
    }
}

/// Buffers of a stream made by [`TcpStream::connect`].
const CONNECT_BUFFER: usize = 64 * 1024;

/// A TCP socket listening on a port.
pub struct TcpListener {
    shared: Arc<Shared>,
    id: u32,
    port: u16,
}

impl TcpListener {
    /// Listens on `port` with [`ListenOptions::default`].
    pub fn bind(net: &Net, port: u16) -> Result<TcpListener, NetError> {
        TcpListener::bind_with(net, port, ListenOptions::default())
    }

    /// Listens on `port`, setting connections up as `options` says.
    pub fn bind_with(
        net: &Net,
        port: u16,
        options: ListenOptions,
    ) -> Result<TcpListener, NetError> {
        if options.backlog == 0 || options.rx_buffer == 0 || options.tx_buffer == 0 {
            return Err(NetError::Socket("empty backlog or buffer"));
        }
        let shared = net.shared().clone();
        let id = shared.with(|stack| stack.add_listener(port, options))?;
        Ok(TcpListener { shared, id, port })
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for the next established connection; returns it and the
    /// peer. Bound it with [`super::with_timeout`].
    pub async fn accept(&self) -> Result<(TcpStream, IpEndpoint), NetError> {
        let handle = poll_fn(|cx| {
            self.shared
                .poll_with(|stack| stack.poll_accept(self.id, cx))
        })
        .await?;
        let stream = TcpStream {
            shared: self.shared.clone(),
            handle: Some(handle),
            timeout: None,
        };
        let peer = stream.remote_endpoint().ok_or(NetError::Closed)?;
        Ok((stream, peer))
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let now = clock::now_ns();
        let _ = self.shared.with(|stack| {
            stack.remove_listener(self.id, now);
            Ok(())
        });
    }
}

/// A TCP connection.
pub struct TcpStream {
    shared: Arc<Shared>,
    /// `None` once handed to the runner to close (only in `drop`).
    handle: Option<SocketHandle>,
    timeout: Option<Duration>,
}

impl TcpStream {
    /// Connects to `remote` from a random ephemeral port; bound it with
    /// [`super::with_timeout`].
    pub async fn connect(net: &Net, remote: IpEndpoint) -> Result<TcpStream, NetError> {
        let shared = net.shared().clone();
        let handle = shared.with(|stack| {
            let mut socket = Stack::new_tcp(CONNECT_BUFFER, CONNECT_BUFFER);
            let port = stack.rng.ephemeral_port();
            socket
                .connect(stack.iface.context(), remote, port)
                .map_err(|_| NetError::Socket("connect"))?;
            let handle = stack.sockets.add(socket);
            stack.kick();
            Ok(handle)
        })?;
        // Dropped on failure: the runner frees the socket.
        let stream = TcpStream {
            shared,
            handle: Some(handle),
            timeout: None,
        };
        stream
            .poll_socket(|socket, cx| match socket.state() {
                tcp::State::SynSent | tcp::State::SynReceived => {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
                _ if socket.may_send() => Poll::Ready(Ok(())),
                _ => Poll::Ready(Err(NetError::Closed)),
            })
            .await?;
        Ok(stream)
    }

    /// Limits each later read, write and flush to `limit` (`None`: wait
    /// for ever, the default); they fail with [`NetError::Timeout`].
    pub fn set_timeout(&mut self, limit: Option<Duration>) {
        self.timeout = limit;
    }

    /// The timeout set by [`TcpStream::set_timeout`].
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn with_socket<T>(
        &self,
        f: impl FnOnce(&mut tcp::Socket<'static>) -> T,
    ) -> Result<T, NetError> {
        let handle = self.handle.ok_or(NetError::Closed)?;
        self.shared.with(|stack| Ok(f(stack.tcp(handle))))
    }

    /// Polls `f` on the socket until it is ready (kicking the runner
    /// whenever `f` changed what smoltcp has to send).
    async fn poll_socket<T>(
        &self,
        mut f: impl FnMut(
            &mut tcp::Socket<'static>,
            &mut core::task::Context<'_>,
        ) -> Poll<Result<T, NetError>>,
    ) -> Result<T, NetError> {
        let handle = self.handle.ok_or(NetError::Closed)?;
        poll_fn(|cx| {
            self.shared.poll_with(|stack| {
                let result = f(stack.tcp(handle), cx);
                if result.is_ready() {
                    stack.kick();
                }
                result
            })
        })
        .await
    }

    /// Bounds `future` by the stream's timeout.
    async fn timed<T>(
        &self,
        future: impl core::future::Future<Output = Result<T, NetError>>,
    ) -> Result<T, NetError> {
        super::with_timeout(self.timeout, future).await
    }

    /// The peer's address and port (`None` once closed).
    pub fn remote_endpoint(&self) -> Option<IpEndpoint> {
        self.with_socket(|s| s.remote_endpoint()).ok().flatten()
    }

    /// Our address and port (`None` once closed).
    pub fn local_endpoint(&self) -> Option<IpEndpoint> {
        self.with_socket(|s| s.local_endpoint()).ok().flatten()
    }

    /// Reads what has arrived (waiting for something); 0 once the peer
    /// has closed its side and everything was read. A reset connection
    /// gives [`NetError::Closed`].
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.timed(self.poll_socket(|socket, cx| match socket.recv_slice(buf) {
            Ok(0) => {
                socket.register_recv_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => Poll::Ready(Ok(n)),
            Err(tcp::RecvError::Finished) => Poll::Ready(Ok(0)),
            Err(tcp::RecvError::InvalidState) => Poll::Ready(Err(NetError::Closed)),
        }))
        .await
    }

    /// Queues some of `data` for sending (waiting for room); returns how
    /// much. [`NetError::Closed`] once our side or the connection closed.
    pub async fn write(&mut self, data: &[u8]) -> Result<usize, NetError> {
        if data.is_empty() {
            return Ok(0);
        }
        self.timed(self.poll_socket(|socket, cx| {
            if !socket.may_send() {
                return Poll::Ready(Err(NetError::Closed));
            }
            match socket.send_slice(data) {
                Ok(0) => {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
                Ok(n) => Poll::Ready(Ok(n)),
                Err(tcp::SendError::InvalidState) => Poll::Ready(Err(NetError::Closed)),
            }
        }))
        .await
    }

    /// Queues all of `data` (the timeout bounds the whole of it).
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), NetError> {
        let limit = self.timeout;
        self.timeout = None;
        let result = super::with_timeout(limit, async {
            let mut sent = 0;
            while sent < data.len() {
                sent += self.write(&data[sent..]).await?;
            }
            Ok(())
        })
        .await;
        self.timeout = limit;
        result
    }

    /// Waits until everything written was acknowledged by the peer.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        self.timed(self.poll_socket(|socket, cx| {
            if socket.send_queue() == 0 {
                Poll::Ready(Ok(()))
            } else if !socket.may_send() && !socket.is_open() {
                Poll::Ready(Err(NetError::Closed))
            } else {
                socket.register_send_waker(cx.waker());
                Poll::Pending
            }
        }))
        .await
    }

    /// Closes our side (a FIN after what is queued); reads still work
    /// until the peer closes too. Dropping the stream does this as well.
    pub fn close(&mut self) {
        self.act(tcp::Socket::close);
    }

    /// Closes our side and waits (bounded by the stream's timeout) until
    /// the peer has acknowledged everything and closed its side too;
    /// what the peer still sends meanwhile is read and dropped. Dropping
    /// the stream closes it without waiting.
    pub async fn finish(&mut self) -> Result<(), NetError> {
        self.close();
        self.timed(self.poll_socket(|socket, cx| {
            if socket.can_recv() {
                // Drain it: the peer's FIN comes after its data.
                let _ = socket.recv(|data| (data.len(), ()));
            }
            match socket.state() {
                tcp::State::Closed | tcp::State::TimeWait => Poll::Ready(Ok(())),
                _ => {
                    socket.register_recv_waker(cx.waker());
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
            }
        }))
        .await
    }

    /// Resets the connection (an RST, for a peer we give up on).
    pub fn abort(&mut self) {
        self.act(tcp::Socket::abort);
    }

    /// Does `action` to the socket (if the stream still has one) and
    /// kicks the runner so what it queued goes out.
    fn act(&mut self, action: impl FnOnce(&mut tcp::Socket<'static>)) {
        let _ = self.shared.with(|stack| {
            if let Some(handle) = self.handle {
                action(stack.tcp(handle));
                stack.kick();
            }
            Ok(())
        });
    }

    /// The connection's state, for logs and tests.
    pub fn state_name(&self) -> &'static str {
        match self.with_socket(|s| s.state()) {
            Ok(state) => state_name(state),
            Err(_) => "DOWN",
        }
    }
}

fn state_name(state: tcp::State) -> &'static str {
    match state {
        tcp::State::Closed => "CLOSED",
        tcp::State::Listen => "LISTEN",
        tcp::State::SynSent => "SYN-SENT",
        tcp::State::SynReceived => "SYN-RECEIVED",
        tcp::State::Established => "ESTABLISHED",
        tcp::State::FinWait1 => "FIN-WAIT-1",
        tcp::State::FinWait2 => "FIN-WAIT-2",
        tcp::State::CloseWait => "CLOSE-WAIT",
        tcp::State::Closing => "CLOSING",
        tcp::State::LastAck => "LAST-ACK",
        tcp::State::TimeWait => "TIME-WAIT",
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let Some(handle) = self.handle.take() else {
            return;
        };
        let now = clock::now_ns();
        let _ = self.shared.with(|stack| {
            stack.orphan_tcp(handle, now);
            Ok(())
        });
    }
}

impl embedded_io_async::ErrorType for TcpStream {
    type Error = NetError;
}

impl embedded_io_async::Read for TcpStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        TcpStream::read(self, buf).await
    }
}

impl embedded_io_async::Write for TcpStream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        TcpStream::write(self, buf).await
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        TcpStream::flush(self).await
    }

    async fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        TcpStream::write_all(self, buf).await
    }
}
