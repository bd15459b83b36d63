//! [`BlockFront`]: one connected virtual block device, in the guest.
//!
//! [`BlockFront::connect`] (async) hands the xenbus handshake with the
//! backend named in `device/vbd/<id>` to the shared helper
//! ([`Frontend::connect`], `ConnectStyle::TwoStep`: one overall deadline,
//! a cap on publications, the backend's state watched, not polled), and
//! [`BlockFront::read`], [`BlockFront::write`] and [`BlockFront::flush`]
//! are async too: the task awaits the event channel (bounded by
//! [`REQUEST_TIMEOUT`]) while up to [`SLOTS`] requests of up to eleven
//! pages are in flight.
//!
//! Devices that come and go: before each transfer, and while one waits
//! for the backend (the wait selects on the event channel, the device's
//! xenstore `state` nodes and a resume), the device looks at what became
//! of its backend ([`crate::xenbus_frontend::Frontend::check`]). A
//! backend going `Closing` (`xl block-detach`) gets no new requests; the
//! ones in flight are collected (a closing blkback still answers them;
//! one that stops answering is given [`CLOSING_GRACE`]), our node goes
//! `Closed` so the toolstack can finish the detach, the ring and data
//! pages are dropped (their grants ended; pages blkback still maps are
//! quarantined by the kernel, never freed), and the transfer and every
//! later one fail with [`BlockError::Detached`], an error the app can
//! handle. A connection made void (a resume into a new domain, whose
//! toolstack rewrites our node to `Initialising`; a restarted backend)
//! is made anew through the same handshake, and the transfer that was
//! in flight is issued again whole on the new ring (at most
//! [`MAX_RESETS`] times): nothing was acknowledged to the caller before,
//! and reads and writes of the same bytes are idempotent.
//!
//! Two backend offers are taken up: `max-ring-page-order` (a ring of
//! 2^min(order, [`RING_PAGE_ORDER`]) pages, published as `ring-page-order`
//! and `ring-ref0..N`), and `feature-max-indirect-segments` (then
//! [`INDIRECT_SLOTS`] requests of up to 32 pages each, as
//! `BLKIF_OP_INDIRECT` requests with one indirect page per slot). What
//! the backend writes is parsed by [`super::offer`].
//!
//! Persistent grants: unless [`Options::persistent`] is off, we write
//! `feature-persistent=1` with the ring, and read the backend's own key
//! once it is `Connected` (Linux's blkback writes it only then). The slot
//! pages are granted once per connection either way
//! ([`super::pool::SlotPool`]); when the backend agrees it maps each of
//! them once and keeps it mapped, rather than mapping and unmapping the
//! pages of every request. The connect line says which
//! ([`super::Persistent`]).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

use kernel::events::EventChannel;
use kernel::grant::XenGrants;
use kernel::sched;
use pv_arch::abi::xen::DomId;

use super::engine::{BlkRing, Engine, Job, Platform, Wake};
use super::offer::{parse_disk_info, parse_offer, VirtualDevice, DISK_KEYS, OFFER_KEYS};
use super::pages::{self, RingPages, SlotPages};
use super::pool::{self, SlotPool};
use super::wire::{Operation, MAX_SEGMENTS};
use super::{check_range, BlockError, DiskInfo, Options};
use crate::xenbus_frontend::{
    resume, BackendNews, DevicePaths, Driver, Frontend, GuestClock, KeyValues, Policy, XenbusError,
};
use crate::xenbus_state::{BackendFeatures, ConnectStyle, FeatureKey};
use crate::xenstore::client::{RetryPolicy, TxId};
use crate::xenstore::error::XsError;
use crate::xenstore::guest::{xenstore, GuestPage, GuestXenstore};

/// The ring page order we use at most (4 pages) when the backend offers
/// `max-ring-page-order`.
pub const RING_PAGE_ORDER: u8 = 2;

pub use super::pool::{INDIRECT_SLOTS, SLOTS};

/// How long a request may stay unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long requests in flight may stay unanswered once the backend is
/// closing: well within the 10 s libxl gives a detach.
pub const CLOSING_GRACE: Duration = Duration::from_secs(3);

/// Connections made anew for one transfer at most (resets in a row).
pub const MAX_RESETS: u32 = 3;

/// One request's worth of data pages (and, with indirect requests, the
/// indirect page), granted to the backend for as long as the device lives.
type Slot = SlotPages<XenGrants>;

/// The live connection: ring (owning its granted pages), the ring
/// pages' grant references, the event channel.
struct Connection {
    ring: BlkRing<RingPages<XenGrants>>,
    ring_grants: Vec<u32>,
    channel: EventChannel,
}

/// A connected virtual block device.
pub struct BlockFront {
    virtual_device: VirtualDevice,
    info: DiskInfo,
    /// The live connection (none once detached, or while made anew).
    live: Option<Live>,
    /// The backend closed the device: every transfer fails
    /// [`BlockError::Detached`].
    detached: bool,
    /// The handshake's driver (emptied into `live` once connected).
    driver: DiskDriver,
    frontend: Frontend<'static, GuestPage, GuestClock>,
}

/// A connection's working parts.
struct Live {
    engine: Engine<RingPages<XenGrants>>,
    /// The grant references of the ring's pages (the pages themselves
    /// are in the engine's ring).
    ring_grants: Vec<u32>,
    channel: EventChannel,
    /// The slots' granted pages (what persistent grants keep mapped).
    slots: SlotPool<XenGrants>,
    /// The resume epoch the connection was made in.
    epoch: u64,
}

/// The engine's view of the event channel, and of the backend's fate.
struct ChannelPlatform<'a> {
    channel: &'a EventChannel,
    epoch: u64,
    frontend: &'a mut Frontend<'static, GuestPage, GuestClock>,
    /// The backend was seen closing: wait only [`CLOSING_GRACE`] more.
    closing: bool,
}

/// What a [`ChannelPlatform`] wait saw first.
enum Woken {
    Channel,
    Nodes(bool),
    Resumed,
    Deadline,
}

impl Platform for ChannelPlatform<'_> {
    fn notify(&mut self) {
        if self.epoch == resume::epoch() {
            let _ = self.channel.notify();
        }
    }

    async fn wait(&mut self) -> Wake {
        if self.epoch != resume::epoch() {
            return Wake::BackendReset;
        }
        let limit = if self.closing {
            CLOSING_GRACE
        } else {
            REQUEST_TIMEOUT
        };
        let deadline = kernel::time::now_ns()
            .saturating_add(u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX));
        let mut watching = !self.closing;
        loop {
            let woken = {
                let mut channel = pin!(self.channel.wait());
                let mut nodes = pin!(self.frontend.changed());
                let mut resumed = pin!(resume::resumed());
                let mut sleep = pin!(sched::sleep_until(deadline));
                poll_fn(|cx| {
                    if channel.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Woken::Channel);
                    }
                    if watching {
                        if let Poll::Ready(result) = nodes.as_mut().poll(cx) {
                            return Poll::Ready(Woken::Nodes(result.is_ok()));
                        }
                    }
                    if resumed.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Woken::Resumed);
                    }
                    if sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Woken::Deadline);
                    }
                    Poll::Pending
                })
                .await
            };
            match woken {
                Woken::Channel => return Wake::Event,
                Woken::Deadline => return Wake::Timeout,
                Woken::Resumed => return Wake::BackendReset,
                // The watch broke (xenstore gone): wait on the
                // channel alone.
                Woken::Nodes(false) => watching = false,
                Woken::Nodes(true) => match self.frontend.check().await {
                    Ok(BackendNews::Unchanged) => {}
                    Ok(BackendNews::Closing) => {
                        self.closing = true;
                        return Wake::BackendClosing;
                    }
                    Ok(BackendNews::Reset) => return Wake::BackendReset,
                    Err(_) => watching = false,
                },
            }
        }
    }
}

fn connection() -> Result<&'static GuestXenstore, BlockError> {
    xenstore().map_err(BlockError::Xenstore)
}

/// The ids under `device/vbd` (the virtual devices of this domain).
pub async fn devices() -> Result<Vec<String>, BlockError> {
    match connection()?.directory(TxId::NONE, "device/vbd").await {
        Ok(list) => Ok(list),
        Err(XsError::NotFound) => Ok(Vec::new()),
        Err(error) => Err(BlockError::Xenstore(error)),
    }
}

/// The handshake's view of the disk: what to build at each step.
struct DiskDriver {
    virtual_device: VirtualDevice,
    options: Options,
    features: BackendFeatures,
    /// Published, not yet connected.
    connection: Option<Connection>,
    /// Connected: everything the device needs.
    ready: Option<Ready>,
}

/// A connected disk's parts, from [`Driver::connected`].
struct Ready {
    live: Live,
    info: DiskInfo,
}

impl Driver for DiskDriver {
    type Error = BlockError;

    async fn publish(&mut self, paths: &DevicePaths) -> Result<(), BlockError> {
        self.connection = None;
        let xs = connection()?;
        let offer = KeyValues::read(xs, &paths.backend, OFFER_KEYS.map(FeatureKey::name)).await?;
        self.features = parse_offer(|key| offer.get(key))?;
        let order = self.features.max_ring_page_order.min(RING_PAGE_ORDER);
        let made = Connection::new(paths.backend_id, 1 << order)?;
        publish(&paths.front, &made, self.options.persistent).await?;
        self.connection = Some(made);
        Ok(())
    }

    async fn connected(&mut self, paths: &DevicePaths) -> Result<(), BlockError> {
        let Some(made) = self.connection.take() else {
            return Err(BlockError::NotConnected);
        };
        let disk = KeyValues::read(connection()?, &paths.backend, DISK_KEYS).await?;
        let mut info =
            parse_disk_info(&self.features, self.options.persistent, |key| disk.get(key))?;
        let Connection {
            ring,
            ring_grants,
            channel,
        } = made;
        info.ring_pages = ring.pages();
        let offered = info.indirect_offered as usize;
        let wanted = if offered > MAX_SEGMENTS {
            INDIRECT_SLOTS
        } else {
            SLOTS
        };
        let mut engine = Engine::new(ring, self.virtual_device.ring_handle(), wanted);
        info.indirect_segments = engine.set_indirect_segments(offered) as u32;
        let indirect = engine.indirect_segments() > 0;
        // Both shapes fit blkback's limit today; the bound keeps it so.
        let slot_count = pool::slots_within_bound(wanted, engine.pages_per_slot(), indirect);
        if slot_count < wanted {
            let indirect_segments = engine.indirect_segments();
            let ring = engine.into_ring();
            engine = Engine::new(ring, self.virtual_device.ring_handle(), slot_count);
            engine.set_indirect_segments(indirect_segments);
        }
        let slots = SlotPool::new(
            &XenGrants,
            paths.backend_id,
            slot_count,
            engine.pages_per_slot(),
            indirect,
            info.persistent.is_on(),
        )?;
        self.ready = Some(Ready {
            live: Live {
                engine,
                ring_grants,
                channel,
                slots,
                epoch: resume::epoch(),
            },
            info,
        });
        Ok(())
    }

    fn tear_down(&mut self) {
        self.connection = None;
        self.ready = None;
    }
}

impl BlockFront {
    /// Connects to virtual device `id` (a name under `device/vbd`), or to
    /// the first one when `None`. xenstore must be connected.
    pub async fn connect(id: Option<&str>) -> Result<BlockFront, BlockError> {
        Self::connect_with(id, Options::default()).await
    }

    /// [`BlockFront::connect`] with `options` (persistent grants on or off).
    pub async fn connect_with(
        id: Option<&str>,
        options: Options,
    ) -> Result<BlockFront, BlockError> {
        let list = devices().await?;
        let id = match id {
            Some(id) => list
                .iter()
                .find(|known| *known == id)
                .ok_or(BlockError::NoDevice)?,
            None => list.first().ok_or(BlockError::NoDevice)?,
        };
        let virtual_device = VirtualDevice::parse(id.as_bytes())?;
        let xs = connection()?;
        let paths = DevicePaths::read(xs, format!("device/vbd/{id}")).await?;
        let mut driver = DiskDriver {
            virtual_device,
            options,
            features: BackendFeatures::default(),
            connection: None,
            ready: None,
        };
        let frontend = Frontend::connect(
            xs,
            GuestClock,
            paths,
            ConnectStyle::TwoStep,
            Policy::DEFAULT,
            &mut driver,
        )
        .await?;
        let Some(Ready { live, info }) = driver.ready.take() else {
            return Err(BlockError::NotConnected);
        };
        Ok(BlockFront {
            virtual_device,
            info,
            live: Some(live),
            detached: false,
            driver,
            frontend,
        })
    }

    /// The virtual device id (all 32 bits).
    pub fn virtual_device(&self) -> VirtualDevice {
        self.virtual_device
    }

    /// What the backend told us and what we negotiated.
    pub fn info(&self) -> &DiskInfo {
        &self.info
    }

    /// Our xenstore directory (`device/vbd/<id>`).
    pub fn device_path(&self) -> &str {
        &self.frontend.paths().front
    }

    /// The backend's xenstore directory.
    pub fn backend_path(&self) -> &str {
        &self.frontend.paths().backend
    }

    /// The backend's domain.
    pub fn backend_id(&self) -> DomId {
        self.frontend.paths().backend_id
    }

    /// Whether the handshake reached `Connected` and the ring still works.
    pub fn is_usable(&self) -> bool {
        self.frontend.is_connected()
            && self
                .live
                .as_ref()
                .is_some_and(|live| live.engine.broken().is_none())
    }

    /// Whether the backend closed the device (`xl block-detach`).
    pub fn is_detached(&self) -> bool {
        self.detached
    }

    /// Reads `buf.len()` bytes (whole sectors) from 512-byte sector `sector`.
    pub async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_range(&self.info, sector, buf.len())?;
        let len = buf.len();
        self.run(
            Operation::Read,
            sector,
            len,
            &mut |_, _, _| {},
            &mut |slot, offset, chunk| {
                // Copied once, volatile, out of pages blkback can write.
                slot.copy_out(&mut buf[offset..offset + chunk]);
            },
        )
        .await
    }

    /// Writes `data` (whole sectors) at 512-byte sector `sector`.
    pub async fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), BlockError> {
        check_range(&self.info, sector, data.len())?;
        if self.info.readonly() {
            return Err(BlockError::ReadOnly);
        }
        self.run(
            Operation::Write,
            sector,
            data.len(),
            &mut |slot, offset, chunk| slot.copy_in(&data[offset..offset + chunk]),
            &mut |_, _, _| {},
        )
        .await
    }

    /// Flushes the backend's write cache (`BLKIF_OP_FLUSH_DISKCACHE`, or
    /// a barrier when only that is offered).
    pub async fn flush(&mut self) -> Result<(), BlockError> {
        let operation = if self.info.flush {
            Operation::FlushDiskCache
        } else if self.info.barrier {
            Operation::WriteBarrier
        } else {
            return Err(BlockError::NotSupported);
        };
        self.run(operation, 0, 0, &mut |_, _, _| {}, &mut |_, _, _| {})
            .await
    }

    /// One transfer, with what the module docs say about a backend that
    /// closes (fail [`BlockError::Detached`]) or is reset (connect anew,
    /// issue the whole transfer again).
    async fn run(
        &mut self,
        operation: Operation,
        sector: u64,
        len: usize,
        fill: &mut impl FnMut(&mut Slot, usize, usize),
        drain: &mut impl FnMut(&mut Slot, usize, usize),
    ) -> Result<(), BlockError> {
        let mut resets = 0;
        loop {
            if self.detached {
                return Err(BlockError::Detached);
            }
            let stale = self
                .live
                .as_ref()
                .is_none_or(|live| live.epoch != resume::epoch());
            let news = if stale {
                Ok(BackendNews::Reset)
            } else {
                self.frontend.refresh(&mut self.driver).await
            };
            match news {
                Ok(BackendNews::Unchanged) => {}
                Ok(_) if resets >= MAX_RESETS => return Err(BlockError::Reset),
                Ok(_) => {
                    resets += 1;
                    self.reconnect().await?;
                    continue;
                }
                Err(BlockError::Xenbus(XenbusError::BackendClosed)) => {
                    // The helper tore down and wrote `Closed`.
                    self.detached_now(0);
                    return Err(BlockError::Detached);
                }
                Err(error) => return Err(error),
            }
            match self
                .data_transfer(operation, sector, len, &mut *fill, &mut *drain)
                .await
            {
                Err(BlockError::Detached) => {
                    self.detach().await;
                    return Err(BlockError::Detached);
                }
                Err(BlockError::Reset) if resets < MAX_RESETS => {
                    resets += 1;
                    self.reconnect().await?;
                }
                other => return other,
            }
        }
    }

    /// One read or write through the engine: `fill` copies the caller's
    /// bytes into a slot's pages before a request goes out, `drain`
    /// copies a completed request's bytes out (each gets the slot, the
    /// offset in the caller's buffer and the chunk's length).
    async fn data_transfer(
        &mut self,
        operation: Operation,
        sector: u64,
        len: usize,
        mut fill: impl FnMut(&mut Slot, usize, usize),
        mut drain: impl FnMut(&mut Slot, usize, usize),
    ) -> Result<(), BlockError> {
        let Some(live) = self.live.as_mut() else {
            return Err(BlockError::NotConnected);
        };
        // A lock rather than a `RefCell`: the transfer's future holds it
        // across awaits, and a task doing disk I/O must be `Send` to be
        // spawned.
        let slots = spin::Mutex::new(live.slots.slots_mut());
        live.engine
            .transfer(
                &mut ChannelPlatform {
                    channel: &live.channel,
                    epoch: live.epoch,
                    frontend: &mut self.frontend,
                    closing: false,
                },
                Job {
                    operation,
                    sector,
                    len,
                },
                |slot, page| with_slot(&slots, slot, |s| s.gref(page)).unwrap_or(0),
                |slot, offset, chunk| {
                    with_slot(&slots, slot, |s| fill(s, offset, chunk));
                },
                |slot, offset, chunk| {
                    with_slot(&slots, slot, |s| drain(s, offset, chunk));
                },
                |slot, table| with_slot(&slots, slot, |s| s.write_table(table)).unwrap_or(0),
            )
            .await
    }

    /// The backend closed mid-transfer: our node `Closed` (so the
    /// toolstack can finish the detach), then the connection's pages go.
    async fn detach(&mut self) {
        let _ = self.frontend.detach(&mut self.driver).await;
        let abandoned = self.live.as_ref().map_or(0, |live| live.engine.in_flight());
        self.detached_now(abandoned);
    }

    /// Drops the connection (ending its grants: a page blkback still maps
    /// is quarantined, never freed) and says so.
    fn detached_now(&mut self, abandoned: usize) {
        self.live = None;
        self.detached = true;
        kernel::println!(
            "blkfront: {} detached by the backend ({abandoned} requests in flight abandoned), {}",
            self.frontend.paths().front,
            kernel::grant::stats()
        );
    }

    /// Connects anew (a resume, a restarted backend): the old connection
    /// goes first (its grants ended or, if still mapped, its pages
    /// quarantined), then the handshake runs from the start.
    async fn reconnect(&mut self) -> Result<(), BlockError> {
        self.live = None;
        let started = kernel::time::now_ns();
        match self.frontend.reconnect(&mut self.driver).await {
            Ok(()) => {}
            Err(BlockError::Xenbus(XenbusError::BackendClosed)) => {
                self.detached_now(0);
                return Err(BlockError::Detached);
            }
            Err(error) => return Err(error),
        }
        let Some(Ready { live, info }) = self.driver.ready.take() else {
            return Err(BlockError::NotConnected);
        };
        self.info = info;
        self.live = Some(live);
        kernel::println!(
            "blkfront: {} reconnected in {} ms: {}",
            self.frontend.paths().front,
            kernel::time::now_ns().saturating_sub(started) / 1_000_000,
            self.info
        );
        Ok(())
    }

    /// Disconnects: goes `Closing`, then `Closed` once the backend
    /// follows (Linux's blkback unmaps the ring only when we are
    /// `Closed`), all within the handshake's deadline; then waits (up to
    /// [`REQUEST_TIMEOUT`]) until blkback has unmapped the ring, and
    /// drops the device, which ends every grant before its page is freed.
    /// A page blkback still maps then is quarantined by the kernel (never
    /// reused) and the answer is [`BlockError::Timeout`].
    pub async fn close(self) -> Result<(), BlockError> {
        let BlockFront {
            live,
            mut driver,
            frontend,
            ..
        } = self;
        let closed = frontend.close(&mut driver).await;
        // Detached: the backend closed first, nothing is left to hand back.
        let Some(Live {
            engine,
            ring_grants,
            channel,
            slots,
            ..
        }) = live
        else {
            return Ok(());
        };
        let deadline = kernel::time::now_ns()
            .saturating_add(u64::try_from(REQUEST_TIMEOUT.as_nanos()).unwrap_or(u64::MAX));
        // Xen's in-use bits say when blkback has let go of the ring, so
        // its pages go straight back to the allocator.
        let ring_in_use = || {
            ring_grants.iter().any(|&gref| {
                kernel::grant::in_use_bits(kernel::grant::GrantRef::from_raw(gref))
                    .is_ok_and(|bits| bits != 0)
            })
        };
        while ring_in_use() && kernel::time::now_ns() <= deadline {
            sched::sleep(Duration::from_millis(5)).await;
        }
        let quarantined = kernel::grant::stats().quarantined;
        drop(slots);
        drop(engine);
        drop(channel);
        while kernel::grant::stats().quarantined > quarantined {
            if kernel::time::now_ns() > deadline {
                return Err(BlockError::Timeout);
            }
            sched::sleep(Duration::from_millis(5)).await;
            kernel::grant::reap();
        }
        closed
    }

    /// The grant of the ring's first page (for diagnostics).
    pub fn ring_gref(&self) -> u32 {
        self.live
            .as_ref()
            .and_then(|live| live.ring_grants.first().copied())
            .unwrap_or(0)
    }
}

/// Runs `body` on slot `slot` (the engine's closures share the slots
/// one call at a time, so the lock is never contended; `None` if it
/// were, or if there is no such slot).
fn with_slot<R>(
    slots: &spin::Mutex<&mut [Slot]>,
    slot: usize,
    body: impl FnOnce(&mut Slot) -> R,
) -> Option<R> {
    let mut slots = slots.try_lock()?;
    slots.get_mut(slot).map(body)
}

impl Connection {
    /// A ring of `pages` pages (a power of two), each granted to `backend`.
    fn new(backend: DomId, pages: usize) -> Result<Connection, BlockError> {
        let (ring, ring_grants) = pages::ring(&XenGrants, backend, pages)?;
        let channel = EventChannel::alloc_unbound(backend)
            .map_err(|_| BlockError::Resources("an event channel"))?;
        Ok(Connection {
            ring,
            ring_grants,
            channel,
        })
    }
}

/// Writes the ring's grants (`ring-ref`, or `ring-page-order` and
/// `ring-ref0..N` for a multi-page ring), the event channel, the ABI and
/// whether we want persistent grants (`feature-persistent`, which Linux's
/// blkback reads when it connects the rings), in one transaction.
async fn publish(device_path: &str, made: &Connection, persistent: bool) -> Result<(), BlockError> {
    let refs: Vec<String> = made
        .ring_grants
        .iter()
        .map(|gref| format!("{gref}"))
        .collect();
    let order = format!("{}", refs.len().trailing_zeros());
    let port = format!("{}", made.channel.port());
    let x = connection()?;
    let (refs, order, port) = (&refs, &order, &port);
    x.transaction(RetryPolicy::DEFAULT, |tx| async move {
        if let [only] = refs.as_slice() {
            x.write(tx, &format!("{device_path}/ring-ref"), only.as_bytes())
                .await?;
        } else {
            x.write(
                tx,
                &format!("{device_path}/ring-page-order"),
                order.as_bytes(),
            )
            .await?;
            for (i, gref) in refs.iter().enumerate() {
                x.write(tx, &format!("{device_path}/ring-ref{i}"), gref.as_bytes())
                    .await?;
            }
        }
        x.write(tx, &format!("{device_path}/event-channel"), port.as_bytes())
            .await?;
        let wanted: &[u8] = if persistent { b"1" } else { b"0" };
        x.write(tx, &format!("{device_path}/feature-persistent"), wanted)
            .await?;
        x.write(tx, &format!("{device_path}/protocol"), b"x86_64-abi")
            .await
    })
    .await?;
    Ok(())
}

/// Compile-time check: [`BlockFront::connect`]'s future is `Send`, so a
/// task may be spawned to bring the disk up.
fn _connect_is_send() {
    fn is_send<T: Send>(_: &T) {}
    is_send(&BlockFront::connect(None));
}

/// Disk I/O can run in a spawned task: the executor's `spawn` takes only
/// `Send` futures, so the transfer futures must stay `Send` (checked here
/// at compile time; a `RefCell` held across an await once broke it).
#[allow(dead_code)]
fn transfers_are_send(disk: &mut BlockFront, buf: &mut [u8], data: &[u8]) {
    fn send<T: Send>(_: T) {}
    send(disk.read(0, buf));
    send(disk.write(0, data));
    send(disk.flush());
}
