//! netfront in the guest: ring and packet pages from the kernel, grants,
//! the event channel, and the xenstore handshake with Linux's netback.
//!
//! [`connect`] reads `device/vif/N/{backend,backend-id,mac,mtu}` and
//! drives the xenbus handshake ([`FrontendState`], `ConnectStyle::Direct`),
//! polling the back end's `state` with a deadline: once the back end is
//! in `InitWait` it reads what the back end offers
//! ([`BackendOffer::read`]), settles what to use ([`Negotiated`]), and for
//! each queue allocates and grants the tx and rx ring pages and
//! [`TX_BUFFERS`] + [`RX_BUFFERS`] packet pages and allocates one unbound
//! event channel (two with split channels); then it writes the keys
//! [`frontend_keys`] lists, switches our `state` to `Connected` and waits
//! for the back end's `Connected`, and prints one line saying what was
//! negotiated. [`GuestVif::disconnect`] closes it again before the grants
//! are ended.
//!
//! The ring memory here ([`RingPage`]) is a private one-page
//! [`RingMemory`] over a [`Page`]; `crate::page_ring` (being written for
//! blkfront) can replace it once it lands.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{fence, Ordering};
use core::time::Duration;

use kernel::events::EventChannel;
use kernel::grant::Grant;
use kernel::mm::page::Page;
use kernel::{sched, time};

use super::features::{frontend_keys, BackendOffer, Negotiated, QueueKeys, Wanted};
use super::queue::QueueParts;
use super::{LinkConfig, NetError, Netfront, Notify, PacketBuffers, RingKind};
use crate::shared_ring::{RingMemory, XEN_PAGE_SIZE};
use crate::xenbus_state::{
    parse_u32, Action, ConnectStyle, FrontendState, MacAddress, XenbusState,
};
use crate::xenstore::guest::with_xenstore;
use crate::xenstore::{TxId, XsError};

/// Tx packet pages (frames in flight at once).
pub const TX_BUFFERS: usize = 128;
/// Rx packet pages lent to the back end.
pub const RX_BUFFERS: usize = 128;
/// How long to wait for each back-end state change.
pub const STATE_TIMEOUT_NS: u64 = 20 * time::NS_PER_SEC;

/// The netfront of this guest.
pub type GuestNetfront = Netfront<RingPage, GrantedPages, Channels>;

/// One ring page, granted to the back end.
pub struct RingPage {
    page: Page,
    _grant: Grant,
}

impl RingMemory for RingPage {
    fn size(&self) -> usize {
        XEN_PAGE_SIZE
    }

    fn read_index(&self, offset: usize) -> u32 {
        let value = self.page.read_u32(offset).unwrap_or(0);
        fence(Ordering::Acquire);
        value
    }

    fn write_index(&mut self, offset: usize, value: u32) {
        fence(Ordering::Release);
        let _ = self.page.write_u32(offset, value);
    }

    fn full_barrier(&mut self) {
        fence(Ordering::SeqCst);
    }

    fn write_bytes(&mut self, offset: usize, bytes: &[u8]) {
        let _ = self.page.write_bytes(offset, bytes);
    }

    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        if self.page.read_bytes(offset, buf).is_err() {
            buf.fill(0);
        }
    }
}

/// Packet pages, each granted to the back end.
pub struct GrantedPages {
    pages: Vec<(Page, Grant)>,
}

impl GrantedPages {
    fn new(backend: u16, count: usize, readonly: bool) -> Result<Self, ConnectError> {
        let mut pages = Vec::with_capacity(count);
        for _ in 0..count {
            let page = Page::new().map_err(|_| ConnectError::OutOfMemory)?;
            let grant =
                Grant::new(backend, page.mfn(), readonly).map_err(|_| ConnectError::Grant)?;
            pages.push((page, grant));
        }
        Ok(GrantedPages { pages })
    }
}

impl PacketBuffers for GrantedPages {
    fn count(&self) -> usize {
        self.pages.len()
    }

    fn gref(&self, id: u16) -> u32 {
        self.pages
            .get(usize::from(id))
            .map_or(0, |(_, grant)| grant.gref().value())
    }

    fn write(&mut self, id: u16, bytes: &[u8]) {
        if let Some((page, _)) = self.pages.get(usize::from(id)) {
            let _ = page.write_bytes(0, bytes);
        }
    }

    fn read(&self, id: u16, offset: usize, out: &mut [u8]) {
        match self.pages.get(usize::from(id)) {
            Some((page, _)) if page.read_bytes(offset, out).is_ok() => {}
            _ => out.fill(0),
        }
    }
}

/// The event channels shared with netback: one per queue, or one per
/// ring with split channels.
pub struct Channels {
    channels: Vec<EventChannel>,
    /// For each queue, the index in `channels` of its tx and rx channel.
    queues: Vec<(usize, usize)>,
}

impl Channels {
    /// Whether any channel fired since the last look (clearing them all).
    pub fn take_fired(&self) -> bool {
        // Not `any`: every flag must be cleared.
        self.channels
            .iter()
            .fold(false, |fired, channel| channel.take_fired() | fired)
    }
}

impl Notify for Channels {
    fn notify(&mut self, queue: usize, ring: RingKind) {
        let Some(&(tx, rx)) = self.queues.get(queue) else {
            return;
        };
        let index = match ring {
            RingKind::Tx => tx,
            RingKind::Rx => rx,
        };
        if let Some(channel) = self.channels.get(index) {
            let _ = channel.notify();
        }
    }
}

/// Why [`connect`] failed.
#[derive(Clone, Debug)]
pub enum ConnectError {
    /// A xenstore operation failed (with the path).
    Xenstore(String, XsError),
    /// A xenstore value did not parse (with the path).
    BadValue(String),
    /// No frame for a page.
    OutOfMemory,
    /// A grant could not be made.
    Grant,
    /// The event channel could not be allocated.
    Channel,
    /// The rings could not be set up, or the back end lacks what we need.
    Net(NetError),
    /// The back end did not reach the state in time (last state seen).
    Timeout(&'static str, Option<XenbusState>),
    /// The back end closed.
    BackendClosed,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Xenstore(path, e) => write!(f, "xenstore {path}: {e:?}"),
            ConnectError::BadValue(path) => write!(f, "bad value at {path}"),
            ConnectError::OutOfMemory => f.write_str("out of memory"),
            ConnectError::Grant => f.write_str("cannot grant a page"),
            ConnectError::Channel => f.write_str("cannot allocate an event channel"),
            ConnectError::Net(e) => write!(f, "{e}"),
            ConnectError::Timeout(what, seen) => {
                write!(f, "back end not {what} in time (state {seen:?})")
            }
            ConnectError::BackendClosed => f.write_str("back end closed"),
        }
    }
}

fn read(path: &str) -> Result<Vec<u8>, ConnectError> {
    with_xenstore(|xs| xs.read(TxId::NONE, path))
        .map_err(|e| ConnectError::Xenstore(String::from(path), e))
}

fn write(path: &str, value: &str) -> Result<(), ConnectError> {
    with_xenstore(|xs| xs.write(TxId::NONE, path, value.as_bytes()))
        .map_err(|e| ConnectError::Xenstore(String::from(path), e))
}

fn backend_state_of(path: &str) -> Option<XenbusState> {
    read(path)
        .ok()
        .and_then(|raw| XenbusState::parse(&raw).ok())
}

/// Sleeps a little between polls of the back end's state.
fn pause() {
    sched::block_on(sched::sleep(Duration::from_millis(5)));
}

/// A connected vif: the device, and our side of the xenbus handshake.
pub struct GuestVif {
    netfront: GuestNetfront,
    negotiated: Negotiated,
    handshake: FrontendState,
    front: String,
    backend_state: String,
}

impl GuestVif {
    /// The device (a [`smoltcp::phy::Device`]).
    pub fn netfront(&mut self) -> &mut GuestNetfront {
        &mut self.netfront
    }

    /// The device, shared.
    pub fn netfront_ref(&self) -> &GuestNetfront {
        &self.netfront
    }

    /// What was negotiated with the back end.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Closes the vif the way netback expects ([`FrontendState::close`]):
    /// our state `Closing`, wait (with a deadline) until the back end
    /// lets go of the rings, then end the grants (dropping the device; a
    /// page the back end still maps is leaked, not reused) and write
    /// `Closed`.
    pub fn disconnect(self) -> Result<(), ConnectError> {
        let GuestVif {
            netfront,
            mut handshake,
            negotiated: _,
            front,
            backend_state,
        } = self;
        let state_path = format!("{front}/state");
        let mut action = handshake.close();
        let deadline = time::now_ns() + STATE_TIMEOUT_NS;
        let mut seen = None;
        loop {
            match action {
                Action::TearDown => {
                    drop(netfront);
                    return write(&state_path, "6");
                }
                Action::Wait => {}
                other => {
                    if let Some(state) = other.state_to_write() {
                        write(&state_path, state.as_str())?;
                    }
                }
            }
            if time::now_ns() > deadline {
                drop(netfront);
                let _ = write(&state_path, "6");
                return Err(ConnectError::Timeout("closed", seen));
            }
            pause();
            seen = backend_state_of(&backend_state).or(seen);
            action = match seen {
                Some(state) => handshake.step(state),
                None => Action::Wait,
            };
        }
    }
}

/// One ring page, granted to the back end, with its grant reference.
fn ring_page(backend_id: u16) -> Result<(RingPage, u32), ConnectError> {
    let page = Page::new().map_err(|_| ConnectError::OutOfMemory)?;
    let grant = Grant::new(backend_id, page.mfn(), false).map_err(|_| ConnectError::Grant)?;
    let gref = grant.gref().value();
    Ok((
        RingPage {
            page,
            _grant: grant,
        },
        gref,
    ))
}

fn channel(backend_id: u16) -> Result<EventChannel, ConnectError> {
    EventChannel::alloc_unbound(backend_id).map_err(|_| ConnectError::Channel)
}

/// What the back end offers, read from its directory (absent or
/// unreadable keys read as absent).
fn read_offer(backend: &str) -> BackendOffer {
    BackendOffer::read(|key| read(&format!("{backend}/{key}")).ok())
}

/// The MTU the toolstack gave, if it parses.
fn read_mtu(front: &str) -> Option<usize> {
    read(&format!("{front}/mtu"))
        .ok()
        .and_then(|raw| parse_u32(&raw).ok())
        .map(|mtu| mtu as usize)
}

/// Negotiates, then allocates, grants and publishes every queue's rings
/// and channels (one `Publish` of the handshake).
fn publish(
    front: &str,
    backend: &str,
    backend_id: u16,
    mac: MacAddress,
) -> Result<(GuestNetfront, Negotiated), ConnectError> {
    let wanted = Wanted {
        mtu: read_mtu(front),
        ..Wanted::default()
    };
    let negotiated = read_offer(backend)
        .negotiate(&wanted)
        .map_err(ConnectError::Net)?;
    let mut parts = Vec::new();
    let mut keys = Vec::new();
    let mut channels = Channels {
        channels: Vec::new(),
        queues: Vec::new(),
    };
    for _ in 0..negotiated.queues {
        let (tx_ring, tx_ring_ref) = ring_page(backend_id)?;
        let (rx_ring, rx_ring_ref) = ring_page(backend_id)?;
        let tx_channel = channel(backend_id)?;
        let tx_port = tx_channel.port();
        let tx_index = channels.channels.len();
        channels.channels.push(tx_channel);
        let (rx_index, rx_port) = if negotiated.split_event_channels {
            let rx_channel = channel(backend_id)?;
            let port = rx_channel.port();
            channels.channels.push(rx_channel);
            (tx_index + 1, port)
        } else {
            (tx_index, tx_port)
        };
        channels.queues.push((tx_index, rx_index));
        keys.push(QueueKeys {
            tx_ring_ref,
            rx_ring_ref,
            tx_port,
            rx_port,
        });
        parts.push(QueueParts {
            tx_ring,
            rx_ring,
            tx_buffers: GrantedPages::new(backend_id, TX_BUFFERS, true)?,
            rx_buffers: GrantedPages::new(backend_id, RX_BUFFERS, false)?,
        });
    }
    let netfront = Netfront::new(parts, channels, mac.0, LinkConfig::from(&negotiated))
        .map_err(ConnectError::Net)?;
    for (key, value) in frontend_keys(&negotiated, &keys) {
        write(&format!("{front}/{key}"), &value)?;
    }
    Ok((netfront, negotiated))
}

/// Connects vif `index` (`device/vif/INDEX`) to its back end, driving
/// [`FrontendState`] (`ConnectStyle::Direct`) until both ends are
/// `Connected`; each state change must come within [`STATE_TIMEOUT_NS`].
pub fn connect(index: u32) -> Result<GuestVif, ConnectError> {
    let front = format!("device/vif/{index}");
    let backend_path = format!("{front}/backend");
    let backend = String::from_utf8(read(&backend_path)?)
        .map_err(|_| ConnectError::BadValue(backend_path.clone()))?;
    let id_path = format!("{front}/backend-id");
    let backend_id = parse_u32(&read(&id_path)?)
        .ok()
        .and_then(|id| u16::try_from(id).ok())
        .ok_or(ConnectError::BadValue(id_path))?;
    let mac_path = format!("{front}/mac");
    let mac = MacAddress::parse(&read(&mac_path)?).map_err(|_| ConnectError::BadValue(mac_path))?;
    let backend_state = format!("{backend}/state");
    let state_path = format!("{front}/state");

    let mut handshake = FrontendState::new(ConnectStyle::Direct);
    let mut netfront = None;
    let mut seen = None;
    let mut deadline = time::now_ns() + STATE_TIMEOUT_NS;
    loop {
        let state = backend_state_of(&backend_state);
        if state.is_some() && state != seen {
            deadline = time::now_ns() + STATE_TIMEOUT_NS;
        }
        seen = state.or(seen);
        if let (Some(XenbusState::Connected), true, Some(_)) =
            (seen, handshake.is_connected(), netfront.as_ref())
        {
            break;
        }
        let action = match seen {
            Some(state) => handshake.step(state),
            None => Action::Wait,
        };
        match action {
            Action::Wait => {
                if time::now_ns() > deadline {
                    return Err(ConnectError::Timeout("Connected", seen));
                }
                pause();
                continue;
            }
            Action::Publish { .. } => netfront = Some(publish(&front, &backend, backend_id, mac)?),
            Action::TearDown => netfront = None,
            Action::Connect | Action::BeginClose | Action::Reinitialise => {}
        }
        if let Some(state) = action.state_to_write() {
            write(&state_path, state.as_str())?;
        }
    }
    let Some((mut netfront, negotiated)) = netfront else {
        return Err(ConnectError::BackendClosed);
    };
    netfront.kick();
    kernel::println!("netfront: vif/{index} mac {mac} {negotiated}");
    Ok(GuestVif {
        netfront,
        negotiated,
        handshake,
        front,
        backend_state,
    })
}

impl Netfront<RingPage, GrantedPages, Channels> {
    /// Whether any of the device's channels fired since the last look.
    pub fn take_fired(&self) -> bool {
        self.notify.take_fired()
    }
}

impl Channels {
    /// Whether any channel fired since the last look (clearing them
    /// all); if none did, `cx` is woken when one does.
    pub fn poll_fired(&self, cx: &mut core::task::Context<'_>) -> bool {
        use core::future::Future;
        // Not `any`: every channel must clear its flag or take the waker.
        self.channels.iter().fold(false, |fired, channel| {
            let wait = core::pin::pin!(channel.wait());
            wait.poll(cx).is_ready() | fired
        })
    }
}

impl Netfront<RingPage, GrantedPages, Channels> {
    /// Async form of [`Netfront::take_fired`] for a task that owns the
    /// device (see [`Channels::poll_fired`]).
    pub fn poll_fired(&self, cx: &mut core::task::Context<'_>) -> bool {
        self.notify.poll_fired(cx)
    }
}
