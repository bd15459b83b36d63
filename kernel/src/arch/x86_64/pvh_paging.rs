//! PVH's own page tables, written through the `x86_64` crate.
//!
//! A PVH guest's page tables are ordinary x86 tables in its own memory:
//! no `mmu_update`, no pinning, no read-only rule. Xen translates guest
//! physical addresses with the second-stage (NPT/EPT) tables behind our
//! back, so what we build is a plain identity map: virtual address =
//! guest physical address, which keeps the PV layout (frame `pfn` lives
//! at `pfn * 4096`) and lets the same `mm` code serve both modes.
//!
//! [`init`] maps the first 4 GiB, where all of a small guest's RAM, its
//! image and Xen's special pages (console, xenstore, …, just below
//! 4 GiB) are: 2 MiB pages, except the first 2 MiB and the 2 MiB that
//! hold the boot stack's guard page, which use 4 KiB pages so that page
//! 0 and the guard page stay unmapped: a null pointer and a stack
//! overflow fault.
//!
//! RAM above 4 GiB (a guest with more memory than fits below the MMIO
//! hole) is mapped later by [`map_above_4gib`], once `mm` has a frame
//! allocator to take page directories from: one more 2 MiB-paged
//! directory per GiB, up to [`RAM_LIMIT`] (what the one PDPT covers).

use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{PageTable, PageTableFlags, PhysFrame};
use x86_64::PhysAddr;

/// Gigabytes identity-mapped by [`init`].
pub const MAPPED_GIB: usize = 4;

/// The limit [`init`] maps: boot data and Xen's special pages lie below
/// it (RAM above it is mapped later, see [`map_above_4gib`]).
pub const MAPPED_LIMIT: u64 = (MAPPED_GIB as u64) << 30;

/// The most RAM the identity map can cover: the 512 GiB of our one
/// PDPT. RAM the memory map names above it is reported and not used.
pub const RAM_LIMIT: u64 = 512 << 30;

/// Bytes one page directory (one PDPT entry) covers.
const GIB: u64 = 1 << 30;

/// The tables: one of each upper level, one PD per GiB, one PT for the
/// first 2 MiB and one for the guard page's 2 MiB (unused when that is
/// the first). Reached only through `&raw mut` while building.
struct Tables {
    pml4: PageTable,
    pdpt: PageTable,
    pd: [PageTable; MAPPED_GIB],
    pt0: PageTable,
    pt_guard: PageTable,
}

static mut TABLES: Tables = Tables {
    pml4: PageTable::new(),
    pdpt: PageTable::new(),
    pd: [const { PageTable::new() }; MAPPED_GIB],
    pt0: PageTable::new(),
    pt_guard: PageTable::new(),
};

/// Bytes a 2 MiB page covers.
const LARGE_PAGE: u64 = 1 << 21;

/// Fills `pt` with 4 KiB pages for the 2 MiB at `region_start`, leaving
/// out the pages in `holes`.
fn fill_small_pages(pt: &mut PageTable, region_start: u64, holes: &[u64], flags: PageTableFlags) {
    for (index, entry) in pt.iter_mut().enumerate() {
        let address = region_start + index as u64 * 4096;
        if holes.contains(&address) {
            entry.set_unused();
        } else {
            entry.set_addr(PhysAddr::new(address), flags);
        }
    }
}

/// Physical address of a table of ours (identity mapped).
fn phys(table: *const PageTable) -> PhysAddr {
    PhysAddr::new(table as u64)
}

/// Builds the identity map and switches to it. Called once, first thing
/// in `pvh_main`, on the bootstrap map of `pvh_start`.
pub fn init() {
    let table = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    let large = table | PageTableFlags::HUGE_PAGE;
    let guard = super::pv_entry::boot_stack_guard().start;
    let guard_region = guard & !(LARGE_PAGE - 1);
    // SAFETY: runs once, single-threaded, before anything else uses the
    // tables; `TABLES` is only reached through this one reference. The new
    // map keeps every address the bootstrap map had (the first GiB)
    // mapped to the same place, except page 0, which nothing uses, and
    // the boot stack's guard page, which the stack never reaches unless
    // it overflows (and then must fault).
    unsafe {
        let Some(t) = (&raw mut TABLES).as_mut() else {
            unreachable!("a static is never null")
        };
        fill_small_pages(&mut t.pt0, 0, &[0, guard], table);
        for gib in 0..MAPPED_GIB {
            for (index, entry) in t.pd[gib].iter_mut().enumerate() {
                let address = ((gib as u64) << 30) + ((index as u64) << 21);
                entry.set_addr(PhysAddr::new(address), large);
            }
            let pd = phys(&t.pd[gib]);
            t.pdpt[gib].set_addr(pd, table);
        }
        let pt0 = phys(&t.pt0);
        t.pd[0][0].set_addr(pt0, table);
        if guard_region != 0 {
            // The image is below 1 GiB (linked at 1 MiB), so PD 0.
            fill_small_pages(&mut t.pt_guard, guard_region, &[guard], table);
            let pt_guard = phys(&t.pt_guard);
            t.pd[0][(guard_region / LARGE_PAGE) as usize].set_addr(pt_guard, table);
        }
        let pdpt = phys(&t.pdpt);
        t.pml4[0].set_addr(pdpt, table);
        let root = PhysFrame::from_start_address(phys(&t.pml4))
            .unwrap_or_else(|_| unreachable!("PageTable is 4 KiB aligned"));
        Cr3::write(root, Cr3Flags::empty());
    }
}

/// Identity maps `MAPPED_LIMIT..end` (rounded up to whole GiB, at most
/// [`RAM_LIMIT`]) with 2 MiB pages, one page directory per GiB taken
/// from `take_frame` (which returns the physical address of a free,
/// 4 KiB-aligned frame below [`MAPPED_LIMIT`] that the caller hands
/// over for good). Returns the page directories added; stops with the
/// count so far if `take_frame` runs dry (`Err`).
pub fn map_above_4gib(end: u64, mut take_frame: impl FnMut() -> Option<u64>) -> Result<u64, u64> {
    let table = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    let large = table | PageTableFlags::HUGE_PAGE;
    let last_gib = end.min(RAM_LIMIT).div_ceil(GIB);
    let mut added = 0;
    for gib in MAPPED_GIB as u64..last_gib {
        let Some(frame) = take_frame().filter(|&f| f % 4096 == 0 && f + 4096 <= MAPPED_LIMIT)
        else {
            return Err(added);
        };
        // SAFETY: `frame` is a free frame handed over to us (the caller's
        // promise), identity mapped below `MAPPED_LIMIT`, 4 KiB aligned,
        // so it is a valid, unaliased `PageTable`. The PDPT entry for
        // this GiB is not present (init maps only the first
        // `MAPPED_GIB`, and each GiB is added once), so making it present
        // changes no mapping anything uses; x86 caches no non-present
        // entries, so no flush is needed. `TABLES` is only reached through
        // `&raw mut`, from this single-threaded boot step.
        unsafe {
            let Some(pd) = (frame as *mut PageTable).as_mut() else {
                return Err(added);
            };
            pd.zero();
            for (index, entry) in pd.iter_mut().enumerate() {
                let address = gib * GIB + ((index as u64) << 21);
                entry.set_addr(PhysAddr::new(address), large);
            }
            let pdpt = &raw mut TABLES.pdpt;
            (&mut *pdpt)[gib as usize].set_addr(PhysAddr::new(frame), table);
        }
        added += 1;
    }
    Ok(added)
}

/// Bytes of address space the identity map covers now.
pub fn mapped_bytes() -> u64 {
    // SAFETY: a read of the PDPT's entries, which only `init` and
    // `map_above_4gib` write, both during single-threaded boot.
    let present = unsafe {
        let pdpt = &raw const TABLES.pdpt;
        (&*pdpt).iter().filter(|e| !e.is_unused()).count() as u64
    };
    present * GIB
}

/// The root table's physical frame number.
pub fn root_frame() -> u64 {
    Cr3::read().0.start_address().as_u64() / 4096
}

/// CR2: the address of the last page fault (PV reads Xen's copy in
/// `vcpu_info` instead).
pub fn fault_address() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}
