//! `xen_version`: what Xen says about itself.

use super::{expect_errno, Applies, Ctx, Outcome, Test};
use crate::suite_fail;
use pv_arch::hypercall::xen_version as xv;
use pv_arch::Errno;

fn major_minor(_: &Ctx<'_>) -> Outcome {
    match xv::version() {
        Ok((4, minor)) if minor >= 17 => Outcome::Pass,
        Ok((major, minor)) => suite_fail!("expected Xen 4.17 or later, got {major}.{minor}"),
        Err(e) => suite_fail!("XENVER_version failed: {e}"),
    }
}

fn extraversion_terminated(_: &Ctx<'_>) -> Outcome {
    match xv::extraversion() {
        Ok(bytes) if bytes.contains(&0) && bytes[0] == b'.' => Outcome::Pass,
        Ok(bytes) => suite_fail!("extraversion not a NUL-terminated \".N\": {bytes:?}"),
        Err(e) => suite_fail!("XENVER_extraversion failed: {e}"),
    }
}

fn page_size(_: &Ctx<'_>) -> Outcome {
    match xv::page_size() {
        Ok(4096) => Outcome::Pass,
        other => suite_fail!("expected Ok(4096), got {other:?}"),
    }
}

fn platform_parameters(_: &Ctx<'_>) -> Outcome {
    // A 64-bit PV guest sees Xen's range start at HYPERVISOR_VIRT_START.
    match xv::platform_parameters() {
        Ok(p) if p.virt_start == 0xffff_8000_0000_0000 => Outcome::Pass,
        other => suite_fail!("expected virt_start 0xffff800000000000, got {other:?}"),
    }
}

fn features_submap0(_: &Ctx<'_>) -> Outcome {
    use pv_arch::abi::version::XENFEAT_WRITABLE_PAGE_TABLES;
    // We asked for !writable_page_tables, and a PV guest of Debian's Xen
    // does not get it: the bit must be clear.
    match xv::features(0) {
        Ok(bits) if bits & (1 << XENFEAT_WRITABLE_PAGE_TABLES) == 0 => Outcome::Pass,
        Ok(bits) => suite_fail!("writable_page_tables offered: {bits:#x}"),
        Err(e) => suite_fail!("XENVER_get_features failed: {e}"),
    }
}

fn features_bad_submap(_: &Ctx<'_>) -> Outcome {
    // Xen has one submap of feature bits; any other index is refused.
    expect_errno(xv::features(1000), Errno::EINVAL)
}

fn unknown_command(_: &Ctx<'_>) -> Outcome {
    expect_errno(xv::unknown_command(1000), Errno::ENOSYS)
}

/// The `version` group.
pub const TESTS: &[Test] = &[
    Test {
        group: "version",
        name: "xen_4_17_or_later",
        applies: Applies::Both,
        run: major_minor,
    },
    Test {
        group: "version",
        name: "extraversion_nul_terminated",
        applies: Applies::Both,
        run: extraversion_terminated,
    },
    Test {
        group: "version",
        name: "pagesize_is_4k",
        applies: Applies::Both,
        run: page_size,
    },
    Test {
        group: "version",
        name: "platform_parameters_virt_start",
        applies: Applies::Both,
        run: platform_parameters,
    },
    Test {
        group: "version",
        name: "no_writable_page_tables_for_pv",
        applies: Applies::Pv(super::PV_WRITABLE_PAGE_TABLES),
        run: features_submap0,
    },
    Test {
        group: "version",
        name: "features_out_of_range_submap_einval",
        applies: Applies::Both,
        run: features_bad_submap,
    },
    Test {
        group: "version",
        name: "unknown_command_enosys",
        applies: Applies::Both,
        run: unknown_command,
    },
];
