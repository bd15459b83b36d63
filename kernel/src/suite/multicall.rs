//! `HYPERVISOR_multicall`: a batch runs every entry, each entry's result
//! is its own, and the count is 32 bits wide.

use super::{Applies, Ctx, Outcome, Test};
use crate::suite_fail;
use pv_arch::hypercall::multicall::{self as mc, Call};
use pv_arch::hypercall::xen_version;
use pv_arch::Errno;

/// `XENVER_version` as a direct call returns it: `major << 16 | minor`.
fn direct_version() -> Result<u64, Outcome> {
    let (major, minor) =
        xen_version::version().map_err(|e| suite_fail!("XENVER_version directly: {e}"))?;
    Ok(u64::from(major) << 16 | u64::from(minor))
}

/// Three `XENVER_version` entries and a `SCHEDOP_yield`: each entry's
/// result is what the call returns on its own.
fn batch_results(_: &Ctx<'_>) -> Outcome {
    let version = match direct_version() {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let calls = [
        Call::XenVersion,
        Call::SchedYield,
        Call::XenVersion,
        Call::XenVersion,
    ];
    let want = [Ok(version), Ok(0), Ok(version), Ok(version)];
    match mc::multicall(calls) {
        Ok(results) if results == want => Outcome::Pass,
        other => suite_fail!("expected {want:?}, got {other:?}"),
    }
}

/// `nr_calls` 0: nothing to run, the multicall returns 0.
fn empty_batch(_: &Ctx<'_>) -> Outcome {
    match mc::multicall([]) {
        Ok([]) => Outcome::Pass,
        Err(e) => suite_fail!("an empty batch: {e}"),
    }
}

/// An entry naming a hypercall Xen does not have gets `-ENOSYS` in its
/// own result; the entries around it still run, and the multicall itself
/// succeeds.
fn unknown_op_entry(_: &Ctx<'_>) -> Outcome {
    let version = match direct_version() {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let calls = [
        Call::XenVersion,
        Call::Unknown(mc::FIRST_UNKNOWN_OP),
        Call::XenVersion,
        Call::Unknown(0xffff),
    ];
    let want = [
        Ok(version),
        Err(Errno::ENOSYS),
        Ok(version),
        Err(Errno::ENOSYS),
    ];
    match mc::multicall(calls) {
        Ok(results) if results == want => Outcome::Pass,
        other => suite_fail!("expected {want:?}, got {other:?}"),
    }
}

/// `public/xen.h`: `HYPERVISOR_multicall(multicall_entry_t call_list[],
/// uint32_t nr_calls)`, and Xen's `do_multicall` takes an `unsigned int`:
/// the upper half of the count register is not part of the count. A
/// count of `1 << 32 | 2` runs exactly the two entries given (a
/// hypervisor reading 64 bits would see four thousand million entries).
fn count_is_32_bits(_: &Ctx<'_>) -> Outcome {
    let version = match direct_version() {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    // SAFETY: Xen 4.17 and 4.20 (every release the rig runs) declare and
    // take `nr_calls` as 32 bits, so only the two entries are read.
    let result = unsafe { mc::multicall_wide_count([Call::XenVersion, Call::XenVersion], 1) };
    match result {
        Ok(results) if results == [Ok(version), Ok(version)] => Outcome::Pass,
        other => suite_fail!("count 1 << 32 | 2: expected both entries to run, got {other:?}"),
    }
}

/// The `multicall` group.
pub const TESTS: &[Test] = &[
    Test {
        group: "multicall",
        name: "batch_entry_results_match_direct_calls",
        applies: Applies::Both,
        run: batch_results,
    },
    Test {
        group: "multicall",
        name: "empty_batch_returns_0",
        applies: Applies::Both,
        run: empty_batch,
    },
    Test {
        group: "multicall",
        name: "unknown_op_entry_enosys_others_run",
        applies: Applies::Both,
        run: unknown_op_entry,
    },
    Test {
        group: "multicall",
        name: "nr_calls_upper_32_bits_ignored",
        applies: Applies::Both,
        run: count_is_32_bits,
    },
];
