//! Memory: reservations, the M2P, `mmu_update`, `mmuext_op`,
//! `update_va_mapping` and the balloon, right and wrong arguments alike.
//!
//! Refusals are checked against the exact errno Xen 4.17 returns. Raw
//! page-table writes go to a reserved page of the mapping window, whose
//! L1 entry we locate with `mm::lookup_pte`, so a mistaken success can
//! only ever map something at an address nothing else uses.

use super::{expect_errno, Applies, Ctx, Outcome, Test};
use crate::boot_info::PAGE_SIZE;
use crate::mm::pagetable::{entry, entry_mfn, LEAF_READ_ONLY, LEAF_WRITABLE};
use crate::mm::{self, Access, Page, PteLocation, WindowSlot};
use crate::suite_fail;
use alloc::vec::Vec;
use pv_arch::abi::mmu::{MmuUpdate, MmuextOp};
use pv_arch::abi::xen::{DOMID_SELF, DOMID_XEN};
use pv_arch::hypercall::memory as memop;
use pv_arch::hypercall::mmu::{self, TableLevel};
use pv_arch::hypercall::va_mapping::update_va_mapping;
use pv_arch::Errno;

/// `MACH2PHYS_VIRT_START` / `_END` for 64-bit guests.
const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;

/// Pages written in one batch by the batching check.
const BATCH_PAGES: usize = 8;

/// Turns an `Err` into a failed outcome: `let x = check!(expr, "what");`.
macro_rules! check {
    ($result:expr, $what:expr) => {
        match $result {
            Ok(value) => value,
            Err(why) => return suite_fail!("{}: {}", $what, why),
        }
    };
}

/// A reserved window page and where its L1 entry is.
fn slot_with_pte() -> Result<(WindowSlot, PteLocation), mm::MmError> {
    let slot = mm::reserve_slot()?;
    let pte = mm::lookup_pte(slot.address() as u64)?.ok_or(mm::MmError::BadLayout("window"))?;
    Ok((slot, pte))
}

/// One raw `mmu_update` writing `value` into the slot's L1 entry.
fn write_slot_pte(pte: &PteLocation, value: u64) -> Result<u32, Errno> {
    // SAFETY: the entry maps a reserved window page that nothing
    // references; the slot clears it on drop.
    unsafe { mmu::mmu_update(&[MmuUpdate::normal(pte.maddr(), value)], DOMID_SELF) }
        .map_err(Errno::from)
}

/// A machine frame of RAM that is not ours: scans down from the middle
/// of RAM for a frame the M2P and p2m do not confirm as ours.
fn foreign_ram_mfn() -> Option<u64> {
    let max = memop::maximum_ram_page().ok()?;
    (1..64u64)
        .map(|step| max / 2 - step * 0x101)
        .find(|&mfn| mm::mfn_to_pfn(mfn).is_err())
}

/// The machine frame of the L1 table behind the window.
fn window_l1_mfn() -> Result<u64, mm::MmError> {
    let (_slot, pte) = slot_with_pte()?;
    Ok(pte.table_mfn)
}

fn current_reservation_is_nr_pages(ctx: &Ctx<'_>) -> Outcome {
    let current = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    let expected = ctx.boot.nr_pages - mm::stats().ballooned_out;
    if current == expected {
        Outcome::Pass
    } else {
        suite_fail!("current_reservation {current}, nr_pages less ballooned {expected}")
    }
}

fn maximum_reservation_at_least_current(_: &Ctx<'_>) -> Outcome {
    let current = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    let maximum = check!(
        memop::maximum_reservation(DOMID_SELF),
        "maximum_reservation"
    );
    if maximum >= current {
        Outcome::Pass
    } else {
        suite_fail!("maximum_reservation {maximum} < current {current}")
    }
}

fn reservation_of_missing_domain(_: &Ctx<'_>) -> Outcome {
    expect_errno(memop::current_reservation(0x7000), Errno::ESRCH)
}

fn maximum_ram_page_covers_our_frames(ctx: &Ctx<'_>) -> Outcome {
    let max = check!(memop::maximum_ram_page(), "maximum_ram_page");
    let highest = (0..ctx.boot.nr_pages)
        .filter_map(mm::pfn_to_mfn)
        .max()
        .unwrap_or(0);
    if max > 0 && highest < max {
        Outcome::Pass
    } else {
        suite_fail!("maximum_ram_page {max:#x}, our highest mfn {highest:#x}")
    }
}

fn machphys_mapping_layout(_: &Ctx<'_>) -> Outcome {
    let mapping = check!(memop::machphys_mapping(), "machphys_mapping");
    let max_ram = check!(memop::maximum_ram_page(), "maximum_ram_page");
    // `maximum_ram_page` is one past the highest frame; `max_mfn` the
    // last entry the table covers.
    if mapping.v_start == MACH2PHYS_VIRT_START
        && mapping.v_end <= MACH2PHYS_VIRT_END
        && mapping.max_mfn + 1 >= max_ram
    {
        Outcome::Pass
    } else {
        suite_fail!(
            "v_start {:#x} v_end {:#x} max_mfn {:#x} (maximum_ram_page {max_ram:#x})",
            mapping.v_start,
            mapping.v_end,
            mapping.max_mfn
        )
    }
}

fn m2p_inverts_p2m(ctx: &Ctx<'_>) -> Outcome {
    let mut checked = 0;
    for pfn in 0..ctx.boot.nr_pages {
        let Some(mfn) = mm::pfn_to_mfn(pfn) else {
            continue; // ballooned out
        };
        match mm::m2p_raw(mfn) {
            Some(back) if back == pfn => checked += 1,
            other => return suite_fail!("pfn {pfn:#x} -> mfn {mfn:#x} -> m2p {other:x?}"),
        }
    }
    if checked > 0 {
        Outcome::Pass
    } else {
        suite_fail!("no pfn checked")
    }
}

/// The first frame of Xen's M2P table (it holds the entries of mfns
/// 0..512).
fn first_m2p_frame() -> Result<u64, Errno> {
    let mut list = [0u64; 1];
    match memop::machphys_mfn_list(&mut list)? {
        0 => Err(Errno::ENOENT),
        _ => Ok(list[0]),
    }
}

fn m2p_frame_as_own_refused(_: &Ctx<'_>) -> Outcome {
    let frame = check!(first_m2p_frame(), "machphys_mfn_list");
    // Owned by Xen: mapping it as one of our frames is refused even
    // read-only (`update_va_mapping` always maps for DOMID_SELF).
    expect_errno(
        // SAFETY: the frame is one Xen must refuse (or Xen's own); it is
        // read only through the mapping's volatile accessors.
        unsafe { mm::map_mfn(mm::Mfn::new(frame), Access::ReadOnly) }
            .map_err(|e| e.errno().unwrap_or(Errno::EIO)),
        Errno::EBUSY,
    )
}

fn m2p_frame_via_domid_xen(_: &Ctx<'_>) -> Outcome {
    let frame = check!(first_m2p_frame(), "machphys_mfn_list");
    let (slot, pte) = check!(slot_with_pte(), "window slot");
    let map = |flags| {
        // SAFETY: the entry maps a reserved window page nothing references.
        unsafe {
            mmu::mmu_update(
                &[MmuUpdate::normal(pte.maddr(), entry(frame, flags))],
                DOMID_XEN,
            )
        }
        .map_err(Errno::from)
    };
    if let Outcome::Fail(why) = expect_errno(map(LEAF_WRITABLE), Errno::EBUSY) {
        return suite_fail!("writable: {why}");
    }
    check!(map(LEAF_READ_ONLY), "read-only mapping as DOMID_XEN");
    for mfn in [0u64, 1, 511] {
        // SAFETY: the slot maps the M2P frame read-only; entries are u64.
        let mapped = unsafe {
            (slot.address() as *const u64)
                .add(mfn as usize)
                .read_volatile()
        };
        if Some(mapped) != mm::m2p_raw(mfn) {
            return suite_fail!("M2P frame says {mapped:#x} for mfn {mfn:#x}");
        }
    }
    Outcome::Pass
}

fn mmu_update_batch_reports_count(_: &Ctx<'_>) -> Outcome {
    let mut pages = Vec::new();
    let mut slots = Vec::new();
    let mut requests = Vec::new();
    for i in 0..BATCH_PAGES {
        let mut page = check!(Page::new(), "Page::new");
        page.as_mut_slice().fill(0x30 + i as u8);
        let (slot, pte) = check!(slot_with_pte(), "window slot");
        requests.push(MmuUpdate::normal(
            pte.maddr(),
            entry(page.mfn().raw(), LEAF_READ_ONLY),
        ));
        pages.push(page);
        slots.push(slot);
    }
    // SAFETY: the entries map reserved window pages nothing references;
    // the slots clear them on drop.
    let done = check!(
        unsafe { mmu::mmu_update(&requests, DOMID_SELF) },
        "mmu_update batch"
    );
    if done as usize != BATCH_PAGES {
        return suite_fail!("success count {done}, expected {BATCH_PAGES}");
    }
    for (i, slot) in slots.iter().enumerate() {
        // SAFETY: the slot maps page `i` read-only (just written above),
        // which stays alive and unchanged while we read it.
        let byte = unsafe { (slot.address() as *const u8).add(4095).read_volatile() };
        if byte != 0x30 + i as u8 {
            return suite_fail!("slot {i} reads {byte:#x}");
        }
    }
    Outcome::Pass
}

fn mmu_update_batch_stops_at_refusal(_: &Ctx<'_>) -> Outcome {
    let page = check!(Page::new(), "Page::new");
    let (_a, first) = check!(slot_with_pte(), "window slot");
    let (_b, second) = check!(slot_with_pte(), "window slot");
    let (_c, third) = check!(slot_with_pte(), "window slot");
    let l1 = first.table_mfn;
    let requests = [
        MmuUpdate::normal(first.maddr(), entry(page.mfn().raw(), LEAF_READ_ONLY)),
        // A writable mapping of a page table: refused.
        MmuUpdate::normal(second.maddr(), entry(l1, LEAF_WRITABLE)),
        MmuUpdate::normal(third.maddr(), entry(page.mfn().raw(), LEAF_READ_ONLY)),
    ];
    // SAFETY: the entries map reserved window pages nothing references.
    match unsafe { mmu::mmu_update(&requests, DOMID_SELF) } {
        Err(e) if e.done == 1 && e.errno == Errno::EBUSY => Outcome::Pass,
        other => suite_fail!("expected EBUSY after 1, got {other:?}"),
    }
}

fn mmu_update_foreign_frame_refused(_: &Ctx<'_>) -> Outcome {
    let Some(mfn) = foreign_ram_mfn() else {
        return Outcome::Skip("no foreign RAM frame found".into());
    };
    let (_slot, pte) = check!(slot_with_pte(), "window slot");
    expect_errno(
        write_slot_pte(&pte, entry(mfn, LEAF_READ_ONLY)),
        Errno::EBUSY,
    )
}

fn mmu_update_local_apic_refused(_: &Ctx<'_>) -> Outcome {
    let (_slot, pte) = check!(slot_with_pte(), "window slot");
    // 0xfee00000: the local APIC, which Xen keeps even from dom0.
    expect_errno(
        write_slot_pte(&pte, entry(0xfee00, LEAF_READ_ONLY)),
        Errno::EPERM,
    )
}

fn mmu_update_mmio_far_away_refused(_: &Ctx<'_>) -> Outcome {
    let max = check!(memop::maximum_ram_page(), "maximum_ram_page");
    let (_slot, pte) = check!(slot_with_pte(), "window slot");
    // 64 GiB beyond the end of RAM: no one's frame, and I/O memory a
    // domU has no permission for (dom0 may map it).
    expect_errno(
        write_slot_pte(&pte, entry(max + (16 << 20), LEAF_READ_ONLY)),
        Errno::EPERM,
    )
}

fn mmu_update_writable_table_refused(_: &Ctx<'_>) -> Outcome {
    let (_slot, pte) = check!(slot_with_pte(), "window slot");
    expect_errno(
        write_slot_pte(&pte, entry(pte.table_mfn, LEAF_WRITABLE)),
        Errno::EBUSY,
    )
}

fn mmu_update_read_only_table_allowed(_: &Ctx<'_>) -> Outcome {
    let (slot, pte) = check!(slot_with_pte(), "window slot");
    check!(
        write_slot_pte(&pte, entry(pte.table_mfn, LEAF_READ_ONLY)),
        "read-only mapping of our L1"
    );
    // The table maps itself at the slot's index now.
    // SAFETY: the slot maps the L1 table read-only; entries are u64.
    let own = unsafe {
        (slot.address() as *const u64)
            .add(pte.index)
            .read_volatile()
    };
    if entry_mfn(own) == pte.table_mfn {
        Outcome::Pass
    } else {
        suite_fail!("entry {:#x} reads {own:#x}", pte.index)
    }
}

fn mmu_update_on_data_frame_writes_it(_: &Ctx<'_>) -> Outcome {
    let page = check!(Page::new(), "Page::new");
    let value = entry(0x1234, LEAF_READ_ONLY);
    // Xen treats an "entry" in a frame that is not a page table as a
    // plain checked memory write (the frame is ours and writable).
    // SAFETY: it writes into `page`'s frame, which we own; we read it
    // back only through volatile accessors.
    let done = check!(
        unsafe {
            mmu::mmu_update(
                &[MmuUpdate::normal((page.mfn().raw() << 12) + 8, value)],
                DOMID_SELF,
            )
        },
        "mmu_update"
    );
    match page.read_u64(8) {
        Ok(read) if done == 1 && read == value => Outcome::Pass,
        other => suite_fail!("done {done}, frame holds {other:x?}"),
    }
}

fn machphys_update_foreign_frame_refused(_: &Ctx<'_>) -> Outcome {
    let Some(mfn) = foreign_ram_mfn() else {
        return Outcome::Skip("no foreign RAM frame found".into());
    };
    // SAFETY: an M2P update changes no mapping (and must be refused).
    let result = unsafe { mmu::mmu_update(&[MmuUpdate::machphys(mfn, 1)], DOMID_SELF) };
    expect_errno(result.map_err(Errno::from), Errno::EINVAL)
}

fn pin_writable_frame_refused(_: &Ctx<'_>) -> Outcome {
    let page = check!(Page::new(), "Page::new");
    expect_errno(
        mmu::pin_table(TableLevel::L1, page.mfn().raw()),
        Errno::EINVAL,
    )
}

fn pin_pinned_table_refused(_: &Ctx<'_>) -> Outcome {
    let l1 = check!(window_l1_mfn(), "window L1");
    expect_errno(mmu::pin_table(TableLevel::L1, l1), Errno::EINVAL)
}

fn pin_at_wrong_level_refused(_: &Ctx<'_>) -> Outcome {
    let l1 = check!(window_l1_mfn(), "window L1");
    expect_errno(mmu::pin_table(TableLevel::L2, l1), Errno::EINVAL)
}

fn unpin_unpinned_refused(_: &Ctx<'_>) -> Outcome {
    let page = check!(Page::new(), "Page::new");
    expect_errno(mmu::unpin_table(page.mfn().raw()), Errno::EINVAL)
}

fn unpin_foreign_refused(_: &Ctx<'_>) -> Outcome {
    let Some(mfn) = foreign_ram_mfn() else {
        return Outcome::Skip("no foreign RAM frame found".into());
    };
    expect_errno(mmu::unpin_table(mfn), Errno::EINVAL)
}

fn new_baseptr_unvalidated_refused(_: &Ctx<'_>) -> Outcome {
    let page = check!(Page::new(), "Page::new");
    // SAFETY: a zeroed, writable frame cannot become an L4; if Xen took
    // it we would crash at once, which the suite would also report.
    expect_errno(unsafe { mmu::new_baseptr(page.mfn().raw()) }, Errno::EINVAL)
}

fn new_baseptr_current_root(_: &Ctx<'_>) -> Outcome {
    let Some(root) = mm::root_table_mfn() else {
        return suite_fail!("mm not initialised");
    };
    // SAFETY: switching to the root we run on maps everything as now.
    expect_ok(unsafe { mmu::new_baseptr(root) })
}

fn tlb_flushes(_: &Ctx<'_>) -> Outcome {
    let va = mm::boot_layout().map_or(0x100, |l| l.image_start_pfn) * PAGE_SIZE;
    for (what, result) in [
        ("tlb_flush_local", mmu::tlb_flush_local()),
        ("tlb_flush_all", mmu::tlb_flush_all()),
        ("invlpg_local", mmu::invlpg_local(va)),
        ("invlpg_all", mmu::invlpg_all(va)),
    ] {
        if let Err(errno) = result {
            return suite_fail!("{what}: {errno}");
        }
    }
    Outcome::Pass
}

fn mmuext_unknown_command(_: &Ctx<'_>) -> Outcome {
    // SAFETY: an undefined command does nothing (and must be refused).
    let result = unsafe { mmu::mmuext_op(&[MmuextOp::bare(0xff)], DOMID_SELF) };
    expect_errno(result.map_err(Errno::from), Errno::ENOSYS)
}

fn clear_page_of_table_refused(_: &Ctx<'_>) -> Outcome {
    let l1 = check!(window_l1_mfn(), "window L1");
    // SAFETY: refused for a page table; were it not, it would zero the
    // window's L1, whose slots the suite does not hold at this point.
    expect_errno(unsafe { mmu::clear_page(l1) }, Errno::EINVAL)
}

fn update_va_mapping_reserved_bits(_: &Ctx<'_>) -> Outcome {
    let page = check!(Page::new(), "Page::new");
    let slot = check!(mm::reserve_slot(), "window slot");
    // Bit 51: reserved on any CPU with fewer than 52 physical address
    // bits. Xen takes it as part of the frame number, finds no RAM there
    // and refuses the I/O mapping. (The software bits 9-11 and 52-62 and
    // the cache bits are accepted from dom0.)
    // SAFETY: the slot is reserved and unreferenced.
    let result =
        unsafe { update_va_mapping(slot.address(), page.mfn().raw(), LEAF_READ_ONLY | 1 << 51) };
    expect_errno(result, Errno::EPERM)
}

/// The cache-attribute bits of an L1 entry: PWT, PCD, PAT.
const CACHE_BITS: [u32; 3] = [3, 4, 7];

/// Maps one of our pages with each cache-attribute bit in turn.
fn map_with_cache_bits() -> Result<[Result<(), Errno>; 3], mm::MmError> {
    let page = Page::new()?;
    let mut results = [Ok(()); 3];
    for (result, bit) in results.iter_mut().zip(CACHE_BITS) {
        let slot = mm::reserve_slot()?;
        // SAFETY: the slot is reserved and unreferenced; it is cleared
        // when dropped at the end of this iteration.
        *result = unsafe {
            update_va_mapping(slot.address(), page.mfn().raw(), LEAF_READ_ONLY | 1 << bit)
        };
    }
    Ok(results)
}

fn update_va_mapping_cache_bits_refused(_: &Ctx<'_>) -> Outcome {
    // A domU without I/O memory may not choose cache attributes.
    for (result, bit) in check!(map_with_cache_bits(), "mapping")
        .into_iter()
        .zip(CACHE_BITS)
    {
        if let Outcome::Fail(why) = expect_errno(result, Errno::EINVAL) {
            return suite_fail!("bit {bit}: {why}");
        }
    }
    Outcome::Pass
}

fn update_va_mapping_cache_bits_allowed(_: &Ctx<'_>) -> Outcome {
    for (result, bit) in check!(map_with_cache_bits(), "mapping")
        .into_iter()
        .zip(CACHE_BITS)
    {
        if let Err(errno) = result {
            return suite_fail!("bit {bit}: {errno}");
        }
    }
    Outcome::Pass
}

fn mmu_update_as_domid_xen_refused(_: &Ctx<'_>) -> Outcome {
    let frame = check!(first_m2p_frame(), "machphys_mfn_list");
    let (_slot, pte) = check!(slot_with_pte(), "window slot");
    // SAFETY: the entry maps a reserved window page nothing references.
    let result = unsafe {
        mmu::mmu_update(
            &[MmuUpdate::normal(pte.maddr(), entry(frame, LEAF_READ_ONLY))],
            DOMID_XEN,
        )
    };
    expect_errno(result.map_err(Errno::from), Errno::EPERM)
}

fn reservation_of_dom0_refused(_: &Ctx<'_>) -> Outcome {
    expect_errno(memop::current_reservation(0), Errno::EPERM)
}

fn update_va_mapping_hypervisor_range(_: &Ctx<'_>) -> Outcome {
    let page = check!(Page::new(), "Page::new");
    // SAFETY: Xen's own range is not ours to map; must be refused.
    let result = unsafe {
        update_va_mapping(
            MACH2PHYS_VIRT_START as usize,
            page.mfn().raw(),
            LEAF_READ_ONLY,
        )
    };
    expect_errno(result, Errno::EINVAL)
}

fn update_va_mapping_writable_table(_: &Ctx<'_>) -> Outcome {
    let l1 = check!(window_l1_mfn(), "window L1");
    let slot = check!(mm::reserve_slot(), "window slot");
    // SAFETY: the slot is reserved and unreferenced.
    let result = unsafe { update_va_mapping(slot.address(), l1, LEAF_WRITABLE) };
    expect_errno(result, Errno::EBUSY)
}

fn balloon_round_trip(_: &Ctx<'_>) -> Outcome {
    let before = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    let mut page = check!(Page::new(), "Page::new");
    page.as_mut_slice().fill(0x77);
    let pfn = page.pfn().raw();
    let ballooned = check!(page.balloon_out().map_err(|(_, e)| e), "balloon out");
    let during = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    if mm::pfn_to_mfn(pfn).is_some() || during + 1 != before {
        return suite_fail!("reservation {before} -> {during} after one page out");
    }
    let mut page = check!(ballooned.reclaim().map_err(|(_, e)| e), "reclaim");
    if page.as_slice().iter().any(|&b| b != 0) {
        return suite_fail!("reclaimed page not zeroed");
    }
    page.as_mut_slice().fill(0xc3);
    let after = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    // PV: the new machine frame's M2P entry names our pfn; PVH has no
    // M2P, the guest frame is the page's own.
    let translated = if crate::platform::is_pvh() {
        mm::pfn_to_mfn(pfn) == Some(pfn) && page.gfn().raw() == pfn
    } else {
        mm::mfn_to_pfn(page.mfn().raw()) == Ok(pfn)
    };
    if page.pfn().raw() == pfn
        && after == before
        && page.as_slice().iter().all(|&b| b == 0xc3)
        && translated
    {
        Outcome::Pass
    } else {
        suite_fail!(
            "reservation {before} -> {after}, pfn {pfn:#x} -> {:#x}",
            page.pfn().raw()
        )
    }
}

/// PVH: a batch larger than one hypercall's ([`mm::balloon::BATCH`])
/// goes out with `decrease_reservation` of guest frames and comes back
/// with `populate_physmap`, the reservation following each way; the
/// frames that come back are usable (written and read through the
/// identity map).
fn balloon_pvh_batches_decrease_and_populate(_: &Ctx<'_>) -> Outcome {
    let pages = mm::balloon::BATCH as u64 + 7;
    let reserved = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    let free = mm::free_frames();
    let released = check!(mm::balloon::release(pages), "release");
    let shrunk = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    let reclaimed = check!(mm::balloon::reclaim(pages), "reclaim");
    let restored = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    if (
        released,
        reclaimed,
        reserved.saturating_sub(shrunk),
        restored,
    ) != (pages, pages, pages, reserved)
    {
        return suite_fail!(
            "released {released} reclaimed {reclaimed} of {pages}; reservation {reserved} -> {shrunk} -> {restored}"
        );
    }
    // Every frame that came back is free again and holds what we write.
    let mut held = alloc::vec::Vec::new();
    for index in 0..pages {
        let mut page = check!(Page::new(), "Page::new");
        page.as_mut_slice().fill(index as u8 ^ 0x5a);
        held.push(page);
    }
    let intact = held
        .iter()
        .enumerate()
        .all(|(index, page)| page.as_slice().iter().all(|&b| b == index as u8 ^ 0x5a));
    drop(held);
    if intact && mm::free_frames() == free && mm::stats().ballooned_out == 0 {
        Outcome::Pass
    } else {
        suite_fail!(
            "pattern intact {intact}; free frames {free} -> {}",
            mm::free_frames()
        )
    }
}

fn balloon_release_and_reclaim_counts(_: &Ctx<'_>) -> Outcome {
    const PAGES: u64 = 4;
    let before = mm::stats();
    let reserved = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    let released = check!(mm::balloon::release(PAGES), "release");
    let during = mm::stats();
    let shrunk = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    let reclaimed = check!(mm::balloon::reclaim(PAGES), "reclaim");
    let after = mm::stats();
    let restored = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    if released == PAGES
        && reclaimed == PAGES
        && during.ballooned_out == before.ballooned_out + PAGES
        && during.free_frames + PAGES == before.free_frames
        && shrunk + PAGES == reserved
        && restored == reserved
        && after.free_frames == before.free_frames
        && after.ballooned_out == before.ballooned_out
    {
        Outcome::Pass
    } else {
        suite_fail!(
            "released {released} reclaimed {reclaimed}; reservation {reserved} -> {shrunk} -> {restored}; free {} -> {} -> {}",
            before.free_frames,
            during.free_frames,
            after.free_frames
        )
    }
}

fn map_mfn_shared_info(ctx: &Ctx<'_>) -> Outcome {
    let before = mm::stats().window_slots_used;
    let mfn = ctx.boot.shared_info_maddr >> 12;
    let mut read_only = check!(
        // SAFETY: the shared info page is Xen's, not Rust memory; it is
        // reached only through the mapping's volatile accessors.
        unsafe { mm::map_mfn(mm::Mfn::new(mfn), Access::ReadOnly) },
        "map shared_info read-only"
    );
    let writable = check!(
        // SAFETY: as above (nothing is written through it).
        unsafe { mm::map_mfn(mm::Mfn::new(mfn), Access::ReadWrite) },
        "map shared_info read-write"
    );
    if read_only.write_u8(0, 0) != Err(mm::MmError::ReadOnly) {
        return suite_fail!("write through the read-only handle not refused");
    }
    // The two mappings of one frame must agree.
    let (a, b) = (read_only.read_u64(0x800), writable.read_u64(0x800));
    if a.is_err() || a != b {
        return suite_fail!("mappings disagree: {a:x?} vs {b:x?}");
    }
    check!(read_only.unmap(), "unmap");
    drop(writable);
    let after = mm::stats().window_slots_used;
    if after == before {
        Outcome::Pass
    } else {
        suite_fail!("window slots in use {before} -> {after}")
    }
}

fn decrease_foreign_frame_does_nothing(_: &Ctx<'_>) -> Outcome {
    let Some(mfn) = foreign_ram_mfn() else {
        return Outcome::Skip("no foreign RAM frame found".into());
    };
    let before = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    // SAFETY: the frame is not ours; Xen must not take it from anyone.
    let done = check!(
        unsafe { memop::decrease_reservation(&[mfn], 0, DOMID_SELF) },
        "decrease_reservation"
    );
    let after = check!(
        memop::current_reservation(DOMID_SELF),
        "current_reservation"
    );
    if done == 0 && after == before {
        Outcome::Pass
    } else {
        suite_fail!("Xen took {done} extents of a foreign frame")
    }
}

fn increase_huge_order_gets_none(_: &Ctx<'_>) -> Outcome {
    // 2^20 pages in one extent: beyond the largest order Xen hands any
    // domain, so it allocates nothing (and reports no error).
    let mut extent = [0u64];
    match memop::increase_reservation(&mut extent, 20, 0, DOMID_SELF) {
        Ok(0) => Outcome::Pass,
        Ok(n) => {
            // SAFETY: the frames are new, unmapped and unreferenced.
            let _ = unsafe { memop::decrease_reservation(&extent[..n], 20, DOMID_SELF) };
            suite_fail!("got {n} extents of order 20")
        }
        Err(errno) => suite_fail!("expected 0 extents, got {errno}"),
    }
}

fn zero_length_batches(_: &Ctx<'_>) -> Outcome {
    // SAFETY: empty batches do nothing.
    let results = unsafe {
        (
            mmu::mmu_update(&[], DOMID_SELF),
            mmu::mmuext_op(&[], DOMID_SELF),
        )
    };
    match results {
        (Ok(0), Ok(0)) => Outcome::Pass,
        other => suite_fail!("expected Ok(0) twice, got {other:?}"),
    }
}

fn expect_ok<T: core::fmt::Debug>(result: Result<T, Errno>) -> Outcome {
    match result {
        Ok(_) => Outcome::Pass,
        Err(errno) => suite_fail!("expected success, got {errno}"),
    }
}

/// The memory checks.
pub const TESTS: &[Test] = &[
    Test {
        group: "memory",
        name: "current_reservation_is_nr_pages",
        applies: Applies::Pv(super::PV_RESERVATION),
        run: current_reservation_is_nr_pages,
    },
    Test {
        group: "memory",
        name: "maximum_reservation_at_least_current",
        applies: Applies::Both,
        run: maximum_reservation_at_least_current,
    },
    Test {
        group: "memory",
        name: "reservation_of_missing_domain_esrch",
        applies: Applies::Both,
        run: reservation_of_missing_domain,
    },
    Test {
        group: "memory",
        name: "reservation_of_dom0_eperm",
        applies: Applies::DomUOnly,
        run: reservation_of_dom0_refused,
    },
    Test {
        group: "memory",
        name: "maximum_ram_page_covers_our_frames",
        applies: Applies::Both,
        run: maximum_ram_page_covers_our_frames,
    },
    Test {
        group: "memory",
        name: "machphys_mapping_layout",
        applies: Applies::Pv(super::PV_M2P),
        run: machphys_mapping_layout,
    },
    Test {
        group: "memory",
        name: "m2p_inverts_p2m",
        applies: Applies::Pv(super::PV_M2P),
        run: m2p_inverts_p2m,
    },
    Test {
        group: "memory",
        name: "m2p_frame_mapped_as_own_ebusy",
        applies: Applies::Pv(super::PV_M2P),
        run: m2p_frame_as_own_refused,
    },
    Test {
        group: "memory",
        name: "m2p_frame_via_domid_xen_read_only_not_writable_ebusy",
        applies: Applies::PvDom0(super::PV_M2P),
        run: m2p_frame_via_domid_xen,
    },
    Test {
        group: "memory",
        name: "mmu_update_as_domid_xen_eperm",
        applies: Applies::PvDomU(super::PV_PAGE_TABLES),
        run: mmu_update_as_domid_xen_refused,
    },
    Test {
        group: "memory",
        name: "mmu_update_batch_reports_count",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: mmu_update_batch_reports_count,
    },
    Test {
        group: "memory",
        name: "mmu_update_batch_stops_at_refusal_ebusy",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: mmu_update_batch_stops_at_refusal,
    },
    Test {
        group: "memory",
        name: "mmu_update_foreign_frame_ebusy",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: mmu_update_foreign_frame_refused,
    },
    Test {
        group: "memory",
        name: "mmu_update_local_apic_eperm",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: mmu_update_local_apic_refused,
    },
    Test {
        group: "memory",
        name: "mmu_update_mmio_beyond_ram_eperm",
        applies: Applies::PvDomU(super::PV_PAGE_TABLES),
        run: mmu_update_mmio_far_away_refused,
    },
    Test {
        group: "memory",
        name: "mmu_update_writable_map_of_table_ebusy",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: mmu_update_writable_table_refused,
    },
    Test {
        group: "memory",
        name: "mmu_update_read_only_map_of_table_allowed",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: mmu_update_read_only_table_allowed,
    },
    Test {
        group: "memory",
        name: "mmu_update_on_data_frame_is_a_plain_write",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: mmu_update_on_data_frame_writes_it,
    },
    Test {
        group: "memory",
        name: "machphys_update_foreign_frame_einval",
        applies: Applies::Pv(super::PV_M2P),
        run: machphys_update_foreign_frame_refused,
    },
    Test {
        group: "memory",
        name: "pin_writable_frame_einval",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: pin_writable_frame_refused,
    },
    Test {
        group: "memory",
        name: "pin_pinned_table_einval",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: pin_pinned_table_refused,
    },
    Test {
        group: "memory",
        name: "pin_at_wrong_level_einval",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: pin_at_wrong_level_refused,
    },
    Test {
        group: "memory",
        name: "unpin_unpinned_frame_einval",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: unpin_unpinned_refused,
    },
    Test {
        group: "memory",
        name: "unpin_foreign_frame_einval",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: unpin_foreign_refused,
    },
    Test {
        group: "memory",
        name: "new_baseptr_unvalidated_frame_einval",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: new_baseptr_unvalidated_refused,
    },
    Test {
        group: "memory",
        name: "new_baseptr_current_root_ok",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: new_baseptr_current_root,
    },
    Test {
        group: "memory",
        name: "tlb_flushes_and_invlpg_ok",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: tlb_flushes,
    },
    Test {
        group: "memory",
        name: "mmuext_unknown_command_enosys",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: mmuext_unknown_command,
    },
    Test {
        group: "memory",
        name: "clear_page_of_table_einval",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: clear_page_of_table_refused,
    },
    Test {
        group: "memory",
        name: "update_va_mapping_reserved_bit_51_eperm",
        applies: Applies::Pv(super::PV_VA_MAPPING),
        run: update_va_mapping_reserved_bits,
    },
    Test {
        group: "memory",
        name: "update_va_mapping_cache_bits_einval",
        applies: Applies::PvDomU(super::PV_VA_MAPPING),
        run: update_va_mapping_cache_bits_refused,
    },
    Test {
        group: "memory",
        name: "update_va_mapping_cache_bits_allowed",
        applies: Applies::PvDom0(super::PV_VA_MAPPING),
        run: update_va_mapping_cache_bits_allowed,
    },
    Test {
        group: "memory",
        name: "update_va_mapping_hypervisor_range_einval",
        applies: Applies::Pv(super::PV_VA_MAPPING),
        run: update_va_mapping_hypervisor_range,
    },
    Test {
        group: "memory",
        name: "update_va_mapping_writable_table_ebusy",
        applies: Applies::Pv(super::PV_VA_MAPPING),
        run: update_va_mapping_writable_table,
    },
    Test {
        group: "memory",
        name: "balloon_out_and_back_holds_pattern",
        applies: Applies::Both,
        run: balloon_round_trip,
    },
    Test {
        group: "memory",
        name: "balloon_release_and_reclaim_counts",
        applies: Applies::Both,
        run: balloon_release_and_reclaim_counts,
    },
    Test {
        group: "memory",
        name: "balloon_pvh_batches_decrease_and_populate",
        applies: Applies::Pvh,
        run: balloon_pvh_batches_decrease_and_populate,
    },
    Test {
        group: "memory",
        name: "map_mfn_shared_info_and_unmap",
        applies: Applies::Pv(super::PV_WINDOW),
        run: map_mfn_shared_info,
    },
    Test {
        group: "memory",
        name: "decrease_reservation_foreign_frame_takes_none",
        applies: Applies::Pv(super::PV_M2P),
        run: decrease_foreign_frame_does_nothing,
    },
    Test {
        group: "memory",
        name: "increase_reservation_huge_order_gets_none",
        applies: Applies::Both,
        run: increase_huge_order_gets_none,
    },
    Test {
        group: "memory",
        name: "zero_length_batches_ok",
        applies: Applies::Pv(super::PV_PAGE_TABLES),
        run: zero_length_batches,
    },
];
