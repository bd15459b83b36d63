//! The test of `cargo xtask run --serve`: the real command, the page
//! loaded from the host in a real browser, and Ctrl-C.
//!
//! It starts this same xtask binary as `run --serve --port P` (P a free
//! port) in a process of its own, as a person would, and waits for its
//! `open http://localhost:P/` line. Then, from the host:
//!
//! - a plain HTTP/1.0 GET of that URL must return the page (the port
//!   forward works whatever browser there is);
//! - Debian's `chromium`, headless (installed with `apt-get install -y --no-install-recommends
//!   chromium` when missing, through `sudo` when not root), loads the
//!   URL twice with `--dump-dom`: the rendered DOM must have the title
//!   `Paravane httpd`, and the page's `requests served: N` counter must
//!   be higher the second time. If chromium cannot be installed these
//!   checks are reported as SKIP with the reason, never as passed.
//!
//! Then it sends the xtask SIGINT (what Ctrl-C sends) and checks what
//! the command printed: dom0's `xl shutdown -w` returned 0, xl reported
//! the domain shut down with reason code 0 (poweroff), the guest's
//! lifecycle said the toolstack asked for a poweroff and httpd closed,
//! and the command exited 0. Last, no process whose command line holds
//! this run's `hostfwd=tcp:127.0.0.1:P-` (its QEMU, seen running before
//! the SIGINT) is left.

use crate::serve;
use crate::test_cmd::Tally;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The prefix of every result's name (`cargo xtask test serve`).
pub const PREFIX: &str = "rig serve: ";
/// What `rig_tests::selects` needs.
pub const NAMES: &[&str] = &[PREFIX];

/// How long the command may take to print its `open` line (a guest
/// build, the rig's preparation and a dom0 boot under emulation).
const OPEN_LIMIT: Duration = Duration::from_secs(420);
/// How long one headless chromium load may take.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(120);
/// How long the command may take to end after SIGINT.
const STOP_LIMIT: Duration = Duration::from_secs(120);

/// The page's title.
const TITLE: &str = "<title>Paravane httpd</title>";

/// The `N` of `requests served: N (this is number …)` in a page.
pub fn requests_served(page: &str) -> Option<u64> {
    page.lines().find_map(|line| {
        let rest = line.split("requests served: ").nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The title and a counter in a rendered DOM.
fn check_dom(dom: &str) -> Result<u64, String> {
    if !dom.contains(TITLE) {
        return Err(format!(
            "the rendered DOM has no {TITLE}; it begins: {:?}",
            dom.chars().take(300).collect::<String>()
        ));
    }
    requests_served(dom).ok_or_else(|| "the rendered DOM has no `requests served: N`".into())
}

/// `chromium` on the PATH.
fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

/// `chromium`, installed with apt-get if missing (its output shown as
/// progress, the time and installed size printed).
pub fn ensure_chromium() -> Result<PathBuf, String> {
    if let Some(path) = find_chromium() {
        return Ok(path);
    }
    eprintln!("== installing chromium for the serve test (apt-get install -y --no-install-recommends chromium)");
    let started = Instant::now();
    // Only what chromium needs to run headless: its recommends pull in
    // avahi, upower and a hundred more packages.
    rig::apt_install("chromium").map_err(|e| e.to_string())?;
    let size = Command::new("dpkg-query")
        .args(["-W", "-f=${Installed-Size}", "chromium"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        });
    eprintln!(
        "== chromium installed in {:.1} s ({} MB installed, chromium package alone)",
        started.elapsed().as_secs_f64(),
        size.map_or("?".into(), |kb| (kb / 1024).to_string())
    );
    find_chromium().ok_or_else(|| "apt-get installed chromium but it is not on the PATH".into())
}

/// Kills a process group we created (`process_group(0)`), by its id.
fn kill_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` until `limit`, reading its stdout in full.
fn wait_with_limit(mut child: Child, limit: Duration) -> Result<(bool, String), String> {
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => break None,
        }
    };
    let Some(status) = status else {
        kill_group(child.id(), "-KILL");
        let _ = child.wait();
        return Err(format!("still running after {} s: killed", limit.as_secs()));
    };
    Ok((status.success(), reader.join().unwrap_or_default()))
}

/// One headless load of `url`: the rendered DOM.
fn chromium_dom(chromium: &Path, url: &str) -> Result<String, String> {
    let profile = std::env::temp_dir().join(format!("paravane-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let started = Instant::now();
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own group, so a hung browser goes with all its helpers.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?;
    let result = wait_with_limit(child, CHROMIUM_LIMIT);
    let _ = std::fs::remove_dir_all(&profile);
    let (ok, dom) = result?;
    println!(
        "{PREFIX}chromium --headless --dump-dom took {:.1} s, {} bytes of DOM",
        started.elapsed().as_secs_f64(),
        dom.len()
    );
    if !ok && dom.is_empty() {
        return Err("chromium failed and printed no DOM".into());
    }
    Ok(dom)
}

/// A plain HTTP/1.0 GET of `/` from the host.
fn plain_get(port: u16) -> Result<String, String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| format!("reading the reply: {e}"))?;
    if reply.starts_with("HTTP/1.0 200") && reply.contains(TITLE) {
        Ok(reply)
    } else {
        Err(format!(
            "the reply was not the page: {:?}",
            reply.chars().take(200).collect::<String>()
        ))
    }
}

/// The pids of processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|bytes| String::from_utf8_lossy(&bytes).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// The output's line that starts with `prefix`, if any.
fn line_with<'a>(output: &'a [String], prefix: &str) -> Option<&'a str> {
    output
        .iter()
        .find_map(|l| l.contains(prefix).then_some(l.as_str()))
}

/// Runs the test, recording its results in `tally`.
pub fn run(tally: &mut Tally) {
    let started = Instant::now();
    let chromium = ensure_chromium();
    let port = match serve::free_port() {
        Ok(port) => port,
        Err(e) => return tally.record(&format!("{PREFIX}start"), Err(e)),
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return tally.record(&format!("{PREFIX}start"), Err(e.to_string())),
    };
    let port_text = port.to_string();
    let spawned = Command::new(&exe)
        .args(["run", "--serve", "--port", &port_text])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return tally.record(
                &format!("{PREFIX}start"),
                Err(format!("cannot run {}: {e}", exe.display())),
            )
        }
    };
    // Its lines, shown as they come and kept.
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("  serve> {line}");
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut output: Vec<String> = Vec::new();
    let want = serve::open_line(port);
    let deadline = Instant::now() + OPEN_LIMIT;
    let mut opened = None;
    while Instant::now() < deadline {
        match lines_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let found = line == want;
                output.push(line);
                if found {
                    opened = Some(started.elapsed());
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let Some(opened) = opened else {
        let _ = child.kill();
        let _ = child.wait();
        let _ = reader.join();
        return tally.record(
            &format!("{PREFIX}the command prints `open http://localhost:PORT/`"),
            Err(format!(
                "no `{want}` within {} s; it printed: {}",
                OPEN_LIMIT.as_secs(),
                output.join(" | ")
            )),
        );
    };
    println!(
        "{PREFIX}`{want}` after {:.1} s (from the test's start)",
        opened.as_secs_f64()
    );
    let needle = format!("hostfwd=tcp:127.0.0.1:{port}-");
    let qemus = processes_with(&needle);

    tally.record(
        &format!("{PREFIX}the page loads from the host (plain HTTP GET of the forwarded port)"),
        plain_get(port).map(|_| ()),
    );

    let url = format!("http://localhost:{port}/");
    let chromium_names = [
        format!("{PREFIX}headless chromium renders the page (title Paravane httpd)"),
        format!("{PREFIX}a second chromium load shows the request counter advanced"),
    ];
    match &chromium {
        Ok(chromium) => {
            let first = chromium_dom(chromium, &url).and_then(|dom| check_dom(&dom));
            let second = chromium_dom(chromium, &url).and_then(|dom| check_dom(&dom));
            tally.record(
                &chromium_names[0],
                first.as_ref().map(|_| ()).map_err(Clone::clone),
            );
            let advanced = match (first, second) {
                (Ok(a), Ok(b)) if b > a => {
                    println!("{PREFIX}requests served: {a}, then {b}");
                    Ok(())
                }
                (Ok(a), Ok(b)) => Err(format!("requests served: {a}, then {b}")),
                (_, Err(e)) | (Err(e), _) => Err(e),
            };
            tally.record(&chromium_names[1], advanced);
        }
        Err(why) => {
            for name in &chromium_names {
                tally.skip(name, &format!("no chromium: {why}"));
            }
        }
    }

    // Ctrl-C.
    let stop_started = Instant::now();
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + STOP_LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => break None,
        }
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = reader.join();
    output.extend(lines_rx.try_iter());
    let stopped = stop_started.elapsed();
    println!(
        "{PREFIX}SIGINT to the end of the command: {:.1} s; whole test {:.1} s",
        stopped.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let shutdown = (|| {
        if !matches!(sent, Ok(s) if s.success()) {
            return Err(format!("kill -INT failed: {sent:?}"));
        }
        let status = status.ok_or(format!(
            "the command had not ended {} s after SIGINT",
            STOP_LIMIT.as_secs()
        ))?;
        let xl = line_with(&output, "serve: dom0: xl shutdown -w rc=")
            .ok_or("dom0 reported no `xl shutdown -w` result")?;
        if !xl.contains("rc=0 ") {
            return Err(format!("dom0: {xl}"));
        }
        let ended = line_with(&output, "serve: httpd ended: ").ok_or("no `httpd ended:` line")?;
        if !(ended.contains("has shut down, reason code 0")) {
            return Err(format!("xl did not report reason poweroff: {ended}"));
        }
        for line in [
            "Paravane: shutdown requested (poweroff) by the toolstack",
            "httpd: stop requested, closing",
        ] {
            if !output.iter().any(|l| l.ends_with(line)) {
                return Err(format!("the guest did not print `{line}`"));
            }
        }
        if !status.success() {
            return Err(format!("the command exited {status}"));
        }
        Ok(())
    })();
    tally.record(
        &format!("{PREFIX}Ctrl-C (SIGINT) shuts the guest down through xl shutdown -w (reason poweroff), the command exits 0"),
        shutdown,
    );
    let left = processes_with(&needle);
    let no_qemu = if qemus.is_empty() {
        Err(format!(
            "no process with `{needle}` was seen while serving: the check cannot judge"
        ))
    } else if left.is_empty() {
        Ok(())
    } else {
        Err(format!("QEMU still running: pids {left:?}"))
    };
    tally.record(&format!("{PREFIX}no QEMU left after Ctrl-C"), no_qemu);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counter_and_title_from_a_dom() {
        let dom = "<html><head><title>Paravane httpd</title></head><body>\n\
                   <li>requests served: 7 (this is number 8); 404s: 1; bad requests: 0</li>\n";
        assert_eq!(requests_served(dom), Some(7));
        assert_eq!(check_dom(dom), Ok(7));
        assert!(check_dom("<title>Other</title>requests served: 3 (").is_err());
        assert!(check_dom(TITLE).is_err());
    }
}
