//! The frame allocator: one bit per pseudo-physical frame.
//!
//! [`FrameBitmap`] knows nothing about Xen or mappings: a set bit is a
//! frame in use (the image, page tables, heap arenas, pages handed out,
//! frames given back to Xen), a clear bit a free one. It hands out the
//! lowest free frame first, so early allocations come from the low,
//! already-mapped end of memory, and runs of contiguous frames for the
//! heap. A free of a frame that is not allocated (a double free, or a
//! stray frame number) is refused with an error and changes nothing.
//!
//! Allocation can be held below a limit ([`FrameBitmap::set_limit`]):
//! frames at or above it are counted and can be freed or reserved, but
//! are not handed out. A PV guest maps its direct map only up to the
//! limit and raises it as allocation reaches it (`mm`), so a frame the
//! allocator hands out is always mapped and boot does not pay for
//! mapping memory nobody has asked for yet.

use core::fmt;

/// Bits per bitmap word.
const BITS: usize = 64;

/// Why a frame could not be freed or reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame number is not below the bitmap's frame count.
    OutOfRange(u64),
    /// Freeing a frame that is already free (double free).
    NotAllocated(u64),
    /// Reserving a frame that is already in use.
    AlreadyUsed(u64),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::OutOfRange(pfn) => write!(f, "pfn {pfn:#x} out of range"),
            FrameError::NotAllocated(pfn) => write!(f, "pfn {pfn:#x} is not allocated"),
            FrameError::AlreadyUsed(pfn) => write!(f, "pfn {pfn:#x} is already in use"),
        }
    }
}

/// How many `u64` words a bitmap of `frames` frames needs.
pub const fn words_for(frames: u64) -> usize {
    frames.div_ceil(BITS as u64) as usize
}

/// A bitmap allocator over frames `0..frames`.
pub struct FrameBitmap<'a> {
    words: &'a mut [u64],
    frames: u64,
    free: u64,
    /// Frames at or above this are not handed out.
    limit: u64,
    /// Free frames below `limit`.
    free_below: u64,
    /// No free frame lives in a word below this one.
    first_maybe_free: usize,
}

impl<'a> FrameBitmap<'a> {
    /// A bitmap over `words` (at least [`words_for`]`(frames)` long) in
    /// which every frame is in use; [`free_range`](Self::free_range)
    /// releases what is actually free.
    pub fn new_all_used(words: &'a mut [u64], frames: u64) -> Option<Self> {
        if words.len() < words_for(frames) {
            return None;
        }
        words.fill(u64::MAX);
        Some(FrameBitmap {
            words,
            frames,
            free: 0,
            limit: frames,
            free_below: 0,
            first_maybe_free: 0,
        })
    }

    /// The frame allocation stops below (all frames, unless
    /// [`set_limit`](Self::set_limit) lowered it).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Free frames below [`limit`](Self::limit): what can be handed out.
    pub fn free_below_limit(&self) -> u64 {
        self.free_below
    }

    /// Hands out frames only below `limit` (clamped to the frame count)
    /// from now on.
    pub fn set_limit(&mut self, limit: u64) {
        let limit = limit.min(self.frames);
        if limit >= self.limit {
            self.free_below += self.count_free(self.limit, limit);
        } else {
            self.free_below -= self.count_free(limit, self.limit);
        }
        self.limit = limit;
    }

    /// Free frames in `from..to` (both within the bitmap).
    fn count_free(&self, from: u64, to: u64) -> u64 {
        let mut pfn = from;
        let mut count = 0;
        while pfn < to {
            let index = (pfn / BITS as u64) as usize;
            let word_start = index as u64 * BITS as u64;
            if pfn == word_start && to - pfn >= BITS as u64 {
                count += u64::from(self.words[index].count_zeros());
                pfn += BITS as u64;
            } else {
                count += u64::from(self.words[index] & bit(pfn) == 0);
                pfn += 1;
            }
        }
        count
    }

    /// Counts `count` frames from `pfn` leaving (or, `taken` false,
    /// joining) the free pool, in both totals.
    fn account(&mut self, pfn: u64, count: u64, taken: bool) {
        let below = pfn
            .saturating_add(count)
            .min(self.limit)
            .saturating_sub(pfn);
        if taken {
            self.free -= count;
            self.free_below -= below;
        } else {
            self.free += count;
            self.free_below += below;
        }
    }

    /// Frames the bitmap covers.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Whether `pfn` is in use (frames out of range count as in use).
    pub fn is_used(&self, pfn: u64) -> bool {
        if pfn >= self.frames {
            return true;
        }
        self.words[(pfn / BITS as u64) as usize] & bit(pfn) != 0
    }

    /// Takes the lowest free frame.
    pub fn alloc(&mut self) -> Option<u64> {
        let first = self.first_maybe_free;
        let (index, word) = self.words[first..]
            .iter()
            .enumerate()
            .find(|(_, w)| **w != u64::MAX)?;
        let index = first + index;
        self.first_maybe_free = index;
        let pfn = (index * BITS) as u64 + u64::from(word.trailing_ones());
        if pfn >= self.limit {
            return None;
        }
        self.words[index] |= bit(pfn);
        self.account(pfn, 1, true);
        Some(pfn)
    }

    /// Takes `count` contiguous free frames whose first frame number is a
    /// multiple of `align` (a power of two), lowest first.
    pub fn alloc_contiguous(&mut self, count: u64, align: u64) -> Option<u64> {
        if count == 0 || !align.is_power_of_two() || count > self.free_below {
            return None;
        }
        let mut start = ((self.first_maybe_free * BITS) as u64).next_multiple_of(align);
        while start.checked_add(count)? <= self.limit {
            match (start..start + count).find(|&pfn| self.is_used(pfn)) {
                None => {
                    for pfn in start..start + count {
                        self.words[(pfn / BITS as u64) as usize] |= bit(pfn);
                    }
                    self.account(start, count, true);
                    return Some(start);
                }
                Some(used) => start = (used + 1).next_multiple_of(align),
            }
        }
        None
    }

    /// Marks the free frame `pfn` used (for frames taken outside the
    /// allocator, e.g. at boot).
    pub fn reserve(&mut self, pfn: u64) -> Result<(), FrameError> {
        if pfn >= self.frames {
            return Err(FrameError::OutOfRange(pfn));
        }
        if self.is_used(pfn) {
            return Err(FrameError::AlreadyUsed(pfn));
        }
        self.words[(pfn / BITS as u64) as usize] |= bit(pfn);
        self.account(pfn, 1, true);
        Ok(())
    }

    /// Returns frame `pfn`. Refused, changing nothing, if it is free.
    pub fn free(&mut self, pfn: u64) -> Result<(), FrameError> {
        self.free_range(pfn, 1)
    }

    /// Returns frames `pfn..pfn + count`, all or none: refused if any of
    /// them is out of range or already free.
    pub fn free_range(&mut self, pfn: u64, count: u64) -> Result<(), FrameError> {
        let end = pfn.checked_add(count).ok_or(FrameError::OutOfRange(pfn))?;
        if end > self.frames {
            return Err(FrameError::OutOfRange(end - 1));
        }
        if let Some(free) = (pfn..end).find(|&p| !self.is_used(p)) {
            return Err(FrameError::NotAllocated(free));
        }
        for p in pfn..end {
            self.words[(p / BITS as u64) as usize] &= !bit(p);
        }
        self.account(pfn, count, false);
        self.first_maybe_free = self.first_maybe_free.min((pfn / BITS as u64) as usize);
        Ok(())
    }
}

/// The mask of `pfn` within its word.
const fn bit(pfn: u64) -> u64 {
    1 << (pfn % BITS as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(words: &mut Vec<u64>, frames: u64) -> FrameBitmap<'_> {
        words.resize(words_for(frames), 0);
        let mut map = FrameBitmap::new_all_used(words, frames).unwrap();
        map.free_range(0, frames).unwrap();
        map
    }

    #[test]
    fn lowest_free_frame_first_and_counted() {
        let mut words = Vec::new();
        let mut map = bitmap(&mut words, 100);
        assert_eq!(map.free_frames(), 100);
        assert_eq!(map.alloc(), Some(0));
        assert_eq!(map.alloc(), Some(1));
        map.free(0).unwrap();
        assert_eq!(map.alloc(), Some(0));
        assert_eq!(map.free_frames(), 98);
        for expected in 2..100 {
            assert_eq!(map.alloc(), Some(expected));
        }
        assert_eq!(
            map.alloc(),
            None,
            "frames past the end are never handed out"
        );
        assert_eq!(map.free_frames(), 0);
    }

    #[test]
    fn double_and_stray_frees_are_refused_without_damage() {
        let mut words = Vec::new();
        let mut map = bitmap(&mut words, 130);
        let a = map.alloc().unwrap();
        map.free(a).unwrap();
        assert_eq!(map.free(a), Err(FrameError::NotAllocated(a)));
        assert_eq!(map.free(130), Err(FrameError::OutOfRange(130)));
        assert_eq!(map.free(u64::MAX), Err(FrameError::OutOfRange(u64::MAX)));
        assert_eq!(map.free_frames(), 130);
        // A range with one free frame in it is refused as a whole.
        let start = map.alloc_contiguous(4, 1).unwrap();
        map.free(start + 2).unwrap();
        assert_eq!(
            map.free_range(start, 4),
            Err(FrameError::NotAllocated(start + 2))
        );
        assert!(map.is_used(start) && map.is_used(start + 3));
        assert_eq!(map.free_frames(), 127);
    }

    #[test]
    fn boot_layout_reservation() {
        let mut words = vec![0; words_for(1000)];
        let mut map = FrameBitmap::new_all_used(&mut words, 1000).unwrap();
        assert_eq!(map.free_frames(), 0);
        assert_eq!(map.alloc(), None);
        map.free_range(500, 500).unwrap();
        assert_eq!(map.reserve(600), Ok(()));
        assert_eq!(map.reserve(600), Err(FrameError::AlreadyUsed(600)));
        assert_eq!(map.alloc(), Some(500));
        assert_eq!(map.free_frames(), 498);
    }

    #[test]
    fn contiguous_runs_are_aligned_and_skip_holes() {
        let mut words = Vec::new();
        let mut map = bitmap(&mut words, 256);
        assert_eq!(map.alloc(), Some(0));
        // 16 frames aligned to 16 cannot start at 0: next is 16.
        assert_eq!(map.alloc_contiguous(16, 16), Some(16));
        map.reserve(40).unwrap();
        // 16..32 used, 40 used: the next aligned run of 16 is 48.
        assert_eq!(map.alloc_contiguous(16, 16), Some(48));
        // Unaligned runs fill the hole below.
        assert_eq!(map.alloc_contiguous(7, 1), Some(1));
        assert_eq!(map.alloc_contiguous(300, 1), None);
        assert_eq!(map.alloc_contiguous(0, 1), None);
        assert_eq!(
            map.alloc_contiguous(1, 3),
            None,
            "alignment must be a power of two"
        );
        assert_eq!(map.free_frames(), 256 - 1 - 16 - 1 - 16 - 7);
        map.free_range(16, 16).unwrap();
        assert_eq!(map.alloc_contiguous(16, 16), Some(16));
    }

    #[test]
    fn exhaustion_and_refill_many_times() {
        let mut words = Vec::new();
        let mut map = bitmap(&mut words, 1 << 12);
        for _ in 0..10 {
            let got: Vec<u64> = core::iter::from_fn(|| map.alloc()).collect();
            assert_eq!(got.len(), 1 << 12);
            for pfn in got.iter().rev() {
                map.free(*pfn).unwrap();
            }
            assert_eq!(map.free_frames(), 1 << 12);
        }
    }

    #[test]
    fn nothing_at_or_above_the_limit_is_handed_out_until_it_rises() {
        let mut words = Vec::new();
        let mut map = bitmap(&mut words, 1000);
        map.reserve(3).unwrap();
        map.set_limit(130);
        assert_eq!((map.limit(), map.free_below_limit()), (130, 129));
        assert_eq!(map.free_frames(), 999);
        // Frames above the limit can still be reserved and freed.
        map.reserve(500).unwrap();
        assert_eq!(map.free_below_limit(), 129);
        map.free(500).unwrap();
        let got: Vec<u64> = core::iter::from_fn(|| map.alloc()).collect();
        assert_eq!(got.len(), 129);
        assert!(got.iter().all(|&pfn| pfn < 130));
        assert_eq!(map.alloc_contiguous(1, 1), None);
        assert_eq!(map.free_below_limit(), 0);
        assert_eq!(map.free_frames(), 999 - 129);
        // Raised across a partial word and whole words.
        map.set_limit(700);
        assert_eq!(map.free_below_limit(), 570);
        assert_eq!(map.alloc_contiguous(64, 64), Some(192));
        assert_eq!(map.alloc(), Some(130));
        map.free(5).unwrap();
        assert_eq!(map.free_below_limit(), 570 - 64 - 1 + 1);
        // Lowered again, then raised past the end (clamped).
        map.set_limit(200);
        assert_eq!(map.free_below_limit(), 1 + (200 - 131) - 8);
        map.set_limit(5000);
        assert_eq!(map.limit(), 1000);
        assert_eq!(map.free_below_limit(), map.free_frames());
    }

    #[test]
    fn too_small_storage_is_refused() {
        let mut words = vec![0; 1];
        assert!(FrameBitmap::new_all_used(&mut words, 65).is_none());
    }
}
