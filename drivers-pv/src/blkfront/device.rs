//! [`BlockFront`]: one connected virtual block device, in the guest.
//!
//! [`BlockFront::connect`] (async) hands the xenbus handshake with the
//! backend named in `device/vbd/<id>` to the shared helper
//! ([`Frontend::connect`], `ConnectStyle::TwoStep`: one overall deadline,
//! a cap on publications, the backend's state watched, not polled), and
//! [`BlockFront::read`], [`BlockFront::write`] and [`BlockFront::flush`]
//! are async too: the task awaits the event channel (bounded by
//! [`REQUEST_TIMEOUT`]) while up to [`SLOTS`] requests of up to eleven
//! pages are in flight. Before each request the device looks whether the
//! backend went `Closing` (`xl block-detach`) and, if so, closes its side
//! and fails with [`crate::xenbus_frontend::XenbusError::BackendClosed`].
//!
//! Two backend offers are taken up: `max-ring-page-order` (a ring of
//! 2^min(order, [`RING_PAGE_ORDER`]) pages, published as `ring-page-order`
//! and `ring-ref0..N`), and `feature-max-indirect-segments` (then
//! [`INDIRECT_SLOTS`] requests of up to 32 pages each, as
//! `BLKIF_OP_INDIRECT` requests with one indirect page per slot). What
//! the backend writes is parsed by [`super::offer`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::time::Duration;

use kernel::events::EventChannel;
use kernel::grant::XenGrants;
use kernel::sched;
use pv_arch::abi::xen::DomId;

use super::engine::{BlkRing, Engine, Job, Platform};
use super::offer::{parse_disk_info, parse_offer, VirtualDevice, DISK_KEYS, OFFER_KEYS};
use super::pages::{self, RingPages, SlotPages};
use super::wire::{Operation, MAX_SEGMENTS};
use super::{check_range, BlockError, DiskInfo};
use crate::xenbus_frontend::{DevicePaths, Driver, Frontend, GuestClock, KeyValues, Policy};
use crate::xenbus_state::{BackendFeatures, ConnectStyle, FeatureKey};
use crate::xenstore::client::{RetryPolicy, TxId};
use crate::xenstore::error::XsError;
use crate::xenstore::guest::{xenstore, GuestPage, GuestXenstore};

/// The ring page order we use at most (4 pages) when the backend offers
/// `max-ring-page-order`.
pub const RING_PAGE_ORDER: u8 = 2;

/// Requests in flight at most with indirect requests (each slot has 32
/// data pages and an indirect page).
pub const INDIRECT_SLOTS: usize = 16;

/// Requests in flight at most (each with its own eleven data pages).
pub const SLOTS: usize = 32;

/// How long a request may stay unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
    engine: Engine<RingPages<XenGrants>>,
    /// The grant references of the ring's pages (the pages themselves
    /// are in the engine's ring).
    ring_grants: Vec<u32>,
    channel: EventChannel,
    slots: Vec<Slot>,
    info: DiskInfo,
    /// The handshake's driver (emptied into the fields above once
    /// connected).
    driver: DiskDriver,
    frontend: Frontend<'static, GuestPage, GuestClock>,
}

/// The engine's view of the event channel.
struct ChannelPlatform<'a> {
    channel: &'a EventChannel,
}

impl Platform for ChannelPlatform<'_> {
    fn notify(&mut self) {
        let _ = self.channel.notify();
    }

    fn wait(&mut self) -> impl Future<Output = bool> {
        let channel = self.channel;
        async move {
            sched::timeout(REQUEST_TIMEOUT, channel.wait())
                .await
                .is_ok()
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
    features: BackendFeatures,
    /// Published, not yet connected.
    connection: Option<Connection>,
    /// Connected: everything the device needs.
    ready: Option<Ready>,
}

/// A connected disk's parts, from [`Driver::connected`].
struct Ready {
    engine: Engine<RingPages<XenGrants>>,
    ring_grants: Vec<u32>,
    channel: EventChannel,
    slots: Vec<Slot>,
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
        publish(&paths.front, &made).await?;
        self.connection = Some(made);
        Ok(())
    }

    async fn connected(&mut self, paths: &DevicePaths) -> Result<(), BlockError> {
        let Some(made) = self.connection.take() else {
            return Err(BlockError::NotConnected);
        };
        let disk = KeyValues::read(connection()?, &paths.backend, DISK_KEYS).await?;
        let mut info = parse_disk_info(&self.features, |key| disk.get(key))?;
        let Connection {
            ring,
            ring_grants,
            channel,
        } = made;
        info.ring_pages = ring.pages();
        let offered = info.indirect_offered as usize;
        let slot_count = if offered > MAX_SEGMENTS {
            INDIRECT_SLOTS
        } else {
            SLOTS
        };
        let mut engine = Engine::new(ring, self.virtual_device.ring_handle(), slot_count);
        info.indirect_segments = engine.set_indirect_segments(offered) as u32;
        let mut slots = Vec::with_capacity(slot_count);
        for _ in 0..slot_count {
            slots.push(Slot::new(
                &XenGrants,
                paths.backend_id,
                engine.pages_per_slot(),
                engine.indirect_segments() > 0,
            )?);
        }
        self.ready = Some(Ready {
            engine,
            ring_grants,
            channel,
            slots,
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
        let Some(Ready {
            engine,
            ring_grants,
            channel,
            slots,
            info,
        }) = driver.ready.take()
        else {
            return Err(BlockError::NotConnected);
        };
        Ok(BlockFront {
            virtual_device,
            engine,
            ring_grants,
            channel,
            slots,
            info,
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
        self.frontend.is_connected() && self.engine.broken().is_none()
    }

    /// Fails with [`crate::xenbus_frontend::XenbusError::BackendClosed`] once the backend has
    /// gone `Closing` (our side is then `Closed`).
    async fn still_connected(&mut self) -> Result<(), BlockError> {
        self.frontend.refresh(&mut self.driver).await
    }

    /// Reads `buf.len()` bytes (whole sectors) from 512-byte sector `sector`.
    pub async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_range(&self.info, sector, buf.len())?;
        self.still_connected().await?;
        let len = buf.len();
        self.data_transfer(
            Operation::Read,
            sector,
            len,
            |_, _, _| {},
            |slot, offset, chunk| {
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
        self.still_connected().await?;
        self.data_transfer(
            Operation::Write,
            sector,
            data.len(),
            |slot, offset, chunk| slot.copy_in(&data[offset..offset + chunk]),
            |_, _, _| {},
        )
        .await
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
        let slots = RefCell::new(&mut self.slots);
        self.engine
            .transfer(
                &mut ChannelPlatform {
                    channel: &self.channel,
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

    /// Flushes the backend's write cache (`BLKIF_OP_FLUSH_DISKCACHE`, or
    /// a barrier when only that is offered).
    pub async fn flush(&mut self) -> Result<(), BlockError> {
        self.still_connected().await?;
        let operation = if self.info.flush {
            Operation::FlushDiskCache
        } else if self.info.barrier {
            Operation::WriteBarrier
        } else {
            return Err(BlockError::NotSupported);
        };
        self.engine
            .transfer(
                &mut ChannelPlatform {
                    channel: &self.channel,
                },
                Job {
                    operation,
                    sector: 0,
                    len: 0,
                },
                |_, _| 0,
                |_, _, _| {},
                |_, _, _| {},
                |_, _| 0,
            )
            .await
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
            engine,
            ring_grants,
            channel,
            slots,
            mut driver,
            frontend,
            ..
        } = self;
        let closed = frontend.close(&mut driver).await;
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
        self.ring_grants.first().copied().unwrap_or(0)
    }
}

/// Runs `body` on slot `slot` (the engine's closures share the slots
/// one call at a time, so the borrow never overlaps; `None` if it did,
/// or if there is no such slot).
fn with_slot<R>(
    slots: &RefCell<&mut Vec<Slot>>,
    slot: usize,
    body: impl FnOnce(&mut Slot) -> R,
) -> Option<R> {
    let mut slots = slots.try_borrow_mut().ok()?;
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
/// `ring-ref0..N` for a multi-page ring), the event channel and the ABI,
/// in one transaction.
async fn publish(device_path: &str, made: &Connection) -> Result<(), BlockError> {
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
