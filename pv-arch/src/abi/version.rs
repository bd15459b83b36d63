//! Version and feature queries (`xen/version.h`, `xen/features.h`).
//!
//! `HYPERVISOR_xen_version(cmd, arg)`: `XENVER_version` returns
//! `major << 16 | minor` directly; the others fill in the buffer or
//! struct `arg` points to. `XENVER_get_features` reports the `XENFEAT_*`
//! bits 32 at a time.

/// `XENVER_version`: returns `major << 16 | minor`; no argument.
pub const XENVER_VERSION: u32 = 0;
/// `XENVER_extraversion`: fills a [`XenExtraversion`] (e.g. `".0"`).
pub const XENVER_EXTRAVERSION: u32 = 1;
/// `XENVER_compile_info`: fills a [`XenCompileInfo`].
pub const XENVER_COMPILE_INFO: u32 = 2;
/// `XENVER_capabilities`: fills a [`XenCapabilitiesInfo`]
/// (e.g. `"xen-3.0-x86_64 hvm-3.0-x86_64 ..."`).
pub const XENVER_CAPABILITIES: u32 = 3;
/// `XENVER_changeset`: fills a [`XenChangesetInfo`].
pub const XENVER_CHANGESET: u32 = 4;
/// `XENVER_platform_parameters`: fills a [`XenPlatformParameters`].
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// `XENVER_get_features`: fills a [`XenFeatureInfo`].
pub const XENVER_GET_FEATURES: u32 = 6;
/// `XENVER_pagesize`: returns the page size; no argument.
pub const XENVER_PAGESIZE: u32 = 7;
/// `XENVER_guest_handle`: fills the 16-byte domain handle (UUID).
pub const XENVER_GUEST_HANDLE: u32 = 8;
/// `XENVER_commandline`: fills a [`XenCommandline`] (Xen's own).
pub const XENVER_COMMANDLINE: u32 = 9;
/// `XENVER_build_id`: fills a [`XenBuildId`] and the bytes after it.
pub const XENVER_BUILD_ID: u32 = 10;

/// `XENVER_extraversion2` (Xen 4.20's `version.h`): [`XENVER_EXTRAVERSION`]
/// through a [`XenVarbuf`], not truncated, no NUL.
pub const XENVER_EXTRAVERSION2: u32 = 11;
/// `XENVER_capabilities2`: [`XENVER_CAPABILITIES`] through a [`XenVarbuf`].
pub const XENVER_CAPABILITIES2: u32 = 12;
/// `XENVER_changeset2`: [`XENVER_CHANGESET`] through a [`XenVarbuf`].
pub const XENVER_CHANGESET2: u32 = 13;
/// `XENVER_commandline2`: [`XENVER_COMMANDLINE`] through a [`XenVarbuf`].
pub const XENVER_COMMANDLINE2: u32 = 14;

/// `struct xen_varbuf`'s fixed part: the bytes follow it (a flexible
/// array of `unsigned char`, at offset 4). A null argument asks for the
/// size instead; Xen returns the number of bytes written, with no NUL.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenVarbuf {
    /// IN: size of the buffer after this header, in bytes.
    pub len: u32,
}

/// `xen_extraversion_t`: NUL-terminated version suffix.
pub type XenExtraversion = [u8; 16];
/// `XEN_EXTRAVERSION_LEN`.
pub const XEN_EXTRAVERSION_LEN: usize = 16;
/// `xen_capabilities_info_t`: NUL-terminated capability list.
pub type XenCapabilitiesInfo = [u8; 1024];
/// `XEN_CAPABILITIES_INFO_LEN`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// `xen_changeset_info_t`: NUL-terminated source changeset.
pub type XenChangesetInfo = [u8; 64];
/// `XEN_CHANGESET_INFO_LEN`.
pub const XEN_CHANGESET_INFO_LEN: usize = 64;
/// `xen_commandline_t`: Xen's NUL-terminated command line.
pub type XenCommandline = [u8; 1024];
/// `xen_domain_handle_t`: a domain's 16-byte handle.
pub type XenDomainHandle = [u8; 16];

/// `struct xen_compile_info`: NUL-terminated strings about Xen's build.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenCompileInfo {
    /// Compiler used.
    pub compiler: [u8; 64],
    /// Who built it.
    pub compile_by: [u8; 16],
    /// Their domain.
    pub compile_domain: [u8; 32],
    /// When.
    pub compile_date: [u8; 32],
}

/// `struct xen_platform_parameters`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenPlatformParameters {
    /// Lowest virtual address Xen reserves in guest address spaces.
    pub virt_start: u64,
}

/// `struct xen_feature_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenFeatureInfo {
    /// IN: which group of 32 features.
    pub submap_idx: u32,
    /// OUT: bit `n` set means feature `32 * submap_idx + n` is present.
    pub submap: u32,
}

/// `struct xen_build_id`: a length, followed in memory by that many
/// bytes of build id (a C flexible array, not part of this struct).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenBuildId {
    /// IN: room after this header. OUT: bytes written.
    pub len: u32,
}

/// `XENFEAT_writable_page_tables`: page tables may be written directly.
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// `XENFEAT_writable_descriptor_tables`: GDT/LDT may be written directly.
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// `XENFEAT_auto_translated_physmap`: Xen translates guest frames
/// (HVM/PVH: no p2m for the guest to keep).
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// `XENFEAT_supervisor_mode_kernel`: the kernel runs in ring 0.
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// `XENFEAT_pae_pgdir_above_4gb`: PAE page directories may live above 4 GiB.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// `XENFEAT_mmu_pt_update_preserve_ad`: `MMU_PT_UPDATE_PRESERVE_AD` works.
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// `XENFEAT_highmem_assist`: `MMUEXT_CLEAR_PAGE` and `MMUEXT_COPY_PAGE` work.
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// `XENFEAT_gnttab_map_avail_bits`: `GNTMAP_guest_avail_mask` is honoured.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// `XENFEAT_hvm_callback_vector`: `HVM_PARAM_CALLBACK_TYPE_VECTOR` works.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// `XENFEAT_hvm_safe_pvclock`: the PV clock is usable in HVM guests.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// `XENFEAT_hvm_pirqs`: HVM guests get PIRQs as event channels.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// `XENFEAT_dom0`: this domain is dom0.
pub const XENFEAT_DOM0: u32 = 11;
/// `XENFEAT_grant_map_identity`: deprecated (Arm); Xen 4.17's header
/// keeps this number only inside a comment, so the bit is never reported.
pub const XENFEAT_GRANT_MAP_IDENTITY: u32 = 12;
/// `XENFEAT_memory_op_vnode_supported`: `XENMEMF_vnode` is understood.
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// `XENFEAT_ARM_SMCCC_supported`: SMCCC calls are handled (Arm).
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// `XENFEAT_linux_rsdp_unrestricted`: the RSDP may be anywhere.
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// `XENFEAT_not_direct_mapped`: guest memory is not 1:1 with machine.
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// `XENFEAT_direct_mapped`: guest memory is 1:1 with machine.
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// `XENFEAT_runstate_phys_area` (Xen 4.18+): `VCPUOP_register_runstate_phys_area`
/// is available.
pub const XENFEAT_RUNSTATE_PHYS_AREA: u32 = 18;
/// `XENFEAT_vcpu_time_phys_area` (Xen 4.18+):
/// `VCPUOP_register_vcpu_time_phys_area` is available.
pub const XENFEAT_VCPU_TIME_PHYS_AREA: u32 = 19;
/// `XENFEAT_NR_SUBMAPS`: groups of 32 features defined.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;
