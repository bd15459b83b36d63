//! `HYPERVISOR_multicall`: several hypercalls in one trap.
//!
//! Xen runs the entries of a `multicall_entry` array in order and writes
//! each one's return value into its `result`; the multicall itself
//! returns 0 unless the batch as a whole could not be read. The safe API
//! takes [`Call`]s, a closed set of calls whose arguments carry no
//! pointers, so a batch cannot hand Xen memory it should not touch; the
//! array of raw entries is built and owned here.

use super::raw::hypercall;
use crate::abi::sched::SCHEDOP_YIELD;
use crate::abi::version::XENVER_VERSION;
use crate::abi::xen::{hypercall_nr, MulticallEntry};
use crate::errno::Errno;

/// The first hypercall number past Xen's table (`NR_hypercalls` is 64 on
/// x86): every op from here on is unknown to Xen.
pub const FIRST_UNKNOWN_OP: u64 = 64;

/// One entry of a batch: a hypercall whose arguments hold no pointers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `xen_version(XENVER_version, NULL)`: `major << 16 | minor`.
    XenVersion,
    /// `sched_op(SCHEDOP_yield, NULL)`: 0.
    SchedYield,
    /// A hypercall number Xen does not have (at least
    /// [`FIRST_UNKNOWN_OP`]; a smaller number is turned into
    /// `FIRST_UNKNOWN_OP` so the call stays unknown), all arguments 0.
    Unknown(u64),
}

impl Call {
    fn entry(self) -> MulticallEntry {
        let (op, args) = match self {
            Call::XenVersion => (
                hypercall_nr::XEN_VERSION as u64,
                [u64::from(XENVER_VERSION), 0, 0, 0, 0, 0],
            ),
            Call::SchedYield => (
                hypercall_nr::SCHED_OP as u64,
                [u64::from(SCHEDOP_YIELD), 0, 0, 0, 0, 0],
            ),
            Call::Unknown(op) => (op.max(FIRST_UNKNOWN_OP), [0; 6]),
        };
        MulticallEntry {
            op,
            result: 0,
            args,
        }
    }
}

/// What each entry of a batch returned, decoded like a direct call's
/// result (a negative value is an errno).
pub type Results<const N: usize> = [Result<u64, Errno>; N];

fn decode<const N: usize>(entries: &[MulticallEntry; N]) -> Results<N> {
    core::array::from_fn(|i| Errno::from_ret(entries[i].result as i64))
}

/// Runs `calls` as one `HYPERVISOR_multicall`. `Err` if the multicall
/// itself failed; otherwise each entry's own result.
pub fn multicall<const N: usize>(calls: [Call; N]) -> Result<Results<N>, Errno> {
    let mut entries = calls.map(Call::entry);
    let count = u32::try_from(N).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `entries` is `N` initialised entries on our stack, mutably
    // borrowed for the call (Xen reads each and writes its `result`); no
    // entry's arguments point anywhere (see `Call`).
    unsafe { run(&mut entries, u64::from(count)) }?;
    Ok(decode(&entries))
}

/// As [`multicall`], with `high` in the upper 32 bits of the count
/// register. Xen 4.17's `public/xen.h` declares `uint32_t nr_calls` and
/// its handler takes an `unsigned int`: only the low 32 bits (`N`)
/// count. Later releases take the whole register (`unsigned long`), and
/// the count is then `high << 32 | N`.
///
/// # Safety
///
/// Xen must not read entries past the array: it must count only the
/// low 32 bits, or refuse the whole count before reading any entry (a
/// PV guest's list is range-checked against the count, and a count whose
/// size in bytes overflows, `high >= 1 << 26`, fails that check; an HVM
/// or PVH guest's list is not checked so).
pub unsafe fn multicall_wide_count<const N: usize>(
    calls: [Call; N],
    high: u32,
) -> Result<Results<N>, Errno> {
    let mut entries = calls.map(Call::entry);
    let count = u32::try_from(N).map_err(|_| Errno::EINVAL)?;
    let register = u64::from(high) << 32 | u64::from(count);
    // SAFETY: as in `multicall`; that Xen counts only the low 32 bits is
    // the caller's contract.
    unsafe { run(&mut entries, register) }?;
    Ok(decode(&entries))
}

/// # Safety
///
/// `entries` must hold at least as many entries as Xen will take from
/// `count`, each a call whose pointer arguments (if any) are valid.
unsafe fn run(entries: &mut [MulticallEntry], count: u64) -> Result<u64, Errno> {
    // SAFETY: forwarded to the caller's contract.
    unsafe {
        hypercall(
            hypercall_nr::MULTICALL,
            [entries.as_mut_ptr() as u64, count, 0, 0, 0],
        )
    }
}
