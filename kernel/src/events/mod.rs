//! Event channels: Xen's virtual interrupts.
//!
//! Xen raises ports in shared memory (the 2-level bitmaps, or the FIFO
//! queues) and then calls us: the upcall (entered from `traps`, the PV
//! callback or the PVH callback vector). Each bound port has a slot in a
//! table: a "fired" flag, a counter and the tasks waiting on it.
//!
//! # The rule: the upcall only records
//!
//! The upcall clears `evtchn_upcall_pending`, finds the raised ports
//! ([`two_level::scan`] or the FIFO consumer) and sets each one's bit in
//! [`fired`]'s bitmap of atomics. That is all it does: it takes no lock
//! at all (not the port table, the executor's queues or the heap),
//! allocates nothing and runs no waker. The executor, in task
//! context, hands the recorded ports over ([`wake_waiters`]: before it
//! decides to idle and after idling): each port's slot is marked and
//! counted, and every task waiting on it is woken. The port table is
//! locked only by task code. (Each vCPU's FIFO consumer keeps its
//! cursors in atomics touched only on that vCPU, see `fifo_runtime`;
//! task code runs vCPU 0's scan itself, when Xen flagged an event while
//! upcalls were masked, so the scan never interrupts itself.)
//!
//! Upcalls are masked (`evtchn_upcall_mask = 1` in PV, `RFLAGS.IF`
//! clear in PVH) all the time except inside
//! `platform::wait_for_event` (`SCHEDOP_block`, or `sti; hlt`), which
//! unmasks and sleeps atomically, so no event that arrives between
//! "nothing to do" and "sleep" is lost. The record-only rule keeps the
//! upcall safe even if that ever changes.
//!
//! A channel may be moved to another vCPU
//! ([`EventChannel::bind_to_vcpu`], `EVTCHNOP_bind_vcpu`): the port is
//! masked, handed to that vCPU's upcall (`smp::claim_port`, so vCPU 0's
//! scan leaves it alone), moved in Xen, and unmasked (Xen raises it again
//! on the new vCPU if it was pending meanwhile, in either ABI). That
//! vCPU's upcall records it in its own per-vCPU set, and that vCPU's own
//! task context hands it over ([`wake_waiters`] there, and its idle loop
//! before each turn): a task pinned there is queued locally, with no
//! kick and no part for vCPU 0. A record made on the wrong vCPU (a FIFO
//! port still linked on its old vCPU's queue) goes to the owner's set
//! and the owner is kicked from task context (`smp::kick_crossed`).
//!
//! Several tasks may wait on one channel ([`EventChannel::wait`]); one
//! event wakes them all. [`EventChannel::take_fired`] and
//! [`EventChannel::count`] see what was handed over (they hand over
//! first themselves).

pub mod fifo;
pub mod fired;
pub mod port_table;
pub mod slot;
pub mod two_level;

#[cfg(target_os = "none")]
mod channel;
#[cfg(target_os = "none")]
pub(crate) use channel::move_port;
#[cfg(target_os = "none")]
pub use channel::{EventChannel, Wait};

#[cfg(target_os = "none")]
mod runtime {
    use super::fired::FiredPorts;
    use super::port_table::PortTable;
    use super::slot::Slot;
    use super::two_level::{self, Bitmaps};
    use crate::shared_info;
    use crate::sync::UpcallSafe as Mutex;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, Ordering};
    use core::task::Waker;

    /// Bound ports. Locked only by task code, never by the upcall (see
    /// the module docs).
    pub(super) static PORTS: Mutex<PortTable> = Mutex::new(PortTable::new());

    /// Ports the upcall saw raised and the executor has not handed over
    /// yet: the only thing the upcall writes besides Xen's own words.
    pub(super) static FIRED: FiredPorts = FiredPorts::new();

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
        fn owned(&self, i: usize) -> u64 {
            // Ports bound to a secondary vCPU are its upcall's.
            !crate::smp::claimed_word(i)
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

    /// The upcall: records which ports Xen raised, nothing more (see the
    /// module docs). Runs from the trap entry, and in task context when
    /// `evtchn_upcall_pending` is found set with upcalls masked.
    pub(crate) fn upcall() {
        UPCALLS.fetch_add(1, Ordering::Relaxed);
        // Cleared before the scan: an event raised during the scan sets
        // it again and is seen by the next upcall, never lost.
        shared_info::upcall_pending().store(0, Ordering::SeqCst);
        if super::fifo_runtime::active() {
            // vCPU 0's own queues; a port a secondary owns that was still
            // linked here when it moved goes to that vCPU's record.
            super::fifo_runtime::consume(0, |port| {
                if !crate::smp::record_for_owner(port) {
                    record(port);
                }
            });
        } else {
            two_level::scan(&SharedBitmaps, record);
        }
    }

    /// Records `port` for vCPU 0's tasks (upcall context: atomics only).
    pub(crate) fn record(port: u32) {
        if !FIRED.record(port) {
            // Beyond the bitmap (no port we bind gets there).
            STRAY.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands the ports the upcall recorded over to their slots and wakes
    /// every task waiting on them. Task context only (it locks the port
    /// table and runs wakers); the executor calls it before deciding to
    /// idle and after idling.
    pub fn wake_waiters() {
        let vcpu = crate::smp::current_vcpu();
        // vCPU 0's upcall only on vCPU 0 (its consumer is its own); a
        // task on a secondary hands over what vCPU 0 recorded.
        if vcpu == 0 && upcall_masked_and_pending() {
            upcall();
        }
        crate::smp::kick_crossed();
        let mut to_wake = Vec::new();
        if vcpu != 0 {
            // The channels bound to this vCPU: their events never pass
            // through vCPU 0.
            crate::smp::take_channel_events(vcpu, |port| raise(port, &mut to_wake));
        }
        if FIRED.any() {
            FIRED.drain(|port| raise(port, &mut to_wake));
        }
        // Outside the table's lock: a waker may take the executor's.
        to_wake.into_iter().for_each(Waker::wake);
    }

    /// Hands over only what this secondary vCPU's upcall recorded for
    /// the channels bound to it (its idle loop, before each turn): the
    /// waiters of those channels, usually tasks pinned here, are queued
    /// here without vCPU 0 taking part.
    pub(crate) fn wake_local_waiters(vcpu: u32) {
        crate::smp::kick_crossed();
        let mut to_wake = Vec::new();
        crate::smp::take_channel_events(vcpu, |port| raise(port, &mut to_wake));
        to_wake.into_iter().for_each(Waker::wake);
    }

    /// Marks `port`'s slot fired and collects its waiters.
    fn raise(port: u32, to_wake: &mut Vec<Waker>) {
        let mut ports = PORTS.lock();
        match ports.get_mut(port) {
            Some(slot) => to_wake.append(&mut slot.raise()),
            // A port nobody bound (or just closed): count it, drop it.
            None => {
                STRAY.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether Xen flagged an event that no upcall has taken yet. Upcalls
    /// are masked in task context, so this is an event that arrived
    /// since the last `wait_for_event`.
    fn upcall_masked_and_pending() -> bool {
        shared_info::upcall_pending().load(Ordering::SeqCst) != 0
    }

    /// Sleeps in Xen until an event arrives, unless one already has
    /// (recorded, or flagged by Xen): the executor's idle. Does not hand
    /// the events over; [`wake_waiters`] does.
    pub(crate) fn idle_until_event() {
        if FIRED.any() {
            return;
        }
        if upcall_masked_and_pending() {
            upcall();
            return;
        }
        crate::platform::wait_for_event();
        crate::traps::report_nmis();
    }

    /// Forgets a port's recorded event (a port being bound or closed:
    /// an event of its previous life is not the new owner's).
    pub(super) fn forget(port: u32) {
        FIRED.forget(port);
    }

    /// After a resume in a new domain, where no port of ours is bound:
    /// masks every port, forgets what the upcall recorded, empties the
    /// port table and wakes every task that waited on any channel (their
    /// channels are stale now, see [`super::EventChannel::is_stale`]),
    /// and sets the FIFO ABI up again if it was in use (a new domain
    /// starts with 2-level). Upcalls stay held back.
    pub fn resume_in_new_domain() -> Result<(), pv_arch::Errno> {
        shared_info::upcall_mask().store(1, Ordering::SeqCst);
        shared_info::upcall_pending().store(0, Ordering::SeqCst);
        shared_info::pending_sel().store(0, Ordering::SeqCst);
        for word in 0..64 {
            shared_info::mask_word(word).store(!0, Ordering::SeqCst);
            shared_info::pending_word(word).store(0, Ordering::SeqCst);
        }
        FIRED.drain(|_| {});
        let waiters: Vec<Waker> = PORTS
            .lock()
            .take_all()
            .into_iter()
            .flat_map(Slot::into_waiters)
            .collect();
        waiters.into_iter().for_each(Waker::wake);
        if super::fifo_runtime::active() {
            super::fifo_runtime::reinit()?;
        }
        Ok(())
    }

    /// Ports this domain has bound now (for leak accounting: a channel
    /// that is dropped closes its port and leaves this table).
    pub fn bound_ports() -> usize {
        PORTS.lock().len()
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
pub(crate) use fifo_runtime::{consume as fifo_consume, init_vcpu as fifo_init_vcpu};
#[cfg(target_os = "none")]
pub use runtime::{
    abi_name, bound_ports, counters, init, mask, resume_in_new_domain, unmask, wake_waiters,
};
#[cfg(target_os = "none")]
pub(crate) use runtime::{idle_until_event, record, upcall, wake_local_waiters};
