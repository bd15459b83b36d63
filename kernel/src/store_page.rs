//! The shared xenstore page, behind a safe API.
//!
//! A domU talks to xenstored through one page Xen names by machine frame
//! in `start_info` (`store_mfn`): a `xenstore_domain_interface` with a
//! request ring, a response ring and their four free-running indices.
//! [`StorePage::map`] maps it at [`fixmap::Slot::Xenstore`] and hands out
//! the accesses the xenstore transport needs and nothing more:
//!
//! - volatile loads of the indices, and volatile stores of the two the
//!   guest owns (`req_prod`, `rsp_cons`), with the fences the protocol
//!   needs: a release fence before publishing `req_prod` (the request
//!   bytes are visible first), an acquire fence after loading `rsp_prod`
//!   (the response bytes are read after it), a full fence before
//!   publishing `rsp_cons` (xenstored may overwrite what we have read
//!   only after we finished reading it);
//! - bounds-checked byte copies into `req` and out of `rsp`.
//!
//! No Rust reference ever points into the page: xenstored changes it
//! under our feet, so every access is a volatile access through a raw
//! pointer (as the console ring does). What the bytes mean is the
//! business of `drivers-pv`'s xenstore client, which treats them as
//! untrusted. The page can be mapped once; the event channel is the
//! caller's (`events::EventChannel::adopt(store.evtchn)`).

use crate::boot_info::BootInfo;
use crate::fixmap::{self, Slot};
use core::mem::offset_of;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use pv_arch::abi::xenstore::{XenstoreDomainInterface, XENSTORE_RING_SIZE};
use pv_arch::Errno;

/// Set once the page has been handed out; a second [`StorePage`] would
/// make two owners of `req_prod` and `rsp_cons`.
static MAPPED: AtomicBool = AtomicBool::new(false);

/// The store event channel a resume in a new domain brought (0: none
/// yet, the boot one holds).
static RESUMED_EVTCHN: AtomicU32 = AtomicU32::new(0);

/// Records the store event channel of the domain we resumed in (the
/// page itself stays: its pfn is kept, and the restored page tables map
/// its new frame; PVH keeps its guest frame).
pub fn set_resumed_evtchn(evtchn: u32) {
    RESUMED_EVTCHN.store(evtchn, Ordering::SeqCst);
}

/// The mapped xenstore page (exactly one exists).
pub struct StorePage {
    page: NonNull<XenstoreDomainInterface>,
    evtchn: u32,
}

// SAFETY: the pointer refers to a fixmap page that stays mapped for the
// rest of the guest's life; every access through it is volatile and
// needs `&self`/`&mut self`, so moving the owner to another context is
// no different from using it where it was made.
unsafe impl Send for StorePage {}

/// Whether `len` bytes at `offset` fit in one ring.
fn in_ring(offset: usize, len: usize) -> bool {
    offset
        .checked_add(len)
        .is_some_and(|end| end <= XENSTORE_RING_SIZE)
}

impl StorePage {
    /// Maps the page `start_info` names. Fails with `ENODEV` when there is
    /// none (dom0), `EBUSY` if it was mapped already, or what Xen said
    /// when the mapping was refused.
    pub fn map(boot: &BootInfo) -> Result<StorePage, Errno> {
        let store = boot.store.ok_or(Errno::ENODEV)?;
        if MAPPED.swap(true, Ordering::SeqCst) {
            return Err(Errno::EBUSY);
        }
        // SAFETY: `start_info` (or the HVM parameter) names the xenstore
        // ring, a page shared with xenstored that Rust owns nothing of;
        // `MAPPED` makes this the slot's only use.
        match unsafe { fixmap::map(Slot::Xenstore, crate::mm::Gfn::new(store.mfn)) } {
            Ok(page) => Ok(StorePage {
                page: page.cast::<XenstoreDomainInterface>(),
                evtchn: store.evtchn,
            }),
            Err(errno) => {
                MAPPED.store(false, Ordering::SeqCst);
                Err(errno)
            }
        }
    }

    /// The event channel Xen bound to xenstored for us (`store_evtchn`;
    /// after a resume in a new domain, the new domain's).
    pub fn evtchn(&self) -> u32 {
        match RESUMED_EVTCHN.load(Ordering::SeqCst) {
            0 => self.evtchn,
            resumed => resumed,
        }
    }

    fn raw(&self) -> *mut XenstoreDomainInterface {
        self.page.as_ptr()
    }

    /// The address `offset` bytes into the page (plain arithmetic; the
    /// callers bound what they access through it).
    fn byte_ptr(&self, offset: usize) -> *mut u8 {
        self.page.as_ptr().cast::<u8>().wrapping_add(offset)
    }

    /// Reads `req_cons` (how far xenstored has consumed our requests).
    pub fn req_cons(&self) -> u32 {
        // SAFETY: `page` is the mapped xenstore page (see `map`); an
        // aligned u32 field read volatile because xenstored writes it.
        unsafe { (&raw const (*self.raw()).req_cons).read_volatile() }
    }

    /// Reads `req_prod` (meant for connection time; we own it after).
    pub fn req_prod(&self) -> u32 {
        // SAFETY: as in `req_cons`.
        unsafe { (&raw const (*self.raw()).req_prod).read_volatile() }
    }

    /// Publishes `req_prod`, after a release fence so every request byte
    /// written before is visible to xenstored first.
    pub fn set_req_prod(&mut self, value: u32) {
        fence(Ordering::Release);
        // SAFETY: as in `req_cons`; the guest is the only writer of
        // `req_prod`, and `&mut self` makes this the only StorePage user.
        unsafe { (&raw mut (*self.raw()).req_prod).write_volatile(value) }
    }

    /// Reads `rsp_cons` (meant for connection time; we own it after).
    pub fn rsp_cons(&self) -> u32 {
        // SAFETY: as in `req_cons`.
        unsafe { (&raw const (*self.raw()).rsp_cons).read_volatile() }
    }

    /// Reads `rsp_prod`, then an acquire fence so response bytes read
    /// after this call are at least as new as the index.
    pub fn rsp_prod(&self) -> u32 {
        // SAFETY: as in `req_cons`.
        let value = unsafe { (&raw const (*self.raw()).rsp_prod).read_volatile() };
        fence(Ordering::Acquire);
        value
    }

    /// Publishes `rsp_cons`, after a full fence so every response byte
    /// read before is read before xenstored may reuse its place.
    pub fn set_rsp_cons(&mut self, value: u32) {
        fence(Ordering::SeqCst);
        // SAFETY: as in `set_req_prod`; the guest owns `rsp_cons`.
        unsafe { (&raw mut (*self.raw()).rsp_cons).write_volatile(value) }
    }

    /// `XENSTORE_SERVER_FEATURE_*` bits xenstored advertises.
    pub fn server_features(&self) -> u32 {
        // SAFETY: as in `req_cons`.
        unsafe { (&raw const (*self.raw()).server_features).read_volatile() }
    }

    /// `XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`.
    pub fn connection(&self) -> u32 {
        // SAFETY: as in `req_cons`.
        unsafe { (&raw const (*self.raw()).connection).read_volatile() }
    }

    /// The `XENSTORE_ERROR_*` xenstored last reported.
    pub fn error(&self) -> u32 {
        // SAFETY: as in `req_cons`.
        unsafe { (&raw const (*self.raw()).error).read_volatile() }
    }

    /// Copies `bytes` into the request ring at `offset`. Fails with
    /// `EINVAL`, copying nothing, if they would not fit below 1024.
    pub fn write_req(&mut self, offset: usize, bytes: &[u8]) -> Result<(), Errno> {
        if !in_ring(offset, bytes.len()) {
            return Err(Errno::EINVAL);
        }
        let req = self.byte_ptr(offset_of!(XenstoreDomainInterface, req));
        for (index, &byte) in bytes.iter().enumerate() {
            // SAFETY: `req` points at the mapped page's 1024-byte request
            // ring and `offset + index < 1024` was checked above; volatile
            // because xenstored reads it concurrently.
            unsafe { req.add(offset + index).write_volatile(byte) };
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes of the response ring at `offset` into
    /// `buf`. Fails with `EINVAL`, copying nothing, if they would not fit
    /// below 1024.
    pub fn read_rsp(&self, offset: usize, buf: &mut [u8]) -> Result<(), Errno> {
        if !in_ring(offset, buf.len()) {
            return Err(Errno::EINVAL);
        }
        let rsp = self.byte_ptr(offset_of!(XenstoreDomainInterface, rsp));
        for (index, byte) in buf.iter_mut().enumerate() {
            // SAFETY: as in `write_req`, for the response ring.
            *byte = unsafe { rsp.add(offset + index).read_volatile() };
        }
        Ok(())
    }
}
