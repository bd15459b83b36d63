//! `stackoverflow`: recurses until the boot stack overflows, to check the
//! guard page under it.
//!
//! Without the guard, the overflow would silently overwrite whatever lies
//! below the stack. With it, the overflow must end the domain: in PVH the
//! kernel's crash report names the guard page (the double fault runs on a
//! stack of its own); in PV Xen cannot deliver the fault to a stack that
//! is gone and crashes the domain itself (see `kernel`'s `pv_entry`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::hint::black_box;
    use libos::kernel::arch::x86_64::pv_entry;
    use libos::{fail, println, AppResult, Env};

    /// Recurses `depth` more times, each frame holding 256 bytes the
    /// optimiser cannot drop, and returns something that depends on all
    /// of them (so the calls are not turned into a loop).
    #[inline(never)]
    fn descend(depth: u64) -> u64 {
        let frame = black_box([depth as u8; 256]);
        if depth == 0 {
            return u64::from(frame[0]);
        }
        let below = descend(black_box(depth - 1));
        below.wrapping_add(u64::from(black_box(frame)[255]))
    }

    fn main(_env: &Env<'_>) -> AppResult {
        let guard = pv_entry::boot_stack_guard();
        let stack = pv_entry::boot_stack();
        println!(
            "stackoverflow: boot stack {:#x}-{:#x}, guard page {:#x}-{:#x}; recursing into it",
            stack.start, stack.end, guard.start, guard.end
        );
        // Far deeper than the stack: 64 KiB / 256 bytes is 256 frames.
        let sum = descend(black_box(1 << 20));
        fail!("stackoverflow: came back ({sum}): the guard page did not stop it");
    }

    libos::entry!(main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "stackoverflow is a Xen guest: build it with `cargo xtask build --app stackoverflow`"
    );
}
