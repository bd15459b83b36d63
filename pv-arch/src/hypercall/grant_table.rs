//! `HYPERVISOR_grant_table_op`: our own grant table, and mapping other
//! domains' grants.
//!
//! The hypercall takes a command, a pointer to an array of the command's
//! structs and a count. Most commands report success per struct in a
//! `status` field (`GNTST_*`, see [`crate::abi::grant_table`]) and return
//! 0 from the hypercall itself; the hypercall's errno is only for
//! arguments Xen could not even read (`EFAULT`), a bad count (`EINVAL`)
//! or an unknown command (`ENOSYS`). The wrappers here fold both into
//! [`GnttabError`] for single-struct commands; the batch commands
//! ([`map_grant_ref`], [`unmap_grant_ref`], [`copy`]) leave each struct's
//! status for the caller to read.
//!
//! Mapping, unmapping and copying change what our virtual addresses or
//! frames hold, so they are `unsafe`; the table queries are safe.

use super::raw::hypercall;
use crate::abi::grant_table::*;
use crate::abi::xen::{hypercall_nr, DomId, XenPfn};
use crate::errno::Errno;
use core::fmt;

/// Why a grant-table command failed: the hypercall itself, or Xen's
/// per-operation `GNTST_*` status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GnttabError {
    /// The hypercall returned an errno (nothing was done).
    Errno(Errno),
    /// The operation ran and reported this `GNTST_*` status (negative,
    /// or in rare cases a positive value Xen leaks out; never 0).
    Status(i16),
}

impl From<Errno> for GnttabError {
    fn from(errno: Errno) -> Self {
        GnttabError::Errno(errno)
    }
}

impl fmt::Display for GnttabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GnttabError::Errno(errno) => write!(f, "{errno}"),
            GnttabError::Status(status) => match gntst_message(status) {
                Some(message) => write!(f, "GNTST {status} ({message})"),
                None => write!(f, "GNTST {status}"),
            },
        }
    }
}

/// `Ok` for `GNTST_okay`, else the status as an error.
pub fn check_status(status: i16) -> Result<(), GnttabError> {
    if status == GNTST_OKAY {
        Ok(())
    } else {
        Err(GnttabError::Status(status))
    }
}

/// Issues `GNTTABOP_<cmd>` on `count` structs at `args`.
///
/// # Safety
///
/// `args` must point to `count` structs of the type `cmd` expects, valid
/// for Xen's reads and writes during the call, and the command's effects
/// (on mappings, frames, the table) must be safe for the caller.
unsafe fn grant_table_op<T>(cmd: u32, args: *mut T, count: u32) -> Result<u64, Errno> {
    // SAFETY: the caller upholds the command's contract.
    unsafe {
        hypercall(
            hypercall_nr::GRANT_TABLE_OP,
            [u64::from(cmd), args as u64, u64::from(count), 0, 0],
        )
    }
}

/// Issues a command that takes exactly one struct and changes no mapping.
fn single<T>(cmd: u32, arg: &mut T) -> Result<(), Errno> {
    // SAFETY: every caller in this module pairs `cmd` with its own struct
    // type; the struct lives on the caller's stack, mutably borrowed for
    // the call, and the commands routed here (setup_table, query_size,
    // set_version, get_version, get_status_frames) only read and write
    // that struct and the frame list it points to, which the caller
    // sizes (see each wrapper).
    unsafe { grant_table_op(cmd, arg as *mut T, 1) }.map(drop)
}

/// `u32` length of a caller's list, refusing lists too long to describe.
fn list_len<T>(list: &[T]) -> Result<u32, Errno> {
    u32::try_from(list.len()).map_err(|_| Errno::E2BIG)
}

/// `GNTTABOP_setup_table`: grow `dom`'s table to at least
/// `frame_list.len()` frames and write that many of its frame numbers
/// into `frame_list` (machine frames, for a PV guest). `dom` is
/// `DOMID_SELF` unless we are privileged over another domain.
pub fn setup_table(dom: DomId, frame_list: &mut [XenPfn]) -> Result<(), GnttabError> {
    let mut arg = GnttabSetupTable {
        dom,
        nr_frames: list_len(frame_list)?,
        status: GNTST_OKAY,
        frame_list: frame_list.as_mut_ptr() as u64,
    };
    // Xen writes at most `nr_frames` = `frame_list.len()` entries.
    single(GNTTABOP_SETUP_TABLE, &mut arg)?;
    check_status(arg.status)
}

/// The answer of [`query_size`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSize {
    /// Frames in the table now.
    pub nr_frames: u32,
    /// The most frames it may grow to.
    pub max_nr_frames: u32,
}

/// `GNTTABOP_query_size`: how big `dom`'s table is and may become.
pub fn query_size(dom: DomId) -> Result<TableSize, GnttabError> {
    let mut arg = GnttabQuerySize {
        dom,
        ..GnttabQuerySize::default()
    };
    single(GNTTABOP_QUERY_SIZE, &mut arg)?;
    check_status(arg.status)?;
    Ok(TableSize {
        nr_frames: arg.nr_frames,
        max_nr_frames: arg.max_nr_frames,
    })
}

/// `GNTTABOP_set_version`: switch our table to `version` (1 or 2).
/// Returns the version now in effect. Xen clears every entry but the
/// first [`GNTTAB_NR_RESERVED_ENTRIES`] on a switch and refuses it
/// (`EBUSY`) while any other entry is mapped, or (going back to 1) while
/// we still map a status frame.
pub fn set_version(version: u32) -> Result<u32, Errno> {
    let mut arg = GnttabSetVersion { version };
    single(GNTTABOP_SET_VERSION, &mut arg)?;
    Ok(arg.version)
}

/// `GNTTABOP_get_version`: the table version `dom` uses.
pub fn get_version(dom: DomId) -> Result<u32, Errno> {
    let mut arg = GnttabGetVersion {
        dom,
        pad: 0,
        version: 0,
    };
    single(GNTTABOP_GET_VERSION, &mut arg)?;
    Ok(arg.version)
}

/// `GNTTABOP_get_status_frames`: the frame numbers of `dom`'s version 2
/// status frames, `frame_list.len()` of them.
pub fn get_status_frames(dom: DomId, frame_list: &mut [u64]) -> Result<(), GnttabError> {
    let mut arg = GnttabGetStatusFrames {
        nr_frames: list_len(frame_list)?,
        dom,
        status: GNTST_OKAY,
        frame_list: frame_list.as_mut_ptr() as u64,
    };
    // Xen writes at most `nr_frames` = `frame_list.len()` entries.
    single(GNTTABOP_GET_STATUS_FRAMES, &mut arg)?;
    check_status(arg.status)
}

/// `GNTTABOP_map_grant_ref` on every struct of `ops`; each one's
/// `status`, `handle` and `dev_bus_addr` say how it went.
///
/// # Safety
///
/// For every op with `GNTMAP_host_map`, `host_addr` (a virtual address,
/// or with `GNTMAP_contains_pte` the machine address of a PTE) names a
/// page whose old contents no Rust reference points into: Xen replaces
/// its mapping with the granted frame, and the page must then be used
/// only as shared memory (volatile or atomic accesses) until unmapped.
pub unsafe fn map_grant_ref(ops: &mut [GnttabMapGrantRef]) -> Result<(), Errno> {
    let count = list_len(ops)?;
    // SAFETY: `ops` is `count` map structs, borrowed for the call; the
    // caller vouches for the mappings they create.
    unsafe { grant_table_op(GNTTABOP_MAP_GRANT_REF, ops.as_mut_ptr(), count) }.map(drop)
}

/// What one successful map gave back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// The handle to unmap with.
    pub handle: GrantHandle,
    /// The frame's bus (machine) address.
    pub dev_bus_addr: u64,
}

/// Maps grant `gref` of domain `dom` with `flags` (`GNTMAP_*`) at
/// `host_addr`: one [`map_grant_ref`] op.
///
/// # Safety
///
/// As for [`map_grant_ref`].
pub unsafe fn map_grant(
    host_addr: u64,
    flags: u32,
    dom: DomId,
    gref: GrantRef,
) -> Result<Mapped, GnttabError> {
    let mut op = [GnttabMapGrantRef {
        host_addr,
        flags,
        ref_: gref,
        dom,
        ..GnttabMapGrantRef::default()
    }];
    // SAFETY: the caller upholds `map_grant_ref`'s contract for this op.
    unsafe { map_grant_ref(&mut op) }?;
    check_status(op[0].status)?;
    Ok(Mapped {
        handle: op[0].handle,
        dev_bus_addr: op[0].dev_bus_addr,
    })
}

/// `GNTTABOP_unmap_grant_ref` on every struct of `ops`; each one's
/// `status` says how it went.
///
/// # Safety
///
/// No Rust reference may point into a page being unmapped: with
/// `host_addr` set, Xen leaves that virtual page unmapped (not present).
pub unsafe fn unmap_grant_ref(ops: &mut [GnttabUnmapGrantRef]) -> Result<(), Errno> {
    let count = list_len(ops)?;
    // SAFETY: `ops` is `count` unmap structs, borrowed for the call; the
    // caller vouches that nothing uses the pages being unmapped.
    unsafe { grant_table_op(GNTTABOP_UNMAP_GRANT_REF, ops.as_mut_ptr(), count) }.map(drop)
}

/// Undoes one mapping: one [`unmap_grant_ref`] op.
///
/// # Safety
///
/// As for [`unmap_grant_ref`].
pub unsafe fn unmap_grant(
    host_addr: u64,
    dev_bus_addr: u64,
    handle: GrantHandle,
) -> Result<(), GnttabError> {
    let mut op = [GnttabUnmapGrantRef {
        host_addr,
        dev_bus_addr,
        handle,
        status: GNTST_OKAY,
    }];
    // SAFETY: the caller upholds `unmap_grant_ref`'s contract for this op.
    unsafe { unmap_grant_ref(&mut op) }?;
    check_status(op[0].status)
}

/// `GNTTABOP_copy` on every struct of `ops`; each one's `status` says
/// how it went.
///
/// # Safety
///
/// Every destination given by frame number (no `GNTCOPY_dest_gref`) must
/// be a frame whose bytes no Rust reference assumes unchanged, since Xen
/// writes into it.
pub unsafe fn copy(ops: &mut [GnttabCopy]) -> Result<(), Errno> {
    let count = list_len(ops)?;
    // SAFETY: `ops` is `count` copy structs, borrowed for the call; the
    // caller vouches for the destination frames.
    unsafe { grant_table_op(GNTTABOP_COPY, ops.as_mut_ptr(), count) }.map(drop)
}

/// A `GNTTABOP_*` command with an explicit `count`, on one zeroed 64-byte
/// buffer: for the suite's checks that Xen refuses unknown commands and
/// bad counts. Only commands that read and write their own struct
/// (setup_table with a zero frame count, query_size, get_version,
/// get_status_frames with zero frames) or none are accepted; any other
/// returns `EPERM` without calling Xen.
pub fn probe_command(cmd: u32, count: u32) -> Result<(), Errno> {
    let harmless = matches!(
        cmd & 0xfff,
        GNTTABOP_SETUP_TABLE
            | GNTTABOP_QUERY_SIZE
            | GNTTABOP_GET_VERSION
            | GNTTABOP_GET_STATUS_FRAMES
            | GNTTABOP_DUMP_TABLE
    ) || (cmd & 0xfff) > GNTTABOP_CACHE_FLUSH;
    if !harmless {
        return Err(Errno::EPERM);
    }
    let mut buffer = [0u64; 8];
    // SAFETY: the commands let through only read and write one struct
    // (at most 24 bytes) in `buffer`; a zeroed setup_table or
    // get_status_frames struct asks for zero frames, so Xen writes no
    // frame list; unknown commands are refused before any access. A count
    // other than 1 on these commands is refused before any access, and
    // Xen never reads more than one struct of them.
    unsafe { grant_table_op(cmd, buffer.as_mut_ptr(), count) }.map(drop)
}
