//! The balloon task: keeps the domain's memory at the toolstack's target.
//!
//! `xl mem-set` writes `memory/target` (KiB); [`spawn`] starts one task
//! per domU that watches it and moves the kernel's balloon
//! (`kernel::mm::balloon`, PV or PVH) towards it, a bounded number of
//! pages at a time with a yield between, so the app keeps running while
//! memory comes and goes. The arithmetic and the policy (static-max,
//! the pages Xen counts beyond the target, what cannot be given or
//! taken) are `drivers_pv::balloon_target`'s. Every target that moved
//! memory or fell short, and every value refused (garbage, or above
//! static-max, which is clamped), is printed on the console as one
//! `balloon: ` line; all of them are recorded in the [`Status`] an app
//! can read ([`status`]). A target already met (the one at boot) is only
//! recorded (in the status, not on the console). Nothing the toolstack writes makes the task panic or stop.
//!
//! Wiring: an app (or `entry!`, for every domU) calls
//! `libos::balloon::spawn(env.boot())` once; later calls do nothing.

use alloc::string::String;
use spin::Mutex;

/// What the balloon did last, for apps that report it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Bumped each time the balloon finishes a target or refuses one.
    pub changes: u64,
    /// The last target accepted (KiB), if any.
    pub target_kib: Option<u64>,
    /// That target in pages (at most static-max).
    pub target_pages: u64,
    /// Xen's reservation the balloon aimed at for it.
    pub goal: u64,
    /// Xen's reservation when the balloon stopped.
    pub reservation: u64,
    /// The reservation as target pages (without the pages Xen counts
    /// beyond the toolstack's figure).
    pub reservation_as_target: u64,
    /// What the balloon could not do for the last target.
    pub shortfall: Option<String>,
    /// The last value refused, and why.
    pub refused: Option<String>,
}

static STATUS: Mutex<Status> = Mutex::new(Status {
    changes: 0,
    target_kib: None,
    target_pages: 0,
    goal: 0,
    reservation: 0,
    reservation_as_target: 0,
    shortfall: None,
    refused: None,
});

/// A snapshot of the balloon's status.
pub fn status() -> Status {
    STATUS.lock().clone()
}

#[cfg(target_os = "none")]
pub use guest::{spawn, SpawnError};

#[cfg(target_os = "none")]
mod guest {
    use super::{Status, STATUS};
    use alloc::format;
    use alloc::string::{String, ToString};
    use core::sync::atomic::{AtomicBool, Ordering};
    use drivers_pv::balloon_target::{
        parse_kib, step, BadValue, Balloon, Baseline, Goal, Progress, STATIC_MAX_PATH, TARGET_PATH,
    };
    use drivers_pv::xenstore::guest::{within, xenstore, REPLY_TIMEOUT};
    use drivers_pv::xenstore::TxId;
    use kernel::boot_info::BootInfo;
    use kernel::mm::{self, balloon, MmError};
    use kernel::{println, sched};

    /// Pages moved per step before the task yields.
    const STEP_PAGES: u64 = 1024;
    /// Frames the balloon always leaves free (1 MiB), for the kernel and
    /// the app.
    const RESERVE_FRAMES: u64 = 256;

    static STARTED: AtomicBool = AtomicBool::new(false);

    /// Changes the status and counts the change.
    fn update(change: impl FnOnce(&mut Status)) {
        let mut status = STATUS.lock();
        change(&mut status);
        status.changes += 1;
    }

    /// Why [`spawn`] started nothing.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum SpawnError {
        /// The task runs already.
        AlreadyRunning,
        /// No xenstore (dom0 without a toolstack): no target to follow.
        NoXenstore,
    }

    /// Starts the balloon task (once per domain).
    pub fn spawn(boot: &BootInfo) -> Result<(), SpawnError> {
        if boot.store.is_none() {
            return Err(SpawnError::NoXenstore);
        }
        drivers_pv::xenstore::guest::connect(boot).map_err(|_| SpawnError::NoXenstore)?;
        if STARTED.swap(true, Ordering::AcqRel) {
            return Err(SpawnError::AlreadyRunning);
        }
        sched::spawn(run());
        Ok(())
    }

    /// The kernel's balloon, as the policy sees it.
    struct KernelBalloon;

    impl Balloon for KernelBalloon {
        type Error = MmError;

        fn reservation(&self) -> Result<u64, MmError> {
            balloon::reservation().map(|r| r.current)
        }

        fn ballooned_out(&self) -> u64 {
            balloon::ballooned_out()
        }

        fn free_frames(&self) -> u64 {
            mm::free_frames()
        }

        fn maximum(&self) -> Option<u64> {
            balloon::reservation().ok().map(|r| r.maximum)
        }

        fn release(&mut self, pages: u64) -> Result<u64, MmError> {
            balloon::release(pages)
        }

        fn reclaim(&mut self, pages: u64) -> Result<u64, MmError> {
            balloon::reclaim(pages)
        }
    }

    /// Reads a KiB value at `path`.
    async fn read_kib(path: &str) -> Result<u64, BadValue> {
        let xs = xenstore().map_err(|_| BadValue::Missing)?;
        match within(REPLY_TIMEOUT, xs.read_opt(TxId::NONE, path)).await {
            Ok(Some(bytes)) => parse_kib(&bytes),
            Ok(None) => Err(BadValue::Missing),
            Err(why) => Err(BadValue::NotANumber(format!("(read failed: {why})"))),
        }
    }

    async fn run() {
        let Ok(xs) = xenstore() else {
            println!("balloon: no xenstore connection: not following memory/target");
            return;
        };
        let mut watch = match within(REPLY_TIMEOUT, xs.watch(TARGET_PATH)).await {
            Ok(watch) => watch,
            Err(why) => {
                println!("balloon: cannot watch {TARGET_PATH}: {why}");
                return;
            }
        };
        let reservation = KernelBalloon.reservation().unwrap_or(0);
        let static_max = read_kib(STATIC_MAX_PATH).await;
        let baseline = Baseline::new(
            static_max.clone().ok(),
            reservation,
            balloon::ballooned_out(),
        );
        // Every domU says this at boot: only at debug level.
        match static_max {
            Ok(kib) => log::debug!(
                "balloon: static-max {kib} KiB = {} pages; reservation {reservation} pages, {} of them Xen's beyond the target",
                baseline.static_max_pages, baseline.slack
            ),
            Err(why) => log::debug!(
                "balloon: {STATIC_MAX_PATH} {why}: the maximum is what we have, {} pages",
                baseline.static_max_pages
            ),
        }
        // The watch fires once when set; after that on every write. The
        // first value is the one the toolstack built us with: it is only
        // recorded, and later events act only on a value that changed, so
        // nothing here moves the reservation under code that changes it
        // itself (the conformance suite's balloon checks) unless the
        // toolstack asks for a new target.
        let mut pending = false;
        let mut last_kib: Option<u64> = None;
        loop {
            if !pending {
                if let Err(why) = watch.next_event().await {
                    println!("balloon: watch on {TARGET_PATH} failed: {why}; stopping");
                    return;
                }
            }
            pending = false;
            let kib = match read_kib(TARGET_PATH).await {
                Ok(kib) => kib,
                Err(BadValue::Missing) => continue,
                Err(why) => {
                    let reservation = KernelBalloon.reservation().unwrap_or(0);
                    println!("balloon: refused {TARGET_PATH}: {why}; keeping {reservation} pages");
                    update(|s| s.refused = Some(format!("{TARGET_PATH}: {why}")));
                    continue;
                }
            };
            let first = last_kib.is_none();
            let goal = baseline.goal(kib);
            let unchanged = if first {
                goal.reservation == reservation && !goal.clamped
            } else {
                last_kib == Some(kib)
            };
            last_kib = Some(kib);
            if unchanged {
                log::debug!("balloon: {TARGET_PATH} {kib} KiB: nothing new to follow");
                if first {
                    // The boot target, met: recorded so an app reading
                    // [`status`] sees where the balloon starts.
                    update(|s| {
                        s.target_kib = Some(goal.target_kib);
                        s.target_pages = goal.target_pages;
                        s.goal = goal.reservation;
                        s.reservation = reservation;
                        s.reservation_as_target = baseline.target_pages_of(reservation);
                        s.shortfall = None;
                    });
                }
                continue;
            }
            if goal.clamped {
                println!(
                    "balloon: refused {TARGET_PATH} {kib} KiB: above static-max {} KiB; aiming at static-max",
                    baseline.static_max_pages * 4
                );
                update(|s| s.refused = Some(format!("{TARGET_PATH} {kib} KiB: above static-max")));
            }
            pending = follow(&mut watch, &goal, &baseline).await;
        }
    }

    /// Moves the balloon to `goal`, yielding between steps; returns early
    /// (`true`) if a new target was written meanwhile.
    async fn follow(
        watch: &mut drivers_pv::xenstore::shared::Watch<
            'static,
            drivers_pv::xenstore::guest::GuestPage,
        >,
        goal: &Goal,
        baseline: &Baseline,
    ) -> bool {
        let (mut given, mut taken) = (0u64, 0u64);
        loop {
            match step(&mut KernelBalloon, goal, STEP_PAGES, RESERVE_FRAMES) {
                Progress::Moved { pages, out } => {
                    if out {
                        given += pages;
                    } else {
                        taken += pages;
                    }
                    sched::yield_now().await;
                    if let Ok(Some(_)) = watch.try_next() {
                        println!(
                            "balloon: new target while moving (gave {given}, took {taken} pages)"
                        );
                        return true;
                    }
                }
                Progress::Done {
                    reservation,
                    shortfall,
                } => {
                    let as_target = baseline.target_pages_of(reservation);
                    let short = shortfall.as_ref().map(ToString::to_string);
                    // A target met without moving (the one at boot) is
                    // only recorded.
                    let quiet = given == 0 && taken == 0 && short.is_none() && !goal.clamped;
                    if !quiet {
                        println!(
                        "balloon: target {} KiB = {} pages: reservation {reservation} pages ({as_target} as target), gave {given}, took {taken}{}",
                        goal.target_kib,
                        goal.target_pages,
                        short
                            .as_deref()
                            .map(|s| format!("; {s}"))
                            .unwrap_or_else(String::new)
                        );
                    }
                    update(|s| {
                        s.target_kib = Some(goal.target_kib);
                        s.target_pages = goal.target_pages;
                        s.goal = goal.reservation;
                        s.reservation = reservation;
                        s.reservation_as_target = as_target;
                        s.shortfall = short;
                    });
                    return false;
                }
            }
        }
    }
}
