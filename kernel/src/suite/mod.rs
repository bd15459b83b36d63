//! The conformance suite: what each hypercall does, right and wrong
//! arguments alike, checked from inside the guest.
//!
//! Tests are grouped by interface, one module per group, each exporting a
//! `TESTS` table. The runner prints one line per test (`PASS group/name`,
//! `FAIL group/name: why`, `SKIP group/name: why`) and then the final line
//! in the form Xen's XTF uses, `Test result: SUCCESS` (or `FAILURE`,
//! `ERROR`, `SKIP`), which the rig and other XTF tooling read.

#[cfg(target_os = "none")]
pub mod evtchn;
#[cfg(target_os = "none")]
pub mod grant;
#[cfg(target_os = "none")]
pub mod memory;
#[cfg(target_os = "none")]
pub mod multicall;
#[cfg(target_os = "none")]
pub mod pvh;
pub mod rules;
#[cfg(target_os = "none")]
pub mod sched;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
mod smp_channel;
#[cfg(target_os = "none")]
pub mod time;
#[cfg(target_os = "none")]
pub mod traps;
#[cfg(target_os = "none")]
pub mod vcpu;
#[cfg(target_os = "none")]
pub mod vcpu_area;
#[cfg(target_os = "none")]
pub mod version;

use crate::boot_info::{BootInfo, BootMode, Role};

/// Every group, in the order a port brings the interfaces up.
#[cfg(target_os = "none")]
pub const GROUPS: &[&[Test]] = &[
    version::TESTS,
    memory::TESTS,
    traps::TESTS,
    evtchn::TESTS,
    time::TESTS,
    vcpu_area::TESTS,
    sched::TESTS,
    vcpu::TESTS,
    smp::TESTS,
    multicall::TESTS,
    grant::TESTS,
    pvh::TESTS,
];
use alloc::string::String;

/// Why a check is PV only (printed with its skip).
pub const PV_PAGE_TABLES: &str =
    "mmu_update/mmuext_op are the PV page-table interface; a PVH guest writes its own page tables";
/// Why a check is PV only (printed with its skip).
pub const PV_M2P: &str = "a PVH guest has no M2P (Xen translates its guest frames itself)";
/// Why a check is PV only (printed with its skip).
pub const PV_VA_MAPPING: &str = "update_va_mapping edits PV page tables; a PVH guest edits its own";
/// Why a check is PV only (printed with its skip).
pub const PV_WINDOW: &str = "the mapping window maps machine frames, which a PVH guest never sees";
/// Why a check is PV only (printed with its skip).
pub const PV_RESERVATION: &str =
    "a PVH domain's reservation also counts Xen's special pages outside its memory map";
/// Why a check is PV only (printed with its skip).
pub const PV_TRAP_TABLE: &str =
    "set_trap_table/callback_op are PV's virtual IDT; a PVH guest loads its own IDT";
/// Why a check is PV only (printed with its skip).
pub const PV_GRANT_MAPS: &str =
    "GNTTABOP_map_grant_ref takes a virtual address in PV and a guest-physical one in PVH; Paravane maps grants only in PV so far";
/// Why a check is PV only (printed with its skip).
pub const PV_WRITABLE_PAGE_TABLES: &str =
    "a PVH guest always writes its own page tables (writable_page_tables is expected there)";

/// Which kind of domain, and which boot mode, a test applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// dom0 and domU alike.
    Both,
    /// Only the initial domain (e.g. privileged operations).
    Dom0Only,
    /// Only an unprivileged domain (e.g. xenstore, the console ring).
    DomUOnly,
    /// Only a PV guest, either role; the text says why PVH has no such
    /// thing (it is printed with the skip).
    Pv(&'static str),
    /// Only a PV domU (see [`Applies::Pv`]).
    PvDomU(&'static str),
    /// Only a PV dom0 (see [`Applies::Pv`]).
    PvDom0(&'static str),
    /// Only a PVH guest, either role (HVM parameters, `add_to_physmap`,
    /// the vector callback).
    Pvh,
    /// Only a PVH domU (the rings a toolstack sets up).
    PvhDomU,
}

/// What one test found.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The hypervisor behaved as the ABI says.
    Pass,
    /// It behaved as the ABI says for this release: the note names the
    /// version rule that chose the expectation (see [`rules`]) and what
    /// was seen. Printed `PASS group/name: note`.
    PassWith(String),
    /// It did not: what was expected and what happened.
    Fail(String),
    /// The test could not run here, and why.
    Skip(String),
}

/// What a test gets to work with.
pub struct Ctx<'a> {
    /// `start_info`, validated.
    pub boot: &'a BootInfo,
}

/// One conformance check.
pub struct Test {
    /// The interface: `memory`, `evtchn`, `grant`, …
    pub group: &'static str,
    /// What is checked, e.g. `mmu_update_foreign_frame_refused`.
    pub name: &'static str,
    /// Where it applies.
    pub applies: Applies,
    /// Runs the check.
    pub run: fn(&Ctx<'_>) -> Outcome,
}

/// Builds a failure from a format string: `fail!("got {x}")`.
#[macro_export]
macro_rules! suite_fail {
    ($($arg:tt)*) => { $crate::suite::Outcome::Fail(alloc::format!($($arg)*)) };
}

/// Checks that `result` is `Err(expected)`, else fails with what came back.
pub fn expect_errno<T: core::fmt::Debug>(
    result: Result<T, pv_arch::Errno>,
    expected: pv_arch::Errno,
) -> Outcome {
    match result {
        Err(errno) if errno == expected => Outcome::Pass,
        Err(errno) => Outcome::Fail(alloc::format!("expected {expected}, got {errno}")),
        Ok(value) => Outcome::Fail(alloc::format!("expected {expected}, got Ok({value:?})")),
    }
}

/// Whether a test runs in this role and mode, or the reason it is
/// skipped.
pub fn skip_reason(applies: Applies, role: Role, mode: BootMode) -> Option<String> {
    let pv_only = |why: &str| alloc::format!("PV only: {why}");
    match (applies, role, mode) {
        (Applies::Dom0Only | Applies::PvDom0(_), Role::DomU, _) => Some("dom0 only".into()),
        (Applies::DomUOnly | Applies::PvDomU(_) | Applies::PvhDomU, Role::Dom0, _) => {
            Some("domU only (needs the toolstack: xenstore, console ring)".into())
        }
        (Applies::Pv(why) | Applies::PvDomU(why) | Applies::PvDom0(why), _, BootMode::Pvh) => {
            Some(pv_only(why))
        }
        (Applies::Pvh | Applies::PvhDomU, _, BootMode::Pv) => {
            Some("PVH only (an HVM-container interface PV guests do not have)".into())
        }
        _ => None,
    }
}

/// Counts of one suite run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed.
    pub failed: usize,
    /// Tests skipped, with their reasons printed.
    pub skipped: usize,
}

impl Summary {
    /// The XTF verdict: any failure is `FAILURE`; nothing run is `SKIP`.
    pub fn verdict(&self) -> &'static str {
        if self.failed > 0 {
            "FAILURE"
        } else if self.passed == 0 {
            "SKIP"
        } else {
            "SUCCESS"
        }
    }
}

/// Runs `groups` in order, printing one line per test through `out`, then
/// the counts and the `Test result:` line.
pub fn run(
    ctx: &Ctx<'_>,
    groups: &[&[Test]],
    mut out: impl FnMut(core::fmt::Arguments<'_>),
) -> Summary {
    let mut summary = Summary::default();
    for test in groups.iter().flat_map(|group| group.iter()) {
        let outcome = match skip_reason(test.applies, ctx.boot.role, ctx.boot.mode) {
            Some(why) => Outcome::Skip(why),
            None => (test.run)(ctx),
        };
        match outcome {
            Outcome::Pass => {
                summary.passed += 1;
                out(format_args!("PASS {}/{}\n", test.group, test.name));
            }
            Outcome::PassWith(note) => {
                summary.passed += 1;
                out(format_args!(
                    "PASS {}/{}: {}\n",
                    test.group, test.name, note
                ));
            }
            Outcome::Fail(why) => {
                summary.failed += 1;
                out(format_args!("FAIL {}/{}: {}\n", test.group, test.name, why));
            }
            Outcome::Skip(why) => {
                summary.skipped += 1;
                out(format_args!("SKIP {}/{}: {}\n", test.group, test.name, why));
            }
        }
    }
    out(format_args!(
        "suite: {} passed, {} failed, {} skipped\n",
        summary.passed, summary.failed, summary.skipped
    ));
    #[cfg(target_os = "none")]
    {
        let (used, size) = crate::arch::x86_64::pv_entry::boot_stack_high_water();
        log::info!("suite: boot stack high water {used} of {size} bytes");
    }
    out(format_args!("Test result: {}\n", summary.verdict()));
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_info::BootInfo;
    use pv_arch::abi::start_info::{StartInfo, StartInfoConsole, SIF_INITDOMAIN};

    fn boot(dom0: bool) -> BootInfo {
        let mut si = StartInfo::zeroed();
        si.magic[..14].copy_from_slice(b"xen-3.0-x86_64");
        si.nr_pages = 1;
        si.shared_info = 0x1000;
        si.pt_base = 0x1000;
        si.nr_pt_frames = 1;
        si.mfn_list = 0x2000;
        if dom0 {
            si.flags = SIF_INITDOMAIN;
        } else {
            si.store_mfn = 1;
            si.store_evtchn = 1;
            si.console = StartInfoConsole::from_dom_u(2, 2);
        }
        BootInfo::from_start_info(&si).unwrap()
    }

    const TESTS: &[Test] = &[
        Test {
            group: "g",
            name: "passes",
            applies: Applies::Both,
            run: |_| Outcome::Pass,
        },
        Test {
            group: "g",
            name: "domu",
            applies: Applies::DomUOnly,
            run: |_| Outcome::Pass,
        },
        Test {
            group: "g",
            name: "by_rule",
            applies: Applies::Both,
            run: |_| Outcome::PassWith("0 (rule: r)".into()),
        },
        Test {
            group: "g",
            name: "fails",
            applies: Applies::Dom0Only,
            run: |_| Outcome::Fail("no".into()),
        },
    ];

    fn run_to_string(dom0: bool) -> (Summary, String) {
        let boot = boot(dom0);
        let mut text = String::new();
        let summary = run(&Ctx { boot: &boot }, &[TESTS], |args| {
            text.push_str(&alloc::format!("{args}"))
        });
        (summary, text)
    }

    #[test]
    fn lines_and_verdict() {
        let (summary, text) = run_to_string(true);
        assert_eq!(
            summary,
            Summary {
                passed: 2,
                failed: 1,
                skipped: 1
            }
        );
        assert!(text.contains("PASS g/passes\n"));
        assert!(text.contains("PASS g/by_rule: 0 (rule: r)\n"));
        assert!(text.contains("SKIP g/domu: domU only"));
        assert!(text.contains("FAIL g/fails: no\n"));
        assert!(text.ends_with("Test result: FAILURE\n"));

        let (summary, text) = run_to_string(false);
        assert_eq!(
            summary,
            Summary {
                passed: 3,
                failed: 0,
                skipped: 1
            }
        );
        assert!(text.ends_with("Test result: SUCCESS\n"));
    }

    #[test]
    fn errno_expectations() {
        use pv_arch::Errno;
        assert_eq!(
            expect_errno::<()>(Err(Errno::EINVAL), Errno::EINVAL),
            Outcome::Pass
        );
        assert!(matches!(
            expect_errno::<()>(Err(Errno::EPERM), Errno::EINVAL),
            Outcome::Fail(_)
        ));
        assert!(matches!(
            expect_errno(Ok(3), Errno::EINVAL),
            Outcome::Fail(_)
        ));
    }
}
