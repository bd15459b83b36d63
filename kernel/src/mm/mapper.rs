//! Walking and growing our page tables, and building the direct map.
//!
//! Xen enters us with bootstrap tables mapping only the initial region.
//! [`map_direct`] extends them so frames we own are mapped at virtual
//! address `pfn * 4096`, as Mini-OS's `build_pagetable` does (though
//! `mm` maps only as far as the frame allocator has reached, not all of
//! memory at boot):
//! it walks down from the root, and where a table is missing takes a free
//! frame, zeroes it, remaps its own direct-map page read-only (Xen will
//! not accept a table that is writable anywhere), pins it at its level
//! and links it with `mmu_update`; the missing leaf entries of each 2 MiB
//! region then go to Xen in one batched `mmu_update`. Frames are taken
//! lowest first, so a new table always lies in the part of memory that
//! is mapped already; if not, we stop with an error rather than guess.
//!
//! Tables are read through the direct map (read-only), after finding
//! their pseudo-physical frame through the M2P checked against the p2m.

use super::error::MmError;
use super::frames::FrameBitmap;
use super::pagetable::{
    entry, entry_maddr, entry_mfn, flags, index, is_present, UpdateBatch, ENTRIES, LEAF_READ_ONLY,
    LEAF_WRITABLE, TABLE,
};
use super::Core;
use crate::boot_info::PAGE_SIZE;
use pv_arch::abi::mmu::MmuUpdate;
use pv_arch::abi::xen::DOMID_SELF;
use pv_arch::hypercall::mmu::{mmu_update, pin_table, TableLevel};
use pv_arch::hypercall::va_mapping::update_va_mapping;

/// Requests per `mmu_update` call while building.
const BATCH: usize = 256;

/// Where a virtual page's leaf entry lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PteLocation {
    /// Machine frame of the L1 table.
    pub table_mfn: u64,
    /// Index of the entry in it.
    pub index: usize,
    /// The entry's current value.
    pub entry: u64,
}

impl PteLocation {
    /// Machine address of the entry, for `mmu_update`.
    pub fn maddr(&self) -> u64 {
        entry_maddr(self.table_mfn, self.index)
    }
}

/// Sends one batch of page-table writes.
fn send(requests: &[MmuUpdate]) -> Result<(), MmError> {
    // SAFETY: the builder only fills entries that were not present
    // (nothing referenced those addresses) and links freshly zeroed,
    // pinned tables; no mapping Rust relies on changes.
    unsafe { mmu_update(requests, DOMID_SELF) }
        .map(drop)
        .map_err(|e| MmError::hypercall("mmu_update", e.errno))
}

impl Core {
    /// Pointer to the entries of the page table in machine frame `mfn`.
    fn table(&self, mfn: u64) -> Result<*const u64, MmError> {
        let pfn = self.mfn_to_pfn(mfn)?;
        Ok((pfn * PAGE_SIZE) as *const u64)
    }

    /// Reads entry `index` of the table in frame `mfn`.
    fn read_entry(&self, mfn: u64, index: usize) -> Result<u64, MmError> {
        let table = self.table(mfn)?;
        // SAFETY: every page table of ours is one of our frames, mapped
        // (read-only) in the direct map or the initial region at
        // `pfn * 4096`; `index` < 512 stays within it. Xen may set
        // accessed/dirty bits meanwhile, hence volatile.
        Ok(unsafe { table.add(index % ENTRIES).read_volatile() })
    }

    /// Finds the leaf entry for `va`; `None` if a table on the way is
    /// missing.
    pub fn lookup(&self, va: u64) -> Result<Option<PteLocation>, MmError> {
        let mut table_mfn = self.l4_mfn();
        for level in (2..=4).rev() {
            let e = self.read_entry(table_mfn, index(va, level))?;
            if !is_present(e) {
                return Ok(None);
            }
            if e & flags::HUGE != 0 {
                return Err(MmError::BadLayout("superpage in our page tables"));
            }
            table_mfn = entry_mfn(e);
        }
        let index = index(va, 1);
        Ok(Some(PteLocation {
            table_mfn,
            index,
            entry: self.read_entry(table_mfn, index)?,
        }))
    }

    /// Takes a free frame, zeroes it, maps it read-only and pins it as a
    /// table of `level`. Returns its mfn (not yet linked).
    fn new_table(&self, frames: &mut FrameBitmap<'_>, level: TableLevel) -> Result<u64, MmError> {
        let pfn = frames.alloc().ok_or(MmError::OutOfFrames)?;
        let result = self.make_table(pfn, level);
        if result.is_err() {
            // The frame is untouched or back to read-write: reusable.
            let _ = frames.free(pfn);
        }
        result
    }

    fn make_table(&self, pfn: u64, level: TableLevel) -> Result<u64, MmError> {
        let mfn = self.p2m().mfn(pfn).ok_or(MmError::BadPfn(pfn))?;
        let va = pfn * PAGE_SIZE;
        match self.lookup(va)? {
            Some(pte) if is_present(pte.entry) => {}
            _ => {
                return Err(MmError::BadLayout(
                    "page-table frame outside the mapped region",
                ))
            }
        }
        // SAFETY: the frame was free (no one references it) and is mapped
        // read-write at `va` (checked just above).
        unsafe { core::ptr::write_bytes(va as *mut u8, 0, PAGE_SIZE as usize) };
        // SAFETY: nothing references the free frame's page.
        unsafe { update_va_mapping(va as usize, mfn, LEAF_READ_ONLY) }
            .map_err(|e| MmError::hypercall("update_va_mapping", e))?;
        if let Err(errno) = pin_table(level, mfn) {
            // SAFETY: as above; the frame goes back to the allocator.
            let _ = unsafe { update_va_mapping(va as usize, mfn, LEAF_WRITABLE) };
            return Err(MmError::hypercall("mmuext_op(pin)", errno));
        }
        self.count_page_table();
        Ok(mfn)
    }

    /// The table that entry `index` of `parent` points at, created (as a
    /// table of `level`) if missing.
    fn ensure_table(
        &self,
        frames: &mut FrameBitmap<'_>,
        parent: u64,
        index: usize,
        level: TableLevel,
    ) -> Result<u64, MmError> {
        let e = self.read_entry(parent, index)?;
        if is_present(e) {
            if e & flags::HUGE != 0 {
                return Err(MmError::BadLayout("superpage in our page tables"));
            }
            return Ok(entry_mfn(e));
        }
        let child = self.new_table(frames, level)?;
        send(&[MmuUpdate::normal(
            entry_maddr(parent, index),
            entry(child, TABLE),
        )])?;
        Ok(child)
    }

    /// The L1 table covering `va`, creating missing tables on the way.
    pub fn ensure_l1(&self, frames: &mut FrameBitmap<'_>, va: u64) -> Result<u64, MmError> {
        let l3 = self.ensure_table(frames, self.l4_mfn(), index(va, 4), TableLevel::L3)?;
        let l2 = self.ensure_table(frames, l3, index(va, 3), TableLevel::L2)?;
        self.ensure_table(frames, l2, index(va, 2), TableLevel::L1)
    }
}

/// Maps the frames `from..to` at `pfn * 4096` (frame 0 stays as it is;
/// `init` unmaps it), leaving entries already present alone. The boot
/// maps the low end this way and `mm` the rest as the allocator reaches
/// it. New page tables come from `frames`, lowest first: from the part
/// already mapped. Returns the number of entries written.
pub(super) fn map_direct(
    core: &Core,
    frames: &mut FrameBitmap<'_>,
    from: u64,
    to: u64,
) -> Result<u64, MmError> {
    let to = to.min(core.p2m().len());
    let mut batch = UpdateBatch::<BATCH>::new();
    let mut region = from - from % ENTRIES as u64;
    while region < to {
        // New tables are validated against what is already mapped: send
        // what is pending first.
        batch.flush(send)?;
        let l1 = core.ensure_l1(frames, region * PAGE_SIZE)?;
        let table = core.table(l1)?;
        for pfn in region.max(from).max(1)..(region + ENTRIES as u64).min(to) {
            let slot = (pfn % ENTRIES as u64) as usize;
            // SAFETY: `table` is the L1 table's read-only direct mapping.
            let current = unsafe { table.add(slot).read_volatile() };
            if is_present(current) {
                continue;
            }
            let mfn = core.p2m().mfn(pfn).ok_or(MmError::BadPfn(pfn))?;
            batch.push(
                MmuUpdate::normal(entry_maddr(l1, slot), entry(mfn, LEAF_WRITABLE)),
                send,
            )?;
        }
        region += ENTRIES as u64;
    }
    batch.flush(send)?;
    Ok(batch.flushed)
}
