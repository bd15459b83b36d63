//! `pv-arch`: the Xen guest ABI for x86_64, and nothing more.
//!
//! This crate holds two things. [`abi`] mirrors Xen's public C headers
//! (`xen/xen.h`, `xen/io/console.h`, …) as `#[repr(C)]` Rust types whose
//! size and field offsets a host test checks against the real headers.
//! [`hypercall`] owns every hypercall instruction the guest executes (all
//! of the inline assembly lives in one module) and wraps each hypercall in
//! a typed, safe function returning `Result<_, Errno>`.
//!
//! It may not hold policy: no allocation, no global state beyond the
//! hypercall page Xen fills in, no decisions about what to do with a
//! result. Those belong to `kernel`.
#![cfg_attr(not(test), no_std)]

pub mod abi;
pub mod errno;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod hypercall;

pub use errno::Errno;
