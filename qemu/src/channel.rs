//! The framing of what dom0 tells the host over its second serial port.
//!
//! dom0's `/dev/ttyS1` is QEMU's second serial port, which QEMU writes to a
//! file the host follows. Nothing but the rig's scripts writes there, and
//! every line they write is one marker line: `@@RIG@@ KIND [NAME] [TEXT]`.
//! A guest's console, xl's output and a dom0 script's output are relayed one
//! line per marker, so no text a guest prints can be mistaken for the rig's
//! own framing. The shell side of this protocol is in `scripts.rs`.

/// The prefix of every line the rig's dom0 scripts write to the channel.
pub const MARKER: &str = "@@RIG@@ ";

/// One line from dom0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// dom0's init has the toolstack running (xenstored, xenconsoled).
    Ready,
    /// A line of `xl info` / `xl list` output.
    Info(String),
    /// `xl create` of this guest is starting.
    Begin(String),
    /// A line `xl create -F` printed for this guest.
    Xl(String, String),
    /// The guest's watchdog fired; the rig destroyed it.
    Timeout(String),
    /// A line of the guest's console (its xenconsoled log).
    Console(String, String),
    /// A line of the guest's dom0 script's output.
    Shell(String, String),
    /// A line of the guest's console sent while it runs, by a dom0 script
    /// that follows the console log (the `CON` lines come only at the
    /// guest's end); not part of the report.
    Live(String, String),
    /// A dom0 script's news sent at once (its own output comes only at
    /// the guest's end); not part of the report.
    Note(String, String),
    /// A line of the rig's post-mortem of a guest that triple-faulted
    /// (`xen-hvmctx` of the preserved domain): kept in the guest's log.
    PostMortem(String, String),
    /// The guest's dom0 script ended with this status.
    ShellExit(String, i32),
    /// Everything about this guest has been sent.
    End(String),
    /// All guests are done; dom0 powers off next.
    Done,
    /// dom0's init reports a failure.
    Error(String),
}

/// Parses one channel line (line end already removed). Lines that are not
/// marker lines give `None`.
pub fn parse(line: &str) -> Option<Event> {
    let line = line.trim_end_matches(['\r', '\n']);
    let rest = &line[line.find(MARKER)? + MARKER.len()..];
    let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    // NAME TEXT, where TEXT keeps its own leading spaces.
    let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let (name, text) = (name.to_string(), text.to_string());
    Some(match kind {
        "READY" => Event::Ready,
        "INFO" => Event::Info(rest.to_string()),
        "BEGIN" => Event::Begin(name),
        "XL" => Event::Xl(name, text),
        "TIMEOUT" => Event::Timeout(name),
        "CON" => Event::Console(name, text),
        "SH" => Event::Shell(name, text),
        "LIVE" => Event::Live(name, text),
        "NOTE" => Event::Note(name, text),
        "POSTMORTEM" => Event::PostMortem(name, text),
        "SHEXIT" => Event::ShellExit(name, text.trim().parse().ok()?),
        "END" => Event::End(name),
        "DONE" => Event::Done,
        "ERROR" => Event::Error(rest.to_string()),
        _ => return None,
    })
}

/// What `xl create -F` said about the domain's fate, from one of its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XlNews {
    /// `Waiting for domain NAME (domid N) to die [pid P]`.
    DomainId(u32),
    /// `Domain N has shut down, reason code R 0xR`.
    ShutDown {
        /// The domain id.
        domid: u32,
        /// The `SHUTDOWN_*` reason code.
        code: u32,
    },
    /// `Domain N has been destroyed.` (someone ran `xl destroy`).
    Destroyed(u32),
}

/// Parses the xl lines the rig cares about (xl 4.17's wording).
pub fn parse_xl(text: &str) -> Option<XlNews> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("Waiting for domain ") {
        let domid = rest.split("(domid ").nth(1)?.split(')').next()?;
        return domid.trim().parse().ok().map(XlNews::DomainId);
    }
    let rest = text.strip_prefix("Domain ")?;
    let (domid, rest) = rest.split_once(' ')?;
    let domid = domid.parse().ok()?;
    if let Some(reason) = rest.strip_prefix("has shut down, reason code ") {
        let code = reason.split_whitespace().next()?.parse().ok()?;
        Some(XlNews::ShutDown { domid, code })
    } else if rest.starts_with("has been destroyed") {
        Some(XlNews::Destroyed(domid))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_marker_lines() {
        assert_eq!(parse("@@RIG@@ READY\r"), Some(Event::Ready));
        assert_eq!(
            parse("@@RIG@@ CON hello   indented text "),
            Some(Event::Console("hello".into(), "  indented text ".into()))
        );
        assert_eq!(
            parse("@@RIG@@ CON hello "),
            Some(Event::Console("hello".into(), "".into()))
        );
        assert_eq!(
            parse("@@RIG@@ CON hello"),
            Some(Event::Console("hello".into(), "".into()))
        );
        assert_eq!(
            parse("@@RIG@@ INFO host                   : (none)"),
            Some(Event::Info("host                   : (none)".into()))
        );
        assert_eq!(
            parse("@@RIG@@ SHEXIT g1 127"),
            Some(Event::ShellExit("g1".into(), 127))
        );
        assert_eq!(
            parse("@@RIG@@ POSTMORTEM g1   RIP 0x102002"),
            Some(Event::PostMortem("g1".into(), "  RIP 0x102002".into()))
        );
        assert_eq!(parse("@@RIG@@ BEGIN g1"), Some(Event::Begin("g1".into())));
        assert_eq!(parse("@@RIG@@ DONE"), Some(Event::Done));
        assert_eq!(
            parse("@@RIG@@ LIVE httpd httpd: up"),
            Some(Event::Live("httpd".into(), "httpd: up".into()))
        );
        assert_eq!(
            parse("@@RIG@@ NOTE httpd serving"),
            Some(Event::Note("httpd".into(), "serving".into()))
        );
        // Serial noise before a marker is tolerated; other lines are not ours.
        assert_eq!(parse("\0@@RIG@@ END g1"), Some(Event::End("g1".into())));
        assert_eq!(parse("random text"), None);
        assert_eq!(parse("@@RIG@@ BOGUS x"), None);
    }

    #[test]
    fn parses_xl_lines() {
        assert_eq!(
            parse_xl("Waiting for domain hello (domid 1) to die [pid 312]"),
            Some(XlNews::DomainId(1))
        );
        assert_eq!(
            parse_xl("Domain 1 has shut down, reason code 3 0x3"),
            Some(XlNews::ShutDown { domid: 1, code: 3 })
        );
        assert_eq!(
            parse_xl("Domain 12 has been destroyed."),
            Some(XlNews::Destroyed(12))
        );
        assert_eq!(
            parse_xl("Action for shutdown reason code 0 is preserve"),
            None
        );
        assert_eq!(parse_xl("Parsing config from /rig/hello/guest.cfg"), None);
    }
}
