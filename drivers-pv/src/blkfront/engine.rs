//! [`Engine`]: blkfront's request loop, independent of the platform.
//!
//! It owns the front ring and the table of requests in flight, splits a
//! transfer into requests of up to eleven pages (or, once indirect
//! descriptors are enabled with [`Engine::set_indirect_segments`], up to
//! that many pages as `BLKIF_OP_INDIRECT` requests whose segment table
//! the caller's `table` closure puts in the slot's indirect page), keeps
//! as many in flight
//! as there are slots and ring space, matches every response to its
//! request ([`InFlight::complete`]) and hands the data back. The data
//! pages, their grants and the event channel belong to the caller: the
//! engine asks for grant references by (slot, page), fills and drains
//! slots through closures, and notifies and waits through [`Platform`].
//! The guest driver runs it over granted pages; host tests run it
//! against a simulated blkback that can misbehave.

use super::wire::{
    encode_segments, BlkifRequest, BlkifResponse, InFlight, IndirectRequest, Operation, Request,
    Segment, Status, MAX_INDIRECT_PAGES, MAX_INDIRECT_SEGMENTS_USED, MAX_SEGMENTS,
    SECTORS_PER_PAGE, SECTOR_SIZE, SEGMENT_SIZE,
};
use core::future::Future;

use super::BlockError;
use crate::shared_ring::{FrontRing, RingMemory, XEN_PAGE_SIZE};

/// Bytes one direct request moves at most.
pub const MAX_REQUEST_BYTES: usize = MAX_SEGMENTS * XEN_PAGE_SIZE;

/// The ring as the engine uses it.
pub type BlkRing<M> = FrontRing<M, Request, BlkifResponse>;

/// One transfer: `len` bytes of `operation` from 512-byte sector
/// `sector` (a flush or barrier moves nothing: `len` 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    /// What to do.
    pub operation: Operation,
    /// The first 512-byte sector.
    pub sector: u64,
    /// Bytes to move.
    pub len: usize,
}

/// Why [`Platform::wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The backend signalled (or may have: look at the ring).
    Event,
    /// The wait's limit passed.
    Timeout,
    /// The backend is closing (`xl block-detach`): no new requests; the
    /// ones in flight are still answered by a backend that closes
    /// properly, so the engine collects them (the platform bounds the
    /// wait for them with a short grace) and then fails the transfer
    /// with [`BlockError::Detached`].
    BackendClosing,
    /// The connection is void (a resume into a new domain, a restarted
    /// backend): nothing in flight will be answered on this ring. The
    /// transfer fails with [`BlockError::Reset`] at once; the caller
    /// connects anew and issues the whole transfer again.
    BackendReset,
}

/// What the engine needs from its surroundings.
pub trait Platform {
    /// Signals the backend (the event channel).
    fn notify(&mut self);
    /// Completes when the backend signals, a timeout passes, or the
    /// backend closes or goes away ([`Wake`]). In the guest this awaits
    /// the event channel and the backend's xenstore state: the task
    /// sleeps, the vCPU is free for others.
    fn wait(&mut self) -> impl Future<Output = Wake>;
}

/// The ring plus the requests in flight; one per connected device.
pub struct Engine<M: RingMemory> {
    ring: BlkRing<M>,
    in_flight: InFlight<(usize, usize)>,
    handle: u16,
    indirect_segments: usize,
    broken: Option<BlockError>,
}

impl<M: RingMemory> Engine<M> {
    /// An engine over `ring` for device `handle`, with `slots` requests
    /// in flight at most (each slot has eleven data pages of its own).
    pub fn new(ring: BlkRing<M>, handle: u16, slots: usize) -> Self {
        Engine {
            ring,
            in_flight: InFlight::new(slots),
            handle,
            indirect_segments: 0,
            broken: None,
        }
    }

    /// Issues transfers of more than eleven pages as indirect requests of
    /// up to `segments` pages (clamped to
    /// [`MAX_INDIRECT_SEGMENTS_USED`]; 0 turns indirect requests off).
    /// Each slot must then have that many data pages and an indirect page.
    /// Returns the number in use.
    pub fn set_indirect_segments(&mut self, segments: usize) -> usize {
        self.indirect_segments = if segments > MAX_SEGMENTS {
            segments.min(MAX_INDIRECT_SEGMENTS_USED)
        } else {
            0
        };
        self.indirect_segments
    }

    /// Segments per indirect request (0: indirect requests are off).
    pub fn indirect_segments(&self) -> usize {
        self.indirect_segments
    }

    /// Data pages a slot needs: the most segments one request carries.
    pub fn pages_per_slot(&self) -> usize {
        self.indirect_segments.max(MAX_SEGMENTS)
    }

    /// The error that made the device unusable, if any.
    pub fn broken(&self) -> Option<BlockError> {
        self.broken
    }

    /// Requests in flight (non-zero only after a failure that left some
    /// unanswered).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Gives the ring back.
    pub fn into_ring(self) -> BlkRing<M> {
        self.ring
    }

    /// Runs `job` (a flush or barrier: one request, no data), awaiting
    /// the backend through [`Platform::wait`]. `gref(slot,
    /// page)` names a slot's data page; `fill(slot, offset, chunk)`
    /// copies bytes `offset..offset + chunk` of the caller's data into a
    /// slot before a write goes out; `drain(slot, offset, chunk)` copies
    /// them out after a read is answered; `table(slot, bytes)` copies an
    /// indirect request's segment table into the slot's indirect page and
    /// returns that page's grant reference (called only when indirect
    /// requests are on). Requests that fail do not stop
    /// the others: the first failure is returned once all are answered.
    /// A broken ring, an unknown response or a timeout leave requests
    /// unanswered and break the engine for good. A backend that closes
    /// mid-transfer ([`Wake::BackendClosing`]) gets no new requests; the
    /// ones in flight are collected (their data is drained as usual) and
    /// the transfer fails with [`BlockError::Detached`] (a backend that
    /// stops answering meanwhile breaks the engine with it). A reset
    /// ([`Wake::BackendReset`]) fails it with [`BlockError::Reset`] at
    /// once and breaks the engine: the caller re-issues the whole
    /// transfer on a new connection (reads and writes are idempotent, and
    /// nothing was acknowledged to its caller).
    pub async fn transfer(
        &mut self,
        platform: &mut impl Platform,
        job: Job,
        gref: impl Fn(usize, usize) -> u32,
        mut fill: impl FnMut(usize, usize, usize),
        mut drain: impl FnMut(usize, usize, usize),
        mut table: impl FnMut(usize, &[u8]) -> u32,
    ) -> Result<(), BlockError> {
        if let Some(error) = self.broken {
            return Err(error);
        }
        let Job {
            operation,
            sector,
            len,
        } = job;
        let data = matches!(operation, Operation::Read | Operation::Write);
        let mut next = 0usize;
        let mut issued_empty = false;
        let mut failure: Option<BlockError> = None;
        let mut closing = false;
        loop {
            while failure.is_none()
                && (if data { next < len } else { !issued_empty })
                && self.ring.free_requests() > 0
            {
                let Some(slot) = self.in_flight.free_slot() else {
                    break;
                };
                let chunk = (len - next).min(self.pages_per_slot() * XEN_PAGE_SIZE);
                let start = sector.saturating_add((next / SECTOR_SIZE) as u64);
                let Some(id) = self.in_flight.issue(slot, operation, (next, chunk)) else {
                    break;
                };
                let request = if data {
                    if operation == Operation::Write {
                        fill(slot, next, chunk);
                    }
                    let mut segments = [Segment::default(); MAX_INDIRECT_SEGMENTS_USED];
                    let count = chunk.div_ceil(XEN_PAGE_SIZE);
                    for (page, segment) in segments.iter_mut().enumerate().take(count) {
                        let bytes = (chunk - page * XEN_PAGE_SIZE).min(XEN_PAGE_SIZE);
                        let sectors = (bytes / SECTOR_SIZE).clamp(1, SECTORS_PER_PAGE as usize);
                        *segment = Segment {
                            gref: gref(slot, page),
                            first_sect: 0,
                            last_sect: sectors as u8 - 1,
                        };
                    }
                    if count > MAX_SEGMENTS {
                        let mut encoded = [0u8; MAX_INDIRECT_SEGMENTS_USED * SEGMENT_SIZE];
                        let encoded = &mut encoded[..count * SEGMENT_SIZE];
                        encode_segments(&segments[..count], encoded);
                        let mut indirect_grefs = [0; MAX_INDIRECT_PAGES];
                        indirect_grefs[0] = table(slot, encoded);
                        Request::Indirect(IndirectRequest {
                            operation,
                            nr_segments: count as u16,
                            handle: self.handle,
                            id,
                            sector_number: start,
                            indirect_grefs,
                        })
                    } else {
                        let mut request = BlkifRequest::new(operation, self.handle, id, start);
                        for segment in &segments[..count] {
                            let _ = request.push_segment(*segment);
                        }
                        Request::Direct(request)
                    }
                } else {
                    issued_empty = true;
                    Request::Direct(BlkifRequest::new(operation, self.handle, id, start))
                };
                if let Err(error) = self.ring.push_request(&request) {
                    return Err(self.break_with(BlockError::Ring(error)));
                }
                next += chunk;
            }
            if self.ring.push_and_check_notify() {
                platform.notify();
            }
            if self.in_flight.is_empty() {
                return match failure {
                    Some(error) => Err(error),
                    None => Ok(()),
                };
            }
            let mut took = false;
            while let Some(response) = self.ring.take_response() {
                took = true;
                let response = match response {
                    Ok(response) => response,
                    Err(error) => return Err(self.break_with(BlockError::Ring(error))),
                };
                let (slot, (offset, chunk), status) = match self.in_flight.complete(&response) {
                    Ok(done) => done,
                    Err(error) => return Err(self.break_with(BlockError::BadResponse(error))),
                };
                match status {
                    Status::Okay if operation == Operation::Read => drain(slot, offset, chunk),
                    Status::Okay => {}
                    Status::Error => {
                        failure.get_or_insert(BlockError::Io);
                    }
                    Status::NotSupported => {
                        failure.get_or_insert(BlockError::NotSupported);
                    }
                }
            }
            if took || self.ring.final_check_for_responses() {
                continue;
            }
            match platform.wait().await {
                Wake::Event => {}
                // One last look after a timeout: the event may have been
                // lost, not the answer.
                Wake::Timeout if self.ring.final_check_for_responses() => {}
                Wake::Timeout if closing => return Err(self.break_with(BlockError::Detached)),
                Wake::Timeout => return Err(self.break_with(BlockError::Timeout)),
                Wake::BackendClosing => {
                    // The detach is the answer, whatever else failed.
                    closing = true;
                    failure = Some(BlockError::Detached);
                }
                Wake::BackendReset => return Err(self.break_with(BlockError::Reset)),
            }
        }
    }

    fn break_with(&mut self, error: BlockError) -> BlockError {
        self.broken = Some(error);
        error
    }
}
