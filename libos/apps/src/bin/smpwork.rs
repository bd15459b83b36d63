//! `smpwork`: the same known work on every vCPU at once.
//!
//! Brings up every vCPU the domain has (`kernel::smp::start_secondaries`),
//! then pins one task to each with `spawn_on`: each sums
//! `i * (i + seed)` over `iterations=N` steps (default 100,000,000, some 0.3 s of QEMU; seed =
//! vCPU + 1), which has a closed form to check it against, and notes
//! the vCPU it ran on and its start and end in Xen's system time. The
//! app prints one line per vCPU, with the time Xen accounted it as
//! running (`VCPUOP_get_runstate_info`) over the run, and fails unless
//! every checksum is right, every task ran where it was pinned, every
//! two tasks' intervals overlap (the vCPUs worked at the same time in
//! Xen's time, even on a host with fewer cores) and every vCPU was
//! running for at least a tenth of its task's interval. `vcpus=N` makes
//! it fail unless the domain has N vCPUs.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// The work and its expected result (host-tested below).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod checksum {
    /// Sums `i * (i + seed)` for `i` in `0..iterations`, wrapping, one
    /// step at a time (`black_box` keeps the compiler from using the
    /// closed form itself).
    pub fn work(seed: u64, iterations: u64) -> u64 {
        let mut acc = 0u64;
        for i in 0..iterations {
            let i = core::hint::black_box(i);
            acc = acc.wrapping_add(i.wrapping_mul(i.wrapping_add(seed)));
        }
        acc
    }

    /// [`work`]'s result from the closed form: the sum of `i²` plus
    /// `seed` times the sum of `i`, modulo 2^64.
    pub fn expected(seed: u64, iterations: u64) -> u64 {
        let n = u128::from(iterations);
        let squares = n.saturating_sub(1) * n * (2 * n).saturating_sub(1) / 6;
        let plain = n.saturating_sub(1) * n / 2;
        (squares.wrapping_add(u128::from(seed).wrapping_mul(plain))) as u64
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_closed_form_matches_the_loop() {
            for (seed, n) in [
                (1, 0),
                (1, 1),
                (2, 2),
                (3, 1000),
                (4, 3_000_000),
                (9, 12345),
            ] {
                assert_eq!(work(seed, n), expected(seed, n), "seed {seed}, n {n}");
            }
        }
    }
}

#[cfg(target_os = "none")]
mod guest {
    use super::checksum;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU32, Ordering};
    use core::time::Duration;
    use libos::kernel::{sched, smp, time};
    use libos::task::{Mutex, Signal};
    use libos::{fail, println, AppResult, Env};

    extern crate alloc;

    /// What one pinned task reports.
    #[derive(Clone, Copy, Default)]
    struct Report {
        checksum: u64,
        /// The vCPU it found itself on at its start and at its end.
        ran_on: (u32, u32),
        start_ns: u64,
        end_ns: u64,
    }

    /// `a / b` with two decimals.
    struct Ratio(u64, u64);

    impl core::fmt::Display for Ratio {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let hundredths = self.0.saturating_mul(100) / self.1.max(1);
            write!(f, "{}.{:02}", hundredths / 100, hundredths % 100)
        }
    }

    fn main(env: &Env<'_>) -> AppResult {
        let iterations: u64 = env
            .arg("iterations")
            .and_then(|s| s.parse().ok())
            .unwrap_or(100_000_000);
        let total = match smp::start_secondaries() {
            Ok(total) => total,
            Err(why) => fail!("bringing up the vCPUs: {why}"),
        };
        if let Some(want) = env.arg("vcpus").and_then(|s| s.parse::<u32>().ok()) {
            if want != total {
                fail!("{total} vCPUs running, expected {want}");
            }
        }
        if total < 2 {
            fail!("needs at least 2 vCPUs (give the domain vcpus=N)");
        }
        let before: Vec<u64> = (0..total)
            .map(|v| smp::running_ns(v).unwrap_or(0))
            .collect();
        let reports: Arc<Vec<Mutex<Report>>> =
            Arc::new((0..total).map(|_| Mutex::new(Report::default())).collect());
        let finished = Arc::new(AtomicU32::new(0));
        let all_done = Arc::new(Signal::new());
        // The secondaries' tasks first: they start as soon as their vCPU
        // is kicked, vCPU 0's when its executor next runs.
        for vcpu in (0..total).rev() {
            let (reports, finished, all_done) =
                (reports.clone(), finished.clone(), all_done.clone());
            let spawned = sched::spawn_on(vcpu, async move {
                let start_ns = time::now_ns();
                let first = smp::current_vcpu();
                let sum = checksum::work(u64::from(vcpu) + 1, iterations);
                let end_ns = time::now_ns();
                *reports[vcpu as usize].lock() = Report {
                    checksum: sum,
                    ran_on: (first, smp::current_vcpu()),
                    start_ns,
                    end_ns,
                };
                if finished.fetch_add(1, Ordering::SeqCst) + 1 == total {
                    all_done.set();
                }
            });
            if let Err(e) = spawned {
                fail!("spawn_on({vcpu}): {e}");
            }
        }
        let waited = sched::block_on(sched::timeout(
            Duration::from_secs(120),
            core::pin::pin!(all_done.wait()),
        ));
        if waited.is_err() {
            fail!(
                "only {} of {total} tasks finished within 120 s",
                finished.load(Ordering::SeqCst)
            );
        }
        let reports: Vec<Report> = reports.iter().map(|r| *r.lock()).collect();
        let mut failures = 0;
        let mut running_sum = 0;
        for (vcpu, report) in reports.iter().enumerate() {
            let vcpu = vcpu as u32;
            let expected = checksum::expected(u64::from(vcpu) + 1, iterations);
            let running = smp::running_ns(vcpu)
                .unwrap_or(0)
                .saturating_sub(before[vcpu as usize]);
            running_sum += running;
            let interval = report.end_ns.saturating_sub(report.start_ns);
            println!(
                "smpwork: vCPU {vcpu}: checksum {:#018x} (expected {expected:#018x}), ran on vCPU {}/{}, \
                 work {}..{} ns ({} ms), running {} ms over the run",
                report.checksum,
                report.ran_on.0,
                report.ran_on.1,
                report.start_ns,
                report.end_ns,
                interval / 1_000_000,
                running / 1_000_000
            );
            if report.checksum != expected {
                println!("smpwork: vCPU {vcpu}: wrong checksum");
                failures += 1;
            }
            if report.ran_on != (vcpu, vcpu) {
                println!("smpwork: vCPU {vcpu}: its task ran on {:?}", report.ran_on);
                failures += 1;
            }
            if running < interval / 10 {
                println!("smpwork: vCPU {vcpu}: Xen accounted it running for less than a tenth of its work");
                failures += 1;
            }
        }
        let mut overlapping = 0;
        for a in 0..reports.len() {
            for b in a + 1..reports.len() {
                let (ra, rb) = (reports[a], reports[b]);
                let overlap = ra
                    .end_ns
                    .min(rb.end_ns)
                    .saturating_sub(ra.start_ns.max(rb.start_ns));
                if overlap == 0 {
                    println!("smpwork: vCPUs {a} and {b}: work intervals do not overlap");
                    failures += 1;
                } else {
                    overlapping += 1;
                }
            }
        }
        let start = reports.iter().map(|r| r.start_ns).min().unwrap_or(0);
        let end = reports.iter().map(|r| r.end_ns).max().unwrap_or(0);
        let busy: u64 = reports.iter().map(|r| r.end_ns - r.start_ns).sum();
        let span = (end - start).max(1);
        println!(
            "smpwork: {total} vCPUs, {iterations} iterations each: {overlapping} of {} pairs overlap; \
             all work in {} ms of system time: {} ms of work intervals (overlap {}), \
             {} ms running by Xen's accounting (parallelism {})",
            total * (total - 1) / 2,
            span / 1_000_000,
            busy / 1_000_000,
            Ratio(busy, span),
            running_sum / 1_000_000,
            Ratio(running_sum, span),
        );
        if failures > 0 {
            fail!("{failures} check(s) failed");
        }
        Ok(())
    }

    libos::entry!(main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("smpwork is a Xen guest: build it with `cargo xtask build --app smpwork`");
}
