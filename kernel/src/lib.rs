//! `kernel`: Paravane's guest kernel for Xen.
//!
//! Boots as an x86_64 PV guest from Xen's `start_info`, either as the
//! hardware domain (dom0, booted straight by Xen with no toolstack) or as
//! an unprivileged domU created by `xl`. It owns everything below the
//! drivers: boot, console, shutdown, memory and page tables, traps, event
//! channels, time, tasks, grant tables, the xenstore page, and the
//! in-guest conformance suite ([`suite`]).
//!
//! # Boot order
//!
//! Written down here as Mini-OS's `start_kernel` makes it plain; each step
//! may use only the ones above it.
//!
//! 1. `_start` (`arch::x86_64::pv_entry`): Xen enters with `rsi` pointing
//!    at `start_info` and a small bootstrap stack; we switch to our own
//!    stack and call [`boot::pv_main`].
//! 2. `start_info` is copied and checked ([`boot_info::BootInfo`]); a bad
//!    one is reported through the hypervisor console and the domain
//!    crashes.
//! 3. Console: `console_io` as dom0, the PV console ring as domU (mapped
//!    through [`fixmap`] with `update_va_mapping`).
//! 4. Memory ([`mm`]): the frame allocator, p2m/m2p, the direct map
//!    built with `mmu_update` (as far as Xen's boot mapping reaches, then
//!    a step ahead of the allocator), the mapping window and the heap
//!    (`alloc` works from here on).
//! 5. Logging (`log` crate) onto the console.
//! 6. The core interfaces ([`boot`]'s `init_core`): the shared info page,
//!    the trap table and callbacks ([`traps`]), event channels
//!    ([`events`], 2-level or FIFO), time ([`time`]), the executor and its
//!    timer VIRQ ([`sched`]). Grant tables ([`grant`]) are set up on
//!    first use, as xenstore ([`store_page`] plus the client in
//!    `drivers-pv`) connects on first use. The boot summary is printed.
//! 7. The application (`libos::entry!`) runs; its result decides the
//!    success or failure line, then the domain powers off (or crashes on a
//!    panic, see [`panic`], or a fatal exception, see [`traps`]). `xl
//!    save`/`restore` and `xl migrate` suspend it meanwhile and resume it
//!    in a new domain, where [`suspend`] redoes step 6's shared info,
//!    events, time and grants, in that order (and the p2m frame list of
//!    step 4, [`mm::p2m_frames`], which the toolstack reads to save us).
//!
//! # What it may not do
//!
//! `kernel` depends only on `pv-arch` (and small no_std crates); drivers
//! and libraries sit above it. Every `unsafe` block carries a `// SAFETY:`
//! comment. Pure logic (parsing `start_info`, ring arithmetic) builds and
//! is tested on the host.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod app;
pub mod boot_info;
pub mod boot_profile;
pub mod console;
pub mod duration;
pub mod events;
pub mod grant;
pub mod mm;
#[cfg(target_os = "none")]
pub mod platform;
#[cfg(target_os = "none")]
pub mod pvh_boot;
pub mod pvh_start;
pub mod ring_index;
pub mod sched;
pub mod smp;
pub mod suite;
pub mod suspend;
pub mod sync;
pub mod vcpu_life;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod fixmap;
#[cfg(target_os = "none")]
pub mod logger;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
pub mod shared_info;
#[cfg(target_os = "none")]
pub mod shutdown;
#[cfg(target_os = "none")]
pub mod store_page;
#[cfg(target_os = "none")]
pub mod time;
#[cfg(target_os = "none")]
pub mod traps;
#[cfg(target_os = "none")]
pub mod vcpu_area;

pub use app::{AppError, AppResult};
pub use boot_info::{BootInfo, BootMode, Role};
pub use pv_arch::Errno;
