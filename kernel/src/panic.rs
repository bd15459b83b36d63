//! The panic handler: say what and where, then crash the domain.
//!
//! The line starts with `PANIC:` so the rig can quote it; the domain then
//! shuts down with `SHUTDOWN_crash`, which the toolstack reports as a
//! crash. A panic inside the panic path skips straight to the shutdown.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if !PANICKING.swap(true, Ordering::SeqCst) {
        match info.location() {
            Some(at) => crate::console::emergency_write_fmt(format_args!(
                "PANIC: {} at {}:{}:{}\n",
                info.message(),
                at.file(),
                at.line(),
                at.column()
            )),
            None => {
                crate::console::emergency_write_fmt(format_args!("PANIC: {}\n", info.message()))
            }
        }
    }
    crate::shutdown::crash()
}
