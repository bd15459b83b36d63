//! Reads a PVH guest's boot data out of memory and asks Xen for the
//! rest, then hands it to [`crate::pvh_start`] to check and combine.
//!
//! Everything `hvm_start_info` points at is at a physical address, and
//! at boot our identity map makes physical = virtual below 4 GiB. An
//! address beyond that, or a table that would not fit, is refused
//! rather than read. RAM in the memory map counts up to
//! [`RAM_LIMIT`] (512 GiB): `mm` maps what lies above 4 GiB once it
//! has frames for the page directories. The console and xenstore rings of a domU come from
//! `HVMOP_get_param`; dom0 has none.

use crate::arch::x86_64::pvh_paging::{MAPPED_LIMIT, RAM_LIMIT};
use crate::boot_info::{BootInfo, Role};
use crate::pvh_start::{self, PvhParams, PvhStartError, CMDLINE_SCAN_LIMIT};
use pv_arch::abi::hvm::{
    HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo, HVM_PARAM_CONSOLE_EVTCHN,
    HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use pv_arch::abi::xen::DOMID_SELF;
use pv_arch::hypercall::hvm::get_param;

/// Most memory-map entries read.
const MAX_MEMMAP: usize = 64;

/// Why the boot data could not be read.
#[derive(Clone, Copy, Debug)]
pub enum PvhBootError {
    /// A pointer in `hvm_start_info` is beyond the identity map.
    Unmapped(&'static str, u64),
    /// An HVM parameter (or, for `XENMEM_memory_map`, the map) could not
    /// be read.
    Param(u32, pv_arch::Errno),
    /// The data was read but is not acceptable.
    Invalid(PvhStartError),
}

impl core::fmt::Display for PvhBootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PvhBootError::Unmapped(what, addr) => write!(f, "{what} at {addr:#x} is not mapped"),
            PvhBootError::Param(index, errno) => write!(f, "HVMOP_get_param({index}): {errno}"),
            PvhBootError::Invalid(why) => why.fmt(f),
        }
    }
}

/// `len` bytes at physical address `paddr`, if all of them are mapped.
fn checked(what: &'static str, paddr: u64, len: usize) -> Result<usize, PvhBootError> {
    match paddr.checked_add(len as u64) {
        Some(end) if paddr != 0 && end <= MAPPED_LIMIT => Ok(paddr as usize),
        _ => Err(PvhBootError::Unmapped(what, paddr)),
    }
}

/// Reads everything and returns the checked [`BootInfo`].
pub fn read(start_info_paddr: u64) -> Result<BootInfo, PvhBootError> {
    let at = checked(
        "hvm_start_info",
        start_info_paddr,
        size_of::<HvmStartInfo>(),
    )?;
    // SAFETY: identity mapped (checked) and written by Xen before entry;
    // copied out with an unaligned read.
    let hsi = unsafe { (at as *const HvmStartInfo).read_unaligned() };

    let mut memmap = [HvmMemmapTableEntry::default(); MAX_MEMMAP];
    let entries = (hsi.memmap_entries as usize).min(MAX_MEMMAP);
    if entries > 0 {
        let size = entries * size_of::<HvmMemmapTableEntry>();
        let at = checked("memory map", hsi.memmap_paddr, size)?;
        for (index, entry) in memmap.iter_mut().take(entries).enumerate() {
            // SAFETY: inside the checked range, written by Xen.
            *entry = unsafe {
                (at as *const HvmMemmapTableEntry)
                    .add(index)
                    .read_unaligned()
            };
        }
    }

    let entries = if entries == 0 {
        memory_map_from_xen(&mut memmap)?
    } else {
        entries
    };

    let cmdline: &[u8] = if hsi.cmdline_paddr == 0 {
        &[]
    } else {
        let at = checked("command line", hsi.cmdline_paddr, 1)?;
        // Find the NUL, never looking past the identity map or the scan
        // limit; `pvh_start` keeps what fits (as PV does) and reports the
        // rest, so a long command line never fails the boot.
        let mut len = 0;
        while len < CMDLINE_SCAN_LIMIT && at + len < MAPPED_LIMIT as usize {
            // SAFETY: identity-mapped byte below the limit.
            let byte = unsafe { ((at + len) as *const u8).read_volatile() };
            if byte == 0 {
                break;
            }
            len += 1;
        }
        // SAFETY: the `len` bytes at `at` were just read through the
        // identity map; they are boot data Xen wrote before entry, which
        // nothing writes again (their frames stay reserved until the
        // kernel has copied them, see `PvhMemory::boot_data`), and the
        // slice is dropped before `read` returns.
        unsafe { core::slice::from_raw_parts(at as *const u8, len) }
    };
    let module = if hsi.nr_modules > 0 {
        let at = checked(
            "module list",
            hsi.modlist_paddr,
            size_of::<HvmModlistEntry>(),
        )?;
        // SAFETY: inside the checked range, written by Xen.
        let first = unsafe { (at as *const HvmModlistEntry).read_unaligned() };
        Some((first.paddr, first.size))
    } else {
        None
    };

    let params = if Role::from_flags(hsi.flags) == Role::Dom0 {
        PvhParams::default()
    } else {
        let param = |index| get_param(DOMID_SELF, index).map_err(|e| PvhBootError::Param(index, e));
        PvhParams {
            console: (
                param(HVM_PARAM_CONSOLE_PFN)?,
                param(HVM_PARAM_CONSOLE_EVTCHN)?,
            ),
            store: (param(HVM_PARAM_STORE_PFN)?, param(HVM_PARAM_STORE_EVTCHN)?),
        }
    };
    pvh_start::boot_info(&hsi, &memmap[..entries], cmdline, module, params, RAM_LIMIT)
        .map_err(PvhBootError::Invalid)
}

/// Xen's dom0 builder leaves the map out of `hvm_start_info` (version 1
/// with no entries); dom0 asks `XENMEM_memory_map` instead, which answers
/// in e820 format: 20-byte entries with the same type numbers.
fn memory_map_from_xen(out: &mut [HvmMemmapTableEntry]) -> Result<usize, PvhBootError> {
    use pv_arch::hypercall::memory::{memory_map, E820_ENTRY_SIZE};
    let mut raw = [0u8; MAX_MEMMAP * E820_ENTRY_SIZE];
    let count = memory_map(&mut raw)
        .map_err(|e| PvhBootError::Param(pv_arch::abi::memory::XENMEM_MEMORY_MAP, e))?
        .min(out.len());
    for (entry, bytes) in out
        .iter_mut()
        .zip(raw.chunks_exact(E820_ENTRY_SIZE))
        .take(count)
    {
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        *entry = HvmMemmapTableEntry {
            addr: word(0),
            size: word(8),
            type_: u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default()),
            reserved: 0,
        };
    }
    Ok(count)
}
