//! `conformance`: the in-guest ABI conformance suite.
//!
//! Runs every group of `kernel::suite`, then the driver groups of
//! `drivers-pv` (`xenstore`), and prints one line per test and the
//! XTF-style `Test result:` line; the app fails unless the verdict is
//! SUCCESS. `only=GROUP` runs one group.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use libos::drivers_pv;
    use libos::kernel::suite::{self, Ctx, Test, GROUPS};
    use libos::{fail, print, AppResult, Env};

    /// The groups that live above the kernel, run after its own.
    const DRIVER_GROUPS: &[&[Test]] = &[drivers_pv::xenstore::suite::TESTS];

    fn main(env: &Env<'_>) -> AppResult {
        let only = env.arg("only");
        let groups: alloc::vec::Vec<_> = GROUPS
            .iter()
            .chain(DRIVER_GROUPS)
            .copied()
            .filter(|group| only.is_none_or(|name| group.first().is_some_and(|t| t.group == name)))
            .collect();
        let summary = suite::run(&Ctx { boot: env.boot() }, &groups, |args| print!("{args}"));
        match summary.verdict() {
            "SUCCESS" => Ok(()),
            verdict => fail!("conformance verdict {verdict}"),
        }
    }

    extern crate alloc;
    libos::entry!(main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("conformance is a Xen guest: run it with `cargo xtask conformance`");
}
