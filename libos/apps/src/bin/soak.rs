//! `soak`: a long run of both devices, for `cargo xtask soak`, that dom0
//! checks from outside and that counts what the guest holds.
//!
//! - **Network**: a TCP echo server on port 7 (every connection echoed
//!   until the peer closes it; dom0's `loadgen echo` sends its own
//!   pseudo-random streams and compares every byte that comes back). The
//!   vif keeper (libos) connects the vif again after `xl network-detach`
//!   + `network-attach`, keeping the listener.
//! - **Disk**: the first virtual disk, connected at start and again each
//!   time the toolstack attaches one after a detach. While connected the
//!   disk task waits on the backend's `state` node; when the backend
//!   closes (`xl block-detach`) it closes the device (grants ended, pages
//!   back) and waits for the next `vbd` to appear. Each connection after
//!   the first reads the disk's first MiB back and checks it against what
//!   the last pass wrote: `soak: disk attach N: first MiB as written`.
//! - **Data passes on demand**: a connection to port 9 sending `passes
//!   N\n` makes the disk task write the whole disk N times, each pass
//!   with its own pseudo-random contents ([`pattern`]), flush, read it all
//!   back and compare; the answer is `done N passes, W bytes written, R
//!   bytes read, md5 H\n` (H: the MD5 of the disk after the last pass,
//!   which dom0 compares with `md5sum` of the image) or `error …\n`.
//! - **Accounting**: `xl sysrq DOMAIN m` prints the guest's accounting line
//!   (the lifecycle task does, `libos::accounting`); the soak compares the
//!   line before and after.
//!
//! A connection to port 7 whose first bytes are `quit` ends the app (as does
//! a shutdown request): the disk is closed, the final accounting printed.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// The disk contents of each pass, shared by the guest and the host tests.
#[allow(dead_code)]
mod pattern {
    /// Bytes `offset..offset + out.len()` (8-byte aligned) of pass `pass`:
    /// each 8-byte word is a SplitMix64 output keyed by the pass and the
    /// word's index, so every pass differs from the last everywhere and a
    /// misplaced block shows.
    pub fn fill(pass: u32, offset: u64, out: &mut [u8]) {
        let key = (u64::from(pass) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for (i, word) in out.chunks_mut(8).enumerate() {
            let mut z =
                key.wrapping_add((offset / 8 + i as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9));
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            word.copy_from_slice(&z.to_le_bytes()[..word.len()]);
        }
    }

    /// Parses a data-pass request line: `passes N`.
    pub fn parse_request(line: &[u8]) -> Option<u32> {
        let text = core::str::from_utf8(line).ok()?.trim();
        let count = text.strip_prefix("passes ")?.trim().parse().ok()?;
        (1..=10_000).contains(&count).then_some(count)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn passes_differ_and_offsets_are_consistent() {
            let mut a = [0u8; 64];
            let mut b = [0u8; 64];
            fill(1, 0, &mut a);
            fill(2, 0, &mut b);
            assert!(a.iter().zip(b.iter()).filter(|(x, y)| x == y).count() < 8);
            let mut tail = [0u8; 32];
            fill(1, 32, &mut tail);
            assert_eq!(&a[32..], &tail[..]);
        }

        #[test]
        fn requests_are_bounded() {
            assert_eq!(parse_request(b"passes 32\n"), Some(32));
            assert_eq!(parse_request(b"passes 0\n"), None);
            assert_eq!(parse_request(b"passes 99999999\n"), None);
            assert_eq!(parse_request(b"quit\n"), None);
            assert_eq!(parse_request(&[0xff, 0xfe]), None);
        }
    }
}

libos::app! {
    extern crate alloc;

    use super::pattern;
    use alloc::format;
    use alloc::string::String;
    use alloc::vec;
    use core::time::Duration;
    use libos::drivers_pv::blkfront::device::BlockFront;
    use libos::drivers_pv::blkfront::BlockError;
    use libos::drivers_pv::hotplug::{Change, DeviceKind, Hotplug};
    use libos::drivers_pv::xenstore::guest::xenstore;
    use libos::drivers_pv::xenstore::TxId;
    use libos::kernel::sched;
    use libos::net::{echo_until_closed, IpEndpoint, Net, NetError, TcpListener, TcpStream};
    use libos::task::{self, select, Either, Notify, Signal};
    use libos::{accounting, lifecycle, println, AppError, AppResult, Env};
    use md5::{Digest, Md5};

    /// The echo port.
    const ECHO_PORT: u16 = 7;
    /// The port that takes data-pass requests.
    const PASS_PORT: u16 = 9;
    /// Bytes per disk transfer.
    const CHUNK: usize = 256 * 1024;

    /// Set when the app should end.
    static QUIT: Signal = Signal::new();
    /// A data-pass request is waiting in [`REQUEST`].
    static REQUESTED: Notify = Notify::new();
    /// The answer to the last request is in [`ANSWER`].
    static ANSWERED: Notify = Notify::new();
    static REQUEST: spin::Mutex<Option<u32>> = spin::Mutex::new(None);
    static ANSWER: spin::Mutex<Option<String>> = spin::Mutex::new(None);

    /// Echoes one connection until the peer closes it.
    async fn echo(mut stream: TcpStream, peer: IpEndpoint) {
        let echoed = echo_until_closed(&mut stream, 16 * 1024, Duration::from_secs(5)).await;
        if echoed.quit {
            QUIT.set();
        }
        if let Some(e) = echoed.failure {
            println!(
                "soak: echo connection from {peer} failed after {} bytes: {e}",
                echoed.bytes_in
            );
        }
    }

    /// Takes one `passes N` request, hands it to the disk task and
    /// answers with its outcome.
    async fn pass_request(mut stream: TcpStream) {
        let mut line = [0u8; 64];
        let mut len = 0;
        while len < line.len() && !line[..len].contains(&b'\n') {
            match stream.read(&mut line[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n,
            }
        }
        let answer = match pattern::parse_request(&line[..len]) {
            Some(count) => {
                *REQUEST.lock() = Some(count);
                REQUESTED.notify();
                ANSWERED.notified().await;
                ANSWER.lock().take().unwrap_or_else(|| "error: no answer\n".into())
            }
            None => "error: expected `passes N` (1..=10000)\n".into(),
        };
        let _ = stream.write_all(answer.as_bytes()).await;
        stream.set_timeout(Some(Duration::from_secs(5)));
        let _ = stream.finish().await;
    }

    /// Writes the whole disk `count` times and reads each pass back; the
    /// answer line for dom0.
    async fn data_passes(disk: &mut BlockFront, first: u32, count: u32) -> Result<String, BlockError> {
        let size = disk.info().bytes() / CHUNK as u64 * CHUNK as u64;
        let mut buf = vec![0u8; CHUNK];
        let mut expect = vec![0u8; CHUNK];
        let (mut written, mut read) = (0u64, 0u64);
        let mut digest = String::new();
        for pass in first..first + count {
            let mut md5 = Md5::new();
            for offset in (0..size).step_by(CHUNK) {
                pattern::fill(pass, offset, &mut buf);
                md5.update(&buf);
                disk.write(offset / 512, &buf).await?;
                written += CHUNK as u64;
            }
            disk.flush().await?;
            for offset in (0..size).step_by(CHUNK) {
                disk.read(offset / 512, &mut buf).await?;
                read += CHUNK as u64;
                pattern::fill(pass, offset, &mut expect);
                if buf != expect {
                    return Ok(format!("error: pass {pass}: bytes at {offset} differ from what was written\n"));
                }
            }
            digest = format!("{:x}", md5.finalize());
            println!("soak: disk pass {pass}: {size} bytes written and read back, md5 {digest}");
        }
        Ok(format!(
            "done {count} passes, {written} bytes written, {read} bytes read, md5 {digest}\n"
        ))
    }

    /// Waits until the disk's backend closes it (or the app ends);
    /// serves data-pass requests meanwhile. `true` when the app ends.
    async fn serve_disk(disk: &mut BlockFront, last_pass: &mut u32) -> bool {
        let Ok(xs) = xenstore() else { return true };
        let state_path = format!("{}/state", disk.backend_path());
        let mut watch = match xs.watch(&state_path).await {
            Ok(watch) => watch,
            Err(e) => {
                println!("soak: cannot watch {state_path}: {e}");
                return true;
            }
        };
        loop {
            let state = xs.read_string(TxId::NONE, &state_path).await.ok();
            // XenbusStateClosing (5) or Closed (6), or the node is gone.
            if !matches!(state.as_deref(), Some("1" | "2" | "3" | "4")) {
                println!("soak: disk backend went {}", state.as_deref().unwrap_or("away"));
                let _ = watch.unwatch().await;
                return false;
            }
            let wait = select(watch.next_event(), REQUESTED.notified());
            match select(QUIT.wait(), wait).await {
                Either::Left(()) => {
                    let _ = watch.unwatch().await;
                    return true;
                }
                Either::Right(Either::Left(Err(e))) => {
                    println!("soak: watching {state_path}: {e}");
                    return true;
                }
                Either::Right(Either::Left(Ok(_))) => {}
                Either::Right(Either::Right(())) => {
                    let count = REQUEST.lock().take().unwrap_or(0);
                    let answer = match data_passes(disk, *last_pass + 1, count).await {
                        Ok(answer) => {
                            *last_pass += count;
                            answer
                        }
                        Err(e) => format!("error: {e}\n"),
                    };
                    *ANSWER.lock() = Some(answer);
                    ANSWERED.notify();
                }
            }
        }
    }

    /// Checks that the disk's first MiB holds what pass `pass` wrote.
    async fn check_first_mib(disk: &mut BlockFront, pass: u32) -> Result<bool, BlockError> {
        let mut buf = vec![0u8; CHUNK];
        let mut expect = vec![0u8; CHUNK];
        for offset in (0..(1u64 << 20)).step_by(CHUNK) {
            disk.read(offset / 512, &mut buf).await?;
            pattern::fill(pass, offset, &mut expect);
            if buf != expect {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Connects the disk, serves it until it is detached, waits for the
    /// next one, and so on until the app ends.
    async fn disk_keeper() {
        let hotplug = match xenstore() {
            Ok(xs) => Hotplug::new(xs, &[DeviceKind::Vbd]).await,
            Err(e) => Err(e),
        };
        let mut hotplug = match hotplug {
            Ok(hotplug) => hotplug,
            Err(e) => {
                println!("soak: cannot watch device/vbd: {e}");
                return;
            }
        };
        let (mut attaches, mut last_pass) = (0u32, 0u32);
        let mut next = hotplug.present().next().map(|id| id.index);
        loop {
            let Some(index) = next.take() else {
                // Wait for a disk to appear.
                match select(QUIT.wait(), hotplug.next()).await {
                    Either::Left(()) => return,
                    Either::Right(Ok(Change::Appeared(id))) => next = Some(id.index),
                    Either::Right(Ok(Change::Vanished(_))) => {}
                    Either::Right(Err(e)) => {
                        println!("soak: watching device/vbd: {e}");
                        return;
                    }
                }
                continue;
            };
            let name = format!("{index}");
            let mut disk = match BlockFront::connect(Some(&name)).await {
                Ok(disk) => disk,
                Err(e) => {
                    // A disk attached while we run may still have its
                    // hotplug script running in dom0: try again while it
                    // is listed (each attempt bounded by the handshake's
                    // own deadline).
                    println!("soak: disk vbd/{index}: connecting failed: {e}");
                    sched::sleep(Duration::from_secs(1)).await;
                    let listed = libos::drivers_pv::blkfront::device::devices()
                        .await
                        .is_ok_and(|list| list.contains(&name));
                    if listed && !QUIT.is_set() {
                        next = Some(index);
                    }
                    continue;
                }
            };
            attaches += 1;
            if attaches == 1 {
                println!("soak: disk attach 1: {} bytes, ready", disk.info().bytes());
            } else if last_pass == 0 {
                println!("soak: disk attach {attaches}: ready (no pass written yet)");
            } else {
                match check_first_mib(&mut disk, last_pass).await {
                    Ok(true) => println!("soak: disk attach {attaches}: first MiB as written"),
                    Ok(false) => println!("soak: disk attach {attaches}: first MiB DIFFERS from pass {last_pass}"),
                    Err(e) => println!("soak: disk attach {attaches}: reading failed: {e}"),
                }
            }
            let end = serve_disk(&mut disk, &mut last_pass).await;
            match disk.close().await {
                Ok(()) => println!("soak: disk attach {attaches}: closed"),
                Err(e) => println!("soak: disk attach {attaches}: closing: {e}"),
            }
            if end {
                return;
            }
        }
    }

    async fn main(env: &Env<'_>) -> AppResult {
        let fail = |e: NetError| AppError::new(format_args!("soak: {e}"));
        let net = Net::connect(env).await.map_err(fail)?;
        let echo_listener = TcpListener::bind(&net, ECHO_PORT).map_err(fail)?;
        let pass_listener = TcpListener::bind(&net, PASS_PORT).map_err(fail)?;
        sched::spawn(async {
            lifecycle::stop_requested().await;
            QUIT.set();
        });
        sched::spawn(async move {
            loop {
                match select(QUIT.wait(), pass_listener.accept()).await {
                    Either::Left(()) | Either::Right(Err(_)) => return,
                    Either::Right(Ok((stream, _))) => {
                        task::spawn(pass_request(stream));
                    }
                }
            }
        });
        println!("soak: up: ip {}, echo on {ECHO_PORT}, data passes on {PASS_PORT}", net.config().address);
        sched::spawn(async move {
            loop {
                match select(QUIT.wait(), echo_listener.accept()).await {
                    Either::Left(()) => return,
                    Either::Right(Ok((stream, peer))) => {
                        task::spawn(echo(stream, peer));
                    }
                    Either::Right(Err(e)) => {
                        println!("soak: accepting on {ECHO_PORT}: {e}; ending");
                        QUIT.set();
                        return;
                    }
                }
            }
        });
        // The disk keeper is the app's own future: when it returns (on
        // quit or a shutdown request) the disk is closed.
        disk_keeper().await;
        QUIT.wait().await;
        sched::sleep(Duration::from_secs(1)).await;
        println!("soak: {}", net.stats());
        println!("soak: ending; accounting {}", accounting::snapshot());
        Ok(())
    }

    libos::entry!(async main);
}
