//! `pv_main`: the boot sequence, in the order the crate docs give.

use crate::app::App;
use crate::boot_info::BootInfo;
use crate::{console, logger, println, shutdown};
use pv_arch::abi::start_info::StartInfo;

unsafe extern "Rust" {
    /// Defined by `libos::entry!` in the application binary.
    fn __paravane_app() -> App;
}

/// Boots the kernel and runs the application. Never returns.
pub fn pv_main(start_info: &StartInfo) -> ! {
    let boot = match BootInfo::from_start_info(start_info) {
        Ok(boot) => boot,
        Err(why) => {
            // Before the console is set up: console_io is all we have.
            console::emergency_write_fmt(format_args!("Paravane: bad start_info: {why}\n"));
            shutdown::crash();
        }
    };
    if let Err(why) = console::init(&boot) {
        console::emergency_write_fmt(format_args!("Paravane: {why}\n"));
        shutdown::crash();
    }
    logger::init(boot.cmdline());

    println!(
        "Paravane {} (x86_64 PV) running as {}",
        env!("CARGO_PKG_VERSION"),
        boot.role
    );
    println!("{boot}");

    // SAFETY: `__paravane_app` is defined exactly once, by `libos::entry!`,
    // with this signature (a missing definition fails the link); it takes
    // nothing and returns plain data.
    let app = unsafe { __paravane_app() };
    match (app.main)(&boot) {
        Ok(()) => {
            println!("Paravane: app {} exited: success", app.name);
            shutdown::poweroff();
        }
        Err(why) => {
            println!("Paravane: app {} exited: failure: {why}", app.name);
            shutdown::crash();
        }
    }
}
