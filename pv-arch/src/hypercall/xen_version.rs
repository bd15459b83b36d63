//! `HYPERVISOR_xen_version`: which Xen this is and what it offers.

use super::raw::hypercall;
use crate::abi::version::*;
use crate::abi::xen::hypercall_nr;
use crate::errno::Errno;

/// Issues `XENVER_<cmd>` with `arg` (0 for none).
///
/// # Safety
///
/// `arg` must be 0 or point to the buffer `cmd` fills, writable for its
/// whole size during the call.
unsafe fn xen_version(cmd: u32, arg: u64) -> Result<u64, Errno> {
    // SAFETY: forwarded to the caller's contract.
    unsafe { hypercall(hypercall_nr::XEN_VERSION, [u64::from(cmd), arg, 0, 0, 0]) }
}

/// `XENVER_version`: `(major, minor)`.
pub fn version() -> Result<(u16, u16), Errno> {
    // SAFETY: no argument.
    let v = unsafe { xen_version(XENVER_VERSION, 0) }?;
    Ok(((v >> 16) as u16, v as u16))
}

/// `XENVER_extraversion`: e.g. `".5"`, NUL padded.
pub fn extraversion() -> Result<XenExtraversion, Errno> {
    let mut buf: XenExtraversion = [0; XEN_EXTRAVERSION_LEN];
    // SAFETY: Xen writes at most XEN_EXTRAVERSION_LEN bytes into `buf`.
    unsafe { xen_version(XENVER_EXTRAVERSION, buf.as_mut_ptr() as u64) }?;
    Ok(buf)
}

/// `XENVER_get_features`: the 32 feature bits of group `submap_idx`.
pub fn features(submap_idx: u32) -> Result<u32, Errno> {
    let mut info = XenFeatureInfo {
        submap_idx,
        submap: 0,
    };
    // SAFETY: Xen reads and writes one `xen_feature_info` in `info`.
    unsafe { xen_version(XENVER_GET_FEATURES, &raw mut info as u64) }?;
    Ok(info.submap)
}

/// `XENVER_pagesize`.
pub fn page_size() -> Result<u64, Errno> {
    // SAFETY: no argument.
    unsafe { xen_version(XENVER_PAGESIZE, 0) }
}

/// `XENVER_platform_parameters`: the start of Xen's reserved range.
pub fn platform_parameters() -> Result<XenPlatformParameters, Errno> {
    let mut params = XenPlatformParameters::default();
    // SAFETY: Xen writes one `xen_platform_parameters` into `params`.
    unsafe { xen_version(XENVER_PLATFORM_PARAMETERS, &raw mut params as u64) }?;
    Ok(params)
}

/// An unknown `XENVER_*` command, for the suite's refusal check.
pub fn unknown_command(cmd: u32) -> Result<u64, Errno> {
    let mut scratch = [0u64; 128];
    // SAFETY: a 1 KiB writable buffer covers anything a command could
    // write; an unknown command writes nothing.
    unsafe { xen_version(cmd, scratch.as_mut_ptr() as u64) }
}
