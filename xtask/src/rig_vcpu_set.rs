//! The `xl vcpu-set` rig check: httpd follows the toolstack's vCPU count
//! while it serves.
//!
//! The guest is `httpd vcpus=2` in a domain built with `vcpus = 2` and
//! `maxvcpus = 3`. libxl gives it three vCPUs and writes
//! `cpu/2/availability = offline`, so it must bring up two (libos's
//! `vcpus`), and netfront spreads its two queues over them. dom0 then
//! asks for 3, 1 and 2 vCPUs with `xl vcpu-set` (`--ignore-host`: the
//! rig's machine has two CPUs). After each request it waits until
//! Xen's own view (`xl vcpu-list`: an offline vCPU shows CPU `-`) shows
//! that many online, prints the count, and runs a load (16 clients, 64
//! requests), then asks for `/quit`.
//!
//! Going to 1 takes vCPU 1 offline with netfront's second queue bound
//! to it: its event channel must move to vCPU 0 and its pinned task to
//! the shared queue, or that queue's flows stall and the next load
//! fails. Going back to 2 restarts vCPU 1 where it stopped, and going
//! to 3 starts vCPU 2 for the first time.
//!
//! The PV guest uses 2-level event channels, the PVH one FIFO.
//!
//! The checks read Xen's view from dom0 and the guest's own lines: each
//! count reached in Xen's view, the guest's `vcpus: N online (was M)`
//! lines in order, vCPU 1's offline line with at least one channel
//! moved, every load answer a 200 with the marker, and a poweroff.

use crate::e2e_suspend::dom0_after;
use rig::{GuestMode, GuestReport, GuestSpec};
use std::path::Path;

/// The counts dom0 asks for, in order.
pub const STEPS: [u32; 3] = [3, 1, 2];
/// Requests per load, and clients.
const REQUESTS: u32 = 64;
const CLIENTS: u32 = 16;

/// The checks' names, PV.
pub const PV_NAMES: &[&str] = &["rig e2e httpd xl vcpu-set: "];
/// The checks' names, PVH.
pub const PVH_NAMES: &[&str] = &["rig pvh e2e httpd xl vcpu-set: "];

/// The guest's name in the session.
pub fn name(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "httpd-vcpuset",
        GuestMode::Pvh => "pvh-httpd-vcpuset",
    }
}

/// The guest's address (apart from every other rig guest's).
fn ip(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "10.0.0.42",
        GuestMode::Pvh => "10.0.0.43",
    }
}

/// dom0's side (busybox sh); every line starts `VCPUSET `.
fn dom0_script(ip: &str) -> String {
    let mut script = format!(
        r#"G={ip}
{wait}online() {{ xl vcpu-list $NAME 2>/dev/null | awk 'NR > 1 && $4 != "-" {{ n++ }} END {{ print n + 0 }}'; }}
echo "VCPUSET online $(online) at start"
"#,
        wait = crate::e2e_net::wait_for_ping("VCPUSET", 120)
    );
    for want in STEPS {
        script.push_str(&format!(
            r#"xl vcpu-set --ignore-host $NAME {want} 2>&1 | sed 's/^/VCPUSET xl: /'
n=0
while [ "$(online)" != "{want}" ] && [ $n -lt 50 ]; do sleep 0.2; n=$((n+1)); done
echo "VCPUSET online $(online) after set {want}"
xl vcpu-list $NAME | sed 's/^/VCPUSET list: /'
{load}"#,
            load = crate::load::dom0_lines(
                &format!("VS{want}"),
                &format!(
                    "http $G:80 / --concurrency {CLIENTS} --requests {REQUESTS} --marker '{}' --timeout 60",
                    crate::e2e_httpd::marker()
                )
            )
        ));
    }
    script.push_str(
        r#"wget -q -O - http://$G/quit
echo "VCPUSET quit rc=$?"
n=0
while xl list $NAME > /dev/null 2>&1 && [ $n -lt 15 ]; do sleep 1; n=$((n+1)); done
if xl list $NAME > /dev/null 2>&1; then
  echo "VCPUSET guest still running after /quit: destroying it"
  xl destroy $NAME
fi
"#,
    );
    script
}

/// The guest in `mode`, with the load generator for dom0.
pub fn spec(httpd_elf: &Path, loadgen: &Path, mode: GuestMode) -> GuestSpec {
    let ip = ip(mode);
    let mut guest =
        crate::e2e_httpd::spec(name(mode), httpd_elf, dom0_script(ip), ip).with_mode(mode);
    // PV on 2-level events, PVH on FIFO: both ABIs move channels.
    guest.cmdline.push_str(match mode {
        GuestMode::Pv => " vcpus=2",
        GuestMode::Pvh => " vcpus=2 evtchn=fifo",
    });
    guest.extra_config.push("vcpus = 2".into());
    guest.extra_config.push("maxvcpus = 3".into());
    guest.dom0_tools = vec![loadgen.to_path_buf()];
    guest
}

/// Xen's view at each step: 2 at start, then each count asked for.
fn check_xen_view(guest: &GuestReport) -> Result<(), String> {
    let start = dom0_after(guest, "VCPUSET online ")
        .filter(|rest| rest.ends_with(" at start"))
        .ok_or("no `VCPUSET online N at start` line")?;
    if start != "2 at start" {
        return Err(format!(
            "xl vcpu-list shows {start} (want 2 of maxvcpus 3 online)"
        ));
    }
    for want in STEPS {
        let line = format!("VCPUSET online {want} after set {want}");
        if !guest.dom0_output.contains(&line) {
            let seen: Vec<&String> = guest
                .dom0_output
                .iter()
                .filter(|l| l.starts_with("VCPUSET online ") || l.starts_with("VCPUSET xl: "))
                .collect();
            return Err(format!("no `{line}`; dom0 saw {seen:?}"));
        }
    }
    Ok(())
}

/// The guest's own lines: the boot plan, each change in order, and
/// vCPU 1 going offline with its channel(s) moved.
fn check_guest_lines(guest: &GuestReport) -> Result<(), String> {
    let boot = "vcpus: 2 of the domain's 3 online, as cpu/*/availability asks; following it";
    if !guest.console.iter().any(|l| l == boot) {
        return Err(format!("no `{boot}` line"));
    }
    let changes: Vec<&String> = guest
        .console
        .iter()
        .filter(|l| l.starts_with("vcpus: ") && l.contains(" online (was "))
        .collect();
    let want = [
        "vcpus: 3 online (was 2), as cpu/*/availability asks",
        "vcpus: 1 online (was 3), as cpu/*/availability asks",
        "vcpus: 2 online (was 1), as cpu/*/availability asks",
    ];
    if changes.iter().map(|l| l.as_str()).ne(want.iter().copied()) {
        return Err(format!(
            "the guest's changes were {changes:?}, want {want:?}"
        ));
    }
    let moved = guest
        .console
        .iter()
        .find_map(|l| l.strip_prefix("smp: vCPU 1 offline ("))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u32>().ok())
        .ok_or("no `smp: vCPU 1 offline (N event channels moved to vCPU 0)` line")?;
    if moved == 0 {
        return Err(
            "vCPU 1 went offline with no channel moved: netfront's second queue was not on it"
                .into(),
        );
    }
    if let Some(refused) = guest
        .console
        .iter()
        .find(|l| l.starts_with("vcpus: refused"))
    {
        return Err(format!("the guest refused a key: {refused}"));
    }
    Ok(())
}

/// Every load after every step: all answers 200 with the marker.
fn check_loads(guest: &GuestReport) -> Result<(), String> {
    for want in STEPS {
        let tag = format!("VS{want}");
        let pairs = crate::load::summary(guest, &tag, "http").ok_or_else(|| {
            format!(
                "no load summary with {want} vCPUs (rc {:?}; errors {:?})",
                dom0_after(guest, &format!("{tag} load rc=")),
                crate::load::errors(guest, &tag)
            )
        })?;
        let count = |key: &str| crate::load::number(&pairs, key).unwrap_or(-1.0) as i64;
        println!(
            "e2e vcpu-set ({}): {want} vCPUs: {} of {REQUESTS} answered 200, {} failed, {:.1} requests/s",
            guest.name,
            count("ok"),
            count("failed"),
            crate::load::number(&pairs, "rps").unwrap_or(0.0)
        );
        if count("ok") != i64::from(REQUESTS)
            || count("marked") != i64::from(REQUESTS)
            || count("failed") != 0
        {
            return Err(format!(
                "with {want} vCPUs: ok {} marked {} failed {} of {REQUESTS}; errors {:?}",
                count("ok"),
                count("marked"),
                count("failed"),
                crate::load::errors(guest, &tag)
            ));
        }
    }
    Ok(())
}

fn check_poweroff(guest: &GuestReport) -> Result<(), String> {
    let quit = dom0_after(guest, "VCPUSET quit rc=");
    if guest.ending == rig::Ending::Poweroff && quit == Some("0") {
        Ok(())
    } else {
        Err(format!(
            "ended {} ({}), /quit rc {quit:?}",
            guest.ending, guest.evidence
        ))
    }
}

/// The checks of guest `name(mode)` in `session`, named for `mode`.
pub fn checks_of(session: &rig::Dom0Session, mode: GuestMode) -> Vec<(String, Result<(), String>)> {
    // Whole literals, so the ports link check can find the names.
    let named = |check: &str| match mode {
        GuestMode::Pv => format!("rig e2e httpd xl vcpu-set: {check}"),
        GuestMode::Pvh => format!("rig pvh e2e httpd xl vcpu-set: {check}"),
    };
    match session.guests.iter().find(|g| g.name == name(mode)) {
        None => vec![(
            named("run"),
            Err(format!("the rig reported no guest {}", name(mode))),
        )],
        Some(report) => vec![
            (
                named("Xen's xl vcpu-list shows 2 of maxvcpus 3 online at boot, then 3, 1 and 2 as asked"),
                check_xen_view(report),
            ),
            (
                named("the guest follows cpu/*/availability: 2 at boot, then 3, 1, 2, vCPU 1's channel moved to vCPU 0"),
                check_guest_lines(report),
            ),
            (
                named("16 clients after each change: every answer a 200 with the marker"),
                check_loads(report),
            ),
            (named("guest powers off after GET /quit"), check_poweroff(report)),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(console: &[&str], dom0: &[&str]) -> GuestReport {
        let mut report = crate::idle::tests_report(&[]);
        report.console = console.iter().map(|l| l.to_string()).collect();
        report.dom0_output = dom0.iter().map(|l| l.to_string()).collect();
        report
    }

    const GOOD_CONSOLE: &[&str] = &[
        "vcpus: 2 of the domain's 3 online, as cpu/*/availability asks; following it",
        "smp: vCPU 2 up (PV, fifo, stack 0x1, vcpu_info at 0x2, kick port 9)",
        "vcpus: 3 online (was 2), as cpu/*/availability asks",
        "smp: vCPU 2 offline (0 event channels moved to vCPU 0)",
        "smp: vCPU 1 offline (1 event channels moved to vCPU 0)",
        "vcpus: 1 online (was 3), as cpu/*/availability asks",
        "smp: vCPU 1 back online",
        "vcpus: 2 online (was 1), as cpu/*/availability asks",
    ];

    #[test]
    fn the_guest_lines_and_xen_view_are_checked() {
        let dom0 = [
            "VCPUSET online 2 at start",
            "VCPUSET online 3 after set 3",
            "VCPUSET online 1 after set 1",
            "VCPUSET online 2 after set 2",
        ];
        let good = report(GOOD_CONSOLE, &dom0);
        assert_eq!(check_xen_view(&good), Ok(()));
        assert_eq!(check_guest_lines(&good), Ok(()));
        let stuck = report(
            GOOD_CONSOLE,
            &[
                "VCPUSET online 2 at start",
                "VCPUSET online 3 after set 3",
                "VCPUSET online 3 after set 1",
            ],
        );
        assert!(check_xen_view(&stuck).is_err());
        let all_up = report(GOOD_CONSOLE, &["VCPUSET online 3 at start"]);
        assert!(
            check_xen_view(&all_up).is_err(),
            "maxvcpus brought up whole"
        );
        let mut no_move: Vec<&str> = GOOD_CONSOLE.to_vec();
        no_move[4] = "smp: vCPU 1 offline (0 event channels moved to vCPU 0)";
        assert!(check_guest_lines(&report(&no_move, &dom0)).is_err());
        let out_of_order: Vec<&str> = [0, 1, 5, 2, 3, 4, 6, 7]
            .iter()
            .map(|&i| GOOD_CONSOLE[i])
            .collect();
        assert!(check_guest_lines(&report(&out_of_order, &dom0)).is_err());
        let mut refused = GOOD_CONSOLE.to_vec();
        refused.push("vcpus: refused cpu/0/availability offline: vCPU 0 cannot go offline");
        assert!(check_guest_lines(&report(&refused, &dom0)).is_err());
    }

    #[test]
    fn every_load_must_be_whole() {
        let line = |want: u32, ok: u32| {
            format!("VS{want} LOADGEN http concurrency=16 requests=64 ok={ok} marked={ok} failed={} seconds=1 rps=64.0", 64 - ok)
        };
        let lines: Vec<String> = [line(3, 64), line(1, 64), line(2, 64)].into();
        let good = report(&[], &lines.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(check_loads(&good), Ok(()));
        let lines: Vec<String> = [line(3, 64), line(1, 60), line(2, 64)].into();
        let short = report(&[], &lines.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(check_loads(&short).is_err());
        let missing = report(&[], &[lines[0].as_str()]);
        assert!(check_loads(&missing).is_err());
    }

    #[test]
    fn the_script_asks_for_each_count_and_reads_xens_view() {
        let script = dom0_script("10.0.0.42");
        for want in STEPS {
            assert!(script.contains(&format!("xl vcpu-set --ignore-host $NAME {want}")));
            assert!(script.contains(&format!("VCPUSET online $(online) after set {want}")));
            assert!(script.contains(&format!("sed 's/^/VS{want} /'")));
        }
    }
}
