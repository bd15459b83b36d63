//! [`SharedXenstore`]: one xenstore connection that any number of tasks
//! use at once.
//!
//! The connection is a [`Client`] (request ids, reply matching, per-token
//! watch queues) and a [`RingTransport`] behind one short lock that is
//! never held across an `.await`. A task's operation queues its request
//! and pushes the bytes out at once, then returns a [`Request`] future
//! that completes when the reply with its `req_id` is in; events for a
//! watch go to the queue of that watch's token and complete the owner's
//! [`Watch::next_event`]. Nothing here waits: whoever moves bytes
//! ([`SharedXenstore::pump`], called by the connection's pump task each
//! time the event channel fires, and by every poll of a request or watch)
//! takes in what arrived and wakes exactly the tasks whose reply or event
//! it brought. A task that gives up on a request (its future is dropped,
//! say by a timeout) forgets it: the late reply is dropped quietly and
//! nobody else's is disturbed.
//!
//! What xenstored sends is untrusted: a reply to a request id nobody has
//! outstanding is dropped and recorded ([`SharedXenstore::take_anomaly`]);
//! a malformed reply fails only the request it answers; a stream error
//! breaks the connection, and then every waiter (requests and watches)
//! is woken and fails with [`XsError::Disconnected`].
//!
//! I/O-free apart from the [`XenstorePage`] it is given, so the host tests
//! run it against the simulated xenstored (`super::sim`); the guest wraps
//! it in `super::guest`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use litemap::LiteMap;

use crate::storage::ReleaseWhenEmpty;

use spin::Mutex;

use super::client::{
    Client, ClientStats, FromReply, Reply, ReqId, RetryPolicy, Ticket, TxId, WatchEvent,
};
use super::error::XsError;
use super::perms::Permissions;
use super::ring::{RingTransport, XenstorePage};

/// Bytes read off the ring per step.
const RECV_CHUNK: usize = 256;

/// Steps one pump takes at most (16 KiB), so a xenstored that never stops
/// sending cannot keep one task in there forever: the pump then reports
/// that more may be waiting.
const RECV_ROUNDS: usize = 64;

/// The state behind the lock.
struct Inner<P: XenstorePage> {
    client: Client,
    transport: RingTransport<P>,
    /// The task waiting for each outstanding request's reply.
    reply_wakers: LiteMap<ReqId, Waker>,
    /// The tasks waiting for events of each watch token.
    watch_wakers: LiteMap<String, Vec<Waker>>,
    /// For [`SharedXenstore::watch`]'s generated tokens.
    next_token: u64,
}

impl<P: XenstorePage> Inner<P> {
    /// Pushes out what fits of the queued requests.
    fn flush(&mut self) -> Result<(), XsError> {
        while !self.client.outgoing().is_empty() {
            match self.transport.write_some(self.client.outgoing()) {
                Ok(0) => break,
                Ok(count) => self.client.advance_outgoing(count),
                Err(error) => {
                    self.client.connection_lost(error);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Sends what fits, takes in what arrived. `Ok(true)` when it stopped
    /// at [`RECV_ROUNDS`] with more perhaps waiting.
    fn exchange(&mut self) -> Result<bool, XsError> {
        if self.client.broken().is_some() {
            return Err(XsError::Disconnected);
        }
        self.flush()?;
        let mut buf = [0u8; RECV_CHUNK];
        for _ in 0..RECV_ROUNDS {
            let count = match self.transport.read_some(&mut buf) {
                Ok(count) => count.min(buf.len()),
                Err(error) => {
                    self.client.connection_lost(error);
                    return Err(error);
                }
            };
            if count == 0 {
                // xenstored may have consumed requests while answering.
                self.flush()?;
                return Ok(false);
            }
            self.client.receive(&buf[..count])?;
        }
        self.flush()?;
        Ok(true)
    }

    /// Moves the wakers of every task that has something to look at now
    /// (its reply, an event, or a broken connection) into `woken`.
    fn collect_wakers(&mut self, woken: &mut Vec<Waker>) {
        let broken = self.client.broken().is_some();
        let client = &self.client;
        let answered: Vec<ReqId> = self
            .reply_wakers
            .keys()
            .copied()
            .filter(|&req_id| broken || client.is_answered(req_id))
            .collect();
        for req_id in answered {
            woken.extend(self.reply_wakers.remove(&req_id));
        }
        let ready: Vec<String> = self
            .watch_wakers
            .keys()
            .filter(|token| {
                broken
                    || !client.is_watching(token)
                    || client
                        .tokens_with_events()
                        .any(|with| with == token.as_str())
            })
            .cloned()
            .collect();
        for token in ready {
            woken.extend(self.watch_wakers.remove(&token).unwrap_or_default());
        }
        self.reply_wakers.release_when_empty();
        self.watch_wakers.release_when_empty();
    }

    /// [`Inner::exchange`] then [`Inner::collect_wakers`].
    fn pump(&mut self, woken: &mut Vec<Waker>) -> Result<bool, XsError> {
        let result = self.exchange();
        self.collect_wakers(woken);
        result
    }
}

/// Wakes tasks after the lock is let go (a waker may take other locks).
fn wake_all(woken: Vec<Waker>) {
    for waker in woken {
        waker.wake();
    }
}

/// One xenstore connection for any number of tasks (see the module docs).
pub struct SharedXenstore<P: XenstorePage> {
    inner: Mutex<Inner<P>>,
}

impl<P: XenstorePage> SharedXenstore<P> {
    /// A fresh client over `transport`.
    pub fn new(transport: RingTransport<P>) -> SharedXenstore<P> {
        SharedXenstore::with_client(Client::new(), transport)
    }

    /// Carries on with an existing client.
    pub fn with_client(client: Client, transport: RingTransport<P>) -> SharedXenstore<P> {
        SharedXenstore {
            inner: Mutex::new(Inner {
                client,
                transport,
                reply_wakers: LiteMap::new(),
                watch_wakers: LiteMap::new(),
                next_token: 1,
            }),
        }
    }

    /// Sends what is queued, takes in what arrived, and wakes the tasks
    /// whose replies or events came. The connection's pump task calls it
    /// each time the event channel fires; `Ok(true)` means it stopped
    /// with more perhaps waiting (call again after letting others run).
    /// Fails once the connection is broken.
    pub fn pump(&self) -> Result<bool, XsError> {
        let mut woken = Vec::new();
        let result = self.inner.lock().pump(&mut woken);
        wake_all(woken);
        result
    }

    /// After a resume in a new domain (see [`Client::resumed`]): fails
    /// the requests in flight with [`XsError::Resumed`], registers every
    /// watch again, sends that out and wakes whoever has an answer now.
    /// The caller has pointed the page at the new event channel first.
    /// Returns how many watches were registered again, and the ring's
    /// indices as the resume found them (`[req_cons, req_prod, rsp_cons,
    /// rsp_prod]`).
    pub fn resumed(&self) -> (usize, [u32; 4]) {
        let mut woken = Vec::new();
        let outcome = {
            let mut inner = self.inner.lock();
            let indices = inner.transport.resync_after_resume();
            let again = inner.client.resumed();
            let _ = inner.pump(&mut woken);
            (again, indices)
        };
        wake_all(woken);
        outcome
    }

    /// Counters of events and replies dropped rather than delivered.
    pub fn stats(&self) -> ClientStats {
        self.inner.lock().client.stats()
    }

    /// The oldest anomaly not yet taken (a reply nobody asked for, a
    /// malformed watch event).
    pub fn take_anomaly(&self) -> Option<XsError> {
        self.inner.lock().client.take_anomaly()
    }

    /// Why the connection broke, if it did.
    pub fn broken(&self) -> Option<XsError> {
        self.inner.lock().client.broken()
    }

    /// Requests without a reply yet (abandoned ones included).
    pub fn outstanding(&self) -> usize {
        self.inner.lock().client.outstanding()
    }

    /// Tasks waiting for a reply or an event right now.
    pub fn waiters(&self) -> usize {
        let inner = self.inner.lock();
        inner.reply_wakers.len() + inner.watch_wakers.values().map(Vec::len).sum::<usize>()
    }

    /// Runs `body` on the page (for diagnostics; do not move bytes).
    pub fn with_page<R>(&self, body: impl FnOnce(&mut P) -> R) -> R {
        body(self.inner.lock().transport.page())
    }

    /// Queues the request `make` forms, pushes it out, and returns the
    /// future of its reply. The request goes out now, not when the future
    /// is first polled, so requests leave in the order they are made.
    pub fn request<R: FromReply>(
        &self,
        make: impl FnOnce(&mut Client) -> Result<Ticket<R>, XsError>,
    ) -> Request<'_, P, R> {
        let mut woken = Vec::new();
        let ticket = {
            let mut inner = self.inner.lock();
            let ticket = make(&mut inner.client);
            if ticket.is_ok() {
                // A failure here fails the request through the client.
                let _ = inner.pump(&mut woken);
            }
            ticket
        };
        wake_all(woken);
        Request {
            xs: self,
            ticket: Some(ticket),
        }
    }

    /// `XS_READ`: the value at `path`.
    pub fn read(&self, tx: TxId, path: &str) -> Request<'_, P, Vec<u8>> {
        self.request(|client| client.read(tx, path))
    }

    /// `XS_READ`, `None` if the node does not exist.
    pub async fn read_opt(&self, tx: TxId, path: &str) -> Result<Option<Vec<u8>>, XsError> {
        match self.read(tx, path).await {
            Ok(value) => Ok(Some(value)),
            Err(XsError::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `XS_READ`, as text ([`XsError::NotUtf8`] if it is not).
    pub async fn read_string(&self, tx: TxId, path: &str) -> Result<String, XsError> {
        String::from_utf8(self.read(tx, path).await?).map_err(|_| XsError::NotUtf8)
    }

    /// `XS_WRITE`: sets the value at `path`.
    pub fn write(&self, tx: TxId, path: &str, value: &[u8]) -> Request<'_, P, ()> {
        self.request(|client| client.write(tx, path, value))
    }

    /// `XS_MKDIR`: makes sure `path` exists.
    pub fn mkdir(&self, tx: TxId, path: &str) -> Request<'_, P, ()> {
        self.request(|client| client.mkdir(tx, path))
    }

    /// `XS_RM`: removes `path` and its children.
    pub fn rm(&self, tx: TxId, path: &str) -> Request<'_, P, ()> {
        self.request(|client| client.rm(tx, path))
    }

    /// `XS_DIRECTORY`: the leaf names of `path`'s children.
    pub fn directory(&self, tx: TxId, path: &str) -> Request<'_, P, Vec<String>> {
        self.request(|client| client.directory(tx, path))
    }

    /// `XS_GET_PERMS`: the permissions of `path`.
    pub fn get_perms(&self, tx: TxId, path: &str) -> Request<'_, P, Permissions> {
        self.request(|client| client.get_perms(tx, path))
    }

    /// `XS_SET_PERMS`: replaces the permissions of `path`.
    pub fn set_perms(&self, tx: TxId, path: &str, perms: &Permissions) -> Request<'_, P, ()> {
        self.request(|client| client.set_perms(tx, path, perms))
    }

    /// `XS_TRANSACTION_START`: opens a transaction.
    pub fn transaction_start(&self) -> Request<'_, P, TxId> {
        self.request(Client::transaction_start)
    }

    /// `XS_TRANSACTION_END`: commits or abandons `tx`.
    pub fn transaction_end(&self, tx: TxId, commit: bool) -> Request<'_, P, ()> {
        self.request(|client| client.transaction_end(tx, commit))
    }

    /// `XS_GET_DOMAIN_PATH`: the home path of `domid`.
    pub fn get_domain_path(&self, domid: u16) -> Request<'_, P, String> {
        self.request(|client| client.get_domain_path(domid))
    }

    /// `XS_RESET_WATCHES`: drops every watch and transaction of this
    /// domain; tasks waiting on a watch fail with
    /// [`XsError::BadArgument`].
    pub fn reset_watches(&self) -> Request<'_, P, ()> {
        self.request(Client::reset_watches)
    }

    /// A hand-made request of any type (see [`Client::raw_request`]).
    pub fn raw_request(&self, msg_type: u32, tx: TxId, payload: &[u8]) -> Request<'_, P, Reply> {
        self.request(|client| client.raw_request(msg_type, tx, payload))
    }

    /// `XS_WATCH` on `path` with a token of its own: the returned
    /// [`Watch`] receives exactly this watch's events (the first one
    /// straight away, as xenstored sends it). Dropping it unwatches.
    pub async fn watch(&self, path: &str) -> Result<Watch<'_, P>, XsError> {
        let token = {
            let mut inner = self.inner.lock();
            let serial = inner.next_token;
            inner.next_token += 1;
            format!("paravane-{serial}")
        };
        self.watch_with_token(path, &token).await
    }

    /// `XS_WATCH` on `path` with the caller's `token`. Two watches that
    /// share a token share its event queue.
    pub async fn watch_with_token(&self, path: &str, token: &str) -> Result<Watch<'_, P>, XsError> {
        self.request(|client| client.watch(path, token)).await?;
        Ok(Watch {
            xs: self,
            path: String::from(path),
            token: String::from(token),
            active: true,
        })
    }

    /// Runs `body` in a transaction and commits it, starting over while
    /// `policy` says so (on [`XsError::Again`], from the commit or from an
    /// operation inside). If `body` fails the transaction is abandoned
    /// and its error returned. `body(tx)` makes the future of one
    /// attempt (a plain closure returning a future, rather than an async
    /// closure, so the whole stays `Send` when its parts are).
    pub async fn transaction<R, F: Future<Output = Result<R, XsError>>>(
        &self,
        policy: RetryPolicy,
        mut body: impl FnMut(TxId) -> F,
    ) -> Result<R, XsError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tx = self.transaction_start().await?;
            let outcome = match body(tx).await {
                Ok(value) => self.transaction_end(tx, true).await.map(|()| value),
                Err(error) if error.is_fatal() => return Err(error),
                Err(error) => match self.transaction_end(tx, false).await {
                    // Only a lost connection outranks the body's error.
                    Err(XsError::Disconnected) => Err(XsError::Disconnected),
                    _ => Err(error),
                },
            };
            if !policy.should_retry(attempt, &outcome) {
                return outcome;
            }
        }
    }

    /// The next event of `token` if one is queued (after taking in what
    /// arrived), without waiting.
    fn poll_token(&self, token: &str, waker: Option<&Waker>) -> Poll<Result<WatchEvent, XsError>> {
        let mut woken = Vec::new();
        let outcome = {
            let mut inner = self.inner.lock();
            // A broken connection shows in the checks below.
            let _ = inner.pump(&mut woken);
            if let Some(event) = inner.client.poll_watch(token) {
                Poll::Ready(Ok(event))
            } else if inner.client.broken().is_some() {
                Poll::Ready(Err(XsError::Disconnected))
            } else if !inner.client.is_watching(token) {
                Poll::Ready(Err(XsError::BadArgument))
            } else {
                if let Some(waker) = waker {
                    let waiting = inner.watch_wakers.entry(String::from(token)).or_default();
                    if !waiting.iter().any(|known| known.will_wake(waker)) {
                        waiting.push(waker.clone());
                    }
                }
                Poll::Pending
            }
        };
        wake_all(woken);
        outcome
    }
}

/// The reply to one request, as a future (see [`SharedXenstore::request`]).
/// Dropping it before it completes abandons the request: its reply is
/// dropped when it comes.
pub struct Request<'a, P: XenstorePage, R> {
    xs: &'a SharedXenstore<P>,
    /// `None` once the result was handed out.
    ticket: Option<Result<Ticket<R>, XsError>>,
}

impl<P: XenstorePage, R> Request<'_, P, R> {
    /// The request's id (`None` if it could not be sent).
    pub fn req_id(&self) -> Option<ReqId> {
        match &self.ticket {
            Some(Ok(ticket)) => Some(ticket.req_id()),
            _ => None,
        }
    }
}

impl<P: XenstorePage, R: FromReply> Future for Request<'_, P, R> {
    type Output = Result<R, XsError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ticket = match self.ticket.take() {
            None => return Poll::Ready(Err(XsError::BadArgument)),
            Some(Err(error)) => return Poll::Ready(Err(error)),
            Some(Ok(ticket)) => ticket,
        };
        let mut woken = Vec::new();
        let outcome = {
            let mut inner = self.xs.inner.lock();
            // A broken connection fails the request through the client.
            let _ = inner.pump(&mut woken);
            match inner.client.poll(ticket) {
                Some(result) => {
                    inner.reply_wakers.remove(&ticket.req_id());
                    inner.reply_wakers.release_when_empty();
                    Some(result)
                }
                None => {
                    inner
                        .reply_wakers
                        .insert(ticket.req_id(), cx.waker().clone());
                    None
                }
            }
        };
        wake_all(woken);
        match outcome {
            Some(result) => Poll::Ready(result),
            None => {
                self.ticket = Some(Ok(ticket));
                Poll::Pending
            }
        }
    }
}

impl<P: XenstorePage, R> Drop for Request<'_, P, R> {
    fn drop(&mut self) {
        if let Some(Ok(ticket)) = &self.ticket {
            let mut inner = self.xs.inner.lock();
            inner.client.forget(ticket.req_id());
            inner.reply_wakers.remove(&ticket.req_id());
            inner.reply_wakers.release_when_empty();
        }
    }
}

/// One registered watch and its stream of events. Dropping it removes the
/// watch (the `XS_UNWATCH` goes out without waiting for the answer);
/// [`Watch::unwatch`] waits for it.
pub struct Watch<'a, P: XenstorePage> {
    xs: &'a SharedXenstore<P>,
    path: String,
    token: String,
    /// Still registered (not yet unwatched).
    active: bool,
}

impl<'a, P: XenstorePage> Watch<'a, P> {
    /// The watched path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The watch's token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The next event of this watch (of its token), as a future. Fails
    /// with [`XsError::Disconnected`] if the connection breaks, and with
    /// [`XsError::BadArgument`] if the watch is gone (refused, reset).
    pub fn next_event(&mut self) -> NextEvent<'_, 'a, P> {
        NextEvent { watch: self }
    }

    /// The next event if one is already here (`Ok(None)` if not).
    pub fn try_next(&mut self) -> Result<Option<WatchEvent>, XsError> {
        match self.xs.poll_token(&self.token, None) {
            Poll::Ready(result) => result.map(Some),
            Poll::Pending => Ok(None),
        }
    }

    /// Removes the watch and waits for xenstored's answer.
    pub async fn unwatch(mut self) -> Result<(), XsError> {
        self.active = false;
        let xs = self.xs;
        xs.request(|client| client.unwatch(&self.path, &self.token))
            .await
    }
}

impl<P: XenstorePage> Drop for Watch<'_, P> {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        let mut woken = Vec::new();
        {
            let mut inner = self.xs.inner.lock();
            if let Ok(ticket) = inner.client.unwatch(&self.path, &self.token) {
                inner.client.forget(ticket.req_id());
                let _ = inner.pump(&mut woken);
            }
        }
        wake_all(woken);
    }
}

/// The future of [`Watch::next_event`].
pub struct NextEvent<'w, 'a, P: XenstorePage> {
    watch: &'w mut Watch<'a, P>,
}

impl<P: XenstorePage> Future for NextEvent<'_, '_, P> {
    type Output = Result<WatchEvent, XsError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let watch = &*self.watch;
        watch.xs.poll_token(&watch.token, Some(cx.waker()))
    }
}
