//! The pages blkfront shares with blkback, as owning types: the ring's
//! pages and each request slot's data pages (and indirect page) are
//! `kernel::grant::GrantedPage`s, so a grant is ended before its frame
//! is freed and a page blkback still maps at teardown is quarantined,
//! never reused.
//!
//! Data read from the disk arrives in pages blkback can still write, so
//! [`SlotPages::copy_out`] copies each byte once, volatile, into the
//! caller's private buffer; only that copy is ever looked at.
//!
//! Generic over `kernel::grant::GrantTable`: Xen's table in the guest,
//! the simulated one (with a backend that keeps mappings) on the host.

use alloc::vec::Vec;

use kernel::grant::{GrantError, GrantTable, GrantedPage};
use pv_arch::abi::xen::DomId;

use super::engine::BlkRing;
use super::BlockError;
use crate::page_ring::PageRing;
use crate::shared_ring::{FrontRing, XEN_PAGE_SIZE};

/// The ring memory: the ring's pages, each granted read-write.
pub type RingPages<T> = PageRing<GrantedPage<T>>;

/// What could not be allocated, as a [`BlockError`].
fn resources(what: &'static str) -> impl Fn(GrantError) -> BlockError {
    move |_| BlockError::Resources(what)
}

/// A ring of `pages` pages (a power of two) granted to `backend`, and
/// the pages' grant references in order (what `ring-ref*` publish).
pub fn ring<T: GrantTable>(
    table: &T,
    backend: DomId,
    pages: usize,
) -> Result<(BlkRing<RingPages<T>>, Vec<u32>), BlockError> {
    let granted = (0..pages)
        .map(|_| GrantedPage::new(table, backend, false))
        .collect::<Result<Vec<_>, _>>()
        .map_err(resources("a ring page"))?;
    let refs = granted.iter().map(|page| page.gref().value()).collect();
    let ring = FrontRing::new(PageRing::new(granted), pages)
        .map_err(|(error, _)| BlockError::Ring(error))?;
    Ok((ring, refs))
}

/// One request slot's data pages (and, with indirect requests, the
/// indirect page), granted to the backend for as long as the device
/// lives.
pub struct SlotPages<T: GrantTable> {
    pages: Vec<GrantedPage<T>>,
    indirect: Option<GrantedPage<T>>,
}

impl<T: GrantTable> SlotPages<T> {
    /// `data_pages` pages blkback may write (reads land there), plus an
    /// indirect page when `indirect`: read-only, except with persistent
    /// grants (`persistent`), where Linux's blkback maps every page it
    /// keeps writable, the segment table too, and a read-only grant would
    /// fail that map.
    pub fn new(
        table: &T,
        backend: DomId,
        data_pages: usize,
        indirect: bool,
        persistent: bool,
    ) -> Result<Self, BlockError> {
        let pages = (0..data_pages)
            .map(|_| GrantedPage::new(table, backend, false))
            .collect::<Result<Vec<_>, _>>()
            .map_err(resources("a data page"))?;
        let indirect = if indirect {
            // The backend only reads the segment table.
            Some(
                GrantedPage::new(table, backend, !persistent)
                    .map_err(resources("an indirect page"))?,
            )
        } else {
            None
        };
        Ok(SlotPages { pages, indirect })
    }

    /// The grant reference of data page `page` (0 if there is none).
    pub fn gref(&self, page: usize) -> u32 {
        self.pages.get(page).map_or(0, |page| page.gref().value())
    }

    /// The data pages, in order.
    pub fn pages(&self) -> &[GrantedPage<T>] {
        &self.pages
    }

    /// The data pages, to move data through (a backend's view in tests).
    pub fn pages_mut(&mut self) -> &mut [GrantedPage<T>] {
        &mut self.pages
    }

    /// The indirect page, if the slot has one.
    pub fn indirect(&self) -> Option<&GrantedPage<T>> {
        self.indirect.as_ref()
    }

    /// Pages (and so grants) the slot holds.
    pub fn grants(&self) -> usize {
        self.pages.len() + usize::from(self.indirect.is_some())
    }

    /// Copies the start of the data pages into `out` (a page per 4096
    /// bytes), each byte read once.
    pub fn copy_out(&self, out: &mut [u8]) {
        for (page, piece) in self.pages.iter().zip(out.chunks_mut(XEN_PAGE_SIZE)) {
            if page.read_bytes(0, piece).is_err() {
                piece.fill(0);
            }
        }
    }

    /// Copies `data` into the data pages (a page per 4096 bytes).
    pub fn copy_in(&mut self, data: &[u8]) {
        for (page, piece) in self.pages.iter_mut().zip(data.chunks(XEN_PAGE_SIZE)) {
            let _ = page.write_bytes(0, piece);
        }
    }

    /// Copies an indirect request's segment table into the indirect
    /// page; gives its grant reference (0 without one).
    pub fn write_table(&mut self, table: &[u8]) -> u32 {
        match &mut self.indirect {
            Some(page) => {
                let _ = page.write_bytes(0, table);
                page.gref().value()
            }
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blkfront::engine::Engine;
    use kernel::grant::sim::SimGrants;
    use kernel::grant::GrantRef;
    use kernel::mm::Gfn;

    const BACKEND: DomId = 0;

    #[test]
    fn pages_blkback_still_maps_after_teardown_are_never_reused() {
        let table = SimGrants::new(128);
        let (ring, ring_refs) = ring(&table, BACKEND, 2).unwrap();
        let engine = Engine::new(ring, 1, 4);
        let slots: Vec<_> = (0..4)
            .map(|_| SlotPages::new(&table, BACKEND, 11, true, false).unwrap())
            .collect();
        assert_eq!(table.stats().live, 2 + 4 * 12);
        // blkback maps both ring pages and a data page of slot 2, and
        // keeps them across the teardown.
        let held: Vec<GrantRef> = ring_refs
            .iter()
            .map(|&gref| GrantRef::from_raw(gref))
            .chain([slots[2].pages()[5].gref()])
            .collect();
        let frames: Vec<Gfn> = held
            .iter()
            .map(|&gref| table.backend_map(BACKEND, gref).unwrap())
            .collect();
        drop(slots);
        drop(engine);
        let stats = table.stats();
        assert_eq!((stats.live, stats.quarantined), (0, 3));
        let others = table.drain_allocator();
        assert_eq!(others.len(), 128 - 3);
        assert_eq!(table.reused_while_mapped(), 0);
        assert!(frames.iter().all(|frame| !table.is_free(*frame)));
        drop(others);
        table.backend_unmap(held[0]).unwrap();
        assert_eq!(table.reap(), 1);
        assert_eq!(table.stats().quarantined, 2);
        for gref in &held[1..] {
            table.backend_unmap(*gref).unwrap();
        }
        assert_eq!(table.reap(), 2);
        assert_eq!(table.stats().quarantined, 0);
        assert_eq!(table.free_frames(), 128);
    }

    #[test]
    fn data_is_copied_through_the_pages() {
        let table = SimGrants::new(16);
        let mut slot = SlotPages::new(&table, BACKEND, 3, true, false).unwrap();
        let data: Vec<u8> = (0..2 * XEN_PAGE_SIZE + 512).map(|i| i as u8).collect();
        slot.copy_in(&data);
        let mut back = alloc::vec![0u8; data.len()];
        slot.copy_out(&mut back);
        assert_eq!(back, data);
        let gref = slot.write_table(&[1, 2, 3]);
        assert_ne!(gref, 0);
        assert_ne!(gref, slot.gref(0));
        assert_eq!(slot.gref(3), 0);
        let mut without = SlotPages::new(&table, BACKEND, 1, false, false).unwrap();
        assert_eq!(without.write_table(&[1]), 0);
    }
}
