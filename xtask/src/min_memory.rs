//! The smallest memory each app still runs in, found by the rig.
//!
//! `cargo xtask bench --footprint` boots `hello`, `echo` and `httpd` as
//! PV and as PVH domUs in one dom0 session, each at a falling series of `memory=`
//! sizes, and reports per app the smallest size at which it still did
//! its job, with why the next size down failed. Doing the job means:
//! `hello` prints its success line and powers off; `echo` sends back a
//! 1 MiB stream from dom0 byte for byte (MD5 compared in dom0) and
//! powers off on `quit`; `httpd` serves its page to dom0's `wget` (the
//! marker checked) and powers off on `/quit`. A size below which xl or
//! Xen refuse the domain counts as a failure like any other, with the
//! toolstack's own error as the reason (for a PV guest the floor is the
//! initial mapping libxc builds: the image, its bss and the boot
//! padding the kernel asks for, the p2m list, start info and page
//! tables, which must fit in `memory=`).

use crate::bench_json::{Row, Series};
use rig::{Ending, GuestMode, GuestReport, GuestSpec, Rig};
use std::path::Path;
use std::time::Duration;

/// The sizes tried, MiB, largest first.
pub const SIZES: [u32; 7] = [16, 8, 6, 5, 4, 3, 2];

/// The apps measured.
pub const APPS: [&str; 3] = ["hello", "echo", "httpd"];

/// The guests' address (one at a time, so one address serves).
const IP: &str = "10.0.0.31";

/// The guest name for `app` at `mib` in `mode`.
fn name(app: &str, mib: u32, mode: GuestMode) -> String {
    match mode {
        GuestMode::Pv => format!("minmem-{app}-{mib}"),
        GuestMode::Pvh => format!("minmem-pvh-{app}-{mib}"),
    }
}

/// dom0's side for `app` (lines start `MINMEM `).
fn script(app: &str) -> Option<String> {
    let wait = format!("G={IP}\n{}", crate::e2e_net::wait_for_ping("MINMEM", 40));
    let end = r#"n=0
while [ $n -lt 75 ] && xl domid $NAME > /dev/null 2>&1; do n=$((n+1)); sleep 0.2; done
xl domid $NAME > /dev/null 2>&1 && xl destroy $NAME
"#;
    match app {
        "echo" => Some(format!(
            r#"{wait}head -c 1048576 /dev/urandom > /tmp/$NAME-in
nc $G 7 < /tmp/$NAME-in > /tmp/$NAME-out
if [ "$(md5sum < /tmp/$NAME-in)" = "$(md5sum < /tmp/$NAME-out)" ]; then echo "MINMEM job ok"; else echo "MINMEM job failed: $(wc -c < /tmp/$NAME-out) bytes back"; fi
rm -f /tmp/$NAME-in /tmp/$NAME-out
echo quit | timeout 10 nc $G 7 > /dev/null
{end}"#
        )),
        "httpd" => Some(format!(
            r#"{wait}if timeout 30 wget -q -O - http://$G/ 2>&1 | grep -q '{marker}'; then echo "MINMEM job ok"; else echo "MINMEM job failed: no page with the marker"; fi
timeout 10 wget -q -O - http://$G/quit > /dev/null 2>&1
{end}"#,
            marker = crate::e2e_httpd::marker()
        )),
        _ => None,
    }
}

/// The session's guests: every app at every size, PV then PVH.
pub fn guests(
    elf: &dyn Fn(&str) -> Result<std::path::PathBuf, String>,
) -> Result<Vec<GuestSpec>, String> {
    let mut guests = Vec::new();
    for mode in GuestMode::ALL {
        for app in APPS {
            let kernel = elf(app)?;
            for mib in SIZES {
                guests.push(spec(app, &kernel, mib, mode));
            }
        }
    }
    Ok(guests)
}

fn spec(app: &str, kernel: &Path, mib: u32, mode: GuestMode) -> GuestSpec {
    let mut guest = GuestSpec::new(name(app, mib, mode), kernel).with_mode(mode);
    guest.memory_mib = mib;
    guest.timeout = Duration::from_secs(if app == "hello" { 20 } else { 90 });
    if let Some(script) = script(app) {
        guest.cmdline = format!("ip={IP}/24 gw=10.0.0.254");
        guest.extra_config = vec![format!(
            "vif = ['mac=00:16:3e:00:00:31,ip={IP},script=vif-rig']"
        )];
        guest.dom0_script = Some(script);
    }
    guest
}

/// Whether `report` (of `app`) did its job, or why not.
pub fn verdict(app: &str, report: &GuestReport) -> Result<(), String> {
    let success = format!("Paravane: app {app} exited: success");
    let job = if app == "hello" || report.dom0_output.iter().any(|l| l == "MINMEM job ok") {
        Ok(())
    } else {
        Err(report
            .dom0_output
            .iter()
            .find(|l| l.starts_with("MINMEM job failed"))
            .cloned()
            .unwrap_or_else(|| "dom0 never reached the guest".into()))
    };
    // The toolstack's own refusal (say, too little memory for the
    // initial mapping) is the cause; xl's last line only says it gave up.
    let toolstack = std::fs::read_to_string(&report.log)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("xl: xc: error"))
        .map(|l| l.trim_start_matches("xl: ").to_string());
    if let Some(error) = toolstack {
        return Err(error);
    }
    // So is a guest's own panic (say, an allocation that failed).
    if let Some(panic) = report.console.iter().find(|l| l.starts_with("PANIC")) {
        return Err(panic.clone());
    }
    job?;
    if !report.console.contains(&success) {
        let last = report
            .console
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| report.evidence.trim().to_string());
        return Err(format!("no success line; last: {last}"));
    }
    if report.ending != Ending::Poweroff {
        return Err(format!(
            "ended {} ({})",
            report.ending,
            report.evidence.trim()
        ));
    }
    Ok(())
}

/// Per app: the smallest size that passed (if any) and the first size
/// below it that failed, with the reason.
pub fn smallest(results: &[(u32, Result<(), String>)]) -> (Option<u32>, Option<(u32, String)>) {
    let mut passed = None;
    for (mib, result) in results {
        match result {
            Ok(()) => passed = Some(*mib),
            Err(why) => return (passed, Some((*mib, why.clone()))),
        }
    }
    (passed, None)
}

/// Runs the session, prints the table, and returns it as the bench's
/// `memory` rows (one per app, a series per mode; the reason the next
/// size down failed in the notes).
pub fn run(rig: &Rig) -> Result<Vec<Row>, String> {
    let elf = |app: &str| crate::guest_build::build(app, crate::guest_build::Profile::Release);
    let specs = guests(&elf)?;
    let limit = Duration::from_secs(120) + specs.iter().map(|g| g.timeout).sum::<Duration>();
    let session = rig.run_domus(&specs, limit).map_err(|e| e.to_string())?;
    let mut rows: Vec<Row> = APPS.iter().map(|app| memory_row(app)).collect();
    for mode in GuestMode::ALL {
        println!();
        println!(
            "smallest memory each app runs in ({mode} domU, memory= in MiB, tried {SIZES:?}):"
        );
        for app in APPS {
            let results: Vec<(u32, Result<(), String>)> = SIZES
                .iter()
                .map(|&mib| {
                    let result = session
                        .guests
                        .iter()
                        .find(|g| g.name == name(app, mib, mode))
                        .ok_or_else(|| "no report".to_string())
                        .and_then(|g| verdict(app, g));
                    (mib, result)
                })
                .collect();
            let row = rows
                .iter_mut()
                .find(|r| r.name == app)
                .expect("a row per app");
            record(row, mode, &smallest(&results));
            match smallest(&results) {
                (Some(mib), Some((below, why))) => {
                    println!("  {app:<6} {mib} MiB (at {below} MiB: {why})")
                }
                (Some(mib), None) => println!("  {app:<6} {mib} MiB (the smallest size tried)"),
                (None, Some((below, why))) => {
                    println!("  {app:<6} not even at {below} MiB: {why}")
                }
                (None, None) => println!("  {app:<6} no result"),
            }
        }
    }
    rows.extend(boot_rows(&session.guests));
    Ok(rows)
}

/// The guest's own boot time (vCPU start to the app's first line, by
/// Xen's runstate accounting: `boot: app … starts after N ms in the
/// guest`) of every boot of `app` in `mode` that did its job. Many boots
/// in one dom0 session: QEMU's translation cache is warm after the first
/// few, which a lone `cargo xtask boot` never is.
pub fn boot_samples(guests: &[GuestReport], app: &str, mode: GuestMode) -> Vec<f64> {
    let prefix = format!("boot: app {app} starts after ");
    good_boots(guests, app, mode)
        .filter_map(|g| crate::bench::guest_boot(&g.console, &prefix))
        .map(|(in_guest, _)| in_guest)
        .collect()
}

/// Every boot of `app` in `mode` that did its job, largest memory first.
fn good_boots<'a>(
    guests: &'a [GuestReport],
    app: &'a str,
    mode: GuestMode,
) -> impl Iterator<Item = &'a GuestReport> {
    SIZES
        .iter()
        .filter_map(move |&mib| guests.iter().find(|g| g.name == name(app, mib, mode)))
        .filter(move |g| verdict(app, g).is_ok())
}

/// The first console line of `guest` starting with `prefix`.
fn first_line<'a>(guest: &'a GuestReport, prefix: &str) -> Option<&'a str> {
    guest
        .console
        .iter()
        .find(|l| l.starts_with(prefix))
        .map(String::as_str)
}

/// The median of `values` (NaN if there are none).
fn median_of(values: impl Iterator<Item = f64>) -> f64 {
    crate::bench::median(values.map(Some)).unwrap_or(f64::NAN)
}

/// The medians of the running and runnable parts of those boots (Xen's
/// runstate: running is the guest's own work, runnable the time it
/// waited for a physical CPU, dom0's toolstack still busy with it).
fn split_medians(guests: &[GuestReport], app: &str, mode: GuestMode) -> (f64, f64) {
    let prefix = format!("boot: app {app} starts after ");
    let lines: Vec<&str> = good_boots(guests, app, mode)
        .filter_map(|g| first_line(g, &prefix))
        .collect();
    let part = |key: &str| median_of(lines.iter().filter_map(|l| runstate_part(l, key)));
    (part("running"), part("runnable"))
}

/// The `key` figure of a `boot: app …` line's runstate split: `(running
/// 2.345, runnable 0.100, blocked 1.000)` gives 2.345 for `running`.
pub fn runstate_part(line: &str, key: &str) -> Option<f64> {
    let split = &line[line.find(" (running ")? + 2..];
    let split = &split[..split.find(')')?];
    split.split(", ").find_map(|part| {
        let (name, value) = part.split_once(' ')?;
        (name == key).then(|| value.parse().ok()).flatten()
    })
}

/// Prints each app's in-guest boot times and returns them as `boot`
/// rows (a series per mode, every boot a value).
fn boot_rows(guests: &[GuestReport]) -> Vec<Row> {
    println!();
    println!(
        "the guest's own boot (vCPU start -> the app's first line, Xen's runstate), \
         every boot above that did its job:"
    );
    let rows = APPS
        .iter()
        .map(|app| {
            let series: Vec<Series> = GuestMode::ALL
                .iter()
                .map(|&mode| {
                    let samples = boot_samples(guests, app, mode);
                    let values: Vec<Option<f64>> = samples.iter().copied().map(Some).collect();
                    let series = Series::new(&format!("Paravane {mode}"), values);
                    let (lo, hi) = samples
                        .iter()
                        .fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                    let split = split_medians(guests, app, mode);
                    match series.median {
                        Some(median) => println!(
                            "  {app:<6} {mode:<3} median {median:.1} ms ({lo:.1} to {hi:.1}, {} boots); of it running {:.1}, runnable {:.1} (medians)",
                            samples.len(),
                            split.0,
                            split.1
                        ),
                        None => println!("  {app:<6} {mode:<3} no boot did its job"),
                    }
                    series
                })
                .collect();
            Row {
                group: "boot".into(),
                name: format!("{app}: in guest -> app"),
                unit: "ms".into(),
                better: "lower".into(),
                series,
                notes: vec!["every boot of the memory search that did its job, one dom0 session".into()],
            }
        })
        .collect();
    println!();
    println!("where that time goes (the kernel's boot-steps line, each step's median over those boots, ms):");
    for app in APPS {
        for mode in GuestMode::ALL {
            let lines: Vec<&str> = good_boots(guests, app, mode)
                .filter_map(|g| first_line(g, "boot steps ("))
                .collect();
            println!("  {app:<6} {mode:<3} {}", step_medians(&lines));
        }
    }
    rows
}

/// One boot-steps line's steps: `boot steps (ms since entry): boot data
/// 0.816, console 0.917; total 1.733` gives `[("boot data", 0.816),
/// ("console", 0.917)]`; `None` if the line is not one.
pub fn parse_steps(line: &str) -> Option<Vec<(String, f64)>> {
    let (_, rest) = line.strip_prefix("boot steps (")?.split_once("): ")?;
    let steps = rest.split("; total").next()?;
    steps
        .split(", ")
        .map(|step| {
            let (name, ms) = step.rsplit_once(' ')?;
            Some((name.to_string(), ms.parse().ok()?))
        })
        .collect()
}

/// The median of each step over `lines` (steps in the first line's
/// order, with how many boots gave them), or why there is none.
pub fn step_medians(lines: &[&str]) -> String {
    let parsed: Vec<Vec<(String, f64)>> = lines.iter().filter_map(|l| parse_steps(l)).collect();
    let Some(first) = parsed.first() else {
        return "no boot-steps line".to_string();
    };
    let parts: Vec<String> = first
        .iter()
        .map(|(step, _)| {
            let median = median_of(
                parsed
                    .iter()
                    .filter_map(|steps| steps.iter().find(|(s, _)| s == step).map(|&(_, v)| v)),
            );
            format!("{step} {median:.2}")
        })
        .collect();
    format!("{} ({} boots)", parts.join(", "), parsed.len())
}

/// `app`'s row, before any mode's result.
fn memory_row(app: &str) -> Row {
    Row {
        group: "memory".into(),
        name: app.into(),
        unit: "MiB".into(),
        better: "lower".into(),
        series: Vec::new(),
        notes: Vec::new(),
    }
}

/// Adds `mode`'s result (see [`smallest`]) to `row`.
fn record(row: &mut Row, mode: GuestMode, result: &(Option<u32>, Option<(u32, String)>)) {
    let (passed, failed) = result;
    row.series.push(Series::new(
        &format!("{mode} domU"),
        vec![passed.map(f64::from)],
    ));
    match failed {
        Some((below, why)) => row.notes.push(format!("{mode} at {below} MiB: {why}")),
        None if passed.is_some() => row
            .notes
            .push(format!("{mode}: the smallest size tried passed")),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_steps_lines_parse_and_give_medians() {
        let a = "boot steps (ms since entry): boot data 0.816, console 0.917, memory 2.812; total 4.545";
        let b = "boot steps (ms since entry): boot data 0.500, console 0.100, memory 1.000; total 1.600";
        let c = "boot steps (ms since entry): boot data 0.700, console 0.300, memory 3.000; total 4.000";
        assert_eq!(
            parse_steps(a),
            Some(vec![
                ("boot data".to_string(), 0.816),
                ("console".to_string(), 0.917),
                ("memory".to_string(), 2.812)
            ])
        );
        assert_eq!(parse_steps("boot steps: not recorded"), None);
        assert_eq!(
            parse_steps("boot steps (ms since entry): memory x; total 1"),
            None
        );
        assert_eq!(
            step_medians(&[a, b, c]),
            "boot data 0.70, console 0.30, memory 2.81 (3 boots)"
        );
        assert_eq!(
            step_medians(&[a, b]),
            "boot data 0.66, console 0.51, memory 1.91 (2 boots)"
        );
        assert_eq!(step_medians(&[]), "no boot-steps line");
        let line = "boot: app echo starts after 3.445 ms in the guest (running 2.345, runnable 0.100, blocked 1.000), 43.445 ms since the vCPU was created (40.000 ms offline: built and paused by the toolstack)";
        assert_eq!(runstate_part(line, "running"), Some(2.345));
        assert_eq!(runstate_part(line, "runnable"), Some(0.1));
        assert_eq!(runstate_part(line, "offline"), None);
        assert_eq!(
            runstate_part("boot: app echo starts after 3 ms", "running"),
            None
        );
    }

    #[test]
    fn the_smallest_passing_size_stops_at_the_first_failure() {
        let r = |v: &[(u32, bool)]| -> Vec<(u32, Result<(), String>)> {
            v.iter()
                .map(|&(m, ok)| {
                    (
                        m,
                        if ok {
                            Ok(())
                        } else {
                            Err(format!("no at {m}"))
                        },
                    )
                })
                .collect()
        };
        assert_eq!(
            smallest(&r(&[(16, true), (8, true), (6, false), (5, true)])),
            (Some(8), Some((6, "no at 6".into())))
        );
        assert_eq!(smallest(&r(&[(16, true), (8, true)])), (Some(8), None));
        assert_eq!(
            smallest(&r(&[(16, false)])),
            (None, Some((16, "no at 16".into())))
        );
    }

    #[test]
    fn each_mode_is_a_series_of_the_app_row_with_the_failure_noted() {
        let mut row = memory_row("httpd");
        record(
            &mut row,
            GuestMode::Pv,
            &(Some(4), Some((3, "xc: error: out of memory".into()))),
        );
        record(&mut row, GuestMode::Pvh, &(Some(2), None));
        assert_eq!(row.group, "memory");
        assert_eq!(row.series.len(), 2);
        assert_eq!(row.series[0].median, Some(4.0));
        assert_eq!(row.series[1].values, vec![Some(2.0)]);
        assert_eq!(row.series[0].name, format!("{} domU", GuestMode::Pv));
        assert!(row.notes[0].ends_with("at 3 MiB: xc: error: out of memory"));
    }

    #[test]
    fn network_apps_get_a_vif_and_a_job_hello_does_not() {
        let hello = spec("hello", Path::new("/h"), 4, GuestMode::Pv);
        assert!(hello.dom0_script.is_none() && hello.extra_config.is_empty());
        assert_eq!(hello.memory_mib, 4);
        for app in ["echo", "httpd"] {
            let g = spec(app, Path::new("/e"), 6, GuestMode::Pvh);
            assert_eq!(g.name, format!("minmem-pvh-{app}-6"));
            assert!(g.dom0_script.unwrap().contains("MINMEM job ok"));
            assert!(g.extra_config[0].contains("script=vif-rig"));
        }
    }
}
