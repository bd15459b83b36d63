//! The by-the-book netif backend: it wires `device/vif/0` like the
//! hostile one ([`crate::netback::wire`]: `feature-rx-copy`, no
//! scatter-gather, one queue), maps the queue's tx and rx rings when the
//! frontend connects, and serves a wire with one other host on it,
//! [`crate::responder`] (ARP, ICMP echo, 0x88b5 reflection), while it
//! checks the frontend's side of the protocol and reports each breach as
//! a `backend: violation: …` line:
//!
//! - xenbus: state order, `request-rx-copy` = 1 (we copy), one queue
//!   (no `multi-queue-num-queues` above 1), one event channel (no split
//!   channels: not offered);
//! - rings: `req_prod` never more than a ring ahead of our responses,
//!   on tx and on rx;
//! - tx requests: no `more_data` or `extra_info` (neither scatter-gather
//!   nor GSO was offered), a size of at least an Ethernet header and
//!   `offset + size` within the page, a grant we can map read-only;
//! - rx requests: a grant we can map writable, and no id posted twice
//!   while the first is still ours.
//!
//! Every tx request gets its response (`NETIF_RSP_OKAY`, or
//! `NETIF_RSP_ERROR` for one that breaks a rule), notifications follow
//! `rsp_event` (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`), and `req_event`
//! is re-armed after each batch (`RING_FINAL_CHECK_FOR_REQUESTS`). The
//! summary: `backend: by-the-book netif: T tx requests, R rx responses,
//! A arp, I icmp, F reflected, N ignored, V violations`.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::blkif::{check_req_prod_in, needs_notify, BackRing, SharedPage};
use crate::checks::{self, state};
use crate::evtchn::Evtchn;
use crate::gntdev::{Gntdev, Mapping};
use crate::responder::{self, Answer};
use crate::setup::Paths;
use crate::xs::Xenstore;

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
const ENTRIES: usize = 64;
const TX_ENTRY: usize = 12;
const RX_ENTRY: usize = 8;
const PAGE: usize = 4096;
/// Entries in each netif ring (a page of them).
const RING_SIZE: u32 = 256;

/// `NETTXF_more_data`, `NETTXF_extra_info`.
const NETTXF_MORE_DATA: u16 = 1 << 2;
const NETTXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETIF_RSP_OKAY`, `NETIF_RSP_ERROR`.
const RSP_OKAY: i16 = 0;
const RSP_ERROR: i16 = -1;
/// Frames waiting for an rx buffer before we drop (and count) more.
const RX_BACKLOG: usize = 256;
/// Smallest frame: an Ethernet header.
const ETH_HEADER: u16 = 14;

/// One tx request (`netif_tx_request_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRequest {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    pub size: u16,
}

impl TxRequest {
    /// From its 12 bytes.
    pub fn decode(b: &[u8; TX_ENTRY]) -> TxRequest {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        TxRequest {
            gref: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            offset: u16_at(4),
            flags: u16_at(6),
            id: u16_at(8),
            size: u16_at(10),
        }
    }

    /// What is wrong with it, given that neither scatter-gather nor GSO
    /// was offered (empty if nothing).
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.flags & NETTXF_MORE_DATA != 0 {
            out.push(format!(
                "tx request {}: more_data without feature-sg",
                self.id
            ));
        }
        if self.flags & NETTXF_EXTRA_INFO != 0 {
            out.push(format!(
                "tx request {}: extra_info without a GSO feature",
                self.id
            ));
        }
        if self.size < ETH_HEADER {
            out.push(format!(
                "tx request {}: size {} is less than an Ethernet header",
                self.id, self.size
            ));
        }
        if usize::from(self.offset) + usize::from(self.size) > PAGE {
            out.push(format!(
                "tx request {}: offset {} + size {} is past its page",
                self.id, self.offset, self.size
            ));
        }
        out
    }
}

/// One rx request (`netif_rx_request_t`): id and grant.
pub fn decode_rx(b: &[u8; RX_ENTRY]) -> (u16, u32) {
    (
        u16::from_le_bytes([b[0], b[1]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    )
}

/// An rx response (`netif_rx_response_t`) for a frame of `len` bytes at
/// offset 0, no flags.
pub fn rx_response(id: u16, len: u16) -> [u8; RX_ENTRY] {
    crate::netback::rx_response(id, 0, 0, len as i16)
}

/// What the backend counted.
#[derive(Default, Debug)]
struct Counts {
    tx_requests: u64,
    rx_responses: u64,
    arp: u64,
    icmp: u64,
    reflected: u64,
    ignored: u64,
    dropped: u64,
    violations: u64,
}

/// The connected queue: its rings, channel, indices, frames waiting.
struct Queue {
    tx: Mapping,
    rx: Mapping,
    evtchn: Evtchn,
    port: u32,
    tx_back: BackRing,
    rx_back: BackRing,
    backlog: VecDeque<Vec<u8>>,
}

impl Drop for Queue {
    fn drop(&mut self) {
        let _ = self.evtchn.unbind(self.port);
    }
}

struct Backend {
    xs: Xenstore,
    gnt: Gntdev,
    paths: Paths,
    domid: u32,
    queue: Option<Queue>,
    counts: Counts,
    /// A ring index broke the protocol: the queue is served no more (a
    /// real backend would disconnect the frontend).
    ring_broken: bool,
}

impl Backend {
    fn violation(&mut self, text: &str) {
        println!("backend: violation: {text}");
        self.counts.violations += 1;
    }

    fn front(&mut self, key: &str) -> Option<String> {
        self.xs.read_opt(&format!("{}/{key}", self.paths.front))
    }

    fn set_state(&mut self, value: u32) {
        let path = format!("{}/state", self.paths.back);
        let _ = self.xs.write(&path, &value.to_string());
    }

    /// Reads the frontend's keys, maps its rings, binds its channel.
    fn connect(&mut self) -> Result<Queue, String> {
        if let Some(n) = self.front("multi-queue-num-queues") {
            if n.trim() != "1" {
                self.violation(&format!("xenbus: multi-queue-num-queues {n:?}, 1 offered"));
            }
        }
        if self.front("event-channel-tx").is_some() {
            self.violation("xenbus: split event channels, not offered");
        }
        match self.front("request-rx-copy").as_deref().map(str::trim) {
            Some("1") => {}
            other => self.violation(&format!(
                "xenbus: request-rx-copy {other:?} (only copying is offered)"
            )),
        }
        let mut number = |key: &str| -> Result<u32, String> {
            let raw = self.front(key).ok_or(format!("no {key}"))?;
            raw.trim().parse().map_err(|_| format!("{key} {raw:?}"))
        };
        let (tx_ref, rx_ref, channel) = (
            number("tx-ring-ref")?,
            number("rx-ring-ref")?,
            number("event-channel")?,
        );
        let tx = self.gnt.map(self.domid, &[tx_ref], true)?;
        let rx = self.gnt.map(self.domid, &[rx_ref], true)?;
        let evtchn = Evtchn::open()?;
        let port = evtchn.bind_interdomain(self.domid, channel)?;
        let start = |ring: &Mapping| {
            let at = ring.read_word(RSP_PROD);
            BackRing {
                req_cons: at,
                rsp_prod_pvt: at,
            }
        };
        let (tx_back, rx_back) = (start(&tx), start(&rx));
        println!("backend: connected: tx-ring-ref {tx_ref}, rx-ring-ref {rx_ref}, event channel {channel} (ours {port})");
        Ok(Queue {
            tx,
            rx,
            evtchn,
            port,
            tx_back,
            rx_back,
            backlog: VecDeque::new(),
        })
    }

    /// Consumes the tx ring: answers each request, hands each frame to
    /// the responder. Returns whether the rx side has frames to deliver.
    fn serve_tx(&mut self, queue: &mut Queue) {
        loop {
            let req_prod = queue.tx.read_word(REQ_PROD);
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            let pending = match check_req_prod_in(req_prod, &queue.tx_back, RING_SIZE) {
                Ok(n) => n,
                Err(text) => {
                    self.violation(&format!("tx {text}"));
                    self.ring_broken = true;
                    return;
                }
            };
            if pending == 0 {
                // Re-arm, then look once more (RING_FINAL_CHECK_FOR_REQUESTS).
                queue
                    .tx
                    .write_word(REQ_EVENT, queue.tx_back.req_cons.wrapping_add(1));
                std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                if queue.tx.read_word(REQ_PROD) == req_prod {
                    return;
                }
                continue;
            }
            let old = queue.tx_back.rsp_prod_pvt;
            for _ in 0..pending {
                let slot = (queue.tx_back.req_cons % RING_SIZE) as usize;
                let mut bytes = [0u8; TX_ENTRY];
                queue.tx.read_bytes(ENTRIES + slot * TX_ENTRY, &mut bytes);
                queue.tx_back.req_cons = queue.tx_back.req_cons.wrapping_add(1);
                self.counts.tx_requests += 1;
                let request = TxRequest::decode(&bytes);
                let status = self.transmit(queue, &request);
                let mut response = [0u8; TX_ENTRY];
                response[..4].copy_from_slice(&crate::netback::tx_response(request.id, status));
                let at = (queue.tx_back.rsp_prod_pvt % RING_SIZE) as usize;
                queue.tx.write_bytes(ENTRIES + at * TX_ENTRY, &response);
                queue.tx_back.rsp_prod_pvt = queue.tx_back.rsp_prod_pvt.wrapping_add(1);
            }
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            let new = queue.tx_back.rsp_prod_pvt;
            queue.tx.write_word(RSP_PROD, new);
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            if needs_notify(old, new, queue.tx.read_word(RSP_EVENT)) {
                let _ = queue.evtchn.notify(queue.port);
            }
        }
    }

    /// One tx request: checks it, reads its frame, queues the answer.
    fn transmit(&mut self, queue: &mut Queue, request: &TxRequest) -> i16 {
        let wrong = request.violations();
        if !wrong.is_empty() {
            for text in wrong {
                self.violation(&text);
            }
            return RSP_ERROR;
        }
        let page = match self.gnt.map(self.domid, &[request.gref], false) {
            Ok(page) => page,
            Err(e) => {
                self.violation(&format!("tx request {}: {e}", request.id));
                return RSP_ERROR;
            }
        };
        let mut frame = vec![0u8; usize::from(request.size)];
        page.read_bytes(usize::from(request.offset), &mut frame);
        drop(page);
        let answer = responder::answer(&frame);
        match &answer {
            Answer::Arp(_) => self.counts.arp += 1,
            Answer::Icmp(_) => self.counts.icmp += 1,
            Answer::Reflected(_) => self.counts.reflected += 1,
            Answer::Ignored => self.counts.ignored += 1,
        }
        if let Some(reply) = answer.frame() {
            if queue.backlog.len() < RX_BACKLOG {
                queue.backlog.push_back(reply);
            } else {
                self.counts.dropped += 1;
            }
        }
        RSP_OKAY
    }

    /// Delivers waiting frames into the rx buffers the frontend posted.
    fn serve_rx(&mut self, queue: &mut Queue) {
        let req_prod = queue.rx.read_word(REQ_PROD);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let posted = match check_req_prod_in(req_prod, &queue.rx_back, RING_SIZE) {
            Ok(n) => n,
            Err(text) => {
                self.violation(&format!("rx {text}"));
                self.ring_broken = true;
                return;
            }
        };
        // The ids of every posted buffer not yet answered: none twice.
        let mut ids = HashSet::new();
        for i in 0..posted {
            let slot = (queue.rx_back.req_cons.wrapping_add(i) % RING_SIZE) as usize;
            let mut bytes = [0u8; RX_ENTRY];
            queue.rx.read_bytes(ENTRIES + slot * RX_ENTRY, &mut bytes);
            let (id, _) = decode_rx(&bytes);
            if !ids.insert(id) {
                self.violation(&format!("rx request id {id} posted twice"));
                break;
            }
        }
        let old = queue.rx_back.rsp_prod_pvt;
        let mut used = 0;
        while used < posted {
            let Some(frame) = queue.backlog.pop_front() else {
                break;
            };
            let slot = (queue.rx_back.req_cons % RING_SIZE) as usize;
            let mut bytes = [0u8; RX_ENTRY];
            queue.rx.read_bytes(ENTRIES + slot * RX_ENTRY, &mut bytes);
            let (id, gref) = decode_rx(&bytes);
            queue.rx_back.req_cons = queue.rx_back.req_cons.wrapping_add(1);
            used += 1;
            let response = match self.gnt.map(self.domid, &[gref], true) {
                Ok(page) => {
                    page.write_bytes(0, &frame);
                    rx_response(id, frame.len() as u16)
                }
                Err(e) => {
                    self.violation(&format!("rx request {id}: {e}"));
                    crate::netback::rx_response(id, 0, 0, RSP_ERROR)
                }
            };
            let at = (queue.rx_back.rsp_prod_pvt % RING_SIZE) as usize;
            queue.rx.write_bytes(ENTRIES + at * RX_ENTRY, &response);
            queue.rx_back.rsp_prod_pvt = queue.rx_back.rsp_prod_pvt.wrapping_add(1);
            self.counts.rx_responses += 1;
        }
        if used == 0 {
            return;
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let new = queue.rx_back.rsp_prod_pvt;
        queue.rx.write_word(RSP_PROD, new);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if needs_notify(old, new, queue.rx.read_word(RSP_EVENT)) {
            let _ = queue.evtchn.notify(queue.port);
        }
        // Ask to hear of the next buffer posted while frames wait.
        queue
            .rx
            .write_word(REQ_EVENT, queue.rx_back.req_cons.wrapping_add(1));
    }
}

/// Runs one vif to its end (the frontend closes it, its directory goes,
/// or `timeout` passes).
pub fn run(domid: u32, timeout: Duration) -> Result<(), String> {
    let mut backend = Backend {
        xs: Xenstore::open()?,
        gnt: Gntdev::open()?,
        paths: Paths::new("vif", domid, 0),
        domid,
        queue: None,
        counts: Counts::default(),
        ring_broken: false,
    };
    println!(
        "backend: by-the-book netif for dom {domid}: host {} at {}",
        responder::OUR_IP.map(|b| b.to_string()).join("."),
        responder::OUR_MAC.map(|b| format!("{b:02x}")).join(":")
    );
    let paths = backend.paths.clone();
    crate::netback::wire(&mut backend.xs, &paths, domid, "1500", 1)?;
    println!("backend: dom {domid} unpaused, InitWait");
    let start = Instant::now();
    let mut front_state = state::INITIALISING;
    let mut last_look = Instant::now() - Duration::from_secs(1);
    loop {
        if start.elapsed() > timeout {
            println!("backend: gave up after {} s", timeout.as_secs());
            break;
        }
        let mut fds = vec![libc::pollfd {
            fd: backend.xs.fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(queue) = &backend.queue {
            fds.push(libc::pollfd {
                fd: queue.evtchn.fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `fds` holds `fds.len()` initialised pollfds and lives
        // for the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        if ready < 0 {
            return Err(format!("poll: {}", std::io::Error::last_os_error()));
        }
        if fds[0].revents & libc::POLLIN != 0 {
            backend.xs.take_ready_events().map_err(|e| e.to_string())?;
        }
        let mut news = false;
        while let Some((_, token)) = backend.xs.next_event() {
            news |= token == "front";
        }
        if news || last_look.elapsed() > Duration::from_secs(1) {
            last_look = Instant::now();
            let Some(raw) = backend.front("state") else {
                println!("backend: the frontend's directory is gone");
                break;
            };
            match raw.trim().parse::<u32>() {
                Err(_) => backend.violation(&format!("xenbus: frontend state {raw:?}")),
                Ok(new) if new != front_state => {
                    if let Some(text) = checks::check_front_transition(front_state, new) {
                        backend.violation(&text);
                    }
                    front_state = new;
                    match new {
                        state::INITIALISED | state::CONNECTED if backend.queue.is_none() => {
                            match backend.connect() {
                                Ok(queue) => {
                                    backend.queue = Some(queue);
                                    backend.set_state(state::CONNECTED);
                                }
                                Err(e) => {
                                    backend.violation(&format!("xenbus: cannot connect: {e}"));
                                    backend.set_state(state::CLOSING);
                                }
                            }
                        }
                        state::CLOSING => {
                            backend.queue = None;
                            backend.set_state(state::CLOSING);
                        }
                        state::CLOSED => {
                            backend.queue = None;
                            backend.set_state(state::CLOSED);
                            break;
                        }
                        _ => {}
                    }
                }
                Ok(_) => {}
            }
        }
        if let Some(mut queue) = backend.queue.take() {
            for port in queue.evtchn.pending() {
                queue.evtchn.unmask(port);
            }
            if !backend.ring_broken {
                backend.serve_tx(&mut queue);
                backend.serve_rx(&mut queue);
            }
            backend.queue = Some(queue);
        }
    }
    backend.queue = None;
    let _ = backend.xs.rm(&paths.back);
    let c = &backend.counts;
    println!(
        "backend: by-the-book netif: {} tx requests, {} rx responses, {} arp, {} icmp, {} reflected, {} ignored, {} dropped, {} violations",
        c.tx_requests, c.rx_responses, c.arp, c.icmp, c.reflected, c.ignored, c.dropped, c.violations
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(offset: u16, flags: u16, size: u16) -> TxRequest {
        let mut b = [0u8; TX_ENTRY];
        b[0..4].copy_from_slice(&77u32.to_le_bytes());
        b[4..6].copy_from_slice(&offset.to_le_bytes());
        b[6..8].copy_from_slice(&flags.to_le_bytes());
        b[8..10].copy_from_slice(&5u16.to_le_bytes());
        b[10..12].copy_from_slice(&size.to_le_bytes());
        TxRequest::decode(&b)
    }

    #[test]
    fn tx_requests_decode_and_are_checked() {
        let ok = tx(100, 0, 1514);
        assert_eq!(
            (ok.gref, ok.offset, ok.flags, ok.id, ok.size),
            (77, 100, 0, 5, 1514)
        );
        assert!(ok.violations().is_empty());
        assert_eq!(tx(3000, 0, 1514).violations().len(), 1);
        assert_eq!(tx(0, NETTXF_MORE_DATA, 60).violations().len(), 1);
        assert_eq!(tx(0, NETTXF_EXTRA_INFO, 60).violations().len(), 1);
        assert!(tx(0, 0, 13).violations()[0].contains("Ethernet header"));
        // Checksum flags are the frontend's to set.
        assert!(tx(0, 1 | 2, 60).violations().is_empty());
    }

    #[test]
    fn rx_requests_and_responses() {
        let mut b = [0u8; RX_ENTRY];
        b[0..2].copy_from_slice(&9u16.to_le_bytes());
        b[4..8].copy_from_slice(&1234u32.to_le_bytes());
        assert_eq!(decode_rx(&b), (9, 1234));
        assert_eq!(rx_response(9, 60), [9, 0, 0, 0, 0, 0, 60, 0]);
    }
}
