//! netfront: the front end of Xen's paravirtual network device
//! (`io/netif.h`), and a [`smoltcp::phy::Device`] over it.
//!
//! What it takes up when netback offers it ([`features`]): up to
//! [`features::MAX_QUEUES`] queues (`multi-queue-num-queues`), each a tx
//! and an rx ring of one page ([`queue`]); split event channels (one for
//! each ring of a queue); scatter-gather, so frames may span slots both
//! ways (we always write `feature-sg=1` and take multi-slot rx frames; we
//! send multi-slot frames only if the back end offers `feature-sg`, which
//! is also what lets the MTU from xenstore exceed a page); and IPv4
//! TCP/UDP checksum offload both ways ([`checksum`]: smoltcp neither
//! computes nor verifies TCP/UDP checksums, the driver does per frame).
//! Rx is always `request-rx-copy=1`: the back end copies each frame into
//! pages we lent it. We ask for no GSO, so frames stay within the MTU.
//!
//! Tx picks a queue by a hash of the frame's flow, so a TCP connection
//! keeps its order; rx polls every queue in turn. A queue may also be
//! served alone ([`Netfront::service_queue`]: its tx responses taken in,
//! its received frames copied off and staged for [`Netfront::receive`]),
//! which is what a task pinned to the vCPU that queue's channels are
//! bound to does (`guest::Channels::bind_queues_to_vcpus`; libos's
//! `net` module docs say how the stack uses it). There is still one
//! device and one owner: the queue tasks work on it under the same lock
//! as the stack.
//!
//! [`Netfront`] is the protocol, written against [`RingMemory`] (the
//! ring pages), [`PacketBuffers`] (the granted packet pages) and
//! [`Notify`] (the event channels), so the host tests run it against a
//! simulated netback (`tests`). `guest` (guest only) implements those over
//! the kernel's pages, grants and event channels, and connects through
//! xenstore.
//!
//! Everything the back end writes is untrusted: each response is copied
//! out of the ring once ([`crate::shared_ring::FrontRing`] does that), its
//! id must name a buffer we handed out and not yet got back, its length
//! and offset must fit the page, a chain must end within
//! [`queue::MAX_RX_SLOTS`] slots and the frame's total within the MTU,
//! and flags we never negotiated are refused. A bad response is counted
//! ([`NetStats::bad_responses`]) and its frame dropped; nothing here
//! panics on what the back end writes.

pub mod checksum;
pub mod features;
pub mod pages;
pub mod queue;
pub mod wire;

#[cfg(target_os = "none")]
pub mod guest;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_features;
#[cfg(test)]
mod tests_gso;

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::shared_ring::{RingError, RingMemory, XEN_PAGE_SIZE};
use checksum::{TxChecksum, Verdict};
use features::MAX_QUEUES;
pub use queue::MAX_GSO_FRAME;
use queue::{Queue, QueueParts, Received, RxLimits};
use wire::{NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED};

/// The largest Ethernet frame (without FCS) sent or accepted: a 1500-byte
/// MTU plus the 14-byte header.
pub const MAX_FRAME: usize = 1514;

/// The most frames [`Netfront::service_queue`] keeps staged (copied off
/// the rings, not yet taken by the stack): as many as one queue lends
/// the back end, a bound on what a queue's task can pile up (and on the
/// memory a flooding back end can make it hold).
pub const STAGED_FRAMES: usize = 128;

/// The most bytes staged: with GSO a frame can be 64 KiB, and 128 of
/// them would be 8 MiB of a guest that may have 4.
pub const STAGED_BYTES: usize = 256 * 1024;

/// The smallest frame sent: an Ethernet header.
pub const MIN_FRAME: usize = 14;

/// The largest frame with scatter-gather: a 9000-byte ("jumbo") MTU plus
/// the header, three slots.
pub const MAX_SG_FRAME: usize = 9014;

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

/// Which ring of a queue an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingKind {
    /// The tx ring (frames we send).
    Tx,
    /// The rx ring (pages we lend).
    Rx,
}

/// Signals the back end (the event channels).
pub trait Notify {
    /// Sends one event for `ring` of queue `queue` (on that ring's
    /// channel with split channels, on the queue's one channel without).
    fn notify(&mut self, queue: usize, ring: RingKind);
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
    /// No queues, or more than [`MAX_QUEUES`].
    BadQueueCount,
    /// The back end lacks a feature we need (its key).
    Unsupported(&'static str),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Ring(error) => write!(f, "netfront: {error}"),
            NetError::BadBufferCount => f.write_str("netfront: bad buffer count"),
            NetError::BadLength(len) => write!(f, "netfront: bad frame length {len}"),
            NetError::NoTxBuffer => f.write_str("netfront: no free tx buffer"),
            NetError::BadQueueCount => f.write_str("netfront: bad queue count"),
            NetError::Unsupported(key) => write!(f, "netfront: back end lacks {key}"),
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
    /// Frames dropped for a wrong TCP/UDP checksum (checked here because
    /// the back end vouched for neither checksum nor data).
    pub rx_csum_errors: u64,
    /// Frames received with `NETRXF_csum_blank` (checksum never computed).
    pub rx_csum_blank: u64,
    /// Frames received with only `NETRXF_data_validated`.
    pub rx_data_validated: u64,
    /// Frames sent with `NETTXF_csum_blank` (the back end completes the
    /// checksum).
    pub tx_csum_blank: u64,
    /// Frames received over more than one slot.
    pub rx_multi_slot: u64,
    /// Frames sent over more than one slot.
    pub tx_multi_slot: u64,
    /// Frames received whole with GSO (an extra-info slot gave their
    /// segment size).
    pub rx_gso: u64,
    /// Frames received on each queue.
    pub queue_rx_frames: [u64; MAX_QUEUES],
    /// Frames sent on each queue.
    pub queue_tx_frames: [u64; MAX_QUEUES],
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
        )?;
        write!(
            f,
            " rx_csum_errors {} rx_csum_blank {} rx_data_validated {} tx_csum_blank {} rx_multi_slot {} tx_multi_slot {}",
            self.rx_csum_errors,
            self.rx_csum_blank,
            self.rx_data_validated,
            self.tx_csum_blank,
            self.rx_multi_slot,
            self.tx_multi_slot
        )?;
        write!(f, " rx_gso {}", self.rx_gso)?;
        f.write_str(" queue_rx")?;
        for (queue, frames) in self.queue_rx_frames.iter().enumerate() {
            write!(f, "{}{frames}", if queue == 0 { " " } else { "/" })?;
        }
        f.write_str(" queue_tx")?;
        for (queue, frames) in self.queue_tx_frames.iter().enumerate() {
            write!(f, "{}{frames}", if queue == 0 { " " } else { "/" })?;
        }
        Ok(())
    }
}

/// How frames are sent and taken on a connected device (from
/// [`features::Negotiated`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Tx frames may span slots (the back end's `feature-sg`).
    pub sg: bool,
    /// IPv4 TCP/UDP checksum offload.
    pub csum_offload: bool,
    /// The longest frame sent or taken: [`MIN_FRAME`] to [`MAX_FRAME`],
    /// or to [`MAX_SG_FRAME`] with `sg`.
    pub max_frame: usize,
    /// GSO frames are taken on the rx side (up to [`MAX_GSO_FRAME`]; we
    /// wrote `feature-gso-tcpv4`).
    pub gso_rx: bool,
}

impl Default for LinkConfig {
    /// One page per frame, 1500-byte MTU, checksums computed here.
    fn default() -> LinkConfig {
        LinkConfig {
            sg: false,
            csum_offload: false,
            max_frame: MAX_FRAME,
            gso_rx: false,
        }
    }
}

impl From<&features::Negotiated> for LinkConfig {
    fn from(negotiated: &features::Negotiated) -> LinkConfig {
        LinkConfig {
            sg: negotiated.sg,
            csum_offload: negotiated.csum_offload,
            max_frame: negotiated.max_frame,
            gso_rx: negotiated.gso_rx,
        }
    }
}

/// The netfront protocol over one or more queues.
pub struct Netfront<M: RingMemory, B: PacketBuffers, N: Notify> {
    queues: Vec<Queue<M, B>>,
    notify: N,
    mac: [u8; 6],
    link: LinkConfig,
    /// The queue [`Netfront::receive`] looks at first (round robin).
    next_rx: usize,
    /// Frames [`Netfront::service_queue`] took off a ring and
    /// [`Netfront::receive`] has not handed out yet.
    staged: VecDeque<Vec<u8>>,
    /// Bytes in `staged`.
    staged_bytes: usize,
    stats: NetStats,
}

impl<M: RingMemory, B: PacketBuffers, N: Notify> Netfront<M, B, N> {
    /// Sets up every queue's rings (one page each, headers initialised)
    /// and posts every rx buffer. Publishes the rx requests but does not
    /// notify: the back end reads them when it connects.
    pub fn new(
        parts: Vec<QueueParts<M, B>>,
        notify: N,
        mac: [u8; 6],
        link: LinkConfig,
    ) -> Result<Self, NetError> {
        if parts.is_empty() || parts.len() > MAX_QUEUES {
            return Err(NetError::BadQueueCount);
        }
        let limit = if link.sg { MAX_SG_FRAME } else { MAX_FRAME };
        if !(MIN_FRAME..=limit).contains(&link.max_frame) {
            return Err(NetError::BadLength(link.max_frame));
        }
        let queues = parts
            .into_iter()
            .map(Queue::new)
            .collect::<Result<Vec<_>, _>>()?;
        if queues
            .iter()
            .any(|q| q.tx_capacity() < Self::slots_for(link.max_frame))
        {
            return Err(NetError::BadBufferCount);
        }
        Ok(Netfront {
            queues,
            notify,
            mac,
            link,
            next_rx: 0,
            staged: VecDeque::new(),
            staged_bytes: 0,
            stats: NetStats::default(),
        })
    }

    fn slots_for(len: usize) -> usize {
        len.div_ceil(XEN_PAGE_SIZE).max(1)
    }

    /// The MAC address given at set-up.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// How frames are sent and taken.
    pub fn link(&self) -> LinkConfig {
        self.link
    }

    /// How many queues there are.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// The counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Whether the back end broke a ring (the device is dead).
    pub fn is_broken(&self) -> bool {
        self.queues.iter().any(Queue::is_broken)
    }

    /// Tx buffers free now, over all queues.
    pub fn tx_free(&self) -> usize {
        self.queues.iter().map(Queue::tx_free).sum()
    }

    /// Signals the back end on every channel (after connecting).
    pub fn kick(&mut self) {
        for queue in 0..self.queues.len() {
            self.notify.notify(queue, RingKind::Tx);
            self.notify.notify(queue, RingKind::Rx);
        }
    }

    /// The queue a frame goes out on: by its flow, so one connection's
    /// frames stay in order.
    pub fn queue_for(&self, frame: &[u8]) -> usize {
        checksum::flow_hash(frame) as usize % self.queues.len()
    }

    /// Sends one frame: fills in its TCP/UDP checksum (or leaves it to
    /// the back end with offload), copies it into free tx buffers of its
    /// flow's queue (one per page) and pushes the requests, reclaiming
    /// answered requests first if buffers are short.
    pub fn send(&mut self, frame: &mut [u8]) -> Result<(), NetError> {
        if !(MIN_FRAME..=self.link.max_frame).contains(&frame.len()) {
            return Err(NetError::BadLength(frame.len()));
        }
        let flags = match checksum::prepare_tx(frame, self.link.csum_offload) {
            TxChecksum::Untouched => 0,
            // We computed it: dom0 need not check it again.
            TxChecksum::Full => NETTXF_DATA_VALIDATED,
            TxChecksum::Partial => NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED,
        };
        let index = self.queue_for(frame);
        let notify = self.queues[index].send(frame, flags, &mut self.stats)?;
        self.stats.queue_tx_frames[index] += 1;
        if flags & NETTXF_CSUM_BLANK != 0 {
            self.stats.tx_csum_blank += 1;
        }
        if notify {
            self.notify.notify(index, RingKind::Tx);
        }
        Ok(())
    }

    /// Takes every tx response in, on every queue; returns how many
    /// buffers were freed.
    pub fn reclaim_tx(&mut self) -> usize {
        let stats = &mut self.stats;
        self.queues.iter_mut().map(|q| q.reclaim(stats)).sum()
    }

    /// Whether every queue can take a frame of the longest length now
    /// (reclaiming first where it cannot).
    fn tx_room(&mut self) -> bool {
        let needed = Self::slots_for(self.link.max_frame);
        let stats = &mut self.stats;
        self.queues.iter_mut().all(|queue| {
            if queue.tx_free() < needed {
                queue.reclaim(stats);
            }
            queue.tx_free() >= needed
        })
    }

    /// The next received frame, copied out of its buffers (which go back
    /// to the back end at once), from the queues in turn. Bad responses
    /// are counted and skipped; frames whose checksum had to be checked
    /// here and is wrong are counted and dropped.
    pub fn receive(&mut self) -> Option<Vec<u8>> {
        if let Some(frame) = self.staged.pop_front() {
            self.staged_bytes -= frame.len();
            return Some(frame);
        }
        let count = self.queues.len();
        for step in 0..count {
            let index = (self.next_rx + step) % count;
            while let Some(received) = self.receive_on(index) {
                if let Some(frame) = self.accept(index, received) {
                    self.next_rx = (index + 1) % count;
                    return Some(frame);
                }
            }
        }
        None
    }

    /// The ring work of queue `index` alone, for the task that serves
    /// that queue on its own vCPU: takes its tx responses in (freeing
    /// buffers), and copies up to [`STAGED_FRAMES`] received frames off
    /// its rx ring (giving their pages back to the back end at once)
    /// for [`Netfront::receive`] to hand out. Returns how many frames it
    /// staged; 0 for a queue that does not exist.
    pub fn service_queue(&mut self, index: usize) -> usize {
        let Some(queue) = self.queues.get_mut(index) else {
            return 0;
        };
        queue.reclaim(&mut self.stats);
        let mut staged = 0;
        while self.staged.len() < STAGED_FRAMES && self.staged_bytes < STAGED_BYTES {
            let Some(received) = self.receive_on(index) else {
                break;
            };
            if let Some(frame) = self.accept(index, received) {
                self.staged_bytes += frame.len();
                self.staged.push_back(frame);
                staged += 1;
            }
        }
        staged
    }

    fn receive_on(&mut self, index: usize) -> Option<Received> {
        let limits = RxLimits {
            max_frame: self.link.max_frame,
            gso: self.link.gso_rx,
        };
        let (received, notify) = self.queues[index].receive(limits, &mut self.stats);
        if notify {
            self.notify.notify(index, RingKind::Rx);
        }
        received
    }

    /// Honours a frame's checksum hints; `None` if it is dropped.
    fn accept(&mut self, index: usize, received: Received) -> Option<Vec<u8>> {
        let stats = &mut self.stats;
        if received.flags & NETRXF_CSUM_BLANK != 0 {
            // From dom0's own stack: the checksum was never computed, and
            // smoltcp does not check it (see `capabilities`).
            stats.rx_csum_blank += 1;
        } else if received.flags & NETRXF_DATA_VALIDATED != 0 {
            stats.rx_data_validated += 1;
        } else if checksum::verify(&received.bytes) == Verdict::Bad {
            stats.rx_csum_errors += 1;
            return None;
        }
        stats.rx_frames += 1;
        stats.rx_bytes += received.bytes.len() as u64;
        stats.queue_rx_frames[index] += 1;
        if received.slots > 1 {
            stats.rx_multi_slot += 1;
        }
        if received.gso_size.is_some() {
            stats.rx_gso += 1;
        }
        Some(received.bytes)
    }

    /// Whether work waits: a received frame on any rx ring (tx responses
    /// are taken in here first, freeing their buffers). If none does,
    /// asks the back end for an event at its next response
    /// (`RING_FINAL_CHECK_FOR_RESPONSES`). Call it before sleeping on the
    /// event channels: false means nothing will happen until one fires.
    ///
    /// Tx responses are reclaimed here because nothing else takes them
    /// in until the tx buffers run short: left in the ring they made this
    /// say "pending" for ever after the first frame sent, and a caller
    /// that polls until it says no never slept again (the spin of issue
    /// 10: an idle httpd at 85 % CPU after one request). A ring the back
    /// end broke is dead and counts as nothing pending, for the same
    /// reason.
    pub fn final_check(&mut self) -> bool {
        self.reclaim_tx();
        // Not `any`: every ring must re-arm its event index.
        let staged = !self.staged.is_empty();
        self.queues.iter_mut().fold(staged, |pending, queue| {
            let waiting = queue.final_check() && !queue.is_broken();
            waiting | pending
        })
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
        if self.netfront.send(&mut frame).is_err() {
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
        if !self.tx_room() {
            // No room for an answer: leave the frame in the ring for now.
            return None;
        }
        let frame = Netfront::receive(self)?;
        Some((NetRxToken { frame }, NetTxToken { netfront: self }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        if !self.tx_room() {
            return None;
        }
        Some(NetTxToken { netfront: self })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.link.max_frame;
        caps.max_burst_size = self.queues.iter().map(Queue::tx_capacity).min();
        // The driver does TCP/UDP checksums per frame (`checksum`).
        caps.checksum.tcp = Checksum::None;
        caps.checksum.udp = Checksum::None;
        caps
    }
}
