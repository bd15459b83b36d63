//! blkcheck reads its disk across `xl save` + `xl restore` (issue 11):
//! the reads in flight when the domain is suspended are issued again to
//! the new domain's backend, and every pass still hashes to the image.
//!
//! dom0 makes a 32 MiB image of random bytes (created sparse at once so
//! the hotplug script finds it, then filled in place) and prints its MD5.
//! The guest, `blkcheck loop_seconds=`, reads the whole disk over and
//! over and prints each pass's MD5 and the resume epochs the pass began
//! and ended in. Once a pass has hashed to the full image, dom0 first
//! takes a checkpoint (`xl save -c`: the domain suspends, is saved and
//! runs on in place, its suspend cancelled) and lets two more passes
//! run; then it saves and restores the domain under the reads
//! (`rig_save_restore`), waits
//! for the pass that spanned the resume (`epochs 0..1`) and for one
//! whole pass in the new domain (`epochs 1..1`), then `xl shutdown`s it:
//! blkcheck stops between chunks, closes its disk and powers off.
//!
//! The checks rest on xl's exit codes and domain ids, on dom0's MD5 of
//! the image (before and after: the guest only reads), and on the
//! guest's pass lines: every pass from the first that matched dom0's
//! MD5 on must match it, the one that spanned the resume included.
//! dom0's lines start `SBLK `.

use crate::e2e_suspend::dom0_after;
use rig::{Ending, GuestMode, GuestReport, GuestSpec};
use std::path::Path;
use std::time::Duration;

/// The guest's name in `mode`.
pub fn name(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "suspend-blkcheck",
        GuestMode::Pvh => "pvh-suspend-blkcheck",
    }
}

/// The image's size in MiB.
const IMAGE_MIB: u32 = 32;

/// dom0's side: the image, the save and restore under the reads, the
/// shutdown.
fn dom0_script() -> String {
    let wait = |text: &str, seconds: u32| {
        format!(
            r#"n=0
while [ $n -lt {tries} ] && ! grep -q "{text}" "$log" 2> /dev/null; do n=$((n+1)); sleep 0.2; done
if grep -q "{text}" "$log" 2> /dev/null; then echo "SBLK saw {text} after $((n/5)) s"; else echo "SBLK never saw {text}"; fi
"#,
            tries = seconds * 5
        )
    };
    format!(
        r#". /etc/rig/lib.sh
img=/tmp/$NAME.img
log=/var/log/xen/console/guest-$NAME.log
rm -f "$img"
# Sparse at once (the hotplug script waits for the file), filled in place.
dd if=/dev/zero of="$img" bs=1M count=0 seek={IMAGE_MIB} 2> /dev/null || echo "SBLK FAILED: cannot create the image"
err=$(head -c {bytes} /dev/urandom | dd of="$img" bs=1M conv=notrunc 2>&1 > /dev/null) || echo "SBLK FAILED: filling the image: $err; /tmp: $(df -k /tmp | tail -1)"
md5=$(md5sum < "$img" | cut -d' ' -f1)
echo "SBLK md5-before $md5"
{first}echo "SBLK domid before $(xl domid $NAME)"
# A checkpoint first: xl save -c suspends the domain, saves it and lets
# it run on (the suspend hypercall returns 1: cancelled, same domain).
rig_checkpoint $NAME /tmp/$NAME-c.save
echo "SBLK checkpoint rc=$?"
rm -f /tmp/$NAME-c.save
echo "SBLK domid after checkpoint $(xl domid $NAME)"
{cancelled}# Two more passes, so that one ran whole after the checkpoint.
passes=$(grep -c "blkcheck: pass " "$log")
n=0
while [ $n -lt 300 ] && [ $(grep -c "blkcheck: pass " "$log") -lt $((passes + 2)) ]; do n=$((n+1)); sleep 0.2; done
t0=$(cut -d' ' -f1 /proc/uptime)
rig_save_restore $NAME /tmp/$NAME.save
echo "SBLK save-restore rc=$? ($t0 $(cut -d' ' -f1 /proc/uptime))"
rm -f /tmp/$NAME.save
echo "SBLK domid after $(xl domid $NAME)"
{spanning}{after}xl shutdown $NAME
echo "SBLK shutdown rc=$?"
n=0
while [ $n -lt 150 ] && xl domid $NAME > /dev/null 2>&1; do n=$((n+1)); sleep 0.2; done
echo "SBLK md5-after $(md5sum < "$img" | cut -d' ' -f1)"
rm -f "$img"
"#,
        bytes = u64::from(IMAGE_MIB) << 20,
        first = wait("md5 $md5, epochs 0..0", 120),
        cancelled = wait("resume: suspend cancelled", 30),
        spanning = wait("epochs 0..1 ", 60),
        after = wait("md5 $md5, epochs 1..1 ", 60),
    )
}

/// The guest in `mode`.
pub fn guest(blkcheck_elf: &Path, mode: GuestMode) -> GuestSpec {
    let name = name(mode);
    let mut guest = GuestSpec::new(name, blkcheck_elf).with_mode(mode);
    guest.cmdline = "loop_seconds=240 chunk_kib=256".into();
    guest.memory_mib = 64;
    guest.timeout = Duration::from_secs(300);
    guest.extra_config = vec![format!(
        "disk = ['format=raw,vdev=xvda,access=rw,backendtype=phy,script=block-rig,target=/tmp/{name}.img']"
    )];
    guest.dom0_script = Some(dom0_script());
    guest
}

/// One of the guest's pass lines.
#[derive(Debug, PartialEq, Eq)]
struct Pass {
    number: u64,
    md5: String,
    epochs: (u64, u64),
}

/// Parses `blkcheck: pass N read B bytes, md5 H, epochs A..B (…)`.
fn pass(line: &str) -> Option<Pass> {
    let rest = line.strip_prefix("blkcheck: pass ")?;
    let (number, rest) = rest.split_once(" read ")?;
    let (_, rest) = rest.split_once(", md5 ")?;
    let (md5, rest) = rest.split_once(", epochs ")?;
    let (epochs, _) = rest.split_once(' ')?;
    let (a, b) = epochs.split_once("..")?;
    Some(Pass {
        number: number.parse().ok()?,
        md5: md5.to_string(),
        epochs: (a.parse().ok()?, b.parse().ok()?),
    })
}

/// The passes' verdict against dom0's MD5: every pass from the first
/// that matched on matches, one spanned the resume, one ran after it.
fn passes_verdict(passes: &[Pass], md5: &str) -> Result<String, String> {
    let first = passes
        .iter()
        .position(|p| p.md5 == md5)
        .ok_or_else(|| format!("no pass hashed to dom0's {md5} ({} passes)", passes.len()))?;
    if let Some(bad) = passes[first..].iter().find(|p| p.md5 != md5) {
        return Err(format!(
            "pass {} hashed to {}, not {md5}",
            bad.number, bad.md5
        ));
    }
    let spanning: Vec<_> = passes[first..]
        .iter()
        .filter(|p| p.epochs == (0, 1))
        .collect();
    if spanning.len() != 1 {
        return Err(format!(
            "{} passes spanned the resume, not 1",
            spanning.len()
        ));
    }
    let after = passes[first..]
        .iter()
        .filter(|p| p.epochs == (1, 1))
        .count();
    if after == 0 {
        return Err("no whole pass in the new domain".into());
    }
    Ok(format!(
        "{} passes, pass {} spanned the resume, {after} after it",
        passes.len() - first,
        spanning[0].number
    ))
}

/// The guest's checks, named.
pub fn checks(report: &GuestReport) -> Vec<(String, Result<(), String>)> {
    let with_context = crate::report::with_context(report);
    let console = &report.console;
    let md5 = dom0_after(report, "SBLK md5-before ").unwrap_or("");
    let passes: Vec<Pass> = console.iter().filter_map(|l| pass(l)).collect();
    let verdict = passes_verdict(&passes, md5);
    let has = |lines: &[String], text: &str| {
        if lines.iter().any(|l| l.contains(text)) {
            Ok(())
        } else {
            Err(format!("no line with {text:?}"))
        }
    };
    let moved = match (
        dom0_after(report, "SBLK domid before "),
        dom0_after(report, "SBLK domid after "),
    ) {
        (Some(a), Some(b)) if a != b && !b.is_empty() => Ok(()),
        (a, b) => Err(format!("domain ids before/after: {a:?} {b:?}")),
    };
    let cancelled = console
        .iter()
        .position(|l| l.starts_with("resume: suspend cancelled after "));
    let same_domain = match (
        dom0_after(report, "SBLK domid before "),
        dom0_after(report, "SBLK domid after checkpoint "),
    ) {
        (Some(a), Some(b)) if a == b => Ok(()),
        (a, b) => Err(format!(
            "domain ids before/after the checkpoint: {a:?} {b:?}"
        )),
    };
    let after_cancel = cancelled.map_or(0, |at| {
        console[at..]
            .iter()
            .filter_map(|l| pass(l))
            .filter(|p| p.epochs == (0, 0) && p.md5 == md5)
            .count()
    });
    let checks = vec![
        (
            format!(
                "e2e suspend block: xl save -c (a checkpoint) exits 0, the suspend is cancelled and the reads go on in the same domain ({after_cancel} passes after it in epoch 0)"
            ),
            has(&report.dom0_output, "SBLK checkpoint rc=0")
                .and(same_domain)
                .and_then(|()| cancelled.map(|_| ()).ok_or_else(|| "no `resume: suspend cancelled` line".to_string()))
                .and_then(|()| {
                    if after_cancel >= 1 {
                        Ok(())
                    } else {
                        Err("no pass in epoch 0 with the image's MD5 after the cancelled suspend".into())
                    }
                }),
        ),
        (
            "e2e suspend block: xl save + xl restore under the reads exit 0, into a new domain"
                .to_string(),
            has(&report.dom0_output, "SBLK save-restore rc=0").and(moved),
        ),
        (
            format!(
                "e2e suspend block: every pass hashes to dom0's MD5 of the image, the one spanning the resume too ({})",
                verdict.as_deref().unwrap_or_else(|e| e)
            ),
            verdict.clone().map(|_| ()),
        ),
        (
            "e2e suspend block: the guest says how long it was away and blkfront reconnected; its console reads clean"
                .to_string(),
            has(console, "resume: suspended for ")
                .and_then(|()| has(console, "blkfront: device/vbd/51712 reconnected in "))
                .and_then(|()| crate::e2e_suspend::console_intact(report)),
        ),
        (
            "e2e suspend block: xl shutdown stops the reads, the disk closes, the image is unchanged"
                .to_string(),
            has(&report.dom0_output, "SBLK shutdown rc=0")
                .and_then(|()| has(console, "blkcheck: loop stopped on request"))
                .and_then(|()| has(console, "blkcheck: disconnected"))
                .and_then(|()| match dom0_after(report, "SBLK md5-after ") {
                    Some(after) if after == md5 => Ok(()),
                    after => Err(format!("image MD5 after {after:?}, before {md5:?}")),
                })
                .and_then(|()| {
                    if report.ending == Ending::Poweroff {
                        Ok(())
                    } else {
                        Err(format!("ended {} ({})", report.ending, report.evidence))
                    }
                }),
        ),
    ];
    checks
        .into_iter()
        .map(|(name, result)| (name, with_context(result)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(number: u64, md5: &str, epochs: (u64, u64)) -> Pass {
        Pass {
            number,
            md5: md5.into(),
            epochs,
        }
    }

    #[test]
    fn pass_lines_parse() {
        assert_eq!(
            pass(
                "blkcheck: pass 7 read 33554432 bytes, md5 0123abcd, epochs 0..1 (2210 ms in all)"
            ),
            Some(p(7, "0123abcd", (0, 1)))
        );
        assert_eq!(
            pass("blkcheck: pass 7 read 33554432 bytes (2210 ms in all)"),
            None
        );
    }

    #[test]
    fn verdict_needs_matching_passes_across_the_resume() {
        let good = [
            p(1, "zero", (0, 0)),
            p(2, "m", (0, 0)),
            p(3, "m", (0, 1)),
            p(4, "m", (1, 1)),
        ];
        assert!(passes_verdict(&good, "m").is_ok());
        // A pass after the first match that hashed otherwise: lost data.
        let bad = [p(2, "m", (0, 0)), p(3, "x", (0, 1)), p(4, "m", (1, 1))];
        assert!(passes_verdict(&bad, "m").unwrap_err().contains("pass 3"));
        // No pass spanned the resume, or none ran after it.
        assert!(passes_verdict(&[p(2, "m", (0, 0)), p(4, "m", (1, 1))], "m").is_err());
        assert!(passes_verdict(&[p(2, "m", (0, 0)), p(3, "m", (0, 1))], "m").is_err());
        assert!(passes_verdict(&good, "other").is_err());
    }

    #[test]
    fn script_waits_for_the_right_passes() {
        let script = dom0_script();
        assert!(script.contains("epochs 0..0"));
        assert!(script.contains("epochs 0..1 "));
        assert!(script.contains("rig_save_restore $NAME /tmp/$NAME.save"));
        assert!(script.contains("rig_checkpoint $NAME /tmp/$NAME-c.save"));
        assert!(script.contains("head -c 33554432 /dev/urandom"));
    }
}
