//! The balloon: giving frames back to Xen and getting them back.
//!
//! PV: going out, a frame is unmapped from the direct map, its p2m entry
//! is made invalid, and its machine frame is handed to Xen with
//! `XENMEM_decrease_reservation`; the pseudo-physical frame stays
//! allocated (a hole in our memory) until it comes back. Coming back,
//! `XENMEM_increase_reservation` gives a new machine frame, which we
//! enter in the M2P (`MMU_MACHPHYS_UPDATE`) and the p2m and map at the
//! old address. Either direction undoes its own steps if Xen refuses one.
//! Only p2m *entries* change; the p2m's own pages never move, so the
//! frame list the save code publishes stays valid.
//!
//! PVH: Xen translates guest frames itself, so there is no p2m to keep.
//! Going out, `XENMEM_decrease_reservation` takes the guest frames
//! themselves (Xen drops them from its second-stage tables); coming
//! back, `XENMEM_populate_physmap` puts fresh pages at the same guest
//! frames. Which frames are out is our own bookkeeping, a [`PfnSet`].
//! A frame that is out stays allocated in the frame allocator, so
//! nothing of ours can reach it (our identity map's 2 MiB pages still
//! cover its address, but only its owner, the balloon, knows it); both
//! directions go in batches of [`BATCH`] frames per hypercall.
//!
//! [`release`] and [`reclaim`] move whole counts of free frames out and
//! back in either mode; [`Page::balloon_out`] and
//! [`BalloonedPage::reclaim`] do it for one page someone owns.

use super::error::MmError;
use super::page::Page;
use super::pagetable::LEAF_WRITABLE;
use super::pfn_set::PfnSet;
use super::{core, free_frame, with_frames, Core};
use crate::boot_info::PAGE_SIZE;
use core::sync::atomic::{AtomicU64, Ordering};
use pv_arch::abi::mmu::MmuUpdate;
use pv_arch::abi::xen::DOMID_SELF;
use pv_arch::hypercall::memory::{
    current_reservation, decrease_reservation, increase_reservation, maximum_reservation,
    populate_physmap,
};
use pv_arch::hypercall::mmu::mmu_update;
use pv_arch::hypercall::va_mapping::update_va_mapping;
use spin::Mutex;

/// Frames currently given back to Xen.
static BALLOONED: AtomicU64 = AtomicU64::new(0);

/// PVH: the frames that are out (created with the first one to go).
static PVH_OUT: Mutex<Option<PfnSet>> = Mutex::new(None);

/// Frames per PVH `decrease_reservation` / `populate_physmap` call.
pub const BATCH: usize = 256;

/// PVH: whether guest frame `pfn` is ballooned out.
pub(super) fn pvh_is_out(pfn: u64) -> bool {
    PVH_OUT.lock().as_ref().is_some_and(|set| set.contains(pfn))
}

/// Frames currently ballooned out.
pub fn ballooned_out() -> u64 {
    BALLOONED.load(Ordering::Relaxed)
}

/// The domain's size as Xen sees it, in pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// `XENMEM_current_reservation`.
    pub current: u64,
    /// `XENMEM_maximum_reservation`.
    pub maximum: u64,
}

/// Asks Xen for our current and maximum reservation.
pub fn reservation() -> Result<Reservation, MmError> {
    Ok(Reservation {
        current: current_reservation(DOMID_SELF)
            .map_err(|e| MmError::hypercall("current_reservation", e))?,
        maximum: maximum_reservation(DOMID_SELF)
            .map_err(|e| MmError::hypercall("maximum_reservation", e))?,
    })
}

/// A frame of ours whose memory is with Xen.
#[derive(Debug)]
pub struct BalloonedPage {
    pfn: u64,
}

impl BalloonedPage {
    /// The pseudo-physical frame left without memory.
    pub fn pfn(&self) -> u64 {
        self.pfn
    }

    /// Gets memory back for the frame: a zeroed page at the same pfn
    /// (normally a different mfn).
    pub fn reclaim(self) -> Result<Page, (BalloonedPage, MmError)> {
        let core = match core() {
            Ok(core) => core,
            Err(why) => return Err((self, why)),
        };
        let result = if core.p2m().is_identity() {
            pvh_take_back(&[self.pfn]).and_then(|done| match done {
                1 => {
                    // SAFETY: the frame is ours alone (this handle) and
                    // identity mapped; Xen just put a page behind it.
                    unsafe {
                        core::ptr::write_bytes(
                            (self.pfn * PAGE_SIZE) as *mut u8,
                            0,
                            PAGE_SIZE as usize,
                        )
                    };
                    Ok(self.pfn)
                }
                _ => Err(MmError::Incomplete {
                    op: "populate_physmap",
                    done: 0,
                }),
            })
        } else {
            take_back(core, self.pfn)
        };
        match result {
            // SAFETY: the pfn stayed allocated while ballooned, is ours
            // alone (this handle), and is mapped read-write again: by
            // `take_back` in PV, by the identity map in PVH.
            Ok(mfn) => Ok(unsafe { Page::from_parts(self.pfn, mfn) }),
            Err(why) => Err((self, why)),
        }
    }
}

impl Page {
    /// Gives this page's memory back to Xen. Its contents are lost.
    pub fn balloon_out(self) -> Result<BalloonedPage, (Page, MmError)> {
        let core = match core() {
            Ok(core) => core,
            Err(why) => return Err((self, why)),
        };
        let pfn = self.pfn().raw();
        let result = if core.p2m().is_identity() {
            // SAFETY: `self` is consumed: nothing refers to the frame.
            match unsafe { pvh_give_back(&[pfn]) } {
                Ok(1) => Ok(()),
                Ok(done) => Err(MmError::Incomplete {
                    op: "decrease_reservation",
                    done,
                }),
                Err(why) => Err(why),
            }
        } else {
            give_back(core, pfn)
        };
        match result {
            Ok(()) => Ok(BalloonedPage {
                pfn: self.into_pfn(),
            }),
            Err(why) => Err((self, why)),
        }
    }
}

/// Balloons out up to `count` free frames. Returns how many went; an
/// error only if not even one could (no free frame, or Xen refused).
pub fn release(count: u64) -> Result<u64, MmError> {
    let core = core()?;
    if core.p2m().is_identity() {
        return pvh_release(count);
    }
    let mut done = 0;
    while done < count {
        let result = Page::new().and_then(|page| page.balloon_out().map_err(|(_, why)| why));
        match result {
            // Dropping the handle leaves the pfn allocated and ballooned
            // out; `reclaim` finds it again through the p2m.
            Ok(_ballooned) => done += 1,
            Err(why) if done == 0 => return Err(why),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// Brings back up to `count` ballooned-out frames into the free pool.
/// Returns how many came back; an error only if none could (Xen
/// refused; with nothing out it returns 0).
pub fn reclaim(count: u64) -> Result<u64, MmError> {
    let core = core()?;
    if core.p2m().is_identity() {
        return pvh_reclaim(count);
    }
    let mut done = 0;
    let mut from = 0;
    while done < count {
        let Some(pfn) = core.p2m().ballooned_from(from).next() else {
            break;
        };
        from = pfn + 1;
        match take_back(core, pfn) {
            Ok(_) => {
                free_frame(pfn, 1);
                done += 1;
            }
            Err(why) if done == 0 => return Err(why),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// PVH [`release`]: takes free frames in batches, gives each batch to
/// Xen in one call; frames Xen did not take go back to the allocator.
fn pvh_release(count: u64) -> Result<u64, MmError> {
    let mut done = 0;
    let mut batch = [0u64; BATCH];
    while done < count {
        let want = ((count - done) as usize).min(BATCH);
        let taken = with_frames(|frames| {
            let mut taken = 0;
            while taken < want {
                match frames.alloc() {
                    Some(pfn) => {
                        batch[taken] = pfn;
                        taken += 1;
                    }
                    None => break,
                }
            }
            taken
        })?;
        if taken == 0 {
            return if done == 0 {
                Err(MmError::OutOfFrames)
            } else {
                Ok(done)
            };
        }
        // SAFETY: the frames were free a moment ago and are now allocated
        // to the balloon alone: nothing refers to them.
        let result = unsafe { pvh_give_back(&batch[..taken]) };
        let gone = *result.as_ref().unwrap_or(&0) as usize;
        for &pfn in &batch[gone..taken] {
            free_frame(pfn, 1);
        }
        if !settle(result, taken, &mut done)? {
            break;
        }
    }
    Ok(done)
}

/// Counts a batch of `tried` frames that `result` says moved into
/// `done`. Whether to go on (all moved); the error only if nothing has
/// moved at all, as [`release`] and [`reclaim`] promise.
fn settle(result: Result<u64, MmError>, tried: usize, done: &mut u64) -> Result<bool, MmError> {
    let moved = *result.as_ref().unwrap_or(&0);
    *done += moved;
    match result {
        Err(why) if *done == 0 => Err(why),
        Ok(moved) => Ok(moved == tried as u64),
        Err(_) => Ok(false),
    }
}

/// PVH [`reclaim`]: repopulates the lowest ballooned-out frames in
/// batches and frees them.
fn pvh_reclaim(count: u64) -> Result<u64, MmError> {
    let mut done = 0;
    let mut batch = [0u64; BATCH];
    let mut from = 0;
    while done < count {
        let want = ((count - done) as usize).min(BATCH);
        let mut found = 0;
        {
            let out = PVH_OUT.lock();
            let Some(set) = out.as_ref() else { break };
            while found < want {
                let Some(pfn) = set.next_from(from) else {
                    break;
                };
                batch[found] = pfn;
                found += 1;
                from = pfn + 1;
            }
        }
        if found == 0 {
            break;
        }
        let result = pvh_take_back(&batch[..found]);
        let back = *result.as_ref().unwrap_or(&0) as usize;
        for &pfn in &batch[..back] {
            free_frame(pfn, 1);
        }
        if !settle(result, found, &mut done)? {
            break;
        }
    }
    Ok(done)
}

/// PVH: gives guest frames `pfns` to Xen; returns how many it took (the
/// first ones: Xen stops at the first it cannot take), which are then
/// recorded as out.
///
/// # Safety
///
/// The frames must be allocated to the caller and referred to by
/// nothing: once given back, touching them would fault the domain.
unsafe fn pvh_give_back(pfns: &[u64]) -> Result<u64, MmError> {
    let mut out = PVH_OUT.lock();
    if out.is_none() {
        let frames = core()?.p2m().len();
        *out = Some(PfnSet::with_frames(frames).ok_or(MmError::OutOfFrames)?);
    }
    let Some(set) = out.as_mut() else {
        return Err(MmError::NotInitialized);
    };
    if let Some(&pfn) = pfns
        .iter()
        .find(|&&pfn| pfn >= set.frames() || set.contains(pfn))
    {
        return Err(MmError::BadPfn(pfn));
    }
    // SAFETY: the caller's promise: nothing refers to the frames. In a
    // translated guest the extents are guest frame numbers.
    let done = unsafe { decrease_reservation(pfns, 0, DOMID_SELF) }
        .map_err(|e| MmError::hypercall("decrease_reservation", e))?
        .min(pfns.len());
    for &pfn in &pfns[..done] {
        set.insert(pfn);
    }
    BALLOONED.fetch_add(done as u64, Ordering::Relaxed);
    Ok(done as u64)
}

/// PVH: puts fresh pages back at ballooned-out guest frames `pfns`;
/// returns how many Xen populated (the first ones), which are then no
/// longer out. Their frames stay allocated, for the caller to free or
/// keep.
fn pvh_take_back(pfns: &[u64]) -> Result<u64, MmError> {
    let mut out = PVH_OUT.lock();
    let Some(set) = out.as_mut() else {
        return Err(MmError::BadPfn(pfns.first().copied().unwrap_or(0)));
    };
    if let Some(&pfn) = pfns.iter().find(|&&pfn| !set.contains(pfn)) {
        return Err(MmError::BadPfn(pfn));
    }
    let mut extents = [0u64; BATCH];
    let extents = &mut extents[..pfns.len().min(BATCH)];
    extents.copy_from_slice(&pfns[..extents.len()]);
    // SAFETY: every frame named is out (checked against the set): a hole
    // in our memory that nothing refers to, allocated to the balloon.
    let done = unsafe { populate_physmap(extents, 0, 0, DOMID_SELF) }
        .map_err(|e| MmError::hypercall("populate_physmap", e))?
        .min(extents.len());
    for &pfn in &pfns[..done] {
        set.remove(pfn);
    }
    BALLOONED.fetch_sub(done as u64, Ordering::Relaxed);
    Ok(done as u64)
}

fn give_back(core: &Core, pfn: u64) -> Result<(), MmError> {
    let mfn = core.p2m().mfn(pfn).ok_or(MmError::BadPfn(pfn))?;
    let va = (pfn * PAGE_SIZE) as usize;
    // SAFETY: the caller owns the frame (a `Page` being consumed), so no
    // reference into it survives.
    unsafe { update_va_mapping(va, 0, 0) }
        .map_err(|e| MmError::hypercall("update_va_mapping", e))?;
    core.p2m().set(pfn, super::p2m::INVALID_MFN);
    // SAFETY: the frame is unmapped and no longer in our p2m.
    let result = unsafe { decrease_reservation(&[mfn], 0, DOMID_SELF) };
    match result {
        Ok(1) => {
            BALLOONED.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        other => {
            core.p2m().set(pfn, mfn);
            // SAFETY: remapping our own frame where it was.
            let _ = unsafe { update_va_mapping(va, mfn, LEAF_WRITABLE) };
            Err(match other {
                Err(errno) => MmError::hypercall("decrease_reservation", errno),
                Ok(done) => MmError::Incomplete {
                    op: "decrease_reservation",
                    done: done as u64,
                },
            })
        }
    }
}

/// Gets a machine frame for ballooned-out `pfn`, enters it in the M2P
/// and p2m and maps it zeroed. Returns the new mfn.
fn take_back(core: &Core, pfn: u64) -> Result<u64, MmError> {
    if pfn >= core.p2m().len() || core.p2m().mfn(pfn).is_some() {
        return Err(MmError::BadPfn(pfn));
    }
    let mut extent = [0u64];
    match increase_reservation(&mut extent, 0, 0, DOMID_SELF) {
        Ok(1) => {}
        Ok(done) => {
            return Err(MmError::Incomplete {
                op: "increase_reservation",
                done: done as u64,
            })
        }
        Err(errno) => return Err(MmError::hypercall("increase_reservation", errno)),
    }
    let mfn = extent[0];
    let va = (pfn * PAGE_SIZE) as usize;
    // SAFETY: an M2P update for a frame Xen just gave us changes no
    // mapping.
    let mut result = unsafe { mmu_update(&[MmuUpdate::machphys(mfn, pfn)], DOMID_SELF) }
        .map(drop)
        .map_err(|e| MmError::hypercall("mmu_update(machphys)", e.errno));
    if result.is_ok() {
        // SAFETY: the pfn's page is unmapped and owned by the caller.
        result = unsafe { update_va_mapping(va, mfn, LEAF_WRITABLE) }
            .map_err(|e| MmError::hypercall("update_va_mapping", e));
    }
    if let Err(why) = result {
        // SAFETY: the new frame is not mapped or referenced.
        let _ = unsafe { decrease_reservation(&[mfn], 0, DOMID_SELF) };
        return Err(why);
    }
    core.p2m().set(pfn, mfn);
    BALLOONED.fetch_sub(1, Ordering::Relaxed);
    // SAFETY: just mapped read-write at `va`; owned by the caller.
    unsafe { core::ptr::write_bytes(va as *mut u8, 0, PAGE_SIZE as usize) };
    Ok(mfn)
}
