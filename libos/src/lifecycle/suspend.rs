//! Suspending the domain and resuming it (`control/shutdown` =
//! `suspend`, which `xl save` and `xl migrate` write): the sequence the
//! control task calls.
//!
//! 1. Quiesce xenstore: wait (briefly) until no request is in flight, so
//!    none is caught half-answered by the old xenstored (one still out
//!    after the wait fails with `XsError::Resumed` after the resume).
//! 2. `kernel::suspend::suspend()`: makes the domain saveable, suspends
//!    it, and on return in a new domain rebuilds what the kernel owns
//!    (shared info, event channels, timer, console, grant table, p2m
//!    frame list) and bumps the resume epoch, which wakes every task
//!    waiting on an event channel or in `kernel::suspend::resumed()`.
//! 3. In a new domain, the shared xenstore connection resumes on the new
//!    channel and registers its watches again
//!    (`drivers_pv::xenstore::guest::resume`); the frontends see their
//!    channels stale and their watches fire, and reconnect themselves.
//!
//! A cancelled suspend (the toolstack gave up) resumes in place: the
//! kernel maps back what it unmapped, and nothing else changes.

use core::fmt;
use core::time::Duration;

#[cfg(target_os = "none")]
use drivers_pv::xenstore::guest;

/// Whether [`suspend_and_resume`] can suspend (and so whether the
/// control task advertises `control/feature-suspend`): in the guest.
pub const SUPPORTED: bool = cfg!(target_os = "none");

/// How long step 1 waits for xenstore requests in flight.
#[cfg(target_os = "none")]
const QUIESCE_LIMIT: Duration = Duration::from_secs(2);

/// How a suspend ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resumed {
    /// Xen returned at once (`SCHEDOP_shutdown` gave 1): the domain
    /// resumed in place, nothing was rebuilt.
    pub cancelled: bool,
    /// How long the domain was away, guest-measured (wall clock from
    /// the suspend hypercall to its return: for a migration, the
    /// downtime).
    pub suspended_for: Duration,
}

/// Why a suspend did not happen, or did not resume cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendError {
    /// This build cannot suspend.
    Unsupported,
    /// The kernel could not suspend, or could not rebuild a step after
    /// resuming (named, with Xen's answer).
    Kernel(kernel::suspend::SuspendError),
    /// Resumed, but the xenstore connection could not be resumed (its
    /// new event channel could not be adopted: Xen's answer).
    Xenstore(kernel::Errno),
}

impl fmt::Display for SuspendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuspendError::Unsupported => f.write_str("suspend is not supported by this build"),
            SuspendError::Kernel(why) => write!(f, "suspend: {why}"),
            SuspendError::Xenstore(why) => write!(f, "resume: xenstore: {why}"),
        }
    }
}

/// Suspends the domain and resumes it (see the module docs).
#[cfg(target_os = "none")]
pub async fn suspend_and_resume() -> Result<Resumed, SuspendError> {
    quiesce_xenstore().await;
    let outcome = kernel::suspend::suspend().map_err(SuspendError::Kernel)?;
    if !outcome.cancelled {
        let watches = guest::resume().map_err(|why| match why {
            guest::ConnectError::Channel(errno) | guest::ConnectError::Map(errno) => {
                SuspendError::Xenstore(errno)
            }
            guest::ConnectError::NoStore => SuspendError::Xenstore(kernel::Errno::ENODEV),
        })?;
        kernel::println!("resume: xenstore connection resumed, {watches} watches registered again");
    }
    Ok(Resumed {
        cancelled: outcome.cancelled,
        suspended_for: outcome.suspended_for,
    })
}

/// On the host there is no domain to suspend.
#[cfg(not(target_os = "none"))]
pub async fn suspend_and_resume() -> Result<Resumed, SuspendError> {
    Err(SuspendError::Unsupported)
}

/// Waits until no xenstore request is in flight, for at most
/// [`QUIESCE_LIMIT`].
#[cfg(target_os = "none")]
async fn quiesce_xenstore() {
    let Ok(xs) = guest::xenstore() else {
        return;
    };
    let deadline = kernel::time::now_ns()
        .saturating_add(u64::try_from(QUIESCE_LIMIT.as_nanos()).unwrap_or(u64::MAX));
    while xs.outstanding() > 0 && kernel::time::now_ns() < deadline {
        kernel::sched::sleep(Duration::from_millis(5)).await;
    }
}
