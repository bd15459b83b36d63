//! The FIFO ABI in the guest: pages given to Xen, each vCPU's consumer.
//!
//! [`ARRAY_PAGES`] event-array pages (shared by every vCPU: the event
//! words are the domain's) and one control-block page per vCPU live in
//! our `.bss`; their frames (from the p2m) go to `EVTCHNOP_expand_array`
//! and `EVTCHNOP_init_control`. vCPU 0's control block is registered at
//! boot ([`init`]), a secondary's by vCPU 0 before it starts it
//! ([`init_vcpu`]). From then on Xen delivers through the queues and the
//! 2-level bitmaps are unused.
//!
//! # Per-vCPU queues, one consumer each
//!
//! Xen links a raised port onto a queue of the vCPU the port is bound
//! to, in that vCPU's control block, and flags that vCPU's upcall. Each
//! vCPU consumes only its own control block with its own
//! [`Consumer`](super::fifo::Consumer) (cursors as atomics, touched only
//! on that vCPU, in its upcall or with its upcalls masked), so no lock
//! is shared between vCPUs and no vCPU follows another's LINKs. (A
//! single consumer for every vCPU, which an earlier attempt used, carries
//! one vCPU's remembered head into another's queue: vCPU 0 then handled
//! ports of vCPU 1 and counted them stray.) A port moved to another vCPU
//! while it was linked stays on its old queue until consumed, so the
//! vCPU that dequeues a port hands it to the vCPU that owns it
//! (`smp::claimed_by`).
//!
//! # Every word starts masked
//!
//! Xen's words begin as our zeroed pages, i.e. unmasked, unlike the
//! 2-level ABI where [`super::init`] masks every port. A port bound by a
//! raw hypercall that never asked for events (the suite's loopback
//! ends, say) would then be delivered, and counted stray since no
//! channel owns it. So every word is set MASKED before the pages go to
//! Xen, and a channel unmasks its port when it is bound, as in 2-level.

use super::fifo::{self, Consumer, ControlBlock, EventArray, WORDS_PER_PAGE};
use crate::boot_info::BootInfo;
use crate::smp::MAX_VCPUS;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use pv_arch::hypercall::event_channel as op;
use pv_arch::Errno;

/// Event-array pages: 2048 ports, plenty for a unikernel.
pub const ARRAY_PAGES: usize = 2;

#[repr(C, align(4096))]
struct Page([u32; WORDS_PER_PAGE]);

const ZERO_PAGE: Page = Page([0; WORDS_PER_PAGE]);

/// The event words, shared with Xen once registered; only accessed
/// through atomics.
static mut ARRAY: [Page; ARRAY_PAGES] = [ZERO_PAGE; ARRAY_PAGES];

/// One control block per vCPU (index = vCPU id), shared with Xen once
/// registered; only accessed through atomics.
static mut CONTROLS: [Page; MAX_VCPUS] = [ZERO_PAGE; MAX_VCPUS];

/// Each vCPU's consumer (index = vCPU id; see the module docs).
static CONSUMERS: [Consumer; MAX_VCPUS] = [const { Consumer::new() }; MAX_VCPUS];

/// vCPUs whose control block Xen has (bit = vCPU id).
static REGISTERED: AtomicU32 = AtomicU32::new(0);

static ACTIVE: AtomicBool = AtomicBool::new(false);

fn array_address(page: usize) -> usize {
    (&raw mut ARRAY) as usize + page * 4096
}

fn control_address(vcpu: usize) -> usize {
    (&raw mut CONTROLS) as usize + vcpu * 4096
}

fn control(vcpu: usize) -> &'static ControlBlock {
    // SAFETY: page `vcpu` of CONTROLS (vcpu < MAX_VCPUS, checked by the
    // callers) is page-aligned, zero-initialised, lives forever, and
    // `ControlBlock` is made of atomics with the layout of
    // `evtchn_fifo_control_block`; Xen and we access it only atomically.
    unsafe { &*(control_address(vcpu) as *const ControlBlock) }
}

struct Array;

impl EventArray for Array {
    fn word(&self, port: u32) -> Option<&AtomicU32> {
        let port = port as usize;
        if port >= ARRAY_PAGES * WORDS_PER_PAGE {
            return None;
        }
        let address = array_address(0) + port * 4;
        // SAFETY: in bounds of the array pages (checked above), aligned,
        // static; event words are only accessed atomically.
        Some(unsafe { AtomicU32::from_ptr(address as *mut u32) })
    }
}

/// Zeroes a control page and sets every event word MASKED (see the
/// module docs), before Xen is given them.
fn clear_pages(control_pages: core::ops::Range<usize>) {
    for vcpu in control_pages {
        for word in 0..WORDS_PER_PAGE {
            // SAFETY: within CONTROLS (static, page aligned); Xen has no
            // registration of this page now, and Rust reaches it only
            // through atomics.
            unsafe { AtomicU32::from_ptr((control_address(vcpu) + word * 4) as *mut u32) }
                .store(0, Ordering::SeqCst);
        }
        CONSUMERS[vcpu].reset();
    }
    for port in 0..(ARRAY_PAGES * WORDS_PER_PAGE) as u32 {
        if let Some(word) = Array.word(port) {
            word.store(0, Ordering::SeqCst);
            fifo::mask(word);
        }
    }
}

/// The frame Xen knows one of our own pages by (machine frame in PV,
/// guest frame in PVH), from `mm`'s p2m.
fn frame_of(va: usize) -> Result<u64, Errno> {
    crate::mm::pfn_to_mfn((va / 4096) as u64).ok_or(Errno::EINVAL)
}

/// Registers vCPU `vcpu`'s control block.
fn register_control(vcpu: usize) -> Result<(), Errno> {
    // SAFETY: page `vcpu` of CONTROLS is a static page kept for that
    // vCPU's control block alone; Rust reaches it only through atomics
    // (`control`).
    unsafe { op::init_control(frame_of(control_address(vcpu))?, 0, vcpu as u32) }?;
    REGISTERED.fetch_or(1 << vcpu, Ordering::SeqCst);
    Ok(())
}

/// Gives Xen the event-array pages.
fn expand() -> Result<(), Errno> {
    for page in 0..ARRAY_PAGES {
        // SAFETY: the array pages are static and kept for the event
        // words alone, reached only through atomics (`Array`).
        unsafe { op::expand_array(frame_of(array_address(page))?) }?;
    }
    Ok(())
}

/// Switches the domain to the FIFO ABI with vCPU 0's control block.
pub fn init(boot: &BootInfo) -> Result<(), Errno> {
    let last = control_address(MAX_VCPUS - 1).max(array_address(ARRAY_PAGES - 1));
    if (last / 4096) as u64 >= boot.nr_pages {
        return Err(Errno::EINVAL);
    }
    clear_pages(0..MAX_VCPUS);
    register_control(0)?;
    ACTIVE.store(true, Ordering::SeqCst);
    expand()
}

/// Registers secondary vCPU `vcpu`'s control block (vCPU 0 calls it
/// before starting that vCPU). Nothing to do without FIFO.
pub fn init_vcpu(vcpu: u32) -> Result<(), Errno> {
    let index = vcpu as usize;
    if !active() || REGISTERED.load(Ordering::SeqCst) & (1 << index) != 0 {
        return Ok(());
    }
    if index >= MAX_VCPUS {
        return Err(Errno::EINVAL);
    }
    register_control(index)
}

/// After a resume in a new domain (which starts with the 2-level ABI):
/// clears our pages (the queues and event words of the old domain mean
/// nothing now) and registers vCPU 0's again (suspending with
/// secondaries up is refused).
pub fn reinit() -> Result<(), Errno> {
    REGISTERED.store(0, Ordering::SeqCst);
    clear_pages(0..MAX_VCPUS);
    register_control(0)?;
    expand()
}

/// Whether the FIFO ABI is in use.
pub fn active() -> bool {
    ACTIVE.load(Ordering::SeqCst)
}

/// Consumes vCPU `vcpu`'s ready queues, calling `dispatch` per port.
/// Only on vCPU `vcpu` itself, in its upcall or with its upcalls masked
/// (see the module docs).
pub fn consume(vcpu: u32, dispatch: impl FnMut(u32)) {
    let index = vcpu as usize;
    if index < MAX_VCPUS && REGISTERED.load(Ordering::Acquire) & (1 << index) != 0 {
        CONSUMERS[index].consume(control(index), &Array, dispatch);
    }
}

/// Masks `port` in its event word.
pub fn mask(port: u32) {
    if let Some(word) = Array.word(port) {
        fifo::mask(word);
    }
}
