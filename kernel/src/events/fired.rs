//! [`FiredPorts`]: the set of ports the upcall saw raised, as atomics.
//!
//! The upcall may interrupt task code, so what it writes must need no
//! lock: one bit per port in 64 atomic words (4096 ports, the 2-level
//! ABI's limit and more than the FIFO event array we give Xen). The
//! upcall sets bits ([`FiredPorts::record`]); task code takes whole words
//! with an atomic swap ([`FiredPorts::drain`]), so a bit set while a
//! drain runs is either taken by it or left for the next one, never lost.

use core::sync::atomic::{AtomicU64, Ordering};

/// Ports the set can hold: 0..4096.
pub const CAPACITY: u32 = 64 * 64;

/// A lock-free set of port numbers below [`CAPACITY`].
pub struct FiredPorts {
    words: [AtomicU64; 64],
}

impl Default for FiredPorts {
    fn default() -> Self {
        Self::new()
    }
}

impl FiredPorts {
    /// An empty set.
    pub const fn new() -> Self {
        FiredPorts {
            words: [const { AtomicU64::new(0) }; 64],
        }
    }

    /// Adds `port` (upcall context: one atomic OR). Returns false, and
    /// records nothing, for a port beyond [`CAPACITY`].
    pub fn record(&self, port: u32) -> bool {
        if port >= CAPACITY {
            return false;
        }
        self.words[port as usize / 64].fetch_or(1 << (port % 64), Ordering::AcqRel);
        true
    }

    /// Whether any port is recorded.
    pub fn any(&self) -> bool {
        self.words.iter().any(|w| w.load(Ordering::Acquire) != 0)
    }

    /// Removes every recorded port and calls `handle` for each, in port
    /// order within a word; returns how many.
    pub fn drain(&self, mut handle: impl FnMut(u32)) -> usize {
        let mut handled = 0;
        for (index, word) in self.words.iter().enumerate() {
            if word.load(Ordering::Acquire) == 0 {
                continue;
            }
            for bit in super::two_level::bits(word.swap(0, Ordering::AcqRel)) {
                handle((index * 64 + bit) as u32);
                handled += 1;
            }
        }
        handled
    }

    /// Removes `port` and says whether it was recorded (one atomic AND).
    pub fn take(&self, port: u32) -> bool {
        if port >= CAPACITY {
            return false;
        }
        let bit = 1 << (port % 64);
        self.words[port as usize / 64].fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// Word `index` (ports `64 * index ..`) as it is now; 0 beyond the set.
    pub fn word(&self, index: usize) -> u64 {
        self.words
            .get(index)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// Removes `port` if recorded.
    pub fn forget(&self, port: u32) {
        if port < CAPACITY {
            self.words[port as usize / 64].fetch_and(!(1 << (port % 64)), Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn recorded_ports_are_drained_once_in_order() {
        let set = FiredPorts::new();
        assert!(!set.any());
        for port in [700, 3, 64, 3, 4095] {
            assert!(set.record(port));
        }
        assert!(!set.record(CAPACITY));
        assert!(set.any());
        let mut seen = Vec::new();
        assert_eq!(set.drain(|p| seen.push(p)), 4);
        assert_eq!(seen, [3, 64, 700, 4095]);
        assert!(!set.any());
        assert_eq!(set.drain(|_| panic!("nothing left")), 0);
    }

    #[test]
    fn take_removes_one_port_and_says_whether_it_was_there() {
        let set = FiredPorts::new();
        set.record(70);
        set.record(71);
        assert_eq!(set.word(1), 0b11 << 6);
        assert!(set.take(70));
        assert!(!set.take(70));
        assert!(!set.take(CAPACITY));
        assert_eq!(set.word(1), 1 << 7);
        assert_eq!(set.word(64), 0);
    }

    #[test]
    fn a_forgotten_port_is_not_drained() {
        let set = FiredPorts::new();
        set.record(5);
        set.record(6);
        set.forget(5);
        set.forget(CAPACITY + 1);
        let mut seen = Vec::new();
        set.drain(|p| seen.push(p));
        assert_eq!(seen, [6]);
    }

    #[test]
    fn records_racing_a_drain_are_never_lost() {
        // One thread records 0..4096 over and over while another drains;
        // every record must come out of some drain (a port recorded
        // twice before a drain comes out once, so count distinct rounds).
        let set = Arc::new(FiredPorts::new());
        let rounds = 200;
        let writer = {
            let set = set.clone();
            std::thread::spawn(move || {
                for _ in 0..rounds {
                    for port in (0..CAPACITY).step_by(61) {
                        set.record(port);
                    }
                }
            })
        };
        let mut seen = std::collections::BTreeSet::new();
        while !writer.is_finished() {
            set.drain(|p| {
                seen.insert(p);
            });
        }
        writer.join().unwrap();
        set.drain(|p| {
            seen.insert(p);
        });
        let expected: std::collections::BTreeSet<u32> = (0..CAPACITY).step_by(61).collect();
        assert_eq!(seen, expected);
        assert!(!set.any());
    }
}
