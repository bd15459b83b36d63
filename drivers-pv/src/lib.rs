//! `drivers-pv`: Xen's split-driver frontends and their wire protocols.
//!
//! The xenstore protocol, netfront and blkfront (later work), written
//! against a small platform trait (grant a page, notify a channel,
//! allocate a page) so the same code runs in the guest and in host tests
//! against simulated backends. No `unsafe` here: when a driver needs
//! something unsafe, `kernel` or `pv-arch` grows a safe API for it.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod balloon_target;
pub mod blkfront;
pub mod control;
pub mod hotplug;
pub mod netfront;
pub mod page_ring;
pub mod shared_ring;
pub mod storage;
pub mod xenbus_frontend;
pub mod xenbus_state;
pub mod xenstore;
