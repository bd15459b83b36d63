//! `sched_op` commands and arguments (`xen/sched.h`).

use crate::abi::xen::DomId;

/// `SCHEDOP_yield`: give up the CPU, stay runnable.
pub const SCHEDOP_YIELD: u32 = 0;
/// `SCHEDOP_block`: sleep until an event is pending.
pub const SCHEDOP_BLOCK: u32 = 1;
/// `SCHEDOP_shutdown`: stop the domain with a [`SchedShutdown`] reason.
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// `SCHEDOP_poll`: wait for one of a set of ports.
pub const SCHEDOP_POLL: u32 = 3;
/// `SCHEDOP_remote_shutdown`: shut another domain down.
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// `SCHEDOP_shutdown_code`: record a reason without shutting down yet.
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// `SCHEDOP_watchdog`: arm or disarm a domain watchdog.
pub const SCHEDOP_WATCHDOG: u32 = 6;
/// `SCHEDOP_pin_override`: override vCPU pinning (hardware domain).
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

/// `SHUTDOWN_poweroff`: exited normally.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// `SHUTDOWN_reboot`: clean up, kill, restart.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// `SHUTDOWN_suspend`: clean up, save suspend info, kill.
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// `SHUTDOWN_crash`: tell the controller we crashed.
pub const SHUTDOWN_CRASH: u32 = 3;
/// `SHUTDOWN_watchdog`: the watchdog expired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// `SHUTDOWN_soft_reset`: soft reset, rebuild the domain.
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
/// `SHUTDOWN_MAX`: the largest valid shutdown reason.
pub const SHUTDOWN_MAX: u32 = 5;

/// `struct sched_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedShutdown {
    /// One of the `SHUTDOWN_*` codes.
    pub reason: u32,
}

/// `struct sched_poll`: block until one of the ports is pending or the
/// timeout passes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPoll {
    /// Guest handle (address) of an array of `evtchn_port_t`.
    pub ports: u64,
    /// Entries in that array.
    pub nr_ports: u32,
    /// Absolute system time (ns) to give up at; 0 waits forever.
    pub timeout: u64,
}

/// `struct sched_remote_shutdown`: shut another domain down (privileged).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedRemoteShutdown {
    /// The domain.
    pub domain_id: DomId,
    /// One of the `SHUTDOWN_*` codes.
    pub reason: u32,
}

/// `struct sched_watchdog`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedWatchdog {
    /// 0 to create a watchdog (Xen returns its id); otherwise the id.
    pub id: u32,
    /// Seconds until expiry; 0 destroys the watchdog.
    pub timeout: u32,
}

/// `struct sched_pin_override`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPinOverride {
    /// Physical CPU to pin to, or negative to drop the override.
    pub pcpu: i32,
}
