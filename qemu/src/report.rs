//! What a run tells its caller: how each guest ended, what it printed, how
//! long it took, and where the full logs are.
//!
//! An [`Ending`] is always one that Xen or the toolstack reported (a line of
//! Xen's serial console for a directly booted dom0, a line of `xl create -F`
//! for a domU), never inferred from the guest's own output; the line itself
//! is kept as the report's `evidence`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How a guest's life ended, as Xen or the toolstack reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `SHUTDOWN_poweroff` (reason code 0).
    Poweroff,
    /// `SHUTDOWN_reboot` (reason code 1).
    Reboot,
    /// `SHUTDOWN_suspend` (reason code 2).
    Suspend,
    /// `SHUTDOWN_crash` (reason code 3): the guest asked to crash, or Xen
    /// crashed it.
    Crash,
    /// `SHUTDOWN_watchdog` (reason code 4): the guest's Xen watchdog fired.
    Watchdog,
    /// `SHUTDOWN_soft_reset` (reason code 5).
    SoftReset,
    /// The guest did not end within its timeout; the rig destroyed it (or
    /// killed QEMU, for a directly booted dom0).
    TimedOut,
    /// Anything else seen (a Xen panic, an unknown reason code, a failed
    /// `xl create`, QEMU exiting without a word from Xen), described.
    Other(String),
}

impl Ending {
    /// The ending for a `SHUTDOWN_*` reason code (xen/include/public/sched.h).
    pub fn from_reason_code(code: u32) -> Ending {
        match code {
            0 => Ending::Poweroff,
            1 => Ending::Reboot,
            2 => Ending::Suspend,
            3 => Ending::Crash,
            4 => Ending::Watchdog,
            5 => Ending::SoftReset,
            other => Ending::Other(format!("unknown shutdown reason code {other}")),
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Poweroff => f.write_str("poweroff"),
            Ending::Reboot => f.write_str("reboot"),
            Ending::Suspend => f.write_str("suspend"),
            Ending::Crash => f.write_str("crash"),
            Ending::Watchdog => f.write_str("watchdog"),
            Ending::SoftReset => f.write_str("soft reset"),
            Ending::TimedOut => f.write_str("timed out"),
            Ending::Other(what) => write!(f, "other: {what}"),
        }
    }
}

/// One guest's run.
#[derive(Clone, Debug)]
pub struct GuestReport {
    /// The guest's name (its `GuestSpec::name`, or the kernel's file name for
    /// a direct dom0 boot).
    pub name: String,
    /// The guest's own console lines, in order: for a domU its PV console (as
    /// xenconsoled logged it), for a direct dom0 what it wrote through
    /// `HYPERVISOR_console_io`. Line ends (`\r`, `\n`) are stripped.
    pub console: Vec<String>,
    /// For a domU: what it wrote through `HYPERVISOR_console_io`, which Xen
    /// prints on its own console as `(dN) text` (prefix stripped). Empty for
    /// a direct dom0 boot, whose `console` already holds that output.
    pub hypervisor_console: Vec<String>,
    /// How it ended.
    pub ending: Ending,
    /// The Xen or xl line that said how it ended.
    pub evidence: String,
    /// From `xl create` (or QEMU's start, for a direct dom0 boot) to the end.
    pub elapsed: Duration,
    /// For a domU with a dom0 script: its output, in order.
    pub dom0_output: Vec<String>,
    /// For a domU with a dom0 script: its exit status (`None` if it had none).
    pub dom0_status: Option<i32>,
    /// The file holding everything seen about this guest (for a direct dom0
    /// boot, Xen's whole serial log).
    pub log: PathBuf,
    /// Set when Xen reported this guest's triple fault with Xen's own state
    /// in its registers ([`crate::xen_console::emulated_svm_fault`]): the
    /// emulated machine failed, not the guest. Xen's two lines.
    pub emulation_fault: Option<String>,
}

/// A run of domUs next to one Linux dom0.
#[derive(Clone, Debug)]
pub struct Dom0Session {
    /// One report per guest, in the order given.
    pub guests: Vec<GuestReport>,
    /// From QEMU's start until dom0's init had the toolstack running.
    pub dom0_ready: Duration,
    /// From QEMU's start until it exited (or was killed after dom0 halted).
    pub total: Duration,
    /// `xl info` and `xl list` as dom0 printed them before the first guest.
    pub xl_info: Vec<String>,
    /// Where Xen's and dom0's serial log (`xen-serial.log`), the channel log
    /// (`channel.log`) and one log per guest (`guest-NAME.log`) were kept.
    pub log_dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes() {
        assert_eq!(Ending::from_reason_code(0), Ending::Poweroff);
        assert_eq!(Ending::from_reason_code(3), Ending::Crash);
        assert_eq!(Ending::from_reason_code(5), Ending::SoftReset);
        assert!(matches!(Ending::from_reason_code(9), Ending::Other(_)));
        assert_eq!(Ending::Crash.to_string(), "crash");
    }
}
