//! A simulated back end for host tests (built under `cfg(test)` or the
//! `sim` feature).
//!
//! [`SharedMemory`] is ring memory over a plain `Vec` that both ends hold
//! (single-threaded: the barriers are no-ops). [`BackRing`] is `ring.h`'s
//! back half (`BACK_RING_ATTACH`, `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`,
//! `RING_FINAL_CHECK_FOR_REQUESTS`) over any [`RingMemory`], so a test can
//! play netback or blkback, honour or ignore the event indices, and, through
//! its raw methods, misbehave: publish any `rsp_prod`, write any bytes
//! into a slot.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::marker::PhantomData;

use super::{
    ring_size, BadEntry, RingEntry, RingError, RingMemory, MAX_ENTRY_SIZE, REQ_EVENT_OFFSET,
    REQ_PROD_OFFSET, RSP_EVENT_OFFSET, RSP_PROD_OFFSET, SRING_HEADER_SIZE, XEN_PAGE_SIZE,
};

/// Ring memory over a `Vec` shared by clones (one per end).
#[derive(Clone, Debug)]
pub struct SharedMemory {
    bytes: Rc<RefCell<Vec<u8>>>,
}

impl SharedMemory {
    /// `pages` pages, filled with `0xa5` (so a test sees what the front end
    /// initialises).
    pub fn new(pages: usize) -> SharedMemory {
        SharedMemory {
            bytes: Rc::new(RefCell::new(vec![0xa5; pages * XEN_PAGE_SIZE])),
        }
    }

    /// Reads the little-endian `u32` at `offset`.
    pub fn read_u32(&self, offset: usize) -> u32 {
        let bytes = self.bytes.borrow();
        let mut word = [0; 4];
        word.copy_from_slice(&bytes[offset..offset + 4]);
        u32::from_le_bytes(word)
    }

    /// Writes the little-endian `u32` at `offset`.
    pub fn write_u32(&self, offset: usize, value: u32) {
        self.bytes.borrow_mut()[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// A copy of `len` bytes at `offset`.
    pub fn bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        self.bytes.borrow()[offset..offset + len].to_vec()
    }

    /// Overwrites the bytes at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) {
        self.bytes.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
    }
}

impl RingMemory for SharedMemory {
    fn size(&self) -> usize {
        self.bytes.borrow().len()
    }

    fn read_index(&self, offset: usize) -> u32 {
        self.read_u32(offset)
    }

    fn write_index(&mut self, offset: usize, value: u32) {
        self.write_u32(offset, value);
    }

    fn full_barrier(&mut self) {}

    fn write_bytes(&mut self, offset: usize, bytes: &[u8]) {
        self.write(offset, bytes);
    }

    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.bytes.borrow()[offset..offset + buf.len()]);
    }
}

/// The back half of a ring: takes requests, pushes responses.
pub struct BackRing<M: RingMemory, Req: RingEntry, Rsp: RingEntry> {
    memory: M,
    size: u32,
    slot_size: usize,
    rsp_prod_pvt: u32,
    rsp_prod_published: u32,
    req_cons: u32,
    entries: PhantomData<fn(Rsp) -> Req>,
}

impl<M: RingMemory, Req: RingEntry, Rsp: RingEntry> BackRing<M, Req, Rsp> {
    /// `BACK_RING_ATTACH` to a ring of `pages` pages the front end has
    /// initialised, at the index its `rsp_prod` holds.
    pub fn attach(memory: M, pages: usize) -> BackRing<M, Req, Rsp> {
        let slot_size = Req::SIZE.max(Rsp::SIZE);
        let start = memory.read_index(RSP_PROD_OFFSET);
        BackRing {
            size: ring_size(pages, slot_size),
            slot_size,
            rsp_prod_pvt: start,
            rsp_prod_published: start,
            req_cons: start,
            memory,
            entries: PhantomData,
        }
    }

    /// `RING_SIZE`.
    pub fn ring_size(&self) -> u32 {
        self.size
    }

    /// Requests consumed so far (`req_cons`).
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }

    /// Responses written so far (`rsp_prod_pvt`).
    pub fn rsp_prod_pvt(&self) -> u32 {
        self.rsp_prod_pvt
    }

    /// `XEN_RING_NR_UNCONSUMED_REQUESTS`: requests published and not yet
    /// taken, bounded by the slots free for their responses.
    pub fn unconsumed_requests(&self) -> u32 {
        let req = self
            .memory
            .read_index(REQ_PROD_OFFSET)
            .wrapping_sub(self.req_cons);
        let room = self
            .size
            .wrapping_sub(self.req_cons.wrapping_sub(self.rsp_prod_pvt));
        req.min(room)
    }

    /// Takes the next request, if one is published and its response
    /// would have a slot; a front end publishing more than the ring holds
    /// is [`RingError::Corrupt`].
    pub fn take_request(&mut self) -> Option<Result<Req, RingError>> {
        let prod = self.memory.read_index(REQ_PROD_OFFSET);
        if prod.wrapping_sub(self.rsp_prod_pvt) > self.size {
            return Some(Err(RingError::Corrupt {
                prod,
                cons: self.req_cons,
            }));
        }
        if prod == self.req_cons || self.req_cons.wrapping_sub(self.rsp_prod_pvt) >= self.size {
            return None;
        }
        let index = self.req_cons;
        let mut buf = [0u8; MAX_ENTRY_SIZE];
        let bytes = &mut buf[..Req::SIZE];
        self.memory.read_bytes(self.slot_offset(index), bytes);
        self.req_cons = index.wrapping_add(1);
        Some(Req::decode(bytes).map_err(|BadEntry { field }| RingError::BadEntry { index, field }))
    }

    /// Writes `rsp` into the next response slot (unpublished).
    /// [`RingError::Full`] if every taken request is answered already.
    pub fn push_response(&mut self, rsp: &Rsp) -> Result<(), RingError> {
        if self.rsp_prod_pvt == self.req_cons {
            return Err(RingError::Full);
        }
        let mut buf = [0u8; MAX_ENTRY_SIZE];
        let bytes = &mut buf[..Rsp::SIZE];
        rsp.encode(bytes);
        let offset = self.slot_offset(self.rsp_prod_pvt);
        self.memory.write_bytes(offset, bytes);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publishes the responses and
    /// says whether the front end asked for an event.
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        let old = self.rsp_prod_published;
        let new = self.rsp_prod_pvt;
        self.memory.write_index(RSP_PROD_OFFSET, new);
        self.rsp_prod_published = new;
        self.memory.full_barrier();
        let event = self.memory.read_index(RSP_EVENT_OFFSET);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: true if requests wait; otherwise
    /// sets `req_event` to `req_cons + 1` and checks again. A back end
    /// that ignores event indices simply never calls it.
    pub fn final_check_for_requests(&mut self) -> bool {
        if self.unconsumed_requests() != 0 {
            return true;
        }
        self.memory
            .write_index(REQ_EVENT_OFFSET, self.req_cons.wrapping_add(1));
        self.memory.full_barrier();
        self.unconsumed_requests() != 0
    }

    /// Sets `req_event` to anything (batching, or misbehaviour).
    pub fn set_req_event(&mut self, value: u32) {
        self.memory.write_index(REQ_EVENT_OFFSET, value);
    }

    /// Publishes `value` as `rsp_prod`, whatever was produced.
    pub fn publish_raw_rsp_prod(&mut self, value: u32) {
        self.memory.write_index(RSP_PROD_OFFSET, value);
    }

    /// Writes `bytes` into the slot of ring index `index`.
    pub fn write_raw_slot(&mut self, index: u32, bytes: &[u8]) {
        let offset = self.slot_offset(index);
        self.memory.write_bytes(offset, bytes);
    }

    /// The memory, for inspection.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    fn slot_offset(&self, index: u32) -> usize {
        SRING_HEADER_SIZE + (index & self.size.wrapping_sub(1)) as usize * self.slot_size
    }
}
