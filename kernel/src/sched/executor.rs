//! A cooperative executor for `async` tasks, with timers.
//!
//! Why an async executor rather than threads with stacks: every wait in
//! this kernel is for an event channel or a deadline, which a `Future`
//! expresses directly, tasks cost one allocation instead of a stack, and
//! there is no context-switch assembly to get wrong. Tasks run to their
//! next `.await`; nothing preempts them.
//!
//! The executor knows nothing about Xen: a [`Platform`] supplies the
//! clock and the way to sleep until something happens, so the host tests
//! drive it with a fake clock and the guest with Xen's time and
//! `SCHEDOP_block`.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::task::Wake;
use core::future::Future;
use core::pin::{pin, Pin};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use spin::Mutex;

/// What the executor needs from the machine.
pub trait Platform {
    /// Monotonic time in nanoseconds.
    fn now_ns(&self) -> u64;
    /// Sleeps until an event arrives or until `deadline` (if any) passes.
    fn idle(&self, deadline: Option<u64>);
}

/// Identifies a spawned task.
pub type TaskId = u64;

type BoxedTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Counters for the curious (and the suite).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecutorStats {
    /// Tasks spawned.
    pub spawned: u64,
    /// Tasks that ran to completion.
    pub completed: u64,
    /// Task polls.
    pub polls: u64,
    /// Times the executor went idle.
    pub idles: u64,
}

/// The executor: tasks, the ready queue, the timer queue.
pub struct Executor {
    /// `None` while the task is being polled (taken out of the map).
    tasks: Mutex<BTreeMap<TaskId, Option<BoxedTask>>>,
    ready: Mutex<VecDeque<TaskId>>,
    timers: Mutex<BTreeMap<(u64, u64), Waker>>,
    next_id: AtomicU64,
    next_timer: AtomicU64,
    spawned: AtomicU64,
    completed: AtomicU64,
    polls: AtomicU64,
    idles: AtomicU64,
}

struct TaskWaker {
    id: TaskId,
    executor: &'static Executor,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.executor.ready.lock().push_back(self.id);
    }
}

struct RootWaker(AtomicBool);

impl Wake for RootWaker {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Default for Executor {
    fn default() -> Self {
        Self::new()
    }
}

impl Executor {
    /// An empty executor.
    pub const fn new() -> Self {
        Executor {
            tasks: Mutex::new(BTreeMap::new()),
            ready: Mutex::new(VecDeque::new()),
            timers: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            next_timer: AtomicU64::new(0),
            spawned: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            idles: AtomicU64::new(0),
        }
    }

    /// Adds a task; it first runs at the executor's next turn.
    pub fn spawn(&'static self, task: impl Future<Output = ()> + Send + 'static) -> TaskId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.tasks.lock().insert(id, Some(Box::pin(task)));
        self.ready.lock().push_back(id);
        self.spawned.fetch_add(1, Ordering::Relaxed);
        id
    }

    /// Tasks not yet finished.
    pub fn live_tasks(&self) -> usize {
        self.tasks.lock().len()
    }

    /// The counters.
    pub fn stats(&self) -> ExecutorStats {
        ExecutorStats {
            spawned: self.spawned.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            polls: self.polls.load(Ordering::Relaxed),
            idles: self.idles.load(Ordering::Relaxed),
        }
    }

    /// Runs `root` (and every spawned task alongside it) until `root`
    /// completes; idles on `platform` when nothing is ready.
    pub fn block_on<F: Future>(&'static self, platform: &impl Platform, root: F) -> F::Output {
        let root_waker = Arc::new(RootWaker(AtomicBool::new(true)));
        let waker = Waker::from(root_waker.clone());
        let mut cx = Context::from_waker(&waker);
        let mut root = pin!(root);
        loop {
            if root_waker.0.swap(false, Ordering::SeqCst) {
                self.polls.fetch_add(1, Ordering::Relaxed);
                if let Poll::Ready(value) = root.as_mut().poll(&mut cx) {
                    return value;
                }
            }
            self.run_ready();
            self.fire_timers(platform.now_ns());
            let idle = !root_waker.0.load(Ordering::SeqCst) && self.ready.lock().is_empty();
            if idle {
                self.idles.fetch_add(1, Ordering::Relaxed);
                platform.idle(self.next_deadline());
                self.fire_timers(platform.now_ns());
            }
        }
    }

    /// Polls every task that is ready now (once each).
    fn run_ready(&'static self) {
        let batch = core::mem::take(&mut *self.ready.lock());
        for id in batch {
            // Take the task out so it can spawn or wake without deadlock.
            let Some(mut task) = self.tasks.lock().get_mut(&id).and_then(Option::take) else {
                continue; // finished, or a duplicate wake
            };
            let waker = Waker::from(Arc::new(TaskWaker { id, executor: self }));
            self.polls.fetch_add(1, Ordering::Relaxed);
            match task.as_mut().poll(&mut Context::from_waker(&waker)) {
                Poll::Ready(()) => {
                    self.tasks.lock().remove(&id);
                    self.completed.fetch_add(1, Ordering::Relaxed);
                }
                Poll::Pending => {
                    if let Some(slot) = self.tasks.lock().get_mut(&id) {
                        *slot = Some(task);
                    }
                }
            }
        }
    }

    /// Wakes the timers whose deadline has passed.
    fn fire_timers(&self, now: u64) {
        let mut timers = self.timers.lock();
        while let Some(entry) = timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().wake();
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        self.timers
            .lock()
            .keys()
            .next()
            .map(|&(deadline, _)| deadline)
    }

    /// Registers (or refreshes) a timer; returns its key.
    fn arm(&self, key: Option<(u64, u64)>, deadline: u64, waker: &Waker) -> (u64, u64) {
        let key =
            key.unwrap_or_else(|| (deadline, self.next_timer.fetch_add(1, Ordering::Relaxed)));
        self.timers.lock().insert(key, waker.clone());
        key
    }

    fn disarm(&self, key: (u64, u64)) {
        self.timers.lock().remove(&key);
    }

    /// A future that completes once `clock()` reaches `deadline`.
    pub fn sleep_until(&'static self, clock: fn() -> u64, deadline: u64) -> Sleep {
        Sleep {
            executor: self,
            clock,
            deadline,
            key: None,
        }
    }
}

/// Completes at a deadline (see [`Executor::sleep_until`]).
pub struct Sleep {
    executor: &'static Executor,
    clock: fn() -> u64,
    deadline: u64,
    key: Option<(u64, u64)>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if (self.clock)() >= self.deadline {
            if let Some(key) = self.key.take() {
                self.executor.disarm(key);
            }
            return Poll::Ready(());
        }
        let key = self.executor.arm(self.key, self.deadline, cx.waker());
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.executor.disarm(key);
        }
    }
}

/// Completes on its second poll: lets other tasks run.
pub struct YieldNow(bool);

impl YieldNow {
    /// A fresh yield point.
    pub fn new() -> Self {
        YieldNow(false)
    }
}

impl Default for YieldNow {
    fn default() -> Self {
        Self::new()
    }
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64 as StdAtomicU64;

    /// A clock that jumps straight to the deadline when idle.
    static CLOCK: StdAtomicU64 = StdAtomicU64::new(0);

    fn clock() -> u64 {
        CLOCK.load(Ordering::SeqCst)
    }

    struct FakePlatform {
        idles: StdAtomicU64,
    }

    impl Platform for FakePlatform {
        fn now_ns(&self) -> u64 {
            clock()
        }
        fn idle(&self, deadline: Option<u64>) {
            self.idles.fetch_add(1, Ordering::SeqCst);
            let deadline = deadline.expect("idle with no timer would sleep forever");
            CLOCK.fetch_max(deadline, Ordering::SeqCst);
        }
    }

    fn leak() -> &'static Executor {
        Box::leak(Box::new(Executor::new()))
    }

    #[test]
    fn timers_and_tasks_interleave_in_deadline_order() {
        let executor = leak();
        let platform = FakePlatform {
            idles: StdAtomicU64::new(0),
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let base = clock();
        for (name, delay) in [("c", 300u64), ("a", 100), ("b", 200)] {
            let log = log.clone();
            executor.spawn(async move {
                executor.sleep_until(clock, base + delay).await;
                log.lock().push(name);
            });
        }
        executor.block_on(&platform, async {
            executor.sleep_until(clock, base + 400).await;
        });
        assert_eq!(*log.lock(), ["a", "b", "c"]);
        assert_eq!(executor.live_tasks(), 0);
        assert!(platform.idles.load(Ordering::SeqCst) >= 3);
        assert_eq!(executor.stats().completed, 3);
        assert!(executor.timers.lock().is_empty());
    }

    #[test]
    fn yielding_tasks_take_turns() {
        let executor = leak();
        let platform = FakePlatform {
            idles: StdAtomicU64::new(0),
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        for name in ["x", "y"] {
            let log = log.clone();
            executor.spawn(async move {
                for i in 0..3 {
                    log.lock().push((name, i));
                    YieldNow::new().await;
                }
            });
        }
        let done = executor.block_on(&platform, async {
            while executor.live_tasks() > 0 {
                YieldNow::new().await;
            }
            7
        });
        assert_eq!(done, 7);
        let log = log.lock();
        assert_eq!(log.len(), 6);
        assert_eq!(&log[..2], &[("x", 0), ("y", 0)]);
        assert_eq!(platform.idles.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_dropped_sleep_leaves_no_timer() {
        let executor = leak();
        let platform = FakePlatform {
            idles: StdAtomicU64::new(0),
        };
        let base = clock();
        executor.block_on(&platform, async {
            let mut far = Box::pin(executor.sleep_until(clock, base + 1_000_000));
            // Poll it once so it arms, then drop it.
            core::future::poll_fn(|cx| {
                let _ = far.as_mut().poll(cx);
                Poll::Ready(())
            })
            .await;
        });
        assert!(executor.timers.lock().is_empty());
    }
}
