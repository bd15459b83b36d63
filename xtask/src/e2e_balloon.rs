//! The memory-target test: `xl mem-set` down to half and back up while
//! `memstress watch=` keeps a pattern in memory, then below what the
//! guest uses (it must say what it could not give), then targets the
//! toolstack would never write (above static-max, garbage) written with
//! `xenstore-write`, then one more ordinary target (after dom0 has put
//! a number back: libxl itself refuses to `mem-set` a domain whose
//! `memory/target` is garbage).
//!
//! dom0's script drives it, one step at a time: it waits on the guest's
//! console log for the line that says the balloon finished (or refused)
//! the previous target, then reports what xenstore (`memory/target`) and
//! `xl list` (the Mem column, Xen's count of the domain's pages in MiB)
//! say, and moves on; at the end it writes `data/memstress-stop`. The
//! checks ([`check`]) hold the guest's reports against dom0's: each
//! target's reservation line must say `=`, name the KiB dom0 read back
//! from xenstore, and give a Xen page count that is what `xl list`
//! shows; the bad values must each get a `balloon refused` line; the
//! pattern must be intact at the end and the guest must power off.
//!
//! `rig_tests` adds [`guest`] (PV, and PVH with the PVH tests) to the
//! shared domU session.
//!
//! All of a big domain's memory: [`run_big`] boots `memstress fill=all`
//! with [`BIG_MIB`] MiB, more than fits below PVH's MMIO hole at
//! 3.9 GiB, in a session of its own (the machine must be sized for it:
//! [`big_rig`]); the guest must report the whole of it in its memory
//! map, none ignored, and fill frames above 4 GiB.

use rig::{Ending, GuestMode, GuestReport, GuestSpec};
use std::path::Path;
use std::time::Duration;

/// The guest's memory (MiB); the test halves it.
pub const MEMORY_MIB: u32 = 32;

/// The targets dom0 sets in turn with `xl mem-set` (MiB) and the label
/// of each step: start (as created), half, back to full, and after the
/// bad values a last one.
const STEPS: &[(&str, u32)] = &[("start", 32), ("half", 16), ("full", 32)];
/// A target below what the guest uses (MiB): it must say what it could
/// not give.
const LOW_MIB: u32 = 4;
/// The target after the bad ones (MiB).
const AFTER_BAD_MIB: u32 = 24;
/// A target above static-max (KiB).
const ABOVE_STATIC_MAX_KIB: u64 = 999_999_999;
/// Garbage for `memory/target`.
const GARBAGE: &str = "lots-of-memory";

/// The guest's name in `mode`.
pub fn name(mode: GuestMode) -> String {
    match mode {
        GuestMode::Pv => "balloon".to_string(),
        GuestMode::Pvh => "pvh-balloon".to_string(),
    }
}

/// dom0's part. Every result line starts `dom0-balloon: `.
fn dom0_script() -> String {
    let mut steps = String::new();
    for (index, (label, mib)) in STEPS.iter().enumerate().skip(1) {
        // Reservation lines so far: one per finished target.
        let lines = index + 1;
        steps.push_str(&format!(
            r#"xl mem-set "$NAME" {mib}m || say "FAILED: xl mem-set {mib}m: $?"
wait_for "memstress: reservation .* target" {lines} || say "no reservation line for {label}"
report {label}
"#
        ));
    }
    steps.push_str(&format!(
        r#"xl mem-set "$NAME" {LOW_MIB}m || say "FAILED: xl mem-set {LOW_MIB}m: $?"
wait_for "memstress: reservation .* memory/target {low_kib} KiB" 1 || say "no reservation line for low"
report low
"#,
        low_kib = LOW_MIB * 1024
    ));
    format!(
        r#"say() {{ echo "dom0-balloon: $*"; }}
log=/var/log/xen/console/guest-$NAME.log
# wait_for PATTERN COUNT: until the guest's log has COUNT lines matching
# PATTERN (60 s at most).
wait_for() {{
    n=0
    while [ $n -lt 300 ]; do
        c=$(grep -c "$1" "$log" 2> /dev/null)
        [ "${{c:-0}}" -ge "$2" ] && return 0
        n=$((n + 1))
        sleep 0.2
    done
    return 1
}}
report() {{
    say "$1 target $(xenstore-read "$home/memory/target") xl-list $(xl list "$NAME" | awk 'NR == 2 {{ print $3 }}')"
}}
wait_for "memstress: keeping a pattern" 1 || {{ say "FAILED: the guest never started watching"; exit 1; }}
domid=$(xl domid "$NAME")
home=/local/domain/$domid
say "static-max $(xenstore-read "$home/memory/static-max")"
wait_for "memstress: reservation .* target" 1 || say "no reservation line at start"
report start
{steps}xenstore-write "$home/memory/target" {ABOVE_STATIC_MAX_KIB}
wait_for "memstress: balloon refused .*above static-max" 1 || say "no refusal of {ABOVE_STATIC_MAX_KIB}"
xenstore-write "$home/memory/target" {GARBAGE}
wait_for "memstress: balloon refused .*not a number" 1 || say "no refusal of {GARBAGE}"
report garbage
# libxl reads the old target back before it sets a new one, and refuses
# garbage: put a number back first.
xenstore-write "$home/memory/target" {full_kib}
xl mem-set "$NAME" {AFTER_BAD_MIB}m || say "FAILED: xl mem-set {AFTER_BAD_MIB}m: $?"
wait_for "memstress: reservation .* memory/target {after_kib} KiB" 1 || say "no reservation line after the bad targets"
report after-bad
xenstore-write "$home/data/memstress-stop" 1
"#,
        after_kib = AFTER_BAD_MIB * 1024,
        full_kib = MEMORY_MIB * 1024,
    )
}

/// The guest: `memstress watch=` in `mode`, [`MEMORY_MIB`] MiB.
pub fn guest(memstress_elf: &Path, mode: GuestMode) -> GuestSpec {
    let mut guest = GuestSpec::new(name(mode), memstress_elf).with_mode(mode);
    guest.cmdline = "watch=150 keep=4".into();
    guest.memory_mib = MEMORY_MIB;
    guest.timeout = Duration::from_secs(180);
    guest.dom0_script = Some(dom0_script());
    guest
}

/// The big guest's memory (MiB): 512 MiB above 4 GiB for PVH.
pub const BIG_MIB: u32 = 4608;

/// The big guest's name in `mode`.
pub fn big_name(mode: GuestMode) -> String {
    match mode {
        GuestMode::Pv => "big".to_string(),
        GuestMode::Pvh => "pvh-big".to_string(),
    }
}

/// `memstress fill=all` with [`BIG_MIB`] MiB in `mode`.
pub fn big_guest(memstress_elf: &Path, mode: GuestMode) -> GuestSpec {
    let mut guest = GuestSpec::new(big_name(mode), memstress_elf).with_mode(mode);
    guest.cmdline = "fill=all".into();
    guest.memory_mib = BIG_MIB;
    guest.timeout = Duration::from_secs(240);
    guest
}

/// `rig` with a machine that holds dom0 and a [`BIG_MIB`] guest, and
/// without Xen's scrub of all free memory at boot (QEMU's RAM starts
/// zeroed; under emulation the scrub costs seconds per GiB).
pub fn big_rig(rig: &rig::Rig) -> rig::Rig {
    let mut big = rig.clone();
    big.memory_mib = big.memory_mib.max(big.dom0_memory_mib + BIG_MIB + 256);
    big.xen_extra_cmdline.push_str(" bootscrub=0");
    big
}

/// Boots the big guest in each of `modes`, one after the other, in one
/// dom0 session of [`big_rig`]; checks each with [`check_big`].
pub fn run_big(
    rig: &rig::Rig,
    memstress_elf: &Path,
    modes: &[GuestMode],
) -> Vec<(GuestMode, String, Result<(), String>)> {
    let specs: Vec<GuestSpec> = modes
        .iter()
        .map(|&mode| big_guest(memstress_elf, mode))
        .collect();
    let limit = Duration::from_secs(120) + specs.iter().map(|g| g.timeout).sum::<Duration>();
    let session = big_rig(rig).run_domus(&specs, limit);
    if let Ok(session) = &session {
        crate::report::print_session_timing(session);
    }
    modes
        .iter()
        .map(|&mode| {
            let name = big_name(mode);
            let report = session.as_ref().map_err(|e| e.to_string()).and_then(|s| {
                s.guests
                    .iter()
                    .find(|g| g.name == name)
                    .ok_or(format!("no report for {name}"))
            });
            match report {
                Ok(report) => {
                    let (title, result) = check_big(report, mode);
                    (mode, title, result)
                }
                Err(why) => (mode, "big memory: run".to_string(), Err(why)),
            }
        })
        .collect()
}

/// The numbers in `line`, in order.
fn numbers(line: &str) -> Vec<u64> {
    line.split(|c: char| !c.is_ascii_digit())
        .filter_map(|word| word.parse().ok())
        .collect()
}

/// The big guest's checks: its `mm:` line counts all [`BIG_MIB`] MiB
/// (PVH: none of the memory map ignored), and `memstress` filled frames
/// above 4 GiB (PVH; PV too, as pseudo-physical frames), at least 98 %
/// of the domain, marks intact; poweroff.
pub fn check_big(report: &GuestReport, mode: GuestMode) -> (String, Result<(), String>) {
    let console = &report.console;
    let mm = console.iter().find(|line| line.starts_with("mm: "));
    let fill = console
        .iter()
        .find(|line| line.starts_with("memstress: filled "));
    let title = format!(
        "big memory: a {BIG_MIB} MiB domU maps and fills all its frames ({})",
        fill.map_or("no fill line", |line| line.as_str())
    );
    let frames = u64::from(BIG_MIB) * 256;
    let result = (|| {
        let mm = mm.ok_or("no `mm:` line")?;
        let mm_numbers = numbers(mm);
        if mm_numbers.first() != Some(&frames) && !mm.contains(&format!("({frames} RAM, ")) {
            return Err(format!("the domain is not {frames} frames: {mm}"));
        }
        if mode == GuestMode::Pvh && !mm.contains(&format!("{BIG_MIB} MiB; 0 frames ignored")) {
            return Err(format!("PVH memory not all used: {mm}"));
        }
        let fill = fill.ok_or("no `memstress: filled` line")?;
        // filled F frames (M MiB) of X free in T ms, highest pfn 0xH, A frames above 4 GiB, ...
        let filled = numbers(fill).first().copied();
        let above = fill
            .split_once(" frames above 4 GiB")
            .and_then(|(before, _)| before.rsplit(' ').next()?.parse::<u64>().ok());
        // All but the reserve and the handles' own heap (16 bytes a
        // page): at least 98 % of the domain.
        if filled.is_none_or(|f| f * 100 < frames * 98) {
            return Err(format!("filled too few frames: {fill}"));
        }
        if above.is_none_or(|a| a == 0) {
            return Err(format!("no frame above 4 GiB filled: {fill}"));
        }
        if !fill.ends_with("marks intact") {
            return Err(format!("marks not intact: {fill}"));
        }
        if !console
            .iter()
            .any(|line| line == &crate::report::success_line("memstress"))
        {
            return Err("no success line".into());
        }
        match report.ending {
            Ending::Poweroff => Ok(()),
            ref other => Err(format!("ended {other}")),
        }
    })();
    (title, crate::report::with_context(report)(result))
}

/// dom0's `LABEL target KIB xl-list MIB` line: `(kib, mib)`.
fn dom0_step(dom0: &[String], label: &str) -> Option<(String, u64)> {
    let rest = dom0
        .iter()
        .find_map(|line| line.strip_prefix(&format!("dom0-balloon: {label} target ")))?;
    let (target, mib) = rest.split_once(" xl-list ")?;
    Some((target.to_string(), mib.trim().parse().ok()?))
}

/// A guest's reservation line.
struct GuestStep {
    /// Its index in the console.
    at: usize,
    /// `=` or `!=`.
    relation: String,
    /// The reservation as target pages.
    reached: u64,
    /// The target in pages.
    target_pages: u64,
    /// Xen's count of the domain's pages.
    xen_pages: u64,
}

/// The guest's first reservation line for `kib` at or after line `from`.
fn guest_step(console: &[String], kib: &str, from: usize) -> Option<GuestStep> {
    let (at, line) = console.iter().enumerate().skip(from).find(|(_, line)| {
        line.starts_with("memstress: reservation ")
            && line.contains(&format!("memory/target {kib} KiB)"))
    })?;
    let words: Vec<&str> = line.split_whitespace().collect();
    // memstress: reservation A pages REL target B pages (Xen: X pages; ...
    let number = |at: usize| words.get(at)?.trim_end_matches(';').parse().ok();
    Some(GuestStep {
        at,
        relation: words.get(4)?.to_string(),
        reached: number(2)?,
        target_pages: number(6)?,
        xen_pages: number(9)?,
    })
}

/// One step's check: dom0 read `kib` back from xenstore, the guest
/// reached it (`=`, target pages = KiB / 4) in its first line for that
/// target after line `cursor` (which moves past it), and `xl list` shows
/// Xen's pages in MiB.
fn step_check(
    console: &[String],
    dom0: &[String],
    label: &str,
    mib: u32,
    cursor: &mut usize,
) -> Result<String, String> {
    let (target, listed) = dom0_step(dom0, label).ok_or(format!("no dom0 line for {label}"))?;
    let kib = u64::from(mib) * 1024;
    if target != kib.to_string() {
        return Err(format!(
            "{label}: xenstore says target {target}, expected {kib}"
        ));
    }
    let step = guest_step(console, &target, *cursor)
        .ok_or(format!("{label}: no guest line for {target} KiB"))?;
    *cursor = step.at + 1;
    let GuestStep {
        relation,
        reached,
        target_pages,
        xen_pages,
        ..
    } = step;
    if relation != "=" || reached != target_pages || target_pages != kib / 4 {
        return Err(format!(
            "{label}: guest reached {reached} pages {relation} target {target_pages} (want {})",
            kib / 4
        ));
    }
    if xen_pages * 4 / 1024 != listed {
        return Err(format!(
            "{label}: guest counts {xen_pages} Xen pages, xl list says {listed} MiB"
        ));
    }
    Ok(format!(
        "{target} KiB: {xen_pages} pages, xl list {listed} MiB"
    ))
}

/// The low step: the guest could not get down to [`LOW_MIB`], says
/// so (`!=`, frames in use), and `xl list` shows what it kept.
fn low_check(console: &[String], dom0: &[String]) -> Result<String, String> {
    let (target, listed) = dom0_step(dom0, "low").ok_or("no dom0 line for low")?;
    let kib = u64::from(LOW_MIB) * 1024;
    if target != kib.to_string() {
        return Err(format!(
            "low: xenstore says target {target}, expected {kib}"
        ));
    }
    let GuestStep {
        relation,
        reached,
        target_pages,
        xen_pages,
        ..
    } = guest_step(console, &target, 0).ok_or(format!("low: no guest line for {target} KiB"))?;
    let said_why = console.iter().any(|line| {
        line.contains(&format!("memory/target {kib} KiB); could not give "))
            && line.ends_with("frames in use")
    });
    if relation != "!=" || reached <= target_pages || !said_why {
        return Err(format!(
            "low: guest reached {reached} pages {relation} target {target_pages}, reason given: {said_why}"
        ));
    }
    if xen_pages * 4 / 1024 != listed {
        return Err(format!(
            "low: guest counts {xen_pages} Xen pages, xl list says {listed} MiB"
        ));
    }
    Ok(format!("kept {xen_pages} pages, xl list {listed} MiB"))
}

/// Checks a finished run's report; `mode` names the results.
pub fn check(report: &GuestReport) -> Vec<(String, Result<(), String>)> {
    let with_context = crate::report::with_context(report);
    let (console, dom0) = (&report.console, &report.dom0_output);
    let mut results = Vec::new();

    let mut figures = Vec::new();
    let mut steps = Ok(());
    let mut cursor = 0;
    for (label, mib) in STEPS.iter().chain(&[("after-bad", AFTER_BAD_MIB)]) {
        match step_check(console, dom0, label, *mib, &mut cursor) {
            Ok(figure) => figures.push(figure),
            Err(why) => {
                steps = Err(why);
                break;
            }
        }
    }
    results.push((
        format!(
            "balloon: xl mem-set half and back, reservation = xenstore target = xl list ({})",
            figures.join("; ")
        ),
        with_context(steps),
    ));

    let refused = |text: &str| {
        if console
            .iter()
            .any(|line| line.starts_with("memstress: balloon refused") && line.contains(text))
        {
            Ok(())
        } else {
            Err(format!(
                "no `memstress: balloon refused` line with {text:?}"
            ))
        }
    };
    let low = low_check(console, dom0);
    results.push((
        format!(
            "balloon: a target below what is in use says what it could not give ({})",
            low.as_deref().unwrap_or("-")
        ),
        with_context(low.map(drop)),
    ));

    results.push((
        "balloon: a target above static-max and garbage are refused with a clear line; pages Xen keeps (maximum lowered by xl) are reported".into(),
        with_context(
            refused(&format!("{ABOVE_STATIC_MAX_KIB} KiB: above static-max"))
                .and_then(|()| refused(&format!("not a number: \"{GARBAGE}\"")))
                .and_then(|()| {
                    // After the low step xl had lowered the domain's
                    // maximum: Xen gives nothing back, and the guest
                    // says so, with the maximum.
                    let said = console.iter().any(|line| {
                        line.contains(&format!("memory/target {ABOVE_STATIC_MAX_KIB} KiB); Xen refused "))
                            && line.contains("the domain's maximum is ")
                    });
                    said.then_some(()).ok_or_else(|| {
                        "no line saying Xen refused to give pages back, with the maximum".to_string()
                    })
                }),
        ),
    ));

    let done = console
        .iter()
        .find(|line| line.starts_with("memstress: done: pattern intact"));
    results.push((
        format!(
            "balloon: pattern intact throughout, clean poweroff ({})",
            done.map_or("no done line", |line| line.as_str())
        ),
        with_context(match (done, &report.ending) {
            (Some(_), Ending::Poweroff)
                if !console.iter().any(|line| line.contains("pattern broken")) =>
            {
                Ok(())
            }
            (done, ending) => Err(format!("done line {done:?}, ending {ending}")),
        }),
    ));
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn steps_are_read_from_both_sides() {
        let console = lines(
            "memstress: reservation 4096 pages = target 4096 pages (Xen: 4101 pages; memory/target 16384 KiB)\n\
             memstress: reservation 8192 pages = target 8192 pages (Xen: 8197 pages; memory/target 32768 KiB)",
        );
        let dom0 = lines(
            "dom0-balloon: half target 16384 xl-list 16\ndom0-balloon: full target 32768 xl-list 32",
        );
        let mut cursor = 0;
        assert_eq!(
            step_check(&console, &dom0, "half", 16, &mut cursor),
            Ok("16384 KiB: 4101 pages, xl list 16 MiB".into())
        );
        assert_eq!(cursor, 1);
        assert!(step_check(&console, &dom0, "full", 32, &mut cursor).is_ok());
        assert!(
            step_check(&console, &dom0, "full", 32, &mut cursor).is_err(),
            "a line counts for one step only"
        );
        assert!(step_check(&console, &dom0, "full", 24, &mut 0).is_err());
        let wrong = lines("dom0-balloon: half target 16384 xl-list 17");
        assert!(step_check(&console, &wrong, "half", 16, &mut 0).is_err());
        let short = lines(
            "memstress: reservation 5000 pages != target 4096 pages (Xen: 5000 pages; memory/target 16384 KiB); could not give 904 pages: frames in use",
        );
        assert!(step_check(&short, &dom0, "half", 16, &mut 0).is_err());
        let low = lines(
            "memstress: reservation 1500 pages != target 1024 pages (Xen: 1500 pages; memory/target 4096 KiB); could not give 476 pages: frames in use",
        );
        let dom0_low = lines("dom0-balloon: low target 4096 xl-list 5");
        assert_eq!(
            low_check(&low, &dom0_low),
            Ok("kept 1500 pages, xl list 5 MiB".into())
        );
        assert!(low_check(&short, &dom0_low).is_err());
    }

    #[test]
    fn the_big_guest_is_read_from_its_lines() {
        let report = |mm: &str, fill: &str| GuestReport {
            name: "pvh-big".into(),
            console: lines(&format!(
                "{mm}\n{fill}\n{}",
                crate::report::success_line("memstress")
            )),
            hypervisor_console: Vec::new(),
            ending: Ending::Poweroff,
            evidence: String::new(),
            elapsed: Duration::ZERO,
            dom0_output: Vec::new(),
            dom0_status: None,
            log: Default::default(),
            emulation_fault: None,
        };
        let mm = "mm: 1196032 frames (1179648 RAM, 4608 MiB; 0 frames ignored), 1179535 free; PVH identity map of 5 GiB";
        let fill = "memstress: filled 1179000 frames (4605 MiB) of 1179535 free in 9000 ms, highest pfn 0x123fff, 130000 frames above 4 GiB, marks intact";
        assert_eq!(check_big(&report(mm, fill), GuestMode::Pvh).1, Ok(()));
        let low = fill.replace("130000 frames above", "0 frames above");
        assert!(check_big(&report(mm, &low), GuestMode::Pvh).1.is_err());
        let ignored = mm.replace("0 frames ignored", "503808 frames ignored");
        assert!(check_big(&report(&ignored, fill), GuestMode::Pvh)
            .1
            .is_err());
    }

    #[test]
    fn the_script_steps_through_every_target() {
        let script = dom0_script();
        assert!(script.contains("xl mem-set \"$NAME\" 16m"));
        assert!(script.contains("wait_for \"memstress: reservation .* target\" 3"));
        assert!(script.contains(&format!("memory/target\" {GARBAGE}")));
        assert!(script.contains("data/memstress-stop"));
    }
}
