//! The blkif backend: wires the device in xenstore, unpauses the guest,
//! serves a RAM disk over the guest's ring, checks the frontend's side
//! of the protocol (by the book) or runs one scripted attack (hostile).
//!
//! Every line it prints starts `backend: `; each violation of the
//! protocol by the frontend is one `backend: violation: …` line, and the
//! run ends with a summary (`backend: by-the-book blkif: N requests, V
//! violations`, or `backend: hostile blkif ATTACK: fired, …`) and the
//! disk check (`backend: disk check ok: W sectors written`).

use std::collections::HashSet;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use crate::attack::{Attack, TRIGGER_SECTOR};
use crate::blkif::{self, BackRing, Request, Response, Segment, SharedPage};
use crate::checks::{self, state, Offer};
use crate::disk;
use crate::evtchn::Evtchn;
use crate::gntdev::{Gntdev, Mapping, PAGE};
use crate::setup::{self, Paths};
use crate::xs::Xenstore;

/// What to run.
pub struct Options {
    /// The guest (created paused).
    pub domid: u32,
    /// The device id (`virtual-device`; 51712 is `xvda`).
    pub devid: u32,
    /// `None`: by the book; else the attack.
    pub attack: Option<Attack>,
    /// Give up after this long.
    pub timeout: Duration,
    /// How long `blk-grant-kept-after-close` keeps its mappings after
    /// the frontend closed.
    pub hold: Duration,
}

/// Segments offered per indirect request when indirect is offered.
const INDIRECT_OFFERED: u32 = 32;

struct Backend {
    xs: Xenstore,
    gnt: Gntdev,
    ev: Evtchn,
    paths: Paths,
    domid: u32,
    attack: Option<Attack>,
    fired: bool,
    disk: Vec<u8>,
    offer: Offer,
    ring: Option<Mapping>,
    port: Option<u32>,
    back: BackRing,
    published: u32,
    req_event: u32,
    owed_since: Option<u32>,
    outstanding: HashSet<u64>,
    requests: u64,
    violations: u64,
    front_state: u32,
    kept: Vec<Mapping>,
    rewrite: Option<(Instant, u32, Response)>,
    stopped: bool,
    closed_at: Option<Instant>,
    done: bool,
}

/// Runs one device to its end.
pub fn run(options: &Options) -> Result<(), String> {
    let mut backend = Backend {
        xs: Xenstore::open()?,
        gnt: Gntdev::open()?,
        ev: Evtchn::open()?,
        paths: Paths::new("vbd", options.domid, options.devid),
        domid: options.domid,
        attack: options.attack,
        fired: false,
        disk: disk::fresh(),
        offer: Offer {
            sectors: disk::SECTORS,
            flush: true,
            barrier: false,
            indirect_segments: 0,
        },
        ring: None,
        port: None,
        back: BackRing::default(),
        published: 0,
        req_event: 1,
        owed_since: None,
        outstanding: HashSet::new(),
        requests: 0,
        violations: 0,
        front_state: state::INITIALISING,
        kept: Vec::new(),
        rewrite: None,
        stopped: false,
        closed_at: None,
        done: false,
    };
    if options.attack == Some(Attack::MaxSegmentsAbsurd) {
        backend.offer.indirect_segments = INDIRECT_OFFERED;
    }
    match options.attack {
        None => println!("backend: by-the-book blkif for dom {}", options.domid),
        Some(attack) => println!(
            "backend: hostile blkif {} for dom {}: {}",
            attack.name(),
            options.domid,
            attack.describe()
        ),
    }
    backend.setup(options.devid)?;
    let unpause = std::process::Command::new("xl")
        .args(["unpause", &options.domid.to_string()])
        .status()
        .map_err(|e| format!("cannot run xl unpause: {e}"))?;
    if !unpause.success() {
        return Err(format!("xl unpause {} failed ({unpause})", options.domid));
    }
    println!("backend: dom {} unpaused", options.domid);
    let start = Instant::now();
    let mut last_look = Instant::now();
    while !backend.done {
        if start.elapsed() > options.timeout {
            println!("backend: gave up after {} s", options.timeout.as_secs());
            break;
        }
        let mut fds = [
            libc::pollfd {
                fd: backend.xs.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: backend.ev.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is an array of two initialised pollfds that
        // lives for the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, 200) };
        if ready < 0 {
            return Err(format!("poll: {}", std::io::Error::last_os_error()));
        }
        if fds[0].revents & libc::POLLIN != 0 {
            backend.xs.take_ready_events().map_err(|e| e.to_string())?;
        }
        let mut front_news = false;
        while let Some((_path, token)) = backend.xs.next_event() {
            front_news |= token == "front";
        }
        if front_news || last_look.elapsed() > Duration::from_secs(1) {
            last_look = Instant::now();
            backend.front_changed(options);
        }
        let ports = backend.ev.pending();
        for &port in &ports {
            backend.ev.unmask(port);
        }
        let event = !ports.is_empty();
        backend.serve(event);
        backend.timers(options);
    }
    backend.finish();
    Ok(())
}

impl Backend {
    fn violation(&mut self, text: &str) {
        println!("backend: violation: {text}");
        self.violations += 1;
    }

    fn set_state(&mut self, value: u32) {
        let path = format!("{}/state", self.paths.back);
        if let Err(e) = self.xs.write(&path, &value.to_string()) {
            println!("backend: writing state {value}: {e}");
        }
    }

    fn write_back(&mut self, key: &str, value: &str) -> Result<(), String> {
        let path = format!("{}/{key}", self.paths.back);
        self.xs
            .write(&path, value)
            .map_err(|e| format!("writing {path}: {e}"))
    }

    /// Writes both directories in one transaction, then the offer, then
    /// goes `InitWait`.
    fn setup(&mut self, devid: u32) -> Result<(), String> {
        let extra = [
            ("virtual-device", devid.to_string()),
            ("device-type", "disk".to_string()),
        ];
        let nodes = setup::device_nodes(&self.paths, self.domid, &extra);
        for attempt in 0.. {
            let tx = self.xs.transaction_start().map_err(|e| e.to_string())?;
            for (path, value, perms) in &nodes {
                let written = if value.is_empty() {
                    self.xs.mkdir_tx(tx, path)
                } else {
                    self.xs.write_tx(tx, path, value)
                };
                written
                    .and_then(|()| self.xs.set_perms_tx(tx, path, perms))
                    .map_err(|e| format!("{path}: {e}"))?;
            }
            match self.xs.transaction_end(tx, true) {
                Ok(()) => break,
                Err(e) if e.0 == "EAGAIN" && attempt < 5 => continue,
                Err(e) => return Err(format!("committing the device nodes: {e}")),
            }
        }
        self.xs
            .watch(&format!("{}/state", self.paths.front), "front")
            .map_err(|e| format!("watch: {e}"))?;
        self.write_back("feature-flush-cache", "1")?;
        if self.offer.indirect_segments > 0 {
            let value = if self.attack == Some(Attack::MaxSegmentsAbsurd) {
                u32::MAX.to_string()
            } else {
                self.offer.indirect_segments.to_string()
            };
            self.write_back("feature-max-indirect-segments", &value)?;
        }
        self.set_state(state::INIT_WAIT);
        println!(
            "backend: {} and {} written, InitWait",
            self.paths.front, self.paths.back
        );
        Ok(())
    }

    /// Reads the frontend's state and follows it.
    fn front_changed(&mut self, options: &Options) {
        let path = format!("{}/state", self.paths.front);
        let Some(raw) = self.xs.read_opt(&path) else {
            if !self.done {
                println!("backend: the frontend's directory is gone");
            }
            self.disconnect();
            self.done = self.closed_at.is_none() || self.kept.is_empty();
            return;
        };
        let Ok(new) = raw.trim().parse::<u32>() else {
            self.violation(&format!("xenbus: frontend state {raw:?} is not a number"));
            return;
        };
        let old = self.front_state;
        if new == old {
            return;
        }
        if let Some(text) = checks::check_front_transition(old, new) {
            self.violation(&text);
        }
        self.front_state = new;
        match new {
            state::INITIALISED | state::CONNECTED if self.ring.is_none() && !self.stopped => {
                if let Err(e) = self.connect(options) {
                    self.violation(&format!("xenbus: cannot connect: {e}"));
                    self.set_state(state::CLOSING);
                }
            }
            state::CLOSING => {
                self.disconnect();
                self.set_state(state::CLOSING);
            }
            state::CLOSED => {
                self.disconnect();
                self.set_state(state::CLOSED);
                self.closed_at = Some(Instant::now());
                if self.kept.is_empty() {
                    self.done = true;
                } else {
                    println!(
                        "backend: frontend closed; keeping {} mappings for {} s",
                        self.kept.len(),
                        options.hold.as_secs()
                    );
                }
            }
            _ => {}
        }
    }

    /// Maps the ring, binds the channel, describes the disk, `Connected`.
    fn connect(&mut self, _options: &Options) -> Result<(), String> {
        let front = self.paths.front.clone();
        let read = |xs: &mut Xenstore, key: &str| xs.read_opt(&format!("{front}/{key}"));
        if let Some(order) = read(&mut self.xs, "ring-page-order") {
            if order.trim() != "0" {
                self.violation(&format!("xenbus: ring-page-order {order} but none offered"));
            }
        }
        let ring_ref = read(&mut self.xs, "ring-ref")
            .or_else(|| read(&mut self.xs, "ring-ref0"))
            .ok_or("no ring-ref")?;
        let ring_ref: u32 = ring_ref
            .trim()
            .parse()
            .map_err(|_| format!("ring-ref {ring_ref:?}"))?;
        let channel = read(&mut self.xs, "event-channel").ok_or("no event-channel")?;
        let channel: u32 = channel
            .trim()
            .parse()
            .map_err(|_| format!("event-channel {channel:?}"))?;
        match read(&mut self.xs, "protocol") {
            None => {}
            Some(p) if p == "x86_64-abi" => {}
            Some(p) => self.violation(&format!("xenbus: protocol {p:?} (x86_64-abi expected)")),
        }
        let ring = self.gnt.map(self.domid, &[ring_ref], true)?;
        let port = self.ev.bind_interdomain(self.domid, channel)?;
        self.back = BackRing::default();
        self.published = ring.read_word(blkif::RSP_PROD);
        self.back.rsp_prod_pvt = self.published;
        self.back.req_cons = self.published;
        self.ring = Some(ring);
        self.port = Some(port);
        let (sectors, sector_size) = match self.attack {
            Some(Attack::SectorsMax) => (u64::MAX, 512u64),
            Some(Attack::SectorSizeHuge) => (disk::SECTORS, 1 << 31),
            _ => (disk::SECTORS, 512),
        };
        self.write_back("sectors", &sectors.to_string())?;
        self.write_back("sector-size", &sector_size.to_string())?;
        self.write_back("info", "0")?;
        self.set_state(state::CONNECTED);
        if matches!(
            self.attack,
            Some(Attack::SectorsMax | Attack::SectorSizeHuge | Attack::MaxSegmentsAbsurd)
        ) {
            self.fired = true;
        }
        println!("backend: connected: ring-ref {ring_ref}, event channel {channel} (ours {port})");
        Ok(())
    }

    /// Unmaps the ring (unless an attack keeps it) and closes the channel.
    fn disconnect(&mut self) {
        if let Some(ring) = self.ring.take() {
            if self.attack == Some(Attack::GrantKeptAfterClose) && self.fired {
                self.kept.push(ring);
            }
        }
        if let Some(port) = self.port.take() {
            let _ = self.ev.unbind(port);
        }
    }

    fn notify(&self) {
        if let Some(port) = self.port {
            let _ = self.ev.notify(port);
        }
    }

    /// Takes what the frontend queued, answers it.
    fn serve(&mut self, event: bool) {
        if self.stopped {
            return;
        }
        loop {
            let Some(ring) = &self.ring else { return };
            let req_prod = ring.read_word(blkif::REQ_PROD);
            fence(Ordering::SeqCst);
            if req_prod == self.back.req_cons {
                // RING_FINAL_CHECK_FOR_REQUESTS: ask for an event, look again.
                self.req_event = self.back.req_cons.wrapping_add(1);
                ring.write_word(blkif::REQ_EVENT, self.req_event);
                fence(Ordering::SeqCst);
                if ring.read_word(blkif::REQ_PROD) == self.back.req_cons {
                    self.owed_since = None;
                    return;
                }
                continue;
            }
            if !event && blkif::owed_event(self.back.req_cons, req_prod, self.req_event) {
                // Two looks without an event: the frontend did not notify.
                if self.owed_since != Some(req_prod) {
                    self.owed_since = Some(req_prod);
                    return;
                }
                let text = format!(
                    "notification: requests up to {req_prod} pushed past req_event {} with no event",
                    self.req_event
                );
                self.violation(&text);
            }
            self.owed_since = None;
            let unconsumed = match blkif::check_req_prod(req_prod, &self.back) {
                Ok(n) => n,
                Err(text) => {
                    self.violation(&text);
                    self.stopped = true;
                    return;
                }
            };
            let Some(ring) = &self.ring else { return };
            let mut batch = Vec::new();
            for i in 0..unconsumed {
                let mut bytes = [0u8; blkif::ENTRY];
                let index = self.back.req_cons.wrapping_add(i);
                ring.read_bytes(blkif::entry_offset(index), &mut bytes);
                batch.push(Request::decode(&bytes));
            }
            self.back.req_cons = req_prod;
            self.respond(batch);
        }
    }

    /// Executes a batch and answers it (or, for an attack, misanswers it).
    fn respond(&mut self, batch: Vec<Request>) {
        let mut responses = Vec::new();
        let mut trigger = None;
        for request in &batch {
            self.requests += 1;
            let violations = checks::check_request(request, &self.offer, &mut self.outstanding);
            let valid = violations.is_empty();
            for text in violations {
                self.violation(&text);
            }
            let armed =
                self.attack.is_some_and(Attack::on_ring) && !self.fired && trigger.is_none();
            if armed && request.data_op() == blkif::OP_READ && request.sector >= TRIGGER_SECTOR {
                trigger = Some(responses.len());
            }
            let status = if valid {
                self.execute(request, trigger == Some(responses.len()))
            } else {
                blkif::RSP_ERROR
            };
            let operation = if request.operation == blkif::OP_INDIRECT {
                request.indirect_op
            } else {
                request.operation
            };
            responses.push(Response {
                id: request.id,
                operation,
                status,
            });
        }
        let mut publish_extra = 0u32;
        if let (Some(t), Some(attack)) = (trigger, self.attack) {
            self.fired = true;
            println!(
                "backend: attack {} fires at request {:#x}",
                attack.name(),
                responses[t].id
            );
            match attack {
                Attack::UnknownId => responses[t].id ^= 0x5a5a_0000_0000_0000,
                Attack::DuplicateId => {
                    let copy = responses[t];
                    if responses.len() > 1 {
                        let other = if t + 1 < responses.len() {
                            t + 1
                        } else {
                            t - 1
                        };
                        responses[other] = copy;
                    } else {
                        responses.push(copy);
                    }
                }
                Attack::RspProdAhead => publish_extra = 7,
                Attack::RspProdBackwards => {
                    let ring = self.ring.as_ref().expect("serving a ring");
                    ring.write_word(blkif::RSP_PROD, self.published.wrapping_sub(2));
                    self.notify();
                    self.stopped = true;
                    return;
                }
                Attack::StatusOutOfRange => responses[t].status = 7,
                Attack::WrongOperation => responses[t].operation = blkif::OP_WRITE,
                Attack::VanishMidRequest => {
                    self.disconnect();
                    let back = self.paths.back.clone();
                    match self.xs.rm(&back) {
                        Ok(()) => println!(
                            "backend: removed {back} with {} requests outstanding",
                            batch.len()
                        ),
                        Err(e) => println!("backend: removing {back}: {e}"),
                    }
                    self.stopped = true;
                    return;
                }
                _ => {}
            }
        }
        let Some(ring) = &self.ring else { return };
        let mut rewrite = None;
        for (i, response) in responses.iter().enumerate() {
            let slot = self.back.rsp_prod_pvt;
            ring.write_bytes(blkif::entry_offset(slot), &response.encode());
            self.back.rsp_prod_pvt = slot.wrapping_add(1);
            self.outstanding.remove(&response.id);
            if trigger == Some(i) && self.attack == Some(Attack::RewriteAfterRead) {
                rewrite = Some((Instant::now() + Duration::from_millis(300), slot, *response));
            }
        }
        fence(Ordering::SeqCst);
        let old = self.published;
        let new = self.back.rsp_prod_pvt.wrapping_add(publish_extra);
        ring.write_word(blkif::RSP_PROD, new);
        self.published = new;
        fence(Ordering::SeqCst);
        let rsp_event = ring.read_word(blkif::RSP_EVENT);
        if blkif::needs_notify(old, new, rsp_event) || trigger.is_some() {
            self.notify();
        }
        if rewrite.is_some() {
            self.rewrite = rewrite;
        }
        if trigger.is_some() && self.attack == Some(Attack::StateFlap) {
            for value in [
                state::CLOSING,
                state::CONNECTED,
                state::CLOSING,
                state::CONNECTED,
            ] {
                self.set_state(value);
                std::thread::sleep(Duration::from_millis(50));
            }
            println!("backend: flapped Closing/Connected twice");
        }
    }

    /// Does a request's I/O; the status to answer.
    fn execute(&mut self, request: &Request, trigger: bool) -> i16 {
        match request.operation {
            blkif::OP_FLUSH_DISKCACHE | blkif::OP_WRITE_BARRIER => blkif::RSP_OKAY,
            blkif::OP_READ | blkif::OP_WRITE => {
                let segments = request.segments.clone();
                self.transfer(request, &segments, trigger)
            }
            blkif::OP_INDIRECT => match self.indirect_segments(request) {
                Ok(segments) => {
                    let violations = checks::check_segments(request, &segments, &self.offer);
                    if !violations.is_empty() {
                        for text in violations {
                            self.violation(&text);
                        }
                        return blkif::RSP_ERROR;
                    }
                    self.transfer(request, &segments, trigger)
                }
                Err(text) => {
                    self.violation(&text);
                    blkif::RSP_ERROR
                }
            },
            _ => blkif::RSP_EOPNOTSUPP,
        }
    }

    /// An indirect request's segment table, from its indirect pages.
    fn indirect_segments(&mut self, request: &Request) -> Result<Vec<Segment>, String> {
        let pages = self
            .gnt
            .map(self.domid, &request.indirect_grefs, false)
            .map_err(|e| format!("request {:#x}: indirect pages: {e}", request.id))?;
        let mut table = vec![0u8; request.nr_segments as usize * 8];
        pages.read(0, &mut table);
        Ok(table.chunks_exact(8).map(Segment::decode).collect())
    }

    /// Copies between the disk and the request's pages.
    fn transfer(&mut self, request: &Request, segments: &[Segment], trigger: bool) -> i16 {
        let read = request.data_op() == blkif::OP_READ;
        let refs: Vec<u32> = segments.iter().map(|s| s.gref).collect();
        // A read fills the frontend's pages: they must be granted writable.
        let pages = match self.gnt.map(self.domid, &refs, read) {
            Ok(pages) => pages,
            Err(e) => {
                self.violation(&format!("request {:#x}: grant: {e}", request.id));
                return blkif::RSP_ERROR;
            }
        };
        let mut sector = request.sector as usize;
        for (i, segment) in segments.iter().enumerate() {
            let count = usize::from(segment.last_sect - segment.first_sect) + 1;
            let page_offset = i * PAGE + usize::from(segment.first_sect) * disk::SECTOR;
            let range = sector * disk::SECTOR..(sector + count) * disk::SECTOR;
            if read {
                pages.write(page_offset, &self.disk[range]);
            } else {
                pages.read(page_offset, &mut self.disk[range]);
            }
            sector += count;
        }
        if trigger && self.attack == Some(Attack::GrantKeptAfterClose) {
            self.kept.push(pages);
        }
        blkif::RSP_OKAY
    }

    /// The attacks' delayed parts.
    fn timers(&mut self, options: &Options) {
        if let Some((at, slot, response)) = self.rewrite {
            if Instant::now() >= at {
                self.rewrite = None;
                if let Some(ring) = &self.ring {
                    let forged = Response {
                        id: response.id ^ 0xffff,
                        operation: blkif::OP_WRITE,
                        status: blkif::RSP_ERROR,
                    };
                    ring.write_bytes(blkif::entry_offset(slot), &forged.encode());
                    self.notify();
                    println!("backend: rewrote response slot {slot} after it was consumed");
                }
            }
        }
        if let Some(closed) = self.closed_at {
            if !self.kept.is_empty() && closed.elapsed() >= options.hold {
                println!("backend: releasing {} kept mappings", self.kept.len());
                self.kept.clear();
                self.done = true;
            }
        }
    }

    /// The summary and the disk check.
    fn finish(&mut self) {
        self.disconnect();
        if !self.kept.is_empty() {
            println!("backend: releasing {} kept mappings", self.kept.len());
            self.kept.clear();
        }
        let _ = self.xs.rm(&self.paths.back);
        match self.attack {
            None => println!(
                "backend: by-the-book blkif: {} requests, {} violations",
                self.requests, self.violations
            ),
            Some(attack) => println!(
                "backend: hostile blkif {}: {}, {} requests, {} frontend violations",
                attack.name(),
                if self.fired { "fired" } else { "never fired" },
                self.requests,
                self.violations
            ),
        }
        match disk::check(&self.disk) {
            Ok(written) => println!("backend: disk check ok: {written} sectors written"),
            Err(e) => println!("backend: disk check FAILED: {e}"),
        }
    }
}
