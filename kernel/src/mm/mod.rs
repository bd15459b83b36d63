//! Memory management (interim: a fixed early heap; replaced by the frame
//! allocator, page-table mapper and growing heap of issue 3).

#[cfg(target_os = "none")]
mod early_heap {
    use core::alloc::{GlobalAlloc, Layout};
    use core::ptr::null_mut;
    use spin::Mutex;

    const SIZE: usize = 256 * 1024;

    #[repr(C, align(4096))]
    struct Arena([u8; SIZE]);

    static mut ARENA: Arena = Arena([0; SIZE]);
    static NEXT: Mutex<usize> = Mutex::new(0);

    /// A bump allocator over a static arena; never frees.
    struct EarlyHeap;

    // SAFETY: hands out disjoint, aligned pieces of ARENA under a lock.
    unsafe impl GlobalAlloc for EarlyHeap {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let base = (&raw mut ARENA) as usize;
            let mut next = NEXT.lock();
            let start = (base + *next).next_multiple_of(layout.align());
            let end = start + layout.size();
            if end > base + SIZE {
                return null_mut();
            }
            *next = end - base;
            start as *mut u8
        }
        unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
    }

    #[global_allocator]
    static HEAP: EarlyHeap = EarlyHeap;
}
