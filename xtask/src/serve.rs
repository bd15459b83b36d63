//! `cargo xtask run --serve [--port P]`: the `httpd` guest kept running
//! and served to the host's browser until Ctrl-C.
//!
//! The path of a request: the host's `127.0.0.1:P` is QEMU's user-mode
//! network (`hostfwd`, see [`rig::HostForward`]), which hands the
//! connection to dom0's e1000 at `10.0.2.15:`[`DOM0_HTTP_PORT`]; there
//! busybox `nc -ll -p PORT -e nc GUEST 80` (a persistent listener that
//! runs one `nc` to the guest per connection; Debian's busybox-static
//! has no `tcpsvd`) relays it over the vif to the guest's port 80. No
//! binary beyond what dom0 already has.
//!
//! A second forward, from a free port of the host's loopback to dom0's
//! [`DOM0_CONTROL_PORT`], is how the host asks dom0 to stop: dom0's
//! script waits there for the word `stop`, then runs `xl shutdown -w`
//! (the guest's lifecycle support closes its vif and powers off), and
//! the rig's session ends as every session does: dom0 powers off and
//! QEMU exits. Ctrl-C (SIGINT, or SIGTERM/SIGHUP) sends that word; QEMU
//! sits in a process group of its own, so the terminal's Ctrl-C does
//! not kill it first. A second Ctrl-C kills QEMU at once.
//!
//! The guest's console is shown as it goes: dom0's script follows
//! xenconsoled's log and sends each line at once (`LIVE` lines), and
//! its own news (`NOTE` lines: serving, stop asked, xl's result).

use rig::channel::Event;
use rig::{Ending, GuestSpec, HostForward};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The host port served when `--port` is not given.
pub const DEFAULT_PORT: u16 = 8080;
/// dom0's relay to the guest listens here.
pub const DOM0_HTTP_PORT: u16 = 8080;
/// dom0 waits for the host's `stop` here.
pub const DOM0_CONTROL_PORT: u16 = 9999;
/// The guest's address on its vif.
const GUEST_IP: &str = crate::e2e_httpd::GUEST_IP;
/// The guest's (and its log's) name.
const NAME: &str = "httpd";
/// The NOTE dom0 sends once the relay listens.
const SERVING: &str = "serving";
/// The NOTE dom0 sends when it got the host's `stop`.
const STOPPING: &str = "stop requested";
/// How long a person may keep the guest running: long enough to be
/// "until Ctrl-C".
const FOREVER: Duration = Duration::from_secs(30 * 24 * 3600);

/// The line `run --serve` prints once the page can be loaded.
pub fn open_line(port: u16) -> String {
    format!("open http://localhost:{port}/")
}

/// dom0's side (busybox sh): follow the console, bring up the uplink,
/// wait for the guest, relay the port, wait for `stop`, shut the guest
/// down.
fn dom0_script() -> String {
    format!(
        r#". /etc/rig/lib.sh
G={GUEST_IP}
log=/var/log/xen/console/guest-$NAME.log
# The console as it goes: xenconsoled creates the log when the domain
# appears (the script starts alongside xl create).
i=0
until [ -f "$log" ] || [ $i -ge 300 ]; do
  i=$((i+1))
  sleep 0.1
done
mkfifo /run/serve-console
rig_relay "LIVE $NAME" < /run/serve-console &
tail -n +1 -f "$log" > /run/serve-console &
TAIL=$!
{uplink}[ -n "$UPLINK" ] || rig NOTE $NAME "failed: dom0 has no e1000 interface; the host cannot reach it"
{wait}ping -c 1 -W 2 $G > /dev/null 2>&1 || rig NOTE $NAME "failed: the guest does not answer a ping at $G"
nc -ll -p {DOM0_HTTP_PORT} -e nc $G 80 &
RELAY=$!
# Announce it only once it listens: a client let in before would be
# reset.
i=0
until netstat -ltn 2> /dev/null | grep -q ':{DOM0_HTTP_PORT} ' || [ $i -ge 50 ]; do
  i=$((i+1))
  sleep 0.1
done
rig NOTE $NAME "{SERVING} $UPLINK {dom0_ip}:{DOM0_HTTP_PORT} -> $G:80"
# The host's stop word; anything else connecting here is ignored.
while :; do
  word=$(nc -l -p {DOM0_CONTROL_PORT} < /dev/null 2> /dev/null)
  case "$word" in
  stop*) break ;;
  esac
done
rig NOTE $NAME "{STOPPING}: xl shutdown -w $NAME"
t0=$(cut -d' ' -f1 /proc/uptime)
xl shutdown -w $NAME > /tmp/serve-xl 2>&1
rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
rig NOTE $NAME "xl shutdown -w rc=$rc time $t0 $t1 $(tr '\n' ' ' < /tmp/serve-xl)"
kill $RELAY 2> /dev/null
# The last console lines, then the follower.
sleep 1
kill $TAIL 2> /dev/null
"#,
        uplink = rig::DOM0_USER_NET_SETUP,
        wait = crate::e2e_net::wait_for_ping("SERVE", 120),
        dom0_ip = rig::DOM0_USER_NET_IP,
    )
}

/// The guest: `httpd` at [`GUEST_IP`] that waits for connections for
/// ever, with [`dom0_script`] beside it.
pub fn spec(elf: &Path) -> GuestSpec {
    let mut guest = crate::e2e_httpd::demo_spec(elf);
    guest.cmdline.push_str(" accept_timeout_s=0");
    guest.timeout = FOREVER;
    guest.dom0_script = Some(dom0_script());
    guest
}

/// A port of the host's loopback that nobody listens on now.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// What the Ctrl-C handler and the session share.
#[derive(Default)]
struct Shared {
    /// Ctrl-Cs so far.
    signals: AtomicUsize,
    /// QEMU is about to start or running: a Ctrl-C from now on asks
    /// dom0 to stop (before, it just ends the command).
    session: AtomicBool,
    /// dom0 said it got the stop word.
    acknowledged: AtomicBool,
    /// The session is over: stop asking.
    over: AtomicBool,
}

/// Sends `stop` to dom0's control port until dom0 acknowledges it (its
/// NOTE), or the session is over: the forward accepts at once on the
/// host even while nothing listens in dom0 yet, so one try proves
/// nothing.
fn ask_to_stop(control: u16, shared: &Shared) {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, control));
    while !shared.acknowledged.load(Ordering::SeqCst) && !shared.over.load(Ordering::SeqCst) {
        if let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(2)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.write_all(b"stop\n");
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = stream.read_to_end(&mut Vec::new());
        }
        for _ in 0..20 {
            if shared.acknowledged.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `cargo xtask run --serve --port PORT`.
pub fn run(port: u16) -> Result<ExitCode, String> {
    // Say so now rather than let QEMU fail to set up its forward later.
    drop(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(|e| {
        format!("port {port} on 127.0.0.1 is not free ({e}); pick another with --port")
    })?);
    let control = free_port()?;
    let shared = Arc::new(Shared::default());
    // Ours, before the rig's (which would kill QEMU at once): the first
    // Ctrl-C asks dom0 to shut the guest down, the second kills QEMU.
    let handler_shared = shared.clone();
    ctrlc::set_handler(move || {
        if !handler_shared.session.load(Ordering::SeqCst) {
            eprintln!("serve: interrupted before QEMU started");
            std::process::exit(130);
        }
        if handler_shared.signals.fetch_add(1, Ordering::SeqCst) == 0 {
            eprintln!("serve: stopping: asking dom0 for `xl shutdown -w {NAME}` (Ctrl-C again kills QEMU at once)");
            let shared = handler_shared.clone();
            std::thread::spawn(move || ask_to_stop(control, &shared));
        } else {
            rig::kill_all_qemu();
            eprintln!("serve: interrupted again: QEMU killed");
            std::process::exit(130);
        }
    })
    .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;

    let start = Instant::now();
    let kernel = crate::guest_build::build("httpd", crate::guest_build::Profile::Release)?;
    let mut rig = rig::Rig::prepare().map_err(|e| e.to_string())?;
    rig.host_forwards = vec![
        HostForward {
            host: port,
            dom0: DOM0_HTTP_PORT,
        },
        HostForward {
            host: control,
            dom0: DOM0_CONTROL_PORT,
        },
    ];
    let guest = spec(&kernel);
    let mut shown = 0usize;
    let mut on_live = |event: &Event| match event {
        Event::Live(_, text) => {
            shown += 1;
            println!("{NAME}| {text}");
        }
        Event::Note(_, text) if text.starts_with(SERVING) => {
            println!(
                "serve: dom0 relays {text} ({:.1} s after the start)",
                start.elapsed().as_secs_f64()
            );
            println!("{}", open_line(port));
            println!("serve: Ctrl-C shuts the guest down (xl shutdown -w), then QEMU");
        }
        Event::Note(_, text) => {
            if text.starts_with(STOPPING) {
                shared.acknowledged.store(true, Ordering::SeqCst);
            }
            println!("serve: dom0: {text}");
        }
        _ => {}
    };
    shared.session.store(true, Ordering::SeqCst);
    let result = rig.run_domus_live(std::slice::from_ref(&guest), FOREVER, &mut on_live);
    shared.over.store(true, Ordering::SeqCst);
    let session = result.map_err(|e| e.to_string())?;
    let report = session
        .guests
        .first()
        .ok_or("the rig returned no report for the guest")?;
    // What the live relay had not shown yet (the last lines can come
    // after dom0 stopped following the log).
    for line in report.console.iter().skip(shown) {
        println!("{NAME}| {line}");
    }
    crate::report::print_session_timing(&session);
    println!(
        "serve: {NAME} ended: {} ({}); QEMU exited",
        report.ending,
        report.evidence.trim()
    );
    println!("serve: {NAME} log: {}", report.log.display());
    let asked = shared.signals.load(Ordering::SeqCst) > 0;
    let clean = report.ending == Ending::Poweroff && crate::report::succeeded(report);
    if !asked {
        println!("serve: the guest ended without a Ctrl-C");
    }
    Ok(if clean && asked {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_waits_for_ever_and_the_script_relays_and_stops() {
        let guest = spec(Path::new("/apps/httpd"));
        assert!(guest.cmdline.contains("ip=10.0.0.2/24"));
        assert!(guest.cmdline.ends_with(" accept_timeout_s=0"));
        assert!(guest.timeout >= Duration::from_secs(24 * 3600));
        let script = guest.dom0_script.unwrap();
        assert!(script.contains("nc -ll -p 8080 -e nc $G 80 &"), "{script}");
        assert!(script.contains("nc -l -p 9999"));
        assert!(script.contains("xl shutdown -w $NAME"));
        assert!(script.contains("ip addr add 10.0.2.15/24"));
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &script])
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(open_line(8123), "open http://localhost:8123/");
    }
}
