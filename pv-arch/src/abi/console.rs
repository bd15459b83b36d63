//! The PV console ring (`xen/io/console.h`) and `console_io` commands (`xen/xen.h`).

/// Size of the guest-bound ring, [`XenconsInterface::input`].
pub const XENCONS_IN_SIZE: usize = 1024;
/// Size of the backend-bound ring, [`XenconsInterface::output`].
pub const XENCONS_OUT_SIZE: usize = 2048;

/// `CONSOLEIO_write`: write to the hypervisor's console.
pub const CONSOLEIO_WRITE: u32 = 0;
/// `CONSOLEIO_read`: read from the hypervisor's console.
pub const CONSOLEIO_READ: u32 = 1;

/// `struct xencons_interface`: the shared console page.
///
/// The C fields `in` and `out` are named `input` and `output` here
/// (`in` is a Rust keyword). Indices are free-running; mask them with the
/// ring size.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenconsInterface {
    /// Backend → guest bytes (C `in`).
    pub input: [u8; XENCONS_IN_SIZE],
    /// Guest → backend bytes (C `out`).
    pub output: [u8; XENCONS_OUT_SIZE],
    /// Guest's consumer index into `input`.
    pub in_cons: u32,
    /// Backend's producer index into `input`.
    pub in_prod: u32,
    /// Backend's consumer index into `output`.
    pub out_cons: u32,
    /// Guest's producer index into `output`.
    pub out_prod: u32,
}
