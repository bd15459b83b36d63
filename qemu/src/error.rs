//! The rig's error type.
//!
//! A guest that crashes or hangs is not an error: that is a
//! [`GuestReport`](crate::GuestReport) with its [`Ending`](crate::Ending).
//! Errors are the rig itself failing: a package that cannot be fetched, a
//! host command that fails, QEMU that will not start, or a dom0 that never
//! became ready.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What went wrong while preparing or running the rig.
#[derive(Debug)]
pub enum RigError {
    /// `apt-get download` (or `apt-get update`) failed for a package.
    Download {
        /// The package (or `apt-get update`).
        package: String,
        /// What apt said.
        detail: String,
    },
    /// A host command failed.
    Command {
        /// The command line.
        command: String,
        /// Its exit status and the tail of its output.
        detail: String,
    },
    /// A file operation failed.
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// `qemu-system-x86_64` is missing and could not be installed.
    QemuMissing(String),
    /// An input was not what the rig expected (a bzImage without an xz
    /// payload, a guest name that is not a plain word, ...).
    Invalid(String),
    /// Something did not happen in time.
    Timeout {
        /// What was being waited for.
        what: String,
        /// The last lines of the relevant log.
        log_tail: String,
    },
    /// Xen or the Linux dom0 failed before running the guests.
    Dom0Failed {
        /// What was seen.
        reason: String,
        /// The last lines of the serial log.
        log_tail: String,
    },
}

impl RigError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        RigError::Io {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for RigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RigError::Download { package, detail } => {
                write!(f, "could not download {package}: {detail}")
            }
            RigError::Command { command, detail } => write!(f, "`{command}` failed: {detail}"),
            RigError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            RigError::QemuMissing(detail) => {
                write!(
                    f,
                    "qemu-system-x86_64 is missing and could not be installed: {detail}"
                )
            }
            RigError::Invalid(detail) => write!(f, "{detail}"),
            RigError::Timeout { what, log_tail } => {
                write!(f, "timed out waiting for {what}")?;
                write_tail(f, log_tail)
            }
            RigError::Dom0Failed { reason, log_tail } => {
                write!(f, "dom0 failed: {reason}")?;
                write_tail(f, log_tail)
            }
        }
    }
}

fn write_tail(f: &mut fmt::Formatter<'_>, tail: &str) -> fmt::Result {
    if tail.is_empty() {
        Ok(())
    } else {
        write!(f, "\n--- log tail ---\n{tail}")
    }
}

impl std::error::Error for RigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RigError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
