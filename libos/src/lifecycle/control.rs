//! The control task and the app's supervision, in the guest.
//!
//! [`entry!`](crate::entry) runs the app through [`run_async`] or
//! [`run_sync`]; both start the control task (a domU with xenstore only:
//! dom0 has none, and says so in the log). The task advertises
//! `control/feature-*`, watches `control/shutdown` and `control/sysrq`
//! (`drivers_pv::control`) and acts:
//!
//! - `poweroff`, `halt`, `reboot`: records the reason for the kernel's
//!   exit path, prints `Paravane: shutdown requested (WORD) by the
//!   toolstack`, raises the stop signal. An async app runs under
//!   [`supervise`]: it returns (or, if it ignores the signal, is dropped
//!   after [`STOP_GRACE`]), then the registered devices are closed and
//!   the kernel prints the exit line and shuts down with the reason
//!   asked for. A synchronous app is given the same grace; if it has not
//!   returned by then the control task closes the devices and ends the
//!   domain itself, from whichever `block_on` the app is in (an app that
//!   never calls one cannot be stopped before it returns: nothing else
//!   runs on its vCPU).
//! - `suspend`: [`super::suspend::suspend_and_resume`].
//! - `crash`: the task states, then `SHUTDOWN_crash`.
//! - sysrq `t`: the executor's task states; `m`: the accounting line
//!   ([`crate::accounting`]); `c`: the task states, then crash.
//! - anything else: reported, not acted on.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use drivers_pv::control::{self, ControlEvent, ControlWatch, ShutdownRequest, SysrqKey};
use drivers_pv::xenstore::guest::{self as store, within, REPLY_TIMEOUT};
use drivers_pv::xenstore::XsError;
use kernel::sched::{self, TaskState};
use kernel::shutdown::ShutdownReason;
use kernel::{println, time, AppError, AppResult, Role};

use super::{close_devices_with, is_stop_requested, suspend, Closed, STOP};
use crate::task::{select, Either, Signal};
use crate::Env;

/// How long an app has to return after the stop signal before it is
/// stopped anyway. Apps that watch the signal return at once and leave
/// their devices to the registered closers, which run after this.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long one registered device gets to close: a handshake with its
/// backend (Linux's netback took 0.7 to 1.5 s in the emulated rig).
pub const CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// How many times the watches are set again after xenstored dropped
/// them (`XS_RESET_WATCHES`) before the task gives up.
const MAX_REWATCH: u32 = 8;

/// The app's name, for the exit line the control task prints when it
/// ends an app that did not stop.
static APP_NAME: spin::Once<&'static str> = spin::Once::new();
/// The app runs under [`supervise`] (async entry), which ends it.
static SUPERVISED: AtomicBool = AtomicBool::new(false);
/// The app's main function has returned (or was dropped).
static APP_RETURNED: AtomicBool = AtomicBool::new(false);
/// Someone started closing the devices.
static WINDING_DOWN: AtomicBool = AtomicBool::new(false);
/// The devices are closed.
static WOUND_DOWN: Signal = Signal::new();
/// When the stop was requested (system time, ns; 0: not yet).
static REQUESTED_AT: AtomicU64 = AtomicU64::new(0);

/// Runs an async app: starts the control task, then drives `main` with
/// the one top-level `block_on` under [`supervise`].
pub fn run_async<F: Future<Output = AppResult>>(
    name: &'static str,
    env: &Env<'_>,
    main: F,
) -> AppResult {
    SUPERVISED.store(true, Ordering::SeqCst);
    start(name, env);
    sched::block_on(supervise(name, main))
}

/// Runs a synchronous app: starts the control task (it runs whenever
/// the app is inside a `block_on`), runs `main`, and if a stop was
/// requested closes the devices before the kernel's exit.
pub fn run_sync(name: &'static str, env: &Env<'_>, main: impl FnOnce() -> AppResult) -> AppResult {
    start(name, env);
    let result = main();
    APP_RETURNED.store(true, Ordering::SeqCst);
    if is_stop_requested() {
        sched::block_on(wind_down());
    }
    result
}

/// Runs a bare app (`entry!(bare main)`): no control task, no balloon,
/// no xenstore connection, so none of their code is linked in. For
/// programs that end by themselves: the toolstack's requests
/// (`xl shutdown`, `xl mem-set`, `xl save`) go unanswered (`xl destroy`
/// still ends it), and the boot log says so.
pub fn run_bare(env: &Env<'_>, main: impl FnOnce() -> AppResult) -> AppResult {
    if env.role() != Role::Dom0 {
        println!(
            "lifecycle: bare app: no control task, so xl shutdown, mem-set and save are not answered"
        );
    }
    main()
}

/// Starts the control task for a domU with a xenstore.
fn start(name: &'static str, env: &Env<'_>) {
    APP_NAME.call_once(|| name);
    if env.role() == Role::Dom0 {
        log::info!(
            "lifecycle: dom0 has no xenstore: no control task, shutdown requests are not watched"
        );
        return;
    }
    if let Err(error) = store::connect(env.boot()) {
        println!(
            "lifecycle: no xenstore ({error}): no control task, shutdown requests are not watched"
        );
        return;
    }
    sched::spawn(control_task());
    // Every domU follows `memory/target` (`xl mem-set`).
    match crate::balloon::spawn(env.boot()) {
        Ok(()) | Err(crate::balloon::SpawnError::AlreadyRunning) => {}
        Err(why) => println!("lifecycle: no balloon task ({why:?}): memory/target is not followed"),
    }
}

/// Drives `main` until it returns, or until [`STOP_GRACE`] after a stop
/// request (then `main` is dropped, its tasks left to the domain's end);
/// after a stop, closes the registered devices.
async fn supervise<F: Future<Output = AppResult>>(name: &str, main: F) -> AppResult {
    let stopped_and_waited = async {
        STOP.wait().await;
        sched::sleep(STOP_GRACE).await;
    };
    let result = match select(main, stopped_and_waited).await {
        Either::Left(result) => result,
        Either::Right(()) => {
            println!(
                "Paravane: app {name} did not stop within {} ms of the request: stopping it",
                STOP_GRACE.as_millis()
            );
            Ok(())
        }
    };
    APP_RETURNED.store(true, Ordering::SeqCst);
    if is_stop_requested() {
        wind_down().await;
    }
    result
}

/// Closes every registered device, each within [`CLOSE_LIMIT`], and
/// says what was closed. Runs once; a second caller waits for the first.
async fn wind_down() {
    if WINDING_DOWN.swap(true, Ordering::SeqCst) {
        WOUND_DOWN.wait().await;
        return;
    }
    let started = time::now_ns();
    let outcomes = close_devices_with(|close| async move {
        match sched::timeout(CLOSE_LIMIT, close).await {
            Ok(result) => result,
            Err(sched::TimedOut) => Err(AppError::new(format_args!(
                "not closed within {} ms",
                CLOSE_LIMIT.as_millis()
            ))),
        }
    })
    .await;
    let now = time::now_ns();
    println!(
        "Paravane: {} in {} ms; ending the domain {} ms after the request",
        describe_closed(&outcomes),
        now.saturating_sub(started) / 1_000_000,
        now.saturating_sub(REQUESTED_AT.load(Ordering::SeqCst)) / 1_000_000
    );
    WOUND_DOWN.set();
}

/// `devices closed: vif/0, vbd/51712 (failed: …)`.
fn describe_closed(outcomes: &[Closed]) -> String {
    if outcomes.is_empty() {
        return String::from("no devices left open to close");
    }
    let names: Vec<String> = outcomes
        .iter()
        .map(|closed| match &closed.result {
            Ok(()) => String::from(closed.name),
            Err(why) => format!("{} (failed: {why})", closed.name),
        })
        .collect();
    format!("devices closed: {}", names.join(", "))
}

/// The control task: advertise, watch, act. Ends only if xenstore
/// fails for good.
async fn control_task() {
    let Ok(xs) = store::xenstore() else {
        return;
    };
    match sched::timeout(
        REPLY_TIMEOUT,
        core::pin::pin!(control::advertise(xs, suspend::SUPPORTED)),
    )
    .await
    {
        Ok(Ok(nodes)) => log::info!("lifecycle: advertised {}", nodes.join(", ")),
        Ok(Err(error)) => println!("lifecycle: {error}"),
        Err(sched::TimedOut) => {
            println!("lifecycle: xenstored did not answer the control/feature-* writes")
        }
    }
    let mut rewatches = 0;
    loop {
        let mut watch = match within(REPLY_TIMEOUT, ControlWatch::start(xs)).await {
            Ok(watch) => watch,
            Err(error) => {
                println!(
                    "lifecycle: cannot watch {}: {error}; shutdown requests will not be seen",
                    control::SHUTDOWN_NODE
                );
                return;
            }
        };
        loop {
            let node = match watch.fired().await {
                Ok(node) => node,
                // xenstored dropped our watches (a reset): set them again.
                Err(XsError::BadArgument) if rewatches < MAX_REWATCH => {
                    rewatches += 1;
                    log::warn!("lifecycle: the control watches were dropped; setting them again");
                    break;
                }
                Err(error) => {
                    println!("lifecycle: watching {} failed: {error}; shutdown requests will not be seen", control::SHUTDOWN_NODE);
                    return;
                }
            };
            match within(REPLY_TIMEOUT, watch.take(node)).await {
                Ok(Some(event)) => act(event).await,
                Ok(None) => {}
                Err(error) => println!("lifecycle: reading {} failed: {error}", node.path()),
            }
        }
    }
}

/// Does what the toolstack asked.
async fn act(event: ControlEvent) {
    match event {
        ControlEvent::Shutdown(request) => match request {
            ShutdownRequest::Poweroff | ShutdownRequest::Halt => {
                stop(request, ShutdownReason::Poweroff)
            }
            ShutdownRequest::Reboot => stop(request, ShutdownReason::Reboot),
            ShutdownRequest::Suspend => match suspend::suspend_and_resume().await {
                Ok(resumed) => println!(
                    "Paravane: {} after {} ms",
                    if resumed.cancelled {
                        "suspend cancelled, resumed in place"
                    } else {
                        "resumed"
                    },
                    resumed.suspended_for.as_millis()
                ),
                Err(error) => {
                    println!("Paravane: suspend requested by the toolstack, not done: {error}")
                }
            },
            ShutdownRequest::Crash => {
                println!("Paravane: crash requested by the toolstack");
                dump_tasks();
                kernel::shutdown::crash();
            }
        },
        ControlEvent::UnknownShutdown(value) => {
            println!("Paravane: ignoring an unknown shutdown request {value}")
        }
        ControlEvent::Sysrq(key) => sysrq(key),
        ControlEvent::UnknownSysrq(value) => println!("Paravane: ignoring sysrq {value}"),
    }
}

/// Raises the stop signal for a poweroff, halt or reboot request.
fn stop(request: ShutdownRequest, reason: ShutdownReason) {
    if is_stop_requested() {
        println!("Paravane: shutdown requested ({request}) by the toolstack while already stopping: ignored");
        return;
    }
    kernel::shutdown::request(reason);
    REQUESTED_AT.store(time::now_ns(), Ordering::SeqCst);
    println!("Paravane: shutdown requested ({request}) by the toolstack");
    STOP.set();
    if !SUPERVISED.load(Ordering::SeqCst) {
        sched::spawn(stop_unsupervised());
    }
}

/// For a synchronous app: once the grace is over, if it has not
/// returned, close the devices and end the domain from here.
async fn stop_unsupervised() {
    sched::sleep(STOP_GRACE).await;
    if APP_RETURNED.load(Ordering::SeqCst) {
        return;
    }
    let name = APP_NAME.get().copied().unwrap_or("?");
    println!(
        "Paravane: app {name} did not stop within {} ms of the request: stopping it",
        STOP_GRACE.as_millis()
    );
    wind_down().await;
    kernel::app::exit(name, Ok(()))
}

/// A sysrq key: `t` dumps the task states, `m` prints the accounting
/// line (what the guest holds: grants, frames, heap, ports, tasks), `c`
/// dumps the task states and crashes.
fn sysrq(key: SysrqKey) {
    match key.key() {
        'm' => println!(
            "Paravane: sysrq 'm': accounting {}",
            crate::accounting::snapshot()
        ),
        't' => {
            println!("Paravane: sysrq 't': task states");
            dump_tasks();
        }
        'c' => {
            println!("Paravane: sysrq 'c': task states, then crash");
            dump_tasks();
            kernel::shutdown::crash();
        }
        other => println!(
            "Paravane: sysrq '{other}' not handled (t: task states, m: accounting, c: task states then crash)"
        ),
    }
}

/// Prints the executor's tasks and timers.
fn dump_tasks() {
    let snapshot = sched::snapshot();
    let now = time::now_ns();
    let count = |state: TaskState| snapshot.tasks.iter().filter(|(_, s)| *s == state).count();
    println!(
        "tasks: {} live ({} waiting, {} ready, {} running, {} woken while running); {} timers{}; block_on depth {}",
        snapshot.tasks.len(),
        count(TaskState::Idle),
        count(TaskState::Scheduled),
        count(TaskState::Running),
        count(TaskState::Notified),
        snapshot.timers,
        snapshot
            .next_deadline
            .map(|deadline| format!(", next in {} ms", deadline.saturating_sub(now) / 1_000_000))
            .unwrap_or_default(),
        snapshot.block_on_depth
    );
    let list: Vec<String> = snapshot
        .tasks
        .iter()
        .map(|(id, state)| format!("#{id} {state:?}"))
        .collect();
    println!("tasks: {}", list.join(", "));
    let stats = snapshot.stats;
    println!(
        "executor: {} spawned, {} completed, {} polls, {} idles",
        stats.spawned, stats.completed, stats.polls, stats.idles
    );
}
