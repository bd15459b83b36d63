//! `cargo xtask`: build the guest, drive the rig, run the suites.
//!
//! ```text
//! cargo xtask run                       build, boot `httpd` as a domU with a vif, fetch its page from dom0, show page and console
//! cargo xtask run --serve [--port P]    the same guest kept running, served at http://localhost:P/ until Ctrl-C
//! cargo xtask test [FILTER] [--xen 4.17|4.20]  every test (or those whose names contain FILTER): host unit tests, lints, rig tests
//! cargo xtask build [--app NAME]        build a guest ELF and print its path
//! cargo xtask e2e net|httpd|httpd-smp|udp|block|backend [--mode pv|pvh|both] [--xen 4.17|4.20]   one end-to-end rig test alone
//! cargo xtask bench [--rounds N] [--http-only] [--disk-only] [--footprint] [--xen 4.17|4.20] [--json FILE] [--charts DIR]  Paravane PV and PVH vs a Linux PV domU: throughput, boot time, httpd, medians, as ratios; JSON and SVG charts
//! cargo xtask bench --charts-only [--json FILE] [--charts DIR]   redraw the charts from the bench's JSON
//! cargo xtask fuzz [TARGET] [--time S] [--runs N]  coverage-guided fuzzing (nightly + cargo-fuzz) of what other domains send
//! cargo xtask size [APP...]            each app's ELF, stripped image and text/data/bss, against Mini-OS
//! cargo xtask soak [--mode pv|pvh|both] [--xen 4.17|4.20] [--net-mib N] [--disk-mib N] [--passes N] [--cycles N]  long run of both devices; the guest's accounting before and after must be equal
//! cargo xtask boot --as dom0|domu [--mode pv|pvh] [--xen 4.17|4.20] [--app NAME | --kernel PATH] [--cmdline "…"] [--memory MIB] [--vcpus N] [--timeout SECS]
//! cargo xtask conformance [--as dom0|domu] [--mode pv|pvh] [--xen 4.17|4.20] [--kernel PATH] [--cmdline "…"] [--vcpus N] [--junit FILE]
//! cargo xtask conformance --matrix [--as dom0|domu] [--json FILE] [--junit FILE]   every Xen × PV/PVH × 2-level/FIFO in one role: one table
//! ```
//!
//! `boot` exits 0 only if the guest powered off after printing its
//! success line. The rig (Xen, the Linux dom0, the toolstack) is fetched
//! from Debian's packages into a cache on first use; see README.md.

mod args;
mod bench;
mod bench_charts;
mod bench_disk;
mod bench_json;
mod bench_load;
mod bench_output;
mod bench_vcpus;
mod conformance;
mod e2e_backend;
mod e2e_backend_linux;
mod e2e_balloon;
mod e2e_block;
mod e2e_hotplug;
mod e2e_httpd;
mod e2e_net;
mod e2e_netfeatures;
mod e2e_shutdown;
mod e2e_suspend;
mod e2e_suspend_block;
mod e2e_udp;
mod footprint;
mod fuzz;
mod guest_build;
mod idle;
mod load;
mod matrix;
mod min_memory;
mod ports_check;
mod report;
mod rig_httpd_smp;
mod rig_smpwork;
mod rig_tests;
mod rig_vcpu_set;
mod serve;
mod serve_test;
mod soak;
mod test_cmd;
mod toolchain;

use args::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut args = Args::from_env();
    let command = args.next_positional();
    let needs_toolchain = !matches!(
        command.as_deref(),
        None | Some("help") | Some("--help") | Some("-h")
    );
    if needs_toolchain {
        if let Err(message) = toolchain::ensure() {
            eprintln!("xtask: {message}");
            return ExitCode::FAILURE;
        }
    }
    let result = match command.as_deref() {
        Some("build") => cmd_build(&mut args),
        Some("boot") => cmd_boot(&mut args),
        Some("run") => cmd_run(&mut args),
        Some("test") => test_cmd::run(&mut args),
        Some("conformance") => cmd_conformance(&mut args),
        Some("bench") => bench::run(&mut args),
        Some("e2e") => cmd_e2e(&mut args),
        Some("fuzz") => fuzz::run(&mut args),
        Some("size") => footprint::run(&mut args),
        Some("soak") => cmd_soak(&mut args),
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{}", USAGE);
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "\
usage: cargo xtask <command>
  run                      build, boot the `httpd` unikernel as a domU under Xen + a Linux dom0, fetch its
                           page from dom0 with wget, show the page and the console
  run --serve [--port P]   the same guest kept running and served to the host's browser: prints
                           `open http://localhost:P/` (default P: 8080), shows the guest's console as it
                           goes; Ctrl-C shuts the guest down (xl shutdown -w), then dom0 and QEMU
  test [FILTER] [--pvh | --no-pvh] [--xen 4.17|4.20]
                           every test (or only those whose names contain FILTER): host unit tests, lints,
                           fuzz smoke, rig tests; ends with `N passed, N failed` (skips on a line before
                           it); PVH rig tests included; --no-pvh
                           (or PARAVANE_PVH=0) leaves them out; --xen 4.20 runs every rig test on
                           Debian trixie's Xen 4.20 (default 4.17, plus the 4.20 suite runs)
  build [--app NAME] [--debug]
                           build a guest ELF (default app: hello) and print its path
  boot --as dom0|domu [--mode pv|pvh] [--xen 4.17|4.20] [--app NAME | --kernel PATH]
       [--cmdline \"...\"] [--memory MIB] [--vcpus N] [--timeout SECS]
                           boot one guest under Xen (default mode: pv; --memory: a domU's MiB, default 32,
                           or dom0's dom0_mem, default 64); exit 0 only if it powered off after its
                           success line; --xen: the hypervisor (default 4.17; 4.20 is Debian trixie's,
                           with trixie's toolstack in the Linux dom0 for --as domu)
  conformance [--as dom0|domu] [--mode pv|pvh] [--xen 4.17|4.20] [--kernel PATH] [--cmdline \"...\"]
              [--vcpus N] [--junit FILE]
                           run the ABI conformance suite under Xen (default: both roles, mode pv, Xen
                           4.17; a domU gets --vcpus, default 2, for the smp checks); exit 0 only on
                           `Test result: SUCCESS`
                           followed by poweroff
  conformance --matrix [--as dom0|domu] [--json FILE] [--junit FILE] [--kernel PATH] [--cmdline \"...\"]
                           the suite as a direct dom0 (default) or as domUs (--as domu: one Linux dom0
                           session per Xen) on every Xen (4.17, 4.20) x PV/PVH x 2-level/FIFO event
                           channels; one table check x configuration -> PASS/FAIL/SKIP, rows that
                           differ between versions first; also written as JSON (default
                           target/conformance-matrix.json, -domu.json for domUs; table beside it as .txt)
  soak [--mode pv|pvh|both] [--xen 4.17|4.20] [--net-mib N] [--disk-mib N] [--passes N] [--cycles N]
                           a long run of both devices (default: 1024 MiB through echo, 16 passes over a
                           64 MiB disk, 100 detach/attach cycles of each); the guest's accounting
                           (grants, frames, heap, ports, tasks) before and after must be equal
  e2e net|httpd|httpd-smp|network|udp|block|backend [--mode pv|pvh|both] [--xen 4.17|4.20]
                           run one end-to-end rig test alone (echo, httpd, or tftpd over DHCP; --mode for
                           net and httpd; both: the PV and PVH guests side by side in one dom0 session);
                           network: the session `test` runs, httpd then echo (PV, or with --mode both
                           PV and PVH side by side)
  size [APP...]            build the apps (default: hello echo httpd blkcheck conformance) and print each
                           one's ELF, stripped image (written as APP.stripped) and text/data/bss, against
                           Mini-OS's stripped size
  bench [--rounds N] [--http-only] [--disk-only] [--footprint] [--xen 4.17|4.20] [--json FILE] [--charts DIR]
                           Paravane's echo, blkcheck and httpd guests (PV and PVH) next to a Linux PV domU
                           doing the same transfers and serving the same page (busybox httpd), N rounds (3),
                           a dom0 session each, the host's load recorded per round (a round taken under
                           load is flagged and run once more); prints each round's figures, then medians of throughput,
                           boot times, httpd requests/s and p50/p99 latency at 1, 16 and 64 clients, and
                           the Paravane/Linux ratios; --http-only runs only the httpd contenders;
                           --disk-only only the disk ones (read, and write, with persistent grants
                           on and off);
                           --footprint instead prints each app's image sizes and boots hello, echo and
                           httpd at falling memory= sizes to find the smallest each still works in;
                           --xen: the hypervisor (default 4.17). Writes every figure per round as JSON
                           (target/bench/bench.json, footprint.json for --footprint; or --json FILE)
                           and draws SVG charts from it beside the JSON (or into --charts DIR)
  bench --charts-only [--json FILE] [--charts DIR]
                           redraw the charts from an existing JSON (default: both files above) without
                           running anything
  fuzz [TARGET] [--time S] [--runs N]
                           coverage-guided fuzzing of the parsers and state machines that take other
                           domains' data (fuzz/, cargo +nightly fuzz; nightly for this command only):
                           one target or all, S seconds each (60); prints executions, coverage and
                           crashes per target; `test` runs each for 10 s (skipped without nightly or
                           cargo-fuzz)
";

fn cmd_build(args: &mut Args) -> Result<ExitCode, String> {
    let app = args.value("--app").unwrap_or_else(|| "hello".into());
    let profile = if args.flag("--debug") {
        guest_build::Profile::Debug
    } else {
        guest_build::Profile::Release
    };
    args.finish()?;
    let image = guest_build::build(&app, profile)?;
    println!("{}", image.display());
    eprintln!(
        "boot it on a Xen host with: xl create {} kernel=\"{}\"\n\
         (the ELF with its symbols, for debuggers and crash reports: {})",
        guest_build::example_xl_config().display(),
        image.display(),
        image
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."))
            .join(&app)
            .display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Which way `boot` starts the guest.
#[derive(Clone, Copy, PartialEq, Eq)]
enum As {
    Dom0,
    DomU,
}

/// `--mode pv|pvh` (default pv): how the guest is run, as dom0 (Xen's
/// `dom0=pvh` for PVH) or as a domU (xl's `type =`).
fn mode_arg(args: &mut Args) -> Result<rig::GuestMode, String> {
    match args.value("--mode") {
        None => Ok(rig::GuestMode::Pv),
        Some(word) => rig::GuestMode::parse(&word)
            .ok_or_else(|| format!("--mode takes pv or pvh, not `{word}`")),
    }
}

/// `--xen 4.17|4.20` (default 4.17): which hypervisor the rig boots.
pub(crate) fn xen_arg(args: &mut Args) -> Result<rig::XenVersion, String> {
    match args.value("--xen") {
        None => Ok(rig::XenVersion::default()),
        Some(word) => rig::XenVersion::parse(&word).ok_or_else(|| {
            let known: Vec<&str> = rig::XenVersion::ALL.iter().map(|v| v.as_str()).collect();
            format!("--xen takes {}, not `{word}`", known.join(" or "))
        }),
    }
}

fn cmd_boot(args: &mut Args) -> Result<ExitCode, String> {
    let role = match args.value("--as").as_deref() {
        Some("dom0") => As::Dom0,
        Some("domu") | Some("domU") => As::DomU,
        Some(other) => return Err(format!("--as takes dom0 or domu, not `{other}`")),
        None => return Err("boot needs --as dom0|domu".into()),
    };
    let mode = mode_arg(args)?;
    let xen = xen_arg(args)?;
    let app = args.value("--app");
    let kernel = args.value("--kernel").map(PathBuf::from);
    let cmdline = args.value("--cmdline").unwrap_or_default();
    let memory = args
        .value("--memory")
        .map(|m| {
            m.parse::<u32>()
                .map_err(|_| format!("--memory: not a number: {m}"))
        })
        .transpose()?;
    let timeout = args
        .value("--timeout")
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| format!("--timeout: not a number: {t}"))
        })
        .transpose()?
        .unwrap_or(60);
    // A domU's vCPUs (default 1, as before); dom0 gets QEMU's.
    let vcpus = match args.value("--vcpus") {
        None => None,
        Some(n) => match n.parse::<u32>() {
            Ok(n @ 1..=8) => Some(n),
            _ => return Err(format!("--vcpus takes 1 to 8, not `{n}`")),
        },
    };
    args.finish()?;
    let kernel = match (kernel, app) {
        (Some(_), Some(_)) => return Err("give --app or --kernel, not both".into()),
        (Some(path), None) => path,
        (None, app) => guest_build::build(
            app.as_deref().unwrap_or("hello"),
            guest_build::Profile::Release,
        )?,
    };
    let name = guest_name(&kernel);
    let mut rig = rig::Rig::prepare_xen(xen).map_err(|e| e.to_string())?;
    if let (As::Dom0, Some(mib)) = (role, memory) {
        rig.direct_dom0_memory_mib = mib;
        rig.direct_memory_mib = rig.direct_memory_mib.max(mib + 256);
    }
    if let (As::DomU, Some(mib)) = (role, memory) {
        // The machine holds dom0, the guest and Xen's own (~256 MiB).
        rig.memory_mib = rig.memory_mib.max(rig.dom0_memory_mib + mib + 256);
        // QEMU's RAM starts zeroed: Xen need not scrub it all at boot
        // (under emulation, seconds per GiB).
        if rig.memory_mib > 2048 {
            rig.xen_extra_cmdline.push_str(" bootscrub=0");
        }
    }
    let timeout = Duration::from_secs(timeout);
    let guest = match role {
        As::Dom0 => rig
            .boot_dom0_mode(&kernel, &cmdline, timeout, mode)
            .map_err(|e| e.to_string())?,
        As::DomU => {
            let memory = memory.unwrap_or(32);
            let mut spec = guest_spec(&name, &kernel, &cmdline, memory, timeout).with_mode(mode);
            if let Some(vcpus) = vcpus {
                spec.extra_config.push(format!("vcpus = {vcpus}"));
            }
            let session = rig
                .run_domus(
                    std::slice::from_ref(&spec),
                    timeout + Duration::from_secs(120),
                )
                .map_err(|e| e.to_string())?;
            report::print_session_timing(&session);
            session
                .guests
                .into_iter()
                .next()
                .ok_or("the rig returned no report for the guest")?
        }
    };
    report::print_guest(&guest);
    Ok(if report::succeeded(&guest) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Boots `httpd` as a domU with a vif; dom0 fetches its page with
/// busybox `wget`, then `GET /quit`. Prints the page and the console;
/// succeeds only if the page arrived and the guest powered off.
fn cmd_run(args: &mut Args) -> Result<ExitCode, String> {
    let serve = args.flag("--serve");
    let port = args
        .value("--port")
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("--port: not a TCP port: {p}"))
        })
        .transpose()?;
    args.finish()?;
    if serve {
        return serve::run(port.unwrap_or(serve::DEFAULT_PORT));
    }
    if port.is_some() {
        return Err("--port goes with --serve".into());
    }
    let kernel = guest_build::build("httpd", guest_build::Profile::Release)?;
    let rig = rig::Rig::prepare().map_err(|e| e.to_string())?;
    let spec = e2e_httpd::demo_spec(&kernel);
    let session = rig
        .run_domus(std::slice::from_ref(&spec), Duration::from_secs(420))
        .map_err(|e| e.to_string())?;
    report::print_session_timing(&session);
    let guest = session
        .guests
        .first()
        .ok_or("the rig returned no report for the guest")?;
    let (page, fetched) = e2e_httpd::demo_page(guest);
    println!(
        "---- page from http://{}/ (dom0's wget) ----",
        e2e_httpd::GUEST_IP
    );
    for line in &page {
        println!("{line}");
    }
    println!("---- end of page ----");
    report::print_guest(guest);
    let powered_off = report::succeeded(guest);
    if !fetched {
        println!("xtask run: dom0 did not get the page; its output:");
        for line in &guest.dom0_output {
            println!("  {line}");
        }
    }
    if !powered_off {
        println!("xtask run: the guest did not power off after its success line");
    }
    Ok(if fetched && powered_off {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--mode pv|pvh|both` (default pv) of `e2e` and `soak`: with `both`,
/// the PV and the PVH guest run in one dom0 session.
fn modes_arg(args: &mut Args) -> Result<Vec<rig::GuestMode>, String> {
    match args.value("--mode").as_deref() {
        None | Some("pv") => Ok(vec![rig::GuestMode::Pv]),
        Some("pvh") => Ok(vec![rig::GuestMode::Pvh]),
        Some("both") => Ok(rig::GuestMode::ALL.to_vec()),
        Some(other) => Err(format!("--mode takes pv, pvh or both, not `{other}`")),
    }
}

/// `cargo xtask soak`: see [`soak`].
fn cmd_soak(args: &mut Args) -> Result<ExitCode, String> {
    let modes = modes_arg(args)?;
    let xen = xen_arg(args)?;
    let mut plan = soak::Plan::FULL;
    for (flag, field) in [
        ("--net-mib", &mut plan.net_mib),
        ("--disk-mib", &mut plan.disk_mib),
        ("--passes", &mut plan.passes),
        ("--cycles", &mut plan.cycles),
    ] {
        if let Some(value) = args.value(flag) {
            *field = value
                .parse()
                .map_err(|_| format!("{flag} takes a whole number, not `{value}`"))?;
        }
    }
    if plan.disk_mib == 0 || plan.passes == 0 || plan.disk_mib > 256 {
        return Err(
            "soak: --disk-mib takes 1..=256 (dom0 keeps the image in RAM), --passes at least 1"
                .into(),
        );
    }
    args.finish()?;
    let soak_elf = guest_build::build("soak", guest_build::Profile::Release)?;
    let loadgen = guest_build::build_loadgen()?;
    let rig = rig::Rig::prepare_xen(xen).map_err(|e| e.to_string())?;
    println!(
        "soak: {} MiB through echo, {} passes over a {} MiB disk, {} detach/attach cycles of each device (bounded at {} s per guest)",
        plan.net_mib,
        plan.passes,
        plan.disk_mib,
        plan.cycles,
        plan.timeout().as_secs()
    );
    let mut tally = test_cmd::Tally::default();
    for (name, result) in soak::run(&rig, &soak_elf, &loadgen, &modes, &plan) {
        tally.record(&name, result);
    }
    Ok(if tally.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one end-to-end rig test alone, printing PASS/FAIL lines.
/// `--mode pv|pvh|both` (net and httpd; default pv): with `both`, the PV
/// and the PVH guest run side by side in one dom0 session.
fn cmd_e2e(args: &mut Args) -> Result<ExitCode, String> {
    let which = args
        .next_positional()
        .ok_or("e2e: which test? net, httpd, httpd-smp, network, udp, block or backend")?;
    let modes = modes_arg(args)?;
    let xen = xen_arg(args)?;
    args.finish()?;
    if which == "backend" {
        let blkcheck = guest_build::build("blkcheck", guest_build::Profile::Release)?;
        let blkattack = guest_build::build("blkattack", guest_build::Profile::Release)?;
        let netattack = guest_build::build("netattack", guest_build::Profile::Release)?;
        let backend = guest_build::build_dom0_backend()?;
        let rig = rig::Rig::prepare_xen(xen).map_err(|e| e.to_string())?;
        let mut tally = test_cmd::Tally::default();
        let guests = e2e_backend::Guests {
            blkcheck: &blkcheck,
            blkattack: &blkattack,
            netattack: &netattack,
        };
        for (name, result) in e2e_backend::run(&rig, &guests, &backend, &modes) {
            tally.record(&name, result);
        }
        for (name, result) in e2e_backend_linux::run(&rig, &backend) {
            tally.record(&name, result);
        }
        return Ok(if tally.all_passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if which == "block" {
        let blkcheck = guest_build::build("blkcheck", guest_build::Profile::Release)?;
        let loadgen = guest_build::build_loadgen()?;
        let rig = rig::Rig::prepare_xen(xen).map_err(|e| e.to_string())?;
        let mut tally = test_cmd::Tally::default();
        for (name, result) in e2e_block::run(&rig, &blkcheck, &loadgen, &modes) {
            tally.record(&name, result);
        }
        return Ok(if tally.all_passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if modes != [rig::GuestMode::Pv] && which == "udp" {
        return Err("e2e: --mode is only wired up for net and httpd".into());
    }
    if which == "httpd-smp" {
        // Only `httpd vcpus=2` of the network session (see
        // `rig_httpd_smp`), in a dom0 session of its own.
        let pvh = modes.contains(&rig::GuestMode::Pvh);
        let httpd = guest_build::build("httpd", guest_build::Profile::Release)?;
        let loadgen = guest_build::build_loadgen()?;
        let rig = rig::Rig::prepare_xen(xen).map_err(|e| e.to_string())?;
        let mut tally = test_cmd::Tally::filtered(test_cmd::Filter::containing("httpd vcpus=2"));
        if !modes.contains(&rig::GuestMode::Pv) {
            tally =
                test_cmd::Tally::filtered(test_cmd::Filter::containing("pvh e2e httpd vcpus=2"));
        }
        rig_tests::network_session(&rig, &|_| httpd.clone(), &loadgen, &mut tally, pvh);
        return Ok(if tally.all_passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if which == "network" {
        // The session `cargo xtask test` runs: httpd, then echo, each as
        // PV and PVH side by side.
        let pvh = modes.contains(&rig::GuestMode::Pvh);
        let httpd = guest_build::build("httpd", guest_build::Profile::Release)?;
        let echo = guest_build::build("echo", guest_build::Profile::Release)?;
        let loadgen = guest_build::build_loadgen()?;
        let rig = rig::Rig::prepare_xen(xen).map_err(|e| e.to_string())?;
        let elf = |app: &str| {
            if app == "echo" {
                echo.clone()
            } else {
                httpd.clone()
            }
        };
        let mut tally = test_cmd::Tally::default();
        rig_tests::network_session(&rig, &elf, &loadgen, &mut tally, pvh);
        return Ok(if tally.all_passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let app = match which.as_str() {
        "net" => "echo",
        "httpd" => "httpd",
        "udp" => "tftpd",
        other => return Err(format!("e2e: unknown test `{other}`")),
    };
    let kernel = guest_build::build(app, guest_build::Profile::Release)?;
    let loadgen = guest_build::build_loadgen()?;
    let rig = rig::Rig::prepare_xen(xen).map_err(|e| e.to_string())?;
    let results: Vec<(String, Result<(), String>)> = match which.as_str() {
        "net" => e2e_net::run(&rig, &kernel, &loadgen, &modes)
            .into_iter()
            .map(|(mode, name, result)| (format!("{mode} {name}"), result))
            .collect(),
        "httpd" => e2e_httpd::run(&rig, &kernel, &loadgen, &modes)
            .into_iter()
            .map(|(mode, name, result)| (format!("{mode} {name}"), result))
            .collect(),
        _ => e2e_udp::run(&rig, &kernel),
    };
    let mut tally = test_cmd::Tally::default();
    for (name, result) in results {
        tally.record(&name, result);
    }
    Ok(if tally.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A domU description for the rig.
pub fn guest_spec(
    name: &str,
    kernel: &std::path::Path,
    cmdline: &str,
    memory_mib: u32,
    timeout: Duration,
) -> rig::GuestSpec {
    let mut spec = rig::GuestSpec::new(name, kernel);
    spec.cmdline = cmdline.into();
    spec.memory_mib = memory_mib;
    spec.timeout = timeout;
    spec
}

/// `--vcpus N` of `conformance --as domu`: the domU's vCPUs (default 2,
/// as CI gives it; 1 to 8).
fn vcpus_arg(args: &mut Args) -> Result<u32, String> {
    match args.value("--vcpus") {
        None => Ok(2),
        Some(n) => match n.parse::<u32>() {
            Ok(n @ 1..=8) => Ok(n),
            _ => Err(format!("--vcpus takes 1 to 8, not `{n}`")),
        },
    }
}

fn cmd_conformance(args: &mut Args) -> Result<ExitCode, String> {
    if args.flag("--matrix") {
        return cmd_conformance_matrix(args);
    }
    let xen = xen_arg(args)?;
    let roles: Vec<As> = match args.value("--as").as_deref() {
        Some("dom0") => vec![As::Dom0],
        Some("domu") | Some("domU") => vec![As::DomU],
        None => vec![As::Dom0, As::DomU],
        Some(other) => return Err(format!("--as takes dom0 or domu, not `{other}`")),
    };
    let mode = mode_arg(args)?;
    let junit = args.value("--junit").map(PathBuf::from);
    let kernel = args.value("--kernel").map(PathBuf::from);
    let cmdline = args.value("--cmdline").unwrap_or_default();
    let vcpus = vcpus_arg(args)?;
    args.finish()?;
    let kernel = conformance_kernel(kernel)?;
    let rig = rig::Rig::prepare_xen(xen).map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(180);
    let mut all_ok = true;
    let mut xml = String::new();
    for role in roles {
        let (label, guest) = match role {
            As::Dom0 => (
                "dom0",
                rig.boot_dom0_mode(&kernel, &cmdline, timeout, mode)
                    .map_err(|e| e.to_string())?,
            ),
            As::DomU => {
                let mut spec =
                    guest_spec("conformance", &kernel, &cmdline, 64, timeout).with_mode(mode);
                // As in CI: the suite's smp checks need a second vCPU.
                spec.extra_config.push(format!("vcpus = {vcpus}"));
                let session = rig
                    .run_domus(
                        std::slice::from_ref(&spec),
                        timeout + Duration::from_secs(120),
                    )
                    .map_err(|e| e.to_string())?;
                report::print_session_timing(&session);
                let guest = session
                    .guests
                    .into_iter()
                    .next()
                    .ok_or("no report for the guest")?;
                ("domU", guest)
            }
        };
        report::print_guest(&guest);
        let output = conformance::parse(&guest.console);
        let ok = output.verdict.as_deref() == Some("SUCCESS")
            && matches!(guest.ending, rig::Ending::Poweroff);
        println!(
            "conformance on {xen} as {mode} {label}: {} tests, verdict {}, ended {:?}: {}",
            output.cases.len(),
            output.verdict.as_deref().unwrap_or("(none printed)"),
            guest.ending,
            if ok { "ok" } else { "NOT OK" }
        );
        all_ok &= ok;
        let suite = match mode {
            rig::GuestMode::Pv => format!("conformance.{label}"),
            rig::GuestMode::Pvh => format!("conformance.pvh-{label}"),
        };
        xml.push_str(&conformance::junit(&suite, &output));
    }
    if let Some(path) = junit {
        // Several suites: wrap them in one <testsuites> document.
        let body: String = xml
            .lines()
            .filter(|l| !l.starts_with("<?xml"))
            .map(|l| format!("{l}\n"))
            .collect();
        let doc = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n{body}</testsuites>\n"
        );
        std::fs::write(&path, doc).map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!("JUnit XML written to {}", path.display());
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The suite's ELF: `--kernel`'s, else the `conformance` app, built.
fn conformance_kernel(kernel: Option<PathBuf>) -> Result<PathBuf, String> {
    match kernel {
        Some(path) => Ok(path),
        None => guest_build::build("conformance", guest_build::Profile::Release),
    }
}

/// `conformance --matrix`: every hypervisor × mode × event-channel ABI
/// as a direct dom0, or with `--as domu` as domUs (see `matrix.rs`);
/// prints the table, writes it as text and JSON (`--json FILE`, default
/// `target/conformance-matrix.json`, or `…-domu.json`) and, with
/// `--junit FILE`, as JUnit XML. Exit 0 only if every configuration
/// ended in SUCCESS and poweroff.
fn cmd_conformance_matrix(args: &mut Args) -> Result<ExitCode, String> {
    let role = match args.value("--as").as_deref() {
        None | Some("dom0") => matrix::Role::Dom0,
        Some("domu") | Some("domU") => matrix::Role::DomU,
        Some(other) => return Err(format!("--as takes dom0 or domu, not `{other}`")),
    };
    let junit = args.value("--junit").map(PathBuf::from);
    // Each role's table has its own default file, so one does not
    // overwrite the other's.
    let default_json = match role {
        matrix::Role::Dom0 => "conformance-matrix.json",
        matrix::Role::DomU => "conformance-matrix-domu.json",
    };
    let json = args
        .value("--json")
        .map(PathBuf::from)
        .unwrap_or_else(|| guest_build::target_dir().join(default_json));
    let kernel = args.value("--kernel").map(PathBuf::from);
    let cmdline = args.value("--cmdline").unwrap_or_default();
    args.finish()?;
    let kernel = conformance_kernel(kernel)?;
    let columns = matrix::run(&kernel, &cmdline, role)?;
    let table = matrix::render(&columns, false);
    let how = match role {
        matrix::Role::Dom0 => "dom0, direct boot",
        matrix::Role::DomU => "domU, under a Linux dom0 with that Xen's toolstack",
    };
    println!(
        "conformance matrix ({how}; * = result differs between Xen versions, \
         ~ = same result by a different version rule):"
    );
    print!("{table}");
    let write = |path: &std::path::Path, text: &str| {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    };
    write(&json, &matrix::to_json(&columns))?;
    let text_path = json.with_extension("txt");
    write(&text_path, &table)?;
    println!(
        "matrix written to {} and {}",
        json.display(),
        text_path.display()
    );
    if let Some(path) = junit {
        write(&path, &matrix::to_junit(&columns))?;
        println!("JUnit XML written to {}", path.display());
    }
    let all_ok = columns.iter().all(|c| c.ok);
    for column in columns.iter().filter(|c| !c.ok) {
        println!(
            "NOT OK: {} (verdict {}, ended {})",
            column.config.label(),
            column.output.verdict.as_deref().unwrap_or("(none)"),
            column.ending
        );
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A domain name from the kernel file name (xl wants something simple).
fn guest_name(kernel: &std::path::Path) -> String {
    let stem = kernel
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("guest");
    let name: String = stem
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "guest".into()
    } else {
        name
    }
}
