//! `HYPERVISOR_console_io`: the hypervisor's own console.
//!
//! Xen lets the hardware domain write here; Debian's non-debug build
//! refuses unprivileged domains (`EPERM`), which must use the PV console
//! ring instead.

use super::raw::hypercall;
use crate::abi::console::CONSOLEIO_WRITE;
use crate::abi::xen::hypercall_nr;
use crate::errno::Errno;

/// Writes `bytes` to Xen's console. Returns the number of bytes written.
pub fn console_io_write(bytes: &[u8]) -> Result<u64, Errno> {
    // SAFETY: CONSOLEIO_write only reads `bytes.len()` bytes from the
    // buffer, which the slice keeps alive and valid during the call.
    unsafe {
        hypercall(
            hypercall_nr::CONSOLE_IO,
            [
                u64::from(CONSOLEIO_WRITE),
                bytes.len() as u64,
                bytes.as_ptr() as u64,
                0,
                0,
            ],
        )
    }
}
