//! `cargo xtask e2e backend`: Paravane's blkfront against the rig's own
//! backend (`dom0-backend`, run in dom0), one guest per case in one dom0
//! session: first by the book (the `blkcheck` guest reads, checks, writes
//! and reads back the backend's 4 MiB RAM disk; the backend checks every
//! request and must count 0 violations), then each scripted attack of
//! the hostile personality against the `blkattack` guest, then the
//! netif attacks (`dom0-backend net`: `mtu` 0, 65535 queues offered,
//! hostile rx and tx responses) against the `netattack` guest.
//!
//! Each guest is created paused with no `disk=` (`GuestSpec::create_paused`);
//! its dom0 script waits for the domain to be built and starts the
//! backend, which writes the device's xenstore nodes and unpauses it.
//!
//! For every attack the guest must stay up and power off cleanly, report
//! the fault as the exact line [`EXPECT`] names, keep what was
//! acknowledged (its write of sectors 64..72 before the attack, read back,
//! and the backend's check of its disk afterwards), and end with no grant
//! leaked and nothing left in quarantine (a page the backend kept mapped
//! must have been quarantined, then drained once let go).

use rig::{Ending, GuestMode, GuestReport, GuestSpec};
use std::path::Path;
use std::time::Duration;

/// The by-the-book case (blkif).
pub const BY_THE_BOOK: &str = "by-the-book";
/// The by-the-book netif case: `netattack book=1` against `dom0-backend
/// net DOMID by-the-book`, which reflects its 32 frames.
pub const NET_BY_THE_BOOK: &str = "net-by-the-book";

/// How long the guest waits for a quarantine to drain.
const HOLD_CHECK: u64 = 30;
/// How long `blk-grant-kept-after-close` keeps its mappings after the
/// frontend closed: longer than blkfront's close waits for them (30 s),
/// so the pages must go to quarantine.
const HOLD: u64 = 40;

/// Per attack: the console line the guest must print (`*` stands for
/// any text: request ids and ring indices vary from run to run), and the
/// sectors the backend's disk check must find written.
pub const EXPECT: &[(&str, &str, u64)] = &[
    (
        "blk-unknown-id",
        "blkattack: read error at sector 1024: blkfront: response for unknown request id *",
        8,
    ),
    (
        "blk-duplicate-id",
        "blkattack: read error at sector 1024: blkfront: response for unknown request id *",
        8,
    ),
    (
        "blk-rsp-prod-ahead",
        "blkattack: read error at sector 1024: blkfront: ring: impossible producer index * (consumer at *)",
        8,
    ),
    (
        "blk-rsp-prod-backwards",
        "blkattack: read error at sector 1024: blkfront: ring: impossible producer index * (consumer at *)",
        8,
    ),
    (
        "blk-status-out-of-range",
        "blkattack: read error at sector 1024: blkfront: ring: response * has a bad status",
        8,
    ),
    (
        "blk-wrong-operation",
        "blkattack: read error at sector 1024: blkfront: response * has operation 1, the request was 0",
        8,
    ),
    (
        "blk-rewrite-after-read",
        "blkattack: read 4194304 bytes, all as expected",
        8,
    ),
    (
        "blk-grant-kept-after-close",
        "blkattack: quarantine holds * pages still mapped by the backend (not freed)",
        8,
    ),
    (
        "blk-state-flap",
        "blkattack: read error at sector *: blkfront: the disk was detached (the backend closed it)",
        8,
    ),
    (
        "blk-sector-size-huge",
        "blkattack: connect failed: blkfront: backend sector-size: out of range",
        0,
    ),
    (
        "blk-sectors-max",
        "blkattack: connect failed: blkfront: backend sectors: out of range",
        0,
    ),
    (
        "blk-max-segments-absurd",
        "blkattack: read 4194304 bytes, all as expected",
        8,
    ),
    (
        "blk-vanish-mid-request",
        "blkattack: read error at sector 1024: blkfront: the disk was detached (the backend closed it)",
        8,
    ),
];

/// Per netif attack (`dom0-backend net`): the console line netfront
/// must print (`*` as in [`EXPECT`]). The guest is `netattack`.
pub const NET_EXPECT: &[(&str, &str)] = &[
    (
        "net-mtu-zero",
        "netfront: vif/0 mac 00:16:3e:4b:0d:01 queues 1 (backend max 1) * mtu 1500 *",
    ),
    (
        "net-queues-65535",
        "netfront: vif/0 mac 00:16:3e:4b:0d:01 queues 2 (backend max 65535) *",
    ),
    (
        "net-rx-unknown-id",
        "netattack: netfront rx 0 frames 0 bytes, tx 1 frames 60 bytes, rx_errors 0 tx_errors 0 bad_responses 1 tx_dropped 0 *",
    ),
    (
        "net-rx-offset-off-page",
        "netattack: netfront rx 0 frames 0 bytes, tx 1 frames 60 bytes, rx_errors 0 tx_errors 0 bad_responses 1 tx_dropped 0 *",
    ),
    (
        "net-rx-status-out-of-range",
        "netattack: netfront rx 0 frames 0 bytes, tx 1 frames 60 bytes, rx_errors 0 tx_errors 0 bad_responses 1 tx_dropped 0 *",
    ),
    (
        "net-rx-more-data-endless",
        "netattack: netfront rx 0 frames 0 bytes, tx 1 frames 60 bytes, rx_errors 0 tx_errors 0 bad_responses 1 tx_dropped 0 *",
    ),
    (
        "net-tx-unknown-id",
        "netattack: netfront rx 0 frames 0 bytes, tx 1 frames 60 bytes, rx_errors 0 tx_errors 0 bad_responses 1 tx_dropped 0 *",
    ),
];

/// Whether `line` is `pattern`, where `*` stands for any text.
pub fn matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Every case, by-the-book first, then the blkif attacks, then the
/// netif ones.
pub fn cases() -> Vec<&'static str> {
    std::iter::once(BY_THE_BOOK)
        .chain(EXPECT.iter().map(|(name, _, _)| *name))
        .chain(std::iter::once(NET_BY_THE_BOOK))
        .chain(NET_EXPECT.iter().map(|(name, _)| *name))
        .collect()
}

/// The guest applications the cases boot.
pub struct Guests<'a> {
    /// `blkcheck` (by the book).
    pub blkcheck: &'a Path,
    /// `blkattack` (the blkif attacks).
    pub blkattack: &'a Path,
    /// `netattack` (the netif attacks).
    pub netattack: &'a Path,
}

/// The guest's name for `case` in `mode`.
pub fn name(case: &str, mode: GuestMode) -> String {
    match mode {
        GuestMode::Pv => format!("bk-{case}"),
        GuestMode::Pvh => format!("pvh-bk-{case}"),
    }
}

/// dom0's part for `case`: see [`wiring_script`].
fn dom0_script(case: &str, timeout: u64) -> String {
    let command = if case == NET_BY_THE_BOOK {
        "net \"$domid\" by-the-book".to_string()
    } else if case.starts_with("net-") {
        format!("net \"$domid\" {case}")
    } else {
        format!("blk \"$domid\" {case} --timeout {timeout} --hold {HOLD}")
    };
    wiring_script(&command)
}

/// A dom0 script that waits until the paused domain is built (its
/// console ring is in xenstore), then runs `dom0-backend COMMAND`
/// (`$domid` is the domain's id), which wires the disk (or the vif) and
/// unpauses it.
pub fn wiring_script(command: &str) -> String {
    format!(
        r#"n=0
until domid=$(xl domid "$NAME" 2> /dev/null) && xenstore-read "/local/domain/$domid/console/ring-ref" > /dev/null 2>&1; do
    n=$((n + 1))
    if [ $n -gt 300 ]; then echo "backend: FAILED: domain $NAME never built"; exit 1; fi
    sleep 0.1
done
# libxl finishes the paused domain after writing its console nodes.
sleep 0.5
/rig/bin/dom0-backend {command} 2>&1
"#
    )
}

/// The guest for `case` in `mode`.
pub fn spec(case: &str, guests: &Guests<'_>, backend: &Path, mode: GuestMode) -> GuestSpec {
    let by_the_book = case == BY_THE_BOOK;
    let kernel = if by_the_book {
        guests.blkcheck
    } else if case.starts_with("net-") {
        guests.netattack
    } else {
        guests.blkattack
    };
    let mut guest = GuestSpec::new(name(case, mode), kernel).with_mode(mode);
    guest.cmdline = if by_the_book {
        "write_start=1024 write_count=1024".to_string()
    } else if case == NET_BY_THE_BOOK {
        "book=1".to_string()
    } else {
        format!("hold_check={HOLD_CHECK}")
    };
    guest.memory_mib = if by_the_book { 64 } else { 32 };
    guest.timeout = Duration::from_secs(90);
    guest.create_paused = true;
    guest.dom0_tools = vec![backend.to_path_buf()];
    guest.dom0_script = Some(dom0_script(case, 100));
    guest
}

fn has<'a>(lines: &'a [String], text: &str) -> Result<&'a String, String> {
    lines
        .iter()
        .find(|line| line.contains(text))
        .ok_or_else(|| format!("no line with {text:?}"))
}

/// The backend's summary: requests served and violations counted.
fn summary(lines: &[String], prefix: &str) -> Result<(u64, u64), String> {
    let line = has(lines, prefix)?;
    let rest = &line[line.find(prefix).unwrap_or(0) + prefix.len()..];
    let numbers: Vec<u64> = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    match numbers[..] {
        [requests, violations, ..] => Ok((requests, violations)),
        _ => Err(format!("cannot read {line:?}")),
    }
}

/// What every case requires: a clean poweroff, the backend's disk intact
/// with `written` sectors written, no grant leaked, nothing quarantined.
fn common(report: &GuestReport, app: &str, written: u64) -> Result<(), String> {
    if report.ending != Ending::Poweroff {
        return Err(format!(
            "ended {} ({}), not a clean poweroff",
            report.ending, report.evidence
        ));
    }
    has(&report.console, &format!("{app}: done"))?;
    if let Ok(line) = has(&report.dom0_output, "backend: FAILED") {
        return Err(line.clone());
    }
    let disk = has(&report.dom0_output, "backend: disk check ")?;
    let want = format!("backend: disk check ok: {written} sectors written");
    if !disk.contains(&want) {
        return Err(format!("{disk:?}, expected {want:?}"));
    }
    // The last accounting line the guest printed.
    let grants = report
        .console
        .iter()
        .rev()
        .find(|l| l.contains(&format!("{app}: grants ")) || l.contains("quarantine drained"))
        .ok_or("no grant accounting line")?;
    if !grants.contains(", 0 quarantined (") || !grants.contains("0 leaked (0 ever)") {
        return Err(format!("grants: {grants:?}"));
    }
    Ok(())
}

/// Checks a netif case: a clean poweroff, the line netfront printed, a
/// clean disconnect, no grant leaked or quarantined, no violation.
fn check_net(case: &str, expected: &str, report: &GuestReport) -> Result<(), String> {
    if report.ending != Ending::Poweroff {
        return Err(format!(
            "ended {} ({}), not a clean poweroff",
            report.ending, report.evidence
        ));
    }
    if !report.console.iter().any(|line| matches(expected, line)) {
        return Err(format!("no console line {expected:?}"));
    }
    has(&report.console, "netattack: disconnected")?;
    has(&report.console, "netattack: done")?;
    let grants = has(&report.console, "netattack: grants ")?;
    if !grants.contains(", 0 quarantined (") || !grants.contains("0 leaked (0 ever)") {
        return Err(format!("grants: {grants:?}"));
    }
    has(
        &report.dom0_output,
        &format!("backend: hostile netif {case}: fired, 0 frontend violations"),
    )?;
    Ok(())
}

/// Checks the by-the-book netif case: every frame reflected intact, a
/// clean disconnect and poweroff, no grant leaked or quarantined, and the
/// backend's count of violations 0.
fn check_net_book(report: &GuestReport) -> Result<(), String> {
    if report.ending != Ending::Poweroff {
        return Err(format!(
            "ended {} ({}), not a clean poweroff",
            report.ending, report.evidence
        ));
    }
    has(
        &report.console,
        "netattack: book: 32 of 32 frames reflected intact (32 sent, 0 wrong",
    )?;
    has(&report.console, "netattack: disconnected")?;
    has(&report.console, "netattack: done")?;
    let grants = has(&report.console, "netattack: grants ")?;
    if !grants.contains(", 0 quarantined (") || !grants.contains("0 leaked (0 ever)") {
        return Err(format!("grants: {grants:?}"));
    }
    net_book_summary(&report.dom0_output, 32)
}

/// The by-the-book netif backend's summary: no violation (each one
/// quoted otherwise) and at least `frames` frames answered.
pub fn net_book_summary(dom0: &[String], frames: u64) -> Result<(), String> {
    let summary = has(dom0, "backend: by-the-book netif: ")?;
    let violations: Vec<&String> = dom0
        .iter()
        .filter(|l| l.contains("backend: violation: "))
        .collect();
    if !violations.is_empty() || !summary.ends_with(" 0 dropped, 0 violations") {
        return Err(format!("{summary}: {violations:?}"));
    }
    let answered: u64 = [" arp,", " icmp,", " reflected,"]
        .iter()
        .filter_map(|tag| {
            let head = &summary[..summary.find(tag)?];
            head.rsplit(' ').next()?.parse::<u64>().ok()
        })
        .sum();
    if answered < frames {
        return Err(format!("{summary}: fewer than {frames} frames answered"));
    }
    Ok(())
}

/// Checks one case's report.
pub fn check(case: &str, report: &GuestReport) -> Result<(), String> {
    if case == NET_BY_THE_BOOK {
        return check_net_book(report);
    }
    if let Some((_, expected)) = NET_EXPECT.iter().find(|(name, _)| *name == case) {
        return check_net(case, expected, report);
    }
    if case == BY_THE_BOOK {
        common(report, "blkcheck", 1024)?;
        for line in [
            "blkcheck: pattern ok in all 8192 sectors",
            "blkcheck: read back ok",
            "blkcheck: disconnected",
        ] {
            has(&report.console, line)?;
        }
        let (requests, violations) = summary(&report.dom0_output, "backend: by-the-book blkif: ")?;
        if requests == 0 || violations != 0 {
            return Err(format!(
                "{requests} requests, {violations} violations: {:?}",
                report
                    .dom0_output
                    .iter()
                    .filter(|l| l.contains("violation"))
                    .take(3)
                    .collect::<Vec<_>>()
            ));
        }
        return Ok(());
    }
    let (_, expected, written) = EXPECT
        .iter()
        .find(|(name, _, _)| *name == case)
        .ok_or_else(|| format!("no expectation for {case}"))?;
    common(report, "blkattack", *written)?;
    has(
        &report.dom0_output,
        &format!("backend: hostile blkif {case}: fired"),
    )?;
    if *written > 0 {
        has(
            &report.console,
            "blkattack: wrote, flushed and read back sectors 64..72",
        )?;
    }
    if !report.console.iter().any(|line| matches(expected, line)) {
        return Err(format!("no console line {expected:?}"));
    }
    if case == "blk-grant-kept-after-close" {
        has(&report.console, "blkattack: quarantine drained after ")?;
        has(&report.dom0_output, "backend: releasing ")?;
    }
    Ok(())
}

/// Every case in each of `modes`, one guest after the other, in one dom0
/// session; one result per case and mode (`rig backend CASE (PV)`).
pub fn run(
    rig: &rig::Rig,
    guests: &Guests<'_>,
    backend: &Path,
    modes: &[GuestMode],
) -> Vec<(String, Result<(), String>)> {
    let mut specs = Vec::new();
    for &mode in modes {
        for case in cases() {
            specs.push(spec(case, guests, backend, mode));
        }
    }
    let limit = Duration::from_secs(120) + specs.iter().map(|g| g.timeout).sum::<Duration>();
    let session = match rig.run_domus(&specs, limit) {
        Ok(session) => session,
        Err(e) => return vec![("rig backend: run".into(), Err(e.to_string()))],
    };
    results(&session.guests, modes)
}

/// The name of `case`'s result in `mode` (`rig backend CASE (PV)`).
pub fn test_name(case: &str, mode: GuestMode) -> String {
    format!("rig backend {case} ({mode})")
}

/// One result per case and mode, from a session's reports.
pub fn results(reports: &[GuestReport], modes: &[GuestMode]) -> Vec<(String, Result<(), String>)> {
    let mut results = Vec::new();
    for &mode in modes {
        for case in cases() {
            let guest = name(case, mode);
            let result = match reports.iter().find(|g| g.name == guest) {
                Some(report) => check(case, report)
                    .map_err(|why| format!("{why} (log: {})", report.log.display())),
                None => Err(format!("no report for {guest}")),
            };
            results.push((test_name(case, mode), result));
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_lines() {
        let p = "blkattack: read error at sector *: blkfront: the disk was detached";
        assert!(matches(
            p,
            "blkattack: read error at sector 1152: blkfront: the disk was detached"
        ));
        assert!(!matches(
            p,
            "blkattack: read error at sector 1152: blkfront: the disk was"
        ));
        assert!(!matches(
            p,
            "x blkattack: read error at sector 1: blkfront: the disk was detached"
        ));
        let q = "a * b * c";
        assert!(matches(q, "a 1 b 2 c"));
        assert!(!matches(q, "a 1 b 2 cd"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
    }

    #[test]
    fn the_netif_summary_must_show_no_violation_and_enough_frames() {
        let ok = "backend: by-the-book netif: 40 tx requests, 40 rx responses, 1 arp, 20 icmp, 0 reflected, 19 ignored, 0 dropped, 0 violations";
        assert_eq!(net_book_summary(&[ok.into()], 20), Ok(()));
        assert!(net_book_summary(&[ok.into()], 22).is_err());
        let bad = ok.replace("0 violations", "1 violations");
        let line = "backend: violation: tx request 3: more_data without feature-sg".to_string();
        let err = net_book_summary(&[line, bad], 1).unwrap_err();
        assert!(err.contains("more_data"), "{err}");
    }

    #[test]
    fn every_attack_of_the_backend_has_an_expectation() {
        assert_eq!(cases().len(), 22);
        assert_eq!(cases()[0], BY_THE_BOOK);
    }
}
