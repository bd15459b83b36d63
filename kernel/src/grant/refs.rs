//! The grant-reference allocator: which entries of our table are free.
//!
//! A FIFO free list over `GNTTAB_NR_RESERVED_ENTRIES..nr_entries` (the
//! first eight are the toolstack's: console and xenstore rings), kept in
//! fixed arrays so it needs no heap and can be reset when the table's
//! version (and so its entry count) changes. Each reference is free,
//! live (handed out), quarantined (its page is held back until the other
//! domain lets go; a reaper ends it later) or leaked: given up on
//! because the other domain kept it mapped when a raw grant was dropped,
//! and never handed out again until a version switch proves the table
//! idle. Freed references go to the
//! back of the list, so a reference is reused as late as possible and a
//! backend holding a stale one is less likely to see someone else's page.

use pv_arch::abi::grant_table::GNTTAB_NR_RESERVED_ENTRIES;

/// End of the free list.
const NONE: u32 = u32::MAX;

/// What one reference is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefState {
    /// Reserved for the toolstack, or beyond the table.
    Unavailable,
    /// On the free list.
    Free,
    /// Handed out.
    Live,
    /// Ended while the other side still used it; never reused.
    Leaked,
    /// Its page is held back until the other side lets go; ended (and
    /// freed) by the reaper.
    Quarantined,
}

/// Why a reference could not be released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLive(pub RefState);

/// Free list of up to `N` references.
pub struct RefAllocator<const N: usize> {
    next: [u32; N],
    state: [RefState; N],
    head: u32,
    tail: u32,
    limit: u32,
    free: usize,
    live: usize,
    leaked: usize,
    quarantined: usize,
}

impl<const N: usize> Default for RefAllocator<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RefAllocator<N> {
    /// An allocator with no usable references (call [`Self::reset`]).
    pub const fn new() -> Self {
        RefAllocator {
            next: [NONE; N],
            state: [RefState::Unavailable; N],
            head: NONE,
            tail: NONE,
            limit: 0,
            free: 0,
            live: 0,
            leaked: 0,
            quarantined: 0,
        }
    }

    /// Forgets every reference and frees `8..nr_entries` (capped at `N`),
    /// in ascending order.
    pub fn reset(&mut self, nr_entries: u32) {
        let limit = nr_entries.min(u32::try_from(N).unwrap_or(u32::MAX));
        self.state = [RefState::Unavailable; N];
        self.next = [NONE; N];
        self.head = NONE;
        self.tail = NONE;
        self.limit = limit;
        self.free = 0;
        self.live = 0;
        self.leaked = 0;
        self.quarantined = 0;
        for gref in GNTTAB_NR_RESERVED_ENTRIES..limit {
            self.push_back(gref);
        }
    }

    fn push_back(&mut self, gref: u32) {
        let index = gref as usize;
        self.state[index] = RefState::Free;
        self.next[index] = NONE;
        match self.tail {
            NONE => self.head = gref,
            tail => self.next[tail as usize] = gref,
        }
        self.tail = gref;
        self.free += 1;
    }

    /// Takes the oldest free reference.
    pub fn alloc(&mut self) -> Option<u32> {
        let gref = self.head;
        if gref == NONE {
            return None;
        }
        let index = gref as usize;
        self.head = self.next[index];
        if self.head == NONE {
            self.tail = NONE;
        }
        self.next[index] = NONE;
        self.state[index] = RefState::Live;
        self.free -= 1;
        self.live += 1;
        Some(gref)
    }

    /// What `gref` is doing.
    pub fn state(&self, gref: u32) -> RefState {
        match self.state.get(gref as usize) {
            Some(&state) if gref < self.limit => state,
            _ => RefState::Unavailable,
        }
    }

    fn take_live(&mut self, gref: u32) -> Result<(), NotLive> {
        match self.state(gref) {
            RefState::Live => {
                self.live -= 1;
                Ok(())
            }
            other => Err(NotLive(other)),
        }
    }

    /// Returns a live reference to the back of the free list.
    pub fn free(&mut self, gref: u32) -> Result<(), NotLive> {
        self.take_live(gref)?;
        self.push_back(gref);
        Ok(())
    }

    /// Gives up on a live reference for good (until the next reset).
    pub fn leak(&mut self, gref: u32) -> Result<(), NotLive> {
        self.take_live(gref)?;
        self.state[gref as usize] = RefState::Leaked;
        self.leaked += 1;
        Ok(())
    }

    /// Moves a live reference to quarantine: not free, not live, ended
    /// later with [`Self::release_quarantined`].
    pub fn quarantine(&mut self, gref: u32) -> Result<(), NotLive> {
        self.take_live(gref)?;
        self.state[gref as usize] = RefState::Quarantined;
        self.quarantined += 1;
        Ok(())
    }

    /// Returns a quarantined reference (now ended) to the free list.
    pub fn release_quarantined(&mut self, gref: u32) -> Result<(), NotLive> {
        match self.state(gref) {
            RefState::Quarantined => {
                self.quarantined -= 1;
                self.push_back(gref);
                Ok(())
            }
            other => Err(NotLive(other)),
        }
    }

    /// References in quarantine now.
    pub fn quarantined_count(&self) -> usize {
        self.quarantined
    }

    /// References usable at all (`nr_entries` minus the reserved ones).
    pub fn capacity(&self) -> usize {
        self.limit.saturating_sub(GNTTAB_NR_RESERVED_ENTRIES) as usize
    }

    /// References on the free list.
    pub fn free_count(&self) -> usize {
        self.free
    }

    /// References handed out and not yet freed or leaked.
    pub fn live_count(&self) -> usize {
        self.live
    }

    /// References leaked since the last reset.
    pub fn leaked_count(&self) -> usize {
        self.leaked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn starts_empty_then_skips_reserved() {
        let mut refs = RefAllocator::<64>::new();
        assert_eq!(refs.alloc(), None);
        refs.reset(16);
        assert_eq!(refs.capacity(), 8);
        let got: Vec<u32> = core::iter::from_fn(|| refs.alloc()).collect();
        assert_eq!(got, (8..16).collect::<Vec<_>>());
        assert_eq!(refs.free_count(), 0);
        assert_eq!(refs.live_count(), 8);
        assert_eq!(refs.state(3), RefState::Unavailable);
        assert_eq!(refs.state(16), RefState::Unavailable);
    }

    #[test]
    fn fifo_reuse_and_double_free() {
        let mut refs = RefAllocator::<64>::new();
        refs.reset(11);
        let (a, b, c) = (
            refs.alloc().unwrap(),
            refs.alloc().unwrap(),
            refs.alloc().unwrap(),
        );
        assert_eq!((a, b, c), (8, 9, 10));
        assert_eq!(refs.alloc(), None);
        refs.free(b).unwrap();
        assert_eq!(refs.free(b), Err(NotLive(RefState::Free)));
        refs.free(a).unwrap();
        // Oldest first: b was freed before a.
        assert_eq!(refs.alloc(), Some(b));
        assert_eq!(refs.alloc(), Some(a));
        assert_eq!(refs.alloc(), None);
    }

    #[test]
    fn refuses_refs_never_handed_out() {
        let mut refs = RefAllocator::<64>::new();
        refs.reset(64);
        for gref in [0, 1, 7, 8, 63, 64, 1000, u32::MAX] {
            assert!(refs.free(gref).is_err(), "freed {gref}");
            assert!(refs.leak(gref).is_err(), "leaked {gref}");
        }
        assert_eq!(refs.free_count(), 56);
    }

    #[test]
    fn leaked_refs_never_come_back() {
        let mut refs = RefAllocator::<64>::new();
        refs.reset(10);
        let a = refs.alloc().unwrap();
        let b = refs.alloc().unwrap();
        refs.leak(a).unwrap();
        assert_eq!(refs.state(a), RefState::Leaked);
        assert_eq!(refs.free(a), Err(NotLive(RefState::Leaked)));
        refs.free(b).unwrap();
        assert_eq!(refs.alloc(), Some(b));
        assert_eq!(refs.alloc(), None);
        assert_eq!((refs.live_count(), refs.leaked_count()), (1, 1));
        refs.reset(10);
        assert_eq!((refs.free_count(), refs.leaked_count()), (2, 0));
    }

    #[test]
    fn quarantined_refs_come_back_only_when_released() {
        let mut refs = RefAllocator::<64>::new();
        refs.reset(10);
        let a = refs.alloc().unwrap();
        let b = refs.alloc().unwrap();
        refs.quarantine(a).unwrap();
        assert_eq!(refs.state(a), RefState::Quarantined);
        assert_eq!(refs.free(a), Err(NotLive(RefState::Quarantined)));
        assert_eq!(refs.quarantine(a), Err(NotLive(RefState::Quarantined)));
        assert_eq!(refs.alloc(), None);
        assert_eq!((refs.live_count(), refs.quarantined_count()), (1, 1));
        assert_eq!(refs.release_quarantined(b), Err(NotLive(RefState::Live)));
        refs.release_quarantined(a).unwrap();
        assert_eq!(refs.quarantined_count(), 0);
        assert_eq!(refs.alloc(), Some(a));
    }

    #[test]
    fn capped_at_capacity() {
        let mut refs = RefAllocator::<32>::new();
        refs.reset(4096);
        assert_eq!(refs.capacity(), 24);
        assert_eq!(core::iter::from_fn(|| refs.alloc()).count(), 24);
        refs.reset(4);
        assert_eq!(refs.capacity(), 0);
        assert_eq!(refs.alloc(), None);
    }

    #[test]
    fn counts_stay_consistent_under_churn() {
        let mut refs = RefAllocator::<128>::new();
        refs.reset(128);
        let mut held = Vec::new();
        let mut seed = 12345u32;
        for _ in 0..10_000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if seed.is_multiple_of(3) && !held.is_empty() {
                let gref = held.swap_remove((seed as usize / 3) % held.len());
                refs.free(gref).unwrap();
            } else if let Some(gref) = refs.alloc() {
                assert!(!held.contains(&gref), "{gref} handed out twice");
                assert!(gref >= 8);
                held.push(gref);
            }
            assert_eq!(refs.live_count(), held.len());
            assert_eq!(refs.free_count() + refs.live_count(), 120);
        }
    }
}
