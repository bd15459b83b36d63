//! Reading the rig's load generator (`qemu/loadgen`, run in dom0 as
//! `/rig/bin/loadgen`): its `LOADGEN http …` / `LOADGEN echo …` summary
//! lines are `key=value` words.

use rig::GuestReport;

/// Where dom0 finds the load generator.
pub const DOM0_PATH: &str = "/rig/bin/loadgen";

/// The `key=value` words of the first line `TAG LOADGEN MODE …` dom0
/// printed (the dom0 scripts prefix loadgen's output with their tag).
pub fn summary(guest: &GuestReport, tag: &str, mode: &str) -> Option<Vec<(String, String)>> {
    let prefix = format!("{tag} LOADGEN {mode} ");
    guest
        .dom0_output
        .iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(parse_pairs)
}

/// `key=value` words, in order.
pub fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The value of `key`.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A number under `key`.
pub fn number(pairs: &[(String, String)], key: &str) -> Option<f64> {
    get(pairs, key)?.parse().ok()
}

/// The first few `TAG LOADGEN error …` lines, for failure messages.
pub fn errors(guest: &GuestReport, tag: &str) -> Vec<String> {
    let prefix = format!("{tag} LOADGEN error ");
    guest
        .dom0_output
        .iter()
        .filter_map(|line| line.strip_prefix(&prefix))
        .take(3)
        .map(str::to_string)
        .collect()
}

/// The lowest and highest tick counter the pages showed (`ticks=A..B`).
pub fn ticks(pairs: &[(String, String)]) -> Option<(u64, u64)> {
    let (low, high) = get(pairs, "ticks")?.split_once("..")?;
    Some((low.parse().ok()?, high.parse().ok()?))
}

/// busybox sh running loadgen with `args`, its output tagged: `TAG load
/// rc=N`, then each of its lines as `TAG LOADGEN …`.
pub fn dom0_lines(tag: &str, args: &str) -> String {
    let out = format!("/tmp/$NAME-load-{}", tag.to_ascii_lowercase());
    format!("{DOM0_PATH} {args} > {out} 2>&1\necho \"{tag} load rc=$?\"\nsed 's/^/{tag} /' {out}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_words() {
        let pairs = parse_pairs(
            "concurrency=64 requests=256 ok=256 marked=256 failed=0 seconds=3.2 rps=80.00 \
             p50_ms=700.1 p99_ms=1500.2 max_ms=1600.0 ticks=3..41",
        );
        assert_eq!(get(&pairs, "ok"), Some("256"));
        assert_eq!(number(&pairs, "p99_ms"), Some(1500.2));
        assert_eq!(ticks(&pairs), Some((3, 41)));
        assert_eq!(ticks(&parse_pairs("ticks=none")), None);
        assert!(dom0_lines("HTTPD", "http 10.0.0.2:80 /").contains("sed 's/^/HTTPD /'"));
    }
}
