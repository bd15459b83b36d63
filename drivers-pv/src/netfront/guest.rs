//! netfront in the guest: ring and packet pages from the kernel, grants,
//! the event channel, and the xenstore handshake with Linux's netback.
//!
//! [`connect`] (async) reads `device/vif/N/{backend,backend-id,mac,mtu}`
//! and hands the xenbus handshake to the shared helper
//! ([`Frontend::connect`], `ConnectStyle::Direct`, one overall deadline
//! and a cap on publications): once the back end is in `InitWait` the
//! driver's publish step reads what the back end offers
//! ([`BackendOffer::read`]), settles what to use ([`Negotiated`]), and for
//! each queue allocates and grants the tx and rx ring pages and
//! [`TX_BUFFERS`] + [`RX_BUFFERS`] packet pages and allocates one unbound
//! event channel (two with split channels); then it writes the keys
//! [`frontend_keys`] lists, and the helper switches our `state` to
//! `Connected` and waits (on a watch) for the back end's `Connected`.
//! One line says what was negotiated. [`GuestVif::refresh`] honours a back
//! end that closes; [`GuestVif::disconnect`] closes from our side before
//! the grants are ended.
//!
//! For a vif that must outlive its backend (`xl network-detach` and
//! `attach`, a restarted netback, a resume), [`GuestVif::into_parts`]
//! splits it into the device (for the network stack) and a [`VifControl`]
//! (the handshake and its watches, for the task that keeps the vif):
//! [`VifControl::check`] says what became of the backend,
//! [`VifControl::detach`] honours a closing one (our node `Closed`, after
//! the stack has let go of the device), [`VifControl::reconnect`] makes
//! a new device with the same MAC, and [`ready`] says when a detached
//! vif may be connected again.
//!
//! The pages shared with netback are [`RingPage`]s and [`GrantedPages`]
//! (`super::pages`), over Xen's grant table ([`XenGrants`]): a page
//! netback still maps when the vif is torn down is quarantined by the
//! kernel, never freed.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use kernel::events::EventChannel;
use kernel::grant::{GrantError, XenGrants};

use super::features::{frontend_keys, BackendOffer, Negotiated, QueueKeys, Wanted, OFFER_KEYS};
use super::pages::{self, GrantedPages, RingPage};
use super::queue::QueueParts;
use super::{LinkConfig, NetError, Netfront, Notify, RingKind};
use crate::xenbus_frontend::{
    ready_to_connect, BackendNews, DevicePaths, Driver, Frontend, GuestClock, KeyValues, Policy,
    XenbusError,
};
use crate::xenbus_state::{parse_u32, ConnectStyle, MacAddress, XenbusState};
use crate::xenstore::guest::{xenstore, GuestPage, GuestXenstore};
use crate::xenstore::{TxId, XsError};

/// Tx packet pages (frames in flight at once).
pub const TX_BUFFERS: usize = 128;
/// Rx packet pages lent to the back end.
pub const RX_BUFFERS: usize = 128;

/// The netfront of this guest.
pub type GuestNetfront = Netfront<RingPage<XenGrants>, GrantedPages<XenGrants>, Channels>;

/// The event channels shared with netback: one per queue, or one per
/// ring with split channels.
pub struct Channels {
    channels: Vec<EventChannel>,
    /// For each queue, the index in `channels` of its tx and rx channel.
    queues: Vec<(usize, usize)>,
    /// Set by [`Channels::bind_queues_to_vcpus`]: each queue has a task
    /// of its own that waits on its channels, so [`Channels::poll_fired`]
    /// (the stack's runner) leaves them alone.
    queue_tasks: bool,
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
    /// The handshake failed: deadline, a flapping or closing back end.
    Xenbus(XenbusError),
}

impl From<XenbusError> for ConnectError {
    fn from(error: XenbusError) -> Self {
        ConnectError::Xenbus(error)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Xenstore(path, e) => write!(f, "xenstore {path}: {e}"),
            ConnectError::BadValue(path) => write!(f, "bad value at {path}"),
            ConnectError::OutOfMemory => f.write_str("out of memory"),
            ConnectError::Grant => f.write_str("cannot grant a page"),
            ConnectError::Channel => f.write_str("cannot allocate an event channel"),
            ConnectError::Net(e) => write!(f, "{e}"),
            ConnectError::Xenbus(e) => write!(f, "{e}"),
        }
    }
}

fn connection() -> Result<&'static GuestXenstore, ConnectError> {
    xenstore().map_err(|e| ConnectError::Xenstore(String::from("(connection)"), e))
}

async fn read(path: &str) -> Result<Vec<u8>, ConnectError> {
    connection()?
        .read(TxId::NONE, path)
        .await
        .map_err(|e| ConnectError::Xenstore(String::from(path), e))
}

async fn write(path: &str, value: &str) -> Result<(), ConnectError> {
    connection()?
        .write(TxId::NONE, path, value.as_bytes())
        .await
        .map_err(|e| ConnectError::Xenstore(String::from(path), e))
}

/// The handshake's view of the device: what to build on each publish.
struct VifDriver {
    mac: MacAddress,
    /// The device and what was negotiated, once published.
    device: Option<(GuestNetfront, Negotiated)>,
}

impl Driver for VifDriver {
    type Error = ConnectError;

    async fn publish(&mut self, paths: &DevicePaths) -> Result<(), ConnectError> {
        // A previous publication's rings go first (a reconnection).
        self.device = None;
        self.device = Some(publish(paths, self.mac).await?);
        Ok(())
    }

    async fn connected(&mut self, _: &DevicePaths) -> Result<(), ConnectError> {
        // netfront connects directly after publishing; nothing to read.
        Ok(())
    }

    fn tear_down(&mut self) {
        self.device = None;
    }
}

/// A connected vif: the device, and our side of the xenbus handshake.
pub struct GuestVif {
    netfront: GuestNetfront,
    control: VifControl,
}

/// A vif's side of the xenbus handshake, apart from its device: what the
/// task that keeps the vif connected holds (see the module docs).
pub struct VifControl {
    index: u32,
    negotiated: Negotiated,
    /// The handshake's driver (its device moved out once connected).
    driver: VifDriver,
    frontend: Frontend<'static, GuestPage, GuestClock>,
    /// The resume epoch the device was made in.
    epoch: u64,
}

impl VifControl {
    /// The vif's index (`device/vif/INDEX`).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The MAC address the device uses (kept across reconnections).
    pub fn mac(&self) -> MacAddress {
        self.driver.mac
    }

    /// What was negotiated with the back end.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// The resume epoch the device was made in
    /// ([`crate::xenbus_frontend::resume::epoch`]): an older one means
    /// its rings, grants and channels are void.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Our directory and the back end's.
    pub fn paths(&self) -> &DevicePaths {
        self.frontend.paths()
    }

    /// Completes when the back end's `state` or ours changes next.
    pub async fn changed(&mut self) -> Result<(), ConnectError> {
        Ok(self.frontend.changed().await?)
    }

    /// What became of the connection (see [`BackendNews`]).
    pub async fn check(&mut self) -> Result<BackendNews, ConnectError> {
        Ok(self.frontend.check().await?)
    }

    /// Honours a back end that is going away: our node `Closed` (unless
    /// our directory is gone). The device must already be out of use;
    /// dropping it afterwards ends its grants (pages netback still maps
    /// are quarantined, never freed).
    pub async fn detach(&mut self) -> Result<(), ConnectError> {
        self.frontend.detach(&mut self.driver).await
    }

    /// Closes the vif from our side the way netback expects (`Closing`,
    /// wait until it lets go, `Closed`); drop the device afterwards.
    pub async fn close(self) -> Result<(), ConnectError> {
        let VifControl {
            mut driver,
            frontend,
            ..
        } = self;
        frontend.close(&mut driver).await
    }

    /// Connects the vif anew with the same MAC (a reset, or a detached
    /// vif that [`ready`] says is back): the handshake from the start,
    /// new rings, grants and channels. The old device must already be
    /// out of use (dropped, or about to be).
    pub async fn reconnect(self) -> Result<(GuestNetfront, VifControl), ConnectError> {
        let VifControl {
            index,
            mut driver,
            mut frontend,
            ..
        } = self;
        frontend.reconnect(&mut driver).await?;
        finish(index, driver, frontend)
    }
}

/// Whether detached vif `index` may be connected again
/// ([`ready_to_connect`]: its directory is there, made anew or reset by
/// the toolstack, or its back end restarted and waits in `InitWait`).
pub async fn ready(index: u32) -> bool {
    let Ok(xs) = connection() else {
        return false;
    };
    let front = format!("device/vif/{index}");
    let state = |raw: Option<Vec<u8>>| raw.and_then(|raw| XenbusState::parse(&raw).ok());
    let front_state = state(
        xs.read_opt(TxId::NONE, &format!("{front}/state"))
            .await
            .ok()
            .flatten(),
    );
    let backend = xs
        .read_opt(TxId::NONE, &format!("{front}/backend"))
        .await
        .ok()
        .flatten()
        .and_then(|raw| String::from_utf8(raw).ok());
    let backend_state = match backend {
        Some(backend) => state(
            xs.read_opt(TxId::NONE, &format!("{backend}/state"))
                .await
                .ok()
                .flatten(),
        ),
        None => None,
    };
    ready_to_connect(front_state, backend_state)
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
        &self.control.negotiated
    }

    /// Our xenstore directory (`device/vif/N`) and the back end's.
    pub fn paths(&self) -> &DevicePaths {
        self.control.paths()
    }

    /// Looks at both ends' states if either changed (without waiting
    /// otherwise): a back end gone `Closing` or `Closed` makes our node
    /// `Closed` and this fail with [`XenbusError::BackendClosed`] from
    /// then on; the device stops being usable and its pages go back
    /// when the vif is dropped or disconnected. [`BackendNews::Reset`]:
    /// the vif must be connected anew ([`VifControl::reconnect`]).
    pub async fn refresh(&mut self) -> Result<BackendNews, ConnectError> {
        let control = &mut self.control;
        control.frontend.refresh(&mut control.driver).await
    }

    /// Completes when the back end's state node or ours changes next
    /// (then call [`GuestVif::refresh`]); for a task that watches the vif.
    pub async fn backend_changed(&mut self) -> Result<(), ConnectError> {
        self.control.changed().await
    }

    /// Splits the vif into its device (for the network stack) and its
    /// [`VifControl`] (for the task that keeps it connected).
    pub fn into_parts(self) -> (GuestNetfront, VifControl) {
        (self.netfront, self.control)
    }

    /// Closes the vif the way netback expects: our state `Closing`, wait
    /// (within the handshake's deadline) until the back end lets go of
    /// the rings, write `Closed`, then end the grants (dropping the
    /// device).
    pub async fn disconnect(self) -> Result<(), ConnectError> {
        let GuestVif {
            netfront,
            control:
                VifControl {
                    mut driver,
                    frontend,
                    ..
                },
        } = self;
        let closed = frontend.close(&mut driver).await;
        drop(netfront);
        closed
    }
}

/// One ring page, granted to the back end, with its grant reference.
fn ring_page(backend_id: u16) -> Result<(RingPage<XenGrants>, u32), ConnectError> {
    pages::ring_page(&XenGrants, backend_id).map_err(grant_error)
}

/// Why a page could not be shared.
fn grant_error(error: GrantError) -> ConnectError {
    match error {
        GrantError::NoMemory => ConnectError::OutOfMemory,
        _ => ConnectError::Grant,
    }
}

/// `count` packet pages granted to the back end.
fn packet_pages(
    backend_id: u16,
    count: usize,
    readonly: bool,
) -> Result<GrantedPages<XenGrants>, ConnectError> {
    GrantedPages::new(&XenGrants, backend_id, count, readonly).map_err(grant_error)
}

fn channel(backend_id: u16) -> Result<EventChannel, ConnectError> {
    EventChannel::alloc_unbound(backend_id).map_err(|_| ConnectError::Channel)
}

/// What the back end offers, read from its directory.
async fn read_offer(backend: &str) -> Result<BackendOffer, ConnectError> {
    let offer = KeyValues::read(connection()?, backend, OFFER_KEYS)
        .await
        .map_err(|e| ConnectError::Xenstore(String::from(backend), e))?;
    Ok(BackendOffer::read(|key| offer.get(key).map(<[u8]>::to_vec)))
}

/// The MTU the toolstack gave, if it parses.
async fn read_mtu(front: &str) -> Option<usize> {
    read(&format!("{front}/mtu"))
        .await
        .ok()
        .and_then(|raw| parse_u32(&raw).ok())
        .map(|mtu| mtu as usize)
}

/// Negotiates, then allocates, grants and publishes every queue's rings
/// and channels (one `Publish` of the handshake).
async fn publish(
    paths: &DevicePaths,
    mac: MacAddress,
) -> Result<(GuestNetfront, Negotiated), ConnectError> {
    let DevicePaths {
        front,
        backend,
        backend_id,
    } = paths;
    let backend_id = *backend_id;
    let wanted = Wanted {
        mtu: read_mtu(front).await,
        ..Wanted::default()
    };
    let negotiated = read_offer(backend)
        .await?
        .negotiate(&wanted)
        .map_err(ConnectError::Net)?;
    let mut parts = Vec::new();
    let mut keys = Vec::new();
    let mut channels = Channels {
        channels: Vec::new(),
        queues: Vec::new(),
        queue_tasks: false,
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
            tx_buffers: packet_pages(backend_id, TX_BUFFERS, true)?,
            rx_buffers: packet_pages(backend_id, RX_BUFFERS, false)?,
        });
    }
    let netfront = Netfront::new(parts, channels, mac.0, LinkConfig::from(&negotiated))
        .map_err(ConnectError::Net)?;
    for (key, value) in frontend_keys(&negotiated, &keys) {
        write(&format!("{front}/{key}"), &value).await?;
    }
    Ok((netfront, negotiated))
}

/// Connects vif `index` (`device/vif/INDEX`) to its back end: the shared
/// xenbus helper ([`Frontend::connect`], `ConnectStyle::Direct`,
/// [`Policy::DEFAULT`]: one 30 s deadline for the whole handshake and at
/// most three publications) until both ends are `Connected`. xenstore
/// must be connected.
pub async fn connect(index: u32) -> Result<GuestVif, ConnectError> {
    let xs = connection()?;
    let paths = DevicePaths::read(xs, format!("device/vif/{index}")).await?;
    let mac_path = format!("{}/mac", paths.front);
    let mac =
        MacAddress::parse(&read(&mac_path).await?).map_err(|_| ConnectError::BadValue(mac_path))?;
    let mut driver = VifDriver { mac, device: None };
    let frontend = Frontend::connect(
        xs,
        GuestClock,
        paths,
        ConnectStyle::Direct,
        Policy::DEFAULT,
        &mut driver,
    )
    .await?;
    let (netfront, control) = finish(index, driver, frontend)?;
    Ok(GuestVif { netfront, control })
}

/// The end of a (re)connection: the device out of the driver, kicked,
/// and one line saying what was negotiated.
fn finish(
    index: u32,
    mut driver: VifDriver,
    frontend: Frontend<'static, GuestPage, GuestClock>,
) -> Result<(GuestNetfront, VifControl), ConnectError> {
    let Some((mut netfront, negotiated)) = driver.device.take() else {
        return Err(ConnectError::Xenbus(XenbusError::BackendClosed));
    };
    netfront.kick();
    let mac = driver.mac;
    kernel::println!("netfront: vif/{index} mac {mac} {negotiated}");
    Ok((
        netfront,
        VifControl {
            index,
            negotiated,
            driver,
            frontend,
            epoch: crate::xenbus_frontend::resume::epoch(),
        },
    ))
}

impl Netfront<RingPage<XenGrants>, GrantedPages<XenGrants>, Channels> {
    /// Whether any of the device's channels fired since the last look.
    pub fn take_fired(&self) -> bool {
        self.notify.take_fired()
    }
}

impl Channels {
    /// Whether any channel fired since the last look (clearing them
    /// all); if none did, `cx` is woken when one does. Always false,
    /// registering nothing, once each queue has a task of its own to
    /// wait on its channels ([`Channels::bind_queues_to_vcpus`]): those
    /// tasks kick the stack.
    pub fn poll_fired(&self, cx: &mut core::task::Context<'_>) -> bool {
        !self.queue_tasks && poll_any(self.channels.iter(), cx)
    }

    /// Whether each queue's channels are waited on by a task of its own
    /// ([`Channels::bind_queues_to_vcpus`] was called).
    pub fn has_queue_tasks(&self) -> bool {
        self.queue_tasks
    }

    /// Whether queue `queue`'s channels fired since the last look
    /// (clearing them); if not, `cx` is woken when one does.
    pub fn poll_queue_fired(&self, queue: usize, cx: &mut core::task::Context<'_>) -> bool {
        let Some(&(tx, rx)) = self.queues.get(queue) else {
            return false;
        };
        let rx = (rx != tx).then_some(rx);
        poll_any(
            [Some(tx), rx]
                .into_iter()
                .flatten()
                .filter_map(|i| self.channels.get(i)),
            cx,
        )
    }

    /// Binds queue `i`'s channels to vCPU `i mod vcpus` (which must run
    /// Paravane code) and hands the waiting on them to the caller's
    /// queue tasks (one per queue, pinned to that vCPU, see
    /// [`Channels::poll_fired`]); returns the vCPU Xen says each queue's
    /// channel notifies (0 where Xen refused to move it, so that queue's
    /// task must run on vCPU 0).
    pub fn bind_queues_to_vcpus(&mut self, vcpus: u32) -> Vec<u32> {
        self.queue_tasks = true;
        let mut placed = Vec::new();
        for (queue, &(tx, rx)) in self.queues.iter().enumerate() {
            let vcpu = queue as u32 % vcpus.max(1);
            let mut ok = true;
            for index in if tx == rx { vec![tx] } else { vec![tx, rx] } {
                if let Some(channel) = self.channels.get_mut(index) {
                    ok &= channel.bind_to_vcpu(vcpu).is_ok();
                }
            }
            if !ok {
                // All or nothing: a queue is served in one place.
                for index in [tx, rx] {
                    if let Some(channel) = self.channels.get_mut(index) {
                        let _ = channel.bind_to_vcpu(0);
                    }
                }
            }
            // What Xen says the queue's (tx) channel notifies, not what
            // we asked for: the line the rig checks reports Xen's view.
            let notified = self
                .channels
                .get(tx)
                .and_then(|c| c.status().ok())
                .map_or(0, |status| status.vcpu);
            placed.push(notified);
        }
        placed
    }
}

/// Polls a wait on each of `channels`: ready if any fired.
fn poll_any<'a>(
    channels: impl Iterator<Item = &'a EventChannel>,
    cx: &mut core::task::Context<'_>,
) -> bool {
    use core::future::Future;
    // Not `any`: every channel must clear its flag or take the waker.
    channels.fold(false, |fired, channel| {
        let wait = core::pin::pin!(channel.wait());
        wait.poll(cx).is_ready() | fired
    })
}

impl Netfront<RingPage<XenGrants>, GrantedPages<XenGrants>, Channels> {
    /// Async form of [`Netfront::take_fired`] for a task that owns the
    /// device (see [`Channels::poll_fired`]).
    pub fn poll_fired(&self, cx: &mut core::task::Context<'_>) -> bool {
        self.notify.poll_fired(cx)
    }

    /// [`Channels::poll_queue_fired`] of this device.
    pub fn poll_queue_fired(&self, queue: usize, cx: &mut core::task::Context<'_>) -> bool {
        self.notify.poll_queue_fired(queue, cx)
    }

    /// [`Channels::bind_queues_to_vcpus`] of this device.
    pub fn bind_queues_to_vcpus(&mut self, vcpus: u32) -> Vec<u32> {
        self.notify.bind_queues_to_vcpus(vcpus)
    }

    /// [`Channels::has_queue_tasks`] of this device.
    pub fn has_queue_tasks(&self) -> bool {
        self.notify.has_queue_tasks()
    }
}

/// Compile-time check: [`connect`]'s future is `Send`, so a task may be
/// spawned to bring the vif up.
fn _connect_is_send() {
    fn is_send<T: Send>(_: &T) {}
    is_send(&connect(0));
}
