//! The bench's httpd with 1 and 2 vCPUs: Paravane's PV `httpd` as the
//! HTTP round runs it, and the same guest given 2 vCPUs (`vcpus=2` on
//! its command line and in its xl config: its secondary vCPU up, its two
//! netfront queues served one on each, see libos's `net::queues`).
//! Under QEMU's emulation both vCPUs share the host's cores with dom0
//! and the load generator, so the figures are a sanity check (2 vCPUs
//! serve the load, at a rate of the same order), not a scaling claim.

use crate::bench::{HttpLevel, HTTP_LEVELS};
use crate::bench_json::{Row, Series};
use rig::GuestSpec;

/// The contenders' names in the table and the JSON.
const COLUMNS: [&str; 2] = ["Paravane PV 1 vCPU", "Paravane PV 2 vCPUs"];

/// `spec` given 2 vCPUs.
pub fn two_vcpus(mut spec: GuestSpec) -> GuestSpec {
    spec.cmdline.push_str(" vcpus=2");
    spec.extra_config.push("vcpus = 2".into());
    spec
}

/// Prints each round's requests/s and the medians with 1 and 2 vCPUs;
/// returns the rows for the JSON (group `httpd-rps`).
pub fn print_table(rounds: &[[[HttpLevel; 3]; 2]]) -> Vec<Row> {
    println!();
    println!(
        "{:<48} {:>20} {:>20} {:>8}",
        format!("httpd requests/s, median of {} rounds", rounds.len()),
        COLUMNS[0],
        COLUMNS[1],
        "2 / 1"
    );
    let mut rows = Vec::new();
    for (level, (clients, requests)) in HTTP_LEVELS.iter().enumerate() {
        let label = format!("c={clients} ({requests} requests) requests/s, 1 and 2 vCPUs");
        let per_column = |column: usize| -> Vec<Option<f64>> {
            rounds.iter().map(|r| r[column][level].rps).collect()
        };
        let medians: Vec<Option<f64>> = (0..2).map(|c| median(per_column(c))).collect();
        let ratio = match (medians[0], medians[1]) {
            (Some(one), Some(two)) if one > 0.0 => format!("{:.2}", two / one),
            _ => "-".into(),
        };
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{:<48} {:>20} {:>20} {:>8}",
            format!("c={clients} ({requests} requests)"),
            cell(medians[0]),
            cell(medians[1]),
            ratio
        );
        let series = COLUMNS
            .iter()
            .enumerate()
            .map(|(column, name)| Series::new(name, per_column(column)))
            .collect();
        rows.push(Row::from_label(&label, series));
    }
    rows
}

/// The median of the figures present.
fn median(values: Vec<Option<f64>>) -> Option<f64> {
    let mut present: Vec<f64> = values.into_iter().flatten().collect();
    if present.is_empty() {
        return None;
    }
    present.sort_by(f64::total_cmp);
    Some(present[present.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_vcpus_asks_the_guest_and_xl() {
        let spec = two_vcpus(GuestSpec::new("g", std::path::Path::new("/k")));
        assert!(spec.cmdline.ends_with("vcpus=2"));
        assert!(spec.extra_config.contains(&"vcpus = 2".to_string()));
    }

    #[test]
    fn rows_carry_both_columns_per_level() {
        let level = |rps| HttpLevel {
            rps: Some(rps),
            p50_ms: None,
            p99_ms: None,
            all_good: true,
        };
        let round = [
            [level(10.0), level(20.0), level(30.0)],
            [level(11.0), level(22.0), level(33.0)],
        ];
        let rows = print_table(&[round]);
        assert_eq!(rows.len(), HTTP_LEVELS.len());
        assert_eq!(rows[0].group, "httpd-rps");
        assert_eq!(rows[2].series.len(), 2);
        assert_eq!(rows[2].series[1].values, vec![Some(33.0)]);
    }
}
