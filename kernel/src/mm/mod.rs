//! Memory management for the PV guest: frames, p2m/M2P, page tables,
//! the direct map, a mapping window, pages, the heap and the balloon.
//!
//! Xen gives a PV guest `nr_pages` pseudo-physical frames, each backed by
//! a machine frame it names in the p2m list, and maps only a small
//! initial region. [`init`] takes over from there: it reserves what the
//! boot layout uses ([`layout`]), puts a bitmap frame allocator
//! ([`frames`]) over the rest, extends the bootstrap page tables so frames
//! are mapped at `pfn * 4096` ([`mapper`]): at boot as far as Xen's own
//! mapping reaches, then a step ahead of the frame allocator, which hands
//! out only mapped frames (`alloc_frames`), so boot time does not grow
//! with memory. It unmaps frame 0 to catch
//! null pointers, and creates the tables of the [`window`] where foreign
//! machine frames get mapped. After it, the kernel hands out owned
//! [`Page`]s, the global allocator serves `alloc` ([`heap`], [`global`]),
//! and the [`balloon`] gives frames back to Xen and takes them again.
//!
//! Pure logic (bitmap, heap, layout, p2m checks, entry encoding) builds
//! on the host and is tested there; the parts that make hypercalls exist
//! only on the target. Failures are [`MmError`]s, never panics.

pub mod access;
pub mod error;
pub mod frame_number;
pub mod frames;
pub mod heap;
pub mod layout;
pub mod p2m;
pub mod p2m_frames;
pub mod pagetable;
pub mod pfn_set;

#[cfg(target_os = "none")]
pub mod balloon;
#[cfg(target_os = "none")]
pub mod global;
#[cfg(target_os = "none")]
pub mod mapper;
#[cfg(target_os = "none")]
pub mod page;
#[cfg(target_os = "none")]
pub mod window;

pub use error::MmError;
pub use frame_number::{Gfn, Mfn, Pfn};
pub use frames::FrameError;

#[cfg(target_os = "none")]
pub use guest::*;

#[cfg(target_os = "none")]
mod guest {
    use super::frames::{words_for, FrameBitmap};
    use super::layout::BootLayout;
    use super::p2m::{m2p_lookup, P2m};
    use super::window::{WINDOW_BASE, WINDOW_SLOTS};
    use super::{balloon, global, mapper, window, MmError};
    use crate::boot_info::{BootInfo, PAGE_SIZE};
    use crate::println;
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use pv_arch::hypercall::memory::machphys_mapping;
    use pv_arch::hypercall::va_mapping::update_va_mapping;
    use spin::{Mutex, Once};

    pub use super::balloon::{BalloonedPage, Reservation};
    pub use super::mapper::PteLocation;
    pub use super::page::Page;
    pub use super::window::{map_mfn, reserve_slot, Access, MappedFrame, WindowSlot};

    /// `MACH2PHYS_VIRT_START`: where Xen maps the M2P for 64-bit guests.
    const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;

    /// What `init` set up and never changes (the p2m's entries do).
    pub struct Core {
        p2m_entries: &'static [AtomicU64],
        /// PVH: frames of the identity "p2m" (0 in PV).
        identity_len: u64,
        max_mfn: u64,
        /// The page-table root's pfn (its mfn changes with every resume
        /// in a new domain, so it is looked up, never kept).
        l4_pfn: u64,
        layout: BootLayout,
        page_tables: AtomicU64,
    }

    impl Core {
        /// Our p2m.
        pub fn p2m(&self) -> P2m<'static> {
            if self.identity_len != 0 {
                return P2m::identity(self.identity_len);
            }
            P2m::new(self.p2m_entries)
        }

        /// The pfn of machine frame `mfn`, from the M2P, confirmed by the p2m.
        pub fn mfn_to_pfn(&self, mfn: u64) -> Result<u64, MmError> {
            m2p_lookup(mfn, self.max_mfn)
                .and_then(|pfn| self.p2m().confirm(mfn, pfn))
                .ok_or(MmError::BadMfn(mfn))
        }

        /// Machine frame of the page-table root, today.
        pub(super) fn l4_mfn(&self) -> u64 {
            self.p2m().mfn(self.l4_pfn).unwrap_or(0)
        }

        /// Where the p2m list is (virtual address) and how many entries
        /// it has (PV; `(0, 0)` in PVH).
        pub(super) fn p2m_location(&self) -> (u64, u64) {
            (
                self.p2m_entries.as_ptr() as u64,
                self.p2m_entries.len() as u64,
            )
        }

        pub(super) fn count_page_table(&self) {
            self.page_tables.fetch_add(1, Ordering::Relaxed);
        }
    }

    static CORE: Once<Core> = Once::new();
    static READY: AtomicBool = AtomicBool::new(false);
    static STARTED: AtomicBool = AtomicBool::new(false);
    static FRAMES: Mutex<Option<FrameBitmap<'static>>> = Mutex::new(None);
    static BAD_FREES: AtomicU64 = AtomicU64::new(0);

    unsafe extern "C" {
        /// First byte of the kernel image (`link.ld`).
        static __image_start: u8;
        /// First byte after it, `.bss` included.
        static __image_end: u8;
    }

    /// The initialised core, or `NotInitialized`.
    pub(super) fn core() -> Result<&'static Core, MmError> {
        if !READY.load(Ordering::Acquire) {
            return Err(MmError::NotInitialized);
        }
        CORE.get().ok_or(MmError::NotInitialized)
    }

    /// Free frames kept below the allocation limit for the page tables
    /// the next step of the direct map may need: an L1, and at a 1 GiB
    /// or 512 GiB boundary an L2 and an L3 too.
    const MAP_RESERVE: u64 = 8;

    /// Frames the direct map grows by at a time: one L1 table's worth.
    const MAP_STEP: u64 = 512;

    /// Maps the next [`MAP_STEP`] frames of the direct map and lets the
    /// allocator hand them out (PV; in PVH everything is mapped and the
    /// limit is the end).
    fn extend_direct_map(frames: &mut FrameBitmap<'static>) -> Result<(), MmError> {
        let core = CORE.get().ok_or(MmError::NotInitialized)?;
        let from = frames.limit();
        let to = (from - from % MAP_STEP + MAP_STEP).min(frames.frames());
        let free = frames.free_frames();
        mapper::map_direct(core, frames, from, to)?;
        MAP_TABLES.fetch_add(free - frames.free_frames(), Ordering::Relaxed);
        frames.set_limit(to);
        Ok(())
    }

    /// Frames the direct map took for page tables after boot, as it grew.
    static MAP_TABLES: AtomicU64 = AtomicU64::new(0);

    /// Frames the direct map has taken for page tables since boot, as it
    /// grew ahead of the allocator (PV; 0 in PVH). They left the free
    /// frames for good, so a leak check compares free frames plus these.
    pub fn map_tables() -> u64 {
        MAP_TABLES.load(Ordering::Relaxed)
    }

    /// Takes `count` contiguous free frames whose first frame number is
    /// a multiple of `align`, lowest first; `None` if memory has no such
    /// run. In PV the direct map covers only the frames below the
    /// allocator's limit: when the frames below it run short (or hold no
    /// such run), the next step is mapped first, keeping
    /// [`MAP_RESERVE`] frames for that step's own page tables. So every
    /// frame handed out is mapped, and boot maps no more than it uses.
    pub(super) fn alloc_frames(count: u64, align: u64) -> Result<Option<u64>, MmError> {
        let mut guard = FRAMES.lock();
        let frames = guard.as_mut().ok_or(MmError::NotInitialized)?;
        loop {
            let room = frames.limit() < frames.frames();
            if room && frames.free_below_limit() < count.saturating_add(MAP_RESERVE) {
                extend_direct_map(frames)?;
                continue;
            }
            let got = if count == 1 && align <= 1 {
                frames.alloc()
            } else {
                frames.alloc_contiguous(count, align)
            };
            match got {
                Some(pfn) => return Ok(Some(pfn)),
                None if room => extend_direct_map(frames)?,
                None => return Ok(None),
            }
        }
    }

    /// Runs `f` on the frame allocator, under its lock.
    pub(super) fn with_frames<R>(
        f: impl FnOnce(&mut FrameBitmap<'static>) -> R,
    ) -> Result<R, MmError> {
        FRAMES.lock().as_mut().map(f).ok_or(MmError::NotInitialized)
    }

    /// Returns frames to the allocator; a refused free (double free,
    /// stray frame) is counted in [`MmStats::bad_frees`], not applied.
    pub(super) fn free_frame(pfn: u64, count: u64) {
        match with_frames(|frames| frames.free_range(pfn, count)) {
            Ok(Ok(())) => {}
            _ => {
                BAD_FREES.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The frame allocator over `nr_pages` frames, every one marked used,
    /// its bitmap the [`words_for`]`(nr_pages)` words at frame
    /// `bitmap_pfn`.
    ///
    /// # Safety
    /// Those words must be mapped read-write at `bitmap_pfn * PAGE_SIZE`
    /// for the rest of the run, reserved for the bitmap, and referred to by
    /// nothing else.
    unsafe fn bitmap_at(bitmap_pfn: u64, nr_pages: u64) -> Result<FrameBitmap<'static>, MmError> {
        // SAFETY: the caller's promise above.
        let words = unsafe {
            core::slice::from_raw_parts_mut(
                (bitmap_pfn * PAGE_SIZE) as *mut u64,
                words_for(nr_pages),
            )
        };
        FrameBitmap::new_all_used(words, nr_pages).ok_or(MmError::BadLayout("frame bitmap storage"))
    }

    /// Takes the frames the boot layout reserves out of the allocator
    /// (the layout clamps its ranges to the allocator's frames; ranges may
    /// overlap, hence the check).
    fn reserve_boot_frames(
        frames: &mut FrameBitmap<'static>,
        layout: &BootLayout,
    ) -> Result<(), MmError> {
        for pfn in layout.reserved().flatten() {
            if !frames.is_used(pfn) {
                frames.reserve(pfn)?;
            }
        }
        Ok(())
    }

    /// Sets up memory management; see the module docs. Call once, right
    /// after the console.
    pub fn init(boot: &BootInfo) -> Result<(), MmError> {
        if STARTED.swap(true, Ordering::AcqRel) {
            return Err(MmError::AlreadyInitialized);
        }
        if let Some(memory) = &boot.pvh {
            return init_pvh(memory);
        }
        let mapping = machphys_mapping().map_err(|e| MmError::hypercall("machphys_mapping", e))?;
        if mapping.v_start != MACH2PHYS_VIRT_START {
            return Err(MmError::BadLayout("M2P not at MACH2PHYS_VIRT_START"));
        }
        let layout = BootLayout::new(boot, (&raw const __image_start) as u64)?;
        let nr_pages = boot.nr_pages;
        // SAFETY: Xen's PV ABI puts the p2m list (`nr_pages` u64 machine
        // frame numbers) at `mfn_list`, mapped read-write in the initial
        // region and ours for good; `AtomicU64` has the layout of `u64`,
        // and only this module accesses the list from now on.
        let p2m_entries = unsafe {
            core::slice::from_raw_parts(boot.mfn_list as *const AtomicU64, nr_pages as usize)
        };
        let l4_pfn = boot.pt_base / PAGE_SIZE;
        P2m::new(p2m_entries)
            .mfn(l4_pfn)
            .ok_or(MmError::BadLayout("pt_base outside our frames"))?;
        let core = CORE.call_once(|| Core {
            p2m_entries,
            identity_len: 0,
            max_mfn: mapping.max_mfn,
            l4_pfn,
            layout,
            page_tables: AtomicU64::new(boot.nr_pt_frames),
        });

        // SAFETY: the bitmap's frames lie in the padding Xen guarantees
        // mapped read-write after the bootstrap stack, are reserved for it
        // by the layout, and nothing else refers to them.
        let mut frames = unsafe { bitmap_at(layout.bitmap_pfn, nr_pages)? };
        frames.free_range(0, nr_pages)?;
        reserve_boot_frames(&mut frames, &layout)?;
        let boot_free = frames.free_frames();

        // The direct map, as far as the boot's own mapping reaches
        // (rounded up to a whole L1 table); the rest as the allocator
        // gets there (`alloc_frames`).
        let limit = layout
            .mapped_end_pfn
            .next_multiple_of(MAP_STEP)
            .min(nr_pages);
        let entries = mapper::map_direct(core, &mut frames, 0, limit)?;
        frames.set_limit(limit);
        // SAFETY: virtual page 0 holds nothing we use (frame 0 is reserved
        // and never handed out); unmapping it makes null pointers fault.
        unsafe { update_va_mapping(0, 0, 0) }
            .map_err(|e| MmError::hypercall("update_va_mapping(0)", e))?;
        for table in 0..WINDOW_SLOTS.div_ceil(512) {
            core.ensure_l1(&mut frames, WINDOW_BASE + table * 512 * PAGE_SIZE)?;
        }
        window::init_slots()?;
        while frames.limit() < nr_pages && frames.free_below_limit() < MAP_RESERVE {
            extend_direct_map(&mut frames)?;
        }
        let free = frames.free_frames();
        let mapped = frames.limit();
        *FRAMES.lock() = Some(frames);
        READY.store(true, Ordering::Release);
        println!(
            "mm: {nr_pages} frames, {free} free; direct map: {entries} entries, frames below {mapped} (the rest as the allocator reaches them), {} new page tables; window {WINDOW_SLOTS} slots at {WINDOW_BASE:#x}",
            boot_free - free
        );
        Ok(())
    }

    /// PVH: the frame allocator over the RAM of the memory map. Our
    /// identity map (built by `pvh_paging::init`) covers the first
    /// 4 GiB; RAM above that gets one more page directory per GiB here,
    /// taken from the allocator (lowest frames first, so below 4 GiB).
    /// Xen translates guest frames itself, so there is no p2m to load,
    /// no direct map to build and no window for foreign frames.
    fn init_pvh(memory: &crate::pvh_start::PvhMemory) -> Result<(), MmError> {
        use crate::arch::x86_64::pvh_paging;
        let layout = BootLayout::new_pvh(
            memory,
            (&raw const __image_start) as u64,
            (&raw const __image_end) as u64,
        )?;
        // Frames are numbered up to the end of RAM, holes included.
        let nr_pages = memory.end_pfn();
        let core = CORE.call_once(|| Core {
            p2m_entries: &[],
            identity_len: nr_pages,
            max_mfn: 0,
            l4_pfn: crate::arch::x86_64::pvh_paging::root_frame(),
            layout,
            page_tables: AtomicU64::new(0),
        });
        // SAFETY: the layout put the bitmap in RAM after the image and
        // Xen's boot data, reserved it, and identity mapping makes it
        // addressable at `pfn * 4096`; nothing else refers to it.
        let mut frames = unsafe { bitmap_at(layout.bitmap_pfn, nr_pages)? };
        for range in memory.ram() {
            frames.free_range(range.start, range.end - range.start)?;
        }
        reserve_boot_frames(&mut frames, &layout)?;
        let directories = pvh_paging::map_above_4gib(nr_pages * PAGE_SIZE, || {
            frames.alloc().map(|pfn| pfn * PAGE_SIZE)
        })
        .map_err(|_| MmError::BadLayout("no frames for the page directories above 4 GiB"))?;
        core.page_tables.fetch_add(directories, Ordering::Relaxed);
        let free = frames.free_frames();
        *FRAMES.lock() = Some(frames);
        READY.store(true, Ordering::Release);
        println!(
            "mm: {nr_pages} frames ({} RAM, {} MiB; {} frames ignored), {free} free; PVH identity map of {} GiB ({directories} page directories added), own page tables",
            memory.ram_frames(),
            memory.ram_frames() / 256,
            memory.ignored_frames,
            pvh_paging::mapped_bytes() >> 30
        );
        Ok(())
    }

    /// A snapshot of memory use.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct MmStats {
        /// Frames in the domain (`nr_pages`), ballooned ones included.
        pub total_frames: u64,
        /// Frames free for allocation.
        pub free_frames: u64,
        /// Frames in use (including ballooned-out ones).
        pub used_frames: u64,
        /// Bytes the heap has handed out (small ones rounded to 16,
        /// large ones to whole frames).
        pub heap_bytes: u64,
        /// Frames the heap holds (arenas and large blocks).
        pub heap_frames: u64,
        /// Frames given back to Xen.
        pub ballooned_out: u64,
        /// Page-table frames (bootstrap and ours).
        pub page_table_frames: u64,
        /// Of those, frames the direct map took as it grew after boot
        /// ([`map_tables`]): free frames plus these is what a leak check
        /// compares.
        pub map_tables: u64,
        /// Mapping-window slots in use.
        pub window_slots_used: u64,
        /// Frees refused as double or stray frees (frames and heap).
        pub bad_frees: u64,
        /// Live small heap blocks by size class (see
        /// [`crate::mm::heap::HeapStats::small_blocks`]).
        pub heap_blocks: [u32; crate::mm::heap::SIZE_CLASSES],
    }

    /// Memory use now; all zero before [`init`].
    pub fn stats() -> MmStats {
        let Ok(core) = core() else {
            return MmStats::default();
        };
        let (total, free) = with_frames(|f| (f.frames(), f.free_frames())).unwrap_or((0, 0));
        let heap = global::heap_stats();
        MmStats {
            total_frames: total,
            free_frames: free,
            used_frames: total - free,
            heap_bytes: (heap.small_bytes + heap.large_bytes) as u64,
            heap_frames: heap.frames() as u64,
            ballooned_out: balloon::ballooned_out(),
            page_table_frames: core.page_tables.load(Ordering::Relaxed),
            map_tables: map_tables(),
            window_slots_used: window::slots_in_use(),
            bad_frees: BAD_FREES.load(Ordering::Relaxed) + heap.bad_frees as u64,
            heap_blocks: heap.small_blocks,
        }
    }

    /// Frames free for allocation (0 before [`init`]).
    pub fn free_frames() -> u64 {
        with_frames(|f| f.free_frames()).unwrap_or(0)
    }

    /// The machine frame behind `pfn` (PVH: the guest frame itself);
    /// `None` if not ours or ballooned out.
    pub fn pfn_to_mfn(pfn: u64) -> Option<u64> {
        let p2m = core().ok()?.p2m();
        if p2m.is_identity() && balloon::pvh_is_out(pfn) {
            return None;
        }
        p2m.mfn(pfn)
    }

    /// Our pfn for machine frame `mfn` (M2P, confirmed by the p2m).
    pub fn mfn_to_pfn(mfn: u64) -> Result<u64, MmError> {
        core()?.mfn_to_pfn(mfn)
    }

    /// Xen's M2P entry for `mfn`, unchecked (any domain's frame); `None`
    /// beyond the table.
    pub fn m2p_raw(mfn: u64) -> Option<u64> {
        m2p_lookup(mfn, core().ok()?.max_mfn)
    }

    /// Frames in the domain.
    pub fn nr_pages() -> u64 {
        core().map_or(0, |core| core.p2m().len())
    }

    /// The boot layout `init` worked from.
    pub fn boot_layout() -> Option<BootLayout> {
        core().ok().map(|core| core.layout)
    }

    /// Machine frame of the page-table root.
    pub fn root_table_mfn() -> Option<u64> {
        core().ok().map(|core| core.l4_mfn())
    }

    /// Where the leaf entry for `va` is, if its tables exist.
    pub fn lookup_pte(va: u64) -> Result<Option<PteLocation>, MmError> {
        core()?.lookup(va)
    }

    /// Whether frame `pfn` is allocated (in use) right now.
    pub fn is_allocated(pfn: u64) -> bool {
        with_frames(|frames| frames.is_used(pfn)).unwrap_or(false)
    }
}
