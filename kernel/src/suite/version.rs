//! `xen_version`: what Xen says about itself.

use super::rules::{self, Availability, XenRelease};
use super::{expect_errno, Applies, Ctx, Outcome, Test};
use crate::suite_fail;
use pv_arch::hypercall::xen_version::{self as xv, VarbufOp};
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

fn platform_parameters(ctx: &Ctx<'_>) -> Outcome {
    let release = match release() {
        Ok(release) => release,
        Err(outcome) => return outcome,
    };
    // What virt_start means, and to whom, changed in 4.18: see the rule.
    let expected = rules::platform_parameters_virt_start(release, ctx.boot.mode);
    let mode = match ctx.boot.mode {
        crate::BootMode::Pv => "PV",
        crate::BootMode::Pvh => "PVH",
    };
    match xv::platform_parameters() {
        Ok(p) if p.virt_start == expected.value => Outcome::PassWith(alloc::format!(
            "{:#x} on Xen {release} as {mode} (rule: {})",
            p.virt_start,
            expected.rule
        )),
        other => suite_fail!(
            "expected virt_start {:#x} on Xen {release} as {mode} (rule: {}), got {other:?}",
            expected.value,
            expected.rule
        ),
    }
}

/// The hypervisor's release, or the failure to learn it.
pub(super) fn release() -> Result<XenRelease, Outcome> {
    xv::version()
        .map(|(major, minor)| XenRelease::new(major, minor))
        .map_err(|e| suite_fail!("XENVER_version failed: {e}"))
}

/// Whether the `XENVER_*2` ops exist here (see [`rules::varbuf_ops`]):
/// `Ok(release)` to run, else the skip or the regression.
fn varbuf_available(op: VarbufOp) -> Result<XenRelease, Outcome> {
    let release = release()?;
    let enosys = matches!(xv::varbuf_size(op), Err(Errno::ENOSYS));
    match rules::varbuf_ops(release, enosys) {
        Availability::Run => Ok(release),
        Availability::Skip(why) => Err(Outcome::Skip(alloc::format!("Xen {release}: {why}"))),
        Availability::Missing(why) => Err(suite_fail!("Xen {release}: {why}")),
    }
}

/// The fixed-size op's answer (NUL padded) and its buffer size.
fn fixed_answer(op: VarbufOp) -> Result<(alloc::vec::Vec<u8>, usize), Errno> {
    let bytes: alloc::vec::Vec<u8> = match op {
        VarbufOp::Extraversion => xv::extraversion()?.to_vec(),
        VarbufOp::Capabilities => xv::capabilities()?.to_vec(),
        VarbufOp::Changeset => xv::changeset()?.to_vec(),
        VarbufOp::Commandline => xv::commandline()?.to_vec(),
    };
    let capacity = bytes.len();
    Ok((bytes, capacity))
}

/// `XENVER_*2`: the size request, then the answer in a buffer of exactly
/// that size, compared with the fixed-size op's answer (which Xen
/// truncates and NUL-terminates; the new one does neither).
fn varbuf_matches_fixed(op: VarbufOp) -> Outcome {
    let release = match varbuf_available(op) {
        Ok(release) => release,
        Err(outcome) => return outcome,
    };
    let size = match xv::varbuf_size(op) {
        Ok(size) => size,
        Err(e) => return suite_fail!("{op:?}2 size request failed: {e}"),
    };
    const ROOM: usize = 2048;
    if size > ROOM {
        return suite_fail!("{op:?}2 size {size}: expected at most {ROOM} bytes of text");
    }
    if size == 0 {
        // "A return size of 0 may be legitimate" (version.h): then the
        // fixed-size op must have nothing to say either.
        return match fixed_answer(op) {
            Ok((fixed, _)) if rules::until_nul(&fixed).is_empty() => {
                Outcome::PassWith(alloc::format!(
                    "0 bytes, as the fixed-size op (empty) (rule: XENVER_*2 ops, in Xen 4.20's \
                     public/version.h, where a size of 0 may be legitimate; running Xen {release})"
                ))
            }
            Ok((fixed, _)) => suite_fail!(
                "{op:?}2 size 0, but the fixed-size op says {:?}",
                alloc::string::String::from_utf8_lossy(rules::until_nul(&fixed))
            ),
            Err(e) => suite_fail!("the fixed-size {op:?} op failed: {e}"),
        };
    }
    let full = match xv::varbuf::<ROOM>(op, size as u32) {
        Ok(buf) => buf,
        Err(e) => return suite_fail!("{op:?}2 into {size} bytes failed: {e}"),
    };
    let full = full.as_bytes();
    if full.len() != size {
        return suite_fail!(
            "{op:?}2 wrote {} bytes, its size request said {size}",
            full.len()
        );
    }
    if full.contains(&0) {
        return suite_fail!("{op:?}2 answer holds a NUL (the ABI says none): {full:?}");
    }
    let (fixed, capacity) = match fixed_answer(op) {
        Ok(answer) => answer,
        Err(e) => return suite_fail!("the fixed-size {op:?} op failed: {e}"),
    };
    if !rules::fixed_agrees_with_full(&fixed, capacity, full) {
        return suite_fail!(
            "{op:?}2 says {:?}, the fixed-size op {:?}",
            alloc::string::String::from_utf8_lossy(full),
            alloc::string::String::from_utf8_lossy(rules::until_nul(&fixed))
        );
    }
    let shown = alloc::string::String::from_utf8_lossy(&full[..full.len().min(48)]);
    Outcome::PassWith(alloc::format!(
        "{size} bytes {shown:?}{} agree with the {capacity}-byte op (rule: XENVER_*2 ops, in \
         Xen 4.20's public/version.h; running Xen {release})",
        if full.len() > 48 { "…" } else { "" }
    ))
}

fn extraversion2(_: &Ctx<'_>) -> Outcome {
    varbuf_matches_fixed(VarbufOp::Extraversion)
}

fn capabilities2(_: &Ctx<'_>) -> Outcome {
    varbuf_matches_fixed(VarbufOp::Capabilities)
}

fn changeset2(_: &Ctx<'_>) -> Outcome {
    varbuf_matches_fixed(VarbufOp::Changeset)
}

fn commandline2(_: &Ctx<'_>) -> Outcome {
    varbuf_matches_fixed(VarbufOp::Commandline)
}

/// Wrong arguments to a `XENVER_*2` op: a buffer too short for the
/// answer is refused, not filled with a truncated answer (the point of
/// the new ops: version.h, "a non-truncating API/ABI"). The header names
/// no error code; Xen 4.20 answers `ENOBUFS` both for a buffer one byte
/// short and for one claiming 0 bytes (seen on 4.20; an `EINVAL` for 0
/// bytes in a 2023 draft of the series was not what was merged).
fn varbuf_refusals(_: &Ctx<'_>) -> Outcome {
    let op = VarbufOp::Capabilities;
    if let Err(outcome) = varbuf_available(op) {
        return outcome;
    }
    let size = match xv::varbuf_size(op) {
        Ok(size) if size >= 2 => size,
        other => return suite_fail!("capabilities2 size: expected >= 2, got {other:?}"),
    };
    for claimed in [0, size as u32 - 1] {
        if let Outcome::Fail(why) = expect_errno(
            xv::varbuf::<2048>(op, claimed).map(|b| b.as_bytes().len()),
            Errno::ENOBUFS,
        ) {
            return suite_fail!("len {claimed} for a {size}-byte answer: {why}");
        }
    }
    Outcome::Pass
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
        name: "extraversion2_matches_extraversion",
        applies: Applies::Both,
        run: extraversion2,
    },
    Test {
        group: "version",
        name: "capabilities2_matches_capabilities",
        applies: Applies::Both,
        run: capabilities2,
    },
    Test {
        group: "version",
        name: "changeset2_matches_changeset",
        applies: Applies::Both,
        run: changeset2,
    },
    Test {
        group: "version",
        name: "commandline2_matches_commandline",
        // XSM's default policy gives Xen's command line to privileged
        // domains only.
        applies: Applies::Dom0Only,
        run: commandline2,
    },
    Test {
        group: "version",
        name: "varbuf_short_buffer_enobufs",
        applies: Applies::Both,
        run: varbuf_refusals,
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
