//! Host tests of blkif's wire format and response checking.

use super::wire::*;
use super::{check_range, BlockError, DiskInfo};
use crate::shared_ring::sim::{BackRing, SharedMemory};
use crate::shared_ring::{FrontRing, RingEntry, RingError};

fn disk(sectors: u64, sector_size: u32) -> DiskInfo {
    DiskInfo {
        sectors,
        sector_size,
        info: 0,
        flush: true,
        barrier: false,
        persistent: super::Persistent::NotOffered,
        indirect_offered: 0,
        indirect_segments: 0,
        max_ring_page_order: 0,
        ring_pages: 1,
    }
}

#[test]
fn request_layout_matches_blkif_h() {
    let mut request = BlkifRequest::new(Operation::Write, 0x1234, 0x0102_0304_0506_0708, 0x1122);
    request
        .push_segment(Segment {
            gref: 0xaabbccdd,
            first_sect: 1,
            last_sect: 7,
        })
        .unwrap();
    let mut bytes = [0xffu8; REQUEST_SIZE];
    request.encode(&mut bytes);
    assert_eq!(bytes[0], OP_WRITE);
    assert_eq!(bytes[1], 1);
    assert_eq!(&bytes[2..4], &[0x34, 0x12]);
    assert_eq!(&bytes[4..8], &[0; 4], "padding before id");
    assert_eq!(&bytes[8..16], &0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!(&bytes[16..24], &0x1122u64.to_le_bytes());
    assert_eq!(&bytes[24..28], &0xaabbccddu32.to_le_bytes());
    assert_eq!((bytes[28], bytes[29]), (1, 7));
    assert!(bytes[30..].iter().all(|&b| b == 0));
    assert_eq!(BlkifRequest::decode(&bytes).unwrap(), request);
}

#[test]
fn response_layout_and_status_checking() {
    let response = BlkifResponse {
        id: 99,
        operation: OP_READ,
        status: Status::NotSupported,
    };
    let mut bytes = [0u8; RESPONSE_SIZE];
    response.encode(&mut bytes);
    assert_eq!(&bytes[0..8], &99u64.to_le_bytes());
    assert_eq!(bytes[8], 0);
    assert_eq!(&bytes[10..12], &(-2i16).to_le_bytes());
    assert_eq!(BlkifResponse::decode(&bytes).unwrap(), response);
    for status in [1i16, -3, i16::MIN, i16::MAX] {
        bytes[10..12].copy_from_slice(&status.to_le_bytes());
        assert_eq!(
            BlkifResponse::decode(&bytes).unwrap_err().field,
            "status",
            "status {status}"
        );
    }
}

#[test]
fn segments_are_checked() {
    let mut request = BlkifRequest::new(Operation::Read, 0, 1, 0);
    assert_eq!(request.check(), Err(RequestError::SegmentCount));
    let bad = Segment {
        gref: 1,
        first_sect: 3,
        last_sect: 2,
    };
    assert_eq!(request.push_segment(bad), Err(RequestError::SegmentRange));
    let past = Segment {
        gref: 1,
        first_sect: 0,
        last_sect: 8,
    };
    assert_eq!(request.push_segment(past), Err(RequestError::SegmentRange));
    let page = Segment {
        gref: 1,
        first_sect: 0,
        last_sect: 7,
    };
    for _ in 0..MAX_SEGMENTS {
        request.push_segment(page).unwrap();
    }
    assert_eq!(request.push_segment(page), Err(RequestError::SegmentCount));
    assert_eq!(request.bytes(), MAX_SEGMENTS * 4096);
    assert_eq!(request.check(), Ok(()));
    let mut flush = BlkifRequest::new(Operation::FlushDiskCache, 0, 1, 0);
    assert_eq!(flush.check(), Ok(()));
    flush.push_segment(page).unwrap();
    assert_eq!(flush.check(), Err(RequestError::SegmentCount));
}

#[test]
fn responses_must_match_outstanding_requests() {
    let mut in_flight = InFlight::new(4);
    let read = in_flight.issue(0, Operation::Read, "a").unwrap();
    let write = in_flight.issue(1, Operation::Write, "b").unwrap();
    assert_eq!(in_flight.issue(1, Operation::Write, "c"), None, "busy slot");
    assert_eq!(
        in_flight.issue(4, Operation::Write, "c"),
        None,
        "no such slot"
    );
    assert_eq!(in_flight.len(), 2);
    assert_eq!(in_flight.free_slot(), Some(2));

    let answer = |id, operation, status| BlkifResponse {
        id,
        operation,
        status,
    };
    // Never issued.
    assert_eq!(
        in_flight.complete(&answer(3, OP_READ, Status::Okay)),
        Err(ResponseError::UnknownId(3))
    );
    assert_eq!(
        in_flight.complete(&answer(u64::MAX, OP_READ, Status::Okay)),
        Err(ResponseError::UnknownId(u64::MAX))
    );
    // Right slot, stale generation.
    assert_eq!(
        in_flight.complete(&answer(read ^ (1 << 40), OP_READ, Status::Okay)),
        Err(ResponseError::UnknownId(read ^ (1 << 40)))
    );
    // Wrong operation: refused, still outstanding.
    assert_eq!(
        in_flight.complete(&answer(read, OP_WRITE, Status::Okay)),
        Err(ResponseError::WrongOperation {
            id: read,
            expected: OP_READ,
            found: OP_WRITE
        })
    );
    assert_eq!(
        in_flight.complete(&answer(read, OP_READ, Status::Okay)),
        Ok((0, "a", Status::Okay))
    );
    // Twice: refused.
    assert_eq!(
        in_flight.complete(&answer(read, OP_READ, Status::Okay)),
        Err(ResponseError::UnknownId(read))
    );
    assert_eq!(
        in_flight.complete(&answer(write, OP_WRITE, Status::Error)),
        Ok((1, "b", Status::Error))
    );
    assert!(in_flight.is_empty());
    // Reusing a slot gives a new id.
    let again = in_flight.issue(0, Operation::Read, "d").unwrap();
    assert_ne!(again, read);
}

#[test]
fn ranges_are_checked() {
    let info = disk(100, 512);
    assert_eq!(check_range(&info, 0, 512 * 100), Ok(()));
    assert_eq!(
        check_range(&info, 1, 512 * 100),
        Err(BlockError::OutOfRange)
    );
    assert_eq!(check_range(&info, 0, 100), Err(BlockError::OutOfRange));
    assert_eq!(
        check_range(&info, u64::MAX, 512),
        Err(BlockError::OutOfRange)
    );
    let big = disk(800, 4096);
    assert_eq!(check_range(&big, 8, 4096), Ok(()));
    assert_eq!(check_range(&big, 4, 4096), Err(BlockError::OutOfRange));
    assert_eq!(check_range(&big, 8, 512), Err(BlockError::OutOfRange));
}

#[test]
fn summary_line_names_the_features() {
    let line = alloc::format!("{}", disk(131072, 512));
    assert!(line.starts_with("blkfront: 131072 sectors of 512 bytes, features: flush=true"));
    assert!(line.contains("barrier=false, persistent=false (backend did not offer), indirect="));
    assert!(line.contains("ring-pages=1"));
    let mut info = disk(8, 512);
    info.persistent = super::Persistent::On;
    assert!(alloc::format!("{info}").contains(", persistent=true, "));
    info.persistent = super::Persistent::TurnedOff;
    assert!(alloc::format!("{info}").contains(", persistent=false (we turned it off), "));
}

#[test]
fn persistent_grants_are_on_unless_the_command_line_turns_them_off() {
    use super::Options;
    assert!(Options::default().persistent);
    assert!(Options::from_cmdline("wait_ready=120 chunk_kib=1024").persistent);
    assert!(!Options::from_cmdline("x=1 blkfront.persistent=0").persistent);
    // The last word wins; anything but 0 or 1 is ignored.
    assert!(Options::from_cmdline("blkfront.persistent=0 blkfront.persistent=1").persistent);
    assert!(!Options::from_cmdline("blkfront.persistent=0 blkfront.persistent=no").persistent);
    assert!(Options::from_cmdline("xblkfront.persistent=0").persistent);
}

#[test]
fn a_simulated_backend_answers_and_misbehaves() {
    let memory = SharedMemory::new(1);
    let mut front: FrontRing<_, BlkifRequest, BlkifResponse> =
        FrontRing::new(memory.clone(), 1).unwrap();
    let mut back: BackRing<_, BlkifRequest, BlkifResponse> = BackRing::attach(memory, 1);
    let mut in_flight = InFlight::new(32);
    let id = in_flight.issue(5, Operation::FlushDiskCache, ()).unwrap();
    front
        .push_request(&BlkifRequest::new(Operation::FlushDiskCache, 0, id, 0))
        .unwrap();
    front.push_and_check_notify();
    let request = back.take_request().unwrap().unwrap();
    assert_eq!(request.operation, Operation::FlushDiskCache);
    back.push_response(&BlkifResponse {
        id: request.id,
        operation: OP_FLUSH_DISKCACHE,
        status: Status::Okay,
    })
    .unwrap();
    back.push_responses_and_check_notify();
    let response = front.take_response().unwrap().unwrap();
    assert_eq!(in_flight.complete(&response), Ok((5, (), Status::Okay)));
    assert!(front.take_response().is_none());
    // An invented answer with a status blkif does not define.
    let id = in_flight.issue(0, Operation::Read, ()).unwrap();
    let mut read = BlkifRequest::new(Operation::Read, 0, id, 0);
    read.push_segment(Segment {
        gref: 1,
        first_sect: 0,
        last_sect: 0,
    })
    .unwrap();
    front.push_request(&read).unwrap();
    front.push_and_check_notify();
    let index = back.rsp_prod_pvt();
    let mut bytes = [0u8; RESPONSE_SIZE];
    bytes[..8].copy_from_slice(&id.to_le_bytes());
    bytes[10..12].copy_from_slice(&7i16.to_le_bytes());
    back.write_raw_slot(index, &bytes);
    back.publish_raw_rsp_prod(index.wrapping_add(1));
    assert_eq!(
        front.take_response(),
        Some(Err(RingError::BadEntry {
            index,
            field: "status"
        }))
    );
}
