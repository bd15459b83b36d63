//! The xenstore client as the guest runs it: requests go out and replies
//! and watch events come in through the shared ring page
//! (`RingTransport`), with xenstored played by the fuzzer.
//!
//! The fuzzer's xenstored may answer properly framed (a reply of any
//! type and payload to a request it picked, or a watch event), send raw
//! bytes, take requests, or scribble over the ring's indices. The guest
//! side issues requests, pumps bytes both ways, polls tickets and watch
//! queues, forgets requests, and resumes. What must hold: nothing
//! panics; the client never has more requests outstanding than it
//! issued; a ring with impossible indices is refused, not read.
#![no_main]

use arbitrary::Arbitrary;
use drivers_pv::xenstore::wire::{raw_header_to_bytes, MsgType};
use drivers_pv::xenstore::{
    Access, Client, Permissions, ReqId, RingTransport, Ticket, TxId, XenstorePage,
};
use libfuzzer_sys::fuzz_target;
use paravane_fuzz::{pick, PATHS, TOKENS};
use pv_arch::abi::xenstore::{XenstoreDomainInterface, XsdSockmsg, XENSTORE_RING_SIZE};

const RING: usize = XENSTORE_RING_SIZE;

/// The shared `xenstore_domain_interface` page (our ABI mirror of it),
/// both ends' indices and rings in plain memory.
struct Page(XenstoreDomainInterface);

impl XenstorePage for Page {
    fn req_cons(&self) -> u32 {
        self.0.req_cons
    }
    fn req_prod(&self) -> u32 {
        self.0.req_prod
    }
    fn set_req_prod(&mut self, value: u32) {
        self.0.req_prod = value;
    }
    fn rsp_cons(&self) -> u32 {
        self.0.rsp_cons
    }
    fn rsp_prod(&self) -> u32 {
        self.0.rsp_prod
    }
    fn set_rsp_cons(&mut self, value: u32) {
        self.0.rsp_cons = value;
    }
    fn write_req(&mut self, offset: usize, bytes: &[u8]) {
        self.0.req[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
    fn read_rsp(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0.rsp[offset..offset + buf.len()]);
    }
    fn notify(&mut self) {}
}

impl Page {
    /// xenstored writing `bytes` into the response ring honestly (as far
    /// as there is room).
    fn respond(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if self.0.rsp_prod.wrapping_sub(self.0.rsp_cons) as usize >= RING {
                break;
            }
            self.0.rsp[self.0.rsp_prod as usize % RING] = byte;
            self.0.rsp_prod = self.0.rsp_prod.wrapping_add(1);
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    // The guest.
    Read(u8),
    Write(u8, Vec<u8>),
    Mkdir(u8),
    Rm(u8),
    Directory(u8),
    GetPerms(u8),
    SetPerms(u8, u16, u8),
    Watch(u8, u8),
    Unwatch(u8, u8),
    ResetWatches,
    TransactionStart,
    TransactionEnd(u32, bool),
    GetDomainPath(u16),
    Pump,
    PollTickets,
    PollWatch(u8),
    NextWatchEvent,
    Forget(u8),
    TakeAnomaly,
    Resume,
    // xenstored.
    Reply {
        which: u8,
        msg_type: u8,
        tx_id: u32,
        payload: Vec<u8>,
    },
    Event {
        path: Vec<u8>,
        token: u8,
        raw_token: Option<Vec<u8>>,
    },
    Raw(Vec<u8>),
    TakeRequests(u16),
    Indices {
        req_cons: u32,
        rsp_prod: u32,
    },
}

/// A request's ticket, of whatever reply type it expects.
#[derive(Debug)]
enum AnyTicket {
    Bytes(Ticket<Vec<u8>>),
    Unit(Ticket<()>),
    Names(Ticket<Vec<String>>),
    Perms(Ticket<Permissions>),
    Tx(Ticket<TxId>),
    Path(Ticket<String>),
}

impl AnyTicket {
    fn req_id(&self) -> ReqId {
        match self {
            AnyTicket::Bytes(t) => t.req_id(),
            AnyTicket::Unit(t) => t.req_id(),
            AnyTicket::Names(t) => t.req_id(),
            AnyTicket::Perms(t) => t.req_id(),
            AnyTicket::Tx(t) => t.req_id(),
            AnyTicket::Path(t) => t.req_id(),
        }
    }

    /// Polls; true once answered (the ticket is spent).
    fn poll(&self, client: &mut Client) -> bool {
        match *self {
            AnyTicket::Bytes(t) => client.poll(t).is_some(),
            AnyTicket::Unit(t) => client.poll(t).is_some(),
            AnyTicket::Names(t) => client.poll(t).is_some(),
            AnyTicket::Perms(t) => client.poll(t).is_some(),
            AnyTicket::Tx(t) => client.poll(t).is_some(),
            AnyTicket::Path(t) => client.poll(t).is_some(),
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut client = Client::new();
    let mut ring = RingTransport::new(Page(XenstoreDomainInterface::zeroed()));
    let mut tickets: Vec<AnyTicket> = Vec::new();
    let mut issued = 0usize;
    for op in ops.into_iter().take(256) {
        let path = |i| pick(&PATHS, i);
        let ticket = match op {
            Op::Read(p) => client.read(TxId::NONE, path(p)).map(AnyTicket::Bytes),
            Op::Write(p, value) => client
                .write(TxId::NONE, path(p), &value)
                .map(AnyTicket::Unit),
            Op::Mkdir(p) => client.mkdir(TxId::NONE, path(p)).map(AnyTicket::Unit),
            Op::Rm(p) => client.rm(TxId::NONE, path(p)).map(AnyTicket::Unit),
            Op::Directory(p) => client.directory(TxId::NONE, path(p)).map(AnyTicket::Names),
            Op::GetPerms(p) => client.get_perms(TxId::NONE, path(p)).map(AnyTicket::Perms),
            Op::SetPerms(p, owner, others) => {
                let others = pick(
                    &[Access::None, Access::Read, Access::Write, Access::Both],
                    others,
                );
                client
                    .set_perms(TxId::NONE, path(p), &Permissions::new(owner, others))
                    .map(AnyTicket::Unit)
            }
            Op::Watch(p, t) => client.watch(path(p), pick(&TOKENS, t)).map(AnyTicket::Unit),
            Op::Unwatch(p, t) => client
                .unwatch(path(p), pick(&TOKENS, t))
                .map(AnyTicket::Unit),
            Op::ResetWatches => client.reset_watches().map(AnyTicket::Unit),
            Op::TransactionStart => client.transaction_start().map(AnyTicket::Tx),
            Op::TransactionEnd(tx, commit) => client
                .transaction_end(TxId(tx), commit)
                .map(AnyTicket::Unit),
            Op::GetDomainPath(domid) => client.get_domain_path(domid).map(AnyTicket::Path),
            Op::Pump => {
                pump(&mut client, &mut ring);
                continue;
            }
            Op::PollTickets => {
                tickets.retain(|ticket| !ticket.poll(&mut client));
                continue;
            }
            Op::PollWatch(t) => {
                let _ = client.poll_watch(pick(&TOKENS, t));
                continue;
            }
            Op::NextWatchEvent => {
                let _ = client.next_watch_event();
                let _ = client.tokens_with_events().count();
                continue;
            }
            Op::Forget(i) => {
                if !tickets.is_empty() {
                    let ticket = tickets.remove(usize::from(i) % tickets.len());
                    client.forget(ticket.req_id());
                }
                continue;
            }
            Op::TakeAnomaly => {
                let _ = client.take_anomaly();
                let _ = client.stats();
                continue;
            }
            Op::Resume => {
                ring.resync_after_resume();
                client.resumed();
                continue;
            }
            Op::Reply {
                which,
                msg_type,
                tx_id,
                payload,
            } => {
                // Answer one of ours (or, with none out, any id).
                let req_id = match tickets.len() {
                    0 => u32::from(which),
                    n => tickets[usize::from(which) % n].req_id().get(),
                };
                let type_ = match MsgType::ALL.get(usize::from(msg_type)) {
                    Some(t) => t.to_wire(),
                    None => u32::from(msg_type),
                };
                send(&mut ring, type_, req_id, tx_id, &payload);
                continue;
            }
            Op::Event {
                path,
                token,
                raw_token,
            } => {
                let mut payload = path;
                payload.push(0);
                match raw_token {
                    Some(raw) => payload.extend_from_slice(&raw),
                    None => payload.extend_from_slice(pick(&TOKENS, token).as_bytes()),
                }
                payload.push(0);
                send(&mut ring, MsgType::WatchEvent.to_wire(), 0, 0, &payload);
                continue;
            }
            Op::Raw(bytes) => {
                ring.page().respond(&bytes);
                continue;
            }
            Op::TakeRequests(count) => {
                let page = ring.page();
                let ready = page.0.req_prod.wrapping_sub(page.0.req_cons);
                page.0.req_cons = page.0.req_cons.wrapping_add(ready.min(u32::from(count)));
                continue;
            }
            Op::Indices { req_cons, rsp_prod } => {
                let page = ring.page();
                page.0.req_cons = req_cons;
                page.0.rsp_prod = rsp_prod;
                continue;
            }
        };
        if let Ok(ticket) = ticket {
            issued += 1;
            tickets.push(ticket);
        }
        assert!(client.outstanding() <= issued);
    }
    pump(&mut client, &mut ring);
    tickets.retain(|ticket| !ticket.poll(&mut client));
    while client.next_watch_event().is_some() {}
});

/// xenstored sends one framed message (its length field honest).
fn send(ring: &mut RingTransport<Page>, type_: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
    let header = XsdSockmsg {
        type_,
        req_id,
        tx_id,
        len: payload.len() as u32,
    };
    ring.page().respond(&raw_header_to_bytes(&header));
    ring.page().respond(payload);
}

/// Moves bytes both ways as the guest's pump task does.
fn pump(client: &mut Client, ring: &mut RingTransport<Page>) {
    match ring.write_some(client.outgoing()) {
        Ok(sent) => client.advance_outgoing(sent),
        Err(error) => client.connection_lost(error),
    }
    let mut buf = [0u8; RING];
    loop {
        match ring.read_some(&mut buf) {
            Ok(0) => break,
            Ok(read) => {
                if client.receive(&buf[..read]).is_err() {
                    break;
                }
            }
            Err(error) => {
                assert!(ring.is_corrupt());
                client.connection_lost(error);
                break;
            }
        }
    }
}
