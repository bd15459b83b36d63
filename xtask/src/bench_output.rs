//! Running the bench's rounds under the host-load watch, and writing what
//! they gave: the JSON file ([`crate::bench_json`]) and the charts drawn
//! from it ([`crate::bench_charts`]).
//!
//! Each round is one dom0 session of its own with a
//! [`bench_load::Sampler`] around it. A round the host's other work
//! loaded ([`bench_load::verdict`]) is run once more; the retry's figures
//! are kept (flagged too if it was loaded as well) and the first
//! attempt's load is listed under `discarded`, so nothing is hidden.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rig::{GuestReport, GuestSpec, Rig};

use crate::bench_json::{self, BenchRun, Round};
use crate::bench_load::{self, HostLoad};

/// The JSON file a mode writes unless `--json` says otherwise: the full
/// bench (and `--http-only`) `target/bench/bench.json`, `--footprint`
/// `target/bench/footprint.json`, so running both keeps both.
pub fn default_json(mode: &str) -> PathBuf {
    let bench = bench_json::default_path();
    if mode == "footprint" {
        bench.with_file_name("footprint.json")
    } else {
        bench
    }
}

/// A round's record, with [`bench_load::verdict`]'s flag.
pub fn round(round: usize, attempt: usize, took: Duration, load: HostLoad) -> Round {
    Round {
        round,
        attempt,
        seconds: took.as_secs_f64(),
        loaded: bench_load::verdict(&load),
        load,
    }
}

/// What to do after an attempt: run the round again only if this was
/// the first attempt and the host was busy.
pub fn retry(attempt: usize, round: &Round) -> bool {
    attempt == 1 && round.loaded.is_some()
}

/// What a round left.
pub struct RoundRun {
    /// The kept attempt's guests.
    pub reports: Vec<GuestReport>,
    /// The kept attempt's record.
    pub kept: Round,
    /// The record of an attempt that was replaced.
    pub discarded: Vec<Round>,
}

/// Runs round `number`'s guests in a dom0 session of their own, again
/// if the host was busy.
pub fn run_round(rig: &Rig, number: usize, guests: &[GuestSpec]) -> Result<RoundRun, String> {
    let timeout = guests
        .iter()
        .map(|g| g.timeout + Duration::from_secs(30))
        .sum::<Duration>()
        + Duration::from_secs(120);
    let mut discarded = Vec::new();
    for attempt in 1.. {
        println!(
            "bench: round {number}{}: {} guests",
            if attempt > 1 { " again" } else { "" },
            guests.len()
        );
        let sampler = bench_load::Sampler::start();
        let started = Instant::now();
        let session = rig.run_domus(guests, timeout);
        let record = round(number, attempt, started.elapsed(), sampler.stop());
        let session = session.map_err(|e| e.to_string())?;
        crate::report::print_session_timing(&session);
        println!(
            "bench: round {number}: {}{}",
            bench_load::describe(&record.load),
            record
                .loaded
                .as_ref()
                .map_or(String::new(), |why| format!(": TAKEN UNDER LOAD ({why})"))
        );
        if retry(attempt, &record) {
            println!("bench: round {number} is run again");
            discarded.push(record);
            continue;
        }
        return Ok(RoundRun {
            reports: session.guests,
            kept: record,
            discarded,
        });
    }
    unreachable!("the loop returns by its second attempt")
}

/// The rounds' loads, for the end of the bench's output.
pub fn print_loads(run: &BenchRun) {
    println!();
    for r in &run.rounds {
        println!(
            "round {} (attempt {}): {}{}",
            r.round,
            r.attempt,
            bench_load::describe(&r.load),
            r.loaded
                .as_ref()
                .map_or(String::new(), |why| format!(" -- LOADED: {why}"))
        );
    }
    for r in &run.discarded {
        println!(
            "round {} attempt {} replaced: {}",
            r.round,
            r.attempt,
            r.loaded.as_deref().unwrap_or("")
        );
    }
}

/// Writes the JSON and draws the charts beside it (or into `charts`).
pub fn write(run: &BenchRun, json: &Path, charts: Option<&Path>) -> Result<(), String> {
    run.save(json)?;
    println!("bench: results in {}", json.display());
    draw(run, json, charts)
}

fn draw(run: &BenchRun, json: &Path, charts: Option<&Path>) -> Result<(), String> {
    let dir = charts
        .map(Path::to_path_buf)
        .or_else(|| json.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    for file in crate::bench_charts::draw_all(run, &dir)? {
        println!("bench: chart {}", file.display());
    }
    Ok(())
}

/// `cargo xtask bench --charts-only [--json FILE] [--charts DIR]`: the
/// charts of `json`, or of both default files that exist.
pub fn charts_only(json: Option<&Path>, charts: Option<&Path>) -> Result<ExitCode, String> {
    let files: Vec<PathBuf> = match json {
        Some(file) => vec![file.to_path_buf()],
        None => ["full", "footprint"]
            .into_iter()
            .map(default_json)
            .filter(|f| f.exists())
            .collect(),
    };
    if files.is_empty() {
        return Err(format!(
            "no results to draw: run `cargo xtask bench` first (it writes {}) or name one with --json FILE",
            default_json("full").display()
        ));
    }
    for file in files {
        let run = BenchRun::load(&file)?;
        draw(&run, &file, charts)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loaded_first_attempt_is_run_again() {
        let quiet = round(1, 1, Duration::from_secs(60), HostLoad::default());
        assert!(quiet.loaded.is_none() && !retry(1, &quiet));
        let busy = HostLoad {
            other_cores: 0.5,
            ..HostLoad::default()
        };
        let loaded = round(1, 1, Duration::from_secs(60), busy);
        assert!(loaded.loaded.is_some());
        assert!(retry(1, &loaded));
        // The retry is kept, loaded or not, and stays flagged.
        let again = round(1, 2, Duration::from_secs(60), busy);
        assert!(!retry(2, &again) && again.loaded.is_some());
    }

    #[test]
    fn charts_are_redrawn_from_a_json_file_alone() {
        let dir = std::env::temp_dir().join(format!("bench-redraw-{}", std::process::id()));
        let json = dir.join("bench.json");
        bench_json::tests::sample().save(&json).unwrap();
        charts_only(Some(&json), None).unwrap();
        let throughput = std::fs::read_to_string(dir.join("throughput.svg")).unwrap();
        assert!(throughput.contains("disk write 64 MiB"));
        let elsewhere = dir.join("charts");
        charts_only(Some(&json), Some(&elsewhere)).unwrap();
        assert!(elsewhere.join("memory.svg").exists());
        std::fs::remove_dir_all(&dir).ok();
        assert!(charts_only(Some(&dir.join("none.json")), None).is_err());
    }

    #[test]
    fn footprint_results_do_not_overwrite_the_bench() {
        assert_eq!(default_json("full"), default_json("http-only"));
        assert!(default_json("full").ends_with("target/bench/bench.json"));
        assert!(default_json("footprint").ends_with("target/bench/footprint.json"));
    }
}
