//! `cargo xtask test`: host unit tests, lints, guest builds, rig tests.
//!
//! Everything is counted: each host unit test (from libtest's summary
//! lines), each lint, each rig test. The last line is `N passed, N
//! failed`; the exit status is non-zero if anything failed.
//!
//! `--pvh` (or `PARAVANE_PVH=1`) adds the PVH rig tests, `--no-pvh` (or
//! `PARAVANE_PVH=0`) leaves them out; see [`rig_tests::pvh_enabled`].

use crate::args::Args;
use crate::guest_build::{self, Profile};
use crate::rig_tests;
use std::process::{ExitCode, Stdio};

/// Tallies of one run.
#[derive(Default)]
pub struct Tally {
    passed: usize,
    failed: Vec<String>,
}

impl Tally {
    /// Records one named check and prints its line.
    pub fn record(&mut self, name: &str, result: Result<(), String>) {
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
    args.finish()?;
    let mut tally = Tally::default();

    // The rig's cache also holds Xen's public headers, which the ABI
    // layout test compiles against: prepare it first.
    eprintln!("== preparing the rig (Xen, Linux dom0, toolstack; cached after the first run)");
    let rig = rig::Rig::prepare().map_err(|e| format!("preparing the rig failed: {e}"));
    let include = rig.as_ref().ok().map(|r| r.xen_include_dir());
    if let Err(e) = &rig {
        tally.record("rig prepare", Err(e.clone()));
    }

    eprintln!("== host unit tests");
    host_tests(include.as_deref(), &mut tally);

    eprintln!("== lints");
    lint(&mut tally);

    eprintln!("== porting guides: link check over ports/**/*.md");
    crate::ports_check::record(&mut tally);

    eprintln!("== guest builds");
    let mut guests = Vec::new();
    for app in rig_tests::APPS {
        match guest_build::build(app, Profile::Release) {
            Ok(elf) => {
                tally.record(&format!("guest build {app}"), Ok(()));
                guests.push((*app, elf));
            }
            Err(e) => tally.record(&format!("guest build {app}"), Err(e)),
        }
    }

    if host_only {
        eprintln!("== rig tests skipped (--host-only)");
    } else if let Ok(rig) = &rig {
        if guests.len() == rig_tests::APPS.len() {
            eprintln!(
                "== rig tests (real Xen 4.17 in QEMU{})",
                if pvh { "; PV and PVH" } else { "; PV only" }
            );
            rig_tests::run(rig, &guests, &mut tally, pvh);
        } else {
            tally.record("rig tests", Err("guest builds failed".into()));
        }
    }

    println!("{} passed, {} failed", tally.passed, tally.failed.len());
    if tally.failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!("failed: {}", tally.failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

/// `cargo test --workspace`, counted test by test from libtest's summaries.
fn host_tests(include: Option<&std::path::Path>, tally: &mut Tally) {
    let mut cmd = guest_build::cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast"]);
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
        tally.record(
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

/// fmt and clippy, for the host and for the guest target.
fn lint(tally: &mut Tally) {
    let checks: [(&str, &[&str]); 3] = [
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
    for (name, cargo_args) in checks {
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
    use super::libtest_counts;
    use crate::rig_tests::{pvh_enabled, PVH_BY_DEFAULT};

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
