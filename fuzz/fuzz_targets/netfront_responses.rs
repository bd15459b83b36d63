//! netfront (one or two queues, with or without scatter-gather and
//! checksum offload) against a netback played by the fuzzer.
//!
//! The guest sends frames, reclaims tx slots and receives; the fuzzer's
//! netback answers tx requests with any status and id, delivers rx
//! frames honestly (chains included) or with lying ids, offsets,
//! lengths and flags, writes raw bytes into response slots and publishes
//! any `rsp_prod`. What must hold: nothing panics; every frame handed up
//! is within the link's frame size; tx slots in use never exceed the
//! ring's buffers.
#![no_main]

use std::cell::RefCell;
use std::rc::Rc;

use arbitrary::Arbitrary;
use drivers_pv::netfront::queue::QueueParts;
use drivers_pv::netfront::wire::{RxRequest, RxResponse, TxRequest, TxResponse, NETRXF_MORE_DATA};
use drivers_pv::netfront::{
    LinkConfig, Netfront, Notify, PacketBuffers, RingKind, MAX_FRAME, MAX_GSO_FRAME, MAX_SG_FRAME,
};
use drivers_pv::shared_ring::sim::{BackRing, SharedMemory};
use drivers_pv::shared_ring::XEN_PAGE_SIZE;
use libfuzzer_sys::fuzz_target;
use paravane_fuzz::pick;

/// Packet pages both ends see; grant reference `i` is page `i`.
#[derive(Clone)]
struct Pages(Rc<RefCell<Vec<Vec<u8>>>>);

impl Pages {
    fn new(count: usize) -> Pages {
        Pages(Rc::new(RefCell::new(vec![vec![0; XEN_PAGE_SIZE]; count])))
    }
}

impl PacketBuffers for Pages {
    fn count(&self) -> usize {
        self.0.borrow().len()
    }
    fn gref(&self, id: u16) -> u32 {
        u32::from(id)
    }
    fn write(&mut self, id: u16, bytes: &[u8]) {
        self.0.borrow_mut()[usize::from(id)][..bytes.len()].copy_from_slice(bytes);
    }
    fn read(&self, id: u16, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.0.borrow()[usize::from(id)][offset..offset + out.len()]);
    }
}

struct NoNotify;

impl Notify for NoNotify {
    fn notify(&mut self, _queue: usize, _ring: RingKind) {}
}

struct BackQueue {
    tx: BackRing<SharedMemory, TxRequest, TxResponse>,
    rx: BackRing<SharedMemory, RxRequest, RxResponse>,
    rx_pages: Pages,
}

#[derive(Arbitrary, Debug)]
struct Input {
    queues: u8,
    sg: bool,
    csum_offload: bool,
    gso_rx: bool,
    max_frame: u16,
    tx_buffers: u8,
    rx_buffers: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    // The guest.
    Send(Vec<u8>),
    Receive,
    Reclaim,
    FinalCheck,
    Kick,
    // netback, on queue `q`.
    TxAnswer {
        q: u8,
        count: u8,
        status: i16,
        id_xor: u16,
    },
    RxDeliver {
        q: u8,
        frame: Vec<u8>,
        offset: u16,
        chunk: u16,
        flags: u16,
    },
    RxRaw {
        q: u8,
        id_xor: u16,
        offset: u16,
        flags: u16,
        status: i16,
    },
    RawRspProd {
        q: u8,
        rx: bool,
        value: u32,
    },
    RawSlot {
        q: u8,
        rx: bool,
        ahead: u8,
        bytes: [u8; 8],
    },
    Publish(u8),
}

/// A buffer count: mostly small (a run costs a page per buffer), and
/// now and then a whole ring's worth.
fn buffers(choice: u8) -> usize {
    match choice {
        255 => 256,
        n => usize::from(n % 32) + 1,
    }
}

fuzz_target!(|input: Input| {
    let queue_count = usize::from(input.queues % 2) + 1;
    let limit = if input.sg { MAX_SG_FRAME } else { MAX_FRAME };
    let link = LinkConfig {
        sg: input.sg,
        csum_offload: input.csum_offload,
        max_frame: 14 + usize::from(input.max_frame) % (limit - 13),
        gso_rx: input.gso_rx,
    };
    // GSO frames (announced by an extra-info slot) may be up to 64 KiB.
    let longest = if link.gso_rx {
        MAX_GSO_FRAME
    } else {
        link.max_frame
    };
    let mut parts = Vec::new();
    let mut backs = Vec::new();
    for _ in 0..queue_count {
        let tx_ring = SharedMemory::new(1);
        let rx_ring = SharedMemory::new(1);
        let tx_pages = Pages::new(buffers(input.tx_buffers));
        let rx_pages = Pages::new(buffers(input.rx_buffers));
        parts.push(QueueParts {
            tx_ring: tx_ring.clone(),
            rx_ring: rx_ring.clone(),
            tx_buffers: tx_pages.clone(),
            rx_buffers: rx_pages.clone(),
        });
        backs.push((tx_ring, rx_ring, rx_pages));
    }
    let Ok(mut front) = Netfront::new(parts, NoNotify, [0, 0x16, 0x3e, 0, 0, 1], link) else {
        return;
    };
    let mut backs: Vec<BackQueue> = backs
        .into_iter()
        .map(|(tx, rx, rx_pages)| BackQueue {
            tx: BackRing::attach(tx, 1),
            rx: BackRing::attach(rx, 1),
            rx_pages,
        })
        .collect();
    let tx_capacity = front.tx_free();
    for op in input.ops.into_iter().take(256) {
        match op {
            Op::Send(mut frame) => {
                let _ = front.send(&mut frame);
            }
            Op::Receive => {
                while let Some(frame) = front.receive() {
                    assert!(frame.len() <= longest, "an oversized frame came up");
                }
            }
            Op::Reclaim => {
                front.reclaim_tx();
            }
            Op::FinalCheck => {
                front.final_check();
            }
            Op::Kick => front.kick(),
            Op::TxAnswer {
                q,
                count,
                status,
                id_xor,
            } => {
                let back = &mut backs[usize::from(q) % queue_count];
                for _ in 0..count {
                    let Some(Ok(request)) = back.tx.take_request() else {
                        break;
                    };
                    let response = TxResponse {
                        id: request.id ^ id_xor,
                        status,
                    };
                    if back.tx.push_response(&response).is_err() {
                        break;
                    }
                }
                back.tx.push_responses_and_check_notify();
            }
            Op::RxDeliver {
                q,
                frame,
                offset,
                chunk,
                flags,
            } => {
                let back = &mut backs[usize::from(q) % queue_count];
                let chunk = usize::from(chunk % 4096).max(1);
                let pieces: Vec<&[u8]> = frame.chunks(chunk).collect();
                for (index, piece) in pieces.iter().enumerate() {
                    let Some(Ok(request)) = back.rx.take_request() else {
                        break;
                    };
                    let start = if index == 0 {
                        usize::from(offset) % XEN_PAGE_SIZE
                    } else {
                        0
                    };
                    let end = (start + piece.len()).min(XEN_PAGE_SIZE);
                    let page = usize::from(request.id) % back.rx_pages.count();
                    back.rx_pages.0.borrow_mut()[page][start..end]
                        .copy_from_slice(&piece[..end - start]);
                    let more = if index + 1 < pieces.len() {
                        NETRXF_MORE_DATA
                    } else {
                        0
                    };
                    let response = RxResponse {
                        id: request.id,
                        offset: start as u16,
                        flags: if index == 0 { flags } else { 0 } | more,
                        status: (end - start) as i16,
                    };
                    if back.rx.push_response(&response).is_err() {
                        break;
                    }
                }
                back.rx.push_responses_and_check_notify();
            }
            Op::RxRaw {
                q,
                id_xor,
                offset,
                flags,
                status,
            } => {
                let back = &mut backs[usize::from(q) % queue_count];
                if let Some(Ok(request)) = back.rx.take_request() {
                    let response = RxResponse {
                        id: request.id ^ id_xor,
                        offset,
                        flags,
                        status,
                    };
                    let _ = back.rx.push_response(&response);
                    back.rx.push_responses_and_check_notify();
                }
            }
            Op::RawRspProd { q, rx, value } => {
                let back = &mut backs[usize::from(q) % queue_count];
                if rx {
                    back.rx.publish_raw_rsp_prod(value);
                } else {
                    back.tx.publish_raw_rsp_prod(value);
                }
            }
            Op::RawSlot {
                q,
                rx,
                ahead,
                bytes,
            } => {
                let back = &mut backs[usize::from(q) % queue_count];
                if rx {
                    let index = back.rx.rsp_prod_pvt().wrapping_add(u32::from(ahead));
                    back.rx.write_raw_slot(index, &bytes);
                } else {
                    let index = back.tx.rsp_prod_pvt().wrapping_add(u32::from(ahead));
                    back.tx.write_raw_slot(index, &bytes[..4]);
                }
            }
            Op::Publish(q) => {
                let back = &mut backs[usize::from(pick(&[0u8, 1], q)) % queue_count];
                back.tx.push_responses_and_check_notify();
                back.rx.push_responses_and_check_notify();
            }
        }
        assert!(front.tx_free() <= tx_capacity);
    }
    let _ = format!("{}", front.stats());
});
