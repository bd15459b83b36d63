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

use drivers_pv::netfront::wire::{
    RxRequest, RxResponse, TxRequest, TxResponse, NETIF_RSP_ERROR, NETIF_RSP_OKAY,
    NETTXF_EXTRA_INFO, NETTXF_MORE_DATA,
};
use drivers_pv::shared_ring::{
    RingEntry, REQ_EVENT_OFFSET as REQ_EVENT, REQ_PROD_OFFSET as REQ_PROD,
    RSP_EVENT_OFFSET as RSP_EVENT, RSP_PROD_OFFSET as RSP_PROD, SRING_HEADER_SIZE as ENTRIES,
    XEN_PAGE_SIZE as PAGE,
};

/// Entries in each netif ring (a page of them).
const RING_SIZE: u32 = 256;
/// Frames waiting for an rx buffer before we drop (and count) more.
const RX_BACKLOG: usize = 256;
/// Smallest frame: an Ethernet header.
const ETH_HEADER: u16 = 14;

/// What is wrong with tx request `request`, given that neither
/// scatter-gather nor GSO was offered (empty if nothing).
pub fn tx_violations(request: &TxRequest) -> Vec<String> {
    let mut out = Vec::new();
    let id = request.id;
    if request.flags & NETTXF_MORE_DATA != 0 {
        out.push(format!("tx request {id}: more_data without feature-sg"));
    }
    if request.flags & NETTXF_EXTRA_INFO != 0 {
        out.push(format!("tx request {id}: extra_info without a GSO feature"));
    }
    if request.size < ETH_HEADER {
        out.push(format!(
            "tx request {id}: size {} is less than an Ethernet header",
            request.size
        ));
    }
    if usize::from(request.offset) + usize::from(request.size) > PAGE {
        out.push(format!(
            "tx request {id}: offset {} + size {} is past its page",
            request.offset, request.size
        ));
    }
    out
}

/// Entry `index` of type `E` of a ring (its slot, modulo the ring).
fn read_entry<E: RingEntry>(ring: &Mapping, index: u32) -> E {
    let mut bytes = [0u8; 16];
    let at = ENTRIES + (index % RING_SIZE) as usize * E::SIZE;
    ring.read_bytes(at, &mut bytes[..E::SIZE]);
    // Requests decode without checks (every field may hold anything).
    E::decode(&bytes[..E::SIZE]).unwrap_or_else(|_| unreachable!("requests always decode"))
}

/// Writes `entry` into slot `index` of a ring whose slots are
/// `slot_size` bytes (a response shares its request's slot).
fn write_entry<E: RingEntry>(ring: &Mapping, index: u32, slot_size: usize, entry: &E) {
    let mut bytes = [0u8; 16];
    entry.encode(&mut bytes[..E::SIZE]);
    ring.write_bytes(
        ENTRIES + (index % RING_SIZE) as usize * slot_size,
        &bytes[..E::SIZE],
    );
}

/// Requests waiting on `ring` past `back`, or the rule `req_prod` broke.
fn waiting(ring: &Mapping, back: &BackRing) -> Result<(u32, u32), String> {
    let req_prod = ring.read_word(REQ_PROD);
    std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
    check_req_prod_in(req_prod, back, RING_SIZE).map(|n| (req_prod, n))
}

/// Publishes the responses written since `old` and notifies the frontend
/// if it asked (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
fn publish(ring: &Mapping, back: &BackRing, old: u32, evtchn: &Evtchn, port: u32) {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    let new = back.rsp_prod_pvt;
    ring.write_word(RSP_PROD, new);
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    if needs_notify(old, new, ring.read_word(RSP_EVENT)) {
        let _ = evtchn.notify(port);
    }
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
    /// the responder.
    fn serve_tx(&mut self, queue: &mut Queue) {
        loop {
            let (req_prod, pending) = match waiting(&queue.tx, &queue.tx_back) {
                Ok(found) => found,
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
                let request: TxRequest = read_entry(&queue.tx, queue.tx_back.req_cons);
                queue.tx_back.req_cons = queue.tx_back.req_cons.wrapping_add(1);
                self.counts.tx_requests += 1;
                let status = self.transmit(queue, &request);
                let response = TxResponse {
                    id: request.id,
                    status,
                };
                write_entry(
                    &queue.tx,
                    queue.tx_back.rsp_prod_pvt,
                    TxRequest::SIZE,
                    &response,
                );
                queue.tx_back.rsp_prod_pvt = queue.tx_back.rsp_prod_pvt.wrapping_add(1);
            }
            publish(&queue.tx, &queue.tx_back, old, &queue.evtchn, queue.port);
        }
    }

    /// One tx request: checks it, reads its frame, queues the answer.
    fn transmit(&mut self, queue: &mut Queue, request: &TxRequest) -> i16 {
        let wrong = tx_violations(request);
        if !wrong.is_empty() {
            for text in wrong {
                self.violation(&text);
            }
            return NETIF_RSP_ERROR;
        }
        let page = match self.gnt.map(self.domid, &[request.gref], false) {
            Ok(page) => page,
            Err(e) => {
                self.violation(&format!("tx request {}: {e}", request.id));
                return NETIF_RSP_ERROR;
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
        NETIF_RSP_OKAY
    }

    /// Delivers waiting frames into the rx buffers the frontend posted.
    fn serve_rx(&mut self, queue: &mut Queue) {
        let posted = match waiting(&queue.rx, &queue.rx_back) {
            Ok((_, n)) => n,
            Err(text) => {
                self.violation(&format!("rx {text}"));
                self.ring_broken = true;
                return;
            }
        };
        // The ids of every posted buffer not yet answered: none twice.
        let mut ids = HashSet::new();
        for i in 0..posted {
            let request: RxRequest = read_entry(&queue.rx, queue.rx_back.req_cons.wrapping_add(i));
            if !ids.insert(request.id) {
                self.violation(&format!("rx request id {} posted twice", request.id));
                break;
            }
        }
        let old = queue.rx_back.rsp_prod_pvt;
        let mut used = 0;
        while used < posted {
            let Some(frame) = queue.backlog.pop_front() else {
                break;
            };
            let request: RxRequest = read_entry(&queue.rx, queue.rx_back.req_cons);
            queue.rx_back.req_cons = queue.rx_back.req_cons.wrapping_add(1);
            used += 1;
            let status = match self.gnt.map(self.domid, &[request.gref], true) {
                Ok(page) => {
                    page.write_bytes(0, &frame);
                    frame.len() as i16
                }
                Err(e) => {
                    self.violation(&format!("rx request {}: {e}", request.id));
                    NETIF_RSP_ERROR
                }
            };
            let response = RxResponse {
                id: request.id,
                offset: 0,
                flags: 0,
                status,
            };
            write_entry(
                &queue.rx,
                queue.rx_back.rsp_prod_pvt,
                RxRequest::SIZE,
                &response,
            );
            queue.rx_back.rsp_prod_pvt = queue.rx_back.rsp_prod_pvt.wrapping_add(1);
            self.counts.rx_responses += 1;
        }
        if used == 0 {
            return;
        }
        publish(&queue.rx, &queue.rx_back, old, &queue.evtchn, queue.port);
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
        TxRequest {
            gref: 77,
            offset,
            flags,
            id: 5,
            size,
        }
    }

    #[test]
    fn tx_requests_are_checked_against_what_was_offered() {
        assert!(tx_violations(&tx(100, 0, 1514)).is_empty());
        assert_eq!(tx_violations(&tx(3000, 0, 1514)).len(), 1);
        assert_eq!(tx_violations(&tx(0, NETTXF_MORE_DATA, 60)).len(), 1);
        assert_eq!(tx_violations(&tx(0, NETTXF_EXTRA_INFO, 60)).len(), 1);
        assert!(tx_violations(&tx(0, 0, 13))[0].contains("Ethernet header"));
        // Checksum flags are the frontend's to set.
        assert!(tx_violations(&tx(0, 1 | 2, 60)).is_empty());
    }
}
