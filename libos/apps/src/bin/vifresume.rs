//! `vifresume`: a TCP echo server (port 7) that survives `xl save` +
//! `xl restore`: its vif is connected anew in the new domain under the
//! same interface and sockets (libos's vif keeper), so a connection
//! opened before the save goes on after the restore.
//!
//! The lifecycle's control task (started by `entry!`) takes
//! `control/shutdown`: it suspends on `suspend` and raises the stop
//! signal on the others, which ends the app. Each connection is echoed until the peer closes it; a
//! connection whose first bytes are `quit` ends the app. After each
//! resume it prints `vifresume: resumed after N ms (epoch E)`; each
//! connection's line says what went through it. The rig's hot-plug
//! test reads those lines (`xtask/src/e2e_hotplug.rs`).
#![cfg_attr(target_os = "none", no_std, no_main)]

libos::app! {
    extern crate alloc;

    use core::time::Duration;
    use libos::kernel::{sched, suspend};
    use libos::lifecycle;
    use libos::net::{
        echo_until_closed, with_timeout, IpEndpoint, Net, NetError, TcpListener, TcpStream,
    };
    use libos::task::{self, select, Either, Signal};
    use libos::{println, AppError, AppResult, Env};

    /// The echo port.
    const PORT: u16 = 7;

    /// Set when the app should end (a `quit` connection, a shutdown).
    static QUIT: Signal = Signal::new();

    /// Reports each resume (the lifecycle's control task runs the
    /// suspend when xl asks) and ends the app on a shutdown request.
    async fn follow_lifecycle() {
        loop {
            match select(lifecycle::stop_requested(), suspend::resumed()).await {
                Either::Left(()) => {
                    println!("vifresume: stop requested: ending");
                    QUIT.set();
                    return;
                }
                Either::Right(epoch) => {
                    let away = suspend::last_outcome().map_or(0, |o| o.suspended_for.as_millis());
                    println!("vifresume: resumed after {away} ms (epoch {epoch})");
                }
            }
        }
    }

    /// Echoes one connection until the peer closes it.
    async fn serve(mut stream: TcpStream, peer: IpEndpoint, number: u64) {
        let echoed = echo_until_closed(&mut stream, 4096, Duration::from_secs(5)).await;
        if echoed.quit {
            QUIT.set();
        }
        println!(
            "vifresume: connection {number} from {peer}: {} bytes echoed (epoch {}){}",
            echoed.bytes_in,
            suspend::epoch(),
            match echoed.failure {
                Some(e) => alloc::format!(", failed: {e}"),
                None => alloc::string::String::new(),
            }
        );
    }

    async fn main(env: &Env<'_>) -> AppResult {
        let fail = |e: NetError| AppError::new(format_args!("vifresume: {e}"));
        let net = Net::connect(env).await.map_err(fail)?;
        sched::spawn(follow_lifecycle());
        let listener = TcpListener::bind(&net, PORT).map_err(fail)?;
        println!(
            "vifresume: up: mac {}, ip {}, listening on {PORT} (epoch {})",
            net.mac(),
            net.config().address,
            suspend::epoch()
        );
        let mut served = 0u64;
        loop {
            let accept = with_timeout(Some(Duration::from_secs(240)), listener.accept());
            match select(QUIT.wait(), accept).await {
                Either::Left(()) => break,
                Either::Right(Ok((stream, peer))) => {
                    served += 1;
                    task::spawn(serve(stream, peer, served));
                }
                Either::Right(Err(e)) => return Err(fail(e)),
            }
        }
        // Let the last connections finish their echo.
        sched::sleep(Duration::from_secs(1)).await;
        println!("vifresume: {}", net.stats());
        println!("vifresume: served {served} connections, link up {}", net.is_link_up());
        Ok(())
    }

    libos::entry!(async main);
}
