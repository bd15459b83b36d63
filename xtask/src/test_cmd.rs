//! `cargo xtask test`: host unit tests, lints, guest builds, rig tests.
//!
//! Everything is counted: each host unit test (from libtest's summary
//! lines), each lint, each fuzz smoke run, each rig test. The last line
//! is `N passed, N failed`; the exit status is non-zero if anything
//! failed. What could not run here (the fuzz smoke without nightly or
//! cargo-fuzz) is a `SKIP` line with its reason and is counted on a line
//! of its own before that one (`N skipped: …`), neither passed nor
//! failed.
//!
//! `--pvh` (or `PARAVANE_PVH=1`) adds the PVH rig tests, `--no-pvh` (or
//! `PARAVANE_PVH=0`) leaves them out; see [`rig_tests::pvh_enabled`].
//!
//! `cargo xtask test FILTER` runs only the tests whose names contain
//! FILTER (see [`Filter`]): host unit tests through libtest's own filter,
//! lints and guest builds by their names, and only those rig sessions
//! that record a matching name. Results that do not match are neither
//! printed nor counted, so the summary counts only what was selected;
//! a filter that selects nothing is a failure, not an empty success.

use crate::args::Args;
use crate::guest_build::{self, Profile};
use crate::rig_tests;
use std::process::{ExitCode, Stdio};

/// `cargo xtask test FILTER`: which tests to run, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter(Option<String>);

impl Filter {
    /// The tests whose names contain `text` (everything if it is empty).
    pub fn containing(text: &str) -> Filter {
        Filter((!text.is_empty()).then(|| text.to_string()))
    }

    /// The filter text, if any.
    pub fn text(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Whether a result named `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        self.0.as_deref().is_none_or(|f| name.contains(f))
    }

    /// Whether something that records results under `names` must run:
    /// one of them contains the filter, or the filter begins with one
    /// (a name ending in a space is the prefix of names made at run
    /// time, such as `conformance domU ` + the guest's check name).
    pub fn selects(&self, names: &[&str]) -> bool {
        match self.0.as_deref() {
            None => true,
            Some(f) => names
                .iter()
                .any(|name| name.contains(f) || f.starts_with(name)),
        }
    }
}

/// Tallies of one run.
#[derive(Default)]
pub struct Tally {
    passed: usize,
    failed: Vec<String>,
    /// What could not run here, with why: not a pass.
    skipped: Vec<(String, String)>,
    filter: Filter,
}

impl Tally {
    /// A tally that counts only the results `filter` selects.
    pub fn filtered(filter: Filter) -> Tally {
        Tally {
            filter,
            ..Tally::default()
        }
    }

    /// The filter this tally counts by.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Records one named check and prints its line (unless the filter
    /// leaves it out: then it is neither printed nor counted).
    pub fn record(&mut self, name: &str, result: Result<(), String>) {
        if !self.filter.matches(name) {
            return;
        }
        match result {
            Ok(()) => {
                println!("PASS {name}");
                self.passed += 1;
            }
            Err(why) => {
                println!("FAIL {name}: {why}");
                self.failed.push(name.to_string());
            }
        }
    }

    /// Records a check that could not run here (a tool is missing), and
    /// prints its `SKIP` line with the reason (unless the filter leaves it
    /// out). It counts neither as passed nor as failed.
    pub fn skip(&mut self, name: &str, why: &str) {
        if !self.filter.matches(name) {
            return;
        }
        println!("SKIP {name}: {why}");
        self.skipped.push((name.to_string(), why.to_string()));
    }

    /// The summary's skip line (`None` when nothing was skipped): the
    /// count, then each reason once with the checks it kept from running.
    pub fn skipped_line(&self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
        for (name, why) in &self.skipped {
            match reasons.iter_mut().find(|(w, _)| w == why) {
                Some((_, names)) => names.push(name),
                None => reasons.push((why, vec![name])),
            }
        }
        let parts: Vec<String> = reasons
            .into_iter()
            .map(|(why, names)| format!("{} ({why})", names.join(", ")))
            .collect();
        Some(format!(
            "{} skipped: {}",
            self.skipped.len(),
            parts.join("; ")
        ))
    }

    /// Records a result whatever the filter: for what keeps the selected
    /// tests from running at all (the rig, a guest build they need).
    pub fn record_unfiltered(&mut self, name: &str, result: Result<(), String>) {
        let filter = std::mem::take(&mut self.filter);
        self.record(name, result);
        self.filter = filter;
    }

    /// Whether nothing recorded so far failed.
    pub fn all_passed(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Runs every test.
pub fn run(args: &mut Args) -> Result<ExitCode, String> {
    let host_only = args.flag("--host-only");
    let pvh = rig_tests::pvh_enabled(
        args.flag("--pvh"),
        args.flag("--no-pvh"),
        std::env::var("PARAVANE_PVH").ok().as_deref(),
    );
    let xen = crate::xen_arg(args)?;
    let filter = Filter::containing(&args.next_positional().unwrap_or_default());
    args.finish()?;
    let mut tally = Tally::filtered(filter.clone());
    if let Some(text) = filter.text() {
        eprintln!("== only the tests whose names contain {text:?}");
    }

    // The rig's cache also holds Xen's public headers, which the ABI
    // layout test compiles against: prepare it first.
    eprintln!("== preparing the rig (Xen, Linux dom0, toolstack; cached after the first run)");
    let rig = rig::Rig::prepare_xen(xen).map_err(|e| format!("preparing the rig failed: {e}"));
    let include = rig.as_ref().ok().map(|r| r.xen_include_dir());
    if let Err(e) = &rig {
        tally.record_unfiltered("rig prepare", Err(e.clone()));
    }

    if let Some(libtest_filter) = host_filter(&filter) {
        eprintln!("== host unit tests");
        host_tests(include.as_deref(), libtest_filter, &mut tally);
    }

    if filter.selects(&LAYOUT_420) {
        eprintln!("== the ABI layout test against Xen 4.20's headers (trixie's libxen-dev)");
        layout_420(&mut tally);
    }

    if filter.selects(&LINTS.map(|(name, _)| name)) {
        eprintln!("== lints");
        lint(&mut tally);
    }

    if filter.selects(&["ports link check "]) {
        eprintln!("== porting guides: link check over ports/**/*.md");
        crate::ports_check::record(&mut tally);
    }

    let smoke_names: Vec<String> = crate::fuzz::TARGETS
        .iter()
        .map(|target| crate::fuzz::smoke_name(target))
        .collect();
    if filter.selects(&smoke_names.iter().map(String::as_str).collect::<Vec<_>>()) {
        eprintln!(
            "== fuzz smoke (cargo +nightly fuzz, {} s per target)",
            crate::fuzz::SMOKE_SECONDS
        );
        crate::fuzz::smoke(&mut tally);
    }

    let rig_wanted = !host_only && rig_tests::selects(&filter, pvh);
    let build_names: Vec<String> = rig_tests::APPS
        .iter()
        .map(|app| format!("guest build {app}"))
        .collect();
    let build_names: Vec<&str> = build_names.iter().map(String::as_str).collect();
    if rig_wanted || filter.selects(&build_names) {
        eprintln!("== guest builds");
    }
    let mut guests = Vec::new();
    for app in rig_tests::APPS
        .iter()
        .filter(|app| rig_wanted || filter.matches(&format!("guest build {app}")))
    {
        match guest_build::build(app, Profile::Release) {
            Ok(elf) => {
                tally.record(&format!("guest build {app}"), Ok(()));
                guests.push((*app, elf));
            }
            Err(e) => tally.record_unfiltered(&format!("guest build {app}"), Err(e)),
        }
    }

    // The rig's load generator for dom0 (a static Linux binary).
    let loadgen = if rig_wanted {
        let result = guest_build::build_loadgen();
        match &result {
            Ok(_) => tally.record("dom0 tool build loadgen", Ok(())),
            Err(e) => tally.record_unfiltered("dom0 tool build loadgen", Err(e.clone())),
        }
        result.ok()
    } else {
        None
    };

    if host_only {
        eprintln!("== rig tests skipped (--host-only)");
    } else if !rig_wanted {
        eprintln!("== no rig test selected");
    } else if let Ok(rig) = &rig {
        if let (true, Some(loadgen)) = (guests.len() == rig_tests::APPS.len(), &loadgen) {
            eprintln!(
                "== rig tests (real Xen {} in QEMU{})",
                rig.xen_version.as_str(),
                if pvh { "; PV and PVH" } else { "; PV only" }
            );
            rig_tests::run(rig, &guests, loadgen, &mut tally, pvh);
        } else {
            tally.record_unfiltered("rig tests", Err("guest builds failed".into()));
        }
    }

    if let (Some(text), 0, 0, 0) = (
        filter.text(),
        tally.passed,
        tally.failed.len(),
        tally.skipped.len(),
    ) {
        tally.failed.push(format!("(no test matched {text:?})"));
        println!("FAIL no test's name contains {text:?}");
    }
    if let Some(line) = tally.skipped_line() {
        println!("{line}");
    }
    println!("{} passed, {} failed", tally.passed, tally.failed.len());
    if tally.failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!("failed: {}", tally.failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

/// Name prefixes of the tests that are not host unit tests: a filter
/// starting with one of them cannot select a host test, so `cargo test`
/// is not even started for it.
const NOT_HOST: &[&str] = &[
    "rig",
    "conformance",
    "lint",
    "guest build",
    "ports",
    "fuzz smoke",
];

/// Whether the host unit tests run under `filter`, and with which
/// libtest filter (`""`: all). A filter that names the group itself
/// (`host`, `host unit tests`, `host test`) runs all of them; `host test
/// NAME` runs those libtest calls NAME; a filter that begins like another
/// group's names runs none; anything else goes to libtest as it is.
pub fn host_filter(filter: &Filter) -> Option<&str> {
    let Some(text) = filter.text() else {
        return Some("");
    };
    if "host unit tests".contains(text) || "host test ".contains(text) {
        return Some("");
    }
    if let Some(name) = text.strip_prefix("host test ") {
        return Some(name);
    }
    if NOT_HOST.iter().any(|prefix| text.starts_with(prefix)) {
        return None;
    }
    Some(text)
}

/// `cargo test --workspace`, counted test by test from libtest's
/// summaries; `libtest_filter` (if not empty) picks tests by name.
fn host_tests(include: Option<&std::path::Path>, libtest_filter: &str, tally: &mut Tally) {
    let mut cmd = guest_build::cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast"]);
    if !libtest_filter.is_empty() {
        cmd.args(["--", libtest_filter]);
    }
    if let Some(include) = include {
        cmd.env("PARAVANE_XEN_INCLUDE", include);
    }
    let output = match cmd.stderr(Stdio::inherit()).output() {
        Ok(output) => output,
        Err(e) => return tally.record("host unit tests", Err(format!("cannot run cargo: {e}"))),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    let (passed, failed) = libtest_counts(&stdout);
    for line in stdout.lines() {
        if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|l| l.strip_suffix(" ... FAILED"))
        {
            tally.failed.push(format!("host test {name}"));
        }
    }
    tally.passed += passed;
    // A failure cargo reported that libtest did not count (a build error,
    // a crashed test binary) is still a failure.
    let listed = tally
        .failed
        .iter()
        .filter(|f| f.starts_with("host test "))
        .count();
    if !output.status.success() && failed == 0 && listed == 0 {
        tally.record_unfiltered(
            "host unit tests",
            Err(format!("cargo test failed ({})", output.status)),
        );
    } else if failed > listed {
        for i in listed..failed {
            tally.failed.push(format!("host test (unnamed #{i})"));
        }
    }
    println!("host unit tests: {passed} passed, {failed} failed");
}

/// The names [`layout_420`] records under.
const LAYOUT_420: [&str; 2] = [
    "abi layout vs Xen 4.20 headers: abi_matches_xen_public_headers",
    "abi layout vs Xen 4.20 headers: newer_interfaces_match_or_are_absent",
];

/// Runs `pv-arch`'s layout test against the public headers of Xen 4.20
/// (the host tests ran it against 4.17's): our definitions, compiled at
/// our interface version, must match the newer headers too, and the
/// interfaces new since 4.17 must match where they appear.
fn layout_420(tally: &mut Tally) {
    let include = match rig::Rig::prepare_xen(rig::XenVersion::V4_20) {
        Ok(rig) => rig.xen_include_dir(),
        Err(e) => {
            for name in LAYOUT_420 {
                tally.record(
                    name,
                    Err(format!("preparing Xen 4.20's headers failed: {e}")),
                );
            }
            return;
        }
    };
    let output = guest_build::cargo()
        .args([
            "test",
            "-p",
            "pv-arch",
            "--test",
            "abi_layout",
            "--",
            "--nocapture",
        ])
        .env("PARAVANE_XEN_INCLUDE", &include)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            for name in LAYOUT_420 {
                tally.record(name, Err(format!("cannot run cargo: {e}")));
            }
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in LAYOUT_420 {
        let test = name.rsplit(": ").next().unwrap_or(name);
        let result = if stdout.contains(&format!("test {test} ... ok")) {
            Ok(())
        } else {
            Err(format!(
                "against {}:\n{}{}",
                include.display(),
                stdout.trim_end(),
                stderr
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("Compiling")
                        && !l.trim_start().starts_with("Finished"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ))
        };
        tally.record(name, result);
    }
    for line in stderr
        .lines()
        .filter(|l| l.starts_with("checked ") || l.contains(" group: "))
    {
        println!("abi layout vs Xen 4.20 headers: {line}");
    }
}

/// Sums `test result: ok. N passed; M failed; …` lines.
pub fn libtest_counts(stdout: &str) -> (usize, usize) {
    let mut passed = 0;
    let mut failed = 0;
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("test result: ") else {
            continue;
        };
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            match words.as_slice() {
                [.., n, "passed"] => passed += n.parse::<usize>().unwrap_or(0),
                [n, "failed"] => failed += n.parse::<usize>().unwrap_or(0),
                _ => {}
            }
        }
    }
    (passed, failed)
}

/// fmt and clippy, for the host and for the guest target: each check's
/// name and cargo's arguments.
const LINTS: [(&str, &[&str]); 3] = [
    ("lint cargo fmt --check", &["fmt", "--all", "--check"]),
    (
        "lint clippy (host, all targets)",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ),
    (
        "lint clippy (guest, x86_64-unknown-none)",
        &[
            "clippy",
            "--package",
            "paravane-apps",
            "--target",
            "x86_64-unknown-none",
            "--",
            "-D",
            "warnings",
        ],
    ),
];

/// Runs the [`LINTS`] the tally's filter selects.
fn lint(tally: &mut Tally) {
    for (name, cargo_args) in LINTS {
        if !tally.filter().matches(name) {
            continue;
        }
        let status = guest_build::cargo().args(cargo_args).status();
        let result = match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("cargo {} failed ({s})", cargo_args.join(" "))),
            Err(e) => Err(format!("cannot run cargo: {e}")),
        };
        tally.record(name, result);
    }
}

#[cfg(test)]
mod tests {
    use super::{host_filter, libtest_counts, Filter, Tally};
    use crate::rig_tests::{self, pvh_enabled, PVH_BY_DEFAULT};

    #[test]
    fn filter_matches_by_substring_and_selects_by_prefix() {
        let all = Filter::containing("");
        assert!(all.matches("anything") && all.selects(&[]));
        let f = Filter::containing("e2e httpd");
        assert!(f.matches("rig pvh e2e httpd: 64 clients"));
        assert!(!f.matches("rig e2e net: echo"));
        assert!(f.selects(&["rig e2e httpd: "]));
        assert!(!f.selects(&["rig e2e net: ", "lint cargo fmt --check"]));
        // A name made at run time: the filter begins with its prefix.
        let f = Filter::containing("conformance domU grant/v1");
        assert!(f.selects(&["conformance domU "]));
        assert!(!f.selects(&["conformance dom0 "]));
    }

    #[test]
    fn host_tests_run_unless_the_filter_names_another_group() {
        assert_eq!(host_filter(&Filter::containing("")), Some(""));
        assert_eq!(host_filter(&Filter::containing("host")), Some(""));
        assert_eq!(
            host_filter(&Filter::containing("host test ring::wraps")),
            Some("ring::wraps")
        );
        assert_eq!(host_filter(&Filter::containing("ring::")), Some("ring::"));
        assert_eq!(host_filter(&Filter::containing("rig e2e httpd")), None);
        assert_eq!(host_filter(&Filter::containing("lint")), None);
        assert_eq!(
            host_filter(&Filter::containing("fuzz smoke start_info")),
            None
        );
    }

    #[test]
    fn skips_are_listed_apart_and_not_passed() {
        let mut tally = Tally::filtered(Filter::containing("fuzz smoke"));
        tally.skip("fuzz smoke a", "no nightly");
        tally.skip("fuzz smoke b", "no nightly");
        tally.skip("lint x", "filtered out");
        tally.record("fuzz smoke c", Ok(()));
        assert_eq!((tally.passed, tally.failed.len()), (1, 0));
        assert!(tally.all_passed());
        assert_eq!(
            tally.skipped_line().as_deref(),
            Some("2 skipped: fuzz smoke a, fuzz smoke b (no nightly)")
        );
        assert_eq!(Tally::default().skipped_line(), None);
    }

    #[test]
    fn rig_runs_are_selected_by_their_names() {
        for (filter, pvh, want) in [
            ("", false, true),
            ("rig e2e httpd", false, true),
            ("rig pvh e2e httpd", false, false),
            ("rig pvh e2e httpd", true, true),
            ("rig domU sleeper", false, true),
            ("rig serve", false, true),
            ("rig serve: headless chromium", false, true),
            ("serve", false, true),
            ("conformance domU-fifo evtchn/", false, true),
            ("lint", true, false),
            ("no such test", true, false),
        ] {
            assert_eq!(
                rig_tests::selects(&Filter::containing(filter), pvh),
                want,
                "{filter:?} pvh={pvh}"
            );
        }
    }

    #[test]
    fn pvh_switches() {
        assert_eq!(pvh_enabled(false, false, None), PVH_BY_DEFAULT);
        assert!(pvh_enabled(true, false, None));
        assert!(pvh_enabled(false, false, Some("1")));
        assert!(!pvh_enabled(false, false, Some("0")));
        assert!(!pvh_enabled(true, true, Some("1")));
        assert!(pvh_enabled(true, false, Some("0")));
        assert_eq!(pvh_enabled(false, false, Some("")), PVH_BY_DEFAULT);
    }

    #[test]
    fn libtest_summaries_are_summed() {
        let out = "test a ... ok\n\
                   test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
                   test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(libtest_counts(out), (8, 2));
    }
}
