//! End-to-end block test: dom0 builds a disk image with a known pattern,
//! the `blkcheck` guest reads it all through blkfront and Linux's blkback,
//! checks it, hashes it and writes a region; dom0 then checks what landed
//! in the image.
//!
//! The image is 64 MiB (131072 sectors); sector `s` is 32 copies of the
//! line `sector SSSSSSSS\n` (what `blkcheck`'s pattern function makes).
//! dom0's script creates it (sparse) alongside `xl create`, fills it with
//! busybox awk in place, sector 0 last (the guest, started with
//! `wait_ready=`, waits until sector 0 holds the pattern; libxl gives the
//! hotplug script only 10 s, too little to build the image first under
//! emulation), and prints its `md5sum`; it
//! also computes the MD5 of the image as it must be after the guest's
//! write (sectors 1024..2048 holding `written SSSSSSS\n` lines). Once the
//! guest has finished it compares the written region byte for byte and
//! the whole image's MD5 with that expectation.
//!
//! The guest's feature line says what blkfront negotiated; [`check`]
//! requires that it took up what the backend offered: indirect requests
//! of 32 segments when more than eleven are offered, and a ring of
//! 2^min(order, 2) pages when `max-ring-page-order` is offered
//! ([`expected_features`]), and persistent grants (`persistent=true`:
//! the rig's blkback agrees when asked).
//!
//! `rig_tests` adds [`held_guest_in`] to its shared dom0 session and
//! records each named result of [`check`].

use rig::{Ending, GuestMode, GuestReport, GuestSpec};
use std::path::Path;
use std::time::Duration;

/// Sectors in the image (64 MiB).
pub const SECTORS: u64 = 131_072;
/// The first sector the guest writes.
pub const WRITE_START: u64 = 1024;
/// Sectors the guest writes.
pub const WRITE_COUNT: u64 = 1024;

/// How long the guest waits for its quarantine to drain (`hold_check=`).
pub const HOLD_CHECK: u64 = 60;
/// How long dom0's `loadgen gntmap` holds the ring page at most.
pub const HOLD_LIMIT: u64 = 400;

/// The guest's name (and the image's: `/tmp/blk-NAME.img` in dom0).
pub const NAME: &str = "blkcheck";

/// dom0's gntmap part, started before the guest: waits for blkfront's
/// first ring ref in xenstore, maps it with `loadgen gntmap` and holds it
/// until `$release` exists.
fn hold_start() -> String {
    format!(
        r#"# dom0 maps the guest's first ring page through gntdev as soon as
# blkfront publishes it, and holds it across the guest's disconnect; it
# lets go once the guest reports the page quarantined.
release=/tmp/$NAME-release
rm -f "$release"
(
    n=0
    while [ $n -lt 1500 ]; do
        domid=$(xl domid "$NAME" 2> /dev/null)
        if [ -n "$domid" ]; then
            dir=/local/domain/$domid/device/vbd
            vbd=$(xenstore-list "$dir" 2> /dev/null | head -1)
            if [ -n "$vbd" ]; then
                ref=$(xenstore-read "$dir/$vbd/ring-ref0" 2> /dev/null || xenstore-read "$dir/$vbd/ring-ref" 2> /dev/null)
                if [ -n "$ref" ]; then
                    say "gntmap: dom $domid vbd $vbd ring ref $ref"
                    /rig/bin/loadgen gntmap "$domid" "$ref" "$release" --timeout {HOLD_LIMIT} 2>&1 | sed 's/^/dom0-blk: /'
                    exit 0
                fi
            fi
        fi
        n=$((n + 1))
        sleep 0.2
    done
    say "gntmap: no ring-ref appeared"
) &
gpid=$!
"#
    )
}

/// In dom0's wait loop: once the guest reports the quarantine, release.
const HOLD_POLL: &str = r#"    if [ ! -e "$release" ] && grep -q "blkcheck: quarantine holds " "$log" 2> /dev/null; then
        say "guest reports the quarantine: releasing the mapping"
        : > "$release"
    fi
"#;

/// At the end: release in any case, give gntmap time to say so.
const HOLD_END: &str = r#": > "$release"
n=0
while kill -0 $gpid 2> /dev/null && [ $n -lt 20 ]; do
    n=$((n + 1))
    sleep 0.1
done
rm -f "$release"
"#;

/// dom0's part, for a guest named `$NAME` whose disk is
/// `/tmp/blk-$NAME.img`. Every result line starts `dom0-blk: `. With
/// `hold`, it also maps the guest's first ring page (`loadgen gntmap`)
/// and lets go once the guest reports it quarantined.
pub fn dom0_script(hold: bool) -> String {
    dom0_script_with(hold, 0)
}

/// [`dom0_script`], and with `bulk_mib` > 0 (the bench's write mode,
/// [`bench_guest_in`]) the MD5 of the image's first `bulk_mib` MiB once
/// the guest is done (`dom0-blk: bulk-md5 …`).
pub fn dom0_script_with(hold: bool, bulk_mib: u64) -> String {
    // The written region is one 512 KiB block of the image.
    const BLOCK: u64 = 1024; // sectors per 512 KiB
    const _: () = assert!(WRITE_START.is_multiple_of(BLOCK) && WRITE_COUNT == BLOCK);
    let region_block = WRITE_START / BLOCK;
    let (hold_start, hold_poll, hold_end) = if hold {
        (hold_start(), HOLD_POLL, HOLD_END)
    } else {
        (String::new(), "", "")
    };
    // dom0 is slow under emulation and its script gets only a few seconds
    // after the guest ends: the image and its MD5 come from one awk pass,
    // the expected region from a small one, and after the guest there is
    // one cmp and one md5sum (compared on the host with `expected_md5`).
    let bulk = if bulk_mib > 0 {
        format!(
            "say \"bulk-md5 $(head -c {} \"$img\" | md5sum | cut -d' ' -f1)\"\n",
            bulk_mib << 20
        )
    } else {
        String::new()
    };
    format!(
        r#"say() {{ echo "dom0-blk: $*"; }}
img=/tmp/blk-$NAME.img
log=/var/log/xen/console/guest-$NAME.log
part=/tmp/blk-$NAME.part
{hold_start}# The disk exists at once (sparse, all zeros) so the hotplug script need
# not wait; it is filled in place, sector 0 last: the guest waits until
# sector 0 holds the pattern.
rm -f "$img" "$part"
dd if=/dev/zero of="$img" bs=512 count=0 seek={SECTORS} 2> /dev/null || {{ say "FAILED: cannot create the image"; exit 1; }}
before=$(awk -v n={SECTORS} 'BEGIN {{ for (s = 0; s < n; s++) {{ l = sprintf("sector %08x\n", s); b = l l; b = b b; b = b b; b = b b; b = b b; printf "%s", b }} }}' | tee "$part" | md5sum | cut -d' ' -f1)
# A fill that fails (dom0's /tmp is memory and may be full) is said, with
# what takes the room, rather than leaving the guest waiting for sector 0.
fill() {{ err=$(dd "$@" conv=notrunc 2>&1 > /dev/null) || say "FAILED: filling the image: $err; /tmp: $(df -k /tmp | tail -1); $(ls -s /tmp | sort -rn | head -4 | tr '\n' ' ')"; }}
fill if="$part" of="$img" bs=512k skip=1 seek=1
fill if="$part" of="$img" bs=512 skip=1 seek=1 count=1023
fill if="$part" of="$img" bs=512 count=1
rm -f "$part"
say "image ready, $(stat -c %s "$img") bytes"
say "md5-before $before"
awk -v a={WRITE_START} -v n={WRITE_COUNT} 'BEGIN {{ for (s = a; s < a + n; s++) {{ l = sprintf("written %07x\n", s); b = l l; b = b b; b = b b; b = b b; b = b b; printf "%s", b }} }}' > /tmp/blk-$NAME.expect
# Wait for the guest's last line (or, checked now and then, its end).
seen=0
n=0
while [ $n -lt 1500 ]; do
    grep -q "Paravane: app " "$log" 2> /dev/null && break
{hold_poll}    if [ $((n % 25)) = 24 ]; then
        if xl domid "$NAME" > /dev/null 2>&1; then seen=1; elif [ $seen = 1 ]; then break; fi
    fi
    n=$((n + 1))
    sleep 0.2
done
dd if="$img" bs=512k skip={region_block} count=1 of=/tmp/blk-$NAME.region 2> /dev/null
if cmp -s /tmp/blk-$NAME.region /tmp/blk-$NAME.expect; then
    say "region ok"
else
    say "region differs: $(head -c 16 /tmp/blk-$NAME.region | od -c | head -1)"
fi
{bulk}say "md5-after $(md5sum < "$img" | cut -d' ' -f1)"
# dom0's /tmp is memory: leave room for the session's next disk guest.
rm -f "$img" /tmp/blk-$NAME.expect /tmp/blk-$NAME.region
{hold_end}"#
    )
}

/// The image's bytes, before the guest's write (`written == false`) or
/// after it.
pub fn image(written: bool) -> Vec<u8> {
    let mut bytes = Vec::with_capacity((SECTORS * 512) as usize);
    for sector in 0..SECTORS {
        let line = if written && (WRITE_START..WRITE_START + WRITE_COUNT).contains(&sector) {
            format!("written {sector:07x}\n")
        } else {
            format!("sector {sector:08x}\n")
        };
        for _ in 0..32 {
            bytes.extend_from_slice(line.as_bytes());
        }
    }
    bytes
}

/// The MD5 of the image before or after the guest's write, by the
/// host's `md5sum`.
pub fn expected_md5(written: bool) -> Result<String, String> {
    md5sum(image(written))
}

/// The first `mib` MiB after a bulk write: every sector holds the
/// `written SSSSSSS\n` lines.
pub fn bulk_image(mib: u64) -> Vec<u8> {
    let sectors = (mib << 20) / 512;
    let mut bytes = Vec::with_capacity((mib << 20) as usize);
    for sector in 0..sectors {
        let line = format!("written {sector:07x}\n");
        for _ in 0..32 {
            bytes.extend_from_slice(line.as_bytes());
        }
    }
    bytes
}

/// The MD5 of `data`, by the host's `md5sum`.
pub fn md5sum(data: Vec<u8>) -> Result<String, String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run md5sum: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("md5sum: no stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("md5sum: {e}"))?;
    writer
        .join()
        .map_err(|_| "md5sum: writer panicked".to_string())?
        .map_err(|e| format!("md5sum: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| format!("md5sum printed {text:?}"))
}

/// The guest's name in `mode`: [`NAME`] for PV, `pvh-` before it for PVH
/// (so both can share one dom0 session).
pub fn name(mode: GuestMode) -> String {
    match mode {
        GuestMode::Pv => NAME.to_string(),
        GuestMode::Pvh => format!("pvh-{NAME}"),
    }
}

/// `blkcheck` with the image as `xvda`, as a PV or PVH domU, named
/// [`name`]`(mode)`, its image `/tmp/blk-NAME.img`.
pub fn guest_in(blkcheck_elf: &Path, mode: GuestMode) -> GuestSpec {
    let name = name(mode);
    let mut guest = GuestSpec::new(&name, blkcheck_elf).with_mode(mode);
    guest.cmdline = format!("write_start={WRITE_START} write_count={WRITE_COUNT} wait_ready=120");
    guest.memory_mib = 64;
    guest.timeout = Duration::from_secs(150);
    guest.extra_config = vec![format!(
        "disk = ['format=raw,vdev=xvda,access=rw,backendtype=phy,script=block-rig,target=/tmp/blk-{name}.img']"
    )];
    guest.dom0_script = Some(dom0_script(false));
    guest
}

/// [`guest_in`] as the bench runs it: after the read and the check, the
/// guest writes the first `bulk_mib` MiB (`bulk_write_mib=`) and dom0
/// hashes them once it is done ([`dom0_script_with`]); `persistent`
/// false turns blkfront's persistent grants off (`blkfront.persistent=0`).
pub fn bench_guest_in(
    blkcheck_elf: &Path,
    mode: GuestMode,
    bulk_mib: u64,
    persistent: bool,
) -> GuestSpec {
    let mut guest = guest_in(blkcheck_elf, mode);
    guest
        .cmdline
        .push_str(&format!(" bulk_write_mib={bulk_mib}"));
    if !persistent {
        guest.cmdline.push_str(" blkfront.persistent=0");
    }
    guest.dom0_script = Some(dom0_script_with(false, bulk_mib));
    guest
}

/// [`guest_in`] with the quarantine check the rig tests run: dom0 maps
/// the guest's first ring page with `loadgen gntmap` (shipped from
/// `loadgen`) from the moment blkfront publishes it until the guest,
/// started with `hold_check=`, reports it quarantined after the
/// disconnect; the guest then waits for the quarantine to drain. The
/// bench keeps the plain [`guest_in`] (no 30 s close to time).
pub fn held_guest_in(blkcheck_elf: &Path, loadgen: &Path, mode: GuestMode) -> GuestSpec {
    let mut guest = guest_in(blkcheck_elf, mode);
    guest.cmdline.push_str(&format!(" hold_check={HOLD_CHECK}"));
    // blkfront's close waits REQUEST_TIMEOUT (30 s) for the ring page
    // dom0 holds before the kernel quarantines it.
    guest.timeout = Duration::from_secs(240);
    guest.dom0_tools = vec![loadgen.to_path_buf()];
    guest.dom0_script = Some(dom0_script(true));
    guest
}

/// `cargo xtask e2e block`: [`held_guest_in`] in each of `modes`, side
/// by side in one dom0 session, each checked by [`check`].
pub fn run(
    rig: &rig::Rig,
    blkcheck_elf: &Path,
    loadgen: &Path,
    modes: &[GuestMode],
) -> Vec<(String, Result<(), String>)> {
    let specs: Vec<GuestSpec> = modes
        .iter()
        .map(|&mode| held_guest_in(blkcheck_elf, loadgen, mode))
        .collect();
    let limit = Duration::from_secs(120) + specs.iter().map(|g| g.timeout).sum::<Duration>();
    let session = match rig.run_domus(&specs, limit) {
        Ok(session) => session,
        Err(e) => return vec![("e2e block: run".into(), Err(e.to_string()))],
    };
    let mut results = Vec::new();
    for &mode in modes {
        let name = name(mode);
        match session.guests.iter().find(|g| g.name == name) {
            Some(report) => results.extend(
                check(report)
                    .into_iter()
                    .map(|(check, result)| (format!("{mode} {check}"), result)),
            ),
            None => results.push((
                format!("{mode} e2e block"),
                Err(format!("no report for {name}")),
            )),
        }
    }
    results
}

/// The value after `prefix` on the first line starting with it.
fn find<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines.iter().find_map(|line| line.strip_prefix(prefix))
}

fn has(lines: &[String], text: &str) -> Result<(), String> {
    if lines.iter().any(|line| line.contains(text)) {
        Ok(())
    } else {
        Err(format!("no line with {text:?}"))
    }
}

/// The number after `key=` in `line` and the one after `(offered ` /
/// `(max order offered ` that follows it.
fn feature(line: &str, key: &str, offer: &str) -> Option<(u64, u64)> {
    let rest = &line[line.find(&format!("{key}="))? + key.len() + 1..];
    let (used, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix(&format!("({offer} "))?;
    let offered = rest.split(')').next()?;
    Some((used.parse().ok()?, offered.parse().ok()?))
}

/// Checks that the guest's feature line (after `blkfront: `) shows the
/// features the backend offered in use: `indirect=32` when it offers more
/// than 11 segments (else 0), `ring-pages=2^min(order, 2)`.
pub fn expected_features(line: &str) -> Result<(), String> {
    let (indirect, indirect_offered) =
        feature(line, "indirect", "offered").ok_or("no indirect=N (offered M)")?;
    let (pages, order) =
        feature(line, "ring-pages", "max order offered").ok_or("no ring-pages=N (...)")?;
    let want_indirect = if indirect_offered > 11 { 32 } else { 0 };
    let want_pages = 1u64 << order.min(2);
    if indirect != want_indirect {
        return Err(format!(
            "indirect={indirect} with {indirect_offered} offered, expected {want_indirect}"
        ));
    }
    if pages != want_pages {
        return Err(format!(
            "ring-pages={pages} with max order {order} offered, expected {want_pages}"
        ));
    }
    Ok(())
}

/// Checks that the feature line says persistent grants are in use.
pub fn persistent_on(line: &str) -> Result<(), String> {
    let said = line
        .split(", ")
        .find_map(|part| part.strip_prefix("persistent="))
        .ok_or("no persistent=… in the feature line")?;
    if said == "true" {
        Ok(())
    } else {
        Err(format!("persistent={said}"))
    }
}

/// Checks a finished run's report.
pub fn check(report: &GuestReport) -> Vec<(String, Result<(), String>)> {
    let console = &report.console;
    let dom0 = &report.dom0_output;
    let with_context = crate::report::with_context(report);
    let mut results = Vec::new();

    let features = find(console, "blkfront: ").map(str::to_string);
    results.push((
        format!(
            "e2e block: blkfront connects ({})",
            features.as_deref().unwrap_or("no feature line")
        ),
        with_context(match &features {
            Some(line) if line.starts_with(&format!("{SECTORS} sectors of 512 bytes")) => Ok(()),
            Some(line) => Err(format!("unexpected geometry: {line}")),
            None => Err("no `blkfront: ` line".into()),
        }),
    ));

    let used = features
        .as_deref()
        .and_then(|line| line.find("indirect=").map(|at| &line[at..]))
        .unwrap_or("no feature line");
    results.push((
        format!("e2e block: blkfront uses the offered indirect descriptors and multi-page ring ({used})"),
        with_context(match &features {
            Some(line) => expected_features(line),
            None => Err("no `blkfront: ` line".into()),
        }),
    ));

    results.push((
        "e2e block: blkfront asks for persistent grants and blkback agrees (persistent=true)"
            .into(),
        with_context(match &features {
            Some(line) => persistent_on(line),
            None => Err("no `blkfront: ` line".into()),
        }),
    ));

    let throughput = find(console, "blkcheck: read ").unwrap_or("no read line");
    results.push((
        format!("e2e block: whole disk read, pattern checked ({throughput})"),
        with_context(has(
            console,
            &format!("blkcheck: pattern ok in all {SECTORS} sectors"),
        )),
    ));

    let guest_md5 = find(console, "blkcheck: md5 ");
    let dom0_md5 = find(dom0, "dom0-blk: md5-before ");
    results.push((
        format!(
            "e2e block: guest's MD5 of the disk equals dom0's md5sum ({})",
            guest_md5.unwrap_or("-")
        ),
        with_context(match (guest_md5, dom0_md5) {
            (Some(a), Some(b)) if a == b && a.len() == 32 => Ok(()),
            (a, b) => Err(format!("guest {a:?}, dom0 {b:?}")),
        }),
    ));

    let host_before = expected_md5(false);
    results.push((
        "e2e block: the image dom0 built is the expected one (host md5sum)".into(),
        with_context(match (&host_before, dom0_md5) {
            (Ok(host), Some(dom0)) if host == dom0 => Ok(()),
            (host, dom0) => Err(format!("host {host:?}, dom0 {dom0:?}")),
        }),
    ));

    let wrote = find(console, "blkcheck: wrote ").unwrap_or("no write line");
    let host_after = expected_md5(true);
    let dom0_after = find(dom0, "dom0-blk: md5-after ");
    results.push((
        format!("e2e block: written region lands in the image byte for byte, the rest unchanged ({wrote})"),
        with_context(
            has(console, "blkcheck: read back ok")
                .and_then(|()| has(dom0, "dom0-blk: region ok"))
                .and_then(|()| match (&host_after, dom0_after) {
                    (Ok(host), Some(dom0)) if host == dom0 => Ok(()),
                    (host, dom0) => Err(format!(
                        "image after the run: dom0 md5 {dom0:?}, expected {host:?}"
                    )),
                }),
        ),
    ));

    results.extend(
        quarantine_checks(console, dom0)
            .into_iter()
            .map(|(name, result)| (name, with_context(result))),
    );

    // While dom0 holds the ring page, blkfront's close reaches the
    // backend's `Closed` but answers `Timeout` for the page it could not
    // take back (which the kernel quarantines).
    results.push((
        "e2e block: blkcheck disconnects (a timeout for the ring page dom0 holds), finishes and powers off".into(),
        with_context(
            has(console, "blkcheck: disconnected")
                .or_else(|_| {
                    has(console, "blkcheck: quarantine holds ").and_then(|()| {
                        has(
                            console,
                            "blkcheck: disconnect failed: blkfront: the backend did not answer in time",
                        )
                    })
                })
                .and_then(|()| has(console, "blkcheck: done"))
                .and_then(|()| {
                    if report.ending == Ending::Poweroff {
                        Ok(())
                    } else {
                        Err(format!("ended {}", report.ending))
                    }
                }),
        ),
    ));
    results
}

/// The number that starts `text`, as in `1 page still mapped`.
fn pages(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The gntmap checks: dom0 mapped the guest's ring page; after the
/// disconnect the guest reported it quarantined (at least one page, not
/// freed); after dom0 let go, the guest's quarantine fell to 0.
pub fn quarantine_checks(console: &[String], dom0: &[String]) -> Vec<(String, Result<(), String>)> {
    let mapped = find(dom0, "dom0-blk: gntmap: mapped ");
    let held = find(console, "blkcheck: quarantine holds ");
    let drained = find(console, "blkcheck: quarantine drained after ");
    let released = find(dom0, "dom0-blk: gntmap: released ");
    vec![
        (
            format!(
                "e2e block: dom0 maps the guest's ring page through gntdev (gntmap: mapped {})",
                mapped.unwrap_or("-")
            ),
            match mapped {
                Some(_) => Ok(()),
                None => Err("dom0's gntmap printed no `mapped` line".into()),
            },
        ),
        (
            format!(
                "e2e block: after the disconnect the page dom0 maps is quarantined, not freed ({})",
                held.map(|h| h.split(" still").next().unwrap_or(h))
                    .unwrap_or("-")
            ),
            match held.and_then(pages) {
                Some(n) if n >= 1 && mapped.is_some() => Ok(()),
                Some(n) => Err(format!("{n} pages quarantined, dom0 mapped: {mapped:?}")),
                None => Err("no `blkcheck: quarantine holds N page(s)` line".into()),
            },
        ),
        (
            format!(
                "e2e block: once dom0 lets go, the quarantine falls to 0 ({})",
                drained.unwrap_or("-")
            ),
            match (released, drained) {
                (Some(r), Some(d))
                    if r.contains("-release appeared") && d.contains(", 0 quarantined (") =>
                {
                    Ok(())
                }
                (r, d) => Err(format!("dom0 released: {r:?}; guest: {d:?}")),
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::{expected_features, persistent_on, quarantine_checks};

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_quarantine_checks_need_all_three_steps() {
        let dom0 = lines(&[
            "dom0-blk: gntmap: mapped dom 3 ref 8 (checksum 0x00000000)",
            "dom0-blk: gntmap: released dom 3 ref 8 after 40 s (/tmp/blkcheck-release appeared)",
        ]);
        let console = lines(&[
            "blkcheck: quarantine holds 1 page still mapped by the other side (not freed)",
            "blkcheck: quarantine drained after 1 s: 0 live, 9 free of 10, 0 quarantined (1 ever), 0 leaked (0 ever)",
        ]);
        let ok = |c: &[String], d: &[String]| {
            quarantine_checks(c, d)
                .iter()
                .map(|(_, r)| r.is_ok())
                .collect::<Vec<_>>()
        };
        assert_eq!(ok(&console, &dom0), [true, true, true]);
        // Nothing quarantined: the page was freed (or never mapped).
        let empty =
            lines(&["blkcheck: quarantine empty after the disconnect (nothing still mapped)"]);
        assert_eq!(ok(&empty, &dom0), [true, false, false]);
        // dom0 let go only at its timeout, or the guest never drained.
        let timed_out = lines(&[
            "dom0-blk: gntmap: mapped dom 3 ref 8 (checksum 0x00000000)",
            "dom0-blk: gntmap: released dom 3 ref 8 after 400 s (timeout)",
        ]);
        assert_eq!(ok(&console, &timed_out), [true, true, false]);
        let stuck = lines(&[
            "blkcheck: quarantine holds 1 page still mapped by the other side (not freed)",
            "blkcheck: quarantine still holds pages after 60 s: 0 live, 9 free of 10, 1 quarantined (1 ever), 0 leaked (0 ever)",
        ]);
        assert_eq!(ok(&stuck, &dom0), [true, true, false]);
        assert_eq!(ok(&console, &[]), [false, false, false]);
    }

    const LINE: &str =
        "131072 sectors of 512 bytes, features: flush=true, barrier=true, persistent=true";

    #[test]
    fn persistent_grants_must_be_said_on() {
        assert_eq!(persistent_on(LINE), Ok(()));
        let off = LINE.replace(
            "persistent=true",
            "persistent=false (backend did not offer)",
        );
        assert_eq!(
            persistent_on(&off),
            Err("persistent=false (backend did not offer)".into())
        );
        assert!(persistent_on("131072 sectors, features: flush=true").is_err());
    }

    #[test]
    fn the_feature_line_must_show_what_was_offered_in_use() {
        let line = |rest: &str| format!("{LINE}, {rest}");
        assert_eq!(
            expected_features(&line(
                "indirect=32 (offered 256), ring-pages=4 (max order offered 4)"
            )),
            Ok(())
        );
        assert_eq!(
            expected_features(&line(
                "indirect=0 (offered 0), ring-pages=1 (max order offered 0)"
            )),
            Ok(())
        );
        assert_eq!(
            expected_features(&line(
                "indirect=0 (offered 11), ring-pages=2 (max order offered 1)"
            )),
            Ok(())
        );
        assert!(expected_features(&line(
            "indirect=0 (offered 256), ring-pages=4 (max order offered 4)"
        ))
        .is_err());
        assert!(expected_features(&line(
            "indirect=32 (offered 256), ring-pages=1 (max order offered 4)"
        ))
        .is_err());
        assert!(expected_features(LINE).is_err());
    }
}
