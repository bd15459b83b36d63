//! `resumecheck`: survives `xl save` + `xl restore` (or `xl migrate`)
//! and shows that the kernel works after each resume.
//!
//! Before the suspend it starts a ticker task (a 100 ms sleep loop), a
//! watch on `data/resumecheck`, and a loop of 1 s sleeps (one of whose
//! deadlines falls while the domain is away at each suspend); then it prints `resumecheck: ready` and
//! waits for `resumes=N` resumes in a new domain (the control task
//! calls the suspend sequence when xl asks; `control=app` makes the app
//! take `control/shutdown` itself, for kernels without that task).
//! After each resume it checks, and prints one line per check:
//!
//! - the epoch moved, and the ticker ticks again (timers fire);
//! - xenstore answers (a write and read-back of `data/resumecheck`);
//! - the watch set before the suspend fires again (re-registered);
//! - each suspend made exactly one 1 s sleep wake late (its deadline
//!   passed while away: it fired once, after the resume).
//!
//! Then it powers off; any failed check fails the app (a crash, which
//! xl reports).
#![cfg_attr(target_os = "none", no_std, no_main)]

libos::app! {
    use core::sync::atomic::{AtomicU64, Ordering};
    use core::time::Duration;
    use libos::drivers_pv::control::{ControlEvent, ControlWatch, ShutdownRequest};
    use libos::drivers_pv::xenstore::{guest, TxId};
    use libos::kernel::{sched, suspend, time};
    use libos::lifecycle::suspend::suspend_and_resume;
    use libos::{fail, println, AppResult, Env};

    static TICKS: AtomicU64 = AtomicU64::new(0);
    static LATE_WAKES: AtomicU64 = AtomicU64::new(0);

    /// Takes `control/shutdown` itself and suspends on `suspend`.
    async fn own_control() {
        let Ok(xs) = guest::xenstore() else { return };
        let Ok(mut control) = ControlWatch::start(xs).await else {
            println!("resumecheck: cannot watch control/shutdown");
            return;
        };
        let _ = libos::drivers_pv::control::advertise(xs, true).await;
        loop {
            match control.next().await {
                Ok(ControlEvent::Shutdown(ShutdownRequest::Suspend)) => {
                    match suspend_and_resume().await {
                        Ok(resumed) => println!(
                            "resumecheck: suspend_and_resume: cancelled={} away {} ms",
                            resumed.cancelled,
                            resumed.suspended_for.as_millis()
                        ),
                        Err(why) => println!("resumecheck: suspend failed: {why}"),
                    }
                }
                Ok(other) => println!("resumecheck: control: {other:?} (ignored)"),
                Err(why) => {
                    println!("resumecheck: control watch: {why:?}");
                    sched::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn ticker() {
        loop {
            sched::sleep(Duration::from_millis(100)).await;
            TICKS.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn check(resume: u64) -> Result<(), &'static str> {
        if suspend::epoch() < resume {
            return Err("epoch did not move");
        }
        let ticks = TICKS.load(Ordering::Relaxed);
        sched::sleep(Duration::from_millis(350)).await;
        let more = TICKS.load(Ordering::Relaxed) - ticks;
        println!("resumecheck: check timers: {more} ticks in 350 ms after resume {resume}");
        if more < 2 {
            return Err("the ticker does not tick after the resume");
        }
        let xs = guest::xenstore().map_err(|_| "no xenstore")?;
        let value = alloc::format!("resume-{resume}");
        guest::within(guest::REPLY_TIMEOUT, xs.write(TxId::NONE, "data/resumecheck", value.as_bytes()))
            .await
            .map_err(|_| "xenstore write failed after resume")?;
        let back = guest::within(guest::REPLY_TIMEOUT, xs.read(TxId::NONE, "data/resumecheck"))
            .await
            .map_err(|_| "xenstore read failed after resume")?;
        if back != value.as_bytes() {
            return Err("xenstore read back something else");
        }
        println!("resumecheck: check xenstore: wrote and read back {value}");
        Ok(())
    }

    extern crate alloc;

    async fn main(env: &Env<'_>) -> AppResult {
        let resumes: u64 = env.arg("resumes").and_then(|s| s.parse().ok()).unwrap_or(1);
        let wait_s: u64 = env.arg("wait").and_then(|s| s.parse().ok()).unwrap_or(120);
        if let Err(why) = guest::connect(env.boot()) {
            fail!("xenstore: {why}");
        }
        if env.arg("control") == Some("app") {
            sched::spawn(own_control());
        }
        sched::spawn(ticker());
        let Ok(xs) = guest::xenstore() else {
            fail!("no xenstore connection");
        };
        let Ok(mut watch) = xs.watch("data/resumecheck").await else {
            fail!("cannot watch data/resumecheck");
        };
        // The watch's first event, at registration.
        let _ = watch.next_event().await;
        // One 1 s sleep after another: at each suspend one of their
        // deadlines passes while the domain is away, and that sleep must
        // wake once, late, right after the resume (not lost, not twice).
        sched::spawn(async {
            loop {
                let deadline = time::now_ns().saturating_add(1_000_000_000);
                let epoch = suspend::epoch();
                sched::sleep_until(deadline).await;
                let late_ms = time::now_ns().saturating_sub(deadline) / 1_000_000;
                if late_ms > 500 {
                    LATE_WAKES.fetch_add(1, Ordering::SeqCst);
                    println!(
                        "resumecheck: a 1 s sleep begun in epoch {epoch} woke in epoch {}, {late_ms} ms after its deadline",
                        suspend::epoch()
                    );
                }
            }
        });
        let (wall, _) = time::wallclock();
        println!("resumecheck: ready (epoch {}, wallclock {wall} s)", suspend::epoch());
        let deadline = time::now_ns().saturating_add(wait_s * 1_000_000_000);
        for resume in 1..=resumes {
            let waited = sched::timeout_at(deadline, core::pin::pin!(suspend::resumed())).await;
            if waited.is_err() {
                fail!("no resume {resume} within {wait_s} s");
            }
            let (wall, _) = time::wallclock();
            println!("resumecheck: resumed (epoch {}, wallclock {wall} s)", suspend::epoch());
            if let Err(why) = check(resume).await {
                fail!("after resume {resume}: {why}");
            }
            // The watch was registered again at the resume: it fires.
            let event = sched::timeout(Duration::from_secs(10), core::pin::pin!(watch.next_event())).await;
            match event {
                Ok(Ok(event)) => println!("resumecheck: check watch: fired again ({})", event.path),
                _ => fail!("after resume {resume}: the watch set before the suspend did not fire"),
            }
        }
        sched::sleep(Duration::from_secs(2)).await;
        let late = LATE_WAKES.load(Ordering::SeqCst);
        println!("resumecheck: check deadline: {late} sleep(s) woke late for {resumes} resume(s)");
        if late != resumes {
            fail!("{late} late wake-ups of the 1 s sleeps for {resumes} resumes");
        }
        println!("resumecheck: all checks passed after {resumes} resume(s)");
        Ok(())
    }

    libos::entry!(async main);
}
