//! Where the ABI legitimately differs between Xen releases: what a check
//! should expect from the version and feature bits the hypervisor
//! reports, and the rule (with its source) that says so.
//!
//! A conformance tester has to tell three things apart: a documented
//! change between releases (expected, and the PASS line names the rule it
//! applied), a regression (a release that lacks what its version
//! promises: FAIL), and a bug (a value no rule explains: FAIL, printing
//! what was expected and what came back). Each rule here cites where Xen
//! documents the change: its public headers (`xen/include/public/`) or
//! its CHANGELOG. Pure logic, so the host tests cover every branch.

use crate::boot_info::BootMode;

/// A Xen release, as `XENVER_version` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct XenRelease {
    /// Major version (4).
    pub major: u16,
    /// Minor version (17, 20, …).
    pub minor: u16,
}

impl XenRelease {
    /// `major.minor`.
    pub const fn new(major: u16, minor: u16) -> XenRelease {
        XenRelease { major, minor }
    }
}

impl core::fmt::Display for XenRelease {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Xen 4.18: `XENVER_platform_parameters` stopped answering non-PV
/// guests, and the phys-area `VCPUOP`s arrived.
pub const XEN_4_18: XenRelease = XenRelease::new(4, 18);
/// Xen 4.20: has the `XENVER_*2` string ops (`version.h`; 4.17 has not).
pub const XEN_4_20: XenRelease = XenRelease::new(4, 20);

/// `HYPERVISOR_VIRT_START` of the x86_64 PV ABI (`arch-x86/xen-x86_64.h`):
/// the start of the upper canonical half, where Xen's range begins.
pub const HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000;

/// What a check expects, and the rule that chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectation<T> {
    /// The value the ABI promises on this hypervisor.
    pub value: T,
    /// Which rule applied, with its source (printed in the PASS line).
    pub rule: &'static str,
}

/// What `XENVER_platform_parameters` must report as `virt_start`.
///
/// `public/version.h` (since "xen/version: Drop bogus return values for
/// XENVER_platform_parameters", Jan 2023, first released in 4.18): the
/// op only means something to guests that share page tables with Xen
/// (x86 PV); a 64-bit PV guest still gets the architectural boundary
/// (`HYPERVISOR_VIRT_START`), and every guest using hardware
/// virtualisation (HVM, PVH) gets 0 "instead of failing with -ENOSYS".
/// Before that, 4.17 answered a 64-bit PVH guest with the same
/// `HYPERVISOR_VIRT_START` a PV one gets. Xen's CHANGELOG for 4.18 does
/// not mention this change; the header comment is the record.
pub fn platform_parameters_virt_start(release: XenRelease, mode: BootMode) -> Expectation<u64> {
    match mode {
        BootMode::Pv => Expectation {
            value: HYPERVISOR_VIRT_START,
            rule: "a 64-bit PV guest gets HYPERVISOR_VIRT_START, the architectural boundary \
                   (public/version.h, every release)",
        },
        BootMode::Pvh if release >= XEN_4_18 => Expectation {
            value: 0,
            rule: "Xen >= 4.18 returns 0 to guests using hardware virtualisation (PVH/HVM) \
                   instead of -ENOSYS (public/version.h comment on XENVER_platform_parameters, \
                   from 4.18's \"Drop bogus return values\"; not in the CHANGELOG)",
        },
        BootMode::Pvh => Expectation {
            value: HYPERVISOR_VIRT_START,
            rule: "Xen < 4.18 returned HYPERVISOR_VIRT_START to a 64-bit PVH guest too (the \
                   \"unrelated data\" 4.18's public/version.h comment says it replaced with 0)",
        },
    }
}

/// What to do about an interface that arrived in a later release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Present: run the check.
    Run,
    /// Absent, as the release allows: skip, saying why.
    Skip(&'static str),
    /// Absent although the release promises it: a regression.
    Missing(&'static str),
}

/// The phys-area `VCPUOP`s: advertised by their `XENFEAT_*` bit
/// (`public/features.h`: `XENFEAT_runstate_phys_area` 18,
/// `XENFEAT_vcpu_time_phys_area` 19); new in 4.18 (CHANGELOG 4.18:
/// "Introduce two new hypercalls to map the vCPU runstate and time areas
/// by physical rather than linear/virtual addresses").
pub fn phys_area(release: XenRelease, feature_bit_set: bool) -> Availability {
    match (feature_bit_set, release >= XEN_4_18) {
        (true, _) => Availability::Run,
        (false, false) => Availability::Skip(
            "Xen < 4.18 has no VCPUOP_register_*_phys_area (CHANGELOG 4.18), and the XENFEAT bit \
             is clear",
        ),
        (false, true) => Availability::Missing(
            "Xen >= 4.18 should advertise the XENFEAT_*_phys_area bit (public/features.h)",
        ),
    }
}

/// The `XENVER_*2` string ops, detected by asking for a size (a null
/// argument; `-ENOSYS` where the op does not exist). They are in Xen
/// 4.20's `public/version.h` and not in 4.17's; the rig has no 4.18 or
/// 4.19 to pin the release that added them, so an older release without
/// them is a skip and only 4.20 on is held to them.
pub fn varbuf_ops(release: XenRelease, answered_enosys: bool) -> Availability {
    match (answered_enosys, release >= XEN_4_20) {
        (false, _) => Availability::Run,
        (true, false) => Availability::Skip(
            "XENVER_*2 answered ENOSYS; they are in 4.20's public/version.h, not in 4.17's",
        ),
        (true, true) => Availability::Missing(
            "Xen >= 4.20 answered ENOSYS to XENVER_*2 (public/version.h defines ops 11-14)",
        ),
    }
}

/// Whether `VCPUOP_set_singleshot_timer` may still refuse a past
/// deadline with `VCPU_SSHOTTMR_future` (`ETIME`), and the rule.
///
/// `public/vcpu.h` (4.17 and 4.20 alike): the flag requests `-ETIME` for
/// a past deadline "but can be ignored by the hypervisor". CHANGELOG
/// 4.18, Changed: "Ignore VCPUOP_set_singleshot_timer's
/// VCPU_SSHOTTMR_future flag" (its one known user, Linux, misused it).
/// So from 4.18 the call must succeed and the timer fire at once; before,
/// either answer is allowed (Debian's 4.17.5 carries the backport and
/// ignores it too).
pub fn singleshot_future_flag(release: XenRelease) -> Expectation<bool> {
    if release >= XEN_4_18 {
        Expectation {
            value: false,
            rule: "Xen >= 4.18 ignores VCPU_SSHOTTMR_future (CHANGELOG 4.18; public/vcpu.h: \
                   \"can be ignored by the hypervisor\")",
        }
    } else {
        Expectation {
            value: true,
            rule: "Xen < 4.18 may honour VCPU_SSHOTTMR_future with ETIME or ignore it \
                   (public/vcpu.h: \"can be ignored\"; 4.18's change is backported to 4.17.x)",
        }
    }
}

/// How many bits of its count register `HYPERVISOR_multicall` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MulticallCount {
    /// The low 32 bits: the upper half is ignored (truncated).
    Bits32,
    /// The whole register: an oversized count is an oversized list.
    Full,
    /// A release the rig has not seen either way.
    Unknown,
}

/// How wide `nr_calls` is.
///
/// Xen 4.17's `public/xen.h` documents `uint32_t nr_calls`, and its
/// handler (`do_multicall`, declared in `hypercall-defs.c`) takes an
/// `unsigned int`, so the upper half of the register is dropped. The
/// patch "xen/multicall: Change nr_calls to uniformly be unsigned long"
/// (Andrew Cooper, xen-devel, June 2024) made it `unsigned long` in the
/// handler and in `public/xen.h`, calling it a guest-visible ABI change
/// "only in the corner case where the guest kernel passed a
/// bogus-but-correct-when-truncated value"; Debian's 4.20 behaves so
/// (seen in the rig). The CHANGELOG does not mention it, and with no
/// 4.18 or 4.19 in the rig, the release it reached first is not pinned.
pub fn multicall_count(release: XenRelease) -> Expectation<MulticallCount> {
    if release >= XEN_4_20 {
        Expectation {
            value: MulticallCount::Full,
            rule: "Xen >= 4.20 takes nr_calls as unsigned long (\"xen/multicall: Change \
                   nr_calls to uniformly be unsigned long\", 2024, which also changed \
                   public/xen.h; not in the CHANGELOG)",
        }
    } else if release < XEN_4_18 {
        Expectation {
            value: MulticallCount::Bits32,
            rule: "Xen < 4.18 takes nr_calls as unsigned int, dropping the upper half \
                   (public/xen.h: uint32_t nr_calls)",
        }
    } else {
        Expectation {
            value: MulticallCount::Unknown,
            rule: "Xen 4.18/4.19: which nr_calls width they have is not pinned (the rig has \
                   neither; 4.17 truncates to 32 bits, 4.20 does not)",
        }
    }
}

/// The text a `NUL`-padded fixed-size answer holds: up to the first NUL.
pub fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// Whether a fixed-size op's answer (NUL-padded in a buffer of
/// `capacity` bytes) agrees with the untruncated `full` answer of its
/// `*2` op: the same text, or, when `full` does not fit, its first
/// `capacity - 1` bytes (the old ops truncate and NUL-terminate).
pub fn fixed_agrees_with_full(fixed: &[u8], capacity: usize, full: &[u8]) -> bool {
    let old = until_nul(fixed);
    if full.len() < capacity {
        old == full
    } else {
        old == &full[..capacity.saturating_sub(1).min(full.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4_17: XenRelease = XenRelease::new(4, 17);
    const V4_19: XenRelease = XenRelease::new(4, 19);

    #[test]
    fn platform_parameters_by_release_and_mode() {
        for release in [V4_17, XEN_4_18, XEN_4_20] {
            assert_eq!(
                platform_parameters_virt_start(release, BootMode::Pv).value,
                HYPERVISOR_VIRT_START
            );
        }
        let old = platform_parameters_virt_start(V4_17, BootMode::Pvh);
        assert_eq!(old.value, HYPERVISOR_VIRT_START);
        let new = platform_parameters_virt_start(XEN_4_20, BootMode::Pvh);
        assert_eq!(new.value, 0);
        assert!(new.rule.starts_with("Xen >= 4.18"));
        assert_eq!(
            platform_parameters_virt_start(XEN_4_18, BootMode::Pvh).value,
            0
        );
        assert!(XenRelease::new(5, 0) > XEN_4_20);
        assert_eq!(XEN_4_18.to_string(), "4.18");
    }

    #[test]
    fn singleshot_future_flag_by_release() {
        assert!(singleshot_future_flag(V4_17).value);
        assert!(!singleshot_future_flag(XEN_4_18).value);
        assert!(!singleshot_future_flag(XEN_4_20).value);
    }

    #[test]
    fn phys_area_by_bit_and_release() {
        assert_eq!(phys_area(XEN_4_20, true), Availability::Run);
        assert_eq!(phys_area(V4_17, true), Availability::Run);
        assert!(matches!(phys_area(V4_17, false), Availability::Skip(_)));
        assert!(matches!(
            phys_area(XEN_4_18, false),
            Availability::Missing(_)
        ));
    }

    #[test]
    fn varbuf_ops_by_answer_and_release() {
        assert_eq!(varbuf_ops(XEN_4_20, false), Availability::Run);
        assert!(matches!(varbuf_ops(V4_17, true), Availability::Skip(_)));
        assert!(matches!(varbuf_ops(V4_19, true), Availability::Skip(_)));
        assert!(matches!(
            varbuf_ops(XEN_4_20, true),
            Availability::Missing(_)
        ));
        // An older release that has them anyway (a backport) runs them.
        assert_eq!(varbuf_ops(V4_19, false), Availability::Run);
    }

    #[test]
    fn multicall_count_by_release() {
        assert_eq!(multicall_count(V4_17).value, MulticallCount::Bits32);
        assert_eq!(multicall_count(XEN_4_18).value, MulticallCount::Unknown);
        assert_eq!(multicall_count(V4_19).value, MulticallCount::Unknown);
        assert_eq!(multicall_count(XEN_4_20).value, MulticallCount::Full);
        assert!(multicall_count(XEN_4_20).rule.starts_with("Xen >= 4.20"));
    }

    #[test]
    fn fixed_answers_compare_with_full_ones() {
        assert!(fixed_agrees_with_full(b".4\0\0\0", 16, b".4"));
        assert!(!fixed_agrees_with_full(b".5\0\0\0", 16, b".4"));
        // Truncated to capacity - 1 and NUL-terminated.
        assert!(fixed_agrees_with_full(b"abc\0", 4, b"abcdef"));
        assert!(!fixed_agrees_with_full(b"abd\0", 4, b"abcdef"));
        assert!(fixed_agrees_with_full(b"abc\0", 4, b"abc"));
        assert_eq!(until_nul(b"ab\0c"), b"ab");
        assert_eq!(until_nul(b"ab"), b"ab");
    }
}
