//! [`Page`]: one zeroed, mapped frame that its holder owns.
//!
//! The safe unit of private memory for the kernel: a page has a
//! pseudo-physical and a machine frame number, is mapped read-write in
//! the direct map, can be seen as a byte slice, and goes back to the
//! frame allocator when dropped. Writing it needs `&mut`. A page is
//! never shared with another domain as a `Page`: granting one makes it a
//! [`GrantedPage`](crate::grant::GrantedPage), which owns it, hands out
//! no slices, and keeps it out of the allocator while a grant names it.

use super::error::MmError;
use super::{alloc_frames, core, free_frame, Gfn, Mfn, Pfn};
use crate::boot_info::PAGE_SIZE;

/// One owned frame, mapped read-write at `pfn * 4096`.
#[derive(Debug)]
pub struct Page {
    pfn: u64,
    mfn: u64,
}

impl Page {
    /// Takes a free frame and zeroes it.
    pub fn new() -> Result<Page, MmError> {
        let core = core()?;
        let pfn = alloc_frames(1, 1)?.ok_or(MmError::OutOfFrames)?;
        let Some(mfn) = core.p2m().mfn(pfn) else {
            // A free frame always has a machine frame; if not, keep it
            // out of circulation rather than hand out an unmapped page.
            return Err(MmError::BadPfn(pfn));
        };
        let page = Page { pfn, mfn };
        // SAFETY: the frame was free, so nothing references it, and every
        // frame `alloc_frames` hands out is mapped read-write at
        // `pfn * 4096` by the direct map (which it extends first if need
        // be).
        unsafe { core::ptr::write_bytes(page.base(), 0, PAGE_SIZE as usize) };
        Ok(page)
    }

    /// Wraps a frame that is allocated, backed by `mfn` and mapped.
    ///
    /// # Safety
    ///
    /// `pfn` must be allocated in the frame allocator, owned by no one
    /// else, and mapped read-write in the direct map.
    pub(super) unsafe fn from_parts(pfn: u64, mfn: u64) -> Page {
        Page { pfn, mfn }
    }

    /// Gives up ownership without freeing; returns the pfn.
    pub(super) fn into_pfn(self) -> u64 {
        let pfn = self.pfn;
        core::mem::forget(self);
        pfn
    }

    /// The pseudo-physical frame number.
    pub fn pfn(&self) -> Pfn {
        Pfn::new(self.pfn)
    }

    /// The machine frame number (what PV page-table entries hold; in
    /// PVH, where there is no p2m, the guest frame).
    pub fn mfn(&self) -> Mfn {
        Mfn::new(self.current_mfn())
    }

    /// The machine frame behind the page today: a resume in a new
    /// domain changes every machine frame (the p2m is rewritten for us),
    /// so the p2m is asked each time; the frame found at allocation is
    /// the answer only if the p2m cannot be read.
    fn current_mfn(&self) -> u64 {
        core()
            .ok()
            .and_then(|core| core.p2m().mfn(self.pfn))
            .unwrap_or(self.mfn)
    }

    /// The frame as Xen's grant and memory interfaces name it: the
    /// machine frame in PV, the guest frame in PVH.
    pub fn gfn(&self) -> Gfn {
        Gfn::new(self.current_mfn())
    }

    /// The page's virtual address in the direct map.
    pub fn address(&self) -> usize {
        (self.pfn * PAGE_SIZE) as usize
    }

    fn base(&self) -> *mut u8 {
        self.address() as *mut u8
    }

    fn writable(&self) -> bool {
        true
    }

    /// The page's bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the page is ours alone (a `Page` is never granted or
        // mapped elsewhere; see the module docs) and mapped read-write
        // for as long as `self` lives; the borrow of `self` bounds the
        // slice's, and writes need `&mut self`.
        unsafe { core::slice::from_raw_parts(self.base(), PAGE_SIZE as usize) }
    }

    /// The page's bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as for `as_slice`; `&mut self` makes the slice unique.
        unsafe { core::slice::from_raw_parts_mut(self.base(), PAGE_SIZE as usize) }
    }
}

super::access::volatile_accessors!(Page);

// SAFETY: a `Page` owns its frame alone, mapped read-write at `base()`
// while it lives, and `gfn()` is the frame Xen's grant interface names;
// dropping it returns the frame to the allocator.
unsafe impl crate::grant::FramePage for Page {
    fn gfn(&self) -> Gfn {
        Page::gfn(self)
    }

    fn base(&self) -> *mut u8 {
        Page::base(self)
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        free_frame(self.pfn, 1);
    }
}
