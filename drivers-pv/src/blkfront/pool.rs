//! [`SlotPool`]: the pages blkfront grants once per connection and reuses
//! for every request, which is what blkif's persistent grants need.
//!
//! With `feature-persistent` agreed, blkback maps a grant the first time a
//! request names it and keeps it mapped until the rings disconnect, so
//! the frontend must name the same few grants again and again: a bounded
//! pool of granted pages, the data copied into them before a write and
//! out of them after a read. Each request slot owns its pages (up to 32
//! data pages and an indirect page), so the pool is the slots' pages;
//! this module sizes it within blkback's per-ring limit on pages it keeps
//! ([`BLKBACK_MAX_PERSISTENT_GRANTS`]: beyond it blkback maps and unmaps
//! per request again) and builds it.
//!
//! The pages are owned values (`kernel::grant::GrantedPage`): dropping the
//! pool ends each grant before its frame is freed, and a page the backend
//! still maps then (blkback keeps persistent maps until it disconnects,
//! so after a reset or a close that timed out many may still be mapped)
//! is quarantined by the kernel, never freed or reused while mapped.

use alloc::vec::Vec;

use kernel::grant::GrantTable;
use pv_arch::abi::xen::DomId;

use super::pages::SlotPages;
use super::BlockError;

/// Requests in flight at most with indirect requests (each slot has 32
/// data pages and an indirect page).
pub const INDIRECT_SLOTS: usize = 16;

/// Requests in flight at most (each with its own eleven data pages).
pub const SLOTS: usize = 32;

/// Linux blkback's default limit on the grants it keeps mapped per ring
/// (its `max_persistent_grants` module parameter).
pub const BLKBACK_MAX_PERSISTENT_GRANTS: usize = 1056;

/// Grants a slot holds: its data pages and, with indirect requests, the
/// indirect page.
pub const fn grants_per_slot(pages_per_slot: usize, indirect: bool) -> usize {
    pages_per_slot + if indirect { 1 } else { 0 }
}

/// `wanted` slots, fewer if their grants would pass
/// [`BLKBACK_MAX_PERSISTENT_GRANTS`] (at least one), so every page of
/// the pool stays mapped.
pub const fn slots_within_bound(wanted: usize, pages_per_slot: usize, indirect: bool) -> usize {
    let per_slot = grants_per_slot(pages_per_slot, indirect);
    let fit = match BLKBACK_MAX_PERSISTENT_GRANTS.checked_div(per_slot) {
        Some(fit) => fit,
        None => wanted,
    };
    let slots = if wanted < fit { wanted } else { fit };
    if slots == 0 {
        1
    } else {
        slots
    }
}

/// The connection's request slots and their granted pages.
pub struct SlotPool<T: GrantTable> {
    slots: Vec<SlotPages<T>>,
}

impl<T: GrantTable> SlotPool<T> {
    /// `slots` slots of `pages_per_slot` data pages each (and an indirect
    /// page each when `indirect`), granted to `backend`; `persistent`:
    /// the backend agreed to persistent grants (see [`SlotPages::new`]).
    pub fn new(
        table: &T,
        backend: DomId,
        slots: usize,
        pages_per_slot: usize,
        indirect: bool,
        persistent: bool,
    ) -> Result<Self, BlockError> {
        let slots = (0..slots)
            .map(|_| SlotPages::new(table, backend, pages_per_slot, indirect, persistent))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SlotPool { slots })
    }

    /// The slots.
    pub fn slots(&self) -> &[SlotPages<T>] {
        &self.slots
    }

    /// The slots, to fill and drain.
    pub fn slots_mut(&mut self) -> &mut [SlotPages<T>] {
        &mut self.slots
    }

    /// Grants the pool holds.
    pub fn grants(&self) -> usize {
        self.slots.iter().map(SlotPages::grants).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::rc::Rc;
    use alloc::vec;
    use core::cell::RefCell;

    use crate::blkfront::engine::{Engine, Job, Platform, Wake};
    use crate::blkfront::wire::{
        BlkifResponse, Operation, Request, Status, MAX_INDIRECT_SEGMENTS_USED, MAX_SEGMENTS,
        SECTOR_SIZE,
    };
    use crate::shared_ring::sim::{BackRing, SharedMemory};
    use crate::shared_ring::{FrontRing, XEN_PAGE_SIZE};
    use kernel::grant::sim::SimGrants;
    use kernel::grant::GrantRef;
    use kernel::mm::Gfn;

    const BACKEND: DomId = 0;
    const POOL_SLOTS: usize = 4;
    const DISK_BYTES: usize = 4 << 20;

    type Pool = Rc<RefCell<Option<SlotPool<SimGrants>>>>;

    /// blkback with persistent grants on: it maps a grant the first
    /// time a request names it and keeps the mapping; data moves through
    /// the mapped page.
    struct PersistentBlkback {
        back: BackRing<SharedMemory, Request, BlkifResponse>,
        table: SimGrants,
        pool: Pool,
        disk: Vec<u8>,
        kept: BTreeSet<u32>,
        maps: usize,
    }

    impl PersistentBlkback {
        fn serve(&mut self, request: &Request) -> Status {
            let Request::Direct(direct) = request else {
                return Status::Error;
            };
            let mut sector = direct.sector_number as usize;
            for segment in direct.used_segments() {
                if !self.kept.contains(&segment.gref) {
                    // Fails unless the grant is live and ours to map.
                    if self
                        .table
                        .backend_map(BACKEND, GrantRef::from_raw(segment.gref))
                        .is_err()
                    {
                        return Status::Error;
                    }
                    self.kept.insert(segment.gref);
                    self.maps += 1;
                }
                let mut pool = self.pool.borrow_mut();
                let Some(page) = pool.as_mut().and_then(|pool| {
                    pool.slots_mut()
                        .iter_mut()
                        .flat_map(|slot| slot.pages_mut())
                        .find(|page| page.gref().value() == segment.gref)
                }) else {
                    return Status::Error;
                };
                let sectors = usize::from(segment.last_sect - segment.first_sect) + 1;
                let at = usize::from(segment.first_sect) * SECTOR_SIZE;
                let disk = &mut self.disk[sector * SECTOR_SIZE..(sector + sectors) * SECTOR_SIZE];
                let moved = match request.operation() {
                    Operation::Read => page.write_bytes(at, disk),
                    _ => page.read_bytes(at, disk),
                };
                if moved.is_err() {
                    return Status::Error;
                }
                sector += sectors;
            }
            Status::Okay
        }
    }

    impl Platform for PersistentBlkback {
        fn notify(&mut self) {}

        fn wait(&mut self) -> impl core::future::Future<Output = Wake> {
            let mut answered = false;
            while let Some(Ok(request)) = self.back.take_request() {
                let status = self.serve(&request);
                let response = BlkifResponse {
                    id: request.id(),
                    operation: request.operation().code(),
                    status,
                };
                self.back.push_response(&response).unwrap();
                answered = true;
            }
            self.back.push_responses_and_check_notify();
            core::future::ready(if answered { Wake::Event } else { Wake::Timeout })
        }
    }

    fn now<T>(future: impl core::future::Future<Output = T>) -> T {
        let mut future = core::pin::pin!(future);
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            core::task::Poll::Ready(value) => value,
            core::task::Poll::Pending => panic!("the simulation never blocks"),
        }
    }

    fn transfer(
        engine: &mut Engine<SharedMemory>,
        sim: &mut PersistentBlkback,
        operation: Operation,
        sector: u64,
        data: &mut [u8],
    ) -> Result<(), BlockError> {
        let pool = sim.pool.clone();
        let data = RefCell::new(data);
        let job = Job {
            operation,
            sector,
            len: data.borrow().len(),
        };
        now(engine.transfer(
            sim,
            job,
            |slot, page| {
                pool.borrow()
                    .as_ref()
                    .map_or(0, |pool| pool.slots()[slot].gref(page))
            },
            |slot, offset, chunk| {
                if let Some(pool) = pool.borrow_mut().as_mut() {
                    pool.slots_mut()[slot].copy_in(&data.borrow()[offset..offset + chunk]);
                }
            },
            |slot, offset, chunk| {
                if let Some(pool) = pool.borrow().as_ref() {
                    pool.slots()[slot].copy_out(&mut data.borrow_mut()[offset..offset + chunk]);
                }
            },
            |_, _| 0,
        ))
    }

    fn setup(table: &SimGrants) -> (Engine<SharedMemory>, PersistentBlkback) {
        let memory = SharedMemory::new(1);
        let ring = FrontRing::new(memory.clone(), 1).unwrap();
        let pool = SlotPool::new(table, BACKEND, POOL_SLOTS, MAX_SEGMENTS, false, true).unwrap();
        let sim = PersistentBlkback {
            back: BackRing::attach(memory, 1),
            table: table.clone(),
            pool: Rc::new(RefCell::new(Some(pool))),
            disk: vec![0; DISK_BYTES],
            kept: BTreeSet::new(),
            maps: 0,
        };
        (Engine::new(ring, 51712, POOL_SLOTS), sim)
    }

    fn data(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i / 7) as u8 ^ seed.wrapping_mul(31))
            .collect()
    }

    #[test]
    fn the_pool_fits_what_blkback_keeps_mapped() {
        // The device's two shapes: 32 slots of 11 pages; 16 slots of 32
        // pages and an indirect page.
        assert_eq!(slots_within_bound(SLOTS, MAX_SEGMENTS, false), SLOTS);
        assert_eq!(
            slots_within_bound(INDIRECT_SLOTS, MAX_INDIRECT_SEGMENTS_USED, true),
            INDIRECT_SLOTS
        );
        assert!(SLOTS * grants_per_slot(MAX_SEGMENTS, false) <= BLKBACK_MAX_PERSISTENT_GRANTS);
        // Too many slots are cut to what fits, never to none.
        assert_eq!(slots_within_bound(100, 32, true), 32);
        assert_eq!(slots_within_bound(1, 5000, false), 1);
        let table = SimGrants::new(64);
        let pool = SlotPool::new(&table, BACKEND, 3, 5, true, true).unwrap();
        assert_eq!(pool.grants(), 3 * 6);
        assert_eq!(table.stats().live, 18);
        // With persistent grants blkback maps the segment table writable.
        assert!(pool
            .slots()
            .iter()
            .all(|slot| slot.indirect().is_some_and(|page| !page.readonly())));
        let without = SlotPool::new(&table, BACKEND, 1, 5, true, false).unwrap();
        assert!(without.slots()[0].indirect().unwrap().readonly());
        assert!(without.slots()[0]
            .pages()
            .iter()
            .all(|page| !page.readonly()));
    }

    #[test]
    fn persistent_pages_are_mapped_once_and_reused_by_every_request() {
        let table = SimGrants::new(128);
        let (mut engine, mut sim) = setup(&table);
        let pool_grants = POOL_SLOTS * MAX_SEGMENTS;
        assert_eq!(table.stats().live, pool_grants);
        // Writes and reads of many requests each (200 KiB is 5 requests).
        let mut wrote = Vec::new();
        for (i, sector) in [0u64, 2048, 4000].into_iter().enumerate() {
            let mut bytes = data(i as u8 + 1, 200 * 1024);
            transfer(&mut engine, &mut sim, Operation::Write, sector, &mut bytes).unwrap();
            wrote.push((sector, bytes));
        }
        let maps_after_writes = sim.maps;
        assert!(maps_after_writes > 0 && maps_after_writes <= pool_grants);
        for (sector, bytes) in &wrote {
            let mut back = vec![0u8; bytes.len()];
            transfer(&mut engine, &mut sim, Operation::Read, *sector, &mut back).unwrap();
            assert_eq!(&back, bytes, "sector {sector}");
        }
        // Every page named was one of the pool's, mapped once; no grant
        // was made or ended per request.
        assert_eq!(sim.maps, sim.kept.len());
        assert!(sim.maps <= pool_grants);
        let pool_refs: BTreeSet<u32> = sim
            .pool
            .borrow()
            .as_ref()
            .unwrap()
            .slots()
            .iter()
            .flat_map(|slot| slot.pages().iter().map(|page| page.gref().value()))
            .collect();
        assert!(sim.kept.is_subset(&pool_refs));
        assert_eq!(table.stats().live, pool_grants);
        // Once every page has been used, more traffic maps nothing new.
        let mut big = data(9, POOL_SLOTS * MAX_SEGMENTS * XEN_PAGE_SIZE * 2);
        transfer(&mut engine, &mut sim, Operation::Write, 100, &mut big).unwrap();
        assert_eq!(sim.maps, pool_grants);
        transfer(&mut engine, &mut sim, Operation::Read, 100, &mut big).unwrap();
        transfer(&mut engine, &mut sim, Operation::Write, 6000, &mut big).unwrap();
        assert_eq!(sim.maps, pool_grants);
    }

    #[test]
    fn pages_blkback_keeps_mapped_at_close_are_quarantined_never_freed() {
        let table = SimGrants::new(128);
        let (mut engine, mut sim) = setup(&table);
        let mut bytes = data(3, POOL_SLOTS * MAX_SEGMENTS * XEN_PAGE_SIZE);
        transfer(&mut engine, &mut sim, Operation::Write, 0, &mut bytes).unwrap();
        let kept: Vec<u32> = sim.kept.iter().copied().collect();
        assert_eq!(kept.len(), POOL_SLOTS * MAX_SEGMENTS);
        let frames: Vec<Gfn> = {
            let pool = sim.pool.borrow();
            let pool = pool.as_ref().unwrap();
            pool.slots()
                .iter()
                .flat_map(|slot| slot.pages().iter().map(|page| page.gfn()))
                .collect()
        };
        // The connection goes (a close that timed out, a reset) while
        // blkback still holds every page.
        drop(engine);
        let pool = sim.pool.borrow_mut().take();
        drop(pool);
        let stats = table.stats();
        assert_eq!((stats.live, stats.quarantined), (0, kept.len()));
        assert!(frames.iter().all(|frame| !table.is_free(*frame)));
        let others = table.drain_allocator();
        assert_eq!(others.len(), 128 - kept.len());
        assert_eq!(table.reused_while_mapped(), 0);
        drop(others);
        // blkback disconnects and unmaps them: the pages come back.
        for gref in &kept {
            table.backend_unmap(GrantRef::from_raw(*gref)).unwrap();
        }
        assert_eq!(table.reap(), kept.len());
        assert_eq!(table.stats().quarantined, 0);
        assert_eq!(table.free_frames(), 128);
    }
}
