//! Ending the domain: `SCHEDOP_shutdown` after the console is drained.
//!
//! The reason we give is what the toolstack reports (`xl` prints
//! "shut down, reason code N"), and for dom0 what Xen prints as it halts
//! or reboots the machine; the rig reads it from there, never guesses it.
//!
//! When the toolstack asked the domain to stop (`control/shutdown`,
//! handled by `libos::lifecycle`), the reason it asked for is recorded
//! with [`request`], and the app's normal end ([`app_finished`], after
//! the exit line) uses it: a domain asked to reboot reports `reboot`,
//! not `poweroff`.

use crate::console;
use core::sync::atomic::{AtomicU8, Ordering};
use pv_arch::hypercall::sched::{sched_block, sched_shutdown, ShutdownReason};

/// The recorded request: [`NONE`] or a `SHUTDOWN_*` code.
static REQUESTED: AtomicU8 = AtomicU8::new(NONE);
/// No request recorded.
const NONE: u8 = u8::MAX;

/// Records that the toolstack asked for `reason`: the app's end
/// ([`app_finished`]) will give it. The first request wins (a reboot
/// asked while a poweroff is under way does not change it).
pub fn request(reason: ShutdownReason) {
    let _ = REQUESTED.compare_exchange(NONE, reason as u8, Ordering::SeqCst, Ordering::SeqCst);
}

/// The recorded request, if any.
pub fn requested() -> Option<ShutdownReason> {
    match REQUESTED.load(Ordering::SeqCst) {
        NONE => None,
        code if code == ShutdownReason::Reboot as u8 => Some(ShutdownReason::Reboot),
        code if code == ShutdownReason::Crash as u8 => Some(ShutdownReason::Crash),
        _ => Some(ShutdownReason::Poweroff),
    }
}

/// The app ended well: the reason the toolstack asked for, else
/// `SHUTDOWN_poweroff`.
pub fn app_finished() -> ! {
    shutdown(requested().unwrap_or(ShutdownReason::Poweroff))
}

/// Normal end: `SHUTDOWN_poweroff`.
pub fn poweroff() -> ! {
    shutdown(ShutdownReason::Poweroff)
}

/// Halt: Xen has no halt reason; like Linux's `xen_machine_halt`, the
/// domain reports `SHUTDOWN_poweroff`.
pub fn halt() -> ! {
    shutdown(ShutdownReason::Poweroff)
}

/// Asks to be started again: `SHUTDOWN_reboot`.
pub fn reboot() -> ! {
    shutdown(ShutdownReason::Reboot)
}

/// Something went wrong: `SHUTDOWN_crash`.
pub fn crash() -> ! {
    shutdown(ShutdownReason::Crash)
}

fn shutdown(reason: ShutdownReason) -> ! {
    console::flush();
    let errno = sched_shutdown(reason);
    console::emergency_write_fmt(format_args!(
        "Paravane: shutdown ({reason:?}) refused: {errno}; halting\n"
    ));
    console::flush();
    loop {
        // Nothing left to do: sleep without spinning.
        let _ = sched_block();
    }
}
