//! Event channels: Xen's virtual interrupts.
//!
//! Each bound port gets a slot in a table: a "fired" flag, a counter and
//! the waker of the task waiting on it. Xen raises ports in the shared
//! bitmaps; the upcall (entered from `traps`) scans them ([`two_level`])
//! and marks and wakes each fired port's slot. Tasks never run in the
//! upcall: they wait with [`EventChannel::wait`] and the executor runs
//! them.
//!
//! Upcalls are masked (`evtchn_upcall_mask = 1` in PV, `RFLAGS.IF`
//! clear in PVH) all the time except inside
//! `platform::wait_for_event` (`SCHEDOP_block`, or `sti; hlt`), which
//! unmasks and sleeps atomically; so the
//! upcall can only interrupt the idle loop, never code holding a lock,
//! and no event that arrives between "nothing to do" and "sleep" is lost.

pub mod fifo;
pub mod two_level;

#[cfg(target_os = "none")]
mod channel;
#[cfg(target_os = "none")]
pub use channel::{EventChannel, Wait};

#[cfg(target_os = "none")]
mod runtime {
    use super::two_level::{self, Bitmaps};
    use crate::shared_info;
    use alloc::collections::BTreeMap;
    use core::sync::atomic::{AtomicU64, Ordering};
    use core::task::Waker;
    use spin::Mutex;

    /// What we know about one bound port.
    #[derive(Default)]
    pub(super) struct Slot {
        /// Raised since the owner last looked.
        pub fired: bool,
        /// Times raised in total.
        pub count: u64,
        /// The task to wake when it is raised.
        pub waker: Option<Waker>,
    }

    /// Bound ports. Locked only by task code and by the upcall, which can
    /// only interrupt the idle loop (see the module docs).
    pub(super) static PORTS: Mutex<BTreeMap<u32, Slot>> = Mutex::new(BTreeMap::new());

    static UPCALLS: AtomicU64 = AtomicU64::new(0);
    static STRAY: AtomicU64 = AtomicU64::new(0);

    struct SharedBitmaps;

    impl Bitmaps for SharedBitmaps {
        fn selector(&self) -> &AtomicU64 {
            shared_info::pending_sel()
        }
        fn pending(&self, i: usize) -> &AtomicU64 {
            shared_info::pending_word(i)
        }
        fn mask(&self, i: usize) -> &AtomicU64 {
            shared_info::mask_word(i)
        }
    }

    /// Masks every port and holds upcalls back, then switches to the FIFO
    /// ABI if the command line says `evtchn=fifo`. Called once at boot
    /// after `shared_info` is mapped and before any port is bound.
    pub fn init(boot: &crate::boot_info::BootInfo) -> Result<(), pv_arch::Errno> {
        shared_info::upcall_mask().store(1, Ordering::SeqCst);
        for word in 0..64 {
            shared_info::mask_word(word).store(!0, Ordering::SeqCst);
        }
        let wants_fifo = boot
            .cmdline()
            .split_ascii_whitespace()
            .any(|w| w == "evtchn=fifo");
        if wants_fifo {
            super::fifo_runtime::init(boot)?;
        }
        Ok(())
    }

    /// Scans for raised ports and wakes their owners. Runs in the upcall
    /// and from [`block`].
    pub fn upcall() {
        UPCALLS.fetch_add(1, Ordering::Relaxed);
        shared_info::upcall_pending().store(0, Ordering::SeqCst);
        let dispatch = |port: u32| {
            let mut ports = PORTS.lock();
            match ports.get_mut(&port) {
                Some(slot) => {
                    slot.fired = true;
                    slot.count += 1;
                    if let Some(waker) = slot.waker.take() {
                        waker.wake();
                    }
                }
                // A port nobody bound (or just closed): count it, drop it.
                None => {
                    STRAY.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        if super::fifo_runtime::active() {
            super::fifo_runtime::consume(dispatch);
        } else {
            two_level::scan(&SharedBitmaps, dispatch);
        }
    }

    /// Sleeps until some event arrives (or handles one already pending).
    pub fn block() {
        if shared_info::upcall_pending().load(Ordering::SeqCst) != 0 {
            upcall();
            return;
        }
        crate::platform::wait_for_event();
        if shared_info::upcall_pending().load(Ordering::SeqCst) != 0 {
            upcall();
        }
    }

    /// Upcalls so far, and events for ports nobody had bound.
    pub fn counters() -> (u64, u64) {
        (
            UPCALLS.load(Ordering::Relaxed),
            STRAY.load(Ordering::Relaxed),
        )
    }

    /// Unmasks `port` through Xen (which redelivers it if pending, in
    /// either ABI).
    pub fn unmask(port: u32) -> Result<(), pv_arch::Errno> {
        if !super::fifo_runtime::active() && port >= two_level::MAX_PORTS {
            return Err(pv_arch::Errno::EINVAL);
        }
        pv_arch::hypercall::event_channel::unmask(port)
    }

    /// The event-channel ABI in use: `"2-level"` or `"fifo"`.
    pub fn abi_name() -> &'static str {
        if super::fifo_runtime::active() {
            "fifo"
        } else {
            "2-level"
        }
    }

    /// Masks `port` (in the bitmap, or in its FIFO event word).
    pub fn mask(port: u32) {
        if super::fifo_runtime::active() {
            super::fifo_runtime::mask(port);
        } else if port < two_level::MAX_PORTS {
            two_level::set(shared_info::mask_word(port as usize / 64), port);
        }
    }
}

#[cfg(target_os = "none")]
mod fifo_runtime;

#[cfg(target_os = "none")]
pub use runtime::{abi_name, block, counters, init, mask, unmask, upcall};
