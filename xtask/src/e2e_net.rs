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

use rig::{Ending, GuestReport, GuestSpec, Rig};
use std::path::Path;
use std::time::Duration;

/// The guest's address (and the vif's `ip=`).
pub const GUEST_IP: &str = "10.0.0.2";
/// Bytes sent through the echo server.
pub const PAYLOAD: u64 = 8 * 1024 * 1024;

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

/// dom0's side of the test (busybox sh). Every result line starts `NET `.
fn dom0_script() -> String {
    format!(
        r#"G={GUEST_IP}
{wait}{features}ping -c 3 -W 2 $G
rc=$?
echo "NET ping rc=$rc"
if [ $rc != 0 ]; then
  ip addr; ip route; ip neigh; cat /proc/net/dev
  xenstore-ls -f /local/domain/0/backend/vif
  xenstore-ls -f /local/domain/$(xl domid $NAME)/device/vif
fi
head -c {PAYLOAD} /dev/urandom > /tmp/net-in
echo "NET sent $(md5sum < /tmp/net-in | cut -d' ' -f1) $(wc -c < /tmp/net-in)"
t0=$(cut -d' ' -f1 /proc/uptime)
nc $G 7 < /tmp/net-in > /tmp/net-out
echo "NET nc rc=$?"
t1=$(cut -d' ' -f1 /proc/uptime)
echo "NET echoed $(md5sum < /tmp/net-out | cut -d' ' -f1) $(wc -c < /tmp/net-out)"
echo "NET time $t0 $t1"
echo quit | nc $G 7
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

fn check_up(guest: &GuestReport) -> Result<(), String> {
    guest
        .console
        .iter()
        .any(|line| line.starts_with("echo: up:") && line.contains(GUEST_IP))
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

fn check_poweroff(guest: &GuestReport) -> Result<(), String> {
    let served = guest
        .console
        .iter()
        .any(|line| line.starts_with("echo: served 2 connections"));
    if guest.ending == Ending::Poweroff && served {
        Ok(())
    } else {
        Err(format!(
            "ended {} ({}), served-2 line {}",
            guest.ending,
            guest.evidence,
            if served { "seen" } else { "missing" }
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

/// The `echo` guest with its vif and dom0's script (also used by
/// `cargo xtask bench`).
pub fn guest(echo_elf: &Path) -> GuestSpec {
    let mut guest = GuestSpec::new("net-echo", echo_elf);
    guest.cmdline = format!("ip={GUEST_IP}/24 gw=10.0.0.254");
    guest.memory_mib = 64;
    guest.timeout = Duration::from_secs(300);
    guest.extra_config = vec![format!(
        "vif = ['mac=00:16:3e:00:00:01,ip={GUEST_IP},script=vif-rig,mtu={}']",
        crate::e2e_netfeatures::JUMBO_MTU
    )];
    guest.dom0_script = Some(dom0_script());
    guest
}

/// Boots `echo_elf` next to the Linux dom0 and runs the checks; one named
/// result per check.
pub fn run(rig: &Rig, echo_elf: &Path) -> Vec<(String, Result<(), String>)> {
    let guest = guest(echo_elf);
    let name = |check: &str| format!("e2e net echo: {check}");
    let report = match rig.run_domus(&[guest], Duration::from_secs(420)) {
        Ok(mut session) if !session.guests.is_empty() => session.guests.remove(0),
        Ok(_) => return vec![(name("run"), Err("the rig reported no guest".into()))],
        Err(e) => return vec![(name("run"), Err(e.to_string()))],
    };
    match throughput(&report) {
        Some((seconds, mib_s)) => println!(
            "e2e net echo: {PAYLOAD} bytes each way in {seconds:.2} s: {mib_s:.2} MiB/s each way"
        ),
        None => println!("e2e net echo: no throughput figure"),
    }
    vec![
        (
            name("netfront connects, guest up at 10.0.0.2"),
            check_up(&report),
        ),
        (name("dom0 pings the guest (3/3)"), check_ping(&report)),
        (
            name("8 MiB of random bytes echoed intact (md5, size)"),
            check_echo(&report),
        ),
        (
            name("guest's byte counters match (connection and netfront)"),
            check_counters(&report),
        ),
        (
            name("guest powers off after `quit`"),
            check_poweroff(&report),
        ),
        (
            name(&format!(
                "netfront takes up what netback offers ({})",
                crate::e2e_netfeatures::connect_line(&report).unwrap_or("no connect line")
            )),
            crate::e2e_netfeatures::check(&report),
        ),
    ]
}
