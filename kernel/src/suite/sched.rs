//! `sched_op`, `vcpu_op` basics and the console paths.

use super::{expect_errno, Applies, Ctx, Outcome, Test};
use crate::suite_fail;
use pv_arch::hypercall::{console, sched, vcpu};
use pv_arch::Errno;

fn yield_ok(_: &Ctx<'_>) -> Outcome {
    match sched::sched_yield() {
        Ok(()) => Outcome::Pass,
        Err(e) => suite_fail!("SCHEDOP_yield failed: {e}"),
    }
}

fn unknown_sched_op(_: &Ctx<'_>) -> Outcome {
    expect_errno(sched::unknown_command(100), Errno::ENOSYS)
}

fn remote_shutdown_unprivileged(_: &Ctx<'_>) -> Outcome {
    // A domU may not shut down dom0.
    expect_errno(
        sched::remote_shutdown(0, pv_arch::abi::sched::SHUTDOWN_POWEROFF),
        Errno::EPERM,
    )
}

fn vcpu0_is_up(_: &Ctx<'_>) -> Outcome {
    match vcpu::is_up(0) {
        Ok(true) => Outcome::Pass,
        other => suite_fail!("VCPUOP_is_up(0): {other:?}"),
    }
}

fn missing_vcpu(_: &Ctx<'_>) -> Outcome {
    expect_errno(vcpu::is_up(200), Errno::ENOENT)
}

fn console_io_dom0(_: &Ctx<'_>) -> Outcome {
    match console::console_io_write(b"") {
        Ok(_) => Outcome::Pass,
        Err(e) => suite_fail!("console_io write refused to dom0: {e}"),
    }
}

fn console_io_domu_refused(_: &Ctx<'_>) -> Outcome {
    // Debian's release build of Xen keeps the hypervisor console for the
    // hardware domain; a domU must use its PV console ring.
    expect_errno(console::console_io_write(b"x"), Errno::EPERM)
}

/// The `sched` group.
pub const TESTS: &[Test] = &[
    Test {
        group: "sched",
        name: "yield",
        applies: Applies::Both,
        run: yield_ok,
    },
    Test {
        group: "sched",
        name: "unknown_command_enosys",
        applies: Applies::Both,
        run: unknown_sched_op,
    },
    Test {
        group: "sched",
        name: "remote_shutdown_of_dom0_eperm",
        applies: Applies::DomUOnly,
        run: remote_shutdown_unprivileged,
    },
    Test {
        group: "sched",
        name: "vcpu0_is_up",
        applies: Applies::Both,
        run: vcpu0_is_up,
    },
    Test {
        group: "sched",
        name: "vcpu_op_missing_vcpu_enoent",
        applies: Applies::Both,
        run: missing_vcpu,
    },
    Test {
        group: "sched",
        name: "console_io_write_dom0",
        applies: Applies::Dom0Only,
        run: console_io_dom0,
    },
    Test {
        group: "sched",
        name: "console_io_write_domu_eperm",
        applies: Applies::DomUOnly,
        run: console_io_domu_refused,
    },
];
