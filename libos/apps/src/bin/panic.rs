//! `panic`: an application that panics, to check the crash path.
//!
//! The rig must report this domain as crashed, with the panic message.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use libos::{println, AppResult, Env};

    fn main(env: &Env<'_>) -> AppResult {
        println!("panic: about to panic on purpose");
        let what = env.arg("what").unwrap_or("deliberate");
        panic!("{what} panic from the panic app");
    }

    libos::entry!(main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("panic is a Xen guest: build it with `cargo xtask build --app panic`");
}
