//! `cargo xtask fuzz [TARGET] [--time S] [--runs N]`: coverage-guided fuzzing of
//! what Paravane reads from other domains, and the short smoke run of
//! every target in `cargo xtask test`.
//!
//! The targets live in `fuzz/` (a cargo-fuzz crate with a workspace of
//! its own, so the product's stable build never sees it) and run under
//! `cargo +nightly fuzz`: nightly for this one command only. Each run
//! reads the seed corpus kept in the repository (`fuzz/corpus/TARGET`)
//! and grows a working corpus in `fuzz/target/corpus/TARGET` (first on
//! libFuzzer's command line, so new inputs go there and the seeds stay
//! as committed); crash inputs land in `fuzz/artifacts/TARGET`.
//!
//! Built with `--sanitizer none`: the code under test is safe Rust
//! (`drivers-pv` and `libos` forbid `unsafe`; the `kernel` parsers used
//! have none), where AddressSanitizer finds nothing that bounds checks
//! do not, at about half the executions. Overflow checks and debug
//! assertions are on in the fuzz crate's profile.
//!
//! Machines without nightly or cargo-fuzz (CI images, fresh clones) get
//! a clear message from `cargo xtask fuzz`, and `cargo xtask test`
//! records each smoke as skipped, with the reason, never as passed.

use crate::args::Args;
use crate::guest_build::workspace_root;
use crate::test_cmd::Tally;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// Every fuzz target (`fuzz/fuzz_targets/NAME.rs`), in the order they run.
pub const TARGETS: [&str; 13] = [
    "xenstore_wire",
    "xenstore_client",
    "front_ring",
    "blkfront_responses",
    "netfront_responses",
    "xenbus_state",
    "backend_features",
    "start_info",
    "hvm_start_info",
    "control",
    "balloon_target",
    "netconfig",
    "hotplug",
];

/// Seconds per target of `cargo xtask fuzz` without `--time`.
pub const DEFAULT_SECONDS: u64 = 60;

/// Seconds per target of the smoke run in `cargo xtask test` (all
/// thirteen in a little over two minutes once built).
pub const SMOKE_SECONDS: u64 = 10;

/// The name a target's smoke run is recorded under.
pub fn smoke_name(target: &str) -> String {
    format!("fuzz smoke {target}")
}

/// The fuzz crate's directory.
fn fuzz_dir() -> PathBuf {
    workspace_root().join("fuzz")
}

/// `cargo +nightly …` in the fuzz crate, through rustup's proxy. The
/// toolchain cargo set for us (this xtask runs under stable) must not
/// leak into it.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").current_dir(fuzz_dir());
    for var in [
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Why fuzzing cannot run here (`None`: it can).
pub fn missing_tools() -> Option<String> {
    let works = |args: &[&str]| {
        nightly_cargo()
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !works(&["--version"]) {
        return Some(
            "no nightly toolchain (fuzzing needs it, the product does not): \
             `rustup toolchain install nightly`"
                .into(),
        );
    }
    if !works(&["fuzz", "--version"]) {
        return Some(
            "cargo-fuzz is not installed: `cargo +nightly install cargo-fuzz --locked`".into(),
        );
    }
    None
}

/// What one run did, from libFuzzer's output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Inputs executed.
    pub executions: Option<u64>,
    /// Coverage: code edges reached (`cov:`).
    pub coverage: Option<u64>,
    /// Features (`ft:`: edges with hit counts, comparisons, …).
    pub features: Option<u64>,
    /// The working corpus at the end (`corp:`, entries/size).
    pub corpus: Option<String>,
    /// The crash, if any: the panic (or libFuzzer's error) and where the
    /// input was written.
    pub crash: Option<String>,
}

impl std::fmt::Display for RunStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        write!(
            f,
            "{} executions, cov {}, ft {}, corpus {}, crashes {}",
            show(self.executions),
            show(self.coverage),
            show(self.features),
            self.corpus.as_deref().unwrap_or("?"),
            u8::from(self.crash.is_some())
        )
    }
}

/// Reads libFuzzer's output (its stderr): the last status line
/// (`#N DONE cov: C ft: F corp: …`), the final statistics
/// (`-print_final_stats=1`) and a crash report, if any.
pub fn parse_stats(output: &str) -> RunStats {
    let mut stats = RunStats::default();
    let word_after = |line: &str, key: &str| -> Option<String> {
        let mut words = line.split_whitespace();
        words.find(|w| *w == key)?;
        words.next().map(str::to_string)
    };
    let mut panic = None;
    let mut error = None;
    let mut artifact = None;
    for line in output.lines() {
        if line.starts_with('#') && line.contains("cov:") {
            stats.executions = line[1..]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok());
            stats.coverage = word_after(line, "cov:").and_then(|n| n.parse().ok());
            stats.features = word_after(line, "ft:").and_then(|n| n.parse().ok());
            stats.corpus = word_after(line, "corp:");
        } else if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            stats.executions = n.trim().parse().ok().or(stats.executions);
        } else if line.contains("panicked at") && panic.is_none() {
            panic = Some(line.trim().to_string());
        } else if line.contains("ERROR: libFuzzer:") && error.is_none() {
            error = Some(line.trim().to_string());
        } else if let Some(path) = line.split("Test unit written to ").nth(1) {
            artifact = Some(path.trim().to_string());
        }
    }
    if panic.is_some() || error.is_some() || artifact.is_some() {
        let what = panic.or(error).unwrap_or_else(|| "crash".into());
        stats.crash = Some(match artifact {
            Some(path) => format!("{what} (input: fuzz/{path})"),
            None => what,
        });
    }
    stats
}

/// Builds every target (once, before the runs).
fn build() -> Result<(), String> {
    let status = nightly_cargo()
        .args(["fuzz", "build", "--sanitizer", "none"])
        .status()
        .map_err(|e| format!("cannot run cargo +nightly fuzz: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo +nightly fuzz build failed ({status})"))
    }
}

/// Runs `target` for `seconds` over its seeds and working corpus.
/// `Err` only when it could not run at all; a crash is in the stats.
fn run_target(target: &str, seconds: u64, runs: Option<u64>) -> Result<RunStats, String> {
    let work = format!("target/corpus/{target}");
    let seeds = format!("corpus/{target}");
    for dir in [&work, &seeds] {
        std::fs::create_dir_all(fuzz_dir().join(dir))
            .map_err(|e| format!("cannot create fuzz/{dir}: {e}"))?;
    }
    let output = nightly_cargo()
        .args(["fuzz", "run", "--sanitizer", "none", target, &work, &seeds])
        .args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-print_final_stats=1",
            // An input that takes this long is a hang: report it.
            "-timeout=10",
        ])
        .args(runs.map(|n| format!("-runs={n}")))
        .output()
        .map_err(|e| format!("cannot run cargo +nightly fuzz: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut stats = parse_stats(&stderr);
    if !output.status.success() && stats.crash.is_none() {
        // Not a crash libFuzzer reported (a build error, a missing
        // target): show the end of what it said.
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        if stats.executions.is_none() {
            return Err(format!(
                "cargo fuzz run {target} failed ({}):\n{}",
                output.status,
                tail.join("\n")
            ));
        }
        stats.crash = Some(format!("exited with {}", output.status));
    }
    Ok(stats)
}

/// A positive whole number given to `flag`.
fn positive(flag: &str, text: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{flag} takes a positive whole number, not `{text}`"))
}

/// `cargo xtask fuzz [TARGET] [--time S] [--runs N]`: each target for S
/// seconds, or until N executions if `--runs` is given (then `--time`,
/// default an hour, is only the cap): the long runs of issue 13 are
/// `--runs 10000000`.
pub fn run(args: &mut Args) -> Result<ExitCode, String> {
    let runs = args
        .value("--runs")
        .map(|text| positive("--runs", &text))
        .transpose()?;
    let seconds = match args.value("--time") {
        None if runs.is_some() => 3600,
        None => DEFAULT_SECONDS,
        Some(text) => positive("--time", &text)?,
    };
    let wanted = args.next_positional();
    args.finish()?;
    let targets: Vec<&str> = match wanted.as_deref() {
        None => TARGETS.to_vec(),
        Some(name) if TARGETS.contains(&name) => vec![name],
        Some(name) => {
            return Err(format!(
                "no fuzz target `{name}`; the targets: {}",
                TARGETS.join(", ")
            ))
        }
    };
    if let Some(why) = missing_tools() {
        return Err(format!("cannot fuzz: {why}"));
    }
    eprintln!("== building the fuzz targets (nightly, fuzz/)");
    build()?;
    let mut crashed = Vec::new();
    for target in &targets {
        match runs {
            Some(runs) => {
                eprintln!("== fuzzing {target} for {runs} executions (at most {seconds} s)")
            }
            None => eprintln!("== fuzzing {target} for {seconds} s"),
        }
        let started = std::time::Instant::now();
        let stats = run_target(target, seconds, runs)?;
        println!(
            "{target}: {stats} in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        if let Some(crash) = &stats.crash {
            println!("  CRASH {crash}");
            crashed.push(*target);
        }
    }
    if crashed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "crashed: {} (reproduce: cd fuzz && cargo +nightly fuzz run -s none TARGET INPUT)",
            crashed.join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The smoke run in `cargo xtask test`: every target the tally's filter
/// selects, [`SMOKE_SECONDS`] each, recorded as `fuzz smoke TARGET`;
/// skipped (with the reason) where nightly or cargo-fuzz is missing.
pub fn smoke(tally: &mut Tally) {
    let targets: Vec<&str> = TARGETS
        .into_iter()
        .filter(|t| tally.filter().matches(&smoke_name(t)))
        .collect();
    if let Some(why) = missing_tools() {
        for target in targets {
            tally.skip(&smoke_name(target), &why);
        }
        return;
    }
    if let Err(e) = build() {
        tally.record_unfiltered("fuzz smoke build", Err(e));
        return;
    }
    for target in targets {
        let result = match run_target(target, SMOKE_SECONDS, None) {
            Ok(stats) => {
                println!("{}: {stats}", smoke_name(target));
                match stats.crash {
                    None => Ok(()),
                    Some(crash) => Err(crash),
                }
            }
            Err(e) => Err(e),
        };
        tally.record(&smoke_name(target), result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_are_read() {
        let out = "INFO: Seed: 1\n\
                   #2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #397505\tDONE   cov: 392 ft: 1504 corp: 332/56Kb lim: 4096 exec/s: 99376 rss: 33Mb\n\
                   Done 397505 runs in 4 second(s)\n\
                   stat::number_of_executed_units: 397506\n";
        let stats = parse_stats(out);
        assert_eq!(stats.executions, Some(397506));
        assert_eq!(stats.coverage, Some(392));
        assert_eq!(stats.features, Some(1504));
        assert_eq!(stats.corpus.as_deref(), Some("332/56Kb"));
        assert_eq!(stats.crash, None);
        assert_eq!(
            stats.to_string(),
            "397506 executions, cov 392, ft 1504, corpus 332/56Kb, crashes 0"
        );
    }

    #[test]
    fn a_crash_is_reported_with_its_input() {
        let out = "#1000\tNEW    cov: 48 ft: 49 corp: 35/534b\n\
                   thread '<unnamed>' panicked at kernel/src/boot_info.rs:308:13:\n\
                   attempt to multiply with overflow\n\
                   ==42== ERROR: libFuzzer: deadly signal\n\
                   artifact_prefix='/w/fuzz/artifacts/start_info/'; Test unit written to /w/fuzz/artifacts/start_info/crash-ab12\n";
        let stats = parse_stats(out);
        assert_eq!(stats.executions, Some(1000));
        let crash = stats.crash.unwrap();
        assert!(crash.contains("boot_info.rs:308"), "{crash}");
        assert!(crash.contains("crash-ab12"), "{crash}");
    }

    #[test]
    fn every_target_has_a_source_a_bin_and_seeds() {
        let fuzz = fuzz_dir();
        let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
        let bins = manifest.matches("[[bin]]").count();
        assert_eq!(bins, TARGETS.len(), "fuzz/Cargo.toml's [[bin]]s");
        for target in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "{target} is no [[bin]] in fuzz/Cargo.toml"
            );
            assert!(fuzz.join(format!("fuzz_targets/{target}.rs")).is_file());
            let seeds = std::fs::read_dir(fuzz.join("corpus").join(target))
                .map(|d| d.count())
                .unwrap_or(0);
            assert!(seeds > 0, "no seed corpus for {target}");
        }
    }
}
