//! blkif's wire format (`io/blkif.h`, x86_64 ABI) and the bookkeeping
//! that checks every response against the requests we issued.
//!
//! A request is 112 bytes: `operation`, `nr_segments`, `handle`, `id`,
//! `sector_number`, then eleven 8-byte segments (`gref`, `first_sect`,
//! `last_sect`). An indirect request (`BLKIF_OP_INDIRECT`, when the
//! backend offers `feature-max-indirect-segments`) shares the slot:
//! `operation`, `indirect_op`, a 16-bit `nr_segments`, `id`,
//! `sector_number`, `handle` and up to eight grant references of
//! indirect pages, each an array of 512 such segments ([`Request`]).
//! A response is 16 bytes: `id`, `operation`, `status`; for an indirect
//! request blkback answers with `indirect_op`, as Linux's blkfront
//! expects, and so do we.
//! Responses come from the backend and are untrusted: [`BlkifResponse`]'s
//! decoding accepts only the three statuses blkif defines, and
//! [`InFlight::complete`] accepts only an `id` we issued that is still
//! outstanding, answered with the operation we asked for.

use core::fmt;

use crate::shared_ring::{BadEntry, RingEntry};

/// `BLKIF_OP_READ`.
pub const OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`.
pub const OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`.
pub const OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_INDIRECT`: a read or write whose segments sit in separate
/// granted pages (`struct blkif_request_indirect`).
pub const OP_INDIRECT: u8 = 6;

/// `BLKIF_RSP_OKAY`.
pub const RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR`.
pub const RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`.
pub const RSP_EOPNOTSUPP: i16 = -2;

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`.
pub const MAX_SEGMENTS: usize = 11;

/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`.
pub const MAX_INDIRECT_PAGES: usize = 8;

/// `sizeof(struct blkif_request_segment)`: one entry of an indirect page.
pub const SEGMENT_SIZE: usize = 8;

/// Segment descriptors in one indirect page (`XEN_PAGE_SIZE / 8`).
pub const SEGMENTS_PER_INDIRECT_PAGE: usize = 512;

/// Segments per indirect request this driver issues at most: one
/// indirect page, only partly used (32 data pages, 128 KiB).
pub const MAX_INDIRECT_SEGMENTS_USED: usize = 32;

/// `sizeof(struct blkif_request_indirect)` on x86_64.
pub const INDIRECT_REQUEST_SIZE: usize = 64;

/// `VDISK_CDROM` bit of `info`.
pub const VDISK_CDROM: u32 = 0x1;
/// `VDISK_REMOVABLE` bit of `info`.
pub const VDISK_REMOVABLE: u32 = 0x2;
/// `VDISK_READONLY` bit of `info`.
pub const VDISK_READONLY: u32 = 0x4;

/// The unit of `sector_number`, `first_sect` and `last_sect`, whatever
/// the disk's `sector-size`.
pub const SECTOR_SIZE: usize = 512;

/// Sectors of [`SECTOR_SIZE`] bytes in one 4 KiB page.
pub const SECTORS_PER_PAGE: u8 = 8;

/// `sizeof(struct blkif_request)` on x86_64.
pub const REQUEST_SIZE: usize = 112;
/// `sizeof(struct blkif_response)` on x86_64.
pub const RESPONSE_SIZE: usize = 16;

/// The operations this driver issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `BLKIF_OP_READ`.
    Read,
    /// `BLKIF_OP_WRITE`.
    Write,
    /// `BLKIF_OP_WRITE_BARRIER` (no segments).
    WriteBarrier,
    /// `BLKIF_OP_FLUSH_DISKCACHE` (no segments).
    FlushDiskCache,
}

impl Operation {
    /// The wire value.
    pub const fn code(self) -> u8 {
        match self {
            Operation::Read => OP_READ,
            Operation::Write => OP_WRITE,
            Operation::WriteBarrier => OP_WRITE_BARRIER,
            Operation::FlushDiskCache => OP_FLUSH_DISKCACHE,
        }
    }

    /// The operation of wire value `code`, if we issue it.
    pub const fn from_code(code: u8) -> Option<Operation> {
        match code {
            OP_READ => Some(Operation::Read),
            OP_WRITE => Some(Operation::Write),
            OP_WRITE_BARRIER => Some(Operation::WriteBarrier),
            OP_FLUSH_DISKCACHE => Some(Operation::FlushDiskCache),
            _ => None,
        }
    }
}

/// One segment: a granted page and the 512-byte sectors of it used
/// (`first_sect..=last_sect`, both below 8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Segment {
    /// The grant reference of the data page.
    pub gref: u32,
    /// The first sector of the page transferred.
    pub first_sect: u8,
    /// The last sector of the page transferred (inclusive).
    pub last_sect: u8,
}

impl Segment {
    /// Bytes this segment moves.
    pub const fn bytes(&self) -> usize {
        (self.last_sect as usize + 1 - self.first_sect as usize) * SECTOR_SIZE
    }
}

/// `struct blkif_request` (read, write, barrier, flush).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlkifRequest {
    /// What to do.
    pub operation: Operation,
    /// The virtual device handle (`virtual-device`'s low 16 bits).
    pub handle: u16,
    /// Our id, echoed in the response.
    pub id: u64,
    /// The first 512-byte sector on the disk.
    pub sector_number: u64,
    /// How many of `segments` are used (0 for flush and barrier).
    pub nr_segments: u8,
    /// The data pages.
    pub segments: [Segment; MAX_SEGMENTS],
}

/// What was wrong with a request we were about to issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestError {
    /// More than [`MAX_SEGMENTS`] segments, or none for a read or write,
    /// or some for a flush or barrier.
    SegmentCount,
    /// A segment with `first_sect > last_sect` or `last_sect > 7`.
    SegmentRange,
}

impl BlkifRequest {
    /// A request with no segments yet.
    pub const fn new(operation: Operation, handle: u16, id: u64, sector_number: u64) -> Self {
        BlkifRequest {
            operation,
            handle,
            id,
            sector_number,
            nr_segments: 0,
            segments: [Segment {
                gref: 0,
                first_sect: 0,
                last_sect: 0,
            }; MAX_SEGMENTS],
        }
    }

    /// Adds a segment; fails when all eleven are used or the range is
    /// not inside one page.
    pub fn push_segment(&mut self, segment: Segment) -> Result<(), RequestError> {
        if self.nr_segments as usize >= MAX_SEGMENTS {
            return Err(RequestError::SegmentCount);
        }
        if segment.first_sect > segment.last_sect || segment.last_sect >= SECTORS_PER_PAGE {
            return Err(RequestError::SegmentRange);
        }
        self.segments[self.nr_segments as usize] = segment;
        self.nr_segments += 1;
        Ok(())
    }

    /// The used segments.
    pub fn used_segments(&self) -> &[Segment] {
        &self.segments[..(self.nr_segments as usize).min(MAX_SEGMENTS)]
    }

    /// Bytes the request moves.
    pub fn bytes(&self) -> usize {
        self.used_segments().iter().map(Segment::bytes).sum()
    }

    /// Checks the request is one blkback accepts.
    pub fn check(&self) -> Result<(), RequestError> {
        let count = self.nr_segments as usize;
        let data = matches!(self.operation, Operation::Read | Operation::Write);
        if count > MAX_SEGMENTS || (data && count == 0) || (!data && count != 0) {
            return Err(RequestError::SegmentCount);
        }
        if self
            .used_segments()
            .iter()
            .any(|s| s.first_sect > s.last_sect || s.last_sect >= SECTORS_PER_PAGE)
        {
            return Err(RequestError::SegmentRange);
        }
        Ok(())
    }
}

impl RingEntry for BlkifRequest {
    const SIZE: usize = REQUEST_SIZE;

    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        out[0] = self.operation.code();
        out[1] = self.nr_segments;
        out[2..4].copy_from_slice(&self.handle.to_le_bytes());
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..24].copy_from_slice(&self.sector_number.to_le_bytes());
        for (i, segment) in self.segments.iter().enumerate() {
            let at = 24 + i * 8;
            out[at..at + 4].copy_from_slice(&segment.gref.to_le_bytes());
            out[at + 4] = segment.first_sect;
            out[at + 5] = segment.last_sect;
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, BadEntry> {
        let operation = Operation::from_code(bytes[0]).ok_or(BadEntry { field: "operation" })?;
        let mut request = BlkifRequest::new(
            operation,
            u16::from_le_bytes([bytes[2], bytes[3]]),
            u64_at(bytes, 8),
            u64_at(bytes, 16),
        );
        request.nr_segments = bytes[1];
        for (i, segment) in request.segments.iter_mut().enumerate() {
            let at = 24 + i * 8;
            segment.gref =
                u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
            segment.first_sect = bytes[at + 4];
            segment.last_sect = bytes[at + 5];
        }
        request.check().map_err(|_| BadEntry {
            field: "nr_segments",
        })?;
        Ok(request)
    }
}

/// Writes `segments` as an indirect page's array of
/// `blkif_request_segment` (8 bytes each) into `out`, which must hold
/// `segments.len() * SEGMENT_SIZE` bytes.
pub fn encode_segments(segments: &[Segment], out: &mut [u8]) {
    for (segment, bytes) in segments.iter().zip(out.chunks_exact_mut(SEGMENT_SIZE)) {
        bytes.fill(0);
        bytes[0..4].copy_from_slice(&segment.gref.to_le_bytes());
        bytes[4] = segment.first_sect;
        bytes[5] = segment.last_sect;
    }
}

/// Reads one `blkif_request_segment` (8 bytes) back (the backend's side;
/// used by the simulated backend and the layout test).
pub fn decode_segment(bytes: &[u8; SEGMENT_SIZE]) -> Segment {
    Segment {
        gref: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        first_sect: bytes[4],
        last_sect: bytes[5],
    }
}

/// `struct blkif_request_indirect`: a read or write of `nr_segments`
/// pages whose segment descriptors are in the indirect pages
/// `indirect_grefs` (512 per page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IndirectRequest {
    /// `indirect_op`: [`Operation::Read`] or [`Operation::Write`].
    pub operation: Operation,
    /// Segments described by the indirect pages.
    pub nr_segments: u16,
    /// The virtual device handle.
    pub handle: u16,
    /// Our id, echoed in the response.
    pub id: u64,
    /// The first 512-byte sector on the disk.
    pub sector_number: u64,
    /// Grant references of the indirect pages (the first
    /// `nr_segments.div_ceil(512)` are used).
    pub indirect_grefs: [u32; MAX_INDIRECT_PAGES],
}

impl IndirectRequest {
    /// Indirect pages the request uses.
    pub const fn indirect_pages(&self) -> usize {
        (self.nr_segments as usize).div_ceil(SEGMENTS_PER_INDIRECT_PAGE)
    }

    /// Checks the request is one blkback accepts: a read or write of at
    /// least one and at most `8 * 512` segments.
    pub fn check(&self) -> Result<(), RequestError> {
        if !matches!(self.operation, Operation::Read | Operation::Write) {
            return Err(RequestError::SegmentCount);
        }
        let count = self.nr_segments as usize;
        if count == 0 || count > MAX_INDIRECT_PAGES * SEGMENTS_PER_INDIRECT_PAGE {
            return Err(RequestError::SegmentCount);
        }
        Ok(())
    }
}

/// What goes on blkfront's ring: a request with its segments inline, or
/// an indirect one (`BLKIF_OP_INDIRECT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// `struct blkif_request`.
    Direct(BlkifRequest),
    /// `struct blkif_request_indirect`.
    Indirect(IndirectRequest),
}

impl Request {
    /// The operation asked for (`indirect_op` for an indirect request).
    pub const fn operation(&self) -> Operation {
        match self {
            Request::Direct(request) => request.operation,
            Request::Indirect(request) => request.operation,
        }
    }

    /// The id.
    pub const fn id(&self) -> u64 {
        match self {
            Request::Direct(request) => request.id,
            Request::Indirect(request) => request.id,
        }
    }

    /// The first sector.
    pub const fn sector_number(&self) -> u64 {
        match self {
            Request::Direct(request) => request.sector_number,
            Request::Indirect(request) => request.sector_number,
        }
    }

    /// Data segments (pages) the request moves.
    pub const fn nr_segments(&self) -> usize {
        match self {
            Request::Direct(request) => request.nr_segments as usize,
            Request::Indirect(request) => request.nr_segments as usize,
        }
    }
}

impl RingEntry for Request {
    const SIZE: usize = REQUEST_SIZE;

    fn encode(&self, out: &mut [u8]) {
        match self {
            Request::Direct(request) => request.encode(out),
            Request::Indirect(request) => {
                out.fill(0);
                out[0] = OP_INDIRECT;
                out[1] = request.operation.code();
                out[2..4].copy_from_slice(&request.nr_segments.to_le_bytes());
                out[8..16].copy_from_slice(&request.id.to_le_bytes());
                out[16..24].copy_from_slice(&request.sector_number.to_le_bytes());
                out[24..26].copy_from_slice(&request.handle.to_le_bytes());
                for (i, gref) in request.indirect_grefs.iter().enumerate() {
                    let at = 28 + i * 4;
                    out[at..at + 4].copy_from_slice(&gref.to_le_bytes());
                }
            }
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, BadEntry> {
        if bytes[0] != OP_INDIRECT {
            return BlkifRequest::decode(bytes).map(Request::Direct);
        }
        let operation = Operation::from_code(bytes[1]).ok_or(BadEntry {
            field: "indirect_op",
        })?;
        let mut request = IndirectRequest {
            operation,
            nr_segments: u16::from_le_bytes([bytes[2], bytes[3]]),
            handle: u16::from_le_bytes([bytes[24], bytes[25]]),
            id: u64_at(bytes, 8),
            sector_number: u64_at(bytes, 16),
            indirect_grefs: [0; MAX_INDIRECT_PAGES],
        };
        for (i, gref) in request.indirect_grefs.iter_mut().enumerate() {
            let at = 28 + i * 4;
            *gref = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        }
        request.check().map_err(|_| BadEntry {
            field: "nr_segments",
        })?;
        Ok(Request::Indirect(request))
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// A response's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// `BLKIF_RSP_OKAY`.
    Okay,
    /// `BLKIF_RSP_ERROR`.
    Error,
    /// `BLKIF_RSP_EOPNOTSUPP`.
    NotSupported,
}

/// `struct blkif_response`, decoded and checked: the operation is a
/// wire value (checked against the request by [`InFlight::complete`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlkifResponse {
    /// The id of the request answered.
    pub id: u64,
    /// The operation, as the backend wrote it.
    pub operation: u8,
    /// The outcome.
    pub status: Status,
}

impl RingEntry for BlkifResponse {
    const SIZE: usize = RESPONSE_SIZE;

    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8] = self.operation;
        let status = match self.status {
            Status::Okay => RSP_OKAY,
            Status::Error => RSP_ERROR,
            Status::NotSupported => RSP_EOPNOTSUPP,
        };
        out[10..12].copy_from_slice(&status.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Result<Self, BadEntry> {
        let status = match i16::from_le_bytes([bytes[10], bytes[11]]) {
            RSP_OKAY => Status::Okay,
            RSP_ERROR => Status::Error,
            RSP_EOPNOTSUPP => Status::NotSupported,
            _ => return Err(BadEntry { field: "status" }),
        };
        Ok(BlkifResponse {
            id: u64_at(bytes, 0),
            operation: bytes[8],
            status,
        })
    }
}

/// Why a response was refused (the backend is broken; the request it
/// may have meant stays outstanding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseError {
    /// The id names no request we have outstanding (never issued, or
    /// already answered).
    UnknownId(u64),
    /// The operation is not the one the request asked for.
    WrongOperation {
        /// The id answered.
        id: u64,
        /// What the request asked for.
        expected: u8,
        /// What the response says.
        found: u8,
    },
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::UnknownId(id) => write!(f, "response for unknown request id {id}"),
            ResponseError::WrongOperation {
                id,
                expected,
                found,
            } => write!(
                f,
                "response {id} has operation {found}, the request was {expected}"
            ),
        }
    }
}

/// Requests issued and not yet answered, by id: ids are slot numbers
/// `0..capacity` plus a generation in the high 32 bits, so a stale or
/// repeated response is recognised as such.
#[derive(Clone, Debug)]
pub struct InFlight<T> {
    slots: alloc::vec::Vec<Option<(u64, Operation, T)>>,
    generation: u32,
}

impl<T> InFlight<T> {
    /// Room for `capacity` outstanding requests.
    pub fn new(capacity: usize) -> Self {
        let mut slots = alloc::vec::Vec::with_capacity(capacity);
        slots.resize_with(capacity, || None);
        InFlight {
            slots,
            generation: 1,
        }
    }

    /// Outstanding requests.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|slot| slot.is_some()).count()
    }

    /// Whether no request is outstanding.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// A free slot number, if any.
    pub fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(Option::is_none)
    }

    /// Records a request in slot `slot` (which must be free) and returns
    /// the id to send; `None` if the slot is out of range or busy.
    pub fn issue(&mut self, slot: usize, operation: Operation, context: T) -> Option<u64> {
        let entry = self.slots.get_mut(slot)?;
        if entry.is_some() {
            return None;
        }
        self.generation = self.generation.wrapping_add(1).max(1);
        let id = (u64::from(self.generation) << 32) | slot as u64;
        *entry = Some((id, operation, context));
        Some(id)
    }

    /// Matches a response to its request and frees the slot: gives back
    /// the slot, the request's context and the status.
    pub fn complete(
        &mut self,
        response: &BlkifResponse,
    ) -> Result<(usize, T, Status), ResponseError> {
        let slot = (response.id & 0xffff_ffff) as usize;
        let entry = self
            .slots
            .get_mut(slot)
            .ok_or(ResponseError::UnknownId(response.id))?;
        match entry {
            Some((id, operation, _)) if *id == response.id => {
                if operation.code() != response.operation {
                    return Err(ResponseError::WrongOperation {
                        id: response.id,
                        expected: operation.code(),
                        found: response.operation,
                    });
                }
            }
            _ => return Err(ResponseError::UnknownId(response.id)),
        }
        let (_, _, context) = entry.take().ok_or(ResponseError::UnknownId(response.id))?;
        Ok((slot, context, response.status))
    }
}
