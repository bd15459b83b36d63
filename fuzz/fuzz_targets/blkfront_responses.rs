//! blkfront's request engine against a blkback played by the fuzzer.
//!
//! The engine runs transfers (reads, writes, flushes, barriers, direct
//! or indirect, over a ring of one to four pages) and at every wait the
//! fuzzer's blkback takes its turn: it answers the requests it took,
//! honestly or with a wrong id, operation or status, writes raw bytes
//! into response slots, publishes any `rsp_prod`, stays silent, or
//! closes or resets the device. What must hold: nothing panics; data is
//! only ever drained into the range of the transfer it belongs to; a
//! transfer that succeeds had all its requests answered; an engine that
//! broke stays broken.
#![no_main]

use std::collections::VecDeque;
use std::future::{ready, Future};

use arbitrary::Arbitrary;
use drivers_pv::blkfront::engine::{Engine, Job, Platform, Wake};
use drivers_pv::blkfront::wire::{BlkifResponse, Operation, Request, Status, RESPONSE_SIZE};
use drivers_pv::shared_ring::sim::{BackRing, SharedMemory};
use drivers_pv::shared_ring::FrontRing;
use libfuzzer_sys::fuzz_target;
use paravane_fuzz::poll_bounded;

#[derive(Arbitrary, Debug)]
struct Input {
    ring_pages: u8,
    slots: u8,
    indirect_segments: u8,
    jobs: Vec<(u8, u64, u16)>,
    turns: Vec<Turn>,
}

/// What blkback does when the front end waits.
#[derive(Arbitrary, Debug)]
enum Turn {
    /// Takes up to `count` requests and answers each, with the id and
    /// operation xor-ed with the given values (0: honest) and a status.
    Answer {
        count: u8,
        id_xor: u64,
        op_xor: u8,
        status: u8,
        notify: bool,
    },
    /// Writes raw bytes into the slot `ahead` of the next response.
    RawSlot {
        ahead: u8,
        bytes: Vec<u8>,
    },
    /// Publishes any `rsp_prod`.
    RawRspProd(u32),
    /// A spurious event.
    Nothing,
    Timeout,
    Closing,
    Reset,
}

struct FuzzBlkback {
    back: BackRing<SharedMemory, Request, BlkifResponse>,
    turns: VecDeque<Turn>,
}

impl Platform for FuzzBlkback {
    fn notify(&mut self) {}

    fn wait(&mut self) -> impl Future<Output = Wake> {
        let Some(turn) = self.turns.pop_front() else {
            // Out of script: the backend went quiet.
            return ready(Wake::Timeout);
        };
        ready(match turn {
            Turn::Answer {
                count,
                id_xor,
                op_xor,
                status,
                notify,
            } => {
                for _ in 0..count {
                    let Some(Ok(request)) = self.back.take_request() else {
                        break;
                    };
                    let status = match status % 4 {
                        0 | 1 => Status::Okay,
                        2 => Status::Error,
                        _ => Status::NotSupported,
                    };
                    let response = BlkifResponse {
                        id: request.id() ^ id_xor,
                        operation: request.operation().code() ^ op_xor,
                        status,
                    };
                    if self.back.push_response(&response).is_err() {
                        break;
                    }
                }
                if notify {
                    self.back.push_responses_and_check_notify();
                }
                Wake::Event
            }
            Turn::RawSlot { ahead, bytes } => {
                let mut slot = [0u8; RESPONSE_SIZE];
                let n = bytes.len().min(RESPONSE_SIZE);
                slot[..n].copy_from_slice(&bytes[..n]);
                let index = self.back.rsp_prod_pvt().wrapping_add(u32::from(ahead));
                self.back.write_raw_slot(index, &slot);
                Wake::Event
            }
            Turn::RawRspProd(value) => {
                self.back.publish_raw_rsp_prod(value);
                Wake::Event
            }
            Turn::Nothing => Wake::Event,
            Turn::Timeout => Wake::Timeout,
            Turn::Closing => Wake::BackendClosing,
            Turn::Reset => Wake::BackendReset,
        })
    }
}

fuzz_target!(|input: Input| {
    let pages = usize::from(input.ring_pages % 4) + 1;
    let memory = SharedMemory::new(pages);
    let Ok(ring) = FrontRing::new(memory.clone(), pages) else {
        return;
    };
    let slots = usize::from(input.slots % 8) + 1;
    let mut engine = Engine::new(ring, 0x51, slots);
    engine.set_indirect_segments(usize::from(input.indirect_segments));
    let mut blkback = FuzzBlkback {
        back: BackRing::attach(memory, pages),
        turns: input.turns.into_iter().take(256).collect(),
    };
    for (op, sector, sectors) in input.jobs.into_iter().take(8) {
        let operation = [
            Operation::Read,
            Operation::Write,
            Operation::FlushDiskCache,
            Operation::WriteBarrier,
        ][usize::from(op % 4)];
        let len = match operation {
            Operation::Read | Operation::Write => usize::from(sectors % 1024) * 512,
            _ => 0,
        };
        let job = Job {
            operation,
            sector,
            len,
        };
        let was_broken = engine.broken();
        let pages_per_slot = engine.pages_per_slot();
        let drained = std::cell::Cell::new(0usize);
        let transfer = engine.transfer(
            &mut blkback,
            job,
            |slot, page| {
                assert!(slot < slots && page < pages_per_slot);
                (slot * 64 + page) as u32
            },
            |slot, offset, chunk| {
                assert!(slot < slots && offset + chunk <= len);
            },
            |slot, offset, chunk| {
                assert!(
                    slot < slots && offset + chunk <= len,
                    "drained outside the transfer"
                );
                drained.set(drained.get() + chunk);
            },
            |slot, table| {
                assert!(slot < slots && table.len() <= 4096);
                1000 + slot as u32
            },
        );
        let result =
            poll_bounded(transfer, 4).expect("the simulated blkback never leaves a wait pending");
        if let Some(error) = was_broken {
            assert_eq!(result, Err(error), "a broken engine came back");
        }
        if result.is_ok() {
            assert_eq!(engine.in_flight(), 0);
            if operation == Operation::Read {
                assert_eq!(drained.get(), len, "a read succeeded without all its data");
            }
        }
    }
});
