//! The `smpwork` rig test: tasks pinned to each of 4 vCPUs (PV and PVH,
//! in the domU session), each doing known work.
//!
//! The check reads the guest's own lines and decides for itself: one
//! `smpwork: vCPU N: checksum X (expected Y), ran on vCPU N/N, work
//! START..END ns …` line per vCPU, with X = Y and the task on its own
//! vCPU; every two vCPUs' work intervals (Xen system time) overlap; the
//! summary line; the success line and a poweroff. A kernel that ran the
//! pinned tasks on vCPU 0 one after another, or lost one, fails it.

use crate::report::success_line;
use crate::rig_tests::{expect_ending, expect_line};
use rig::{Ending, GuestMode, GuestReport, GuestSpec};
use std::path::PathBuf;

/// The vCPUs of the smpwork guests.
pub const VCPUS: u32 = 4;
/// Steps of work per vCPU: ~0.1 s of PV under QEMU, ~1 s of PVH.
const ITERATIONS: u64 = 30_000_000;

/// The PV check's name.
pub const PV: &str =
    "rig domU smpwork vcpus=4: a task pinned to each vCPU, checksums right, work overlapping";
/// The PVH check's name.
pub const PVH: &str =
    "rig pvh domU smpwork vcpus=4: a task pinned to each vCPU, checksums right, work overlapping";

/// The guest's name in the session.
pub fn name(mode: GuestMode) -> String {
    match mode {
        GuestMode::Pv => "smpwork".into(),
        GuestMode::Pvh => "pvh-smpwork".into(),
    }
}

/// The guest: `smpwork` with [`VCPUS`] vCPUs.
pub fn guest(elf: &dyn Fn(&str) -> PathBuf, mode: GuestMode) -> GuestSpec {
    let cmdline = format!("vcpus={VCPUS} iterations={ITERATIONS}");
    let mut guest = crate::guest_spec(
        &name(mode),
        &elf("smpwork"),
        &cmdline,
        32,
        std::time::Duration::from_secs(120),
    )
    .with_mode(mode);
    guest.extra_config.push(format!("vcpus = {VCPUS}"));
    guest
}

/// One vCPU's line, parsed.
#[derive(Debug, PartialEq)]
struct Work {
    checksum: String,
    expected: String,
    ran_on: String,
    start_ns: u64,
    end_ns: u64,
}

/// Parses `smpwork: vCPU N: checksum X (expected Y), ran on vCPU A/B,
/// work S..E ns …` for vCPU `vcpu`.
fn parse(line: &str, vcpu: u32) -> Option<Work> {
    let rest = line.strip_prefix(&format!("smpwork: vCPU {vcpu}: checksum "))?;
    let (checksum, rest) = rest.split_once(" (expected ")?;
    let (expected, rest) = rest.split_once("), ran on vCPU ")?;
    let (ran_on, rest) = rest.split_once(", work ")?;
    let (interval, _) = rest.split_once(" ns")?;
    let (start, end) = interval.split_once("..")?;
    Some(Work {
        checksum: checksum.into(),
        expected: expected.into(),
        ran_on: ran_on.into(),
        start_ns: start.parse().ok()?,
        end_ns: end.parse().ok()?,
    })
}

/// The checks of the module docs.
pub fn check(guest: &GuestReport) -> Result<(), String> {
    let mut works = Vec::new();
    for vcpu in 0..VCPUS {
        let work = guest
            .console
            .iter()
            .find_map(|l| parse(l, vcpu))
            .ok_or_else(|| format!("{}: no work line for vCPU {vcpu}", guest.name))?;
        if work.checksum != work.expected {
            return Err(format!("vCPU {vcpu}: checksum {work:?}"));
        }
        if work.ran_on != format!("{vcpu}/{vcpu}") {
            return Err(format!("vCPU {vcpu}'s task ran on vCPU {}", work.ran_on));
        }
        if work.end_ns <= work.start_ns {
            return Err(format!("vCPU {vcpu}: empty interval {work:?}"));
        }
        works.push(work);
    }
    overlap_pairwise(&works)?;
    expect_line(
        guest,
        |l| l.starts_with("smpwork: ") && l.contains(" pairs overlap"),
        "summary line",
    )?;
    let success = success_line("smpwork");
    expect_line(guest, |l| l == success, "the success line")?;
    expect_ending(guest, Ending::Poweroff)
}

/// Every two intervals share some time.
fn overlap_pairwise(works: &[Work]) -> Result<(), String> {
    for (a, wa) in works.iter().enumerate() {
        for (b, wb) in works.iter().enumerate().skip(a + 1) {
            if wa.end_ns.min(wb.end_ns) <= wa.start_ns.max(wb.start_ns) {
                return Err(format!(
                    "vCPUs {a} and {b}: work {}..{} and {}..{} ns do not overlap",
                    wa.start_ns, wa.end_ns, wb.start_ns, wb.end_ns
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "smpwork: vCPU 2: checksum 0x096875ec4823d400 (expected 0x096875ec4823d400), \
                        ran on vCPU 2/2, work 8229000631..9254498734 ns (1025 ms), running 469 ms over the run";

    #[test]
    fn a_work_line_is_parsed() {
        let work = parse(LINE, 2).unwrap();
        assert_eq!(work.checksum, work.expected);
        assert_eq!(work.ran_on, "2/2");
        assert_eq!((work.start_ns, work.end_ns), (8229000631, 9254498734));
        assert_eq!(parse(LINE, 1), None);
    }

    #[test]
    fn intervals_one_after_another_fail_the_overlap() {
        let work = |start_ns, end_ns| Work {
            checksum: "x".into(),
            expected: "x".into(),
            ran_on: "0/0".into(),
            start_ns,
            end_ns,
        };
        assert!(overlap_pairwise(&[work(0, 10), work(5, 20), work(9, 12)]).is_ok());
        let err = overlap_pairwise(&[work(0, 10), work(5, 20), work(10, 12)]).unwrap_err();
        assert!(err.contains("vCPUs 0 and 2"), "{err}");
    }
}
