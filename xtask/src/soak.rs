//! `cargo xtask soak`: both devices run for a long time, then the guest's
//! own accounting must show that nothing grew (issue 13, part 3).
//!
//! One `soak` guest (`libos/apps/src/bin/soak.rs`) with a vif and a disk
//! runs in a dom0 session; dom0's script ([`dom0_script`]) does, in order:
//!
//! 1. a warm-up: one echo round, one data pass, one detach/attach of each
//!    device, so that what is allocated once (the first connection's
//!    buffers, a lazily built table) is not counted as growth;
//! 2. the **before** accounting: `xl sysrq NAME m` makes the guest print
//!    its accounting line (`libos::accounting`: grants live, quarantined
//!    and leaked, free frames, heap bytes, mapping-window slots, bad frees,
//!    bound event-channel ports, tasks, timers);
//! 3. the network: `loadgen echo` rounds until [`Plan::net_mib`] MiB went
//!    through the guest's echo server, every byte compared in dom0;
//! 4. the disk: `passes N` to the guest's port 9 makes it write its whole
//!    disk N times with fresh contents and read each pass back; dom0 then
//!    compares `md5sum` of the image with the MD5 the guest reports;
//! 5. [`Plan::cycles`] cycles of `xl network-detach` + `network-attach`
//!    (waiting for the guest's `net: vif/0 regained` and a ping) and `xl
//!    block-detach` + `block-attach` (waiting for the guest to read back
//!    its first MiB as written);
//! 6. a last echo round, then the **after** accounting, then `quit`.
//!
//! A third accounting line, **mid**, is taken halfway through the cycles.
//! The verdict: every echo round intact, the image's MD5 the guest's,
//! every cycle complete, the before and after lines equal counter by
//! counter, except the heap's bytes, which may move by [`HEAP_SLACK`]
//! (the table is printed either way), and a clean poweroff.
//! `cargo xtask test` runs a small plan ([`Plan::SMOKE`]); `cargo xtask
//! soak` the issue's (1 GiB each way, 100 cycles) or what its flags say.

use rig::{Ending, GuestMode, GuestReport, GuestSpec};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How much the soak does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// MiB sent through the echo server (in 16 MiB rounds, 2 connections).
    pub net_mib: u64,
    /// The disk's size in MiB (dom0 keeps the image in its RAM).
    pub disk_mib: u64,
    /// Whole-disk write + read-back passes.
    pub passes: u64,
    /// Detach/attach cycles of each device.
    pub cycles: u64,
}

impl Plan {
    /// The issue's soak: 1 GiB through echo, 1 GiB written and read back
    /// on disk, 100 cycles of each device.
    pub const FULL: Plan = Plan {
        net_mib: 1024,
        disk_mib: 64,
        passes: 16,
        cycles: 100,
    };

    /// What `cargo xtask test` runs: the same steps, small.
    pub const SMOKE: Plan = Plan {
        net_mib: 32,
        disk_mib: 16,
        passes: 2,
        cycles: 3,
    };

    /// MiB per echo round (2 connections of half each).
    const ROUND_MIB: u64 = 16;

    fn rounds(&self) -> u64 {
        self.net_mib.div_ceil(Self::ROUND_MIB).max(1)
    }

    /// A generous bound on the session under QEMU's emulation.
    pub fn timeout(&self) -> Duration {
        // About 2 MiB/s through echo and through the disk, 10 s per
        // cycle, plus the boot and the warm-up.
        let seconds = 240 + self.net_mib + 2 * self.passes * self.disk_mib + 10 * self.cycles;
        Duration::from_secs(seconds)
    }
}

/// The guest's name in `mode`.
pub fn name(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "soak",
        GuestMode::Pvh => "pvh-soak",
    }
}

/// The guest's address in `mode`.
fn ip(mode: GuestMode) -> &'static str {
    match mode {
        GuestMode::Pv => "10.0.0.12",
        GuestMode::Pvh => "10.0.0.13",
    }
}

/// Waits (up to `seconds`) until the guest's log has at least `count`
/// lines with `text` (`count` is a shell expression).
fn wait_count(text: &str, count: &str, seconds: u32) -> String {
    let tries = seconds * 5;
    format!(
        r#"n=0
while [ $n -lt {tries} ] && [ "$(grep -c "{text}" "$log" 2> /dev/null)" -lt {count} ]; do
  n=$((n+1))
  sleep 0.2
done
"#
    )
}

/// dom0's side: see the module docs.
fn dom0_script(plan: &Plan, ip: &str, mac: &str) -> String {
    let half = Plan::ROUND_MIB / 2 * 1024 * 1024;
    let disk = "format=raw,vdev=xvda,access=rw,backendtype=phy,script=block-rig,target=$img";
    format!(
        r#"G={ip}
log=/var/log/xen/console/guest-$NAME.log
img=/tmp/soak-$NAME.img
acct() {{
  before=$(grep -c "sysrq 'm': accounting" "$log")
  xl sysrq $NAME m
  {wait_acct}  echo "SOAK accounting $1: $(grep "sysrq 'm': accounting" "$log" | tail -1 | sed 's/.*accounting //')"
}}
echo_rounds() {{
  i=0; good=0
  while [ $i -lt $1 ]; do
    out=$({loadgen} echo $G:7 --concurrency 2 --bytes {half} --timeout 300 2>&1)
    echo "$out" | grep -q "failed=0" && good=$((good+1))
    echo "$out" | grep LOADGEN | sed 's/^/SOAK echo: /'
    i=$((i+1))
  done
  echo "SOAK echo $2: $good of $1 rounds intact"
}}
passes() {{
  answer=$(echo "passes $1" | timeout 3000 nc $G 9)
  echo "SOAK passes $2: $answer"
  echo "SOAK image md5 $2: $(md5sum < "$img" | cut -d' ' -f1)"
}}
cycle() {{
  c=$1
  xl network-detach $NAME 0 2>&1 | sed 's/^/SOAK xl: /'
  {wait_lost}  xl network-attach $NAME mac={mac} ip=$G script=vif-rig 2>&1 | sed 's/^/SOAK xl: /'
  {wait_regained}  ping -c 1 -W 2 $G > /dev/null 2>&1 || ping -c 1 -W 5 $G > /dev/null 2>&1
  vif=$?
  xl block-detach $NAME xvda 2>&1 | sed 's/^/SOAK xl: /'
  xl block-attach $NAME "{disk}" 2>&1 | sed 's/^/SOAK xl: /'
  {wait_attach}  grep -q "soak: disk attach $((c+1)): first MiB as written" "$log"
  vbd=$?
  echo "SOAK cycle $c: vif $([ $vif = 0 ] && echo ok || echo FAILED) vbd $([ $vbd = 0 ] && echo ok || echo FAILED)"
}}
{ping}{wait_disk}acct boot
t0=$(cut -d' ' -f1 /proc/uptime)
echo_rounds 1 warm-up
passes 1 warm-up
cycle 1
sleep 2
acct before
echo_rounds {rounds} soak
t1=$(cut -d' ' -f1 /proc/uptime)
passes {passes} soak
t2=$(cut -d' ' -f1 /proc/uptime)
c=2
while [ $c -le {last_cycle} ]; do
  cycle $c
  [ $c = {mid_cycle} ] && acct mid
  c=$((c+1))
done
t3=$(cut -d' ' -f1 /proc/uptime)
echo_rounds 1 final
sleep 2
acct after
echo "SOAK seconds: warm-up and echo $t0..$t1, disk $t1..$t2, cycles $t2..$t3"
echo quit | timeout 10 nc $G 7 > /dev/null
{wait_end}rm -f "$img"
"#,
        loadgen = crate::load::DOM0_PATH,
        wait_acct = wait_count("sysrq 'm': accounting", "$((before+1))", 20),
        wait_lost = wait_count("net: vif/0 lost", "$c", 30),
        wait_regained = wait_count("net: vif/0 regained", "$c", 60),
        wait_attach = wait_count("soak: disk attach", "$((c+1))", 60),
        ping = crate::e2e_net::wait_for_ping("SOAK", 120),
        wait_disk = wait_count("soak: disk attach 1:", "1", 60),
        rounds = plan.rounds(),
        passes = plan.passes,
        last_cycle = plan.cycles + 1,
        mid_cycle = plan.cycles / 2 + 1,
        wait_end = wait_count("soak: ending", "1", 30),
    )
}

/// The soak guest in `mode` following `plan`.
pub fn guest(soak_elf: &Path, loadgen: &Path, mode: GuestMode, plan: &Plan) -> GuestSpec {
    let (name, ip) = (name(mode), ip(mode));
    let last: u8 = ip
        .rsplit('.')
        .next()
        .and_then(|b| b.parse().ok())
        .unwrap_or(12);
    let mac = format!("00:16:3e:00:01:{last:02x}");
    let mut guest = GuestSpec::new(name, soak_elf).with_mode(mode);
    guest.cmdline = format!("ip={ip}/24 gw=10.0.0.254");
    guest.memory_mib = 64;
    guest.timeout = plan.timeout();
    guest.extra_config = vec![
        format!("vif = ['mac={mac},ip={ip},script=vif-rig']"),
        format!(
            "disk = ['format=raw,vdev=xvda,access=rw,backendtype=phy,script=block-rig,target=/tmp/soak-{name}.img']"
        ),
    ];
    guest.dom0_tools = vec![loadgen.to_path_buf()];
    let image = format!(
        "rm -f /tmp/soak-$NAME.img\ndd if=/dev/zero of=/tmp/soak-$NAME.img bs=1M count=0 seek={} 2> /dev/null || echo \"SOAK FAILED: cannot create the image\"\n",
        plan.disk_mib
    );
    guest.dom0_script = Some(image + &dom0_script(plan, ip, &mac));
    guest
}

/// The counters of an accounting line (`key=value` pairs).
pub fn counters(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// How far `heap_bytes` may move without growing: the heap's footprint
/// also depends on the shape of its `BTreeMap`s (tasks, ports, timers,
/// xenstore requests and watches), which follows the order of inserts
/// and removals, not only what they hold; one node is a few hundred
/// bytes. A leak of one 16-byte block per detach/attach cycle is 1.6 KiB
/// over the full soak's 100 cycles.
pub const HEAP_SLACK: u64 = 512;

/// The before/mid/after table and whether the counters held: every
/// counter equal before and after, except `heap_bytes`, which may differ
/// by at most [`HEAP_SLACK`], and `free_frames`, which may fall by as
/// many frames as `map_tables` (the page tables a PV direct map takes as
/// it grows with the allocator's high-water mark) rises, and no more.
/// `mid` (taken halfway through the cycles) is shown beside them.
pub fn compare(before: &str, mid: Option<&str>, after: &str) -> (String, Result<(), String>) {
    let (a, m, b) = (counters(before), mid.map(counters), counters(after));
    let mut table = format!(
        "{:<20} {:>12} {:>12} {:>12}\n",
        "counter", "before", "mid", "after"
    );
    let mut grew = Vec::new();
    // How many frames the direct map took as page tables meanwhile
    // (`None` if its count fell, which it never may).
    let tables = |line: &BTreeMap<String, u64>| line.get("map_tables").copied().unwrap_or(0);
    let grown_tables = tables(&b).checked_sub(tables(&a));
    for (key, old) in &a {
        let new = b.get(key).copied();
        let shown = new.map_or("missing".to_string(), |v| v.to_string());
        let middle = m
            .as_ref()
            .and_then(|m| m.get(key))
            .map_or("-".to_string(), |v| v.to_string());
        let held = match new {
            Some(new) if key == "heap_bytes" => new.abs_diff(*old) <= HEAP_SLACK,
            Some(new) if key == "free_frames" => {
                grown_tables.is_some_and(|grown| new.checked_add(grown) == Some(*old))
            }
            Some(new) if key == "map_tables" => new >= *old,
            Some(new) => new == *old,
            None => false,
        };
        let mark = match new {
            _ if !held => "  <- differs",
            Some(new) if new != *old && key == "heap_bytes" => "  (within the heap's slack)",
            Some(new) if new != *old => "  (the direct map grew: free + tables held)",
            _ => "",
        };
        table.push_str(&format!(
            "{key:<20} {old:>12} {middle:>12} {shown:>12}{mark}\n"
        ));
        if !held {
            grew.push(format!("{key} {old} -> {shown}"));
        }
    }
    let moved = size_changes(before, after);
    if !moved.is_empty() {
        table.push_str(&format!("heap blocks by size, before -> after: {moved}\n"));
    }
    let result = if a.is_empty() {
        Err("no counters in the before line".to_string())
    } else if a.len() != b.len() {
        Err(format!("{} counters before, {} after", a.len(), b.len()))
    } else if grew.is_empty() {
        Ok(())
    } else {
        Err(format!("counters changed: {}", grew.join(", ")))
    };
    (table, result)
}

/// The size classes whose live heap blocks differ between two lines'
/// `heap_by_size=16:n,32:n,…` (`"64 B: 10 -> 11, …"`; empty if none
/// differ or a line has none). Shown, not judged: it says which size
/// grew when `heap_bytes` did.
pub fn size_changes(before: &str, after: &str) -> String {
    let classes = |line: &str| -> Vec<(String, String)> {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix("heap_by_size="))
            .map(|list| {
                list.split(',')
                    .filter_map(|class| class.split_once(':'))
                    .map(|(size, count)| (size.to_string(), count.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old, new) = (classes(before), classes(after));
    old.iter()
        .zip(&new)
        .filter(|((size_a, a), (size_b, b))| size_a == size_b && a != b)
        .map(|((size, a), (_, b))| format!("{size} B: {a} -> {b}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The value after `prefix` on the last dom0 line starting with it.
fn dom0_value<'a>(report: &'a GuestReport, prefix: &str) -> Option<&'a str> {
    report
        .dom0_output
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix(prefix))
}

/// Named check results.
pub type Checks = Vec<(String, Result<(), String>)>;

/// The soak's checks, and the before/after table.
pub fn check(report: &GuestReport, plan: &Plan) -> (String, Checks) {
    let mut checks = Vec::new();
    let rounds = plan.rounds();
    let echo = |label: &str, want: u64| match dom0_value(report, &format!("SOAK echo {label}: ")) {
        Some(text) if text == format!("{want} of {want} rounds intact") => Ok(()),
        Some(text) => Err(format!("echo {label}: {text}")),
        None => Err(format!("no echo {label} line")),
    };
    checks.push((
        format!(
            "{} MiB through echo, every byte compared in dom0",
            rounds * Plan::ROUND_MIB
        ),
        echo("soak", rounds).and(echo("final", 1)),
    ));
    let disk = (|| {
        let answer = dom0_value(report, "SOAK passes soak: ").ok_or("no answer to the passes")?;
        let md5 = answer
            .strip_prefix(&format!("done {} passes, ", plan.passes))
            .and_then(|rest| rest.rsplit_once("md5 "))
            .map(|(_, md5)| md5.trim())
            .ok_or(format!("the guest answered {answer:?}"))?;
        let image = dom0_value(report, "SOAK image md5 soak: ").ok_or("no image md5")?;
        if md5 == image.trim() {
            Ok(())
        } else {
            Err(format!(
                "guest md5 {md5}, dom0's md5sum of the image {image}"
            ))
        }
    })();
    checks.push((
        format!(
            "{} MiB written and read back on disk, the image's md5 in dom0 the guest's",
            plan.passes * plan.disk_mib
        ),
        disk,
    ));
    let cycles: Vec<&String> = report
        .dom0_output
        .iter()
        .filter(|line| line.starts_with("SOAK cycle "))
        .collect();
    let good = cycles
        .iter()
        .filter(|line| line.ends_with("vif ok vbd ok"))
        .count() as u64;
    checks.push((
        format!(
            "{} detach/attach cycles of the vif and the disk",
            plan.cycles + 1
        ),
        if good == plan.cycles + 1 {
            Ok(())
        } else {
            Err(format!(
                "{good} of {} cycles complete: {}",
                plan.cycles + 1,
                cycles
                    .iter()
                    .filter(|l| !l.ends_with("vif ok vbd ok"))
                    .take(3)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        },
    ));
    let (table, equal) = match (
        dom0_value(report, "SOAK accounting before: "),
        dom0_value(report, "SOAK accounting after: "),
    ) {
        (Some(before), Some(after)) => {
            compare(before, dom0_value(report, "SOAK accounting mid: "), after)
        }
        _ => (
            String::new(),
            Err("no before/after accounting lines".to_string()),
        ),
    };
    checks.push((
        "the guest's accounting is the same before and after (heap within 512 B)".into(),
        equal,
    ));
    checks.push((
        "the guest ends cleanly on quit".into(),
        if report.ending == Ending::Poweroff {
            Ok(())
        } else {
            Err(format!("ended {} ({})", report.ending, report.evidence))
        },
    ));
    let prefix = if report.name == name(GuestMode::Pvh) {
        "pvh soak"
    } else {
        "soak"
    };
    let checks = checks
        .into_iter()
        .map(|(name, result)| {
            let result = result.map_err(|e| {
                format!(
                    "{e}\n  ending {} ({})\n  console (last 40):\n    {}\n  dom0 (last 40):\n    {}",
                    report.ending,
                    report.evidence,
                    tail(&report.console, 40),
                    tail(&report.dom0_output, 40)
                )
            });
            (format!("{prefix}: {name}"), result)
        })
        .collect();
    (table, checks)
}

fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n    ")
}

/// Runs the soak in each of `modes` (one dom0 session) and prints each
/// guest's before/after table.
pub fn run(
    rig: &rig::Rig,
    soak_elf: &Path,
    loadgen: &Path,
    modes: &[GuestMode],
    plan: &Plan,
) -> Vec<(String, Result<(), String>)> {
    let specs: Vec<GuestSpec> = modes
        .iter()
        .map(|&mode| guest(soak_elf, loadgen, mode, plan))
        .collect();
    let limit = Duration::from_secs(120) + specs.iter().map(|g| g.timeout).sum::<Duration>();
    let session = match rig.run_domus(&specs, limit) {
        Ok(session) => session,
        Err(e) => return vec![("soak: run".into(), Err(e.to_string()))],
    };
    let mut results = Vec::new();
    for &mode in modes {
        match session.guests.iter().find(|g| g.name == name(mode)) {
            Some(report) => {
                let (table, checks) = check(report, plan);
                println!("soak ({mode}): the guest's accounting, before and after\n{table}");
                for line in report
                    .dom0_output
                    .iter()
                    .filter(|l| l.starts_with("SOAK seconds"))
                {
                    println!("soak ({mode}): {line}");
                }
                results.extend(checks);
            }
            None => results.push((
                format!("{mode} soak"),
                Err(format!("no report for {}", name(mode))),
            )),
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_lines_pass_and_a_grown_counter_fails_by_name() {
        let before = "grants_live=10 heap_bytes=4096 tasks=5";
        let (table, result) = compare(before, None, before);
        assert!(result.is_ok());
        assert!(table.contains("grants_live"));
        let (table, result) = compare(before, None, "grants_live=11 heap_bytes=4096 tasks=5");
        assert!(table.contains("<- differs"));
        assert_eq!(result, Err("counters changed: grants_live 10 -> 11".into()));
        assert!(compare("", None, "").1.is_err());
        assert!(compare(before, None, "grants_live=10").1.is_err());
    }

    #[test]
    fn the_size_classes_that_moved_are_named() {
        let before = "heap_bytes=96 heap_by_size=16:2,32:1,64:0";
        let after = "heap_bytes=160 heap_by_size=16:2,32:1,64:1";
        assert_eq!(size_changes(before, after), "64 B: 0 -> 1");
        assert_eq!(size_changes(before, before), "");
        assert_eq!(size_changes("heap_bytes=96", after), "");
        let (table, _) = compare(before, None, after);
        assert!(table.contains("64 B: 0 -> 1"), "{table}");
    }

    #[test]
    fn the_heap_may_move_within_its_slack_but_not_grow() {
        let before = "grants_live=10 heap_bytes=4096 tasks=5";
        let within = "grants_live=10 heap_bytes=4192 tasks=5";
        let (table, result) = compare(before, Some(within), within);
        assert!(result.is_ok(), "{result:?}");
        assert!(table.contains("within the heap's slack"), "{table}");
        let grown = format!(
            "grants_live=10 heap_bytes={} tasks=5",
            4096 + HEAP_SLACK + 16
        );
        assert!(compare(before, None, &grown).1.is_err());
    }

    #[test]
    fn free_frames_may_become_direct_map_tables_but_not_vanish() {
        let before = "free_frames=1000 map_tables=0 tasks=5";
        let grown = "free_frames=996 map_tables=4 tasks=5";
        let (table, result) = compare(before, None, grown);
        assert!(result.is_ok(), "{result:?}");
        assert!(table.contains("free + tables held"), "{table}");
        let leaked = "free_frames=995 map_tables=4 tasks=5";
        assert_eq!(
            compare(before, None, leaked).1,
            Err("counters changed: free_frames 1000 -> 995".into())
        );
        assert!(
            compare(grown, None, before).1.is_err(),
            "tables never shrink"
        );
    }

    #[test]
    fn plans_round_up_and_bound_their_time() {
        assert_eq!(Plan::FULL.rounds(), 64);
        assert_eq!(Plan::SMOKE.rounds(), 2);
        assert!(Plan::SMOKE.timeout() < Plan::FULL.timeout());
    }
}
