//! `echo`: a TCP echo server on port 7 over netfront.
//!
//! Takes its address from the command line (`ip=10.0.0.2/24 gw=…`),
//! answers pings (smoltcp does), and echoes every byte of each TCP
//! connection back until the peer closes its side. A connection whose
//! first bytes are `quit` is echoed too and then ends the app, so the
//! domain powers off. After each connection it prints a line the rig's
//! e2e test reads:
//! `echo: connection N from PEER: IN bytes in, OUT bytes out, S s`;
//! at the end the device's counters. It gives up (and fails) when no
//! connection comes within 2 minutes.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    extern crate alloc;

    use alloc::vec;
    use libos::kernel::time;
    use libos::net::Net;
    use libos::{println, AppError, AppResult, Env};

    /// The echo port (RFC 862).
    const PORT: u16 = 7;

    /// How long to wait for each connection before giving up.
    const ACCEPT_TIMEOUT_S: u64 = 120;

    fn print_stats(net: &Net) {
        println!("echo: {}", net.stats());
    }

    fn main(env: &Env<'_>) -> AppResult {
        let mut net = Net::connect(env).map_err(|e| AppError::new(format_args!("{e}")))?;
        println!(
            "echo: up: mac {}, ip {}, listening on {PORT}",
            net.mac(),
            net.config().address
        );
        let mut buf = vec![0u8; 16 * 1024];
        let mut served = 0u32;
        loop {
            let fail = |e| AppError::new(format_args!("echo: {e}"));
            let handle = net.tcp_listen(PORT).map_err(fail)?;
            let peer = match net.tcp_accept(handle, Some(ACCEPT_TIMEOUT_S * time::NS_PER_SEC)) {
                Ok(peer) => peer,
                Err(e) => {
                    print_stats(&net);
                    return Err(fail(e));
                }
            };
            served += 1;
            let start = time::now_ns();
            let (mut bytes_in, mut bytes_out, mut quit) = (0u64, 0u64, false);
            loop {
                let n = net.tcp_read(handle, &mut buf).map_err(fail)?;
                if n == 0 {
                    break;
                }
                if bytes_in == 0 && buf[..n].starts_with(b"quit") {
                    quit = true;
                }
                bytes_in += n as u64;
                net.tcp_write_all(handle, &buf[..n]).map_err(fail)?;
                bytes_out += n as u64;
            }
            let closed = net.tcp_close(handle, 10 * time::NS_PER_SEC);
            let secs = (time::now_ns() - start) as f64 / 1e9;
            println!(
                "echo: connection {served} from {peer}: {bytes_in} bytes in, {bytes_out} bytes out, {secs:.3} s ({:.1} KiB/s each way){}",
                bytes_in as f64 / 1024.0 / secs.max(1e-9),
                if closed.is_ok() { "" } else { ", close timed out" }
            );
            if quit {
                break;
            }
        }
        print_stats(&net);
        if let Err(e) = net.shutdown() {
            println!("echo: disconnecting the vif: {e}");
        }
        println!("echo: served {served} connections, powering off");
        Ok(())
    }

    libos::entry!(main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("echo is a Xen guest: build it with `cargo xtask build --app echo`");
}
