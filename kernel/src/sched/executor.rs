//! A cooperative executor for `async` tasks, with timers.
//!
//! Why an async executor rather than threads with stacks: every wait in
//! this kernel is for an event channel or a deadline, which a `Future`
//! expresses directly, tasks cost one allocation instead of a stack, and
//! there is no context-switch assembly to get wrong. Tasks run to their
//! next `.await`; nothing preempts them.
//!
//! The executor knows nothing about Xen: a [`Platform`] supplies the
//! clock, the hand-over of events that arrived (their waiters are woken
//! here, in task context, never in the upcall), and the way to sleep
//! until something happens, so the host tests drive it with a fake clock
//! and the guest with Xen's time and `SCHEDOP_block` / `hlt`.
//!
//! # No lost wake-ups
//!
//! Each task carries one atomic state: idle, scheduled (in the ready
//! queue), running (being polled), notified (woken while running), done.
//! A wake-up moves idle to scheduled (and queues the task once) or
//! running to notified; when a poll returns `Pending` the executor moves
//! running back to idle, or, if the task was notified meanwhile, queues
//! it again. So a task woken while it runs, by itself, by a task it
//! spawned or by an event, is always polled again, and a task is never
//! in the queue twice.
//!
//! # Across vCPUs
//!
//! Tasks run on every vCPU that serves the executor: vCPU 0 in
//! `block_on`, and each secondary vCPU in its idle loop once brought up
//! ([`Executor::run_turn`], [`Executor::prepare_idle`]). Queues:
//!
//! - one **shared** ready queue for tasks free to run anywhere, served by
//!   every vCPU (popped one task at a time, so an idle vCPU takes work a
//!   busy one has not reached: balancing without a stealing protocol);
//! - one **pinned** queue per vCPU for tasks spawned with
//!   [`Executor::spawn_on`], served only by that vCPU.
//!
//! Why not per-vCPU queues with stealing: Paravane's vCPUs are few (at
//! most [`MAX_VCPUS`]), tasks are short cooperative polls, and the cost
//! that matters under Xen is a vCPU blocking while work waits, not lock
//! traffic on one queue (a push or pop holds it for a few instructions).
//! One shared queue has no steal order to get wrong and no vCPU can sit
//! idle beside another's backlog; affinity, where an app asks for it,
//! is the pinned queue. (The host stress test runs 4 vCPU threads
//! against it.)
//!
//! A wake-up queues the task and then, if the vCPU that must run it is
//! idle (its bit in the idle mask), kicks it ([`Vcpus::kick`], an IPI
//! on the guest); a shared task kicks one idle serving vCPU. The idle
//! path sets its bit, then checks its queues again, and only then blocks
//! (with upcalls masked; `SCHEDOP_block` and `sti; hlt` unmask and
//! sleep in one step): a task queued before the bit was set is seen by
//! the check, one queued after it finds the bit and kicks, and the kick's
//! event makes the block return at once. A `SeqCst` fence on both sides
//! orders the queue against the mask (x86 would otherwise let the
//! waker's load of the mask pass its push). Timers live on vCPU 0 (it
//! arms the one-shot timer): a timer armed elsewhere that becomes the
//! earliest kicks vCPU 0 if it idles. The root future of `block_on`
//! runs only on vCPU 0; waking it kicks vCPU 0 the same way.
//!
//! # Locks and upcalls
//!
//! The run queues, the task table and the timers are spin locks taken
//! only in task context. Upcalls are masked in task context on every
//! vCPU (they are unmasked only inside the block that idles), and the
//! upcall takes no lock at all (see `events`), so a vCPU can never be
//! interrupted by an upcall that wants a lock it holds. The guest build
//! checks this: every lock of the executor is an
//! [`UpcallSafe`](crate::sync::UpcallSafe) lock,
//! which in debug builds asserts that upcalls are masked on the vCPU
//! taking it.
//!
//! # One `block_on` at a time
//!
//! [`Executor::block_on`] is for the top level (an application's entry,
//! a suite check). Called from inside a task, or from inside the future
//! another `block_on` is running, it would hold the outer task in the
//! middle of its poll while the whole executor runs underneath it: the
//! outer task cannot be polled again until the inner wait ends, however
//! often it is woken. Code that tasks call must be `async` and `.await`.
//! [`Executor::try_block_on`] refuses the nested call with
//! [`NestedBlockOn`]; [`Executor::block_on`] panics on it in debug
//! builds (naming the caller) and, in release builds, counts it
//! ([`ExecutorStats::nested_block_ons`]), reports each call site once
//! through `log`, and runs it (wake-ups stay safe; the outer task just
//! waits).

use crate::smp::MAX_VCPUS;
use crate::sync::UpcallSafe as Mutex;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::task::Wake;
use core::future::Future;
use core::panic::Location;
use core::pin::{pin, Pin};
use core::sync::atomic::{
    fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use core::task::{Context, Poll, Waker};

/// What the executor needs from the machine.
pub trait Platform {
    /// Monotonic time in nanoseconds.
    fn now_ns(&self) -> u64;
    /// Wakes the tasks waiting for events that arrived since the last
    /// call. Called by the executor in task context: before it decides
    /// whether to idle, and after [`Platform::idle`] returns.
    fn wake_event_waiters(&self) {}
    /// Sleeps until an event arrives or until `deadline` (if any)
    /// passes; returns at once if an event is already waiting to be
    /// handed over.
    fn idle(&self, deadline: Option<u64>);
}

/// The vCPUs the executor runs on, as the machine sees them (Xen on the
/// guest; threads in the host tests). Without one registered
/// ([`Executor::set_vcpus`]) everything runs on vCPU 0 and nothing is
/// kicked.
pub trait Vcpus: Sync {
    /// The vCPU running this code.
    fn current(&self) -> u32;
    /// Makes vCPU `vcpu` return from its idle (an IPI). Never called for
    /// the vCPU running it.
    fn kick(&self, vcpu: u32);
}

/// A task's home for tasks free to run on any vCPU.
const ANY_VCPU: u32 = u32::MAX;

/// Identifies a spawned task.
pub type TaskId = u64;

type BoxedTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How many distinct nested `block_on` call sites a release build
/// reports (each once).
const NESTED_SITES: usize = 8;

/// [`Executor::try_block_on`] was called while a `block_on` was already
/// running (from inside a task, or from inside the future being driven).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NestedBlockOn;

impl core::fmt::Display for NestedBlockOn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("block_on called inside a task or another block_on; await the future instead")
    }
}

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
    /// Tasks polled again because they were woken while running.
    pub woken_while_running: u64,
    /// Nested `block_on` calls run anyway (release builds only; debug
    /// builds panic on them).
    pub nested_block_ons: u64,
    /// Idle vCPUs kicked because a task for them was queued.
    pub kicks: u64,
}

/// Where a task is in its life, as [`Executor::snapshot`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting for a wake-up (an event, a timer, another task).
    Idle,
    /// Woken, in the ready queue.
    Scheduled,
    /// Being polled now (the task that asked, or the one around a
    /// nested `block_on`).
    Running,
    /// Woken while being polled: runs again next round.
    Notified,
    /// Finished (not yet removed).
    Done,
}

impl TaskState {
    fn from_code(code: u8) -> TaskState {
        match code {
            state::IDLE => TaskState::Idle,
            state::SCHEDULED => TaskState::Scheduled,
            state::RUNNING => TaskState::Running,
            state::NOTIFIED => TaskState::Notified,
            _ => TaskState::Done,
        }
    }
}

/// What the executor holds at one moment: every live task's state and
/// the armed timers (for a crash dump, `control/sysrq`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecutorSnapshot {
    /// Live tasks by id, in spawn order.
    pub tasks: alloc::vec::Vec<(TaskId, TaskState)>,
    /// Armed timers.
    pub timers: usize,
    /// The earliest timer's deadline.
    pub next_deadline: Option<u64>,
    /// Running `block_on`s (1 while the app runs; more means nested).
    pub block_on_depth: usize,
    /// The counters.
    pub stats: ExecutorStats,
}

/// A task's life, in [`Task::state`].
mod state {
    /// Waiting for a wake-up.
    pub const IDLE: u8 = 0;
    /// In the ready queue.
    pub const SCHEDULED: u8 = 1;
    /// Being polled.
    pub const RUNNING: u8 = 2;
    /// Woken while being polled: to be queued again after the poll.
    pub const NOTIFIED: u8 = 3;
    /// Finished; wake-ups are ignored.
    pub const DONE: u8 = 4;
}

/// A spawned task: its future and its state. Its wakers are `Arc`s of it.
struct Task {
    id: TaskId,
    /// The vCPU it must run on, or [`ANY_VCPU`] (which it becomes for
    /// good if it is queued while that vCPU is offline).
    home: AtomicU32,
    state: AtomicU8,
    /// Locked only by the executor while it polls the task (the state
    /// machine lets one poll at a time); wakers never touch it.
    future: Mutex<Option<BoxedTask>>,
    executor: &'static Executor,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let next = match current {
                state::IDLE => state::SCHEDULED,
                state::RUNNING => state::NOTIFIED,
                // Already queued, already notified, or finished.
                _ => return,
            };
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if next == state::SCHEDULED {
                        self.executor.enqueue(self.clone());
                    }
                    return;
                }
                Err(seen) => current = seen,
            }
        }
    }
}

/// The executor: tasks, the ready queue, the timer queue.
pub struct Executor {
    /// Live tasks (owned here until they finish).
    tasks: Mutex<BTreeMap<TaskId, Arc<Task>>>,
    /// Tasks free to run on any vCPU (see the module docs).
    ready: Mutex<VecDeque<Arc<Task>>>,
    /// Tasks pinned to each vCPU.
    pinned: [Mutex<VecDeque<Arc<Task>>>; MAX_VCPUS],
    /// vCPUs about to block or blocked (bit = vCPU id).
    idle_mask: AtomicU32,
    /// vCPUs serving the shared queue (bit 0: vCPU 0, always).
    serving: AtomicU32,
    /// vCPUs taken offline ([`Executor::take_offline`]): a task pinned
    /// to one is queued on the shared queue instead.
    offline: AtomicU32,
    vcpus: spin::Once<&'static dyn Vcpus>,
    timers: Mutex<BTreeMap<(u64, u64), Waker>>,
    /// How many `block_on` calls are running (more than one only when a
    /// nested call was let through in a release build).
    block_on_depth: AtomicUsize,
    /// Call sites of nested `block_on`s already reported.
    nested_sites: Mutex<[Option<&'static Location<'static>>; NESTED_SITES]>,
    next_id: AtomicU64,
    next_timer: AtomicU64,
    spawned: AtomicU64,
    completed: AtomicU64,
    polls: AtomicU64,
    idles: AtomicU64,
    woken_while_running: AtomicU64,
    nested_block_ons: AtomicU64,
    kicks: AtomicU64,
}

struct RootWaker(AtomicBool, &'static Executor);

impl Wake for RootWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
        // The root runs on vCPU 0 (see the module docs).
        self.1.kick_if_idle(0);
    }
}

/// Leaves the `block_on` depth as it found it, also when the future
/// panics (host tests unwind).
struct DepthGuard<'a>(&'a AtomicUsize);

impl Drop for DepthGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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
            pinned: [const { Mutex::new(VecDeque::new()) }; MAX_VCPUS],
            idle_mask: AtomicU32::new(0),
            serving: AtomicU32::new(1),
            offline: AtomicU32::new(0),
            vcpus: spin::Once::new(),
            timers: Mutex::new(BTreeMap::new()),
            block_on_depth: AtomicUsize::new(0),
            nested_sites: Mutex::new([None; NESTED_SITES]),
            next_id: AtomicU64::new(1),
            next_timer: AtomicU64::new(0),
            spawned: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            idles: AtomicU64::new(0),
            woken_while_running: AtomicU64::new(0),
            nested_block_ons: AtomicU64::new(0),
            kicks: AtomicU64::new(0),
        }
    }

    /// Adds a task; it first runs at the executor's next turn, on any
    /// vCPU that serves the executor.
    pub fn spawn(&'static self, task: impl Future<Output = ()> + Send + 'static) -> TaskId {
        self.spawn_with_home(ANY_VCPU, task)
    }

    /// Adds a task that runs only on vCPU `vcpu` (which must serve the
    /// executor, or the task never runs); `None` for a vCPU beyond
    /// [`MAX_VCPUS`].
    pub fn spawn_on(
        &'static self,
        vcpu: u32,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> Option<TaskId> {
        ((vcpu as usize) < MAX_VCPUS).then(|| self.spawn_with_home(vcpu, task))
    }

    fn spawn_with_home(
        &'static self,
        home: u32,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> TaskId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let task = Arc::new(Task {
            id,
            home: AtomicU32::new(home),
            state: AtomicU8::new(state::SCHEDULED),
            future: Mutex::new(Some(Box::pin(task))),
            executor: self,
        });
        self.tasks.lock().insert(id, task.clone());
        self.spawned.fetch_add(1, Ordering::Relaxed);
        self.enqueue(task);
        id
    }

    /// Registers the machine's vCPUs (once; later calls are ignored).
    pub fn set_vcpus(&self, vcpus: &'static dyn Vcpus) {
        self.vcpus.call_once(|| vcpus);
    }

    /// vCPU `vcpu` serves the shared queue from now on (it calls
    /// [`Executor::run_turn`] and idles through
    /// [`Executor::prepare_idle`]).
    pub fn serve(&self, vcpu: u32) {
        if (vcpu as usize) < MAX_VCPUS {
            self.serving.fetch_or(1 << vcpu, Ordering::SeqCst);
        }
    }

    fn current_vcpu(&self) -> u32 {
        self.vcpus.get().map_or(0, |v| v.current())
    }

    /// Queues a scheduled task where it may run and kicks a vCPU that
    /// would otherwise sleep on it (see the module docs).
    fn enqueue(&self, task: Arc<Task>) {
        let home = self.place(task);
        // Orders the push before the read of the idle mask (pairs with
        // the fence in `prepare_idle`).
        fence(Ordering::SeqCst);
        if home != ANY_VCPU {
            self.kick_if_idle(home);
            return;
        }
        self.kick_one_for_shared();
    }

    /// Pushes `task` on its vCPU's pinned queue, or on the shared queue
    /// if it has none or that vCPU is offline; returns where it went.
    /// The offline mask is read under the pinned queue's lock, which
    /// [`Executor::take_offline`] drains after setting the mask: a task
    /// pushed there either is drained or sees the mask.
    fn place(&self, task: Arc<Task>) -> u32 {
        let home = task.home.load(Ordering::SeqCst);
        if let Some(queue) = self.pinned.get(home as usize) {
            let mut queue = queue.lock();
            if self.offline.load(Ordering::SeqCst) & (1 << home) == 0 {
                queue.push_back(task);
                return home;
            }
            drop(queue);
            task.home.store(ANY_VCPU, Ordering::SeqCst);
        }
        self.ready.lock().push_back(task);
        ANY_VCPU
    }

    /// A shared task is queued: one idle serving vCPU other than this one
    /// takes it (this one, if it idles, is in its own idle path and
    /// checks the queue again before blocking).
    fn kick_one_for_shared(&self) {
        let idle = self.idle_mask.load(Ordering::SeqCst) & self.serving.load(Ordering::SeqCst);
        if idle != 0 && self.vcpus.get().is_some() {
            let others = idle & !(1u32 << self.current_vcpu().min(31));
            if others != 0 {
                self.kick_if_idle(others.trailing_zeros());
            }
        }
    }

    /// vCPU `vcpu` (not 0) goes offline: it stops serving the shared
    /// queue, its pinned tasks move to the shared queue (for good: their
    /// home becomes any vCPU), and a task pinned to it that is queued
    /// later goes there too. Called by that vCPU itself, between turns,
    /// right before it stops; returns how many queued tasks moved. Ends
    /// by kicking an idle serving vCPU if shared work waits: an enqueue
    /// that saw this vCPU still serving may have kicked only it.
    pub fn take_offline(&self, vcpu: u32) -> usize {
        if vcpu == 0 || vcpu as usize >= MAX_VCPUS {
            return 0;
        }
        self.offline.fetch_or(1 << vcpu, Ordering::SeqCst);
        self.serving.fetch_and(!(1 << vcpu), Ordering::SeqCst);
        self.idle_mask.fetch_and(!(1 << vcpu), Ordering::SeqCst);
        let drained = core::mem::take(&mut *self.pinned[vcpu as usize].lock());
        let moved = drained.len();
        for task in &drained {
            task.home.store(ANY_VCPU, Ordering::SeqCst);
        }
        self.ready.lock().extend(drained);
        fence(Ordering::SeqCst);
        if !self.ready.lock().is_empty() {
            self.kick_one_for_shared();
        }
        moved
    }

    /// vCPU `vcpu` is back online: its pinned queue is its own again and
    /// it serves the shared queue.
    pub fn bring_online(&self, vcpu: u32) {
        if (vcpu as usize) < MAX_VCPUS {
            self.offline.fetch_and(!(1 << vcpu), Ordering::SeqCst);
            self.serve(vcpu);
        }
    }

    /// Kicks `vcpu` if it idles and is not the caller.
    fn kick_if_idle(&self, vcpu: u32) {
        if vcpu >= 32 || self.idle_mask.load(Ordering::SeqCst) & (1 << vcpu) == 0 {
            return;
        }
        if let Some(vcpus) = self.vcpus.get() {
            if vcpus.current() != vcpu {
                self.kicks.fetch_add(1, Ordering::Relaxed);
                vcpus.kick(vcpu);
            }
        }
    }

    /// Whether vCPU `vcpu` has a task it may run now.
    fn has_work(&self, vcpu: u32) -> bool {
        let pinned = self
            .pinned
            .get(vcpu as usize)
            .is_some_and(|q| !q.lock().is_empty());
        pinned || (self.serves(vcpu) && !self.ready.lock().is_empty())
    }

    fn serves(&self, vcpu: u32) -> bool {
        vcpu < 32 && self.serving.load(Ordering::SeqCst) & (1 << vcpu) != 0
    }

    /// The next task for vCPU `vcpu`: its pinned ones first.
    fn pop(&self, vcpu: u32) -> Option<Arc<Task>> {
        if let Some(task) = self
            .pinned
            .get(vcpu as usize)
            .and_then(|q| q.lock().pop_front())
        {
            return Some(task);
        }
        if self.serves(vcpu) {
            return self.ready.lock().pop_front();
        }
        None
    }

    /// Marks vCPU `vcpu` idle and says whether it may block now: `false`
    /// (and the mark taken back) if a task for it is queued. Called with
    /// upcalls masked, right before blocking; [`Executor::end_idle`]
    /// after the block returns (see the module docs).
    pub fn prepare_idle(&self, vcpu: u32) -> bool {
        if vcpu >= 32 {
            return true;
        }
        self.idle_mask.fetch_or(1 << vcpu, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.has_work(vcpu) {
            self.end_idle(vcpu);
            return false;
        }
        true
    }

    /// vCPU `vcpu` is back from its idle.
    pub fn end_idle(&self, vcpu: u32) {
        if vcpu < 32 {
            self.idle_mask.fetch_and(!(1 << vcpu), Ordering::SeqCst);
        }
    }

    /// One turn of a secondary vCPU: polls the tasks ready for it now
    /// (once each); returns how many it polled.
    pub fn run_turn(&'static self, vcpu: u32) -> usize {
        self.run_ready_on(vcpu)
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
            woken_while_running: self.woken_while_running.load(Ordering::Relaxed),
            nested_block_ons: self.nested_block_ons.load(Ordering::Relaxed),
            kicks: self.kicks.load(Ordering::Relaxed),
        }
    }

    /// Every live task's state and the armed timers, now.
    pub fn snapshot(&self) -> ExecutorSnapshot {
        let tasks = self
            .tasks
            .lock()
            .values()
            .map(|task| {
                (
                    task.id,
                    TaskState::from_code(task.state.load(Ordering::Acquire)),
                )
            })
            .collect();
        let (timers, next_deadline) = {
            let timers = self.timers.lock();
            (
                timers.len(),
                timers.keys().next().map(|&(deadline, _)| deadline),
            )
        };
        ExecutorSnapshot {
            tasks,
            timers,
            next_deadline,
            block_on_depth: self.block_on_depth.load(Ordering::SeqCst),
            stats: self.stats(),
        }
    }

    /// Whether a `block_on` is running now (so a call would be nested).
    pub fn in_block_on(&self) -> bool {
        self.block_on_depth.load(Ordering::SeqCst) > 0
    }

    /// Runs `root` (and every spawned task alongside it) until `root`
    /// completes; idles on `platform` when nothing is ready. Refuses to
    /// run inside a task or another `block_on` (see the module docs).
    pub fn try_block_on<F: Future>(
        &'static self,
        platform: &impl Platform,
        root: F,
    ) -> Result<F::Output, NestedBlockOn> {
        if self
            .block_on_depth
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(NestedBlockOn);
        }
        let _depth = DepthGuard(&self.block_on_depth);
        Ok(self.run(platform, root))
    }

    /// [`Executor::try_block_on`] for the top level: a nested call panics
    /// in debug builds, naming its caller; a release build counts it,
    /// reports each call site once and runs it (see the module docs).
    #[track_caller]
    pub fn block_on<F: Future>(&'static self, platform: &impl Platform, root: F) -> F::Output {
        let caller = Location::caller();
        let depth = self.block_on_depth.fetch_add(1, Ordering::SeqCst);
        let _depth = DepthGuard(&self.block_on_depth);
        if depth > 0 {
            if cfg!(debug_assertions) {
                panic!(
                    "nested block_on at {caller}: block_on is for the top level only; \
                     code that tasks call must be async and .await (try_block_on returns \
                     NestedBlockOn instead)"
                );
            }
            self.nested_block_ons.fetch_add(1, Ordering::Relaxed);
            if self.first_nesting_at(caller) {
                log::warn!(
                    "nested block_on at {caller}: the task that called it waits until it returns; \
                     make the caller async"
                );
            }
        }
        self.run(platform, root)
    }

    /// Whether `caller` is a call site not seen nesting before (the first
    /// [`NESTED_SITES`] are remembered, so each is reported once).
    fn first_nesting_at(&self, caller: &'static Location<'static>) -> bool {
        let mut sites = self.nested_sites.lock();
        if sites.iter().flatten().any(|site| *site == caller) {
            return false;
        }
        if let Some(free) = sites.iter_mut().find(|site| site.is_none()) {
            *free = Some(caller);
            return true;
        }
        false
    }

    /// The loop behind both `block_on`s.
    fn run<F: Future>(&'static self, platform: &impl Platform, root: F) -> F::Output {
        let root_waker = Arc::new(RootWaker(AtomicBool::new(true), self));
        let waker = Waker::from(root_waker.clone());
        let mut cx = Context::from_waker(&waker);
        let mut root = pin!(root);
        let vcpu = self.current_vcpu();
        loop {
            if root_waker.0.swap(false, Ordering::SeqCst) {
                self.polls.fetch_add(1, Ordering::Relaxed);
                if let Poll::Ready(value) = root.as_mut().poll(&mut cx) {
                    return value;
                }
            }
            self.run_ready_on(vcpu);
            self.fire_timers(platform.now_ns());
            // Events that arrived while tasks ran wake their waiters now,
            // so the decision below sees them.
            platform.wake_event_waiters();
            let idle = !root_waker.0.load(Ordering::SeqCst) && !self.has_work(vcpu);
            if idle && self.prepare_idle(vcpu) {
                if root_waker.0.load(Ordering::SeqCst) {
                    self.end_idle(vcpu);
                    continue;
                }
                self.idles.fetch_add(1, Ordering::Relaxed);
                platform.idle(self.next_deadline());
                self.end_idle(vcpu);
                platform.wake_event_waiters();
                self.fire_timers(platform.now_ns());
            }
        }
    }

    /// Polls every task ready for vCPU `vcpu` now (once each; a task
    /// woken while it runs goes to the back of its queue for the next
    /// round). Returns how many were polled.
    fn run_ready_on(&'static self, vcpu: u32) -> usize {
        let budget = self.pinned.get(vcpu as usize).map_or(0, |q| q.lock().len())
            + if self.serves(vcpu) {
                self.ready.lock().len()
            } else {
                0
            };
        let mut polled = 0;
        while polled < budget {
            let Some(task) = self.pop(vcpu) else { break };
            polled += 1;
            self.poll_task(task);
        }
        polled
    }

    /// Polls one queued task (if it is still scheduled).
    fn poll_task(&'static self, task: Arc<Task>) {
        if task
            .state
            .compare_exchange(
                state::SCHEDULED,
                state::RUNNING,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // Only the executor queues tasks, always as scheduled.
            return;
        }
        let waker = Waker::from(task.clone());
        let mut slot = task.future.lock();
        let Some(future) = slot.as_mut() else {
            return;
        };
        self.polls.fetch_add(1, Ordering::Relaxed);
        match future.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(()) => {
                task.state.store(state::DONE, Ordering::Release);
                // Dropping the future may drop wakers of this task:
                // they only touch the state, which says done.
                *slot = None;
                drop(slot);
                self.tasks.lock().remove(&task.id);
                self.completed.fetch_add(1, Ordering::Relaxed);
            }
            Poll::Pending => {
                drop(slot);
                if task
                    .state
                    .compare_exchange(
                        state::RUNNING,
                        state::IDLE,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_err()
                {
                    // Notified while running: poll it again.
                    self.woken_while_running.fetch_add(1, Ordering::Relaxed);
                    task.state.store(state::SCHEDULED, Ordering::Release);
                    self.enqueue(task.clone());
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
        let earliest = {
            let mut timers = self.timers.lock();
            timers.insert(key, waker.clone());
            timers.keys().next() == Some(&key)
        };
        if earliest {
            // vCPU 0 arms the one-shot timer: if it sleeps on a later
            // deadline, it must come back to arm this one.
            fence(Ordering::SeqCst);
            self.kick_if_idle(0);
        }
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
    fn a_snapshot_shows_each_task_where_it_waits() {
        let executor = leak();
        let platform = FakePlatform {
            idles: StdAtomicU64::new(0),
        };
        // Far beyond any deadline the other tests (sharing CLOCK) reach.
        let deadline = clock() + (1 << 50);
        let sleeper = executor.spawn(executor.sleep_until(clock, deadline));
        let seen = Arc::new(Mutex::new(None));
        let watcher = {
            let seen = seen.clone();
            executor.spawn(async move {
                *seen.lock() = Some(executor.snapshot());
            })
        };
        assert_eq!(
            executor.snapshot().tasks,
            [
                (sleeper, TaskState::Scheduled),
                (watcher, TaskState::Scheduled)
            ]
        );
        executor.block_on(&platform, YieldNow::new());
        let inside = seen.lock().take().expect("the watcher ran");
        assert_eq!(
            inside.tasks,
            [(sleeper, TaskState::Idle), (watcher, TaskState::Running)],
            "the sleeper was polled first and waits for its timer"
        );
        assert_eq!(inside.timers, 1);
        assert_eq!(inside.next_deadline, Some(deadline));
        assert_eq!(inside.block_on_depth, 1);
        let after = executor.snapshot();
        assert_eq!(after.tasks, [(sleeper, TaskState::Idle)]);
        assert_eq!(after.block_on_depth, 0);
    }

    /// vCPUs for one test thread: `current` says which vCPU the test
    /// plays, kicks are recorded.
    struct PlayedVcpus {
        current: AtomicU32,
        kicked: Mutex<Vec<u32>>,
    }

    impl Vcpus for PlayedVcpus {
        fn current(&self) -> u32 {
            self.current.load(Ordering::SeqCst)
        }
        fn kick(&self, vcpu: u32) {
            self.kicked.lock().push(vcpu);
        }
    }

    #[test]
    fn an_offline_vcpus_tasks_run_elsewhere_until_it_is_back() {
        let executor = leak();
        let vcpus: &'static PlayedVcpus = Box::leak(Box::new(PlayedVcpus {
            current: AtomicU32::new(0),
            kicked: Mutex::new(Vec::new()),
        }));
        executor.set_vcpus(vcpus);
        executor.serve(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let task = |name: &'static str| {
            let log = log.clone();
            async move { log.lock().push(name) }
        };
        executor.spawn_on(1, task("queued on 1")).unwrap();
        assert_eq!(executor.run_turn(0), 0, "vCPU 0 leaves vCPU 1's task alone");
        // vCPU 0 idles; vCPU 1 goes offline with its task queued.
        assert!(executor.prepare_idle(0));
        vcpus.current.store(1, Ordering::SeqCst);
        assert_eq!(executor.take_offline(1), 1);
        assert_eq!(
            *vcpus.kicked.lock(),
            [0],
            "the idle vCPU 0 is kicked for it"
        );
        assert_eq!(executor.run_turn(1), 0, "the offline vCPU serves nothing");
        vcpus.current.store(0, Ordering::SeqCst);
        executor.end_idle(0);
        assert_eq!(executor.run_turn(0), 1);
        assert_eq!(*log.lock(), ["queued on 1"]);
        // Pinned to it while it is offline: queued for any vCPU.
        executor.spawn_on(1, task("pinned while offline")).unwrap();
        assert_eq!(executor.run_turn(0), 1);
        // Back online: pinned tasks are its own again.
        executor.bring_online(1);
        executor.spawn_on(1, task("pinned after")).unwrap();
        assert_eq!(executor.run_turn(0), 0);
        vcpus.current.store(1, Ordering::SeqCst);
        assert_eq!(executor.run_turn(1), 1);
        assert_eq!(
            *log.lock(),
            ["queued on 1", "pinned while offline", "pinned after"]
        );
        assert_eq!(executor.live_tasks(), 0);
        assert_eq!(executor.take_offline(0), 0, "vCPU 0 never goes offline");
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

    /// The re-entrancy case: a task registers its waker, and while it is
    /// still being polled another task (here one it spawns) wakes it.
    /// The executor is re-entered during the poll, as a nested `block_on`
    /// in a driver used to do; the wake-up must not be lost.
    #[test]
    fn a_task_woken_while_it_runs_is_polled_again() {
        let executor = leak();
        let platform = FakePlatform {
            idles: StdAtomicU64::new(0),
        };
        let polls = Arc::new(StdAtomicU64::new(0));
        let task_polls = polls.clone();
        let parked: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
        executor.spawn(core::future::poll_fn(move |cx| {
            if task_polls.fetch_add(1, Ordering::SeqCst) > 0 {
                return Poll::Ready(());
            }
            *parked.lock() = Some(cx.waker().clone());
            let waker_slot = parked.clone();
            executor.spawn(async move {
                if let Some(waker) = waker_slot.lock().take() {
                    waker.wake();
                }
            });
            // Still inside our poll, the executor goes round a few times
            // (as a nested `block_on`'s loop does): the helper runs and
            // wakes us, and the rounds after see that wake-up.
            for _ in 0..3 {
                executor.run_ready_on(0);
            }
            Poll::Pending
        }));
        executor.block_on(&platform, async {
            for _ in 0..100 {
                if executor.live_tasks() == 0 {
                    return;
                }
                YieldNow::new().await;
            }
        });
        assert_eq!(
            polls.load(Ordering::SeqCst),
            2,
            "the wake-up that arrived during the poll was lost"
        );
        assert_eq!(executor.live_tasks(), 0);
    }

    #[test]
    fn a_task_that_wakes_itself_while_running_is_polled_again() {
        let executor = leak();
        let platform = FakePlatform {
            idles: StdAtomicU64::new(0),
        };
        let polls = Arc::new(StdAtomicU64::new(0));
        let task_polls = polls.clone();
        executor.spawn(core::future::poll_fn(move |cx| {
            // Woken three times during the first poll: polled once more,
            // not three times more.
            if task_polls.fetch_add(1, Ordering::SeqCst) == 0 {
                for _ in 0..3 {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }));
        executor.block_on(&platform, async {
            while executor.live_tasks() > 0 {
                YieldNow::new().await;
            }
        });
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        assert_eq!(executor.stats().woken_while_running, 1);
    }

    #[test]
    fn a_wake_from_another_thread_during_the_poll_is_kept() {
        use std::sync::Barrier;
        let executor = leak();
        let platform = FakePlatform {
            idles: StdAtomicU64::new(0),
        };
        let parked: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
        let in_poll = Arc::new(Barrier::new(2));
        let woken = Arc::new(Barrier::new(2));
        let (task_parked, task_in_poll, task_woken) =
            (parked.clone(), in_poll.clone(), woken.clone());
        let polls = Arc::new(StdAtomicU64::new(0));
        let task_polls = polls.clone();
        executor.spawn(core::future::poll_fn(move |cx| {
            if task_polls.fetch_add(1, Ordering::SeqCst) > 0 {
                return Poll::Ready(());
            }
            *task_parked.lock() = Some(cx.waker().clone());
            task_in_poll.wait();
            // The other thread wakes us before we return Pending.
            task_woken.wait();
            Poll::Pending
        }));
        let waker_thread = std::thread::spawn(move || {
            in_poll.wait();
            if let Some(waker) = parked.lock().take() {
                waker.wake();
            }
            woken.wait();
        });
        executor.block_on(&platform, async {
            for _ in 0..100 {
                if executor.live_tasks() == 0 {
                    return;
                }
                YieldNow::new().await;
            }
        });
        waker_thread.join().unwrap();
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        assert_eq!(executor.live_tasks(), 0);
    }

    #[test]
    fn block_on_inside_a_task_is_refused() {
        let executor = leak();
        let platform = FakePlatform {
            idles: StdAtomicU64::new(0),
        };
        let refused = Arc::new(Mutex::new(None));
        let task_refused = refused.clone();
        executor.spawn(async move {
            let inner = FakePlatform {
                idles: StdAtomicU64::new(0),
            };
            *task_refused.lock() = Some(executor.try_block_on(&inner, async { 1 }));
        });
        let nested_in_root = executor.try_block_on(&platform, async {
            let inner = FakePlatform {
                idles: StdAtomicU64::new(0),
            };
            let nested = executor.try_block_on(&inner, async { 2 });
            while executor.live_tasks() > 0 {
                YieldNow::new().await;
            }
            nested
        });
        assert_eq!(nested_in_root, Ok(Err(NestedBlockOn)));
        assert_eq!(*refused.lock(), Some(Err(NestedBlockOn)));
        // The top level may call it again once the first one returned.
        assert_eq!(executor.try_block_on(&platform, async { 3 }), Ok(3));
        assert!(!executor.in_block_on());
    }

    #[test]
    #[should_panic(expected = "nested block_on at kernel/src/sched/executor.rs")]
    fn nested_block_on_panics_in_debug_naming_the_caller() {
        let executor = leak();
        let platform = FakePlatform {
            idles: StdAtomicU64::new(0),
        };
        executor.block_on(&platform, async {
            let inner = FakePlatform {
                idles: StdAtomicU64::new(0),
            };
            executor.block_on(&inner, async {});
        });
    }

    #[test]
    fn a_panicking_root_leaves_block_on_usable() {
        let executor = leak();
        let platform = FakePlatform {
            idles: StdAtomicU64::new(0),
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            executor.block_on(&platform, async { panic!("root failed") })
        }));
        assert!(result.is_err());
        assert!(!executor.in_block_on());
        assert_eq!(executor.block_on(&platform, async { 4 }), 4);
    }

    /// A platform whose "events" are a list of wakers handed over by
    /// `wake_event_waiters`, and which counts idles.
    struct EventPlatform {
        arrived: Mutex<Vec<Waker>>,
        idles: StdAtomicU64,
    }

    impl Platform for EventPlatform {
        fn now_ns(&self) -> u64 {
            clock()
        }
        fn wake_event_waiters(&self) {
            let arrived = core::mem::take(&mut *self.arrived.lock());
            arrived.into_iter().for_each(Waker::wake);
        }
        fn idle(&self, deadline: Option<u64>) {
            self.idles.fetch_add(1, Ordering::SeqCst);
            let deadline = deadline.expect("idle with no timer would sleep forever");
            CLOCK.fetch_max(deadline, Ordering::SeqCst);
        }
    }

    #[test]
    fn events_handed_over_before_idling_wake_their_waiters_without_idling() {
        let executor = leak();
        let platform: &'static EventPlatform = Box::leak(Box::new(EventPlatform {
            arrived: Mutex::new(Vec::new()),
            idles: StdAtomicU64::new(0),
        }));
        let polls = Arc::new(StdAtomicU64::new(0));
        let task_polls = polls.clone();
        // A task that waits for an "event" which arrives (is recorded by
        // the platform) during its own poll, as an upcall would record it.
        executor.spawn(core::future::poll_fn(move |cx| {
            if task_polls.fetch_add(1, Ordering::SeqCst) > 0 {
                return Poll::Ready(());
            }
            platform.arrived.lock().push(cx.waker().clone());
            Poll::Pending
        }));
        executor.block_on(platform, async {
            while executor.live_tasks() > 0 {
                // Not a yield: the root waits for nothing, so only the
                // hand-over keeps the executor from idling.
                core::future::poll_fn(|cx| {
                    if executor.live_tasks() == 0 {
                        Poll::Ready(())
                    } else {
                        platform.arrived.lock().push(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await;
            }
        });
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        assert_eq!(platform.idles.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn each_nested_call_site_is_reported_once() {
        let executor = leak();
        let here = Location::caller();
        let there = {
            #[track_caller]
            fn site() -> &'static Location<'static> {
                Location::caller()
            }
            site()
        };
        assert!(executor.first_nesting_at(here));
        assert!(!executor.first_nesting_at(here));
        assert!(executor.first_nesting_at(there));
        assert!(!executor.first_nesting_at(there));
    }

    /// This test's own clock (the shared one moves under parallel tests).
    static SPURIOUS_CLOCK: StdAtomicU64 = StdAtomicU64::new(0);

    fn spurious_clock() -> u64 {
        SPURIOUS_CLOCK.load(Ordering::SeqCst)
    }

    /// A platform whose idle returns early (a spurious wake-up) half the
    /// time, recording what it was asked.
    struct SpuriousPlatform {
        asked: Mutex<Vec<(u64, Option<u64>)>>,
    }

    impl Platform for SpuriousPlatform {
        fn now_ns(&self) -> u64 {
            spurious_clock()
        }
        fn idle(&self, deadline: Option<u64>) {
            let mut asked = self.asked.lock();
            asked.push((spurious_clock(), deadline));
            if asked.len().is_multiple_of(2) {
                if let Some(deadline) = deadline {
                    SPURIOUS_CLOCK.fetch_max(deadline, Ordering::SeqCst);
                }
            }
        }
    }

    #[test]
    fn idle_is_only_ever_asked_to_sleep_until_a_future_deadline() {
        let executor = leak();
        let platform = SpuriousPlatform {
            asked: Mutex::new(Vec::new()),
        };
        let base = spurious_clock();
        executor.block_on(&platform, async {
            for step in 1..=5u64 {
                executor
                    .sleep_until(spurious_clock, base + step * 1000)
                    .await;
            }
        });
        let asked = platform.asked.lock();
        // Each sleep costs at most one spurious return and one real one:
        // no loop that asks again and again.
        assert!(
            asked.len() <= 10,
            "idled {} times for 5 sleeps",
            asked.len()
        );
        for &(now, deadline) in asked.iter() {
            let deadline = deadline.expect("a sleep is pending, so there is a deadline");
            assert!(deadline > now, "asked to sleep until {deadline} at {now}");
        }
    }
}
