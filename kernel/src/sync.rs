//! [`UpcallSafe`]: a spin lock for data that task code on several vCPUs
//! shares, with the locking rule checked.
//!
//! # The rule
//!
//! A lock is only ever taken with upcalls masked on the vCPU taking it.
//! Task code always runs so (upcalls are unmasked only inside the block
//! that idles a vCPU), and the upcall itself takes no lock at all (see
//! `events` and `smp`): so a vCPU holding a lock is never interrupted by
//! code that wants it, and another vCPU that wants it only waits for a
//! few instructions of task code. A lock taken with upcalls unmasked
//! would break the first half: an upcall that some later change lets
//! take it would deadlock the vCPU.
//!
//! Debug builds of the guest check the rule on every [`UpcallSafe::lock`]
//! (PV: the calling vCPU's `evtchn_upcall_mask`; PVH: `RFLAGS.IF`, found
//! with `pushfq`). Release builds and host builds compile to a plain
//! [`spin::Mutex`]. The executor's run queues, timers and task table and
//! the event port table are `UpcallSafe`.

use spin::{Mutex, MutexGuard};

/// A spin lock whose `lock` checks (debug guest builds) that upcalls are
/// masked on the vCPU taking it (see the module docs).
pub struct UpcallSafe<T>(Mutex<T>);

impl<T> UpcallSafe<T> {
    /// A new lock around `value`.
    pub const fn new(value: T) -> Self {
        UpcallSafe(Mutex::new(value))
    }

    /// Takes the lock, spinning while another vCPU holds it.
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(all(target_os = "none", debug_assertions))]
        assert!(
            upcalls_masked(),
            "lock taken with upcalls unmasked on vCPU {} (see kernel::sync)",
            crate::smp::current_vcpu()
        );
        self.0.lock()
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.0.try_lock()
    }
}

/// Whether upcalls are masked on the vCPU running this (true before the
/// shared info page is mapped: nothing is delivered then).
#[cfg(target_os = "none")]
pub fn upcalls_masked() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering};
    match crate::platform::mode() {
        crate::BootMode::Pv => {
            if !crate::shared_info::is_mapped() {
                return true;
            }
            let info = crate::shared_info::vcpu_info_of(crate::smp::current_vcpu());
            // SAFETY: `info` is this vCPU's live `vcpu_info`; the mask is
            // a u8 that Xen and we access only atomically.
            let mask = unsafe { AtomicU8::from_ptr(&raw mut (*info).evtchn_upcall_mask) };
            mask.load(Ordering::SeqCst) != 0
        }
        crate::BootMode::Pvh => {
            let rflags: u64;
            // SAFETY: pushes RFLAGS and pops it into a register; the
            // stack is balanced and no other memory is touched.
            unsafe {
                core::arch::asm!("pushfq", "pop {}", out(reg) rflags, options(preserves_flags))
            };
            rflags & (1 << 9) == 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_guards_its_value() {
        let lock = UpcallSafe::new(1);
        *lock.lock() += 1;
        assert!(lock.try_lock().is_some());
        let held = lock.lock();
        assert!(lock.try_lock().is_none());
        assert_eq!(*held, 2);
    }
}
