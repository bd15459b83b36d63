//! Memory reservation and physmap operations (`xen/memory.h`).
//!
//! The `XENMEM_*` commands of `HYPERVISOR_memory_op`: growing and
//! shrinking the domain (balloon), populating the physmap, querying the
//! machine-to-phys table, placing special pages (shared info, grant
//! table) in the physmap of a translated guest, and reading the memory map.

use crate::abi::xen::{DomId, XenPfn};

/// `XENMEM_increase_reservation`: allocate extents (returns MFNs).
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// `XENMEM_decrease_reservation`: free extents.
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// `XENMEM_maximum_ram_page`: the highest machine frame of RAM.
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// `XENMEM_current_reservation`: a domain's current size, in pages.
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// `XENMEM_maximum_reservation`: a domain's size limit, in pages.
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// `XENMEM_machphys_mfn_list`: the frames holding the M2P table.
pub const XENMEM_MACHPHYS_MFN_LIST: u32 = 5;
/// `XENMEM_populate_physmap`: back guest frames with memory.
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// `XENMEM_add_to_physmap`: place a page in a translated guest's physmap.
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// `XENMEM_memory_map`: the guest's memory map (e820 format).
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// `XENMEM_machine_memory_map`: the host's memory map (privileged).
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
/// `XENMEM_exchange`: swap pages for others atomically (PV only).
pub const XENMEM_EXCHANGE: u32 = 11;
/// `XENMEM_machphys_mapping`: where the M2P table is mapped.
pub const XENMEM_MACHPHYS_MAPPING: u32 = 12;
/// `XENMEM_set_memory_map`: set a domain's memory map (toolstack).
pub const XENMEM_SET_MEMORY_MAP: u32 = 13;
/// `XENMEM_maximum_gpfn`: the highest guest frame in use.
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;
/// `XENMEM_remove_from_physmap`: unmap a page from the physmap.
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;
/// `XENMEM_add_to_physmap_batch`: several `add_to_physmap`s at once.
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u32 = 23;
/// `XENMEM_machphys_compat_mfn_list`: the compat M2P frames.
pub const XENMEM_MACHPHYS_COMPAT_MFN_LIST: u32 = 25;
/// `XENMEM_acquire_resource`: map a domain resource (e.g. grant frames).
pub const XENMEM_ACQUIRE_RESOURCE: u32 = 28;

/// `XENMEMF_address_bits(x)`: allocate below `2^bits` (0: no limit).
pub const fn xenmemf_address_bits(bits: u32) -> u32 {
    bits
}
/// `XENMEMF_get_address_bits(x)`.
pub const fn xenmemf_get_address_bits(flags: u32) -> u32 {
    flags & 0xff
}
/// `XENMEMF_node(x)`: prefer NUMA node `node`.
pub const fn xenmemf_node(node: u32) -> u32 {
    (node + 1) << 8
}
/// `XENMEMF_get_node(x)`.
pub const fn xenmemf_get_node(flags: u32) -> u32 {
    ((flags >> 8).wrapping_sub(1)) & 0xff
}
/// `XENMEMF_populate_on_demand`: populate with populate-on-demand entries.
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;
/// `XENMEMF_exact_node_request`: only the requested node will do.
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;
/// `XENMEMF_vnode`: the node is a virtual node number.
pub const XENMEMF_VNODE: u32 = 1 << 18;

/// `struct xen_memory_reservation`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryReservation {
    /// Guest handle (address) of a `xen_pfn_t` array: frames in or out,
    /// depending on the command.
    pub extent_start: u64,
    /// Number of extents.
    pub nr_extents: u64,
    /// Each extent is `2^extent_order` pages.
    pub extent_order: u32,
    /// `XENMEMF_*` flags.
    pub mem_flags: u32,
    /// The domain (unprivileged: `DOMID_SELF`).
    pub domid: DomId,
}

/// `struct xen_memory_exchange`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryExchange {
    /// IN: extents to give up (C `in`).
    pub in_: XenMemoryReservation,
    /// IN/OUT: extents to get (the same amount of memory).
    pub out: XenMemoryReservation,
    /// OUT: input extents exchanged so far (must be 0 on entry).
    pub nr_exchanged: u64,
}

/// `struct xen_memory_domain`: argument of the reservation queries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryDomain {
    /// IN: the domain queried.
    pub domid: DomId,
}

/// `struct xen_machphys_mfn_list`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMachphysMfnList {
    /// IN: length of `extent_start`.
    pub max_extents: u32,
    /// IN: guest handle (address) of a `xen_pfn_t` array of 2 MiB
    /// extent starts.
    pub extent_start: u64,
    /// OUT: extents written.
    pub nr_extents: u32,
}

/// `struct xen_machphys_mapping`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMachphysMapping {
    /// Start of the M2P table's virtual range.
    pub v_start: u64,
    /// End of that range.
    pub v_end: u64,
    /// The largest MFN the table covers.
    pub max_mfn: u64,
}

/// `XENMAPSPACE_shared_info`: the shared-info page.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `XENMAPSPACE_grant_table`: a grant-table frame (`idx`; with
/// [`XENMAPIDX_GRANT_TABLE_STATUS`], a status frame).
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `XENMAPSPACE_gmfn`: one of our own frames.
pub const XENMAPSPACE_GMFN: u32 = 2;
/// `XENMAPSPACE_gmfn_range`: a range of our frames (`size` pages).
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// `XENMAPSPACE_gmfn_foreign`: another domain's frame (batch only).
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// `XENMAPSPACE_dev_mmio`: device MMIO (Arm only).
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;

/// `XENMAPIDX_grant_table_status`: in `idx`, asks for a status frame.
pub const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 0x8000_0000;

/// `struct xen_add_to_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmap {
    /// The domain whose physmap changes.
    pub domid: DomId,
    /// Pages, for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index into the space.
    pub idx: u64,
    /// Guest frame where the page should appear.
    pub gpfn: XenPfn,
}

/// `struct xen_add_to_physmap_batch`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmapBatch {
    /// The domain whose physmap changes.
    pub domid: DomId,
    /// `XENMAPSPACE_*`.
    pub space: u16,
    /// Number of pages.
    pub size: u16,
    /// The C union `u`: `foreign_domid` for `XENMAPSPACE_gmfn_foreign`,
    /// otherwise `res0`, which must be 0. Both are 16 bits.
    pub u: u16,
    /// Guest handle (address) of a `xen_ulong_t` array of indices.
    pub idxs: u64,
    /// Guest handle (address) of a `xen_pfn_t` array of destinations.
    pub gpfns: u64,
    /// Guest handle (address) of an `int` array of per-page errors.
    pub errs: u64,
}

/// `struct xen_remove_from_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenRemoveFromPhysmap {
    /// The domain whose physmap changes.
    pub domid: DomId,
    /// The guest frame to unmap.
    pub gpfn: XenPfn,
}

/// `struct xen_memory_map`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryMap {
    /// IN: entries `buffer` can hold. OUT: entries written.
    pub nr_entries: u32,
    /// Guest handle (address) of an array of 20-byte e820 entries.
    pub buffer: u64,
}

/// `struct xen_foreign_memory_map`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenForeignMemoryMap {
    /// The domain whose map is set.
    pub domid: DomId,
    /// The map.
    pub map: XenMemoryMap,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memflags_round_trip() {
        let flags = xenmemf_address_bits(32) | xenmemf_node(3);
        assert_eq!(xenmemf_get_address_bits(flags), 32);
        assert_eq!(xenmemf_get_node(flags), 3);
    }
}
