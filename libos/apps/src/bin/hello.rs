//! `hello`: the smallest Paravane unikernel.
//!
//! Greets, shows what it was started with, and exits successfully. The
//! rig boots it as dom0 and as a domU to check the kernel's boot path.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use libos::{println, AppResult, Env};

    fn main(env: &Env<'_>) -> AppResult {
        println!("Hello from Paravane as {}!", env.role());
        println!(
            "hello: {} pages ({} MiB), cmdline \"{}\"",
            env.nr_pages(),
            env.nr_pages() / 256,
            env.cmdline()
        );
        if let Some(greeting) = env.arg("greeting") {
            println!("hello: greeting={greeting}");
        }
        libos::log::info!("hello: logging works");
        Ok(())
    }

    // Bare: hello ends by itself within the boot, so it needs no control
    // task (nor the xenstore client and balloon that come with it).
    libos::entry!(bare main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hello is a Xen guest: build it with `cargo xtask build --app hello`");
}
