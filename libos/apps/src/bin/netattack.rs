//! `netattack`: the guest of the rig's netif attacks (`cargo xtask e2e
//! backend`), run against `dom0-backend net`: it connects `vif/0`
//! (netfront prints what it negotiated: `netfront: vif/0 mac … queues N
//! (backend max M) … mtu U …`; a refused connect is reported as
//! `netattack: connect failed: …`, not as the app's failure), closes it,
//! prints the grant accounting (`netattack: grants …`) and powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use libos::drivers_pv::{netfront, xenstore};
    use libos::kernel::{grant, sched};
    use libos::{println, AppResult, Env};

    fn main(env: &Env<'_>) -> AppResult {
        if xenstore::guest::connect(env.boot()).is_err() {
            println!("netattack: no xenstore");
        } else {
            match sched::block_on(netfront::guest::connect(0)) {
                Err(error) => println!("netattack: connect failed: {error}"),
                Ok(vif) => match sched::block_on(vif.disconnect()) {
                    Ok(()) => println!("netattack: disconnected"),
                    Err(error) => println!("netattack: disconnect failed: {error}"),
                },
            }
        }
        println!("netattack: grants {}", grant::stats());
        println!("netattack: done");
        Ok(())
    }

    libos::entry!(main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("netattack is a Xen guest: build it with `cargo xtask build --app netattack`");
}
