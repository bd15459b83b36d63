//! Manual runs of the rig.
//!
//! ```text
//! cargo run -p rig --example boot -- prepare
//! cargo run -p rig --example boot -- dom0 KERNEL [CMDLINE]
//! cargo run -p rig --example boot -- domu [KERNEL [CMDLINE]]...
//! ```
//!
//! `domu` with no kernel boots dom0 alone and prints `xl info` / `xl list`.
//! For domUs, `RIG_GUEST_MEM` (MiB), `RIG_GUEST_TIMEOUT` (seconds),
//! `RIG_GUEST_CONFIG` (one extra xl config line) and `RIG_DOM0_SCRIPT` (a
//! dom0 shell snippet) apply to every guest. `RIG_RUN_TIMEOUT_MS` bounds the
//! whole QEMU run. `RIG_DOM0_MEM` (MiB, default 64) is a direct dom0's
//! memory (Debian's Linux needs 256 or so). `RIG_MODE=pvh` boots dom0 or every domU as PVH;
//! `RIG_MODES=pv,pvh,…` gives each domU its own mode, in order.
//! `RIG_XEN=4.20` picks the hypervisor and its toolstack (default 4.17).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rig::{GuestMode, GuestReport, GuestSpec, Rig};

fn print_report(report: &GuestReport) {
    println!("== {} ==", report.name);
    for line in &report.console {
        println!("console | {line}");
    }
    for line in &report.hypervisor_console {
        println!("console_io | {line}");
    }
    for line in &report.dom0_output {
        println!("dom0 | {line}");
    }
    println!(
        "ending: {} after {:.2} s\nevidence: {}\nlog: {}",
        report.ending,
        report.elapsed.as_secs_f64(),
        report.evidence,
        report.log.display()
    );
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `RIG_MODE` (default PV), or the `index`th word of `RIG_MODES`.
fn env_mode(index: usize) -> GuestMode {
    let word = std::env::var("RIG_MODES")
        .ok()
        .and_then(|modes| modes.split(',').nth(index).map(str::to_string))
        .or_else(|| std::env::var("RIG_MODE").ok());
    word.and_then(|w| GuestMode::parse(&w)).unwrap_or_default()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let version = match std::env::var("RIG_XEN") {
        Err(_) => rig::XenVersion::default(),
        Ok(word) => match rig::XenVersion::parse(&word) {
            Some(version) => version,
            None => {
                eprintln!("RIG_XEN takes 4.17 or 4.20, not `{word}`");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut rig = match Rig::prepare_xen(version) {
        Ok(rig) => rig,
        Err(e) => {
            eprintln!("prepare: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "prepared in {:.3} s; headers in {}",
        rig.prepare_time.as_secs_f64(),
        rig.xen_include_dir().display()
    );
    let result = match args.first().map(String::as_str) {
        Some("prepare") | None => return ExitCode::SUCCESS,
        Some("dom0") => {
            let Some(kernel) = args.get(1) else {
                eprintln!("usage: boot dom0 KERNEL [CMDLINE]");
                return ExitCode::FAILURE;
            };
            let cmdline = args.get(2).cloned().unwrap_or_default();
            let limit = Duration::from_millis(env_number("RIG_RUN_TIMEOUT_MS", 60_000));
            rig.direct_dom0_memory_mib = env_number("RIG_DOM0_MEM", 64) as u32;
            rig.direct_memory_mib = rig.direct_dom0_memory_mib.max(256) * 2;
            rig.boot_dom0_mode(&PathBuf::from(kernel), &cmdline, limit, env_mode(0))
                .map(|report| print_report(&report))
        }
        Some("domu") => {
            let mut guests = Vec::new();
            let mut rest = args[1..].iter().peekable();
            while let Some(kernel) = rest.next() {
                let mut guest = GuestSpec::new(format!("guest{}", guests.len()), kernel)
                    .with_mode(env_mode(guests.len()));
                guest.timeout = Duration::from_secs(env_number("RIG_GUEST_TIMEOUT", 20));
                guest.memory_mib = env_number("RIG_GUEST_MEM", 32) as u32;
                guest.extra_config = std::env::var("RIG_GUEST_CONFIG").into_iter().collect();
                guest.dom0_script = std::env::var("RIG_DOM0_SCRIPT").ok();
                if let Some(cmdline) = rest.next_if(|a| !std::path::Path::new(a).is_file()) {
                    guest.cmdline = cmdline.clone();
                }
                guests.push(guest);
            }
            let default = 120_000 + 30_000 * guests.len() as u64;
            let limit = Duration::from_millis(env_number("RIG_RUN_TIMEOUT_MS", default));
            rig.run_domus(&guests, limit).map(|session| {
                for line in &session.xl_info {
                    println!("xl | {line}");
                }
                for report in &session.guests {
                    print_report(report);
                }
                println!(
                    "dom0 ready after {:.2} s, total {:.2} s, logs in {}",
                    session.dom0_ready.as_secs_f64(),
                    session.total.as_secs_f64(),
                    session.log_dir.display()
                );
            })
        }
        Some(other) => {
            eprintln!("unknown command {other}: prepare, dom0 or domu");
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
