//! Fixed virtual pages for frames Xen hands us by machine number.
//!
//! (PVH: see [`map`] and [`place`]; the slots are where Xen's pages are
//! put into our physmap.)
//!
//! The console ring, the xenstore ring and the shared info page arrive
//! as machine frame numbers. A PV guest maps a machine frame by writing
//! a PTE through `update_va_mapping`; these slots are page-aligned pages
//! of our own `.bss` reserved for that. The frame that backed a slot
//! before stays ours, just unmapped. (Issue 3's memory manager replaces
//! this with a general mapping API; the slots stay for early boot.)

use crate::mm::Gfn;
use core::ptr::NonNull;
use pv_arch::hypercall::va_mapping::{pte, update_va_mapping};
use pv_arch::Errno;

/// The reserved pages, one per [`Slot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Slot {
    /// The PV console ring (`xencons_interface`).
    Console = 0,
    /// The xenstore ring (`xenstore_domain_interface`).
    Xenstore = 1,
    /// The shared info page.
    SharedInfo = 2,
    /// Grant-table frame 0 (placed when the table is first used, `grant::table`).
    GrantTable0 = 3,
    /// Grant-table frame 1.
    GrantTable1 = 4,
    /// Grant-table frame 2.
    GrantTable2 = 5,
    /// Grant-table frame 3.
    GrantTable3 = 6,
    /// The version 2 grant status frame (unmapped while in version 1).
    GrantStatus = 7,
    /// Where the grant conformance tests map grants (left unmapped by
    /// each unmap).
    GrantScratch = 8,
}

const SLOTS: usize = 9;
const PAGE_SIZE: usize = 4096;

#[repr(C, align(4096))]
struct FixmapPages([[u8; PAGE_SIZE]; SLOTS]);

/// Never referenced from Rust: only its address is taken, and the pages
/// are remapped to other frames.
static mut FIXMAP: FixmapPages = FixmapPages([[0; PAGE_SIZE]; SLOTS]);

/// Virtual address of `slot`.
pub fn address(slot: Slot) -> usize {
    (&raw const FIXMAP) as usize + slot as usize * PAGE_SIZE
}

/// Maps frame `frame` read-write at `slot` and returns its address.
///
/// In PVH the frame is a guest frame (the console and xenstore rings
/// Xen names in the HVM parameters) and is already reachable through
/// the identity map, so that address is returned and the slot is left
/// alone.
///
/// # Safety
///
/// `frame` must be a page Xen shares with us for this purpose (a ring,
/// the shared info page, a grant-table frame), not memory Rust owns
/// some other way (a heap or stack frame, a `Page`): the returned
/// pointer aliases it and Xen or another domain writes it. `slot` must
/// not be in use by anyone else.
pub unsafe fn map(slot: Slot, frame: Gfn) -> Result<NonNull<u8>, Errno> {
    let mfn = frame.raw();
    if crate::platform::is_pvh() {
        use crate::arch::x86_64::pvh_paging::MAPPED_LIMIT;
        let address = mfn
            .checked_mul(PAGE_SIZE as u64)
            .filter(|&a| a < MAPPED_LIMIT);
        return NonNull::new(address.ok_or(Errno::ERANGE)? as *mut u8).ok_or(Errno::EFAULT);
    }
    let va = address(slot);
    let flags = pte::PRESENT | pte::WRITABLE | pte::ACCESSED | pte::DIRTY;
    // SAFETY: the slot is a page of our own image that no Rust reference
    // points into (FIXMAP is only used through its address); Xen checks
    // that the frame is one we may map writable, and the caller that it
    // is not memory Rust owns.
    unsafe { update_va_mapping(va, mfn, flags)? };
    NonNull::new(va as *mut u8).ok_or(Errno::EFAULT)
}

/// PVH: makes page `idx` of `space` (`XENMAPSPACE_shared_info`,
/// `XENMAPSPACE_grant_table`, …) appear at `slot` and returns its
/// address. The slot is a page of our image, identity mapped, so its
/// guest frame is its address / 4096; `XENMEM_add_to_physmap` puts Xen's
/// page at that frame (Xen takes back the RAM page that was there).
/// In PV this is `EOPNOTSUPP`: machine frames are mapped with [`map`].
pub fn place(slot: Slot, space: u32, idx: u64) -> Result<NonNull<u8>, Errno> {
    if !crate::platform::is_pvh() {
        return Err(Errno::EOPNOTSUPP);
    }
    let va = address(slot);
    // SAFETY: the slot is a page of our own image reserved for this and
    // never referenced from Rust; from now on it is whatever Xen placed.
    unsafe { pv_arch::hypercall::memory::add_to_physmap(space, idx, (va / PAGE_SIZE) as u64)? };
    NonNull::new(va as *mut u8).ok_or(Errno::EFAULT)
}
