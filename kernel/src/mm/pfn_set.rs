//! [`PfnSet`]: a set of frame numbers, one bit each.
//!
//! PVH has no p2m in which a ballooned-out frame could be marked (Xen's
//! second-stage tables translate, and we cannot read them), so the
//! balloon records which of our frames it gave back in one of these.
//! Its storage is a heap vector sized for the domain's frames when the
//! first frame goes out; lookups of the next member skip whole empty
//! words, so bringing back many frames costs one pass, not one pass per
//! frame.

use alloc::vec::Vec;

/// Bits per word.
const BITS: u64 = 64;

/// A set of frame numbers below a fixed bound.
#[derive(Debug, Default)]
pub struct PfnSet {
    words: Vec<u64>,
    frames: u64,
    len: u64,
}

impl PfnSet {
    /// An empty set of frames below `frames`; `None` if the heap cannot
    /// hold its bitmap.
    pub fn with_frames(frames: u64) -> Option<PfnSet> {
        let count = usize::try_from(frames.div_ceil(BITS)).ok()?;
        let mut words = Vec::new();
        words.try_reserve_exact(count).ok()?;
        words.resize(count, 0);
        Some(PfnSet {
            words,
            frames,
            len: 0,
        })
    }

    /// Frames the set can hold (`0..frames`).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Members.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, pfn: u64) -> Option<(usize, u64)> {
        (pfn < self.frames).then(|| ((pfn / BITS) as usize, 1 << (pfn % BITS)))
    }

    /// Whether `pfn` is a member (never, out of range).
    pub fn contains(&self, pfn: u64) -> bool {
        self.slot(pfn)
            .is_some_and(|(word, bit)| self.words[word] & bit != 0)
    }

    /// Adds `pfn`; `false` if it was a member already or out of range.
    pub fn insert(&mut self, pfn: u64) -> bool {
        match self.slot(pfn) {
            Some((word, bit)) if self.words[word] & bit == 0 => {
                self.words[word] |= bit;
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    /// Removes `pfn`; `false` if it was not a member.
    pub fn remove(&mut self, pfn: u64) -> bool {
        match self.slot(pfn) {
            Some((word, bit)) if self.words[word] & bit != 0 => {
                self.words[word] &= !bit;
                self.len -= 1;
                true
            }
            _ => false,
        }
    }

    /// The lowest member at or above `from`.
    pub fn next_from(&self, from: u64) -> Option<u64> {
        let mut word = usize::try_from(from / BITS).ok()?;
        let mut mask = u64::MAX.checked_shl((from % BITS) as u32).unwrap_or(0);
        while word < self.words.len() {
            let bits = self.words[word] & mask;
            if bits != 0 {
                return Some(word as u64 * BITS + u64::from(bits.trailing_zeros()));
            }
            word += 1;
            mask = u64::MAX;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_and_count() {
        let mut set = PfnSet::with_frames(130).unwrap();
        assert!(set.is_empty() && set.frames() == 130);
        assert!(set.insert(0) && set.insert(64) && set.insert(129));
        assert!(!set.insert(64), "already a member");
        assert!(!set.insert(130), "out of range");
        assert_eq!(set.len(), 3);
        assert!(set.contains(129) && !set.contains(128) && !set.contains(u64::MAX));
        assert!(set.remove(64) && !set.remove(64) && !set.remove(500));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn next_member_skips_empty_words() {
        let mut set = PfnSet::with_frames(1 << 20).unwrap();
        assert_eq!(set.next_from(0), None);
        for pfn in [5, 63, 64, 70_000, (1 << 20) - 1] {
            set.insert(pfn);
        }
        let mut seen = Vec::new();
        let mut at = 0;
        while let Some(pfn) = set.next_from(at) {
            seen.push(pfn);
            at = pfn + 1;
        }
        assert_eq!(seen, [5, 63, 64, 70_000, (1 << 20) - 1]);
        assert_eq!(set.next_from(6), Some(63));
        assert_eq!(set.next_from(1 << 20), None);
        assert_eq!(set.next_from(u64::MAX), None);
    }
}
