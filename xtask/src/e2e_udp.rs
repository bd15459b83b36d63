//! The UDP and DHCP end-to-end test: dom0 leases the `tftpd` guest an
//! address, pings it, and moves files through it with TFTP.
//!
//! One domU runs `tftpd` (TFTP over libos's UDP sockets) booted with
//! `ip=dhcp`; its vif has no `ip=`, so the `vif-rig` hotplug script only
//! brings it up. dom0's script then takes `10.0.1.254/24` on the vif and
//! runs busybox `udhcpd` there (leases from `10.0.1.100`, router
//! `10.0.1.254`), reads the guest's lease back with `dumpleases`, waits
//! until the leased address answers a ping, pings it 3 times, and with
//! busybox `tftp`: puts 300000 random bytes in 512-byte blocks and gets
//! them back in 1428-byte blocks (the `blksize` option), puts and gets
//! 1024 bytes (a whole number of blocks, so an empty last block), asks
//! for a missing file (expecting TFTP's "File not found"), and finally
//! gets `quit`, after which the guest powers off. The checks rest on
//! what dom0 and the guest printed: the lease on both sides, ping
//! replies, equal checksums and sizes of what went out and came back,
//! the guest's own transfer lines (blocks and block sizes), its RNG seed
//! source, and a poweroff.

use rig::{Ending, GuestReport, GuestSpec, Rig};
use std::path::Path;
use std::time::Duration;

/// The guest's name in the rig.
pub const NAME: &str = "udp-tftpd";
/// The guest's MAC (udhcpd's lease is looked up by it).
const MAC: &str = "00:16:3e:00:00:03";
/// dom0's address on the vif: DHCP server and router.
const DOM0_IP: &str = "10.0.1.254";
/// The pool udhcpd leases from.
const POOL: (&str, &str) = ("10.0.1.100", "10.0.1.199");
/// The big file's size: not a whole number of 512- or 1428-byte blocks.
const BIG: u64 = 300_000;
/// The even file's size: exactly two 512-byte blocks.
const EVEN: u64 = 1024;

/// dom0's side of the test (busybox sh). Every result line starts `UDP `.
fn dom0_script() -> String {
    let (first, last) = POOL;
    format!(
        r#"V=
i=0
while [ $i -lt 300 ]; do
  D=$(xl domid $NAME 2> /dev/null)
  if [ -n "$D" ] && [ -e /sys/class/net/vif$D.0 ]; then V=vif$D.0; break; fi
  i=$((i+1))
  sleep 0.1
done
echo "UDP vif $V"
ip addr add {DOM0_IP}/24 dev $V
ip link set $V up
cat > /tmp/udhcpd.conf <<EOF
start {first}
end {last}
interface $V
lease_file /tmp/udhcpd.leases
pidfile /tmp/udhcpd.pid
option subnet 255.255.255.0
option router {DOM0_IP}
option lease 3600
EOF
: > /tmp/udhcpd.leases
udhcpd -f -a 100 /tmp/udhcpd.conf > /tmp/udhcpd.log 2>&1 &
U=$!
G=
i=0
while [ $i -lt 120 ]; do
  sleep 1
  # SIGUSR1 makes udhcpd write its leases out.
  kill -USR1 $U 2> /dev/null
  sleep 0.2
  G=$(dumpleases -f /tmp/udhcpd.leases 2> /dev/null | awk '$1 == "{MAC}" {{ print $2 }}')
  [ -n "$G" ] && break
  i=$((i+1))
done
echo "UDP lease $G after $i"
{wait}ping -c 3 -W 2 $G
echo "UDP ping rc=$?"
if [ -z "$G" ]; then
  sed 's/^/UDP udhcpd: /' /tmp/udhcpd.log
  ip addr; ip route
fi
head -c {BIG} /dev/urandom > /tmp/tftp-big
head -c {EVEN} /dev/urandom > /tmp/tftp-even
sum() {{ echo "$(md5sum < $1 | cut -d' ' -f1) $(wc -c < $1)"; }}
echo "UDP big sent $(sum /tmp/tftp-big)"
t0=$(cut -d' ' -f1 /proc/uptime)
tftp -p -l /tmp/tftp-big -r big $G
echo "UDP put big rc=$?"
tftp -g -b 1428 -l /tmp/tftp-big.back -r big $G
echo "UDP get big rc=$?"
t1=$(cut -d' ' -f1 /proc/uptime)
echo "UDP big back $(sum /tmp/tftp-big.back)"
echo "UDP time $t0 $t1"
echo "UDP even sent $(sum /tmp/tftp-even)"
tftp -p -l /tmp/tftp-even -r even $G
echo "UDP put even rc=$?"
tftp -g -l /tmp/tftp-even.back -r even $G
echo "UDP get even rc=$?"
echo "UDP even back $(sum /tmp/tftp-even.back)"
echo "UDP missing: $(tftp -g -l /tmp/tftp-none -r no-such-file $G 2>&1 | tr '\n' ' ')"
tftp -g -l /tmp/tftp-quit -r quit $G
echo "UDP quit rc=$? $(cat /tmp/tftp-quit)"
sleep 15
kill $U 2> /dev/null
if xl list $NAME > /dev/null 2>&1; then
  echo "UDP guest still running after quit: destroying it"
  xl destroy $NAME
fi
"#,
        wait = crate::e2e_net::wait_for_ping("UDP", 60)
    )
}

/// The text after `prefix` on the first dom0 line starting with it.
fn dom0_line<'a>(guest: &'a GuestReport, prefix: &str) -> Option<&'a str> {
    guest
        .dom0_output
        .iter()
        .find_map(|line| line.strip_prefix(prefix))
}

/// The first console line starting with `prefix`.
fn console_line<'a>(guest: &'a GuestReport, prefix: &str) -> Option<&'a str> {
    guest
        .console
        .iter()
        .map(String::as_str)
        .find(|line| line.starts_with(prefix))
}

fn ipv4(text: &str) -> Option<[u8; 4]> {
    let octets: Vec<u8> = text.split('.').filter_map(|o| o.parse().ok()).collect();
    (text.split('.').count() == 4 && octets.len() == 4)
        .then(|| [octets[0], octets[1], octets[2], octets[3]])
}

/// The leased address, checked on both sides: dom0's `dumpleases` and the
/// guest's own lease line agree, it lies in the pool, the router is
/// dom0, and the guest runs on it.
fn check_lease(guest: &GuestReport) -> Result<String, String> {
    let dom0 = dom0_line(guest, "UDP lease ")
        .and_then(|rest| rest.split_whitespace().next())
        .filter(|word| *word != "after")
        .ok_or_else(|| format!("udhcpd leased nothing to {MAC}"))?;
    if let Some(lost) = console_line(guest, "net: dhcp: lease lost") {
        return Err(format!("guest: `{lost}`"));
    }
    let line = console_line(guest, "net: dhcp: lease ").ok_or("the guest printed no lease")?;
    let want = format!("net: dhcp: lease {dom0}/24 gw {DOM0_IP} from server {DOM0_IP}");
    if line != want {
        return Err(format!("guest: `{line}`, dom0 leased {dom0}"));
    }
    let (addr, first, last) = (ipv4(dom0), ipv4(POOL.0), ipv4(POOL.1));
    if !(addr.is_some() && first <= addr && addr <= last) {
        return Err(format!("{dom0} is outside {POOL:?}"));
    }
    console_line(guest, "tftpd: up: ")
        .filter(|up| up.contains(&format!("ip {dom0}/24, gw {DOM0_IP},")))
        .ok_or_else(|| format!("no `tftpd: up:` line with ip {dom0}/24"))?;
    Ok(dom0.to_string())
}

/// dom0 sent `size` bytes as file `name` and got the same md5 and size
/// back; both tftp commands succeeded.
fn check_round_trip(guest: &GuestReport, name: &str, size: u64) -> Result<(), String> {
    let sent = dom0_line(guest, &format!("UDP {name} sent "))
        .ok_or_else(|| format!("dom0 never sent {name}"))?;
    let back = dom0_line(guest, &format!("UDP {name} back "))
        .ok_or_else(|| format!("dom0 got no {name} back"))?;
    for op in ["put", "get"] {
        let rc = dom0_line(guest, &format!("UDP {op} {name} rc="));
        if rc != Some("0") {
            return Err(format!("tftp {op} {name}: rc {rc:?}"));
        }
    }
    if !sent.ends_with(&format!(" {size}")) {
        return Err(format!("dom0 did not send {size} bytes: {sent}"));
    }
    if sent != back {
        return Err(format!("sent {sent} but got back {back}"));
    }
    Ok(())
}

/// The guest's line for one transfer says `bytes` bytes in `blocks`
/// blocks of `block_size`.
fn check_transfer(
    guest: &GuestReport,
    verb_name: &str,
    bytes: u64,
    blocks: u64,
    block_size: u64,
) -> Result<(), String> {
    let line = console_line(guest, &format!("tftpd: {verb_name} from "))
        .ok_or_else(|| format!("the guest reported no `{verb_name}`"))?;
    let want = format!(": {bytes} bytes, {blocks} blocks of {block_size},");
    if line.contains(&want) {
        Ok(())
    } else {
        Err(format!("guest: `{line}`; expected `{want}`"))
    }
}

fn check_missing(guest: &GuestReport) -> Result<(), String> {
    let line = dom0_line(guest, "UDP missing: ").ok_or("dom0 did not ask for a missing file")?;
    let logged = console_line(guest, "tftpd: get no-such-file from ")
        .is_some_and(|l| l.ends_with("failed: file not found"));
    if line.contains("File not found") && logged {
        Ok(())
    } else {
        Err(format!(
            "dom0's tftp said `{line}`; guest logged it: {logged}"
        ))
    }
}

fn check_rng(guest: &GuestReport) -> Result<(), String> {
    let line = console_line(guest, "net: setup ").ok_or("no `net: setup` line")?;
    if line == "net: setup dhcp (from the command line), random seed from rdrand" {
        Ok(())
    } else {
        Err(format!("guest: `{line}`"))
    }
}

fn check_poweroff(guest: &GuestReport) -> Result<(), String> {
    let quit = dom0_line(guest, "UDP quit rc=");
    let summary = console_line(guest, "tftpd: 2 puts, 3 gets, 1 failed").is_some();
    if guest.ending == Ending::Poweroff && summary && quit == Some("0 bye") {
        Ok(())
    } else {
        Err(format!(
            "ended {} ({}), summary line {}, dom0's quit {quit:?}",
            guest.ending,
            guest.evidence,
            if summary { "seen" } else { "missing" }
        ))
    }
}

/// dom0's seconds around the big put and get, and the TFTP throughput
/// (both ways together) in KiB/s.
fn throughput(guest: &GuestReport) -> Option<(f64, f64)> {
    let mut times = dom0_line(guest, "UDP time ")?.split_whitespace();
    let t0: f64 = times.next()?.parse().ok()?;
    let t1: f64 = times.next()?.parse().ok()?;
    let seconds = t1 - t0;
    (seconds > 0.0).then(|| (seconds, 2.0 * BIG as f64 / 1024.0 / seconds))
}

/// The `tftpd` guest booted with `ip=dhcp`, its vif, and dom0's script.
pub fn guest(tftpd_elf: &Path) -> GuestSpec {
    let mut guest = GuestSpec::new(NAME, tftpd_elf);
    guest.cmdline = "ip=dhcp".into();
    guest.memory_mib = 64;
    guest.timeout = Duration::from_secs(300);
    guest.extra_config = vec![format!("vif = ['mac={MAC},script=vif-rig']")];
    guest.dom0_script = Some(dom0_script());
    guest
}

/// Boots `tftpd_elf` next to the Linux dom0 and runs the checks; one
/// named result per check.
pub fn run(rig: &Rig, tftpd_elf: &Path) -> Vec<(String, Result<(), String>)> {
    let name = |check: &str| format!("e2e udp tftpd: {check}");
    let report = match rig.run_domus(&[guest(tftpd_elf)], Duration::from_secs(420)) {
        Ok(mut session) if !session.guests.is_empty() => session.guests.remove(0),
        Ok(_) => return vec![(name("run"), Err("the rig reported no guest".into()))],
        Err(e) => return vec![(name("run"), Err(e.to_string()))],
    };
    match throughput(&report) {
        Some((seconds, kib_s)) => println!(
            "e2e udp tftpd: {BIG} bytes put and got back in {seconds:.2} s: {kib_s:.1} KiB/s"
        ),
        None => println!("e2e udp tftpd: no throughput figure"),
    }
    let lease = check_lease(&report);
    if lease.is_err() || check_poweroff(&report).is_err() {
        crate::report::print_guest(&report);
    }
    vec![
        (
            name("DHCP: udhcpd in dom0 leases an address, the guest runs on it"),
            lease.map(|_| ()),
        ),
        (
            name("dom0 pings the leased address (3/3)"),
            crate::e2e_net::check_ping(&report),
        ),
        (name("smoltcp seeded from RDRAND"), check_rng(&report)),
        (
            name("300000 random bytes put (512-byte blocks) and got back (1428) intact"),
            check_round_trip(&report, "big", BIG),
        ),
        (
            name("guest's counts for the big file (586 blocks of 512, 211 of 1428)"),
            check_transfer(&report, "put big", BIG, 586, 512)
                .and_then(|()| check_transfer(&report, "get big", BIG, 211, 1428)),
        ),
        (
            name("1024 bytes (whole blocks, empty last block) round trip intact"),
            check_round_trip(&report, "even", EVEN).and_then(|()| {
                check_transfer(&report, "put even", EVEN, 3, 512)?;
                check_transfer(&report, "get even", EVEN, 3, 512)
            }),
        ),
        (
            name("a missing file gets TFTP's File not found"),
            check_missing(&report),
        ),
        (
            name("guest powers off after `quit`"),
            check_poweroff(&report),
        ),
    ]
}
