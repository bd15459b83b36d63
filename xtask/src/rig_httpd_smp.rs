//! The `httpd vcpus=2` rig check: httpd on two vCPUs with netfront's two
//! queues spread over them serves the 64-client load.
//!
//! In the network session, after the one-vCPU httpd and echo guests: an
//! `httpd` domU given 2 vCPUs (`vcpus = 2` in its xl config, `vcpus=2`
//! on its command line, so it starts its secondary vCPU before the
//! network). dom0 waits for a ping, runs the load generator (64 clients,
//! 256 requests, as the one-vCPU test), and asks for `/quit`. The check
//! reads the guest's own lines and decides for itself: `httpd: 2 vCPUs
//! serving`; the netfront line `net: vif/0 queue 0 on vCPU A, queue 1 on
//! vCPU B …` (vCPUs as Xen's `EVTCHNOP_status` reports them) with at
//! least two queues on different vCPUs, and each queue task's count,
//! printed at the network's shutdown (`net: queue Q: N events served
//! on vCPU V, 0 elsewhere`), with N > 0
//! on its queue's vCPU; every load answer a 200 with the
//! marker and no error; a poweroff after `/quit`.

use crate::e2e_httpd::{self, CLIENTS, LOAD_REQUESTS};
use rig::{GuestMode, GuestReport, GuestSpec};
use std::path::Path;

/// The vCPUs (and so the queues, netback offering 2) of the guests.
pub const VCPUS: u32 = 2;

/// The checks' names, PV.
pub const PV_NAMES: &[&str] = &["rig e2e httpd vcpus=2: "];
/// The checks' names, PVH.
pub const PVH_NAMES: &[&str] = &["rig pvh e2e httpd vcpus=2: "];

/// The guest's name in the session.
pub fn name(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "httpd-smp",
        GuestMode::Pvh => "pvh-httpd-smp",
    }
}

/// The guest's address (apart from every other rig guest's).
fn ip(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "10.0.0.40",
        GuestMode::Pvh => "10.0.0.41",
    }
}

/// dom0's side: ping, the 64-client load, `/quit`, then wait (at most
/// 15 s, leaving early) for the guest to go.
fn dom0_script(ip: &str) -> String {
    format!(
        r#"{wait}{load}wget -q -O - http://$G/quit
echo "HTTPD quit rc=$?"
n=0
while xl list $NAME > /dev/null 2>&1 && [ $n -lt 15 ]; do sleep 1; n=$((n+1)); done
if xl list $NAME > /dev/null 2>&1; then
  echo "HTTPD guest still running after /quit: destroying it"
  xl destroy $NAME
fi
"#,
        wait = e2e_httpd::wait_for_ping(ip),
        load = crate::load::dom0_lines(
            "HTTPD",
            &format!(
                "http $G:80 / --concurrency {CLIENTS} --requests {LOAD_REQUESTS} --marker '{}' --timeout 60",
                e2e_httpd::marker()
            )
        ),
    )
}

/// The guest in `mode`, with the load generator for dom0.
pub fn spec(httpd_elf: &Path, loadgen: &Path, mode: GuestMode) -> GuestSpec {
    let ip = ip(mode);
    let mut guest = e2e_httpd::spec(name(mode), httpd_elf, dom0_script(ip), ip).with_mode(mode);
    guest.cmdline.push_str(&format!(" vcpus={VCPUS}"));
    guest.extra_config.push(format!("vcpus = {VCPUS}"));
    guest.dom0_tools = vec![loadgen.to_path_buf()];
    guest
}

/// The vCPU of each queue, from the guest's netfront placement line.
fn placement(guest: &GuestReport) -> Option<Vec<u32>> {
    let line = guest
        .console
        .iter()
        .find_map(|l| l.strip_prefix("net: vif/0 queue "))?;
    let list = line.split(" (").next()?;
    // "0 on vCPU 0, queue 1 on vCPU 1"
    list.split(", queue ")
        .map(|item| item.rsplit(' ').next()?.parse().ok())
        .collect()
}

/// The queues' channels are bound to different vCPUs (Xen's view).
fn check_placement(guest: &GuestReport) -> Result<(), String> {
    let serving = format!("httpd: {VCPUS} vCPUs serving");
    if !guest.console.iter().any(|l| l.contains(&serving)) {
        return Err(format!("no `{serving}` line"));
    }
    let placement = placement(guest).ok_or("no `net: vif/0 queue …` line")?;
    println!("e2e httpd ({}): queues on vCPUs {placement:?}", guest.name);
    let mut distinct = placement.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if placement.len() < 2 || distinct.len() < 2 {
        return Err(format!(
            "queues on vCPUs {placement:?}: want 2 queues on 2 vCPUs"
        ));
    }
    // Each queue's task served events, all on its own vCPU.
    for (queue, &vcpu) in placement.iter().enumerate() {
        let served = served_by(guest, queue).ok_or(format!("no `net: queue {queue}: …` line"))?;
        println!(
            "e2e httpd ({}): queue {queue}: {} events served on vCPU {}, {} elsewhere",
            guest.name, served.0, served.1, served.2
        );
        if served.0 == 0 || served.1 != vcpu || served.2 != 0 {
            return Err(format!(
                "queue {queue} (bound to vCPU {vcpu}): {} events served on vCPU {}, {} elsewhere",
                served.0, served.1, served.2
            ));
        }
    }
    Ok(())
}

/// (events served on its vCPU, that vCPU, events served elsewhere) of
/// queue `queue`'s task, from the line the network's shutdown prints.
fn served_by(guest: &GuestReport, queue: usize) -> Option<(u64, u32, u64)> {
    let prefix = format!("net: queue {queue}: ");
    let line = guest.console.iter().find_map(|l| l.strip_prefix(&prefix))?;
    // "N events served on vCPU V, M elsewhere"
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [n, "events", "served", "on", "vCPU", v, m, "elsewhere"] => Some((
            n.parse().ok()?,
            v.trim_end_matches(',').parse().ok()?,
            m.parse().ok()?,
        )),
        _ => None,
    }
}

/// The checks of guest `name(mode)` in `session`, named for `mode`.
pub fn checks_of(session: &rig::Dom0Session, mode: GuestMode) -> Vec<(String, Result<(), String>)> {
    // Whole literals, so the ports link check can find the names.
    let named = |check: &str| match mode {
        GuestMode::Pv => format!("rig e2e httpd vcpus=2: {check}"),
        GuestMode::Pvh => format!("rig pvh e2e httpd vcpus=2: {check}"),
    };
    match session.guests.iter().find(|g| g.name == name(mode)) {
        None => vec![(
            named("run"),
            Err(format!("the rig reported no guest {}", name(mode))),
        )],
        Some(report) => vec![
            (
                named("2 queues' event channels bound to 2 different vCPUs, each queue's events served by its task there"),
                check_placement(report),
            ),
            (
                named("64 concurrent clients: 256/256 answers are 200 with the marker, 0 errors"),
                e2e_httpd::check_load(report),
            ),
            (
                named("guest powers off after GET /quit"),
                e2e_httpd::check_poweroff(report),
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(lines: &[&str]) -> GuestReport {
        let mut report = crate::idle::tests_report(&[]);
        report.console = lines.iter().map(|l| l.to_string()).collect();
        report
    }

    #[test]
    fn queues_on_two_vcpus_pass_and_on_one_fail() {
        let good = report(&[
            "httpd: 2 vCPUs serving",
            "net: vif/0 queue 0 on vCPU 0, queue 1 on vCPU 1 (channels bound, by Xen's status; one task pinned to each)",
        ]);
        assert_eq!(placement(&good), Some(vec![0, 1]));
        assert!(check_placement(&good).is_err(), "no queue task lines");
        let mut served = good.clone();
        served
            .console
            .push("net: queue 0: 40 events served on vCPU 0, 0 elsewhere".into());
        served
            .console
            .push("net: queue 1: 35 events served on vCPU 1, 0 elsewhere".into());
        assert_eq!(served_by(&served, 1), Some((35, 1, 0)));
        assert_eq!(check_placement(&served), Ok(()));
        let mut stray = good.clone();
        stray
            .console
            .push("net: queue 0: 40 events served on vCPU 0, 0 elsewhere".into());
        stray
            .console
            .push("net: queue 1: 35 events served on vCPU 1, 2 elsewhere".into());
        assert!(check_placement(&stray).is_err());
        let same = report(&[
            "httpd: 2 vCPUs serving",
            "net: vif/0 queue 0 on vCPU 0, queue 1 on vCPU 0 (channels bound, by Xen's status; one task pinned to each)",
        ]);
        assert!(check_placement(&same).is_err());
        let one = report(&["net: vif/0 queue 0 on vCPU 0 (channels bound)"]);
        assert!(check_placement(&one).is_err(), "no serving line, one queue");
        assert!(check_placement(&report(&["httpd: 2 vCPUs serving"])).is_err());
    }
}
