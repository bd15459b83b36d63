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
    guest.cmdline = "resumes=2 wait=240".to_string();
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
pub fn dom0_after<'a>(report: &'a GuestReport, prefix: &str) -> Option<&'a str> {
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

/// No line of the console is empty or holds a NUL: none of our apps
/// prints one, and a writer that went on from a stale ring index after a
/// resume (the console page handed back reset) shows as thousands of
/// them.
pub fn console_intact(report: &GuestReport) -> Result<(), String> {
    let bad = report
        .console
        .iter()
        .filter(|l| l.trim().is_empty() || l.contains('\0'))
        .count();
    if bad == 0 {
        Ok(())
    } else {
        Err(format!(
            "{bad} empty or NUL lines in {} console lines",
            report.console.len()
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
            name("the console reads clean across both moves (no stale bytes from the old ring)"),
            console_intact(report),
        ),
        (
            name("after each resume: timers fire, xenstore answers, watches fire again"),
            expect_console(report, "resumecheck: all checks passed after 2 resume(s)"),
        ),
        (
            name("a deadline that passed while away fires exactly once"),
            expect_console(report, "resumecheck: check deadline: ok"),
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

/// Bytes of each stream through `echo` (16 MiB).
pub const STREAM_BYTES: u64 = 16 * 1024 * 1024;

/// The stream guest's name, address and MAC in `mode`.
fn stream_guest(mode: GuestMode) -> (&'static str, &'static str, &'static str) {
    match mode {
        GuestMode::Pv => ("suspend-echo", "10.0.0.5", "00:16:3e:00:00:25"),
        GuestMode::Pvh => ("pvh-suspend-echo", "10.0.0.10", "00:16:3e:00:00:26"),
    }
}

/// dom0's side of the stream test: two 16 MiB streams through `echo`,
/// each fed at about 4 MiB/s so that it is in flight when the guest is
/// moved (`xl save` + `xl restore` under the first, `xl migrate` under
/// the second); both checked by size and MD5. Lines start `STREAM `.
fn stream_script(ip: &str) -> String {
    format!(
        r#". /etc/rig/lib.sh
G={ip}
{wait}head -c {STREAM_BYTES} /dev/urandom > /tmp/$NAME-in
echo "STREAM sent $(md5sum < /tmp/$NAME-in | cut -d' ' -f1) $(wc -c < /tmp/$NAME-in)"
# stream N MOVE: feeds the file in 1 MiB steps, moves the guest under it.
stream() {{
  rm -f /tmp/$NAME-out
  ( i=0; while [ $i -lt 16 ]; do
      dd if=/tmp/$NAME-in bs=1048576 skip=$i count=1 2> /dev/null
      i=$((i+1)); sleep 0.25
    done ) | nc $G 7 > /tmp/$NAME-out &
  npid=$!
  sleep 1.5
  echo "STREAM $1 echoed before the move $(wc -c < /tmp/$NAME-out)"
  t0=$(cut -d' ' -f1 /proc/uptime)
  $2
  echo "STREAM $1 move rc=$? ($t0 $(cut -d' ' -f1 /proc/uptime))"
  n=0
  while kill -0 $npid 2> /dev/null && [ $n -lt 600 ]; do n=$((n+1)); sleep 0.2; done
  kill $npid 2> /dev/null
  wait $npid
  echo "STREAM $1 nc rc=$?"
  echo "STREAM $1 echoed $(md5sum < /tmp/$NAME-out | cut -d' ' -f1) $(wc -c < /tmp/$NAME-out)"
}}
stream 1 "rig_save_restore $NAME /tmp/$NAME.save"
rm -f /tmp/$NAME.save
stream 2 "rig_migrate $NAME"
echo quit | nc $G 7
echo "STREAM quit rc=$?"
# dom0's /tmp is memory: leave room for the session's next guests.
rm -f /tmp/$NAME-in /tmp/$NAME-out
"#,
        wait = crate::e2e_net::wait_for_ping("STREAM", 120),
    )
}

/// The stream test's guest in `mode`: `echo` on its own vif, moved
/// twice under two 16 MiB streams. (A PVH run once saw the first stream
/// cut 12 MiB in: dom0's `nc` said `short write: No space left on
/// device`, dom0's memory-backed /tmp full of earlier guests' files;
/// every script now removes its files when done.)
pub fn stream_spec(echo_elf: &Path, mode: GuestMode) -> GuestSpec {
    let (name, ip, mac) = stream_guest(mode);
    let mut guest = GuestSpec::new(name, echo_elf).with_mode(mode);
    guest.cmdline = format!("ip={ip}/24 gw=10.0.0.254");
    guest.memory_mib = 64;
    guest.timeout = Duration::from_secs(400);
    guest.extra_config = vec![format!("vif = ['mac={mac},ip={ip},script=vif-rig']")];
    guest.dom0_script = Some(stream_script(ip));
    guest
}

/// The stream guest's name in `mode`.
pub fn stream_name(mode: GuestMode) -> &'static str {
    stream_guest(mode).0
}

/// Checks one stream: the move succeeded, part of the stream was echoed
/// before it and not all, and all of it came back intact after.
fn check_stream(report: &GuestReport, n: u32) -> Result<(), String> {
    let sent = dom0_after(report, "STREAM sent ").ok_or("dom0 sent nothing")?;
    let before: u64 = dom0_after(report, &format!("STREAM {n} echoed before the move "))
        .and_then(|w| w.parse().ok())
        .ok_or(format!("stream {n}: no count before the move"))?;
    let moved = dom0_after(report, &format!("STREAM {n} move rc="))
        .ok_or(format!("stream {n}: no move"))?;
    if !moved.starts_with("0 ") {
        return Err(format!("stream {n}: the move failed: rc={moved}"));
    }
    if before == 0 || before >= STREAM_BYTES {
        return Err(format!(
            "stream {n}: {before} bytes echoed before the move: not in flight"
        ));
    }
    let echoed = dom0_after(report, &format!("STREAM {n} echoed "))
        .filter(|w| !w.starts_with("before"))
        .or_else(|| {
            report
                .dom0_output
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("STREAM {n} echoed ")))
                .find(|w| !w.starts_with("before"))
        })
        .ok_or(format!("stream {n}: no result"))?;
    if echoed != sent {
        return Err(format!(
            "stream {n}: sent {sent}, echoed {echoed} ({before} before the move)"
        ));
    }
    Ok(())
}

/// The checks of the stream guest.
pub fn stream_checks(report: &GuestReport) -> Vec<(String, Result<(), String>)> {
    let away = away_ms(report);
    println!(
        "e2e suspend stream ({}): guest away {away:?} ms (save/restore, then migration downtime); moves: {:?}",
        report.name,
        report
            .dom0_output
            .iter()
            .filter(|l| l.contains(" move rc="))
            .collect::<Vec<_>>()
    );
    let name = |check: &str| format!("e2e suspend: {check}");
    vec![
        (
            name("a 16 MiB TCP stream to echo survives xl save + xl restore (MD5 equal)"),
            check_stream(report, 1),
        ),
        (
            name("a 16 MiB TCP stream to echo survives xl migrate (MD5 equal)"),
            check_stream(report, 2),
        ),
        (
            name("the echo guest's console reads clean across both moves"),
            console_intact(report),
        ),
        (
            name("the twice-moved echo guest powers off on quit"),
            if report.ending == Ending::Poweroff && away.len() == 2 {
                Ok(())
            } else {
                Err(format!(
                    "ended {:?} ({}), {} resumes",
                    report.ending,
                    report.evidence,
                    away.len()
                ))
            },
        ),
    ]
}
