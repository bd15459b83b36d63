//! The balloon: giving frames back to Xen and getting them back.
//!
//! Going out, a frame is unmapped from the direct map, its p2m entry is
//! made invalid, and its machine frame is handed to Xen with
//! `XENMEM_decrease_reservation`; the pseudo-physical frame stays
//! allocated (a hole in our memory) until it comes back. Coming back,
//! `XENMEM_increase_reservation` gives a new machine frame, which we
//! enter in the M2P (`MMU_MACHPHYS_UPDATE`) and the p2m and map at the
//! old address. Either direction undoes its own steps if Xen refuses one.

use super::error::MmError;
use super::page::Page;
use super::pagetable::LEAF_WRITABLE;
use super::{core, free_frame, Core};
use crate::boot_info::PAGE_SIZE;
use core::sync::atomic::{AtomicU64, Ordering};
use pv_arch::abi::mmu::MmuUpdate;
use pv_arch::abi::xen::DOMID_SELF;
use pv_arch::hypercall::memory::{
    current_reservation, decrease_reservation, increase_reservation, maximum_reservation,
};
use pv_arch::hypercall::mmu::mmu_update;
use pv_arch::hypercall::va_mapping::update_va_mapping;

/// Frames currently given back to Xen.
static BALLOONED: AtomicU64 = AtomicU64::new(0);

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
        match take_back(core, self.pfn) {
            // SAFETY: the pfn stayed allocated while ballooned, is ours
            // alone (this handle), and `take_back` mapped it read-write.
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
        match give_back(core, self.pfn().raw()) {
            Ok(()) => Ok(BalloonedPage {
                pfn: self.into_pfn(),
            }),
            Err(why) => Err((self, why)),
        }
    }
}

/// Balloons out up to `count` free frames. Returns how many went; an
/// error only if not even one could.
pub fn release(count: u64) -> Result<u64, MmError> {
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
/// Returns how many came back; an error only if none could.
pub fn reclaim(count: u64) -> Result<u64, MmError> {
    let core = core()?;
    let mut done = 0;
    while done < count {
        let Some(pfn) = core.p2m().ballooned().next() else {
            break;
        };
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
