//! What else the host did while a bench round ran, and whether that was
//! enough to skew the round.
//!
//! The rig is QEMU emulating the whole machine in software, so any other
//! work on the host's two cores slows the guests down, and the 1-minute
//! load average says too little, too late. A [`Sampler`] reads, every
//! half second, the host's busy CPU time (`/proc/stat`) and the CPU time
//! of this process and its children (our QEMU, `/proc/PID/stat`); the
//! difference is the CPU the rest of the host took. [`verdict`] calls a
//! round loaded when that averaged more than [`MEAN_LIMIT`] of a core
//! over the round, or more than [`BURST_LIMIT`] in its busiest
//! [`BURST_SECONDS`] (a build that takes both cores for half a minute
//! skews the one guest it overlaps even if the round's mean stays low).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A round is loaded when others used more than this many cores on
/// average over it…
pub const MEAN_LIMIT: f64 = 0.25;
/// …or more than this many in its busiest window of …
pub const BURST_LIMIT: f64 = 0.75;
/// … this many seconds.
pub const BURST_SECONDS: f64 = 10.0;
/// How often the sampler reads `/proc`.
const PERIOD: Duration = Duration::from_millis(500);
/// `/proc`'s CPU times are in USER_HZ ticks, 100 a second on every Linux
/// architecture's user ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// The host's load over a round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostLoad {
    /// Seconds over which CPU time was sampled.
    pub seconds: f64,
    /// Mean CPU the rest of the host used, in cores (1.0 = one core busy).
    pub other_cores: f64,
    /// The same in the busiest [`BURST_SECONDS`].
    pub busiest_other_cores: f64,
    /// Mean CPU our QEMU (and this process) used, in cores.
    pub rig_cores: f64,
    /// The 1-minute load average when the round started and ended.
    pub loadavg_start: f64,
    /// See `loadavg_start`.
    pub loadavg_end: f64,
}

/// Why a round counts as taken under load, or `None` if it was quiet.
pub fn verdict(load: &HostLoad) -> Option<String> {
    let percent = |cores: f64| (cores * 100.0).round();
    if load.other_cores > MEAN_LIMIT {
        Some(format!(
            "other work used {}% of a core on average (limit {}%)",
            percent(load.other_cores),
            percent(MEAN_LIMIT)
        ))
    } else if load.busiest_other_cores > BURST_LIMIT {
        Some(format!(
            "other work used {}% of a core in its busiest {BURST_SECONDS} s (limit {}%)",
            percent(load.busiest_other_cores),
            percent(BURST_LIMIT)
        ))
    } else {
        None
    }
}

/// One reading of `/proc`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// When it was read, seconds from the sampler's start.
    pub at: f64,
    /// The host's busy CPU ticks (all CPUs).
    pub busy: u64,
    /// This process's ticks.
    pub own: u64,
    /// Each child's pid and ticks.
    pub children: Vec<(u32, u64)>,
}

/// The rest of the host's ticks between two samples, and the rig's, or
/// `None` when a child exited in between (its last ticks are lost with
/// it, so the interval cannot be split).
pub fn interval(prev: &Sample, next: &Sample) -> Option<(f64, f64)> {
    let mut rig = next.own.saturating_sub(prev.own);
    for &(pid, before) in &prev.children {
        let after = next.children.iter().find(|(p, _)| *p == pid)?.1;
        rig += after.saturating_sub(before);
    }
    // A child born in between: all its ticks fall in this interval.
    for &(pid, ticks) in &next.children {
        if !prev.children.iter().any(|(p, _)| *p == pid) {
            rig += ticks;
        }
    }
    let busy = next.busy.saturating_sub(prev.busy);
    Some((busy.saturating_sub(rig) as f64, rig as f64))
}

/// The load over a series of samples (see [`HostLoad`]).
pub fn summarise(samples: &[Sample]) -> HostLoad {
    // (seconds, other ticks) per usable interval.
    let mut spans = Vec::new();
    let (mut seconds, mut other, mut rig) = (0.0, 0.0, 0.0);
    for pair in samples.windows(2) {
        if let Some((o, r)) = interval(&pair[0], &pair[1]) {
            let dt = pair[1].at - pair[0].at;
            spans.push((dt, o));
            seconds += dt;
            other += o;
            rig += r;
        }
    }
    let cores = |ticks: f64, secs: f64| {
        if secs > 0.0 {
            ticks / TICKS_PER_SECOND / secs
        } else {
            0.0
        }
    };
    // The busiest window of at least BURST_SECONDS (or the whole round if
    // shorter), by a sliding window over the intervals.
    let mut busiest: f64 = 0.0;
    let (mut start, mut win_secs, mut win_other) = (0, 0.0, 0.0);
    for &(dt, o) in &spans {
        win_secs += dt;
        win_other += o;
        while win_secs - spans[start].0 >= BURST_SECONDS {
            win_secs -= spans[start].0;
            win_other -= spans[start].1;
            start += 1;
        }
        if win_secs >= BURST_SECONDS.min(seconds) {
            busiest = busiest.max(cores(win_other, win_secs));
        }
    }
    HostLoad {
        seconds,
        other_cores: cores(other, seconds),
        busiest_other_cores: busiest,
        rig_cores: cores(rig, seconds),
        ..HostLoad::default()
    }
}

/// The busy ticks on `/proc/stat`'s first line (user, nice, system, irq,
/// softirq, steal; guest time is already in user).
pub fn busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let n: Vec<u64> = line
        .split_whitespace()
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    Some([0, 1, 2, 5, 6, 7].iter().filter_map(|&i| n.get(i)).sum())
}

/// A `/proc/PID/stat` line's parent pid and CPU ticks (utime + stime).
pub fn process_ticks(stat: &str) -> Option<(u32, u64)> {
    // The command name is in parentheses and may hold anything.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn read_sample(start: Instant) -> Sample {
    let me = std::process::id();
    let ticks = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| process_ticks(&s))
    };
    let mut children = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, t)) = ticks(&pid.to_string()) {
                if ppid == me {
                    children.push((pid, t));
                }
            }
        }
    }
    Sample {
        at: start.elapsed().as_secs_f64(),
        busy: std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| busy_ticks(&s))
            .unwrap_or(0),
        own: ticks("self").map_or(0, |(_, t)| t),
        children,
    }
}

/// The 1-minute load average.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Samples the host's load in a thread until [`Sampler::stop`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
    loadavg_start: f64,
}

impl Sampler {
    /// Starts sampling.
    pub fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut samples = vec![read_sample(start)];
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(PERIOD);
                samples.push(read_sample(start));
            }
            samples
        });
        Sampler {
            stop,
            thread,
            loadavg_start: loadavg(),
        }
    }

    /// Stops sampling and sums up.
    pub fn stop(self) -> HostLoad {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().unwrap_or_default();
        HostLoad {
            loadavg_start: self.loadavg_start,
            loadavg_end: loadavg(),
            ..summarise(&samples)
        }
    }
}

/// One line for the console.
pub fn describe(load: &HostLoad) -> String {
    format!(
        "host load over {:.0} s: others {:.0}% of a core (busiest {BURST_SECONDS} s: {:.0}%), \
         the rig {:.0}%; load average {:.2} -> {:.2}",
        load.seconds,
        load.other_cores * 100.0,
        load.busiest_other_cores * 100.0,
        load.rig_cores * 100.0,
        load.loadavg_start,
        load.loadavg_end
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: f64, busy: u64, own: u64, children: &[(u32, u64)]) -> Sample {
        Sample {
            at,
            busy,
            own,
            children: children.to_vec(),
        }
    }

    #[test]
    fn proc_lines_are_read() {
        let stat = "cpu  100 5 50 9000 10 1 2 3 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(busy_ticks(stat), Some(100 + 5 + 50 + 1 + 2 + 3));
        let qemu = "4242 (qemu-system-x86) S 77 4242 77 0 -1 4194560 5 0 0 0 1234 56 0 0 20 0 5 0";
        assert_eq!(process_ticks(qemu), Some((77, 1290)));
        let odd = "9 (a) b (c) R 1 9 9 0 -1 0 0 0 0 0 7 8 0 0";
        assert_eq!(process_ticks(odd), Some((1, 15)));
        assert_eq!(busy_ticks("intr 1 2 3"), None);
    }

    #[test]
    fn others_are_the_host_minus_the_rig() {
        let a = sample(0.0, 1000, 10, &[(7, 500)]);
        let b = sample(1.0, 1250, 11, &[(7, 650)]);
        assert_eq!(interval(&a, &b), Some((99.0, 151.0)));
        // QEMU born in between: all its ticks are the rig's.
        let c = sample(2.0, 1400, 11, &[(7, 700), (8, 60)]);
        assert_eq!(interval(&b, &c), Some((40.0, 110.0)));
        // QEMU gone: the interval cannot be split.
        let d = sample(3.0, 1500, 11, &[(8, 80)]);
        assert_eq!(interval(&c, &d), None);
    }

    #[test]
    fn a_quiet_round_is_not_flagged() {
        // The rig takes 1.5 cores, the rest of the host 5% of one.
        let samples: Vec<Sample> = (0..=120)
            .map(|i| sample(f64::from(i), 155 * i as u64, 0, &[(7, 150 * i as u64)]))
            .collect();
        let load = summarise(&samples);
        assert!((load.other_cores - 0.05).abs() < 1e-9, "{load:?}");
        assert!((load.rig_cores - 1.5).abs() < 1e-9);
        assert!((load.busiest_other_cores - 0.05).abs() < 1e-9);
        assert_eq!(verdict(&load), None);
    }

    #[test]
    fn a_steadily_loaded_round_is_flagged() {
        // Others take 40% of a core throughout.
        let samples: Vec<Sample> = (0..=60)
            .map(|i| sample(f64::from(i), 140 * i as u64, 0, &[(7, 100 * i as u64)]))
            .collect();
        let load = summarise(&samples);
        assert!((load.other_cores - 0.4).abs() < 1e-9, "{load:?}");
        let why = verdict(&load).expect("loaded");
        assert!(why.contains("40% of a core on average"), "{why}");
    }

    #[test]
    fn a_burst_is_flagged_though_the_mean_is_low() {
        // 300 s with others at 2%, but 20 s of a build taking both cores.
        let mut busy = 0;
        let samples: Vec<Sample> = (0..=300)
            .map(|i| {
                if i > 0 {
                    busy += 100 + if (100..120).contains(&i) { 200 } else { 2 };
                }
                sample(f64::from(i), busy, 0, &[(7, 100 * i as u64)])
            })
            .collect();
        let load = summarise(&samples);
        assert!(load.other_cores < MEAN_LIMIT, "{load:?}");
        assert!((load.busiest_other_cores - 2.0).abs() < 1e-9, "{load:?}");
        let why = verdict(&load).expect("loaded");
        assert!(why.contains("busiest"), "{why}");
    }

    #[test]
    fn the_sampler_sees_this_process() {
        let sampler = Sampler::start();
        std::thread::sleep(Duration::from_millis(1200));
        let load = sampler.stop();
        assert!(load.seconds >= 0.9, "{load:?}");
        assert!(load.other_cores >= 0.0 && load.rig_cores >= 0.0);
    }
}
