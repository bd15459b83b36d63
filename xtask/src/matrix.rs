//! `cargo xtask conformance --matrix`: the suite on every hypervisor the
//! rig has × boot mode (PV, PVH) × event-channel ABI (2-level, FIFO via
//! `evtchn=fifo` on the guest's command line), as a directly booted dom0,
//! and one table of check × configuration → PASS/FAIL/SKIP.
//!
//! Rows whose result differs between Xen versions (for the same mode and
//! event-channel ABI) come first: those are what a hypervisor upgrade
//! changes, and each must be a documented change (its PASS line names the
//! rule), never an unexplained one. The table is printed, and written as
//! JSON (and, with `--junit FILE`, as JUnit XML: one test suite per
//! configuration). The pure parts (ordering, rendering, JSON) are host
//! tested; the boots are the rig's.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::conformance::{self, CaseResult, SuiteOutput};

/// The event-channel ABI a configuration asks the guest for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnAbi {
    /// The default 2-level ABI.
    TwoLevel,
    /// The FIFO ABI (`evtchn=fifo`).
    Fifo,
}

impl EvtchnAbi {
    const ALL: [EvtchnAbi; 2] = [EvtchnAbi::TwoLevel, EvtchnAbi::Fifo];

    fn label(self) -> &'static str {
        match self {
            EvtchnAbi::TwoLevel => "2l",
            EvtchnAbi::Fifo => "fifo",
        }
    }

    /// The guest command-line word that selects it.
    fn cmdline(self) -> &'static str {
        match self {
            EvtchnAbi::TwoLevel => "",
            EvtchnAbi::Fifo => "evtchn=fifo",
        }
    }
}

/// One column of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The hypervisor.
    pub xen: rig::XenVersion,
    /// PV or PVH dom0.
    pub mode: rig::GuestMode,
    /// The event-channel ABI.
    pub evtchn: EvtchnAbi,
}

impl Config {
    /// Every configuration, grouped by version.
    pub fn all() -> Vec<Config> {
        let mut all = Vec::new();
        for xen in rig::XenVersion::ALL {
            for mode in rig::GuestMode::ALL {
                for evtchn in EvtchnAbi::ALL {
                    all.push(Config { xen, mode, evtchn });
                }
            }
        }
        all
    }

    /// `4.20/PVH/fifo`.
    pub fn label(&self) -> String {
        format!(
            "{}/{}/{}",
            self.xen.as_str(),
            self.mode,
            self.evtchn.label()
        )
    }
}

/// What one configuration's run gave.
pub struct Column {
    /// The configuration.
    pub config: Config,
    /// The suite's lines and verdict.
    pub output: SuiteOutput,
    /// How dom0 ended (Xen's word), e.g. `Poweroff`.
    pub ending: String,
    /// Whether the run counts as a success (verdict SUCCESS, powered off).
    pub ok: bool,
}

/// `PASS`, `FAIL`, `SKIP`, or `-` when the check did not print.
fn cell(column: &Column, name: &str) -> &'static str {
    match column.output.cases.iter().find(|c| c.name == name) {
        Some(case) => match case.result {
            CaseResult::Pass => "PASS",
            CaseResult::Fail(_) => "FAIL",
            CaseResult::Skip(_) => "SKIP",
        },
        None => "-",
    }
}

/// Every check name, in the order the suite prints them.
fn check_names(columns: &[Column]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for column in columns {
        for case in &column.output.cases {
            if !names.contains(&case.name) {
                names.push(case.name.clone());
            }
        }
    }
    names
}

/// Whether `name`'s result differs between Xen versions for some mode
/// and event-channel ABI.
fn differs_between_versions(columns: &[Column], name: &str) -> bool {
    columns.iter().any(|a| {
        columns.iter().any(|b| {
            a.config.xen != b.config.xen
                && a.config.mode == b.config.mode
                && a.config.evtchn == b.config.evtchn
                && cell(a, name) != cell(b, name)
        })
    })
}

/// Rows in print order: version-differing rows first, then the rest;
/// each with whether it differs.
pub fn ordered_rows(columns: &[Column]) -> Vec<(String, bool)> {
    let names = check_names(columns);
    let (differ, same): (Vec<String>, Vec<String>) = names
        .into_iter()
        .partition(|n| differs_between_versions(columns, n));
    differ
        .into_iter()
        .map(|n| (n, true))
        .chain(same.into_iter().map(|n| (n, false)))
        .collect()
}

/// `passed/failed/skipped` of one column.
fn counts(output: &SuiteOutput) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for case in &output.cases {
        match case.result {
            CaseResult::Pass => c.0 += 1,
            CaseResult::Fail(_) => c.1 += 1,
            CaseResult::Skip(_) => c.2 += 1,
        }
    }
    c
}

/// The table as text: a header of configurations, the differing rows
/// (marked `*`), then the rest, then each column's counts and verdict.
/// With `only_differing`, the rows that agree everywhere across versions
/// are summarised in one line instead.
pub fn render(columns: &[Column], only_differing: bool) -> String {
    let rows = ordered_rows(columns);
    let width = rows
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(5)
        .max("verdict".len())
        + 2;
    let col = columns
        .iter()
        .map(|c| c.config.label().len())
        .max()
        .unwrap_or(4)
        .max(4)
        + 1;
    let mut out = String::new();
    let _ = write!(out, "  {:width$}", "check");
    for c in columns {
        let _ = write!(out, "{:>col$}", c.config.label());
    }
    out.push('\n');
    let mut hidden = 0;
    for (name, differs) in &rows {
        if only_differing && !differs {
            hidden += 1;
            continue;
        }
        let _ = write!(out, "{} {:width$}", if *differs { '*' } else { ' ' }, name);
        for c in columns {
            let _ = write!(out, "{:>col$}", cell(c, name));
        }
        out.push('\n');
    }
    if hidden > 0 {
        let _ = writeln!(
            out,
            "  ({hidden} more rows, the same on every version for each mode and ABI)"
        );
    }
    for (label, pick) in [("passed", 0), ("failed", 1), ("skipped", 2)] {
        let _ = write!(out, "  {label:width$}");
        for c in columns {
            let n = counts(&c.output);
            let _ = write!(out, "{:>col$}", [n.0, n.1, n.2][pick]);
        }
        out.push('\n');
    }
    let _ = write!(out, "  {:width$}", "verdict");
    for c in columns {
        let verdict = c.output.verdict.as_deref().unwrap_or("(none)");
        let _ = write!(out, "{verdict:>col$}");
    }
    out.push('\n');
    out
}

fn json_string(text: &str) -> String {
    let mut s = String::from("\"");
    for ch in text.chars() {
        match ch {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// The matrix as JSON: the configurations (with counts, verdict and
/// ending) and one object per check with each configuration's result
/// and, for FAIL/SKIP/noted PASS lines, the guest's words.
pub fn to_json(columns: &[Column]) -> String {
    let mut out = String::from("{\n  \"configurations\": [\n");
    for (i, c) in columns.iter().enumerate() {
        let (p, f, s) = counts(&c.output);
        let _ = writeln!(
            out,
            "    {{\"label\": {}, \"xen\": {}, \"mode\": {}, \"evtchn\": {}, \"passed\": {p}, \
             \"failed\": {f}, \"skipped\": {s}, \"verdict\": {}, \"ending\": {}, \"ok\": {}}}{}",
            json_string(&c.config.label()),
            json_string(c.config.xen.as_str()),
            json_string(c.config.mode.as_str()),
            json_string(c.config.evtchn.label()),
            json_string(c.output.verdict.as_deref().unwrap_or("")),
            json_string(&c.ending),
            c.ok,
            if i + 1 < columns.len() { "," } else { "" }
        );
    }
    out.push_str("  ],\n  \"checks\": [\n");
    let rows = ordered_rows(columns);
    for (i, (name, differs)) in rows.iter().enumerate() {
        let _ = write!(
            out,
            "    {{\"check\": {}, \"differs_between_versions\": {differs}, \"results\": {{",
            json_string(name)
        );
        for (j, c) in columns.iter().enumerate() {
            let why = c
                .output
                .cases
                .iter()
                .find(|case| &case.name == name)
                .and_then(|case| match &case.result {
                    CaseResult::Fail(w) | CaseResult::Skip(w) => Some(w.clone()),
                    CaseResult::Pass => None,
                });
            let _ = write!(
                out,
                "{}: {{\"result\": {}{}}}{}",
                json_string(&c.config.label()),
                json_string(cell(c, name)),
                why.map(|w| format!(", \"why\": {}", json_string(&w)))
                    .unwrap_or_default(),
                if j + 1 < columns.len() { ", " } else { "" }
            );
        }
        let _ = writeln!(out, "}}}}{}", if i + 1 < rows.len() { "," } else { "" });
    }
    out.push_str("  ]\n}\n");
    out
}

/// JUnit XML: one `<testsuite>` per configuration.
pub fn to_junit(columns: &[Column]) -> String {
    let mut body = String::new();
    for c in columns {
        let suite = format!("conformance.dom0.{}", c.config.label().replace('/', "-"));
        for line in conformance::junit(&suite, &c.output).lines() {
            if !line.starts_with("<?xml") {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n{body}</testsuites>\n")
}

/// Waits while a QEMU that is not ours runs: the machine is shared, and
/// other rig runs are timing-sensitive. Ours are all gone between boots.
fn wait_for_other_qemu() {
    let mut said = false;
    while std::process::Command::new("pgrep")
        .args(["-f", "qemu-system"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        if !said {
            eprintln!("matrix: another QEMU is running; waiting for it to finish");
            said = true;
        }
        std::thread::sleep(Duration::from_secs(20));
    }
}

/// Runs every configuration and returns the columns.
pub fn run(kernel: &Path, cmdline: &str) -> Result<Vec<Column>, String> {
    let timeout = Duration::from_secs(180);
    let mut columns = Vec::new();
    let mut rigs: Vec<rig::Rig> = Vec::new();
    for config in Config::all() {
        let rig = match rigs.iter().find(|r| r.xen_version == config.xen) {
            Some(rig) => rig.clone(),
            None => {
                let rig = rig::Rig::prepare_xen(config.xen).map_err(|e| e.to_string())?;
                rigs.push(rig.clone());
                rig
            }
        };
        let line = format!("{cmdline} {}", config.evtchn.cmdline());
        wait_for_other_qemu();
        eprintln!("matrix: {}", config.label());
        let guest = rig
            .boot_dom0_mode(kernel, line.trim(), timeout, config.mode)
            .map_err(|e| e.to_string())?;
        let output = conformance::parse(&guest.console);
        let ok = output.verdict.as_deref() == Some("SUCCESS")
            && matches!(guest.ending, rig::Ending::Poweroff);
        let (p, f, s) = counts(&output);
        eprintln!(
            "matrix: {}: {p} passed, {f} failed, {s} skipped, verdict {}, ended {:?}",
            config.label(),
            output.verdict.as_deref().unwrap_or("(none)"),
            guest.ending
        );
        columns.push(Column {
            config,
            output,
            ending: format!("{:?}", guest.ending),
            ok,
        });
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(xen: rig::XenVersion, mode: rig::GuestMode, text: &str) -> Column {
        let lines: Vec<String> = text.lines().map(String::from).collect();
        Column {
            config: Config {
                xen,
                mode,
                evtchn: EvtchnAbi::TwoLevel,
            },
            output: conformance::parse(&lines),
            ending: "Poweroff".into(),
            ok: true,
        }
    }

    fn sample() -> Vec<Column> {
        use rig::GuestMode::{Pv, Pvh};
        use rig::XenVersion::{V4_17, V4_20};
        vec![
            column(
                V4_17,
                Pv,
                "PASS a/same\nSKIP v/new: old\nTest result: SUCCESS",
            ),
            column(
                V4_17,
                Pvh,
                "PASS a/same\nSKIP v/new: old\nSKIP p/pv: PV only\nTest result: SUCCESS",
            ),
            column(
                V4_20,
                Pv,
                "PASS a/same\nPASS v/new: 0 (rule: r)\nTest result: SUCCESS",
            ),
            column(
                V4_20,
                Pvh,
                "PASS a/same\nPASS v/new\nSKIP p/pv: PV only\nTest result: SUCCESS",
            ),
        ]
    }

    #[test]
    fn configurations_cover_versions_modes_and_abis() {
        let all = Config::all();
        assert_eq!(all.len(), 8);
        assert_eq!(all[0].label(), "4.17/PV/2l");
        assert_eq!(all[7].label(), "4.20/PVH/fifo");
        assert_eq!(EvtchnAbi::Fifo.cmdline(), "evtchn=fifo");
    }

    #[test]
    fn rows_that_differ_between_versions_come_first() {
        let columns = sample();
        let rows = ordered_rows(&columns);
        assert_eq!(rows[0], ("v/new".to_string(), true));
        assert!(rows[1..].iter().all(|(_, differs)| !differs));
        // A PV-only skip is a difference between modes, not versions.
        assert!(rows.contains(&("p/pv".to_string(), false)));
        assert_eq!(cell(&columns[0], "p/pv"), "-");
    }

    #[test]
    fn table_and_json() {
        let columns = sample();
        let table = render(&columns, false);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("4.17/PV/2l") && lines[0].contains("4.20/PVH/2l"));
        assert!(lines[1].starts_with("* v/new"), "{table}");
        assert!(lines[1].ends_with("PASS"));
        assert!(table.contains("verdict"));
        let short = render(&columns, true);
        assert!(short.contains("(2 more rows"), "{short}");
        let json = to_json(&columns);
        assert!(json.contains("\"check\": \"v/new\", \"differs_between_versions\": true"));
        assert!(json.contains("\"why\": \"old\""));
        assert!(json.contains("\"passed\": 1, \"failed\": 0, \"skipped\": 1"));
        assert_eq!(json_string("a\"b\\\n"), "\"a\\\"b\\\\\\n\"");
        let xml = to_junit(&columns);
        assert!(xml.contains("conformance.dom0.4.20-PVH-2l"));
        assert_eq!(xml.matches("<?xml").count(), 1);
    }
}
