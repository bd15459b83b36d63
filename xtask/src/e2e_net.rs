//! The network end-to-end test: dom0 reaches the `echo` guest over its vif.
//!
//! One domU runs `echo` (a TCP echo server on port 7 over netfront and
//! smoltcp) with a static address; its vif goes through the rig's
//! `vif-rig` hotplug script, which gives dom0 `10.0.0.254` on the vif and
//! a host route to the guest. dom0's script waits until the guest answers
//! a ping, pings it 3 times, sends 8 MiB of random bytes through busybox
//! `nc` and checksums what comes back, then sends `quit`, after which the
//! guest powers off. The checks rest on what dom0 and the guest printed:
//! ping replies, equal checksums and sizes, the guest's own byte counters,
//! and a poweroff. The throughput (dom0's wall clock around `nc`) is
//! printed.
//!
//! The test's guests ([`test_spec`]; `cargo xtask bench` keeps the plain
//! [`guest`]) do two more things between the 8 MiB and `quit`: dom0
//! measures the guest's CPU time over 10 s of quiet (Xen's accounting,
//! [`crate::idle`]), then the rig's load generator opens
//! [`CONNECTIONS`] connections at once, each echoing its own
//! [`CONNECTION_BYTES`] bytes, compared byte for byte in dom0. A PV and a
//! PVH guest run side by side in one dom0 session, each on its own
//! address ([`guest_ip`]).

use rig::{Ending, GuestMode, GuestReport, GuestSpec, Rig};
use std::path::Path;
use std::time::Duration;

/// The guest's address (and the vif's `ip=`).
pub const GUEST_IP: &str = "10.0.0.2";
/// The PVH test guest's address: it runs beside the PV one.
pub const PVH_GUEST_IP: &str = "10.0.0.3";
/// Bytes sent through the echo server.
pub const PAYLOAD: u64 = 8 * 1024 * 1024;
/// Connections at once in the concurrency step.
pub const CONNECTIONS: usize = 8;
/// Bytes each of them echoes.
pub const CONNECTION_BYTES: usize = 1 << 20;

/// The test guest's address in `mode`.
pub fn guest_ip(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => GUEST_IP,
        GuestMode::Pvh => PVH_GUEST_IP,
    }
}

/// busybox sh that waits until the guest at `$G` answers a ping, then
/// prints `TAG waited N`. ping fails at once while the vif has no route
/// yet, so the attempts are paced: one a second, at most `tries`.
pub fn wait_for_ping(tag: &str, tries: u32) -> String {
    format!(
        r#"i=0
while [ $i -lt {tries} ]; do
  ping -c 1 -W 1 $G > /dev/null 2>&1 && break
  i=$((i+1))
  sleep 1
done
echo "{tag} waited $i"
"#
    )
}

/// dom0's side of the test against the guest at `ip` (busybox sh), with
/// `more` run after the 8 MiB and before `quit`. Every result line
/// starts `NET `.
fn dom0_script(ip: &str, more: &str) -> String {
    format!(
        r#"G={ip}
{wait}{features}ping -c 3 -W 2 $G
rc=$?
echo "NET ping rc=$rc"
if [ $rc != 0 ]; then
  ip addr; ip route; ip neigh; cat /proc/net/dev
  xenstore-ls -f /local/domain/0/backend/vif
  xenstore-ls -f /local/domain/$(xl domid $NAME)/device/vif
fi
head -c {PAYLOAD} /dev/urandom > /tmp/$NAME-net-in
echo "NET sent $(md5sum < /tmp/$NAME-net-in | cut -d' ' -f1) $(wc -c < /tmp/$NAME-net-in)"
t0=$(cut -d' ' -f1 /proc/uptime)
nc $G 7 < /tmp/$NAME-net-in > /tmp/$NAME-net-out
echo "NET nc rc=$?"
t1=$(cut -d' ' -f1 /proc/uptime)
echo "NET echoed $(md5sum < /tmp/$NAME-net-out | cut -d' ' -f1) $(wc -c < /tmp/$NAME-net-out)"
echo "NET time $t0 $t1"
{more}echo quit | nc $G 7
echo "NET quit rc=$?"
sleep 15
if xl list $NAME > /dev/null 2>&1; then
  echo "NET guest still running after quit: destroying it"
  xl destroy $NAME
fi
"#,
        wait = wait_for_ping("NET", 120),
        features = crate::e2e_netfeatures::dom0_lines()
    )
}

/// The words after `prefix` on the first dom0 line starting with it.
fn dom0_words<'a>(guest: &'a GuestReport, prefix: &str) -> Option<Vec<&'a str>> {
    guest
        .dom0_output
        .iter()
        .find_map(|line| line.strip_prefix(prefix))
        .map(|rest| rest.split_whitespace().collect())
}

/// The number before `word` in `line` (`"3 packets received"`).
fn number_before(line: &str, word: &str) -> Option<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| w.trim_end_matches(',') == word)?;
    words.get(at.checked_sub(1)?)?.parse().ok()
}

/// The number after `word` in `line` (`"rx 12 frames"`).
fn number_after(line: &str, word: &str) -> Option<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == word)?;
    words.get(at + 1)?.trim_end_matches(',').parse().ok()
}

fn check_up(guest: &GuestReport, ip: &str) -> Result<(), String> {
    guest
        .console
        .iter()
        .any(|line| line.starts_with("echo: up:") && line.contains(ip))
        .then_some(())
        .ok_or_else(|| {
            format!(
                "no `echo: up:` line; the guest ended {} ({}); log {}",
                guest.ending,
                guest.evidence,
                guest.log.display()
            )
        })
}

/// dom0's `ping -c 3` to the guest got 3 of 3 replies (also used by
/// the UDP test).
pub fn check_ping(guest: &GuestReport) -> Result<(), String> {
    let line = guest
        .dom0_output
        .iter()
        .find(|line| line.contains("packets transmitted"))
        .ok_or("dom0's ping printed no statistics")?;
    // "3 packets transmitted, 3 packets received, 0% packet loss"
    let count = |what: &str| {
        line.split(',')
            .find(|part| part.trim_end().ends_with(what))
            .and_then(|part| part.split_whitespace().next()?.parse::<u64>().ok())
    };
    match (count("transmitted"), count("received")) {
        (Some(3), Some(3)) => Ok(()),
        _ => Err(format!("ping: {line}")),
    }
}

fn check_echo(guest: &GuestReport) -> Result<(), String> {
    let sent = dom0_words(guest, "NET sent ").ok_or("dom0 never sent")?;
    let echoed = dom0_words(guest, "NET echoed ").ok_or("dom0 got nothing back")?;
    if sent.len() != 2 || sent[1] != PAYLOAD.to_string() {
        return Err(format!("dom0 did not send {PAYLOAD} bytes: {sent:?}"));
    }
    if sent != echoed {
        return Err(format!("sent {sent:?} but echoed {echoed:?}"));
    }
    Ok(())
}

fn check_counters(guest: &GuestReport) -> Result<(), String> {
    let connection = guest
        .console
        .iter()
        .find(|line| line.starts_with("echo: connection 1 "))
        .ok_or("the guest reported no first connection")?;
    let bytes_in = number_before(connection, "bytes");
    let bytes_out = connection
        .split("in,")
        .nth(1)
        .and_then(|rest| number_before(rest, "bytes"));
    if bytes_in != Some(PAYLOAD) || bytes_out != Some(PAYLOAD) {
        return Err(format!("guest counted: {connection}"));
    }
    let device = guest
        .console
        .iter()
        .find(|line| line.starts_with("echo: netfront "))
        .ok_or("the guest printed no netfront counters")?;
    let rx_bytes = device
        .split("rx ")
        .nth(1)
        .and_then(|rest| number_after(rest, "frames"));
    let tx_bytes = device
        .split("tx ")
        .nth(1)
        .and_then(|rest| number_after(rest, "frames"));
    let bad = number_after(device, "bad_responses");
    match (rx_bytes, tx_bytes, bad) {
        (Some(rx), Some(tx), Some(0)) if rx >= PAYLOAD && tx >= PAYLOAD => Ok(()),
        _ => Err(format!("netfront counters: {device}")),
    }
}

/// The guest powered off after `quit`, having said how many connections
/// it served (at least `connections`: the concurrency step's own check
/// says whether those were served well).
fn check_poweroff(guest: &GuestReport, connections: u64) -> Result<(), String> {
    let served = guest.console.iter().find_map(|line| {
        line.strip_prefix("echo: served ")?
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
    });
    match served {
        Some(n) if guest.ending == Ending::Poweroff && n >= connections => Ok(()),
        _ => Err(format!(
            "ended {} ({}), `echo: served N connections` line: {} (want N >= {connections})",
            guest.ending,
            guest.evidence,
            served.map_or("missing".to_string(), |n| format!("N = {n}"))
        )),
    }
}

/// The concurrency step: every connection's bytes came back intact.
fn check_concurrent(guest: &GuestReport) -> Result<(), String> {
    let rc = guest
        .dom0_output
        .iter()
        .find_map(|l| l.strip_prefix("NET load rc="))
        .map(str::trim);
    let pairs = crate::load::summary(guest, "NET", "echo")
        .ok_or_else(|| format!("the load generator printed no summary (rc {rc:?})"))?;
    let intact = crate::load::number(&pairs, "intact").unwrap_or(-1.0) as i64;
    let figures = format!(
        "{intact} of {CONNECTIONS} connections echoed {CONNECTION_BYTES} bytes intact in {} s",
        crate::load::get(&pairs, "seconds").unwrap_or("-")
    );
    println!("e2e net echo ({}): {figures}", guest.name);
    if intact == CONNECTIONS as i64 && rc == Some("0") {
        Ok(())
    } else {
        Err(format!(
            "{figures}; first errors: {:?}",
            crate::load::errors(guest, "NET")
        ))
    }
}

/// dom0's seconds around `nc`, and the throughput each way in MiB/s.
pub fn throughput(guest: &GuestReport) -> Option<(f64, f64)> {
    let time = dom0_words(guest, "NET time ")?;
    let t0: f64 = time.first()?.parse().ok()?;
    let t1: f64 = time.get(1)?.parse().ok()?;
    let seconds = t1 - t0;
    (seconds > 0.0).then(|| (seconds, PAYLOAD as f64 / (1024.0 * 1024.0) / seconds))
}

/// An `echo` guest named `name` at `ip` with MAC `mac`, its vif, and
/// dom0's script with `more` before `quit`.
fn spec(echo_elf: &Path, name: &str, ip: &str, mac: &str, more: &str) -> GuestSpec {
    let mut guest = GuestSpec::new(name, echo_elf);
    guest.cmdline = format!("ip={ip}/24 gw=10.0.0.254");
    guest.memory_mib = 64;
    guest.timeout = Duration::from_secs(300);
    guest.extra_config = vec![format!(
        "vif = ['mac={mac},ip={ip},script=vif-rig,mtu={}']",
        crate::e2e_netfeatures::JUMBO_MTU
    )];
    guest.dom0_script = Some(dom0_script(ip, more));
    guest
}

/// The `echo` guest with its vif and dom0's script, as `cargo xtask
/// bench` runs it: the 8 MiB, then `quit`.
pub fn guest(echo_elf: &Path) -> GuestSpec {
    spec(echo_elf, "net-echo", GUEST_IP, "00:16:3e:00:00:01", "")
}

/// The test's guest in `mode` (`net-echo` or `pvh-net-echo`): the 8
/// MiB, the quiet window, [`CONNECTIONS`] connections at once, `quit`.
pub fn test_spec(echo_elf: &Path, loadgen: &Path, mode: GuestMode) -> GuestSpec {
    let more = format!(
        "{}{}",
        crate::idle::dom0_lines("NET"),
        crate::load::dom0_lines(
            "NET",
            &format!(
                "echo $G:7 --concurrency {CONNECTIONS} --bytes {CONNECTION_BYTES} --timeout 60"
            )
        )
    );
    let (name, mac) = match mode {
        GuestMode::Pv => ("net-echo", "00:16:3e:00:00:01"),
        GuestMode::Pvh => ("pvh-net-echo", "00:16:3e:00:00:13"),
    };
    let mut guest = spec(echo_elf, name, guest_ip(mode), mac, &more).with_mode(mode);
    guest.dom0_tools = vec![loadgen.to_path_buf()];
    // Room for a loaded host (see `e2e_httpd::test_spec`).
    guest.timeout = Duration::from_secs(600);
    guest
}

/// Boots `echo_elf` next to the Linux dom0 once per mode in `modes`,
/// side by side in one session, and runs the checks; one named result
/// per check and mode.
pub fn run(
    rig: &Rig,
    echo_elf: &Path,
    loadgen: &Path,
    modes: &[GuestMode],
) -> Vec<(GuestMode, String, Result<(), String>)> {
    let mut guests: Vec<GuestSpec> = modes
        .iter()
        .map(|&mode| test_spec(echo_elf, loadgen, mode))
        .collect();
    crate::e2e_httpd::side_by_side(&mut guests);
    let limit = Duration::from_secs(120 + 300 * guests.len() as u64);
    match rig.run_domus(&guests, limit) {
        Ok(session) => modes
            .iter()
            .zip(&guests)
            .flat_map(|(&mode, guest)| {
                checks_of(&session, &guest.name, mode)
                    .into_iter()
                    .map(move |(name, result)| (mode, name, result))
            })
            .collect(),
        Err(e) => modes
            .iter()
            .map(|&mode| (mode, "e2e net echo: run".to_string(), Err(e.to_string())))
            .collect(),
    }
}

/// The checks of test guest `name` in `session` (run in `mode`).
pub fn checks_of(
    session: &rig::Dom0Session,
    name: &str,
    mode: GuestMode,
) -> Vec<(String, Result<(), String>)> {
    guest_checks(session, name, "e2e net echo: run", |report| {
        checks(report, guest_ip(mode))
    })
}

/// `checks` of guest `name`'s report in `session`, or one failed check
/// named `missing` when the rig reported no such guest (shared by the
/// network tests).
pub fn guest_checks(
    session: &rig::Dom0Session,
    name: &str,
    missing: &str,
    checks: impl FnOnce(&GuestReport) -> Vec<(String, Result<(), String>)>,
) -> Vec<(String, Result<(), String>)> {
    match session.guests.iter().find(|g| g.name == name) {
        Some(report) => checks(report),
        None => vec![(
            missing.to_string(),
            Err(format!("the rig reported no guest {name}")),
        )],
    }
}

/// The checks of one finished test guest at `ip`.
fn checks(report: &GuestReport, ip: &str) -> Vec<(String, Result<(), String>)> {
    let name = |check: &str| format!("e2e net echo: {check}");
    match throughput(report) {
        Some((seconds, mib_s)) => println!(
            "e2e net echo: {PAYLOAD} bytes each way in {seconds:.2} s: {mib_s:.2} MiB/s each way"
        ),
        None => println!("e2e net echo: no throughput figure"),
    }
    vec![
        (
            // PV keeps its old name (the porting guides cite it).
            if ip == GUEST_IP {
                name("netfront connects, guest up at 10.0.0.2")
            } else {
                name(&format!("netfront connects, guest up at {ip}"))
            },
            check_up(report, ip),
        ),
        (name("dom0 pings the guest (3/3)"), check_ping(report)),
        (
            name("8 MiB of random bytes echoed intact (md5, size)"),
            check_echo(report),
        ),
        (
            name("guest's byte counters match (connection and netfront)"),
            check_counters(report),
        ),
        (
            name("idle after the 8 MiB echo: under 1 % of 10 s running (Xen's accounting, xentop)"),
            crate::idle::check(report, "NET", "an 8 MiB echo"),
        ),
        (
            name("8 concurrent connections, 1 MiB each, echoed intact (compared in dom0)"),
            check_concurrent(report),
        ),
        (
            name("guest powers off after `quit`"),
            check_poweroff(report, 2),
        ),
        (
            name(&format!(
                "netfront takes up what netback offers ({})",
                crate::e2e_netfeatures::connect_line(report).unwrap_or("no connect line")
            )),
            crate::e2e_netfeatures::check(report),
        ),
    ]
}
