//! `cargo xtask bench`: Paravane next to a Linux PV domU, in one dom0
//! session, doing the same transfers.
//!
//! Each round (`--rounds N`, default 3) runs six guests in turn:
//! Paravane's `echo` and `blkcheck`, exactly as the end-to-end tests run
//! them (their `GuestSpec`s and dom0 scripts), once as PV and once as PVH
//! domUs, and Debian's Linux kernel as a PV domU with a tiny busybox
//! initramfs, once as a TCP echo server (`nc -l -p 7 -e cat`) and once
//! reading its disk (`dd bs=1M` of the whole `/dev/xvda`, timed by the
//! guest, then `md5sum`, then a timed write: see [`crate::bench_disk`],
//! which also runs each disk guest again with blkif's persistent grants
//! off). The Linux guests get the same dom0 scripts as Paravane's, so
//! dom0 times the 8 MiB echo through `nc` for both, builds the same 64 MiB
//! image for both, and the guests report their own read times.
//!
//! In front of each dom0 script the bench adds a watcher that times, from
//! `xl create`, the guest's first console line and its "ready" line (the
//! vif up, the disk connected). Each round's throughputs are printed, then
//! the medians over the rounds with the ratios Paravane PV / Linux and
//! Paravane PVH / Linux; nothing is asserted about them. The command fails
//! only if a figure is missing or a checksum disagrees.
//!
//! HTTP: each round also runs Paravane's `httpd` (PV and PVH) and the
//! Linux guest serving a static page of the same size with the same
//! marker through busybox `httpd` (`bench=httpd`). For each, dom0 runs
//! the rig's load generator ([`crate::load`]) at [`HTTP_LEVELS`] clients
//! at once, every request on its own connection and timed on its own:
//! requests per second and the p50/p99 latency (nearest rank), every
//! answer checked (status 200, the marker). Why a tool of our own rather
//! than `ab` or `wrk`: see `qemu/loadgen`. Paravane's PV `httpd` also
//! runs with 2 vCPUs (`vcpus=2`, its two netfront queues on both), and
//! a table of its own sets its requests/s beside the 1-vCPU figures
//! ([`crate::bench_vcpus`]).
//!
//! Each round is a dom0 session of its own, watched for the host's other
//! work ([`crate::bench_output`]): a round taken under load is flagged
//! and run once more. Every figure of every round, with the medians,
//! the rounds' loads, the Xen version and the date, goes to a JSON file
//! ([`crate::bench_json`]), and charts are drawn from it
//! ([`crate::bench_charts`]); `--charts-only` redraws them from the file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use rig::{GuestMode, GuestReport, GuestSpec, Rig};

use crate::args::Args;
use crate::bench_json::{BenchRun, Row, Series};
use crate::{bench_load, bench_output, e2e_httpd, e2e_net, guest_build};

/// The Linux guests' names.
const LINUX_NET: &str = "linux-net";
const LINUX_BLK: &str = "linux-blk";
const LINUX_HTTP: &str = "linux-http";
/// What the Linux guests print first on each of their lines.
const LINUX_TAG: &str = "linux-bench: ";

/// `/init` of the Linux guests: `bench=net` or `bench=disk` on the kernel
/// command line says which transfer to serve.
fn linux_init() -> String {
    let ip = e2e_net::GUEST_IP;
    format!(
        r#"#!/bin/sh
# /init of the Linux PV domU of `cargo xtask bench` (xtask/src/bench.rs).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() {{ echo "{LINUX_TAG}$*"; }}
now() {{ cut -d' ' -f1 /proc/uptime; }}
say "init at $(now)"
mode=
for word in $(cat /proc/cmdline); do
    case $word in bench=*) mode=${{word#bench=}} ;; esac
done
net_up() {{
    modprobe xen-netfront || say "modprobe xen-netfront failed"
    n=0
    while ! ip link show eth0 > /dev/null 2>&1 && [ $n -lt 200 ]; do n=$((n + 1)); sleep 0.1; done
    ip link set lo up
    ip addr add {ip}/24 dev eth0
    ip link set eth0 up
}}
case $mode in
httpd)
    net_up
    mkdir -p /www
    cat > /www/index.html << 'EOF_PAGE'
{page}EOF_PAGE
    httpd -p 80 -h /www
    say "up: eth0 {ip} httpd"
    nc -l -p 7 > /dev/null
    say "quit connection closed"
    ;;
net)
    net_up
    say "up: eth0 {ip}"
    nc -l -p 7 -e cat
    say "echo connection closed"
    nc -l -p 7 > /dev/null
    say "quit connection closed"
    ;;
disk)
    modprobe xen-blkfront || say "modprobe xen-blkfront failed"
    n=0
    while [ ! -b /dev/xvda ] && [ $n -lt 200 ]; do n=$((n + 1)); sleep 0.1; done
    say "disk /dev/xvda $(cat /sys/block/xvda/size 2> /dev/null) sectors"
    say "persistent $(cat /sys/module/xen_blkfront/parameters/feature_persistent 2> /dev/null)"
    # dom0 fills the image in place, sector 0 last (as for blkcheck).
    n=0
    while [ "$(dd if=/dev/xvda bs=512 count=1 iflag=direct 2> /dev/null | head -c 15)" != "sector 00000000" ] && [ $n -lt 1200 ]; do
        n=$((n + 1)); sleep 0.1
    done
    # The partition scan cached sectors read before dom0 filled them.
    sync
    blockdev --flushbufs /dev/xvda
    echo 3 > /proc/sys/vm/drop_caches
    bytes=$(blockdev --getsize64 /dev/xvda)
    t0=$(now)
    dd if=/dev/xvda of=/dev/null bs=1M 2> /dev/null
    t1=$(now)
    say "read $bytes bytes $t0 $t1"
    say "md5 $(md5sum < /dev/xvda | cut -d' ' -f1)"
{write}    ;;
*)
    say "no bench=net|disk|httpd on the command line"
    ;;
esac
say "poweroff"
poweroff -f
"#,
        page = linux_page(),
        write = crate::bench_disk::linux_write(LINUX_TAG),
    )
}

/// The page the Linux guest's busybox `httpd` serves: static, with
/// Paravane's marker, padded to the size of Paravane's page (about 660
/// bytes), so both send the same bytes per answer.
fn linux_page() -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><title>{m}</title></head><body>\n<h1>{m}</h1>\n\
         <p>The same page, served by busybox httpd in a Linux PV domU (the bench's reference).</p>\n",
        m = e2e_httpd::marker()
    );
    while page.len() < 620 {
        page.push_str("<!-- padding to the size of Paravane's page -->\n");
    }
    page.push_str("</body></html>\n");
    page
}

/// Clients at once at which the HTTP bench measures, and the requests
/// made at each (enough for a p99 of more than one sample).
pub const HTTP_LEVELS: [(usize, usize); 3] = [(1, 100), (16, 256), (64, 512)];

/// What dom0 runs against an HTTP contender at [`e2e_net::GUEST_IP`]:
/// wait for a ping, warm up (5 requests, not counted), then the load
/// generator at each of [`HTTP_LEVELS`] (its lines tagged `BENCH cN`),
/// then `GET /quit` (Paravane) and a connection to port 7 (Linux), either
/// of which powers the guest off.
fn http_script() -> String {
    let marker = e2e_httpd::marker();
    let mut script = format!(
        "G={}\n{}",
        e2e_net::GUEST_IP,
        e2e_net::wait_for_ping("BENCH", 120)
    );
    let load = crate::load::DOM0_PATH;
    script.push_str(&format!(
        "{load} http $G:80 / --concurrency 1 --requests 5 --marker '{marker}' > /dev/null 2>&1\n"
    ));
    for (clients, requests) in HTTP_LEVELS {
        script.push_str(&format!(
            "{load} http $G:80 / --concurrency {clients} --requests {requests} --marker '{marker}' --timeout 60 > /tmp/bench-http 2>&1\n\
             sed 's/^/BENCH c{clients} /' /tmp/bench-http\n"
        ));
    }
    script.push_str(
        r#"wget -q -O /dev/null http://$G/quit 2> /dev/null
echo quit | nc -w 2 $G 7 2> /dev/null
sleep 10
if xl list $NAME > /dev/null 2>&1; then
  echo "BENCH guest still running after quit: destroying it"
  xl destroy $NAME
fi
"#,
    );
    script
}

/// One load level's figures.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct HttpLevel {
    pub(crate) rps: Option<f64>,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    /// Every request answered 200 with the marker.
    pub(crate) all_good: bool,
}

/// The figures of each of [`HTTP_LEVELS`] from an HTTP contender's dom0
/// lines.
fn http_figures(report: &GuestReport) -> [HttpLevel; 3] {
    HTTP_LEVELS.map(|(clients, requests)| {
        let Some(pairs) = crate::load::summary(report, &format!("BENCH c{clients}"), "http") else {
            return HttpLevel::default();
        };
        let n = |key: &str| crate::load::number(&pairs, key);
        HttpLevel {
            rps: n("rps"),
            p50_ms: n("p50_ms"),
            p99_ms: n("p99_ms"),
            all_good: n("ok") == Some(requests as f64)
                && n("marked") == Some(requests as f64)
                && n("failed") == Some(0.0),
        }
    })
}

/// A watcher put in front of a guest's dom0 script: prints
/// `BENCH boot T0 T1 T2` (dom0's uptime at `xl create`, at the guest's
/// first console line, at its line containing `ready`).
fn watcher(ready: &str) -> String {
    format!(
        r#"rm -f /tmp/*-net-in /tmp/*-net-out /tmp/blk-*.img /tmp/blk-*.part
(
  log=/var/log/xen/console/guest-$NAME.log
  t0=$(cut -d' ' -f1 /proc/uptime)
  n=0
  while [ ! -s "$log" ] && [ $n -lt 1200 ]; do n=$((n + 1)); sleep 0.05; done
  t1=$(cut -d' ' -f1 /proc/uptime)
  while ! grep -q "{ready}" "$log" 2> /dev/null && [ $n -lt 2400 ]; do n=$((n + 1)); sleep 0.05; done
  t2=$(cut -d' ' -f1 /proc/uptime)
  echo "BENCH boot $t0 $t1 $t2"
) &
"#
    )
}

/// `spec` with the boot watcher in front of its dom0 script.
fn watched(mut spec: GuestSpec, ready: &str) -> GuestSpec {
    let script = spec.dom0_script.take().unwrap_or_default();
    spec.dom0_script = Some(format!("{}{script}", watcher(ready)));
    spec
}

/// The Linux variant of a Paravane guest spec: same vif/disk and dom0
/// script, Debian's kernel with the bench initramfs.
fn linux_spec(
    from: &GuestSpec,
    name: &str,
    kernel: &Path,
    ramdisk: &Path,
    mode: &str,
) -> GuestSpec {
    let mut spec = renamed(from, name);
    spec.kernel = kernel.into();
    spec.ramdisk = Some(ramdisk.into());
    spec.cmdline = format!("console=hvc0 quiet bench={mode}");
    spec.memory_mib = 256;
    spec
}

/// The words after `prefix` on the first line starting with it.
fn words<'a>(lines: &'a [String], prefix: &str) -> Option<Vec<&'a str>> {
    lines
        .iter()
        .find_map(|line| line.strip_prefix(prefix))
        .map(|rest| rest.split_whitespace().collect())
}

fn seconds(words: &[&str], from: usize, to: usize) -> Option<f64> {
    let a: f64 = words.get(from)?.parse().ok()?;
    let b: f64 = words.get(to)?.parse().ok()?;
    Some(b - a)
}

/// (first console line, ready line) in seconds after `xl create`.
fn boot_times(report: &GuestReport) -> (Option<f64>, Option<f64>) {
    match words(&report.dom0_output, "BENCH boot ") {
        Some(w) => (seconds(&w, 0, 1), seconds(&w, 0, 2)),
        None => (None, None),
    }
}

/// The guest's own boot figures from its first line starting with
/// `prefix` that carries a runstate split (`… A ms in the guest (…), B
/// ms since the vCPU was created …`, see `kernel/src/vcpu_life.rs`):
/// `(A, B)` in ms.
pub fn guest_boot(console: &[String], prefix: &str) -> Option<(f64, f64)> {
    let line = console.iter().find(|l| l.starts_with(prefix))?;
    let number_before = |marker: &str| -> Option<f64> {
        let head = &line[..line.find(marker)?];
        head.rsplit(' ').next()?.parse().ok()
    };
    Some((
        number_before(" ms in the guest")?,
        number_before(" ms since the vCPU was created")?,
    ))
}

/// Echo throughput (MiB/s each way, dom0's clock around `nc`) and whether
/// what came back equals what was sent.
fn net_figure(report: &GuestReport) -> (Option<f64>, bool) {
    let sent = words(&report.dom0_output, "NET sent ");
    let echoed = words(&report.dom0_output, "NET echoed ");
    let intact = sent.is_some() && sent == echoed;
    (e2e_net::throughput(report).map(|(_, rate)| rate), intact)
}

const MIB: f64 = 1024.0 * 1024.0;

/// Paravane's disk read (MiB/s, the guest's clock) and its MD5.
fn blkcheck_figure(report: &GuestReport) -> (Option<f64>, Option<String>) {
    // "blkcheck: read 67108864 bytes in 850 ms: 75.29 MiB/s"
    let rate = words(&report.console, "blkcheck: read ").and_then(|w| {
        let bytes: f64 = w.first()?.parse().ok()?;
        let ms: f64 = w.get(3)?.parse().ok()?;
        (ms > 0.0).then(|| bytes / MIB / (ms / 1000.0))
    });
    let md5 = words(&report.console, "blkcheck: md5 ").and_then(|w| Some(w.first()?.to_string()));
    (rate, md5)
}

/// Linux's disk read (MiB/s, the guest's clock) and its MD5.
fn linux_disk_figure(report: &GuestReport) -> (Option<f64>, Option<String>) {
    let rate = words(&report.console, &format!("{LINUX_TAG}read ")).and_then(|w| {
        let bytes: f64 = w.first()?.parse().ok()?;
        let s = seconds(&w, 2, 3)?;
        (s > 0.0).then(|| bytes / MIB / s)
    });
    let md5 = words(&report.console, &format!("{LINUX_TAG}md5 "))
        .and_then(|w| Some(w.first()?.to_string()));
    (rate, md5)
}

fn dom0_md5(report: &GuestReport) -> Option<String> {
    words(&report.dom0_output, "dom0-blk: md5-before ").and_then(|w| Some(w.first()?.to_string()))
}

fn cell(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.2}{unit}"))
}

fn ratio(paravane: Option<f64>, linux: Option<f64>) -> String {
    match (paravane, linux) {
        (Some(p), Some(l)) if l > 0.0 => format!("{:.2}", p / l),
        _ => "-".into(),
    }
}

/// What one guest measured (all optional: a figure the guest did not
/// print stays `None`, and the table says `-`).
#[derive(Clone, Copy, Default, Debug)]
struct Figures {
    /// Echo throughput, MiB/s each way (dom0's clock).
    net: Option<f64>,
    /// The echoed bytes equal the sent ones.
    net_intact: bool,
    /// Disk read, MiB/s (the guest's clock).
    disk: Option<f64>,
    /// The guest's MD5 of the image equals dom0's.
    disk_intact: bool,
    /// Disk write of [`crate::bench_disk::BULK_MIB`] MiB and flush, MiB/s
    /// (the guest's clock), persistent grants on.
    disk_write: Option<f64>,
    /// Disk read and write with persistent grants off.
    disk_read_off: Option<f64>,
    disk_write_off: Option<f64>,
    /// The other disk checks: in both runs every figure is there, the
    /// read MD5 is dom0's, the writes landed (dom0's MD5 of them), and
    /// persistent grants were on, then off, as asked.
    disk_checks: bool,
    /// Net guest: `xl create` to its first console line, and to "vif up".
    net_first: Option<f64>,
    net_ready: Option<f64>,
    /// Disk guest: `xl create` to its first console line, and to "disk
    /// connected".
    disk_first: Option<f64>,
    disk_ready: Option<f64>,
    /// Net guest, by its own vCPU's runstate (Paravane only): ms in the
    /// guest before the app started, before the vif was up, and from the
    /// vCPU's creation to the vif up.
    guest_start: Option<f64>,
    guest_ready: Option<f64>,
    /// Of `guest_ready`, the time the vCPU ran (the rest it waited for
    /// a physical CPU or blocked on the back end).
    guest_ready_running: Option<f64>,
    created_to_ready: Option<f64>,
}

impl Figures {
    /// `disk` with persistent grants on, `disk_off` without; `net` none
    /// with `--disk-only`; `bulk_md5`: the written bytes' MD5.
    fn paravane(
        net: Option<&GuestReport>,
        disk: &GuestReport,
        disk_off: &GuestReport,
        bulk_md5: Option<&str>,
    ) -> Figures {
        let (net_rate, net_intact) = net.map_or((None, false), net_figure);
        let (disk_rate, md5) = blkcheck_figure(disk);
        Self::with_boots(net_rate, net_intact, disk_rate, md5, net, disk).with_disk_runs(
            crate::bench_disk::paravane(disk, bulk_md5),
            crate::bench_disk::paravane(disk_off, bulk_md5),
        )
    }

    fn linux(
        net: Option<&GuestReport>,
        disk: &GuestReport,
        disk_off: &GuestReport,
        bulk_md5: Option<&str>,
    ) -> Figures {
        let (net_rate, net_intact) = net.map_or((None, false), net_figure);
        let (disk_rate, md5) = linux_disk_figure(disk);
        Self::with_boots(net_rate, net_intact, disk_rate, md5, net, disk).with_disk_runs(
            crate::bench_disk::linux(disk, LINUX_TAG, bulk_md5),
            crate::bench_disk::linux(disk_off, LINUX_TAG, bulk_md5),
        )
    }

    /// The write figures and the persistent-grants-off run.
    fn with_disk_runs(
        mut self,
        on: crate::bench_disk::DiskRun,
        off: crate::bench_disk::DiskRun,
    ) -> Figures {
        self.disk_write = on.write;
        self.disk_read_off = off.read;
        self.disk_write_off = off.write;
        self.disk_checks = on.complete(true) && off.complete(false);
        self
    }

    fn with_boots(
        net_rate: Option<f64>,
        net_intact: bool,
        disk_rate: Option<f64>,
        md5: Option<String>,
        net: Option<&GuestReport>,
        disk: &GuestReport,
    ) -> Figures {
        let (net_first, net_ready) = net.map_or((None, None), boot_times);
        let (disk_first, disk_ready) = boot_times(disk);
        let start = net.and_then(|net| guest_boot(&net.console, "boot: app "));
        let ready = net.and_then(|net| guest_boot(&net.console, "echo: ready after "));
        let ready_running = net
            .and_then(|net| {
                net.console
                    .iter()
                    .find(|l| l.starts_with("echo: ready after "))
            })
            .and_then(|line| crate::min_memory::runstate_part(line, "running"));
        Figures {
            guest_start: start.map(|(in_guest, _)| in_guest),
            guest_ready: ready.map(|(in_guest, _)| in_guest),
            guest_ready_running: ready_running,
            created_to_ready: ready.map(|(_, since_creation)| since_creation),
            net: net_rate,
            net_intact,
            disk: disk_rate,
            disk_intact: md5.is_some() && md5 == dom0_md5(disk),
            net_first,
            net_ready,
            disk_first,
            disk_ready,
            ..Figures::default()
        }
    }

    /// Every figure there and every check good (`disk_only`: no echo).
    fn complete(&self, disk_only: bool) -> bool {
        (disk_only || (self.net.is_some() && self.net_intact))
            && self.disk.is_some()
            && self.disk_intact
            && self.disk_checks
    }
}

/// The median of the figures that are there (`None` if none is).
pub(crate) fn median(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let mut v: Vec<f64> = values.flatten().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The three contenders of a round, in table order.
const COLUMNS: [&str; 3] = ["Paravane PV", "Paravane PVH", "Linux PV"];

/// `spec` under the name `name`, its disk image renamed to match (each
/// guest of a session needs its own name; the dom0 scripts use `$NAME`).
fn renamed(spec: &GuestSpec, name: &str) -> GuestSpec {
    let mut renamed = spec.clone();
    renamed.extra_config = spec
        .extra_config
        .iter()
        .map(|line| {
            line.replace(
                &format!("/tmp/blk-{}.img", spec.name),
                &format!("/tmp/blk-{name}.img"),
            )
        })
        .collect();
    renamed.name = name.into();
    renamed
}

/// Runs the bench and prints the table.
pub fn run(args: &mut Args) -> Result<ExitCode, String> {
    let rounds: usize = match args.value("--rounds") {
        Some(n) => n
            .parse()
            .ok()
            .filter(|&n| (1..=9).contains(&n))
            .ok_or_else(|| format!("--rounds wants 1 to 9, not {n:?}"))?,
        None => 3,
    };
    // Only the HTTP contenders (four guests a round instead of ten).
    let http_only = args.flag("--http-only");
    // Only the disk contenders (six guests a round).
    let disk_only = args.flag("--disk-only");
    // Only the footprint: image sizes and the smallest memory each app
    // runs in (one dom0 session of its own).
    let footprint = args.flag("--footprint");
    // Where the results go (JSON) and the charts drawn from them (SVG).
    let json = args.value("--json").map(PathBuf::from);
    let charts = args.value("--charts").map(PathBuf::from);
    // Only redraw the charts from an existing JSON file.
    if args.flag("--charts-only") {
        args.finish()?;
        return bench_output::charts_only(json.as_deref(), charts.as_deref());
    }
    let xen = crate::xen_arg(args)?;
    args.finish()?;
    println!(
        "bench on Xen {} (the rig's Linux dom0 and toolstack for it)",
        xen.as_str()
    );
    let mode = match (footprint, http_only) {
        (true, _) => "footprint",
        (false, true) => "http-only",
        (false, false) => "full",
    };
    let mut results = BenchRun::new(xen.as_str(), mode);
    let json = json.unwrap_or_else(|| bench_output::default_json(mode));
    if footprint {
        let sizes = crate::footprint::measure_apps(&crate::footprint::APPS)?;
        print!("{}", crate::footprint::table_of(&sizes));
        results.rows = crate::footprint::size_rows(&sizes);
        let rig = Rig::prepare_xen(xen).map_err(|e| e.to_string())?;
        // Watched for the host's load like a bench round, and run once
        // more if loaded: a guest slowed down can miss its time limit.
        for attempt in 1..=2 {
            let sampler = bench_load::Sampler::start();
            let started = std::time::Instant::now();
            let memory = crate::min_memory::run(&rig)?;
            let record = bench_output::round(1, attempt, started.elapsed(), sampler.stop());
            println!("bench: {}", bench_load::describe(&record.load));
            if bench_output::retry(attempt, &record) {
                println!("bench: taken under load, run again");
                results.discarded.push(record);
                continue;
            }
            results.rounds.push(record);
            results.rows.extend(memory);
            break;
        }
        bench_output::print_loads(&results);
        bench_output::write(&results, &json, charts.as_deref())?;
        return Ok(ExitCode::SUCCESS);
    }
    let echo = guest_build::build("echo", guest_build::Profile::Release)?;
    let blkcheck = guest_build::build("blkcheck", guest_build::Profile::Release)?;
    let httpd = guest_build::build("httpd", guest_build::Profile::Release)?;
    let loadgen = guest_build::build_loadgen()?;
    let rig = Rig::prepare_xen(xen).map_err(|e| e.to_string())?;
    let kernel = rig.linux_domu_kernel().map_err(|e| e.to_string())?;
    let ramdisk = rig
        .linux_domu_initramfs(&["xen-netfront", "xen-blkfront"], &linux_init())
        .map_err(|e| e.to_string())?;

    let net = e2e_net::guest(&echo);
    let blk = crate::bench_disk::paravane_guest(&blkcheck, GuestMode::Pv, true);
    let bulk_md5 = crate::bench_disk::expected_bulk_md5()?;
    let name = |what: &str, round: usize| format!("{what}-{round}");
    let mut http = e2e_httpd::bench_spec("http", &httpd, &loadgen, http_script());
    // 868 requests; a Linux guest booted and served them at 2-4 per
    // second on a loaded host, past a 300 s watchdog.
    http.timeout = Duration::from_secs(900);
    // Each round runs the nine guests in turn, so host noise spreads over
    // all contenders rather than hitting one of them.
    let mut guests = Vec::new();
    for round in 1..=rounds {
        let pvh_net = renamed(&net, &name("pvh-net", round)).with_mode(GuestMode::Pvh);
        let pvh_blk = renamed(&blk, &name("pvh-blk", round)).with_mode(GuestMode::Pvh);
        if !http_only && !disk_only {
            guests.extend([
                watched(renamed(&net, &name("pv-net", round)), "echo: up:"),
                watched(pvh_net, "echo: up:"),
                watched(
                    linux_spec(&net, &name(LINUX_NET, round), &kernel, &ramdisk, "net"),
                    &format!("{LINUX_TAG}up:"),
                ),
            ]);
        }
        if !http_only {
            let linux_blk = linux_spec(&blk, &name(LINUX_BLK, round), &kernel, &ramdisk, "disk");
            let off = crate::bench_disk::persistent_off;
            guests.extend([
                watched(renamed(&blk, &name("pv-blk", round)), "blkfront: "),
                watched(pvh_blk.clone(), "blkfront: "),
                watched(linux_blk.clone(), &format!("{LINUX_TAG}disk ")),
                watched(
                    off(renamed(&blk, &name("pv-blk-off", round)), false),
                    "blkfront: ",
                ),
                watched(
                    off(renamed(&pvh_blk, &name("pvh-blk-off", round)), false),
                    "blkfront: ",
                ),
                watched(
                    off(renamed(&linux_blk, &name("linux-blk-off", round)), true),
                    &format!("{LINUX_TAG}disk "),
                ),
            ]);
        }
        if disk_only {
            continue;
        }
        // Watched too: the watcher also deletes the disk images and echo
        // files earlier guests left in dom0's memory (a Linux guest's `xl
        // create` after them died without a word, most likely of dom0
        // running out of memory).
        guests.extend([
            watched(renamed(&http, &name("pv-http", round)), "httpd: up:"),
            watched(
                renamed(&http, &name("pvh-http", round)).with_mode(GuestMode::Pvh),
                "httpd: up:",
            ),
            watched(
                linux_spec(&http, &name(LINUX_HTTP, round), &kernel, &ramdisk, "httpd"),
                &format!("{LINUX_TAG}up:"),
            ),
            watched(
                crate::bench_vcpus::two_vcpus(renamed(&http, &name("pv-http2", round))),
                "httpd: up:",
            ),
        ]);
    }
    // One dom0 session a round, so each round's host load is its own and
    // a round taken under load can be run again.
    let mut reports = Vec::new();
    for round in 1..=rounds {
        let suffix = format!("-{round}");
        let specs: Vec<GuestSpec> = guests
            .iter()
            .filter(|g| g.name.ends_with(&suffix))
            .cloned()
            .collect();
        let run = bench_output::run_round(&rig, round, &specs)?;
        results.rounds.push(run.kept);
        results.discarded.extend(run.discarded);
        reports.extend(run.reports);
    }
    let report = |name: &str| {
        reports
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| format!("no report for {name}"))
    };
    for guest in &reports {
        println!(
            "bench: {} ended {} after {:.1} s (log {})",
            guest.name,
            guest.ending,
            guest.elapsed.as_secs_f64(),
            guest.log.display()
        );
    }

    // figures[round][column]
    let mut figures = Vec::new();
    for round in 1..=rounds {
        if http_only {
            break;
        }
        let get = |what: &str| report(&name(what, round));
        let net = |what: &str| (!disk_only).then(|| get(what)).transpose();
        let md5 = Some(bulk_md5.as_str());
        figures.push([
            Figures::paravane(net("pv-net")?, get("pv-blk")?, get("pv-blk-off")?, md5),
            Figures::paravane(net("pvh-net")?, get("pvh-blk")?, get("pvh-blk-off")?, md5),
            Figures::linux(net(LINUX_NET)?, get(LINUX_BLK)?, get("linux-blk-off")?, md5),
        ]);
    }
    if !http_only {
        results.rows = print_table(&figures);
    }

    // vcpus[round] = [1 vCPU, 2 vCPUs], PV
    let mut vcpus = Vec::new();
    // http[round][column][level]
    let mut http = Vec::new();
    for round in 1..=rounds {
        if disk_only {
            break;
        }
        let get = |what: &str| report(&name(what, round));
        http.push([
            http_figures(get("pv-http")?),
            http_figures(get("pvh-http")?),
            http_figures(get(LINUX_HTTP)?),
        ]);
        vcpus.push([
            http_figures(get("pv-http")?),
            http_figures(get("pv-http2")?),
        ]);
    }
    if !disk_only {
        results.rows.extend(print_http_table(&http));
        results.rows.extend(crate::bench_vcpus::print_table(&vcpus));
    }
    bench_output::print_loads(&results);
    bench_output::write(&results, &json, charts.as_deref())?;

    let complete = figures.iter().flatten().all(|f| f.complete(disk_only))
        && http.iter().flatten().flatten().all(|level| level.all_good)
        && vcpus.iter().flatten().flatten().all(|level| level.all_good);
    if !complete {
        for guest in &reports {
            println!("---- {} ({}) ----", guest.name, guest.ending);
            for line in guest.console.iter().rev().take(15).rev() {
                println!("  console: {line}");
            }
            for line in guest.dom0_output.iter().rev().take(10).rev() {
                println!("  dom0: {line}");
            }
        }
    }
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The HTTP figures: each round's requests per second, then the medians
/// over the rounds of requests per second and p50/p99 latency at each
/// level, with the ratios Paravane / Linux (for requests per second
/// higher is better, for latency lower).
fn print_http_table(http: &[[[HttpLevel; 3]; 3]]) -> Vec<Row> {
    println!();
    for (round, row) in http.iter().enumerate() {
        let cells: Vec<String> = HTTP_LEVELS
            .iter()
            .enumerate()
            .map(|(level, (clients, _))| {
                let per_column: Vec<String> = row.iter().map(|c| cell(c[level].rps, "")).collect();
                format!("c={clients} {}", per_column.join(" / "))
            })
            .collect();
        println!(
            "round {}: httpd requests/s {} ({})",
            round + 1,
            cells.join(" ; "),
            COLUMNS.join(" / ")
        );
    }
    println!();
    println!(
        "{:<48} {:>12} {:>12} {:>12} {:>10} {:>10}",
        format!("httpd, median of {} rounds", http.len()),
        COLUMNS[0],
        COLUMNS[1],
        COLUMNS[2],
        "PV/Linux",
        "PVH/Linux"
    );
    type Metric = (&'static str, fn(&HttpLevel) -> Option<f64>);
    let metrics: [Metric; 3] = [
        ("requests/s", |l| l.rps),
        ("p50 latency, ms", |l| l.p50_ms),
        ("p99 latency, ms", |l| l.p99_ms),
    ];
    let mut rows = Vec::new();
    for (level, (clients, requests)) in HTTP_LEVELS.iter().enumerate() {
        for (what, get) in metrics {
            let medians: Vec<Option<f64>> = (0..3)
                .map(|column| median(http.iter().map(|round| get(&round[column][level]))))
                .collect();
            rows.push(row(
                &format!("c={clients} ({requests} requests) {what}"),
                |column| {
                    http.iter()
                        .map(|round| get(&round[column][level]))
                        .collect()
                },
            ));
            println!(
                "{:<48} {:>12} {:>12} {:>12} {:>10} {:>10}",
                format!("c={clients} ({requests} requests) {what}"),
                cell(medians[0], ""),
                cell(medians[1], ""),
                cell(medians[2], ""),
                ratio(medians[0], medians[2]),
                ratio(medians[1], medians[2]),
            );
        }
    }
    let good = |column: usize| {
        let rounds = http
            .iter()
            .filter(|round| round[column].iter().all(|l| l.all_good))
            .count();
        format!("{} {rounds}/{}", COLUMNS[column], http.len())
    };
    println!(
        "every answer 200 with the marker, rounds: {}",
        (0..3).map(good).collect::<Vec<_>>().join(", ")
    );
    rows
}

/// Each round's figures, then the medians and the ratios to Linux.
fn print_table(figures: &[[Figures; 3]]) -> Vec<Row> {
    type Metric = (&'static str, fn(&Figures) -> Option<f64>);
    let metrics: [Metric; 13] = [
        ("net echo 8 MiB each way (dom0 nc), MiB/s", |f| f.net),
        ("disk read 64 MiB (guest's clock), MiB/s", |f| f.disk),
        ("disk write 16 MiB + flush (guest's clock), MiB/s", |f| {
            f.disk_write
        }),
        ("disk read, persistent grants off, MiB/s", |f| {
            f.disk_read_off
        }),
        ("disk write, persistent grants off, MiB/s", |f| {
            f.disk_write_off
        }),
        ("net guest: xl create -> first console line, s", |f| {
            f.net_first
        }),
        ("net guest: xl create -> vif up, s", |f| f.net_ready),
        ("disk guest: xl create -> first console line, s", |f| {
            f.disk_first
        }),
        ("disk guest: xl create -> disk connected, s", |f| {
            f.disk_ready
        }),
        ("net guest, its own runstate: in guest -> app, ms", |f| {
            f.guest_start
        }),
        ("net guest, its own runstate: in guest -> vif up, ms", |f| {
            f.guest_ready
        }),
        ("net guest, its own runstate: of that, running, ms", |f| {
            f.guest_ready_running
        }),
        ("net guest: vCPU created -> vif up, ms", |f| {
            f.created_to_ready
        }),
    ];
    println!();
    for (round, row) in figures.iter().enumerate() {
        let cells = |get: fn(&Figures) -> Option<f64>| {
            row.iter()
                .map(|f| cell(get(f), ""))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        println!(
            "round {}: echo MiB/s {} ; disk MiB/s {} ({})",
            round + 1,
            cells(|f| f.net),
            cells(|f| f.disk),
            COLUMNS.join(" / ")
        );
        println!(
            "round {}: disk write MiB/s {} ; persistent grants off: read {} write {}",
            round + 1,
            cells(|f| f.disk_write),
            cells(|f| f.disk_read_off),
            cells(|f| f.disk_write_off),
        );
    }
    println!();
    println!(
        "{:<48} {:>12} {:>12} {:>12} {:>10} {:>10}",
        format!("median of {} rounds", figures.len()),
        COLUMNS[0],
        COLUMNS[1],
        COLUMNS[2],
        "PV/Linux",
        "PVH/Linux"
    );
    let mut rows = Vec::new();
    for (what, get) in metrics {
        let medians: Vec<Option<f64>> = (0..3)
            .map(|column| median(figures.iter().map(|round| get(&round[column]))))
            .collect();
        rows.push(row(what, |column| {
            figures.iter().map(|round| get(&round[column])).collect()
        }));
        println!(
            "{what:<48} {:>12} {:>12} {:>12} {:>10} {:>10}",
            cell(medians[0], ""),
            cell(medians[1], ""),
            cell(medians[2], ""),
            ratio(medians[0], medians[2]),
            ratio(medians[1], medians[2]),
        );
    }
    let intact = |column: usize, get: fn(&Figures) -> bool| {
        let good = figures.iter().filter(|round| get(&round[column])).count();
        format!("{good}/{}", figures.len())
    };
    println!(
        "data intact (echo; disk MD5 = dom0's; writes landed and persistent grants on/off as asked): {}",
        (0..3)
            .map(|c| format!(
                "{} {}; {}; {}",
                COLUMNS[c],
                intact(c, |f| f.net_intact),
                intact(c, |f| f.disk_intact),
                intact(c, |f| f.disk_checks)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("(throughput: higher is better; boot times: lower is better; software-emulated rig)");
    // Other QEMUs on the host skew every figure: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "host load average (1, 5, 15 min) at the end: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    rows
}

/// A row of the JSON: the contenders' figures round by round.
fn row(label: &str, per_round: impl Fn(usize) -> Vec<Option<f64>>) -> Row {
    let series = COLUMNS
        .iter()
        .enumerate()
        .map(|(column, name)| Series::new(name, per_round(column)))
        .collect();
    Row::from_label(label, series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_boot_figures_are_read_from_the_runstate_lines() {
        let console = vec![
            "Paravane 0.1.0 (x86_64 PV) running as domU".to_string(),
            "boot: app echo starts after 3.445 ms in the guest (running 2.345, runnable 0.100, blocked 1.000), 43.445 ms since the vCPU was created (40.000 ms offline: built and paused by the toolstack)".to_string(),
            "echo: ready after 30.001 ms in the guest (running 9.000, runnable 1.000, blocked 20.001), 70.001 ms since the vCPU was created (40.000 ms offline: built and paused by the toolstack)".to_string(),
        ];
        assert_eq!(guest_boot(&console, "boot: app "), Some((3.445, 43.445)));
        assert_eq!(
            guest_boot(&console, "echo: ready after "),
            Some((30.001, 70.001))
        );
        assert_eq!(guest_boot(&console, "httpd: ready after "), None);
    }

    #[test]
    fn linux_spec_keeps_the_transfer_and_renames_the_disk() {
        let blk =
            crate::bench_disk::paravane_guest(Path::new("/tmp/blkcheck"), GuestMode::Pv, true);
        let spec = linux_spec(&blk, LINUX_BLK, Path::new("/k"), Path::new("/r"), "disk");
        assert_eq!(spec.dom0_script, blk.dom0_script);
        assert!(spec.extra_config[0].contains("target=/tmp/blk-linux-blk.img"));
        assert_eq!(spec.ramdisk.as_deref(), Some(Path::new("/r")));
        assert!(spec.cmdline.ends_with("bench=disk"));
    }

    #[test]
    fn medians_skip_missing_figures() {
        assert_eq!(
            median([Some(3.0), None, Some(1.0), Some(2.0)].into_iter()),
            Some(2.0)
        );
        assert_eq!(median([Some(4.0), Some(1.0)].into_iter()), Some(2.5));
        assert_eq!(median([None, None].into_iter()), None);
    }

    #[test]
    fn renamed_guests_get_their_own_image() {
        let blk =
            crate::bench_disk::paravane_guest(Path::new("/tmp/blkcheck"), GuestMode::Pv, true);
        let spec = renamed(&blk, "pv-blk-2");
        assert_eq!(spec.name, "pv-blk-2");
        assert!(spec.extra_config[0].contains("target=/tmp/blk-pv-blk-2.img"));
        assert_eq!(spec.dom0_script, blk.dom0_script);
    }

    #[test]
    fn watcher_goes_first() {
        let spec = watched(e2e_net::guest(Path::new("/e")), "echo: up:");
        let script = spec.dom0_script.unwrap_or_default();
        assert!(script.contains("grep -q \"echo: up:\""));
        assert!(script.ends_with(
            &e2e_net::guest(Path::new("/e"))
                .dom0_script
                .unwrap_or_default()
        ));
    }

    #[test]
    fn http_figures_are_read_per_level() {
        let mut report = crate::idle::tests_report(&[]);
        report.dom0_output = vec![
            "BENCH c1 LOADGEN http concurrency=1 requests=100 ok=100 marked=100 failed=0 seconds=2.0 rps=50.00 p50_ms=19.0 p99_ms=30.5 max_ms=40 ticks=none".into(),
            "BENCH c16 LOADGEN http concurrency=16 requests=256 ok=250 marked=250 failed=6 seconds=2.0 rps=125.00 p50_ms=100.0 p99_ms=900.0 max_ms=990 ticks=none".into(),
        ];
        let [c1, c16, c64] = http_figures(&report);
        assert_eq!(
            (c1.rps, c1.p50_ms, c1.p99_ms),
            (Some(50.0), Some(19.0), Some(30.5))
        );
        assert!(c1.all_good);
        assert_eq!(c16.rps, Some(125.0));
        assert!(!c16.all_good, "6 failed");
        assert!(c64.rps.is_none() && !c64.all_good, "missing level");
    }

    #[test]
    fn http_script_loads_every_level_then_quits() {
        let script = http_script();
        for (clients, requests) in HTTP_LEVELS {
            assert!(script.contains(&format!("--concurrency {clients} --requests {requests}")));
            assert!(script.contains(&format!("s/^/BENCH c{clients} /")));
        }
        assert!(script.contains("/quit") && script.contains("nc -w 2 $G 7"));
        let page = linux_page();
        assert!(page.contains(e2e_httpd::marker()) && (620..760).contains(&page.len()));
        assert!(linux_init().contains("httpd -p 80 -h /www"));
    }

    #[test]
    fn init_serves_both_modes() {
        let init = linux_init();
        assert!(init.contains("net)") && init.contains("disk)") && init.contains("httpd)"));
        assert!(init.contains("ip addr add 10.0.0.2/24 dev eth0"));
    }
}
