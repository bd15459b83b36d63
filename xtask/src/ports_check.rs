//! The link check over the porting guides (`ports/**/*.md`).
//!
//! A guide is only worth following if what it cites is there. Each
//! Markdown file under `ports/` is one counted test in `cargo xtask test`;
//! it fails, listing every dangling reference with its line, when:
//!
//! - an inline code span that looks like a repository path
//!   (`kernel/src/events/fifo.rs`, `drivers-pv/src/blkfront/`, or a glob in
//!   the last segments such as `kernel/src/suite/*.rs`) names nothing in
//!   the tree. A span is path-like when it has no whitespace, contains a
//!   `/`, and uses only path characters. Other projects' paths are written
//!   with the project as a prefix (`xen:io/ring.h`,
//!   `netbsd:sys/arch/xen/`, `freebsd:sys/dev/xen/`) and are not checked;
//!   nor are absolute paths, `~`/`$` paths, URLs and build output under
//!   `target/`. Fenced code blocks (command output) are not read.
//! - a Markdown link to a relative target (`[blkfront](../drivers-pv/src/blkfront/mod.rs)`)
//!   does not resolve, relative to the guide, to something in the tree.
//! - a span `check:GROUP/NAME` does not name a conformance check: the
//!   pairs are read from the suite's own tables (the `group:`/`GROUP`
//!   and `name:`/`check(`/`test!(` string literals in
//!   `kernel/src/suite/*.rs` and every `suite.rs` or `suite/*.rs` under
//!   `drivers-pv/src/`). `check:GROUP/*` stands for a whole group, which
//!   must exist.
//! - a span `test:NAME` does not name a test that `cargo xtask test`
//!   prints (`PASS NAME`). Names are matched against the string literals
//!   of `xtask/src/*.rs` (this file's without its tests) read as format
//!   strings: a `{…}` hole matches one word (`domU`, `conformance`,
//!   `ports/README.md`) or a `…` written in the guide for a part filled in
//!   at run time; a literal that is a prefix followed by a hole
//!   (`"rig {name}"`) may wrap another literal, so
//!   `test:rig e2e block: blkfront connects (…)` is found.
//! - a span `unit:PATH::NAME` does not name a host unit test: the file
//!   must exist and define `fn NAME(` under a `#[test]` attribute
//!   (these run in `cargo test` and are counted by `cargo xtask test`).

use crate::test_cmd::Tally;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Runs the check on every guide and records one test per file.
pub fn record(tally: &mut Tally) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf();
    for (name, result) in check_tree(&root) {
        tally.record(&name, result);
    }
}

/// One test result per guide under `root/ports`, named
/// `ports link check PATH`.
pub fn check_tree(root: &Path) -> Vec<(String, Result<(), String>)> {
    let sources = match Sources::load(root) {
        Ok(sources) => sources,
        Err(e) => return vec![("ports link check (reading the sources)".into(), Err(e))],
    };
    let mut guides = Vec::new();
    collect_files(&root.join("ports"), "md", &mut guides);
    guides.sort();
    if guides.is_empty() {
        return vec![(
            "ports link check".into(),
            Err("no guides under ports/".into()),
        )];
    }
    guides
        .iter()
        .map(|guide| {
            let rel = relative(root, guide);
            let result = match fs::read_to_string(guide) {
                Ok(text) => {
                    let (counts, dangling) = check_guide(root, guide, &text, &sources);
                    println!(
                        "ports: {rel}: {} paths and links, {} checks, {} tests cited",
                        counts.paths, counts.checks, counts.tests
                    );
                    if dangling.is_empty() {
                        Ok(())
                    } else {
                        Err(format!(
                            "{} dangling reference(s):\n  {}",
                            dangling.len(),
                            dangling.join("\n  ")
                        ))
                    }
                }
                Err(e) => Err(format!("cannot read it: {e}")),
            };
            (format!("ports link check {rel}"), result)
        })
        .collect()
}

/// How many references of each kind a guide made.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    paths: usize,
    checks: usize,
    tests: usize,
}

/// Checks one guide; returns the counts and one line per dangling
/// reference.
fn check_guide(root: &Path, guide: &Path, text: &str, sources: &Sources) -> (Counts, Vec<String>) {
    let mut counts = Counts::default();
    let mut dangling = Vec::new();
    let dir = guide.parent().unwrap_or(root);
    for reference in references(text) {
        let problem = match &reference.kind {
            RefKind::Path(path) => {
                counts.paths += 1;
                check_path(root, root, path)
                    .err()
                    .map(|why| format!("`{path}`: {why}"))
            }
            RefKind::Link(target) => {
                counts.paths += 1;
                check_path(root, dir, target)
                    .err()
                    .map(|why| format!("link ({target}): {why}"))
            }
            RefKind::Check(name) => {
                counts.checks += 1;
                sources
                    .check_exists(name)
                    .err()
                    .map(|why| format!("`check:{name}`: {why}"))
            }
            RefKind::Unit(path, name) => {
                counts.tests += 1;
                check_unit_test(root, path, name)
                    .err()
                    .map(|why| format!("`unit:{path}::{name}`: {why}"))
            }
            RefKind::Test(name) => {
                counts.tests += 1;
                (!sources.test_exists(name)).then(|| {
                    format!(
                        "`test:{name}`: no test of `cargo xtask test` has this name \
                         (matched against the string literals in xtask/src/*.rs)"
                    )
                })
            }
        };
        if let Some(problem) = problem {
            dangling.push(format!("line {}: {problem}", reference.line));
        }
    }
    (counts, dangling)
}

// ---------------------------------------------------------------------------
// What the guides cite.

/// One reference found in a guide.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Reference {
    /// 1-based line number.
    line: usize,
    kind: RefKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RefKind {
    /// A repository path in a code span, relative to the repository root.
    Path(String),
    /// A Markdown link target, relative to the guide's directory.
    Link(String),
    /// `check:GROUP/NAME` or `check:GROUP/*`.
    Check(String),
    /// `test:NAME` as `cargo xtask test` prints it.
    Test(String),
    /// `unit:PATH::NAME`: a host unit test in a repository file.
    Unit(String, String),
}

/// Every checked reference in a Markdown text, in order.
fn references(text: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim_start();
        if let Some(marker) = fence {
            if trimmed.starts_with(marker) {
                fence = None;
            }
            continue;
        }
        if trimmed.starts_with("```") {
            fence = Some("```");
            continue;
        }
        if trimmed.starts_with("~~~") {
            fence = Some("~~~");
            continue;
        }
        // A reference-style link definition: `[label]: target`.
        if let Some(rest) = trimmed.strip_prefix('[') {
            if let Some((_, target)) = rest.split_once("]: ") {
                if let Some(target) = link_target(target) {
                    out.push(Reference {
                        line: line_no,
                        kind: RefKind::Link(target),
                    });
                }
                continue;
            }
        }
        let (spans, rest) = code_spans(line);
        for span in spans {
            if let Some(kind) = classify_span(&span) {
                out.push(Reference {
                    line: line_no,
                    kind,
                });
            }
        }
        for target in inline_links(&rest) {
            out.push(Reference {
                line: line_no,
                kind: RefKind::Link(target),
            });
        }
    }
    out
}

/// The code spans of one line, and the line with them blanked out.
fn code_spans(line: &str) -> (Vec<String>, String) {
    let mut spans = Vec::new();
    let mut rest = String::new();
    let mut remaining = line;
    while let Some(open) = remaining.find('`') {
        rest.push_str(&remaining[..open]);
        let after = &remaining[open..];
        let ticks = after.len() - after.trim_start_matches('`').len();
        let body = &after[ticks..];
        let delimiter = "`".repeat(ticks);
        // The closing run must be exactly as long as the opening one.
        let mut search = 0;
        let mut close = None;
        while let Some(at) = body[search..].find(&delimiter) {
            let at = search + at;
            let run = body[at..].len() - body[at..].trim_start_matches('`').len();
            if run == ticks {
                close = Some(at);
                break;
            }
            search = at + run;
        }
        match close {
            Some(at) => {
                let content = &body[..at];
                let content = if content.len() >= 2
                    && content.starts_with(' ')
                    && content.ends_with(' ')
                    && !content.trim().is_empty()
                {
                    &content[1..content.len() - 1]
                } else {
                    content
                };
                spans.push(content.to_string());
                rest.push(' ');
                remaining = &body[at + ticks..];
            }
            None => {
                // An unmatched run is literal text.
                rest.push_str(&after[..ticks]);
                remaining = body;
            }
        }
    }
    rest.push_str(remaining);
    (spans, rest)
}

/// The relative targets of `[text](target)` links in text outside code
/// spans.
fn inline_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut remaining = text;
    while let Some(at) = remaining.find("](") {
        let after = &remaining[at + 2..];
        let mut depth = 0usize;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = Some(i);
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let Some(end) = end else { break };
        if let Some(target) = link_target(&after[..end]) {
            out.push(target);
        }
        remaining = &after[end + 1..];
    }
    out
}

/// A link target to check, or `None` for URLs, anchors and mail links.
fn link_target(raw: &str) -> Option<String> {
    let raw = raw.trim();
    // Drop a title: `target "title"`.
    let raw = raw.split_once(char::is_whitespace).map_or(raw, |(t, _)| t);
    let raw = raw.trim_start_matches('<').trim_end_matches('>');
    let raw = raw.split('#').next().unwrap_or("");
    if raw.is_empty() || raw.contains("://") || raw.starts_with("mailto:") {
        return None;
    }
    Some(raw.to_string())
}

/// What a code span cites, if anything this check reads.
fn classify_span(span: &str) -> Option<RefKind> {
    let span = span.trim();
    // A marker alone (`check:`) is the word itself, as in prose about the
    // markers.
    if matches!(span, "check:" | "test:" | "unit:") {
        return None;
    }
    if let Some(name) = span.strip_prefix("check:") {
        return Some(RefKind::Check(name.trim().to_string()));
    }
    if let Some(name) = span.strip_prefix("test:") {
        return Some(RefKind::Test(name.trim().to_string()));
    }
    if let Some(unit) = span.strip_prefix("unit:") {
        let (path, name) = unit.trim().rsplit_once("::").unwrap_or((unit.trim(), ""));
        return Some(RefKind::Unit(path.to_string(), name.to_string()));
    }
    if span.contains(char::is_whitespace) || span.contains("://") || span.contains("::") {
        return None;
    }
    if has_project_prefix(span) {
        return None;
    }
    let path_chars = span
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/*+".contains(c));
    if !path_chars || !span.contains('/') {
        return None;
    }
    if span.starts_with(['/', '.', '-', '*']) || span.starts_with("target/") {
        return None;
    }
    Some(RefKind::Path(span.to_string()))
}

/// `project:path`: another project's file, not checked.
fn has_project_prefix(span: &str) -> bool {
    match span.split_once(':') {
        Some((project, rest)) => {
            !project.is_empty()
                && !rest.is_empty()
                && project
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------
// Paths.

/// Whether `path` (relative to `base`) names something inside `root`.
fn check_path(root: &Path, base: &Path, path: &str) -> Result<(), String> {
    let want_dir = path.ends_with('/');
    let mut candidates = vec![normalise(base)];
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let mut next = Vec::new();
        for dir in &candidates {
            match segment {
                "." => next.push(dir.clone()),
                ".." => {
                    let mut up = dir.clone();
                    up.pop();
                    next.push(up);
                }
                s if s.contains('*') => {
                    let Ok(entries) = fs::read_dir(dir) else {
                        continue;
                    };
                    for entry in entries.flatten() {
                        if glob_match(s, &entry.file_name().to_string_lossy()) {
                            next.push(entry.path());
                        }
                    }
                }
                s => next.push(dir.join(s)),
            }
        }
        candidates = next;
    }
    let root = normalise(root);
    let found: Vec<&PathBuf> = candidates
        .iter()
        .filter(|p| p.starts_with(&root) && p.exists())
        .collect();
    if found.is_empty() {
        let outside = candidates.iter().any(|p| !p.starts_with(&root));
        return Err(if outside {
            "points outside the repository".into()
        } else {
            "no such file or directory in the tree (write another project's paths as \
             `project:path`)"
                .into()
        });
    }
    if want_dir && !found.iter().any(|p| p.is_dir()) {
        return Err("not a directory".into());
    }
    Ok(())
}

/// Whether `path` is a repository file defining the test `fn name(`.
fn check_unit_test(root: &Path, path: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("write it as PATH::TEST_FN".into());
    }
    check_path(root, root, path)?;
    let text = fs::read_to_string(root.join(path)).map_err(|e| format!("cannot read it: {e}"))?;
    let lines: Vec<&str> = text.lines().collect();
    let defined = lines.iter().enumerate().any(|(i, line)| {
        line.trim_start().starts_with(&format!("fn {name}("))
            && lines[..i]
                .iter()
                .rev()
                .map(|l| l.trim_start())
                .take_while(|l| l.starts_with("#[") || l.starts_with("//"))
                .any(|l| l.starts_with("#[test]"))
    });
    if defined {
        Ok(())
    } else {
        Err(format!("{path} has no #[test] fn {name}"))
    }
}

/// `path` with `.` and `..` resolved lexically.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `*` matches any run of characters within one path segment.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob_match(tail, &rest[i..]))
        }
    }
}

/// Every file with extension `ext` below `dir`.
fn collect_files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

// ---------------------------------------------------------------------------
// What exists: the suite's check names and xtask's test names.

/// The names a guide may cite, read from the sources.
struct Sources {
    /// `group/name` of every conformance check.
    checks: BTreeSet<String>,
    /// The groups.
    groups: BTreeSet<String>,
    /// xtask's string literals, as format strings.
    templates: Vec<Template>,
}

impl Sources {
    fn load(root: &Path) -> Result<Sources, String> {
        let mut suite_files = Vec::new();
        collect_files(&root.join("kernel/src/suite"), "rs", &mut suite_files);
        suite_files.retain(|p| !p.ends_with("mod.rs"));
        let mut driver_files = Vec::new();
        collect_files(&root.join("drivers-pv/src"), "rs", &mut driver_files);
        suite_files.extend(driver_files.into_iter().filter(|p| {
            p.file_name().is_some_and(|n| n == "suite.rs")
                || p.parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|n| n == "suite")
        }));
        let mut checks = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for file in &suite_files {
            let text =
                fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
            for (group, name) in suite_names(&text) {
                groups.insert(group.clone());
                checks.insert(format!("{group}/{name}"));
            }
        }
        if checks.is_empty() {
            return Err(
                "found no conformance checks in kernel/src/suite/ or drivers-pv/src/".into(),
            );
        }
        let mut xtask_files = Vec::new();
        collect_files(&root.join("xtask/src"), "rs", &mut xtask_files);
        let mut templates = Vec::new();
        for file in &xtask_files {
            let mut text =
                fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
            // This file's own tests are full of made-up names.
            if file.ends_with("ports_check.rs") {
                if let Some(at) = text.find("#[cfg(test)]") {
                    text.truncate(at);
                }
            }
            templates.extend(
                rust_literals(&text)
                    .into_iter()
                    .map(|lit| Template::parse(&lit.value)),
            );
        }
        Ok(Sources {
            checks,
            groups,
            templates,
        })
    }

    fn check_exists(&self, name: &str) -> Result<(), String> {
        let Some((group, check)) = name.split_once('/') else {
            return Err("write it as GROUP/NAME, as the suite prints it".into());
        };
        if !self.groups.contains(group) {
            return Err(format!(
                "no conformance group `{group}` (groups: {})",
                self.groups.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if check == "*" || self.checks.contains(name) {
            Ok(())
        } else {
            Err(format!("the `{group}` group has no check `{check}`"))
        }
    }

    fn test_exists(&self, name: &str) -> bool {
        matches_templates(&self.templates, name, 0)
    }
}

/// `(group, name)` of every check in one suite source file: a name is a
/// string literal after `name:`, `check(` or `test!(`; its group is the
/// last literal before it after `group:` or `GROUP: &str =`.
fn suite_names(source: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut group: Option<String> = None;
    for lit in rust_literals(source) {
        let before = source[..lit.start].trim_end();
        if before.ends_with("group:") || before.ends_with("GROUP: &str =") {
            group = Some(lit.value);
        } else if before.ends_with("name:")
            || before.ends_with("check(")
            || before.ends_with("test!(")
        {
            if let Some(group) = &group {
                out.push((group.clone(), lit.value));
            }
        }
    }
    out
}

/// A string literal in Rust source: where its opening quote (or `r`/`b`
/// prefix) starts, and its value.
#[derive(Debug, PartialEq, Eq)]
struct Literal {
    start: usize,
    value: String,
}

/// The string literals of a Rust source file, skipping comments and
/// character literals.
fn rust_literals(src: &str) -> Vec<Literal> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let prev_ident = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            i = src[i..].find('\n').map_or(bytes.len(), |n| i + n);
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            let mut depth = 1;
            i += 2;
            while i < bytes.len() && depth > 0 {
                if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                } else {
                    i += 1;
                }
            }
        } else if !prev_ident && (c == b'r' || (c == b'b' && bytes.get(i + 1) == Some(&b'r'))) && {
            let after_r = if c == b'r' { i + 1 } else { i + 2 };
            let hashes = bytes[after_r..].iter().take_while(|&&b| b == b'#').count();
            bytes.get(after_r + hashes) == Some(&b'"')
        } {
            let after_r = if c == b'r' { i + 1 } else { i + 2 };
            let hashes = bytes[after_r..].iter().take_while(|&&b| b == b'#').count();
            let body = after_r + hashes + 1;
            let closing = format!("\"{}", "#".repeat(hashes));
            let end = src[body..].find(&closing).map_or(bytes.len(), |n| body + n);
            out.push(Literal {
                start: i,
                value: src[body..end].to_string(),
            });
            i = (end + closing.len()).min(bytes.len());
        } else if c == b'"' || (c == b'b' && !prev_ident && bytes.get(i + 1) == Some(&b'"')) {
            let start = i;
            i += if c == b'b' { 2 } else { 1 };
            let mut value = String::new();
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    let escape = bytes.get(i + 1).copied().unwrap_or(b'\\');
                    i += 2;
                    match escape {
                        b'n' => value.push('\n'),
                        b't' => value.push('\t'),
                        b'r' => value.push('\r'),
                        b'0' => value.push('\0'),
                        b'\n' => {
                            // Line continuation: skip the next line's indent.
                            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                                i += 1;
                            }
                        }
                        b'x' => i += 2,
                        b'u' => i = src[i..].find('}').map_or(bytes.len(), |n| i + n + 1),
                        other => value.push(other as char),
                    }
                } else {
                    let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
                    value.push(ch);
                    i += ch.len_utf8();
                }
            }
            out.push(Literal { start, value });
            i += 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\'') or a lifetime ('a).
            if bytes.get(i + 1) == Some(&b'\\') {
                i = src[i + 3..]
                    .find('\'')
                    .map_or(bytes.len(), |n| i + 3 + n + 1);
            } else {
                let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                if bytes.get(i + 1 + ch_len) == Some(&b'\'') {
                    i += ch_len + 2;
                } else {
                    i += 1;
                }
            }
        } else {
            i += src[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// A string literal read as a format string: text and `{…}` holes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Template(Vec<Piece>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Hole,
}

impl Template {
    fn parse(value: &str) -> Template {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = value.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    for c in chars.by_ref() {
                        if c == '}' {
                            break;
                        }
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Hole);
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Template(pieces)
    }

    fn text_len(&self) -> usize {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.chars().count(),
                Piece::Hole => 0,
            })
            .sum()
    }

    /// `PREFIX{hole}`: a name wrapping another.
    fn wrapper_prefix(&self) -> Option<&str> {
        match self.0.as_slice() {
            [Piece::Text(prefix), Piece::Hole] => Some(prefix),
            _ => None,
        }
    }
}

/// At least this much fixed text for a literal to stand for a whole name
/// (so `"rig {name}"` alone does not match everything).
const MIN_TEXT: usize = 10;

fn matches_templates(templates: &[Template], name: &str, depth: usize) -> bool {
    templates.iter().any(|t| {
        (t.text_len() >= MIN_TEXT && matches_pieces(&t.0, name))
            || (depth < 4
                && t.wrapper_prefix().is_some_and(|prefix| {
                    name.strip_prefix(prefix).is_some_and(|rest| {
                        !rest.is_empty() && matches_templates(templates, rest, depth + 1)
                    })
                }))
    })
}

/// Matches `name` against pieces; a hole takes `…` or one word (letters,
/// digits, `_.-/`).
fn matches_pieces(pieces: &[Piece], name: &str) -> bool {
    match pieces.split_first() {
        None => name.is_empty(),
        Some((Piece::Text(text), rest)) => name
            .strip_prefix(text.as_str())
            .is_some_and(|name| matches_pieces(rest, name)),
        Some((Piece::Hole, rest)) => {
            if let Some(after) = name.strip_prefix('…') {
                if matches_pieces(rest, after) {
                    return true;
                }
            }
            let word = name
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
                .map_or(name.len(), |(i, _)| i);
            (1..=word).any(|n| matches_pieces(rest, &name[n..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<RefKind> {
        references(text).into_iter().map(|r| r.kind).collect()
    }

    #[test]
    fn spans_and_links_are_classified() {
        let text = "See `kernel/src/events/fifo.rs` and `xen:io/ring.h`, \
                    `netbsd:sys/arch/xen/`, `check:evtchn/ipi_to_self_arrives`,\n\
                    `test:rig domU hello: boots` [fifo](../kernel/src/events/fifo.rs) \
                    [web](https://xenbits.xen.org/x) [anchor](#time) `evtchn=fifo` \
                    `cargo xtask test` `/tmp/x/y` `~/.cache/paravane` `target/x86_64-unknown-none/release/hello` \
                    `SUCCESS|FAILURE` `kernel::suite` ``a ` b/c`` `check:` `test:` `unit:`\n";
        assert_eq!(
            kinds(text),
            vec![
                RefKind::Path("kernel/src/events/fifo.rs".into()),
                RefKind::Check("evtchn/ipi_to_self_arrives".into()),
                RefKind::Test("rig domU hello: boots".into()),
                RefKind::Link("../kernel/src/events/fifo.rs".into()),
            ]
        );
    }

    #[test]
    fn line_numbers_and_fences() {
        let text = "one\n```sh\n`kernel/nope.rs` [x](nope.md)\n```\n`pv-arch/src/lib.rs`\n~~~\n`a/b.rs`\n~~~\n[d]: ../qemu/src/report.rs\n";
        assert_eq!(
            references(text),
            vec![
                Reference {
                    line: 5,
                    kind: RefKind::Path("pv-arch/src/lib.rs".into())
                },
                Reference {
                    line: 9,
                    kind: RefKind::Link("../qemu/src/report.rs".into())
                },
            ]
        );
    }

    #[test]
    fn code_span_edges() {
        let (spans, rest) = code_spans("a `x` b ``y`z`` c ` unmatched");
        assert_eq!(spans, vec!["x".to_string(), "y`z".to_string()]);
        assert_eq!(rest, "a   b   c ` unmatched");
        assert_eq!(code_spans("`` `check:a/b` ``").0, vec!["`check:a/b`"]);
        assert_eq!(
            inline_links("[a](x.md \"t\") [b](<y/z.rs#l>) [c](f(1).md)"),
            vec![
                "x.md".to_string(),
                "y/z.rs".to_string(),
                "f(1).md".to_string()
            ]
        );
    }

    #[test]
    fn literals_skip_comments_chars_and_lifetimes() {
        let src = r####"
            // "in a comment"
            /* "block /* nested */ comment" */
            fn f<'a>(x: &'a str) -> char { let _q = '"'; let _e = '\''; 'x' }
            const A: &str = "plain \"quoted\" \
                             continued";
            const B: &str = r#"raw "inner" {x}"#;
            const C: &[u8] = b"bytes";
            const D: &str = "é\u{1F600}\x41\n";
        "####;
        let values: Vec<String> = rust_literals(src).into_iter().map(|l| l.value).collect();
        assert_eq!(
            values,
            vec![
                "plain \"quoted\" continued".to_string(),
                "raw \"inner\" {x}".to_string(),
                "bytes".to_string(),
                "é\n".to_string(),
            ]
        );
    }

    #[test]
    fn suite_names_in_both_table_styles() {
        let struct_style = r#"
            pub const TESTS: &[Test] = &[
                Test { group: "evtchn", name: "a_b", applies: Applies::Both, run: f },
                Test {
                    group: "evtchn",
                    name: "c_d",
                    applies: Applies::Both,
                    run: g,
                },
            ];"#;
        assert_eq!(
            suite_names(struct_style),
            vec![
                ("evtchn".to_string(), "a_b".to_string()),
                ("evtchn".to_string(), "c_d".to_string())
            ]
        );
        let helper_style = r#"
            const GROUP: &str = "xenstore";
            fn h(name: &str) { let _ = format!("{name}"); }
            pub const TESTS: &[Test] = &[check("w_r", w_r), check(
                "long_one",
                l,
            ), test!("m", Both, m)];"#;
        assert_eq!(
            suite_names(helper_style),
            vec![
                ("xenstore".to_string(), "w_r".to_string()),
                ("xenstore".to_string(), "long_one".to_string()),
                ("xenstore".to_string(), "m".to_string())
            ]
        );
    }

    #[test]
    fn templates_match_test_names() {
        let templates: Vec<Template> = [
            "rig {name}",
            "rig e2e net: {name}",
            "e2e net echo: {check}",
            "dom0 pings the guest (3/3)",
            "e2e block: blkfront connects ({})",
            "conformance {role} verdict",
            "guest build {app}",
            "rig dom0 hello: boots, prints start_info, powers off",
            "{{literal braces}} stay {x}",
        ]
        .iter()
        .map(|t| Template::parse(t))
        .collect();
        let ok = |name: &str| matches_templates(&templates, name, 0);
        assert!(ok("rig dom0 hello: boots, prints start_info, powers off"));
        assert!(ok("rig e2e net: e2e net echo: dom0 pings the guest (3/3)"));
        assert!(ok("rig e2e block: blkfront connects (…)"));
        assert!(ok("conformance domU verdict"));
        assert!(ok("conformance dom0-fifo verdict"));
        assert!(ok("guest build conformance"));
        assert!(ok("{literal braces} stay x"));
        // Misspelt, wrapped around nothing, a hole swallowing several words.
        assert!(!ok("rig dom0 hello: boots, prints start_info"));
        assert!(!ok("rig "));
        assert!(!ok("rig anything"));
        assert!(!ok("rig e2e block: blkfront connects"));
        assert!(!ok("conformance two words verdict"));
        assert!(!ok("e2e net echo: made up"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.rs", "fifo.rs"));
        assert!(glob_match("f*o.rs", "fifo.rs"));
        assert!(!glob_match("*.rs", "fifo.md"));
        assert!(glob_match("*", "x"));
    }

    /// A throwaway tree under the system temp directory.
    struct TempTree(PathBuf);

    impl TempTree {
        fn new(label: &str) -> TempTree {
            let dir = std::env::temp_dir().join(format!(
                "ports-check-{label}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempTree(dir)
        }

        fn write(&self, rel: &str, text: &str) {
            let path = self.0.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn whole_tree_pass_and_fail() {
        let tree = TempTree::new("tree");
        tree.write(
            "kernel/src/suite/evtchn.rs",
            "const T: &[Test] = &[Test { group: \"evtchn\", name: \"ipi\", applies: Both, run: f }];\n\
             #[test]\nfn t_ok() {}\nfn not_a_test() {}\n",
        );
        tree.write(
            "drivers-pv/src/xenstore/suite.rs",
            r#"const GROUP: &str = "xenstore"; const T: &[Test] = &[check("watch", w)];"#,
        );
        tree.write(
            "xtask/src/rig_tests.rs",
            r#"fn f() { tally.record("rig domU hello: boots fine", r); tally.record(&format!("rig {name}"), r); }"#,
        );
        tree.write(
            "ports/README.md",
            "`kernel/src/suite/evtchn.rs` `kernel/src/suite/*.rs` `kernel/src/` \
             [x](../drivers-pv/src/xenstore/suite.rs) `check:evtchn/ipi` `check:xenstore/*` \
             `test:rig domU hello: boots fine` `xen:io/ring.h` \
             `unit:kernel/src/suite/evtchn.rs::t_ok`\n",
        );
        tree.write(
            "ports/bsd-notes/README.md",
            "ok: [map](../README.md)\n\
             `kernel/src/nope.rs` `kernel/src/suite/evtchn.rs/` `kernel/src/*.md`\n\
             [up](../../../outside.md) [gone](../missing.md)\n\
             `check:evtchn/nope` `check:time/x` `check:evtchn`\n\
             `test:rig domU hello: boots badly`\n\
             `unit:kernel/src/suite/evtchn.rs::not_a_test` `unit:kernel/src/x.rs::t_ok`\n",
        );
        let results = check_tree(&tree.0);
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].0, "ports link check ports/README.md");
        assert_eq!(results[0].1, Ok(()));
        assert_eq!(results[1].0, "ports link check ports/bsd-notes/README.md");
        let why = results[1].1.clone().unwrap_err();
        assert!(why.starts_with("11 dangling reference(s)"), "{why}");
        for expected in [
            "line 2: `kernel/src/nope.rs`: no such file",
            "line 2: `kernel/src/suite/evtchn.rs/`: not a directory",
            "line 2: `kernel/src/*.md`: no such file",
            "line 3: link (../../../outside.md): points outside the repository",
            "line 3: link (../missing.md): no such file",
            "line 4: `check:evtchn/nope`: the `evtchn` group has no check `nope`",
            "line 4: `check:time/x`: no conformance group `time` (groups: evtchn, xenstore)",
            "line 4: `check:evtchn`: write it as GROUP/NAME",
            "line 5: `test:rig domU hello: boots badly`: no test",
            "line 6: `unit:kernel/src/suite/evtchn.rs::not_a_test`: kernel/src/suite/evtchn.rs has no #[test] fn not_a_test",
            "line 6: `unit:kernel/src/x.rs::t_ok`: no such file",
        ] {
            assert!(why.contains(expected), "missing {expected:?} in:\n{why}");
        }
    }

    #[test]
    fn empty_ports_is_a_failure() {
        let tree = TempTree::new("empty");
        tree.write(
            "kernel/src/suite/time.rs",
            r#"const T: &[Test] = &[Test { group: "time", name: "t", applies: Both, run: f }];"#,
        );
        let results = check_tree(&tree.0);
        assert_eq!(results.len(), 1);
        assert!(results[0].1.is_err());
    }

    /// The check over this tree's guides, for guide writers:
    /// `cargo test -p xtask -- --ignored guides_in_this_tree --nocapture`
    /// (`cargo xtask test` runs the same check as counted tests).
    #[test]
    #[ignore]
    fn guides_in_this_tree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let failed: Vec<String> = check_tree(root)
            .into_iter()
            .filter_map(|(name, result)| result.err().map(|why| format!("{name}: {why}")))
            .collect();
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    /// The extraction finds what the real suite and rig print.
    #[test]
    fn real_sources_are_read() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let sources = Sources::load(root).unwrap();
        for check in [
            "evtchn/alloc_unbound_status_unbound",
            "grant/query_size_sane",
            "xenstore/watch_fires_on_write",
            "memory/mmu_update_foreign_frame_ebusy",
        ] {
            assert_eq!(sources.check_exists(check), Ok(()), "{check}");
        }
        assert!(sources.checks.len() > 140, "{}", sources.checks.len());
        for test in [
            "rig domU hello: boots under xl, console ring, powers off",
            "conformance domU verdict",
            "guest build conformance",
            "lint cargo fmt --check",
            "rig e2e block: blkfront connects (…)",
            "ports link check ports/README.md",
        ] {
            assert!(sources.test_exists(test), "{test}");
        }
        assert_eq!(
            check_unit_test(
                root,
                "kernel/src/events/two_level.rs",
                "an_event_raised_while_handling_is_not_lost"
            ),
            Ok(())
        );
    }
}
