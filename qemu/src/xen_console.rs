//! Reading Xen's serial console: telling Xen's own lines from a dom0's, and
//! finding the lines in which Xen says how the hardware domain ended.
//!
//! Xen 4.17 prefixes its own messages with `(XEN) ` and, with
//! `console_timestamps=boot`, a `[    1.234567] ` timestamp. What the
//! hardware domain writes through `HYPERVISOR_console_io` goes to the serial
//! port unchanged (no prefix, no timestamp), so a dom0 line that did not end
//! with a newline can have a Xen message glued to its end: such a line is
//! split at the `(XEN) `. A domU's `console_io` output is printed by Xen as
//! `(d1) [ts] text` (Xen's `guest_printk`: the domain's prefix in place of
//! `(XEN) `).
//!
//! The ending lines, checked against Xen 4.17's `hwdom_shutdown` (the strings
//! in Debian's `xen-4.17-amd64` binary, and by booting):
//!
//! | reason | Xen's line |
//! |---|---|
//! | poweroff | `Hardware Dom0 halted: halting machine` |
//! | reboot | `Hardware Dom0 shutdown: rebooting machine` |
//! | watchdog | `Hardware Dom0 shutdown: watchdog rebooting machine` |
//! | soft reset | `Hardware domain 0 did unsupported soft reset, rebooting.` |
//! | crash | `Hardware Dom0 crashed: 'noreboot' set - not rebooting.` |
//! | other (suspend = 2) | `Hardware Dom0 shutdown (unknown reason 2): ...` |
//!
//! plus Xen's own panic, `Panic on CPU 0:` followed by the message line.

use crate::report::Ending;

/// One serial line, split into the part a guest wrote directly and the
/// message Xen printed after it (at most one of `xen` and `domain`).
#[derive(Debug, PartialEq, Eq)]
pub struct SerialLine<'a> {
    /// Text the hardware domain wrote (before any Xen message on the same
    /// line).
    pub guest: Option<&'a str>,
    /// Xen's own message, without the `(XEN) ` prefix and timestamp.
    pub xen: Option<&'a str>,
    /// A domU's `console_io` line: its domain id and text, without the
    /// `(dN) ` prefix and timestamp.
    pub domain: Option<(u32, &'a str)>,
}

/// Splits one line of Xen's serial output (line end already removed).
pub fn split_line(line: &str) -> SerialLine<'_> {
    let line = line.trim_end_matches(['\r', '\n']);
    let xen_at = line.find("(XEN) ");
    let domain_at = find_domain_prefix(line);
    let guest = |at: usize| (at > 0).then(|| &line[..at]);
    match (xen_at, domain_at) {
        (Some(at), d) if d.is_none_or(|(d_at, _, _)| at < d_at) => SerialLine {
            guest: guest(at),
            xen: Some(strip_timestamp(&line[at + "(XEN) ".len()..])),
            domain: None,
        },
        (_, Some((at, domid, rest))) => SerialLine {
            guest: guest(at),
            xen: None,
            domain: Some((domid, strip_timestamp(rest))),
        },
        _ => SerialLine {
            guest: Some(line),
            xen: None,
            domain: None,
        },
    }
}

/// Where a `(dN) ` prefix starts: at the start of the line, or later on it
/// if a timestamp follows (so a guest's own "(d1) " text is not taken for
/// one). Returns its offset, the domain id and the text after it.
fn find_domain_prefix(line: &str) -> Option<(usize, u32, &str)> {
    let mut from = 0;
    while let Some(found) = line[from..].find("(d") {
        let at = from + found;
        let after = &line[at + 2..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            if let Some(rest) = after[digits..].strip_prefix(") ") {
                if at == 0 || rest.starts_with('[') {
                    if let Ok(domid) = after[..digits].parse() {
                        return Some((at, domid, rest));
                    }
                }
            }
        }
        from = at + 2;
    }
    None
}

/// Removes a leading `[    1.234567] ` (any bracketed run of hex digits,
/// spaces, dots, colons and dashes), as `console_timestamps` adds it;
/// before Xen has calibrated its clock the stamp is the raw TSC in hex
/// (`[00000000a1e6d2f9] `).
pub fn strip_timestamp(message: &str) -> &str {
    if let Some(rest) = message.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let stamp = &rest[..end];
            if !stamp.is_empty()
                && stamp
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || " .:-".contains(c))
            {
                let after = &rest[end + 1..];
                return after.strip_prefix(' ').unwrap_or(after);
            }
        }
    }
    message
}

/// The ending a Xen message announces for the hardware domain, if it is one
/// of `hwdom_shutdown`'s lines. Panics are handled by [`EndingWatcher`].
pub fn hwdom_ending(message: &str) -> Option<Ending> {
    let rest = message
        .strip_prefix("Hardware Dom")
        .or_else(|| message.strip_prefix("Hardware domain "))?;
    if rest.contains(" halted: halting machine") {
        Some(Ending::Poweroff)
    } else if rest.contains("shutdown: watchdog rebooting machine") {
        Some(Ending::Watchdog)
    } else if rest.contains("shutdown: rebooting machine") {
        Some(Ending::Reboot)
    } else if rest.contains("did unsupported soft reset") {
        Some(Ending::SoftReset)
    } else if rest.contains(" crashed") {
        Some(Ending::Crash)
    } else if let Some(reason) = rest.split("(unknown reason ").nth(1) {
        let code = reason.split(')').next()?.trim().parse().ok()?;
        Some(Ending::from_reason_code(code))
    } else {
        None
    }
}

/// Follows Xen's messages in order and reports the first ending seen, with
/// the message that announced it.
#[derive(Debug, Default)]
pub struct EndingWatcher {
    panic_header: Option<String>,
}

impl EndingWatcher {
    /// Feeds one Xen message (prefix and timestamp stripped).
    pub fn message(&mut self, message: &str) -> Option<(Ending, String)> {
        let message = message.trim_end();
        if let Some(header) = &self.panic_header {
            // The panic's reason is the first line after "Panic on CPU N:"
            // that is not a row of stars or empty.
            if !message.is_empty() && !message.starts_with("****") {
                let evidence = format!("{header} {message}");
                return Some((Ending::Other(format!("Xen panic: {message}")), evidence));
            }
            return None;
        }
        if message.starts_with("Panic on CPU") {
            self.panic_header = Some(message.to_string());
            return None;
        }
        hwdom_ending(message).map(|ending| (ending, message.to_string()))
    }
}

/// Xen's report of a triple fault of domain `domid`'s HVM vCPU: the
/// `dDvN Triple fault` message and the `RIP:` line of the register dump
/// that follows it, joined by `; `. `messages` are Xen's messages in order
/// (prefix and timestamp stripped).
pub fn triple_fault(messages: &[&str], domid: u32) -> Option<String> {
    let vcpu = format!("d{domid}v");
    let at = messages
        .iter()
        .position(|m| m.starts_with(&vcpu) && m.contains("Triple fault"))?;
    let rip = messages[at..]
        .iter()
        .take(8)
        .find(|m| m.starts_with("RIP:"))
        .map_or("no RIP line", |m| m.trim());
    Some(format!("{}; {rip}", messages[at].trim()))
}

/// [`triple_fault`], when the dump shows the vCPU running at Xen's own
/// code with Xen's code selector (`RIP:    e008:[<ffff82d0…>]`). A guest
/// cannot get there (it has no mapping of Xen and no such selector); for
/// its own triple faults the dump shows its own `RIP` (`0008:[<…>]` for
/// ours). Seen under the rig when QEMU's emulated SVM ran a PVH guest with
/// the hypervisor's state loaded.
pub fn emulated_svm_fault(messages: &[&str], domid: u32) -> Option<String> {
    triple_fault(messages, domid).filter(|report| holds_xen_state(report))
}

/// Whether a [`triple_fault`] report's `RIP` is Xen's own.
fn holds_xen_state(report: &str) -> bool {
    report.contains("RIP:    e008:[<ffff82d0")
}

/// Xen's own crash on a stack that is not Xen's: a `DOUBLE FAULT` panic
/// in hypervisor context whose dump says the stack in use is not the
/// one Xen expected (`Current stack base … differs from expected`). Xen
/// switches to its own stack on every entry from a guest; running its
/// exception handler on a guest's stack (seen once, on the Linux dom0's
/// kernel stack, while dom0 was building a PVH domU) means the emulated
/// CPU entered Xen without that switch: no guest, ours or dom0, can ask
/// for it. Gives the panic's `RIP` line and the stack line, from the
/// serial log's tail.
pub fn xen_on_foreign_stack(log_tail: &str) -> Option<String> {
    // Xen's own messages only, prefix and timestamp gone.
    let lines: Vec<&str> = log_tail
        .lines()
        .filter_map(|line| split_line(line).xen)
        .collect();
    let panic = lines
        .iter()
        .position(|l| l.contains("*** DOUBLE FAULT ***"))?;
    let after = &lines[panic..];
    let hypervisor = after.iter().any(|l| l.contains("CONTEXT: hypervisor"));
    let stack = after
        .iter()
        .find(|l| l.starts_with("Current stack base") && l.contains("differs from expected"))?;
    let rip = after.iter().find(|l| l.starts_with("RIP:"))?;
    hypervisor.then(|| {
        format!(
            "Xen DOUBLE FAULT in hypervisor context, {}; {}",
            rip.trim(),
            stack.trim()
        )
    })
}

/// The verdict `loadgen postmortem` gives when everything the delivery
/// needed was in order in the guest's own memory.
pub const SOUND_TABLES: &str =
    "verdict: the IDT, GDT, TSS, handlers and stacks this delivery needs are all present";

/// The emulated machine's other fault: a triple fault whose post-mortem
/// (the rig's `postmortem:` lines) read the guest's memory and found, for
/// every vCPU, every table, gate, handler and stack the interrupt's
/// delivery needed present and valid ([`SOUND_TABLES`]); then the guest
/// did not cause it. Seen with PVH under QEMU's emulated SVM: a #PF on
/// the fetch of a handler in the very page the vCPU had just halted in,
/// with CR2 0. Gives the in-flight event's line, or `None` (no
/// post-mortem of memory, or any verdict that names a fault of ours).
pub fn sound_tables_fault(post_mortem: &[String]) -> Option<String> {
    let verdicts: Vec<&String> = post_mortem
        .iter()
        .filter(|l| l.starts_with("verdict: "))
        .collect();
    if verdicts.is_empty() || !verdicts.iter().all(|v| v.starts_with(SOUND_TABLES)) {
        return None;
    }
    let event = post_mortem
        .iter()
        .find(|l| l.starts_with("event in flight: "))
        .map_or("no event in flight", |l| l.as_str());
    Some(format!(
        "a triple fault while the guest's own tables were sound ({event}; loadgen postmortem)"
    ))
}

/// Adds Xen's report of a triple fault of `domid` (if there was one) to a
/// guest's `evidence`, marking the emulated machine's fault as such, and
/// returns the report when it is that fault ([`emulated_svm_fault`]).
pub fn note_triple_fault(evidence: &mut String, messages: &[&str], domid: u32) -> Option<String> {
    let report = triple_fault(messages, domid)?;
    if holds_xen_state(&report) {
        *evidence = format!("{evidence}; Xen: {report} (the emulated machine's fault)");
        Some(report)
    } else {
        *evidence = format!("{evidence}; Xen: {report}");
        None
    }
}

#[cfg(test)]
mod tests {

    /// The tail of the serial log of the one occurrence (CI, Xen 4.17.5).
    const FOREIGN_STACK: &str = "(XEN) [  227.509664] HVM31 restore: CPU 0
(XEN) [  232.703413] *** DOUBLE FAULT ***
(XEN) [  232.703712] ----[ Xen-4.17.5  x86_64  debug=n  Not tainted ]----
(XEN) [  232.703858] CPU:    0
(XEN) [  232.703935] RIP:    e008:[<ffff82d0402019a4>] handle_exception+0x68/0x12e
(XEN) [  232.704533] RFLAGS: 0000000000000046   CONTEXT: hypervisor
(XEN) [  232.706124] Current stack base ffffc90040090000 differs from expected ffff83003ffd0000
(XEN) [  232.706842] DOUBLE FAULT -- system shutdown";

    #[test]
    fn xen_on_a_guest_stack_is_the_machine_s_fault() {
        let found = xen_on_foreign_stack(FOREIGN_STACK).expect("recognised");
        assert!(found.contains("handle_exception+0x68"), "{found}");
        assert!(found.contains("differs from expected"), "{found}");
        // A double fault on Xen's own stack, or one in a guest's context,
        // may be a guest's doing: not recognised.
        let own_stack = FOREIGN_STACK.replace(
            "Current stack base ffffc90040090000 differs from expected ffff83003ffd0000\n",
            "",
        );
        assert_eq!(xen_on_foreign_stack(&own_stack), None);
        let guest = FOREIGN_STACK.replace("CONTEXT: hypervisor", "CONTEXT: hvm guest (d31v0)");
        assert_eq!(xen_on_foreign_stack(&guest), None);
        assert_eq!(xen_on_foreign_stack("(XEN) [  1.0] Panic on CPU 0:"), None);
    }

    use super::*;

    #[test]
    fn tells_the_emulated_svm_fault_from_a_guests_own_triple_fault() {
        let emulated = [
            "HVM2 restore: CPU 0",
            "d2v0 Triple fault - invoking HVM shutdown action 1",
            "*** Dumping Dom2 vcpu#0 state: ***",
            "----[ Xen-4.17.5  x86_64  debug=n  Not tainted ]----",
            "CPU:    0",
            "RIP:    e008:[<ffff82d040204505>]",
        ];
        assert_eq!(
            emulated_svm_fault(&emulated, 2).as_deref(),
            Some("d2v0 Triple fault - invoking HVM shutdown action 1; RIP:    e008:[<ffff82d040204505>]")
        );
        assert_eq!(emulated_svm_fault(&emulated, 3), None);
        // A guest's own triple fault (an empty IDT, then int3).
        let own = [
            "d0v0 Triple fault - invoking HVM shutdown action 1",
            "*** Dumping Dom0 vcpu#0 state: ***",
            "CPU:    0",
            "RIP:    0008:[<0000000000106f73>]",
        ];
        assert_eq!(emulated_svm_fault(&own, 0), None);
        assert_eq!(
            triple_fault(&own, 0).as_deref(),
            Some("d0v0 Triple fault - invoking HVM shutdown action 1; RIP:    0008:[<0000000000106f73>]")
        );
        let mut evidence = String::from("Domain 2 has shut down, reason code 1 0x1");
        assert!(note_triple_fault(&mut evidence, &emulated, 2).is_some());
        assert!(
            evidence.ends_with("e008:[<ffff82d040204505>] (the emulated machine's fault)"),
            "{evidence}"
        );
        let mut evidence = String::from("Hardware Dom0 shutdown: rebooting machine");
        assert_eq!(note_triple_fault(&mut evidence, &own, 0), None);
        assert!(evidence.ends_with("; Xen: d0v0 Triple fault - invoking HVM shutdown action 1; RIP:    0008:[<0000000000106f73>]"), "{evidence}");
        let mut evidence = String::from("unchanged");
        assert_eq!(note_triple_fault(&mut evidence, &own, 5), None);
        assert_eq!(evidence, "unchanged");
    }

    #[test]
    fn a_triple_fault_through_sound_tables_is_the_emulated_machines() {
        let lines = |verdicts: &[&str]| -> Vec<String> {
            let mut out = vec![
                "domain 2 triple-faulted; its HVM state:".to_string(),
                "event in flight: vector 0xe (exception, error code 0x10)".to_string(),
            ];
            out.extend(verdicts.iter().map(|v| v.to_string()));
            out
        };
        let sound = format!("{SOUND_TABLES} and valid in the guest's own tables");
        assert_eq!(
            sound_tables_fault(&lines(&[&sound, &sound])).as_deref(),
            Some("a triple fault while the guest's own tables were sound (event in flight: vector 0xe (exception, error code 0x10); loadgen postmortem)")
        );
        // One vCPU's tables broken, or no memory post-mortem: ours to find.
        assert_eq!(
            sound_tables_fault(&lines(&[
                &sound,
                "verdict: gate 0xf3 is not a present interrupt or trap gate"
            ])),
            None
        );
        assert_eq!(sound_tables_fault(&lines(&[])), None);
        // The words are the load generator's own.
        assert!(include_str!("../loadgen/src/postmortem.rs").contains(SOUND_TABLES));
    }

    #[test]
    fn splits_xen_and_guest_text() {
        assert_eq!(
            split_line("(XEN) [    1.744185] HVM: SVM enabled\r"),
            SerialLine {
                guest: None,
                xen: Some("HVM: SVM enabled"),
                domain: None
            }
        );
        assert_eq!(
            split_line("(XEN) Brought up 1 CPUs"),
            SerialLine {
                guest: None,
                xen: Some("Brought up 1 CPUs"),
                domain: None
            }
        );
        assert_eq!(
            split_line("Test result: SUCCESS\r"),
            SerialLine {
                guest: Some("Test result: SUCCESS"),
                xen: None,
                domain: None
            }
        );
        assert_eq!(
            split_line("partial(XEN) [    2.061131] Hardware Dom0 halted: halting machine"),
            SerialLine {
                guest: Some("partial"),
                xen: Some("Hardware Dom0 halted: halting machine"),
                domain: None
            }
        );
        // Brackets that are not a timestamp stay.
        assert_eq!(strip_timestamp("[VT-D] x"), "[VT-D] x");
        assert_eq!(strip_timestamp("[ 12.5] x"), "x");
        assert_eq!(
            strip_timestamp("[00000000a1e6d2f9] ACPI: FACP"),
            "ACPI: FACP"
        );
    }

    #[test]
    fn domain_console_io_lines() {
        let split = split_line("(d3) [   12.500000] hello (world)\r");
        assert_eq!(split.domain, Some((3, "hello (world)")));
        assert_eq!((split.guest, split.xen), (None, None));
        let split = split_line("(d12) no stamp");
        assert_eq!(split.domain, Some((12, "no stamp")));
        // Glued after dom0 text, with a timestamp.
        let split = split_line("dom0 text(d1) [    3.1] hi");
        assert_eq!(split.guest, Some("dom0 text"));
        assert_eq!(split.domain, Some((1, "hi")));
        // A guest's own "(d1) " text mid-line is not a prefix.
        assert_eq!(split_line("see (d1) here").guest, Some("see (d1) here"));
        assert_eq!(split_line("(dx) no").guest, Some("(dx) no"));
    }

    #[test]
    fn hardware_domain_endings() {
        let cases = [
            ("Hardware Dom0 halted: halting machine", Ending::Poweroff),
            ("Hardware Dom0 shutdown: rebooting machine", Ending::Reboot),
            (
                "Hardware Dom0 shutdown: watchdog rebooting machine",
                Ending::Watchdog,
            ),
            (
                "Hardware domain 0 did unsupported soft reset, rebooting.",
                Ending::SoftReset,
            ),
            (
                "Hardware Dom0 crashed: 'noreboot' set - not rebooting.",
                Ending::Crash,
            ),
            (
                "Hardware Dom0 shutdown (unknown reason 2): 'noreboot' set - not rebooting.",
                Ending::Suspend,
            ),
        ];
        for (line, ending) in cases {
            assert_eq!(hwdom_ending(line), Some(ending), "{line}");
        }
        assert_eq!(
            hwdom_ending("Hardware Dom0 shutdown (unknown reason 7): "),
            Some(Ending::Other("unknown shutdown reason code 7".into()))
        );
        assert_eq!(hwdom_ending("*** Building a PV Dom0 ***"), None);
    }

    #[test]
    fn panic_takes_the_next_message() {
        let mut watcher = EndingWatcher::default();
        assert_eq!(watcher.message("Xen version 4.17"), None);
        assert_eq!(watcher.message(""), None);
        assert_eq!(
            watcher.message("****************************************"),
            None
        );
        assert_eq!(watcher.message("Panic on CPU 0:"), None);
        let (ending, evidence) = watcher
            .message("Dom0 allocation too small for initial P->M table")
            .unwrap();
        assert_eq!(
            ending,
            Ending::Other("Xen panic: Dom0 allocation too small for initial P->M table".into())
        );
        assert_eq!(
            evidence,
            "Panic on CPU 0: Dom0 allocation too small for initial P->M table"
        );
    }
}
