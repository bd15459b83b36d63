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

/// `XENVER_capabilities`: e.g. `"xen-3.0-x86_64 hvm-3.0-x86_64 ..."`,
/// NUL padded (truncated at 1023 bytes).
pub fn capabilities() -> Result<XenCapabilitiesInfo, Errno> {
    let mut buf: XenCapabilitiesInfo = [0; XEN_CAPABILITIES_INFO_LEN];
    // SAFETY: Xen writes at most XEN_CAPABILITIES_INFO_LEN bytes into `buf`.
    unsafe { xen_version(XENVER_CAPABILITIES, buf.as_mut_ptr() as u64) }?;
    Ok(buf)
}

/// `XENVER_changeset`: the source changeset, NUL padded (truncated at 63
/// bytes).
pub fn changeset() -> Result<XenChangesetInfo, Errno> {
    let mut buf: XenChangesetInfo = [0; XEN_CHANGESET_INFO_LEN];
    // SAFETY: Xen writes at most XEN_CHANGESET_INFO_LEN bytes into `buf`.
    unsafe { xen_version(XENVER_CHANGESET, buf.as_mut_ptr() as u64) }?;
    Ok(buf)
}

/// `XENVER_commandline`: Xen's command line, NUL padded (truncated at
/// 1023 bytes).
pub fn commandline() -> Result<XenCommandline, Errno> {
    let mut buf: XenCommandline = [0; 1024];
    // SAFETY: Xen writes at most 1024 bytes (`xen_commandline_t`) into `buf`.
    unsafe { xen_version(XENVER_COMMANDLINE, buf.as_mut_ptr() as u64) }?;
    Ok(buf)
}

/// The string ops Xen 4.20's `version.h` adds, which answer through a
/// `xen_varbuf` and neither truncate nor NUL-terminate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarbufOp {
    /// `XENVER_extraversion2`.
    Extraversion,
    /// `XENVER_capabilities2`.
    Capabilities,
    /// `XENVER_changeset2`.
    Changeset,
    /// `XENVER_commandline2`.
    Commandline,
}

impl VarbufOp {
    /// All four, in op-number order.
    pub const ALL: [VarbufOp; 4] = [
        VarbufOp::Extraversion,
        VarbufOp::Capabilities,
        VarbufOp::Changeset,
        VarbufOp::Commandline,
    ];

    /// The `XENVER_*2` number.
    pub fn cmd(self) -> u32 {
        match self {
            VarbufOp::Extraversion => XENVER_EXTRAVERSION2,
            VarbufOp::Capabilities => XENVER_CAPABILITIES2,
            VarbufOp::Changeset => XENVER_CHANGESET2,
            VarbufOp::Commandline => XENVER_COMMANDLINE2,
        }
    }
}

/// A `xen_varbuf` with room for `N` bytes: the header Xen reads, then
/// the bytes it writes.
#[repr(C)]
pub struct Varbuf<const N: usize> {
    header: XenVarbuf,
    bytes: [u8; N],
    written: usize,
}

impl<const N: usize> Varbuf<N> {
    /// The bytes Xen wrote.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.written.min(N)]
    }
}

/// `XENVER_*2` with a null argument: the size of the answer in bytes.
pub fn varbuf_size(op: VarbufOp) -> Result<usize, Errno> {
    // SAFETY: a null argument asks for the size; Xen writes nothing.
    unsafe { xen_version(op.cmd(), 0) }.map(|n| n as usize)
}

/// `XENVER_*2` into a buffer of `N` bytes that tells Xen it holds
/// `claimed` (at most `N`; less to check Xen's refusals). Xen fails with
/// `ENOBUFS` when the answer is longer than `claimed` and `EINVAL` when
/// `claimed` is 0.
pub fn varbuf<const N: usize>(op: VarbufOp, claimed: u32) -> Result<Varbuf<N>, Errno> {
    let mut buf = Varbuf {
        header: XenVarbuf {
            len: claimed.min(N as u32),
        },
        bytes: [0; N],
        written: 0,
    };
    // SAFETY: `buf` starts with the `xen_varbuf` header, and the header
    // claims no more bytes than follow it (`bytes`, right after the 4-byte
    // header in this `repr(C)` struct), so Xen writes within `buf`.
    let written = unsafe { xen_version(op.cmd(), &raw mut buf as u64) }?;
    buf.written = written as usize;
    Ok(buf)
}

/// An unknown `XENVER_*` command, for the suite's refusal check.
pub fn unknown_command(cmd: u32) -> Result<u64, Errno> {
    let mut scratch = [0u64; 128];
    // SAFETY: a 1 KiB writable buffer covers anything a command could
    // write; an unknown command writes nothing.
    unsafe { xen_version(cmd, scratch.as_mut_ptr() as u64) }
}
