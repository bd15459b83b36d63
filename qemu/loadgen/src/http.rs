//! The HTTP mode: N requests by C threads, each on its own connection.

use crate::report::{self, ms, percentile};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many failures are described one by one.
const FAILURES_SHOWN: usize = 5;

/// What one request got.
#[derive(Debug)]
struct Answer {
    latency: Duration,
    marked: bool,
    tick: Option<u64>,
}

/// The whole run.
#[derive(Debug, Default)]
pub struct Outcome {
    concurrency: usize,
    requests: usize,
    latencies: Vec<Duration>,
    marked: usize,
    ticks: Vec<u64>,
    failures: Vec<String>,
    failed: usize,
    elapsed: Duration,
}

impl Outcome {
    /// Every request answered 200 with the marker.
    pub fn all_good(&self) -> bool {
        self.failed == 0 && self.marked == self.requests
    }

    /// The summary line, then one line per failure shown.
    pub fn lines(&self) -> Vec<String> {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let seconds = self.elapsed.as_secs_f64();
        let rps = if seconds > 0.0 {
            sorted.len() as f64 / seconds
        } else {
            0.0
        };
        let ticks = match (self.ticks.iter().min(), self.ticks.iter().max()) {
            (Some(low), Some(high)) => format!("{low}..{high}"),
            _ => "none".into(),
        };
        let mut lines = vec![format!(
            "LOADGEN http concurrency={} requests={} ok={} marked={} failed={} seconds={seconds:.3} \
             rps={rps:.2} p50_ms={} p99_ms={} max_ms={} ticks={ticks}",
            self.concurrency,
            self.requests,
            sorted.len(),
            self.marked,
            self.failed,
            ms(percentile(&sorted, 50.0)),
            ms(percentile(&sorted, 99.0)),
            ms(sorted.last().copied()),
        )];
        lines.extend(self.failures.iter().map(|f| format!("LOADGEN error {f}")));
        lines
    }
}

/// One `GET path` on a fresh connection, read to the end.
fn get(addr: SocketAddr, path: &str, marker: &str, timeout: Duration) -> Result<Answer, String> {
    let start = Instant::now();
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("timeouts: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
        addr.ip()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("receive after {} bytes: {e}", answer.len()))?;
    let latency = start.elapsed();
    check(&answer, marker).map(|(marked, tick)| Answer {
        latency,
        marked,
        tick,
    })
}

/// Whether `answer` is a 200 with a body; then whether the body holds
/// `marker`, and its tick counter.
fn check(answer: &[u8], marker: &str) -> Result<(bool, Option<u64>), String> {
    let text = String::from_utf8_lossy(answer);
    let status = text.lines().next().unwrap_or_default();
    let mut words = status.split_whitespace();
    let version = words.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || words.next() != Some("200") {
        return Err(format!("status line {status:?} ({} bytes)", answer.len()));
    }
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .ok_or_else(|| format!("no end of headers in {} bytes", answer.len()))?;
    Ok((body.contains(marker), report::tick(body)))
}

/// Makes `requests` requests for `path` from `concurrency` threads.
pub fn run(
    addr: SocketAddr,
    path: &str,
    concurrency: usize,
    requests: usize,
    marker: &str,
    timeout: Duration,
) -> Outcome {
    let next = AtomicUsize::new(0);
    let outcome = Mutex::new(Outcome {
        concurrency,
        requests,
        ..Outcome::default()
    });
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency.min(requests.max(1)) {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                let result = get(addr, path, marker, timeout);
                let mut outcome = outcome.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok(answer) => {
                        outcome.latencies.push(answer.latency);
                        outcome.marked += usize::from(answer.marked);
                        if !answer.marked && outcome.failures.len() < FAILURES_SHOWN {
                            outcome
                                .failures
                                .push(format!("request {n}: no marker {marker:?}"));
                        }
                        outcome.ticks.extend(answer.tick);
                    }
                    Err(why) => {
                        outcome.failed += 1;
                        if outcome.failures.len() < FAILURES_SHOWN {
                            outcome.failures.push(format!("request {n}: {why}"));
                        }
                    }
                }
            });
        }
    });
    let mut outcome = outcome.into_inner().unwrap_or_else(|e| e.into_inner());
    outcome.elapsed = start.elapsed();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn answers_are_checked() {
        let page = b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nMark\nticks: 5\n";
        assert_eq!(check(page, "Mark"), Ok((true, Some(5))));
        assert_eq!(check(page, "Other"), Ok((false, Some(5))));
        assert!(check(b"HTTP/1.0 404 Not Found\r\n\r\n", "Mark").is_err());
        assert!(check(b"", "Mark").is_err());
        assert!(check(b"HTTP/1.0 200 OK\r\nno end", "Mark").is_err());
    }

    /// A threaded server on the host stands in for httpd: every request
    /// is answered, counted, and its tick counter advances.
    #[test]
    fn many_clients_against_a_local_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let ticks = AtomicU64::new(0);
        let served = 40;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for stream in listener.incoming().take(served) {
                    let mut stream = stream.unwrap();
                    let mut buf = [0u8; 512];
                    let _ = stream.read(&mut buf);
                    let tick = ticks.fetch_add(1, Ordering::Relaxed);
                    let body = format!("<h1>Paravane httpd</h1>\n<li>ticks: {tick}</li>\n");
                    let _ = write!(stream, "HTTP/1.0 200 OK\r\n\r\n{body}");
                }
            });
            let outcome = run(
                addr,
                "/",
                8,
                served,
                "Paravane httpd",
                Duration::from_secs(10),
            );
            assert!(outcome.all_good(), "{:?}", outcome.lines());
            let line = &outcome.lines()[0];
            assert!(line.contains("ok=40 marked=40 failed=0"), "{line}");
            assert!(line.contains(&format!("ticks=0..{}", served - 1)), "{line}");
        });
    }

    #[test]
    fn refused_connections_are_failures() {
        // Bind and drop: nobody listens there any more.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let outcome = run(addr, "/", 2, 3, "x", Duration::from_secs(2));
        assert!(!outcome.all_good());
        let lines = outcome.lines();
        assert!(lines[0].contains("ok=0 marked=0 failed=3"), "{lines:?}");
        assert!(lines[1].starts_with("LOADGEN error request "), "{lines:?}");
    }
}
