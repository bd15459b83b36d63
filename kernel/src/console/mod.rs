//! The console: where the guest's text goes.
//!
//! As dom0 we write with `HYPERVISOR_console_io`; as a domU Debian's
//! non-debug Xen refuses that (`EPERM`), so we produce into the PV console
//! ring that xenconsoled reads in dom0 ([`ring`]). Until [`init`] runs,
//! output goes to `console_io`, which is what a dom0 wants and the best a
//! domU can try for a message about a broken `start_info`.
//!
//! Nothing is dropped silently: bytes that could not be written (a
//! stalled or broken backend, `console_io` refused) are counted
//! ([`LostOutput`], totals in [`stats`]) and the count is reported on the
//! next line that gets through. A backend that stops reading costs one
//! bounded wait (see [`ring::RingWriter`]); after that output is dropped
//! at once until it reads again, so a dead console never holds the vCPU,
//! and the console stays synchronous (it must work in a panic).

pub mod ring;

use core::fmt;
use pv_arch::Errno;
use ring::RingWriteError;

/// Why console output was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// `HYPERVISOR_console_io` refused the write.
    Refused(Errno),
    /// The ring's backend did not take it.
    Ring(RingWriteError),
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Refused(errno) => write!(f, "console_io refused: {errno}"),
            LostReason::Ring(RingWriteError::Stalled { .. }) => f.write_str("backend stalled"),
            LostReason::Ring(RingWriteError::Corrupt(c)) => {
                write!(f, "ring corrupt (prod {} cons {})", c.prod, c.cons)
            }
        }
    }
}

/// Console output that could not be delivered: counted as it happens,
/// reported once when output gets through again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LostOutput {
    /// Bytes lost since the last report.
    pending: u64,
    /// Why the latest of them were lost.
    why: Option<LostReason>,
    /// Bytes lost since boot.
    total: u64,
}

impl LostOutput {
    /// An empty count.
    pub const fn new() -> Self {
        LostOutput {
            pending: 0,
            why: None,
            total: 0,
        }
    }

    /// Counts `bytes` lost for `why`.
    pub fn record(&mut self, bytes: usize, why: LostReason) {
        if bytes == 0 {
            return;
        }
        let bytes = bytes as u64;
        self.pending = self.pending.saturating_add(bytes);
        self.total = self.total.saturating_add(bytes);
        self.why = Some(why);
    }

    /// The line to report, if anything was lost since the last report;
    /// the caller writes it and calls [`Self::reported`] if it got through.
    pub fn report(&self) -> Option<ReportLine> {
        (self.pending != 0).then_some(ReportLine {
            bytes: self.pending,
            why: self.why,
        })
    }

    /// The report got through: start counting afresh.
    pub fn reported(&mut self) {
        self.pending = 0;
        self.why = None;
    }

    /// Bytes lost since boot.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// The one line that reports lost output: `[console: N bytes lost: why]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportLine {
    bytes: u64,
    why: Option<LostReason>,
}

impl fmt::Display for ReportLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.why {
            Some(why) => writeln!(f, "[console: {} bytes lost: {why}]", self.bytes),
            None => writeln!(f, "[console: {} bytes lost]", self.bytes),
        }
    }
}

/// What the console has been through since boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleStats {
    /// Bytes of output that never reached the backend.
    pub lost_bytes: u64,
    /// Times the ring's backend stopped reading (each noticed once).
    pub stalls: u64,
    /// Whether it is stalled now (output is being dropped).
    pub stalled: bool,
}

#[cfg(target_os = "none")]
mod device;

#[cfg(target_os = "none")]
pub use device::{emergency_write_fmt, flush, init, resume, stats, write_fmt, ConsoleError};

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::write_fmt(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn lost_output_is_reported_once_and_totalled() {
        let stalled = LostReason::Ring(RingWriteError::Stalled { unwritten: 0 });
        let mut lost = LostOutput::new();
        assert_eq!(lost.report(), None);
        lost.record(0, stalled);
        assert_eq!(lost.report(), None, "nothing lost, nothing to say");
        lost.record(100, stalled);
        lost.record(23, stalled);
        let line = lost.report().unwrap().to_string();
        assert_eq!(line, "[console: 123 bytes lost: backend stalled]\n");
        // Not reported yet (the line did not get through): still pending.
        assert!(lost.report().is_some());
        lost.reported();
        assert_eq!(lost.report(), None);
        lost.record(7, LostReason::Refused(Errno::EPERM));
        let line = lost.report().unwrap().to_string();
        assert!(
            line.starts_with("[console: 7 bytes lost: console_io refused"),
            "{line}"
        );
        assert_eq!(lost.total(), 130);
        lost.record(usize::MAX, stalled);
        lost.record(usize::MAX, stalled);
        assert_eq!(lost.total(), u64::MAX, "saturates");
    }
}
