//! [`BlockFront`]: one connected virtual block device, in the guest.
//!
//! [`BlockFront::connect`] walks the xenbus handshake with the backend
//! named in `device/vbd/<id>` (polling the backend's `state` node), and
//! [`BlockFront::read`], [`BlockFront::write`] and [`BlockFront::flush`]
//! block the vCPU until their requests are answered, keeping up to
//! [`SLOTS`] requests of up to eleven pages in flight.
//!
//! Two backend offers are taken up: `max-ring-page-order` (a ring of
//! 2^min(order, [`RING_PAGE_ORDER`]) pages, published as `ring-page-order`
//! and `ring-ref0..N`), and `feature-max-indirect-segments` (then
//! [`INDIRECT_SLOTS`] requests of up to 32 pages each, as
//! `BLKIF_OP_INDIRECT` requests with one indirect page per slot).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

use kernel::events::EventChannel;
use kernel::grant::XenGrants;
use kernel::{sched, time};
use pv_arch::abi::xen::DomId;

use super::engine::{BlkRing, Engine, Job, Platform};
use super::pages::{self, RingPages, SlotPages};
use super::wire::{Operation, MAX_SEGMENTS};
use super::{check_range, BlockError, DiskInfo};

/// The ring page order we use at most (4 pages) when the backend offers
/// `max-ring-page-order`.
pub const RING_PAGE_ORDER: u8 = 2;

/// Requests in flight at most with indirect requests (each slot has 32
/// data pages and an indirect page).
pub const INDIRECT_SLOTS: usize = 16;
use crate::xenbus_state::{
    parse_u64, Action, BackendFeatures, ConnectStyle, FeatureKey, FrontendState, XenbusState,
};
use crate::xenstore::client::{RetryPolicy, TxId};
use crate::xenstore::error::XsError;
use crate::xenstore::guest::{with_xenstore, GuestXenstore};

/// Requests in flight at most (each with its own eleven data pages).
pub const SLOTS: usize = 32;

/// How long the handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a request may stay unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
    device_path: String,
    backend_path: String,
    backend_id: DomId,
    state: FrontendState,
    engine: Engine<RingPages<XenGrants>>,
    /// The grant references of the ring's pages (the pages themselves
    /// are in the engine's ring).
    ring_grants: Vec<u32>,
    channel: EventChannel,
    slots: Vec<Slot>,
    info: DiskInfo,
}

/// The engine's view of the event channel.
struct ChannelPlatform<'a> {
    channel: &'a EventChannel,
}

impl Platform for ChannelPlatform<'_> {
    fn notify(&mut self) {
        let _ = self.channel.notify();
    }

    fn wait(&mut self) -> bool {
        wait_event(self.channel, REQUEST_TIMEOUT)
    }
}

fn xs<R>(body: impl FnOnce(&mut GuestXenstore) -> Result<R, XsError>) -> Result<R, BlockError> {
    with_xenstore(body).map_err(BlockError::Xenstore)
}

fn read_opt(path: &str) -> Result<Option<Vec<u8>>, BlockError> {
    match with_xenstore(|x| x.read(TxId::NONE, path)) {
        Ok(value) => Ok(Some(value)),
        Err(XsError::NotFound) => Ok(None),
        Err(error) => Err(BlockError::Xenstore(error)),
    }
}

fn read_required(path: &str, key: &'static str) -> Result<Vec<u8>, BlockError> {
    read_opt(path)?.ok_or(BlockError::BadKey(key))
}

fn read_flag(path: &str) -> Result<bool, BlockError> {
    Ok(matches!(read_opt(path)?.as_deref(), Some(b"1")))
}

/// Waits until `channel` fires or `limit` passes; false on timeout.
fn wait_event(channel: &EventChannel, limit: Duration) -> bool {
    let mut event = pin!(channel.wait());
    let mut timer = pin!(sched::sleep(limit));
    sched::block_on(core::future::poll_fn(|cx| {
        if event.as_mut().poll(cx).is_ready() {
            return Poll::Ready(true);
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        Poll::Pending
    }))
}

/// The ids under `device/vbd` (the virtual devices of this domain).
pub fn devices() -> Result<Vec<String>, BlockError> {
    match with_xenstore(|x| x.directory(TxId::NONE, "device/vbd")) {
        Ok(list) => Ok(list),
        Err(XsError::NotFound) => Ok(Vec::new()),
        Err(error) => Err(BlockError::Xenstore(error)),
    }
}

impl BlockFront {
    /// Connects to virtual device `id` (a name under `device/vbd`), or to
    /// the first one when `None`. xenstore must be connected.
    pub fn connect(id: Option<&str>) -> Result<BlockFront, BlockError> {
        let list = devices()?;
        let id = match id {
            Some(id) => list
                .iter()
                .find(|known| *known == id)
                .ok_or(BlockError::NoDevice)?,
            None => list.first().ok_or(BlockError::NoDevice)?,
        };
        let device_path = format!("device/vbd/{id}");
        let handle = id
            .parse::<u32>()
            .map(|vdev| vdev as u16)
            .map_err(|_| BlockError::BadKey("virtual-device"))?;
        let backend_raw = read_required(&format!("{device_path}/backend"), "backend")?;
        let backend_path = String::from_utf8(backend_raw)
            .ok()
            .filter(|path| path.starts_with('/') && !path.contains('\0'))
            .ok_or(BlockError::BadKey("backend"))?;
        let backend_id = parse_u64(&read_required(
            &format!("{device_path}/backend-id"),
            "backend-id",
        )?)
        .ok()
        .and_then(|id| DomId::try_from(id).ok())
        .ok_or(BlockError::BadKey("backend-id"))?;

        let mut state = FrontendState::new(ConnectStyle::TwoStep);
        let mut connection: Option<Connection> = None;
        let mut features = BackendFeatures::default();
        let deadline = time::now_ns().saturating_add(CONNECT_TIMEOUT.as_nanos() as u64);
        write_state(&device_path, XenbusState::Initialising)?;
        loop {
            let raw = read_required(&format!("{backend_path}/state"), "state")?;
            let action = state
                .backend_changed(&raw)
                .map_err(|_| BlockError::BadKey("state"))?;
            match action {
                Action::Wait => {
                    if time::now_ns() > deadline {
                        return Err(BlockError::NotConnected);
                    }
                    sched::block_on(sched::sleep(Duration::from_millis(10)));
                    continue;
                }
                Action::Publish { .. } => {
                    features = read_features(&backend_path)?;
                    let order = features.max_ring_page_order.min(RING_PAGE_ORDER);
                    let made = Connection::new(backend_id, 1 << order)?;
                    publish(&device_path, &made)?;
                    connection = Some(made);
                }
                Action::Connect => {
                    let Some(made) = connection.take() else {
                        return Err(BlockError::NotConnected);
                    };
                    let mut info = read_disk_info(&backend_path, &features)?;
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
                    let mut engine = Engine::new(ring, handle, slot_count);
                    info.indirect_segments = engine.set_indirect_segments(offered) as u32;
                    let mut slots = Vec::with_capacity(slot_count);
                    for _ in 0..slot_count {
                        slots.push(Slot::new(
                            &XenGrants,
                            backend_id,
                            engine.pages_per_slot(),
                            engine.indirect_segments() > 0,
                        )?);
                    }
                    write_state(&device_path, XenbusState::Connected)?;
                    return Ok(BlockFront {
                        device_path,
                        backend_path,
                        backend_id,
                        state,
                        engine,
                        ring_grants,
                        channel,
                        slots,
                        info,
                    });
                }
                Action::TearDown => {
                    connection = None;
                }
                Action::BeginClose | Action::Reinitialise => {}
            }
            if let Some(next) = action.state_to_write() {
                write_state(&device_path, next)?;
            }
            if !state.wanted() {
                return Err(BlockError::NotConnected);
            }
        }
    }

    /// What the backend told us and what we negotiated.
    pub fn info(&self) -> &DiskInfo {
        &self.info
    }

    /// Our xenstore directory (`device/vbd/<id>`).
    pub fn device_path(&self) -> &str {
        &self.device_path
    }

    /// The backend's xenstore directory.
    pub fn backend_path(&self) -> &str {
        &self.backend_path
    }

    /// The backend's domain.
    pub fn backend_id(&self) -> DomId {
        self.backend_id
    }

    /// Whether the handshake reached `Connected` and the ring still works.
    pub fn is_usable(&self) -> bool {
        self.state.is_connected() && self.engine.broken().is_none()
    }

    /// Reads `buf.len()` bytes (whole sectors) from 512-byte sector `sector`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_range(&self.info, sector, buf.len())?;
        let len = buf.len();
        let slots = RefCell::new(&mut self.slots);
        self.engine.transfer(
            &mut ChannelPlatform {
                channel: &self.channel,
            },
            Job {
                operation: Operation::Read,
                sector,
                len,
            },
            |slot, page| with_slot(&slots, slot, |s| s.gref(page)).unwrap_or(0),
            |_, _, _| {},
            |slot, offset, chunk| {
                // Copied once, volatile, out of pages blkback can write.
                let out = &mut buf[offset..offset + chunk];
                with_slot(&slots, slot, |s| s.copy_out(out));
            },
            |slot, table| with_slot(&slots, slot, |s| s.write_table(table)).unwrap_or(0),
        )
    }

    /// Writes `data` (whole sectors) at 512-byte sector `sector`.
    pub fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), BlockError> {
        check_range(&self.info, sector, data.len())?;
        if self.info.readonly() {
            return Err(BlockError::ReadOnly);
        }
        let slots = RefCell::new(&mut self.slots);
        self.engine.transfer(
            &mut ChannelPlatform {
                channel: &self.channel,
            },
            Job {
                operation: Operation::Write,
                sector,
                len: data.len(),
            },
            |slot, page| with_slot(&slots, slot, |s| s.gref(page)).unwrap_or(0),
            |slot, offset, chunk| {
                let piece = &data[offset..offset + chunk];
                with_slot(&slots, slot, |s| s.copy_in(piece));
            },
            |_, _, _| {},
            |slot, table| with_slot(&slots, slot, |s| s.write_table(table)).unwrap_or(0),
        )
    }

    /// Flushes the backend's write cache (`BLKIF_OP_FLUSH_DISKCACHE`, or
    /// a barrier when only that is offered).
    pub fn flush(&mut self) -> Result<(), BlockError> {
        let operation = if self.info.flush {
            Operation::FlushDiskCache
        } else if self.info.barrier {
            Operation::WriteBarrier
        } else {
            return Err(BlockError::NotSupported);
        };
        self.engine.transfer(
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
    }

    /// Disconnects: goes `Closing`, then `Closed` once the backend
    /// follows (Linux's blkback unmaps the ring only when we are
    /// `Closed`), then ends the ring's grants as soon as the backend has
    /// unmapped them. Gives up after the connect timeout with
    /// [`BlockError::Timeout`]; the pages of grants still mapped then are
    /// quarantined by the kernel (never reused) until blkback lets go.
    pub fn close(mut self) -> Result<(), BlockError> {
        let mut action = self.state.close();
        let deadline = time::now_ns().saturating_add(CONNECT_TIMEOUT.as_nanos() as u64);
        let pause = || sched::block_on(sched::sleep(Duration::from_millis(5)));
        loop {
            if let Some(next) = action.state_to_write() {
                write_state(&self.device_path, next)?;
            }
            if action == Action::TearDown {
                break;
            }
            if time::now_ns() > deadline {
                return Err(BlockError::Timeout);
            }
            pause();
            let raw = read_required(&format!("{}/state", self.backend_path), "state")?;
            action = self
                .state
                .backend_changed(&raw)
                .map_err(|_| BlockError::BadKey("state"))?;
        }
        // blkback unmaps the ring shortly after it sees `Closed`: wait
        // for that (Xen's in-use bits) until the deadline, so the ring's
        // pages go straight back to the allocator. Dropping the device
        // then ends every grant before its page is freed; a page blkback
        // still maps waits in the kernel's quarantine.
        let ring_in_use = |refs: &[u32]| {
            refs.iter().any(|&gref| {
                kernel::grant::in_use_bits(kernel::grant::GrantRef::from_raw(gref))
                    .is_ok_and(|bits| bits != 0)
            })
        };
        while ring_in_use(&self.ring_grants) && time::now_ns() <= deadline {
            pause();
        }
        let BlockFront {
            engine,
            channel,
            slots,
            ..
        } = self;
        let quarantined = kernel::grant::stats().quarantined;
        drop(slots);
        drop(engine);
        drop(channel);
        // Give blkback until the deadline to let go of what it still
        // maps, so the pages go back to the allocator now.
        while kernel::grant::stats().quarantined > quarantined {
            if time::now_ns() > deadline {
                return Err(BlockError::Timeout);
            }
            pause();
            kernel::grant::reap();
        }
        Ok(())
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

fn write_state(device_path: &str, state: XenbusState) -> Result<(), BlockError> {
    let path = format!("{device_path}/state");
    xs(|x| x.write(TxId::NONE, &path, state.as_str().as_bytes()))
}

/// Writes the ring's grants (`ring-ref`, or `ring-page-order` and
/// `ring-ref0..N` for a multi-page ring), the event channel and the ABI.
fn publish(device_path: &str, connection: &Connection) -> Result<(), BlockError> {
    let refs: Vec<String> = connection
        .ring_grants
        .iter()
        .map(|gref| format!("{gref}"))
        .collect();
    let order = format!("{}", refs.len().trailing_zeros());
    let port = format!("{}", connection.channel.port());
    xs(|x| {
        x.transaction(RetryPolicy::DEFAULT, |x, tx| {
            if let [only] = refs.as_slice() {
                x.write(tx, &format!("{device_path}/ring-ref"), only.as_bytes())?;
            } else {
                x.write(
                    tx,
                    &format!("{device_path}/ring-page-order"),
                    order.as_bytes(),
                )?;
                for (i, gref) in refs.iter().enumerate() {
                    x.write(tx, &format!("{device_path}/ring-ref{i}"), gref.as_bytes())?;
                }
            }
            x.write(tx, &format!("{device_path}/event-channel"), port.as_bytes())?;
            x.write(tx, &format!("{device_path}/protocol"), b"x86_64-abi")
        })
    })
}

fn read_features(backend_path: &str) -> Result<BackendFeatures, BlockError> {
    let mut features = BackendFeatures::default();
    for key in [
        FeatureKey::MaxRingPageOrder,
        FeatureKey::FeaturePersistent,
        FeatureKey::FeatureMaxIndirectSegments,
    ] {
        if let Some(raw) = read_opt(&format!("{backend_path}/{}", key.name()))? {
            features.set(key, &raw).map_err(BlockError::Feature)?;
        }
    }
    Ok(features)
}

fn read_disk_info(backend_path: &str, features: &BackendFeatures) -> Result<DiskInfo, BlockError> {
    let mut features = *features;
    let sectors = read_required(&format!("{backend_path}/sectors"), "sectors")?;
    features
        .set(FeatureKey::Sectors, &sectors)
        .map_err(BlockError::Feature)?;
    let sector_size = match read_opt(&format!("{backend_path}/sector-size"))? {
        Some(raw) => {
            features
                .set(FeatureKey::SectorSize, &raw)
                .map_err(BlockError::Feature)?;
            features.sector_size.unwrap_or(512)
        }
        None => 512,
    };
    let info = match read_opt(&format!("{backend_path}/info"))? {
        Some(raw) => parse_u64(&raw)
            .ok()
            .and_then(|info| u32::try_from(info).ok())
            .ok_or(BlockError::BadKey("info"))?,
        None => 0,
    };
    Ok(DiskInfo {
        sectors: features.sectors.unwrap_or(0),
        sector_size,
        info,
        flush: read_flag(&format!("{backend_path}/feature-flush-cache"))?,
        barrier: read_flag(&format!("{backend_path}/feature-barrier"))?,
        persistent_offered: features.persistent,
        indirect_offered: features.max_indirect_segments,
        max_ring_page_order: features.max_ring_page_order,
        ring_pages: 1,
        indirect_segments: 0,
    })
}
