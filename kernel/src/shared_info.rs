//! The shared info page: event bitmaps, vCPU 0's upcall flags, clocks,
//! and where each vCPU's `vcpu_info` lives (here, or where
//! `VCPUOP_register_vcpu_info` placed it, see [`place_vcpu_info`]).
//!
//! Xen and the guest both write this page, so every access is atomic or
//! volatile; nothing here hands out a plain reference into it. It is
//! mapped once at boot (through [`crate::fixmap`]) from the machine
//! address in `start_info` (PV), or placed in our physmap (PVH).

use crate::boot_info::{BootInfo, BootMode};
use crate::fixmap::{self, Slot};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};
use pv_arch::abi::memory::XENMAPSPACE_SHARED_INFO;
use pv_arch::abi::shared_info::{SharedInfo, VcpuInfo, VcpuTimeInfo};
use pv_arch::Errno;

static PAGE: AtomicPtr<SharedInfo> = AtomicPtr::new(core::ptr::null_mut());

/// Maps the shared info page. Called once, early in boot.
pub fn init(boot: &BootInfo) -> Result<(), Errno> {
    let page = match boot.mode {
        // SAFETY: `start_info` names the shared info page, which Xen
        // shares with us for good and Rust owns nothing of.
        BootMode::Pv => unsafe {
            fixmap::map(
                Slot::SharedInfo,
                crate::mm::Gfn::new(boot.shared_info_maddr >> 12),
            )?
        },
        BootMode::Pvh => fixmap::place(Slot::SharedInfo, XENMAPSPACE_SHARED_INFO, 0)?,
    };
    PAGE.store(page.cast::<SharedInfo>().as_ptr(), Ordering::Release);
    Ok(())
}

/// Unmaps the page before a suspend (PV): the toolstack refuses to
/// save a page table naming a frame that is not ours, and the shared
/// info page is Xen's. Until [`remap`], [`is_mapped`] is false and
/// nothing may touch the page (time, the event bitmaps). PVH keeps the
/// page in its physmap (the restore puts RAM there; [`remap`] places
/// the new domain's page over it).
pub fn unmap_for_suspend() -> Result<(), Errno> {
    PAGE.store(core::ptr::null_mut(), Ordering::Release);
    if crate::platform::is_pvh() {
        return Ok(());
    }
    // SAFETY: the slot is the fixmap page reserved for the shared info
    // page, which no reference points into (PAGE was just cleared, and
    // every access goes through it); a zero PTE leaves it not present.
    unsafe {
        pv_arch::hypercall::va_mapping::update_va_mapping(fixmap::address(Slot::SharedInfo), 0, 0)
    }
}

/// Maps the shared info page again after a suspend: `maddr` is its
/// machine address from the (re-read) `start_info` in PV, where a new
/// domain has a new page; PVH places the page in our physmap again.
/// Also right after a cancelled suspend (the same page comes back).
pub fn remap(maddr: u64) -> Result<(), Errno> {
    let page = if crate::platform::is_pvh() {
        fixmap::place(Slot::SharedInfo, XENMAPSPACE_SHARED_INFO, 0)?
    } else {
        // SAFETY: as in `init`: the machine address names the shared
        // info page Xen gave the domain, which Rust owns nothing of.
        unsafe { fixmap::map(Slot::SharedInfo, crate::mm::Gfn::new(maddr >> 12))? }
    };
    PAGE.store(page.cast::<SharedInfo>().as_ptr(), Ordering::Release);
    Ok(())
}

/// Publishes the p2m frame list for the toolstack (PV): the mfn of the
/// list-list page in `arch.pfn_to_mfn_frame_list_list` and the number
/// of p2m entries in `arch.max_pfn` (see `mm::p2m_frames`). `max_pfn`
/// is written first, so a toolstack that sees the list sees its size.
pub fn publish_p2m(list_list_mfn: u64, max_pfn: u64) {
    let Some(page) = page() else { return };
    let page = page.as_ptr();
    // SAFETY: volatile writes of two u64 fields of the mapped page,
    // which the guest owns (Xen only reads them, for the toolstack).
    unsafe {
        (&raw mut (*page).arch.max_pfn).write_volatile(max_pfn);
        core::sync::atomic::fence(Ordering::Release);
        (&raw mut (*page).arch.pfn_to_mfn_frame_list_list).write_volatile(list_list_mfn);
    }
}

/// `(arch.pfn_to_mfn_frame_list_list, arch.max_pfn)` as the page says
/// now (the toolstack reads the same words).
pub fn published_p2m() -> Option<(u64, u64)> {
    let page = page()?.as_ptr();
    // SAFETY: volatile reads of two u64 fields of the mapped page.
    Some(unsafe {
        (
            (&raw const (*page).arch.pfn_to_mfn_frame_list_list).read_volatile(),
            (&raw const (*page).arch.max_pfn).read_volatile(),
        )
    })
}

/// Whether [`init`] has mapped the page (so `time::now_ns` works): the
/// console, which runs before it, asks.
pub fn is_mapped() -> bool {
    page().is_some()
}

/// The mapped page, if [`init`] ran.
fn page() -> Option<NonNull<SharedInfo>> {
    NonNull::new(PAGE.load(Ordering::Acquire))
}

fn page_or_die() -> NonNull<SharedInfo> {
    page().expect("shared_info used before shared_info::init")
}

/// Where each vCPU's `vcpu_info` lives once `VCPUOP_register_vcpu_info`
/// moved it out of this page (null: still in its slot here). Written by
/// [`place_vcpu_info`] only, once per vCPU.
static PLACED: [AtomicPtr<VcpuInfo>; crate::smp::MAX_VCPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; crate::smp::MAX_VCPUS];

/// Records that Xen now keeps `vcpu`'s `vcpu_info` at `info` (after a
/// successful `VCPUOP_register_vcpu_info`): every accessor below follows
/// it from then on, since Xen stops updating the slot in this page.
///
/// # Safety
///
/// `info` must be the address Xen was just given for `vcpu`, valid for
/// the guest's lifetime and accessed only atomically or volatilely.
pub unsafe fn place_vcpu_info(vcpu: u32, info: *mut VcpuInfo) {
    if let Some(slot) = PLACED.get(vcpu as usize) {
        slot.store(info, Ordering::Release);
    }
}

/// Forgets every placement (a resume in a new domain: Xen starts over
/// with the slots in the shared info page).
pub fn forget_placements() {
    for slot in &PLACED {
        slot.store(core::ptr::null_mut(), Ordering::Release);
    }
}

/// vCPU `vcpu`'s `vcpu_info`: where it was placed, else its slot in the
/// shared info page (`vcpu` < 32, `XEN_LEGACY_MAX_VCPUS`).
pub fn vcpu_info_of(vcpu: u32) -> *mut VcpuInfo {
    if let Some(placed) = PLACED.get(vcpu as usize) {
        let placed = placed.load(Ordering::Acquire);
        if !placed.is_null() {
            return placed;
        }
    }
    // SAFETY: in-bounds field projection of the mapped page (no reference
    // is created; the index is bounds checked).
    unsafe { (&raw mut (*page_or_die().as_ptr()).vcpu_info[vcpu as usize % 32]).cast() }
}

fn vcpu0() -> *mut VcpuInfo {
    vcpu_info_of(0)
}

/// `vcpu_info[0].evtchn_upcall_mask`: 1 while upcalls are held back.
pub fn upcall_mask() -> &'static AtomicU8 {
    // SAFETY: the field is a u8 in the mapped page, which stays mapped for
    // the guest's lifetime; Xen and we access it only atomically/bytewise.
    unsafe { AtomicU8::from_ptr(&raw mut (*vcpu0()).evtchn_upcall_mask) }
}

/// `vcpu_info[0].evtchn_upcall_pending`.
pub fn upcall_pending() -> &'static AtomicU8 {
    // SAFETY: as for `upcall_mask`.
    unsafe { AtomicU8::from_ptr(&raw mut (*vcpu0()).evtchn_upcall_pending) }
}

/// `vcpu_info[0].evtchn_pending_sel`: which words of `evtchn_pending` to scan.
pub fn pending_sel() -> &'static AtomicU64 {
    // SAFETY: an 8-byte aligned u64 field of the mapped page (the layout
    // test checks the offset), accessed only atomically.
    unsafe { AtomicU64::from_ptr(&raw mut (*vcpu0()).evtchn_pending_sel) }
}

/// Word `index` (0..64) of the 2-level `evtchn_pending` bitmap.
pub fn pending_word(index: usize) -> &'static AtomicU64 {
    // SAFETY: the index is bounds checked by the array projection; the
    // word is an aligned u64 in the mapped page, shared with Xen.
    unsafe { AtomicU64::from_ptr(&raw mut (*page_or_die().as_ptr()).evtchn_pending[index]) }
}

/// Word `index` (0..64) of the 2-level `evtchn_mask` bitmap.
pub fn mask_word(index: usize) -> &'static AtomicU64 {
    // SAFETY: as for `pending_word`.
    unsafe { AtomicU64::from_ptr(&raw mut (*page_or_die().as_ptr()).evtchn_mask[index]) }
}

/// `vcpu_info.arch.cr2` of the vCPU asking: the faulting address of its
/// last page fault.
pub fn cr2() -> Option<u64> {
    page()?;
    let info = vcpu_info_of(crate::smp::current_vcpu());
    // SAFETY: volatile read of a u64 field of a live `vcpu_info`.
    Some(unsafe { (&raw const (*info).arch.cr2).read_volatile() })
}

/// A consistent copy of vCPU 0's `vcpu_time_info`.
///
/// Xen bumps `version` to odd before updating and to even after; we copy
/// until we see the same even version on both sides of the copy.
pub fn time_info() -> VcpuTimeInfo {
    let ptr = {
        // SAFETY: field projection into the mapped page.
        unsafe { &raw const (*vcpu0()).time }
    };
    loop {
        // SAFETY: volatile reads of plain-data fields in the mapped page.
        let before = unsafe { (&raw const (*ptr).version).read_volatile() };
        core::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: as above; the whole struct is plain data.
        let copy = unsafe { ptr.read_volatile() };
        core::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: as above.
        let after = unsafe { (&raw const (*ptr).version).read_volatile() };
        if before == after && before % 2 == 0 {
            return copy;
        }
        core::hint::spin_loop();
    }
}

/// The wall clock at system time zero: `(seconds, nanoseconds)` since
/// the Unix epoch, read under `wc_version` as for [`time_info`].
pub fn wallclock_base() -> (u64, u32) {
    let page = page_or_die().as_ptr();
    loop {
        // SAFETY: volatile reads of u32 fields of the mapped page.
        let (before, sec, sec_hi, nsec, after) = unsafe {
            let before = (&raw const (*page).wc_version).read_volatile();
            core::sync::atomic::fence(Ordering::Acquire);
            let sec = (&raw const (*page).wc_sec).read_volatile();
            let sec_hi = (&raw const (*page).wc_sec_hi).read_volatile();
            let nsec = (&raw const (*page).wc_nsec).read_volatile();
            core::sync::atomic::fence(Ordering::Acquire);
            (
                before,
                sec,
                sec_hi,
                nsec,
                (&raw const (*page).wc_version).read_volatile(),
            )
        };
        if before == after && before % 2 == 0 {
            return ((u64::from(sec_hi) << 32) | u64::from(sec), nsec);
        }
        core::hint::spin_loop();
    }
}
