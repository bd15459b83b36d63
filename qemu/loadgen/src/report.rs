//! What a run found, as the `LOADGEN ` lines `cargo xtask` reads:
//! `key=value` words after the mode, so new figures can be added without
//! breaking the reader.

use std::time::Duration;

/// The `p`-th percentile (0–100) of `sorted` by the nearest-rank method:
/// the smallest value with at least `p` % of the values at or below it.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The background task's tick counter on a page: the first number on the
/// first line that mentions `tick` (any case), e.g. `<li>background ticks:
/// 42</li>`. `None` if no line does.
pub fn tick(page: &str) -> Option<u64> {
    let line = page
        .lines()
        .find(|line| line.to_ascii_lowercase().contains("tick"))?;
    line.split(|c: char| !c.is_ascii_digit())
        .find(|word| !word.is_empty())?
        .parse()
        .ok()
}

/// Milliseconds with three decimals.
pub fn ms(duration: Option<Duration>) -> String {
    duration.map_or_else(
        || "-".into(),
        |d| format!("{:.3}", d.as_secs_f64() * 1000.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&v, 0.0), Some(Duration::from_millis(1)));
        let one = [Duration::from_millis(7)];
        assert_eq!(percentile(&one, 99.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn tick_counter_is_found() {
        let page = "<h1>Paravane httpd</h1>\n<li>uptime: 3.2 s</li>\n<li>Background ticks: 1234 (every 100 ms)</li>\n";
        assert_eq!(tick(page), Some(1234));
        assert_eq!(tick("<li>ticker task: 7</li>"), Some(7));
        assert_eq!(tick("<li>uptime 3 s</li>"), None);
        assert_eq!(tick("ticks: none yet"), None);
    }
}
