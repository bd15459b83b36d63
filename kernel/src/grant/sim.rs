//! A simulated grant table, frame allocator and backend, for host tests
//! of [`GrantedPage`](super::GrantedPage) and of the drivers' page types.
//!
//! [`SimGrants`] runs the same [`GrantBook`] the guest runs, over
//! simulated entries; [`SimGrants::backend_map`] and
//! [`SimGrants::backend_unmap`] play a backend that maps a grant and
//! lets go of it (while it maps one, ending the grant says
//! [`GrantError::InUse`], as Xen does). The frame allocator hands out
//! frames lowest first, and records any frame it hands out while a
//! backend still maps it ([`SimGrants::reused_while_mapped`]), which is
//! the bug the quarantine exists to prevent.

use super::owned::{FramePage, GrantBook, GrantEntries, GrantTable};
use super::{GrantError, GrantRef, GrantStats};
use crate::mm::Gfn;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell, UnsafeCell};
use pv_arch::abi::xen::DomId;

/// References the simulated table has (8 reserved, like Xen's).
pub const SIM_ENTRIES: usize = 512;

/// The simulated frame allocator.
#[derive(Debug)]
struct SimFrames {
    free: Vec<u64>,
    mapped: Rc<RefCell<BTreeMap<u64, usize>>>,
    reused_while_mapped: usize,
}

impl SimFrames {
    fn alloc(&mut self) -> Option<u64> {
        // Lowest first, so a freed frame is the next one handed out.
        let lowest = (0..self.free.len()).min_by_key(|&i| self.free[i])?;
        let frame = self.free.swap_remove(lowest);
        if self.mapped.borrow().contains_key(&frame) {
            self.reused_while_mapped += 1;
        }
        Some(frame)
    }
}

/// A page from the simulated allocator; its frame goes back when it is
/// dropped.
pub struct SimPage {
    frame: u64,
    bytes: Box<UnsafeCell<[u8; 4096]>>,
    frames: Rc<RefCell<SimFrames>>,
}

// SAFETY: `bytes` is a heap page of 4096 bytes owned by this value alone
// (nothing hands out references into it) and `frame` is the simulated
// frame number the grant names.
unsafe impl FramePage for SimPage {
    fn gfn(&self) -> Gfn {
        Gfn::new(self.frame)
    }

    fn base(&self) -> *mut u8 {
        self.bytes.get().cast::<u8>()
    }
}

impl Drop for SimPage {
    fn drop(&mut self) {
        self.frames.borrow_mut().free.push(self.frame);
    }
}

/// One simulated entry.
#[derive(Clone, Copy, Debug)]
struct SimEntry {
    domid: DomId,
    frame: u64,
    valid: bool,
    mapped: bool,
}

/// The simulated entries.
#[derive(Default)]
struct SimEntries {
    entries: RefCell<BTreeMap<u32, SimEntry>>,
}

impl GrantEntries for SimEntries {
    unsafe fn grant(
        &self,
        gref: u32,
        domid: DomId,
        frame: Gfn,
        _readonly: bool,
    ) -> Result<(), GrantError> {
        self.entries.borrow_mut().insert(
            gref,
            SimEntry {
                domid,
                frame: frame.raw(),
                valid: true,
                mapped: false,
            },
        );
        Ok(())
    }

    fn end(&self, gref: u32) -> Result<(), GrantError> {
        let mut entries = self.entries.borrow_mut();
        let entry = entries.get_mut(&gref).ok_or(GrantError::BadRef(gref))?;
        if entry.mapped {
            return Err(GrantError::InUse);
        }
        entry.valid = false;
        Ok(())
    }
}

/// A simulated grant table with its frame allocator and backend.
#[derive(Clone)]
pub struct SimGrants {
    frames: Rc<RefCell<SimFrames>>,
    mapped: Rc<RefCell<BTreeMap<u64, usize>>>,
    entries: Rc<SimEntries>,
    book: Rc<RefCell<GrantBook<SimPage, SIM_ENTRIES>>>,
    reaps: Rc<Cell<usize>>,
}

impl SimGrants {
    /// A table of [`SIM_ENTRIES`] entries over `frames` free frames
    /// (numbered from 0x1000).
    pub fn new(frames: usize) -> Self {
        let mapped = Rc::new(RefCell::new(BTreeMap::new()));
        let mut book = GrantBook::new();
        book.reset(SIM_ENTRIES as u32);
        SimGrants {
            frames: Rc::new(RefCell::new(SimFrames {
                free: (0..frames as u64).map(|i| 0x1000 + i).collect(),
                mapped: mapped.clone(),
                reused_while_mapped: 0,
            })),
            mapped,
            entries: Rc::new(SimEntries::default()),
            book: Rc::new(RefCell::new(book)),
            reaps: Rc::new(Cell::new(0)),
        }
    }

    /// The backend (`domid`) maps grant `gref`, as `GNTTABOP_map_grant_ref`
    /// would: refused unless the entry is valid and granted to `domid`.
    /// Returns the frame it now maps.
    pub fn backend_map(&self, domid: DomId, gref: GrantRef) -> Result<Gfn, GrantError> {
        let mut entries = self.entries.entries.borrow_mut();
        let entry = entries
            .get_mut(&gref.value())
            .filter(|entry| entry.valid && entry.domid == domid)
            .ok_or(GrantError::BadRef(gref.value()))?;
        entry.mapped = true;
        *self.mapped.borrow_mut().entry(entry.frame).or_insert(0) += 1;
        Ok(Gfn::new(entry.frame))
    }

    /// The backend unmaps grant `gref`.
    pub fn backend_unmap(&self, gref: GrantRef) -> Result<(), GrantError> {
        let mut entries = self.entries.entries.borrow_mut();
        let entry = entries
            .get_mut(&gref.value())
            .filter(|entry| entry.mapped)
            .ok_or(GrantError::BadRef(gref.value()))?;
        entry.mapped = false;
        let mut mapped = self.mapped.borrow_mut();
        if let Some(count) = mapped.get_mut(&entry.frame) {
            *count -= 1;
            if *count == 0 {
                mapped.remove(&entry.frame);
            }
        }
        Ok(())
    }

    /// Whether the backend maps `frame` now.
    pub fn backend_maps(&self, frame: Gfn) -> bool {
        self.mapped.borrow().contains_key(&frame.raw())
    }

    /// Times the allocator handed out a frame a backend still mapped.
    pub fn reused_while_mapped(&self) -> usize {
        self.frames.borrow().reused_while_mapped
    }

    /// Whether `frame` is on the allocator's free list.
    pub fn is_free(&self, frame: Gfn) -> bool {
        self.frames.borrow().free.contains(&frame.raw())
    }

    /// Frames free now.
    pub fn free_frames(&self) -> usize {
        self.frames.borrow().free.len()
    }

    /// Takes every free frame (as the next users would) and returns
    /// them, so a test can check none is one a backend maps.
    pub fn drain_allocator(&self) -> Vec<SimPage> {
        core::iter::from_fn(|| self.alloc_page().ok()).collect()
    }

    /// How many times the reaper has run.
    pub fn reaps(&self) -> usize {
        self.reaps.get()
    }
}

impl GrantTable for SimGrants {
    type Page = SimPage;

    fn alloc_page(&self) -> Result<SimPage, GrantError> {
        let frame = self
            .frames
            .borrow_mut()
            .alloc()
            .ok_or(GrantError::NoMemory)?;
        Ok(SimPage {
            frame,
            bytes: Box::new(UnsafeCell::new([0; 4096])),
            frames: self.frames.clone(),
        })
    }

    unsafe fn grant(
        &self,
        domid: DomId,
        frame: Gfn,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        self.reaps.set(self.reaps.get() + 1);
        // SAFETY: the caller's promise, passed on.
        unsafe {
            self.book
                .borrow_mut()
                .grant(&*self.entries, domid, frame, readonly)
        }
    }

    unsafe fn end_or_quarantine(&self, gref: GrantRef, page: SimPage) {
        self.book
            .borrow_mut()
            .end_or_quarantine(Some(&*self.entries), gref, page);
    }

    fn reap(&self) -> usize {
        self.reaps.set(self.reaps.get() + 1);
        self.book.borrow_mut().reap(&*self.entries)
    }

    fn stats(&self) -> GrantStats {
        self.book.borrow().stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::GrantedPage;
    use crate::mm::MmError;

    const BACKEND: DomId = 0;

    #[test]
    fn dropped_unmapped_page_frees_frame_and_ref() {
        let table = SimGrants::new(4);
        let page = GrantedPage::new(&table, BACKEND, false).unwrap();
        let frame = page.gfn();
        assert!(!table.is_free(frame));
        assert_eq!(table.stats().live, 1);
        drop(page);
        assert!(table.is_free(frame));
        let stats = table.stats();
        assert_eq!(
            (stats.live, stats.quarantined, stats.quarantined_total),
            (0, 0, 0)
        );
    }

    #[test]
    fn page_mapped_across_drop_is_quarantined_until_backend_lets_go() {
        let table = SimGrants::new(8);
        let page = GrantedPage::new(&table, BACKEND, false).unwrap();
        let (frame, gref) = (page.gfn(), page.gref());
        assert_eq!(table.backend_map(BACKEND, gref), Ok(frame));
        let free_before = table.stats().free;
        drop(page);
        let held = table.stats();
        assert_eq!(
            (held.live, held.quarantined, held.quarantined_total),
            (0, 1, 1)
        );
        // The reference is not free either: nobody else gets it.
        assert_eq!(held.free, free_before);
        assert!(!table.is_free(frame));
        // Everyone else's allocations never see the frame.
        let others = table.drain_allocator();
        assert_eq!(others.len(), 7);
        assert!(others.iter().all(|other| other.gfn() != frame));
        assert_eq!(table.reused_while_mapped(), 0);
        drop(others);
        // Still mapped: the reaper leaves it where it is.
        assert_eq!(table.reap(), 0);
        assert_eq!(table.stats().quarantined, 1);
        table.backend_unmap(gref).unwrap();
        assert_eq!(table.reap(), 1);
        let after = table.stats();
        assert_eq!((after.quarantined, after.quarantined_total), (0, 1));
        assert_eq!(after.free, free_before + 1);
        assert!(table.is_free(frame));
    }

    #[test]
    fn next_grant_runs_the_reaper() {
        let table = SimGrants::new(2);
        let page = GrantedPage::new(&table, BACKEND, true).unwrap();
        let gref = page.gref();
        table.backend_map(BACKEND, gref).unwrap();
        drop(page);
        // One frame left, and the held one is not handed out.
        let other = GrantedPage::new(&table, BACKEND, true).unwrap();
        assert_eq!(
            GrantedPage::new(&table, BACKEND, true).unwrap_err(),
            GrantError::NoMemory
        );
        table.backend_unmap(gref).unwrap();
        drop(other);
        // The next grant reaps first, so the frame is usable again.
        let again = GrantedPage::new(&table, BACKEND, true).unwrap();
        assert_eq!(table.stats().quarantined, 0);
        drop(again);
        assert_eq!(table.free_frames(), 2);
        assert_eq!(table.reused_while_mapped(), 0);
    }

    #[test]
    fn backend_cannot_map_what_it_was_not_granted() {
        let table = SimGrants::new(2);
        let page = GrantedPage::new(&table, BACKEND, false).unwrap();
        assert!(table.backend_map(7, page.gref()).is_err());
        let gref = page.gref();
        drop(page);
        assert!(table.backend_map(BACKEND, gref).is_err());
    }

    #[test]
    fn contents_are_copied_in_and_out_within_bounds() {
        let table = SimGrants::new(1);
        let mut page = GrantedPage::new(&table, BACKEND, false).unwrap();
        page.write_bytes(4090, b"abcdef").unwrap();
        page.write_u32(8, 0xdead_beef).unwrap();
        let mut out = [0u8; 6];
        page.read_bytes(4090, &mut out).unwrap();
        assert_eq!(&out, b"abcdef");
        assert_eq!(page.read_u32(8), Ok(0xdead_beef));
        assert_eq!(page.read_u32(4094), Err(MmError::BadOffset(4094)));
        assert_eq!(page.read_u32(2), Err(MmError::BadOffset(2)));
        assert_eq!(page.write_bytes(4095, b"xy"), Err(MmError::BadOffset(4095)));
    }
}
