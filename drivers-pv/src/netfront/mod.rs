//! netfront: the front end of Xen's paravirtual network device
//! (`io/netif.h`), and a [`smoltcp::phy::Device`] over it.
//!
//! Two rings, one page each, share one event channel (no split channels,
//! one queue): the tx ring carries frames we send, the rx ring carries
//! empty pages we lend the back end (`request-rx-copy=1`: the back end
//! copies each received frame into one of them with a grant copy). Every
//! frame fits one page both ways: we offer neither `feature-sg` nor GSO,
//! so frames are at most [`MAX_FRAME`] bytes, and we write
//! `feature-no-csum-offload=1` so the back end hands us complete
//! checksums.
//!
//! [`Netfront`] is the protocol, written against [`RingMemory`] (the
//! ring pages), [`PacketBuffers`] (the granted packet pages) and
//! [`Notify`] (the event channel), so the host tests run it against a
//! simulated netback (`tests`). `guest` (guest only) implements those over
//! the kernel's pages, grants and event channels, and connects through
//! xenstore.
//!
//! Everything the back end writes is untrusted: each response is copied
//! out of the ring once ([`FrontRing`] does that), its id must name a
//! buffer we handed out and not yet got back, its length and offset must
//! fit the page, and flags we never negotiated are refused. A bad response
//! is counted ([`NetStats::bad_responses`]) and skipped; nothing here
//! panics on what the back end writes.

pub mod wire;

#[cfg(target_os = "none")]
pub mod guest;

#[cfg(test)]
mod tests;

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::shared_ring::{FrontRing, RingError, RingMemory, XEN_PAGE_SIZE};
use wire::{
    RxRequest, RxResponse, TxRequest, TxResponse, NETIF_RSP_OKAY, NETRXF_EXTRA_INFO,
    NETRXF_GSO_PREFIX, NETRXF_MORE_DATA,
};

/// The largest Ethernet frame (without FCS) sent or accepted: a 1500-byte
/// MTU plus the 14-byte header.
pub const MAX_FRAME: usize = 1514;

/// The smallest frame sent: an Ethernet header.
pub const MIN_FRAME: usize = 14;

/// The packet pages lent to one direction: each has an id (its index)
/// and a grant reference the back end can use.
pub trait PacketBuffers {
    /// How many buffers there are (ids `0..count()`).
    fn count(&self) -> usize;
    /// The grant reference of buffer `id`.
    fn gref(&self, id: u16) -> u32;
    /// Copies `bytes` to the start of buffer `id` (at most a page).
    fn write(&mut self, id: u16, bytes: &[u8]);
    /// Copies `out.len()` bytes at `offset` of buffer `id` out (the
    /// range is inside the page).
    fn read(&self, id: u16, offset: usize, out: &mut [u8]);
}

/// Signals the back end (the event channel).
pub trait Notify {
    /// Sends one event.
    fn notify(&mut self);
}

/// What can go wrong setting up or using a [`Netfront`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// A ring could not be set up, or the back end broke one.
    Ring(RingError),
    /// Buffer counts out of range (none, more than a ring holds, or more
    /// than 65536).
    BadBufferCount,
    /// A frame shorter than [`MIN_FRAME`] or longer than [`MAX_FRAME`].
    BadLength(usize),
    /// Every tx buffer is in flight.
    NoTxBuffer,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Ring(error) => write!(f, "netfront: {error}"),
            NetError::BadBufferCount => f.write_str("netfront: bad buffer count"),
            NetError::BadLength(len) => write!(f, "netfront: bad frame length {len}"),
            NetError::NoTxBuffer => f.write_str("netfront: no free tx buffer"),
        }
    }
}

/// Counters of one [`Netfront`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames received and handed up.
    pub rx_frames: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames sent (pushed to the tx ring).
    pub tx_frames: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Tx responses reporting an error or a drop.
    pub tx_errors: u64,
    /// Rx responses reporting an error (status < 0, or an empty frame).
    pub rx_errors: u64,
    /// Responses that broke the protocol (unknown or repeated id, a
    /// length outside the page, flags never negotiated, bad encodings).
    pub bad_responses: u64,
    /// Frames smoltcp wanted to send that were dropped (bad length).
    pub tx_dropped: u64,
}

/// The one-line counter summary the example apps print (and the rig's
/// end-to-end tests read back).
impl core::fmt::Display for NetStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "netfront rx {} frames {} bytes, tx {} frames {} bytes, rx_errors {} tx_errors {} bad_responses {} tx_dropped {}",
            self.rx_frames,
            self.rx_bytes,
            self.tx_frames,
            self.tx_bytes,
            self.rx_errors,
            self.tx_errors,
            self.bad_responses,
            self.tx_dropped
        )
    }
}

/// A received frame, checked: it lies in `offset..offset + len` of the
/// buffer `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFrame {
    /// The buffer.
    pub id: u16,
    /// Where the frame starts in it.
    pub offset: usize,
    /// Its length.
    pub len: usize,
}

/// What a checked rx response says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxOutcome {
    /// A good frame.
    Frame(RxFrame),
    /// The back end reports an error for buffer `id` (which is ours
    /// again).
    Error(u16),
}

/// Checks an rx response against the buffers posted (`posted[id]`).
/// `Err` for a response that breaks the protocol; a known id is handed
/// back with it when there is one, so its buffer can be reposted.
pub fn check_rx_response(rsp: &RxResponse, posted: &[bool]) -> Result<RxOutcome, Option<u16>> {
    let id = rsp.id;
    if !posted.get(usize::from(id)).copied().unwrap_or(false) {
        return Err(None);
    }
    if rsp.flags & (NETRXF_MORE_DATA | NETRXF_EXTRA_INFO | NETRXF_GSO_PREFIX) != 0 {
        return Err(Some(id));
    }
    if rsp.status <= 0 {
        return Ok(RxOutcome::Error(id));
    }
    let offset = usize::from(rsp.offset);
    let len = rsp.status as usize;
    if len > MAX_FRAME || offset + len > XEN_PAGE_SIZE {
        return Err(Some(id));
    }
    Ok(RxOutcome::Frame(RxFrame { id, offset, len }))
}

/// Checks a tx response against the requests in flight (`busy[id]`):
/// `Some(id)` if it answers one of them.
pub fn check_tx_response(rsp: &TxResponse, busy: &[bool]) -> Option<u16> {
    busy.get(usize::from(rsp.id))
        .copied()
        .unwrap_or(false)
        .then_some(rsp.id)
}

/// The netfront protocol over two one-page rings.
pub struct Netfront<M: RingMemory, B: PacketBuffers, N: Notify> {
    tx: FrontRing<M, TxRequest, TxResponse>,
    rx: FrontRing<M, RxRequest, RxResponse>,
    tx_buffers: B,
    rx_buffers: B,
    tx_free: Vec<u16>,
    tx_busy: Vec<bool>,
    rx_posted: Vec<bool>,
    notify: N,
    mac: [u8; 6],
    stats: NetStats,
}

impl<M: RingMemory, B: PacketBuffers, N: Notify> Netfront<M, B, N> {
    /// Sets up both rings (one page each, headers initialised) and posts
    /// every rx buffer. Publishes the rx requests but does not notify: the
    /// back end reads them when it connects.
    pub fn new(
        tx_memory: M,
        rx_memory: M,
        tx_buffers: B,
        rx_buffers: B,
        notify: N,
        mac: [u8; 6],
    ) -> Result<Self, NetError> {
        let tx = FrontRing::new(tx_memory, 1).map_err(|(e, _)| NetError::Ring(e))?;
        let rx = FrontRing::new(rx_memory, 1).map_err(|(e, _)| NetError::Ring(e))?;
        let fits = |buffers: &B, ring: u32| {
            (1..=usize::from(u16::MAX) + 1).contains(&buffers.count())
                && buffers.count() <= ring as usize
        };
        if !fits(&tx_buffers, tx.ring_size()) || !fits(&rx_buffers, rx.ring_size()) {
            return Err(NetError::BadBufferCount);
        }
        let tx_count = tx_buffers.count();
        let rx_count = rx_buffers.count();
        let mut netfront = Netfront {
            tx,
            rx,
            tx_buffers,
            rx_buffers,
            tx_free: (0..tx_count).rev().map(|id| id as u16).collect(),
            tx_busy: vec![false; tx_count],
            rx_posted: vec![false; rx_count],
            notify,
            mac,
            stats: NetStats::default(),
        };
        for id in 0..rx_count {
            netfront.post_rx(id as u16)?;
        }
        netfront.rx.push_and_check_notify();
        Ok(netfront)
    }

    /// The MAC address given at set-up.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Whether the back end broke a ring (the device is dead).
    pub fn is_broken(&self) -> bool {
        self.tx.is_broken() || self.rx.is_broken()
    }

    /// Tx buffers free now.
    pub fn tx_free(&self) -> usize {
        self.tx_free.len()
    }

    /// Signals the back end unconditionally (after connecting).
    pub fn kick(&mut self) {
        self.notify.notify();
    }

    fn post_rx(&mut self, id: u16) -> Result<(), NetError> {
        let gref = self.rx_buffers.gref(id);
        self.rx
            .push_request(&RxRequest { id, gref })
            .map_err(NetError::Ring)?;
        self.rx_posted[usize::from(id)] = true;
        Ok(())
    }

    /// Sends one frame: copies it into a free tx buffer and pushes the
    /// request (reclaiming answered requests first if none is free).
    pub fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
            return Err(NetError::BadLength(frame.len()));
        }
        if self.tx_free.is_empty() {
            self.reclaim_tx();
        }
        let id = self.tx_free.pop().ok_or(NetError::NoTxBuffer)?;
        self.tx_buffers.write(id, frame);
        let request = TxRequest {
            gref: self.tx_buffers.gref(id),
            offset: 0,
            flags: 0,
            id,
            size: frame.len() as u16,
        };
        if let Err(error) = self.tx.push_request(&request) {
            self.tx_free.push(id);
            return Err(NetError::Ring(error));
        }
        self.tx_busy[usize::from(id)] = true;
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += frame.len() as u64;
        if self.tx.push_and_check_notify() {
            self.notify.notify();
        }
        Ok(())
    }

    /// Takes every tx response in, freeing the buffers they answer;
    /// returns how many were freed.
    pub fn reclaim_tx(&mut self) -> usize {
        let mut freed = 0;
        while let Some(response) = self.tx.take_response() {
            match response {
                Ok(rsp) => match check_tx_response(&rsp, &self.tx_busy) {
                    Some(id) => {
                        self.tx_busy[usize::from(id)] = false;
                        self.tx_free.push(id);
                        freed += 1;
                        if rsp.status != NETIF_RSP_OKAY {
                            self.stats.tx_errors += 1;
                        }
                    }
                    None => self.stats.bad_responses += 1,
                },
                Err(RingError::BadEntry { .. }) => self.stats.bad_responses += 1,
                Err(_) => break,
            }
        }
        freed
    }

    /// The next received frame, copied out of its buffer (which goes back
    /// to the back end at once). Bad responses are counted and skipped.
    pub fn receive(&mut self) -> Option<Vec<u8>> {
        let mut frame = None;
        while let Some(response) = self.rx.take_response() {
            let rsp = match response {
                Ok(rsp) => rsp,
                Err(RingError::BadEntry { .. }) => {
                    self.stats.bad_responses += 1;
                    continue;
                }
                Err(_) => break,
            };
            let (id, outcome) = match check_rx_response(&rsp, &self.rx_posted) {
                Ok(RxOutcome::Frame(checked)) => (checked.id, Some(checked)),
                Ok(RxOutcome::Error(id)) => {
                    self.stats.rx_errors += 1;
                    (id, None)
                }
                Err(Some(id)) => {
                    self.stats.bad_responses += 1;
                    (id, None)
                }
                Err(None) => {
                    self.stats.bad_responses += 1;
                    continue;
                }
            };
            if let Some(checked) = outcome {
                let mut bytes = vec![0; checked.len];
                self.rx_buffers.read(id, checked.offset, &mut bytes);
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += checked.len as u64;
                frame = Some(bytes);
            }
            self.rx_posted[usize::from(id)] = false;
            // Cannot fail: the slot this response freed takes the request.
            let _ = self.post_rx(id);
            if frame.is_some() {
                break;
            }
        }
        if self.rx.push_and_check_notify() {
            self.notify.notify();
        }
        frame
    }

    /// Whether responses wait on either ring; if none does, asks the back
    /// end for an event at the next one (`RING_FINAL_CHECK_FOR_RESPONSES`).
    /// Call it before sleeping on the event channel.
    pub fn final_check(&mut self) -> bool {
        let rx = self.rx.final_check_for_responses();
        let tx = self.tx.final_check_for_responses();
        rx || tx
    }
}

/// A received frame for smoltcp.
pub struct NetRxToken {
    frame: Vec<u8>,
}

impl phy::RxToken for NetRxToken {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.frame)
    }
}

/// Room to send one frame, for smoltcp.
pub struct NetTxToken<'a, M: RingMemory, B: PacketBuffers, N: Notify> {
    netfront: &'a mut Netfront<M, B, N>,
}

impl<M: RingMemory, B: PacketBuffers, N: Notify> phy::TxToken for NetTxToken<'_, M, B, N> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        if self.netfront.send(&frame).is_err() {
            self.netfront.stats.tx_dropped += 1;
        }
        result
    }
}

impl<M: RingMemory, B: PacketBuffers, N: Notify> phy::Device for Netfront<M, B, N> {
    type RxToken<'a>
        = NetRxToken
    where
        Self: 'a;
    type TxToken<'a>
        = NetTxToken<'a, M, B, N>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if self.tx_free.is_empty() {
            self.reclaim_tx();
        }
        if self.tx_free.is_empty() {
            // No room for an answer: leave the frame in the ring for now.
            return None;
        }
        let frame = Netfront::receive(self)?;
        Some((NetRxToken { frame }, NetTxToken { netfront: self }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        if self.tx_free.is_empty() {
            self.reclaim_tx();
        }
        if self.tx_free.is_empty() {
            return None;
        }
        Some(NetTxToken { netfront: self })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(self.tx_busy.len());
        caps
    }
}
