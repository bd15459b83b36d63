//! Printing what the rig saw, and deciding whether a boot succeeded.

use rig::{Dom0Session, Ending, GuestReport};

/// The line the kernel prints when its application returned `Ok`.
pub fn success_line(app: &str) -> String {
    format!("Paravane: app {app} exited: success")
}

/// A guest succeeded if it powered off after printing a success line:
/// Paravane's own, or, for any other kernel (a port under test), the
/// XTF verdict `Test result: SUCCESS`.
pub fn succeeded(guest: &GuestReport) -> bool {
    let said_so = |l: &String| {
        (l.starts_with("Paravane: app ") && l.ends_with(" exited: success"))
            || l.trim_end() == "Test result: SUCCESS"
    };
    matches!(guest.ending, Ending::Poweroff)
        && guest
            .console
            .iter()
            .chain(&guest.hypervisor_console)
            .any(said_so)
}

/// How a guest ended, its console and its dom0 script's output, indented
/// under a failed check's reason.
pub fn failure_context(guest: &GuestReport) -> String {
    format!(
        "\n  ending {} ({})\n  console:\n    {}\n  dom0:\n    {}",
        guest.ending,
        guest.evidence,
        guest.console.join("\n    "),
        guest.dom0_output.join("\n    ")
    )
}

/// A check's result with [`failure_context`] added to its failure.
pub fn with_context(guest: &GuestReport) -> impl Fn(Result<(), String>) -> Result<(), String> + '_ {
    move |result| result.map_err(|e| format!("{e}{}", failure_context(guest)))
}

/// Prints a guest's console and how it ended.
pub fn print_guest(guest: &GuestReport) {
    println!("---- console of {} ----", guest.name);
    for line in &guest.console {
        println!("{line}");
    }
    println!("---- end of console ----");
    println!(
        "{} ended: {:?} after {:.2} s (reported by: {})",
        guest.name,
        guest.ending,
        guest.elapsed.as_secs_f64(),
        guest.evidence.trim()
    );
    println!("{} log: {}", guest.name, guest.log.display());
}

/// Prints the dom0 session's timings.
pub fn print_session_timing(session: &Dom0Session) {
    println!(
        "dom0 ready after {:.1} s; whole session {:.1} s; logs in {}",
        session.dom0_ready.as_secs_f64(),
        session.total.as_secs_f64(),
        session.log_dir.display()
    );
}
