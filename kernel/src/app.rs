//! The contract between the kernel and the one application it runs.
//!
//! An application is a function `fn(&BootInfo) -> AppResult` plus a name,
//! handed to the kernel by the `__paravane_app` symbol that
//! `libos::entry!` defines. When it returns, [`exit`] prints
//! `Paravane: app NAME exited: success` (the line the rig looks for) and
//! powers off (or reboots, if that is what the toolstack asked for: see
//! [`crate::shutdown::request`]), or `Paravane: app NAME exited:
//! failure: WHY` and crashes.

use crate::boot_info::BootInfo;
use core::fmt::{self, Write};

/// Capacity of an [`AppError`] message: small enough that `Result<(), AppError>`
/// stays cheap to return (clippy's `result_large_err` bound).
const MESSAGE_CAPACITY: usize = 112;

/// Why an application failed: a short message, formatted without a heap.
#[derive(Clone, Copy)]
pub struct AppError {
    bytes: [u8; MESSAGE_CAPACITY],
    len: usize,
}

impl AppError {
    /// Formats a message (truncated to 112 bytes on a char boundary).
    pub fn new(args: fmt::Arguments<'_>) -> Self {
        let mut error = AppError {
            bytes: [0; MESSAGE_CAPACITY],
            len: 0,
        };
        let _ = error.write_fmt(args);
        error
    }

    /// The message.
    pub fn message(&self) -> &str {
        // Only whole `str` pieces (or char-boundary prefixes) are copied in.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl Write for AppError {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MESSAGE_CAPACITY - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppError({:?})", self.message())
    }
}

/// What an application returns.
pub type AppResult = Result<(), AppError>;

/// An application: its name and its main function.
pub struct App {
    /// Shown in the exit line (the binary's name).
    pub name: &'static str,
    /// Runs the application.
    pub main: fn(&BootInfo) -> AppResult,
}

/// Ends the domain after the app `name` returned `result`: the exit
/// line, then `SCHEDOP_shutdown` (the reason the toolstack asked for,
/// else poweroff; crash for a failure). Also for `libos::lifecycle`,
/// which ends an app that ignored a stop request the same way.
#[cfg(target_os = "none")]
pub fn exit(name: &str, result: AppResult) -> ! {
    match result {
        Ok(()) => {
            crate::println!("Paravane: app {name} exited: success");
            crate::shutdown::app_finished()
        }
        Err(why) => {
            crate::println!("Paravane: app {name} exited: failure: {why}");
            crate::shutdown::crash()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_formatted_and_truncated() {
        let e = AppError::new(format_args!("disk {} missing", 3));
        assert_eq!(e.message(), "disk 3 missing");
        let long = "é".repeat(100);
        let e = AppError::new(format_args!("{long}"));
        assert_eq!(e.message().len(), 112);
        assert!(e.message().chars().all(|c| c == 'é'));
    }
}
