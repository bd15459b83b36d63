//! blkfront: the front end of Xen's virtual block device (`io/blkif.h`).
//!
//! [`wire`] holds the request and response formats and the bookkeeping
//! that checks each response against the requests outstanding (pure
//! logic, host-tested). In the guest, `device::BlockFront` connects to
//! the backend named in our `device/vbd/<id>` directory (ring page,
//! grant, event channel, the xenbus handshake as
//! [`crate::xenbus_state::FrontendState`] drives it), then reads, writes
//! and flushes with several requests in flight: each request carries up
//! to eleven 4 KiB data pages (32 as an indirect request when the
//! backend offers indirect descriptors; the ring spans up to four pages
//! when it offers multi-page rings), granted to the backend once when
//! the device connects and reused for every request. Those pages are the
//! pool blkif's persistent grants (`feature-persistent`) ask for: we
//! write `feature-persistent=1` with the ring (unless [`Options`] turn it
//! off), and when the backend answers with its own key at `Connected`,
//! it maps each page once and keeps it mapped ([`pool`]).
//!
//! What the backend writes (xenstore keys, responses) is untrusted:
//! parsed and checked before use, and a backend that misbehaves makes
//! the device fail with a [`BlockError`], never the guest panic.

use core::fmt;

use crate::shared_ring::RingError;
use crate::xenbus_frontend::XenbusError;
use crate::xenbus_state::FeatureError;
use crate::xenstore::error::XsError;

#[cfg(target_os = "none")]
pub mod device;
pub mod engine;
pub mod offer;
pub mod pages;
pub mod pool;
pub mod wire;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod tests;

pub use wire::ResponseError;

/// Everything a block operation or the connection can fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// No `device/vbd` entry (the domain has no disk), or not the one asked for.
    NoDevice,
    /// A xenstore operation failed.
    Xenstore(XsError),
    /// A backend key was malformed or missing.
    BadKey(&'static str),
    /// A backend feature was malformed.
    Feature(FeatureError),
    /// The backend closed, or did not connect in time.
    NotConnected,
    /// A page, grant or event channel could not be had.
    Resources(&'static str),
    /// The request lies (partly) beyond the disk's end, or its buffer is
    /// not a whole number of sectors.
    OutOfRange,
    /// The disk is read-only.
    ReadOnly,
    /// The backend answered `BLKIF_RSP_ERROR`.
    Io,
    /// The backend answered `BLKIF_RSP_EOPNOTSUPP` (or does not offer the
    /// operation, for flush).
    NotSupported,
    /// The backend broke the ring; the device is unusable from now on.
    Ring(RingError),
    /// The backend answered a request we did not have outstanding.
    BadResponse(ResponseError),
    /// No answer in time; the device is unusable from now on.
    Timeout,
    /// The xenbus handshake failed (deadline, a flapping backend), or
    /// the backend closed the device.
    Xenbus(XenbusError),
    /// The disk was detached (`xl block-detach`: the backend closed it);
    /// requests in flight were answered or abandoned, our side is
    /// `Closed`, and the device is gone for good.
    Detached,
    /// The connection was void (a resume, a restarted backend) and the
    /// transfer could not be re-issued on a new one.
    Reset,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::NoDevice => f.write_str("blkfront: no such virtual block device"),
            BlockError::Xenstore(error) => write!(f, "blkfront: xenstore: {error}"),
            BlockError::BadKey(key) => {
                write!(f, "blkfront: backend key {key} missing or malformed")
            }
            BlockError::Feature(error) => write!(f, "blkfront: {error}"),
            BlockError::NotConnected => f.write_str("blkfront: backend not connected"),
            BlockError::Resources(what) => write!(f, "blkfront: cannot allocate {what}"),
            BlockError::OutOfRange => {
                f.write_str("blkfront: request outside the disk or not whole sectors")
            }
            BlockError::ReadOnly => f.write_str("blkfront: the disk is read-only"),
            BlockError::Io => f.write_str("blkfront: the backend reported an I/O error"),
            BlockError::NotSupported => {
                f.write_str("blkfront: operation not supported by the backend")
            }
            BlockError::Ring(error) => write!(f, "blkfront: {error}"),
            BlockError::BadResponse(error) => write!(f, "blkfront: {error}"),
            BlockError::Timeout => f.write_str("blkfront: the backend did not answer in time"),
            BlockError::Xenbus(error) => write!(f, "blkfront: {error}"),
            BlockError::Detached => {
                f.write_str("blkfront: the disk was detached (the backend closed it)")
            }
            BlockError::Reset => {
                f.write_str("blkfront: the connection was reset and could not be made again")
            }
        }
    }
}

impl From<XenbusError> for BlockError {
    fn from(error: XenbusError) -> Self {
        match error {
            XenbusError::Xenstore(error) => BlockError::Xenstore(error),
            other => BlockError::Xenbus(other),
        }
    }
}

impl From<XsError> for BlockError {
    fn from(error: XsError) -> Self {
        BlockError::Xenstore(error)
    }
}

/// What the backend told us about the disk and what we negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DiskInfo {
    /// `sectors`: the size in 512-byte sectors.
    pub sectors: u64,
    /// `sector-size`: the logical block size in bytes.
    pub sector_size: u32,
    /// `info`: the `VDISK_*` bits.
    pub info: u32,
    /// `feature-flush-cache`: flush is offered.
    pub flush: bool,
    /// `feature-barrier`: write barriers are offered.
    pub barrier: bool,
    /// Whether persistent grants are in use, and if not, why.
    pub persistent: Persistent,
    /// `feature-max-indirect-segments` as offered.
    pub indirect_offered: u32,
    /// Segments per indirect request in use (0: indirect requests off).
    pub indirect_segments: u32,
    /// `max-ring-page-order` as offered.
    pub max_ring_page_order: u8,
    /// Ring pages in use.
    pub ring_pages: usize,
}

impl DiskInfo {
    /// Whether `VDISK_READONLY` is set.
    pub const fn readonly(&self) -> bool {
        self.info & wire::VDISK_READONLY != 0
    }

    /// The disk's size in bytes (saturating).
    pub const fn bytes(&self) -> u64 {
        self.sectors.saturating_mul(wire::SECTOR_SIZE as u64)
    }
}

impl fmt::Display for DiskInfo {
    /// The negotiation summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "blkfront: {} sectors of {} bytes{}, features: flush={}, barrier={}, persistent={}, indirect={} (offered {}), ring-pages={} (max order offered {})",
            self.sectors,
            self.sector_size,
            if self.readonly() { " (read-only)" } else { "" },
            self.flush,
            self.barrier,
            self.persistent,
            self.indirect_segments,
            self.indirect_offered,
            self.ring_pages,
            self.max_ring_page_order,
        )
    }
}

/// Persistent grants (blkif `feature-persistent`) on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Persistent {
    /// We asked and the backend agreed (its `feature-persistent` is 1 at
    /// `Connected`): it maps each data page once and keeps it.
    On,
    /// We asked; the backend did not write `feature-persistent=1`.
    NotOffered,
    /// We did not ask ([`Options::persistent`] false).
    TurnedOff,
}

impl Persistent {
    /// Whether the backend keeps our data pages mapped.
    pub const fn is_on(self) -> bool {
        matches!(self, Persistent::On)
    }
}

impl fmt::Display for Persistent {
    /// As the connect line says it: `true`, or `false (why)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Persistent::On => "true",
            Persistent::NotOffered => "false (backend did not offer)",
            Persistent::TurnedOff => "false (we turned it off)",
        })
    }
}

/// What the guest asks of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Options {
    /// Ask for persistent grants (`feature-persistent=1`); on by default.
    pub persistent: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { persistent: true }
    }
}

impl Options {
    /// The options a kernel command line asks for: the last
    /// `blkfront.persistent=0` or `=1` word (anything else is ignored),
    /// else the defaults. The bench turns persistent grants off this way
    /// to measure what they are worth.
    pub fn from_cmdline(cmdline: &str) -> Options {
        let mut options = Options::default();
        for word in cmdline.split_ascii_whitespace() {
            match word.strip_prefix("blkfront.persistent=") {
                Some("0") => options.persistent = false,
                Some("1") => options.persistent = true,
                _ => {}
            }
        }
        options
    }
}

/// Checks that `len` bytes at 512-byte sector `sector` are whole sectors
/// of the disk's logical size and lie inside a disk of `sectors` sectors.
pub fn check_range(info: &DiskInfo, sector: u64, len: usize) -> Result<(), BlockError> {
    let unit = info.sector_size.max(wire::SECTOR_SIZE as u32) as usize;
    let per_unit = (unit / wire::SECTOR_SIZE) as u64;
    if !len.is_multiple_of(unit) || !sector.is_multiple_of(per_unit) {
        return Err(BlockError::OutOfRange);
    }
    let count = (len / wire::SECTOR_SIZE) as u64;
    match sector.checked_add(count) {
        Some(end) if end <= info.sectors => Ok(()),
        _ => Err(BlockError::OutOfRange),
    }
}
