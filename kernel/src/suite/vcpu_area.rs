//! Xen 4.18's vCPU areas registered by guest-physical address:
//! `VCPUOP_register_runstate_phys_area` and
//! `VCPUOP_register_vcpu_time_phys_area`.
//!
//! Each check first asks whether the hypervisor has the op (its
//! `XENFEAT_*_phys_area` bit, weighed against the release by
//! [`rules::phys_area`]): on 4.17 they skip, saying so; on 4.18 and later
//! a missing bit is a regression. Then a page is registered (see
//! [`RegisteredArea`], which unregisters before the page can be freed),
//! Xen must fill it at once, keep it up to date, and refuse a misaligned
//! address with `ENXIO` (`map_guest_area`: the area must be aligned to
//! `xen_ulong_t` and not cross a page).

use super::rules::{self, Availability};
use super::{Ctx, Outcome, Test};
use crate::mm::Page;
use crate::vcpu_area::RegisteredArea;
use crate::{sched, suite_fail, time};
use alloc::format;
use core::mem::offset_of;
use core::time::Duration;
use pv_arch::abi::shared_info::VcpuTimeInfo;
use pv_arch::abi::vcpu::VcpuRunstateInfo;
use pv_arch::abi::vcpu::{RUNSTATE_BLOCKED, RUNSTATE_RUNNING, XEN_RUNSTATE_UPDATE};
use pv_arch::abi::version::{XENFEAT_RUNSTATE_PHYS_AREA, XENFEAT_VCPU_TIME_PHYS_AREA};
use pv_arch::hypercall::vcpu::{self, PhysArea};
use pv_arch::hypercall::xen_version as xv;
use pv_arch::Errno;

/// Field offsets of the structs Xen writes, from pv-arch's mirrors of
/// `vcpu_runstate_info` and `vcpu_time_info`.
const RS_STATE: usize = offset_of!(VcpuRunstateInfo, state);
const RS_ENTRY_TIME: usize = offset_of!(VcpuRunstateInfo, state_entry_time);
const RS_TIME: usize = offset_of!(VcpuRunstateInfo, time);
const VT_VERSION: usize = offset_of!(VcpuTimeInfo, version);
const VT_TSC_TIMESTAMP: usize = offset_of!(VcpuTimeInfo, tsc_timestamp);
const VT_SYSTEM_TIME: usize = offset_of!(VcpuTimeInfo, system_time);
const VT_MUL: usize = offset_of!(VcpuTimeInfo, tsc_to_system_mul);

/// Whether the op behind `area` exists here: `Ok` to run, else the skip
/// (older release) or the failure (a release that should have it).
fn available(area: PhysArea) -> Result<(), Outcome> {
    let release = super::version::release()?;
    let bit = match area {
        PhysArea::Runstate => XENFEAT_RUNSTATE_PHYS_AREA,
        PhysArea::VcpuTime => XENFEAT_VCPU_TIME_PHYS_AREA,
    };
    let features = xv::features(0).map_err(|e| suite_fail!("XENVER_get_features: {e}"))?;
    match rules::phys_area(release, features & (1 << bit) != 0) {
        Availability::Run => Ok(()),
        Availability::Skip(why) => Err(Outcome::Skip(format!("Xen {release}: {why}"))),
        Availability::Missing(why) => Err(suite_fail!("Xen {release}: {why}")),
    }
}

/// Registers a fresh page for vCPU 0's `area` at `offset`, if the op
/// exists here (see [`available`]).
fn register(area: PhysArea, offset: usize) -> Result<RegisteredArea, Outcome> {
    available(area)?;
    let page = Page::new().map_err(|e| suite_fail!("Page::new: {e:?}"))?;
    RegisteredArea::register(area, 0, page, offset)
        .map_err(|(_, e)| suite_fail!("registering {area:?} at offset {offset}: {e}"))
}

/// A consistent `(state, state_entry_time, time[4])` from the area: Xen
/// sets `XEN_RUNSTATE_UPDATE` in `state_entry_time` while it writes a
/// phys area (the header: updated as with `VMASST_TYPE_runstate_update_flag`).
fn read_runstate(area: &RegisteredArea) -> Result<(u32, u64, [u64; 4]), Outcome> {
    let bad = |e| suite_fail!("reading the area: {e:?}");
    for _ in 0..1_000_000 {
        let before = area.read_u64(RS_ENTRY_TIME).map_err(bad)?;
        if before & XEN_RUNSTATE_UPDATE != 0 {
            core::hint::spin_loop();
            continue;
        }
        let state = area.read_u32(RS_STATE).map_err(bad)?;
        let mut times = [0; 4];
        for (i, t) in times.iter_mut().enumerate() {
            *t = area.read_u64(RS_TIME + 8 * i).map_err(bad)?;
        }
        if area.read_u64(RS_ENTRY_TIME).map_err(bad)? == before {
            return Ok((state, before, times));
        }
    }
    Err(suite_fail!("the runstate area stayed mid-update"))
}

fn runstate_phys_area(_: &Ctx<'_>) -> Outcome {
    let area = match register(PhysArea::Runstate, 0) {
        Ok(area) => area,
        Err(outcome) => return outcome,
    };
    // Filled at registration: we are running, and have been for a while.
    let (state, entry0, times0) = match read_runstate(&area) {
        Ok(read) => read,
        Err(outcome) => return outcome,
    };
    if state != RUNSTATE_RUNNING as u32 || entry0 == 0 || times0[0] == 0 {
        return suite_fail!(
            "not filled at registration: state {state}, entry time {entry0}, times {times0:?}"
        );
    }
    // Blocking switches the vCPU out and back in: Xen must update it.
    sched::block_on(sched::sleep(Duration::from_millis(20)));
    let (state, entry1, times1) = match read_runstate(&area) {
        Ok(read) => read,
        Err(outcome) => return outcome,
    };
    let blocked = times1[RUNSTATE_BLOCKED as usize] - times0[RUNSTATE_BLOCKED as usize];
    if state != RUNSTATE_RUNNING as u32 || entry1 <= entry0 || blocked == 0 {
        return suite_fail!(
            "not updated across a 20 ms sleep: state {state}, entry time {entry0} -> {entry1}, \
             blocked +{blocked} ns"
        );
    }
    // The hypercall's answer must agree with the area's.
    let info = match vcpu::get_runstate_info(0) {
        Ok(info) => info,
        Err(e) => return suite_fail!("get_runstate_info: {e}"),
    };
    if info.time[RUNSTATE_BLOCKED as usize] < times1[RUNSTATE_BLOCKED as usize] {
        return suite_fail!(
            "get_runstate_info's blocked time {} is behind the area's {}",
            info.time[RUNSTATE_BLOCKED as usize],
            times1[RUNSTATE_BLOCKED as usize]
        );
    }
    if let Err((_, e)) = area.unregister() {
        return suite_fail!("unregistering: {e}");
    }
    Outcome::PassWith(format!(
        "filled (running, entered at {entry0} ns), updated across a sleep (blocked +{blocked} ns) \
         (rule: XENFEAT_runstate_phys_area set; VCPUOP_register_runstate_phys_area new in Xen \
         4.18, CHANGELOG 4.18)"
    ))
}

/// A consistent `(version, tsc_timestamp, system_time, mul)` from the
/// time area, read under its version like the master copy.
fn read_time(area: &RegisteredArea) -> Result<(u32, u64, u64, u32), Outcome> {
    let bad = |e| suite_fail!("reading the area: {e:?}");
    for _ in 0..1_000_000 {
        let before = area.read_u32(VT_VERSION).map_err(bad)?;
        if before % 2 == 1 {
            core::hint::spin_loop();
            continue;
        }
        let stamp = area.read_u64(VT_TSC_TIMESTAMP).map_err(bad)?;
        let system_time = area.read_u64(VT_SYSTEM_TIME).map_err(bad)?;
        let mul = area.read_u32(VT_MUL).map_err(bad)?;
        if area.read_u32(VT_VERSION).map_err(bad)? == before {
            return Ok((before, stamp, system_time, mul));
        }
    }
    Err(suite_fail!("the time area stayed mid-update"))
}

/// Whether the secondary copy equals the master `vcpu_time_info` (read
/// the master, the copy, the master again; Xen writes the master first,
/// so a try that straddles an update is repeated). `Some((stamp,
/// system_time))` once they agree; a persistent difference fails,
/// printing both.
fn copy_matches_master(area: &RegisteredArea) -> Result<(u64, u64), Outcome> {
    let mut last = None;
    for _ in 0..100 {
        let master = crate::shared_info::time_info();
        let (version, stamp, system_time, mul) = read_time(area)?;
        let again = crate::shared_info::time_info();
        if master.version == again.version {
            if stamp == master.tsc_timestamp
                && system_time == master.system_time
                && mul == master.tsc_to_system_mul
            {
                return Ok((stamp, system_time));
            }
            last = Some(format!(
                "copy (version {version}) stamp {stamp:#x}, system time {system_time}, mul {mul}; \
                 vcpu_time_info (version {}) stamp {:#x}, system time {}, mul {}",
                master.version, master.tsc_timestamp, master.system_time, master.tsc_to_system_mul
            ));
        }
        let _ = pv_arch::hypercall::sched::sched_yield();
    }
    Err(suite_fail!(
        "the copy never matched vcpu_time_info: {}",
        last.unwrap_or_else(|| "the master kept changing".into())
    ))
}

fn time_phys_area(_: &Ctx<'_>) -> Outcome {
    let area = match register(PhysArea::VcpuTime, 0) {
        Ok(area) => area,
        Err(outcome) => return outcome,
    };
    let first = match copy_matches_master(&area) {
        Ok(first) => first,
        Err(outcome) => return outcome,
    };
    if first.1 == 0 {
        return suite_fail!("not filled at registration: system time 0");
    }
    // Xen recalibrates about once a second: watch for the copy to move
    // with the master.
    let end = time::now_ns() + 2_500_000_000;
    let mut moved = None;
    while time::now_ns() < end {
        let _ = pv_arch::hypercall::sched::sched_yield();
        match copy_matches_master(&area) {
            Ok(now) if now != first => {
                moved = Some(now);
                break;
            }
            Ok(_) => {}
            Err(outcome) => return outcome,
        }
    }
    let Some((_, later)) = moved else {
        return suite_fail!("the copy (and vcpu_time_info) never changed in 2.5 s");
    };
    if let Err((_, e)) = area.unregister() {
        return suite_fail!("unregistering: {e}");
    }
    Outcome::PassWith(format!(
        "filled (system time {} ns), followed vcpu_time_info to {later} ns \
         (rule: XENFEAT_vcpu_time_phys_area set; VCPUOP_register_vcpu_time_phys_area new in Xen \
         4.18, CHANGELOG 4.18)",
        first.1
    ))
}

/// A misaligned address (4 bytes into a page; Xen wants `xen_ulong_t`
/// alignment) is refused with `ENXIO`.
fn misaligned_refused(area_kind: PhysArea) -> Outcome {
    if let Err(outcome) = available(area_kind) {
        return outcome;
    }
    let page = match Page::new() {
        Ok(page) => page,
        Err(e) => return suite_fail!("Page::new: {e:?}"),
    };
    match RegisteredArea::register(area_kind, 0, page, 4) {
        Err((_, Errno::ENXIO)) => Outcome::Pass,
        Err((_, e)) => suite_fail!("expected ENXIO, got {e}"),
        // Dropping it unregisters before the page is freed.
        Ok(_area) => suite_fail!("expected ENXIO, got Ok(()): a misaligned area was accepted"),
    }
}

fn runstate_misaligned(_: &Ctx<'_>) -> Outcome {
    misaligned_refused(PhysArea::Runstate)
}

fn time_misaligned(_: &Ctx<'_>) -> Outcome {
    misaligned_refused(PhysArea::VcpuTime)
}

/// The `vcpu` group.
pub const TESTS: &[Test] = &[
    Test {
        group: "vcpu",
        name: "runstate_phys_area_filled_and_updated",
        applies: super::Applies::Both,
        run: runstate_phys_area,
    },
    Test {
        group: "vcpu",
        name: "runstate_phys_area_misaligned_enxio",
        applies: super::Applies::Both,
        run: runstate_misaligned,
    },
    Test {
        group: "vcpu",
        name: "time_phys_area_follows_vcpu_time_info",
        applies: super::Applies::Both,
        run: time_phys_area,
    },
    Test {
        group: "vcpu",
        name: "time_phys_area_misaligned_enxio",
        applies: super::Applies::Both,
        run: time_misaligned,
    },
];
