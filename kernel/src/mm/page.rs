//! [`Page`]: one zeroed, mapped frame that its holder owns.
//!
//! The safe unit of memory for drivers and the rest of the kernel: a
//! page has a pseudo-physical and a machine frame number (for grants and
//! rings), is mapped read-write in the direct map, can be seen as a byte
//! slice, and goes back to the frame allocator when dropped. For a page
//! shared with another domain, whose contents change under us, use the
//! volatile accessors (`read_u32`, `write_bytes`, …) instead of slices.

use super::error::MmError;
use super::{core, free_frame, with_frames};
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
        let pfn = with_frames(|frames| frames.alloc())?.ok_or(MmError::OutOfFrames)?;
        let Some(mfn) = core.p2m().mfn(pfn) else {
            // A free frame always has a machine frame; if not, keep it
            // out of circulation rather than hand out an unmapped page.
            return Err(MmError::BadPfn(pfn));
        };
        let page = Page { pfn, mfn };
        // SAFETY: the frame was free, so nothing references it, and every
        // frame we own (not ballooned out) is mapped read-write at
        // `pfn * 4096` by the direct map.
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
    pub fn pfn(&self) -> u64 {
        self.pfn
    }

    /// The machine frame number (what grants and rings need).
    pub fn mfn(&self) -> u64 {
        self.mfn
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
        // SAFETY: the page is ours alone and mapped read-write for as long
        // as `self` lives; the borrow of `self` bounds the slice's.
        unsafe { core::slice::from_raw_parts(self.base(), PAGE_SIZE as usize) }
    }

    /// The page's bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as for `as_slice`; `&mut self` makes the slice unique.
        unsafe { core::slice::from_raw_parts_mut(self.base(), PAGE_SIZE as usize) }
    }
}

super::access::volatile_accessors!(Page);

impl Drop for Page {
    fn drop(&mut self) {
        free_frame(self.pfn, 1);
    }
}
