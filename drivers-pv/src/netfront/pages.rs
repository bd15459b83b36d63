//! The pages netfront shares with netback, as owning types: each ring
//! page and each packet page is a `kernel::grant::GrantedPage`, so the
//! grant is ended before the frame is freed, and a page netback still
//! maps when the device is torn down is quarantined rather than reused.
//!
//! Generic over `kernel::grant::GrantTable`: the guest uses Xen's table
//! (`XenGrants`), the host tests the simulated one, with a backend that
//! can keep a mapping across a teardown.

use alloc::vec::Vec;

use kernel::grant::{GrantError, GrantTable, GrantedPage};
use pv_arch::abi::xen::DomId;

use super::PacketBuffers;
use crate::page_ring::PageRing;

/// One ring page, granted to the back end (read-write).
pub type RingPage<T> = PageRing<GrantedPage<T>>;

/// A ring page granted to `backend`, with its grant reference.
pub fn ring_page<T: GrantTable>(
    table: &T,
    backend: DomId,
) -> Result<(RingPage<T>, u32), GrantError> {
    let page = GrantedPage::new(table, backend, false)?;
    let gref = page.gref().value();
    Ok((PageRing::new(alloc::vec![page]), gref))
}

/// Packet pages, each granted to the back end.
pub struct GrantedPages<T: GrantTable> {
    pages: Vec<GrantedPage<T>>,
}

impl<T: GrantTable> GrantedPages<T> {
    /// `count` pages granted to `backend` (read-only if `readonly`: tx
    /// pages, which netback only reads).
    pub fn new(
        table: &T,
        backend: DomId,
        count: usize,
        readonly: bool,
    ) -> Result<Self, GrantError> {
        let pages = (0..count)
            .map(|_| GrantedPage::new(table, backend, readonly))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GrantedPages { pages })
    }

    /// The pages, in id order.
    pub fn pages(&self) -> &[GrantedPage<T>] {
        &self.pages
    }
}

impl<T: GrantTable> PacketBuffers for GrantedPages<T> {
    fn count(&self) -> usize {
        self.pages.len()
    }

    fn gref(&self, id: u16) -> u32 {
        self.pages
            .get(usize::from(id))
            .map_or(0, |page| page.gref().value())
    }

    fn write(&mut self, id: u16, bytes: &[u8]) {
        if let Some(page) = self.pages.get_mut(usize::from(id)) {
            let _ = page.write_bytes(0, bytes);
        }
    }

    fn read(&self, id: u16, offset: usize, out: &mut [u8]) {
        match self.pages.get(usize::from(id)) {
            Some(page) if page.read_bytes(offset, out).is_ok() => {}
            _ => out.fill(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfront::queue::QueueParts;
    use crate::netfront::{LinkConfig, Netfront, Notify, RingKind};
    use kernel::grant::sim::SimGrants;
    use kernel::grant::GrantRef;
    use kernel::mm::Gfn;

    const BACKEND: DomId = 0;

    struct NoNotify;

    impl Notify for NoNotify {
        fn notify(&mut self, _: usize, _: RingKind) {}
    }

    type SimNetfront = Netfront<RingPage<SimGrants>, GrantedPages<SimGrants>, NoNotify>;

    /// A one-queue netfront over granted pages, with the grant
    /// references of its rx ring and of its rx buffers 0 and 3 (what a
    /// netback would map).
    fn netfront(table: &SimGrants) -> (SimNetfront, Vec<GrantRef>) {
        let (tx_ring, _) = ring_page(table, BACKEND).unwrap();
        let (rx_ring, _) = ring_page(table, BACKEND).unwrap();
        let rx_buffers = GrantedPages::new(table, BACKEND, 8, false).unwrap();
        let mapped_by_backend = alloc::vec![
            rx_ring.pages()[0].gref(),
            rx_buffers.pages()[0].gref(),
            rx_buffers.pages()[3].gref(),
        ];
        let parts = QueueParts {
            tx_ring,
            rx_ring,
            tx_buffers: GrantedPages::new(table, BACKEND, 8, true).unwrap(),
            rx_buffers,
        };
        let front = Netfront::new(
            alloc::vec![parts],
            NoNotify,
            [0, 0x16, 0x3e, 0, 0, 1],
            LinkConfig::default(),
        )
        .unwrap();
        (front, mapped_by_backend)
    }

    #[test]
    fn pages_netback_still_maps_after_teardown_are_never_reused() {
        let table = SimGrants::new(64);
        let (front, held) = netfront(&table);
        // 2 ring pages + 16 packet pages granted.
        assert_eq!(table.stats().live, 18);
        // netback maps the rx ring and two rx buffers, and keeps them
        // mapped across the teardown.
        let frames: Vec<Gfn> = held
            .iter()
            .map(|&gref| table.backend_map(BACKEND, gref).unwrap())
            .collect();
        drop(front);
        let stats = table.stats();
        assert_eq!((stats.live, stats.quarantined), (0, frames.len()));
        // Whatever is allocated next never gets a frame netback maps.
        let others = table.drain_allocator();
        assert_eq!(others.len(), 64 - frames.len());
        assert_eq!(table.reused_while_mapped(), 0);
        assert!(frames.iter().all(|frame| !table.is_free(*frame)));
        drop(others);
        // netback lets go: the reaper frees them all.
        for gref in held {
            table.backend_unmap(gref).unwrap();
        }
        assert_eq!(table.reap(), frames.len());
        assert_eq!(table.stats().quarantined, 0);
        assert_eq!(table.free_frames(), 64);
        assert!(frames.iter().all(|frame| table.is_free(*frame)));
    }

    #[test]
    fn unmapped_teardown_frees_everything_at_once() {
        let table = SimGrants::new(32);
        drop(netfront(&table).0);
        let stats = table.stats();
        assert_eq!((stats.live, stats.quarantined), (0, 0));
        assert_eq!(table.free_frames(), 32);
    }
}
