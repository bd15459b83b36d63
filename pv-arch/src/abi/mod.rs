//! `#[repr(C)]` mirrors of Xen's public headers, one module per header.
//!
//! Names follow the C ones: a struct `start_info` becomes [`start_info::StartInfo`],
//! its fields keep their C names, and `#define`d constants keep theirs in
//! upper case (`SCHEDOP_shutdown` becomes `SCHEDOP_SHUTDOWN`). Every struct
//! here is listed in `tests/abi_layout.rs`, which compiles the C headers
//! and compares sizes and offsets.

pub mod console;
pub mod event_channel;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod xen;
pub mod xenstore;
