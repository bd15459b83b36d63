//! [`MmError`]: everything the memory manager can refuse, as one small
//! `Copy` value.
//!
//! Hypercall failures keep Xen's [`Errno`] and the name of the operation
//! that failed, so a log line says `update_va_mapping: EINVAL` and not
//! just `EINVAL`. Nothing in `mm` panics on a hypercall failure; it
//! returns one of these.

use super::frames::FrameError;
use core::fmt;
use pv_arch::Errno;

/// Why a memory operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmError {
    /// `mm::init` has not run (or failed).
    NotInitialized,
    /// `mm::init` ran already.
    AlreadyInitialized,
    /// No free frame (or no run of free frames) is left.
    OutOfFrames,
    /// Every slot of the mapping window is in use.
    OutOfWindowSlots,
    /// `start_info` describes a layout we cannot manage; says what.
    BadLayout(&'static str),
    /// The frame allocator refused a free or reservation.
    Frame(FrameError),
    /// A pseudo-physical frame number that is not ours (or ballooned out).
    BadPfn(u64),
    /// A machine frame number that is not one of ours.
    BadMfn(u64),
    /// An offset or length outside a frame, or misaligned for its type.
    BadOffset(usize),
    /// A write through a read-only mapping.
    ReadOnly,
    /// A hypercall failed.
    Hypercall {
        /// The operation, e.g. `"mmu_update"`.
        op: &'static str,
        /// What Xen returned.
        errno: Errno,
    },
    /// Xen did fewer extents than asked without an error.
    Incomplete {
        /// The operation, e.g. `"decrease_reservation"`.
        op: &'static str,
        /// How many it did.
        done: u64,
    },
}

impl MmError {
    /// A hypercall failure of `op`.
    pub const fn hypercall(op: &'static str, errno: Errno) -> Self {
        MmError::Hypercall { op, errno }
    }

    /// Xen's errno, if a hypercall failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            MmError::Hypercall { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl From<FrameError> for MmError {
    fn from(error: FrameError) -> Self {
        MmError::Frame(error)
    }
}

impl fmt::Display for MmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmError::NotInitialized => f.write_str("memory manager not initialised"),
            MmError::AlreadyInitialized => f.write_str("memory manager already initialised"),
            MmError::OutOfFrames => f.write_str("out of free frames"),
            MmError::OutOfWindowSlots => f.write_str("mapping window full"),
            MmError::BadLayout(why) => write!(f, "unusable boot layout: {why}"),
            MmError::Frame(error) => write!(f, "frame allocator: {error}"),
            MmError::BadPfn(pfn) => write!(f, "pfn {pfn:#x} is not a frame of ours"),
            MmError::BadMfn(mfn) => write!(f, "mfn {mfn:#x} is not a frame of ours"),
            MmError::BadOffset(offset) => write!(f, "offset {offset:#x} outside the frame"),
            MmError::ReadOnly => f.write_str("write through a read-only mapping"),
            MmError::Hypercall { op, errno } => write!(f, "{op}: {errno}"),
            MmError::Incomplete { op, done } => write!(f, "{op}: Xen did only {done}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_failed() {
        let e = MmError::hypercall("mmu_update", Errno::EINVAL);
        assert_eq!(e.to_string(), "mmu_update: EINVAL");
        assert_eq!(e.errno(), Some(Errno::EINVAL));
        let e = MmError::from(FrameError::NotAllocated(0x42));
        assert_eq!(e.to_string(), "frame allocator: pfn 0x42 is not allocated");
        assert_eq!(e.errno(), None);
    }
}
