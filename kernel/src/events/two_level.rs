//! The 2-level event-channel ABI: how pending ports are found.
//!
//! Xen sets a port's bit in `evtchn_pending` (64 words of 64 bits), then
//! the word's bit in the vCPU's `evtchn_pending_sel`, then
//! `evtchn_upcall_pending`. The guest takes the selector with an atomic
//! swap, and for each selected word handles the bits that are pending and
//! not masked, clearing each pending bit before handling it (so an event
//! that arrives during handling is seen again, not lost). Ports up to
//! 64 * 64 = 4096.
//!
//! The scan is written over plain atomics so the host tests can run it.

use core::sync::atomic::{AtomicU64, Ordering};

/// Number of ports the 2-level ABI can name on x86_64.
pub const MAX_PORTS: u32 = 64 * 64;

/// The bitmaps a scan reads.
pub trait Bitmaps {
    /// The vCPU's selector word.
    fn selector(&self) -> &AtomicU64;
    /// Pending word `i`.
    fn pending(&self, i: usize) -> &AtomicU64;
    /// Mask word `i`.
    fn mask(&self, i: usize) -> &AtomicU64;
    /// The ports of word `i` this scan may handle (on SMP each vCPU
    /// handles only the ports bound to it; they share the bitmaps).
    fn owned(&self, _i: usize) -> u64 {
        !0
    }
}

/// Handles every pending, unmasked port once, in port order within each
/// word; returns how many were handled.
pub fn scan(bitmaps: &impl Bitmaps, mut handle: impl FnMut(u32)) -> usize {
    let mut handled = 0;
    loop {
        let selected = bitmaps.selector().swap(0, Ordering::AcqRel);
        if selected == 0 {
            return handled;
        }
        for word in bits(selected) {
            let pending = bitmaps.pending(word).load(Ordering::Acquire)
                & !bitmaps.mask(word).load(Ordering::Acquire)
                & bitmaps.owned(word);
            for bit in bits(pending) {
                bitmaps
                    .pending(word)
                    .fetch_and(!(1u64 << bit), Ordering::AcqRel);
                handle((word * 64 + bit) as u32);
                handled += 1;
            }
        }
    }
}

/// Sets `port`'s bit in a bitmap of 64 words (`mask` or `pending`).
pub fn set(word: &AtomicU64, port: u32) {
    word.fetch_or(1 << (port % 64), Ordering::AcqRel);
}

/// Clears `port`'s bit.
pub fn clear(word: &AtomicU64, port: u32) {
    word.fetch_and(!(1 << (port % 64)), Ordering::AcqRel);
}

/// Indices of the set bits of `word`, lowest first (also what
/// [`super::fired`] drains by).
pub(crate) fn bits(mut word: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        if word == 0 {
            return None;
        }
        let bit = word.trailing_zeros() as usize;
        word &= word - 1;
        Some(bit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sim {
        sel: AtomicU64,
        pending: [AtomicU64; 64],
        mask: [AtomicU64; 64],
    }

    impl Sim {
        fn new() -> Self {
            Sim {
                sel: AtomicU64::new(0),
                pending: core::array::from_fn(|_| AtomicU64::new(0)),
                mask: core::array::from_fn(|_| AtomicU64::new(0)),
            }
        }
        /// What Xen does to raise `port`.
        fn raise(&self, port: u32) {
            set(&self.pending[port as usize / 64], port);
            if self.mask[port as usize / 64].load(Ordering::SeqCst) & (1 << (port % 64)) == 0 {
                self.sel.fetch_or(1 << (port / 64), Ordering::SeqCst);
            }
        }
    }

    impl Bitmaps for Sim {
        fn selector(&self) -> &AtomicU64 {
            &self.sel
        }
        fn pending(&self, i: usize) -> &AtomicU64 {
            &self.pending[i]
        }
        fn mask(&self, i: usize) -> &AtomicU64 {
            &self.mask[i]
        }
    }

    #[test]
    fn pending_ports_are_handled_once_and_cleared() {
        let sim = Sim::new();
        for port in [1, 3, 64, 4095, 700] {
            sim.raise(port);
        }
        let mut seen = Vec::new();
        assert_eq!(scan(&sim, |p| seen.push(p)), 5);
        assert_eq!(seen, [1, 3, 64, 700, 4095]);
        assert!(sim.pending.iter().all(|w| w.load(Ordering::SeqCst) == 0));
        assert_eq!(scan(&sim, |_| panic!("nothing left")), 0);
    }

    #[test]
    fn masked_ports_stay_pending() {
        let sim = Sim::new();
        set(&sim.mask[0], 5);
        sim.raise(5);
        sim.raise(6);
        let mut seen = Vec::new();
        scan(&sim, |p| seen.push(p));
        assert_eq!(seen, [6]);
        assert_ne!(sim.pending[0].load(Ordering::SeqCst) & (1 << 5), 0);
    }

    /// A scan restricted to some ports (another vCPU's are in the same
    /// word) leaves the others pending for their owner.
    #[test]
    fn ports_owned_elsewhere_stay_pending() {
        struct Owned<'a>(&'a Sim, u64);
        impl Bitmaps for Owned<'_> {
            fn selector(&self) -> &AtomicU64 {
                &self.0.sel
            }
            fn pending(&self, i: usize) -> &AtomicU64 {
                &self.0.pending[i]
            }
            fn mask(&self, i: usize) -> &AtomicU64 {
                &self.0.mask[i]
            }
            fn owned(&self, i: usize) -> u64 {
                if i == 0 {
                    self.1
                } else {
                    !0
                }
            }
        }
        let sim = Sim::new();
        sim.raise(2);
        sim.raise(3);
        let mut seen = Vec::new();
        scan(&Owned(&sim, !(1 << 3)), |p| seen.push(p));
        assert_eq!(seen, [2]);
        assert_eq!(sim.pending[0].load(Ordering::SeqCst), 1 << 3);
    }

    #[test]
    fn an_event_raised_while_handling_is_not_lost() {
        let sim = Sim::new();
        sim.raise(10);
        let mut seen = Vec::new();
        scan(&sim, |p| {
            seen.push(p);
            if p == 10 {
                sim.raise(130);
            }
        });
        assert_eq!(seen, [10, 130]);
    }
}
