//! `echo`: a TCP echo server on port 7 over netfront.
//!
//! Takes its address from the command line (`ip=10.0.0.2/24 gw=…`),
//! answers pings (smoltcp does), and echoes every byte of each TCP
//! connection back until the peer closes its side, serving any number of
//! connections at once (a task per connection, spawned by the accept
//! loop). A connection whose first bytes are `quit` is echoed too; then
//! the app stops accepting, lets the other connections finish, and the
//! domain powers off. After each connection it prints a line the rig's
//! e2e test reads:
//! `echo: connection N from PEER: IN bytes in, OUT bytes out, S s`
//! (N in the order connections were accepted); at the end the device's
//! counters and `echo: served N connections, powering off`. It gives up
//! (and fails) when no connection comes within 2 minutes. A shutdown
//! request from the toolstack (`xl shutdown`, `xl reboot`) ends it the
//! same way, without waiting for open connections.
#![cfg_attr(target_os = "none", no_std, no_main)]

libos::app! {
    extern crate alloc;

    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicU64, Ordering};
    use core::time::Duration;
    use libos::kernel::time;
    use libos::net::{
        echo_until_closed, with_timeout, IpEndpoint, ListenOptions, Net, NetError, TcpListener,
        TcpStream,
    };
    use libos::task::{self, select, Either, Signal};
    use libos::{lifecycle, println, AppError, AppResult, Env};

    /// The echo port (RFC 862).
    const PORT: u16 = 7;

    /// How long to wait for each connection before giving up.
    const ACCEPT_TIMEOUT_S: u64 = 120;

    /// How long closing may wait for the peer's last ACK.
    const CLOSE_TIMEOUT_S: u64 = 10;

    /// What the connection tasks share.
    struct Echo {
        /// Set by the connection that said `quit`.
        quit: Signal,
        /// Connections being served now.
        open: AtomicU64,
    }

    /// One connection: echo until the peer closes.
    async fn serve(echo: Arc<Echo>, mut stream: TcpStream, peer: IpEndpoint, number: u64) {
        let start = time::now_ns();
        let echoed = echo_until_closed(
            &mut stream,
            16 * 1024,
            Duration::from_secs(CLOSE_TIMEOUT_S),
        )
        .await;
        let secs = (time::now_ns() - start) as f64 / 1e9;
        println!(
            "echo: connection {number} from {peer}: {} bytes in, {} bytes out, {secs:.3} s ({:.1} KiB/s each way){}{}",
            echoed.bytes_in,
            echoed.bytes_out,
            echoed.bytes_in as f64 / 1024.0 / secs.max(1e-9),
            match echoed.failure {
                Some(e) => alloc::format!(", failed: {e}"),
                None => alloc::string::String::new(),
            },
            if echoed.closed { "" } else { ", close timed out" }
        );
        echo.open.fetch_sub(1, Ordering::SeqCst);
        if echoed.quit {
            echo.quit.set();
        }
    }

    async fn main(env: &Env<'_>) -> AppResult {
        let fail = |e: NetError| AppError::new(format_args!("echo: {e}"));
        let net = Net::connect(env).await.map_err(fail)?;
        println!(
            "echo: up: mac {}, ip {}, listening on {PORT}",
            net.mac(),
            net.config().address
        );
        // The guest's own time to serving, by Xen's accounting (the
        // bench reads it).
        if let Ok(life) = time::vcpu_life() {
            println!("echo: ready after {life}");
        }
        // Windows as wide as the old one-connection server's.
        let options = ListenOptions {
            backlog: 16,
            rx_buffer: 64 * 1024,
            tx_buffer: 64 * 1024,
        };
        let listener = TcpListener::bind_with(&net, PORT, options).map_err(fail)?;
        let echo = Arc::new(Echo {
            quit: Signal::new(),
            open: AtomicU64::new(0),
        });
        let mut served = 0u64;
        loop {
            let accept = with_timeout(
                Some(Duration::from_secs(ACCEPT_TIMEOUT_S)),
                listener.accept(),
            );
            // The last client's quit, or the toolstack's shutdown request.
            let stop = select(echo.quit.wait(), lifecycle::stop_requested());
            match select(stop, accept).await {
                Either::Left(_) => break,
                Either::Right(Ok((stream, peer))) => {
                    served += 1;
                    echo.open.fetch_add(1, Ordering::SeqCst);
                    task::spawn(serve(echo.clone(), stream, peer, served));
                }
                Either::Right(Err(e)) => {
                    println!("echo: {}", net.stats());
        println!("echo: {}", net.runner_stats());
                    return Err(fail(e));
                }
            }
        }
        drop(listener);
        // Let the other connections finish (the rig's sends end well
        // before a quit; this bounds a client that never closes); after
        // a shutdown request only briefly, the toolstack is waiting.
        let grace_s = if lifecycle::is_stop_requested() {
            println!("echo: stop requested, closing");
            0
        } else {
            30
        };
        let deadline = time::now_ns() + grace_s * time::NS_PER_SEC;
        while echo.open.load(Ordering::SeqCst) > 0 && time::now_ns() < deadline {
            task::sleep(Duration::from_millis(10)).await;
        }
        println!("echo: {}", net.stats());
        println!("echo: {}", net.runner_stats());
        // After a shutdown request the lifecycle closes the vif, bounded
        // and after the app has returned.
        if !lifecycle::is_stop_requested() {
            if let Err(e) = net.shutdown().await {
                println!("echo: disconnecting the vif: {e}");
            }
        }
        println!("echo: served {served} connections, powering off");
        Ok(())
    }

    libos::entry!(async main);
}
