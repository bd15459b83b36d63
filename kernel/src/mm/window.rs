//! Mapping machine frames that are not in our p2m: the mapping window.
//!
//! Grant-table frames, another domain's pages, the shared info page:
//! these arrive as machine frame numbers and have no place in the direct
//! map. [`map_mfn`] maps one into a free slot of a fixed virtual window
//! (whose L1 tables `init` creates, so mapping is one
//! `update_va_mapping`) and returns a [`MappedFrame`] that unmaps it and
//! frees the slot when dropped. Access goes through bounds-checked
//! volatile accessors, since such a frame is typically shared with Xen or
//! another domain that writes it concurrently.

use super::error::MmError;
use super::frames::{words_for, FrameBitmap};
use super::pagetable::{LEAF_READ_ONLY, LEAF_WRITABLE};
use super::Mfn;
use crate::boot_info::PAGE_SIZE;
use pv_arch::hypercall::va_mapping::update_va_mapping;
use spin::Mutex;

/// First virtual address of the window (L4 slot 128, far from the
/// direct map and below the hypervisor's hole).
pub const WINDOW_BASE: u64 = 0x0000_4000_0000_0000;
/// Pages in the window (two L1 tables).
pub const WINDOW_SLOTS: u64 = 1024;

/// Slot bookkeeping: the bitmap allocator over slot numbers.
static SLOTS: Mutex<Option<FrameBitmap<'static>>> = Mutex::new(None);
/// Storage for [`SLOTS`].
/// Sized by the allocator's own rule, so a different allocator layout
/// cannot leave it too small.
static SLOT_WORDS: Mutex<[u64; words_for(WINDOW_SLOTS)]> = Mutex::new([0; words_for(WINDOW_SLOTS)]);

/// Makes every slot free (called once by `init` after creating the
/// window's tables).
pub(super) fn init_slots() -> Result<(), MmError> {
    let words = {
        let guard = SLOT_WORDS.lock();
        // The words live in a static for the rest of the run; the mutex
        // only hands them out once (here).
        let words: &'static mut [u64; words_for(WINDOW_SLOTS)] = spin::MutexGuard::leak(guard);
        words
    };
    let mut slots =
        FrameBitmap::new_all_used(words, WINDOW_SLOTS).ok_or(MmError::BadLayout("window"))?;
    slots.free_range(0, WINDOW_SLOTS)?;
    *SLOTS.lock() = Some(slots);
    Ok(())
}

/// Slots in use.
pub fn slots_in_use() -> u64 {
    SLOTS
        .lock()
        .as_ref()
        .map_or(0, |slots| WINDOW_SLOTS - slots.free_frames())
}

/// How a frame is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read-only.
    ReadOnly,
    /// Read-write.
    ReadWrite,
}

/// One page of the window, reserved but not mapped by us: for code that
/// maps something there itself (a grant mapping's host address, the
/// conformance suite's raw page-table writes). Dropping it clears the
/// page's entry and frees the slot.
///
/// A grant mapping must be undone with `GNTTABOP_unmap_grant_ref` before
/// the slot is dropped: Xen does not let a guest remove a granted PTE
/// with `update_va_mapping` (it counts as an implicit unmap).
#[derive(Debug)]
pub struct WindowSlot {
    slot: u64,
    /// Whether the entry may be set (cleared on drop).
    maybe_mapped: bool,
}

/// Reserves a free window page.
pub fn reserve_slot() -> Result<WindowSlot, MmError> {
    let slot = SLOTS
        .lock()
        .as_mut()
        .ok_or(MmError::NotInitialized)?
        .alloc()
        .ok_or(MmError::OutOfWindowSlots)?;
    Ok(WindowSlot {
        slot,
        maybe_mapped: true,
    })
}

impl WindowSlot {
    /// The page's virtual address.
    pub fn address(&self) -> usize {
        (WINDOW_BASE + self.slot * PAGE_SIZE) as usize
    }

    /// Clears the page's entry now, reporting a failure.
    pub fn clear(&mut self) -> Result<(), MmError> {
        // SAFETY: the slot is ours alone, and a cleared window page is
        // referenced by nothing (handles hand out copies, not references).
        unsafe { update_va_mapping(self.address(), 0, 0) }
            .map_err(|e| MmError::hypercall("update_va_mapping", e))?;
        self.maybe_mapped = false;
        Ok(())
    }
}

impl Drop for WindowSlot {
    fn drop(&mut self) {
        if self.maybe_mapped && self.clear().is_err() {
            // Still mapped: never hand the slot out again.
            return;
        }
        if let Some(slots) = SLOTS.lock().as_mut() {
            let _ = slots.free(self.slot);
        }
    }
}

/// A machine frame mapped in the window; unmapped when dropped.
#[derive(Debug)]
pub struct MappedFrame {
    slot: WindowSlot,
    mfn: u64,
    access: Access,
}

/// Maps machine frame `mfn` into a free window slot. Xen refuses (and
/// so do we, with its errno) a frame we may not map this way.
///
/// # Safety
///
/// The mapping aliases the frame: it must not be memory Rust owns some
/// other way (one of our `Page`s, the heap, a stack), or the accessors
/// would write behind the owner's back. Frames Xen or another domain
/// shares with us (the shared info page, a foreign frame we were given)
/// are what this is for.
pub unsafe fn map_mfn(mfn: Mfn, access: Access) -> Result<MappedFrame, MmError> {
    let mfn = mfn.raw();
    let mut slot = reserve_slot()?;
    let flags = match access {
        Access::ReadOnly => LEAF_READ_ONLY,
        Access::ReadWrite => LEAF_WRITABLE,
    };
    // SAFETY: the slot was free, so nothing references its page.
    if let Err(errno) = unsafe { update_va_mapping(slot.address(), mfn, flags) } {
        slot.maybe_mapped = false;
        return Err(MmError::hypercall("update_va_mapping", errno));
    }
    Ok(MappedFrame { slot, mfn, access })
}

impl MappedFrame {
    /// The machine frame.
    pub fn mfn(&self) -> Mfn {
        Mfn::new(self.mfn)
    }

    /// The virtual address it is mapped at.
    pub fn address(&self) -> usize {
        self.slot.address()
    }

    /// Read-only or read-write.
    pub fn access(&self) -> Access {
        self.access
    }

    /// A raw pointer to the frame, for kernel code that needs one (the
    /// grant table, rings); dereferencing it is `unsafe`, and valid only
    /// while `self` lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.address() as *mut u8
    }

    fn base(&self) -> *mut u8 {
        self.as_ptr()
    }

    fn writable(&self) -> bool {
        self.access == Access::ReadWrite
    }

    /// Unmaps the frame now, reporting a failure (dropping unmaps too,
    /// silently; a slot that cannot be unmapped is never reused).
    pub fn unmap(mut self) -> Result<(), MmError> {
        self.slot.clear()
    }
}

super::access::volatile_accessors!(MappedFrame);
