//! Linux's blkfront and netfront against the by-the-book backends: a
//! protocol conformance check of frontends we did not write (issue 13).
//!
//! **netfront** (`book=net`): `dom0-backend net DOMID by-the-book` wires
//! `device/vif/0` and is a host at 10.99.0.1 on the vif's wire; Linux
//! takes 10.99.0.2 and pings it (20 × 56 bytes, 20 × 1400), which needs
//! ARP and ICMP answered through both rings; then it unbinds the vif.
//! The test asserts both pings' 0% loss and the backend's summary (no
//! violation, no drop).
//!
//! **blkfront** (`book=blk`):
//! The guest is the rig's Linux PV domU (Debian's kernel, busybox, the
//! `xen-blkfront` module). It is created paused with no `disk=`, like the
//! Paravane cases of [`crate::e2e_backend`]; `dom0-backend blk DOMID
//! by-the-book` wires `device/vbd/51712` (Linux's `xvda`), serves its
//! 4 MiB RAM disk and checks every request, grant, ring index and state
//! change. Linux's `/init` ([`init`]) then does what a user of the disk
//! does:
//!
//! 1. reads the whole disk with `O_DIRECT` and compares it with the
//!    pattern the backend serves (`sector SSSSSSSS\n` lines, generated
//!    by `awk`), so every byte went through the ring;
//! 2. writes 8 sectors of `written SSSSSSS\n` lines at 1024 with
//!    `O_DIRECT` and `fsync` (a `BLKIF_OP_FLUSH_DISKCACHE`: the backend
//!    offers `feature-flush-cache`), and reads them back;
//! 3. unbinds the device (`/sys/bus/xen/drivers/vbd/unbind`), which
//!    closes it through xenbus, and powers off.
//!
//! The test asserts Linux's lines, the backend's count of requests and
//! violations (every violation line is quoted if there is one) and the
//! backend's own check of its disk afterwards: 8 sectors written, the
//! rest the pattern.

use rig::{Ending, GuestReport, GuestSpec};
use std::path::Path;
use std::time::Duration;

/// The guests' names (disk, network).
pub const BLK_NAME: &str = "bk-linux-book";
pub const NET_NAME: &str = "bk-linux-net-book";

/// What Linux's `/init` prints first on each of its lines.
const TAG: &str = "linux-book: ";

/// The tests' names in the tally (disk, network).
pub const BLK_TEST: &str = "rig backend linux blkfront by-the-book (PV)";
pub const NET_TEST: &str = "rig backend linux netfront by-the-book (PV)";

/// `/init` of the Linux guest (see the module docs).
pub fn init() -> String {
    format!(
        r#"#!/bin/sh
# /init of the Linux domU that `dom0-backend` checks (xtask/src/e2e_backend_linux.rs).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
say() {{ echo "{TAG}$*"; }}
book=
for word in $(cat /proc/cmdline); do
    case $word in book=*) book=${{word#book=}} ;; esac
done
if [ "$book" = net ]; then
modprobe xen-netfront || say "modprobe xen-netfront failed"
n=0
while ! ip link show eth0 > /dev/null 2>&1 && [ $n -lt 300 ]; do n=$((n + 1)); sleep 0.1; done
ip link set lo up
ip addr add 10.99.0.2/24 dev eth0
ip link set eth0 up
for size in 56 1400; do
    say "ping -s $size: $(ping -c 20 -s $size -W 2 10.99.0.1 2>&1 | grep 'packets transmitted')"
done
echo vif-0 > /sys/bus/xen/drivers/vif/unbind
n=0
while [ -e /sys/bus/xen/drivers/vif/vif-0 ] && [ $n -lt 100 ]; do n=$((n + 1)); sleep 0.1; done
say "unbound"
sleep 2
else
modprobe xen-blkfront || say "modprobe xen-blkfront failed"
n=0
while [ ! -b /dev/xvda ] && [ $n -lt 300 ]; do n=$((n + 1)); sleep 0.1; done
sectors=$(cat /sys/block/xvda/size 2> /dev/null)
say "disk /dev/xvda $sectors sectors"
awk -v n="$sectors" 'BEGIN {{ for (s = 0; s < n; s++) for (i = 0; i < 32; i++) printf "sector %08x\n", s }}' > /tmp/want
dd if=/dev/xvda of=/tmp/got bs=64k iflag=direct 2> /dev/null
if cmp -s /tmp/want /tmp/got; then
    say "read all $sectors sectors: the pattern"
else
    say "read: NOT the pattern: $(cmp /tmp/want /tmp/got 2>&1 | head -1)"
fi
rm -f /tmp/want /tmp/got
awk 'BEGIN {{ for (s = 1024; s < 1032; s++) for (i = 0; i < 32; i++) printf "written %07x\n", s }}' > /tmp/w
dd if=/tmp/w of=/dev/xvda bs=4k seek=128 oflag=direct conv=fsync 2> /dev/null
dd if=/dev/xvda of=/tmp/r bs=4k skip=128 count=1 iflag=direct 2> /dev/null
if cmp -s /tmp/w /tmp/r; then
    say "wrote, flushed and read back sectors 1024..1032"
else
    say "write: read back differs: $(cmp /tmp/w /tmp/r 2>&1 | head -1)"
fi
echo vbd-51712 > /sys/bus/xen/drivers/vbd/unbind
n=0
while [ -e /sys/bus/xen/drivers/vbd/vbd-51712 ] && [ $n -lt 100 ]; do n=$((n + 1)); sleep 0.1; done
say "unbound"
sleep 2
fi
say "poweroff"
poweroff -f
"#
    )
}

/// dom0's part: as for the Paravane cases, the backend (`blk` or `net`)
/// wires the device of the paused domain and unpauses it.
fn dom0_script(kind: &str) -> String {
    let options = if kind == "blk" { " --timeout 150" } else { "" };
    crate::e2e_backend::wiring_script(&format!("{kind} \"$domid\" by-the-book{options}"))
}

/// A Linux guest for `kind` (`blk` or `net`): `kernel` and `ramdisk`
/// from the rig (`Rig::linux_domu_kernel`, `Rig::linux_domu_initramfs`
/// with both front modules and [`init`]).
pub fn spec(kind: &str, kernel: &Path, ramdisk: &Path, backend: &Path) -> GuestSpec {
    let name = if kind == "blk" { BLK_NAME } else { NET_NAME };
    let mut guest = GuestSpec::new(name, kernel);
    guest.ramdisk = Some(ramdisk.into());
    guest.cmdline = format!("console=hvc0 quiet book={kind}");
    guest.memory_mib = 256;
    guest.timeout = Duration::from_secs(150);
    guest.create_paused = true;
    guest.dom0_tools = vec![backend.to_path_buf()];
    guest.dom0_script = Some(dom0_script(kind));
    guest
}

fn line<'a>(lines: &'a [String], text: &str) -> Option<&'a String> {
    lines.iter().find(|l| l.contains(text))
}

/// Checks the netfront report: both pings lost nothing, Linux unbound
/// the vif, the backend counted no violation and answered every ping
/// (and the ARP before them), and the guest powered off.
pub fn check_net(report: &GuestReport) -> Result<(), String> {
    for size in [56, 1400] {
        let want = format!(
            "{TAG}ping -s {size}: 20 packets transmitted, 20 packets received, 0% packet loss"
        );
        if line(&report.console, &want).is_none() {
            let said: Vec<&String> = report
                .console
                .iter()
                .filter(|l| l.starts_with(TAG))
                .collect();
            return Err(format!("no {want:?} (Linux said {said:?})"));
        }
    }
    if line(&report.console, &format!("{TAG}unbound")).is_none() {
        return Err("Linux did not unbind the vif".into());
    }
    crate::e2e_backend::net_book_summary(&report.dom0_output, 40)?;
    if report.ending != Ending::Poweroff {
        return Err(format!(
            "ended {} ({}), not a clean poweroff",
            report.ending, report.evidence
        ));
    }
    Ok(())
}

/// Checks the blkfront report: Linux read the pattern, wrote and read back, the
/// backend counted requests and no violation, its disk holds exactly the
/// 8 sectors written, and the guest powered off.
pub fn check_blk(report: &GuestReport) -> Result<(), String> {
    for text in [
        "read all 8192 sectors: the pattern",
        "wrote, flushed and read back sectors 1024..1032",
        "unbound",
    ] {
        if line(&report.console, &format!("{TAG}{text}")).is_none() {
            let said: Vec<&String> = report
                .console
                .iter()
                .filter(|l| l.starts_with(TAG))
                .collect();
            return Err(format!("Linux did not print {text:?} (it said {said:?})"));
        }
    }
    let violations: Vec<&String> = report
        .dom0_output
        .iter()
        .filter(|l| l.contains("backend: violation: "))
        .collect();
    let summary = line(&report.dom0_output, "backend: by-the-book blkif: ")
        .ok_or("no summary line from the backend")?;
    if !violations.is_empty() || !summary.ends_with(" 0 violations") {
        return Err(format!("{summary}: {violations:?}"));
    }
    let disk = line(&report.dom0_output, "backend: disk check ").ok_or("no disk check")?;
    if !disk.contains("backend: disk check ok: 8 sectors written") {
        return Err(disk.clone());
    }
    if report.ending != Ending::Poweroff {
        return Err(format!(
            "ended {} ({}), not a clean poweroff",
            report.ending, report.evidence
        ));
    }
    Ok(())
}

/// The two Linux guests' specs (disk, network), with the kernel and an
/// initramfs from `rig`.
pub fn guests(rig: &rig::Rig, backend: &Path) -> Result<Vec<GuestSpec>, String> {
    let kernel = rig.linux_domu_kernel().map_err(|e| e.to_string())?;
    let ramdisk = rig
        .linux_domu_initramfs(&["xen-blkfront", "xen-netfront"], &init())
        .map_err(|e| e.to_string())?;
    Ok(["blk", "net"]
        .iter()
        .map(|kind| spec(kind, &kernel, &ramdisk, backend))
        .collect())
}

/// Both results (test name, outcome) from a session's reports.
pub fn results(reports: &[GuestReport]) -> Vec<(String, Result<(), String>)> {
    let one = |name: &str, check: fn(&GuestReport) -> Result<(), String>| match reports
        .iter()
        .find(|r| r.name == name)
    {
        Some(report) => {
            check(report).map_err(|why| format!("{why} (log: {})", report.log.display()))
        }
        None => Err(format!("no report for {name}")),
    };
    vec![
        (BLK_TEST.to_string(), one(BLK_NAME, check_blk)),
        (NET_TEST.to_string(), one(NET_NAME, check_net)),
    ]
}

/// Runs both Linux guests in a dom0 session of their own (`cargo xtask
/// e2e backend`).
pub fn run(rig: &rig::Rig, backend: &Path) -> Vec<(String, Result<(), String>)> {
    let outcome = guests(rig, backend).and_then(|specs| {
        let limit = Duration::from_secs(120) + specs.iter().map(|s| s.timeout).sum::<Duration>();
        rig.run_domus(&specs, limit).map_err(|e| e.to_string())
    });
    match outcome {
        Ok(session) => results(&session.guests),
        Err(e) => vec![
            (BLK_TEST.to_string(), Err(e.clone())),
            (NET_TEST.to_string(), Err(e)),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_names_the_device_the_backend_wires() {
        let init = init();
        // 51712 is xvda's virtual-device number (the backend's default).
        assert!(init.contains("vbd-51712") && init.contains("vif-0"));
        assert!(init.contains("/dev/xvda"));
        // 4 KiB blocks at 128 are sectors 1024..1032.
        assert!(init.contains("seek=128") && init.contains("s = 1024; s < 1032"));
    }
}
