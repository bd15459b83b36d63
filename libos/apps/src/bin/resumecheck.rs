//! `resumecheck`: survives `xl save` + `xl restore` (or `xl migrate`)
//! and shows that the kernel works after each resume.
//!
//! Before the suspend it starts a ticker task (a 100 ms sleep loop), a
//! watch on `data/resumecheck`, and a loop of 50 ms sleeps (one of whose
//! deadlines falls while the domain is away at each suspend); then it
//! prints `resumecheck: ready` and
//! waits for `resumes=N` resumes in a new domain (the lifecycle's
//! control task runs the suspend sequence when xl asks).
//! After each resume it checks, and prints one line per check:
//!
//! - the epoch moved, and the ticker ticks again (timers fire);
//! - xenstore answers (a write and read-back of `data/resumecheck`);
//! - the watch set before the suspend fires again (re-registered);
//! - timers across the move: a loop of 50 ms sleeps runs throughout;
//!   exactly one of its sleeps spans each resume (none lost, none
//!   woken twice), it wakes no earlier than its deadline nor before the
//!   domain ran again, and a deadline that fell inside the window the
//!   kernel reports (`kernel::suspend::last_outcome`) fired once, after
//!   the resume. Every move (even a migration's few hundred ms of
//!   downtime) is longer than one sleep, so such a deadline exists.
//!
//! Then it powers off; any failed check fails the app (a crash, which
//! xl reports).
#![cfg_attr(target_os = "none", no_std, no_main)]

libos::app! {
    use core::sync::atomic::{AtomicU64, Ordering};
    use core::time::Duration;
    use libos::drivers_pv::xenstore::{guest, TxId};
    use libos::kernel::{sched, suspend, time};
    use libos::{fail, println, AppResult, Env};

    static TICKS: AtomicU64 = AtomicU64::new(0);

    /// A sleep of the 50 ms loop that began in one epoch and woke in
    /// another: it spanned a resume.
    #[derive(Clone, Copy, Debug)]
    struct Spanning {
        began_epoch: u64,
        woke_epoch: u64,
        deadline: u64,
        woke_at: u64,
    }

    /// Every sleep that spanned a resume, in order.
    static SPANNING: spin::Mutex<alloc::vec::Vec<Spanning>> = spin::Mutex::new(alloc::vec::Vec::new());

    /// The 50 ms sleep loop: records the sleeps that span a resume.
    async fn sleeper() {
        loop {
            let began_epoch = suspend::epoch();
            let deadline = time::now_ns().saturating_add(50_000_000);
            sched::sleep_until(deadline).await;
            let woke_at = time::now_ns();
            let woke_epoch = suspend::epoch();
            if woke_epoch != began_epoch {
                SPANNING.lock().push(Spanning { began_epoch, woke_epoch, deadline, woke_at });
            }
        }
    }

    /// Checks the sleeps that spanned resume `resume` against the window
    /// the kernel reports for it; says whether the deadline fell inside.
    fn check_deadline(resume: u64) -> Result<bool, alloc::string::String> {
        use alloc::format;
        let Some(window) = suspend::last_outcome() else {
            return Err("the kernel reports no suspend".into());
        };
        let spans: alloc::vec::Vec<Spanning> =
            SPANNING.lock().iter().copied().filter(|s| s.woke_epoch == resume).collect();
        let [span] = spans.as_slice() else {
            return Err(format!("{} sleeps woke across resume {resume}, not 1: {spans:?}", spans.len()));
        };
        if span.began_epoch + 1 != resume {
            return Err(format!("the sleep spanning resume {resume} began in epoch {}", span.began_epoch));
        }
        if span.woke_at < span.deadline || span.woke_at < window.resumed_at_ns {
            return Err(format!(
                "the sleep spanning resume {resume} woke early: at {} ns, deadline {} ns, resumed at {} ns",
                span.woke_at, span.deadline, window.resumed_at_ns
            ));
        }
        let inside = (window.suspended_at_ns..window.resumed_at_ns).contains(&span.deadline);
        println!(
            "resumecheck: check deadline: the sleep spanning resume {resume} had its deadline {} ms {} the suspend, woke {} ms after the domain ran again ({} ms after its deadline)",
            span.deadline.abs_diff(window.suspended_at_ns) / 1_000_000,
            if span.deadline >= window.suspended_at_ns { "after" } else { "before" },
            (span.woke_at - window.resumed_at_ns) / 1_000_000,
            (span.woke_at - span.deadline) / 1_000_000,
        );
        Ok(inside)
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
        sched::spawn(ticker());
        let Ok(xs) = guest::xenstore() else {
            fail!("no xenstore connection");
        };
        let Ok(mut watch) = xs.watch("data/resumecheck").await else {
            fail!("cannot watch data/resumecheck");
        };
        // The watch's first event, at registration.
        let _ = watch.next_event().await;
        sched::spawn(sleeper());
        let (wall, _) = time::wallclock();
        println!("resumecheck: ready (epoch {}, wallclock {wall} s)", suspend::epoch());
        let deadline = time::now_ns().saturating_add(wait_s * 1_000_000_000);
        let mut inside = 0u64;
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
            match check_deadline(resume) {
                Ok(true) => inside += 1,
                Ok(false) => {}
                Err(why) => fail!("after resume {resume}: {why}"),
            }
        }
        // A 50 ms sleep is shorter than any move: a sleep that spanned
        // one and was still pending had its deadline inside the window.
        if inside == 0 {
            fail!("no sleep had its deadline inside a suspend window in {resumes} resumes");
        }
        println!(
            "resumecheck: check deadline: ok, {inside} of {resumes} resume(s) had a deadline pass while away, each woke once, after the resume"
        );
        println!("resumecheck: all checks passed after {resumes} resume(s)");
        Ok(())
    }

    libos::entry!(async main);
}
