//! `netattack`: the guest of the rig's netif attacks (`cargo xtask e2e
//! backend`), run against `dom0-backend net`: it connects `vif/0`
//! (netfront prints what it negotiated: `netfront: vif/0 mac … queues N
//! (backend max M) … mtu U …`; a refused connect is reported as
//! `netattack: connect failed: …`, not as the app's failure), sends one
//! broadcast frame, polls for received frames for two seconds (what a
//! hostile backend answers meanwhile shows in the counters), prints
//! netfront's counters (`netattack: netfront rx … bad_responses N …`),
//! closes the vif, prints the grant accounting (`netattack: grants …`)
//! and powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::time::Duration;
    use libos::drivers_pv::{netfront, xenstore};
    use libos::kernel::{grant, sched, time};
    use libos::smoltcp::phy::{Device, TxToken};
    use libos::{println, AppResult, Env};

    /// Sends one frame and takes what arrives for two seconds.
    fn exercise(device: &mut netfront::guest::GuestNetfront) {
        let now = libos::smoltcp::time::Instant::from_millis(0);
        match device.transmit(now) {
            Some(token) => token.consume(60, |frame| {
                frame.fill(0);
                frame[..6].fill(0xff);
                frame[6..12].copy_from_slice(&[0x00, 0x16, 0x3e, 0x4b, 0x0d, 0x02]);
                frame[12..14].copy_from_slice(&[0x88, 0xb5]);
            }),
            None => println!("netattack: no tx slot"),
        }
        let end = time::now_ns() + 2_000_000_000;
        let mut frames = 0u32;
        while time::now_ns() < end {
            // What a driver task does when the channel fires: take tx
            // completions and received frames.
            device.reclaim_tx();
            while device.receive().is_some() {
                frames += 1;
            }
            sched::block_on(sched::sleep(Duration::from_millis(50)));
        }
        println!("netattack: {frames} frames received");
        println!("netattack: {}", device.stats());
    }

    fn main(env: &Env<'_>) -> AppResult {
        if xenstore::guest::connect(env.boot()).is_err() {
            println!("netattack: no xenstore");
        } else {
            match sched::block_on(netfront::guest::connect(0)) {
                Err(error) => println!("netattack: connect failed: {error}"),
                Ok(mut vif) => {
                    exercise(vif.netfront());
                    match sched::block_on(vif.disconnect()) {
                        Ok(()) => println!("netattack: disconnected"),
                        Err(error) => println!("netattack: disconnect failed: {error}"),
                    }
                }
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
