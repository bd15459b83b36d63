//! [`GrantedPage`]: a page shared with another domain, owning its frame
//! and its grant; and [`GrantBook`], the references plus the quarantine
//! of pages whose grant could not be ended yet.
//!
//! The rule this module enforces: no frame goes back to the allocator
//! while a grant still names it. Dropping a [`GrantedPage`] ends the
//! grant first; only if Xen says nobody maps the page any more is the
//! frame freed. If the other domain still maps it (a backend that kept
//! a mapping across a teardown, the XSA-396 case), the page and its
//! reference go to the quarantine instead: out of the allocator, out of
//! the free references, counted in [`GrantStats`]. The reaper
//! ([`GrantBook::reap`]) tries to end every quarantined grant again; it
//! runs at the start of every later grant (so a driver reconnecting
//! picks up what the last teardown left) and whenever
//! [`GrantTable::reap`] is called (the guest's `grant::reap`). A version
//! switch, which Xen allows only when no entry is mapped, frees the
//! whole quarantine.
//!
//! Memory another domain can write is only ever copied, volatile, in or
//! out ([`GrantedPage::read_bytes`] and friends): no Rust reference
//! points into it, and writing needs `&mut self`.
//!
//! Everything here is generic over [`GrantTable`] (the grant operations
//! and the frame allocator) and [`GrantEntries`] (the entries
//! themselves), so the same code runs in the guest over Xen's table and
//! on the host over [`super::sim`], a simulated table and backend.

use super::refs::{RefAllocator, RefState};
use super::{GrantError, GrantRef, GrantStats};
use crate::mm::access::check;
use crate::mm::{Gfn, MmError};
use alloc::vec::Vec;
use core::fmt;
use core::mem::ManuallyDrop;
use pv_arch::abi::xen::DomId;

/// A frame owned by its value: it goes back to its allocator when the
/// value is dropped, and until then nobody else uses it.
///
/// # Safety
///
/// An implementation promises that [`Self::base`] points at 4096 bytes,
/// mapped read-write for as long as the value lives, that no one else
/// owns or references (the value hands out no references into them
/// while it is shared: [`GrantedPage`] holds it privately); and that
/// [`Self::gfn`] names the frame behind those bytes as Xen's grant
/// interface expects it.
pub unsafe trait FramePage {
    /// The frame as a grant entry names it.
    fn gfn(&self) -> Gfn;
    /// The first of the page's 4096 bytes.
    fn base(&self) -> *mut u8;
}

/// The grant table and frame allocator a [`GrantedPage`] needs: Xen's
/// (`XenGrants` in the guest) or a simulated one on the host.
pub trait GrantTable: Clone {
    /// The private page type the allocator hands out.
    type Page: FramePage;

    /// Takes a zeroed page from the frame allocator.
    fn alloc_page(&self) -> Result<Self::Page, GrantError>;

    /// Lets `domid` access `frame` (read-only if `readonly`).
    ///
    /// # Safety
    ///
    /// `frame` must be a frame the caller owns and keeps from the
    /// allocator until the returned reference has been passed to
    /// [`Self::end_or_quarantine`] with the page behind it.
    unsafe fn grant(
        &self,
        domid: DomId,
        frame: Gfn,
        readonly: bool,
    ) -> Result<GrantRef, GrantError>;

    /// Ends `gref` and frees `page`; if the other side still maps it,
    /// keeps both in quarantine until the reaper can end it.
    ///
    /// # Safety
    ///
    /// `gref` must have come from [`Self::grant`] for `page`'s frame and
    /// not have been ended since.
    unsafe fn end_or_quarantine(&self, gref: GrantRef, page: Self::Page);

    /// Tries to end every quarantined grant again; returns how many
    /// pages went back to the allocator.
    fn reap(&self) -> usize;

    /// How the references are used.
    fn stats(&self) -> GrantStats;
}

/// A page shared with another domain: a private frame plus the grant
/// that lets the other domain at it. Dropping it ends the grant and only
/// then frees the frame, or quarantines the page while the other domain
/// still maps it. Its contents are reached only by volatile copies.
pub struct GrantedPage<T: GrantTable> {
    page: ManuallyDrop<T::Page>,
    table: T,
    gref: GrantRef,
    domid: DomId,
    readonly: bool,
}

impl<T: GrantTable> fmt::Debug for GrantedPage<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantedPage")
            .field("gref", &self.gref)
            .field("domid", &self.domid)
            .field("frame", &self.page.gfn())
            .field("readonly", &self.readonly)
            .finish()
    }
}

impl<T: GrantTable> GrantedPage<T> {
    /// Takes a zeroed page from `table`'s allocator and grants `domid`
    /// access to it (read-only if `readonly`).
    pub fn new(table: &T, domid: DomId, readonly: bool) -> Result<Self, GrantError> {
        let page = table.alloc_page()?;
        // SAFETY: the page is owned by the value built below, whose
        // `Drop` passes it with this reference to `end_or_quarantine`
        // (the only way the frame leaves it). If granting fails, the
        // page is dropped ungranted.
        let gref = unsafe { table.grant(domid, page.gfn(), readonly) }?;
        Ok(GrantedPage {
            page: ManuallyDrop::new(page),
            table: table.clone(),
            gref,
            domid,
            readonly,
        })
    }

    /// The reference to hand to the other domain.
    pub fn gref(&self) -> GrantRef {
        self.gref
    }

    /// The domain granted access.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// Whether the other domain may only read the page.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// The frame granted (for diagnostics; nothing safe takes it back).
    pub fn gfn(&self) -> Gfn {
        self.page.gfn()
    }

    /// Copies `out.len()` bytes at `offset` out of the page (volatile,
    /// each byte read once: check the copy, not the page).
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) -> Result<(), MmError> {
        check(offset, out.len(), 1)?;
        let base = self.page.base();
        for (i, byte) in out.iter_mut().enumerate() {
            // SAFETY: in bounds (checked above) of the page, which
            // `FramePage` keeps mapped while `self` lives; volatile
            // because the other domain may write it.
            *byte = unsafe { base.add(offset + i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `bytes` into the page at `offset` (volatile).
    pub fn write_bytes(&mut self, offset: usize, bytes: &[u8]) -> Result<(), MmError> {
        check(offset, bytes.len(), 1)?;
        let base = self.page.base();
        for (i, byte) in bytes.iter().enumerate() {
            // SAFETY: as in `read_bytes`; the page is mapped writable.
            unsafe { base.add(offset + i).write_volatile(*byte) };
        }
        Ok(())
    }

    /// Reads the `u32` at `offset` (4-byte aligned; one volatile load,
    /// as ring indices need).
    pub fn read_u32(&self, offset: usize) -> Result<u32, MmError> {
        check(offset, 4, 4)?;
        // SAFETY: in bounds and aligned (checked above), page mapped.
        Ok(unsafe { self.page.base().add(offset).cast::<u32>().read_volatile() })
    }

    /// Writes the `u32` at `offset` (4-byte aligned; one volatile store).
    pub fn write_u32(&mut self, offset: usize, value: u32) -> Result<(), MmError> {
        check(offset, 4, 4)?;
        // SAFETY: as in `read_u32`; the page is mapped writable.
        unsafe {
            self.page
                .base()
                .add(offset)
                .cast::<u32>()
                .write_volatile(value)
        };
        Ok(())
    }
}

impl<T: GrantTable> Drop for GrantedPage<T> {
    fn drop(&mut self) {
        // SAFETY: `page` is taken exactly once, here, and not used after.
        let page = unsafe { ManuallyDrop::take(&mut self.page) };
        // SAFETY: `gref` was made by `grant` for this page's frame in
        // `new` and no one else can end it (it is ended only here).
        unsafe { self.table.end_or_quarantine(self.gref, page) };
    }
}

/// The entries of a grant table, as [`GrantBook`] uses them.
pub trait GrantEntries {
    /// Makes entry `gref` let `domid` access `frame`.
    ///
    /// # Safety
    ///
    /// The caller must own `frame` until the entry has been ended.
    unsafe fn grant(
        &self,
        gref: u32,
        domid: DomId,
        frame: Gfn,
        readonly: bool,
    ) -> Result<(), GrantError>;

    /// Ends entry `gref` unless the other side uses it
    /// ([`GrantError::InUse`]).
    fn end(&self, gref: u32) -> Result<(), GrantError>;
}

/// The references of one table and the pages held in quarantine.
pub struct GrantBook<P, const N: usize> {
    refs: RefAllocator<N>,
    quarantine: Vec<(u32, P)>,
    quarantined_total: usize,
    leaked_total: usize,
}

impl<P, const N: usize> Default for GrantBook<P, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P, const N: usize> GrantBook<P, N> {
    /// A book with no usable references (call [`Self::reset`]).
    pub const fn new() -> Self {
        GrantBook {
            refs: RefAllocator::new(),
            quarantine: Vec::new(),
            quarantined_total: 0,
            leaked_total: 0,
        }
    }

    /// Frees every reference (`8..nr_entries`) and every quarantined
    /// page. Only for a table Xen has just (re)initialised, which it does
    /// only when no entry is mapped.
    pub fn reset(&mut self, nr_entries: u32) {
        self.refs.reset(nr_entries);
        self.quarantine.clear();
    }

    /// Runs the reaper, then takes a reference and grants `frame` in it.
    ///
    /// # Safety
    ///
    /// As for [`GrantEntries::grant`]: the caller owns `frame` until the
    /// reference is ended.
    pub unsafe fn grant<E: GrantEntries>(
        &mut self,
        entries: &E,
        domid: DomId,
        frame: Gfn,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        self.reap(entries);
        let gref = self.refs.alloc().ok_or(GrantError::NoFreeRefs)?;
        // SAFETY: the caller's promise.
        match unsafe { entries.grant(gref, domid, frame, readonly) } {
            Ok(()) => Ok(GrantRef(gref)),
            Err(error) => {
                // The entry was not made valid: the reference is clean.
                let _ = self.refs.free(gref);
                Err(error)
            }
        }
    }

    /// Ends live reference `gref` and frees it; [`GrantError::InUse`]
    /// leaves it live.
    pub fn end<E: GrantEntries>(&mut self, entries: &E, gref: GrantRef) -> Result<(), GrantError> {
        if self.refs.state(gref.0) != RefState::Live {
            return Err(GrantError::BadRef(gref.0));
        }
        entries.end(gref.0)?;
        self.refs
            .free(gref.0)
            .map_err(|_| GrantError::BadRef(gref.0))
    }

    /// Ends `gref` and drops `page` (freeing its frame), or, if that
    /// fails (the other side still maps it, or the table is not mapped
    /// right now: `entries` is `None`), quarantines both.
    pub fn end_or_quarantine<E: GrantEntries>(
        &mut self,
        entries: Option<&E>,
        gref: GrantRef,
        page: P,
    ) {
        if let Some(entries) = entries {
            if self.end(entries, gref).is_ok() {
                drop(page);
                return;
            }
        }
        // Not ended: keep the frame out of the allocator. A reference
        // that is not live (which `GrantTable`'s contract rules out) is
        // held with its page for good: the reaper only ends references
        // it quarantined itself.
        let _ = self.refs.quarantine(gref.0);
        self.quarantine.push((gref.0, page));
        self.quarantined_total += 1;
    }

    /// Gives up on live reference `gref` for good (a raw grant dropped
    /// while mapped; its frame is the caller's business).
    pub fn leak(&mut self, gref: GrantRef) -> bool {
        let leaked = self.refs.leak(gref.0).is_ok();
        if leaked {
            self.leaked_total += 1;
        }
        leaked
    }

    /// Tries to end each quarantined grant; frees the pages (and
    /// references) of those it could. Returns how many.
    pub fn reap<E: GrantEntries>(&mut self, entries: &E) -> usize {
        let before = self.quarantine.len();
        let refs = &mut self.refs;
        self.quarantine.retain(|&(gref, _)| {
            let ended = refs.state(gref) == RefState::Quarantined
                && entries.end(gref).is_ok()
                && refs.release_quarantined(gref).is_ok();
            // Dropping the entry (not retained) frees the page.
            !ended
        });
        if self.quarantine.is_empty() && self.quarantine.capacity() != 0 {
            // Give the storage of a burst back (a vif's 256 rx pages
            // quarantined at once): the heap must come back to where it
            // was once the quarantine drains (`cargo xtask soak`).
            self.quarantine = Vec::new();
        }
        before - self.quarantine.len()
    }

    /// What reference `gref` is doing.
    pub fn state(&self, gref: GrantRef) -> RefState {
        self.refs.state(gref.0)
    }

    /// Live references (what a version switch must wait for).
    pub fn live(&self) -> usize {
        self.refs.live_count()
    }

    /// How the references are used.
    pub fn stats(&self) -> GrantStats {
        GrantStats {
            capacity: self.refs.capacity(),
            free: self.refs.free_count(),
            live: self.refs.live_count(),
            leaked: self.refs.leaked_count(),
            leaked_total: self.leaked_total,
            quarantined: self.quarantine.len(),
            quarantined_total: self.quarantined_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// Entries whose `end` fails while `mapped` (the other side maps
    /// every entry, or none).
    struct Entries {
        mapped: Cell<bool>,
    }

    impl GrantEntries for Entries {
        unsafe fn grant(&self, _: u32, _: DomId, _: Gfn, _: bool) -> Result<(), GrantError> {
            Ok(())
        }

        fn end(&self, _: u32) -> Result<(), GrantError> {
            if self.mapped.get() {
                Err(GrantError::InUse)
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn a_drained_quarantine_gives_its_storage_back() {
        let entries = Entries {
            mapped: Cell::new(true),
        };
        let mut book: GrantBook<u64, 512> = GrantBook::new();
        book.reset(512);
        for page in 0..256u64 {
            // SAFETY: nothing is behind these frames in this test.
            let gref = unsafe { book.grant(&entries, 0, Gfn::new(page), false) }.unwrap();
            book.end_or_quarantine(Some(&entries), gref, page);
        }
        assert_eq!(book.stats().quarantined, 256);
        assert!(book.quarantine.capacity() >= 256);
        entries.mapped.set(false);
        assert_eq!(book.reap(&entries), 256);
        assert_eq!(book.stats().quarantined, 0);
        assert_eq!(book.quarantine.capacity(), 0);
    }
}
