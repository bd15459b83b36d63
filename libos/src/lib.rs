//! `libos`: what a Paravane application sees.
//!
//! An application is an ordinary Rust function taking an [`Env`] and
//! returning [`AppResult`]; [`entry!`] registers it with the kernel. The
//! environment offers the command line, the domain's role and memory,
//! console printing ([`println!`]) and `log`; [`net`] (TCP, [`udp`],
//! [`dhcp`], configured by [`netconfig`]) over netfront, [`block`] over
//! blkfront, and [`rng`] (`rand_core` generators).
//!
//! No `unsafe` here: what needs it lives in `kernel` behind a safe API.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod block;
pub mod dhcp;
pub mod net;
pub mod netconfig;
pub mod rng;
pub mod udp;

pub use drivers_pv;
pub use embedded_io;
pub use kernel;
pub use kernel::{print, println, AppError, AppResult, Role};
pub use log;
pub use rand_core;
pub use smoltcp;

use kernel::BootInfo;

/// The application's view of its domain.
pub struct Env<'a> {
    boot: &'a BootInfo,
}

impl<'a> Env<'a> {
    /// Wraps the kernel's boot information (used by [`entry!`]).
    pub fn new(boot: &'a BootInfo) -> Self {
        Env { boot }
    }

    /// The kernel's validated boot information.
    pub fn boot(&self) -> &'a BootInfo {
        self.boot
    }

    /// The command line the domain was started with.
    pub fn cmdline(&self) -> &str {
        self.boot.cmdline()
    }

    /// The value of `key=value` on the command line, if present.
    pub fn arg(&self, key: &str) -> Option<&str> {
        arg(self.cmdline(), key)
    }

    /// dom0 or domU.
    pub fn role(&self) -> Role {
        self.boot.role
    }

    /// Memory given to the domain, in 4 KiB pages.
    pub fn nr_pages(&self) -> u64 {
        self.boot.nr_pages
    }
}

/// Finds `key=value` among the whitespace-separated words of `cmdline`.
pub fn arg<'c>(cmdline: &'c str, key: &str) -> Option<&'c str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

/// Returns an [`AppError`] from the enclosing function, formatted.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::AppError::new(format_args!($($arg)*)))
    };
}

/// Registers `main` (a `fn(&Env) -> AppResult`) as the application.
///
/// Expands to the one symbol the kernel calls after booting. The
/// application binary must be `#![no_std]` and `#![no_main]`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        // The kernel finds the application by this unmangled name.
        #[unsafe(no_mangle)]
        fn __paravane_app() -> $crate::kernel::app::App {
            $crate::kernel::app::App {
                name: env!("CARGO_BIN_NAME"),
                main: |boot| $main(&$crate::Env::new(boot)),
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn args_are_found_by_key() {
        let cmdline = "loglevel=debug greeting=hi  x=1 greetingx=no";
        assert_eq!(super::arg(cmdline, "greeting"), Some("hi"));
        assert_eq!(super::arg(cmdline, "x"), Some("1"));
        assert_eq!(super::arg(cmdline, "missing"), None);
        assert_eq!(super::arg(cmdline, "greetin"), None);
    }
}
