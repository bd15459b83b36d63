//! The `#[global_allocator]`: [`Heap`](super::heap::Heap) over free frames
//! seen through the direct map.
//!
//! Frames come from the frame allocator and are used at their direct-map
//! address, so a run of contiguous frames is contiguous memory. Before
//! `mm::init` there are no frames and every allocation fails (nothing in
//! the boot path allocates before it). The heap lock is taken before the
//! frame lock, never the other way round.

use super::heap::{FrameSource, Heap, HeapStats, PAGE_SIZE};
use super::{alloc_frames, free_frame};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use spin::Mutex;

/// Frames for the heap, from the frame allocator, at direct-map addresses.
pub struct DirectMapFrames;

// SAFETY: frames handed out are allocated in the frame allocator (so no
// one else gets them), mapped read-write at `pfn * 4096` by the direct
// map, and contiguous pfns are contiguous addresses; alignment in frames
// is alignment of the address.
unsafe impl FrameSource for DirectMapFrames {
    fn alloc_frames(&mut self, count: usize, align: usize) -> Option<NonNull<u8>> {
        let pfn = alloc_frames(count as u64, align as u64).ok().flatten()?;
        NonNull::new((pfn as usize * PAGE_SIZE) as *mut u8)
    }

    unsafe fn free_frames(&mut self, ptr: NonNull<u8>, count: usize) {
        free_frame((ptr.as_ptr() as usize / PAGE_SIZE) as u64, count as u64);
    }
}

/// The kernel heap.
static HEAP: Mutex<Heap<DirectMapFrames>> = Mutex::new(Heap::new(DirectMapFrames));

/// What the heap holds now.
pub fn heap_stats() -> HeapStats {
    HEAP.lock().stats()
}

/// The allocator Rust's `alloc` uses.
struct GlobalHeap;

// SAFETY: `Heap` returns disjoint blocks of at least the layout's size
// and alignment (or null), under the lock, and takes back exactly what it
// handed out.
unsafe impl GlobalAlloc for GlobalHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.lock().alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with
        // this layout. A refused (double) free is counted in the stats.
        unsafe { HEAP.lock().dealloc(ptr, layout) };
    }
}

#[global_allocator]
static ALLOCATOR: GlobalHeap = GlobalHeap;
