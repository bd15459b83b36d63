//! Reading the conformance suite's output: one line per test, then the
//! XTF-style verdict. Also writes JUnit XML for CI dashboards.

use std::fmt::Write as _;

/// One test's result as the guest printed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseResult {
    /// `PASS group/name`.
    Pass,
    /// `FAIL group/name: why`.
    Fail(String),
    /// `SKIP group/name: why`.
    Skip(String),
}

/// A parsed test line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// `group/name`.
    pub name: String,
    /// What happened.
    pub result: CaseResult,
}

/// What the suite printed: its cases and its verdict line, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuiteOutput {
    /// Every test line, in order.
    pub cases: Vec<Case>,
    /// The word after `Test result: `, if the line was printed.
    pub verdict: Option<String>,
}

/// Parses a guest console.
pub fn parse(console: &[String]) -> SuiteOutput {
    let mut out = SuiteOutput::default();
    for line in console {
        let line = line.trim_end();
        if let Some(verdict) = line.strip_prefix("Test result: ") {
            out.verdict = Some(verdict.trim().to_string());
            continue;
        }
        let (kind, rest) = match line.split_once(' ') {
            Some((kind @ ("PASS" | "FAIL" | "SKIP"), rest)) => (kind, rest),
            _ => continue,
        };
        let (name, why) = match rest.split_once(": ") {
            Some((name, why)) => (name, why.to_string()),
            None => (rest, String::new()),
        };
        let result = match kind {
            "PASS" => CaseResult::Pass,
            "FAIL" => CaseResult::Fail(why),
            _ => CaseResult::Skip(why),
        };
        out.cases.push(Case {
            name: name.to_string(),
            result,
        });
    }
    out
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML for one suite run (`suite_name` e.g. `conformance.domU`).
pub fn junit(suite_name: &str, output: &SuiteOutput) -> String {
    let failures = output
        .cases
        .iter()
        .filter(|c| matches!(c.result, CaseResult::Fail(_)))
        .count();
    let skipped = output
        .cases
        .iter()
        .filter(|c| matches!(c.result, CaseResult::Skip(_)))
        .count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
        xml_escape(suite_name),
        output.cases.len()
    );
    for case in &output.cases {
        let (class, name) = case.name.split_once('/').unwrap_or(("suite", &case.name));
        let _ = write!(
            xml,
            "  <testcase classname=\"{}.{}\" name=\"{}\"",
            xml_escape(suite_name),
            xml_escape(class),
            xml_escape(name)
        );
        match &case.result {
            CaseResult::Pass => xml.push_str("/>\n"),
            CaseResult::Fail(why) => {
                let _ = writeln!(
                    xml,
                    ">\n    <failure message=\"{}\"/>\n  </testcase>",
                    xml_escape(why)
                );
            }
            CaseResult::Skip(why) => {
                let _ = writeln!(
                    xml,
                    ">\n    <skipped message=\"{}\"/>\n  </testcase>",
                    xml_escape(why)
                );
            }
        }
    }
    xml.push_str("</testsuite>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn lines_are_parsed() {
        let out = parse(&lines(
            "noise\nPASS evtchn/a\nFAIL time/b: expected ETIME, got Ok(())\nSKIP sched/c: domU only\nTest result: FAILURE\n",
        ));
        assert_eq!(out.verdict.as_deref(), Some("FAILURE"));
        assert_eq!(out.cases.len(), 3);
        assert_eq!(out.cases[1].name, "time/b");
        assert_eq!(
            out.cases[1].result,
            CaseResult::Fail("expected ETIME, got Ok(())".into())
        );
    }

    #[test]
    fn junit_counts_and_escapes() {
        let out = parse(&lines("PASS g/a\nFAIL g/b: x < y & \"z\"\nSKIP g/c: why\n"));
        let xml = junit("conformance.dom0", &out);
        assert!(xml.contains("tests=\"3\" failures=\"1\" skipped=\"1\""));
        assert!(xml.contains("message=\"x &lt; y &amp; &quot;z&quot;\""));
        assert!(xml.contains("classname=\"conformance.dom0.g\" name=\"a\"/>"));
    }
}
