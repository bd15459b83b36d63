//! The bench's charts: SVG files drawn with `plotters` from a
//! [`BenchRun`] (the bench's JSON), one per group of rows present.
//!
//! Every chart has the same shape, so a row the bench gains (say disk
//! write next to disk read) appears on its group's chart by itself: one
//! band per row, one bar per contender in it, the bar's length the
//! median, every round drawn on it as a dot with a line from the smallest
//! to the largest value, so the spread is in sight. A round the host's
//! load flagged ([`crate::bench_load`]) is drawn as a cross instead of a
//! dot, and the footer names it. Figures spanning decades (a guest's own
//! start in ms next to `xl create` in s; echo next to disk reads) are
//! drawn on a log scale (a `--footprint` run's boot chart, the apps' own
//! boot over its memory search, is `footprint-boot.svg`). One more chart,
//! `load.svg` (`footprint-load.svg` for `--footprint`), is drawn from the rounds
//! themselves: the CPU other work and the rig took in each, the rounds
//! replaced by a retry included.

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::bench_json::{BenchRun, Row, Series};

/// One chart: which rows, in what unit, on which scale.
struct Chart {
    group: &'static str,
    title: &'static str,
    /// The axis' unit; rows in another unit are converted ([`factor`]).
    unit: &'static str,
    log: bool,
}

const CHARTS: [Chart; 6] = [
    Chart {
        group: "boot",
        title: "Boot split: a guest's own start, xl create to its first line and to its device (lower is better)",
        unit: "ms",
        log: true,
    },
    Chart {
        group: "throughput",
        title: "Throughput (higher is better)",
        unit: "MiB/s",
        // Echo (a few MiB/s) next to disk reads (100 and more).
        log: true,
    },
    Chart {
        group: "httpd-rps",
        title: "httpd: requests per second at 1, 16 and 64 clients (higher is better)",
        unit: "requests/s",
        log: false,
    },
    Chart {
        group: "httpd-latency",
        title: "httpd: latency per request, p50 and p99 (lower is better)",
        unit: "ms",
        log: true,
    },
    Chart {
        group: "size",
        title: "Image size per app next to Mini-OS (lower is better)",
        unit: "kB",
        log: false,
    },
    Chart {
        group: "memory",
        title: "Smallest memory= each app still does its job in (lower is better)",
        unit: "MiB",
        log: false,
    },
];

/// What a value in `unit` is multiplied by to be in `to`.
fn factor(unit: &str, to: &str) -> f64 {
    match (unit, to) {
        ("s", "ms") => 1000.0,
        ("B", "kB") => 0.001,
        _ => 1.0,
    }
}

/// The colours of the series, in order (colour-blind safe: Okabe-Ito).
const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(100, 100, 100),
];

/// An axis over `lo..hi` with ticks exactly where asked (a category's
/// band centre, or round numbers), labelled by the chart's formatter.
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = (self.hi - self.lo).max(f64::MIN_POSITIVE);
        let share = (value - self.lo) / span;
        limit.0 + (share * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }
}

/// Tick positions for a linear axis from 0 to `max`: about six, at 1, 2
/// or 5 times a power of ten.
fn linear_ticks(max: f64) -> (f64, Vec<f64>) {
    let max = if max > 0.0 { max } else { 1.0 };
    let rough = max / 6.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power);
    let top = (max / step).ceil() * step;
    let ticks = (0..=((top / step).round() as usize))
        .map(|i| i as f64 * step)
        .collect();
    (top, ticks)
}

/// For a log axis over `[min, max]`: the range in log10 and ticks at
/// 1, 2 and 5 times each power of ten within it.
fn log_ticks(min: f64, max: f64) -> (f64, f64, Vec<f64>) {
    let lo = min.max(1e-6).log10().floor();
    let hi = max.max(min * 10.0).log10().ceil();
    let mut ticks = Vec::new();
    let mut p = lo;
    // 2 and 5 too where they fit between the decades' labels.
    let steps: &[f64] = if hi - lo > 4.0 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    while p < hi + 0.5 {
        for &m in steps {
            let t = p + f64::log10(m);
            if t <= hi + 1e-9 {
                ticks.push(t);
            }
        }
        p += 1.0;
    }
    (lo, hi, ticks)
}

/// A number for an axis or a label: no more digits than it needs.
fn number(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        let s = format!("{v:.1}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// The series names of `rows`, in first-seen order.
fn series_names(rows: &[&Row]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for row in rows {
        for s in &row.series {
            if !names.contains(&s.name) {
                names.push(s.name.clone());
            }
        }
    }
    names
}

/// The footer: where the figures come from and, when the chart marks
/// them, which rounds were loaded.
fn footer(run: &BenchRun, per_round: bool, marks_load: bool) -> String {
    let mut text = format!(
        "{} on Xen {}, {}; bar = median, dot = one round, line = min to max",
        run.command, run.xen, run.date
    );
    if per_round {
        text.push_str(&format!(", {} rounds", run.rounds.len()));
    }
    let loaded: Vec<String> = run
        .rounds
        .iter()
        .filter(|r| r.loaded.is_some())
        .map(|r| r.round.to_string())
        .collect();
    if marks_load && !loaded.is_empty() {
        text.push_str(&format!(
            "; x = round {} taken under host load",
            loaded.join(", ")
        ));
    }
    text
}

/// Draws `chart` from `rows` into `path`.
fn draw(run: &BenchRun, chart: &Chart, rows: &[&Row], path: &Path) -> Result<(), String> {
    let names = series_names(rows);
    let per_row = names.len().max(1);
    // Pixels: 16 a bar, 14 between rows, plus the title, axis and legend.
    let height = 150 + rows.len() as u32 * (per_row as u32 * 16 + 14);
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<std::io::Error>| format!("{}: {e}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(chart.title, ("sans-serif", 20)).map_err(e)?;
    let (plot, foot) = root.split_vertically(height - 54);
    let (legend, plot) = plot.split_vertically(30);
    // Which values to draw as crosses: those of rounds taken under load
    // (the load chart's rows are rounds themselves, named so instead).
    // Sizes are read from the images, so no load skews them.
    let loaded: Vec<bool> = if chart.group == LOAD.group || chart.group == "size" {
        Vec::new()
    } else {
        run.rounds.iter().map(|r| r.loaded.is_some()).collect()
    };
    let per_round = rows
        .iter()
        .any(|r| r.series.iter().any(|s| s.values.len() > 1));
    foot.draw(&Text::new(
        footer(run, per_round, !loaded.is_empty()),
        (10, 4),
        ("sans-serif", 15).into_font().color(&RGBColor(80, 80, 80)),
    ))
    .map_err(e)?;

    // Values in the chart's unit, per row and series.
    let values = |row: &Row, name: &str| -> Vec<Option<f64>> {
        let k = factor(&row.unit, chart.unit);
        row.series
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.values.iter().map(|v| v.map(|v| v * k)).collect())
            .unwrap_or_default()
    };
    let all: Vec<f64> = rows
        .iter()
        .flat_map(|row| names.iter().flat_map(|n| values(row, n)))
        .flatten()
        .filter(|v| !chart.log || *v > 0.0)
        .collect();
    let max = all.iter().copied().fold(0.0, f64::max);
    let min = all.iter().copied().fold(f64::INFINITY, f64::min);
    let (x0, x1, ticks) = if chart.log {
        // Room on the right for the median labels.
        log_ticks(if min.is_finite() { min } else { 1.0 }, max.max(1e-3) * 1.6)
    } else {
        let (top, ticks) = linear_ticks(max * 1.15);
        (0.0, top, ticks)
    };
    let to_x = |v: f64| if chart.log { v.max(1e-6).log10() } else { v };
    let unit_label = if chart.log {
        format!("{} (log scale)", chart.unit)
    } else {
        chart.unit.to_string()
    };

    let n = rows.len();
    // Row i's band is centred on y = n - 1 - i, so the first is on top.
    let keys: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut ctx = ChartBuilder::on(&plot)
        .margin(10)
        .margin_right(30)
        .x_label_area_size(36)
        .y_label_area_size(330)
        .build_cartesian_2d(
            Axis {
                lo: x0,
                hi: x1,
                ticks,
            },
            Axis {
                lo: -0.5,
                hi: n as f64 - 0.5,
                ticks: keys,
            },
        )
        .map_err(e)?;
    let row_label = |y: &f64| -> String {
        let i = n as f64 - 1.0 - y.round();
        rows.get(i as usize)
            .map(|r| r.short_name().to_string())
            .unwrap_or_default()
    };
    let x_label = |x: &f64| {
        if chart.log {
            number(10f64.powf(*x))
        } else {
            number(*x)
        }
    };
    ctx.configure_mesh()
        .disable_y_mesh()
        .y_label_formatter(&row_label)
        .x_label_formatter(&x_label)
        .x_desc(unit_label)
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(e)?;

    let band = 0.8 / per_row as f64;
    for (j, name) in names.iter().enumerate() {
        let colour = COLOURS[j % COLOURS.len()];
        let (mut bars, mut spreads, mut dots, mut crosses, mut labels) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, row) in rows.iter().enumerate() {
            let v = values(row, name);
            let present: Vec<f64> = v.iter().flatten().copied().collect();
            let Some(median) = crate::bench_json::median(&v) else {
                continue;
            };
            let y = (n - 1 - i) as f64 + 0.4 - band * (j as f64 + 0.5);
            bars.push(Rectangle::new(
                [(x0, y - band * 0.4), (to_x(median).max(x0), y + band * 0.4)],
                colour.mix(0.45).filled(),
            ));
            if present.len() > 1 {
                let lo = present.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = present.iter().copied().fold(0.0, f64::max);
                spreads.push(PathElement::new(
                    vec![(to_x(lo), y), (to_x(hi), y)],
                    BLACK.stroke_width(1),
                ));
            }
            for (round, value) in v.iter().enumerate() {
                let Some(value) = value else { continue };
                let at = (to_x(*value), y);
                if loaded.get(round).copied().unwrap_or(false) {
                    crosses.push(Cross::new(at, 4, RED.stroke_width(2)));
                } else {
                    dots.push(Circle::new(at, 3, colour.filled()));
                }
            }
            // The median in figures, just right of the bar or the
            // largest dot.
            let right = present.iter().copied().fold(median, f64::max);
            let style = TextStyle::from(("sans-serif", 13).into_font())
                .pos(Pos::new(HPos::Left, VPos::Center));
            labels.push(
                EmptyElement::at((to_x(right), y)) + Text::new(number(median), (8, 0), style),
            );
        }
        ctx.draw_series(bars).map_err(e)?;
        ctx.draw_series(spreads).map_err(e)?;
        ctx.draw_series(dots).map_err(e)?;
        ctx.draw_series(crosses).map_err(e)?;
        ctx.draw_series(labels).map_err(e)?;
    }
    // The legend: one swatch and name per series, in a strip of its own
    // above the plot (inside it, it would cover a bar).
    let mut x = 340;
    for (j, name) in names.iter().enumerate() {
        let colour = COLOURS[j % COLOURS.len()];
        legend
            .draw(&Rectangle::new(
                [(x, 8), (x + 16, 22)],
                colour.mix(0.6).filled(),
            ))
            .map_err(e)?;
        legend
            .draw(&Text::new(
                name.as_str(),
                (x + 22, 8),
                ("sans-serif", 15).into_font(),
            ))
            .map_err(e)?;
        x += 40 + 8 * name.len() as i32;
    }
    root.present().map_err(e)?;
    Ok(())
}

/// `GROUP.svg`; the load and boot charts of a `--footprint` run are
/// `footprint-load.svg` and `footprint-boot.svg`, so they sit beside the
/// full bench's own.
fn file_name(run: &BenchRun, chart: &Chart) -> String {
    if (chart.group == LOAD.group || chart.group == "boot") && run.mode == "footprint" {
        format!("footprint-{}.svg", chart.group)
    } else {
        format!("{}.svg", chart.group)
    }
}

/// The host-load chart, drawn from the rounds rather than from rows.
const LOAD: Chart = Chart {
    group: "load",
    title: "Host load per round: the CPU other work took (a round over 25% mean or 75% in 10 s is taken under load)",
    unit: "% of a core",
    log: false,
};

/// The rounds' loads as rows of [`LOAD`]'s chart: one per round kept or
/// replaced, in % of a core.
fn load_rows(run: &BenchRun) -> Vec<Row> {
    let kept = run.rounds.iter().map(|r| (r, ""));
    let replaced = run.discarded.iter().map(|r| (r, " (replaced)"));
    kept.chain(replaced)
        .map(|(r, what)| {
            let one = |name: &str, cores: f64| Series::new(name, vec![Some(cores * 100.0)]);
            let mut row = Row::from_label(
                &format!(
                    "round {}, attempt {}{what}{}",
                    r.round,
                    r.attempt,
                    if r.loaded.is_some() { ": LOADED" } else { "" }
                ),
                vec![
                    one("other work, mean", r.load.other_cores),
                    one("other work, busiest 10 s", r.load.busiest_other_cores),
                    one("the rig (our QEMU), mean", r.load.rig_cores),
                ],
            );
            row.group = LOAD.group.into();
            row.unit = LOAD.unit.into();
            row
        })
        .collect()
}

/// Draws a chart for each group `run` has rows of into `dir`
/// (`GROUP.svg`), and returns the files written.
pub fn draw_all(run: &BenchRun, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let load = load_rows(run);
    for chart in CHARTS.iter().chain([&LOAD]) {
        let rows: Vec<&Row> = if chart.group == LOAD.group {
            load.iter().collect()
        } else {
            run.group(chart.group).collect()
        };
        if rows.is_empty() {
            continue;
        }
        let path = dir.join(file_name(run, chart));
        draw(run, chart, &rows, &path)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawn(run: &BenchRun) -> (PathBuf, Vec<PathBuf>) {
        let dir = std::env::temp_dir().join(format!(
            "bench-charts-{}-{}",
            std::process::id(),
            run.rows.len()
        ));
        let files = draw_all(run, &dir).unwrap();
        (dir, files)
    }

    #[test]
    fn every_group_gets_a_chart_with_its_rows_and_series() {
        let run = crate::bench_json::tests::sample();
        let (dir, files) = drawn(&run);
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "boot.svg",
                "throughput.svg",
                "httpd-rps.svg",
                "httpd-latency.svg",
                "size.svg",
                "memory.svg",
                "load.svg"
            ]
        );
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let throughput = read("throughput.svg");
        assert!(throughput.starts_with("<svg"), "{throughput:.80}");
        for name in ["Paravane PV", "Paravane PVH", "Linux PV"] {
            assert!(throughput.contains(name), "no {name} in throughput.svg");
        }
        // A row nobody listed here (disk write) is on the chart.
        assert!(throughput.contains("disk write 64 MiB"));
        assert!(throughput.contains("net echo 8 MiB each way"));
        // Round 2 is loaded: its marks are red crosses, the footer says so.
        assert!(throughput.contains("round 2 taken under host load"));
        assert!(throughput.contains("#FF0000"));
        let boot = read("boot.svg");
        assert!(boot.contains("ms (log scale)") && boot.contains("in guest"));
        let size = read("size.svg");
        assert!(size.contains("Mini-OS (default build)") && size.contains("stripped image"));
        assert!(size.contains("\n134\n"), "median label");
        let memory = read("memory.svg");
        assert!(memory.contains("PVH domU") && memory.contains("httpd"));
        let load = read("load.svg");
        assert!(load.contains("round 2, attempt 2") && load.contains("other work, mean"));
        assert!(load.contains("\n60\n"), "round 2's 60% of a core");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_run_without_some_groups_draws_only_the_others() {
        let mut run = crate::bench_json::tests::sample();
        run.rows.retain(|r| r.group == "size");
        run.rounds.clear();
        let (dir, files) = drawn(&run);
        assert_eq!(files, [dir.join("size.svg")]);
        run.mode = "footprint".into();
        run.rounds = crate::bench_json::tests::sample().rounds;
        let (dir, files) = drawn(&run);
        assert_eq!(
            files,
            [dir.join("size.svg"), dir.join("footprint-load.svg")]
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn axes_get_round_ticks() {
        let (top, ticks) = linear_ticks(23.0);
        assert_eq!(top, 25.0);
        assert_eq!(ticks, [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]);
        let (lo, hi, ticks) = log_ticks(2.1, 3400.0);
        assert_eq!((lo, hi), (0.0, 4.0));
        assert_eq!(ticks.len(), 13);
        assert_eq!(number(0.35), "0.35");
        assert_eq!(number(4.0), "4");
        assert_eq!(number(133.656), "134");
    }
}
