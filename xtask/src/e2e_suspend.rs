//! The suspend end-to-end tests: a guest survives `xl save` + `xl
//! restore`, then `xl migrate` to the same host, and works after each.
//!
//! The guest is `resumecheck` (see its file): it prints `resumecheck:
//! ready`, and after each resume in a new domain checks that its timers
//! fire, xenstore answers, a watch set before the suspend fires again and
//! a deadline that passed while it was away fired once, after the
//! resume; then it powers off. dom0's script waits for `ready`, runs
//! `rig_save_restore` (the rig's `xl save` then `xl restore -F`, followed
//! to the end), waits for the first resume's checks, then `rig_migrate`
//! (`xl migrate` through a local pipe to `xl migrate-receive`). The rig
//! follows the guest through both moves and reports the final domain's
//! ending and the whole console.
//!
//! The checks rest on what xl said (the first domain shut down with
//! reason suspend, a new domain id after each move, the final ending
//! poweroff, `xl save`/`xl migrate` exit 0 and `Migration successful`),
//! what dom0 saw (the domain listed again after each move) and what the
//! guest printed (each check, and its resume lines). The figures: the
//! guest-measured time it was away at each move (for the migration,
//! the downtime), and dom0's wall clock around each xl command.

use rig::{Ending, GuestMode, GuestReport, GuestSpec};
use std::path::Path;
use std::time::Duration;

/// The test guest's name in `mode`.
pub fn guest_name(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "suspend",
        GuestMode::Pvh => "pvh-suspend",
    }
}

/// dom0's side: waits for a console line, then moves the guest twice.
/// Every result line starts `SUSP `.
fn dom0_script() -> String {
    r#". /etc/rig/lib.sh
log=/var/log/xen/console/guest-$NAME.log
# wait_for TEXT: until the guest's console has TEXT (60 s at most).
wait_for() {
  i=0
  until grep -q "$1" "$log" 2> /dev/null || [ $i -ge 600 ]; do
    i=$((i+1)); sleep 0.1
  done
  grep -q "$1" "$log" 2> /dev/null
}
wait_for "resumecheck: ready" || echo "SUSP never ready"
echo "SUSP domid before $(xl domid $NAME)"
t0=$(cut -d' ' -f1 /proc/uptime)
rig_save_restore $NAME /tmp/$NAME.save
echo "SUSP save-restore rc=$?"
t1=$(cut -d' ' -f1 /proc/uptime)
echo "SUSP save-restore time $t0 $t1"
echo "SUSP save size $(wc -c < /tmp/$NAME.save)"
rm -f /tmp/$NAME.save
echo "SUSP domid after restore $(xl domid $NAME)"
wait_for "resumecheck: check watch: fired again" || echo "SUSP no checks after the restore"
t0=$(cut -d' ' -f1 /proc/uptime)
rig_migrate $NAME
echo "SUSP migrate rc=$?"
t1=$(cut -d' ' -f1 /proc/uptime)
echo "SUSP migrate time $t0 $t1"
echo "SUSP domid after migrate $(xl domid $NAME)"
xl list
"#
    .to_string()
}

/// The test guest in `mode`: `resumecheck` expecting two resumes.
pub fn test_spec(resumecheck_elf: &Path, mode: GuestMode) -> GuestSpec {
    let mut guest = GuestSpec::new(guest_name(mode), resumecheck_elf).with_mode(mode);
    guest.cmdline = "resumes=2 wait=240 control=app".to_string();
    guest.memory_mib = 32;
    guest.timeout = Duration::from_secs(300);
    guest.dom0_script = Some(dom0_script());
    guest
}

/// The xl lines the rig logged for `report`.
fn xl_lines(report: &GuestReport) -> Vec<String> {
    std::fs::read_to_string(&report.log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("xl: "))
        .map(str::to_string)
        .collect()
}

/// The words after `prefix` on the first dom0 line starting with it.
fn dom0_after<'a>(report: &'a GuestReport, prefix: &str) -> Option<&'a str> {
    report
        .dom0_output
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
}

/// `t1 - t0` of dom0's `SUSP NAME time t0 t1` line, in seconds.
fn dom0_seconds(report: &GuestReport, what: &str) -> Option<f64> {
    let words: Vec<f64> = dom0_after(report, &format!("SUSP {what} time "))?
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (words.len() == 2).then(|| words[1] - words[0])
}

/// The guest's `resume: suspended for N ms` figures, in order.
pub fn away_ms(report: &GuestReport) -> Vec<u64> {
    report
        .console
        .iter()
        .filter_map(|l| l.strip_prefix("resume: suspended for "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

fn check_xl(report: &GuestReport) -> Result<(), String> {
    let xl = xl_lines(report);
    let suspended = xl
        .iter()
        .filter(|l| l.contains("has shut down, reason code 2"))
        .count();
    if suspended < 2 {
        return Err(format!(
            "xl reported {suspended} suspend(s), expected one per move (2): {xl:?}"
        ));
    }
    let ids: Vec<&str> = [
        "SUSP domid before ",
        "SUSP domid after restore ",
        "SUSP domid after migrate ",
    ]
    .iter()
    .map(|p| dom0_after(report, p).unwrap_or(""))
    .collect();
    if ids.iter().any(|id| id.parse::<u32>().is_err()) || ids[0] == ids[1] || ids[1] == ids[2] {
        return Err(format!(
            "dom0 did not see a new domain after each move (domids {ids:?})"
        ));
    }
    Ok(())
}

fn check_dom0(report: &GuestReport, what: &str) -> Result<(), String> {
    match dom0_after(report, &format!("SUSP {what} rc=")) {
        Some("0") => Ok(()),
        other => Err(format!(
            "{what}: rc {other:?}; dom0: {:?}",
            report.dom0_output
        )),
    }
}

fn expect_console(report: &GuestReport, prefix: &str) -> Result<(), String> {
    if report.console.iter().any(|l| l.starts_with(prefix)) {
        Ok(())
    } else {
        Err(format!(
            "no console line starting {prefix:?} ({} lines; last {:?})",
            report.console.len(),
            report.console.last()
        ))
    }
}

/// The checks of one finished test guest.
pub fn checks(report: &GuestReport) -> Vec<(String, Result<(), String>)> {
    let away = away_ms(report);
    let save_s = dom0_seconds(report, "save-restore");
    let migrate_s = dom0_seconds(report, "migrate");
    println!(
        "e2e suspend ({}): guest away {:?} ms (save/restore, then migration downtime); dom0: save+restore {:?} s, migrate {:?} s",
        report.name, away, save_s, migrate_s
    );
    let name = |check: &str| format!("e2e suspend: {check}");
    vec![
        (
            name("xl save + xl restore exit 0, xl migrate to this host exits 0"),
            check_dom0(report, "save-restore").and_then(|()| check_dom0(report, "migrate")),
        ),
        (
            name("xl reports a suspend per move and dom0 sees a new domain after each"),
            check_xl(report),
        ),
        (
            name("the guest says how long it was away and what it re-established"),
            if away.len() == 2 {
                expect_console(report, "resume: xenstore connection resumed")
            } else {
                Err(format!("resume lines: {away:?}, expected 2"))
            },
        ),
        (
            name("after each resume: timers fire, xenstore answers, watches fire again"),
            expect_console(report, "resumecheck: all checks passed after 2 resume(s)"),
        ),
        (
            name("a deadline that passed while away fires exactly once"),
            expect_console(
                report,
                "resumecheck: check deadline: 2 sleep(s) woke late for 2 resume(s)",
            ),
        ),
        (
            name("the migrated domain powers off (xl's final report)"),
            if report.ending == Ending::Poweroff {
                Ok(())
            } else {
                Err(format!("ended {:?}: {}", report.ending, report.evidence))
            },
        ),
    ]
}
