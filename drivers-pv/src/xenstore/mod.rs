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
//! - [`shared`]: [`SharedXenstore`], one connection that any number of
//!   tasks use at once: every operation is a future matched to its reply
//!   by request id, each [`Watch`] receives its own events, and whoever
//!   moves bytes wakes exactly the tasks they answer;
//! - [`blocking`]: [`XenstoreBlocking`], which drives a [`Client`] over any
//!   [`Transport`] until each reply is in (host tests, tools);
//! - [`ring`]: [`RingTransport`], the byte rings of the shared
//!   `xenstore_domain_interface` page, reached through the
//!   [`XenstorePage`] trait the kernel implements over the mapped page;
//! - [`perms`] and [`error`]: [`Permissions`] and [`XsError`];
//! - `sim` (tests and the `sim` feature): a simulated xenstored with fault
//!   injection;
//! - `guest` (guest only): the domain's one [`SharedXenstore`] over the
//!   kernel's `store_page::StorePage`, and the pump task that wakes
//!   waiters when the store event channel fires;
//! - `suite` (guest only): the `xenstore` group of the conformance suite,
//!   run against the real xenstored from a domU.
//!
//! Everything xenstored sends is untrusted: the decoder copies each
//! message out once, checks length, type and payload shape, and only then
//! hands it on; nothing here panics on what the other side sends.
//!
//! In the guest: `guest::connect(&boot)` once (it spawns the pump task),
//! then from any task `guest::xenstore()?.read(TxId::NONE, path).await`,
//! `xs.watch(path).await?` and `watch.next_event().await`, bounded with
//! `guest::within(limit, ..)`. Nothing waits by blocking the vCPU; a
//! synchronous top level wraps the whole call in `sched::block_on`.

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
