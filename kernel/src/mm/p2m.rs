//! Translation between our pseudo-physical frames and machine frames.
//!
//! The p2m is our own array (`mfn_list` in `start_info`): entry `pfn`
//! holds the machine frame backing it, or [`INVALID_MFN`] while that
//! frame is ballooned out. The reverse, the M2P, is Xen's table, mapped
//! read-only into every PV guest at `MACH2PHYS_VIRT_START`; any domain
//! can write any value into the entries of its own frames, and entries
//! of frames that are not ours say nothing about us, so an answer from
//! the M2P is trusted only once the p2m confirms it
//! ([`P2m::confirm`]).

use core::sync::atomic::{AtomicU64, Ordering};

/// A p2m entry with no machine frame behind it (ballooned out).
pub const INVALID_MFN: u64 = u64::MAX;

/// Our pfn → mfn table.
///
/// In PVH there is no translation for the guest to do (Xen's
/// second-stage tables do it): [`P2m::identity`] answers `pfn` for every
/// frame below its length, and records nothing.
pub struct P2m<'a> {
    entries: &'a [AtomicU64],
    identity_len: u64,
}

impl<'a> P2m<'a> {
    /// Wraps the table.
    pub const fn new(entries: &'a [AtomicU64]) -> Self {
        P2m {
            entries,
            identity_len: 0,
        }
    }

    /// The identity translation over `len` frames (PVH).
    pub const fn identity(len: u64) -> P2m<'static> {
        P2m {
            entries: &[],
            identity_len: len,
        }
    }

    /// Whether this is the identity translation.
    pub fn is_identity(&self) -> bool {
        self.identity_len != 0
    }

    /// Frames in the table (`nr_pages`).
    pub fn len(&self) -> u64 {
        if self.is_identity() {
            return self.identity_len;
        }
        self.entries.len() as u64
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The machine frame backing `pfn`; `None` out of range or ballooned.
    pub fn mfn(&self, pfn: u64) -> Option<u64> {
        if self.is_identity() {
            return (pfn < self.identity_len).then_some(pfn);
        }
        let mfn = self.entries.get(usize::try_from(pfn).ok()?)?;
        Some(mfn.load(Ordering::Acquire)).filter(|&mfn| mfn != INVALID_MFN)
    }

    /// Sets entry `pfn` (to [`INVALID_MFN`] when ballooning out).
    /// Returns `false` if `pfn` is out of range.
    pub fn set(&self, pfn: u64, mfn: u64) -> bool {
        match usize::try_from(pfn).ok().and_then(|i| self.entries.get(i)) {
            Some(entry) => {
                entry.store(mfn, Ordering::Release);
                true
            }
            None => false,
        }
    }

    /// Checks an M2P answer: `mfn` is ours at `claimed_pfn` only if the
    /// p2m says so. Returns the pfn.
    pub fn confirm(&self, mfn: u64, claimed_pfn: u64) -> Option<u64> {
        (mfn != INVALID_MFN && self.mfn(claimed_pfn) == Some(mfn)).then_some(claimed_pfn)
    }

    /// Pfns currently ballooned out, lowest first.
    pub fn ballooned(&self) -> impl Iterator<Item = u64> + '_ {
        self.ballooned_from(0)
    }

    /// Pfns at or above `from` currently ballooned out, lowest first.
    pub fn ballooned_from(&self, from: u64) -> impl Iterator<Item = u64> + '_ {
        let skip = usize::try_from(from).unwrap_or(usize::MAX);
        self.entries
            .iter()
            .enumerate()
            .skip(skip)
            .filter(|(_, mfn)| mfn.load(Ordering::Acquire) == INVALID_MFN)
            .map(|(pfn, _)| pfn as u64)
    }
}

#[cfg(target_os = "none")]
pub use m2p::m2p_lookup;

#[cfg(target_os = "none")]
mod m2p {
    /// `MACH2PHYS_VIRT_START` (`arch-x86/xen-x86_64.h`).
    const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;

    /// Reads Xen's M2P entry for `mfn`, untrusted. `None` if `mfn` is
    /// above `max_mfn` (the last frame `XENMEM_machphys_mapping` says the
    /// table covers), so we never touch an unmapped part of it.
    pub fn m2p_lookup(mfn: u64, max_mfn: u64) -> Option<u64> {
        if mfn > max_mfn {
            return None;
        }
        let entry = (MACH2PHYS_VIRT_START + mfn * 8) as *const u64;
        // SAFETY: Xen maps the M2P read-only in every PV guest's address
        // space for all machine frames up to `max_mfn`; the entry is
        // 8-byte aligned and only read. Other domains change entries of
        // their own frames concurrently, hence the volatile read.
        Some(unsafe { entry.read_volatile() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_confirmation() {
        let entries: Vec<AtomicU64> = [0x500, 0x501, 0x9000, INVALID_MFN]
            .into_iter()
            .map(AtomicU64::new)
            .collect();
        let p2m = P2m::new(&entries);
        assert_eq!(p2m.len(), 4);
        assert_eq!(p2m.mfn(2), Some(0x9000));
        assert_eq!(p2m.mfn(3), None, "ballooned out");
        assert_eq!(p2m.mfn(4), None, "out of range");
        assert_eq!(p2m.confirm(0x9000, 2), Some(2));
        assert_eq!(p2m.confirm(0x9000, 1), None, "the M2P lied");
        assert_eq!(p2m.confirm(0x9000, 1 << 40), None);
        assert_eq!(p2m.confirm(INVALID_MFN, 3), None);
        assert_eq!(p2m.ballooned().collect::<Vec<_>>(), [3]);
        assert_eq!(p2m.ballooned_from(3).collect::<Vec<_>>(), [3]);
        assert_eq!(p2m.ballooned_from(4).count(), 0);
        assert!(p2m.set(3, 0x777));
        assert!(!p2m.set(4, 0x777));
        assert_eq!(p2m.mfn(3), Some(0x777));
        assert_eq!(p2m.ballooned().count(), 0);
    }

    #[test]
    fn identity_translates_to_itself_and_records_nothing() {
        let p2m = P2m::identity(8192);
        assert!(p2m.is_identity());
        assert_eq!(p2m.len(), 8192);
        assert_eq!(p2m.mfn(0x1234), Some(0x1234));
        assert_eq!(p2m.mfn(8192), None);
        assert_eq!(p2m.confirm(7, 7), Some(7));
        assert!(!p2m.set(7, 9), "nothing to record in");
        assert_eq!(p2m.ballooned().count(), 0);
    }
}
