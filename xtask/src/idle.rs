//! Idle costs nothing: Xen's own accounting of a guest's CPU time over a
//! quiet window, read in dom0.
//!
//! A dom0 script splices in [`dom0_lines`] at the point where the guest
//! should be idle (after its traffic). They run `xentop -b -f -d 10 -i 2`,
//! whose second sample gives the domain's CPU % over the 10 s between the
//! two samples (computed from the hypervisor's nanosecond CPU time, shown
//! to 0.1 %), and, as a cross-check, `xl list`'s Time(s) column before
//! and after (0.1 s steps). [`check`] passes only if the guest ran under
//! [`LIMIT_PERCENT`] of the window. A guest that spins after its traffic
//! (as the network apps did: 17 s of CPU in 20 s) is far above it.

use rig::GuestReport;

/// The quiet window, in seconds.
pub const WINDOW_SECONDS: u32 = 10;
/// The most a guest may run in the window, in percent.
pub const LIMIT_PERCENT: f64 = 1.0;

/// busybox sh measuring `$NAME` for [`WINDOW_SECONDS`]; prints `TAG idle
/// xentop ROW` (xentop's last row for the guest, or what it said) and
/// `TAG idle xl CPU0 CPU1 UPTIME0 UPTIME1`.
pub fn dom0_lines(tag: &str) -> String {
    format!(
        r#"x0=$(xl list $NAME | awk 'NR == 2 {{ print $6 }}')
w0=$(cut -d' ' -f1 /proc/uptime)
xentop -b -f -d {WINDOW_SECONDS} -i 2 > /tmp/idle-$NAME 2>&1
w1=$(cut -d' ' -f1 /proc/uptime)
x1=$(xl list $NAME | awk 'NR == 2 {{ print $6 }}')
row=$(awk -v n=$NAME '$1 == n {{ r = $0 }} END {{ print r }}' /tmp/idle-$NAME)
[ -n "$row" ] || row="none: $(head -c 300 /tmp/idle-$NAME | tr '\n' ' ')"
echo "{tag} idle xentop $row"
echo "{tag} idle xl $x0 $x1 $w0 $w1"
"#
    )
}

/// The words after `prefix` on the first dom0 line starting with it.
fn rest<'a>(guest: &'a GuestReport, prefix: &str) -> Option<&'a str> {
    guest
        .dom0_output
        .iter()
        .find_map(|line| line.strip_prefix(prefix))
}

/// xentop's CPU % from its row (`NAME STATE CPU(sec) CPU(%) …`).
pub fn xentop_percent(row: &str) -> Option<f64> {
    row.split_whitespace().nth(3)?.parse().ok()
}

/// `xl list`'s CPU seconds before and after, and dom0's uptime around
/// the window.
fn xl_figures(line: &str) -> Option<(f64, f64, f64)> {
    let v: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match v.as_slice() {
        [c0, c1, w0, w1] => Some((*c0, *c1, w1 - w0)),
        _ => None,
    }
}

/// Passes if xentop says the guest ran under [`LIMIT_PERCENT`] of the
/// window; the message carries both figures and the limit. `after`
/// says what the guest had done before (for the message).
pub fn check(guest: &GuestReport, tag: &str, after: &str) -> Result<(), String> {
    let row = rest(guest, &format!("{tag} idle xentop "))
        .ok_or_else(|| format!("dom0 never measured the idle window after {after}"))?;
    let xl = rest(guest, &format!("{tag} idle xl "))
        .and_then(xl_figures)
        .map_or_else(
            || "no xl list figures".to_string(),
            |(c0, c1, wall)| {
                format!("xl list: CPU time {c0:.1} s -> {c1:.1} s over {wall:.1} s of dom0's clock")
            },
        );
    let percent = xentop_percent(row)
        .ok_or_else(|| format!("no CPU % in xentop's row for the guest: {row:?}; {xl}"))?;
    let figure = format!(
        "{} ran {percent:.1} % of {WINDOW_SECONDS} s idle after {after} (Xen's accounting, \
         xentop; limit {LIMIT_PERCENT} %); {xl}",
        guest.name
    );
    println!("idle: {figure}");
    if percent < LIMIT_PERCENT {
        Ok(())
    } else {
        Err(figure)
    }
}

/// A finished guest's report with these dom0 lines, for host tests.
#[cfg(test)]
pub fn tests_report(dom0: &[&str]) -> GuestReport {
    tests::report(dom0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rig::Ending;
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn report(dom0: &[&str]) -> GuestReport {
        GuestReport {
            name: "g".into(),
            console: Vec::new(),
            hypervisor_console: Vec::new(),
            ending: Ending::Poweroff,
            evidence: String::new(),
            elapsed: Duration::ZERO,
            dom0_output: dom0.iter().map(|s| s.to_string()).collect(),
            dom0_status: Some(0),
            log: PathBuf::new(),
            emulation_fault: None,
        }
    }

    #[test]
    fn idle_and_busy_guests() {
        let idle = report(&[
            "T idle xentop          g --b---          0    0.1      65536    6.4      66560       6.5     1    1",
            "T idle xl 0.4 0.4 20.01 30.12",
        ]);
        assert_eq!(check(&idle, "T", "traffic"), Ok(()));
        // What the spinning apps showed: 17 s of CPU in 20 s.
        let busy = report(&[
            "T idle xentop          g r-----         25   85.3      65536    6.4      66560       6.5     1    1",
            "T idle xl 14.2 22.7 20.0 30.1",
        ]);
        let why = check(&busy, "T", "traffic").unwrap_err();
        assert!(why.contains("85.3 %") && why.contains("limit 1 %"), "{why}");
        assert!(why.contains("14.2 s -> 22.7 s"), "{why}");
        // Exactly at the limit fails.
        let edge = report(&["T idle xentop g --b--- 0 1.0 1 1"]);
        assert!(check(&edge, "T", "x").is_err());
        assert!(check(&report(&["T idle xentop none: error"]), "T", "x").is_err());
        assert!(check(&report(&[]), "T", "x").is_err());
    }

    #[test]
    fn script_measures_the_named_guest() {
        let lines = dom0_lines("HTTPD");
        assert!(lines.contains("xentop -b -f -d 10 -i 2"));
        assert!(lines.contains("echo \"HTTPD idle xentop $row\""));
    }
}
