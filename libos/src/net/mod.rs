//! Networking: TCP and UDP sockets over smoltcp and netfront, in the
//! style of `std::net` and `embassy-net`.
//!
//! [`Net::connect`] brings up the domain's first vif (`device/vif/0`),
//! configured from the command line or xenstore (a static address or
//! DHCP, see [`crate::netconfig`] and [`crate::dhcp`]), and spawns the
//! one *runner* task that drives smoltcp: it polls the interface when
//! the vif's event channels fire, when smoltcp's next timer is due, or
//! when a socket call left something to send, and otherwise awaits, so
//! an idle guest blocks in Xen. The sockets ([`TcpListener`],
//! [`TcpStream`], [`UdpSocket`]) are `async` (they implement
//! `embedded-io-async`'s `Read`/`Write`), each usable from its own task
//! (`kernel::sched::spawn` a task per connection); [`blocking`] wraps
//! them for synchronous apps (`embedded-io`'s traits, one `block_on` per
//! call at the top level).
//!
//! The interface, the device and every socket live in one [`stack`]
//! behind a lock that only task code takes (never an upcall), held for
//! one socket call or one runner turn, never across an `.await`. A
//! socket closes when dropped (TCP: a FIN, then the runner frees it once
//! the connection is closed, or resets it after [`LINGER`]). No smoltcp
//! handle reaches the app; a socket whose stack was shut down gives
//! [`NetError::Down`], never a panic. Timeouts are
//! [`core::time::Duration`]s: [`TcpStream::set_timeout`] bounds each read
//! and write; [`with_timeout`] bounds anything else (an accept).

// On the host only the tests drive the stack (over a loopback device).
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::time::Duration;

pub use crate::netconfig::{IpSetup, NetConfig, SetupSource};
pub use drivers_pv::netfront::NetStats;
pub use drivers_pv::xenbus_state::MacAddress;
pub use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};

pub(crate) mod clock;
mod echo;
pub(crate) mod link;
pub(crate) mod stack;
mod tcp;
mod udp;

#[cfg(target_os = "none")]
pub mod blocking;
#[cfg(target_os = "none")]
mod guest;
#[cfg(target_os = "none")]
mod queues;
#[cfg(test)]
mod tests;

pub use echo::{echo_until_closed, Echoed};
pub use tcp::{ListenOptions, TcpListener, TcpStream};
pub use udp::{UdpSocket, MAX_DATAGRAM};

pub use stack::RunnerStats;
use stack::Shared;

/// How long a dropped TCP stream may take to close gracefully before
/// the runner resets it.
pub const LINGER: Duration = Duration::from_secs(10);

/// What can go wrong in networking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The command line has no `ip=`, or a bad `ip=`/`gw=`.
    Config(&'static str),
    /// The device could not be brought up (the reason).
    Device(alloc::string::String),
    /// A socket call failed (smoltcp's reason).
    Socket(&'static str),
    /// The connection is gone (reset, or closed before all was sent).
    Closed,
    /// Nothing happened in time.
    Timeout,
    /// The network was shut down ([`Net::shutdown`]).
    Down,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Config(what) => write!(f, "net config: {what}"),
            NetError::Device(why) => write!(f, "net device: {why}"),
            NetError::Socket(why) => write!(f, "socket: {why}"),
            NetError::Closed => f.write_str("connection closed"),
            NetError::Timeout => f.write_str("timed out"),
            NetError::Down => f.write_str("network shut down"),
        }
    }
}

impl core::error::Error for NetError {}

impl embedded_io::Error for NetError {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind;
        match self {
            NetError::Config(_) => ErrorKind::InvalidInput,
            NetError::Device(_) => ErrorKind::Other,
            NetError::Socket(_) => ErrorKind::Other,
            NetError::Closed => ErrorKind::ConnectionReset,
            NetError::Timeout => ErrorKind::TimedOut,
            NetError::Down => ErrorKind::NotConnected,
        }
    }
}

/// `future`, or [`NetError::Timeout`] once `limit` has passed (`None`:
/// no limit). For calls without a timeout of their own, such as
/// [`TcpListener::accept`].
pub async fn with_timeout<T, F>(limit: Option<Duration>, future: F) -> Result<T, NetError>
where
    F: Future<Output = Result<T, NetError>>,
{
    match limit {
        None => future.await,
        Some(limit) => clock::timeout_at(clock::deadline_after(limit), future).await,
    }
}

/// The network: a handle on the one stack (cheap to clone; every socket
/// keeps one too).
#[derive(Clone)]
pub struct Net {
    shared: Arc<Shared>,
    mac: MacAddress,
}

impl Net {
    pub(crate) fn from_shared(shared: Arc<Shared>, mac: MacAddress) -> Net {
        Net { shared, mac }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The configuration in use (unspecified until DHCP leases, and
    /// after [`Net::shutdown`]).
    pub fn config(&self) -> NetConfig {
        self.shared
            .with(|stack| Ok(stack.config))
            .unwrap_or(stack::UNCONFIGURED)
    }

    /// Our MAC address (`Display` prints `aa:bb:cc:dd:ee:ff`).
    pub fn mac(&self) -> MacAddress {
        self.mac
    }

    /// The device's counters (their last values after a shutdown).
    pub fn stats(&self) -> NetStats {
        self.shared.stats()
    }

    /// What the runner task has done (zero after a shutdown).
    pub fn runner_stats(&self) -> RunnerStats {
        self.shared
            .with(|stack| Ok(stack.runner_stats))
            .unwrap_or_default()
    }

    /// Whether the link is up: false while the vif is lost (its backend
    /// closed, `xl network-detach`) or being connected anew (a resume);
    /// sockets live on meanwhile, and what they send waits for TCP's
    /// retransmission once the link is back.
    pub fn is_link_up(&self) -> bool {
        self.shared
            .with(|stack| Ok(stack::Link::is_up(&stack.link)))
            .unwrap_or(false)
    }

    /// Sockets open now (TCP and UDP, including listeners' spare ones
    /// and closed streams not yet freed), for tests and status pages.
    pub fn socket_count(&self) -> usize {
        self.shared
            .with(|stack| Ok(stack.socket_count()))
            .unwrap_or(0)
    }
}
