//! The echo mode: C connections at once, each sending its own stream of
//! B pseudo-random bytes and checking that the same bytes come back.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Byte `i` of connection `stream`'s data: a xorshift stream seeded by
/// the connection's number, so no two connections send the same bytes
/// and a mix-up between them is caught.
pub fn pattern(stream: usize, len: usize) -> Vec<u8> {
    let mut state =
        0x9e37_79b9_7f4a_7c15u64 ^ (stream as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The whole run.
#[derive(Debug, Default)]
pub struct Outcome {
    concurrency: usize,
    bytes: usize,
    /// Per connection: `Ok` if every byte came back intact.
    results: Vec<Result<(), String>>,
    elapsed: Duration,
}

impl Outcome {
    /// Every connection's bytes came back intact.
    pub fn all_good(&self) -> bool {
        self.results.len() == self.concurrency && self.results.iter().all(Result::is_ok)
    }

    /// The summary line, then one line per failed connection.
    pub fn lines(&self) -> Vec<String> {
        let intact = self.results.iter().filter(|r| r.is_ok()).count();
        let mut lines = vec![format!(
            "LOADGEN echo concurrency={} bytes={} intact={intact} failed={} seconds={:.3}",
            self.concurrency,
            self.bytes,
            self.results.len() - intact,
            self.elapsed.as_secs_f64()
        )];
        for (i, result) in self.results.iter().enumerate() {
            if let Err(why) = result {
                lines.push(format!("LOADGEN error connection {i}: {why}"));
            }
        }
        lines
    }
}

/// One connection: a writer thread sends, this thread reads back and
/// compares.
fn one(addr: SocketAddr, index: usize, bytes: usize, timeout: Duration) -> Result<(), String> {
    let data = pattern(index, bytes);
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("timeouts: {e}"))?;
    let mut writer = stream.try_clone().map_err(|e| format!("clone: {e}"))?;
    let mut reader = stream;
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let sent = writer.write_all(&data).map_err(|e| format!("send: {e}"));
            // Our FIN tells the server we are done; the answer is read to
            // B bytes, not to the server's FIN.
            let _ = writer.shutdown(Shutdown::Write);
            sent
        });
        let mut back = vec![0u8; bytes];
        let mut got = 0;
        let received = loop {
            if got == bytes {
                break Ok(());
            }
            match reader.read(&mut back[got..]) {
                Ok(0) => break Err(format!("the server closed after {got} of {bytes} bytes")),
                Ok(n) => got += n,
                Err(e) => break Err(format!("receive after {got} of {bytes} bytes: {e}")),
            }
        };
        // A read error leaves the writer maybe blocked: unblock it.
        if received.is_err() {
            let _ = reader.shutdown(Shutdown::Both);
        }
        let sent = sender
            .join()
            .unwrap_or_else(|_| Err("the sender panicked".into()));
        received?;
        sent?;
        match back.iter().zip(&data).position(|(a, b)| a != b) {
            None => Ok(()),
            Some(at) => Err(format!(
                "byte {at} differs (got {:#04x}, sent {:#04x})",
                back[at], data[at]
            )),
        }
    })
}

/// `concurrency` connections at once, `bytes` each.
pub fn run(addr: SocketAddr, concurrency: usize, bytes: usize, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|i| scope.spawn(move || one(addr, i, bytes, timeout)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    });
    Outcome {
        concurrency,
        bytes,
        results,
        elapsed: start.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn streams_differ_between_connections() {
        assert_eq!(pattern(3, 64), pattern(3, 64));
        assert_ne!(pattern(0, 64), pattern(1, 64));
    }

    /// Echo servers on the host: a faithful one passes; one that flips
    /// the 1001st byte of every connection fails every connection.
    #[test]
    fn echoed_bytes_are_compared() {
        for corrupt in [false, true] {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let outcome = std::thread::scope(|scope| {
                scope.spawn(|| {
                    for stream in listener.incoming().take(4) {
                        let mut stream = stream.unwrap();
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 4096];
                            let mut total = 0usize;
                            loop {
                                let n = match stream.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                if corrupt && total <= 1000 && total + n > 1000 {
                                    buf[1000 - total] ^= 0xff;
                                }
                                total += n;
                                if stream.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                });
                run(addr, 4, 100_000, Duration::from_secs(10))
            });
            let line = &outcome.lines()[0];
            if corrupt {
                assert!(!outcome.all_good(), "{line}");
                assert!(line.contains("intact=0 failed=4"), "{line}");
            } else {
                assert!(outcome.all_good(), "{:?}", outcome.lines());
                assert!(line.contains("intact=4 failed=0"), "{line}");
            }
        }
    }
}
