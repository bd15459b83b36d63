//! `cargo xtask conformance --matrix`: the suite on every hypervisor the
//! rig has × boot mode (PV, PVH) × event-channel ABI (2-level, FIFO via
//! `evtchn=fifo` on the guest's command line), in one role: as a directly
//! booted dom0 (the default), or, with `--as domu`, as domUs of a Linux
//! dom0 with that version's toolstack (one dom0 session per version runs
//! the four domUs in turn); and one table of check × configuration →
//! PASS/FAIL/SKIP.
//!
//! Rows whose result differs between Xen versions (for the same mode and
//! event-channel ABI) come first: those are what a hypervisor upgrade
//! changes, and each must be a documented change (its PASS line names the
//! rule), never an unexplained one. Next come rows with the same result
//! reached by a different version rule (`~`, e.g. `platform_parameters`:
//! `0xffff800000000000` for PVH on 4.17, 0 on 4.20, both PASS), with the
//! rules printed under the table. The table is printed, and written as
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

/// The role the suite runs in, the same for every column of a matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// Booted directly as dom0 (no Linux, no toolstack).
    #[default]
    Dom0,
    /// A domU of the rig's Linux dom0, created by xl.
    DomU,
}

impl Role {
    /// `dom0` or `domU`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dom0 => "dom0",
            Role::DomU => "domU",
        }
    }
}

/// One column of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The role (the same in every column).
    pub role: Role,
    /// The hypervisor.
    pub xen: rig::XenVersion,
    /// PV or PVH.
    pub mode: rig::GuestMode,
    /// The event-channel ABI.
    pub evtchn: EvtchnAbi,
}

impl Config {
    /// Every configuration of `role`, grouped by version.
    pub fn all(role: Role) -> Vec<Config> {
        let mut all = Vec::new();
        for xen in rig::XenVersion::ALL {
            for mode in rig::GuestMode::ALL {
                for evtchn in EvtchnAbi::ALL {
                    all.push(Config {
                        role,
                        xen,
                        mode,
                        evtchn,
                    });
                }
            }
        }
        all
    }

    /// The domain name of this configuration's domU (`conformance-pvh-fifo`):
    /// one per configuration in a version's dom0 session.
    fn domu_name(&self) -> String {
        format!("conformance-{}-{}", self.mode.as_str(), self.evtchn.label())
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
    /// The version rule each `PASS name: … (rule: …)` line applied.
    pub rules: Vec<(String, String)>,
}

/// The rules the suite's PASS lines name: `(check, rule)` for each
/// `PASS group/name: … (rule: RULE)`.
pub fn pass_rules(console: &[String]) -> Vec<(String, String)> {
    console
        .iter()
        .filter_map(|line| {
            let (name, note) = line.trim_end().strip_prefix("PASS ")?.split_once(": ")?;
            let rule = note.split_once("(rule: ")?.1;
            let rule = rule.strip_suffix(')').unwrap_or(rule);
            Some((name.to_string(), rule.to_string()))
        })
        .collect()
}

/// The rule `name` passed by in `column`, if its PASS line named one.
fn rule<'a>(column: &'a Column, name: &str) -> Option<&'a str> {
    column
        .rules
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, r)| r.as_str())
}

/// How a row compares across Xen versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    /// The result differs between versions (`*`).
    Differs,
    /// The same result, reached by a different version rule (`~`).
    RuleDiffers,
    /// The same everywhere, version for version.
    Same,
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

/// How `name` compares between Xen versions, for each mode and
/// event-channel ABI.
fn compare_versions(columns: &[Column], name: &str) -> RowKind {
    let pairs = || {
        columns.iter().flat_map(|a| {
            columns
                .iter()
                .filter(move |b| {
                    a.config.xen != b.config.xen
                        && a.config.mode == b.config.mode
                        && a.config.evtchn == b.config.evtchn
                })
                .map(move |b| (a, b))
        })
    };
    if pairs().any(|(a, b)| cell(a, name) != cell(b, name)) {
        RowKind::Differs
    } else if pairs().any(|(a, b)| rule(a, name) != rule(b, name)) {
        RowKind::RuleDiffers
    } else {
        RowKind::Same
    }
}

/// Rows in print order: results that differ between versions first, then
/// the same results by different rules, then the rest.
pub fn ordered_rows(columns: &[Column]) -> Vec<(String, RowKind)> {
    let mut rows: Vec<(String, RowKind)> = check_names(columns)
        .into_iter()
        .map(|n| {
            let kind = compare_versions(columns, &n);
            (n, kind)
        })
        .collect();
    // Stable: the suite's order within each kind.
    rows.sort_by_key(|(_, kind)| match kind {
        RowKind::Differs => 0,
        RowKind::RuleDiffers => 1,
        RowKind::Same => 2,
    });
    rows
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
    for (name, kind) in &rows {
        if only_differing && *kind == RowKind::Same {
            hidden += 1;
            continue;
        }
        let mark = match kind {
            RowKind::Differs => '*',
            RowKind::RuleDiffers => '~',
            RowKind::Same => ' ',
        };
        let _ = write!(out, "{mark} {name:width$}");
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
    // The rules behind the rows that changed: one line per distinct rule.
    let mut said: Vec<(String, String)> = Vec::new();
    for (name, kind) in &rows {
        if *kind == RowKind::Same {
            continue;
        }
        for c in columns {
            if let Some(r) = rule(c, name) {
                let entry = (name.clone(), r.to_string());
                if !said.contains(&entry) {
                    let _ = writeln!(out, "  rule for {name} on {}: {r}", c.config.xen);
                    said.push(entry);
                }
            }
        }
    }
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
            "    {{\"label\": {}, \"role\": {}, \"xen\": {}, \"mode\": {}, \"evtchn\": {}, \
             \"passed\": {p}, \"failed\": {f}, \"skipped\": {s}, \"verdict\": {}, \"ending\": {}, \
             \"ok\": {}}}{}",
            json_string(&c.config.label()),
            json_string(c.config.role.as_str()),
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
    for (i, (name, kind)) in rows.iter().enumerate() {
        let _ = write!(
            out,
            "    {{\"check\": {}, \"differs_between_versions\": {}, \"rule_differs_between_versions\": {}, \"results\": {{",
            json_string(name),
            *kind == RowKind::Differs,
            *kind == RowKind::RuleDiffers
        );
        for (j, c) in columns.iter().enumerate() {
            let why = c
                .output
                .cases
                .iter()
                .find(|case| &case.name == name)
                .and_then(|case| match &case.result {
                    CaseResult::Fail(w) | CaseResult::Skip(w) => Some(w.clone()),
                    CaseResult::Pass => rule(c, name).map(|r| format!("rule: {r}")),
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
        let suite = format!(
            "conformance.{}.{}",
            c.config.role.as_str(),
            c.config.label().replace('/', "-")
        );
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

/// The column of one configuration's run.
fn column_of(config: Config, guest: &rig::GuestReport) -> Column {
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
    Column {
        config,
        output,
        ending: format!("{:?}", guest.ending),
        ok,
        rules: pass_rules(&guest.console),
    }
}

/// Runs every configuration of `role` and returns the columns.
pub fn run(kernel: &Path, cmdline: &str, role: Role) -> Result<Vec<Column>, String> {
    let timeout = Duration::from_secs(180);
    let configs = Config::all(role);
    let mut columns = Vec::new();
    for xen in rig::XenVersion::ALL {
        let rig = rig::Rig::prepare_xen(xen).map_err(|e| e.to_string())?;
        let of_version: Vec<Config> = configs.iter().copied().filter(|c| c.xen == xen).collect();
        let cmdline_of = |config: &Config| format!("{cmdline} {}", config.evtchn.cmdline());
        match role {
            Role::Dom0 => {
                for config in of_version {
                    wait_for_other_qemu();
                    eprintln!("matrix: {}", config.label());
                    let guest = rig
                        .boot_dom0_mode(kernel, cmdline_of(&config).trim(), timeout, config.mode)
                        .map_err(|e| e.to_string())?;
                    columns.push(column_of(config, &guest));
                }
            }
            Role::DomU => {
                // One dom0 session per version: booting Xen and Linux
                // costs more than a suite run.
                let specs: Vec<rig::GuestSpec> = of_version
                    .iter()
                    .map(|config| {
                        let mut spec = crate::guest_spec(
                            &config.domu_name(),
                            kernel,
                            cmdline_of(config).trim(),
                            64,
                            timeout,
                        )
                        .with_mode(config.mode);
                        // As in CI: the smp checks need a second vCPU.
                        spec.extra_config.push("vcpus = 2".into());
                        spec
                    })
                    .collect();
                wait_for_other_qemu();
                eprintln!("matrix: {xen}, domUs in one dom0 session");
                let session_limit = timeout * specs.len() as u32 + Duration::from_secs(120);
                let session = rig
                    .run_domus(&specs, session_limit)
                    .map_err(|e| e.to_string())?;
                for config in of_version {
                    let guest = session
                        .guests
                        .iter()
                        .find(|g| g.name == config.domu_name())
                        .ok_or_else(|| format!("no report for {}", config.label()))?;
                    columns.push(column_of(config, guest));
                }
            }
        }
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
                role: Role::Dom0,
                xen,
                mode,
                evtchn: EvtchnAbi::TwoLevel,
            },
            output: conformance::parse(&lines),
            ending: "Poweroff".into(),
            ok: true,
            rules: pass_rules(&lines),
        }
    }

    fn sample() -> Vec<Column> {
        use rig::GuestMode::{Pv, Pvh};
        use rig::XenVersion::{V4_17, V4_20};
        vec![
            column(
                V4_17,
                Pv,
                "PASS a/same\nSKIP v/new: old\nPASS v/rule: 1 (rule: old (x))\nTest result: SUCCESS",
            ),
            column(
                V4_17,
                Pvh,
                "PASS a/same\nSKIP v/new: old\nSKIP p/pv: PV only\nTest result: SUCCESS",
            ),
            column(
                V4_20,
                Pv,
                "PASS a/same\nPASS v/new: 0 (rule: r)\nPASS v/rule: 0 (rule: new)\nTest result: SUCCESS",
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
        let all = Config::all(Role::Dom0);
        assert_eq!(all.len(), 8);
        assert_eq!(all[0].label(), "4.17/PV/2l");
        assert_eq!(all[7].label(), "4.20/PVH/fifo");
        let domus = Config::all(Role::DomU);
        assert!(domus.iter().all(|c| c.role == Role::DomU));
        // Each domU of one version's session has a name of its own.
        let names: std::collections::BTreeSet<String> = domus
            .iter()
            .filter(|c| c.xen == rig::XenVersion::V4_20)
            .map(Config::domu_name)
            .collect();
        assert_eq!(names.len(), 4);
        assert!(names.contains("conformance-pvh-fifo"), "{names:?}");
        assert_eq!(EvtchnAbi::Fifo.cmdline(), "evtchn=fifo");
    }

    #[test]
    fn rows_that_differ_between_versions_come_first() {
        let columns = sample();
        let rows = ordered_rows(&columns);
        assert_eq!(rows[0], ("v/new".to_string(), RowKind::Differs));
        assert_eq!(rows[1], ("v/rule".to_string(), RowKind::RuleDiffers));
        assert!(rows[2..].iter().all(|(_, kind)| *kind == RowKind::Same));
        // A PV-only skip is a difference between modes, not versions.
        assert!(rows.contains(&("p/pv".to_string(), RowKind::Same)));
        assert_eq!(rule(&columns[0], "v/rule"), Some("old (x)"));
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
        assert!(short.contains("~ v/rule"), "{short}");
        assert!(
            short.contains("rule for v/rule on Xen 4.17: old (x)"),
            "{short}"
        );
        let json = to_json(&columns);
        assert!(json.contains("\"check\": \"v/new\", \"differs_between_versions\": true"));
        assert!(json.contains("\"why\": \"old\""));
        assert!(json.contains("\"passed\": 2, \"failed\": 0, \"skipped\": 1"));
        assert!(json.contains("\"result\": \"PASS\", \"why\": \"rule: new\""));
        assert_eq!(json_string("a\"b\\\n"), "\"a\\\"b\\\\\\n\"");
        let xml = to_junit(&columns);
        assert!(xml.contains("conformance.dom0.4.20-PVH-2l"));
        assert_eq!(xml.matches("<?xml").count(), 1);
    }
}
