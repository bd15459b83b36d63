//! The vCPU ABI with a second vCPU running: `VCPUOP_initialise`
//! refusals, bringing vCPU 1 up, `is_up`/`down`/`up`, IPIs and
//! `EVTCHNOP_bind_vcpu` delivered on vCPU 1, `VIRQ_TIMER` bound per vCPU
//! and a one-shot timer firing there, and vCPU 1's runstate while idle.
//!
//! The checks run in table order: the refusals need vCPU 1 not yet
//! initialised (a refused context must leave it so), so they come first,
//! then `smp/bring_up` starts every secondary vCPU with
//! [`crate::smp::start_secondaries`] (the conformance app's opt-in to
//! SMP), then the rest. Every check SKIPs with the reason when the
//! domain has one vCPU (the direct dom0 boots). Events on vCPU 1 are
//! checked under both ABIs (FIFO: its own control block and queues).

use super::{expect_errno, Applies, Ctx, Outcome, Test};
use crate::boot_info::BootMode;
use crate::{sched, smp, suite_fail};
use core::time::Duration;
use pv_arch::abi::event_channel::{EVTCHNSTAT_VIRQ, VIRQ_TIMER};
use pv_arch::abi::hvm::VcpuHvmContext;
use pv_arch::abi::vcpu::{RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNING};
use pv_arch::abi::xen::DOMID_SELF;
use pv_arch::hypercall::{event_channel as evtchn, vcpu};
use pv_arch::Errno;

/// The vCPU the checks drive.
const VCPU: u32 = 1;

/// `Err(Skip)` unless the domain has a second vCPU.
fn second_vcpu() -> Result<(), Outcome> {
    match vcpu::is_up(VCPU) {
        Err(Errno::ENOENT) => Err(Outcome::Skip(
            "the domain has one vCPU (the rig's domU conformance guests get vcpus=2)".into(),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(suite_fail!("VCPUOP_is_up(1): {e}")),
    }
}

/// `Err(Skip)` unless vCPU 1 was brought up (by `smp/bring_up`).
fn running_second_vcpu() -> Result<(), Outcome> {
    second_vcpu()?;
    if smp::vcpus_started() <= VCPU {
        return Err(suite_fail!("vCPU 1 was not brought up (see smp/bring_up)"));
    }
    Ok(())
}

/// `Err(Skip)` unless vCPU 1 runs and can take events (either ABI: with
/// FIFO, vCPU 0 registered its control block before starting it).
pub(super) fn events_on_second_vcpu() -> Result<(), Outcome> {
    running_second_vcpu()?;
    if smp::kick_port(VCPU) == 0 {
        return Err(suite_fail!("vCPU 1 runs without a kick port"));
    }
    Ok(())
}

/// Polls `done` every millisecond (sleeping in Xen) for up to 2 s.
pub(super) fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    let deadline = crate::time::now_ns() + 2_000_000_000;
    loop {
        if done() {
            return true;
        }
        if crate::time::now_ns() > deadline {
            return false;
        }
        sched::block_on(sched::sleep(Duration::from_millis(1)));
    }
}

/// A context that differs from the real one in one field.
enum BadContext {
    Pv(alloc::boxed::Box<pv_arch::abi::arch_x86::VcpuGuestContext>),
    Pvh(VcpuHvmContext),
}

/// The contexts Xen documents a refusal for (`EINVAL`), each named.
fn bad_contexts() -> Result<alloc::vec::Vec<(&'static str, BadContext)>, Outcome> {
    let mut out = alloc::vec::Vec::new();
    match crate::platform::mode() {
        BootMode::Pv => {
            let real =
                smp::pv_context(VCPU).map_err(|e| suite_fail!("building the context: {e}"))?;
            let mut rip = real.clone();
            rip.user_regs.rip = 0x8000_0000_0000_0000;
            out.push(("non-canonical rip", BadContext::Pv(rip)));
            let mut callback = real.clone();
            callback.event_callback_eip = 0x0000_8000_0000_1000;
            out.push(("non-canonical event callback", BadContext::Pv(callback)));
            let mut ldt = real.clone();
            ldt.ldt_base = 0x1001;
            ldt.ldt_ents = 1;
            out.push(("LDT base not page aligned", BadContext::Pv(ldt)));
            let mut ldt_ents = real;
            ldt_ents.ldt_ents = 8193;
            out.push(("more than 8192 LDT entries", BadContext::Pv(ldt_ents)));
        }
        BootMode::Pvh => {
            let real = smp::pvh_context(VCPU);
            let mut mode = real;
            mode.mode = 2;
            out.push(("unknown mode 2", BadContext::Pvh(mode)));
            let mut pad = real;
            pad.pad = 1;
            out.push(("pad not 0", BadContext::Pvh(pad)));
            let mut rip = real;
            rip.cpu_regs.x86_64.rip = 0x8000_0000_0000_0000;
            out.push(("non-canonical rip", BadContext::Pvh(rip)));
            let mut cr0 = real;
            cr0.cpu_regs.x86_64.cr0 &= !(1 << 31);
            out.push(("CR0 without PG", BadContext::Pvh(cr0)));
            let mut cr4 = real;
            cr4.cpu_regs.x86_64.cr4 &= !(1 << 5);
            out.push(("CR4 without PAE", BadContext::Pvh(cr4)));
            let mut efer = real;
            efer.cpu_regs.x86_64.efer &= !(1 << 8 | 1 << 10);
            out.push(("EFER without LME", BadContext::Pvh(efer)));
        }
    }
    Ok(out)
}

/// `VCPUOP_initialise` of the not yet initialised vCPU 1 with contexts
/// Xen documents as invalid (`arch_set_info_guest` for PV,
/// `arch_set_info_hvm_guest` for PVH): `EINVAL` each, and vCPU 1 stays
/// uninitialised (`VCPUOP_up` refuses it with `EINVAL`) and down.
fn initialise_refusals(_: &Ctx<'_>) -> Outcome {
    if let Err(outcome) = second_vcpu() {
        return outcome;
    }
    if smp::secondaries_started() {
        return Outcome::Skip("vCPU 1 was brought up before this check".into());
    }
    let contexts = match bad_contexts() {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    for (what, context) in &contexts {
        // SAFETY: each context is refused by Xen (the check fails if one
        // is not, before anything starts the vCPU); none is ever run.
        let result = unsafe {
            match context {
                BadContext::Pv(ctx) => vcpu::initialise_pv(VCPU, ctx),
                BadContext::Pvh(ctx) => vcpu::initialise_hvm(VCPU, ctx),
            }
        };
        if result != Err(Errno::EINVAL) {
            return suite_fail!(
                "VCPUOP_initialise(1) with {what}: expected EINVAL, got {result:?}"
            );
        }
    }
    // SAFETY: vCPU 1 is not initialised (every context above was
    // refused), so `up` has nothing to start.
    let up = unsafe { vcpu::up(VCPU) };
    match (up, vcpu::is_up(VCPU)) {
        (Err(Errno::EINVAL), Ok(false)) => Outcome::PassWith(alloc::format!(
            "{} contexts refused; up of the uninitialised vCPU 1: EINVAL",
            contexts.len()
        )),
        other => suite_fail!("VCPUOP_up(1) after the refusals, then is_up(1): expected (EINVAL, false), got {other:?}"),
    }
}

/// Brings every secondary vCPU up: each is up by `VCPUOP_is_up` and ran
/// its own code (it reached its idle loop).
fn bring_up(_: &Ctx<'_>) -> Outcome {
    if let Err(outcome) = second_vcpu() {
        return outcome;
    }
    let total = match smp::start_secondaries() {
        Ok(total) => total,
        Err(why) => return suite_fail!("bringing up: {why}"),
    };
    if total != smp::domain_vcpus() {
        return suite_fail!(
            "{total} vCPUs running, the domain has {}",
            smp::domain_vcpus()
        );
    }
    for id in 1..total {
        match (vcpu::is_up(id), smp::is_alive(id)) {
            (Ok(true), true) => {}
            other => return suite_fail!("vCPU {id}: (is_up, reached its idle loop) = {other:?}"),
        }
    }
    Outcome::PassWith(alloc::format!("{total} vCPUs up"))
}

/// `VCPUOP_initialise` of the running vCPU 1, with the context it was
/// started with and with an all-zero one: `EEXIST` (Xen checks
/// `is_initialised` before the context).
fn initialise_initialised_eexist(_: &Ctx<'_>) -> Outcome {
    if let Err(outcome) = running_second_vcpu() {
        return outcome;
    }
    let real = match crate::platform::mode() {
        BootMode::Pv => match smp::pv_context(VCPU) {
            // SAFETY: vCPU 1 is initialised already, so Xen refuses the
            // context (the check fails otherwise) and nothing changes.
            Ok(ctx) => unsafe { vcpu::initialise_pv(VCPU, &ctx) },
            Err(e) => return suite_fail!("building the context: {e}"),
        },
        // SAFETY: as above.
        BootMode::Pvh => unsafe { vcpu::initialise_hvm(VCPU, &smp::pvh_context(VCPU)) },
    };
    if real != Err(Errno::EEXIST) {
        return suite_fail!(
            "VCPUOP_initialise(1) with its own context: expected EEXIST, got {real:?}"
        );
    }
    expect_errno(vcpu::initialise_zeroed(VCPU), Errno::EEXIST)
}

/// A port bound (or moved) to vCPU 1, claimed for its upcall; closed and
/// given back on drop.
struct OnVcpu1(u32);

impl Drop for OnVcpu1 {
    fn drop(&mut self) {
        let _ = evtchn::close(self.0);
        smp::release_port(self.0);
    }
}

/// Sends on `send` and waits for vCPU 1's upcall to record `port`; vCPU
/// 0 must not see it (no new stray event there).
fn delivered_on_vcpu1(send: u32, port: u32) -> Result<(), Outcome> {
    let _ = smp::take_fired(VCPU, port);
    let (_, stray_before) = crate::events::counters();
    let (upcalls_before, _) = smp::counters(VCPU);
    evtchn::evtchn_send(send).map_err(|e| suite_fail!("EVTCHNOP_send({send}): {e}"))?;
    if !wait_for(|| smp::take_fired(VCPU, port)) {
        return Err(suite_fail!(
            "port {port} not recorded by vCPU 1's upcall within 2 s (its upcalls: {} -> {})",
            upcalls_before,
            smp::counters(VCPU).0
        ));
    }
    crate::events::wake_waiters();
    let (_, stray_after) = crate::events::counters();
    if stray_after != stray_before {
        return Err(suite_fail!(
            "vCPU 0 saw a stray event too ({stray_before} -> {stray_after})"
        ));
    }
    Ok(())
}

/// `EVTCHNOP_bind_ipi` for vCPU 1 (bound from vCPU 0): the port's status
/// names vCPU 1, and a send from vCPU 0 is delivered to vCPU 1's upcall.
fn ipi_delivered_on_vcpu1(_: &Ctx<'_>) -> Outcome {
    if let Err(outcome) = events_on_second_vcpu() {
        return outcome;
    }
    let port = match evtchn::bind_ipi(VCPU) {
        Ok(port) => port,
        Err(e) => return suite_fail!("EVTCHNOP_bind_ipi(1): {e}"),
    };
    if let Err(e) = smp::claim_port(port, VCPU) {
        let _ = evtchn::close(port);
        return suite_fail!("claiming port {port}: {e}");
    }
    let port = OnVcpu1(port);
    match evtchn::status(port.0) {
        Ok(st) if st.vcpu == VCPU => {}
        other => {
            return suite_fail!("EVTCHNOP_status of the IPI port: expected vcpu 1, got {other:?}")
        }
    }
    if let Err(e) = crate::events::unmask(port.0) {
        return suite_fail!("unmasking: {e}");
    }
    match delivered_on_vcpu1(port.0, port.0) {
        Ok(()) => Outcome::Pass,
        Err(outcome) => outcome,
    }
}

/// `EVTCHNOP_bind_vcpu` moves one end of a loopback interdomain channel
/// to vCPU 1: its status says so and an event sent from the other end
/// is delivered there. Xen refuses to move an IPI port (`EINVAL`) and to
/// name a vCPU the domain lacks (`ENOENT`).
fn bind_vcpu_moves_channel(_: &Ctx<'_>) -> Outcome {
    if let Err(outcome) = events_on_second_vcpu() {
        return outcome;
    }
    let local = match evtchn::alloc_unbound(DOMID_SELF) {
        Ok(port) => port,
        Err(e) => return suite_fail!("EVTCHNOP_alloc_unbound: {e}"),
    };
    if let Err(e) = smp::claim_port(local, VCPU) {
        let _ = evtchn::close(local);
        return suite_fail!("claiming port {local}: {e}");
    }
    let local = OnVcpu1(local);
    let remote = match evtchn::bind_interdomain(DOMID_SELF, local.0) {
        Ok(port) => port,
        Err(e) => return suite_fail!("EVTCHNOP_bind_interdomain(self, {}): {e}", local.0),
    };
    let remote = Closing(remote);
    let missing = evtchn::bind_vcpu(local.0, 200);
    if missing != Err(Errno::ENOENT) {
        return suite_fail!("EVTCHNOP_bind_vcpu to vCPU 200: expected ENOENT, got {missing:?}");
    }
    if let Err(e) = evtchn::bind_vcpu(local.0, VCPU) {
        return suite_fail!("EVTCHNOP_bind_vcpu({}, 1): {e}", local.0);
    }
    match evtchn::status(local.0) {
        Ok(st) if st.vcpu == VCPU => {}
        other => return suite_fail!("status after bind_vcpu: expected vcpu 1, got {other:?}"),
    }
    if let Err(e) = crate::events::unmask(local.0) {
        return suite_fail!("unmasking: {e}");
    }
    if let Err(outcome) = delivered_on_vcpu1(remote.0, local.0) {
        return outcome;
    }
    let ipi = smp::kick_port(VCPU);
    expect_errno(evtchn::bind_vcpu(ipi, 0), Errno::EINVAL)
}

/// A port of vCPU 0's, closed on drop.
pub(super) struct Closing(pub(super) u32);

impl Drop for Closing {
    fn drop(&mut self) {
        let _ = evtchn::close(self.0);
    }
}

/// How far our clock may read behind Xen's when the timer's event is
/// seen (far less than the 20 ms the timer is set ahead).
const CLOCK_SLACK_NS: u64 = 5_000_000;

/// `VIRQ_TIMER` is per vCPU: bound for vCPU 1 (from vCPU 0) it gets a
/// port of its own whose status names vCPU 1 and the VIRQ, a second bind
/// for vCPU 1 is `EEXIST`, and the one-shot timer vCPU 1 arms for itself
/// fires there.
fn virq_timer_and_singleshot_on_vcpu1(_: &Ctx<'_>) -> Outcome {
    if let Err(outcome) = events_on_second_vcpu() {
        return outcome;
    }
    let port = match evtchn::bind_virq(VIRQ_TIMER, VCPU) {
        Ok(port) => port,
        Err(e) => return suite_fail!("EVTCHNOP_bind_virq(VIRQ_TIMER, 1): {e}"),
    };
    if let Err(e) = smp::claim_port(port, VCPU) {
        let _ = evtchn::close(port);
        return suite_fail!("claiming port {port}: {e}");
    }
    let port = OnVcpu1(port);
    match evtchn::status(port.0) {
        Ok(st) if st.vcpu == VCPU && st.status == EVTCHNSTAT_VIRQ => {}
        other => return suite_fail!("status of vCPU 1's VIRQ_TIMER port: {other:?}"),
    }
    let again = evtchn::bind_virq(VIRQ_TIMER, VCPU);
    if again != Err(Errno::EEXIST) {
        if let Ok(p) = again {
            let _ = evtchn::close(p);
        }
        return suite_fail!("second bind of VIRQ_TIMER for vCPU 1: expected EEXIST, got {again:?}");
    }
    if let Err(e) = crate::events::unmask(port.0) {
        return suite_fail!("unmasking: {e}");
    }
    // Xen also raises VIRQ_TIMER when it updates the vCPU's time (about
    // once a second): take whatever came so far, ask for a timer 20 ms
    // out, and count only an event seen once the deadline has passed (an
    // earlier one is such an update; the timer's own comes after it).
    // Our clock extrapolates Xen's from the TSC and may read a little
    // behind Xen's `NOW()`: [`CLOCK_SLACK_NS`] of it is allowed.
    let _ = smp::take_fired(VCPU, port.0);
    let deadline = crate::time::now_ns() + 20_000_000;
    if let Err(e) = smp::request_singleshot(VCPU, deadline) {
        return suite_fail!("kicking vCPU 1: {e}");
    }
    let mut armed = None;
    let mut early = 0;
    if !wait_for(|| {
        armed = armed.or_else(|| smp::take_timer_result(VCPU));
        if armed.is_none() || !smp::take_fired(VCPU, port.0) {
            return false;
        }
        if crate::time::now_ns() + CLOCK_SLACK_NS < deadline {
            early += 1;
            return false;
        }
        true
    }) {
        return suite_fail!(
            "vCPU 1's timer: armed {armed:?}, VIRQ_TIMER not recorded after its deadline within 2 s ({early} earlier)"
        );
    }
    match armed {
        Some(Ok(())) => Outcome::PassWith(alloc::format!(
            "fired on vCPU 1 after its deadline ({early} time-update events before it)"
        )),
        other => suite_fail!("vCPU 1's set_singleshot_timer: {other:?}"),
    }
}

/// vCPU 1's runstate while it idles: blocked, it has run (its own code,
/// up to the block), and its blocked time grows across a 20 ms sleep of
/// vCPU 0.
fn runstate_of_idle_vcpu1(_: &Ctx<'_>) -> Outcome {
    if let Err(outcome) = running_second_vcpu() {
        return outcome;
    }
    let mut before = None;
    // It may be running an upcall at the moment: look a few times.
    let blocked = wait_for(|| {
        before = vcpu::get_runstate_info(VCPU).ok();
        before.is_some_and(|info| info.state == RUNSTATE_BLOCKED)
    });
    let Some(before) = before.filter(|_| blocked) else {
        return suite_fail!("vCPU 1 never seen blocked while idle: {before:?}");
    };
    if before.time[RUNSTATE_RUNNING as usize] == 0 {
        return suite_fail!("vCPU 1 is up but never ran: {before:?}");
    }
    sched::block_on(sched::sleep(Duration::from_millis(20)));
    let after = match vcpu::get_runstate_info(VCPU) {
        Ok(info) => info,
        Err(e) => return suite_fail!("VCPUOP_get_runstate_info(1): {e}"),
    };
    let b = RUNSTATE_BLOCKED as usize;
    if after.time[b] <= before.time[b] || (0..4).any(|i| after.time[i] < before.time[i]) {
        return suite_fail!(
            "blocked time did not grow (or a time went back): {before:?} -> {after:?}"
        );
    }
    Outcome::PassWith(alloc::format!(
        "running {} us, blocked {} us",
        after.time[RUNSTATE_RUNNING as usize] / 1000,
        after.time[b] / 1000
    ))
}

/// `VCPUOP_down` of the idle vCPU 1: `is_up` answers 0 and Xen no
/// longer counts it running (a vCPU taken down while blocked stays
/// `blocked` in its runstate: Xen moves only a runnable one to
/// `offline`); `VCPUOP_up` again: `is_up` answers 1 and an IPI
/// reaches its upcall again, so it resumed where it was.
fn down_up_cycle(_: &Ctx<'_>) -> Outcome {
    if let Err(outcome) = running_second_vcpu() {
        return outcome;
    }
    if let Err(e) = vcpu::down(VCPU) {
        return suite_fail!("VCPUOP_down(1): {e}");
    }
    let down = vcpu::is_up(VCPU);
    let mut state = None;
    let stopped = wait_for(|| {
        state = vcpu::get_runstate_info(VCPU).ok().map(|info| info.state);
        matches!(state, Some(RUNSTATE_BLOCKED | RUNSTATE_OFFLINE))
    });
    // SAFETY: vCPU 1 is initialised with its own idle loop, which it
    // resumes.
    let up = unsafe { vcpu::up(VCPU) };
    if down != Ok(false) {
        return suite_fail!("is_up(1) after down: {down:?}");
    }
    if !stopped {
        return suite_fail!("vCPU 1 still running or runnable after down: state {state:?}");
    }
    if let Err(e) = up {
        return suite_fail!("VCPUOP_up(1) after down: {e}");
    }
    if vcpu::is_up(VCPU) != Ok(true) {
        return suite_fail!("is_up(1) after up: {:?}", vcpu::is_up(VCPU));
    }
    let seen = match state {
        Some(RUNSTATE_OFFLINE) => "offline",
        _ => "blocked",
    };
    let kick = smp::kick_port(VCPU);
    if kick == 0 {
        return suite_fail!("vCPU 1 has no kick port to check it resumed");
    }
    match delivered_on_vcpu1(kick, kick) {
        Ok(()) => Outcome::PassWith(alloc::format!("down: {seen}; up: IPI delivered again")),
        Err(outcome) => outcome,
    }
}

/// The `smp` group, in the order it must run.
pub const TESTS: &[Test] = &[
    Test {
        group: "smp",
        name: "initialise_bad_context_einval",
        applies: Applies::Both,
        run: initialise_refusals,
    },
    Test {
        group: "smp",
        name: "bring_up",
        applies: Applies::Both,
        run: bring_up,
    },
    Test {
        group: "smp",
        name: "initialise_initialised_vcpu1_eexist",
        applies: Applies::Both,
        run: initialise_initialised_eexist,
    },
    Test {
        group: "smp",
        name: "ipi_delivered_on_vcpu1",
        applies: Applies::Both,
        run: ipi_delivered_on_vcpu1,
    },
    Test {
        group: "smp",
        name: "bind_vcpu_moves_channel_to_vcpu1",
        applies: Applies::Both,
        run: bind_vcpu_moves_channel,
    },
    Test {
        group: "smp",
        name: "channel_bound_to_vcpu1_wakes_its_task_there",
        applies: Applies::Both,
        run: super::smp_channel::channel_bound_to_vcpu1_wakes_its_task_there,
    },
    Test {
        group: "smp",
        name: "virq_timer_per_vcpu_and_singleshot_on_vcpu1",
        applies: Applies::Both,
        run: virq_timer_and_singleshot_on_vcpu1,
    },
    Test {
        group: "smp",
        name: "runstate_of_idle_vcpu1",
        applies: Applies::Both,
        run: runstate_of_idle_vcpu1,
    },
    Test {
        group: "smp",
        name: "down_is_up_up_cycle",
        applies: Applies::Both,
        run: down_up_cycle,
    },
];
