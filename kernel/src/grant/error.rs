//! [`GrantError`]: what can go wrong granting, ending or setting up.

use core::fmt;
use pv_arch::abi::grant_table::gntst_message;
use pv_arch::Errno;

/// Why a grant-table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// The hypercall itself failed (nothing was done).
    Hypercall(Errno),
    /// Xen ran the operation and reported this `GNTST_*` status.
    Status(i16),
    /// The other domain still maps (or is copying) the granted page;
    /// the grant stays, and the page must not be reused yet.
    InUse,
    /// Every grant reference is taken.
    NoFreeRefs,
    /// No free frame for a page to grant.
    NoMemory,
    /// The reference is not one we handed out and still hold.
    BadRef(u32),
    /// The frame number does not fit a version 1 entry (32 bits).
    FrameTooLarge(u64),
    /// The grant table is not set up (before [`super::init`], or a
    /// version switch failed half way).
    NotReady,
    /// A version switch was asked for while grants are still held.
    Busy,
}

impl GrantError {
    /// The nearest errno, for callers that speak only errno (boot).
    pub fn errno(&self) -> Errno {
        match *self {
            GrantError::Hypercall(errno) => errno,
            GrantError::Status(status) => status_errno(status),
            GrantError::InUse | GrantError::Busy => Errno::EBUSY,
            GrantError::NoFreeRefs => Errno::ENOSPC,
            GrantError::NoMemory => Errno::ENOMEM,
            GrantError::BadRef(_) => Errno::EINVAL,
            GrantError::FrameTooLarge(_) => Errno::ERANGE,
            GrantError::NotReady => Errno::ENODEV,
        }
    }
}

impl From<Errno> for GrantError {
    fn from(errno: Errno) -> Self {
        GrantError::Hypercall(errno)
    }
}

/// The nearest errno for a `GNTST_*` status.
fn status_errno(status: i16) -> Errno {
    use pv_arch::abi::grant_table::*;
    match status {
        GNTST_BAD_DOMAIN => Errno::ESRCH,
        GNTST_BAD_GNTREF | GNTST_BAD_HANDLE | GNTST_BAD_COPY_ARG => Errno::EINVAL,
        GNTST_BAD_VIRT_ADDR | GNTST_BAD_DEV_ADDR => Errno::EFAULT,
        GNTST_NO_DEVICE_SPACE | GNTST_NO_SPACE => Errno::ENOSPC,
        GNTST_PERMISSION_DENIED => Errno::EPERM,
        GNTST_BAD_PAGE => Errno::EINVAL,
        GNTST_ADDRESS_TOO_BIG => Errno::ERANGE,
        GNTST_EAGAIN => Errno::EAGAIN,
        _ => Errno::EIO,
    }
}

/// The C name of a `GNTST_*` status (`"GNTST_bad_gntref"`), if it is one.
pub fn gntst_name(status: i16) -> Option<&'static str> {
    const NAMES: [&str; 14] = [
        "GNTST_okay",
        "GNTST_general_error",
        "GNTST_bad_domain",
        "GNTST_bad_gntref",
        "GNTST_bad_handle",
        "GNTST_bad_virt_addr",
        "GNTST_bad_dev_addr",
        "GNTST_no_device_space",
        "GNTST_permission_denied",
        "GNTST_bad_page",
        "GNTST_bad_copy_arg",
        "GNTST_address_too_big",
        "GNTST_eagain",
        "GNTST_no_space",
    ];
    let index = usize::try_from(-i32::from(status)).ok()?;
    NAMES.get(index).copied()
}

/// Writes a status as `GNTST_bad_gntref (invalid grant reference)`.
pub struct StatusName(pub i16);

impl fmt::Display for StatusName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (gntst_name(self.0), gntst_message(self.0)) {
            (Some(name), Some(message)) => write!(f, "{name} ({message})"),
            _ => write!(f, "status {} (not a GNTST_* code)", self.0),
        }
    }
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GrantError::Hypercall(errno) => write!(f, "grant_table_op failed: {errno}"),
            GrantError::Status(status) => write!(f, "{}", StatusName(status)),
            GrantError::InUse => write!(f, "grant still in use by the other domain"),
            GrantError::NoFreeRefs => write!(f, "no free grant references"),
            GrantError::NoMemory => write!(f, "no free frame for a page to grant"),
            GrantError::BadRef(gref) => write!(f, "grant reference {gref} is not held"),
            GrantError::FrameTooLarge(frame) => {
                write!(f, "frame {frame:#x} does not fit a v1 grant entry")
            }
            GrantError::NotReady => write!(f, "grant table not set up"),
            GrantError::Busy => write!(f, "grants still held"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use pv_arch::abi::grant_table::{GNTST_BAD_GNTREF, GNTST_NO_SPACE, GNTST_OKAY};

    #[test]
    fn names_and_display() {
        assert_eq!(gntst_name(GNTST_OKAY), Some("GNTST_okay"));
        assert_eq!(gntst_name(GNTST_NO_SPACE), Some("GNTST_no_space"));
        assert_eq!(gntst_name(-14), None);
        assert_eq!(gntst_name(1), None);
        assert_eq!(
            GrantError::Status(GNTST_BAD_GNTREF).to_string(),
            "GNTST_bad_gntref (invalid grant reference)"
        );
        assert_eq!(
            GrantError::Status(1).to_string(),
            "status 1 (not a GNTST_* code)"
        );
        assert_eq!(
            GrantError::Hypercall(Errno::EINVAL).to_string(),
            "grant_table_op failed: EINVAL"
        );
    }

    #[test]
    fn errnos() {
        assert_eq!(GrantError::InUse.errno(), Errno::EBUSY);
        assert_eq!(GrantError::Status(GNTST_BAD_GNTREF).errno(), Errno::EINVAL);
        assert_eq!(GrantError::Status(-1).errno(), Errno::EIO);
        assert_eq!(GrantError::Hypercall(Errno::ENOSYS).errno(), Errno::ENOSYS);
    }
}
