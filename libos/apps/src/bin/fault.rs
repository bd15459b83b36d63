//! `fault`: touches an unmapped address, to check the exception report.
//!
//! The kernel must print a report (vector, error code, faulting address,
//! registers, backtrace) and Xen must report the domain as crashed.
//! With `triple=1` (PVH) it triple-faults instead, for the rig's
//! post-mortem of such a domain (`kernel::traps::triple_fault`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use libos::{println, AppResult, Env};

    /// Far above anything the kernel maps.
    const UNMAPPED: u64 = 0x0000_6000_dead_b000;

    fn main(env: &Env<'_>) -> AppResult {
        if env.arg("triple") == Some("1") {
            println!("fault: triple-faulting on purpose (an empty IDT, then int3)");
            match libos::kernel::traps::triple_fault() {
                Err(why) => libos::fail!("fault: {why}"),
                Ok(never) => match never {},
            }
        }
        println!("fault: reading {UNMAPPED:#x}");
        // The read goes through the kernel's fault-tolerant probe only in
        // the suite; here we want the real, fatal page fault.
        let value = libos::kernel::traps::read_u64_or_crash(UNMAPPED);
        println!("fault: read {value:#x}, which should not happen");
        Ok(())
    }

    libos::entry!(main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("fault is a Xen guest: build it with `cargo xtask build --app fault`");
}
