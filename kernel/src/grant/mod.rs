//! Grant tables: sharing our pages with other domains.
//!
//! To let another domain (a backend) map or copy one of our pages, we
//! write an entry in our grant table, pages that Xen shares with us
//! (`GNTTABOP_setup_table`, mapped here through [`crate::fixmap`]), and
//! hand the entry's index, a [`GrantRef`], to the other side (usually
//! through xenstore). Ending the grant is only allowed while the other
//! side does not map the page: Xen says [`GrantError::InUse`]
//! otherwise, and the page must not be reused while a backend still
//! holds it.
//!
//! [`init`] runs once at boot, after the scheduler: it picks the table
//! version (1 by default, 2 with `gnttab=v2` on the command line), sets
//! up [`MAX_FRAMES`] table frames and, for version 2, maps the status
//! frame.
//!
//! Drivers share memory only as [`GrantedPage`]s ([`owned`]): a page
//! that owns its frame and its grant, whose `Drop` ends the grant before
//! it frees the frame and quarantines the page (counted in
//! [`GrantStats::quarantined`], retried by the reaper) while the other
//! domain still maps it. Nothing safe grants a frame by number: the raw
//! forms (`grant_access`, `end_access`, `Grant::new`) are `unsafe fn`,
//! kept for the conformance suite, which must hand Xen odd frames and
//! references on purpose.
//!
//! The pieces: [`refs`] (which references are free; pure logic),
//! [`owned`] (granted pages and the quarantine, generic over the table),
//! [`entries`] (reading and writing entries in the shared frames, in the
//! order the protocol needs), [`error`], [`sim`] (host only: a simulated
//! table and backend) and, in the guest, the table itself.

pub mod entries;
pub mod error;
pub mod owned;
pub mod refs;
#[cfg(not(target_os = "none"))]
pub mod sim;

#[cfg(target_os = "none")]
mod table;
#[cfg(target_os = "none")]
pub use table::{
    end_access, grant_access, in_use_bits, info, init, reap, resume, set_version, stats, suspend,
    Grant, XenGrants,
};

pub use owned::{FramePage, GrantTable, GrantedPage};

pub use entries::MAX_FRAMES;
pub use error::GrantError;

use core::fmt;

/// An index into our grant table, as handed to the other domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantRef(u32);

impl GrantRef {
    /// The number the other side needs (written to xenstore, rings).
    pub const fn value(self) -> u32 {
        self.0
    }

    /// A reference by number (to name one in a hypercall or a test).
    /// Only the `unsafe` raw forms (`end_access`) act on a reference by
    /// number, so a made-up one cannot end another owner's grant.
    pub const fn from_raw(value: u32) -> Self {
        GrantRef(value)
    }
}

impl fmt::Display for GrantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The grant-table format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantVersion {
    /// 8-byte entries; the in-use bits live in each entry's flags.
    V1,
    /// 16-byte entries and separate status frames.
    V2,
}

impl GrantVersion {
    /// The number `GNTTABOP_set_version` takes.
    pub const fn number(self) -> u32 {
        match self {
            GrantVersion::V1 => 1,
            GrantVersion::V2 => 2,
        }
    }

    /// The other version (what a switch test switches to).
    pub const fn other(self) -> Self {
        match self {
            GrantVersion::V1 => GrantVersion::V2,
            GrantVersion::V2 => GrantVersion::V1,
        }
    }

    /// The version numbered `number`, if there is one.
    pub const fn from_number(number: u32) -> Option<Self> {
        match number {
            1 => Some(GrantVersion::V1),
            2 => Some(GrantVersion::V2),
            _ => None,
        }
    }

    /// The version the command line asks for: the last `gnttab=v1` or
    /// `gnttab=v2` word, else version 1.
    pub fn from_cmdline(cmdline: &str) -> Self {
        cmdline
            .split_ascii_whitespace()
            .filter_map(|word| match word {
                "gnttab=v1" => Some(GrantVersion::V1),
                "gnttab=v2" => Some(GrantVersion::V2),
                _ => None,
            })
            .next_back()
            .unwrap_or(GrantVersion::V1)
    }
}

impl fmt::Display for GrantVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

/// How the table is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantInfo {
    /// The version in use.
    pub version: GrantVersion,
    /// Machine frames of the table, `nr_frames` of them.
    pub frames: [u64; MAX_FRAMES],
    /// Table frames mapped.
    pub nr_frames: usize,
    /// The version 2 status frame, when in version 2.
    pub status_frame: Option<u64>,
    /// Entries in the table (reserved ones included).
    pub nr_entries: u32,
}

/// How the references are used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantStats {
    /// References we may hand out.
    pub capacity: usize,
    /// Free now.
    pub free: usize,
    /// Handed out now.
    pub live: usize,
    /// Given up on since the last version switch (the other side kept
    /// them mapped when they were ended).
    pub leaked: usize,
    /// Given up on since boot.
    pub leaked_total: usize,
    /// Pages (with their references) in quarantine now: dropped while
    /// the other domain still mapped them, kept out of the allocator
    /// until the reaper can end their grants.
    pub quarantined: usize,
    /// Pages ever put in quarantine since boot.
    pub quarantined_total: usize,
}

impl fmt::Display for GrantStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} live, {} free of {}, {} quarantined ({} ever), {} leaked ({} ever)",
            self.live,
            self.free,
            self.capacity,
            self.quarantined,
            self.quarantined_total,
            self.leaked,
            self.leaked_total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_cmdline() {
        assert_eq!(GrantVersion::from_cmdline(""), GrantVersion::V1);
        assert_eq!(
            GrantVersion::from_cmdline("only=grant gnttab=v2"),
            GrantVersion::V2
        );
        assert_eq!(
            GrantVersion::from_cmdline("gnttab=v2 gnttab=v1"),
            GrantVersion::V1
        );
        assert_eq!(GrantVersion::from_cmdline("xgnttab=v2"), GrantVersion::V1);
        assert_eq!(GrantVersion::from_number(2), Some(GrantVersion::V2));
        assert_eq!(GrantVersion::from_number(3), None);
        assert_eq!(GrantVersion::V2.to_string(), "v2");
    }

    use alloc::string::ToString;
}
