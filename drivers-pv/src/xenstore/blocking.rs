//! A blocking xenstore client over any byte [`Transport`], for host tests
//! and tools.
//!
//! [`XenstoreBlocking`] owns a [`Client`] and a transport and turns every
//! operation into "queue the request, push bytes out, pull bytes in until
//! the reply is there". The host tests use it against the simulated
//! xenstored. Waiting is the transport's business ([`Transport::wait`]),
//! so nothing here sleeps by itself. The guest does not use it: its
//! connection is the async, shared [`super::SharedXenstore`], whose waits
//! are awaited, never a blocked vCPU.

use alloc::string::String;
use alloc::vec::Vec;

use super::client::{Client, FromReply, RetryPolicy, Ticket, TxId, WatchEvent};
use super::error::XsError;
use super::perms::Permissions;

/// A byte pipe to xenstored: the shared ring ([`super::RingTransport`])
/// in the guest, a simulated xenstored on the host.
pub trait Transport {
    /// Sends all of `bytes`, waiting for room as needed.
    fn send(&mut self, bytes: &[u8]) -> Result<(), XsError>;

    /// Copies whatever has arrived (up to `buf.len()` bytes) into `buf`
    /// and returns how many; 0 means nothing right now. Never blocks.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, XsError>;

    /// Blocks until xenstored may have sent something or made room. Must
    /// return at once if it did so since the last call (event channels
    /// are level-triggered through their pending bit, so this holds for
    /// the guest's ring); may return spuriously.
    fn wait(&mut self) -> Result<(), XsError>;
}

/// Bytes pulled from the transport per [`Transport::recv`] call.
const RECV_CHUNK: usize = 256;

/// Most [`Transport::recv`] calls one [`XenstoreBlocking::pump`] makes, so
/// a xenstored that never stops sending cannot keep the caller in there
/// forever.
const RECV_ROUNDS: usize = 64;

/// A [`Client`] driven to completion over a [`Transport`]; every
/// operation blocks until its reply is in.
pub struct XenstoreBlocking<T: Transport> {
    client: Client,
    transport: T,
}

impl<T: Transport> XenstoreBlocking<T> {
    /// A fresh client over `transport`.
    pub fn new(transport: T) -> XenstoreBlocking<T> {
        XenstoreBlocking {
            client: Client::new(),
            transport,
        }
    }

    /// Carries on with an existing client (for example one whose watches
    /// the kernel set up earlier).
    pub fn with_client(client: Client, transport: T) -> XenstoreBlocking<T> {
        XenstoreBlocking { client, transport }
    }

    /// The underlying client (to read anomalies, stats, watch queues).
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The transport.
    pub fn transport(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Gives back the client and the transport (to hand them to the task
    /// system once it runs).
    pub fn into_parts(self) -> (Client, T) {
        (self.client, self.transport)
    }

    /// Waits for the reply to `ticket` and returns it.
    pub fn wait_for<R: FromReply>(&mut self, ticket: Ticket<R>) -> Result<R, XsError> {
        loop {
            if let Some(result) = self.client.poll(ticket) {
                return result;
            }
            if let Err(error) = self.step() {
                // The bytes that broke the stream may have carried our
                // reply first.
                return match self.client.poll(ticket) {
                    Some(Ok(value)) => Ok(value),
                    _ => Err(error),
                };
            }
        }
    }

    fn call<R: FromReply>(&mut self, ticket: Result<Ticket<R>, XsError>) -> Result<R, XsError> {
        let ticket = ticket?;
        self.wait_for(ticket)
    }

    /// Pushes out pending requests.
    pub fn flush(&mut self) -> Result<(), XsError> {
        while !self.client.outgoing().is_empty() {
            let pending = self.client.outgoing();
            let count = pending.len();
            if let Err(error) = self.transport.send(pending) {
                self.client.connection_lost(error);
                return Err(error);
            }
            self.client.advance_outgoing(count);
        }
        Ok(())
    }

    /// Sends pending requests and takes in what has arrived (up to
    /// 16 KiB per call) without blocking; returns whether anything did.
    pub fn pump(&mut self) -> Result<bool, XsError> {
        self.flush()?;
        let mut buf = [0u8; RECV_CHUNK];
        let mut any = false;
        for _ in 0..RECV_ROUNDS {
            let count = match self.transport.recv(&mut buf) {
                Ok(count) => count.min(buf.len()),
                Err(error) => {
                    self.client.connection_lost(error);
                    return Err(error);
                }
            };
            if count == 0 {
                return Ok(any);
            }
            any = true;
            self.client.receive(&buf[..count])?;
        }
        Ok(any)
    }

    /// One round: send, receive what is there, or else wait.
    fn step(&mut self) -> Result<(), XsError> {
        if !self.pump()? {
            if let Err(error) = self.transport.wait() {
                self.client.connection_lost(error);
                return Err(error);
            }
        }
        Ok(())
    }

    /// `XS_READ`: the value at `path`.
    pub fn read(&mut self, tx: TxId, path: &str) -> Result<Vec<u8>, XsError> {
        let ticket = self.client.read(tx, path);
        self.call(ticket)
    }

    /// `XS_READ`, as text ([`XsError::NotUtf8`] if it is not).
    pub fn read_string(&mut self, tx: TxId, path: &str) -> Result<String, XsError> {
        String::from_utf8(self.read(tx, path)?).map_err(|_| XsError::NotUtf8)
    }

    /// `XS_WRITE`: sets the value at `path`.
    pub fn write(&mut self, tx: TxId, path: &str, value: &[u8]) -> Result<(), XsError> {
        let ticket = self.client.write(tx, path, value);
        self.call(ticket)
    }

    /// `XS_MKDIR`: makes sure `path` exists.
    pub fn mkdir(&mut self, tx: TxId, path: &str) -> Result<(), XsError> {
        let ticket = self.client.mkdir(tx, path);
        self.call(ticket)
    }

    /// `XS_RM`: removes `path` and its children.
    pub fn rm(&mut self, tx: TxId, path: &str) -> Result<(), XsError> {
        let ticket = self.client.rm(tx, path);
        self.call(ticket)
    }

    /// `XS_DIRECTORY`: the leaf names of `path`'s children.
    pub fn directory(&mut self, tx: TxId, path: &str) -> Result<Vec<String>, XsError> {
        let ticket = self.client.directory(tx, path);
        self.call(ticket)
    }

    /// `XS_GET_PERMS`: the permissions of `path`.
    pub fn get_perms(&mut self, tx: TxId, path: &str) -> Result<Permissions, XsError> {
        let ticket = self.client.get_perms(tx, path);
        self.call(ticket)
    }

    /// `XS_SET_PERMS`: replaces the permissions of `path`.
    pub fn set_perms(&mut self, tx: TxId, path: &str, perms: &Permissions) -> Result<(), XsError> {
        let ticket = self.client.set_perms(tx, path, perms);
        self.call(ticket)
    }

    /// `XS_WATCH`: watches `path` with `token`.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        let ticket = self.client.watch(path, token);
        self.call(ticket)
    }

    /// `XS_UNWATCH`: removes the watch on `path` with `token`.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        let ticket = self.client.unwatch(path, token);
        self.call(ticket)
    }

    /// `XS_RESET_WATCHES`: drops all of this domain's watches and
    /// transactions.
    pub fn reset_watches(&mut self) -> Result<(), XsError> {
        let ticket = self.client.reset_watches();
        self.call(ticket)
    }

    /// `XS_TRANSACTION_START`: opens a transaction.
    pub fn transaction_start(&mut self) -> Result<TxId, XsError> {
        let ticket = self.client.transaction_start();
        self.call(ticket)
    }

    /// `XS_TRANSACTION_END`: commits or abandons `tx`.
    pub fn transaction_end(&mut self, tx: TxId, commit: bool) -> Result<(), XsError> {
        let ticket = self.client.transaction_end(tx, commit);
        self.call(ticket)
    }

    /// `XS_GET_DOMAIN_PATH`: the home path of `domid`.
    pub fn get_domain_path(&mut self, domid: u16) -> Result<String, XsError> {
        let ticket = self.client.get_domain_path(domid);
        self.call(ticket)
    }

    /// The next event for `token`, taking in what has arrived first;
    /// `None` if there is none yet.
    pub fn poll_watch(&mut self, token: &str) -> Result<Option<WatchEvent>, XsError> {
        self.pump()?;
        Ok(self.client.poll_watch(token))
    }

    /// Blocks until an event for `token` arrives. Fails with
    /// [`XsError::BadArgument`] if no watch uses `token` (it would never
    /// come).
    pub fn wait_watch(&mut self, token: &str) -> Result<WatchEvent, XsError> {
        loop {
            if let Some(event) = self.client.poll_watch(token) {
                return Ok(event);
            }
            if !self.client.is_watching(token) {
                return Err(XsError::BadArgument);
            }
            self.step()?;
        }
    }

    /// Runs `body` in a transaction and commits it, starting over while
    /// `policy` says so (on [`XsError::Again`], whether from the commit or
    /// from an operation inside). If `body` fails the transaction is
    /// abandoned and its error returned. `body` gets this client and the
    /// transaction id to pass to each operation.
    pub fn transaction<R>(
        &mut self,
        policy: RetryPolicy,
        mut body: impl FnMut(&mut Self, TxId) -> Result<R, XsError>,
    ) -> Result<R, XsError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tx = self.transaction_start()?;
            let outcome = match body(self, tx) {
                Ok(value) => self.transaction_end(tx, true).map(|()| value),
                Err(error) if error.is_fatal() => return Err(error),
                Err(error) => {
                    // Abandon it; only a lost connection outranks the
                    // body's own error.
                    match self.transaction_end(tx, false) {
                        Err(XsError::Disconnected) => Err(XsError::Disconnected),
                        _ => Err(error),
                    }
                }
            };
            if !policy.should_retry(attempt, &outcome) {
                return outcome;
            }
        }
    }
}
