//! The FIFO event-channel ABI: queues of ports instead of bitmaps.
//!
//! With `EVTCHNOP_init_control` the guest gives Xen a control block
//! (a `ready` bitmap of priority queues and the head port of each queue)
//! and, with `EVTCHNOP_expand_array`, pages of 32-bit event words, one
//! per port: PENDING, MASKED, LINKED, BUSY flags and a 17-bit LINK to the
//! next port on the same queue. Xen appends a raised port to the tail of
//! its priority's queue; the guest consumes from the head:
//!
//! 1. swap `ready` to zero; for the highest-priority (lowest-numbered)
//!    ready queue, start from our own remembered head, or from the
//!    control block's head when we had reached the end last time;
//! 2. clear the port's LINKED bit and LINK field atomically, taking the
//!    next port; no next port means the queue is drained;
//! 3. handle the port if it is pending and not masked (clearing PENDING);
//! 4. repeat while anything is ready.
//!
//! Up to 2^17 ports instead of 4096, and priorities. The consumer below
//! works on plain atomics so host tests can play Xen's part.

use core::sync::atomic::{AtomicU32, Ordering};
use pv_arch::abi::event_channel::{
    EVTCHN_FIFO_LINKED, EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_MASKED, EVTCHN_FIFO_MAX_QUEUES,
    EVTCHN_FIFO_PENDING,
};

/// Event words per 4 KiB array page.
pub const WORDS_PER_PAGE: usize = 1024;

const PENDING: u32 = 1 << EVTCHN_FIFO_PENDING;
const MASKED: u32 = 1 << EVTCHN_FIFO_MASKED;
const LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;

/// The control block as atomics (same layout as `evtchn_fifo_control_block`).
#[repr(C)]
pub struct ControlBlock {
    /// Ready queues.
    pub ready: AtomicU32,
    _rsvd: AtomicU32,
    /// Queue heads.
    pub head: [AtomicU32; EVTCHN_FIFO_MAX_QUEUES],
}

/// Our side of one vCPU's queues: where we stopped in each.
///
/// Xen keeps one set of queues per vCPU (each vCPU's own control
/// block), so each vCPU has its own `Consumer`, used only on that vCPU
/// (in its upcall, or in its task code with its upcalls masked): the
/// cursors are atomics so it needs no lock, and two vCPUs' consumers
/// never follow each other's LINKs.
pub struct Consumer {
    heads: [AtomicU32; EVTCHN_FIFO_MAX_QUEUES],
}

impl Default for Consumer {
    fn default() -> Self {
        Self::new()
    }
}

/// Access to event words by port.
pub trait EventArray {
    /// The word of `port`, if its page has been given to Xen.
    fn word(&self, port: u32) -> Option<&AtomicU32>;
}

impl Consumer {
    /// A consumer at the start of every queue.
    pub const fn new() -> Self {
        Consumer {
            heads: [const { AtomicU32::new(0) }; EVTCHN_FIFO_MAX_QUEUES],
        }
    }

    /// Forgets where it stopped (the queues start anew, e.g. after a
    /// resume in a new domain).
    pub fn reset(&self) {
        self.heads
            .iter()
            .for_each(|h| h.store(0, Ordering::Relaxed));
    }

    /// Handles every ready event; returns how many were handled. Must
    /// not run on two CPUs at once, nor interrupt itself (see the type's
    /// docs).
    pub fn consume(
        &self,
        control: &ControlBlock,
        array: &impl EventArray,
        mut handle: impl FnMut(u32),
    ) -> usize {
        let mut handled = 0;
        let mut ready = control.ready.swap(0, Ordering::AcqRel);
        // Bounded: a hostile or broken queue (a LINK cycle) cannot keep us
        // here forever; leftovers are picked up at the next upcall.
        let mut budget = 4 * pv_arch::abi::event_channel::EVTCHN_FIFO_NR_CHANNELS;
        while ready != 0 && budget > 0 {
            budget -= 1;
            let queue = ready.trailing_zeros() as usize;
            let mut head = self.heads[queue].load(Ordering::Relaxed);
            if head == 0 {
                head = control.head[queue].load(Ordering::Acquire);
            }
            let port = head;
            let next = match array.word(port) {
                Some(word) => clear_linked(word),
                None => 0, // a port beyond our pages: nothing to follow
            };
            if next == 0 {
                ready &= !(1 << queue);
            }
            if let Some(word) = array.word(port) {
                let value = word.load(Ordering::Acquire);
                if port != 0 && value & PENDING != 0 && value & MASKED == 0 {
                    word.fetch_and(!PENDING, Ordering::AcqRel);
                    handle(port);
                    handled += 1;
                }
            }
            self.heads[queue].store(next, Ordering::Relaxed);
            ready |= control.ready.swap(0, Ordering::AcqRel);
        }
        handled
    }
}

/// Clears LINKED and LINK, returning the LINK (the next port).
fn clear_linked(word: &AtomicU32) -> u32 {
    let mut current = word.load(Ordering::Acquire);
    loop {
        let new = current & !(LINKED | EVTCHN_FIFO_LINK_MASK);
        match word.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return current & EVTCHN_FIFO_LINK_MASK,
            Err(seen) => current = seen,
        }
    }
}

/// Sets MASKED in `word`.
pub fn mask(word: &AtomicU32) {
    word.fetch_or(MASKED, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sim {
        controls: Vec<ControlBlock>,
        words: Vec<AtomicU32>,
        tails: Vec<[u32; EVTCHN_FIFO_MAX_QUEUES]>,
    }

    impl EventArray for Sim {
        fn word(&self, port: u32) -> Option<&AtomicU32> {
            self.words.get(port as usize)
        }
    }

    fn control_block() -> ControlBlock {
        ControlBlock {
            ready: AtomicU32::new(0),
            _rsvd: AtomicU32::new(0),
            head: core::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    impl Sim {
        fn new() -> Self {
            Self::with_vcpus(1)
        }

        fn with_vcpus(vcpus: usize) -> Self {
            Sim {
                controls: (0..vcpus).map(|_| control_block()).collect(),
                words: (0..WORDS_PER_PAGE).map(|_| AtomicU32::new(0)).collect(),
                tails: vec![[0; EVTCHN_FIFO_MAX_QUEUES]; vcpus],
            }
        }

        fn control(&self) -> &ControlBlock {
            &self.controls[0]
        }

        /// Xen's side: mark pending and link onto the queue's tail.
        fn raise(&mut self, port: u32, queue: usize) {
            self.raise_on(0, port, queue);
        }

        /// Xen's side for a port bound to `vcpu`: its own queues.
        fn raise_on(&mut self, vcpu: usize, port: u32, queue: usize) {
            let word = &self.words[port as usize];
            let old = word.fetch_or(PENDING, Ordering::SeqCst);
            if old & (MASKED | LINKED) != 0 {
                return;
            }
            word.fetch_or(LINKED, Ordering::SeqCst);
            let tail = self.tails[vcpu][queue];
            let tail_linked =
                tail != 0 && self.words[tail as usize].load(Ordering::SeqCst) & LINKED != 0;
            if tail_linked {
                self.words[tail as usize].fetch_or(port, Ordering::SeqCst);
            } else {
                self.controls[vcpu].head[queue].store(port, Ordering::SeqCst);
            }
            self.tails[vcpu][queue] = port;
            self.controls[vcpu]
                .ready
                .fetch_or(1 << queue, Ordering::SeqCst);
        }
    }

    #[test]
    fn queues_drain_in_priority_then_arrival_order() {
        let mut sim = Sim::new();
        sim.raise(5, 7);
        sim.raise(9, 7);
        sim.raise(3, 0);
        let consumer = Consumer::default();
        let mut seen = Vec::new();
        assert_eq!(consumer.consume(sim.control(), &sim, |p| seen.push(p)), 3);
        assert_eq!(seen, [3, 5, 9]);
        for port in [3, 5, 9] {
            assert_eq!(sim.words[port].load(Ordering::SeqCst), 0);
        }
    }

    #[test]
    fn events_raised_later_continue_the_queue() {
        let mut sim = Sim::new();
        let consumer = Consumer::default();
        let mut seen = Vec::new();
        sim.raise(1, 7);
        consumer.consume(sim.control(), &sim, |p| seen.push(p));
        sim.raise(2, 7);
        sim.raise(1, 7);
        consumer.consume(sim.control(), &sim, |p| seen.push(p));
        assert_eq!(seen, [1, 2, 1]);
    }

    #[test]
    fn masked_ports_are_not_handled() {
        let mut sim = Sim::new();
        sim.words[4].store(MASKED, Ordering::SeqCst);
        sim.raise(4, 7);
        sim.raise(6, 7);
        let mut seen = Vec::new();
        Consumer::default().consume(sim.control(), &sim, |p| seen.push(p));
        assert_eq!(seen, [6]);
    }

    #[test]
    fn a_link_cycle_does_not_hang() {
        let sim = Sim::new();
        // Port 1 links to 2, 2 links back to 1, both pending: hostile.
        sim.words[1].store(PENDING | LINKED | 2, Ordering::SeqCst);
        sim.words[2].store(PENDING | LINKED | 1, Ordering::SeqCst);
        sim.controls[0].head[0].store(1, Ordering::SeqCst);
        sim.controls[0].ready.store(1, Ordering::SeqCst);
        let mut count = 0;
        Consumer::default().consume(sim.control(), &sim, |_| count += 1);
        assert!(count <= 2, "handled {count}");
    }

    #[test]
    fn each_vcpu_consumes_only_its_own_queues() {
        // One event array, two control blocks: a port on vCPU 1's queue
        // is never reached from vCPU 0's consumer, even when both queues
        // hold several ports and the two consumers interleave.
        let mut sim = Sim::with_vcpus(2);
        let consumers = [Consumer::new(), Consumer::new()];
        let mut seen = [Vec::new(), Vec::new()];
        sim.raise_on(0, 10, 7);
        sim.raise_on(1, 20, 7);
        sim.raise_on(0, 11, 7);
        sim.raise_on(1, 21, 7);
        for vcpu in [1, 0] {
            consumers[vcpu].consume(&sim.controls[vcpu], &sim, |p| seen[vcpu].push(p));
        }
        sim.raise_on(1, 22, 7);
        sim.raise_on(0, 12, 7);
        for vcpu in [0, 1] {
            consumers[vcpu].consume(&sim.controls[vcpu], &sim, |p| seen[vcpu].push(p));
        }
        assert_eq!(seen[0], [10, 11, 12]);
        assert_eq!(seen[1], [20, 21, 22]);
        for port in [10, 11, 12, 20, 21, 22] {
            assert_eq!(sim.words[port].load(Ordering::SeqCst), 0, "port {port}");
        }
    }

    #[test]
    fn a_masked_fresh_array_delivers_nothing_until_unmasked() {
        // Every word starts MASKED (as `fifo_runtime` sets them): a port
        // bound behind the guest's back is pending but never queued.
        let mut sim = Sim::new();
        sim.words.iter().for_each(mask);
        sim.raise(3, 7);
        let mut seen = Vec::new();
        Consumer::new().consume(sim.control(), &sim, |p| seen.push(p));
        assert!(seen.is_empty());
        assert_eq!(sim.words[3].load(Ordering::SeqCst), MASKED | PENDING);
    }
}
