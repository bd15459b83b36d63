//! `libos`: what a Paravane application sees.
//!
//! An application is an ordinary Rust function taking an [`Env`] and
//! returning [`AppResult`], plain or `async`; [`entry!`] registers it
//! with the kernel (`entry!(main)`, or `entry!(async main)`, which the
//! kernel runs with `block_on`, so the app can `spawn` tasks and
//! `.await`), and [`app!`] wraps a whole guest so the same file also
//! builds on the host. The environment offers the command line, the
//! domain's role and memory, console printing ([`println!`]) and `log`;
//! [`net`] (async TCP and UDP sockets, [`dhcp`], configured by
//! [`netconfig`]) over netfront, [`block`] over blkfront, [`rng`]
//! (`rand_core` generators), and [`lifecycle`]: the toolstack's
//! shutdown requests (`xl shutdown`, `xl reboot`) as a stop signal the
//! app selects on, and the devices closed on the way out.
//!
//! No `unsafe` here: what needs it lives in `kernel` behind a safe API.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod accounting;
pub mod balloon;
pub mod block;
pub mod dhcp;
pub mod lifecycle;
pub mod net;
pub mod netconfig;
pub mod rng;
pub mod task;
pub mod vcpus;

pub use drivers_pv;
pub use embedded_io;
pub use embedded_io_async;
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

/// Registers `main` as the application: `entry!(main)` for a
/// `fn(&Env) -> AppResult`, `entry!(async main)` for an
/// `async fn(&Env) -> AppResult`, which the kernel runs with
/// `kernel::sched::block_on` (the one top-level `block_on`: the app's
/// tasks run alongside it). Either way a domU also gets the control
/// task ([`lifecycle`]): the toolstack's shutdown requests raise
/// [`lifecycle::stop_requested`], and an app that does not return soon
/// after is stopped anyway. `entry!(bare main)` leaves the control task
/// (and with it xenstore and the balloon) out, for a program that ends
/// by itself and wants the smallest image ([`lifecycle::run_bare`]).
///
/// Expands to the one symbol the kernel calls after booting. The
/// application binary must be `#![no_std]` and `#![no_main]` in the
/// guest; [`app!`] takes care of the host.
#[macro_export]
macro_rules! entry {
    (bare $main:path) => {
        // The kernel finds the application by this unmangled name.
        #[unsafe(no_mangle)]
        fn __paravane_app() -> $crate::kernel::app::App {
            $crate::kernel::app::App {
                name: env!("CARGO_BIN_NAME"),
                main: |boot| {
                    let env = $crate::Env::new(boot);
                    $crate::lifecycle::run_bare(&env, || $main(&env))
                },
            }
        }
    };
    (async $main:path) => {
        // The kernel finds the application by this unmangled name.
        #[unsafe(no_mangle)]
        fn __paravane_app() -> $crate::kernel::app::App {
            $crate::kernel::app::App {
                name: env!("CARGO_BIN_NAME"),
                main: |boot| {
                    let env = $crate::Env::new(boot);
                    $crate::lifecycle::run_async(env!("CARGO_BIN_NAME"), &env, $main(&env))
                },
            }
        }
    };
    ($main:path) => {
        // The kernel finds the application by this unmangled name.
        #[unsafe(no_mangle)]
        fn __paravane_app() -> $crate::kernel::app::App {
            $crate::kernel::app::App {
                name: env!("CARGO_BIN_NAME"),
                main: |boot| {
                    let env = $crate::Env::new(boot);
                    $crate::lifecycle::run_sync(env!("CARGO_BIN_NAME"), &env, || $main(&env))
                },
            }
        }
    };
}

/// Wraps a whole application: the items inside (which end with
/// [`entry!`]) are compiled for the guest only, in a module that sees
/// the file's other items (`use super::*`); on the host the binary is a
/// `main` that says how to build the guest. With
/// `#![cfg_attr(target_os = "none", no_std, no_main)]` at the top, that
/// is all an app needs to build everywhere:
///
/// ```ignore
/// #![cfg_attr(target_os = "none", no_std, no_main)]
/// libos::app! {
///     use libos::{println, AppResult, Env};
///     async fn main(_env: &Env<'_>) -> AppResult {
///         println!("hello");
///         Ok(())
///     }
///     libos::entry!(async main);
/// }
/// ```
#[macro_export]
macro_rules! app {
    ($($item:item)*) => {
        #[cfg(target_os = "none")]
        mod __paravane_guest {
            #[allow(unused_imports)]
            use super::*;
            $($item)*
        }

        /// On the host this binary is only a pointer to the real thing.
        #[cfg(not(target_os = "none"))]
        fn main() {
            eprintln!(
                "{0} is a Xen guest: build it with `cargo xtask build --app {0}`",
                env!("CARGO_BIN_NAME")
            );
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
