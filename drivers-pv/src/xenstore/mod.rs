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
//!   injection.
//!
//! Everything xenstored sends is untrusted: the decoder copies each
//! message out once, checks length, type and payload shape, and only then
//! hands it on; nothing here panics on what the other side sends.
//!
//! Connecting it in the guest: implement [`XenstorePage`] over the page at
//! `start_info.store_mfn` (volatile loads and stores, the fences its
//! methods name, `notify` through `EVTCHNOP_send` on
//! `start_info.store_evtchn`, `wait` by blocking on that channel), then
//! `XenstoreBlocking::new(RingTransport::new(page))` for early boot, or a
//! bare [`Client`] plus [`RingTransport::write_some`]/
//! [`RingTransport::read_some`] from the event-channel handler once tasks
//! run.

pub mod blocking;
pub mod client;
pub mod error;
#[cfg(target_os = "none")]
pub mod guest;
pub mod perms;
pub mod ring;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
#[cfg(target_os = "none")]
pub mod suite;
pub mod wire;

#[cfg(test)]
mod tests;

pub use blocking::{Transport, XenstoreBlocking};
pub use client::{
    Client, ClientStats, FromReply, Reply, ReqId, RetryPolicy, Ticket, TxId, WatchEvent,
};
pub use error::{Malformation, XsError};
pub use perms::{Access, Perm, Permissions};
pub use ring::{RingTransport, XenstorePage};
