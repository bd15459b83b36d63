//! `httpd`: a small HTTP/1.0 server on port 80 over netfront.
//!
//! Takes its address from the command line (`ip=10.0.0.2/24 gw=…`) and
//! serves any number of clients at once: the accept loop spawns a task
//! per connection, one request per connection (`Connection: close`):
//!
//! - `GET /` (or `HEAD /`): an HTML page (marker `Paravane httpd`) with
//!   Xen's system time, the app's uptime, the wall clock, counters
//!   (requests served, bytes in and out, connections open, the netfront
//!   device's counters) and the background task's ticks;
//! - `GET /quit`: a short reply, then the app stops accepting, lets the
//!   connections in progress finish, and the domain powers off (a
//!   shutdown request from the toolstack, `xl shutdown` or `xl reboot`,
//!   does the same, giving open connections only 200 ms);
//! - any other path: `404 Not Found`; another method: `405 Method Not
//!   Allowed`; a request line that does not parse, or headers that do
//!   not end within 8 KiB: `400 Bad Request`.
//!
//! While at least one connection is open, a background task counts a
//! tick every 100 ms (`tick_ms=` on the command line; `tick_ms=0`: no
//! ticker); the page shows `ticks: N (every 100 ms while serving)`, so
//! clients under load see that no connection's wait holds the vCPU. With
//! no connection open the ticker waits for the next one instead of
//! waking the vCPU ten times a second (which Xen accounts as 1–2 % of an
//! idle guest's time under the emulated rig): idle costs nothing. A
//! client that connects
//! and then sends nothing (or stops reading) is given 5
//! seconds per read or write, then reset (its line says `timed out,
//! reset`); it holds only its own task.
//!
//! After each connection it prints
//! `httpd: request N from PEER: STATUS PATH, IN bytes in, OUT bytes out, S s`
//! (N counts requests as they complete) and at the end the device's
//! counters and
//! `httpd: served N requests (… 404s, … bad) on C connections, IN bytes in, OUT bytes out, T ticks, powering off`,
//! which the rig's e2e test reads. It gives up (and fails) when no
//! connection comes within 2 minutes (`accept_timeout_s=` on the command
//! line; `accept_timeout_s=0`: wait for ever, as `cargo xtask run --serve`
//! asks, where a person may leave the page alone for a while).
//!
//! `vcpus=N` (the domain given N vCPUs) brings the other vCPUs up first:
//! netfront's queues are then served each on its own vCPU and the
//! connection tasks run on whichever vCPU is free.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// Parsing requests and formatting dates: pure logic, tested on the host.
#[cfg(any(test, target_os = "none"))]
mod http {
    // On the host only the tests use this.
    #![cfg_attr(not(target_os = "none"), allow(dead_code))]

    /// The most bytes of request head (request line and headers) read.
    pub const MAX_HEAD: usize = 8 * 1024;

    /// A request's method.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Method {
        /// `GET`.
        Get,
        /// `HEAD`: like `GET`, without the body.
        Head,
        /// Any other well-formed method token.
        Other,
    }

    /// A parsed request line.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Request<'a> {
        /// The method.
        pub method: Method,
        /// The path, without any `?query` or `#fragment`.
        pub path: &'a str,
    }

    /// Why a request was refused before routing.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum BadRequest {
        /// The request line is malformed (400).
        Malformed,
        /// The head did not end within [`MAX_HEAD`] bytes (400).
        TooLong,
        /// Not HTTP/1.x (505).
        Version,
    }

    /// Where the head (request line and headers) ends in `buf`: just after
    /// the blank line (`\r\n\r\n` or a bare `\n\n`), if it has arrived.
    pub fn head_end(buf: &[u8]) -> Option<usize> {
        let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
        let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
        match (crlf, lf) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn is_token_char(c: u8) -> bool {
        c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
    }

    /// Parses the request line at the start of `head` (any bytes: never
    /// panics). Accepts `METHOD SP TARGET SP HTTP/1.x`; the target must be
    /// an absolute path of visible ASCII.
    pub fn parse_request(head: &[u8]) -> Result<Request<'_>, BadRequest> {
        let line_end = head
            .iter()
            .position(|&c| c == b'\n')
            .ok_or(BadRequest::Malformed)?;
        let line = &head[..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = core::str::from_utf8(line).map_err(|_| BadRequest::Malformed)?;
        let mut parts = line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BadRequest::Malformed);
        };
        if method.is_empty() || !method.bytes().all(is_token_char) {
            return Err(BadRequest::Malformed);
        }
        if !target.starts_with('/') || !target.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(BadRequest::Malformed);
        }
        let Some(minor) = version.strip_prefix("HTTP/") else {
            return Err(BadRequest::Malformed);
        };
        match minor.as_bytes() {
            [b'1', b'.', d] if d.is_ascii_digit() => {}
            [a, b'.', d] if a.is_ascii_digit() && d.is_ascii_digit() => {
                return Err(BadRequest::Version)
            }
            _ => return Err(BadRequest::Malformed),
        }
        let method = match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            _ => Method::Other,
        };
        let path = target.split(['?', '#']).next().unwrap_or(target);
        Ok(Request { method, path })
    }

    /// The reason phrase of the status codes we send.
    pub fn reason(status: u16) -> &'static str {
        match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            505 => "HTTP Version Not Supported",
            _ => "Unknown",
        }
    }

    /// `(year, month, day, hour, minute, second)` in UTC for seconds since
    /// the Unix epoch (Howard Hinnant's civil-from-days).
    pub fn civil(epoch_s: u64) -> (u64, u32, u32, u32, u32, u32) {
        let days = epoch_s / 86_400;
        let rem = epoch_s % 86_400;
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + u64::from(month <= 2);
        (
            year,
            month,
            day,
            (rem / 3600) as u32,
            (rem % 3600 / 60) as u32,
            (rem % 60) as u32,
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn request_lines_parse() {
            let req = parse_request(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            assert_eq!(
                req,
                Request {
                    method: Method::Get,
                    path: "/"
                }
            );
            let req = parse_request(b"HEAD /quit?now=1 HTTP/1.1\n\n").unwrap();
            assert_eq!(req.method, Method::Head);
            assert_eq!(req.path, "/quit");
            let req = parse_request(b"POST /x HTTP/1.1\r\n\r\n").unwrap();
            assert_eq!(req.method, Method::Other);
            assert_eq!(
                parse_request(b"GET / HTTP/2.0\r\n\r\n"),
                Err(BadRequest::Version)
            );
        }

        #[test]
        fn bad_request_lines_are_refused() {
            for bad in [
                &b""[..],
                b"\r\n\r\n",
                b"GET\r\n\r\n",
                b"GET /\r\n\r\n",
                b"GET  / HTTP/1.0\r\n\r\n",
                b"GET / HTTP/1.0 x\r\n\r\n",
                b"GET x HTTP/1.0\r\n\r\n",
                b"GET / FTP/1.0\r\n\r\n",
                b"GET / HTTP/1\r\n\r\n",
                b"G(T / HTTP/1.0\r\n\r\n",
                b"GET /\xff HTTP/1.0\r\n\r\n",
                b"\xff\xfe\xfd\n\n",
                b"GET / HTTP/1.0",
            ] {
                assert!(parse_request(bad).is_err(), "{bad:?}");
            }
        }

        #[test]
        fn heads_end_at_the_blank_line() {
            assert_eq!(head_end(b"GET / HTTP/1.0\r\n\r\nbody"), Some(18));
            assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
            assert_eq!(head_end(b"GET / HTTP/1.0\r\n"), None);
            assert_eq!(head_end(b""), None);
        }

        #[test]
        fn dates_are_civil() {
            assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
            assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
            assert_eq!(civil(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        }
    }
}

libos::app! {
    extern crate alloc;

    use crate::http::{self, BadRequest, Method};
    use alloc::format;
    use alloc::string::String;
    use alloc::sync::Arc;
    use alloc::vec;
    use core::sync::atomic::{AtomicU64, Ordering};
    use core::time::Duration;
    use libos::kernel::duration::Secs;
    use libos::kernel::time;
    use libos::net::{with_timeout, IpEndpoint, Net, NetError, TcpListener, TcpStream};
    use libos::task::{self, select, Either, Notify, Signal};
    use libos::{lifecycle, println, AppError, AppResult, Env};

    /// The HTTP port.
    const PORT: u16 = 80;

    /// How long to wait for each connection before giving up.
    const ACCEPT_TIMEOUT_S: u64 = 120;

    /// How long one read or write on a connection may wait for the client.
    pub const READ_TIMEOUT_S: u64 = 5;

    /// How long closing a connection may wait for the client's FIN.
    const CLOSE_TIMEOUT_S: u64 = 10;
    /// After a shutdown request, how long connections in progress get
    /// to finish before the vif is closed under them.
    const STOP_DRAIN_MS: u64 = 200;

    /// The background task's period unless `tick_ms=` says otherwise.
    const TICK_MS: u64 = 100;

    /// What the server has done so far (shared by the tasks).
    #[derive(Default)]
    struct Counters {
        requests: AtomicU64,
        bytes_in: AtomicU64,
        bytes_out: AtomicU64,
        not_found: AtomicU64,
        bad: AtomicU64,
        /// Connections being served now.
        open: AtomicU64,
        /// The background task's ticks.
        ticks: AtomicU64,
        /// A connection was accepted (the ticker waits on it while idle).
        accepted: Notify,
    }

    /// What every connection task shares.
    struct Server {
        net: Net,
        counters: Counters,
        started_ns: u64,
        /// The ticker's period (0: no ticker).
        tick_ms: u64,
        /// Set by the task that served `GET /quit`.
        quit: Signal,
    }

    fn add(counter: &AtomicU64, n: u64) -> u64 {
        counter.fetch_add(n, Ordering::SeqCst) + n
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    /// The status page's HTML (ASCII, one item per line).
    fn page(server: &Server) -> String {
        let counters = &server.counters;
        let now = time::now_ns();
        let system_s = Secs(now);
        let uptime_s = Secs(now.saturating_sub(server.started_ns));
        let (wall_s, wall_ns) = time::wallclock();
        let (y, mo, d, h, mi, s) = http::civil(wall_s);
        let stats = server.net.stats();
        let requests = get(&counters.requests);
        format!(
            "<!DOCTYPE html>\n\
             <html><head><title>Paravane httpd</title></head><body>\n\
             <h1>Paravane httpd</h1>\n\
             <p>A Xen PV guest in Rust, serving over netfront and smoltcp.</p>\n\
             <ul>\n\
             <li>Xen system time: {system_s} s</li>\n\
             <li>httpd uptime: {uptime_s} s</li>\n\
             <li>wall clock: {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:03} UTC</li>\n\
             <li>requests served: {requests} (this is number {}); 404s: {}; bad requests: {}</li>\n\
             <li>connections open: {}</li>\n\
             <li>ticks: {} (every {} ms while serving)</li>\n\
             <li>HTTP bytes in: {}, out: {}</li>\n\
             <li>netfront rx: {} frames, {} bytes; tx: {} frames, {} bytes</li>\n\
             <li>netfront errors: rx {}, tx {}, bad responses {}, tx dropped {}</li>\n\
             </ul>\n\
             </body></html>\n",
            wall_ns / 1_000_000,
            requests + 1,
            get(&counters.not_found),
            get(&counters.bad),
            get(&counters.open),
            get(&counters.ticks),
            server.tick_ms,
            get(&counters.bytes_in),
            get(&counters.bytes_out),
            stats.rx_frames,
            stats.rx_bytes,
            stats.tx_frames,
            stats.tx_bytes,
            stats.rx_errors,
            stats.tx_errors,
            stats.bad_responses,
            stats.tx_dropped,
        )
    }

    /// A whole response: status line, headers, and (unless `head_only`)
    /// the body.
    fn response(status: u16, content_type: &str, body: &str, head_only: bool) -> String {
        let mut out = format!(
            "HTTP/1.0 {status} {}\r\n\
             Server: Paravane-httpd\r\n\
             Content-Type: {content_type}\r\n\
             Content-Length: {}\r\n\
             Connection: close\r\n",
            http::reason(status),
            body.len()
        );
        if status == 405 {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        if !head_only {
            out.push_str(body);
        }
        out
    }

    /// Reads the request head (up to [`http::MAX_HEAD`] bytes). `Ok(None)`
    /// if the peer closed without sending anything.
    async fn read_head(
        stream: &mut TcpStream,
        buf: &mut [u8],
        bytes_in: &mut u64,
    ) -> Result<Option<Result<usize, BadRequest>>, NetError> {
        let mut filled = 0;
        loop {
            if let Some(end) = http::head_end(&buf[..filled]) {
                return Ok(Some(Ok(end)));
            }
            if filled == buf.len() {
                return Ok(Some(Err(BadRequest::TooLong)));
            }
            let n = stream.read(&mut buf[filled..]).await?;
            *bytes_in += n as u64;
            if n == 0 {
                return Ok(if filled == 0 {
                    None
                } else {
                    Some(Err(BadRequest::Malformed))
                });
            }
            filled += n;
        }
    }

    /// What to answer: status, path (for the log), the response, and
    /// whether it asks the server to stop.
    fn route(server: &Server, head: Result<&[u8], BadRequest>) -> (u16, String, String, bool) {
        let counters = &server.counters;
        match head.and_then(http::parse_request) {
            Err(why) => {
                add(&counters.bad, 1);
                let status = if why == BadRequest::Version { 505 } else { 400 };
                let body = format!("{status} {}\n", http::reason(status));
                (status, "-".into(), response(status, "text/plain", &body, false), false)
            }
            Ok(req) if req.method == Method::Other => {
                let body = "405 Method Not Allowed\n";
                (405, req.path.into(), response(405, "text/plain", body, false), false)
            }
            Ok(req) => {
                let head_only = req.method == Method::Head;
                match req.path {
                    "/" | "/index.html" => {
                        let body = page(server);
                        (200, req.path.into(), response(200, "text/html", &body, head_only), false)
                    }
                    "/quit" => {
                        let body = "Paravane httpd: powering off\n";
                        (200, req.path.into(), response(200, "text/plain", body, head_only), true)
                    }
                    _ => {
                        add(&counters.not_found, 1);
                        let body = "404 Not Found\n";
                        (404, req.path.into(), response(404, "text/plain", body, head_only), false)
                    }
                }
            }
        }
    }

    /// One connection's task: read the request, answer, close.
    async fn serve(server: Arc<Server>, mut stream: TcpStream, peer: IpEndpoint, number: u64) {
        let counters = &server.counters;
        stream.set_timeout(Some(Duration::from_secs(READ_TIMEOUT_S)));
        let start = time::now_ns();
        let mut buf = vec![0u8; http::MAX_HEAD];
        let mut bytes_in = 0u64;
        let head = read_head(&mut stream, &mut buf, &mut bytes_in).await;
        add(&counters.bytes_in, bytes_in);
        let head = match head {
            Ok(Some(head)) => head,
            Ok(None) => {
                println!("httpd: connection {number} from {peer}: closed without a request");
                stream.set_timeout(Some(Duration::from_secs(CLOSE_TIMEOUT_S)));
                let _ = stream.finish().await;
                return;
            }
            Err(e) => {
                // A silent client would not close either: reset it.
                stream.abort();
                println!("httpd: connection {number} from {peer}: reading: {e}, reset");
                return;
            }
        };
        let (status, path, reply, quit) = route(&server, head.map(|end| &buf[..end]));
        let written = stream.write_all(reply.as_bytes()).await;
        let closed = if written == Err(NetError::Timeout) {
            // The client stopped reading: do not wait on it again.
            stream.abort();
            Err(NetError::Timeout)
        } else {
            stream.set_timeout(Some(Duration::from_secs(CLOSE_TIMEOUT_S)));
            stream.finish().await
        };
        let served = add(&counters.requests, 1);
        if written.is_ok() {
            add(&counters.bytes_out, reply.len() as u64);
        }
        let secs = Secs(time::now_ns() - start);
        println!(
            "httpd: request {served} from {peer}: {status} {path}, {bytes_in} bytes in, {} bytes out, {secs} s{}{}",
            if written.is_ok() { reply.len() } else { 0 },
            match &written {
                Ok(()) => String::new(),
                Err(e) => format!(", write failed: {e}"),
            },
            if closed.is_ok() { "" } else { ", close timed out" }
        );
        if quit {
            server.quit.set();
        }
    }

    /// Keeps `counters.open` right however the task ends.
    struct OpenConnection(Arc<Server>);

    impl Drop for OpenConnection {
        fn drop(&mut self) {
            self.0.counters.open.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// `vcpus=N`: brings up the vCPUs the toolstack calls online
    /// (`cpu/*/availability`, libos's `vcpus`) before the network, so
    /// netfront's queues are spread over them (see libos's
    /// `net::queues`) and connection tasks run on any of them; fails
    /// unless exactly N run. From then on `xl vcpu-set` is followed.
    /// Without it, one vCPU, as ever.
    async fn start_vcpus(env: &Env<'_>) -> AppResult {
        let Some(text) = env.arg("vcpus") else {
            return Ok(());
        };
        let want = text
            .parse::<u32>()
            .map_err(|_| AppError::new(format_args!("httpd: bad vcpus={text}")))?;
        let total = libos::vcpus::start().await?;
        if total != want {
            return Err(AppError::new(format_args!(
                "httpd: {total} vCPUs running, expected {want}"
            )));
        }
        println!("httpd: {total} vCPUs serving");
        Ok(())
    }

    async fn main(env: &Env<'_>) -> AppResult {
        let started_ns = time::now_ns();
        let fail = |e: NetError| AppError::new(format_args!("httpd: {e}"));
        start_vcpus(env).await?;
        let net = Net::connect(env).await.map_err(fail)?;
        println!(
            "httpd: up: mac {}, ip {}, listening on {PORT}",
            net.mac(),
            net.config().address
        );
        // The guest's own time to serving, by Xen's accounting (the
        // bench reads it).
        if let Ok(life) = time::vcpu_life() {
            println!("httpd: ready after {life}");
        }
        let tick_ms = match env.arg("tick_ms") {
            Some(text) => text
                .parse::<u64>()
                .map_err(|_| AppError::new(format_args!("httpd: bad tick_ms={text}")))?,
            None => TICK_MS,
        };
        let server = Arc::new(Server {
            net: net.clone(),
            counters: Counters::default(),
            started_ns,
            tick_ms,
            quit: Signal::new(),
        });
        if tick_ms > 0 {
            let server = server.clone();
            task::spawn(async move {
                loop {
                    // Checked before waiting: an accept in between leaves
                    // its permit in `accepted`, so none is missed.
                    if get(&server.counters.open) == 0 {
                        server.counters.accepted.notified().await;
                        continue;
                    }
                    task::sleep(Duration::from_millis(server.tick_ms)).await;
                    add(&server.counters.ticks, 1);
                }
            });
        }
        let accept_limit = match env.arg("accept_timeout_s") {
            Some(text) => text.parse::<u64>().map_err(|_| {
                AppError::new(format_args!("httpd: bad accept_timeout_s={text}"))
            })?,
            None => ACCEPT_TIMEOUT_S,
        };
        let accept_limit = (accept_limit > 0).then(|| Duration::from_secs(accept_limit));
        let listener = TcpListener::bind(&net, PORT).map_err(fail)?;
        let mut connections = 0u64;
        loop {
            let accept = with_timeout(accept_limit, listener.accept());
            // `GET /quit`, or the toolstack's shutdown request.
            let stop = select(server.quit.wait(), lifecycle::stop_requested());
            match select(stop, accept).await {
                Either::Left(_) => break,
                Either::Right(Ok((stream, peer))) => {
                    connections += 1;
                    add(&server.counters.open, 1);
                    server.counters.accepted.notify();
                    let guard = OpenConnection(server.clone());
                    let server = server.clone();
                    task::spawn(async move {
                        serve(server, stream, peer, connections).await;
                        drop(guard);
                    });
                }
                Either::Right(Err(e)) => {
                    println!("httpd: {}", net.stats());
        println!("httpd: {}", net.runner_stats());
                    return Err(fail(e));
                }
            }
        }
        drop(listener);
        // Let the connections in progress finish (each is bounded by its
        // timeouts); after a shutdown request only briefly, the
        // toolstack is waiting.
        let grace_ns = if lifecycle::is_stop_requested() {
            println!("httpd: stop requested, closing");
            STOP_DRAIN_MS * 1_000_000
        } else {
            (READ_TIMEOUT_S + CLOSE_TIMEOUT_S) * time::NS_PER_SEC
        };
        let deadline = time::now_ns() + grace_ns;
        while get(&server.counters.open) > 0 && time::now_ns() < deadline {
            task::sleep(Duration::from_millis(10)).await;
        }
        println!("httpd: {}", net.stats());
        println!("httpd: {}", net.runner_stats());
        // After a shutdown request the lifecycle closes the vif, bounded
        // and after the app has returned.
        if !lifecycle::is_stop_requested() {
            if let Err(e) = net.shutdown().await {
                println!("httpd: disconnecting the vif: {e}");
            }
        }
        let counters = &server.counters;
        println!(
            "httpd: served {} requests ({} 404s, {} bad) on {connections} connections, {} bytes in, {} bytes out, {} ticks, powering off",
            get(&counters.requests),
            get(&counters.not_found),
            get(&counters.bad),
            get(&counters.bytes_in),
            get(&counters.bytes_out),
            get(&counters.ticks),
        );
        Ok(())
    }

    libos::entry!(async main);
}
