//! The FIFO ABI in the guest: pages given to Xen, the upcall's consumer.
//!
//! One control-block page and [`ARRAY_PAGES`] event-array pages live in
//! our `.bss`; their machine frames (from the p2m list Xen gave us) go to
//! `EVTCHNOP_init_control` and `EVTCHNOP_expand_array`. From then on Xen
//! delivers through the queues and the 2-level bitmaps are unused.

use super::fifo::{self, Consumer, ControlBlock, EventArray, WORDS_PER_PAGE};
use crate::boot_info::BootInfo;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use pv_arch::hypercall::event_channel as op;
use pv_arch::Errno;
use spin::Mutex;

/// Event-array pages: 2048 ports, plenty for a unikernel.
pub const ARRAY_PAGES: usize = 2;

#[repr(C, align(4096))]
struct Pages([[u32; WORDS_PER_PAGE]; 1 + ARRAY_PAGES]);

/// Shared with Xen once registered; only accessed through atomics.
static mut PAGES: Pages = Pages([[0; WORDS_PER_PAGE]; 1 + ARRAY_PAGES]);

static ACTIVE: AtomicBool = AtomicBool::new(false);
static CONSUMER: Mutex<Option<Consumer>> = Mutex::new(None);

fn page_address(index: usize) -> usize {
    (&raw mut PAGES) as usize + index * 4096
}

fn control() -> &'static ControlBlock {
    // SAFETY: page 0 of PAGES is page-aligned, zero-initialised, lives
    // forever, and `ControlBlock` is made of atomics with the layout of
    // `evtchn_fifo_control_block`; Xen and we access it only atomically.
    unsafe { &*(page_address(0) as *const ControlBlock) }
}

struct Array;

impl EventArray for Array {
    fn word(&self, port: u32) -> Option<&AtomicU32> {
        let port = port as usize;
        if port >= ARRAY_PAGES * WORDS_PER_PAGE {
            return None;
        }
        let address = page_address(1) + port * 4;
        // SAFETY: in bounds of the array pages (checked above), aligned,
        // static; event words are only accessed atomically.
        Some(unsafe { AtomicU32::from_ptr(address as *mut u32) })
    }
}

/// The frame Xen knows one of our own pages by (machine frame in PV,
/// guest frame in PVH), from `mm`'s p2m.
fn mfn_of(boot: &BootInfo, va: usize) -> Result<u64, Errno> {
    let pfn = (va / 4096) as u64;
    if pfn >= boot.nr_pages {
        return Err(Errno::EINVAL);
    }
    crate::mm::pfn_to_mfn(pfn).ok_or(Errno::EINVAL)
}

/// Switches vCPU 0 to the FIFO ABI.
pub fn init(boot: &BootInfo) -> Result<(), Errno> {
    // SAFETY: page 0 of PAGES is a static page kept for the control
    // block alone; Rust reaches it only through atomics (`control`).
    unsafe { op::init_control(mfn_of(boot, page_address(0))?, 0, 0) }?;
    *CONSUMER.lock() = Some(Consumer::default());
    ACTIVE.store(true, Ordering::SeqCst);
    for page in 1..=ARRAY_PAGES {
        // SAFETY: the array pages of PAGES are static and kept for the
        // event words alone, reached only through atomics (`Array`).
        unsafe { op::expand_array(mfn_of(boot, page_address(page))?) }?;
    }
    Ok(())
}

/// After a resume in a new domain (which starts with the 2-level ABI):
/// clears our pages (the queues and event words of the old domain mean
/// nothing now) and registers them again.
pub fn reinit() -> Result<(), Errno> {
    for page in 0..=ARRAY_PAGES {
        for word in 0..WORDS_PER_PAGE {
            let address = page_address(page) + word * 4;
            // SAFETY: within PAGES (static, page aligned); Xen has no
            // registration of them in the new domain, and Rust reaches
            // them only through atomics.
            unsafe { AtomicU32::from_ptr(address as *mut u32) }.store(0, Ordering::SeqCst);
        }
    }
    let frame = |page: usize| {
        crate::mm::pfn_to_mfn((page_address(page) / 4096) as u64).ok_or(Errno::EINVAL)
    };
    // SAFETY: as in `init`: the control page is kept for Xen alone.
    unsafe { op::init_control(frame(0)?, 0, 0) }?;
    *CONSUMER.lock() = Some(Consumer::default());
    for page in 1..=ARRAY_PAGES {
        // SAFETY: as in `init`.
        unsafe { op::expand_array(frame(page)?) }?;
    }
    Ok(())
}

/// Whether the FIFO ABI is in use.
pub fn active() -> bool {
    ACTIVE.load(Ordering::SeqCst)
}

/// Consumes the ready queues, calling `dispatch` per port.
pub fn consume(dispatch: impl FnMut(u32)) {
    if let Some(consumer) = CONSUMER.lock().as_mut() {
        consumer.consume(control(), &Array, dispatch);
    }
}

/// Masks `port` in its event word.
pub fn mask(port: u32) {
    if let Some(word) = Array.word(port) {
        fifo::mask(word);
    }
}
