//! `loadgen`: the rig's load generator, run inside its Linux dom0.
//!
//! It is built by `cargo xtask` for `x86_64-unknown-linux-gnu` with a
//! static C library (`-C target-feature=+crt-static`) and travels in the
//! per-run archive, so dom0's busybox userland needs nothing more. Two
//! modes, each printing one summary line that starts `LOADGEN ` (see
//! [`report`]):
//!
//! - `loadgen http ADDR:PORT PATH --concurrency C --requests N --marker
//!   TEXT`: C threads make N HTTP/1.0 `GET`s in all, one connection each,
//!   checking the status (200) and that the body holds TEXT; it prints
//!   the requests per second and latency percentiles from each request's
//!   own timing (connect to the end of the answer), and the lowest and
//!   highest "tick" counter seen on the pages (see [`report::tick`]).
//! - `loadgen echo ADDR:PORT --concurrency C --bytes B`: C connections at
//!   once each send B bytes of their own pseudo-random stream and read
//!   them back, compared byte for byte here.
//! - `loadgen gntmap DOMID REF RELEASE_PATH [--timeout SECS]`: maps a
//!   page that domain granted, through `/dev/xen/gntdev`, and holds it
//!   until `RELEASE_PATH` exists (see [`gntmap`]).
//! - `xen-hvmctx DOMID | loadgen postmortem DOMID`: reads a
//!   triple-faulted domain's descriptor tables, gates, handlers and
//!   stacks through its own page tables and says whether the interrupt
//!   delivery had what it needs (see [`postmortem`]).
//!
//! Why not `ab` or `wrk` from Debian: `ab` counts a page whose length
//! changes between answers (httpd's counters do) as a failure and cannot
//! check content; both need their shared libraries (APR, OpenSSL, LuaJIT)
//! copied into dom0. This tool checks every answer, bounds every wait
//! with a timeout (a stuck connection is a counted failure, not a hung
//! test), and has no dependency beyond `std`.

mod echo;
mod gntmap;
mod http;
mod postmortem;
mod report;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// The usage text.
const USAGE: &str = "\
usage: loadgen http ADDR:PORT PATH [--concurrency C] [--requests N] [--marker TEXT] [--timeout SECS]
       loadgen echo ADDR:PORT [--concurrency C] [--bytes B] [--timeout SECS]
       loadgen gntmap DOMID REF RELEASE_PATH [--timeout SECS]
       xen-hvmctx DOMID | loadgen postmortem DOMID
";

/// The options both modes share, plus their own.
#[derive(Debug, PartialEq)]
struct Options {
    concurrency: usize,
    requests: usize,
    bytes: usize,
    marker: String,
    timeout: Duration,
}

/// Reads `--name value` pairs.
fn options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        concurrency: 1,
        requests: 100,
        bytes: 1 << 20,
        marker: String::new(),
        timeout: Duration::from_secs(30),
    };
    let mut words = args.iter();
    while let Some(name) = words.next() {
        let value = words
            .next()
            .ok_or_else(|| format!("{name} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{name} takes a number, not {value:?}"))
        };
        match name.as_str() {
            "--concurrency" => options.concurrency = number()?.max(1),
            "--requests" => options.requests = number()?,
            "--bytes" => options.bytes = number()?,
            "--marker" => options.marker = value.clone(),
            "--timeout" => options.timeout = Duration::from_secs(number()?.max(1) as u64),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

fn address(word: Option<&String>) -> Result<SocketAddr, String> {
    let word = word.ok_or("missing ADDR:PORT")?;
    word.parse()
        .map_err(|_| format!("{word:?} is not an address like 10.0.0.2:80"))
}

fn run(args: &[String]) -> Result<bool, String> {
    match args.first().map(String::as_str) {
        Some("http") => {
            let addr = address(args.get(1))?;
            let path = args.get(2).ok_or("missing PATH")?;
            let options = options(&args[3.min(args.len())..])?;
            let outcome = http::run(
                addr,
                path,
                options.concurrency,
                options.requests,
                &options.marker,
                options.timeout,
            );
            for line in outcome.lines() {
                println!("{line}");
            }
            Ok(outcome.all_good())
        }
        Some("echo") => {
            let addr = address(args.get(1))?;
            let options = options(&args[2.min(args.len())..])?;
            let outcome = echo::run(addr, options.concurrency, options.bytes, options.timeout);
            for line in outcome.lines() {
                println!("{line}");
            }
            Ok(outcome.all_good())
        }
        Some("gntmap") => {
            let number = |at: usize, what: &str| {
                let word = args.get(at).ok_or_else(|| format!("missing {what}"))?;
                word.parse::<u32>()
                    .map_err(|_| format!("{what} is a number, not {word:?}"))
            };
            let domid = number(1, "DOMID")?;
            let gref = number(2, "REF")?;
            let release = args.get(3).ok_or("missing RELEASE_PATH")?;
            let options = options(&args[4.min(args.len())..])?;
            gntmap::run(domid, gref, std::path::Path::new(release), options.timeout)?;
            Ok(true)
        }
        Some("postmortem") => {
            let word = args.get(1).ok_or("missing DOMID")?;
            let domid = word
                .parse::<u16>()
                .map_err(|_| format!("DOMID is a number, not {word:?}"))?;
            let mut dump = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut dump)
                .map_err(|e| format!("reading the dump: {e}"))?;
            postmortem::run(domid, &dump)?;
            Ok(true)
        }
        _ => Err(USAGE.trim_end().to_string()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("loadgen: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_and_checked() {
        let words: Vec<String> = [
            "--concurrency",
            "64",
            "--requests",
            "640",
            "--marker",
            "x y",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = options(&words).unwrap();
        assert_eq!(
            (o.concurrency, o.requests, o.marker.as_str()),
            (64, 640, "x y")
        );
        assert!(options(&["--requests".to_string()]).is_err());
        assert!(options(&["--bogus".to_string(), "1".to_string()]).is_err());
        assert!(address(Some(&"10.0.0.2:80".to_string())).is_ok());
        assert!(address(Some(&"10.0.0.2".to_string())).is_err());
    }
}
