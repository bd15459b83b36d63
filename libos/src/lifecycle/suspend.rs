//! Suspending the domain and resuming it (`control/shutdown` =
//! `suspend`): the sequence the control task calls. This is the stub
//! the control task builds against; the suspend work replaces it with
//! the real sequence (quiesce, `SCHEDOP_shutdown(suspend)`, rebuild).
//! Until then [`SUPPORTED`] is false, so `control/feature-suspend` is
//! not advertised and a `suspend` request is refused at once.

use core::fmt;
use core::time::Duration;

/// Whether [`suspend_and_resume`] can suspend (and so whether the
/// control task advertises `control/feature-suspend`).
pub const SUPPORTED: bool = false;

/// How a suspend ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resumed {
    /// Xen returned at once (`SCHEDOP_shutdown` gave 1): the domain
    /// resumed in place, nothing was rebuilt.
    pub cancelled: bool,
    /// How long the domain was away, guest-measured.
    pub suspended_for: Duration,
}

/// Why a suspend did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendError {
    /// This build cannot suspend.
    Unsupported,
}

impl fmt::Display for SuspendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuspendError::Unsupported => f.write_str("suspend is not supported by this build"),
        }
    }
}

/// Suspends the domain and resumes it.
pub async fn suspend_and_resume() -> Result<Resumed, SuspendError> {
    Err(SuspendError::Unsupported)
}
