//! Host tests of [`Engine`] against a simulated blkback that can
//! misbehave.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::engine::{Engine, Job, Platform, Wake};
use super::wire::*;
use super::{BlockError, ResponseError};
use crate::shared_ring::sim::{BackRing, SharedMemory};
use crate::shared_ring::{FrontRing, RingEntry, RingError, XEN_PAGE_SIZE};

const SLOTS: usize = 8;
/// Data pages per slot in the simulation (enough for indirect requests).
const PAGES_PER_SLOT: usize = MAX_INDIRECT_SEGMENTS_USED;
const DISK_SECTORS: usize = 8192; // 4 MiB

/// What the simulated backend does wrong.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Good,
    /// Answers `BLKIF_RSP_ERROR` for requests covering this sector.
    ErrorAt(u64),
    /// Answers every operation with `BLKIF_RSP_EOPNOTSUPP`.
    NotSupported,
    /// Answers with an id nobody issued.
    UnknownId,
    /// Answers with the wrong operation.
    WrongOperation,
    /// Answers every request of a batch with the first one's id.
    Duplicate,
    /// Never answers.
    Silent,
    /// Writes a status blkif does not define.
    BadStatus,
}

type Pages = Rc<RefCell<Vec<[u8; XEN_PAGE_SIZE]>>>;

struct SimBlkback {
    back: BackRing<SharedMemory, Request, BlkifResponse>,
    /// `feature-max-indirect-segments` offered (0: none).
    max_indirect: usize,
    disk: Vec<u8>,
    pages: Pages,
    mode: Mode,
    notifies: usize,
    most_in_one_wait: usize,
    requests: Vec<Request>,
    /// When the backend closes or resets (in waits of the front end).
    lifecycle: Lifecycle,
    waits: usize,
    /// Requests issued (answered and queued) when the news came.
    requests_at_news: Option<usize>,
}

/// When the simulated backend goes away, counted in the front end's waits.
#[derive(Clone, Copy, PartialEq)]
enum Lifecycle {
    Stays,
    /// `xl block-detach` at that wait: the backend still answers what is
    /// in flight.
    ClosingAt(usize),
    /// Closing at that wait, and never answering again.
    ClosingSilentAt(usize),
    /// The connection is void at that wait (a resume).
    ResetAt(usize),
}

impl SimBlkback {
    /// The request's segments, read from the indirect page as blkback
    /// does for `BLKIF_OP_INDIRECT`.
    fn segments(&self, request: &Request) -> Result<Vec<Segment>, ()> {
        match request {
            Request::Direct(request) => Ok(request.used_segments().to_vec()),
            Request::Indirect(request) => {
                let count = request.nr_segments as usize;
                if count > self.max_indirect || request.indirect_pages() != 1 {
                    return Err(());
                }
                let pages = self.pages.borrow();
                let table = &pages[request.indirect_grefs[0] as usize];
                let segments: Vec<Segment> = table[..count * SEGMENT_SIZE]
                    .chunks_exact(SEGMENT_SIZE)
                    .map(|bytes| decode_segment(bytes.try_into().unwrap()))
                    .collect();
                if segments
                    .iter()
                    .any(|s| s.first_sect > s.last_sect || s.last_sect >= SECTORS_PER_PAGE)
                {
                    return Err(());
                }
                Ok(segments)
            }
        }
    }

    fn serve(&mut self, request: &Request) -> Status {
        let mut sector = request.sector_number() as usize;
        let Ok(segments) = self.segments(request) else {
            return Status::Error;
        };
        if let Mode::ErrorAt(bad) = self.mode {
            let bytes: usize = segments.iter().map(Segment::bytes).sum();
            let count = (bytes / SECTOR_SIZE) as u64;
            let first = request.sector_number();
            if (first..first + count).contains(&bad) {
                return Status::Error;
            }
        }
        let mut pages = self.pages.borrow_mut();
        for segment in &segments {
            let page = &mut pages[segment.gref as usize];
            for within in segment.first_sect..=segment.last_sect {
                let disk = &mut self.disk[sector * SECTOR_SIZE..(sector + 1) * SECTOR_SIZE];
                let at = within as usize * SECTOR_SIZE;
                let data = &mut page[at..at + SECTOR_SIZE];
                match request.operation() {
                    Operation::Read => data.copy_from_slice(disk),
                    Operation::Write => disk.copy_from_slice(data),
                    _ => {}
                }
                sector += 1;
            }
        }
        Status::Okay
    }
}

impl Platform for SimBlkback {
    fn notify(&mut self) {
        self.notifies += 1;
    }

    fn wait(&mut self) -> impl core::future::Future<Output = Wake> {
        self.waits += 1;
        let lifecycle = self.lifecycle;
        let wake = match lifecycle {
            Lifecycle::ClosingAt(at) if self.waits == at => {
                self.requests_at_news = Some(self.requests.len() + self.back_queued());
                Wake::BackendClosing
            }
            Lifecycle::ClosingSilentAt(at) if self.waits == at => {
                self.requests_at_news = Some(self.requests.len() + self.back_queued());
                Wake::BackendClosing
            }
            Lifecycle::ClosingSilentAt(at) if self.waits > at => Wake::Timeout,
            Lifecycle::ResetAt(at) if self.waits == at => Wake::BackendReset,
            _ if self.answer_queued() => Wake::Event,
            _ => Wake::Timeout,
        };
        core::future::ready(wake)
    }
}

impl SimBlkback {
    /// Requests pushed but not yet taken.
    fn back_queued(&self) -> usize {
        self.back.unconsumed_requests() as usize
    }

    /// Answers what the front end queued (as blkback would on a
    /// notification); false when silent.
    fn answer_queued(&mut self) -> bool {
        if self.mode == Mode::Silent {
            return false;
        }
        let mut batch = Vec::new();
        while let Some(request) = self.back.take_request() {
            batch.push(request.expect("the front end writes good requests"));
        }
        self.most_in_one_wait = self.most_in_one_wait.max(batch.len());
        // Answer out of order.
        batch.reverse();
        let first_id = batch.first().map(Request::id);
        for request in &batch {
            self.requests.push(*request);
            let status = match self.mode {
                Mode::NotSupported => Status::NotSupported,
                _ => self.serve(request),
            };
            // For an indirect request blkback answers with `indirect_op`.
            let mut response = BlkifResponse {
                id: request.id(),
                operation: request.operation().code(),
                status,
            };
            match self.mode {
                Mode::UnknownId => response.id ^= 0x5555,
                Mode::WrongOperation => response.operation ^= 1,
                Mode::Duplicate => response.id = first_id.unwrap_or(0),
                _ => {}
            }
            if self.mode == Mode::BadStatus {
                let index = self.back.rsp_prod_pvt();
                let mut bytes = [0u8; RESPONSE_SIZE];
                response.encode(&mut bytes);
                bytes[10..12].copy_from_slice(&9i16.to_le_bytes());
                self.back.write_raw_slot(index, &bytes);
                self.back.publish_raw_rsp_prod(index.wrapping_add(1));
                return true;
            }
            self.back.push_response(&response).unwrap();
        }
        self.back.push_responses_and_check_notify();
        true
    }
}

fn pattern(disk: &mut [u8]) {
    for (i, byte) in disk.iter_mut().enumerate() {
        *byte = (i / SECTOR_SIZE * 7 + i % 251) as u8;
    }
}

fn setup(mode: Mode) -> (Engine<SharedMemory>, SimBlkback, Pages) {
    setup_with(mode, 1, SLOTS, 0)
}

/// An engine over a ring of `ring_pages` pages with `slots` slots, and a
/// backend offering `max_indirect` indirect segments (the engine uses them).
fn setup_with(
    mode: Mode,
    ring_pages: usize,
    slots: usize,
    max_indirect: usize,
) -> (Engine<SharedMemory>, SimBlkback, Pages) {
    let memory = SharedMemory::new(ring_pages);
    let ring = FrontRing::new(memory.clone(), ring_pages).unwrap();
    let back = BackRing::attach(memory, ring_pages);
    // Each slot's data pages, then one indirect page per slot.
    let pages: Pages = Rc::new(RefCell::new(vec![
        [0u8; XEN_PAGE_SIZE];
        slots * (PAGES_PER_SLOT + 1)
    ]));
    let mut disk = vec![0u8; DISK_SECTORS * SECTOR_SIZE];
    pattern(&mut disk);
    let sim = SimBlkback {
        back,
        max_indirect,
        disk,
        pages: pages.clone(),
        mode,
        notifies: 0,
        most_in_one_wait: 0,
        requests: Vec::new(),
        lifecycle: Lifecycle::Stays,
        waits: 0,
        requests_at_news: None,
    };
    let mut engine = Engine::new(ring, 51712, slots);
    engine.set_indirect_segments(max_indirect);
    (engine, sim, pages)
}

fn gref(slot: usize, page: usize) -> u32 {
    (slot * PAGES_PER_SLOT + page) as u32
}

/// The simulation's indirect page of `slot` (after every data page).
fn indirect_gref(pages: &Pages, slot: usize) -> u32 {
    (pages.borrow().len() / (PAGES_PER_SLOT + 1) * PAGES_PER_SLOT + slot) as u32
}

fn table(pages: &Pages) -> impl FnMut(usize, &[u8]) -> u32 + '_ {
    move |slot, bytes| {
        let gref = indirect_gref(pages, slot);
        pages.borrow_mut()[gref as usize][..bytes.len()].copy_from_slice(bytes);
        gref
    }
}

fn read(
    engine: &mut Engine<SharedMemory>,
    sim: &mut SimBlkback,
    pages: &Pages,
    sector: u64,
    buf: &mut [u8],
) -> Result<(), BlockError> {
    let len = buf.len();
    now(engine.transfer(
        sim,
        Job {
            operation: Operation::Read,
            sector,
            len,
        },
        gref,
        |_, _, _| {},
        |slot, offset, chunk| {
            let pages = pages.borrow();
            for (i, piece) in buf[offset..offset + chunk]
                .chunks_mut(XEN_PAGE_SIZE)
                .enumerate()
            {
                piece.copy_from_slice(&pages[gref(slot, i) as usize][..piece.len()]);
            }
        },
        table(pages),
    ))
}

fn write(
    engine: &mut Engine<SharedMemory>,
    sim: &mut SimBlkback,
    pages: &Pages,
    sector: u64,
    data: &[u8],
) -> Result<(), BlockError> {
    now(engine.transfer(
        sim,
        Job {
            operation: Operation::Write,
            sector,
            len: data.len(),
        },
        gref,
        |slot, offset, chunk| {
            let mut pages = pages.borrow_mut();
            for (i, piece) in data[offset..offset + chunk]
                .chunks(XEN_PAGE_SIZE)
                .enumerate()
            {
                pages[gref(slot, i) as usize][..piece.len()].copy_from_slice(piece);
            }
        },
        |_, _, _| {},
        table(pages),
    ))
}

fn flush(engine: &mut Engine<SharedMemory>, sim: &mut SimBlkback) -> Result<(), BlockError> {
    now(engine.transfer(
        sim,
        Job {
            operation: Operation::FlushDiskCache,
            sector: 0,
            len: 0,
        },
        |_, _| 0,
        |_, _, _| {},
        |_, _, _| {},
        |_, _| panic!("a flush has no segment table"),
    ))
}

#[test]
fn reads_and_writes_with_many_requests_in_flight() {
    let (mut engine, mut sim, pages) = setup(Mode::Good);
    let mut expect = vec![0u8; DISK_SECTORS * SECTOR_SIZE];
    pattern(&mut expect);
    let mut buf = vec![0u8; 2 << 20];
    read(&mut engine, &mut sim, &pages, 0, &mut buf).unwrap();
    assert_eq!(buf, expect[..2 << 20]);
    assert_eq!(sim.most_in_one_wait, SLOTS, "every slot in flight at once");
    assert!(sim
        .requests
        .iter()
        .all(|r| matches!(r, Request::Direct(r) if r.check().is_ok())));

    // An odd size: the last request has a partial page (3 sectors).
    let data: Vec<u8> = (0..(100 * 4096 + 3 * 512))
        .map(|i| (i % 13) as u8)
        .collect();
    write(&mut engine, &mut sim, &pages, 1000, &data).unwrap();
    assert_eq!(sim.disk[1000 * 512..1000 * 512 + data.len()], data[..]);
    let last = sim
        .requests
        .iter()
        .filter_map(|r| match r {
            Request::Direct(r) if r.operation == Operation::Write => Some(r),
            _ => None,
        })
        .max_by_key(|r| r.sector_number)
        .unwrap();
    assert_eq!(
        last.used_segments()
            .last()
            .map(|s| (s.first_sect, s.last_sect)),
        Some((0, 2))
    );
    let mut back = vec![0u8; data.len()];
    read(&mut engine, &mut sim, &pages, 1000, &mut back).unwrap();
    assert_eq!(back, data);
    flush(&mut engine, &mut sim).unwrap();
    let flushes: Vec<_> = sim
        .requests
        .iter()
        .filter(|r| r.operation() == Operation::FlushDiskCache)
        .collect();
    assert_eq!(flushes.len(), 1);
    assert_eq!(flushes[0].nr_segments(), 0);
    assert_eq!(engine.in_flight(), 0);
    assert!(sim.notifies > 0);
}

#[test]
fn an_io_error_is_reported_after_every_answer() {
    let (mut engine, mut sim, pages) = setup(Mode::ErrorAt(200));
    let mut buf = vec![0u8; 1 << 20];
    assert_eq!(
        read(&mut engine, &mut sim, &pages, 0, &mut buf),
        Err(BlockError::Io)
    );
    assert_eq!(engine.in_flight(), 0);
    assert_eq!(engine.broken(), None);
    sim.mode = Mode::Good;
    read(&mut engine, &mut sim, &pages, 0, &mut buf).unwrap();
}

#[test]
fn unsupported_operations_are_typed() {
    let (mut engine, mut sim, _) = setup(Mode::NotSupported);
    assert_eq!(flush(&mut engine, &mut sim), Err(BlockError::NotSupported));
    assert_eq!(engine.broken(), None);
}

#[test]
fn responses_we_did_not_ask_for_break_the_device() {
    for (mode, expect) in [
        (Mode::UnknownId, "unknown"),
        (Mode::WrongOperation, "operation"),
        (Mode::Duplicate, "unknown"),
    ] {
        let (mut engine, mut sim, pages) = setup(mode);
        let mut buf = vec![0u8; 64 << 10];
        let error = read(&mut engine, &mut sim, &pages, 0, &mut buf).unwrap_err();
        match (error, expect) {
            (BlockError::BadResponse(ResponseError::UnknownId(_)), "unknown") => {}
            (BlockError::BadResponse(ResponseError::WrongOperation { .. }), "operation") => {}
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(engine.broken(), Some(error));
        sim.mode = Mode::Good;
        assert_eq!(read(&mut engine, &mut sim, &pages, 0, &mut buf), Err(error));
    }
}

#[test]
fn a_silent_backend_times_out() {
    let (mut engine, mut sim, pages) = setup(Mode::Silent);
    let mut buf = vec![0u8; 4096];
    assert_eq!(
        read(&mut engine, &mut sim, &pages, 0, &mut buf),
        Err(BlockError::Timeout)
    );
    assert_eq!(engine.broken(), Some(BlockError::Timeout));
}

#[test]
fn an_undefined_status_breaks_the_ring_entry() {
    let (mut engine, mut sim, pages) = setup(Mode::BadStatus);
    let mut buf = vec![0u8; 4096];
    assert_eq!(
        read(&mut engine, &mut sim, &pages, 0, &mut buf),
        Err(BlockError::Ring(RingError::BadEntry {
            index: 0,
            field: "status"
        }))
    );
}

#[test]
fn indirect_requests_carry_32_pages_each() {
    let (mut engine, mut sim, pages) = setup_with(Mode::Good, 1, SLOTS, 256);
    assert_eq!(engine.indirect_segments(), MAX_INDIRECT_SEGMENTS_USED);
    assert_eq!(engine.pages_per_slot(), 32);
    let mut expect = vec![0u8; DISK_SECTORS * SECTOR_SIZE];
    pattern(&mut expect);
    let mut buf = vec![0u8; 2 << 20];
    read(&mut engine, &mut sim, &pages, 0, &mut buf).unwrap();
    assert_eq!(buf, expect[..2 << 20]);
    // 2 MiB is 16 requests of 32 pages, all indirect.
    assert_eq!(sim.requests.len(), 16);
    assert!(sim.requests.iter().all(|r| matches!(
        r,
        Request::Indirect(r) if r.nr_segments == 32 && r.check().is_ok()
            && r.indirect_grefs[1..].iter().all(|&g| g == 0)
    )));

    // A write of 40 pages and 3 sectors: one indirect request of 32
    // pages, then a direct one of 9 pages (the last partial).
    sim.requests.clear();
    let data: Vec<u8> = (0..(40 * 4096 + 3 * 512)).map(|i| (i % 17) as u8).collect();
    write(&mut engine, &mut sim, &pages, 2000, &data).unwrap();
    assert_eq!(sim.disk[2000 * 512..2000 * 512 + data.len()], data[..]);
    let shapes: Vec<(bool, usize)> = sim
        .requests
        .iter()
        .map(|r| (matches!(r, Request::Indirect(_)), r.nr_segments()))
        .collect();
    assert!(shapes.contains(&(true, 32)) && shapes.contains(&(false, 9)));
    let mut back = vec![0u8; data.len()];
    read(&mut engine, &mut sim, &pages, 2000, &mut back).unwrap();
    assert_eq!(back, data);
    flush(&mut engine, &mut sim).unwrap();
    assert_eq!(engine.in_flight(), 0);
}

#[test]
fn indirect_requests_are_off_unless_offered_beyond_eleven() {
    for offered in [0, 8, 11] {
        let (mut engine, _, _) = setup_with(Mode::Good, 1, SLOTS, 0);
        assert_eq!(engine.set_indirect_segments(offered), 0);
        assert_eq!(engine.pages_per_slot(), MAX_SEGMENTS);
    }
    let (mut engine, _, _) = setup_with(Mode::Good, 1, SLOTS, 0);
    assert_eq!(engine.set_indirect_segments(16), 16);
    assert_eq!(engine.set_indirect_segments(4096), 32);
}

#[test]
fn indirect_responses_are_checked_like_direct_ones() {
    for (mode, expect) in [
        (Mode::UnknownId, "unknown"),
        (Mode::WrongOperation, "operation"),
        (Mode::Duplicate, "unknown"),
    ] {
        let (mut engine, mut sim, pages) = setup_with(mode, 1, SLOTS, 256);
        let mut buf = vec![0u8; 1 << 20];
        let error = read(&mut engine, &mut sim, &pages, 0, &mut buf).unwrap_err();
        match (error, expect) {
            (BlockError::BadResponse(ResponseError::UnknownId(_)), "unknown") => {}
            (BlockError::BadResponse(ResponseError::WrongOperation { .. }), "operation") => {}
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(engine.broken(), Some(error));
    }
    // A backend refusing the segment table (here: it offered fewer
    // segments than we sent) is an I/O error, not a broken ring.
    let (mut engine, mut sim, pages) = setup_with(Mode::Good, 1, SLOTS, 256);
    sim.max_indirect = 16;
    let mut buf = vec![0u8; 256 << 10];
    assert_eq!(
        read(&mut engine, &mut sim, &pages, 0, &mut buf),
        Err(BlockError::Io)
    );
    assert_eq!(engine.broken(), None);
}

#[test]
fn a_four_page_ring_keeps_more_requests_in_flight() {
    // One page holds 32 blkif slots; four hold 128.
    let (engine, _, _) = setup_with(Mode::Good, 4, 64, 0);
    assert_eq!(engine.into_ring().ring_size(), 128);
    // Direct requests (11 pages each): 4 MiB is 94 of them.
    let (mut engine, mut sim, pages) = setup_with(Mode::Good, 4, 64, 0);
    let mut expect = vec![0u8; DISK_SECTORS * SECTOR_SIZE];
    pattern(&mut expect);
    let mut buf = vec![0u8; DISK_SECTORS * SECTOR_SIZE];
    read(&mut engine, &mut sim, &pages, 0, &mut buf).unwrap();
    assert_eq!(buf, expect);
    assert_eq!(sim.most_in_one_wait, 64, "more than a one-page ring's 32");
    // And indirect ones over the same large ring.
    let (mut engine, mut sim, pages) = setup_with(Mode::Good, 4, 64, 256);
    let mut data = vec![0u8; 3 << 20];
    pattern(&mut data);
    data.reverse();
    write(&mut engine, &mut sim, &pages, 512, &data).unwrap();
    assert_eq!(sim.disk[512 * 512..512 * 512 + data.len()], data[..]);
    assert_eq!(
        sim.most_in_one_wait, 24,
        "3 MiB in 24 indirect requests at once"
    );
}

/// Runs a transfer against the simulated blkback, whose waits are ready
/// at once: one poll must finish it.
fn now<T>(transfer: impl core::future::Future<Output = T>) -> T {
    let mut transfer = core::pin::pin!(transfer);
    match transfer.as_mut().poll(&mut core::task::Context::from_waker(
        core::task::Waker::noop(),
    )) {
        core::task::Poll::Ready(value) => value,
        core::task::Poll::Pending => panic!("the simulated blkback left a transfer waiting"),
    }
}

/// A read of `sectors` sectors spanning many requests (more than the
/// slots hold, so some wait for a free slot when the news comes).
const BIG: usize = 4 * SLOTS * MAX_SEGMENTS * 8;

#[test]
fn a_backend_closing_mid_transfer_answers_what_is_in_flight_and_fails_detached() {
    let (mut engine, mut sim, pages) = setup(Mode::Good);
    sim.lifecycle = Lifecycle::ClosingAt(2);
    let mut buf = vec![0u8; BIG * SECTOR_SIZE];
    let outcome = read(&mut engine, &mut sim, &pages, 0, &mut buf);
    assert_eq!(outcome, Err(BlockError::Detached));
    assert_eq!(
        engine.in_flight(),
        0,
        "every request in flight was answered"
    );
    let at_news = sim.requests_at_news.expect("the backend closed");
    assert_eq!(
        sim.requests.len(),
        at_news,
        "no request was issued after the backend closed"
    );
    assert!(
        at_news * MAX_SEGMENTS * 8 < BIG,
        "the transfer was cut short"
    );
    // What was answered is what the disk holds (nothing half-copied).
    let done = sim
        .requests
        .iter()
        .map(|r| r.sector_number() as usize)
        .min()
        .unwrap();
    assert_eq!(done, 0);
    assert_eq!(
        &buf[..SECTOR_SIZE],
        &sim.disk[..SECTOR_SIZE],
        "answered data was drained"
    );
    // The device stays failed, with the same clear error.
    assert_eq!(engine.broken(), None, "a detach is not a broken ring");
}

#[test]
fn a_closing_backend_that_stops_answering_is_abandoned_with_the_detach_error() {
    let (mut engine, mut sim, pages) = setup(Mode::Good);
    sim.lifecycle = Lifecycle::ClosingSilentAt(1);
    let mut buf = vec![0u8; BIG * SECTOR_SIZE];
    let outcome = read(&mut engine, &mut sim, &pages, 0, &mut buf);
    assert_eq!(outcome, Err(BlockError::Detached));
    assert!(
        engine.in_flight() > 0,
        "unanswered requests stay recorded (their pages go to the quarantine)"
    );
    assert_eq!(engine.broken(), Some(BlockError::Detached));
    assert_eq!(
        read(&mut engine, &mut sim, &pages, 0, &mut buf[..SECTOR_SIZE]),
        Err(BlockError::Detached)
    );
}

#[test]
fn a_reset_mid_write_is_issued_again_whole_on_a_new_connection_and_nothing_is_lost() {
    let (mut engine, mut sim, pages) = setup(Mode::Good);
    sim.lifecycle = Lifecycle::ResetAt(3);
    let data: Vec<u8> = (0..BIG * SECTOR_SIZE).map(|i| (i % 253) as u8).collect();
    let outcome = write(&mut engine, &mut sim, &pages, 8, &data);
    assert_eq!(outcome, Err(BlockError::Reset));
    assert!(
        engine.in_flight() > 0,
        "requests were in flight at the reset"
    );
    assert_eq!(engine.broken(), Some(BlockError::Reset));
    // Part of the write landed, part did not: it was never acknowledged.
    let landed = &sim.disk[8 * SECTOR_SIZE..8 * SECTOR_SIZE + data.len()];
    assert_ne!(landed, &data[..], "the reset cut the write short");
    // A new connection (the same disk behind a new ring, as after a
    // resume): the whole job is issued again and acknowledged.
    let disk = core::mem::take(&mut sim.disk);
    let (mut engine, mut sim, pages) = setup(Mode::Good);
    sim.disk = disk;
    assert_eq!(write(&mut engine, &mut sim, &pages, 8, &data), Ok(()));
    let mut back = vec![0u8; data.len()];
    assert_eq!(read(&mut engine, &mut sim, &pages, 8, &mut back), Ok(()));
    assert_eq!(back, data, "everything acknowledged is on the disk");
    assert_eq!(engine.in_flight(), 0);
}
