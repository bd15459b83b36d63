//! The generic front ring (`io/ring.h`) that netfront and blkfront share,
//! against a back end played by the fuzzer: it answers honestly, ignores
//! or moves the event indices, publishes any `rsp_prod`, and writes any
//! bytes into any slot, on a ring of one to four pages starting at any
//! index (indices wrap at 2^32).
//!
//! What must hold: nothing panics; the front end never has more requests
//! outstanding than the ring holds, nor takes more responses than it
//! published requests; a ring it found broken stays broken and yields
//! nothing more.
#![no_main]

use arbitrary::Arbitrary;
use drivers_pv::shared_ring::sim::{BackRing, SharedMemory};
use drivers_pv::shared_ring::{BadEntry, FrontRing, RingEntry};
use libfuzzer_sys::fuzz_target;

/// A request: 12 bytes (an odd size, so slots straddle page boundaries
/// in multi-page rings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Req(u32, u64);

impl RingEntry for Req {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.0.to_le_bytes());
        out[4..].copy_from_slice(&self.1.to_le_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self, BadEntry> {
        let word = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        let value = u64::from_le_bytes(bytes[4..12].try_into().unwrap());
        Ok(Req(word, value))
    }
}

/// A response: 20 bytes, whose status word must be 0 or 1 (as real
/// response types reject statuses they do not define).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rsp(u32, u32);

impl RingEntry for Rsp {
    const SIZE: usize = 20;
    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        out[..4].copy_from_slice(&self.0.to_le_bytes());
        out[4..8].copy_from_slice(&self.1.to_le_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self, BadEntry> {
        let id = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        let status = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
        if status > 1 {
            return Err(BadEntry { field: "status" });
        }
        Ok(Rsp(id, status))
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    pages: u8,
    start: u32,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    // The front end.
    Push(u64),
    PushAndCheckNotify,
    Take,
    FinalCheck,
    // The back end.
    Serve(u8),
    Publish,
    FinalCheckForRequests,
    SetReqEvent(u32),
    RawRspProd(u32),
    RawRspEvent(u32),
    RawSlot(u32, Vec<u8>),
}

fuzz_target!(|input: Input| {
    let pages = usize::from(input.pages % 4) + 1;
    let memory = SharedMemory::new(pages);
    let Ok(mut front) = FrontRing::<_, Req, Rsp>::new_at_index(memory.clone(), pages, input.start)
    else {
        return;
    };
    let mut back: BackRing<SharedMemory, Req, Rsp> = BackRing::attach(memory.clone(), pages);
    let size = front.ring_size();
    let mut pushed = 0u64;
    let mut taken = 0u64;
    for op in input.ops.into_iter().take(512) {
        match op {
            Op::Push(value) => {
                if front.push_request(&Req(pushed as u32, value)).is_ok() {
                    pushed += 1;
                }
            }
            Op::PushAndCheckNotify => {
                front.push_and_check_notify();
            }
            Op::Take => {
                let broken = front.is_broken();
                if let Some(Ok(_)) = front.take_response() {
                    assert!(!broken, "a response from a broken ring");
                    taken += 1;
                }
            }
            Op::FinalCheck => {
                front.final_check_for_responses();
            }
            Op::Serve(count) => {
                for _ in 0..count {
                    match back.take_request() {
                        Some(Ok(Req(id, _))) => {
                            let _ = back.push_response(&Rsp(id, u32::from(count & 1)));
                        }
                        _ => break,
                    }
                }
            }
            Op::Publish => {
                back.push_responses_and_check_notify();
            }
            Op::FinalCheckForRequests => {
                back.final_check_for_requests();
            }
            Op::SetReqEvent(value) => back.set_req_event(value),
            Op::RawRspProd(value) => back.publish_raw_rsp_prod(value),
            Op::RawRspEvent(value) => memory.write_u32(12, value),
            Op::RawSlot(index, bytes) => {
                let mut slot = [0u8; Rsp::SIZE];
                let n = bytes.len().min(slot.len());
                slot[..n].copy_from_slice(&bytes[..n]);
                back.write_raw_slot(index, &slot);
            }
        }
        assert!(front.outstanding() <= size);
        assert!(front.free_requests() <= size);
        assert!(taken <= pushed, "more responses than requests");
        if front.is_broken() {
            assert_eq!(front.free_requests(), 0);
        }
    }
});
