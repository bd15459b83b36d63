//! `fail`: an application that returns an error, to check the failure path.
//!
//! The kernel prints the failure line and shuts the domain down as crashed.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use libos::{fail, AppResult, Env};

    fn main(env: &Env<'_>) -> AppResult {
        fail!("failing on purpose (cmdline \"{}\")", env.cmdline());
    }

    libos::entry!(main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("fail is a Xen guest: build it with `cargo xtask build --app fail`");
}
