//! `VCPUOP_*` as a one-vCPU guest sees them: the runstate of the vCPU
//! that asks, and the refusals for a vCPU that is running already or
//! does not exist; and, where the domain was given a second vCPU
//! (`vcpus=2`: the rig's domU conformance guests), what can be seen of
//! it while it stays down. (Bringing it up needs an SMP kernel; those
//! checks are not here.)

use super::{expect_errno, Applies, Ctx, Outcome, Test};
use crate::{sched, suite_fail};
use core::time::Duration;
use pv_arch::abi::vcpu::{VcpuRunstateInfo, RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNING};
use pv_arch::hypercall::vcpu;
use pv_arch::Errno;

/// vCPU ids no domain in the rig has (the domains here have one or two
/// vCPUs): a small one, a large one, and the top of the `unsigned int`
/// range.
const MISSING_VCPUS: [u32; 3] = [200, 0x7fff_ffff, u32::MAX];

/// Index of the blocked time in `VcpuRunstateInfo::time`.
const BLOCKED: usize = RUNSTATE_BLOCKED as usize;

/// The runstate's four times added up: time since the vCPU was created
/// (Xen adds the current state's time up to `NOW()` before copying out).
fn total(info: &VcpuRunstateInfo) -> u64 {
    info.time.iter().sum()
}

fn runstate() -> Result<VcpuRunstateInfo, Outcome> {
    vcpu::get_runstate_info(0).map_err(|e| suite_fail!("VCPUOP_get_runstate_info(0): {e}"))
}

/// Across a 20 ms sleep (which blocks in Xen): both samples say
/// `running` (the vCPU asking is running), no time goes backwards, the
/// state was left and re-entered (`state_entry_time` advanced), the
/// blocked time grew, and the total grew by at least the sleep.
fn runstate_across_sleep(_: &Ctx<'_>) -> Outcome {
    let before = match runstate() {
        Ok(info) => info,
        Err(outcome) => return outcome,
    };
    sched::block_on(sched::sleep(Duration::from_millis(20)));
    let after = match runstate() {
        Ok(info) => info,
        Err(outcome) => return outcome,
    };
    if before.state != RUNSTATE_RUNNING || after.state != RUNSTATE_RUNNING {
        return suite_fail!(
            "states {} and {}, expected running (0)",
            before.state,
            after.state
        );
    }
    if let Some(i) = (0..4).find(|&i| after.time[i] < before.time[i]) {
        return suite_fail!("time[{i}] went back: {before:?} -> {after:?}");
    }
    if after.state_entry_time <= before.state_entry_time {
        return suite_fail!("state_entry_time did not advance: {before:?} -> {after:?}");
    }
    if after.time[BLOCKED] <= before.time[BLOCKED] {
        return suite_fail!("blocked time did not grow over a sleep: {before:?} -> {after:?}");
    }
    let grew = total(&after) - total(&before);
    if grew < 20_000_000 {
        return suite_fail!("the total grew {grew} ns over a 20 ms sleep");
    }
    Outcome::Pass
}

/// The total is time since the vCPU's creation on Xen's system-time
/// clock, so `system time - total` is the (fixed) system time at which
/// the vCPU was created: never negative, never later than now, and the
/// same in every sample. Five samples 5 ms apart; a host stall between
/// the hypercall and our clock read inflates one sample's offset, so the
/// two closest offsets must agree to within 1 ms (a total growing more
/// than a fifth faster or slower than system time would move every
/// offset by more than that between samples).
fn runstate_total_tracks_system_time(_: &Ctx<'_>) -> Outcome {
    const SAMPLES: usize = 5;
    let mut offsets = [0u64; SAMPLES];
    for (i, offset) in offsets.iter_mut().enumerate() {
        if i > 0 {
            sched::block_on(sched::sleep(Duration::from_millis(5)));
        }
        let info = match runstate() {
            Ok(info) => info,
            Err(outcome) => return outcome,
        };
        let (total, now) = (total(&info), crate::time::now_ns());
        // Our clock and Xen's `NOW()` may round apart by a little.
        match now.checked_add(10_000).and_then(|n| n.checked_sub(total)) {
            Some(o) if total > 0 => *offset = o,
            _ => return suite_fail!("runstate total {total} ns against system time {now} ns"),
        }
    }
    let mut sorted = offsets;
    sorted.sort_unstable();
    let closest = sorted.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(0);
    if closest > 1_000_000 {
        return suite_fail!(
            "system time - runstate total moved between every two samples (by {closest} ns or \
             more): {offsets:?}"
        );
    }
    Outcome::Pass
}

/// `VCPUOP_initialise` of the running vCPU 0: `EEXIST`. Xen reads the
/// context first (PV: `vcpu_guest_context`, PVH: `vcpu_hvm_context`) and
/// then refuses it because the vCPU is initialised already; its context
/// is not replaced.
fn initialise_running_vcpu0(_: &Ctx<'_>) -> Outcome {
    expect_errno(vcpu::initialise_zeroed(0), Errno::EEXIST)
}

/// `VCPUOP_up` of vCPU 0, which is up: nothing to do, 0, still up.
fn up_running_vcpu0(_: &Ctx<'_>) -> Outcome {
    // SAFETY: vCPU 0 is the one running this code; `up` of a running
    // vCPU starts nothing.
    let result = unsafe { vcpu::up(0) };
    match (result, vcpu::is_up(0)) {
        (Ok(()), Ok(true)) => Outcome::Pass,
        other => suite_fail!("VCPUOP_up(0), then is_up(0): {other:?}"),
    }
}

/// Every id in [`MISSING_VCPUS`] answers `call` with `ENOENT`
/// (`do_vcpu_op` looks the vCPU up before the command).
fn missing_enoent(what: &str, call: impl Fn(u32) -> Result<(), Errno>) -> Outcome {
    for id in MISSING_VCPUS {
        let result = call(id);
        if result != Err(Errno::ENOENT) {
            return suite_fail!("{what} of vCPU {id:#x}: expected ENOENT, got {result:?}");
        }
    }
    Outcome::Pass
}

fn up_missing(_: &Ctx<'_>) -> Outcome {
    // SAFETY: none of these vCPUs exists, so nothing can start.
    missing_enoent("VCPUOP_up", |id| unsafe { vcpu::up(id) })
}

fn down_missing(_: &Ctx<'_>) -> Outcome {
    missing_enoent("VCPUOP_down", vcpu::down)
}

fn initialise_and_runstate_missing(_: &Ctx<'_>) -> Outcome {
    match missing_enoent("VCPUOP_initialise", vcpu::initialise_zeroed) {
        Outcome::Pass => missing_enoent("VCPUOP_get_runstate_info", |id| {
            vcpu::get_runstate_info(id).map(drop)
        }),
        other => other,
    }
}

/// The second vCPU, if the domain has one: `Err` with the SKIP when it
/// does not (`VCPUOP_is_up(1)` answers `ENOENT`).
fn second_vcpu() -> Result<(), Outcome> {
    match vcpu::is_up(1) {
        Err(Errno::ENOENT) => Err(Outcome::Skip(
            "the domain has one vCPU (the rig's domU conformance guests get vcpus=2)".into(),
        )),
        Ok(false) => Ok(()),
        other => Err(suite_fail!(
            "VCPUOP_is_up(1) of a vCPU this kernel never brought up: expected Ok(false), got {other:?}"
        )),
    }
}

/// A second vCPU the kernel never brought up is down, and Xen accounts
/// all of its life as offline: it never ran.
fn second_vcpu_down_and_offline(_: &Ctx<'_>) -> Outcome {
    if let Err(outcome) = second_vcpu() {
        return outcome;
    }
    match vcpu::get_runstate_info(1) {
        Ok(info)
            if info.state == RUNSTATE_OFFLINE
                && info.time[RUNSTATE_RUNNING as usize] == 0
                && total(&info) > 0 =>
        {
            Outcome::Pass
        }
        other => suite_fail!(
            "VCPUOP_get_runstate_info(1) of a down vCPU: expected offline, never running, got {other:?}"
        ),
    }
}

/// `VCPUOP_down` of a vCPU that is down already succeeds and leaves it
/// down (the op only sets the vCPU's down flag).
fn down_of_down_vcpu_is_noop(_: &Ctx<'_>) -> Outcome {
    if let Err(outcome) = second_vcpu() {
        return outcome;
    }
    match (vcpu::down(1), vcpu::is_up(1)) {
        (Ok(()), Ok(false)) => Outcome::Pass,
        other => suite_fail!("VCPUOP_down(1) of a down vCPU, then is_up(1): {other:?}"),
    }
}

/// A vCPU's single-shot timer is its own to set: Xen refuses
/// `VCPUOP_set_singleshot_timer` for any vCPU but the caller (`EINVAL`).
fn singleshot_timer_of_other_vcpu_einval(_: &Ctx<'_>) -> Outcome {
    if let Err(outcome) = second_vcpu() {
        return outcome;
    }
    let soon = crate::time::now_ns().saturating_add(1_000_000_000);
    expect_errno(vcpu::set_singleshot_timer(1, soon, false), Errno::EINVAL)
}

/// The `vcpu` group.
pub const TESTS: &[Test] = &[
    Test {
        group: "vcpu",
        name: "second_vcpu_down_and_offline",
        applies: Applies::Both,
        run: second_vcpu_down_and_offline,
    },
    Test {
        group: "vcpu",
        name: "down_of_down_vcpu_is_noop",
        applies: Applies::Both,
        run: down_of_down_vcpu_is_noop,
    },
    Test {
        group: "vcpu",
        name: "singleshot_timer_of_other_vcpu_einval",
        applies: Applies::Both,
        run: singleshot_timer_of_other_vcpu_einval,
    },
    Test {
        group: "vcpu",
        name: "runstate_running_and_monotonic_across_sleep",
        applies: Applies::Both,
        run: runstate_across_sleep,
    },
    Test {
        group: "vcpu",
        name: "runstate_total_tracks_system_time",
        applies: Applies::Both,
        run: runstate_total_tracks_system_time,
    },
    Test {
        group: "vcpu",
        name: "initialise_running_vcpu0_eexist",
        applies: Applies::Both,
        run: initialise_running_vcpu0,
    },
    Test {
        group: "vcpu",
        name: "up_running_vcpu0_is_noop",
        applies: Applies::Both,
        run: up_running_vcpu0,
    },
    Test {
        group: "vcpu",
        name: "up_missing_vcpu_enoent",
        applies: Applies::Both,
        run: up_missing,
    },
    Test {
        group: "vcpu",
        name: "down_missing_vcpu_enoent",
        applies: Applies::Both,
        run: down_missing,
    },
    Test {
        group: "vcpu",
        name: "initialise_and_runstate_of_missing_vcpu_enoent",
        applies: Applies::Both,
        run: initialise_and_runstate_missing,
    },
];
