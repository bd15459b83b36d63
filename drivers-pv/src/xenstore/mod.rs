//! The xenstore client protocol: framing, requests and replies, watches,
//! transactions, and the shared-ring transport.
//!
//! Built in layers, each usable alone and none doing I/O of its own:
//!
//! - [`wire`]: message framing (`xsd_sockmsg` header plus payload), a
//!   streaming decoder for bytes that arrive in arbitrary pieces, and the
//!   check of every reply payload against its type;
//! - [`client`]: the request/reply state machine ([`Client`]): request
//!   ids, outstanding requests, reply matching, per-token watch queues,
//!   and the [`RetryPolicy`] for transactions that hit `EAGAIN`;
//! - [`blocking`]: [`XenstoreBlocking`], which drives a [`Client`] over any
//!   [`Transport`] until each reply is in (early boot, tests);
//! - [`ring`]: [`RingTransport`], the byte rings of the shared
//!   `xenstore_domain_interface` page, reached through the
//!   [`XenstorePage`] trait the kernel implements over the mapped page;
//! - [`perms`] and [`error`]: [`Permissions`] and [`XsError`];
//! - `sim` (tests and the `sim` feature): a simulated xenstored with fault
//!   injection;
//! - `guest` (guest only): the domain's one connection, over the kernel's
//!   `store_page::StorePage` and the store event channel, plus an async
//!   wait for watch events;
//! - `suite` (guest only): the `xenstore` group of the conformance suite,
//!   run against the real xenstored from a domU.
//!
//! Everything xenstored sends is untrusted: the decoder copies each
//! message out once, checks length, type and payload shape, and only then
//! hands it on; nothing here panics on what the other side sends.
//!
//! Connecting it in the guest is what `guest` does: it implements
//! [`XenstorePage`] over the page at `start_info.store_mfn` (the kernel's
//! `StorePage` does the volatile loads and stores and the fences the
//! trait's methods name), notifies through `EVTCHNOP_send` on
//! `start_info.store_evtchn` and waits by blocking on that channel, and
//! keeps one `XenstoreBlocking<RingTransport<GuestPage>>` for the domain:
//! `guest::connect(&boot)` once, then `guest::with_xenstore(|xs| ..)`, and
//! `guest::next_watch_event(token).await` from tasks.

pub mod blocking;
pub mod client;
pub mod error;
#[cfg(target_os = "none")]
pub mod guest;
pub mod perms;
pub mod ring;
pub mod shared;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
#[cfg(target_os = "none")]
pub mod suite;
pub mod wire;

#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod tests;

pub use blocking::{Transport, XenstoreBlocking};
pub use client::{
    Client, ClientStats, FromReply, Reply, ReqId, RetryPolicy, Ticket, TxId, WatchEvent,
};
pub use error::{Malformation, XsError};
pub use perms::{Access, Perm, Permissions};
pub use ring::{BlockingPage, RingTransport, XenstorePage};
pub use shared::{NextEvent, Request, SharedXenstore, Watch};
