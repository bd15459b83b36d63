//! The request/reply state machine, free of I/O.
//!
//! A [`Client`] turns operations (read, write, watch, …) into request
//! bytes in an outgoing queue and returns a [`Ticket`] per request; the
//! caller moves those bytes to xenstored by whatever means it has (the
//! shared ring, a socket in tests), feeds every byte that comes back into
//! [`Client::receive`], and asks [`Client::poll`] (or the untyped
//! [`Client::poll_reply`]) whether a reply is in. Nothing here blocks,
//! sleeps or touches shared memory, so one `Client` serves both the early
//! boot path ([`super::XenstoreBlocking`]) and an async task system.
//!
//! Replies are matched by request id only (xenstored echoes `tx_id` too,
//! but implementations differ on what they echo for
//! `TRANSACTION_START`). A reply whose id is not outstanding is dropped
//! and recorded as an anomaly ([`Client::take_anomaly`]); a reply of the
//! wrong type fails its request with [`XsError::UnexpectedReply`]; a reply
//! whose payload is malformed fails its request with that error. Watch
//! events go into one queue per watch token ([`Client::poll_watch`]) so
//! the kernel can hand each to the task that registered the watch; events
//! for tokens with no watch registered here are dropped and counted. A
//! stream error (oversized length, unknown type) or a transport failure
//! breaks the connection: every outstanding and future request fails with
//! [`XsError::Disconnected`], and [`Client::broken`] says why.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::marker::PhantomData;
use litemap::LiteMap;

use crate::storage::ReleaseWhenEmpty;

use super::error::XsError;
use super::perms::{push_decimal, Permissions};
use super::wire::{encode_message, BadMessage, Body, Message, MsgType, ReplyDecoder};

/// How many undelivered events one watch token may queue; later events
/// are dropped (and counted in [`ClientStats::watch_events_dropped`])
/// until the task drains its queue. Identical queued events are merged.
pub const WATCH_QUEUE_LIMIT: usize = 64;

/// How many anomalies [`Client::take_anomaly`] keeps; older ones are
/// dropped first.
pub const ANOMALY_LIMIT: usize = 16;

/// The id of one request, unique among the outstanding ones, never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReqId(u32);

impl ReqId {
    /// The id as it appears in the header.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// A transaction id as xenstored assigned it; [`TxId::NONE`] outside a
/// transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u32);

impl TxId {
    /// No transaction: the operation applies directly.
    pub const NONE: TxId = TxId(0);

    /// Whether this is [`TxId::NONE`].
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }
}

/// A successful reply, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The request was done (write, mkdir, rm, set_perms, watch, unwatch,
    /// transaction end, reset watches).
    Ok,
    /// A node's value.
    Value(Vec<u8>),
    /// A node's children (leaf names).
    Directory(Vec<String>),
    /// A node's permissions.
    Perms(Permissions),
    /// A new transaction.
    Transaction(TxId),
    /// A domain's home path.
    Path(String),
    /// A yes/no answer.
    Flag(bool),
    /// A payload this client does not interpret.
    Raw(Vec<u8>),
}

/// A result type one kind of [`Reply`] converts into.
pub trait FromReply: Sized {
    /// Converts, or fails with [`XsError::UnexpectedReply`].
    fn from_reply(reply: Reply) -> Result<Self, XsError>;
}

impl FromReply for Reply {
    fn from_reply(reply: Reply) -> Result<Self, XsError> {
        Ok(reply)
    }
}

impl FromReply for () {
    fn from_reply(reply: Reply) -> Result<Self, XsError> {
        match reply {
            Reply::Ok => Ok(()),
            _ => Err(XsError::UnexpectedReply),
        }
    }
}

impl FromReply for Vec<u8> {
    fn from_reply(reply: Reply) -> Result<Self, XsError> {
        match reply {
            Reply::Value(bytes) | Reply::Raw(bytes) => Ok(bytes),
            _ => Err(XsError::UnexpectedReply),
        }
    }
}

impl FromReply for Vec<String> {
    fn from_reply(reply: Reply) -> Result<Self, XsError> {
        match reply {
            Reply::Directory(names) => Ok(names),
            _ => Err(XsError::UnexpectedReply),
        }
    }
}

impl FromReply for Permissions {
    fn from_reply(reply: Reply) -> Result<Self, XsError> {
        match reply {
            Reply::Perms(perms) => Ok(perms),
            _ => Err(XsError::UnexpectedReply),
        }
    }
}

impl FromReply for TxId {
    fn from_reply(reply: Reply) -> Result<Self, XsError> {
        match reply {
            Reply::Transaction(tx) => Ok(tx),
            _ => Err(XsError::UnexpectedReply),
        }
    }
}

impl FromReply for String {
    fn from_reply(reply: Reply) -> Result<Self, XsError> {
        match reply {
            Reply::Path(path) => Ok(path),
            _ => Err(XsError::UnexpectedReply),
        }
    }
}

impl FromReply for bool {
    fn from_reply(reply: Reply) -> Result<Self, XsError> {
        match reply {
            Reply::Flag(flag) => Ok(flag),
            _ => Err(XsError::UnexpectedReply),
        }
    }
}

/// A claim on the reply to one request, typed by what the reply becomes.
pub struct Ticket<T> {
    req_id: ReqId,
    result: PhantomData<fn() -> T>,
}

impl<T> Ticket<T> {
    fn new(req_id: ReqId) -> Ticket<T> {
        Ticket {
            req_id,
            result: PhantomData,
        }
    }

    /// The request's id (for [`Client::poll_reply`] and [`Client::forget`]).
    pub fn req_id(&self) -> ReqId {
        self.req_id
    }
}

impl<T> Clone for Ticket<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Ticket<T> {}

impl<T> core::fmt::Debug for Ticket<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Ticket").field(&self.req_id.0).finish()
    }
}

/// A watch firing: `path` changed, for the watch registered with `token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The path that changed (relative if the watch's path was), or the
    /// watched path itself for the first event and for removal of a
    /// parent.
    pub path: String,
    /// The token given to [`Client::watch`].
    pub token: String,
}

/// Counters of things the client dropped rather than delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Events dropped because their token's queue was full.
    pub watch_events_dropped: u64,
    /// Events for tokens with no watch registered (for example in flight
    /// when the watch was removed).
    pub stray_watch_events: u64,
    /// Anomalies recorded (including ones since dropped from the queue).
    pub anomalies: u64,
}

/// What the client remembers about one request.
enum Slot {
    /// Sent (or queued), no reply yet.
    Waiting {
        /// The reply type that answers it (`None` for a raw request,
        /// which any type answers).
        expects: Option<MsgType>,
        /// For a watch: the token registered when it was submitted, to
        /// unregister if xenstored refuses.
        watch_token: Option<String>,
        /// The caller gave up on it ([`Client::forget`]): drop the reply.
        abandoned: bool,
    },
    /// The reply is in, waiting to be polled.
    Done(Result<Reply, XsError>),
}

/// Per-token watch state.
struct TokenState {
    /// Watches registered with this token (one token may watch several
    /// paths).
    registrations: u32,
    /// The paths watched with it, to register again after a resume.
    paths: Vec<String>,
    /// Undelivered events, oldest first.
    events: VecDeque<WatchEvent>,
}

/// The sans-I/O xenstore client.
pub struct Client {
    next_req_id: u32,
    slots: LiteMap<u32, Slot>,
    outgoing: Vec<u8>,
    outgoing_sent: usize,
    decoder: ReplyDecoder,
    watches: LiteMap<String, TokenState>,
    anomalies: VecDeque<XsError>,
    stats: ClientStats,
    broken: Option<XsError>,
    /// Requests failed by [`Client::resumed`] (and the watches it sent
    /// again): a reply that still comes for one is dropped quietly.
    stale_req_ids: LiteMap<u32, ()>,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

/// The bytes of a string argument, refusing an embedded NUL (it would
/// split the field on the wire).
fn field(text: &str) -> Result<&[u8], XsError> {
    if text.as_bytes().contains(&0) {
        Err(XsError::BadArgument)
    } else {
        Ok(text.as_bytes())
    }
}

impl Client {
    /// A client with nothing outstanding.
    pub const fn new() -> Client {
        Client {
            next_req_id: 1,
            slots: LiteMap::new(),
            outgoing: Vec::new(),
            outgoing_sent: 0,
            decoder: ReplyDecoder::new(),
            watches: LiteMap::new(),
            anomalies: VecDeque::new(),
            stats: ClientStats {
                watch_events_dropped: 0,
                stray_watch_events: 0,
                anomalies: 0,
            },
            broken: None,
            stale_req_ids: LiteMap::new(),
        }
    }

    // ---- Operations ----------------------------------------------------

    /// `XS_READ`: the value at `path` (binary; xenstore values are usually
    /// ASCII without a NUL).
    pub fn read(&mut self, tx: TxId, path: &str) -> Result<Ticket<Vec<u8>>, XsError> {
        self.submit(MsgType::Read, tx, &[field(path)?, b"\0"], None)
    }

    /// `XS_WRITE`: sets the value at `path`, creating it and any missing
    /// parents.
    pub fn write(&mut self, tx: TxId, path: &str, value: &[u8]) -> Result<Ticket<()>, XsError> {
        self.submit(MsgType::Write, tx, &[field(path)?, b"\0", value], None)
    }

    /// `XS_MKDIR`: makes sure `path` exists (an existing value is kept).
    pub fn mkdir(&mut self, tx: TxId, path: &str) -> Result<Ticket<()>, XsError> {
        self.submit(MsgType::Mkdir, tx, &[field(path)?, b"\0"], None)
    }

    /// `XS_RM`: removes `path` and everything below it (not an error if it
    /// is already gone while its parent exists).
    pub fn rm(&mut self, tx: TxId, path: &str) -> Result<Ticket<()>, XsError> {
        self.submit(MsgType::Rm, tx, &[field(path)?, b"\0"], None)
    }

    /// `XS_DIRECTORY`: the leaf names of `path`'s children.
    pub fn directory(&mut self, tx: TxId, path: &str) -> Result<Ticket<Vec<String>>, XsError> {
        self.submit(MsgType::Directory, tx, &[field(path)?, b"\0"], None)
    }

    /// `XS_GET_PERMS`: the permissions of `path`.
    pub fn get_perms(&mut self, tx: TxId, path: &str) -> Result<Ticket<Permissions>, XsError> {
        self.submit(MsgType::GetPerms, tx, &[field(path)?, b"\0"], None)
    }

    /// `XS_SET_PERMS`: replaces the permissions of `path`.
    pub fn set_perms(
        &mut self,
        tx: TxId,
        path: &str,
        perms: &Permissions,
    ) -> Result<Ticket<()>, XsError> {
        let wire = perms.to_wire();
        self.submit(MsgType::SetPerms, tx, &[field(path)?, b"\0", &wire], None)
    }

    /// `XS_WATCH`: reports changes at or below `path` (or a special
    /// `@introduceDomain`/`@releaseDomain` event) as [`WatchEvent`]s
    /// carrying `token`. xenstored fires once straight away. Events are
    /// queued from the moment the request is submitted, so that first
    /// event is never lost.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<Ticket<()>, XsError> {
        let parts: [&[u8]; 4] = [field(path)?, b"\0", field(token)?, b"\0"];
        let ticket = self.submit(
            MsgType::Watch,
            TxId::NONE,
            &parts,
            Some(String::from(token)),
        )?;
        let state = self
            .watches
            .entry(String::from(token))
            .or_insert_with(|| TokenState {
                registrations: 0,
                paths: Vec::new(),
                events: VecDeque::new(),
            });
        state.registrations += 1;
        state.paths.push(String::from(path));
        Ok(ticket)
    }

    /// `XS_UNWATCH`: removes the watch on `path` with `token`. When the
    /// token's last watch goes, its queue (and any event still in it or
    /// in flight) is dropped.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<Ticket<()>, XsError> {
        let parts: [&[u8]; 4] = [field(path)?, b"\0", field(token)?, b"\0"];
        let ticket = self.submit(MsgType::Unwatch, TxId::NONE, &parts, None)?;
        if let Some(state) = self.watches.get_mut(token) {
            if let Some(at) = state.paths.iter().position(|known| known == path) {
                state.paths.remove(at);
            }
        }
        self.unregister(token);
        Ok(ticket)
    }

    /// `XS_RESET_WATCHES`: drops every watch and transaction this domain
    /// has in xenstored (for a kernel started by kexec, or after resume);
    /// every local watch queue goes too.
    pub fn reset_watches(&mut self) -> Result<Ticket<()>, XsError> {
        let ticket = self.submit(MsgType::ResetWatches, TxId::NONE, &[b"\0"], None)?;
        self.watches.clear();
        Ok(ticket)
    }

    /// `XS_TRANSACTION_START`: opens a transaction.
    pub fn transaction_start(&mut self) -> Result<Ticket<TxId>, XsError> {
        self.submit(MsgType::TransactionStart, TxId::NONE, &[b"\0"], None)
    }

    /// `XS_TRANSACTION_END`: commits (`commit`) or abandons `tx`. A commit
    /// fails with [`XsError::Again`] if another writer touched what the
    /// transaction used; start over (see [`RetryPolicy`]).
    pub fn transaction_end(&mut self, tx: TxId, commit: bool) -> Result<Ticket<()>, XsError> {
        if tx.is_none() {
            return Err(XsError::BadArgument);
        }
        let verdict: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.submit(MsgType::TransactionEnd, tx, &[verdict], None)
    }

    /// `XS_GET_DOMAIN_PATH`: the home path of `domid`
    /// (`/local/domain/<domid>`).
    pub fn get_domain_path(&mut self, domid: u16) -> Result<Ticket<String>, XsError> {
        let mut digits = Vec::with_capacity(6);
        push_decimal(&mut digits, u32::from(domid));
        digits.push(0);
        self.submit(MsgType::GetDomainPath, TxId::NONE, &[&digits], None)
    }

    /// A hand-made request of any type number (one this client has no
    /// operation for, or a payload it would refuse to form), for
    /// conformance checks of xenstored's refusals. Any reply type answers
    /// it; an `XS_ERROR` reply is the error it names.
    pub fn raw_request(
        &mut self,
        msg_type: u32,
        tx: TxId,
        payload: &[u8],
    ) -> Result<Ticket<Reply>, XsError> {
        if self.broken.is_some() {
            return Err(XsError::Disconnected);
        }
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&len| len as usize <= pv_arch::abi::xenstore::XENSTORE_PAYLOAD_MAX)
            .ok_or(XsError::RequestTooLong)?;
        let req_id = self.allocate_req_id();
        let header = pv_arch::abi::xenstore::XsdSockmsg {
            type_: msg_type,
            req_id,
            tx_id: tx.0,
            len,
        };
        self.outgoing
            .extend_from_slice(&super::wire::raw_header_to_bytes(&header));
        self.outgoing.extend_from_slice(payload);
        self.slots.insert(
            req_id,
            Slot::Waiting {
                expects: None,
                watch_token: None,
                abandoned: false,
            },
        );
        Ok(Ticket::new(ReqId(req_id)))
    }

    /// Queues one request.
    fn submit<T>(
        &mut self,
        msg_type: MsgType,
        tx: TxId,
        parts: &[&[u8]],
        watch_token: Option<String>,
    ) -> Result<Ticket<T>, XsError> {
        if self.broken.is_some() {
            return Err(XsError::Disconnected);
        }
        let req_id = self.allocate_req_id();
        encode_message(&mut self.outgoing, msg_type, req_id, tx.0, parts)?;
        self.slots.insert(
            req_id,
            Slot::Waiting {
                expects: Some(msg_type),
                watch_token,
                abandoned: false,
            },
        );
        Ok(Ticket::new(ReqId(req_id)))
    }

    /// The next request id that is neither 0 nor outstanding.
    fn allocate_req_id(&mut self) -> u32 {
        loop {
            let candidate = self.next_req_id;
            self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
            if candidate != 0
                && !self.slots.contains_key(&candidate)
                && !self.stale_req_ids.contains_key(&candidate)
            {
                return candidate;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn set_next_req_id(&mut self, next: u32) {
        self.next_req_id = next;
    }

    // ---- Replies -------------------------------------------------------

    /// The typed reply to `ticket`, once it is in: `None` while waiting.
    /// A reply is handed out once; polling again gives
    /// `Some(Err(XsError::UnknownReqId(_)))`.
    pub fn poll<T: FromReply>(&mut self, ticket: Ticket<T>) -> Option<Result<T, XsError>> {
        self.poll_reply(ticket.req_id)
            .map(|reply| reply.and_then(T::from_reply))
    }

    /// The untyped reply to request `req_id`, once it is in: `None` while
    /// waiting; `Some(Err(XsError::UnknownReqId(_)))` for an id never
    /// issued, already polled or forgotten.
    pub fn poll_reply(&mut self, req_id: ReqId) -> Option<Result<Reply, XsError>> {
        match self.slots.get(&req_id.0) {
            Some(Slot::Waiting {
                abandoned: false, ..
            }) => None,
            Some(Slot::Done(_)) => {
                let slot = self.slots.remove(&req_id.0);
                self.slots.release_when_empty();
                match slot {
                    Some(Slot::Done(result)) => Some(result),
                    _ => None,
                }
            }
            _ => Some(Err(XsError::UnknownReqId(req_id.0))),
        }
    }

    /// Gives up on request `req_id` (a task was cancelled): its reply will
    /// be dropped quietly when it comes.
    pub fn forget(&mut self, req_id: ReqId) {
        match self.slots.get_mut(&req_id.0) {
            Some(Slot::Waiting { abandoned, .. }) => *abandoned = true,
            Some(Slot::Done(_)) => {
                self.slots.remove(&req_id.0);
                self.slots.release_when_empty();
            }
            None => {}
        }
    }

    /// Whether polling request `req_id` would give an answer now: its
    /// reply is in, or the id is not outstanding (forgotten, already
    /// taken, never issued, or failed with the connection).
    pub fn is_answered(&self, req_id: ReqId) -> bool {
        !matches!(
            self.slots.get(&req_id.0),
            Some(Slot::Waiting {
                abandoned: false,
                ..
            })
        )
    }

    /// How many requests have no reply yet (forgotten ones included).
    pub fn outstanding(&self) -> usize {
        self.slots
            .values()
            .filter(|slot| matches!(slot, Slot::Waiting { .. }))
            .count()
    }

    /// The oldest anomaly not yet taken: a reply to an unknown request id
    /// or a malformed watch event, which no caller was waiting for.
    pub fn take_anomaly(&mut self) -> Option<XsError> {
        self.anomalies.pop_front()
    }

    /// Counters of dropped events and anomalies.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    // ---- Watch events --------------------------------------------------

    /// The oldest undelivered event for `token`, if any.
    pub fn poll_watch(&mut self, token: &str) -> Option<WatchEvent> {
        let events = &mut self.watches.get_mut(token)?.events;
        let event = events.pop_front();
        events.release_when_empty();
        event
    }

    /// The oldest undelivered event of the first token (in token order)
    /// that has one.
    pub fn next_watch_event(&mut self) -> Option<WatchEvent> {
        self.watches.iter_mut().find_map(|(_, state)| {
            let event = state.events.pop_front();
            state.events.release_when_empty();
            event
        })
    }

    /// Whether a watch with `token` is registered (or being registered).
    pub fn is_watching(&self, token: &str) -> bool {
        self.watches.contains_key(token)
    }

    /// Tokens with at least one undelivered event, so the kernel can wake
    /// the tasks that own them.
    pub fn tokens_with_events(&self) -> impl Iterator<Item = &str> {
        self.watches
            .iter()
            .filter(|(_, state)| !state.events.is_empty())
            .map(|(token, _)| token.as_str())
    }

    fn unregister(&mut self, token: &str) {
        if let Some(state) = self.watches.get_mut(token) {
            state.registrations = state.registrations.saturating_sub(1);
            if state.registrations == 0 {
                self.watches.remove(token);
            }
        }
    }

    fn queue_event(&mut self, event: WatchEvent) {
        let Some(state) = self.watches.get_mut(&event.token) else {
            self.stats.stray_watch_events += 1;
            return;
        };
        if state.events.contains(&event) {
            return;
        }
        if state.events.len() >= WATCH_QUEUE_LIMIT {
            self.stats.watch_events_dropped += 1;
            return;
        }
        state.events.push_back(event);
    }

    // ---- Bytes in and out ----------------------------------------------

    /// Request bytes not yet handed to the transport.
    pub fn outgoing(&self) -> &[u8] {
        &self.outgoing[self.outgoing_sent..]
    }

    /// Marks the first `count` bytes of [`Client::outgoing`] as sent.
    pub fn advance_outgoing(&mut self, count: usize) {
        self.outgoing_sent = (self.outgoing_sent + count).min(self.outgoing.len());
        if self.outgoing_sent == self.outgoing.len() {
            self.outgoing.clear();
            self.outgoing.release_when_empty();
            self.outgoing_sent = 0;
        }
    }

    /// Takes every unsent request byte (for transports that want a buffer).
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        let mut bytes = core::mem::take(&mut self.outgoing);
        bytes.drain(..self.outgoing_sent);
        self.outgoing_sent = 0;
        bytes
    }

    /// Feeds bytes received from xenstored, in any pieces. Completes the
    /// requests they answer and queues watch events. Fails only when the
    /// connection breaks (now or earlier): with the stream error the first
    /// time, [`XsError::Disconnected`] after.
    pub fn receive(&mut self, mut bytes: &[u8]) -> Result<(), XsError> {
        if self.broken.is_some() {
            return Err(XsError::Disconnected);
        }
        while let Some(item) = self.decoder.decode(&mut bytes) {
            match item {
                Ok(message) => self.dispatch(message),
                Err(BadMessage {
                    header: Some(header),
                    error,
                }) => {
                    if header.msg_type == MsgType::WatchEvent {
                        self.anomaly(error);
                    } else {
                        // A reply of the wrong type is that first, however
                        // its payload looks.
                        self.complete(header.req_id, |expects| {
                            if expects.is_some_and(|expects| header.msg_type != expects)
                                && header.msg_type != MsgType::Error
                            {
                                Err(XsError::UnexpectedReply)
                            } else {
                                Err(error)
                            }
                        });
                    }
                }
                Err(BadMessage {
                    header: None,
                    error,
                }) => {
                    self.connection_lost(error);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Declares the connection broken (the transport failed or closed, or
    /// the ring is corrupt): outstanding requests fail with
    /// [`XsError::Disconnected`], as will later ones.
    pub fn connection_lost(&mut self, cause: XsError) {
        if self.broken.is_none() {
            self.broken = Some(cause);
        }
        self.outgoing.clear();
        self.outgoing_sent = 0;
        self.slots.retain(|_, slot| {
            !matches!(
                slot,
                Slot::Waiting {
                    abandoned: true,
                    ..
                }
            )
        });
        for (_, slot) in self.slots.iter_mut() {
            if matches!(slot, Slot::Waiting { .. }) {
                *slot = Slot::Done(Err(XsError::Disconnected));
            }
        }
    }

    /// The domain resumed in a new domain (after `xl save`/`restore` or
    /// a migration), talking to a xenstored that knows nothing of it:
    ///
    /// - every request still outstanding fails with [`XsError::Resumed`]
    ///   (the old xenstored may or may not have carried it out; a reply
    ///   that still comes is dropped quietly);
    /// - every watch is registered again (same path, same token), so
    ///   xenstored fires each once straight away and its owner looks
    ///   again; the answers are dropped quietly, and a watch xenstored
    ///   refuses simply stays silent.
    ///
    /// The reply stream starts afresh (the transport drops what the old
    /// connection left unread, `RingTransport::resync_after_resume`).
    /// Returns how many watches were sent again.
    pub fn resumed(&mut self) -> usize {
        // The transport dropped the old stream's unread bytes: start on a
        // message boundary.
        self.decoder = ReplyDecoder::new();
        for (&req_id, slot) in self.slots.iter_mut() {
            if let Slot::Waiting { abandoned, .. } = slot {
                self.stale_req_ids.insert(req_id, ());
                if *abandoned {
                    continue;
                }
                *slot = Slot::Done(Err(XsError::Resumed));
            }
        }
        self.slots
            .retain(|_, slot| !matches!(slot, Slot::Waiting { .. }));
        let again: Vec<(String, String)> = self
            .watches
            .iter()
            .flat_map(|(token, state)| {
                state
                    .paths
                    .iter()
                    .map(move |path| (path.clone(), token.clone()))
            })
            .collect();
        let mut sent = 0;
        for (path, token) in again {
            let parts: [&[u8]; 4] = [path.as_bytes(), b"\0", token.as_bytes(), b"\0"];
            if let Ok(ticket) = self.submit::<()>(MsgType::Watch, TxId::NONE, &parts, None) {
                self.slots.remove(&ticket.req_id().0);
                self.stale_req_ids.insert(ticket.req_id().0, ());
                sent += 1;
            }
        }
        sent
    }

    /// Why the connection broke, if it did.
    pub fn broken(&self) -> Option<XsError> {
        self.broken
    }

    fn anomaly(&mut self, error: XsError) {
        self.stats.anomalies += 1;
        if self.anomalies.len() >= ANOMALY_LIMIT {
            self.anomalies.pop_front();
        }
        self.anomalies.push_back(error);
    }

    fn dispatch(&mut self, message: Message) {
        let header = message.header;
        match message.body {
            Body::WatchEvent { path, token } => self.queue_event(WatchEvent { path, token }),
            body => self.complete(header.req_id, |expects| {
                if let Body::Error(error) = body {
                    return Err(error);
                }
                if expects.is_some_and(|expects| header.msg_type != expects) {
                    return Err(XsError::UnexpectedReply);
                }
                Ok(match body {
                    Body::Ok => Reply::Ok,
                    Body::Value(value) => Reply::Value(value),
                    Body::Names(names) => Reply::Directory(names),
                    Body::Perms(perms) => Reply::Perms(perms),
                    Body::TxStarted(id) => Reply::Transaction(TxId(id)),
                    Body::Path(path) => Reply::Path(path),
                    Body::Flag(flag) => Reply::Flag(flag),
                    Body::Raw(raw) => Reply::Raw(raw),
                    Body::Error(_) | Body::WatchEvent { .. } => {
                        return Err(XsError::UnexpectedReply)
                    }
                })
            }),
        }
    }

    /// Completes request `req_id` with what `outcome` makes of it, given
    /// the reply type the request expects.
    fn complete(
        &mut self,
        req_id: u32,
        outcome: impl FnOnce(Option<MsgType>) -> Result<Reply, XsError>,
    ) {
        if self.stale_req_ids.remove(&req_id).is_some() {
            // Sent before a resume (or a watch sent again by it): nobody
            // waits for it.
            self.stale_req_ids.release_when_empty();
            return;
        }
        let Some(Slot::Waiting {
            expects,
            watch_token,
            abandoned,
        }) = self.slots.remove(&req_id)
        else {
            // Unknown, or a second reply to a request already answered:
            // keep any answer we have, report the stray.
            self.anomaly(XsError::UnknownReqId(req_id));
            return;
        };
        let result = outcome(expects);
        if let (Err(_), Some(token)) = (&result, watch_token) {
            self.unregister(&token);
        }
        if !abandoned {
            self.slots.insert(req_id, Slot::Done(result));
        }
        self.slots.release_when_empty();
    }
}

/// When to run a failed transaction again: on [`XsError::Again`], up to
/// `max_attempts` attempts in all. Pure policy; the loop lives with the
/// caller ([`super::XenstoreBlocking::transaction`], or a kernel task).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 behaves as 1).
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// Eight attempts, like the usual xenstore clients' loops.
    pub const DEFAULT: RetryPolicy = RetryPolicy { max_attempts: 8 };

    /// Whether to start another attempt after attempt number `attempt`
    /// (counting from 1) ended with `outcome`.
    pub fn should_retry<T>(&self, attempt: u32, outcome: &Result<T, XsError>) -> bool {
        matches!(outcome, Err(XsError::Again)) && attempt < self.max_attempts
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::wire::{raw_header_to_bytes, HEADER_LEN};
    use alloc::vec;
    use pv_arch::abi::xenstore::XsdSockmsg;

    fn reply(msg_type: MsgType, req_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_message(&mut out, msg_type, req_id, 0, &[payload]).unwrap();
        out
    }

    /// The request ids in a stream of requests, in order.
    fn req_ids(mut bytes: &[u8]) -> Vec<u32> {
        let mut decoder = crate::xenstore::wire::FrameDecoder::new();
        let mut ids = Vec::new();
        while let Some(frame) = decoder.decode(&mut bytes) {
            ids.push(frame.unwrap().header.req_id);
        }
        ids
    }

    #[test]
    fn requests_are_encoded_as_the_protocol_says() {
        let mut client = Client::new();
        client.write(TxId(9), "device/vif/0/state", b"4").unwrap();
        let bytes = client.take_outgoing();
        assert_eq!(&bytes[HEADER_LEN..], b"device/vif/0/state\x004");
        assert_eq!(&bytes[8..12], &9u32.to_ne_bytes());
        client.watch("backend", "tok").unwrap();
        client.transaction_start().unwrap();
        client.transaction_end(TxId(3), false).unwrap();
        client.get_domain_path(7).unwrap();
        client
            .set_perms(
                TxId::NONE,
                "a",
                &Permissions::new(1, crate::xenstore::Access::Read),
            )
            .unwrap();
        let bytes = client.take_outgoing();
        let mut decoder = crate::xenstore::wire::FrameDecoder::new();
        let mut input = bytes.as_slice();
        let mut payloads = Vec::new();
        while let Some(frame) = decoder.decode(&mut input) {
            payloads.push(frame.unwrap().payload);
        }
        assert_eq!(
            payloads,
            [
                b"backend\0tok\0".to_vec(),
                b"\0".to_vec(),
                b"F\0".to_vec(),
                b"7\0".to_vec(),
                b"a\0r1\0".to_vec()
            ]
        );
    }

    #[test]
    fn request_ids_are_unique_nonzero_and_wrap() {
        let mut client = Client::new();
        client.set_next_req_id(u32::MAX - 1);
        let a = client.read(TxId::NONE, "a").unwrap();
        let b = client.read(TxId::NONE, "b").unwrap();
        let c = client.read(TxId::NONE, "c").unwrap();
        assert_eq!(
            [a.req_id().get(), b.req_id().get(), c.req_id().get()],
            [u32::MAX - 1, u32::MAX, 1]
        );
        // Wrap again onto ids still outstanding: they are skipped.
        client.set_next_req_id(u32::MAX);
        let d = client.read(TxId::NONE, "d").unwrap();
        assert_eq!(d.req_id().get(), 2);
        assert_eq!(req_ids(client.outgoing()), [u32::MAX - 1, u32::MAX, 1, 2]);
    }

    #[test]
    fn out_of_order_replies_are_matched_by_id() {
        let mut client = Client::new();
        let first = client.read(TxId::NONE, "a").unwrap();
        let second = client.directory(TxId::NONE, "b").unwrap();
        client.advance_outgoing(usize::MAX);
        assert!(client.outgoing().is_empty());
        let mut stream = reply(MsgType::Directory, second.req_id().get(), b"x\0y\0");
        stream.extend(reply(MsgType::Read, first.req_id().get(), b"value"));
        assert_eq!(client.poll(first), None);
        client.receive(&stream).unwrap();
        assert_eq!(client.poll(second), Some(Ok(vec!["x".into(), "y".into()])));
        assert_eq!(client.poll(first), Some(Ok(b"value".to_vec())));
        assert_eq!(
            client.poll(first),
            Some(Err(XsError::UnknownReqId(first.req_id().get())))
        );
        assert_eq!(client.outstanding(), 0);
    }

    #[test]
    fn unknown_request_ids_are_reported_not_fatal() {
        let mut client = Client::new();
        let ticket = client.read(TxId::NONE, "a").unwrap();
        client.receive(&reply(MsgType::Read, 999, b"x")).unwrap();
        assert_eq!(client.take_anomaly(), Some(XsError::UnknownReqId(999)));
        assert_eq!(client.take_anomaly(), None);
        assert_eq!(client.poll(ticket), None);
        client
            .receive(&reply(MsgType::Read, ticket.req_id().get(), b"x"))
            .unwrap();
        assert_eq!(client.poll(ticket), Some(Ok(b"x".to_vec())));
        // A duplicate reply is a stray too.
        client
            .receive(&reply(MsgType::Read, ticket.req_id().get(), b"x"))
            .unwrap();
        assert_eq!(
            client.take_anomaly(),
            Some(XsError::UnknownReqId(ticket.req_id().get()))
        );
        assert_eq!(client.stats().anomalies, 2);
    }

    #[test]
    fn mismatched_reply_type_fails_only_that_request() {
        let mut client = Client::new();
        let write = client.write(TxId::NONE, "a", b"1").unwrap();
        let read = client.read(TxId::NONE, "a").unwrap();
        let mut stream = reply(MsgType::Read, write.req_id().get(), b"1");
        stream.extend(reply(MsgType::Read, read.req_id().get(), b"1"));
        client.receive(&stream).unwrap();
        assert_eq!(client.poll(write), Some(Err(XsError::UnexpectedReply)));
        assert_eq!(client.poll(read), Some(Ok(b"1".to_vec())));
    }

    #[test]
    fn errors_and_malformed_payloads_fail_their_request() {
        let mut client = Client::new();
        let a = client.read(TxId::NONE, "a").unwrap();
        let b = client.mkdir(TxId::NONE, "b").unwrap();
        let c = client.transaction_start().unwrap();
        let mut stream = reply(MsgType::Error, a.req_id().get(), b"ENOENT\0");
        stream.extend(reply(MsgType::Mkdir, b.req_id().get(), b"OK"));
        stream.extend(reply(MsgType::TransactionStart, c.req_id().get(), b"x1\0"));
        client.receive(&stream).unwrap();
        assert_eq!(client.poll(a), Some(Err(XsError::NotFound)));
        assert_eq!(
            client.poll(b),
            Some(Err(XsError::Malformed(
                crate::xenstore::Malformation::MissingNul
            )))
        );
        assert_eq!(
            client.poll(c),
            Some(Err(XsError::Malformed(
                crate::xenstore::Malformation::BadNumber
            )))
        );
        assert_eq!(client.broken(), None);
    }

    #[test]
    fn a_bad_header_breaks_everything() {
        let mut client = Client::new();
        let a = client.read(TxId::NONE, "a").unwrap();
        let forgotten = client.read(TxId::NONE, "b").unwrap();
        client.forget(forgotten.req_id());
        let header = XsdSockmsg {
            type_: 2,
            req_id: a.req_id().get(),
            tx_id: 0,
            len: 4097,
        };
        assert_eq!(
            client.receive(&raw_header_to_bytes(&header)),
            Err(XsError::TooLong)
        );
        assert_eq!(client.broken(), Some(XsError::TooLong));
        assert_eq!(client.poll(a), Some(Err(XsError::Disconnected)));
        assert_eq!(client.outstanding(), 0);
        assert_eq!(
            client.read(TxId::NONE, "a").err(),
            Some(XsError::Disconnected)
        );
        assert_eq!(client.receive(b"more"), Err(XsError::Disconnected));
    }

    #[test]
    fn forgotten_requests_drop_their_reply() {
        let mut client = Client::new();
        let a = client.read(TxId::NONE, "a").unwrap();
        client.forget(a.req_id());
        assert_eq!(client.outstanding(), 1);
        client
            .receive(&reply(MsgType::Read, a.req_id().get(), b"late"))
            .unwrap();
        assert_eq!(client.take_anomaly(), None);
        assert_eq!(client.outstanding(), 0);
        assert_eq!(
            client.poll(a),
            Some(Err(XsError::UnknownReqId(a.req_id().get())))
        );
    }

    #[test]
    fn watch_events_are_queued_per_token() {
        let mut client = Client::new();
        let w1 = client.watch("/a", "one").unwrap();
        let w2 = client.watch("/b", "two").unwrap();
        let event = |path: &str, token: &str| {
            let mut payload = Vec::new();
            payload.extend_from_slice(path.as_bytes());
            payload.push(0);
            payload.extend_from_slice(token.as_bytes());
            payload.push(0);
            reply(MsgType::WatchEvent, 0, &payload)
        };
        let mut stream = event("/a", "one");
        stream.extend(reply(MsgType::Watch, w1.req_id().get(), b"OK\0"));
        stream.extend(event("/b", "two"));
        stream.extend(event("/a/x", "one"));
        stream.extend(event("/a/x", "one"));
        stream.extend(event("/zzz", "nobody"));
        stream.extend(reply(MsgType::Error, w2.req_id().get(), b"EACCES\0"));
        stream.extend(event("/b/late", "two"));
        client.receive(&stream).unwrap();
        assert_eq!(client.poll(w1), Some(Ok(())));
        assert_eq!(client.poll(w2), Some(Err(XsError::AccessDenied)));
        assert!(client.is_watching("one"));
        assert!(!client.is_watching("two"), "refused watch is unregistered");
        assert_eq!(client.tokens_with_events().collect::<Vec<_>>(), ["one"]);
        let paths: Vec<String> = core::iter::from_fn(|| client.poll_watch("one"))
            .map(|event| event.path)
            .collect();
        assert_eq!(paths, ["/a", "/a/x"], "duplicates merged");
        assert_eq!(client.poll_watch("two"), None);
        // "/b" was queued while "two" was registering and went with the
        // refused watch; "/zzz" and "/b/late" had no watch at all.
        assert_eq!(client.stats().stray_watch_events, 2);
    }

    #[test]
    fn watch_queues_are_bounded() {
        let mut client = Client::new();
        client.watch("/a", "t").unwrap();
        let mut stream = Vec::new();
        for index in 0..WATCH_QUEUE_LIMIT + 10 {
            let payload = alloc::format!("/a/{index}\0t\0");
            stream.extend(reply(MsgType::WatchEvent, 0, payload.as_bytes()));
        }
        client.receive(&stream).unwrap();
        assert_eq!(client.stats().watch_events_dropped, 10);
        assert_eq!(
            core::iter::from_fn(|| client.next_watch_event()).count(),
            WATCH_QUEUE_LIMIT
        );
    }

    #[test]
    fn malformed_watch_events_are_anomalies() {
        let mut client = Client::new();
        client.watch("/a", "t").unwrap();
        client
            .receive(&reply(MsgType::WatchEvent, 0, b"/a\0"))
            .unwrap();
        assert_eq!(
            client.take_anomaly(),
            Some(XsError::Malformed(
                crate::xenstore::Malformation::FieldCount
            ))
        );
        assert_eq!(client.poll_watch("t"), None);
    }

    #[test]
    fn unwatch_drops_the_queue_when_the_last_watch_goes() {
        let mut client = Client::new();
        client.watch("/a", "t").unwrap();
        client.watch("/b", "t").unwrap();
        client.unwatch("/a", "t").unwrap();
        assert!(client.is_watching("t"));
        client.unwatch("/b", "t").unwrap();
        assert!(!client.is_watching("t"));
        client.watch("/c", "u").unwrap();
        client.reset_watches().unwrap();
        assert!(!client.is_watching("u"));
    }

    #[test]
    fn bad_arguments_send_nothing() {
        let mut client = Client::new();
        assert_eq!(
            client.read(TxId::NONE, "a\0b").err(),
            Some(XsError::BadArgument)
        );
        assert_eq!(client.watch("/a", "t\0").err(), Some(XsError::BadArgument));
        assert_eq!(
            client.transaction_end(TxId::NONE, true).err(),
            Some(XsError::BadArgument)
        );
        let big = vec![b'v'; 4096];
        assert_eq!(
            client.write(TxId::NONE, "a", &big).err(),
            Some(XsError::RequestTooLong)
        );
        assert!(!client.is_watching("t\0"));
        assert!(client.outgoing().is_empty());
        assert_eq!(client.outstanding(), 0);
        assert_eq!(client.broken(), None);
    }

    #[test]
    fn outgoing_can_be_sent_in_pieces() {
        let mut client = Client::new();
        client.read(TxId::NONE, "abc").unwrap();
        let all = client.outgoing().to_vec();
        client.advance_outgoing(5);
        assert_eq!(client.outgoing(), &all[5..]);
        client.read(TxId::NONE, "d").unwrap();
        let rest = client.take_outgoing();
        assert_eq!(&rest[..all.len() - 5], &all[5..]);
        assert!(client.outgoing().is_empty());
    }

    #[test]
    fn retry_policy() {
        let policy = RetryPolicy { max_attempts: 3 };
        let again: Result<(), XsError> = Err(XsError::Again);
        assert!(policy.should_retry(1, &again));
        assert!(policy.should_retry(2, &again));
        assert!(!policy.should_retry(3, &again));
        assert!(!policy.should_retry(1, &Err::<(), _>(XsError::NotFound)));
        assert!(!policy.should_retry(1, &Ok(())));
        assert!(!RetryPolicy { max_attempts: 0 }.should_retry(1, &again));
        assert_eq!(RetryPolicy::default(), RetryPolicy::DEFAULT);
    }
}
