//! `netattack`: the guest of the rig's netif attacks (`cargo xtask e2e
//! backend`), run against `dom0-backend net`: it connects `vif/0`
//! (netfront prints what it negotiated: `netfront: vif/0 mac … queues N
//! (backend max M) … mtu U …`; a refused connect is reported as
//! `netattack: connect failed: …`, not as the app's failure), sends one
//! broadcast frame, polls for received frames for two seconds (what a
//! hostile backend answers meanwhile shows in the counters), prints
//! netfront's counters (`netattack: netfront rx … bad_responses N …`),
//! closes the vif, prints the grant accounting (`netattack: grants …`)
//! and powers off. With `book=1` on its command line it runs against
//! the by-the-book backend (`dom0-backend net DOMID by-the-book`)
//! instead: it sends 32 frames of 60 to 1455 bytes that the backend
//! reflects, and checks each comes back byte for byte
//! (`netattack: book: 32 of 32 frames reflected intact …`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    extern crate alloc;
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

    /// The backend's address in its by-the-book mode (`dom0-backend net
    /// DOMID by-the-book` reflects ethertype 0x88b5 frames sent to it).
    const BACKEND_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x4b, 0x0d, 0xfe];
    /// Frames sent through the by-the-book backend and back.
    const BOOK_FRAMES: usize = 32;

    /// Frame `k` of the by-the-book exchange: 60 to 1455 bytes, to the
    /// backend, ethertype 0x88b5, then its number and a pattern.
    fn book_frame(k: usize, from: [u8; 6]) -> alloc::vec::Vec<u8> {
        let len = 60 + k * 45;
        let mut frame = alloc::vec![0u8; len];
        frame[..6].copy_from_slice(&BACKEND_MAC);
        frame[6..12].copy_from_slice(&from);
        frame[12..14].copy_from_slice(&[0x88, 0xb5]);
        frame[14..16].copy_from_slice(&(k as u16).to_be_bytes());
        for (i, byte) in frame.iter_mut().enumerate().skip(16) {
            *byte = (k * 31 + i) as u8;
        }
        frame
    }

    /// By the book: sends [`BOOK_FRAMES`] frames, takes what comes back
    /// for up to 10 s and checks each reflection byte for byte (the
    /// addresses swapped).
    fn exercise_book(device: &mut netfront::guest::GuestNetfront) {
        let mac = device.mac();
        let now = libos::smoltcp::time::Instant::from_millis(0);
        let mut sent = 0;
        let deadline = time::now_ns() + 10_000_000_000;
        let mut intact = [false; BOOK_FRAMES];
        let (mut wrong, mut other) = (0u32, 0u32);
        while time::now_ns() < deadline && intact.iter().any(|ok| !ok) {
            while sent < BOOK_FRAMES {
                let frame = book_frame(sent, mac);
                match device.transmit(now) {
                    Some(token) => {
                        token.consume(frame.len(), |buffer| buffer.copy_from_slice(&frame));
                        sent += 1;
                    }
                    None => break,
                }
            }
            device.reclaim_tx();
            while let Some(got) = device.receive() {
                let k = match got.get(12..16) {
                    Some([0x88, 0xb5, hi, lo]) => usize::from(u16::from_be_bytes([*hi, *lo])),
                    _ => {
                        other += 1;
                        continue;
                    }
                };
                let want = k < BOOK_FRAMES && {
                    let mut want = book_frame(k, mac);
                    want[..6].copy_from_slice(&mac);
                    want[6..12].copy_from_slice(&BACKEND_MAC);
                    got == want
                };
                if want {
                    intact[k] = true;
                } else {
                    wrong += 1;
                }
            }
            sched::block_on(sched::sleep(Duration::from_millis(20)));
        }
        let back = intact.iter().filter(|ok| **ok).count();
        println!(
            "netattack: book: {back} of {BOOK_FRAMES} frames reflected intact ({sent} sent, {wrong} wrong, {other} other)"
        );
        println!("netattack: {}", device.stats());
    }

    fn main(env: &Env<'_>) -> AppResult {
        let book = env.arg("book") == Some("1");
        if xenstore::guest::connect(env.boot()).is_err() {
            println!("netattack: no xenstore");
        } else {
            match sched::block_on(netfront::guest::connect(0)) {
                Err(error) => println!("netattack: connect failed: {error}"),
                Ok(mut vif) if book => {
                    exercise_book(vif.netfront());
                    match sched::block_on(vif.disconnect()) {
                        Ok(()) => println!("netattack: disconnected"),
                        Err(error) => println!("netattack: disconnect failed: {error}"),
                    }
                }
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
