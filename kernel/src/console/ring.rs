//! The producer side of the PV console ring (`xen/io/console.h`).
//!
//! A domU's console is one shared page: a 2 KiB ring of bytes to the
//! backend (`out`, read by xenconsoled in dom0) and a 1 KiB ring back
//! (`in`). We produce into `out`: copy bytes, advance `out_prod` (after a
//! write barrier, so the backend never sees the index before the data),
//! then notify the backend's event channel. The backend advances
//! `out_cons`, which we re-read and check each time: it is the one value
//! here an untrusted party writes.
//!
//! The page access goes through [`ConsolePage`] so this logic runs the
//! same against the real shared page and against a simulated backend in
//! host tests.

use crate::ring_index::{ByteRing, RingCorrupt};
use pv_arch::abi::console::XENCONS_OUT_SIZE;

/// Access to the shared console page and its event channel.
pub trait ConsolePage {
    /// Reads `out_cons` (written by the backend).
    fn out_cons(&self) -> u32;
    /// Copies `bytes` into `out` at `offset` (no wrap: the caller splits).
    fn write_out(&mut self, offset: usize, bytes: &[u8]);
    /// Publishes `out_prod`, after a write barrier.
    fn publish_out_prod(&mut self, prod: u32);
    /// Notifies the backend.
    fn notify(&mut self);
    /// Lets the backend run while we wait for room (yield the vCPU).
    fn wait(&mut self);
    /// System time in nanoseconds, if a clock is running yet (early in
    /// boot it is not, and the wait is bounded by [`STALL_WAITS`] alone).
    fn now_ns(&self) -> Option<u64>;
}

/// Why bytes could not go into the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingWriteError {
    /// The backend stopped consuming (now, or earlier and has not come
    /// back): these bytes were dropped without waiting for it.
    Stalled {
        /// Bytes that did not fit.
        unwritten: usize,
    },
    /// The backend's `out_cons` is impossible.
    Corrupt(RingCorrupt),
}

/// How long a writer waits for a backend that makes no progress before
/// it declares the backend stalled: generous, since the backend lives in
/// another domain that may not be scheduled for a while (and under
/// emulation dom0 is slow), but finite, so a dead backend cannot hang us.
pub const STALL_AFTER_NS: u64 = 5_000_000_000;

/// The bound in waits for when there is no clock yet (early boot): waits
/// in a row in which the backend consumed nothing. Early boot prints
/// less than the ring holds, so this rarely applies at all.
pub const STALL_WAITS: u32 = 20_000;

/// The producer state for `out`.
///
/// A backend that stops reading costs one bounded wait, once: the writer
/// then marks the ring stalled and drops what does not fit at once,
/// without waiting, until the backend consumes something again
/// ([`RingWriter::resumed`] tells the caller, who reports the loss).
pub struct RingWriter<P: ConsolePage> {
    page: P,
    /// Our own copy of `out_prod`: we are its only writer, so we never
    /// re-read it from shared memory.
    prod: u32,
    /// `Some(out_cons)` as it was when the backend was declared stalled.
    stalled_at: Option<u32>,
    /// Times the backend was declared stalled.
    stalls: u64,
    /// `prod` as of the last notification: [`RingWriter::kick`] notifies
    /// only when there is something new.
    notified: u32,
}

/// Measures how long the backend has made no progress: against
/// [`STALL_AFTER_NS`] when there is a clock, [`STALL_WAITS`] before.
struct StallClock {
    cons: u32,
    since_ns: Option<u64>,
    waits: u32,
}

impl StallClock {
    fn start(cons: u32, now_ns: Option<u64>) -> Self {
        StallClock {
            cons,
            since_ns: now_ns,
            waits: 0,
        }
    }

    /// Called before each wait with the backend's index: whether the
    /// backend has now made no progress for too long.
    fn expired(&mut self, cons: u32, now_ns: Option<u64>) -> bool {
        if cons != self.cons {
            *self = StallClock::start(cons, now_ns);
            return false;
        }
        self.waits += 1;
        match (self.since_ns, now_ns) {
            (Some(since), Some(now)) => now.saturating_sub(since) >= STALL_AFTER_NS,
            // The clock came up while we waited: time from here.
            (None, Some(now)) => {
                self.since_ns = Some(now);
                false
            }
            _ => self.waits > STALL_WAITS,
        }
    }
}

impl<P: ConsolePage> RingWriter<P> {
    /// Starts producing at `prod` (the value in the page at boot).
    pub fn new(page: P, prod: u32) -> Self {
        RingWriter {
            page,
            prod,
            stalled_at: None,
            stalls: 0,
            notified: prod,
        }
    }

    /// The page, to change how it reaches the backend (its event
    /// channel after a resume).
    pub fn page_mut(&mut self) -> &mut P {
        &mut self.page
    }

    /// A new backend took over the ring (after a resume): producing goes
    /// on from `prod`, the index the page holds now, and an old stall
    /// says nothing about the new backend.
    pub fn restart_at(&mut self, prod: u32) {
        self.prod = prod;
        self.notified = prod;
        self.stalled_at = None;
    }

    /// Notifies the backend if anything was published since the last
    /// notification. The console calls this once per print: a formatted
    /// line reaches [`RingWriter::write`] in many pieces, and a
    /// notification per piece (a hypercall each) made the boot banner
    /// cost milliseconds under emulation.
    pub fn kick(&mut self) {
        if self.notified != self.prod {
            self.notify_now();
        }
    }

    fn notify_now(&mut self) {
        self.notified = self.prod;
        self.page.notify();
    }

    fn snapshot(&self) -> Result<ByteRing, RingWriteError> {
        ByteRing::new(self.prod, self.page.out_cons(), XENCONS_OUT_SIZE as u32)
            .map_err(RingWriteError::Corrupt)
    }

    /// Whether the backend is considered stalled (writes do not wait).
    pub fn is_stalled(&self) -> bool {
        self.stalled_at.is_some()
    }

    /// How many times the backend was declared stalled.
    pub fn stalls(&self) -> u64 {
        self.stalls
    }

    /// If the backend was stalled and has consumed something since,
    /// clears the stall and returns `true` (once per stall).
    pub fn resumed(&mut self) -> bool {
        match self.stalled_at {
            Some(cons) if self.page.out_cons() != cons => {
                self.stalled_at = None;
                true
            }
            _ => false,
        }
    }

    fn declare_stalled(&mut self) {
        self.stalled_at = Some(self.page.out_cons());
        self.stalls += 1;
    }

    /// Writes all of `bytes`, waiting for room as needed (and notifying
    /// the backend whenever the ring is full); the caller notifies at the
    /// end ([`RingWriter::kick`]). While the backend is stalled, writes
    /// what fits and drops the rest without waiting.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), RingWriteError> {
        let mut clock = StallClock::start(self.page.out_cons(), self.page.now_ns());
        while !bytes.is_empty() {
            let ring = self.snapshot()?;
            let (start, room) = ring.producer_chunk();
            if room == 0 {
                self.notify_now();
                if self.is_stalled() || clock.expired(self.page.out_cons(), self.page.now_ns()) {
                    if !self.is_stalled() {
                        self.declare_stalled();
                    }
                    return Err(RingWriteError::Stalled {
                        unwritten: bytes.len(),
                    });
                }
                self.page.wait();
                continue;
            }
            let n = room.min(bytes.len());
            self.page.write_out(start, &bytes[..n]);
            self.prod = self.prod.wrapping_add(n as u32);
            self.page.publish_out_prod(self.prod);
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Waits until the backend has consumed everything we wrote (not at
    /// all while it is stalled).
    pub fn flush(&mut self) -> Result<(), RingWriteError> {
        let mut clock = StallClock::start(self.page.out_cons(), self.page.now_ns());
        loop {
            let used = self.snapshot()?.used();
            if used == 0 {
                return Ok(());
            }
            self.notify_now();
            if self.is_stalled() || clock.expired(self.page.out_cons(), self.page.now_ns()) {
                if !self.is_stalled() {
                    self.declare_stalled();
                }
                return Err(RingWriteError::Stalled {
                    unwritten: used as usize,
                });
            }
            self.page.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated console backend: consumes `drain_per_wait` bytes each
    /// time the guest waits (or one byte every `waits_per_byte` waits),
    /// and records what it consumed. Each wait takes 1 ms of a simulated
    /// clock (`None`: no clock yet).
    struct SimPage {
        out: [u8; XENCONS_OUT_SIZE],
        prod: u32,
        cons: u32,
        drain_per_wait: u32,
        waits_per_byte: u32,
        consumed: Vec<u8>,
        notifies: u32,
        waits: u32,
        clock_ns: Option<u64>,
        cons_override: Option<u32>,
    }

    impl SimPage {
        fn consume(&mut self, count: u32) {
            for _ in 0..count {
                if self.cons == self.prod {
                    break;
                }
                let byte = self.out[self.cons as usize % XENCONS_OUT_SIZE];
                self.consumed.push(byte);
                self.cons = self.cons.wrapping_add(1);
            }
        }
    }

    impl SimPage {
        fn new(drain_per_wait: u32) -> Self {
            SimPage {
                out: [0; XENCONS_OUT_SIZE],
                prod: 0,
                cons: 0,
                drain_per_wait,
                waits_per_byte: 0,
                consumed: Vec::new(),
                notifies: 0,
                waits: 0,
                clock_ns: Some(0),
                cons_override: None,
            }
        }
    }

    impl ConsolePage for &mut SimPage {
        fn out_cons(&self) -> u32 {
            self.cons_override.unwrap_or(self.cons)
        }
        fn write_out(&mut self, offset: usize, bytes: &[u8]) {
            self.out[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        fn publish_out_prod(&mut self, prod: u32) {
            self.prod = prod;
        }
        fn notify(&mut self) {
            self.notifies += 1;
        }
        fn wait(&mut self) {
            self.waits += 1;
            if let Some(now) = &mut self.clock_ns {
                *now += 1_000_000;
            }
            let drain = self.drain_per_wait;
            self.consume(drain);
            if self.waits_per_byte != 0 && self.waits.is_multiple_of(self.waits_per_byte) {
                self.consume(1);
            }
        }
        fn now_ns(&self) -> Option<u64> {
            self.clock_ns
        }
    }

    #[test]
    fn pieces_are_published_at_once_and_notified_once_per_kick() {
        let mut page = SimPage::new(4096);
        {
            let mut writer = RingWriter::new(&mut page, 0);
            for piece in ["boot: ", "app ", "hello", "\n"] {
                writer.write(piece.as_bytes()).unwrap();
            }
            writer.kick();
            writer.kick();
        }
        assert_eq!(page.notifies, 1);
        assert_eq!(page.prod, 16);
        {
            let mut writer = RingWriter::new(&mut page, 16);
            writer.kick();
        }
        assert_eq!(page.notifies, 1, "nothing new: no notification");
    }

    #[test]
    fn long_output_arrives_in_order_through_a_slow_backend() {
        let mut page = SimPage::new(100);
        let text: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        {
            let mut writer = RingWriter::new(&mut page, 0);
            writer.write(&text).unwrap();
            writer.flush().unwrap();
        }
        assert_eq!(page.consumed, text);
        assert!(page.notifies > 0);
    }

    #[test]
    fn after_a_reset_page_the_writer_restarts_from_the_page_s_index() {
        let mut page = SimPage::new(4096);
        {
            let mut writer = RingWriter::new(&mut page, 0);
            writer.write(&[b'x'; 5000]).unwrap();
            writer.flush().unwrap();
        }
        // A restore hands the guest the page afresh (an HVM or PVH
        // restore does): both indices 0, the old bytes gone.
        page.out = [0; XENCONS_OUT_SIZE];
        page.prod = 0;
        page.cons = 0;
        page.consumed.clear();
        let mut writer = RingWriter::new(&mut page, 5000);
        writer.restart_at(0);
        writer.write(b"resumed\n").unwrap();
        writer.flush().unwrap();
        // Exactly the new bytes, no stale or zero bytes before them.
        assert_eq!(page.consumed, b"resumed\n");
        assert_eq!(page.prod, 8);
    }

    #[test]
    fn indices_wrapping_at_u32_are_fine() {
        let mut page = SimPage::new(64);
        page.prod = u32::MAX - 10;
        page.cons = u32::MAX - 10;
        let start = page.prod;
        {
            let mut writer = RingWriter::new(&mut page, start);
            writer.write(&[7; 300]).unwrap();
            writer.flush().unwrap();
        }
        assert_eq!(page.consumed, vec![7; 300]);
    }

    #[test]
    fn a_dead_backend_costs_one_bounded_wait_then_none() {
        let mut page = SimPage::new(0);
        let mut writer = RingWriter::new(&mut page, 0);
        let err = writer.write(&[1; XENCONS_OUT_SIZE + 5]).unwrap_err();
        assert_eq!(err, RingWriteError::Stalled { unwritten: 5 });
        assert!(writer.is_stalled());
        assert_eq!(writer.stalls(), 1);
        let first_waits = writer.page.waits;
        // 1 ms per wait: the 5 s bound.
        assert_eq!(u64::from(first_waits), STALL_AFTER_NS / 1_000_000);

        // Every later print and flush gives up at once, no waits at all.
        for _ in 0..100 {
            let err = writer.write(b"another line\n").unwrap_err();
            assert_eq!(err, RingWriteError::Stalled { unwritten: 13 });
        }
        assert!(matches!(
            writer.flush(),
            Err(RingWriteError::Stalled { .. })
        ));
        assert_eq!(writer.page.waits, first_waits);
        assert_eq!(writer.stalls(), 1, "noticed once");
        assert!(!writer.resumed());
    }

    #[test]
    fn without_a_clock_the_wait_is_capped_in_waits() {
        let mut page = SimPage::new(0);
        page.clock_ns = None;
        let mut writer = RingWriter::new(&mut page, 0);
        assert!(
            writer.flush().is_ok(),
            "nothing written, nothing to wait for"
        );
        writer.write(&[1; XENCONS_OUT_SIZE]).unwrap();
        assert!(writer.flush().is_err());
        assert_eq!(writer.page.waits, STALL_WAITS);
        assert!(writer.write(b"x").is_err());
        assert_eq!(writer.page.waits, STALL_WAITS);
    }

    #[test]
    fn a_stalled_backend_that_resumes_is_noticed_once_and_waited_for_again() {
        let mut page = SimPage::new(0);
        let mut writer = RingWriter::new(&mut page, 0);
        assert!(writer.write(&[b'a'; XENCONS_OUT_SIZE + 1]).is_err());
        assert!(writer.write(b"lost").is_err());
        // The backend wakes up and drains the ring.
        writer.page.consume(XENCONS_OUT_SIZE as u32);
        assert!(writer.resumed());
        assert!(!writer.resumed(), "reported once");
        assert!(!writer.is_stalled());
        // Back to normal: a slow but live backend is waited for.
        writer.page.drain_per_wait = 16;
        writer.write(&[b'b'; XENCONS_OUT_SIZE + 100]).unwrap();
        writer.flush().unwrap();
        let mut expected = vec![b'a'; XENCONS_OUT_SIZE];
        expected.extend_from_slice(&[b'b'; XENCONS_OUT_SIZE + 100]);
        assert_eq!(writer.page.consumed, expected);
        assert_eq!(writer.stalls(), 1);
    }

    #[test]
    fn a_slow_backend_that_keeps_making_progress_is_never_declared_stalled() {
        // One byte a second (1000 waits of 1 ms): slower than anything
        // real, but never 5 s without progress.
        let mut page = SimPage::new(0);
        page.waits_per_byte = 1000;
        let mut writer = RingWriter::new(&mut page, 0);
        writer.write(&[b'c'; XENCONS_OUT_SIZE + 3]).unwrap();
        writer.flush().unwrap();
        assert!(!writer.is_stalled());
        assert_eq!(writer.page.consumed.len(), XENCONS_OUT_SIZE + 3);
    }

    #[test]
    fn a_hostile_consumer_index_is_reported() {
        let mut page = SimPage::new(0);
        page.cons_override = Some(9999);
        let mut writer = RingWriter::new(&mut page, 0);
        assert!(matches!(
            writer.write(b"x"),
            Err(RingWriteError::Corrupt(RingCorrupt {
                prod: 0,
                cons: 9999
            }))
        ));
    }
}
