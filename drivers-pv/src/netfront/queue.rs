//! One netfront queue: a tx ring and an rx ring (one page each), the
//! packet pages lent on each, and the state that checks every response.
//!
//! A frame may span slots both ways (`feature-sg`). Tx: a frame longer
//! than a page goes out as a chain, one page per slot; the first slot's
//! `size` is the whole frame's, each later slot's its own, and every slot
//! but the last has `NETTXF_more_data`. Rx: responses with
//! `NETRXF_more_data` are gathered, each one's bytes copied out and its
//! page reposted at once, until a response without it ends the frame.
//! Whatever a chain does wrong (an unknown id, a fragment off its page,
//! more than [`MAX_RX_SLOTS`] slots, flags never negotiated) drops the
//! whole frame, and the rest of the chain is still consumed (without
//! copying) up to the response that ends it, so its tail is never taken
//! for a frame of its own.
//!
//! With GSO on the rx side (we wrote `feature-gso-tcpv4`), netback may
//! hand over a TCP frame of up to 64 KiB built for segments of a given
//! size, its pages filled whole: the first response has
//! `NETRXF_extra_info`, and the next ring slot is not a response but a
//! `netif_extra_info` with the GSO type and size (more may follow,
//! chained with `XEN_NETIF_EXTRA_FLAG_MORE`). An extra slot carries no
//! request id, so the buffer its request lent is known by the ring
//! index alone: the queue remembers which buffer it posted at each
//! index. smoltcp takes the large frame as one TCP segment.
//!
//! The queue does not notify: its methods say whether the back end needs
//! an event and [`super::Netfront`] sends it on the right channel.

use alloc::vec;
use alloc::vec::Vec;

use super::wire::{
    ExtraInfo, RxRequest, RxResponse, TxRequest, TxResponse, NETIF_RSP_OKAY, NETRXF_CSUM_BLANK,
    NETRXF_DATA_VALIDATED, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, NETTXF_MORE_DATA,
    XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_GSO_TYPE_TCPV4,
};
use super::{NetError, NetStats, PacketBuffers};
use crate::shared_ring::{FrontRing, RingError, RingMemory, XEN_PAGE_SIZE};

/// The most slots one received frame may use: `XEN_NETIF_NR_SLOTS_MIN`,
/// the fewest any back end must handle, and far more than a 9000-byte
/// frame needs in pages.
pub const MAX_RX_SLOTS: usize = 18;

/// The largest frame taken with GSO: an IPv4 packet's 64 KiB and the
/// Ethernet header (17 pages, with the extra slot 18 slots).
pub const MAX_GSO_FRAME: usize = 65535 + 14;

/// The most slots one sent frame may use. netback treats more than
/// `XEN_NETBK_LEGACY_SLOTS_MAX` (18) as fatal and shuts the vif.
pub const MAX_TX_SLOTS: usize = 18;

/// The rx flags we accept: the checksum hints and chaining, and with
/// GSO (on a frame's first response) `NETRXF_extra_info`.
/// `NETRXF_gso_prefix` is the old prefix form of GSO, never asked for.
const RX_FLAGS_KNOWN: u16 = NETRXF_DATA_VALIDATED | NETRXF_CSUM_BLANK | NETRXF_MORE_DATA;

/// What a tx buffer is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxSlot {
    Free,
    /// The first slot of a frame in flight (its status is the frame's).
    Head,
    /// A later slot of a frame in flight.
    Tail,
}

/// Why a frame being gathered will be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// The back end reported an error or sent more than we take
    /// (counted as an rx error when the chain ends).
    Error,
    /// The back end broke the protocol (already counted as a bad
    /// response).
    Broken,
}

/// A received frame being gathered from a chain of responses.
struct Partial {
    bytes: Vec<u8>,
    slots: usize,
    /// The first response's flags (the checksum hints).
    flags: u16,
    fault: Option<Fault>,
    /// The next slot is an extra-info slot.
    extras_pending: bool,
    /// The last data response had `NETRXF_more_data`.
    data_more: bool,
    /// The GSO segment size an extra-info slot gave.
    gso_size: Option<u16>,
}

impl Partial {
    fn fail(&mut self, fault: Fault) {
        self.fault = self.fault.max(Some(fault));
    }

    /// Marks the frame broken, counting one bad response per frame.
    fn break_off(&mut self, stats: &mut NetStats) {
        if self.fault != Some(Fault::Broken) {
            stats.bad_responses += 1;
        }
        self.fail(Fault::Broken);
    }
}

/// A frame taken from the rx ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The frame.
    pub bytes: Vec<u8>,
    /// The first response's `NETRXF_*` flags.
    pub flags: u16,
    /// How many slots it came in (extra-info slots included).
    pub slots: usize,
    /// The GSO segment size, for a frame netback handed over whole.
    pub gso_size: Option<u16>,
}

/// What the rx side takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxLimits {
    /// The longest frame without GSO.
    pub max_frame: usize,
    /// Whether GSO frames (with their extra-info slot) are taken.
    pub gso: bool,
}

/// The parts of one queue: ring pages and packet pages.
pub struct QueueParts<M, B> {
    /// The tx ring's page.
    pub tx_ring: M,
    /// The rx ring's page.
    pub rx_ring: M,
    /// Pages frames are sent from (one per slot).
    pub tx_buffers: B,
    /// Pages lent to the back end to receive into.
    pub rx_buffers: B,
}

/// One queue (see the module docs).
pub struct Queue<M: RingMemory, B: PacketBuffers> {
    tx: FrontRing<M, TxRequest, TxResponse>,
    rx: FrontRing<M, RxRequest, RxResponse>,
    tx_buffers: B,
    rx_buffers: B,
    tx_free: Vec<u16>,
    tx_slots: Vec<TxSlot>,
    rx_posted: Vec<bool>,
    /// The buffer posted at each rx ring index (modulo the ring's size):
    /// how an extra-info slot, which has no id, names its buffer.
    rx_posted_at: Vec<u16>,
    partial: Option<Partial>,
}

impl<M: RingMemory, B: PacketBuffers> Queue<M, B> {
    /// Sets up both rings and posts every rx buffer (published, not
    /// notified: the back end reads them when it connects).
    pub fn new(parts: QueueParts<M, B>) -> Result<Self, NetError> {
        let tx = FrontRing::new(parts.tx_ring, 1).map_err(|(e, _)| NetError::Ring(e))?;
        let rx = FrontRing::new(parts.rx_ring, 1).map_err(|(e, _)| NetError::Ring(e))?;
        let fits = |buffers: &B, ring: u32| {
            (1..=usize::from(u16::MAX) + 1).contains(&buffers.count())
                && buffers.count() <= ring as usize
        };
        if !fits(&parts.tx_buffers, tx.ring_size()) || !fits(&parts.rx_buffers, rx.ring_size()) {
            return Err(NetError::BadBufferCount);
        }
        let tx_count = parts.tx_buffers.count();
        let rx_count = parts.rx_buffers.count();
        let rx_ring_size = rx.ring_size() as usize;
        let mut queue = Queue {
            tx,
            rx,
            tx_buffers: parts.tx_buffers,
            rx_buffers: parts.rx_buffers,
            tx_free: (0..tx_count).rev().map(|id| id as u16).collect(),
            tx_slots: vec![TxSlot::Free; tx_count],
            rx_posted: vec![false; rx_count],
            rx_posted_at: vec![0; rx_ring_size],
            partial: None,
        };
        for id in 0..rx_count {
            queue.post_rx(id as u16)?;
        }
        queue.rx.push_and_check_notify();
        Ok(queue)
    }

    /// Whether the back end broke either ring.
    pub fn is_broken(&self) -> bool {
        self.tx.is_broken() || self.rx.is_broken()
    }

    /// Tx buffers free now.
    pub fn tx_free(&self) -> usize {
        self.tx_free.len()
    }

    /// Tx buffers in all.
    pub fn tx_capacity(&self) -> usize {
        self.tx_slots.len()
    }

    fn post_rx(&mut self, id: u16) -> Result<(), NetError> {
        let gref = self.rx_buffers.gref(id);
        let index = self.rx.req_prod_pvt();
        self.rx
            .push_request(&RxRequest { id, gref })
            .map_err(NetError::Ring)?;
        self.rx_posted[usize::from(id)] = true;
        let size = self.rx_posted_at.len();
        self.rx_posted_at[index as usize % size] = id;
        Ok(())
    }

    /// Gives buffer `id` back to the back end if it holds it.
    fn repost(&mut self, id: u16) {
        if self.rx_posted.get(usize::from(id)).copied() == Some(true) {
            self.rx_posted[usize::from(id)] = false;
            // Cannot fail: the slot this response freed takes the request.
            let _ = self.post_rx(id);
        }
    }

    /// Pushes `frame` (its length already checked by the caller) as one
    /// slot per page, the first with `flags`; returns whether the back end
    /// needs an event. Needs a free buffer per slot (reclaiming first if
    /// short); on error nothing was pushed.
    pub fn send(
        &mut self,
        frame: &[u8],
        flags: u16,
        stats: &mut NetStats,
    ) -> Result<bool, NetError> {
        let slots = frame.len().div_ceil(XEN_PAGE_SIZE).max(1);
        if slots > MAX_TX_SLOTS || frame.len() > usize::from(u16::MAX) {
            return Err(NetError::BadLength(frame.len()));
        }
        if self.tx_free.len() < slots {
            self.reclaim(stats);
        }
        if self.tx_free.len() < slots {
            return Err(NetError::NoTxBuffer);
        }
        if (self.tx.free_requests() as usize) < slots {
            return Err(NetError::Ring(RingError::Full));
        }
        for (index, chunk) in frame.chunks(XEN_PAGE_SIZE).enumerate() {
            // Cannot fail: both were checked above.
            let Some(id) = self.tx_free.pop() else {
                return Err(NetError::NoTxBuffer);
            };
            self.tx_buffers.write(id, chunk);
            let last = index + 1 == slots;
            let request = TxRequest {
                gref: self.tx_buffers.gref(id),
                offset: 0,
                flags: if index == 0 { flags } else { 0 } | if last { 0 } else { NETTXF_MORE_DATA },
                id,
                size: if index == 0 { frame.len() } else { chunk.len() } as u16,
            };
            self.tx.push_request(&request).map_err(NetError::Ring)?;
            self.tx_slots[usize::from(id)] = if index == 0 {
                TxSlot::Head
            } else {
                TxSlot::Tail
            };
        }
        stats.tx_frames += 1;
        stats.tx_bytes += frame.len() as u64;
        if slots > 1 {
            stats.tx_multi_slot += 1;
        }
        Ok(self.tx.push_and_check_notify())
    }

    /// Takes every tx response in, freeing the buffers they answer;
    /// returns how many were freed.
    pub fn reclaim(&mut self, stats: &mut NetStats) -> usize {
        let mut freed = 0;
        while let Some(response) = self.tx.take_response() {
            let rsp = match response {
                Ok(rsp) => rsp,
                Err(RingError::BadEntry { .. }) => {
                    stats.bad_responses += 1;
                    continue;
                }
                Err(_) => break,
            };
            let slot = self.tx_slots.get(usize::from(rsp.id)).copied();
            match slot {
                Some(TxSlot::Head) | Some(TxSlot::Tail) => {
                    self.tx_slots[usize::from(rsp.id)] = TxSlot::Free;
                    self.tx_free.push(rsp.id);
                    freed += 1;
                    if rsp.status > NETIF_RSP_OKAY {
                        // NETIF_RSP_NULL answers extra-info slots; we
                        // never send one.
                        stats.bad_responses += 1;
                    } else if rsp.status < NETIF_RSP_OKAY && slot == Some(TxSlot::Head) {
                        stats.tx_errors += 1;
                    }
                }
                Some(TxSlot::Free) | None => stats.bad_responses += 1,
            }
        }
        freed
    }

    /// The next frame from the rx ring, if a whole one is there (a chain
    /// cut short stays gathered for the next call), and whether the back
    /// end needs an event for the buffers reposted. Frames longer than
    /// the limits allow are dropped.
    pub fn receive(&mut self, limits: RxLimits, stats: &mut NetStats) -> (Option<Received>, bool) {
        let mut frame = None;
        while frame.is_none() {
            let index = self.rx.rsp_cons();
            let Some(response) = self.rx.take_response() else {
                break;
            };
            if self.partial.as_ref().is_some_and(|p| p.extras_pending) {
                frame = self.take_rx_extra(index, response, limits, stats);
                continue;
            }
            let rsp = match response {
                Ok(rsp) => rsp,
                Err(RingError::BadEntry { .. }) => {
                    // Its id is unknown: the buffer stays lost, and a
                    // frame being gathered is broken.
                    match &mut self.partial {
                        Some(partial) => partial.break_off(stats),
                        None => stats.bad_responses += 1,
                    }
                    continue;
                }
                Err(_) => break,
            };
            frame = self.take_rx_response(&rsp, limits, stats);
        }
        (frame, self.rx.push_and_check_notify())
    }

    /// One rx response: copies its bytes into the frame being gathered,
    /// reposts its buffer, and returns the frame if it ended it well.
    fn take_rx_response(
        &mut self,
        rsp: &RxResponse,
        limits: RxLimits,
        stats: &mut NetStats,
    ) -> Option<Received> {
        let id = rsp.id;
        let known = self.rx_posted.get(usize::from(id)).copied() == Some(true);
        let partial = self.partial.get_or_insert(Partial {
            bytes: Vec::new(),
            slots: 0,
            flags: rsp.flags,
            fault: None,
            extras_pending: false,
            data_more: false,
            gso_size: None,
        });
        partial.slots += 1;
        let first = partial.slots == 1;
        let more = rsp.flags & NETRXF_MORE_DATA != 0;
        partial.data_more = more;
        // Only a frame's first response may announce extra-info slots,
        // and only once we asked for GSO.
        let known_flags = if limits.gso && first {
            RX_FLAGS_KNOWN | NETRXF_EXTRA_INFO
        } else {
            RX_FLAGS_KNOWN
        };
        if rsp.flags & known_flags & NETRXF_EXTRA_INFO != 0 {
            partial.extras_pending = true;
        }
        // A GSO frame is announced by its first response; until its
        // extra slot says so, the larger limit applies.
        let limit = if partial.flags & NETRXF_EXTRA_INFO != 0 && limits.gso {
            MAX_GSO_FRAME
        } else {
            limits.max_frame
        };
        if !known {
            // Not a buffer the back end holds: nothing to read or repost.
            partial.break_off(stats);
        } else if rsp.flags & !known_flags != 0 || partial.slots > MAX_RX_SLOTS {
            partial.break_off(stats);
        } else if rsp.status <= 0 {
            partial.fail(Fault::Error);
        } else {
            let offset = usize::from(rsp.offset);
            let len = rsp.status as usize;
            if offset + len > XEN_PAGE_SIZE {
                partial.break_off(stats);
            } else if partial.bytes.len() + len > limit {
                partial.fail(Fault::Error);
            } else if partial.fault.is_none() {
                let start = partial.bytes.len();
                partial.bytes.resize(start + len, 0);
                self.rx_buffers
                    .read(id, offset, &mut partial.bytes[start..]);
            }
        }
        // Only a buffer the back end holds goes back (`known`).
        self.repost(id);
        if more || self.partial.as_ref().is_some_and(|p| p.extras_pending) {
            // Even a broken chain is consumed to its end, so its tail is
            // never taken for a frame of its own.
            return None;
        }
        self.finish(limits, stats)
    }

    /// An extra-info slot (ring index `index`) of the frame being
    /// gathered: records its GSO size, reposts the buffer its request
    /// lent, and returns the frame if it ended it.
    fn take_rx_extra(
        &mut self,
        index: u32,
        response: Result<RxResponse, RingError>,
        limits: RxLimits,
        stats: &mut NetStats,
    ) -> Option<Received> {
        let size = self.rx_posted_at.len();
        let id = self.rx_posted_at[index as usize % size];
        let partial = self.partial.as_mut()?;
        partial.slots += 1;
        partial.extras_pending = false;
        match response.map(|slot| ExtraInfo::from_slot(&slot)) {
            Ok(extra) => {
                partial.extras_pending = extra.flags & XEN_NETIF_EXTRA_FLAG_MORE != 0;
                let good_gso = extra.kind == XEN_NETIF_EXTRA_TYPE_GSO
                    && extra.gso_type == XEN_NETIF_GSO_TYPE_TCPV4
                    && extra.gso_size > 0
                    && partial.gso_size.is_none();
                if good_gso {
                    partial.gso_size = Some(extra.gso_size);
                } else {
                    // Not asked for (another type, a second GSO slot, a
                    // size of 0): the frame cannot be trusted.
                    partial.break_off(stats);
                }
            }
            Err(_) => partial.break_off(stats),
        }
        if partial.slots > MAX_RX_SLOTS {
            partial.break_off(stats);
            partial.extras_pending = false;
        }
        self.repost(id);
        let partial = self.partial.as_ref()?;
        if partial.extras_pending || partial.data_more {
            return None;
        }
        self.finish(limits, stats)
    }

    /// Ends the frame being gathered: the frame, or `None` (counted) if
    /// it failed or is too long for what its extra slots said.
    fn finish(&mut self, limits: RxLimits, stats: &mut NetStats) -> Option<Received> {
        let partial = self.partial.take()?;
        let fault = match partial.fault {
            None if partial.gso_size.is_none() && partial.bytes.len() > limits.max_frame => {
                Some(Fault::Error)
            }
            fault => fault,
        };
        match fault {
            None => Some(Received {
                bytes: partial.bytes,
                flags: partial.flags,
                slots: partial.slots,
                gso_size: partial.gso_size,
            }),
            Some(Fault::Error) => {
                stats.rx_errors += 1;
                None
            }
            Some(Fault::Broken) => None,
        }
    }

    /// Whether responses wait on either ring; if none does, asks for an
    /// event at the next one.
    pub fn final_check(&mut self) -> bool {
        let rx = self.rx.final_check_for_responses();
        let tx = self.tx.final_check_for_responses();
        rx || tx
    }
}
