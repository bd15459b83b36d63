//! blkif's wire format and the back end of its shared ring, as pure
//! code over any [`SharedPage`] (`io/blkif.h`, `io/ring.h`, x86_64).
//!
//! The shared ring page starts with `req_prod`, `req_event`, `rsp_prod`,
//! `rsp_event` (`u32` each) and 48 bytes of padding; its entries begin
//! at byte 64 and are 112 bytes each (the larger of request and
//! response), 32 of them in one page (the largest power of two that
//! fits). A request is `operation` (u8), `nr_segments` (u8), `handle`
//! (u16), `id` (u64 at 8), `sector_number` (u64 at 16) and eleven
//! segments of `{ gref: u32, first_sect: u8, last_sect: u8, pad }` from
//! byte 24; an indirect request (`operation` 6) has `indirect_op` at 1, a
//! u16 `nr_segments` at 2, `handle` at 24 and eight `indirect_grefs` from
//! 28. A response is `id` (u64), `operation` (u8 at 8), `status` (i16 at
//! 10). Requests are copied out of the page once, then parsed.

// The operations, statuses and limits are the frontend's own
// definitions (`drivers_pv::blkfront::wire`, checked against Xen's
// header by `drivers-pv/tests/blkif_layout.rs`).
pub use drivers_pv::blkfront::wire::{
    MAX_INDIRECT_PAGES, MAX_SEGMENTS, OP_FLUSH_DISKCACHE, OP_INDIRECT, OP_READ, OP_WRITE,
    OP_WRITE_BARRIER, RSP_EOPNOTSUPP, RSP_ERROR, RSP_OKAY, SEGMENTS_PER_INDIRECT_PAGE,
};
/// `BLKIF_OP_DISCARD` (the frontend never issues it).
#[cfg(test)]
pub const OP_DISCARD: u8 = 5;

/// Offsets in the shared ring page.
pub const REQ_PROD: usize = 0;
/// `req_event`.
pub const REQ_EVENT: usize = 4;
/// `rsp_prod`.
pub const RSP_PROD: usize = 8;
/// `rsp_event`.
pub const RSP_EVENT: usize = 12;
/// The first entry.
pub const ENTRIES: usize = 64;
/// Bytes per entry (`sizeof(union blkif_sring_entry)`).
pub const ENTRY: usize = 112;
/// Entries in a one-page ring.
pub const RING_SIZE: u32 = 32;
/// Bytes of a response.
pub const RESPONSE: usize = 16;

/// Memory shared with the frontend: copies in and out, nothing else.
pub trait SharedPage {
    /// Copies bytes out.
    fn read_bytes(&self, offset: usize, out: &mut [u8]);
    /// Copies bytes in.
    fn write_bytes(&self, offset: usize, data: &[u8]);
    /// One aligned word.
    fn read_word(&self, offset: usize) -> u32;
    /// One aligned word.
    fn write_word(&self, offset: usize, value: u32);
}

impl SharedPage for crate::gntdev::Mapping {
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        self.read(offset, out)
    }
    fn write_bytes(&self, offset: usize, data: &[u8]) {
        self.write(offset, data)
    }
    fn read_word(&self, offset: usize) -> u32 {
        self.read_u32(offset)
    }
    fn write_word(&self, offset: usize, value: u32) {
        self.write_u32(offset, value)
    }
}

/// A page in our own memory, for the tests.
#[cfg(test)]
pub struct TestPage(pub std::cell::RefCell<Vec<u8>>);

#[cfg(test)]
impl TestPage {
    /// A zeroed page.
    pub fn new() -> TestPage {
        TestPage(std::cell::RefCell::new(vec![0; 4096]))
    }
}

#[cfg(test)]
impl SharedPage for TestPage {
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.0.borrow()[offset..offset + out.len()]);
    }
    fn write_bytes(&self, offset: usize, data: &[u8]) {
        self.0.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
    }
    fn read_word(&self, offset: usize) -> u32 {
        let mut b = [0; 4];
        self.read_bytes(offset, &mut b);
        u32::from_le_bytes(b)
    }
    fn write_word(&self, offset: usize, value: u32) {
        self.write_bytes(offset, &value.to_le_bytes())
    }
}

/// One data segment: a granted page and the 512-byte sectors used in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The grant reference of the page.
    pub gref: u32,
    /// The first sector used (0..=7).
    pub first_sect: u8,
    /// The last sector used (`first_sect..=7`).
    pub last_sect: u8,
}

impl Segment {
    /// Decodes 8 bytes.
    pub fn decode(bytes: &[u8]) -> Segment {
        Segment {
            gref: u32::from_le_bytes(bytes[0..4].try_into().unwrap()),
            first_sect: bytes[4],
            last_sect: bytes[5],
        }
    }

    /// Encodes to 8 bytes (for the tests' frontend).
    #[cfg(test)]
    pub fn encode(&self) -> [u8; 8] {
        let mut out = [0; 8];
        out[0..4].copy_from_slice(&self.gref.to_le_bytes());
        out[4] = self.first_sect;
        out[5] = self.last_sect;
        out
    }
}

/// A request as copied off the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `operation` as sent.
    pub operation: u8,
    /// For `BLKIF_OP_INDIRECT`, the read or write it carries.
    pub indirect_op: u8,
    /// Segments claimed.
    pub nr_segments: u16,
    /// The device handle.
    pub handle: u16,
    /// The frontend's id, echoed in the response.
    pub id: u64,
    /// The first 512-byte sector.
    pub sector: u64,
    /// A direct request's segments (the first `nr_segments`, at most 11).
    pub segments: Vec<Segment>,
    /// An indirect request's page references (as many as its segments need).
    pub indirect_grefs: Vec<u32>,
}

impl Request {
    /// Parses one entry (112 bytes).
    pub fn decode(bytes: &[u8; ENTRY]) -> Request {
        let u16_at = |i: usize| u16::from_le_bytes(bytes[i..i + 2].try_into().unwrap());
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        let operation = bytes[0];
        if operation == OP_INDIRECT {
            let nr_segments = u16_at(2);
            let pages = (nr_segments as usize)
                .div_ceil(SEGMENTS_PER_INDIRECT_PAGE)
                .min(MAX_INDIRECT_PAGES);
            Request {
                operation,
                indirect_op: bytes[1],
                nr_segments,
                handle: u16_at(24),
                id: u64_at(8),
                sector: u64_at(16),
                segments: Vec::new(),
                indirect_grefs: (0..pages).map(|i| u32_at(28 + 4 * i)).collect(),
            }
        } else {
            let nr_segments = u16::from(bytes[1]);
            let segments = (0..(nr_segments as usize).min(MAX_SEGMENTS))
                .map(|i| Segment::decode(&bytes[24 + 8 * i..32 + 8 * i]))
                .collect();
            Request {
                operation,
                indirect_op: 0,
                nr_segments,
                handle: u16_at(2),
                id: u64_at(8),
                sector: u64_at(16),
                segments,
                indirect_grefs: Vec::new(),
            }
        }
    }

    /// Encodes a direct request (for the tests' frontend).
    #[cfg(test)]
    pub fn encode(&self) -> [u8; ENTRY] {
        let mut out = [0u8; ENTRY];
        out[0] = self.operation;
        out[1] = self.nr_segments as u8;
        out[2..4].copy_from_slice(&self.handle.to_le_bytes());
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..24].copy_from_slice(&self.sector.to_le_bytes());
        for (i, segment) in self.segments.iter().enumerate().take(MAX_SEGMENTS) {
            out[24 + 8 * i..32 + 8 * i].copy_from_slice(&segment.encode());
        }
        out
    }

    /// The read or write this moves data for (`indirect_op` for an
    /// indirect request).
    pub fn data_op(&self) -> u8 {
        if self.operation == OP_INDIRECT {
            self.indirect_op
        } else {
            self.operation
        }
    }
}

/// A response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The request's operation.
    pub operation: u8,
    /// `BLKIF_RSP_*` (or anything, from a hostile backend).
    pub status: i16,
}

impl Response {
    /// Encodes 16 bytes.
    pub fn encode(&self) -> [u8; RESPONSE] {
        let mut out = [0u8; RESPONSE];
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8] = self.operation;
        out[10..12].copy_from_slice(&self.status.to_le_bytes());
        out
    }

    /// Decodes 16 bytes.
    #[cfg(test)]
    pub fn decode(bytes: &[u8]) -> Response {
        Response {
            id: u64::from_le_bytes(bytes[0..8].try_into().unwrap()),
            operation: bytes[8],
            status: i16::from_le_bytes(bytes[10..12].try_into().unwrap()),
        }
    }
}

/// Byte offset of ring entry `index` (free-running).
pub fn entry_offset(index: u32) -> usize {
    ENTRIES + (index % RING_SIZE) as usize * ENTRY
}

/// The back end's private ring indices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackRing {
    /// Requests consumed.
    pub req_cons: u32,
    /// Responses written (published up to `rsp_prod`).
    pub rsp_prod_pvt: u32,
}

/// Whether `req_prod` is plausible: no more requests unconsumed than the
/// ring holds, nor more outstanding (unanswered) than it holds.
pub fn check_req_prod(req_prod: u32, ring: &BackRing) -> Result<u32, String> {
    check_req_prod_in(req_prod, ring, RING_SIZE)
}

/// [`check_req_prod`] for a ring of `size` entries (netif's hold 256).
pub fn check_req_prod_in(req_prod: u32, ring: &BackRing, size: u32) -> Result<u32, String> {
    let unconsumed = req_prod.wrapping_sub(ring.req_cons);
    let unanswered = req_prod.wrapping_sub(ring.rsp_prod_pvt);
    if unconsumed > size || unanswered > size {
        return Err(format!(
            "ring: req_prod {req_prod} is {unanswered} ahead of the responses ({} written, {} consumed; ring of {size})",
            ring.rsp_prod_pvt, ring.req_cons
        ));
    }
    Ok(unconsumed)
}

/// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`'s test: notify if `rsp_event`
/// lies in `(old, new]`.
pub fn needs_notify(old: u32, new: u32, rsp_event: u32) -> bool {
    new.wrapping_sub(rsp_event) < new.wrapping_sub(old)
}

/// Whether requests `(old, new]` crossed the `req_event` we set (so the
/// frontend owed us an event).
pub fn owed_event(old: u32, new: u32, req_event: u32) -> bool {
    new.wrapping_sub(req_event) < new.wrapping_sub(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips() {
        let request = Request {
            operation: OP_WRITE,
            indirect_op: 0,
            nr_segments: 2,
            handle: 0xca00,
            id: 0x1122_3344_5566_7788,
            sector: 4096,
            segments: vec![
                Segment {
                    gref: 9,
                    first_sect: 0,
                    last_sect: 7,
                },
                Segment {
                    gref: 10,
                    first_sect: 2,
                    last_sect: 3,
                },
            ],
            indirect_grefs: Vec::new(),
        };
        assert_eq!(Request::decode(&request.encode()), request);
    }

    #[test]
    fn an_indirect_request_names_its_pages() {
        let mut bytes = [0u8; ENTRY];
        bytes[0] = OP_INDIRECT;
        bytes[1] = OP_READ;
        bytes[2..4].copy_from_slice(&600u16.to_le_bytes());
        bytes[24..26].copy_from_slice(&0xca00u16.to_le_bytes());
        bytes[28..32].copy_from_slice(&77u32.to_le_bytes());
        bytes[32..36].copy_from_slice(&78u32.to_le_bytes());
        let request = Request::decode(&bytes);
        assert_eq!(request.data_op(), OP_READ);
        assert_eq!(request.nr_segments, 600);
        assert_eq!(request.indirect_grefs, vec![77, 78]);
        assert_eq!(request.handle, 0xca00);
    }

    #[test]
    fn entries_travel_through_the_shared_page() {
        let page = TestPage::new();
        let mut request = Request::decode(&[0u8; ENTRY]);
        request.id = 77;
        request.sector = 9;
        page.write_bytes(entry_offset(RING_SIZE + 3), &request.encode());
        page.write_word(REQ_PROD, RING_SIZE + 4);
        let mut bytes = [0u8; ENTRY];
        page.read_bytes(entry_offset(3), &mut bytes);
        assert_eq!(Request::decode(&bytes), request);
        assert_eq!(page.read_word(REQ_PROD), RING_SIZE + 4);
    }

    #[test]
    fn responses_are_sixteen_bytes() {
        let response = Response {
            id: 5,
            operation: OP_READ,
            status: RSP_ERROR,
        };
        let bytes = response.encode();
        assert_eq!(&bytes[10..12], &[0xff, 0xff]);
        assert_eq!(Response::decode(&bytes), response);
        // 32 entries of 112 bytes after the 64-byte header fit a page.
        assert!(entry_offset(31) + ENTRY <= 4096);
        assert_eq!(entry_offset(33), ENTRIES + ENTRY);
    }

    #[test]
    fn req_prod_may_not_run_past_the_ring() {
        let ring = BackRing {
            req_cons: 10,
            rsp_prod_pvt: 8,
        };
        assert_eq!(check_req_prod(12, &ring), Ok(2));
        assert!(check_req_prod(8 + 33, &ring).is_err());
        assert!(check_req_prod(9, &ring).is_err(), "backwards");
        // Wrapping indices are fine.
        let wrapped = BackRing {
            req_cons: u32::MAX - 1,
            rsp_prod_pvt: u32::MAX - 1,
        };
        assert_eq!(check_req_prod(3, &wrapped), Ok(5));
    }

    #[test]
    fn notification_tests_follow_ring_h() {
        assert!(needs_notify(4, 6, 5));
        assert!(needs_notify(4, 6, 6));
        assert!(!needs_notify(4, 6, 7));
        assert!(!needs_notify(4, 6, 4));
        assert!(owed_event(10, 12, 11));
        assert!(!owed_event(10, 12, 13));
    }
}
