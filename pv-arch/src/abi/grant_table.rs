//! Grant tables (`xen/grant_table.h`).
//!
//! A domain shares a page with another by writing an entry in its own
//! grant table (a version 1 [`GrantEntryV1`] or version 2
//! [`GrantEntryV2`] array in pages Xen gives it through
//! `GNTTABOP_setup_table`) and handing the entry's index, a [`GrantRef`],
//! to the other side. The `GNTTABOP_*` commands of
//! `HYPERVISOR_grant_table_op` take arrays of the `Gnttab*` structs here.
//!
//! Writing an entry is ordered: domid and frame first, a write barrier,
//! then `flags` with the type. That ordering is the caller's job; these
//! are only the layouts.

use crate::abi::xen::{DomId, XenPfn};

/// `grant_ref_t`: an index into a domain's grant table.
pub type GrantRef = u32;
/// `grant_handle_t`: Xen's handle for one mapping of a grant.
pub type GrantHandle = u32;
/// `grant_status_t`: one entry of a version 2 status frame.
pub type GrantStatus = u16;

/// `GNTTAB_NR_RESERVED_ENTRIES`: entries kept across version changes and
/// possibly filled in by the toolstack at domain creation.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// `GNTTAB_RESERVED_CONSOLE`: the toolstack's grant of the console ring.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// `GNTTAB_RESERVED_XENSTORE`: the toolstack's grant of the xenstore ring.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// `GTF_invalid`: the entry grants nothing.
pub const GTF_INVALID: u16 = 0;
/// `GTF_permit_access`: `domid` may map or copy `frame`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_accept_transfer`: `domid` may transfer a page to us; Xen
/// writes its frame number into `frame`.
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// `GTF_transitive`: `domid` may use another domain's grant through us
/// (version 2 only; copy, never map).
pub const GTF_TRANSITIVE: u16 = 3;
/// `GTF_type_mask`: the type bits of `flags`.
pub const GTF_TYPE_MASK: u16 = 3;
/// `GTF_readonly` (guest sets): `domid` may only read.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading` (Xen sets): currently mapped for reading.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing` (Xen sets): currently mapped for writing.
pub const GTF_WRITING: u16 = 1 << 4;
/// `GTF_PWT` (x86): map with the PWT cache attribute bit.
pub const GTF_PWT: u16 = 1 << 5;
/// `GTF_PCD` (x86): map with the PCD cache attribute bit.
pub const GTF_PCD: u16 = 1 << 6;
/// `GTF_PAT` (x86): map with the PAT cache attribute bit.
pub const GTF_PAT: u16 = 1 << 7;
/// `GTF_sub_page` (version 2): only a byte range is granted, for copying.
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// `GTF_transfer_committed` (Xen sets): a transfer is under way; leave
/// the entry alone until [`GTF_TRANSFER_COMPLETED`].
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// `GTF_transfer_completed` (Xen sets): `frame` holds the new page.
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

/// `struct grant_entry_v1`: one version 1 grant (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*` type and flags (written by guest and Xen).
    pub flags: u16,
    /// The domain being granted access.
    pub domid: DomId,
    /// The frame granted (or, for transfers, received).
    pub frame: u32,
}

/// `struct grant_entry_header`: the prefix shared by all version 2 entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryHeader {
    /// `GTF_*` type and flags.
    pub flags: u16,
    /// The domain being granted access.
    pub domid: DomId,
}

/// The `full_page` arm of `union grant_entry_v2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2FullPage {
    /// Type, flags and grantee.
    pub hdr: GrantEntryHeader,
    /// Padding.
    pub pad0: u32,
    /// The frame granted.
    pub frame: u64,
}

/// The `sub_page` arm of `union grant_entry_v2` (`GTF_sub_page` set).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2SubPage {
    /// Type, flags and grantee.
    pub hdr: GrantEntryHeader,
    /// First byte granted within the frame.
    pub page_off: u16,
    /// Number of bytes granted.
    pub length: u16,
    /// The frame.
    pub frame: u64,
}

/// The `transitive` arm of `union grant_entry_v2` (`GTF_transitive`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2Transitive {
    /// Type, flags and grantee.
    pub hdr: GrantEntryHeader,
    /// The domain whose grant is passed on.
    pub trans_domid: DomId,
    /// Padding.
    pub pad0: u16,
    /// That domain's grant reference.
    pub gref: GrantRef,
}

/// `union grant_entry_v2`: one version 2 grant (16 bytes).
///
/// Raw words standing in for the C union: the accessors read an arm, the
/// `from_*` constructors build one. In version 2 the status bits
/// (`GTF_reading`/`GTF_writing`) live in separate status frames.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2 {
    raw: [u64; 2],
}

impl GrantEntryV2 {
    /// Wraps the union's two raw 64-bit words.
    pub const fn from_raw(raw: [u64; 2]) -> Self {
        GrantEntryV2 { raw }
    }

    /// The union's two raw 64-bit words.
    pub const fn raw(&self) -> [u64; 2] {
        self.raw
    }

    /// `hdr`: the common prefix (valid for every arm).
    pub const fn hdr(&self) -> GrantEntryHeader {
        GrantEntryHeader {
            flags: self.raw[0] as u16,
            domid: (self.raw[0] >> 16) as DomId,
        }
    }

    /// The `full_page` arm.
    pub const fn full_page(&self) -> GrantEntryV2FullPage {
        GrantEntryV2FullPage {
            hdr: self.hdr(),
            pad0: (self.raw[0] >> 32) as u32,
            frame: self.raw[1],
        }
    }

    /// The `sub_page` arm.
    pub const fn sub_page(&self) -> GrantEntryV2SubPage {
        GrantEntryV2SubPage {
            hdr: self.hdr(),
            page_off: (self.raw[0] >> 32) as u16,
            length: (self.raw[0] >> 48) as u16,
            frame: self.raw[1],
        }
    }

    /// The `transitive` arm.
    pub const fn transitive(&self) -> GrantEntryV2Transitive {
        GrantEntryV2Transitive {
            hdr: self.hdr(),
            trans_domid: (self.raw[0] >> 32) as DomId,
            pad0: (self.raw[0] >> 48) as u16,
            gref: self.raw[1] as u32,
        }
    }

    const fn hdr_word(hdr: GrantEntryHeader) -> u64 {
        hdr.flags as u64 | (hdr.domid as u64) << 16
    }

    /// The union holding a `full_page` arm.
    pub const fn from_full_page(arm: GrantEntryV2FullPage) -> Self {
        GrantEntryV2 {
            raw: [Self::hdr_word(arm.hdr) | (arm.pad0 as u64) << 32, arm.frame],
        }
    }

    /// The union holding a `sub_page` arm.
    pub const fn from_sub_page(arm: GrantEntryV2SubPage) -> Self {
        GrantEntryV2 {
            raw: [
                Self::hdr_word(arm.hdr) | (arm.page_off as u64) << 32 | (arm.length as u64) << 48,
                arm.frame,
            ],
        }
    }

    /// The union holding a `transitive` arm.
    pub const fn from_transitive(arm: GrantEntryV2Transitive) -> Self {
        GrantEntryV2 {
            raw: [
                Self::hdr_word(arm.hdr) | (arm.trans_domid as u64) << 32 | (arm.pad0 as u64) << 48,
                arm.gref as u64,
            ],
        }
    }
}

/// `GNTTABOP_map_grant_ref`: map a foreign grant.
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// `GNTTABOP_unmap_grant_ref`: undo a mapping.
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// `GNTTABOP_setup_table`: get the frames of our own grant table.
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// `GNTTABOP_dump_table`: print a grant table on Xen's console (debug).
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// `GNTTABOP_transfer`: give a page to another domain.
pub const GNTTABOP_TRANSFER: u32 = 4;
/// `GNTTABOP_copy`: let Xen copy between frames and/or grants.
pub const GNTTABOP_COPY: u32 = 5;
/// `GNTTABOP_query_size`: current and maximum grant-table frames.
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// `GNTTABOP_unmap_and_replace`: unmap, putting another mapping in place.
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// `GNTTABOP_set_version`: choose grant-table version 1 or 2.
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// `GNTTABOP_get_status_frames`: get the version 2 status frames.
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// `GNTTABOP_get_version`: which version a domain uses.
pub const GNTTABOP_GET_VERSION: u32 = 10;
/// `GNTTABOP_swap_grant_ref`: swap two of our entries.
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;
/// `GNTTABOP_cache_flush`: cache maintenance on a granted page.
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;

/// `GNTMAP_device_map`: map for device (DMA) access.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// `GNTMAP_host_map`: map for CPU access.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly`: map read-only.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// `GNTMAP_application_map`: the host mapping is usable from user mode.
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// `GNTMAP_contains_pte`: `host_addr` is the machine address of a PTE,
/// not a virtual address.
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;
/// `GNTMAP_guest_avail_mask`: bits passed into the PTE's available bits
/// (with `XENFEAT_gnttab_map_avail_bits`).
pub const GNTMAP_GUEST_AVAIL_MASK: u32 = !0 << 16;

/// `GNTST_okay`.
pub const GNTST_OKAY: i16 = 0;
/// `GNTST_general_error`: unspecified failure.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// `GNTST_bad_domain`: no such domain.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// `GNTST_bad_gntref`: unknown or unusable grant reference.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// `GNTST_bad_handle`: unknown or unusable mapping handle.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// `GNTST_bad_virt_addr`: the virtual address cannot be mapped.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// `GNTST_bad_dev_addr`: the device address cannot be unmapped.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// `GNTST_no_device_space`: the IOMMU is out of space.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// `GNTST_permission_denied`: not allowed.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// `GNTST_bad_page`: the page is not valid for this operation.
pub const GNTST_BAD_PAGE: i16 = -9;
/// `GNTST_bad_copy_arg`: a copy would cross a page boundary.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// `GNTST_address_too_big`: the transferred page's address is too large.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// `GNTST_eagain`: not done; try again.
pub const GNTST_EAGAIN: i16 = -12;
/// `GNTST_no_space`: out of handles or similar resources.
pub const GNTST_NO_SPACE: i16 = -13;

/// `GNTTABOP_error_msgs`: a message for each `GNTST_*` code, indexed by
/// its negation.
pub const GNTTABOP_ERROR_MSGS: [&str; 14] = [
    "okay",
    "undefined error",
    "unrecognised domain id",
    "invalid grant reference",
    "invalid mapping handle",
    "invalid virtual address",
    "invalid device address",
    "no spare translation slot in the I/O MMU",
    "permission denied",
    "bad page",
    "copy arguments cross page boundary",
    "page address size too large",
    "operation not done; try again",
    "out of space",
];

/// The [`GNTTABOP_ERROR_MSGS`] message for a `GNTST_*` status, if known.
pub fn gntst_message(status: i16) -> Option<&'static str> {
    let index = usize::try_from(-i32::from(status)).ok()?;
    GNTTABOP_ERROR_MSGS.get(index).copied()
}

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    /// IN: where to map (virtual address, or PTE machine address with
    /// `GNTMAP_contains_pte`).
    pub host_addr: u64,
    /// IN: `GNTMAP_*` flags.
    pub flags: u32,
    /// IN: the grant reference in `dom`'s table (C `ref`).
    pub ref_: GrantRef,
    /// IN: the granting domain.
    pub dom: DomId,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: handle for the unmap.
    pub handle: GrantHandle,
    /// OUT: bus address for device access (`GNTMAP_device_map`).
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    /// IN: the host mapping to remove (0: none).
    pub host_addr: u64,
    /// IN: the device mapping to remove (0: none).
    pub dev_bus_addr: u64,
    /// IN: the handle from the map.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_setup_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetupTable {
    /// IN: the domain (`DOMID_SELF` unless privileged).
    pub dom: DomId,
    /// IN: how many frames to return (and at least how many to set up).
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// IN: guest handle (address) of a `xen_pfn_t` array Xen fills in.
    pub frame_list: u64,
}

/// `struct gnttab_dump_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabDumpTable {
    /// IN: the domain.
    pub dom: DomId,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_transfer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabTransfer {
    /// IN: the frame to give away.
    pub mfn: XenPfn,
    /// IN: the receiving domain.
    pub domid: DomId,
    /// IN: its `GTF_accept_transfer` grant (C `ref`).
    pub ref_: GrantRef,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `GNTCOPY_source_gref`: the copy's source is a grant reference.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`: the copy's destination is a grant reference.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `struct gnttab_copy_ptr`: one end of a [`GnttabCopy`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopyPtr {
    /// The C union `u`: a grant reference (`u.ref`, low 32 bits) or a
    /// frame (`u.gmfn`), by the `GNTCOPY_*` flag. Use the constructors.
    pub u: u64,
    /// The domain owning the grant or frame.
    pub domid: DomId,
    /// Byte offset within the page.
    pub offset: u16,
}

impl GnttabCopyPtr {
    /// An end given by grant reference (set the `GNTCOPY_*_gref` flag).
    pub const fn from_gref(gref: GrantRef, domid: DomId, offset: u16) -> Self {
        GnttabCopyPtr {
            u: gref as u64,
            domid,
            offset,
        }
    }

    /// An end given by frame number.
    pub const fn from_gmfn(gmfn: XenPfn, domid: DomId, offset: u16) -> Self {
        GnttabCopyPtr {
            u: gmfn,
            domid,
            offset,
        }
    }

    /// `u.ref`.
    pub const fn gref(&self) -> GrantRef {
        self.u as u32
    }

    /// `u.gmfn`.
    pub const fn gmfn(&self) -> XenPfn {
        self.u
    }
}

/// `struct gnttab_copy`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopy {
    /// IN: where to copy from.
    pub source: GnttabCopyPtr,
    /// IN: where to copy to.
    pub dest: GnttabCopyPtr,
    /// IN: bytes to copy (neither end may cross a page).
    pub len: u16,
    /// IN: `GNTCOPY_*` flags.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabQuerySize {
    /// IN: the domain.
    pub dom: DomId,
    /// OUT: frames currently in the table.
    pub nr_frames: u32,
    /// OUT: the most frames it may grow to.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_unmap_and_replace`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapAndReplace {
    /// IN: the host mapping to remove.
    pub host_addr: u64,
    /// IN: the address whose mapping moves to `host_addr`.
    pub new_addr: u64,
    /// IN: the handle from the map.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_set_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetVersion {
    /// IN: 1 or 2. OUT: the version now in effect.
    pub version: u32,
}

/// `struct gnttab_get_status_frames`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabGetStatusFrames {
    /// IN: length of `frame_list`.
    pub nr_frames: u32,
    /// IN: the domain.
    pub dom: DomId,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// IN: guest handle (address) of a `u64` array Xen fills in.
    pub frame_list: u64,
}

/// `struct gnttab_get_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabGetVersion {
    /// IN: the domain.
    pub dom: DomId,
    /// Padding.
    pub pad: u16,
    /// OUT: its grant-table version.
    pub version: u32,
}

/// `struct gnttab_swap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSwapGrantRef {
    /// IN: one entry.
    pub ref_a: GrantRef,
    /// IN: the other.
    pub ref_b: GrantRef,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `GNTTAB_CACHE_CLEAN`: write back the range.
pub const GNTTAB_CACHE_CLEAN: u32 = 1 << 0;
/// `GNTTAB_CACHE_INVAL`: invalidate the range.
pub const GNTTAB_CACHE_INVAL: u32 = 1 << 1;
/// `GNTTAB_CACHE_SOURCE_GREF`: `a` is a grant reference, not an address.
pub const GNTTAB_CACHE_SOURCE_GREF: u32 = 1 << 31;

/// `struct gnttab_cache_flush`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCacheFlush {
    /// The C union `a`: a bus address (`a.dev_bus_addr`) or, with
    /// `GNTTAB_CACHE_SOURCE_GREF`, a grant reference (`a.ref`, low 32 bits).
    pub a: u64,
    /// Offset within the grant.
    pub offset: u16,
    /// Bytes to operate on.
    pub length: u16,
    /// `GNTTAB_CACHE_*` operation bits.
    pub op: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_arms_round_trip() {
        let hdr = GrantEntryHeader {
            flags: GTF_PERMIT_ACCESS | GTF_SUB_PAGE,
            domid: 3,
        };
        let sub = GrantEntryV2SubPage {
            hdr,
            page_off: 128,
            length: 512,
            frame: 0x1_2345,
        };
        let entry = GrantEntryV2::from_sub_page(sub);
        assert_eq!(entry.sub_page(), sub);
        assert_eq!(entry.hdr(), hdr);
        let t = GrantEntryV2Transitive {
            hdr,
            trans_domid: 9,
            pad0: 0,
            gref: 77,
        };
        assert_eq!(GrantEntryV2::from_transitive(t).transitive(), t);
    }

    #[test]
    fn status_messages() {
        assert_eq!(gntst_message(GNTST_OKAY), Some("okay"));
        assert_eq!(gntst_message(GNTST_NO_SPACE), Some("out of space"));
        assert_eq!(gntst_message(-14), None);
        assert_eq!(gntst_message(1), None);
    }
}
