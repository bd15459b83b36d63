//! `sleeper`: sleeps, and shows from Xen's own accounting that it blocked.
//!
//! Two tasks sleep 2 s together; the app reads the vCPU's runstate
//! (`VCPUOP_get_runstate_info`) before and after and fails unless most of
//! the elapsed time was spent blocked rather than running. A shutdown
//! request from the toolstack (`xl shutdown`) cuts the sleep short: it
//! prints `sleeper: stopped on request after N ms` and returns.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::time::Duration;
    use libos::kernel::{sched, time};
    use libos::task::{select, Either};
    use libos::{fail, lifecycle, println, AppResult, Env};

    fn main(env: &Env<'_>) -> AppResult {
        let seconds: u64 = env.arg("seconds").and_then(|s| s.parse().ok()).unwrap_or(2);
        let Ok((run0, blocked0)) = time::runstate() else {
            fail!("VCPUOP_get_runstate_info failed");
        };
        let start = time::now_ns();
        sched::spawn(async move {
            sched::sleep(Duration::from_millis(500)).await;
            println!("sleeper: background task woke after 0.5 s");
        });
        let sleep = sched::sleep(Duration::from_secs(seconds));
        if let Either::Right(()) = sched::block_on(select(sleep, lifecycle::stop_requested())) {
            println!(
                "sleeper: stopped on request after {} ms",
                (time::now_ns() - start) / 1_000_000
            );
            return Ok(());
        }
        let elapsed = time::now_ns() - start;
        let Ok((run1, blocked1)) = time::runstate() else {
            fail!("VCPUOP_get_runstate_info failed");
        };
        let (ran, blocked) = (run1 - run0, blocked1 - blocked0);
        let (wall_s, _) = time::wallclock();
        println!(
            "sleeper: slept {} ms; Xen accounted {} ms running, {} ms blocked; timer fired {} times; wallclock {} s",
            elapsed / 1_000_000,
            ran / 1_000_000,
            blocked / 1_000_000,
            sched::timer_fires(),
            wall_s
        );
        if elapsed < seconds * 1_000_000_000 {
            fail!("woke early: {elapsed} ns");
        }
        if blocked < elapsed / 2 || ran > elapsed / 4 {
            fail!("did not block: ran {ran} ns, blocked {blocked} ns of {elapsed} ns");
        }
        Ok(())
    }

    libos::entry!(main);
}

/// On the host this binary is only a pointer to the real thing.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("sleeper is a Xen guest: build it with `cargo xtask build --app sleeper`");
}
