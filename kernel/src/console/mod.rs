//! The console: where the guest's text goes.
//!
//! As dom0 we write with `HYPERVISOR_console_io`; as a domU Debian's
//! non-debug Xen refuses that (`EPERM`), so we produce into the PV console
//! ring that xenconsoled reads in dom0 ([`ring`]). Until [`init`] runs,
//! output goes to `console_io`, which is what a dom0 wants and the best a
//! domU can try for a message about a broken `start_info`.
//!
//! Nothing is dropped silently: bytes that could not be written (a
//! stalled or broken backend, `console_io` refused) are counted and the
//! count is reported on the next line that gets through.

pub mod ring;

#[cfg(target_os = "none")]
mod device;

#[cfg(target_os = "none")]
pub use device::{emergency_write_fmt, flush, init, write_fmt, ConsoleError};

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::write_fmt(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
