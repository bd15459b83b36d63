//! Devices that come and go (issue 11): `xl network-detach` and
//! `network-attach` under a running `httpd`, `xl block-detach` under a
//! running `blkcheck`, PV and PVH. The guests join the domU session.
//!
//! The vif guest ([`vif_guest`]): dom0 waits until `httpd` answers a
//! ping and fetches its page (a TCP connection before), runs `xl
//! network-detach NAME 0`, waits for the guest's `net: vif/0 lost` line,
//! checks that the backend's vif node is gone, runs `xl network-attach`
//! with the same MAC and address, waits for `net: vif/0 regained`, reads
//! the new backend's state, and fetches the page again: a new TCP
//! connection from dom0 to the same sockets' stack. Then `GET /quit`.
//!
//! The vbd guest ([`vbd_guest`]): `blkcheck loop_seconds=` reads its
//! disk (a sparse image) over and over; after its second pass dom0 runs
//! `xl block-detach NAME xvda`, then checks that the backend's vbd node
//! is gone and that `xl block-list` lists nothing. The guest must print
//! one clear `blkcheck: I/O error …` line naming the detach, close the
//! device and end normally (no crash, no hang).
//!
//! The resume guest ([`resume_guest`]): `vifresume` (a TCP echo server
//! that reports each resume) is saved and restored with the
//! rig's `rig_save_restore` (`xl save`, `xl restore`) while dom0 holds a
//! TCP connection to it: the toolstack rewrites the vif's nodes for the
//! new domain, the guest's vif keeper connects it anew, and the
//! connection opened before the save echoes a line sent after the
//! restore; a new connection works too.
//!
//! Every check rests on what xl and xenstore said in dom0 (the
//! `HOTPLUG ` lines), and on the guest's lines and ending.

use rig::{Ending, GuestMode, GuestReport, GuestSpec};
use std::path::Path;
use std::time::Duration;

/// The vif guest's name in `mode`.
pub fn vif_name(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "hotplug-vif",
        GuestMode::Pvh => "pvh-hotplug-vif",
    }
}

/// The vbd guest's name in `mode`.
pub fn vbd_name(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "hotplug-vbd",
        GuestMode::Pvh => "pvh-hotplug-vbd",
    }
}

/// The vif guest's address in `mode` (apart from the network session's
/// `.2`/`.3`; the session runs one guest at a time).
fn vif_ip(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "10.0.0.6",
        GuestMode::Pvh => "10.0.0.7",
    }
}

/// The resume guest's name in `mode`.
pub fn resume_name(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "hotplug-resume",
        GuestMode::Pvh => "pvh-hotplug-resume",
    }
}

/// What `httpd`'s page carries.
const MARKER: &str = "Paravane httpd";

/// Waits (up to `seconds`) until the guest's console log has a line
/// containing `text`; prints `HOTPLUG saw TEXT after N s` or `HOTPLUG
/// never saw TEXT`.
fn wait_for_line(text: &str, seconds: u32) -> String {
    let tries = seconds * 5;
    format!(
        r#"n=0
while [ $n -lt {tries} ] && ! grep -q "{text}" "$log" 2> /dev/null; do
  n=$((n+1))
  sleep 0.2
done
if grep -q "{text}" "$log" 2> /dev/null; then echo "HOTPLUG saw {text} after $((n/5)) s"; else echo "HOTPLUG never saw {text}"; fi
"#
    )
}

/// dom0's side for the vif guest at `ip` with `mac`.
fn vif_script(ip: &str, mac: &str) -> String {
    format!(
        r#"G={ip}
log=/var/log/xen/console/guest-$NAME.log
{ping}domid=$(xl domid $NAME)
fetch() {{
  # (busybox's wget -T crashed here: bound it with timeout instead)
  timeout 30 wget -q -O - http://$G/ > /tmp/$NAME-hp-page 2> /tmp/$NAME-hp-err
  rc=$?
  if grep -q '{MARKER}' /tmp/$NAME-hp-page; then echo "HOTPLUG $1 ok"; else echo "HOTPLUG $1 failed: rc=$rc $(cat /tmp/$NAME-hp-err)"; fi
}}
fetch before
t0=$(cut -d' ' -f1 /proc/uptime)
xl network-detach $NAME 0
echo "HOTPLUG network-detach rc=$? ($t0 $(cut -d' ' -f1 /proc/uptime))"
{lost}if xenstore-read /local/domain/0/backend/vif/$domid/0/state > /dev/null 2>&1; then
  echo "HOTPLUG after detach: backend vif present (state $(xenstore-read /local/domain/0/backend/vif/$domid/0/state))"
else
  echo "HOTPLUG after detach: backend vif gone"
fi
echo "HOTPLUG network-list after detach: $(xl network-list $NAME | tail -n +2 | wc -l)"
t0=$(cut -d' ' -f1 /proc/uptime)
xl network-attach $NAME mac={mac} ip=$G script=vif-rig
echo "HOTPLUG network-attach rc=$? ($t0 $(cut -d' ' -f1 /proc/uptime))"
{regained}{ping2}echo "HOTPLUG backend state after attach: $(xenstore-read /local/domain/0/backend/vif/$domid/0/state 2>&1)"
echo "HOTPLUG frontend state after attach: $(xenstore-read /local/domain/$domid/device/vif/0/state 2>&1)"
fetch after
wget -q -O - http://$G/quit > /dev/null 2>&1
echo "HOTPLUG quit rc=$?"
sleep 10
if xl list $NAME > /dev/null 2>&1; then
  echo "HOTPLUG guest still running after /quit: destroying it"
  xl destroy $NAME
fi
"#,
        ping = crate::e2e_net::wait_for_ping("HOTPLUG", 120),
        lost = wait_for_line("net: vif/0 lost", 30),
        regained = wait_for_line("net: vif/0 regained", 60),
        ping2 = crate::e2e_net::wait_for_ping("HOTPLUG after attach", 30),
    )
}

/// dom0's side for the vbd guest: makes its sparse disk, detaches it
/// after the guest's second pass, and says what xl and xenstore show.
fn vbd_script() -> String {
    format!(
        r#"img=/tmp/hp-$NAME.img
log=/var/log/xen/console/guest-$NAME.log
rm -f "$img"
dd if=/dev/zero of="$img" bs=1M count=0 seek=16 2> /dev/null || echo "HOTPLUG FAILED: cannot create the image"
{pass}domid=$(xl domid $NAME)
vbd=$(xenstore-list /local/domain/$domid/device/vbd 2> /dev/null | head -1)
echo "HOTPLUG vbd $vbd of dom $domid, block-list before: $(xl block-list $NAME | tail -n +2 | wc -l)"
t0=$(cut -d' ' -f1 /proc/uptime)
xl block-detach $NAME xvda
echo "HOTPLUG block-detach rc=$? ($t0 $(cut -d' ' -f1 /proc/uptime))"
if xenstore-read /local/domain/0/backend/vbd/$domid/$vbd/state > /dev/null 2>&1; then
  echo "HOTPLUG vbd backend present (state $(xenstore-read /local/domain/0/backend/vbd/$domid/$vbd/state))"
else
  echo "HOTPLUG vbd backend gone"
fi
echo "HOTPLUG block-list after: $(xl block-list $NAME | tail -n +2 | wc -l)"
{error}n=0
while [ $n -lt 150 ] && xl domid $NAME > /dev/null 2>&1; do
  n=$((n+1))
  sleep 0.2
done
rm -f "$img"
"#,
        pass = wait_for_line("blkcheck: pass 2 ", 90),
        error = wait_for_line("blkcheck: I/O error", 30),
    )
}

/// dom0's side for the resume guest at `ip`.
fn resume_script(ip: &str) -> String {
    format!(
        r#". /etc/rig/lib.sh
G={ip}
log=/var/log/xen/console/guest-$NAME.log
{ping}# A connection opened before the save, fed through a fifo held open.
rm -f /tmp/$NAME-hp-fifo
mkfifo /tmp/$NAME-hp-fifo
nc $G 7 < /tmp/$NAME-hp-fifo > /tmp/$NAME-hp-long 2>&1 &
ncpid=$!
exec 5> /tmp/$NAME-hp-fifo
echo "before the save" >&5
sleep 2
echo "HOTPLUG long before: $(tr '
' '|' < /tmp/$NAME-hp-long)"
echo "HOTPLUG domid before $(xl domid $NAME)"
t0=$(cut -d' ' -f1 /proc/uptime)
rig_save_restore $NAME /tmp/$NAME-hp.save
echo "HOTPLUG save-restore rc=$? ($t0 $(cut -d' ' -f1 /proc/uptime))"
rm -f /tmp/$NAME-hp.save
domid=$(xl domid $NAME)
echo "HOTPLUG domid after $domid"
{resumed}{regained}{ping2}echo "HOTPLUG backend state after restore: $(xenstore-read /local/domain/0/backend/vif/$domid/0/state 2>&1)"
echo "HOTPLUG frontend state after restore: $(xenstore-read /local/domain/$domid/device/vif/0/state 2>&1)"
echo "after the restore" >&5
sleep 3
echo "HOTPLUG long after: $(tr '
' '|' < /tmp/$NAME-hp-long)"
exec 5>&-
sleep 1
kill $ncpid 2> /dev/null
echo "HOTPLUG new: $(echo 'a new connection' | timeout 20 nc $G 7 | tr '
' '|')"
echo quit | timeout 10 nc $G 7 > /dev/null
rm -f /tmp/$NAME-hp-fifo /tmp/$NAME-hp-long
sleep 10
if xl list $NAME > /dev/null 2>&1; then
  echo "HOTPLUG guest still running after quit: destroying it"
  xl destroy $NAME
fi
"#,
        ping = crate::e2e_net::wait_for_ping("HOTPLUG", 120),
        resumed = wait_for_line("vifresume: resumed", 60),
        regained = wait_for_line("net: vif/0 regained", 60),
        ping2 = crate::e2e_net::wait_for_ping("HOTPLUG after restore", 30),
    )
}

/// The `vifresume` guest dom0 saves and restores under a TCP connection.
pub fn resume_guest(vifresume_elf: &Path, mode: GuestMode) -> GuestSpec {
    let ip = match mode {
        GuestMode::Pv => "10.0.0.8",
        GuestMode::Pvh => "10.0.0.9",
    };
    vif_spec(resume_name(mode), vifresume_elf, mode, ip, |_| {
        resume_script(ip)
    })
}

/// The resume guest's checks.
pub fn check_resume(report: &GuestReport) -> Vec<(String, Result<(), String>)> {
    let console = &report.console;
    let dom0 = &report.dom0_output;
    let moved = || -> Result<(), String> {
        let id = |prefix: &str| {
            dom0.iter()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|rest| rest.trim().parse::<u32>().ok())
        };
        match (id("HOTPLUG domid before "), id("HOTPLUG domid after ")) {
            (Some(a), Some(b)) if a != b => Ok(()),
            (a, b) => Err(format!("domain ids before/after: {a:?} {b:?}")),
        }
    };
    let checks: Vec<(&str, Result<(), String>)> = vec![
        (
            "resume: xl save + restore succeed, into a new domain",
            has(dom0, "HOTPLUG save-restore rc=0")
                .and_then(|()| moved())
                .and_then(|()| has(console, "vifresume: resumed after")),
        ),
        (
            "resume: the vif is connected anew in the new domain (both ends Connected)",
            has(console, "net: vif/0 regained")
                .and_then(|()| has(dom0, "HOTPLUG backend state after restore: 4"))
                .and_then(|()| has(dom0, "HOTPLUG frontend state after restore: 4")),
        ),
        (
            "resume: a TCP connection opened before the save echoes after the restore",
            has(
                dom0,
                "HOTPLUG long after: before the save|after the restore|",
            ),
        ),
        (
            "resume: a new TCP connection from dom0 succeeds after the restore",
            has(dom0, "HOTPLUG new: a new connection|"),
        ),
        (
            "resume: the app ends cleanly",
            has(console, "vifresume: served").and_then(|()| powered_off(report)),
        ),
    ];
    named(report, checks)
}

/// The `httpd` guest whose vif dom0 detaches and attaches again.
pub fn vif_guest(httpd_elf: &Path, mode: GuestMode) -> GuestSpec {
    let ip = vif_ip(mode);
    let mut guest = vif_spec(vif_name(mode), httpd_elf, mode, ip, |mac| {
        vif_script(ip, mac)
    });
    guest.memory_mib = 64;
    guest
}

/// The `blkcheck` guest whose disk dom0 detaches while it reads.
pub fn vbd_guest(blkcheck_elf: &Path, mode: GuestMode) -> GuestSpec {
    let name = vbd_name(mode);
    let mut guest = GuestSpec::new(name, blkcheck_elf).with_mode(mode);
    guest.cmdline = "loop_seconds=120 chunk_kib=256".into();
    guest.memory_mib = 64;
    guest.timeout = Duration::from_secs(200);
    guest.extra_config = vec![format!(
        "disk = ['format=raw,vdev=xvda,access=rw,backendtype=phy,script=block-rig,target=/tmp/hp-{name}.img']"
    )];
    guest.dom0_script = Some(vbd_script());
    guest
}

fn has(lines: &[String], text: &str) -> Result<(), String> {
    if lines.iter().any(|line| line.contains(text)) {
        Ok(())
    } else {
        Err(format!("no line with {text:?}"))
    }
}

fn powered_off(report: &GuestReport) -> Result<(), String> {
    if report.ending == Ending::Poweroff {
        Ok(())
    } else {
        Err(format!("ended {} ({})", report.ending, report.evidence))
    }
}

/// Adds the console and dom0's lines to a failure.
fn with_context(report: &GuestReport, result: Result<(), String>) -> Result<(), String> {
    result.map_err(|e| {
        format!(
            "{e}\n  ending {} ({})\n  console:\n    {}\n  dom0:\n    {}",
            report.ending,
            report.evidence,
            report.console.join("\n    "),
            report.dom0_output.join("\n    ")
        )
    })
}

/// `checks` under this test's names, each failure with the context.
fn named<N: std::fmt::Display>(
    report: &GuestReport,
    checks: Vec<(N, Result<(), String>)>,
) -> Vec<(String, Result<(), String>)> {
    checks
        .into_iter()
        .map(|(name, result)| (format!("e2e hotplug: {name}"), with_context(report, result)))
        .collect()
}

/// A guest at `ip` with its vif (the MAC ends in the address's last
/// byte), named `name`, running `elf` in `mode` with `script` in dom0.
fn vif_spec(
    name: &str,
    elf: &Path,
    mode: GuestMode,
    ip: &str,
    script: impl Fn(&str) -> String,
) -> GuestSpec {
    let last: u8 = ip
        .rsplit('.')
        .next()
        .and_then(|b| b.parse().ok())
        .unwrap_or(6);
    let mac = format!("00:16:3e:00:01:{last:02x}");
    let mut guest = GuestSpec::new(name, elf).with_mode(mode);
    guest.cmdline = format!("ip={ip}/24 gw=10.0.0.254");
    guest.timeout = Duration::from_secs(300);
    guest.extra_config = vec![format!("vif = ['mac={mac},ip={ip},script=vif-rig']")];
    guest.dom0_script = Some(script(&mac));
    guest
}

/// The vif guest's checks.
pub fn check_vif(report: &GuestReport) -> Vec<(String, Result<(), String>)> {
    let console = &report.console;
    let dom0 = &report.dom0_output;
    let checks: Vec<(&str, Result<(), String>)> = vec![
        (
            "vif: dom0 fetches the page before the detach",
            has(dom0, "HOTPLUG before ok"),
        ),
        (
            "vif: xl network-detach returns 0, the guest says it lost the vif, the backend node is gone",
            has(dom0, "HOTPLUG network-detach rc=0")
                .and_then(|()| has(console, "net: vif/0 lost"))
                .and_then(|()| has(dom0, "HOTPLUG after detach: backend vif gone"))
                .and_then(|()| has(dom0, "HOTPLUG network-list after detach: 0")),
        ),
        (
            "vif: xl network-attach with the same MAC returns 0, the guest says it regained the vif, both ends Connected",
            has(dom0, "HOTPLUG network-attach rc=0")
                .and_then(|()| has(console, "net: vif/0 regained"))
                .and_then(|()| has(dom0, "HOTPLUG backend state after attach: 4"))
                .and_then(|()| has(dom0, "HOTPLUG frontend state after attach: 4")),
        ),
        (
            "vif: a new TCP connection from dom0 succeeds after the re-attach",
            has(dom0, "HOTPLUG after ok"),
        ),
        (
            "vif: the app ends cleanly on /quit",
            has(dom0, "HOTPLUG quit rc=0").and_then(|()| powered_off(report)),
        ),
    ];
    named(report, checks)
}

/// The vbd guest's checks.
pub fn check_vbd(report: &GuestReport) -> Vec<(String, Result<(), String>)> {
    let console = &report.console;
    let dom0 = &report.dom0_output;
    let error = console
        .iter()
        .find(|l| l.contains("blkcheck: I/O error"))
        .cloned()
        .unwrap_or_default();
    let checks: Vec<(String, Result<(), String>)> = vec![
        (
            "vbd: xl block-detach while blkcheck reads returns 0".into(),
            has(dom0, "HOTPLUG block-detach rc=0"),
        ),
        (
            "vbd: the backend's vbd node is gone and xl block-list lists nothing".into(),
            has(dom0, "HOTPLUG vbd backend gone")
                .and_then(|()| has(dom0, "HOTPLUG block-list after: 0")),
        ),
        (
            format!("vbd: the app gets a clear I/O error ({error})"),
            if error.contains("the disk was detached") {
                Ok(())
            } else {
                Err("no `blkcheck: I/O error … the disk was detached …` line".into())
            },
        ),
        (
            "vbd: the app then ends normally (closes the device, no crash, no hang)".into(),
            has(console, "blkcheck: disconnected")
                .and_then(|()| has(console, "blkcheck: done"))
                .and_then(|()| powered_off(report)),
        ),
    ];
    named(report, checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_keep_their_files_apart_and_name_the_guest() {
        for mode in GuestMode::ALL {
            for spec in [
                vif_guest(Path::new("/e"), mode),
                vbd_guest(Path::new("/e"), mode),
                resume_guest(Path::new("/e"), mode),
            ] {
                let script = spec.dom0_script.unwrap_or_default();
                for (at, _) in script.match_indices("/tmp/") {
                    let rest = &script[at + 5..];
                    assert!(
                        rest.starts_with("$NAME") || rest.starts_with("hp-$NAME"),
                        "{}: shared file at {:?}",
                        spec.name,
                        &rest[..rest.len().min(30)]
                    );
                }
            }
        }
        assert!(vif_script("10.0.0.6", "00:16:3e:00:01:06").contains("mac=00:16:3e:00:01:06"));
    }
}
