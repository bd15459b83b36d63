//! The bench's disk rows: read and write, with blkif's persistent grants
//! on and off, Paravane PV and PVH next to the Linux PV domU.
//!
//! Each round runs each contender's disk guest twice: with persistent
//! grants (the default on both sides) and without (`blkfront.persistent=0`
//! for `blkcheck`, `xen_blkfront.feature_persistent=0` for Linux). Each
//! run reads the whole 64 MiB image dom0 built (timed by the guest, its
//! MD5 compared with dom0's), then writes the `written SSSSSSS\n` lines
//! over the first [`BULK_MIB`] MiB and flushes (timed by the guest:
//! `blkcheck`'s writes and flush; Linux's `dd conv=fsync` of the same
//! bytes made in memory first), and dom0 hashes those MiB of the image
//! once the guest is done: that MD5 must be the host's for the pattern
//! ([`expected_bulk_md5`]), so a fast write that lost data shows.

use std::path::Path;

use rig::{GuestMode, GuestReport, GuestSpec};

use crate::e2e_block;

/// MiB each disk guest writes after its read.
pub const BULK_MIB: u64 = 16;

const MIB: f64 = 1024.0 * 1024.0;

/// The `disk)` part of the Linux guests' `/init` after the read: make
/// the pattern in memory, then write and flush it, timed
/// (`TAG wrote BYTES T0 T1`).
pub fn linux_write(tag: &str) -> String {
    let sectors = (BULK_MIB << 20) / 512;
    format!(
        r#"    awk -v n={sectors} 'BEGIN {{ for (s = 0; s < n; s++) {{ l = sprintf("written %07x\n", s); b = l l; b = b b; b = b b; b = b b; b = b b; printf "%s", b }} }}' > /bulk
    t0=$(now)
    dd if=/bulk of=/dev/xvda bs=1M conv=fsync 2> /dev/null
    t1=$(now)
    echo "{tag}wrote $(wc -c < /bulk) bytes $t0 $t1"
    rm -f /bulk
"#
    )
}

/// The Linux kernel command line's word that turns blkfront's persistent
/// grants off.
pub const LINUX_PERSISTENT_OFF: &str = "xen_blkfront.feature_persistent=0";

/// Paravane's disk guest in `mode` as the bench runs it.
pub fn paravane_guest(blkcheck: &Path, mode: GuestMode, persistent: bool) -> GuestSpec {
    e2e_block::bench_guest_in(blkcheck, mode, BULK_MIB, persistent)
}

/// What one disk guest measured.
#[derive(Clone, Copy, Default, Debug)]
pub struct DiskRun {
    /// Whole-disk read, MiB/s (the guest's clock).
    pub read: Option<f64>,
    /// The guest's MD5 of the disk equals dom0's.
    pub read_intact: bool,
    /// [`BULK_MIB`] MiB written and flushed, MiB/s (the guest's clock).
    pub write: Option<f64>,
    /// dom0's MD5 of the written MiB is the pattern's.
    pub write_intact: bool,
    /// Persistent grants: Paravane's connect line said `persistent=true`,
    /// Linux's blkfront parameter `feature_persistent` is `Y` (what it
    /// asks for). None if the guest did not say.
    pub persistent: Option<bool>,
}

fn words<'a>(lines: &'a [String], prefix: &str) -> Option<Vec<&'a str>> {
    lines
        .iter()
        .find_map(|line| line.strip_prefix(prefix))
        .map(|rest| rest.split_whitespace().collect())
}

fn first<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    words(lines, prefix)?.first().copied()
}

/// `BYTES bytes in MS ms` as MiB/s.
fn rate_in_ms(w: &[&str]) -> Option<f64> {
    let bytes: f64 = w.first()?.parse().ok()?;
    let ms: f64 = w.get(3)?.parse().ok()?;
    (ms > 0.0).then(|| bytes / MIB / (ms / 1000.0))
}

/// `BYTES bytes T0 T1` (seconds) as MiB/s.
fn rate_between(w: &[&str]) -> Option<f64> {
    let bytes: f64 = w.first()?.parse().ok()?;
    let t0: f64 = w.get(2)?.parse().ok()?;
    let t1: f64 = w.get(3)?.parse().ok()?;
    (t1 > t0).then(|| bytes / MIB / (t1 - t0))
}

/// The MD5 of the first [`BULK_MIB`] MiB after the write (host's md5sum).
pub fn expected_bulk_md5() -> Result<String, String> {
    e2e_block::md5sum(e2e_block::bulk_image(BULK_MIB))
}

fn write_intact(report: &GuestReport, expected: Option<&str>) -> bool {
    let dom0 = first(&report.dom0_output, "dom0-blk: bulk-md5 ");
    dom0.is_some() && dom0 == expected
}

/// A `blkcheck` run's figures.
pub fn paravane(report: &GuestReport, expected: Option<&str>) -> DiskRun {
    let console = &report.console;
    let md5 = first(console, "blkcheck: md5 ");
    let guest_bulk = first(console, "blkcheck: bulk write md5 ");
    DiskRun {
        read: words(console, "blkcheck: read ").and_then(|w| rate_in_ms(&w)),
        read_intact: md5.is_some() && md5 == first(&report.dom0_output, "dom0-blk: md5-before "),
        write: words(console, "blkcheck: bulk write ").and_then(|w| rate_in_ms(&w)),
        write_intact: write_intact(report, expected) && guest_bulk == expected,
        persistent: console
            .iter()
            .find_map(|line| line.strip_prefix("blkfront: "))
            .map(|line| e2e_block::persistent_on(line).is_ok()),
    }
}

/// A Linux disk guest's figures (`tag`: what its lines start with).
pub fn linux(report: &GuestReport, tag: &str, expected: Option<&str>) -> DiskRun {
    let console = &report.console;
    let md5 = first(console, &format!("{tag}md5 "));
    DiskRun {
        read: words(console, &format!("{tag}read ")).and_then(|w| rate_between(&w)),
        read_intact: md5.is_some() && md5 == first(&report.dom0_output, "dom0-blk: md5-before "),
        write: words(console, &format!("{tag}wrote ")).and_then(|w| rate_between(&w)),
        write_intact: write_intact(report, expected),
        persistent: match first(console, &format!("{tag}persistent ")) {
            Some("Y") => Some(true),
            Some("N") => Some(false),
            _ => None,
        },
    }
}

impl DiskRun {
    /// Every figure there and every check good, persistent grants on
    /// (`persistent`) or off as the run was meant to be.
    pub fn complete(&self, persistent: bool) -> bool {
        self.read.is_some()
            && self.write.is_some()
            && self.read_intact
            && self.write_intact
            && self.persistent != Some(!persistent)
    }
}

/// A round's disk guests with persistent grants off, beside the ones
/// the bench ran already: the same with grants off, persistent-on
/// Paravane guests checked for `persistent=true` by [`DiskRun`].
pub fn persistent_off(mut spec: GuestSpec, linux: bool) -> GuestSpec {
    if linux {
        spec.cmdline.push(' ');
        spec.cmdline.push_str(LINUX_PERSISTENT_OFF);
    } else if !spec.cmdline.contains("blkfront.persistent=0") {
        spec.cmdline.push_str(" blkfront.persistent=0");
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(console: &[&str], dom0: &[&str]) -> GuestReport {
        let mut report = crate::idle::tests_report(dom0);
        report.console = console.iter().map(|s| s.to_string()).collect();
        report
    }

    #[test]
    fn paravane_figures_need_every_check() {
        let console = [
            "blkfront: 131072 sectors of 512 bytes, features: flush=true, barrier=true, persistent=true, indirect=32 (offered 256), ring-pages=4 (max order offered 4)",
            "blkcheck: read 67108864 bytes in 1000 ms: 64.00 MiB/s",
            "blkcheck: md5 aaaa",
            "blkcheck: bulk write 16777216 bytes in 500 ms: 32.00 MiB/s",
            "blkcheck: bulk write md5 bbbb",
        ];
        let dom0 = ["dom0-blk: md5-before aaaa", "dom0-blk: bulk-md5 bbbb"];
        let run = paravane(&report(&console, &dom0), Some("bbbb"));
        assert_eq!((run.read, run.write), (Some(64.0), Some(32.0)));
        assert!(run.complete(true), "{run:?}");
        assert!(!run.complete(false), "said on in a run meant off");
        // dom0 found other bytes than the pattern: not intact.
        let bad = paravane(
            &report(
                &console,
                &["dom0-blk: md5-before aaaa", "dom0-blk: bulk-md5 cccc"],
            ),
            Some("bbbb"),
        );
        assert!(!bad.write_intact && !bad.complete(true));
        // The guest asked but the line says off: incomplete.
        let off: Vec<String> = console
            .iter()
            .map(|l| {
                l.replace(
                    "persistent=true",
                    "persistent=false (backend did not offer)",
                )
            })
            .collect();
        let off: Vec<&str> = off.iter().map(String::as_str).collect();
        let run = paravane(&report(&off, &dom0), Some("bbbb"));
        assert_eq!(run.persistent, Some(false));
        assert!(!run.complete(true));
    }

    #[test]
    fn linux_figures_are_timed_by_its_uptime() {
        let tag = "linux-bench: ";
        let console = [
            "linux-bench: persistent N",
            "linux-bench: read 67108864 bytes 10.00 12.00",
            "linux-bench: md5 aaaa",
            "linux-bench: wrote 16777216 bytes 20.00 20.50",
        ];
        let dom0 = ["dom0-blk: md5-before aaaa", "dom0-blk: bulk-md5 bbbb"];
        let run = linux(&report(&console, &dom0), tag, Some("bbbb"));
        assert_eq!((run.read, run.write), (Some(32.0), Some(32.0)));
        assert!(run.complete(false) && !run.complete(true));
        assert!(!linux(&report(&console, &dom0), tag, None).complete(false));
    }

    #[test]
    fn the_write_script_and_switches() {
        let script = linux_write("T: ");
        assert!(script.contains(&format!("-v n={}", BULK_MIB * 2048)));
        assert!(script.contains("conv=fsync") && script.contains("echo \"T: wrote "));
        let blk = paravane_guest(Path::new("/b"), GuestMode::Pv, true);
        assert!(blk.cmdline.contains(&format!("bulk_write_mib={BULK_MIB}")));
        assert!(!blk.cmdline.contains("blkfront.persistent=0"));
        let off = persistent_off(blk, false);
        assert!(off.cmdline.ends_with(" blkfront.persistent=0"));
        assert!(off
            .dom0_script
            .unwrap_or_default()
            .contains("say \"bulk-md5 $(head -c 16777216 \"$img\""));
        let mut linux_spec = GuestSpec::new("l", Path::new("/k"));
        linux_spec.cmdline = "console=hvc0 bench=disk".into();
        assert!(persistent_off(linux_spec, true)
            .cmdline
            .ends_with(" xen_blkfront.feature_persistent=0"));
        assert_eq!(e2e_block::bulk_image(1).len(), 1 << 20);
    }
}
