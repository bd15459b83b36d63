//! Xen's generic request/response ring (`io/ring.h`), front-end side.
//!
//! Netfront's tx and rx rings, blkfront's ring (and any other split driver
//! built on `DEFINE_RING_TYPES`) share one layout: a 64-byte header
//! (`req_prod`, `req_event`, `rsp_prod`, `rsp_event`, then padding) and an
//! array of slots, each the size of the larger of the request and the
//! response (they are a C union: a response overwrites the request it
//! answers). The slot count is `RING_SIZE`: the largest power of two of
//! slots that fits in the page(s) after the header ([`ring_size`]). A ring
//! may span several pages (`max-ring-page-order` in blkif and netif);
//! the pages are one contiguous run of memory here, and a slot may
//! straddle a page boundary.
//!
//! Indices are free-running `u32`s that wrap at 2^32; the slot of index
//! `i` is `i & (RING_SIZE - 1)`. The front end owns `req_prod` and its
//! private `req_prod_pvt` (requests written but not yet published) and
//! `rsp_cons` (responses consumed); the back end owns `rsp_prod`. The
//! event fields implement notification hold-off: each side tells the
//! other at which producer index it next wants an event, and
//! [`FrontRing::push_and_check_notify`] and
//! [`FrontRing::final_check_for_responses`] are `ring.h`'s
//! `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY` and
//! `RING_FINAL_CHECK_FOR_RESPONSES`, with the same barriers.
//!
//! Everything the back end writes is untrusted. [`FrontRing`] keeps its own
//! copy of every index it owns (it never reads back `req_prod` or
//! `rsp_cons` from shared memory), copies each response out of its slot
//! once before decoding it, lets [`RingEntry::decode`] reject bad
//! contents, and checks every `rsp_prod` it reads: a back end claiming
//! more responses than there are published, unanswered requests (which
//! includes `rsp_prod` going backwards) breaks the ring for good
//! ([`RingError::Corrupt`]). Nothing here panics on what the back end
//! writes.
//!
//! The shared memory is reached through [`RingMemory`], which the kernel
//! implements over granted pages (volatile accesses and fences live there)
//! and the tests implement over a `Vec` (`sim`, built under `cfg(test)` or
//! the `sim` feature, also holds a simulated back end, `sim::BackRing`).

use core::fmt;
use core::marker::PhantomData;

#[cfg(any(test, feature = "sim"))]
pub mod sim;

#[cfg(test)]
mod tests;

/// The page size of ring protocols, whatever the guest's own page size
/// (`XEN_PAGE_SIZE`).
pub const XEN_PAGE_SIZE: usize = 4096;

/// Bytes before the first slot: the four indices, `pvt` and `__pad`
/// (`offsetof(struct *_sring, ring)`).
pub const SRING_HEADER_SIZE: usize = 64;

/// Offset of `req_prod` in the shared ring.
pub const REQ_PROD_OFFSET: usize = 0;
/// Offset of `req_event` in the shared ring.
pub const REQ_EVENT_OFFSET: usize = 4;
/// Offset of `rsp_prod` in the shared ring.
pub const RSP_PROD_OFFSET: usize = 8;
/// Offset of `rsp_event` in the shared ring.
pub const RSP_EVENT_OFFSET: usize = 12;

/// The largest ring this module sets up, as a page order: 2^8 = 256
/// pages. Backends advertise far less (Linux's blkback and netback at most
/// order 4); the bound keeps every size computation well inside `u32`.
pub const MAX_RING_PAGE_ORDER: u32 = 8;

/// The largest ring this module sets up, in pages.
pub const MAX_RING_PAGES: usize = 1 << MAX_RING_PAGE_ORDER;

/// The largest request or response encoding [`FrontRing`] handles (it
/// encodes and decodes through a stack buffer of this size). blkif's
/// 112-byte request is the largest in Xen's public headers.
pub const MAX_ENTRY_SIZE: usize = 128;

/// Rounds down to a power of two (`ring.h`'s `__RD32`); 0 stays 0.
pub const fn round_down_pow2(value: u32) -> u32 {
    if value == 0 {
        0
    } else {
        1 << (31 - value.leading_zeros())
    }
}

/// `RING_SIZE` for a ring of `pages` pages whose slots are `slot_size`
/// bytes: the largest power of two of slots fitting after the header.
/// 0 when nothing fits or the arguments are out of range (no pages, more
/// than [`MAX_RING_PAGES`], zero-sized slots).
pub const fn ring_size(pages: usize, slot_size: usize) -> u32 {
    if pages == 0 || pages > MAX_RING_PAGES || slot_size == 0 {
        return 0;
    }
    let room = pages * XEN_PAGE_SIZE - SRING_HEADER_SIZE;
    // At most 2^20 / 1 slots: fits in u32.
    round_down_pow2((room / slot_size) as u32)
}

/// The shared ring memory, as the ring sees it: `size()` bytes of
/// contiguous memory (the granted pages, mapped in order).
///
/// The ring calls the index methods only with the four header offsets
/// (4-byte aligned, below 16) and the byte methods only with ranges
/// inside `0..size()`. Barriers are the implementation's job, and each
/// method names the one it owes; the ring calls them in `ring.h`'s order.
pub trait RingMemory {
    /// The size of the memory in bytes (at least `pages * 4096` for a
    /// ring of `pages` pages).
    fn size(&self) -> usize;
    /// Loads the `u32` at `offset`, then a read barrier (`xen_rmb`): slot
    /// reads later in program order must not be satisfied before this
    /// load (an acquire load). Each call must really load: the other side
    /// changes the value.
    fn read_index(&self, offset: usize) -> u32;
    /// A write barrier (`xen_wmb`), then stores `value` at `offset`: slot
    /// writes earlier in program order must be visible before the new
    /// index (a release store).
    fn write_index(&mut self, offset: usize, value: u32);
    /// A full barrier (`xen_mb`): the preceding store is visible before
    /// the following load (a sequentially consistent fence).
    fn full_barrier(&mut self);
    /// Copies `bytes` into the memory at `offset`.
    fn write_bytes(&mut self, offset: usize, bytes: &[u8]);
    /// Copies `buf.len()` bytes at `offset` out of the memory, once
    /// (volatile reads: the ring decodes the copy, never the shared bytes).
    fn read_bytes(&self, offset: usize, buf: &mut [u8]);
}

/// A request or response: a fixed-size byte encoding of the C struct
/// (little-endian, the C layout including its padding).
pub trait RingEntry: Sized {
    /// `sizeof` the C struct; between 1 and [`MAX_ENTRY_SIZE`] (checked
    /// when a [`FrontRing`] using the type is built).
    const SIZE: usize;
    /// Writes the encoding into `out` (exactly [`RingEntry::SIZE`] bytes).
    fn encode(&self, out: &mut [u8]);
    /// Reads an entry from `bytes` (exactly [`RingEntry::SIZE`] bytes).
    /// For responses this is where the back end's data enters: check
    /// every field that can be wrong and reject what is.
    fn decode(bytes: &[u8]) -> Result<Self, BadEntry>;
}

/// What [`RingEntry::decode`] found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BadEntry {
    /// The field holding an impossible value (the C field name).
    pub field: &'static str,
}

/// Everything a ring operation can fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingError {
    /// [`FrontRing::new`]: no pages, more than [`MAX_RING_PAGES`], or
    /// memory smaller than the pages.
    BadGeometry,
    /// Every slot holds a request not yet answered; take responses first.
    /// Nothing was written.
    Full,
    /// The other side's producer index `prod` is impossible given our
    /// consumer index `cons`: more entries than it could have produced
    /// (running ahead, or going backwards). The ring is broken for good:
    /// every later operation reports this again, and the driver must tear
    /// the connection down.
    Corrupt {
        /// The producer index read from shared memory.
        prod: u32,
        /// Our consumer index.
        cons: u32,
    },
    /// The response at `index` did not decode. Its slot is consumed (the
    /// ring stays in step); the request it answered cannot be identified.
    BadEntry {
        /// The ring index of the response.
        index: u32,
        /// The field that was wrong.
        field: &'static str,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::BadGeometry => f.write_str("ring: bad page count or memory size"),
            RingError::Full => f.write_str("ring: no free request slot"),
            RingError::Corrupt { prod, cons } => {
                write!(
                    f,
                    "ring: impossible producer index {prod} (consumer at {cons})"
                )
            }
            RingError::BadEntry { index, field } => {
                write!(f, "ring: response {index} has a bad {field}")
            }
        }
    }
}

/// The front end of a shared ring: pushes requests, takes responses.
///
/// `M` is the shared memory, `Req` and `Rsp` the entry encodings. Built
/// by [`FrontRing::new`], which initialises the shared header
/// (`XEN_FRONT_RING_INIT`); the back end attaches to it afterwards.
pub struct FrontRing<M: RingMemory, Req: RingEntry, Rsp: RingEntry> {
    memory: M,
    pages: usize,
    /// `RING_SIZE`, a power of two.
    size: u32,
    /// Requests written, published or not.
    req_prod_pvt: u32,
    /// Our copy of the `req_prod` we last published.
    req_prod_published: u32,
    /// Responses consumed.
    rsp_cons: u32,
    /// The last `rsp_prod` read and accepted.
    rsp_prod_seen: u32,
    /// Set once the back end broke the ring.
    corrupt: Option<RingError>,
    entries: PhantomData<fn(Req) -> Rsp>,
}

impl<M: RingMemory, Req: RingEntry, Rsp: RingEntry> fmt::Debug for FrontRing<M, Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontRing")
            .field("pages", &self.pages)
            .field("size", &self.size)
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("req_prod_published", &self.req_prod_published)
            .field("rsp_cons", &self.rsp_cons)
            .field("rsp_prod_seen", &self.rsp_prod_seen)
            .field("corrupt", &self.corrupt)
            .finish()
    }
}

impl<M: RingMemory, Req: RingEntry, Rsp: RingEntry> FrontRing<M, Req, Rsp> {
    /// The slot size: the C union of request and response.
    pub const SLOT_SIZE: usize = if Req::SIZE > Rsp::SIZE {
        Req::SIZE
    } else {
        Rsp::SIZE
    };

    /// Fails to compile (when used) for entry sizes out of range.
    const ENTRY_SIZES_OK: () = assert!(
        Req::SIZE >= 1
            && Req::SIZE <= MAX_ENTRY_SIZE
            && Rsp::SIZE >= 1
            && Rsp::SIZE <= MAX_ENTRY_SIZE,
        "ring entry sizes must be between 1 and MAX_ENTRY_SIZE"
    );

    /// Sets up a ring of `pages` pages (1 to [`MAX_RING_PAGES`]) over
    /// `memory` and initialises its shared header: both producers 0, both
    /// event indices 1, padding zeroed. On error the memory is handed
    /// back untouched.
    pub fn new(memory: M, pages: usize) -> Result<Self, (RingError, M)> {
        Self::new_at_index(memory, pages, 0)
    }

    /// [`FrontRing::new`] with every index starting at `start` instead of
    /// 0 (`FRONT_RING_ATTACH`'s index argument): both producers `start`,
    /// both event indices `start + 1`. For tests of index wrap-around; a
    /// real back end expects [`FrontRing::new`].
    pub fn new_at_index(mut memory: M, pages: usize, start: u32) -> Result<Self, (RingError, M)> {
        #[allow(clippy::let_unit_value)]
        let () = Self::ENTRY_SIZES_OK;
        let size = ring_size(pages, Self::SLOT_SIZE);
        if size == 0 || memory.size() < pages * XEN_PAGE_SIZE {
            return Err((RingError::BadGeometry, memory));
        }
        memory.write_bytes(16, &[0; SRING_HEADER_SIZE - 16]);
        memory.write_index(REQ_EVENT_OFFSET, start.wrapping_add(1));
        memory.write_index(RSP_EVENT_OFFSET, start.wrapping_add(1));
        memory.write_index(RSP_PROD_OFFSET, start);
        memory.write_index(REQ_PROD_OFFSET, start);
        Ok(FrontRing {
            memory,
            pages,
            size,
            req_prod_pvt: start,
            req_prod_published: start,
            rsp_cons: start,
            rsp_prod_seen: start,
            corrupt: None,
            entries: PhantomData,
        })
    }

    /// `RING_SIZE`: the number of slots.
    pub fn ring_size(&self) -> u32 {
        self.size
    }

    /// The number of pages the ring spans.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// `RING_FREE_REQUESTS`: how many requests can be pushed before the
    /// ring is full (0 once the ring is broken).
    pub fn free_requests(&self) -> u32 {
        if self.corrupt.is_some() {
            return 0;
        }
        self.size.saturating_sub(self.outstanding())
    }

    /// Requests written and not yet answered (published or not).
    pub fn outstanding(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Requests written but not yet published by
    /// [`FrontRing::push_and_check_notify`].
    pub fn unpublished(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.req_prod_published)
    }

    /// Whether the back end broke the ring ([`RingError::Corrupt`]).
    pub fn is_broken(&self) -> bool {
        self.corrupt.is_some()
    }

    /// The private request producer (`req_prod_pvt`): the index the next
    /// request gets.
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// The private response consumer (`rsp_cons`): the index of the next
    /// response.
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }

    /// Writes `req` into the next free slot. It is not visible to the
    /// back end until [`FrontRing::push_and_check_notify`].
    /// [`RingError::Full`] when every slot awaits a response (the caller
    /// keeps `req`), or the ring's [`RingError::Corrupt`].
    pub fn push_request(&mut self, req: &Req) -> Result<(), RingError> {
        if let Some(error) = self.corrupt {
            return Err(error);
        }
        if self.free_requests() == 0 {
            return Err(RingError::Full);
        }
        let mut buf = [0u8; MAX_ENTRY_SIZE];
        let bytes = &mut buf[..Req::SIZE];
        req.encode(bytes);
        let offset = self.slot_offset(self.req_prod_pvt);
        self.memory.write_bytes(offset, bytes);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publishes every request
    /// written so far (write barrier, then `req_prod`), then (after a full
    /// barrier) reads `req_event` and says whether the back end asked to
    /// be notified of one of the requests just published: true exactly
    /// when `new - req_event < new - old` (wrapping), `old` being the
    /// `req_prod` published before. The caller then signals the event
    /// channel. False (and nothing published) once the ring is broken.
    pub fn push_and_check_notify(&mut self) -> bool {
        if self.corrupt.is_some() {
            return false;
        }
        // Our own copy of the old value: the back end can write the
        // shared `req_prod`, and must not be able to suppress the event.
        let old = self.req_prod_published;
        let new = self.req_prod_pvt;
        self.memory.write_index(REQ_PROD_OFFSET, new);
        self.req_prod_published = new;
        self.memory.full_barrier();
        let event = self.memory.read_index(REQ_EVENT_OFFSET);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Takes the next response: `None` when there is none, `Some(Ok(_))`
    /// for a good one, `Some(Err(_))` for a response that did not decode
    /// ([`RingError::BadEntry`], consumed) or a broken ring
    /// ([`RingError::Corrupt`], reported on every call from then on).
    pub fn take_response(&mut self) -> Option<Result<Rsp, RingError>> {
        match self.available_responses() {
            Err(error) => return Some(Err(error)),
            Ok(0) => return None,
            Ok(_) => {}
        }
        let index = self.rsp_cons;
        let mut buf = [0u8; MAX_ENTRY_SIZE];
        let bytes = &mut buf[..Rsp::SIZE];
        let offset = self.slot_offset(index);
        self.memory.read_bytes(offset, bytes);
        self.rsp_cons = index.wrapping_add(1);
        Some(Rsp::decode(bytes).map_err(|bad| RingError::BadEntry {
            index,
            field: bad.field,
        }))
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: true when responses are waiting
    /// (or the ring is broken, which [`FrontRing::take_response`] then
    /// reports). Otherwise sets `rsp_event` to `rsp_cons + 1`, so the back
    /// end notifies on its next response, and checks once more after a
    /// full barrier, closing the race with a response produced meanwhile.
    /// False means: sleep until the event channel fires.
    pub fn final_check_for_responses(&mut self) -> bool {
        match self.available_responses() {
            Err(_) => return true,
            Ok(0) => {}
            Ok(_) => return true,
        }
        self.memory
            .write_index(RSP_EVENT_OFFSET, self.rsp_cons.wrapping_add(1));
        self.memory.full_barrier();
        !matches!(self.available_responses(), Ok(0))
    }

    /// Gives the memory back (after the back end has let go of it).
    pub fn into_memory(self) -> M {
        self.memory
    }

    /// The shared memory, for the owner's inspection.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// Responses produced and not consumed. Reads `rsp_prod` only when
    /// every response seen so far is consumed, and checks what it reads:
    /// at most the published requests not yet answered may be answered.
    fn available_responses(&mut self) -> Result<u32, RingError> {
        if let Some(error) = self.corrupt {
            return Err(error);
        }
        if self.rsp_prod_seen != self.rsp_cons {
            return Ok(self.rsp_prod_seen.wrapping_sub(self.rsp_cons));
        }
        let prod = self.memory.read_index(RSP_PROD_OFFSET);
        let available = prod.wrapping_sub(self.rsp_cons);
        let answerable = self.req_prod_published.wrapping_sub(self.rsp_cons);
        if available > answerable {
            let error = RingError::Corrupt {
                prod,
                cons: self.rsp_cons,
            };
            self.corrupt = Some(error);
            return Err(error);
        }
        self.rsp_prod_seen = prod;
        Ok(available)
    }

    /// The byte offset of the slot of ring index `index`.
    fn slot_offset(&self, index: u32) -> usize {
        SRING_HEADER_SIZE + (index & (self.size - 1)) as usize * Self::SLOT_SIZE
    }
}
