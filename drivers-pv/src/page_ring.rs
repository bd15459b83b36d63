//! [`PageRing`]: [`RingMemory`] over a run of owned pages, the memory a
//! front end shares with its backend (blkfront's ring, netfront's tx and
//! rx rings).
//!
//! The pages need not be contiguous in memory: the ring sees them as one
//! run of `pages.len() * 4096` bytes, and a slot that straddles a page
//! boundary is split. Every access to the shared bytes is volatile (the
//! page type's accessors); the barriers the ring owes are fences
//! (`Acquire` after an index load, `Release` before an index store,
//! `SeqCst` for the full barrier), which on x86_64 are what `xen_rmb`,
//! `xen_wmb` and `xen_mb` are.
//!
//! The pages are `kernel::grant::GrantedPage`s (over Xen's table in the
//! guest, over the simulated one in host tests), or any other type
//! implementing [`SharedPage`].

use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};

use crate::shared_ring::{RingMemory, XEN_PAGE_SIZE};
use kernel::grant::{GrantTable, GrantedPage};

/// One 4 KiB page of shared memory with volatile, bounds-checked access
/// (copies in and out, never a reference; storing needs `&mut`).
/// The ring only ever passes in-bounds offsets; an implementation
/// ignores (or reports as zero) what is out of bounds rather than panic.
pub trait SharedPage {
    /// Loads the `u32` at `offset` (4-byte aligned).
    fn load_u32(&self, offset: usize) -> u32;
    /// Stores `value` at `offset` (4-byte aligned).
    fn store_u32(&mut self, offset: usize, value: u32);
    /// Copies bytes at `offset` into `out`.
    fn load_bytes(&self, offset: usize, out: &mut [u8]);
    /// Copies `bytes` to `offset`.
    fn store_bytes(&mut self, offset: usize, bytes: &[u8]);
}

impl<T: GrantTable> SharedPage for GrantedPage<T> {
    fn load_u32(&self, offset: usize) -> u32 {
        self.read_u32(offset).unwrap_or(0)
    }

    fn store_u32(&mut self, offset: usize, value: u32) {
        let _ = self.write_u32(offset, value);
    }

    fn load_bytes(&self, offset: usize, out: &mut [u8]) {
        if self.read_bytes(offset, out).is_err() {
            out.fill(0);
        }
    }

    fn store_bytes(&mut self, offset: usize, bytes: &[u8]) {
        let _ = self.write_bytes(offset, bytes);
    }
}

/// Ring memory over `pages`, in order.
#[derive(Debug)]
pub struct PageRing<P> {
    pages: Vec<P>,
}

impl<P: SharedPage> PageRing<P> {
    /// The ring memory over `pages` (page `i` holds bytes
    /// `i * 4096 .. (i + 1) * 4096`).
    pub fn new(pages: Vec<P>) -> Self {
        PageRing { pages }
    }

    /// The pages, in order (to grant them).
    pub fn pages(&self) -> &[P] {
        &self.pages
    }

    /// Gives the pages back.
    pub fn into_pages(self) -> Vec<P> {
        self.pages
    }
}

/// The pieces of `offset..offset + len` over `pages` pages: (page index,
/// offset in the page, range in the buffer), stopping at the last page.
fn pieces(
    pages: usize,
    offset: usize,
    len: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut done = 0;
    core::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let at = offset + done;
        let index = at / XEN_PAGE_SIZE;
        if index >= pages {
            return None;
        }
        let within = at % XEN_PAGE_SIZE;
        let n = (XEN_PAGE_SIZE - within).min(len - done);
        let piece = (index, within, done, done + n);
        done += n;
        Some(piece)
    })
}

impl<P: SharedPage> RingMemory for PageRing<P> {
    fn size(&self) -> usize {
        self.pages.len() * XEN_PAGE_SIZE
    }

    fn read_index(&self, offset: usize) -> u32 {
        let value = self.pages.first().map_or(0, |page| page.load_u32(offset));
        fence(Ordering::Acquire);
        value
    }

    fn write_index(&mut self, offset: usize, value: u32) {
        fence(Ordering::Release);
        if let Some(page) = self.pages.first_mut() {
            page.store_u32(offset, value);
        }
    }

    fn full_barrier(&mut self) {
        fence(Ordering::SeqCst);
    }

    fn write_bytes(&mut self, offset: usize, bytes: &[u8]) {
        for (index, within, from, to) in pieces(self.pages.len(), offset, bytes.len()) {
            if let Some(page) = self.pages.get_mut(index) {
                page.store_bytes(within, &bytes[from..to]);
            }
        }
    }

    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        for (index, within, from, to) in pieces(self.pages.len(), offset, buf.len()) {
            if let Some(page) = self.pages.get(index) {
                page.load_bytes(within, &mut buf[from..to]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blkfront::wire::{BlkifRequest, BlkifResponse, Operation, Segment, Status};
    use crate::shared_ring::FrontRing;
    use core::cell::RefCell;

    /// A page over a `RefCell`ed array.
    #[derive(Debug)]
    struct TestPage(RefCell<[u8; XEN_PAGE_SIZE]>);

    impl TestPage {
        fn new() -> Self {
            TestPage(RefCell::new([0xa5; XEN_PAGE_SIZE]))
        }

        /// Writes as the backend would, behind the ring's back.
        fn backend_write(&self, offset: usize, bytes: &[u8]) {
            self.0.borrow_mut()[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
    }

    impl SharedPage for TestPage {
        fn load_u32(&self, offset: usize) -> u32 {
            let bytes = self.0.borrow();
            u32::from_le_bytes([
                bytes[offset],
                bytes[offset + 1],
                bytes[offset + 2],
                bytes[offset + 3],
            ])
        }
        fn store_u32(&mut self, offset: usize, value: u32) {
            self.0.borrow_mut()[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        }
        fn load_bytes(&self, offset: usize, out: &mut [u8]) {
            out.copy_from_slice(&self.0.borrow()[offset..offset + out.len()]);
        }
        fn store_bytes(&mut self, offset: usize, bytes: &[u8]) {
            self.0.borrow_mut()[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
    }

    #[test]
    fn bytes_straddle_page_boundaries() {
        let mut ring = PageRing::new(vec![TestPage::new(), TestPage::new()]);
        assert_eq!(ring.size(), 2 * XEN_PAGE_SIZE);
        let data: Vec<u8> = (0..100).collect();
        ring.write_bytes(XEN_PAGE_SIZE - 40, &data);
        let mut back = [0u8; 100];
        ring.read_bytes(XEN_PAGE_SIZE - 40, &mut back);
        assert_eq!(&back[..], &data[..]);
        let mut second = [0u8; 60];
        ring.pages()[1].load_bytes(0, &mut second);
        assert_eq!(&second[..], &data[40..]);
        // Out of range: ignored, no panic.
        ring.write_bytes(2 * XEN_PAGE_SIZE - 2, &[1, 2, 3, 4]);
    }

    #[test]
    fn front_ring_runs_over_pages() {
        let ring = PageRing::new(vec![TestPage::new()]);
        let mut front: FrontRing<_, BlkifRequest, BlkifResponse> = FrontRing::new(ring, 1).unwrap();
        assert_eq!(front.ring_size(), 32);
        let mut request = BlkifRequest::new(Operation::Read, 51712, 7, 0);
        request
            .push_segment(Segment {
                gref: 9,
                first_sect: 0,
                last_sect: 7,
            })
            .unwrap();
        front.push_request(&request).unwrap();
        front.push_and_check_notify();
        let memory = front.memory();
        assert_eq!(memory.read_index(0), 1);
        // Play blkback: answer in slot 0, publish rsp_prod = 1.
        let mut bytes = [0u8; 16];
        use crate::shared_ring::RingEntry;
        BlkifResponse {
            id: 7,
            operation: 0,
            status: Status::Okay,
        }
        .encode(&mut bytes);
        memory.pages()[0].backend_write(64, &bytes);
        memory.pages()[0].backend_write(8, &1u32.to_le_bytes());
        let response = front.take_response().unwrap().unwrap();
        assert_eq!(response.id, 7);
        assert_eq!(response.status, Status::Okay);
    }
}
