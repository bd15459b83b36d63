//! The bench's results as data: what `cargo xtask bench` writes to its
//! JSON file (`target/bench/bench.json` unless `--json FILE`) and what
//! the charts ([`crate::bench_charts`]) are drawn from.
//!
//! A run is a list of rounds (each with the host's load while it ran,
//! [`crate::bench_load`]) and a list of rows. A row is one figure (say
//! "disk read 64 MiB (guest's clock), MiB/s") with one series per
//! contender, each holding that figure for every round and its median.
//! Rows carry the label the bench prints; their group (which chart they
//! go to) and unit are read from that label ([`Row::from_label`]), so a
//! row added to the bench's tables lands in the JSON and on the right
//! chart without a list here to keep up to date.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bench_load::HostLoad;

/// Bumped when a field changes meaning.
pub const SCHEMA: u32 = 1;

/// Where the bench writes its results unless told otherwise.
pub fn default_path() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask
        .parent()
        .unwrap_or(xtask)
        .join("target/bench/bench.json")
}

/// One run of `cargo xtask bench`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchRun {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The Xen version the rig ran (`4.17`, `4.20`).
    pub xen: String,
    /// `full`, `http-only` or `footprint`.
    pub mode: String,
    /// When the run started, UTC (`2026-12-05T11:24:47Z`).
    pub date: String,
    /// The command line, for whoever wants to run it again.
    pub command: String,
    /// The host: logical CPUs and what the rig is (QEMU, software emulated).
    pub host: String,
    /// The rounds whose figures are in the rows, in order.
    pub rounds: Vec<Round>,
    /// Rounds run and then replaced by a retry because the host was busy
    /// (their figures are not in the rows; their load says why).
    pub discarded: Vec<Round>,
    /// The figures.
    pub rows: Vec<Row>,
}

/// One round: its load and whether it was taken under load.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// 1-based, as the bench prints it.
    pub round: usize,
    /// Which attempt this was (1, or 2 for the retry of a busy round).
    pub attempt: usize,
    /// Seconds the round's dom0 session took.
    pub seconds: f64,
    /// What else the host did meanwhile.
    pub load: HostLoad,
    /// Set when the load passed the bench's limit: the figures of this
    /// round may be skewed (see [`crate::bench_load::verdict`]).
    pub loaded: Option<String>,
}

/// One figure for every contender, round by round.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Which chart: `throughput`, `boot`, `httpd-rps`, `httpd-latency`,
    /// `size`, `memory` (see [`group_of`]).
    pub group: String,
    /// The label as the bench prints it, unit suffix included.
    pub name: String,
    /// `MiB/s`, `s`, `ms`, `requests/s`, `B`, `MiB`.
    pub unit: String,
    /// `higher` or `lower`: which is better.
    pub better: String,
    /// One per contender (or per measure, for sizes).
    pub series: Vec<Series>,
    /// Anything a reader needs next to the figure (why a smaller memory
    /// size failed, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One contender's figure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// `Paravane PV`, `Paravane PVH`, `Linux PV`, or an app's name.
    pub name: String,
    /// One per round in [`BenchRun::rounds`] (`null`: not measured).
    pub values: Vec<Option<f64>>,
    /// The median of the values present.
    pub median: Option<f64>,
}

impl Series {
    /// `name`'s series with its median worked out, the values rounded to
    /// a millionth (a difference of two clock readings such as 0.93
    /// otherwise comes out as 0.9300000000000006 in the file).
    pub fn new(name: &str, values: Vec<Option<f64>>) -> Series {
        let values: Vec<Option<f64>> = values
            .into_iter()
            .map(|v| v.map(|x| (x * 1e6).round() / 1e6))
            .collect();
        Series {
            name: name.into(),
            median: median(&values),
            values,
        }
    }
}

/// The median of the values present (the mean of the middle two for an
/// even count).
pub fn median(values: &[Option<f64>]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The unit at the end of a bench label (`…, MiB/s` → `MiB/s`), if any.
pub fn unit_of(label: &str) -> &str {
    label.rsplit_once(", ").map_or("", |(_, unit)| unit)
}

/// Which chart a bench label belongs to, read from its unit and words:
/// rates go to throughput, times in seconds or ms of a guest's start to
/// boot, httpd's rates and latencies to their own two.
pub fn group_of(label: &str) -> &'static str {
    let unit = unit_of(label);
    let lower = label.to_ascii_lowercase();
    if lower.contains("requests/s") {
        "httpd-rps"
    } else if lower.contains("latency") {
        "httpd-latency"
    } else if unit.ends_with("/s") {
        "throughput"
    } else if unit == "s" || unit == "ms" {
        "boot"
    } else {
        "other"
    }
}

impl Row {
    /// A row of the bench's tables: group and unit read from its label;
    /// rates are better higher, times lower.
    pub fn from_label(label: &str, series: Vec<Series>) -> Row {
        let unit = unit_of(label);
        let group = group_of(label);
        let better = if unit.ends_with("/s") || label.contains("requests/s") {
            "higher"
        } else {
            "lower"
        };
        Row {
            group: group.into(),
            name: label.into(),
            unit: if unit.is_empty() && group.starts_with("httpd") {
                "requests/s".into()
            } else {
                unit.into()
            },
            better: better.into(),
            series,
            notes: Vec::new(),
        }
    }

    /// The row's name without its unit suffix (for a chart's axis).
    pub fn short_name(&self) -> &str {
        self.name
            .strip_suffix(&format!(", {}", self.unit))
            .unwrap_or(&self.name)
    }
}

impl BenchRun {
    /// A run about to start, stamped with the time and command line.
    pub fn new(xen: &str, mode: &str) -> BenchRun {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        BenchRun {
            schema: SCHEMA,
            xen: xen.into(),
            mode: mode.into(),
            date: utc_date(std::time::SystemTime::now()),
            command: std::iter::once("cargo xtask".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" "),
            host: format!(
                "{cores} logical CPUs; the rig: Xen and its Linux dom0 in QEMU (TCG, software emulated, -smp 2)"
            ),
            ..BenchRun::default()
        }
    }

    /// The rows of `group`, in order.
    pub fn group<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
        self.rows.iter().filter(move |r| r.group == group)
    }

    /// Writes the run as pretty JSON, making the directory if needed.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads a run [`BenchRun::save`] wrote.
    pub fn load(path: &Path) -> Result<BenchRun, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let run: BenchRun =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if run.schema != SCHEMA {
            return Err(format!(
                "{}: schema {} (this xtask reads {SCHEMA})",
                path.display(),
                run.schema
            ));
        }
        Ok(run)
    }
}

/// `time` as `YYYY-MM-DDTHH:MM:SSZ` (days to a civil date by Howard
/// Hinnant's algorithm, so no date crate is needed for one stamp).
pub fn utc_date(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A run as the bench writes it: two rounds (the second loaded), a
    /// throughput row with a disk write nobody listed here, boot, httpd,
    /// size and memory rows.
    pub fn sample() -> BenchRun {
        let contenders = |v: [[Option<f64>; 2]; 3]| {
            ["Paravane PV", "Paravane PVH", "Linux PV"]
                .iter()
                .zip(v)
                .map(|(name, values)| Series::new(name, values.to_vec()))
                .collect::<Vec<_>>()
        };
        let mut memory = Row {
            group: "memory".into(),
            name: "httpd".into(),
            unit: "MiB".into(),
            better: "lower".into(),
            series: vec![
                Series::new("PV domU", vec![Some(4.0)]),
                Series::new("PVH domU", vec![Some(5.0)]),
            ],
            notes: vec!["PV at 3 MiB: xc: error: panic".into()],
        };
        memory.notes.push("PVH at 4 MiB: no success line".into());
        BenchRun {
            schema: SCHEMA,
            xen: "4.17".into(),
            mode: "full".into(),
            date: "2026-12-05T11:24:47Z".into(),
            command: "cargo xtask bench --rounds 2".into(),
            host: "2 logical CPUs".into(),
            rounds: vec![
                Round {
                    round: 1,
                    attempt: 1,
                    seconds: 300.0,
                    load: HostLoad::default(),
                    loaded: None,
                },
                Round {
                    round: 2,
                    attempt: 2,
                    seconds: 320.0,
                    load: HostLoad {
                        other_cores: 0.6,
                        ..HostLoad::default()
                    },
                    loaded: Some("others used 60% of a core".into()),
                },
            ],
            discarded: Vec::new(),
            rows: vec![
                Row::from_label(
                    "net echo 8 MiB each way (dom0 nc), MiB/s",
                    contenders([
                        [Some(4.0), Some(4.4)],
                        [Some(5.0), None],
                        [Some(4.1), Some(3.9)],
                    ]),
                ),
                Row::from_label(
                    "disk write 64 MiB (guest's clock), MiB/s",
                    contenders([
                        [Some(20.0), Some(22.0)],
                        [Some(25.0), Some(24.0)],
                        [Some(10.0), Some(11.0)],
                    ]),
                ),
                Row::from_label(
                    "net guest: xl create -> first console line, s",
                    contenders([
                        [Some(0.3), Some(0.35)],
                        [Some(0.4), Some(0.41)],
                        [Some(0.9), Some(1.1)],
                    ]),
                ),
                Row::from_label(
                    "net guest, its own runstate: in guest -> app, ms",
                    contenders([[Some(3.4), Some(3.5)], [Some(2.0), Some(2.1)], [None, None]]),
                ),
                Row::from_label(
                    "c=16 (256 requests) requests/s",
                    contenders([
                        [Some(100.0), Some(110.0)],
                        [Some(90.0), Some(95.0)],
                        [Some(50.0), Some(55.0)],
                    ]),
                ),
                Row::from_label(
                    "c=16 (256 requests) p99 latency, ms",
                    contenders([
                        [Some(200.0), Some(210.0)],
                        [Some(190.0), Some(195.0)],
                        [Some(500.0), Some(550.0)],
                    ]),
                ),
                Row {
                    group: "size".into(),
                    name: "hello".into(),
                    unit: "B".into(),
                    better: "lower".into(),
                    series: vec![
                        Series::new("stripped image", vec![Some(60_000.0)]),
                        Series::new("text", vec![Some(50_000.0)]),
                    ],
                    notes: Vec::new(),
                },
                Row {
                    group: "size".into(),
                    name: "Mini-OS (default build)".into(),
                    unit: "B".into(),
                    better: "lower".into(),
                    series: vec![Series::new("stripped image", vec![Some(133_656.0)])],
                    notes: Vec::new(),
                },
                memory,
            ],
        }
    }

    #[test]
    fn a_run_survives_a_round_trip_through_its_file() {
        let run = sample();
        let path = std::env::temp_dir().join(format!("bench-json-{}.json", std::process::id()));
        run.save(&path).unwrap();
        let back = BenchRun::load(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(back, run);
        let text = serde_json::to_string(&run).unwrap();
        assert!(text.contains(r#""values":[5.0,null]"#), "{text}");
        assert!(text.contains(r#""median":5.0"#));
        let noisy = Series::new("x", vec![Some(1.0599999999999996), None]);
        assert_eq!(noisy.values, vec![Some(1.06), None]);
    }

    #[test]
    fn a_file_of_another_schema_is_refused() {
        let mut run = sample();
        run.schema = SCHEMA + 1;
        let path = std::env::temp_dir().join(format!("bench-schema-{}.json", std::process::id()));
        run.save(&path).unwrap();
        let err = BenchRun::load(&path).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(err.contains("schema"), "{err}");
    }

    #[test]
    fn labels_say_their_group_unit_and_direction() {
        let row = Row::from_label("disk write 64 MiB (guest's clock), MiB/s", Vec::new());
        assert_eq!(
            (row.group.as_str(), row.unit.as_str()),
            ("throughput", "MiB/s")
        );
        assert_eq!(row.better, "higher");
        assert_eq!(row.short_name(), "disk write 64 MiB (guest's clock)");
        let row = Row::from_label("disk guest: xl create -> disk connected, s", Vec::new());
        assert_eq!((row.group.as_str(), row.unit.as_str()), ("boot", "s"));
        assert_eq!(row.better, "lower");
        let row = Row::from_label("c=1 (100 requests) requests/s", Vec::new());
        assert_eq!(
            (row.group.as_str(), row.better.as_str()),
            ("httpd-rps", "higher")
        );
        assert_eq!(row.unit, "requests/s");
        let row = Row::from_label("c=64 (512 requests) p50 latency, ms", Vec::new());
        assert_eq!(
            (row.group.as_str(), row.unit.as_str()),
            ("httpd-latency", "ms")
        );
    }

    #[test]
    fn medians_skip_missing_values() {
        assert_eq!(median(&[Some(3.0), None, Some(1.0), Some(2.0)]), Some(2.0));
        assert_eq!(median(&[Some(4.0), Some(1.0)]), Some(2.5));
        assert_eq!(median(&[None]), None);
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        let at = |s: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(utc_date(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(utc_date(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(utc_date(at(1_796_462_862)), "2026-12-05T09:27:42Z");
    }
}
