//! The shutdown end-to-end tests: the toolstack asks a running guest to
//! stop, and the guest does, the way xl documents.
//!
//! Three guests per mode (PV, and PVH when enabled), one after the
//! other in the domU session:
//!
//! - `shutdown-httpd`: `httpd` on its vif. Once it answers a ping, dom0
//!   reads the `control/feature-*` nodes the guest wrote, then times
//!   `xl shutdown -w` (it returns when xl sees the domain shut down),
//!   and reads, while the rig still holds the preserved domain, the
//!   vif's frontend and backend `state` (both must be Closed, 6), the
//!   `control/shutdown` node (acknowledged: empty) and `xl list`'s state
//!   (`s`, shut down). xl must report reason poweroff (code 0).
//! - `reboot-httpd`: the same with `xl reboot -w`: reason reboot (1).
//! - `shutdown-sleeper`: `sleeper` asleep for 40 s. dom0 writes an
//!   unknown word into `control/shutdown` (the guest must acknowledge it
//!   and say it ignores it, and go on), sends sysrq `t` (the guest prints
//!   its task states), then `xl trigger nmi` (the guest must report the
//!   NMI and go on sleeping), then times `xl shutdown -w`: the guest must
//!   stop at once rather than finish its sleep.
//!
//! Every figure comes from dom0's clock (`/proc/uptime` around the xl
//! command) and from what xl and xenstore say; the guest's own lines are
//! checked too, never alone. The guests print how long they took from
//! the request to the end ([`GUEST_LIMIT`] bounds it; [`LIMIT`] bounds
//! dom0's measure, which includes xl's own start-up, printed beside it
//! as the time of a bare `xl list`).

use crate::rig_tests::{expect_ending, expect_line};
use rig::{Ending, GuestMode, GuestReport, GuestSpec};
use std::path::PathBuf;
use std::time::Duration;

/// The prefix of the PV results' names.
pub const PV_PREFIX: &str = "rig e2e shutdown: ";
/// The prefix of the PVH results' names.
pub const PVH_PREFIX: &str = "rig pvh e2e shutdown: ";

/// How long `xl shutdown -w` / `xl reboot -w` may take, measured in dom0
/// from before the command to its return (xl's own start-up under
/// QEMU's emulation included).
const LIMIT: Duration = Duration::from_secs(4);

/// How long the guest may take from seeing the request to ending the
/// domain (its own measure: the app's stop, closing the vif with
/// netback, the console drained).
const GUEST_LIMIT: Duration = Duration::from_secs(2);

/// How long the sleeper would sleep if nobody stopped it.
const SLEEPER_SECONDS: u64 = 40;

/// Every result line of the dom0 scripts starts with this.
const TAG: &str = "SHUT";

/// On the sleeper's command line, so its core dump must hold it.
const CORE_MARK: &str = "dumpmark=Pv4r4vAnE-c0re";

/// The sleeper's memory, MiB: its core dump holds at least this much
/// (less a few pages Xen or the toolstack keep back).
const MEMORY_MIB: u32 = 32;

/// One of the three cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    /// `xl shutdown -w` of httpd.
    Poweroff,
    /// `xl reboot -w` of httpd.
    Reboot,
    /// Unknown word, sysrq, then `xl shutdown -w` of a long sleeper.
    Sleeper,
}

impl Case {
    const ALL: [Case; 3] = [Case::Poweroff, Case::Reboot, Case::Sleeper];

    fn base_name(self) -> &'static str {
        match self {
            Case::Poweroff => "shutdown-httpd",
            Case::Reboot => "reboot-httpd",
            Case::Sleeper => "shutdown-sleeper",
        }
    }

    fn name(self, mode: GuestMode) -> String {
        match mode {
            GuestMode::Pv => self.base_name().to_string(),
            GuestMode::Pvh => format!("pvh-{}", self.base_name()),
        }
    }

    /// The httpd guests' addresses, apart from every other test's.
    fn ip(self, mode: GuestMode) -> &'static str {
        match (self, mode) {
            (Case::Reboot, GuestMode::Pv) => "10.0.0.23",
            (Case::Reboot, GuestMode::Pvh) => "10.0.0.24",
            (_, GuestMode::Pv) => "10.0.0.21",
            (_, GuestMode::Pvh) => "10.0.0.22",
        }
    }

    /// The xl command and the reason xl must report.
    fn command(self) -> (&'static str, Ending) {
        match self {
            Case::Reboot => ("reboot", Ending::Reboot),
            Case::Poweroff | Case::Sleeper => ("shutdown", Ending::Poweroff),
        }
    }
}

/// Times the xl command, then reads what dom0 sees of the shut-down
/// domain (`$H` is its xenstore home; `$FE`/`$BE` its vif's nodes, if
/// it has one).
fn timed_command(command: &str) -> String {
    format!(
        r#"t0=$(cut -d' ' -f1 /proc/uptime)
xl list $NAME > /dev/null
rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
echo "{TAG} baseline rc=$rc time $t0 $t1"
t0=$(cut -d' ' -f1 /proc/uptime)
xl {command} -w $NAME
rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
echo "{TAG} {command} rc=$rc time $t0 $t1"
echo "{TAG} request node [$(xenstore-read $H/control/shutdown 2>&1)]"
echo "{TAG} list $(xl list $NAME 2>&1 | tail -n 1)"
"#
    )
}

/// dom0's side of an httpd case.
fn httpd_script(case: Case, ip: &str) -> String {
    let (command, _) = case.command();
    format!(
        r#": > /run/rig-$NAME.hold
G={ip}
{wait}D=$(xl domid $NAME)
H=/local/domain/$D
FE=$H/device/vif/0
BE=$(xenstore-read $FE/backend)
echo "{TAG} features $(xenstore-read $H/control/feature-poweroff $H/control/feature-reboot 2>&1 | tr '\n' ' ')"
echo "{TAG} states before $(xenstore-read $FE/state $BE/state 2>&1 | tr '\n' ' ')"
{timed}echo "{TAG} states after $(xenstore-read $FE/state $BE/state 2>&1 | tr '\n' ' ')"
rm -f /run/rig-$NAME.hold
"#,
        wait = crate::e2e_net::wait_for_ping(TAG, 120),
        timed = timed_command(command),
    )
}

/// dom0's side of the sleeper case.
/// The sleeper's dom0 side; with `dump_core` (PV only, see
/// [`check_dump_core`]) an `xl dump-core` of it before the shutdown.
fn sleeper_script(dump_core: bool) -> String {
    format!(
        r#": > /run/rig-$NAME.hold
# The script starts alongside xl create: wait for the domain.
i=0
until D=$(xl domid $NAME 2> /dev/null) || [ $i -ge 300 ]; do
  i=$((i+1))
  sleep 0.1
done
H=/local/domain/$D
# The control task is up once it has advertised what it supports.
i=0
until [ "$(xenstore-read $H/control/feature-poweroff 2> /dev/null)" = 1 ] || [ $i -ge 600 ]; do
  i=$((i+1))
  sleep 0.1
done
echo "{TAG} ready after $i"
xenstore-write $H/control/shutdown explode
i=0
while [ -n "$(xenstore-read $H/control/shutdown 2>&1)" ] && [ $i -lt 50 ]; do
  i=$((i+1))
  sleep 0.1
done
echo "{TAG} unknown request node [$(xenstore-read $H/control/shutdown 2>&1)]"
xl sysrq $NAME t
echo "{TAG} sysrq rc=$?"
sleep 1
xl trigger $NAME nmi
echo "{TAG} nmi rc=$?"
sleep 1
{dump_core}{timed}rm -f /run/rig-$NAME.hold
"#,
        timed = timed_command("shutdown"),
        dump_core = if dump_core { DUMP_CORE } else { "" },
    )
}

/// `xl dump-core` of the sleeper, timed, and what the core holds.
const DUMP_CORE: &str = r#"t0=$(cut -d' ' -f1 /proc/uptime)
xl dump-core $NAME /tmp/$NAME.core > /tmp/$NAME.dump 2>&1
echo "SHUT dump-core rc=$?"
echo "SHUT dump-core took $t0 $(cut -d' ' -f1 /proc/uptime)"
sed 's/^/SHUT dump-core says: /' /tmp/$NAME.dump
echo "SHUT dump-core size $(wc -c < /tmp/$NAME.core 2> /dev/null || echo 0)"
echo "SHUT dump-core magic [$(head -c 4 /tmp/$NAME.core 2> /dev/null | tail -c 3)]"
if grep -q "dumpmark=Pv4r4vAnE-c0re" /tmp/$NAME.core 2> /dev/null; then
  echo "SHUT dump-core marker found"
else
  echo "SHUT dump-core marker missing"
fi
rm -f /tmp/$NAME.core /tmp/$NAME.dump
"#;

fn spec(case: Case, mode: GuestMode, elf: &dyn Fn(&str) -> PathBuf) -> GuestSpec {
    let name = case.name(mode);
    let mut guest = match case {
        Case::Poweroff | Case::Reboot => {
            let ip = case.ip(mode);
            let last: u8 = ip
                .rsplit('.')
                .next()
                .and_then(|b| b.parse().ok())
                .unwrap_or(0);
            let mut guest = GuestSpec::new(name, elf("httpd"));
            guest.cmdline = format!("ip={ip}/24 gw=10.0.0.254");
            guest.extra_config = vec![format!(
                "vif = ['mac=00:16:3e:00:01:{last:02x},ip={ip},script=vif-rig']"
            )];
            guest.dom0_script = Some(httpd_script(case, ip));
            guest
        }
        Case::Sleeper => {
            let mut guest = GuestSpec::new(name, elf("sleeper"));
            guest.cmdline = format!("seconds={SLEEPER_SECONDS} {CORE_MARK}");
            guest.dom0_script = Some(sleeper_script(mode == GuestMode::Pv));
            guest
        }
    };
    guest.memory_mib = MEMORY_MIB;
    // Up in a few seconds, stopped in one: the watchdog is for a guest
    // that ignores the request.
    guest.timeout = Duration::from_secs(90);
    guest.with_mode(mode)
}

/// The guests for the domU session (PV, then PVH if `pvh`), each with the
/// prefix its results are recorded under.
pub fn domu_guests(
    elf: &dyn Fn(&str) -> PathBuf,
    pvh: bool,
) -> Vec<(GuestSpec, Vec<&'static str>)> {
    let mut modes = vec![GuestMode::Pv];
    if pvh {
        modes.push(GuestMode::Pvh);
    }
    let mut guests = Vec::new();
    for mode in modes {
        let prefix = match mode {
            GuestMode::Pv => PV_PREFIX,
            GuestMode::Pvh => PVH_PREFIX,
        };
        for case in Case::ALL {
            guests.push((spec(case, mode, elf), vec![prefix]));
        }
    }
    guests
}

/// The dom0 script's line starting `SHUT WHAT `, without that.
fn dom0_value<'a>(guest: &'a GuestReport, what: &str) -> Result<&'a str, String> {
    let prefix = format!("{TAG} {what} ");
    guest
        .dom0_output
        .iter()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map(str::trim)
        .ok_or_else(|| {
            format!(
                "{}: dom0 printed no `{prefix}` line; dom0 said: {}",
                guest.name,
                guest.dom0_output.join(" | ")
            )
        })
}

/// Checks `rc=0 time T0 T1` and returns T1 - T0.
fn command_time(guest: &GuestReport, command: &str) -> Result<Duration, String> {
    let line = dom0_value(guest, command)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["rc=0", "time", t0, t1] => {
            let t0: f64 = t0.parse().map_err(|_| format!("bad time in {line:?}"))?;
            let t1: f64 = t1.parse().map_err(|_| format!("bad time in {line:?}"))?;
            Ok(Duration::from_secs_f64((t1 - t0).max(0.0)))
        }
        _ => Err(format!("{}: xl {command} -w: {line}", guest.name)),
    }
}

/// The guest's own figure: milliseconds from seeing the request to
/// ending the domain (`Paravane: … ending the domain N ms after the
/// request`).
fn guest_ms(guest: &GuestReport) -> Result<u64, String> {
    guest
        .console
        .iter()
        .find_map(|l| {
            let rest = l.strip_prefix("Paravane: ")?;
            let (_, tail) = rest.split_once("ending the domain ")?;
            tail.strip_suffix(" ms after the request")?.parse().ok()
        })
        .ok_or_else(|| {
            format!(
                "{}: no `ending the domain N ms after the request` line",
                guest.name
            )
        })
}

/// Prints the figures and checks them against [`LIMIT`] and
/// [`GUEST_LIMIT`].
fn check_figures(guest: &GuestReport, command: &str, took: Duration) -> Result<(), String> {
    let baseline = command_time(guest, "baseline")?;
    let guest_ms = guest_ms(guest)?;
    println!(
        "{}: xl {command} -w took {:.2} s (dom0's clock; `xl list` alone {:.2} s); the guest ended {guest_ms} ms after seeing the request",
        guest.name,
        took.as_secs_f64(),
        baseline.as_secs_f64()
    );
    if took > LIMIT {
        return Err(format!(
            "xl {command} -w took {:.2} s, over {:.1} s",
            took.as_secs_f64(),
            LIMIT.as_secs_f64()
        ));
    }
    if guest_ms > GUEST_LIMIT.as_millis() as u64 {
        return Err(format!(
            "the guest took {guest_ms} ms from the request to its end, over {} ms",
            GUEST_LIMIT.as_millis()
        ));
    }
    Ok(())
}

/// What dom0 saw after the domain shut down: the request acknowledged
/// (empty) and `xl list` showing it shut down (`s` in its state).
fn check_after(guest: &GuestReport) -> Result<(), String> {
    let node = dom0_value(guest, "request node")?;
    if node != "[]" {
        return Err(format!("control/shutdown after the shutdown: {node}"));
    }
    let list = dom0_value(guest, "list")?;
    let state = list.split_whitespace().nth(4).unwrap_or_default();
    if !state.contains('s') {
        return Err(format!(
            "xl list after the command: {list:?} (expected state with s)"
        ));
    }
    Ok(())
}

/// The guest printed exactly `line`.
fn expect_exact(guest: &GuestReport, line: &str) -> Result<(), String> {
    expect_line(guest, |l| l == line, &format!("`{line}`"))
}

/// The checks of one mode's guests, found in the session by `find`.
pub fn checks<'a>(
    find: &dyn Fn(&str) -> Result<&'a GuestReport, String>,
    mode: GuestMode,
) -> Vec<(String, Result<(), String>)> {
    let prefix = match mode {
        GuestMode::Pv => PV_PREFIX,
        GuestMode::Pvh => PVH_PREFIX,
    };
    let mut results = Vec::new();
    for case in Case::ALL {
        let (command, ending) = case.command();
        let what = match case {
            Case::Poweroff => "xl shutdown -w of httpd: poweroff, vif Closed in xenstore",
            Case::Reboot => "xl reboot -w of httpd: reboot, vif Closed in xenstore",
            Case::Sleeper => {
                "unknown request acknowledged and ignored, sysrq t, NMI survived, xl shutdown -w of a 40 s sleeper"
            }
        };
        let result = find(&case.name(mode)).and_then(|guest| {
            let check = match case {
                Case::Poweroff | Case::Reboot => check_httpd(guest, command, ending),
                Case::Sleeper => check_sleeper(guest),
            };
            check.map_err(|why| format!("{why}; {}", crate::rig_tests::how_it_ended(guest)))
        });
        results.push((format!("{prefix}{what}"), result));
    }
    if mode == GuestMode::Pv {
        results.push((
            "rig e2e shutdown: xl dump-core of the running sleeper: an ELF core of its memory, its command line inside".into(),
            find(&Case::Sleeper.name(mode)).and_then(check_dump_core),
        ));
    }
    results
}

/// `xl dump-core` of the PV sleeper (through the p2m frame list the
/// guest publishes): rc 0, an ELF file at least as large as the guest's
/// memory, holding the marker of the guest's command line (so it is the
/// guest's memory, not an empty shell). PVH is not checked: the
/// toolstack walks every guest frame number up to the special pages it
/// puts just below 4 GiB (about a million, most of them holes) through
/// foreign mappings, and under the rig's emulation that did not end
/// within 195 s.
fn check_dump_core(guest: &GuestReport) -> Result<(), String> {
    let says: Vec<&str> = guest
        .dom0_output
        .iter()
        .filter_map(|l| l.strip_prefix("SHUT dump-core says: "))
        .collect();
    let rc = dom0_value(guest, "dump-core")?;
    if rc != "rc=0" {
        return Err(format!("xl dump-core: {rc}; xl said {says:?}"));
    }
    let size: u64 = dom0_value(guest, "dump-core size")?
        .parse()
        .map_err(|_| "no core size".to_string())?;
    let magic = dom0_value(guest, "dump-core magic")?;
    let marker = dom0_value(guest, "dump-core marker")?;
    let floor = u64::from(MEMORY_MIB - 1) << 20;
    let took = dom0_value(guest, "dump-core took")?;
    let seconds = took
        .split_once(' ')
        .and_then(|(a, b)| Some(b.parse::<f64>().ok()? - a.parse::<f64>().ok()?))
        .unwrap_or(f64::NAN);
    println!(
        "e2e dump-core ({}): {size} bytes in {seconds:.1} s, magic {magic}, marker {marker}",
        guest.name
    );
    if magic != "[ELF]" || size < floor || marker != "found" {
        return Err(format!(
            "core of {size} bytes (want at least {floor}), magic {magic} (want [ELF]), marker {marker}; xl said {says:?}"
        ));
    }
    Ok(())
}

fn check_httpd(guest: &GuestReport, command: &str, ending: Ending) -> Result<(), String> {
    let features = dom0_value(guest, "features")?;
    if features != "1 1" {
        return Err(format!(
            "feature-poweroff, feature-reboot read {features:?}, not \"1 1\""
        ));
    }
    let before = dom0_value(guest, "states before")?;
    if before != "4 4" {
        return Err(format!("vif states before: {before:?}, not Connected"));
    }
    let took = command_time(guest, command)?;
    expect_ending(guest, ending.clone())?;
    let after = dom0_value(guest, "states after")?;
    if after != "6 6" {
        return Err(format!(
            "vif frontend and backend states after the {command}: {after:?}, not \"6 6\" (Closed)"
        ));
    }
    check_after(guest)?;
    let word = match ending {
        Ending::Reboot => "reboot",
        _ => "poweroff",
    };
    expect_exact(
        guest,
        &format!("Paravane: shutdown requested ({word}) by the toolstack"),
    )?;
    expect_exact(guest, "httpd: stop requested, closing")?;
    // The closing line (`… ending the domain N ms after the request`)
    // is read by check_figures.
    expect_exact(guest, &crate::report::success_line("httpd"))?;
    check_figures(guest, command, took)
}

fn check_sleeper(guest: &GuestReport) -> Result<(), String> {
    let node = dom0_value(guest, "unknown request node")?;
    if node != "[]" {
        return Err(format!("the unknown request was not acknowledged: {node}"));
    }
    expect_exact(
        guest,
        "Paravane: ignoring an unknown shutdown request \"explode\"",
    )?;
    let sysrq = dom0_value(guest, "sysrq")?;
    if sysrq != "rc=0" {
        return Err(format!("xl sysrq: {sysrq}"));
    }
    expect_exact(guest, "Paravane: sysrq 't': task states")?;
    expect_line(
        guest,
        |l| l.starts_with("tasks: ") && l.contains(" live ("),
        "the task states",
    )?;
    // An NMI is no reason to die: counted, reported from task context,
    // and the sleeper sleeps on (it still has to be shut down below).
    let nmi = dom0_value(guest, "nmi")?;
    if nmi != "rc=0" {
        return Err(format!("xl trigger nmi: {nmi}"));
    }
    expect_exact(
        guest,
        "Paravane: NMI received (1 new, 1 in all); no handler wants it, continuing",
    )?;
    let took = command_time(guest, "shutdown")?;
    expect_ending(guest, Ending::Poweroff)?;
    check_after(guest)?;
    let slept_ms = guest
        .console
        .iter()
        .find_map(|l| l.strip_prefix("sleeper: stopped on request after "))
        .and_then(|rest| rest.strip_suffix(" ms"))
        .and_then(|ms| ms.parse::<u64>().ok())
        .ok_or_else(|| {
            format!(
                "{}: no `sleeper: stopped on request after N ms`",
                guest.name
            )
        })?;
    if slept_ms >= SLEEPER_SECONDS * 1000 {
        return Err(format!("the sleeper slept its whole {slept_ms} ms"));
    }
    expect_exact(guest, &crate::report::success_line("sleeper"))?;
    println!(
        "{}: the sleeper stopped after {slept_ms} ms of its {SLEEPER_SECONDS} s",
        guest.name
    );
    check_figures(guest, "shutdown", took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dump_core_script_looks_for_the_sleepers_marker() {
        assert!(DUMP_CORE.contains(&format!("grep -q \"{CORE_MARK}\"")));
        assert!(sleeper_script(true).contains("xl dump-core $NAME"));
        assert!(!sleeper_script(false).contains("dump-core"));
    }

    #[test]
    fn guests_have_their_own_names_addresses_and_hold_the_domain() {
        let elf = |app: &str| std::path::Path::new("/apps").join(app);
        let guests = domu_guests(&elf, true);
        assert_eq!(guests.len(), 6);
        let mut names: Vec<&str> = guests.iter().map(|(g, _)| g.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 6);
        for (guest, _) in &guests {
            let script = guest.dom0_script.as_deref().unwrap();
            assert!(script.starts_with(": > /run/rig-$NAME.hold\n"), "{script}");
            assert!(script.trim_end().ends_with("rm -f /run/rig-$NAME.hold"));
            assert!(guest
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'));
        }
        let ips: Vec<_> = Case::ALL
            .iter()
            .flat_map(|case| GuestMode::ALL.map(|mode| case.ip(mode)))
            .collect();
        assert!(!ips.contains(&crate::e2e_httpd::GUEST_IP));
        assert!(!ips.contains(&crate::e2e_httpd::PVH_GUEST_IP));
    }
}
