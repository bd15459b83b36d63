//! Linux's blkfront against the by-the-book backend: a protocol
//! conformance check of a frontend we did not write (issue 13).
//!
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

/// The guest's name.
pub const NAME: &str = "bk-linux-book";

/// What Linux's `/init` prints first on each of its lines.
const TAG: &str = "linux-book: ";

/// The test's name in the tally.
pub const TEST: &str = "rig backend linux blkfront by-the-book (PV)";

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
say "poweroff"
poweroff -f
"#
    )
}

/// dom0's part: as for the Paravane cases, the backend wires the disk of
/// the paused domain and unpauses it.
fn dom0_script() -> String {
    r#"n=0
until domid=$(xl domid "$NAME" 2> /dev/null) && xenstore-read "/local/domain/$domid/console/ring-ref" > /dev/null 2>&1; do
    n=$((n + 1))
    if [ $n -gt 300 ]; then echo "backend: FAILED: domain $NAME never built"; exit 1; fi
    sleep 0.1
done
sleep 0.5
/rig/bin/dom0-backend blk "$domid" by-the-book --timeout 150 2>&1
"#
    .to_string()
}

/// The Linux guest: `kernel` and `ramdisk` from the rig
/// (`Rig::linux_domu_kernel`, `Rig::linux_domu_initramfs` with
/// `xen-blkfront` and [`init`]).
pub fn spec(kernel: &Path, ramdisk: &Path, backend: &Path) -> GuestSpec {
    let mut guest = GuestSpec::new(NAME, kernel);
    guest.ramdisk = Some(ramdisk.into());
    guest.cmdline = "console=hvc0 quiet".into();
    guest.memory_mib = 256;
    guest.timeout = Duration::from_secs(150);
    guest.create_paused = true;
    guest.dom0_tools = vec![backend.to_path_buf()];
    guest.dom0_script = Some(dom0_script());
    guest
}

fn line<'a>(lines: &'a [String], text: &str) -> Option<&'a String> {
    lines.iter().find(|l| l.contains(text))
}

/// Checks the report: Linux read the pattern, wrote and read back, the
/// backend counted requests and no violation, its disk holds exactly the
/// 8 sectors written, and the guest powered off.
pub fn check(report: &GuestReport) -> Result<(), String> {
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

/// The Linux guest's spec, with its kernel and initramfs from `rig`.
pub fn guest(rig: &rig::Rig, backend: &Path) -> Result<GuestSpec, String> {
    let kernel = rig.linux_domu_kernel().map_err(|e| e.to_string())?;
    let ramdisk = rig
        .linux_domu_initramfs(&["xen-blkfront"], &init())
        .map_err(|e| e.to_string())?;
    Ok(spec(&kernel, &ramdisk, backend))
}

/// The result from a session's reports.
pub fn result(reports: &[GuestReport]) -> Result<(), String> {
    let report = reports
        .iter()
        .find(|r| r.name == NAME)
        .ok_or_else(|| format!("no report for {NAME}"))?;
    check(report).map_err(|why| format!("{why} (log: {})", report.log.display()))
}

/// Runs the Linux guest alone in a dom0 session of its own (`cargo xtask
/// e2e backend`); the test name and its result.
pub fn run(rig: &rig::Rig, backend: &Path) -> (String, Result<(), String>) {
    let outcome = guest(rig, backend).and_then(|spec| {
        let limit = Duration::from_secs(120) + spec.timeout;
        let session = rig
            .run_domus(std::slice::from_ref(&spec), limit)
            .map_err(|e| e.to_string())?;
        result(&session.guests)
    });
    (TEST.to_string(), outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_names_the_device_the_backend_wires() {
        let init = init();
        // 51712 is xvda's virtual-device number (the backend's default).
        assert!(init.contains("vbd-51712"));
        assert!(init.contains("/dev/xvda"));
        // 4 KiB blocks at 128 are sectors 1024..1032.
        assert!(init.contains("seek=128") && init.contains("s = 1024; s < 1032"));
    }
}
