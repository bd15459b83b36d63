//! `#[repr(C)]` mirrors of Xen's public headers, one module per header.
//!
//! Names follow the C ones: a struct `start_info` becomes [`start_info::StartInfo`],
//! its fields keep their C names, and `#define`d constants keep theirs in
//! upper case (`SCHEDOP_shutdown` becomes `SCHEDOP_SHUTDOWN`). Every struct
//! here is listed in `tests/abi_layout.rs`, which compiles the C headers
//! and compares sizes, alignments, field offsets, field sizes and the
//! values of the constants.
//!
//! A few rules keep the mirrors safe to use:
//! - A C field named after a Rust keyword gets a trailing underscore
//!   (`type` becomes `type_`, `ref` becomes `ref_`, `in` becomes `in_`);
//!   the console ring's `in`/`out` are `input`/`output`.
//! - Guest handles (`XEN_GUEST_HANDLE(...)`) are `u64` guest addresses.
//! - There are no Rust `union`s: a C union is either a public `u64` (when
//!   every member is one 8-byte value, or a narrower one in its low bits)
//!   or a type holding private raw words with one accessor and one
//!   constructor per arm. The layout test has C fill each arm and checks
//!   both directions.
//! - Where a layout depends on `__XEN_INTERFACE_VERSION__`, these follow
//!   [`xen::XEN_INTERFACE_VERSION`].

pub mod arch_x86;
pub mod callback;
pub mod console;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod memory;
pub mod mmu;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod vcpu;
pub mod version;
pub mod xen;
pub mod xenstore;
