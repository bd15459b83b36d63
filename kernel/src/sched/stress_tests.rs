//! Host stress test of the executor across vCPUs: std threads play the
//! vCPUs (vCPU 0 runs `block_on`, the others the secondaries' loop of
//! `run_turn` / `prepare_idle` / block / `end_idle`), an IPI is a condvar
//! signal, and many tasks spawn, wake each other across threads, yield
//! and finish. Asserts that every task ran to completion exactly once,
//! that pinned tasks ran only on their vCPU, that shared tasks ran on
//! more than one vCPU, and that no wake-up was lost: a vCPU never slept
//! out its whole (long) timeout and then found work queued for it.

use super::executor::{Executor, Platform, Vcpus, YieldNow};
use core::future::Future;
use core::task::{Poll, Waker};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

const VCPUS: u32 = 4;
/// Long enough that only a lost wake-up sleeps it out.
const SLEEP_LIMIT: Duration = Duration::from_secs(3);

thread_local! {
    static CURRENT: Cell<u32> = const { Cell::new(0) };
}

/// The machine: one kick token per vCPU.
struct Machine {
    kicked: [(Mutex<bool>, Condvar); VCPUS as usize],
    kicks: AtomicU64,
    /// Sleeps that ran out their limit while work waited.
    lost: AtomicU64,
}

impl Machine {
    /// Blocks vCPU `vcpu` until kicked; false if the limit ran out.
    fn block(&self, vcpu: u32) -> bool {
        let (flag, condvar) = &self.kicked[vcpu as usize];
        let mut kicked = flag.lock().unwrap();
        let deadline = std::time::Instant::now() + SLEEP_LIMIT;
        while !*kicked {
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            kicked = condvar.wait_timeout(kicked, deadline - now).unwrap().0;
        }
        *kicked = false;
        true
    }
}

impl Vcpus for Machine {
    fn current(&self) -> u32 {
        CURRENT.with(Cell::get)
    }
    fn kick(&self, vcpu: u32) {
        assert_ne!(vcpu, self.current(), "a vCPU kicked itself");
        self.kicks.fetch_add(1, Ordering::Relaxed);
        let (flag, condvar) = &self.kicked[vcpu as usize];
        *flag.lock().unwrap() = true;
        condvar.notify_one();
    }
}

/// vCPU 0's platform: no timers in this test, so idling is blocking.
struct Vcpu0 {
    machine: &'static Machine,
    executor: &'static Executor,
}

impl Platform for Vcpu0 {
    fn now_ns(&self) -> u64 {
        0
    }
    fn idle(&self, deadline: Option<u64>) {
        assert!(deadline.is_none(), "no timer is armed in this test");
        if !self.machine.block(0) && self.executor.live_tasks() > 0 {
            // Fails here rather than sleeping on: tasks stranded on a
            // vCPU that never runs them would hang the test.
            panic!(
                "a wake-up was lost: vCPU 0 slept out {SLEEP_LIMIT:?} with {} live tasks",
                self.executor.live_tasks()
            );
        }
    }
}

/// A one-shot flag a task can wait on and any thread can raise.
#[derive(Default)]
struct Signal {
    raised: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }

    fn wait(&self) -> impl Future<Output = ()> + '_ {
        core::future::poll_fn(move |cx| {
            if self.raised.swap(false, Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.raised.swap(false, Ordering::SeqCst) {
                return Poll::Ready(());
            }
            Poll::Pending
        })
    }
}

/// What the tasks report.
struct Ledger {
    /// Completions per task number (each must end at 1).
    done: Vec<AtomicU32>,
    finished: AtomicUsize,
    /// vCPUs shared tasks ran on (bit = vCPU).
    shared_ran_on: AtomicU32,
    /// Pinned tasks polled on a vCPU that is not theirs.
    misplaced: AtomicU64,
    root: Signal,
}

impl Ledger {
    fn finish(&self, number: usize, total: usize) {
        self.done[number].fetch_add(1, Ordering::SeqCst);
        if self.finished.fetch_add(1, Ordering::SeqCst) + 1 == total {
            self.root.raise();
        }
    }

    fn check_home(&self, home: Option<u32>) {
        let here = CURRENT.with(Cell::get);
        match home {
            Some(vcpu) if vcpu != here => {
                self.misplaced.fetch_add(1, Ordering::SeqCst);
            }
            Some(_) => {}
            None => {
                self.shared_ran_on.fetch_or(1 << here, Ordering::SeqCst);
            }
        }
    }
}

/// Yields `n` times, checking where it runs after each.
async fn yields(ledger: &Ledger, home: Option<u32>, n: u32) {
    for _ in 0..n {
        ledger.check_home(home);
        YieldNow::new().await;
    }
    ledger.check_home(home);
}

/// The machine, the executor, a ledger for `total` tasks and the stop
/// flag, leaked for the threads.
fn set_up(
    total: usize,
) -> (
    &'static Machine,
    &'static Executor,
    &'static Ledger,
    &'static AtomicBool,
) {
    let machine: &'static Machine = Box::leak(Box::new(Machine {
        kicked: core::array::from_fn(|_| (Mutex::new(false), Condvar::new())),
        kicks: AtomicU64::new(0),
        lost: AtomicU64::new(0),
    }));
    let executor: &'static Executor = Box::leak(Box::new(Executor::new()));
    executor.set_vcpus(machine);
    let ledger: &'static Ledger = Box::leak(Box::new(Ledger {
        done: (0..total).map(|_| AtomicU32::new(0)).collect(),
        finished: AtomicUsize::new(0),
        shared_ran_on: AtomicU32::new(0),
        misplaced: AtomicU64::new(0),
        root: Signal::default(),
    }));
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    (machine, executor, ledger, stop)
}

/// One pass of a secondary vCPU's loop: a turn, then the idle path
/// (mark, look again, block, unmark); a block that ran out its limit
/// and then found work counts as a lost wake-up.
fn secondary_turn(
    machine: &'static Machine,
    executor: &'static Executor,
    vcpu: u32,
    stop: &AtomicBool,
) {
    executor.run_turn(vcpu);
    if !executor.prepare_idle(vcpu) {
        return;
    }
    let kicked = stop.load(Ordering::SeqCst) || machine.block(vcpu);
    executor.end_idle(vcpu);
    if !kicked && executor.run_turn(vcpu) > 0 {
        machine.lost.fetch_add(1, Ordering::SeqCst);
    }
}

/// Every task completed exactly once, none is left, no wake-up lost.
fn assert_all_done_once(machine: &Machine, executor: &Executor, ledger: &Ledger, total: usize) {
    let not_once: Vec<_> = (0..total)
        .filter(|&i| ledger.done[i].load(Ordering::SeqCst) != 1)
        .collect();
    assert!(
        not_once.is_empty(),
        "tasks not completed exactly once: {not_once:?}"
    );
    assert_eq!(executor.live_tasks(), 0);
    assert_eq!(machine.lost.load(Ordering::SeqCst), 0, "a wake-up was lost");
}

/// Spawns ping-pong pair `pair` (tasks `2 * pair` and `2 * pair + 1`
/// of `total`): side a pinned to `homes.0`, side b to `homes.1` or
/// shared; each wakes the other `rounds` times. With `check_homes`
/// each side records where it ran; without, side b yields once per
/// round instead (more queueing while vCPUs come and go).
fn spawn_pair(
    executor: &'static Executor,
    ledger: &'static Ledger,
    pair: usize,
    total: usize,
    rounds: u32,
    homes: (u32, Option<u32>),
    check_homes: bool,
) {
    let (home_a, home_b) = homes;
    let ping = Arc::new(Signal::default());
    let pong = Arc::new(Signal::default());
    let (ping_a, pong_a) = (ping.clone(), pong.clone());
    let a = async move {
        for _ in 0..rounds {
            if check_homes {
                ledger.check_home(Some(home_a));
            }
            pong_a.raise();
            ping_a.wait().await;
        }
        if check_homes {
            ledger.check_home(Some(home_a));
        }
        ledger.finish(2 * pair, total);
    };
    let b = async move {
        for _ in 0..rounds {
            pong.wait().await;
            if check_homes {
                ledger.check_home(home_b);
            } else {
                YieldNow::new().await;
            }
            ping.raise();
        }
        ledger.finish(2 * pair + 1, total);
    };
    executor.spawn_on(home_a, a).unwrap();
    match home_b {
        Some(vcpu) => executor.spawn_on(vcpu, b).unwrap(),
        None => executor.spawn(b),
    };
}

#[test]
fn tasks_across_vcpus_complete_once_and_no_wake_up_is_lost() {
    const PAIRS: usize = 300;
    const ROUNDS: u32 = 20;
    const LONERS: usize = 1500;
    // Each pair is two tasks; each loner spawns one child.
    const TOTAL: usize = 2 * PAIRS + 2 * LONERS;

    let (machine, executor, ledger, stop) = set_up(TOTAL);

    let workers: Vec<_> = (1..VCPUS)
        .map(|vcpu| {
            executor.serve(vcpu);
            std::thread::spawn(move || {
                CURRENT.with(|c| c.set(vcpu));
                while !stop.load(Ordering::SeqCst) {
                    secondary_turn(machine, executor, vcpu, stop);
                }
            })
        })
        .collect();

    // Ping-pong pairs: one side pinned, the other pinned elsewhere or
    // shared; each wakes the other ROUNDS times across threads.
    for pair in 0..PAIRS {
        let home_a = (pair as u32) % VCPUS;
        let home_b = (pair % 3 != 0).then_some((pair as u32 + 1) % VCPUS);
        spawn_pair(
            executor,
            ledger,
            pair,
            TOTAL,
            ROUNDS,
            (home_a, home_b),
            true,
        );
    }
    // Loners, spawned from another thread while everything runs: shared,
    // yielding, each spawning a pinned child from inside its poll.
    let spawner = std::thread::spawn(move || {
        for loner in 0..LONERS {
            let number = 2 * PAIRS + 2 * loner;
            executor.spawn(async move {
                yields(ledger, None, (loner % 5) as u32).await;
                let child_home = (loner as u32 * 7) % VCPUS;
                executor
                    .spawn_on(child_home, async move {
                        yields(ledger, Some(child_home), (loner % 3) as u32).await;
                        ledger.finish(number + 1, TOTAL);
                    })
                    .unwrap();
                ledger.finish(number, TOTAL);
            });
            if loner % 100 == 0 {
                std::thread::yield_now();
            }
        }
    });

    let platform = Vcpu0 { machine, executor };
    executor.block_on(&platform, ledger.root.wait());
    spawner.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    for vcpu in 1..VCPUS {
        machine.kick(vcpu);
    }
    workers.into_iter().for_each(|w| w.join().unwrap());

    assert_all_done_once(machine, executor, ledger, TOTAL);
    assert_eq!(ledger.finished.load(Ordering::SeqCst), TOTAL);
    let stats = executor.stats();
    assert_eq!(stats.spawned, TOTAL as u64);
    assert_eq!(stats.completed, TOTAL as u64);
    assert_eq!(
        ledger.misplaced.load(Ordering::SeqCst),
        0,
        "pinned tasks ran elsewhere"
    );
    assert!(
        ledger.shared_ran_on.load(Ordering::SeqCst).count_ones() > 1,
        "shared tasks ran on one vCPU only"
    );
    assert!(
        machine.kicks.load(Ordering::SeqCst) > 0,
        "no vCPU was ever kicked"
    );
}

/// The secondaries go offline and come back while tasks run (as `xl
/// vcpu-set` makes them): every task still completes exactly once and
/// no wake-up is lost, the pinned tasks of a vCPU that went offline
/// finishing elsewhere.
#[test]
fn vcpus_going_offline_and_back_lose_no_task_and_no_wake_up() {
    const PAIRS: usize = 200;
    const ROUNDS: u32 = 200;
    const TOTAL: usize = 2 * PAIRS;

    let (machine, executor, ledger, stop) = set_up(TOTAL);
    // Per secondary: asked to go offline, and the condvar it waits on
    // while offline.
    let down: &'static [(Mutex<bool>, Condvar); VCPUS as usize] =
        Box::leak(Box::new(core::array::from_fn(|_| {
            (Mutex::new(false), Condvar::new())
        })));
    let offlines: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));

    let workers: Vec<_> = (1..VCPUS)
        .map(|vcpu| {
            executor.serve(vcpu);
            std::thread::spawn(move || {
                CURRENT.with(|c| c.set(vcpu));
                while !stop.load(Ordering::SeqCst) {
                    let (asked, condvar) = &down[vcpu as usize];
                    if *asked.lock().unwrap() {
                        executor.take_offline(vcpu);
                        offlines.fetch_add(1, Ordering::SeqCst);
                        let mut asked = asked.lock().unwrap();
                        while *asked && !stop.load(Ordering::SeqCst) {
                            asked = condvar.wait(asked).unwrap();
                        }
                        drop(asked);
                        executor.bring_online(vcpu);
                        continue;
                    }
                    secondary_turn(machine, executor, vcpu, stop);
                }
            })
        })
        .collect();

    // Ping-pong pairs pinned to the secondaries (or one side shared);
    // where they run is not checked: an offline vCPU's go elsewhere.
    for pair in 0..PAIRS {
        let home_a = 1 + (pair as u32) % (VCPUS - 1);
        let home_b = (pair % 3 != 0).then_some(1 + (pair as u32 + 1) % (VCPUS - 1));
        spawn_pair(
            executor,
            ledger,
            pair,
            TOTAL,
            ROUNDS,
            (home_a, home_b),
            false,
        );
    }
    // Takes vCPUs 2 and 3 offline and back, one after the other, until
    // a quarter of the tasks are done; then takes vCPU 1 offline for
    // good, so its pinned tasks must finish elsewhere, and goes on
    // cycling the others.
    let controller = std::thread::spawn(move || {
        let mut cycle = 0u32;
        let mut vcpu1_down = false;
        while ledger.finished.load(Ordering::SeqCst) < TOTAL {
            if !vcpu1_down && ledger.finished.load(Ordering::SeqCst) >= TOTAL / 4 {
                *down[1].0.lock().unwrap() = true;
                machine.kick(1);
                vcpu1_down = true;
            }
            let vcpu = 2 + cycle % (VCPUS - 2);
            cycle += 1;
            let (asked, condvar) = &down[vcpu as usize];
            *asked.lock().unwrap() = true;
            machine.kick(vcpu);
            std::thread::sleep(Duration::from_micros(300));
            *asked.lock().unwrap() = false;
            condvar.notify_all();
            std::thread::sleep(Duration::from_micros(100));
        }
    });

    let platform = Vcpu0 { machine, executor };
    executor.block_on(&platform, ledger.root.wait());
    controller.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    for vcpu in 1..VCPUS {
        let (_, condvar) = &down[vcpu as usize];
        condvar.notify_all();
        machine.kick(vcpu);
    }
    workers.into_iter().for_each(|w| w.join().unwrap());

    assert_all_done_once(machine, executor, ledger, TOTAL);
    let offlines = offlines.load(Ordering::SeqCst);
    eprintln!("{offlines} times a vCPU went offline");
    assert!(offlines > 0, "no vCPU ever went offline");
}
