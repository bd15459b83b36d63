//! Event channels: create, bind, signal, close, and the refusals.

use super::{expect_errno, Applies, Ctx, Outcome, Test};
use crate::events::EventChannel;
use crate::sched;
use crate::suite_fail;
use core::future::Future;
use core::task::Poll;
use core::time::Duration;
use pv_arch::abi::event_channel::{
    EvtchnBinding, EVTCHN_2L_NR_CHANNELS, EVTCHN_FIFO_NR_CHANNELS, NR_VIRQS, VIRQ_DEBUG, VIRQ_TIMER,
};
use pv_arch::abi::xen::DOMID_SELF;
use pv_arch::hypercall::event_channel as op;
use pv_arch::hypercall::sched as sched_op;
use pv_arch::Errno;

/// A domain id no domain has.
const NO_SUCH_DOMAIN: u16 = 0x7000;

/// Our own domain id: Xen resolves `DOMID_SELF` as the remote end of an
/// unbound port, and the port's status reports the real id.
fn self_domid() -> Result<u16, Errno> {
    let port = op::alloc_unbound(DOMID_SELF)?;
    let status = op::status(port);
    op::close(port)?;
    match status?.binding() {
        EvtchnBinding::Unbound { remote_dom } => Ok(remote_dom),
        _ => Err(Errno::EINVAL),
    }
}

/// Waits up to `ms` milliseconds for `channel` to fire.
pub(super) fn fired_within(channel: &EventChannel, ms: u64) -> bool {
    sched::block_on(async {
        let deadline = crate::time::now_ns() + ms * 1_000_000;
        loop {
            if channel.take_fired() {
                return true;
            }
            if crate::time::now_ns() >= deadline {
                return false;
            }
            sched::sleep(Duration::from_millis(1)).await;
        }
    })
}

fn alloc_unbound_status(_: &Ctx<'_>) -> Outcome {
    let channel = match EventChannel::alloc_unbound(DOMID_SELF) {
        Ok(c) => c,
        Err(e) => return suite_fail!("alloc_unbound failed: {e}"),
    };
    match channel.status().map(|s| s.binding()) {
        Ok(EvtchnBinding::Unbound { .. }) => Outcome::Pass,
        other => suite_fail!("expected unbound, got {other:?}"),
    }
}

fn loopback_interdomain(_: &Ctx<'_>) -> Outcome {
    let me = match self_domid() {
        Ok(me) => me,
        Err(e) => return suite_fail!("finding our domid: {e}"),
    };
    let Ok(a) = EventChannel::alloc_unbound(me) else {
        return suite_fail!("alloc_unbound failed");
    };
    let b = match EventChannel::bind_interdomain(me, a.port()) {
        Ok(b) => b,
        Err(e) => return suite_fail!("bind_interdomain to our own port failed: {e}"),
    };
    match a.status().map(|s| s.binding()) {
        Ok(EvtchnBinding::Interdomain { dom, port }) if dom == me && port == b.port() => {}
        other => return suite_fail!("port a status: {other:?}"),
    }
    if let Err(e) = b.notify() {
        return suite_fail!("send failed: {e}");
    }
    if !fired_within(&a, 1000) {
        return suite_fail!("the loopback send never arrived");
    }
    if a.take_fired() {
        return suite_fail!("one send fired twice");
    }
    Outcome::Pass
}

fn ipi_to_self(_: &Ctx<'_>) -> Outcome {
    let ipi = match EventChannel::bind_ipi() {
        Ok(c) => c,
        Err(e) => return suite_fail!("bind_ipi failed: {e}"),
    };
    if let Err(e) = ipi.notify() {
        return suite_fail!("send failed: {e}");
    }
    if fired_within(&ipi, 1000) {
        Outcome::Pass
    } else {
        suite_fail!("the IPI never arrived")
    }
}

/// Several tasks await one channel; one send wakes them all, each
/// through its own waker (the upcall only records the port; the executor
/// hands it over and wakes every waiter).
fn several_waiters_all_wake(_: &Ctx<'_>) -> Outcome {
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicUsize, Ordering};
    const WAITERS: usize = 3;
    let ipi = match EventChannel::bind_ipi() {
        Ok(c) => Arc::new(c),
        Err(e) => return suite_fail!("bind_ipi failed: {e}"),
    };
    let waiting = Arc::new(AtomicUsize::new(0));
    let woken = Arc::new(AtomicUsize::new(0));
    for _ in 0..WAITERS {
        let (ipi, waiting, woken) = (ipi.clone(), waiting.clone(), woken.clone());
        sched::spawn(async move {
            let mut wait = ipi.wait();
            // Poll once by hand so the count goes up only once this
            // task's waker is registered.
            let first =
                core::future::poll_fn(|cx| Poll::Ready(core::pin::Pin::new(&mut wait).poll(cx)))
                    .await;
            waiting.fetch_add(1, Ordering::SeqCst);
            if first.is_pending() {
                wait.await;
            }
            woken.fetch_add(1, Ordering::SeqCst);
        });
    }
    let all_woke = sched::block_on(async {
        // Send only once every waiter waits: a send before that is taken
        // by whichever waits first (the fired flag), by design. (A fixed
        // 10 ms pause was not enough on an overloaded host.)
        let deadline = crate::time::now_ns() + 1_000_000_000;
        while waiting.load(Ordering::SeqCst) < WAITERS {
            if crate::time::now_ns() >= deadline {
                return Err("the waiters never started");
            }
            sched::yield_now().await;
        }
        if ipi.notify().is_err() {
            return Err("send failed");
        }
        let deadline = crate::time::now_ns() + 1_000_000_000;
        while woken.load(Ordering::SeqCst) < WAITERS {
            if crate::time::now_ns() >= deadline {
                return Ok(false);
            }
            sched::sleep(Duration::from_millis(1)).await;
        }
        Ok(true)
    });
    match all_woke {
        Ok(true) => Outcome::Pass,
        Ok(false) => suite_fail!(
            "{} of {WAITERS} waiters woke within 1 s of one send",
            woken.load(Ordering::SeqCst)
        ),
        Err(why) => suite_fail!("{why}"),
    }
}

/// The PVH lost wake-up, on purpose. An emulator that drops the `sti`
/// interrupt shadow (QEMU's software SVM: its VMRUN ignores the VMCB's
/// `int_state`) can deliver the upcall vector *before* the idle `hlt`;
/// returning to that `hlt` halts the vCPU with the event already taken,
/// and nothing wakes it (the suite hung so in `ipi_to_self_arrives`).
/// Here an IPI is made due first and the idle is entered with a `nop`
/// after the `sti`, so the upcall is taken with the saved RIP at the
/// `hlt` on any CPU. The handler must resume past the `hlt`: the idle
/// returns at once instead of waiting for the watchdog timer.
fn upcall_before_idle_hlt(_: &Ctx<'_>) -> Outcome {
    let ipi = match EventChannel::bind_ipi() {
        Ok(c) => c,
        Err(e) => return suite_fail!("bind_ipi failed: {e}"),
    };
    let skipped_before = crate::platform::upcalls_before_hlt();
    let start = crate::time::now_ns();
    let watchdog_ns = 1_000_000_000;
    if let Err(e) = crate::time::set_deadline(start + watchdog_ns) {
        return suite_fail!("arming the watchdog timer failed: {e}");
    }
    // Due now, delivered when the idle enables interrupts.
    if let Err(e) = ipi.notify() {
        return suite_fail!("send failed: {e}");
    }
    crate::platform::wait_for_event_unshadowed();
    let elapsed = crate::time::now_ns() - start;
    let skipped = crate::platform::upcalls_before_hlt() - skipped_before;
    let _ = pv_arch::hypercall::vcpu::stop_singleshot_timer(0);
    let fired = ipi.take_fired();
    if !fired {
        return suite_fail!("the IPI never arrived");
    }
    if skipped == 0 || elapsed >= watchdog_ns / 2 {
        return suite_fail!(
            "the upcall taken before the idle hlt was followed by the halt \
             ({skipped} hlt skipped, idle took {elapsed} ns): a lost wake-up"
        );
    }
    Outcome::Pass
}

fn virq_timer_twice(_: &Ctx<'_>) -> Outcome {
    // The kernel bound VIRQ_TIMER at boot; a second binding is refused.
    expect_errno(op::bind_virq(VIRQ_TIMER, 0), Errno::EEXIST)
}

fn virq_out_of_range(_: &Ctx<'_>) -> Outcome {
    expect_errno(op::bind_virq(NR_VIRQS, 0), Errno::EINVAL)
}

fn virq_missing_vcpu(_: &Ctx<'_>) -> Outcome {
    expect_errno(op::bind_virq(VIRQ_DEBUG, 7), Errno::ENOENT)
}

fn virq_debug_status(_: &Ctx<'_>) -> Outcome {
    let channel = match EventChannel::bind_virq(VIRQ_DEBUG) {
        Ok(c) => c,
        Err(e) => return suite_fail!("bind_virq(VIRQ_DEBUG) failed: {e}"),
    };
    match channel.status().map(|s| (s.binding(), s.vcpu)) {
        Ok((EvtchnBinding::Virq(v), 0)) if v == VIRQ_DEBUG => Outcome::Pass,
        other => suite_fail!("expected virq {VIRQ_DEBUG} on vcpu 0, got {other:?}"),
    }
}

fn double_close(_: &Ctx<'_>) -> Outcome {
    let port = match op::alloc_unbound(DOMID_SELF) {
        Ok(p) => p,
        Err(e) => return suite_fail!("alloc_unbound failed: {e}"),
    };
    if let Err(e) = op::close(port) {
        return suite_fail!("first close failed: {e}");
    }
    // The port number stays valid (its status says closed) but closing
    // it again is refused.
    match (op::close(port), op::status(port).map(|s| s.binding())) {
        (Err(Errno::EINVAL), Ok(EvtchnBinding::Closed)) => Outcome::Pass,
        other => suite_fail!("second close / status: {other:?}"),
    }
}

fn send_on_closed(_: &Ctx<'_>) -> Outcome {
    let port = match op::alloc_unbound(DOMID_SELF) {
        Ok(p) => p,
        Err(e) => return suite_fail!("alloc_unbound failed: {e}"),
    };
    let _ = op::close(port);
    expect_errno(op::evtchn_send(port), Errno::EINVAL)
}

fn port_out_of_range(_: &Ctx<'_>) -> Outcome {
    let results = [
        ("close", op::close(1 << 20)),
        ("send", op::evtchn_send(1 << 20)),
        ("unmask", op::unmask(1 << 20)),
        ("status", op::status(1 << 20).map(drop)),
    ];
    for (what, result) in results {
        if result != Err(Errno::EINVAL) {
            return suite_fail!("{what} of port 2^20: expected EINVAL, got {result:?}");
        }
    }
    Outcome::Pass
}

fn bind_to_missing_domain(_: &Ctx<'_>) -> Outcome {
    expect_errno(op::bind_interdomain(NO_SUCH_DOMAIN, 1), Errno::ESRCH)
}

fn bind_to_port_not_offered(_: &Ctx<'_>) -> Outcome {
    // An unbound port offered to dom0 (or, as dom0, to a domain that is
    // not us) cannot be bound by us.
    let me = match self_domid() {
        Ok(me) => me,
        Err(e) => return suite_fail!("finding our domid: {e}"),
    };
    let other = if me == 0 { 1 } else { 0 };
    let Ok(port) = op::alloc_unbound(other) else {
        return suite_fail!("alloc_unbound failed");
    };
    let result = op::bind_interdomain(me, port);
    let _ = op::close(port);
    expect_errno(result, Errno::EINVAL)
}

fn alloc_for_other_domain(ctx: &Ctx<'_>) -> Outcome {
    let _ = ctx;
    // Only a privileged domain may allocate ports in another domain.
    expect_errno(op::alloc_unbound_for(0, 0), Errno::EPERM)
}

fn unknown_command(_: &Ctx<'_>) -> Outcome {
    expect_errno(op::unknown_command(200), Errno::ENOSYS)
}

fn fifo_set_priority_needs_fifo(_: &Ctx<'_>) -> Outcome {
    if crate::events::abi_name() == "fifo" {
        return Outcome::Skip("running the FIFO ABI".into());
    }
    let Ok(channel) = EventChannel::bind_ipi() else {
        return suite_fail!("bind_ipi failed");
    };
    expect_errno(op::set_priority(channel.port(), 1), Errno::ENOSYS)
}

fn fifo_priorities(ctx: &Ctx<'_>) -> Outcome {
    if crate::events::abi_name() != "fifo" {
        return Outcome::Skip("2-level ABI in use (boot with evtchn=fifo)".into());
    }
    let _ = ctx;
    let Ok(channel) = EventChannel::bind_ipi() else {
        return suite_fail!("bind_ipi failed");
    };
    if let Err(e) = op::set_priority(channel.port(), 0) {
        return suite_fail!("set_priority(0) failed: {e}");
    }
    // Priority 0 is the highest; the send must still arrive.
    if channel.notify().is_err() || !fired_within(&channel, 1000) {
        return suite_fail!("a priority-0 event never arrived");
    }
    expect_errno(op::set_priority(channel.port(), 16), Errno::EINVAL)
}

fn fifo_init_control_twice(_: &Ctx<'_>) -> Outcome {
    if crate::events::abi_name() != "fifo" {
        return Outcome::Skip("2-level ABI in use (boot with evtchn=fifo)".into());
    }
    // The control block is registered already; a second one is refused.
    // SAFETY: Xen refuses a second control block before it looks at the
    // frame, and frame 0 is nothing Rust uses; should it accept, it
    // would write into a frame we never touch.
    expect_errno(unsafe { op::init_control(0, 0, 0) }, Errno::EINVAL)
}

fn fifo_bad_control_offset(_: &Ctx<'_>) -> Outcome {
    // An offset that does not leave room for the control block is
    // refused, whichever ABI is in use (checked before anything else).
    // SAFETY: as above: the offset is checked first, frame 0 is unused.
    expect_errno(unsafe { op::init_control(0, 4095, 0) }, Errno::EINVAL)
}

/// Why the XSA checks of the first `EVTCHNOP_init_control` and of the
/// 2-level port limit skip under the FIFO ABI.
const NEEDS_2_LEVEL: &str = "the FIFO ABI is set up already (boot without evtchn=fifo to run this)";

/// A frame number no domain has (2^36 - 1: 256 TiB of RAM).
const NO_SUCH_FRAME: u64 = 0xf_ffff_ffff;

/// XSA-188 (CVE-2016-7154, "use after free in FIFO event channel
/// code"): `EVTCHNOP_init_control` with a bad guest frame number took an
/// error path that freed the domain's FIFO state without clearing the
/// pointer to it, and a second `init_control` or an `expand_array` then
/// used the freed memory. A patched Xen refuses the frame with `EINVAL`
/// (it cannot map it) and leaves the domain on the 2-level ABI as if
/// nothing happened: the second attempt gets the same `EINVAL`,
/// `expand_array` gets `EOPNOTSUPP` (no FIFO state), and events still
/// arrive.
fn xsa188_init_control_bad_frame(_: &Ctx<'_>) -> Outcome {
    if crate::events::abi_name() == "fifo" {
        return Outcome::Skip(NEEDS_2_LEVEL.into());
    }
    for attempt in ["first", "second"] {
        // SAFETY: the frame does not exist, so Xen cannot map it and
        // refuses; nothing of ours is handed over.
        let result = unsafe { op::init_control(NO_SUCH_FRAME, 0, 0) };
        if result != Err(Errno::EINVAL) {
            return suite_fail!(
                "{attempt} init_control with frame {NO_SUCH_FRAME:#x}: expected EINVAL, got {result:?}"
            );
        }
    }
    // SAFETY: as above; and without FIFO state there is no array to add to.
    let expand = unsafe { op::expand_array(NO_SUCH_FRAME) };
    if expand != Err(Errno::EOPNOTSUPP) {
        return suite_fail!("expand_array after the failures: expected EOPNOTSUPP, got {expand:?}");
    }
    let ipi = match EventChannel::bind_ipi() {
        Ok(c) => c,
        Err(e) => return suite_fail!("bind_ipi after the failures: {e}"),
    };
    if ipi.notify().is_err() || !fired_within(&ipi, 1000) {
        return suite_fail!("events stopped arriving after the failed init_control");
    }
    Outcome::Pass
}

/// XSA-221 (CVE-2017-10917, "NULL pointer deref in event channel
/// poll"): `SCHEDOP_poll` accepts any port number, and Xen looked up
/// the channel of a port it never allocated (its bucket is a null
/// pointer). A patched Xen checks the port first and refuses it with
/// `EINVAL`. Polled here: the last 2-level port (nothing allocated that
/// high), the last FIFO port, and the largest `evtchn_port_t`, each with
/// a 1 ms timeout so that a Xen that accepted one would just time out.
fn xsa221_poll_unallocated_ports(_: &Ctx<'_>) -> Outcome {
    for port in [
        EVTCHN_2L_NR_CHANNELS - 1,
        EVTCHN_FIFO_NR_CHANNELS - 1,
        u32::MAX,
    ] {
        // An event pending for delivery makes the poll return 0 before
        // it looks at the ports; try again then.
        let mut result = Ok(());
        for _ in 0..5 {
            let timeout = crate::time::now_ns() + 1_000_000;
            result = sched_op::sched_poll(&[port], timeout);
            if result.is_err() {
                break;
            }
        }
        if result != Err(Errno::EINVAL) {
            return suite_fail!("SCHEDOP_poll of port {port:#x}: expected EINVAL, got {result:?}");
        }
    }
    Outcome::Pass
}

/// XSA-317 ("incorrect error handling in event channel port
/// allocation"): allocating a port can fail because the
/// port is in use, because memory ran out, or because it is beyond what
/// the domain's ABI (2-level: 4096 ports on x86_64) or its
/// `max_evtchn_port` allows; Xen treated only the first as an error and
/// handed out ports past the limit, which crashed it when they were
/// used. A patched Xen hands out ports up to the last one the 2-level
/// ABI addresses (4095; dom0's `max_evtchn_port` is not lower) and then
/// answers `ENOSPC`; once they are closed, allocation works again. A
/// domU's limit is the toolstack's `max_event_channels` (xl's default
/// gives ports up to 1023), which it cannot read: there the last port
/// handed out must lie within the 2-level range, and the refusal must be
/// `ENOSPC` all the same.
fn xsa317_port_limit_enospc(ctx: &Ctx<'_>) -> Outcome {
    if crate::events::abi_name() == "fifo" {
        return Outcome::Skip(alloc::format!(
            "{NEEDS_2_LEVEL}: the FIFO limit, {EVTCHN_FIFO_NR_CHANNELS} ports, is too many to fill"
        ));
    }
    let mut ports = alloc::vec::Vec::new();
    let refusal = loop {
        match op::alloc_unbound(DOMID_SELF) {
            Ok(port) if ports.len() < EVTCHN_2L_NR_CHANNELS as usize => ports.push(port),
            Ok(port) => {
                ports.push(port);
                break Ok(port);
            }
            Err(e) => break Err(e),
        }
    };
    let highest = ports.iter().copied().max();
    let count = ports.len();
    let closed = ports.iter().all(|&port| op::close(port).is_ok());
    let again = op::alloc_unbound(DOMID_SELF).and_then(op::close);
    let dom0 = ctx.boot.role == crate::Role::Dom0;
    match (refusal, highest, closed, again) {
        (Err(Errno::ENOSPC), Some(port), true, Ok(())) if port == EVTCHN_2L_NR_CHANNELS - 1 => {
            Outcome::Pass
        }
        (Err(Errno::ENOSPC), Some(port), true, Ok(())) if !dom0 && port < EVTCHN_2L_NR_CHANNELS => {
            Outcome::PassWith(alloc::format!(
                "ENOSPC after port {port} (a domU: the toolstack's max_event_channels, below the 2-level limit)"
            ))
        }
        other => suite_fail!(
            "after {count} ports (refusal, highest port, all closed, allocating again): {other:?}; \
             expected ENOSPC after port {}{}",
            EVTCHN_2L_NR_CHANNELS - 1,
            if dom0 { "" } else { " or the domU's lower limit" }
        ),
    }
}

/// The `evtchn` group.
pub const TESTS: &[Test] = &[
    Test {
        group: "evtchn",
        name: "alloc_unbound_status_unbound",
        applies: Applies::Both,
        run: alloc_unbound_status,
    },
    Test {
        group: "evtchn",
        name: "loopback_interdomain_send_arrives",
        applies: Applies::Both,
        run: loopback_interdomain,
    },
    Test {
        group: "evtchn",
        name: "ipi_to_self_arrives",
        applies: Applies::Both,
        run: ipi_to_self,
    },
    Test {
        group: "evtchn",
        name: "several_waiters_all_wake_on_one_send",
        applies: Applies::Both,
        run: several_waiters_all_wake,
    },
    Test {
        group: "evtchn",
        name: "upcall_before_idle_hlt_resumes_after_it",
        applies: Applies::Pvh,
        run: upcall_before_idle_hlt,
    },
    Test {
        group: "evtchn",
        name: "bind_virq_twice_eexist",
        applies: Applies::Both,
        run: virq_timer_twice,
    },
    Test {
        group: "evtchn",
        name: "bind_virq_out_of_range_einval",
        applies: Applies::Both,
        run: virq_out_of_range,
    },
    Test {
        group: "evtchn",
        name: "bind_virq_missing_vcpu_enoent",
        applies: Applies::Both,
        run: virq_missing_vcpu,
    },
    Test {
        group: "evtchn",
        name: "bind_virq_status_reports_virq",
        applies: Applies::Both,
        run: virq_debug_status,
    },
    Test {
        group: "evtchn",
        name: "double_close_einval_status_closed",
        applies: Applies::Both,
        run: double_close,
    },
    Test {
        group: "evtchn",
        name: "send_on_closed_port_einval",
        applies: Applies::Both,
        run: send_on_closed,
    },
    Test {
        group: "evtchn",
        name: "port_out_of_range_einval",
        applies: Applies::Both,
        run: port_out_of_range,
    },
    Test {
        group: "evtchn",
        name: "bind_interdomain_missing_domain_esrch",
        applies: Applies::Both,
        run: bind_to_missing_domain,
    },
    Test {
        group: "evtchn",
        name: "bind_interdomain_port_not_offered_einval",
        applies: Applies::Both,
        run: bind_to_port_not_offered,
    },
    Test {
        group: "evtchn",
        name: "alloc_unbound_for_other_domain_eperm",
        applies: Applies::DomUOnly,
        run: alloc_for_other_domain,
    },
    Test {
        group: "evtchn",
        name: "unknown_command_enosys",
        applies: Applies::Both,
        run: unknown_command,
    },
    Test {
        group: "evtchn",
        name: "set_priority_without_fifo_enosys",
        applies: Applies::Both,
        run: fifo_set_priority_needs_fifo,
    },
    Test {
        group: "evtchn",
        name: "fifo_priority_0_delivers_and_16_einval",
        applies: Applies::Both,
        run: fifo_priorities,
    },
    Test {
        group: "evtchn",
        name: "fifo_init_control_twice_einval",
        applies: Applies::Both,
        run: fifo_init_control_twice,
    },
    Test {
        group: "evtchn",
        name: "init_control_bad_offset_einval",
        applies: Applies::Both,
        run: fifo_bad_control_offset,
    },
    Test {
        group: "evtchn",
        name: "xsa188_init_control_bad_frame_twice_einval",
        applies: Applies::Both,
        run: xsa188_init_control_bad_frame,
    },
    Test {
        group: "evtchn",
        name: "xsa221_poll_unallocated_port_einval",
        applies: Applies::Both,
        run: xsa221_poll_unallocated_ports,
    },
    Test {
        group: "evtchn",
        name: "xsa317_ports_beyond_2l_limit_enospc",
        applies: Applies::Both,
        run: xsa317_port_limit_enospc,
    },
];
