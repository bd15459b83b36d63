//! A simulated netback for the host tests: packet pages, event counters,
//! and the back end's side of each queue's rings, honest (frames both
//! ways, chains, checksum flags) or lying (any raw response).

extern crate std;

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::queue::QueueParts;
use super::wire::*;
use super::*;
use crate::shared_ring::sim::{BackRing, SharedMemory};

/// Grant references of the simulated buffers start here.
const GREF_BASE: u32 = 100;

/// Packet pages, shared between the front end and the simulated back.
#[derive(Clone)]
pub struct SimBuffers {
    pub pages: Rc<RefCell<Vec<Vec<u8>>>>,
    base: u32,
}

impl SimBuffers {
    pub fn new(count: usize, base: u32) -> SimBuffers {
        SimBuffers {
            pages: Rc::new(RefCell::new(vec![vec![0; XEN_PAGE_SIZE]; count])),
            base,
        }
    }
    pub fn page(&self, gref: u32) -> usize {
        (gref - self.base) as usize
    }
}

impl PacketBuffers for SimBuffers {
    fn count(&self) -> usize {
        self.pages.borrow().len()
    }
    fn gref(&self, id: u16) -> u32 {
        self.base + u32::from(id)
    }
    fn write(&mut self, id: u16, bytes: &[u8]) {
        self.pages.borrow_mut()[usize::from(id)][..bytes.len()].copy_from_slice(bytes);
    }
    fn read(&self, id: u16, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.pages.borrow()[usize::from(id)][offset..offset + out.len()]);
    }
}

/// Every event the front end sent, in order.
#[derive(Clone, Default)]
pub struct Events(pub Rc<RefCell<Vec<(usize, RingKind)>>>);

impl Events {
    pub fn count(&self) -> usize {
        self.0.borrow().len()
    }
    pub fn count_for(&self, queue: usize, ring: RingKind) -> usize {
        self.0
            .borrow()
            .iter()
            .filter(|event| **event == (queue, ring))
            .count()
    }
}

impl Notify for Events {
    fn notify(&mut self, queue: usize, ring: RingKind) {
        self.0.borrow_mut().push((queue, ring));
    }
}

pub type Front = Netfront<SharedMemory, SimBuffers, Events>;

/// The back end's side of one queue.
pub struct SimQueue {
    pub tx_back: BackRing<SharedMemory, TxRequest, TxResponse>,
    pub rx_back: BackRing<SharedMemory, RxRequest, RxResponse>,
    pub tx_pages: SimBuffers,
    pub rx_pages: SimBuffers,
}

pub struct Sim {
    pub front: Front,
    pub queues: Vec<SimQueue>,
    pub notified: Events,
}

/// A frame the simulated back end took from a tx ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub bytes: Vec<u8>,
    /// The first request's flags.
    pub flags: u16,
    pub slots: usize,
}

/// One queue, one page per frame, checksums computed by the driver.
pub fn sim(tx: usize, rx: usize) -> Sim {
    sim_with(1, tx, rx, LinkConfig::default())
}

pub fn sim_with(queues: usize, tx: usize, rx: usize, link: LinkConfig) -> Sim {
    let mut parts = Vec::new();
    let mut memories = Vec::new();
    for queue in 0..queues as u32 {
        let tx_mem = SharedMemory::new(1);
        let rx_mem = SharedMemory::new(1);
        let tx_pages = SimBuffers::new(tx, GREF_BASE + queue * 10_000);
        let rx_pages = SimBuffers::new(rx, GREF_BASE + queue * 10_000 + 1000);
        parts.push(QueueParts {
            tx_ring: tx_mem.clone(),
            rx_ring: rx_mem.clone(),
            tx_buffers: tx_pages.clone(),
            rx_buffers: rx_pages.clone(),
        });
        memories.push((tx_mem, rx_mem, tx_pages, rx_pages));
    }
    let notified = Events::default();
    let front = Netfront::new(parts, notified.clone(), [0, 0x16, 0x3e, 0, 0, 1], link).unwrap();
    // The back end attaches once the front end initialised the rings.
    let backs = memories
        .into_iter()
        .map(|(tx_mem, rx_mem, tx_pages, rx_pages)| SimQueue {
            tx_back: BackRing::attach(tx_mem, 1),
            rx_back: BackRing::attach(rx_mem, 1),
            tx_pages,
            rx_pages,
        })
        .collect();
    Sim {
        front,
        queues: backs,
        notified,
    }
}

impl Sim {
    /// netback's tx side on every queue: takes every request, gathers
    /// chains (the first slot's size is the frame's), answers every slot
    /// with `status`.
    pub fn back_take_tx_all(&mut self, status: i16) -> Vec<Sent> {
        let mut frames = Vec::new();
        for queue in &mut self.queues {
            let mut current: Option<(Sent, usize)> = None;
            while let Some(request) = queue.tx_back.take_request() {
                let request = request.unwrap();
                let page = queue.tx_pages.page(request.gref);
                let start = usize::from(request.offset);
                let (sent, remaining) = current.get_or_insert_with(|| {
                    (
                        Sent {
                            bytes: Vec::new(),
                            flags: request.flags,
                            slots: 0,
                        },
                        usize::from(request.size),
                    )
                });
                let more = request.flags & NETTXF_MORE_DATA != 0;
                // The first slot holds what the later ones do not.
                let len = if sent.slots == 0 && more {
                    usize::from(request.size).min(XEN_PAGE_SIZE - start)
                } else {
                    usize::from(request.size)
                };
                if sent.slots > 0 {
                    assert_eq!(
                        request.flags & !NETTXF_MORE_DATA,
                        0,
                        "flags on a later slot"
                    );
                }
                assert!(start + len <= XEN_PAGE_SIZE, "slot runs off its page");
                sent.bytes
                    .extend_from_slice(&queue.tx_pages.pages.borrow()[page][start..start + len]);
                sent.slots += 1;
                *remaining -= len;
                queue
                    .tx_back
                    .push_response(&TxResponse {
                        id: request.id,
                        status,
                    })
                    .unwrap();
                if !more {
                    let (sent, remaining) = current.take().unwrap();
                    assert_eq!(remaining, 0, "chain sizes do not add up");
                    frames.push(sent);
                }
            }
            assert!(current.is_none(), "chain left open");
            queue.tx_back.push_responses_and_check_notify();
        }
        frames
    }

    /// The frames sent, on every queue.
    pub fn back_take_tx(&mut self, status: i16) -> Vec<Vec<u8>> {
        self.back_take_tx_all(status)
            .into_iter()
            .map(|sent| sent.bytes)
            .collect()
    }

    /// netback's rx side: copies `frame` into the next posted buffer of
    /// queue 0, marked data-validated.
    pub fn back_deliver(&mut self, frame: &[u8], offset: u16) {
        self.back_deliver_chain(0, frame, NETRXF_DATA_VALIDATED, offset, XEN_PAGE_SIZE);
    }

    /// Delivers `frame` on `queue` in pieces of at most `chunk` bytes, one
    /// posted buffer each (the first at `offset`), `flags` on the first
    /// and `NETRXF_more_data` on all but the last.
    pub fn back_deliver_chain(
        &mut self,
        queue: usize,
        frame: &[u8],
        flags: u16,
        offset: u16,
        chunk: usize,
    ) {
        let queue = &mut self.queues[queue];
        let pieces: Vec<&[u8]> = frame.chunks(chunk).collect();
        for (index, piece) in pieces.iter().enumerate() {
            let request = queue.rx_back.take_request().unwrap().unwrap();
            let page = queue.rx_pages.page(request.gref);
            let start = if index == 0 { usize::from(offset) } else { 0 };
            queue.rx_pages.pages.borrow_mut()[page][start..start + piece.len()]
                .copy_from_slice(piece);
            let more = if index + 1 < pieces.len() {
                NETRXF_MORE_DATA
            } else {
                0
            };
            queue
                .rx_back
                .push_response(&RxResponse {
                    id: request.id,
                    offset: start as u16,
                    flags: if index == 0 { flags } else { 0 } | more,
                    status: piece.len() as i16,
                })
                .unwrap();
        }
        queue.rx_back.push_responses_and_check_notify();
    }

    /// netback's rx side with GSO, as Linux's does it: `frame` on queue
    /// 0 in full pages, the first response with `NETRXF_csum_blank` and
    /// `NETRXF_extra_info`, then the extra-info slots `extras` (each
    /// taking a request of its own), then the rest of the data.
    pub fn back_deliver_gso(&mut self, frame: &[u8], extras: &[ExtraInfo]) {
        let queue = &mut self.queues[0];
        let pieces: Vec<&[u8]> = frame.chunks(XEN_PAGE_SIZE).collect();
        for (index, piece) in pieces.iter().enumerate() {
            let request = queue.rx_back.take_request().unwrap().unwrap();
            let page = queue.rx_pages.page(request.gref);
            queue.rx_pages.pages.borrow_mut()[page][..piece.len()].copy_from_slice(piece);
            let more = if index + 1 < pieces.len() {
                NETRXF_MORE_DATA
            } else {
                0
            };
            let first = if index == 0 {
                NETRXF_CSUM_BLANK | NETRXF_EXTRA_INFO
            } else {
                0
            };
            queue
                .rx_back
                .push_response(&RxResponse {
                    id: request.id,
                    offset: 0,
                    flags: first | more,
                    status: piece.len() as i16,
                })
                .unwrap();
            if index == 0 {
                for extra in extras {
                    // The request's buffer goes unused; its id is not
                    // echoed anywhere.
                    let _ = queue.rx_back.take_request().unwrap().unwrap();
                    queue.rx_back.push_response(&extra.to_slot()).unwrap();
                }
            }
        }
        queue.rx_back.push_responses_and_check_notify();
    }

    /// Answers the next rx request of queue 0 with `rsp` as given (lies
    /// included); returns the request's id.
    pub fn back_raw_rx(&mut self, rsp: RxResponse) -> u16 {
        self.back_raw_rx_on(0, rsp)
    }

    pub fn back_raw_rx_on(&mut self, queue: usize, rsp: RxResponse) -> u16 {
        let queue = &mut self.queues[queue];
        let request = queue.rx_back.take_request().unwrap().unwrap();
        queue.rx_back.push_response(&rsp).unwrap();
        queue.rx_back.push_responses_and_check_notify();
        request.id
    }

    /// Answers the next rx request of queue 0 with its own id and the
    /// given fields, after writing `bytes` at `offset` of its page.
    pub fn back_rx_slot(&mut self, bytes: &[u8], offset: u16, flags: u16, status: i16) {
        let queue = &mut self.queues[0];
        let request = queue.rx_back.take_request().unwrap().unwrap();
        let page = queue.rx_pages.page(request.gref);
        let start = usize::from(offset);
        let end = (start + bytes.len()).min(XEN_PAGE_SIZE);
        queue.rx_pages.pages.borrow_mut()[page][start..end].copy_from_slice(&bytes[..end - start]);
        queue
            .rx_back
            .push_response(&RxResponse {
                id: request.id,
                offset,
                flags,
                status,
            })
            .unwrap();
        queue.rx_back.push_responses_and_check_notify();
    }
}

pub fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Joins two netfronts through `forward` (which moves one side's tx
/// frames into the other's rx ring, holding what does not fit yet), puts
/// an smoltcp interface on each, and has a TCP client send 256 KiB to an
/// echo server. Returns the payload and what came back; `tcp_buffer` is
/// each socket's buffer size, `io_buffer` the copy buffer's.
pub fn tcp_echo_through<H>(
    a: &mut Sim,
    b: &mut Sim,
    tcp_buffer: usize,
    io_buffer: usize,
    forward: impl FnMut(&mut Sim, &mut Sim, &mut alloc::collections::VecDeque<H>),
) -> (Vec<u8>, Vec<u8>) {
    tcp_echo_through_with(a, b, tcp_buffer, io_buffer, forward, |_, _| {})
}

/// [`tcp_echo_through`], calling `each_step(step, a)` before every
/// step: a test may replace side `a`'s netfront there (its backend gone
/// and back: a new device under the same interface and sockets).
pub fn tcp_echo_through_with<H>(
    a: &mut Sim,
    b: &mut Sim,
    tcp_buffer: usize,
    io_buffer: usize,
    mut forward: impl FnMut(&mut Sim, &mut Sim, &mut alloc::collections::VecDeque<H>),
    mut each_step: impl FnMut(u64, &mut Sim),
) -> (Vec<u8>, Vec<u8>) {
    use alloc::collections::VecDeque;
    use smoltcp::iface::{Config, Interface, SocketSet};
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant;
    use smoltcp::wire::{EthernetAddress, IpCidr, Ipv4Address};

    fn side(sim: &mut Sim, last: u8) -> Interface {
        let mut mac = sim.front.mac();
        mac[5] = last;
        let mut iface = Interface::new(
            Config::new(EthernetAddress(mac).into()),
            &mut sim.front,
            Instant::ZERO,
        );
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(Ipv4Address::new(10, 0, 0, last).into(), 24))
                .unwrap()
        });
        iface
    }
    let socket = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; tcp_buffer]),
            tcp::SocketBuffer::new(vec![0; tcp_buffer]),
        )
    };

    let mut iface_a = side(a, 1);
    let mut iface_b = side(b, 2);
    let mut sockets_a = SocketSet::new(Vec::new());
    let mut sockets_b = SocketSet::new(Vec::new());
    let client = sockets_a.add(socket());
    let server = sockets_b.add(socket());
    sockets_b.get_mut::<tcp::Socket>(server).listen(7).unwrap();
    sockets_a
        .get_mut::<tcp::Socket>(client)
        .connect(iface_a.context(), (Ipv4Address::new(10, 0, 0, 2), 7), 49152)
        .unwrap();

    let payload: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    let (mut sent, mut echoed) = (0, Vec::new());
    let (mut held_ab, mut held_ba) = (VecDeque::new(), VecDeque::new());
    let mut buf = vec![0u8; io_buffer];
    for step in 0..200_000u64 {
        each_step(step, a);
        let now = Instant::from_millis(step as i64);
        iface_a.poll(now, &mut a.front, &mut sockets_a);
        iface_b.poll(now, &mut b.front, &mut sockets_b);
        forward(a, b, &mut held_ab);
        forward(b, a, &mut held_ba);
        let socket = sockets_a.get_mut::<tcp::Socket>(client);
        if socket.can_send() && sent < payload.len() {
            sent += socket.send_slice(&payload[sent..]).unwrap();
        }
        if socket.can_recv() {
            let n = socket.recv_slice(&mut buf).unwrap();
            echoed.extend_from_slice(&buf[..n]);
        }
        let socket = sockets_b.get_mut::<tcp::Socket>(server);
        while socket.can_recv() && socket.send_queue() < socket.send_capacity() {
            let room = (socket.send_capacity() - socket.send_queue()).min(buf.len());
            let n = socket.recv_slice(&mut buf[..room]).unwrap();
            assert_eq!(socket.send_slice(&buf[..n]).unwrap(), n);
        }
        if echoed.len() == payload.len() {
            break;
        }
    }
    (payload, echoed)
}
