//! The conformance suite: what each hypercall does, right and wrong
//! arguments alike, checked from inside the guest.
//!
//! Tests are grouped by interface, one module per group, each exporting a
//! `TESTS` table. The runner prints one line per test (`PASS group/name`,
//! `FAIL group/name: why`, `SKIP group/name: why`) and then the final line
//! in the form Xen's XTF uses, `Test result: SUCCESS` (or `FAILURE`,
//! `ERROR`, `SKIP`), which the rig and other XTF tooling read.

use crate::boot_info::{BootInfo, Role};
use alloc::string::String;

/// Which kind of domain a test applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// dom0 and domU alike.
    Both,
    /// Only the initial domain (e.g. privileged operations).
    Dom0Only,
    /// Only an unprivileged domain (e.g. xenstore, the console ring).
    DomUOnly,
}

/// What one test found.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The hypervisor behaved as the ABI says.
    Pass,
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

/// Whether a test runs in this role, or the reason it is skipped.
pub fn skip_reason(applies: Applies, role: Role) -> Option<&'static str> {
    match (applies, role) {
        (Applies::Dom0Only, Role::DomU) => Some("dom0 only"),
        (Applies::DomUOnly, Role::Dom0) => {
            Some("domU only (needs the toolstack: xenstore, console ring)")
        }
        _ => None,
    }
}
