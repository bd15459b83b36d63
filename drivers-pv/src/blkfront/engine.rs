//! [`Engine`]: blkfront's request loop, independent of the platform.
//!
//! It owns the front ring and the table of requests in flight, splits a
//! transfer into requests of up to eleven pages, keeps as many in flight
//! as there are slots and ring space, matches every response to its
//! request ([`InFlight::complete`]) and hands the data back. The data
//! pages, their grants and the event channel belong to the caller: the
//! engine asks for grant references by (slot, page), fills and drains
//! slots through closures, and notifies and waits through [`Platform`].
//! The guest driver runs it over granted pages; host tests run it
//! against a simulated blkback that can misbehave.

use super::wire::{
    BlkifRequest, BlkifResponse, InFlight, Operation, Segment, Status, MAX_SEGMENTS,
    SECTORS_PER_PAGE, SECTOR_SIZE,
};
use super::BlockError;
use crate::shared_ring::{FrontRing, RingMemory, XEN_PAGE_SIZE};

/// Bytes one request moves at most.
pub const MAX_REQUEST_BYTES: usize = MAX_SEGMENTS * XEN_PAGE_SIZE;

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

/// What the engine needs from its surroundings.
pub trait Platform {
    /// Signals the backend (the event channel).
    fn notify(&mut self);
    /// Waits until the backend signals or a timeout passes; false on
    /// timeout.
    fn wait(&mut self) -> bool;
}

/// The ring plus the requests in flight; one per connected device.
pub struct Engine<M: RingMemory> {
    ring: FrontRing<M, BlkifRequest, BlkifResponse>,
    in_flight: InFlight<(usize, usize)>,
    handle: u16,
    broken: Option<BlockError>,
}

impl<M: RingMemory> Engine<M> {
    /// An engine over `ring` for device `handle`, with `slots` requests
    /// in flight at most (each slot has eleven data pages of its own).
    pub fn new(ring: FrontRing<M, BlkifRequest, BlkifResponse>, handle: u16, slots: usize) -> Self {
        Engine {
            ring,
            in_flight: InFlight::new(slots),
            handle,
            broken: None,
        }
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
    pub fn into_ring(self) -> FrontRing<M, BlkifRequest, BlkifResponse> {
        self.ring
    }

    /// Runs `job` (a flush or barrier: one request, no data). `gref(slot,
    /// page)` names a slot's data page; `fill(slot, offset, chunk)`
    /// copies bytes `offset..offset + chunk` of the caller's data into a
    /// slot before a write goes out; `drain(slot, offset, chunk)` copies
    /// them out after a read is answered. Requests that fail do not stop
    /// the others: the first failure is returned once all are answered.
    /// A broken ring, an unknown response or a timeout leave requests
    /// unanswered and break the engine for good.
    pub fn transfer(
        &mut self,
        platform: &mut impl Platform,
        job: Job,
        gref: impl Fn(usize, usize) -> u32,
        mut fill: impl FnMut(usize, usize, usize),
        mut drain: impl FnMut(usize, usize, usize),
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
        loop {
            while failure.is_none()
                && (if data { next < len } else { !issued_empty })
                && self.ring.free_requests() > 0
            {
                let Some(slot) = self.in_flight.free_slot() else {
                    break;
                };
                let chunk = (len - next).min(MAX_REQUEST_BYTES);
                let start = sector.saturating_add((next / SECTOR_SIZE) as u64);
                let Some(id) = self.in_flight.issue(slot, operation, (next, chunk)) else {
                    break;
                };
                let mut request = BlkifRequest::new(operation, self.handle, id, start);
                if data {
                    if operation == Operation::Write {
                        fill(slot, next, chunk);
                    }
                    for page in 0..chunk.div_ceil(XEN_PAGE_SIZE) {
                        let bytes = (chunk - page * XEN_PAGE_SIZE).min(XEN_PAGE_SIZE);
                        let sectors = (bytes / SECTOR_SIZE).clamp(1, SECTORS_PER_PAGE as usize);
                        let _ = request.push_segment(Segment {
                            gref: gref(slot, page),
                            first_sect: 0,
                            last_sect: sectors as u8 - 1,
                        });
                    }
                } else {
                    issued_empty = true;
                }
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
            // One last look after a timeout: the event may have been
            // lost, not the answer.
            if !platform.wait() && !self.ring.final_check_for_responses() {
                return Err(self.break_with(BlockError::Timeout));
            }
        }
    }

    fn break_with(&mut self, error: BlockError) -> BlockError {
        self.broken = Some(error);
        error
    }
}
