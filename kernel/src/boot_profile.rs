//! Where the guest's own boot time goes: a TSC stamp at the end of each
//! boot step, printed as one line once the clock's scale is known.
//!
//! The boot line (`boot: app … starts after …`) gives the total from
//! Xen's runstate accounting; this splits the part after our first
//! instruction into steps, so work on boot time starts from a
//! measurement. Stamps are raw TSC values because the first steps run
//! before `shared_info` (and with it Xen's TSC scale) is mapped; they are
//! converted when the line is printed. The steps run on vCPU 0 before
//! anything else does, so the names' lock is never contended.

use crate::duration::Ms;
use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The most steps recorded; later marks are dropped (and counted).
pub const MAX_STEPS: usize = 12;

/// The recorded steps: a name and the TSC at its end.
pub struct BootProfile {
    names: spin::Mutex<[&'static str; MAX_STEPS]>,
    stamps: [AtomicU64; MAX_STEPS],
    len: AtomicUsize,
    dropped: AtomicUsize,
}

impl BootProfile {
    /// An empty profile.
    pub const fn new() -> Self {
        Self {
            names: spin::Mutex::new([""; MAX_STEPS]),
            stamps: [const { AtomicU64::new(0) }; MAX_STEPS],
            len: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    /// Records that step `name` ended at TSC value `tsc`. The first mark
    /// is the start (its name says what that start is).
    pub fn mark(&self, name: &'static str, tsc: u64) {
        let i = self.len.load(Ordering::Relaxed);
        if i >= MAX_STEPS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.names.lock()[i] = name;
        self.stamps[i].store(tsc, Ordering::Relaxed);
        self.len.store(i + 1, Ordering::Release);
    }

    /// The line to print: each step's duration, converting TSC ticks to
    /// nanoseconds with `to_ns`.
    pub fn render<F: Fn(u64) -> u64>(&self, to_ns: F) -> Rendered<'_, F> {
        Rendered {
            profile: self,
            to_ns,
        }
    }
}

impl Default for BootProfile {
    fn default() -> Self {
        Self::new()
    }
}

/// [`BootProfile::render`]'s result, for `{}`.
pub struct Rendered<'a, F> {
    profile: &'a BootProfile,
    to_ns: F,
}

impl<F: Fn(u64) -> u64> fmt::Display for Rendered<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.profile;
        let len = p.len.load(Ordering::Acquire);
        if len < 2 {
            return f.write_str("boot steps: not recorded");
        }
        let stamp = |i: usize| p.stamps[i].load(Ordering::Relaxed);
        let names = *p.names.lock();
        write!(f, "boot steps (ms since {}):", names[0])?;
        for (i, name) in names.iter().enumerate().take(len).skip(1) {
            let sep = if i == 1 { " " } else { ", " };
            // A TSC that went back (it should not on one vCPU) counts 0.
            let step = Ms((self.to_ns)(stamp(i).saturating_sub(stamp(i - 1))));
            write!(f, "{sep}{name} {step}")?;
        }
        let total = Ms((self.to_ns)(stamp(len - 1).saturating_sub(stamp(0))));
        write!(f, "; total {total}")?;
        let dropped = p.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            write!(f, " ({dropped} later steps not recorded)")?;
        }
        Ok(())
    }
}

/// The boot path's profile.
pub static BOOT: BootProfile = BootProfile::new();

#[cfg(test)]
mod tests {
    use super::{BootProfile, MAX_STEPS};
    use alloc::format;

    #[test]
    fn steps_are_differences_and_total_is_first_to_last() {
        let p = BootProfile::new();
        p.mark("entry", 1_000);
        p.mark("mm", 3_000);
        p.mark("core", 3_500);
        // One tick = 1 us.
        let line = format!("{}", p.render(|t| t * 1_000));
        assert_eq!(
            line,
            "boot steps (ms since entry): mm 2.000, core 0.500; total 2.500"
        );
    }

    #[test]
    fn too_few_or_too_many_marks_say_so() {
        let p = BootProfile::new();
        assert_eq!(format!("{}", p.render(|t| t)), "boot steps: not recorded");
        for i in 0..MAX_STEPS as u64 + 2 {
            p.mark("s", i);
        }
        assert!(format!("{}", p.render(|t| t)).ends_with("(2 later steps not recorded)"));
    }

    #[test]
    fn a_tsc_going_back_counts_zero_not_centuries() {
        let p = BootProfile::new();
        p.mark("entry", 5_000);
        p.mark("mm", 4_000);
        assert_eq!(
            format!("{}", p.render(|t| t)),
            "boot steps (ms since entry): mm 0.000; total 0.000"
        );
    }
}
