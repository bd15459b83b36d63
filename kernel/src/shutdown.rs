//! Ending the domain: `SCHEDOP_shutdown` after the console is drained.
//!
//! The reason we give is what the toolstack reports (`xl` prints
//! "shut down, reason code N"), and for dom0 what Xen prints as it halts
//! or reboots the machine; the rig reads it from there, never guesses it.

use crate::console;
use pv_arch::hypercall::sched::{sched_block, sched_shutdown, ShutdownReason};

/// Normal end: `SHUTDOWN_poweroff`.
pub fn poweroff() -> ! {
    shutdown(ShutdownReason::Poweroff)
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
