//! `HYPERVISOR_memory_op`: the domain's reservation (balloon) and the
//! machine-to-phys table's whereabouts.
//!
//! The reservation commands move whole frames between Xen and the
//! domain. For a PV guest the frames are machine frames: increasing the
//! reservation hands back new MFNs that the guest must enter in its own
//! p2m and in Xen's M2P (`MMU_MACHPHYS_UPDATE`); decreasing it gives
//! away the MFNs listed. Xen processes extents in order and returns how
//! many it did, which may be fewer than asked without any error.

use super::raw::hypercall;
use crate::abi::memory::{
    XenMachphysMapping, XenMachphysMfnList, XenMemoryDomain, XenMemoryReservation,
    XENMEM_CURRENT_RESERVATION, XENMEM_DECREASE_RESERVATION, XENMEM_INCREASE_RESERVATION,
    XENMEM_MACHPHYS_MAPPING, XENMEM_MACHPHYS_MFN_LIST, XENMEM_MAXIMUM_RAM_PAGE,
    XENMEM_MAXIMUM_RESERVATION, XENMEM_POPULATE_PHYSMAP,
};
use crate::abi::xen::{hypercall_nr, DomId, XenPfn};
use crate::errno::Errno;

/// Calls `memory_op(cmd, arg)`.
///
/// # Safety
///
/// `arg` must be what command `cmd` expects (a pointer to its argument
/// structure, or 0), valid for the reads and writes Xen does, and the
/// command's effects must be safe for the caller.
unsafe fn memory_op(cmd: u32, arg: u64) -> Result<u64, Errno> {
    // SAFETY: the caller upholds the command's contract.
    unsafe { hypercall(hypercall_nr::MEMORY_OP, [u64::from(cmd), arg, 0, 0, 0]) }
}

/// Runs a command taking a `xen_memory_domain` (`domid_t`) argument.
fn domain_query(cmd: u32, domid: DomId) -> Result<u64, Errno> {
    let arg = XenMemoryDomain { domid };
    // SAFETY: the reservation queries only read one `domid_t` from `arg`,
    // alive on our stack.
    unsafe { memory_op(cmd, &raw const arg as u64) }
}

/// `XENMEM_current_reservation`: pages `domid` holds now.
pub fn current_reservation(domid: DomId) -> Result<u64, Errno> {
    domain_query(XENMEM_CURRENT_RESERVATION, domid)
}

/// `XENMEM_maximum_reservation`: the most pages `domid` may hold.
pub fn maximum_reservation(domid: DomId) -> Result<u64, Errno> {
    domain_query(XENMEM_MAXIMUM_RESERVATION, domid)
}

/// `XENMEM_maximum_ram_page`: the highest machine frame of RAM.
pub fn maximum_ram_page() -> Result<u64, Errno> {
    // SAFETY: the command takes no argument and changes nothing.
    unsafe { memory_op(XENMEM_MAXIMUM_RAM_PAGE, 0) }
}

/// `XENMEM_machphys_mapping`: where the read-only M2P table is mapped in
/// our address space and the largest MFN it covers.
pub fn machphys_mapping() -> Result<XenMachphysMapping, Errno> {
    let mut out = XenMachphysMapping::default();
    // SAFETY: Xen writes one `xen_machphys_mapping` to `out`.
    unsafe { memory_op(XENMEM_MACHPHYS_MAPPING, &raw mut out as u64) }?;
    Ok(out)
}

/// `XENMEM_machphys_mfn_list`: the machine frames of the M2P table, one
/// per 2 MiB of it, into `out`. Returns how many were written.
pub fn machphys_mfn_list(out: &mut [XenPfn]) -> Result<usize, Errno> {
    let mut arg = XenMachphysMfnList {
        max_extents: u32::try_from(out.len()).map_err(|_| Errno::E2BIG)?,
        extent_start: out.as_mut_ptr() as u64,
        nr_extents: 0,
    };
    // SAFETY: Xen writes at most `max_extents` frame numbers to `out` and
    // the count to `arg`, both alive for the call.
    unsafe { memory_op(XENMEM_MACHPHYS_MFN_LIST, &raw mut arg as u64) }?;
    Ok(arg.nr_extents as usize)
}

/// Builds a reservation over `extents`.
fn reservation(
    extents: *const XenPfn,
    nr: usize,
    order: u32,
    mem_flags: u32,
    domid: DomId,
) -> XenMemoryReservation {
    XenMemoryReservation {
        extent_start: extents as u64,
        nr_extents: nr as u64,
        extent_order: order,
        mem_flags,
        domid,
    }
}

/// `XENMEM_increase_reservation`: asks for `extents.len()` extents of
/// `2^order` pages; Xen writes the first MFN of each into `extents`.
/// Returns how many it allocated (fewer when the domain's maximum or the
/// host's memory runs out). The new frames are not yet in the M2P.
pub fn increase_reservation(
    extents: &mut [XenPfn],
    order: u32,
    mem_flags: u32,
    domid: DomId,
) -> Result<usize, Errno> {
    let arg = reservation(extents.as_mut_ptr(), extents.len(), order, mem_flags, domid);
    // SAFETY: Xen writes at most `extents.len()` MFNs into `extents`; the
    // new frames are unmapped, so nothing Rust references changes.
    unsafe { memory_op(XENMEM_INCREASE_RESERVATION, &raw const arg as u64) }.map(|n| n as usize)
}

/// `XENMEM_populate_physmap`: for each guest frame number in `extents`,
/// allocates `2^order` pages; for a PV guest Xen sets their M2P entries
/// to those frame numbers and writes the new MFNs back into `extents`.
/// Returns how many extents it populated.
///
/// # Safety
///
/// For a translated (PVH/HVM) guest Xen puts a fresh page at each guest
/// frame named, replacing whatever page was there: the frames must be
/// holes, or frames nothing refers to (not memory Rust owns: its
/// contents would change under it). For a PV guest Xen only writes the
/// M2P entries of the new machine frames, which must be pseudo-physical
/// frames we keep free for them.
pub unsafe fn populate_physmap(
    extents: &mut [XenPfn],
    order: u32,
    mem_flags: u32,
    domid: DomId,
) -> Result<usize, Errno> {
    let arg = reservation(extents.as_mut_ptr(), extents.len(), order, mem_flags, domid);
    // SAFETY: Xen reads and rewrites the entries of `extents`; what it
    // puts at the frames named there is allowed by the caller's promise.
    unsafe { memory_op(XENMEM_POPULATE_PHYSMAP, &raw const arg as u64) }.map(|n| n as usize)
}

/// `XENMEM_decrease_reservation`: gives the extents starting at the
/// machine frames in `extents` back to Xen. Returns how many it took;
/// Xen stops at the first frame it cannot take (not ours, still in use)
/// without an error.
///
/// # Safety
///
/// The frames must not be mapped or otherwise referenced by us any more:
/// once Xen has them they may belong to another domain.
pub unsafe fn decrease_reservation(
    extents: &[XenPfn],
    order: u32,
    domid: DomId,
) -> Result<usize, Errno> {
    let arg = reservation(extents.as_ptr(), extents.len(), order, 0, domid);
    // SAFETY: Xen reads `extents`; giving the frames away is safe by the
    // caller's contract.
    unsafe { memory_op(XENMEM_DECREASE_RESERVATION, &raw const arg as u64) }.map(|n| n as usize)
}

/// `XENMEM_add_to_physmap`: makes page `idx` of `space` (the shared info
/// page, a grant-table frame, …) appear at our guest frame `gpfn`. For a
/// translated (PVH) guest this is how those pages are placed; whatever
/// page was at `gpfn` before is released to Xen.
///
/// # Safety
///
/// Nothing may rely on the old contents of `gpfn`: from the call on, the
/// guest frame is backed by the page Xen names, which Xen may also write.
pub unsafe fn add_to_physmap(space: u32, idx: u64, gpfn: XenPfn) -> Result<(), Errno> {
    let arg = crate::abi::memory::XenAddToPhysmap {
        domid: crate::abi::xen::DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn,
    };
    // SAFETY: Xen reads `arg` only; replacing the frame is safe by the
    // caller's contract.
    unsafe {
        memory_op(
            crate::abi::memory::XENMEM_ADD_TO_PHYSMAP,
            &raw const arg as u64,
        )
    }
    .map(|_| ())
}

/// Bytes of one e820 entry (`addr: u64, size: u64, type: u32`, packed).
pub const E820_ENTRY_SIZE: usize = 20;

/// `XENMEM_memory_map`: our memory map, in e820 format, into `out`
/// (`E820_ENTRY_SIZE` bytes per entry). Returns how many entries Xen
/// wrote. A PVH dom0 gets its map this way, not in `hvm_start_info`.
pub fn memory_map(out: &mut [u8]) -> Result<usize, Errno> {
    let mut arg = crate::abi::memory::XenMemoryMap {
        nr_entries: u32::try_from(out.len() / E820_ENTRY_SIZE).map_err(|_| Errno::E2BIG)?,
        buffer: out.as_mut_ptr() as u64,
    };
    // SAFETY: Xen writes at most `nr_entries` 20-byte entries into `out`
    // and the count into `arg`, both alive for the call.
    unsafe { memory_op(crate::abi::memory::XENMEM_MEMORY_MAP, &raw mut arg as u64) }?;
    Ok(arg.nr_entries as usize)
}
