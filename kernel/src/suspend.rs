//! Suspend and resume: `SCHEDOP_shutdown(SHUTDOWN_suspend)` and the
//! rebuild after it.
//!
//! `xl save` and `xl migrate` ask the guest to suspend (the control
//! task sees `control/shutdown = suspend` and calls
//! `libos::lifecycle::suspend::suspend_and_resume`, which calls
//! [`suspend`]). The guest makes itself fit to be saved and suspends;
//! the toolstack copies its memory and vCPU state and destroys it. The
//! hypercall returns in one of two ways:
//!
//! - **0: in a new domain** (`xl restore`, the far end of a migration).
//!   Memory, page tables (rewritten to the new machine frames), the p2m
//!   (rewritten too), the vCPU's registers, trap table and callbacks
//!   (they are part of the vCPU context the toolstack restores) came
//!   along; everything Xen keeps per domain did not. Rebuilt here, in
//!   order: `start_info` is re-read (PV: the toolstack rewrote it with
//!   the new shared info address and the new console and xenstore event
//!   channels; PVH: the HVM parameters), the shared info page is mapped
//!   again (PV: the new machine address; PVH: placed in the physmap
//!   again), the resume epoch is bumped ([`epoch`]), event channels
//!   start over (every port masked, the port table emptied and every
//!   waiter woken: their channels are stale; FIFO set up again), PVH's
//!   callback vector is named again, the console gets its new channel,
//!   time (the periodic tick is stopped again and `VIRQ_TIMER` bound
//!   again; deadlines are in system time, which moved on while we were
//!   away: one that passed fires once, at the first idle), the grant
//!   table (set up and mapped again, empty), the p2m frame list
//!   (`mm::p2m_frames`, rebuilt with the new frames and published in the
//!   new shared info page), and the xenstore event channel is recorded
//!   for `drivers-pv`'s connection, which resumes itself next
//!   (`libos`'s sequence calls it). Tasks waiting in [`resumed`] wake.
//! - **1: cancelled** (the toolstack gave up, or `xl save -c`): the same
//!   domain runs on; only what [`suspend`] undid to become saveable is
//!   redone (the shared info and grant-table mappings). The epoch stays.
//!
//! What the guest undoes before suspending (PV): the toolstack refuses
//! to save a page table that maps a frame that is not the guest's own
//! (`Bad mfn for L1[...]`), so the shared info page and the grant-table
//! frames are unmapped; everything else we map is ours (the console and
//! xenstore rings are our frames). Upcalls are masked throughout (task
//! context always runs masked), and nothing touches the shared info page
//! while it is away.
//!
//! One line reports each resume: how long the domain was away (wall
//! clock, guest-measured: the time between the suspend hypercall and its
//! return, which for a migration is the downtime) and what was
//! re-established.

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

/// Resumes into a new domain so far.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The resume epoch: 0 from boot, one more after every resume in a new
/// domain (a cancelled suspend does not count). Event channels bound in
/// an older epoch are stale (`events::EventChannel::is_stale`), grants
/// made before it are void.
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::SeqCst)
}

/// Tasks waiting in [`resumed`].
static WAITERS: spin::Mutex<alloc::vec::Vec<Waker>> = spin::Mutex::new(alloc::vec::Vec::new());

/// Completes at the next epoch change (the next resume in a new
/// domain), so a driver task can select on it next to its own waits.
pub fn resumed() -> Resumed {
    Resumed { start: epoch() }
}

/// The future of [`resumed`].
pub struct Resumed {
    start: u64,
}

impl Future for Resumed {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let now = epoch();
        if now != self.start {
            return Poll::Ready(now);
        }
        let mut waiters = WAITERS.lock();
        // Checked again under the lock: `bump_epoch` takes the list
        // under it after bumping.
        let now = epoch();
        if now != self.start {
            return Poll::Ready(now);
        }
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Bumps the epoch and wakes every [`resumed`] waiter.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
fn bump_epoch() -> u64 {
    let now = EPOCH.fetch_add(1, Ordering::SeqCst) + 1;
    let waiters = core::mem::take(&mut *WAITERS.lock());
    waiters.into_iter().for_each(Waker::wake);
    now
}

/// How a suspend ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuspendOutcome {
    /// The suspend was cancelled: resumed in the same domain.
    pub cancelled: bool,
    /// Wall-clock time from the suspend hypercall to its return.
    pub suspended_for: Duration,
    /// The epoch now.
    pub epoch: u64,
    /// System time (ns) just before the suspend hypercall.
    pub suspended_at_ns: u64,
    /// System time (ns) once the domain ran again: a deadline between
    /// the two passed while the domain was away.
    pub resumed_at_ns: u64,
}

/// The last suspend's outcome (cancelled or not), if any.
static LAST: spin::Mutex<Option<SuspendOutcome>> = spin::Mutex::new(None);

/// How the last suspend ended, if the domain ever suspended: apps that
/// check their timers across a move read the system-time window here.
pub fn last_outcome() -> Option<SuspendOutcome> {
    *LAST.lock()
}

#[cfg_attr(not(target_os = "none"), allow(dead_code))]
fn record(outcome: SuspendOutcome) -> SuspendOutcome {
    *LAST.lock() = Some(outcome);
    outcome
}

/// Why a suspend failed; the domain runs on in any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuspendError {
    /// The step that failed.
    pub step: &'static str,
    /// What Xen said.
    pub errno: pv_arch::Errno,
}

impl core::fmt::Display for SuspendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.step, self.errno)
    }
}

#[cfg(target_os = "none")]
pub use guest::{record_start_info, suspend};

#[cfg(target_os = "none")]
mod guest {
    use super::{bump_epoch, epoch, record, SuspendError, SuspendOutcome};
    use crate::boot_info::BootMode;
    use crate::{console, events, grant, platform, println, sched, shared_info, time};
    use core::sync::atomic::{AtomicU64, Ordering};
    use core::time::Duration;
    use pv_arch::abi::start_info::StartInfo;
    use pv_arch::Errno;

    /// Virtual address of `start_info` (PV; 0 in PVH).
    static START_INFO: AtomicU64 = AtomicU64::new(0);

    /// Records where `start_info` is (PV boot): the suspend hands its
    /// machine frame to Xen, and the resume re-reads it.
    pub fn record_start_info(start_info: &StartInfo) {
        START_INFO.store(start_info as *const StartInfo as u64, Ordering::SeqCst);
    }

    /// What the new domain's `start_info` (or HVM parameters) says.
    struct NewDomain {
        shared_info_maddr: u64,
        console_evtchn: Option<u32>,
        store_evtchn: Option<u32>,
    }

    fn fail(step: &'static str) -> impl FnOnce(Errno) -> SuspendError {
        move |errno| SuspendError { step, errno }
    }

    fn wall_ns() -> u128 {
        let (sec, nsec) = time::wallclock();
        u128::from(sec) * 1_000_000_000 + u128::from(nsec)
    }

    /// Suspends the domain for the toolstack and rebuilds what the domain
    /// it resumes in needs (see the module docs). Runs in task context
    /// (upcalls masked); returns once the domain runs again. On an error
    /// before the hypercall the domain was not suspended and runs on.
    pub fn suspend() -> Result<SuspendOutcome, SuspendError> {
        if crate::smp::secondaries_started() {
            // Their placed `vcpu_info`s and contexts would not survive a
            // new domain; SMP suspend is not written yet.
            return Err(SuspendError {
                step: "suspending with secondary vCPUs up",
                errno: Errno::EBUSY,
            });
        }
        let pv = platform::mode() == BootMode::Pv;
        let start_info_va = START_INFO.load(Ordering::SeqCst);
        let start_info_mfn = if pv {
            let pfn = start_info_va / 4096;
            crate::mm::pfn_to_mfn(pfn).ok_or(SuspendError {
                step: "finding start_info's frame",
                errno: Errno::EINVAL,
            })?
        } else {
            0
        };
        let old_maddr = shared_info_maddr(start_info_va);
        // Refreshed in case the balloon grew into new p2m pages (it
        // does not today; cheap).
        crate::mm::p2m_frames::publish().map_err(|_| SuspendError {
            step: "publishing the p2m frame list",
            errno: Errno::ENOMEM,
        })?;
        let before_ns = wall_ns();
        let before_sys = time::now_ns();
        println!("suspend: suspending (epoch {})", epoch());
        console::flush();
        // PV: the toolstack expects the frames `start_info` names as pfns
        // (it turns them into the new domain's mfns on restore).
        let canonical = if pv {
            Some(canonicalise_start_info(start_info_va)?)
        } else {
            None
        };
        let uncanonicalise = || {
            if let Some(machine) = canonical {
                write_start_info_frames(start_info_va, machine);
            }
        };

        if let Err(e) = grant::suspend() {
            uncanonicalise();
            return Err(fail("unmapping the grant table")(e.errno()));
        }
        if let Err(errno) = shared_info::unmap_for_suspend() {
            let _ = shared_info::remap(old_maddr);
            let _ = grant::resume(false);
            uncanonicalise();
            return Err(fail("unmapping shared_info")(errno));
        }
        // From here until `remap`, nothing may touch the shared info page
        // (no time, no event bitmaps, no logging with timestamps).
        // SAFETY: the page tables name only our own frames now (shared
        // info and grant frames unmapped above), and everything a new
        // domain lacks is rebuilt below before anything else runs.
        let result = unsafe { pv_arch::hypercall::sched::sched_suspend(start_info_mfn) };
        let cancelled = match result {
            Ok(0) => false,
            Ok(_) => true,
            Err(errno) => {
                // Refused: still the same domain.
                let _ = shared_info::remap(old_maddr);
                let _ = grant::resume(false);
                uncanonicalise();
                return Err(fail("SCHEDOP_shutdown(suspend)")(errno));
            }
        };
        if cancelled {
            uncanonicalise();
            shared_info::remap(old_maddr).map_err(fail("mapping shared_info again"))?;
            grant::resume(false).map_err(|e| fail("mapping the grant table again")(e.errno()))?;
            let suspended_for = elapsed(before_ns);
            println!(
                "resume: suspend cancelled after {} ms; resumed in place (shared info and grant table mapped again)",
                suspended_for.as_millis()
            );
            return Ok(record(SuspendOutcome {
                cancelled,
                suspended_for,
                epoch: epoch(),
                suspended_at_ns: before_sys,
                resumed_at_ns: time::now_ns(),
            }));
        }

        let new = read_new_domain(start_info_va)?;
        // The console's old channel may be anyone's now: switch first.
        if let Some(evtchn) = new.console_evtchn {
            console::resume(evtchn);
        }
        shared_info::remap(new.shared_info_maddr).map_err(fail("mapping the new shared_info"))?;
        let now_epoch = bump_epoch();
        events::resume_in_new_domain().map_err(fail("resetting event channels"))?;
        platform::enable_upcalls().map_err(fail("setting HVM_PARAM_CALLBACK_IRQ"))?;
        sched::resume_in_new_domain().map_err(fail("binding VIRQ_TIMER again"))?;
        grant::resume(true).map_err(|e| fail("setting up the grant table again")(e.errno()))?;
        crate::mm::p2m_frames::publish().map_err(|_| SuspendError {
            step: "publishing the p2m frame list again",
            errno: Errno::ENOMEM,
        })?;
        if let Some(evtchn) = new.store_evtchn {
            crate::store_page::set_resumed_evtchn(evtchn);
        }
        let suspended_for = elapsed(before_ns);
        let resumed_at_ns = time::now_ns();
        let system_jump = resumed_at_ns.saturating_sub(before_sys);
        println!(
            "resume: suspended for {} ms (system time moved {} ms); epoch {now_epoch}; re-established: shared info, event channels ({}), timer VIRQ, console (evtchn {}), grant table, {}xenstore evtchn {}",
            suspended_for.as_millis(),
            system_jump / 1_000_000,
            events::abi_name(),
            new.console_evtchn.unwrap_or(0),
            if pv { "p2m frame list, " } else { "callback vector, " },
            new.store_evtchn.unwrap_or(0),
        );
        Ok(record(SuspendOutcome {
            cancelled: false,
            suspended_for,
            epoch: now_epoch,
            suspended_at_ns: before_sys,
            resumed_at_ns,
        }))
    }

    fn elapsed(before_ns: u128) -> Duration {
        let ns = wall_ns().saturating_sub(before_ns);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// The store and console frames `start_info` names: `(store, console)`.
    fn read_start_info_frames(start_info_va: u64) -> (u64, u64) {
        let si = start_info_va as *const StartInfo;
        // SAFETY: `start_info` lies in our initial region, mapped for good
        // (its frame is reserved by the boot layout); volatile reads of
        // two u64 fields.
        unsafe {
            (
                (&raw const (*si).store_mfn).read_volatile(),
                // The domU arm's first word is the console ring's frame.
                (&raw const (*si).console).cast::<u64>().read_volatile(),
            )
        }
    }

    /// Writes the store and console frames into `start_info`.
    fn write_start_info_frames(start_info_va: u64, (store, console): (u64, u64)) {
        let si = start_info_va as *mut StartInfo;
        // SAFETY: as in `read_start_info_frames`; the page is ours and
        // mapped writable, and Xen does not write it while we run.
        unsafe {
            (&raw mut (*si).store_mfn).write_volatile(store);
            (&raw mut (*si).console)
                .cast::<u64>()
                .write_volatile(console);
        }
    }

    /// Rewrites the store and console machine frames in `start_info` as
    /// our pfns, which is what the toolstack's restore expects to find
    /// there (Xen's `process_start_info`). Returns the machine frames, to
    /// put back if the suspend is cancelled.
    fn canonicalise_start_info(start_info_va: u64) -> Result<(u64, u64), SuspendError> {
        let machine = read_start_info_frames(start_info_va);
        let pfn = |mfn| {
            crate::mm::mfn_to_pfn(mfn).map_err(|_| SuspendError {
                step: "turning start_info's store and console frames into pfns",
                errno: Errno::EINVAL,
            })
        };
        let canonical = (pfn(machine.0)?, pfn(machine.1)?);
        write_start_info_frames(start_info_va, canonical);
        Ok(machine)
    }

    /// The shared info machine address `start_info` names (PV), 0 in PVH.
    fn shared_info_maddr(start_info_va: u64) -> u64 {
        if start_info_va == 0 {
            return 0;
        }
        // SAFETY: `start_info` lies in our initial region, mapped for good
        // (its frame is reserved by the boot layout); a volatile read of
        // one u64 field, which the toolstack rewrites while we are away.
        unsafe { (&raw const (*(start_info_va as *const StartInfo)).shared_info).read_volatile() }
    }

    /// Reads what the new domain's toolstack told us.
    fn read_new_domain(start_info_va: u64) -> Result<NewDomain, SuspendError> {
        if platform::is_pvh() {
            use pv_arch::abi::hvm::{HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_STORE_EVTCHN};
            use pv_arch::abi::xen::DOMID_SELF;
            use pv_arch::hypercall::hvm::get_param;
            let param = |index| {
                get_param(DOMID_SELF, index)
                    .ok()
                    .and_then(|value| u32::try_from(value).ok())
                    .filter(|&port| port != 0)
            };
            return Ok(NewDomain {
                shared_info_maddr: 0,
                console_evtchn: param(HVM_PARAM_CONSOLE_EVTCHN),
                store_evtchn: param(HVM_PARAM_STORE_EVTCHN),
            });
        }
        let si = start_info_va as *const StartInfo;
        // SAFETY: as in `shared_info_maddr`: volatile reads of fields of
        // the start_info page the toolstack rewrote.
        let (maddr, console, store) = unsafe {
            (
                (&raw const (*si).shared_info).read_volatile(),
                (&raw const (*si).console).read_volatile().dom_u().evtchn,
                (&raw const (*si).store_evtchn).read_volatile(),
            )
        };
        if maddr == 0 || !maddr.is_multiple_of(4096) {
            return Err(SuspendError {
                step: "re-reading start_info",
                errno: Errno::EINVAL,
            });
        }
        Ok(NewDomain {
            shared_info_maddr: maddr,
            console_evtchn: (console != 0).then_some(console),
            store_evtchn: (store != 0).then_some(store),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::slot::tests::counting;

    #[test]
    fn resumed_completes_at_the_next_epoch_and_wakes_its_waiter() {
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut future = resumed();
        let start = epoch();
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Pending);
        // Polled twice by one task: still one waker.
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Pending);
        let now = bump_epoch();
        assert_eq!(now, start + 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Ready(now));
        // A future made after the bump waits for the one after.
        let mut later = resumed();
        assert_eq!(Pin::new(&mut later).poll(&mut cx), Poll::Pending);
    }
}
