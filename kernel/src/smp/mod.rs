//! Secondary vCPUs: bringing vCPU 1..N-1 up, and what they do once up.
//!
//! Paravane's tasks run on vCPU 0 until an application asks for the
//! other vCPUs the domain was given ([`start_secondaries`]; the
//! conformance suite and `smpwork` do, other apps keep one vCPU and run
//! exactly as before): each is given its own `vcpu_info` ([`bring_up`]),
//! with FIFO its own control block, an initial context (PV: a
//! `vcpu_guest_context` with its own stack, our trap table and
//! callbacks, CR3 = the page tables vCPU 0 runs on; PVH: the 64-bit
//! `vcpu_hvm_context` with vCPU 0's CR0/CR3/CR4/EFER), a kick port (an
//! IPI bound to it), and is started with `VCPUOP_up`. It then runs
//! [`secondary`]'s loop: it serves the executor (tasks pinned to it with
//! `sched::spawn_on`, and shared tasks, see `sched::executor`), serves
//! the few requests vCPU 0 posts to it (arming its one-shot timer, which
//! only the vCPU itself may do), takes its own upcalls, and with nothing
//! to do blocks in Xen (`SCHEDOP_block`, or `sti; hlt`) until kicked.
//! vCPU 0 gets a kick port too, so a task elsewhere can wake its root
//! future or hand it an earlier timer.
//!
//! # Finding the per-vCPU area without locks
//!
//! Each secondary vCPU runs on a stack of its own in [`STACKS`]; the
//! vCPU that is executing is found from the stack pointer alone
//! ([`current_vcpu`]): inside secondary stack `i` it is vCPU `i + 1`,
//! anywhere else vCPU 0 (the boot stack). Its [`PerVcpu`] area is then
//! `AREAS[id]`, all atomics. No segment base, no lock, no table to look
//! up, so the upcall entry can do it first thing.
//!
//! # Upcall-context locking on SMP
//!
//! The rule of [`crate::events`] (the upcall only records) holds on
//! every vCPU, and a secondary vCPU's upcall path is stricter still: it
//! takes **no lock at all**. It touches only its own `vcpu_info` (Xen's
//! words, atomically), the shared 2-level bitmaps (atomically), and its
//! own [`PerVcpu`] atomics, and with FIFO its own control block and
//! consumer (`events::fifo_runtime`: vCPU 0 registers each secondary's
//! control block before starting it); it never touches vCPU 0's port
//! table, the heap, the console or the executor (a FIFO port it dequeues
//! but does not own goes to its owner's fired set, atomically).
//! A spin lock taken there could otherwise be held by vCPU 0 (no
//! deadlock, but unbounded waiting in an upcall) or, worse, by the
//! interrupted code on the same vCPU (a deadlock). Task code on a
//! secondary takes locks like task code on vCPU 0, always with its
//! upcalls masked (the rule of `kernel::sync`, checked in debug
//! builds). Which vCPU gets which port is decided by vCPU 0 before the
//! port can fire ([`claim_port`]), and each vCPU's 2-level scan handles
//! only its own ports, so the two scans never take each other's events.
//!
//! # Limits
//!
//! - The secondary stacks (32 KiB, where their tasks are polled) have
//!   no guard page; PVH secondaries load no TSS (a double fault there
//!   would find no IST stack).
//! - Events are taken by vCPU 0 unless a channel is moved: a task on a
//!   secondary waiting on a channel of vCPU 0's is woken by vCPU 0's
//!   hand-over (and a kick). A channel moved with
//!   `EventChannel::bind_to_vcpu` is recorded by its vCPU's own upcall
//!   and handed to its waiters by that vCPU's own task context (its idle
//!   loop, or a wait polled there: `take_channel_events`), so a task
//!   pinned to that vCPU is woken without vCPU 0. Raw ports a secondary
//!   claims ([`claim_port`]: its kick port, the suite's) are only
//!   recorded, for [`take_fired`].
//! - Suspending with secondaries up is refused (their registered
//!   `vcpu_info`s would be gone in the new domain).

/// The most vCPUs Paravane brings up (the rig gives 2 or 4).
pub const MAX_VCPUS: usize = 8;

#[cfg(target_os = "none")]
mod bring_up;
#[cfg(target_os = "none")]
mod hotplug;
#[cfg(target_os = "none")]
mod secondary;
#[cfg(target_os = "none")]
pub use bring_up::{
    domain_exceeds_max_vcpus, domain_vcpus, pv_context, pvh_context, start_secondaries,
    vcpu_info_frame, SmpError,
};
#[cfg(target_os = "none")]
pub use hotplug::{bring_online, take_offline};
#[cfg(target_os = "none")]
pub(crate) use secondary::secondary_upcall;

#[cfg(target_os = "none")]
mod area {
    use super::MAX_VCPUS;
    use crate::events::fired::FiredPorts;
    use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
    use pv_arch::Errno;

    /// Bytes of each secondary vCPU's stack.
    pub const STACK_SIZE: usize = 32 * 1024;

    #[repr(C, align(16))]
    pub(super) struct Stacks(pub(super) [[u8; STACK_SIZE]; MAX_VCPUS - 1]);

    /// The secondary vCPUs' stacks: only the CPU writes them, through
    /// `rsp`; Rust never forms a reference.
    pub(super) static mut STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_VCPUS - 1]);

    /// The top of vCPU `id`'s stack (`id` ≥ 1).
    pub(super) fn stack_top(id: u32) -> u64 {
        let base = (&raw const STACKS) as u64;
        base + u64::from(id) * STACK_SIZE as u64
    }

    /// "No result yet" in [`PerVcpu`]'s result words. Zero, so the areas
    /// start all zeros and sit in `.bss` (8 KiB less image).
    const NO_RESULT: i64 = 0;
    /// A timer armed successfully (an error is stored as `-errno`).
    const TIMER_OK: i64 = 1;

    /// What one vCPU's upcall and idle loop record, and what vCPU 0 asks
    /// of it: atomics only (see the module docs).
    pub struct PerVcpu {
        /// Set by the vCPU itself when it reaches its idle loop.
        pub(super) alive: AtomicBool,
        /// Upcalls taken on this vCPU.
        pub(super) upcalls: AtomicU64,
        /// Times its idle block returned.
        pub(super) wakeups: AtomicU64,
        /// Ports its upcall saw raised (taken by [`super::take_fired`]).
        pub(super) fired: FiredPorts,
        /// Ports bound to it ([`super::claim_port`]): its scan handles
        /// these and vCPU 0's skips them.
        pub(super) owned: FiredPorts,
        /// Of the ports it owns, those of an `EventChannel` bound to it
        /// (`EventChannel::bind_to_vcpu`): its own task context hands
        /// these over to their slots and wakes their waiters
        /// ([`super::take_channel_events`]); raw claimed ports (its kick
        /// port, the suite's) stay in `fired` for [`super::take_fired`].
        pub(super) channels: FiredPorts,
        /// A one-shot timer deadline for it to arm (0: none).
        pub(super) timer_request: AtomicU64,
        /// The result of the last armed timer ([`TIMER_OK`], `-errno`, or
        /// [`NO_RESULT`]).
        pub(super) timer_result: AtomicI64,
        /// The IPI port vCPU 0 kicks it with (0: none).
        pub(super) kick_port: AtomicU32,
        /// Set by [`super::take_offline`]: the vCPU stops itself at the
        /// top of its idle loop (`VCPUOP_down`) and clears it.
        pub(super) down_request: AtomicBool,
    }

    impl PerVcpu {
        const fn new() -> Self {
            PerVcpu {
                alive: AtomicBool::new(false),
                upcalls: AtomicU64::new(0),
                wakeups: AtomicU64::new(0),
                fired: FiredPorts::new(),
                owned: FiredPorts::new(),
                channels: FiredPorts::new(),
                timer_request: AtomicU64::new(0),
                timer_result: AtomicI64::new(NO_RESULT),
                kick_port: AtomicU32::new(0),
                down_request: AtomicBool::new(false),
            }
        }

        pub(super) fn set_timer_result(&self, result: Result<(), Errno>) {
            let code = match result {
                Ok(()) => TIMER_OK,
                Err(errno) => -i64::from(errno.0.unsigned_abs()),
            };
            self.timer_result.store(code, Ordering::SeqCst);
        }
    }

    /// One area per vCPU (index = vCPU id; vCPU 0's is unused but for
    /// symmetry).
    pub(super) static AREAS: [PerVcpu; MAX_VCPUS] = [const { PerVcpu::new() }; MAX_VCPUS];

    /// The area of vCPU `id` (`None` beyond [`MAX_VCPUS`]).
    pub(super) fn area(id: u32) -> Option<&'static PerVcpu> {
        AREAS.get(id as usize)
    }

    /// Takes and decodes a timer result: `None` if none came yet.
    pub(super) fn take_timer_result(area: &PerVcpu) -> Option<Result<(), Errno>> {
        match area.timer_result.swap(NO_RESULT, Ordering::SeqCst) {
            NO_RESULT => None,
            TIMER_OK => Some(Ok(())),
            code => Some(Err(Errno(i32::try_from(-code).unwrap_or(i32::MAX)))),
        }
    }
}

#[cfg(target_os = "none")]
pub use area::STACK_SIZE;

#[cfg(target_os = "none")]
mod api {
    use super::area::{self, area, stack_top, AREAS, STACK_SIZE};
    use super::MAX_VCPUS;
    use core::sync::atomic::{AtomicU32, Ordering};
    use pv_arch::Errno;

    /// vCPUs running Paravane code (1 until [`super::start_secondaries`]).
    pub(super) static STARTED: AtomicU32 = AtomicU32::new(1);

    /// The vCPU executing this, found from the stack pointer (see the
    /// module docs): lock-free, usable in any context.
    pub fn current_vcpu() -> u32 {
        let rsp: u64;
        // SAFETY: reads the stack pointer; no memory is touched.
        unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
        let base = stack_top(0);
        let end = stack_top(MAX_VCPUS as u32 - 1);
        if (base..end).contains(&rsp) {
            1 + ((rsp - base) / STACK_SIZE as u64) as u32
        } else {
            0
        }
    }

    /// How many vCPUs were ever brought up (vCPU 0 plus the
    /// secondaries started, offline ones included: ids below this have
    /// a context and an area). See [`vcpus_online`] for those running now.
    pub fn vcpus_started() -> u32 {
        STARTED.load(Ordering::SeqCst)
    }

    /// How many vCPUs run Paravane code now: vCPU 0 and every secondary
    /// in its idle loop (not taken offline).
    pub fn vcpus_online() -> u32 {
        1 + (1..vcpus_started()).filter(|&id| is_alive(id)).count() as u32
    }

    /// The vCPU Xen notifies of `EventChannel` port `port`: the
    /// secondary it was bound to ([`claim_channel_port`]), else 0.
    pub fn channel_owner(port: u32) -> u32 {
        AREAS[1..]
            .iter()
            .position(|a| a.channels.word(port as usize / 64) & (1 << (port % 64)) != 0)
            .map_or(0, |index| index as u32 + 1)
    }

    /// The `EventChannel` ports bound to vCPU `id` (none for vCPU 0).
    pub(crate) fn channel_ports(id: u32) -> alloc::vec::Vec<u32> {
        let Some(a) = area(id).filter(|_| id != 0) else {
            return alloc::vec::Vec::new();
        };
        (0..64)
            .flat_map(|word| {
                crate::events::two_level::bits(a.channels.word(word))
                    .map(move |bit| (word * 64 + bit) as u32)
            })
            .collect()
    }

    /// Whether any secondary vCPU was brought up.
    pub fn secondaries_started() -> bool {
        vcpus_started() > 1
    }

    /// Nanoseconds vCPU `id` has spent running, by Xen's runstate
    /// accounting (`VCPUOP_get_runstate_info`).
    pub fn running_ns(id: u32) -> Result<u64, Errno> {
        let info = pv_arch::hypercall::vcpu::get_runstate_info(id)?;
        Ok(info.time[pv_arch::abi::vcpu::RUNSTATE_RUNNING as usize])
    }

    /// Whether vCPU `id` reached its idle loop.
    pub fn is_alive(id: u32) -> bool {
        area(id).is_some_and(|a| a.alive.load(Ordering::SeqCst))
    }

    /// Upcalls vCPU `id` took, and times its idle block returned.
    pub fn counters(id: u32) -> (u64, u64) {
        area(id).map_or((0, 0), |a| {
            (
                a.upcalls.load(Ordering::SeqCst),
                a.wakeups.load(Ordering::SeqCst),
            )
        })
    }

    /// Hands `port` to secondary vCPU `id`'s upcall (before the port is
    /// bound to it or unmasked, so no event of it reaches vCPU 0's scan
    /// as a stray). `EINVAL` for vCPU 0 or one never brought up.
    pub fn claim_port(port: u32, id: u32) -> Result<(), Errno> {
        match area(id) {
            Some(a) if id != 0 && id < vcpus_started() => {
                if a.owned.record(port) {
                    a.fired.forget(port);
                    Ok(())
                } else {
                    Err(Errno::EINVAL)
                }
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Gives `port` back to vCPU 0 (after it was closed or moved back).
    pub fn release_port(port: u32) {
        for a in &AREAS[1..] {
            a.owned.forget(port);
            a.channels.forget(port);
            a.fired.forget(port);
        }
    }

    /// Like [`claim_port`], for an `EventChannel`'s port: vCPU `id`'s
    /// own task context hands its events to the channel's slot
    /// ([`take_channel_events`]).
    pub(crate) fn claim_channel_port(port: u32, id: u32) -> Result<(), Errno> {
        claim_port(port, id)?;
        if let Some(a) = area(id) {
            a.channels.record(port);
        }
        Ok(())
    }

    /// Takes what vCPU `id`'s upcall recorded for its channels' ports
    /// (task context on that vCPU), calling `handle` for each. The
    /// others it recorded (raw claimed ports) stay for [`take_fired`].
    pub(crate) fn take_channel_events(id: u32, mut handle: impl FnMut(u32)) {
        let Some(a) = area(id).filter(|_| id != 0) else {
            return;
        };
        for word in 0..64 {
            let mine = a.channels.word(word);
            if mine == 0 || a.fired.word(word) & mine == 0 {
                continue;
            }
            for bit in crate::events::two_level::bits(mine) {
                let port = (word * 64 + bit) as u32;
                if a.fired.take(port) {
                    handle(port);
                }
            }
        }
    }

    /// Whether vCPU `id`'s upcall recorded an event for one of its
    /// channels that [`take_channel_events`] has not taken yet.
    pub(crate) fn has_channel_events(id: u32) -> bool {
        area(id)
            .filter(|_| id != 0)
            .is_some_and(|a| (0..64).any(|w| a.fired.word(w) & a.channels.word(w) != 0))
    }

    /// Records `port` for the secondary vCPU that owns it, if one does
    /// (upcall context: atomics only). A FIFO port moved while it was
    /// linked on another vCPU's queue is dequeued there and handed over
    /// this way.
    pub(crate) fn record_for_owner(port: u32) -> bool {
        match AREAS[1..]
            .iter()
            .position(|a| a.owned.word(port as usize / 64) & (1 << (port % 64)) != 0)
        {
            Some(index) => {
                // Recorded on another vCPU than the owner, which may be
                // blocked: it is kicked from task context
                // ([`kick_crossed`]).
                note_crossed(index as u32 + 1);
                AREAS[index + 1].fired.record(port)
            }
            None => false,
        }
    }

    /// vCPUs that an upcall elsewhere recorded an event for.
    static CROSSED: AtomicU32 = AtomicU32::new(0);

    /// Notes that vCPU `id` has an event recorded by another vCPU's
    /// upcall (upcall context: one atomic OR).
    pub(crate) fn note_crossed(id: u32) {
        if id < 32 {
            CROSSED.fetch_or(1 << id, Ordering::SeqCst);
        }
    }

    /// Kicks every vCPU that another vCPU's upcall recorded an event for
    /// (task context): without it an event of a FIFO port that moved
    /// while linked on another vCPU's queue would wait for that vCPU's
    /// next wake-up.
    pub(crate) fn kick_crossed() {
        if CROSSED.load(Ordering::Relaxed) == 0 {
            return;
        }
        let me = current_vcpu();
        let mut crossed = CROSSED.swap(0, Ordering::SeqCst);
        while crossed != 0 {
            let id = crossed.trailing_zeros();
            crossed &= crossed - 1;
            if id != me {
                let _ = kick(id);
            }
        }
    }

    /// Bit `word` of the ports any secondary vCPU owns: what vCPU 0's
    /// scan leaves alone.
    pub(crate) fn claimed_word(word: usize) -> u64 {
        AREAS[1..].iter().fold(0, |acc, a| acc | a.owned.word(word))
    }

    /// Whether vCPU `id`'s upcall recorded `port` since the last call
    /// (taking the record).
    pub fn take_fired(id: u32, port: u32) -> bool {
        area(id).is_some_and(|a| a.fired.take(port))
    }

    /// Kicks vCPU `id` with its IPI port (it then serves its requests).
    pub fn kick(id: u32) -> Result<(), Errno> {
        let port = area(id).map_or(0, |a| a.kick_port.load(Ordering::SeqCst));
        if port == 0 {
            return Err(Errno::ENOENT);
        }
        pv_arch::hypercall::event_channel::evtchn_send(port)
    }

    /// vCPU `id`'s kick port (0: none, e.g. not brought up).
    pub fn kick_port(id: u32) -> u32 {
        area(id).map_or(0, |a| a.kick_port.load(Ordering::SeqCst))
    }

    /// Asks vCPU `id` to arm its one-shot timer for system time
    /// `deadline_ns` (only a vCPU may arm its own) and kicks it; see
    /// [`take_timer_result`] for its answer.
    pub fn request_singleshot(id: u32, deadline_ns: u64) -> Result<(), Errno> {
        let a = area(id).ok_or(Errno::EINVAL)?;
        let _ = area::take_timer_result(a);
        a.timer_request.store(deadline_ns.max(1), Ordering::SeqCst);
        kick(id)
    }

    /// vCPU `id`'s answer to the last [`request_singleshot`], once.
    pub fn take_timer_result(id: u32) -> Option<Result<(), Errno>> {
        area(id).and_then(area::take_timer_result)
    }
}

#[cfg(target_os = "none")]
pub use api::*;
