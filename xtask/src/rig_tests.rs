//! The rig tests: guests booted under the real Xen 4.17 in QEMU.
//!
//! Each test asserts on what the guest printed and on how Xen or the
//! toolstack said it ended, never on what we expected to happen. The
//! domU tests share one boot of the Linux dom0.
//!
//! The PVH tests (listed in [`PVH_TESTS`]) mirror PV ones: hello and
//! conformance as a PVH dom0, hello, conformance and the block and HTTP
//! end-to-end tests as PVH domUs. Their domUs join the PV ones' dom0
//! sessions, so they cost no extra boot of Linux. They run when
//! [`pvh_enabled`] says so: by default ([`PVH_BY_DEFAULT`]), unless
//! `--no-pvh` or `PARAVANE_PVH=0`.

use crate::conformance::{self, CaseResult};
use crate::report::{self, success_line};
use crate::test_cmd::{Filter, Tally};
use rig::{Ending, GuestMode, GuestReport, GuestSpec, Rig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The guest applications the rig tests boot.
pub const APPS: &[&str] = &[
    "hello",
    "panic",
    "fail",
    "fault",
    "memstress",
    "sleeper",
    "smpwork",
    "conformance",
    "echo",
    "blkcheck",
    "blkattack",
    "netattack",
    "httpd",
    "tftpd",
    "resumecheck",
    "vifresume",
    "soak",
];

/// Memory given to each test domU, in MiB.
const DOMU_MIB: u32 = 32;

/// Whether the PVH rig tests run when nobody asks for or against them
/// (`PARAVANE_PVH=0` or `--no-pvh` turn them off). Two rig measures keep
/// QEMU's emulated SVM from failing them: PVH domUs get the TSC passed
/// through (`rig::PVH_TSC_MODE`; emulated, a triple fault on
/// `rdtsc` hit about one PVH httpd run in four), and a guest whose
/// triple-fault dump holds Xen's own state (`RIP e008:ffff82d0…`), which
/// no guest code can produce, is run once more
/// (`rig::xen_console::emulated_svm_fault`), saying so in the output.
pub const PVH_BY_DEFAULT: bool = true;

/// The PVH rig tests, by the prefix of the names their results are
/// recorded under.
pub const PVH_TESTS: &[&str] = &[
    "rig pvh dom0 hello",
    "conformance pvh-dom0",
    "rig pvh domU hello",
    "conformance pvh-domU",
    "rig pvh e2e block",
    "rig pvh e2e httpd",
    "rig pvh e2e net",
    "rig pvh e2e hotplug",
    "rig pvh e2e suspend",
    "rig pvh balloon",
    "rig pvh big memory",
];

/// Whether the PVH tests run: `--no-pvh` wins, then `--pvh`, then
/// `PARAVANE_PVH` (`1` on, `0` off), then [`PVH_BY_DEFAULT`].
pub fn pvh_enabled(pvh_flag: bool, no_pvh_flag: bool, env: Option<&str>) -> bool {
    if no_pvh_flag {
        return false;
    }
    if pvh_flag {
        return true;
    }
    match env.map(str::trim) {
        Some("1") => true,
        Some("0") => false,
        _ => PVH_BY_DEFAULT,
    }
}

/// Names (or name prefixes, ending in a space or a colon) under which the
/// rig tests record results, by the run that records them; see
/// [`Filter::selects`]. `cargo xtask test FILTER` starts a run only if
/// the filter selects one of its names.
mod names {
    pub const DOM0_HELLO: &str = "rig dom0 hello: boots, prints start_info, powers off";
    pub const DOM0_PANIC: &str = "rig dom0 panic: crash reported with the message";
    pub const DOM0_CONFORMANCE: &[&str] = &["conformance dom0 ", "rig dom0 conformance"];
    pub const DOM0_FIFO: &[&str] = &["conformance dom0-fifo ", "rig dom0 conformance (FIFO)"];
    pub const PVH_DOM0: &[&str] = &[
        "rig pvh dom0 hello: boots at PHYS32_ENTRY, prints its memory, powers off",
        "conformance pvh-dom0 ",
        "rig pvh dom0 conformance",
    ];
    pub const DOMU_SESSION: &str = "rig domU session";
    pub const E2E_NET: &[&str] = &["rig e2e net: "];
    pub const E2E_HTTPD: &[&str] = &["rig e2e httpd: "];
    pub const PVH_E2E_HTTPD: &[&str] = &["rig pvh e2e httpd: "];
    pub const PVH_E2E_NET: &[&str] = &["rig pvh e2e net: "];
    pub const E2E_UDP: &[&str] = &["rig e2e udp "];
    pub const XEN_420: &[&str] = &[
        "conformance dom0-xen4.20 ",
        "conformance pvh-dom0-xen4.20 ",
        "conformance domU-xen4.20 ",
        "conformance pvh-domU-xen4.20 ",
        "rig xen 4.20",
    ];
    pub const BIG_MEMORY: &[&str] = &["rig big memory: "];
    pub const PVH_BIG_MEMORY: &[&str] = &["rig pvh big memory: "];
    pub const BACKEND: &[&str] = &["rig backend ", "dom0 tool build dom0-backend"];
}

/// The domU session's guests (PV, then PVH if `pvh`), each with the
/// names its checks record under.
fn domu_guests(
    elf: &dyn Fn(&str) -> PathBuf,
    loadgen: &Path,
    pvh: bool,
) -> Vec<(GuestSpec, Vec<&'static str>)> {
    let conformance = conformance_domu(spec("conformance", elf("conformance"), ""));
    let fifo = conformance_domu(spec("conformance-fifo", elf("conformance"), "evtchn=fifo"));
    let mut guests = vec![
        (
            spec("hello", elf("hello"), "greeting=domu-check loglevel=debug"),
            vec!["rig domU hello: boots under xl, console ring, powers off"],
        ),
        (
            spec("panic", elf("panic"), "what=domu-planned"),
            vec!["rig domU panic: crash reported with the message"],
        ),
        (
            spec("fail", elf("fail"), "reason=test"),
            vec!["rig domU fail: failure line, crash reported"],
        ),
        (
            spec("fault", elf("fault"), ""),
            vec!["rig domU fault: page-fault report, crash reported"],
        ),
        (
            spec("memstress", elf("memstress"), ""),
            vec![
                "rig domU memstress: 4x memory churned, free frames unchanged, balloon round trip",
            ],
        ),
        (
            spec("sleeper", elf("sleeper"), "seconds=2"),
            vec!["rig domU sleeper: 2 s asleep is blocked time in Xen's runstate"],
        ),
        (
            conformance,
            vec!["conformance domU ", "rig domU conformance"],
        ),
        (
            fifo,
            vec!["conformance domU-fifo ", "rig domU conformance (FIFO)"],
        ),
        (smp4_guest(elf, GuestMode::Pv), vec![SMP4_PV]),
        (
            crate::rig_smpwork::guest(elf, GuestMode::Pv),
            vec![crate::rig_smpwork::PV],
        ),
        // blkcheck against Linux's blkback on a 64 MiB image dom0 fills.
        (
            crate::e2e_block::held_guest_in(&elf("blkcheck"), loadgen, GuestMode::Pv),
            vec!["rig e2e block: "],
        ),
        // Devices that come and go: a vif detached and attached again
        // under httpd, a disk detached under blkcheck.
        (
            crate::e2e_hotplug::vif_guest(&elf("httpd"), GuestMode::Pv),
            vec!["rig e2e hotplug: vif"],
        ),
        (
            crate::e2e_hotplug::vbd_guest(&elf("blkcheck"), GuestMode::Pv),
            vec!["rig e2e hotplug: vbd"],
        ),
        (
            crate::e2e_hotplug::resume_guest(&elf("vifresume"), GuestMode::Pv),
            vec!["rig e2e hotplug: resume"],
        ),
        // xl mem-set down and up while memstress keeps its pattern.
        (
            crate::e2e_balloon::guest(&elf("memstress"), GuestMode::Pv),
            vec!["rig balloon: "],
        ),
        // Both devices for a while, detached and attached again, then
        // the guest's own accounting must not have grown (a small plan;
        // `cargo xtask soak` runs the long one).
        (
            crate::soak::guest(
                &elf("soak"),
                loadgen,
                GuestMode::Pv,
                &crate::soak::Plan::SMOKE,
            ),
            vec!["rig soak: "],
        ),
    ];
    guests.extend(suspend_guests(elf, GuestMode::Pv));
    if pvh {
        guests.extend(pvh_domu_specs(elf, loadgen));
    }
    // xl shutdown, xl reboot, sysrq (see e2e_shutdown).
    guests.extend(crate::e2e_shutdown::domu_guests(elf, pvh));
    guests
}

/// Whether `filter` selects any rig test (with the PVH ones if `pvh`).
pub fn selects(filter: &Filter, pvh: bool) -> bool {
    let elf = |_: &str| PathBuf::new();
    let mut all: Vec<&str> = vec![names::DOM0_HELLO, names::DOM0_PANIC, names::DOMU_SESSION];
    for group in [
        names::DOM0_CONFORMANCE,
        names::DOM0_FIFO,
        names::E2E_NET,
        names::E2E_HTTPD,
        names::E2E_UDP,
        names::BIG_MEMORY,
        names::XEN_420,
        names::BACKEND,
        crate::serve_test::NAMES,
        crate::rig_httpd_smp::PV_NAMES,
        crate::rig_vcpu_set::PV_NAMES,
    ] {
        all.extend(group);
    }
    if pvh {
        all.extend(crate::rig_httpd_smp::PVH_NAMES);
        all.extend(crate::rig_vcpu_set::PVH_NAMES);
        all.extend(names::PVH_BIG_MEMORY);
        all.extend(names::PVH_DOM0);
        all.extend(names::PVH_E2E_HTTPD);
        all.extend(names::PVH_E2E_NET);
    }
    for (_, guest_names) in domu_guests(&elf, Path::new(""), pvh) {
        all.extend(guest_names);
    }
    filter.selects(&all)
}

/// Runs the rig tests the tally's filter selects (all of them by
/// default), recording each in `tally`; the PVH ones too if `pvh`.
pub fn run(rig: &Rig, guests: &[(&str, PathBuf)], loadgen: &Path, tally: &mut Tally, pvh: bool) {
    let elf = |app: &str| {
        guests
            .iter()
            .find(|(name, _)| *name == app)
            .map(|(_, path)| path.clone())
            .expect("every app in APPS was built")
    };
    let filter = tally.filter().clone();
    let timeout = Duration::from_secs(60);

    // dom0: booted directly by Xen, no toolstack.
    if filter.selects(&[names::DOM0_HELLO]) {
        let cmdline = "greeting=dom0-check loglevel=debug";
        let result = rig
            .boot_dom0(&elf("hello"), cmdline, timeout)
            .map_err(|e| e.to_string())
            .and_then(|guest| {
                check_hello(
                    &guest,
                    "dom0",
                    cmdline,
                    rig.direct_dom0_memory_mib,
                    GuestMode::Pv,
                )
            });
        tally.record(names::DOM0_HELLO, result);
    }

    if filter.selects(&[names::DOM0_PANIC]) {
        let result = rig
            .boot_dom0(&elf("panic"), "what=dom0-planned", timeout)
            .map_err(|e| e.to_string())
            .and_then(|guest| check_panic(&guest, "dom0-planned"));
        tally.record(names::DOM0_PANIC, result);
    }

    if filter.selects(names::DOM0_CONFORMANCE) {
        match rig.boot_dom0(&elf("conformance"), "", DOM0_CONFORMANCE_LIMIT) {
            Ok(guest) => record_conformance(tally, "dom0", &guest),
            Err(e) => tally.record("rig dom0 conformance", Err(e.to_string())),
        }
    }
    if filter.selects(names::DOM0_FIFO) {
        match rig.boot_dom0(&elf("conformance"), "evtchn=fifo", DOM0_CONFORMANCE_LIMIT) {
            Ok(guest) => record_conformance(tally, "dom0-fifo", &guest),
            Err(e) => tally.record("rig dom0 conformance (FIFO)", Err(e.to_string())),
        }
    }
    if !pvh {
        println!(
            "SKIP the PVH rig tests ({}): run `cargo xtask test --pvh` or set PARAVANE_PVH=1",
            PVH_TESTS.join(", ")
        );
    } else if filter.selects(names::PVH_DOM0) {
        pvh_dom0_tests(rig, &elf, tally);
    }

    // The same suite as dom0 and as a domU on Debian trixie's Xen 4.20
    // (PV, and PVH with the PVH tests): what changed between the
    // versions is the suite's version rules' business, so all must pass.
    // (With `--xen 4.20` every rig test already runs on 4.20.)
    if filter.selects(names::XEN_420) && rig.xen_version != rig::XenVersion::V4_20 {
        xen420_tests(&elf, tally, pvh);
    }

    // domUs: one Linux dom0 boot for all of them (those the filter
    // selects).
    let specs: Vec<GuestSpec> = domu_guests(&elf, loadgen, pvh)
        .into_iter()
        .filter(|(_, guest_names)| filter.selects(guest_names))
        .map(|(spec, _)| spec)
        .collect();
    if !specs.is_empty() {
        domu_session(rig, &specs, tally, pvh);
    }

    // A domU bigger than 4 GiB, in a session of its own: the machine
    // must be sized for it, which would slow every other session.
    let mut big_modes = Vec::new();
    if filter.selects(names::BIG_MEMORY) {
        big_modes.push(GuestMode::Pv);
    }
    if pvh && filter.selects(names::PVH_BIG_MEMORY) {
        big_modes.push(GuestMode::Pvh);
    }
    if !big_modes.is_empty() {
        for (mode, name, result) in crate::e2e_balloon::run_big(rig, &elf("memstress"), &big_modes)
        {
            let name = match mode {
                GuestMode::Pv => format!("rig {name}"),
                GuestMode::Pvh => format!("rig pvh {name}"),
            };
            tally.record(&name, result);
        }
    }

    // blkfront against the rig's own backend (`dom0-backend`): by the
    // book, then each scripted attack, one guest each, in one dom0
    // session, PV and (if `pvh`) PVH.
    if filter.selects(names::BACKEND) {
        backend_session(rig, &elf, tally, pvh);
    }

    // End to end over a vif, in one dom0 session: first `httpd` (100
    // requests, 10 s idle, 64 clients at once), then `echo` (8 MiB, 10 s
    // idle, 8 connections at once); the PV and PVH guests of each side by
    // side.
    network_session(rig, &elf, loadgen, tally, pvh);

    // `cargo xtask run --serve` as a person runs it: the page in
    // headless chromium from the host, then Ctrl-C (its own dom0 boot:
    // the command is the thing under test).
    if filter.selects(crate::serve_test::NAMES) {
        crate::serve_test::run(tally);
    }

    // End to end over UDP, configured by DHCP: dom0's udhcpd leases the
    // `tftpd` guest an address, then dom0 moves files through it.
    if filter.selects(names::E2E_UDP) {
        for (name, result) in crate::e2e_udp::run(rig, &elf("tftpd")) {
            tally.record(&format!("rig {name}"), result);
        }
    }
}

/// The network end-to-end tests the filter selects, in one dom0
/// session: the `httpd` guests side by side, then the `echo` guests side
/// by side, then `httpd vcpus=2`, then httpd under `xl vcpu-set` (see
/// [`crate::e2e_httpd`], [`crate::e2e_net`], [`crate::rig_httpd_smp`],
/// [`crate::rig_vcpu_set`]).
pub fn network_session(
    rig: &Rig,
    elf: &dyn Fn(&str) -> PathBuf,
    loadgen: &Path,
    tally: &mut Tally,
    pvh: bool,
) {
    let filter = tally.filter().clone();
    let pick = |pv: &[&str], pvh_names: &[&str]| -> Vec<GuestMode> {
        let mut modes = Vec::new();
        if filter.selects(pv) {
            modes.push(GuestMode::Pv);
        }
        if pvh && filter.selects(pvh_names) {
            modes.push(GuestMode::Pvh);
        }
        modes
    };
    let httpd_modes = pick(names::E2E_HTTPD, names::PVH_E2E_HTTPD);
    let net_modes = pick(names::E2E_NET, names::PVH_E2E_NET);
    let mut httpd: Vec<GuestSpec> = httpd_modes
        .iter()
        .map(|&mode| crate::e2e_httpd::test_spec(&elf("httpd"), loadgen, mode))
        .collect();
    crate::e2e_httpd::side_by_side(&mut httpd);
    let mut net: Vec<GuestSpec> = net_modes
        .iter()
        .map(|&mode| crate::e2e_net::test_spec(&elf("echo"), loadgen, mode))
        .collect();
    crate::e2e_httpd::side_by_side(&mut net);
    // httpd on 2 vCPUs, its 2 queues on both (PV and PVH side by side,
    // after the others: the load alone, ~30 s).
    let smp_modes = pick(
        crate::rig_httpd_smp::PV_NAMES,
        crate::rig_httpd_smp::PVH_NAMES,
    );
    let mut smp: Vec<GuestSpec> = smp_modes
        .iter()
        .map(|&mode| crate::rig_httpd_smp::spec(&elf("httpd"), loadgen, mode))
        .collect();
    crate::e2e_httpd::side_by_side(&mut smp);
    // httpd following `xl vcpu-set` (PV and PVH side by side, last).
    let vcpu_set_modes = pick(
        crate::rig_vcpu_set::PV_NAMES,
        crate::rig_vcpu_set::PVH_NAMES,
    );
    let mut vcpu_set: Vec<GuestSpec> = vcpu_set_modes
        .iter()
        .map(|&mode| crate::rig_vcpu_set::spec(&elf("httpd"), loadgen, mode))
        .collect();
    crate::e2e_httpd::side_by_side(&mut vcpu_set);
    let specs: Vec<GuestSpec> = httpd
        .iter()
        .chain(&net)
        .chain(&smp)
        .chain(&vcpu_set)
        .cloned()
        .collect();
    if specs.is_empty() {
        return;
    }
    let Some(session) = domu_session_run(rig, &specs, tally, "rig e2e network session") else {
        return;
    };
    for (mode, spec) in httpd_modes.iter().zip(&httpd) {
        for (name, result) in crate::e2e_httpd::checks_of(&session, &spec.name, *mode) {
            // Whole literals, so the ports link check can find the names.
            let name = match mode {
                GuestMode::Pv => format!("rig e2e httpd: {name}"),
                GuestMode::Pvh => format!("rig pvh e2e httpd: {name}"),
            };
            tally.record(&name, result);
        }
    }
    for &mode in &smp_modes {
        for (name, result) in crate::rig_httpd_smp::checks_of(&session, mode) {
            tally.record(&name, result);
        }
    }
    for &mode in &vcpu_set_modes {
        for (name, result) in crate::rig_vcpu_set::checks_of(&session, mode) {
            tally.record(&name, result);
        }
    }
    for (mode, spec) in net_modes.iter().zip(&net) {
        for (name, result) in crate::e2e_net::checks_of(&session, &spec.name, *mode) {
            let name = match mode {
                GuestMode::Pv => format!("rig e2e net: {name}"),
                GuestMode::Pvh => format!("rig pvh e2e net: {name}"),
            };
            tally.record(&name, result);
        }
    }
}

/// The backend tests ([`crate::e2e_backend`], blkif and netif): builds `dom0-backend`,
/// runs every case as a PV guest (and a PVH one if `pvh`) in one dom0
/// session, records one result per case and mode (`rig backend CASE (PV)`).
fn backend_session(rig: &Rig, elf: &dyn Fn(&str) -> PathBuf, tally: &mut Tally, pvh: bool) {
    let backend = match crate::guest_build::build_dom0_backend() {
        Ok(path) => {
            tally.record("dom0 tool build dom0-backend", Ok(()));
            path
        }
        Err(e) => {
            tally.record_unfiltered("dom0 tool build dom0-backend", Err(e));
            return;
        }
    };
    let (blkcheck, blkattack, netattack) = (elf("blkcheck"), elf("blkattack"), elf("netattack"));
    let guests = crate::e2e_backend::Guests {
        blkcheck: &blkcheck,
        blkattack: &blkattack,
        netattack: &netattack,
    };
    let mut modes = vec![GuestMode::Pv];
    if pvh {
        modes.push(GuestMode::Pvh);
    }
    let mut specs: Vec<GuestSpec> = modes
        .iter()
        .flat_map(|&mode| {
            crate::e2e_backend::cases()
                .into_iter()
                .map(move |case| (case, mode))
        })
        .filter(|(case, mode)| {
            tally
                .filter()
                .matches(&crate::e2e_backend::test_name(case, *mode))
        })
        .map(|(case, mode)| crate::e2e_backend::spec(case, &guests, &backend, mode))
        .collect();
    use crate::e2e_backend_linux as linux;
    let with_linux = [linux::BLK_TEST, linux::NET_TEST]
        .iter()
        .any(|name| tally.filter().matches(name));
    if with_linux {
        match linux::guests(rig, &backend) {
            Ok(guests) => specs.extend(guests),
            Err(e) => {
                tally.record(linux::BLK_TEST, Err(e.clone()));
                tally.record(linux::NET_TEST, Err(e));
            }
        }
    }
    let Some(session) = domu_session_run(rig, &specs, tally, "rig backend session") else {
        return;
    };
    for (name, result) in crate::e2e_backend::results(&session.guests, &modes) {
        tally.record(&name, result);
    }
    if with_linux && specs.iter().any(|s| s.name == linux::BLK_NAME) {
        for (name, result) in linux::results(&session.guests) {
            tally.record(&name, result);
        }
    }
}

/// Runs `specs` in one boot of the Linux dom0 and prints its timing; a
/// session that fails as a whole is recorded as `failure_name`'s failure
/// (and gives `None`). The whole session's limit leaves room for every
/// guest's watchdog: guests side by side take as long as the slowest.
fn domu_session_run(
    rig: &Rig,
    specs: &[GuestSpec],
    tally: &mut Tally,
    failure_name: &str,
) -> Option<rig::Dom0Session> {
    let limit = Duration::from_secs(120) + specs.iter().map(|g| g.timeout).sum::<Duration>();
    match rig.run_domus(specs, limit) {
        Ok(session) => {
            report::print_session_timing(&session);
            Some(session)
        }
        Err(e) => {
            tally.record_unfiltered(failure_name, Err(e.to_string()));
            None
        }
    }
}

/// The domU session: `specs` (a selection of [`domu_guests`]) in one
/// boot of the Linux dom0, and their checks.
fn domu_session(rig: &Rig, specs: &[GuestSpec], tally: &mut Tally, pvh: bool) {
    let Some(session) = domu_session_run(rig, specs, tally, names::DOMU_SESSION) else {
        return;
    };
    let find = |name: &str| -> Result<&GuestReport, String> {
        session
            .guests
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| format!("no report for guest {name}"))
    };
    let result = find("hello").and_then(|g| {
        check_hello(
            g,
            "domU",
            "greeting=domu-check loglevel=debug",
            DOMU_MIB,
            GuestMode::Pv,
        )
    });
    tally.record(
        "rig domU hello: boots under xl, console ring, powers off",
        result,
    );

    let result = find("panic").and_then(|g| check_panic(g, "domu-planned"));
    tally.record("rig domU panic: crash reported with the message", result);

    let result = find("fail").and_then(|g| {
        expect_ending(g, Ending::Crash)?;
        expect_line(g, |l| {
            l == "Paravane: app fail exited: failure: failing on purpose (cmdline \"reason=test\")"
        }, "the failure line")
    });
    tally.record("rig domU fail: failure line, crash reported", result);

    let result = find("fault").and_then(|g| {
        expect_line(
            g,
            |l| l.starts_with("FATAL EXCEPTION: vector 14 (#PF page fault)"),
            "the exception report",
        )?;
        expect_line(
            g,
            |l| l.trim() == "page fault address 0x6000deadb000: not present on read in kernel mode",
            "the faulting address",
        )?;
        expect_line(g, |l| l.trim().starts_with("#0 0x"), "a backtrace")?;
        expect_ending(g, Ending::Crash)
    });
    tally.record("rig domU fault: page-fault report, crash reported", result);

    let result = find("memstress").and_then(check_memstress);
    tally.record(
        "rig domU memstress: 4x memory churned, free frames unchanged, balloon round trip",
        result,
    );

    let result = find("sleeper").and_then(|g| {
        expect_line(
            g,
            |l| l.starts_with("sleeper: slept "),
            "the sleeper's accounting line",
        )?;
        expect_line(g, |l| l == success_line("sleeper"), "the success line")?;
        expect_ending(g, Ending::Poweroff)
    });
    tally.record(
        "rig domU sleeper: 2 s asleep is blocked time in Xen's runstate",
        result,
    );

    match find("conformance") {
        Ok(guest) => record_conformance(tally, "domU", guest),
        Err(e) => tally.record("rig domU conformance", Err(e)),
    }
    match find("conformance-fifo") {
        Ok(guest) => record_conformance(tally, "domU-fifo", guest),
        Err(e) => tally.record("rig domU conformance (FIFO)", Err(e)),
    }
    let result = find(&smp4_name(GuestMode::Pv)).and_then(check_smp4);
    tally.record(SMP4_PV, result);
    let result = find(&crate::rig_smpwork::name(GuestMode::Pv)).and_then(crate::rig_smpwork::check);
    tally.record(crate::rig_smpwork::PV, result);

    match find(crate::e2e_block::NAME) {
        Ok(guest) => {
            for (name, result) in crate::e2e_block::check(guest) {
                tally.record(&format!("rig {name}"), result);
            }
        }
        Err(e) => tally.record("rig e2e block", Err(e)),
    }
    match find(crate::e2e_suspend::guest_name(GuestMode::Pv)) {
        Ok(guest) => {
            for (name, result) in crate::e2e_suspend::checks(guest) {
                tally.record(&format!("rig {name}"), result);
            }
        }
        Err(e) => tally.record("rig e2e suspend", Err(e)),
    }
    match find(crate::e2e_suspend::stream_name(GuestMode::Pv)) {
        Ok(guest) => {
            for (name, result) in crate::e2e_suspend::stream_checks(guest) {
                tally.record(&format!("rig {name}"), result);
            }
        }
        Err(e) => tally.record("rig e2e suspend: stream", Err(e)),
    }
    record_hotplug(tally, &find, GuestMode::Pv);
    record_suspend_block(tally, &find, GuestMode::Pv);
    record_balloon(tally, &find, GuestMode::Pv);
    match find(crate::soak::name(GuestMode::Pv)) {
        Ok(guest) => {
            let (table, checks) = crate::soak::check(guest, &crate::soak::Plan::SMOKE);
            println!("rig soak: the guest's accounting, before and after\n{table}");
            for (name, result) in checks {
                tally.record(&format!("rig {name}"), result);
            }
        }
        Err(e) => tally.record("rig soak: run", Err(e)),
    }
    if pvh {
        pvh_domu_checks(tally, &find);
    }
    let mut shutdown_modes = vec![GuestMode::Pv];
    if pvh {
        shutdown_modes.push(GuestMode::Pvh);
    }
    for mode in shutdown_modes {
        for (name, result) in crate::e2e_shutdown::checks(&find, mode) {
            tally.record(&name, result);
        }
    }

    // The consoles go into the log, so a failure above can be read there.
    for guest in &session.guests {
        report::print_guest(guest);
    }
}

/// How long a direct dom0 conformance run may take: it needs 2-4 s, so
/// a hang is reported (with Xen's dump of dom0's registers) well before
/// CI's own limit.
const DOM0_CONFORMANCE_LIMIT: Duration = Duration::from_secs(90);

/// The command line of the PVH hello guests (dom0 and domU).
const PVH_HELLO_CMDLINE: &str = "greeting=pvh-check loglevel=debug";

/// hello and conformance booted directly as a PVH dom0.
fn pvh_dom0_tests(rig: &Rig, elf: &dyn Fn(&str) -> PathBuf, tally: &mut Tally) {
    let result = rig
        .boot_dom0_mode(
            &elf("hello"),
            PVH_HELLO_CMDLINE,
            Duration::from_secs(60),
            GuestMode::Pvh,
        )
        .map_err(|e| e.to_string())
        .and_then(|guest| {
            check_hello(
                &guest,
                "dom0",
                PVH_HELLO_CMDLINE,
                rig.direct_dom0_memory_mib,
                GuestMode::Pvh,
            )
        });
    tally.record(
        "rig pvh dom0 hello: boots at PHYS32_ENTRY, prints its memory, powers off",
        result,
    );
    match rig.boot_dom0_mode(
        &elf("conformance"),
        "",
        DOM0_CONFORMANCE_LIMIT,
        GuestMode::Pvh,
    ) {
        Ok(guest) => record_conformance(tally, "pvh-dom0", &guest),
        Err(e) => tally.record("rig pvh dom0 conformance", Err(e.to_string())),
    }
}

/// The conformance suite on Xen 4.20 (its hypervisor and toolstack
/// fetched from Debian trixie into the rig's cache the first time),
/// booted directly as dom0, then as a domU of a Linux dom0 running 4.20's
/// xl (one session); PV and, with `pvh`, PVH.
fn xen420_tests(elf: &dyn Fn(&str) -> PathBuf, tally: &mut Tally, pvh: bool) {
    let rig = match Rig::prepare_xen(rig::XenVersion::V4_20) {
        Ok(rig) => rig,
        Err(e) => {
            tally.record_unfiltered(
                "rig xen 4.20: the hypervisor from Debian trixie",
                Err(e.to_string()),
            );
            return;
        }
    };
    let mut modes = vec![(GuestMode::Pv, "dom0-xen4.20")];
    if pvh {
        modes.push((GuestMode::Pvh, "pvh-dom0-xen4.20"));
    }
    for (mode, role) in modes {
        match rig.boot_dom0_mode(&elf("conformance"), "", DOM0_CONFORMANCE_LIMIT, mode) {
            Ok(guest) => record_conformance(tally, role, &guest),
            Err(e) => tally.record(
                &format!("rig xen 4.20 {role} conformance"),
                Err(e.to_string()),
            ),
        }
    }
    let mut domus = vec![(GuestMode::Pv, "domU-xen4.20")];
    if pvh {
        domus.push((GuestMode::Pvh, "pvh-domU-xen4.20"));
    }
    let specs: Vec<GuestSpec> = domus
        .iter()
        .map(|&(mode, role)| conformance_domu(spec(role, elf("conformance"), "").with_mode(mode)))
        .collect();
    let Some(session) = domu_session_run(&rig, &specs, tally, "rig xen 4.20 domU session") else {
        return;
    };
    for (_, role) in domus {
        match session.guests.iter().find(|g| g.name == role) {
            Some(guest) => record_conformance(tally, role, guest),
            None => tally.record(
                &format!("conformance {role} verdict"),
                Err(format!("no report for guest {role}")),
            ),
        }
    }
}

/// The PVH domUs that join the PV ones' dom0 session, with the names
/// their checks record under.
fn pvh_domu_specs(
    elf: &dyn Fn(&str) -> PathBuf,
    loadgen: &Path,
) -> Vec<(GuestSpec, Vec<&'static str>)> {
    let conformance =
        conformance_domu(spec("pvh-conformance", elf("conformance"), "").with_mode(GuestMode::Pvh));
    vec![
        (
            spec("pvh-hello", elf("hello"), PVH_HELLO_CMDLINE).with_mode(GuestMode::Pvh),
            vec!["rig pvh domU hello: boots under xl as type=\"pvh\", console ring, powers off"],
        ),
        (
            GuestSpec {
                // The post-mortem reads its memory with the load generator.
                dom0_tools: vec![loadgen.to_path_buf()],
                ..spec("pvh-triple", elf("fault"), "triple=1").with_mode(GuestMode::Pvh)
            },
            vec![PVH_POST_MORTEM],
        ),
        (
            conformance,
            vec!["conformance pvh-domU ", "rig pvh domU conformance"],
        ),
        (smp4_guest(elf, GuestMode::Pvh), vec![SMP4_PVH]),
        (
            crate::rig_smpwork::guest(elf, GuestMode::Pvh),
            vec![crate::rig_smpwork::PVH],
        ),
        (
            crate::e2e_block::held_guest_in(&elf("blkcheck"), loadgen, GuestMode::Pvh),
            vec!["rig pvh e2e block: "],
        ),
        (
            crate::e2e_hotplug::vif_guest(&elf("httpd"), GuestMode::Pvh),
            vec!["rig pvh e2e hotplug: vif"],
        ),
        (
            crate::e2e_hotplug::vbd_guest(&elf("blkcheck"), GuestMode::Pvh),
            vec!["rig pvh e2e hotplug: vbd"],
        ),
        (
            crate::e2e_hotplug::resume_guest(&elf("vifresume"), GuestMode::Pvh),
            vec!["rig pvh e2e hotplug: resume"],
        ),
        (
            crate::e2e_balloon::guest(&elf("memstress"), GuestMode::Pvh),
            vec!["rig pvh balloon: "],
        ),
    ]
    .into_iter()
    .chain(suspend_guests(elf, GuestMode::Pvh))
    .collect()
}

/// The suspend guests in `mode`, with the names their checks record
/// under: resumecheck moved by xl save + restore and by xl migrate,
/// echo moved under two 16 MiB streams, blkcheck reading across a
/// checkpoint and a save + restore.
fn suspend_guests(
    elf: &dyn Fn(&str) -> PathBuf,
    mode: GuestMode,
) -> Vec<(GuestSpec, Vec<&'static str>)> {
    let names: [&[&'static str]; 3] = match mode {
        GuestMode::Pv => [
            &["rig e2e suspend: "],
            &[
                "rig e2e suspend: a 16 MiB",
                "rig e2e suspend: the echo guest",
                "rig e2e suspend: the twice-moved",
            ],
            &["rig e2e suspend block: "],
        ],
        GuestMode::Pvh => [
            &["rig pvh e2e suspend: "],
            &[
                "rig pvh e2e suspend: a 16 MiB",
                "rig pvh e2e suspend: the echo guest",
                "rig pvh e2e suspend: the twice-moved",
            ],
            &["rig pvh e2e suspend block: "],
        ],
    };
    let specs = [
        crate::e2e_suspend::test_spec(&elf("resumecheck"), mode),
        crate::e2e_suspend::stream_spec(&elf("echo"), mode),
        crate::e2e_suspend_block::guest(&elf("blkcheck"), mode),
    ];
    specs
        .into_iter()
        .zip(names)
        .map(|(spec, names)| (spec, names.to_vec()))
        .collect()
}

/// The checks of [`pvh_domu_specs`]' guests.
/// The rig's post-mortem of a PVH guest that triple-faults on purpose.
const PVH_POST_MORTEM: &str =
    "rig pvh domU triple fault: the preserved domain's HVM state is kept (xen-hvmctx)";

/// The post-mortem check: Xen reported the triple fault, and the guest's
/// log holds `xen-hvmctx`'s dump of it, whose CPU record has the empty
/// IDT the guest loaded (limit 0), and `loadgen postmortem`'s verdict,
/// which names that IDT as what stopped the delivery.
fn check_post_mortem(guest: &GuestReport) -> Result<(), String> {
    expect_line(
        guest,
        |l| l == "fault: triple-faulting on purpose (an empty IDT, then int3)",
        "the guest's line",
    )?;
    if !guest.evidence.contains("Triple fault") {
        return Err(format!(
            "no triple fault in the evidence: {}",
            guest.evidence
        ));
    }
    let log = std::fs::read_to_string(&guest.log).map_err(|e| e.to_string())?;
    let dump: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("postmortem: "))
        .collect();
    if !dump
        .iter()
        .any(|l| l.contains("triple-faulted; its HVM state"))
    {
        return Err(format!("no post-mortem in {}", guest.log.display()));
    }
    // `idtr        (          00000000 +       0000)`: base 0, limit 0.
    let idtr: String = dump
        .iter()
        .find(|l| l.trim_start().starts_with("idtr"))
        .ok_or("no idtr in xen-hvmctx's dump")?
        .split_whitespace()
        .collect();
    if idtr != "idtr(00000000+0000)" {
        return Err(format!("idtr is not the empty table: {idtr:?}"));
    }
    // `loadgen postmortem` read the guest's memory and found what the
    // guest did: the callback vector's gate is past the empty IDT.
    let verdict = dump
        .iter()
        .find(|l| l.starts_with("verdict: "))
        .ok_or("no verdict from loadgen postmortem")?;
    if !verdict.contains("vector 0xf3 is past the IDT's limit 0x0") {
        return Err(format!(
            "the verdict does not name the empty IDT: {verdict:?}"
        ));
    }
    Ok(())
}

fn pvh_domu_checks<'a>(tally: &mut Tally, find: &dyn Fn(&str) -> Result<&'a GuestReport, String>) {
    tally.record(
        PVH_POST_MORTEM,
        find("pvh-triple").and_then(check_post_mortem),
    );
    let result = find("pvh-hello")
        .and_then(|g| check_hello(g, "domU", PVH_HELLO_CMDLINE, DOMU_MIB, GuestMode::Pvh));
    tally.record(
        "rig pvh domU hello: boots under xl as type=\"pvh\", console ring, powers off",
        result,
    );
    match find("pvh-conformance") {
        Ok(guest) => record_conformance(tally, "pvh-domU", guest),
        Err(e) => tally.record("rig pvh domU conformance", Err(e)),
    }
    let result = find(&smp4_name(GuestMode::Pvh)).and_then(check_smp4);
    tally.record(SMP4_PVH, result);
    let result =
        find(&crate::rig_smpwork::name(GuestMode::Pvh)).and_then(crate::rig_smpwork::check);
    tally.record(crate::rig_smpwork::PVH, result);
    match find(&crate::e2e_block::name(GuestMode::Pvh)) {
        Ok(guest) => {
            for (name, result) in crate::e2e_block::check(guest) {
                tally.record(&format!("rig pvh {name}"), result);
            }
        }
        Err(e) => tally.record("rig pvh e2e block", Err(e)),
    }
    match find(crate::e2e_suspend::guest_name(GuestMode::Pvh)) {
        Ok(guest) => {
            for (name, result) in crate::e2e_suspend::checks(guest) {
                tally.record(&format!("rig pvh {name}"), result);
            }
        }
        Err(e) => tally.record("rig pvh e2e suspend", Err(e)),
    }
    match find(crate::e2e_suspend::stream_name(GuestMode::Pvh)) {
        Ok(guest) => {
            for (name, result) in crate::e2e_suspend::stream_checks(guest) {
                tally.record(&format!("rig pvh {name}"), result);
            }
        }
        Err(e) => tally.record("rig pvh e2e suspend: stream", Err(e)),
    }
    record_hotplug(tally, find, GuestMode::Pvh);
    record_suspend_block(tally, find, GuestMode::Pvh);
    record_balloon(tally, find, GuestMode::Pvh);
}

/// What the rig tests of a guest in `mode` are named after.
fn mode_prefix(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "rig",
        GuestMode::Pvh => "rig pvh",
    }
}

/// The checks of blkcheck across save and restore
/// ([`crate::e2e_suspend_block`]) in `mode`, if the session ran it.
fn record_suspend_block<'a>(
    tally: &mut Tally,
    find: &dyn Fn(&str) -> Result<&'a GuestReport, String>,
    mode: GuestMode,
) {
    let prefix = mode_prefix(mode);
    match find(crate::e2e_suspend_block::name(mode)) {
        Ok(guest) => {
            for (name, result) in crate::e2e_suspend_block::checks(guest) {
                tally.record(&format!("{prefix} {name}"), result);
            }
        }
        Err(e) => tally.record(&format!("{prefix} e2e suspend block"), Err(e)),
    }
}

/// One hot-plug guest's checks: named results.
type HotplugCheck = fn(&GuestReport) -> Vec<(String, Result<(), String>)>;

/// The hot-plug guests' checks ([`crate::e2e_hotplug`]) in `mode`, for
/// those of them the session ran.
fn record_hotplug<'a>(
    tally: &mut Tally,
    find: &dyn Fn(&str) -> Result<&'a GuestReport, String>,
    mode: GuestMode,
) {
    let prefix = mode_prefix(mode);
    let filter = tally.filter().clone();
    let guests: [(&str, HotplugCheck, &str); 3] = [
        (
            crate::e2e_hotplug::vif_name(mode),
            crate::e2e_hotplug::check_vif,
            "vif",
        ),
        (
            crate::e2e_hotplug::vbd_name(mode),
            crate::e2e_hotplug::check_vbd,
            "vbd",
        ),
        (
            crate::e2e_hotplug::resume_name(mode),
            crate::e2e_hotplug::check_resume,
            "resume",
        ),
    ];
    for (name, check, kind) in guests {
        let group = format!("{prefix} e2e hotplug: {kind}");
        if !filter.selects(&[group.as_str()]) {
            continue;
        }
        match find(name) {
            Ok(guest) => {
                for (check_name, result) in check(guest) {
                    tally.record(&format!("{prefix} {check_name}"), result);
                }
            }
            Err(e) => tally.record(&group, Err(e)),
        }
    }
}

/// The memory-target checks of the balloon guest in `mode`.
fn record_balloon<'a>(
    tally: &mut Tally,
    find: &dyn Fn(&str) -> Result<&'a GuestReport, String>,
    mode: GuestMode,
) {
    let prefix = mode_prefix(mode);
    match find(&crate::e2e_balloon::name(mode)) {
        Ok(guest) => {
            for (name, result) in crate::e2e_balloon::check(guest) {
                tally.record(&format!("{prefix} {name}"), result);
            }
        }
        Err(e) => tally.record(&format!("{prefix} balloon"), Err(e)),
    }
}

/// Reads memstress's own figures back and checks them here too.
fn check_memstress(guest: &GuestReport) -> Result<(), String> {
    let numbers = |prefix: &str| -> Result<Vec<u64>, String> {
        let line = guest
            .console
            .iter()
            .find(|l| l.starts_with(prefix))
            .ok_or_else(|| format!("memstress: no `{prefix}` line"))?;
        Ok(line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect())
    };
    let churn = numbers("memstress: allocated ")?;
    if churn.get(2).is_none_or(|&times| times < 4) {
        return Err(format!("churned less than 4x the domain: {churn:?}"));
    }
    let frames = numbers("memstress: frames before ")?;
    if frames.len() < 2 || frames[0] != frames[1] {
        return Err(format!("free frames changed: {frames:?}"));
    }
    let balloon = numbers("memstress: balloon frames before ")?;
    if balloon.len() < 2 || balloon[0] != balloon[1] {
        return Err(format!(
            "balloon round trip changed free frames: {balloon:?}"
        ));
    }
    expect_line(
        guest,
        |l| l == success_line("memstress"),
        "the success line",
    )?;
    expect_ending(guest, Ending::Poweroff)
}

/// Counts each conformance check the guest ran as one test, plus the
/// verdict: `Test result: SUCCESS` and a poweroff reported by Xen.
fn record_conformance(tally: &mut Tally, role: &str, guest: &GuestReport) {
    let output = conformance::parse(&guest.console);
    for case in &output.cases {
        let name = format!("conformance {role} {}", case.name);
        match &case.result {
            CaseResult::Pass => tally.record(&name, Ok(())),
            CaseResult::Fail(why) => tally.record(&name, Err(why.clone())),
            CaseResult::Skip(why) => println!("SKIP {name}: {why}"),
        }
    }
    let verdict = output.verdict.as_deref();
    let result = if output.cases.len() < 20 {
        Err(format!("only {} checks ran", output.cases.len()))
    } else if verdict != Some("SUCCESS") {
        Err(format!("verdict {verdict:?}; {}", how_it_ended(guest)))
    } else {
        expect_ending(guest, Ending::Poweroff)
    };
    tally.record(&format!("conformance {role} verdict"), result);
}

/// A domU conformance guest: 64 MiB, and two vCPUs (the kernel brings
/// up only the first; the suite's `vcpu` checks look at the second).
/// The vCPUs of the SMP bring-up guests.
const SMP4_VCPUS: u32 = 4;
/// The PV SMP bring-up check's name.
const SMP4_PV: &str =
    "rig domU conformance smp vcpus=4: every vCPU brought up, the smp checks pass";
/// The PVH one's.
const SMP4_PVH: &str =
    "rig pvh domU conformance smp vcpus=4: every vCPU brought up, the smp checks pass";

fn smp4_name(mode: GuestMode) -> String {
    match mode {
        GuestMode::Pv => "smp4".into(),
        GuestMode::Pvh => "pvh-smp4".into(),
    }
}

/// The conformance suite's `smp` group alone in a domU with
/// [`SMP4_VCPUS`] vCPUs: it brings every one up (a few seconds in the
/// domU session, no boot of its own).
fn smp4_guest(elf: &dyn Fn(&str) -> PathBuf, mode: GuestMode) -> GuestSpec {
    let mut guest = spec(&smp4_name(mode), elf("conformance"), "only=smp").with_mode(mode);
    guest.memory_mib = 64;
    guest.extra_config.push(format!("vcpus = {SMP4_VCPUS}"));
    guest
}

/// One `smp: vCPU N up (…)` line per secondary vCPU, the bring-up check
/// counting all of them, the group's verdict SUCCESS, and a poweroff.
fn check_smp4(guest: &GuestReport) -> Result<(), String> {
    for id in 1..SMP4_VCPUS {
        let prefix = format!("smp: vCPU {id} up (");
        expect_line(
            guest,
            |l| l.starts_with(&prefix),
            &format!("`smp: vCPU {id} up (…)`"),
        )?;
    }
    let counted = format!("PASS smp/bring_up: {SMP4_VCPUS} vCPUs up");
    expect_line(guest, |l| l == counted, &format!("`{counted}`"))?;
    expect_line(
        guest,
        |l| l == "Test result: SUCCESS",
        "`Test result: SUCCESS`",
    )?;
    expect_ending(guest, Ending::Poweroff)
}

fn conformance_domu(mut guest: GuestSpec) -> GuestSpec {
    guest.memory_mib = 64;
    guest.extra_config.push("vcpus = 2".into());
    guest
}

fn spec(name: &str, kernel: PathBuf, cmdline: &str) -> GuestSpec {
    crate::guest_spec(name, &kernel, cmdline, DOMU_MIB, Duration::from_secs(120))
}

/// The boot summary and the app's own lines, then poweroff. A PV guest
/// has exactly `mib` MiB of pages (start_info's `nr_pages`); a PVH one
/// learns its memory from the memory map, which is a little smaller
/// (Xen keeps some of a PVH dom0's allotment for its page tables, and
/// special pages may be carved out), so it may report down to 3/4 of it.
fn check_hello(
    guest: &GuestReport,
    role: &str,
    cmdline: &str,
    mib: u32,
    mode: GuestMode,
) -> Result<(), String> {
    let pages = u64::from(mib) * 256;
    expect_line(
        guest,
        |l| l.starts_with("Paravane ") && l.ends_with(&format!(" running as {role}")),
        &format!("`Paravane … running as {role}`"),
    )?;
    match mode {
        GuestMode::Pv => expect_line(
            guest,
            |l| l.trim() == format!("nr_pages {pages} ({} KiB)", pages * 4),
            &format!("`nr_pages {pages}`"),
        )?,
        GuestMode::Pvh => expect_line(
            guest,
            |l| {
                l.trim()
                    .strip_prefix("nr_pages ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n <= pages && n >= pages * 3 / 4)
            },
            &format!("`nr_pages N` with N in {}..={pages}", pages * 3 / 4),
        )?,
    }
    expect_line(
        guest,
        |l| l.trim() == format!("cmdline \"{cmdline}\""),
        &format!("`cmdline \"{cmdline}\"`"),
    )?;
    let greeting = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("greeting="))
        .unwrap_or_default();
    expect_line(
        guest,
        |l| l == format!("hello: greeting={greeting}"),
        "the app's greeting line",
    )?;
    expect_line(
        guest,
        |l| l.contains("DEBUG") || l.contains("INFO"),
        "a log line",
    )?;
    expect_line(guest, |l| l == success_line("hello"), "the success line")?;
    // hello is a bare app (`entry!(bare main)`): a domU says it answers
    // no toolstack request, and the smallest image depends on it.
    if role == "domU" {
        expect_line(
            guest,
            |l| l.starts_with("lifecycle: bare app: no control task"),
            "the bare-app line",
        )?;
    }
    // The boot time by Xen's runstate accounting: some time in the guest,
    // no more than the vCPU's whole life.
    match crate::bench::guest_boot(&guest.console, "boot: app hello starts after ") {
        Some((in_guest, since_creation)) if in_guest > 0.0 && in_guest <= since_creation => {}
        other => {
            return Err(format!(
                "no sane `boot: app hello starts after …` line: {other:?}"
            ))
        }
    }
    expect_ending(guest, Ending::Poweroff)?;
    if !report::succeeded(guest) {
        return Err("report::succeeded disagrees".into());
    }
    Ok(())
}

/// The panic message with its location, then a crash.
fn check_panic(guest: &GuestReport, what: &str) -> Result<(), String> {
    expect_line(
        guest,
        |l| {
            l.starts_with(&format!("PANIC: {what} panic from the panic app at "))
                && l.contains("panic.rs:")
        },
        "the PANIC line with message and location",
    )?;
    expect_ending(guest, Ending::Crash)?;
    if report::succeeded(guest) {
        return Err("a panicking guest counted as a success".into());
    }
    Ok(())
}

pub(crate) fn expect_line(
    guest: &GuestReport,
    pred: impl Fn(&str) -> bool,
    what: &str,
) -> Result<(), String> {
    if guest.console.iter().any(|l| pred(l)) {
        Ok(())
    } else {
        Err(format!(
            "{}: no {what} in its console ({} lines; last: {:?})",
            guest.name,
            guest.console.len(),
            guest.console.last()
        ))
    }
}

/// How a guest ended and the last lines it printed, so a failure seen
/// only in CI's output says where the guest stopped.
pub(crate) fn how_it_ended(guest: &GuestReport) -> String {
    const TAIL: usize = 8;
    let tail = |lines: &[String]| lines[lines.len().saturating_sub(TAIL)..].join(" | ");
    let mut text = format!(
        "ended {:?} after {:.1} s (evidence: {}); last console lines: {}",
        guest.ending,
        guest.elapsed.as_secs_f64(),
        guest.evidence,
        tail(&guest.console)
    );
    if !guest.hypervisor_console.is_empty() {
        text += &format!(
            "; last hypervisor-console lines: {}",
            tail(&guest.hypervisor_console)
        );
    }
    // Xen's own last words (a triple fault, a domain_crash) are only in
    // the log.
    let xen: Vec<String> = std::fs::read_to_string(&guest.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("(XEN)"))
        .map(|l| l.trim().to_string())
        .collect();
    if !xen.is_empty() {
        text += &format!("; last Xen lines: {}", tail(&xen));
    }
    text + &format!("; full log: {}", guest.log.display())
}

pub(crate) fn expect_ending(guest: &GuestReport, want: Ending) -> Result<(), String> {
    if std::mem::discriminant(&guest.ending) == std::mem::discriminant(&want) {
        Ok(())
    } else {
        Err(format!(
            "{}: ended {:?} (evidence: {}), expected {want:?}",
            guest.name, guest.ending, guest.evidence
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guests side by side run their dom0 scripts at once: no script may
    /// use a temporary file another could use too (a shared
    /// `/tmp/httpd-page` once made the marker count wrong).
    #[test]
    fn side_by_side_scripts_keep_their_files_apart() {
        let (elf, loadgen) = (Path::new("/e"), Path::new("/l"));
        for mode in GuestMode::ALL {
            for spec in [
                crate::e2e_httpd::test_spec(elf, loadgen, mode),
                crate::e2e_net::test_spec(elf, loadgen, mode),
            ] {
                let script = spec.dom0_script.unwrap_or_default();
                for (at, _) in script.match_indices("/tmp/") {
                    let rest = &script[at + 5..];
                    assert!(
                        rest.starts_with("$NAME") || rest.starts_with("idle-$NAME"),
                        "{}: shared file at {:?}",
                        spec.name,
                        &rest[..rest.len().min(30)]
                    );
                }
            }
        }
    }
}
