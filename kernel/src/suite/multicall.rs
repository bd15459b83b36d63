//! `HYPERVISOR_multicall`: a batch runs every entry, each entry's result
//! is its own, and the count's width (32 bits before 4.20, the whole
//! register from 4.20: see [`rules::multicall_count`]).

use super::rules::{self, MulticallCount};
use super::{Applies, Ctx, Outcome, Test};
use crate::boot_info::BootMode;
use crate::suite_fail;
use alloc::format;
use pv_arch::hypercall::multicall::{self as mc, Call};
use pv_arch::hypercall::xen_version;
use pv_arch::Errno;

/// `XENVER_version` as a direct call returns it: `major << 16 | minor`.
fn direct_version() -> Result<u64, Outcome> {
    let (major, minor) =
        xen_version::version().map_err(|e| suite_fail!("XENVER_version directly: {e}"))?;
    Ok(u64::from(major) << 16 | u64::from(minor))
}

/// Runs `calls` as one batch and checks each entry's result against
/// `want`, given what `XENVER_version` returns directly.
fn expect_batch<const N: usize>(
    calls: [Call; N],
    want: impl FnOnce(u64) -> mc::Results<N>,
) -> Outcome {
    let want = match direct_version() {
        Ok(version) => want(version),
        Err(outcome) => return outcome,
    };
    match mc::multicall(calls) {
        Ok(results) if results == want => Outcome::Pass,
        other => suite_fail!("expected {want:?}, got {other:?}"),
    }
}

/// Three `XENVER_version` entries and a `SCHEDOP_yield`: each entry's
/// result is what the call returns on its own.
fn batch_results(_: &Ctx<'_>) -> Outcome {
    let calls = [
        Call::XenVersion,
        Call::SchedYield,
        Call::XenVersion,
        Call::XenVersion,
    ];
    expect_batch(calls, |v| [Ok(v), Ok(0), Ok(v), Ok(v)])
}

/// `nr_calls` 0: nothing to run, the multicall returns 0.
fn empty_batch(_: &Ctx<'_>) -> Outcome {
    expect_batch([], |_| [])
}

/// An entry naming a hypercall Xen does not have gets `-ENOSYS` in its
/// own result; the entries around it still run, and the multicall itself
/// succeeds.
fn unknown_op_entry(_: &Ctx<'_>) -> Outcome {
    let calls = [
        Call::XenVersion,
        Call::Unknown(mc::FIRST_UNKNOWN_OP),
        Call::XenVersion,
        Call::Unknown(0xffff),
    ];
    let enosys = Err(Errno::ENOSYS);
    expect_batch(calls, |v| [Ok(v), enosys, Ok(v), enosys])
}

/// The upper bits of the count register put there: `2^58`, so that the
/// list's size in bytes (`count * 64`) overflows 64 bits.
const COUNT_HIGH: u32 = 1 << 26;

/// How wide `nr_calls` is differs by release ([`rules::multicall_count`]).
/// The count given is `2^58 | 2` with two entries. Where Xen takes 32
/// bits, both entries run and nothing more. Where it takes the whole
/// register, a PV guest's list is range-checked first and `2^58` entries
/// of 64 bytes cannot be in range: the multicall is refused with
/// `EFAULT` before any entry runs. A PVH guest's list is not
/// range-checked (HVM guest handles always pass), so Xen would run
/// whatever follows the two entries: that case is skipped.
fn count_width(ctx: &Ctx<'_>) -> Outcome {
    let release = match super::version::release() {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let version = match direct_version() {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let expectation = rules::multicall_count(release);
    let calls = [Call::XenVersion, Call::XenVersion];
    match (expectation.value, ctx.boot.mode) {
        (MulticallCount::Unknown, _) => {
            Outcome::Skip(format!("Xen {release}: {}", expectation.rule))
        }
        (MulticallCount::Full, BootMode::Pvh) => Outcome::Skip(format!(
            "Xen {release} counts all 64 bits ({}), and a PVH guest's list is not range-checked: \
             an oversized count would run whatever follows the list",
            expectation.rule
        )),
        (MulticallCount::Full, BootMode::Pv) => {
            // SAFETY: a PV guest's list is range-checked against the
            // count before any entry is read; 2^58 entries overflow it.
            match unsafe { mc::multicall_wide_count(calls, COUNT_HIGH) } {
                Err(Errno::EFAULT) => Outcome::PassWith(format!(
                    "count 2^58 | 2 refused with EFAULT (rule: {})",
                    expectation.rule
                )),
                other => suite_fail!(
                    "count 2^58 | 2: expected EFAULT ({}), got {other:?}",
                    expectation.rule
                ),
            }
        }
        (MulticallCount::Bits32, _) => {
            // SAFETY: this release takes the low 32 bits (the rule), so
            // only the two entries are read.
            match unsafe { mc::multicall_wide_count(calls, COUNT_HIGH) } {
                Ok(results) if results == [Ok(version), Ok(version)] => Outcome::PassWith(format!(
                    "count 2^58 | 2 ran the 2 entries (rule: {})",
                    expectation.rule
                )),
                other => suite_fail!(
                    "count 2^58 | 2: expected the 2 entries to run ({}), got {other:?}",
                    expectation.rule
                ),
            }
        }
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
        name: "nr_calls_width_by_release",
        applies: Applies::Both,
        run: count_width,
    },
];
