//! netfront's queues served across vCPUs: one task per queue, pinned to
//! the vCPU its event channels are bound to.
//!
//! Only when the app has brought secondary vCPUs up
//! (`kernel::smp::start_secondaries`, e.g. httpd's `vcpus=2`): at
//! [`super::Net::connect`] queue `i`'s channels are bound to vCPU
//! `i mod N` (`Channels::bind_queues_to_vcpus`, N = the vCPUs started;
//! the queues are min(backend's, ours) already) and [`start`] spawns,
//! with `spawn_on`, one [`serve`] task per queue on that vCPU. Xen then
//! notifies that vCPU, its upcall records the event, its own idle loop
//! hands it to the channel's waiter (the queue task, queued locally: no
//! kick, vCPU 0 takes no part) and the task does the queue's ring work
//! under the stack's lock: tx responses taken in, received frames copied
//! off the rx ring and its pages given back to netback at once
//! (`Netfront::service_queue`). Then it kicks the runner.
//!
//! Why not a smoltcp interface per queue: TCP state, ARP and the
//! sockets are one interface's, behind one lock; splitting them would
//! need a flow-steered stack. So there is still one device, one
//! interface and one runner (a shared task, on whichever vCPU is free);
//! what moves to the queue's vCPU is taking the event and emptying and
//! refilling the rings, which is the per-packet work netback waits on.
//! The runner no longer waits on the channels itself (the queue tasks
//! kick it); it still reads any queue when it runs, so no frame waits
//! for a particular vCPU.
//!
//! A device put in later by the keeper (a vif that came back) is not
//! bound: the queue tasks see it has no queue tasks and end, and the
//! runner waits on its channels as on one vCPU. Apps that never start
//! secondaries never get here.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::task::Poll;

use super::stack::Shared;
use super::NetError;
use spin::Mutex;

/// What each queue task served: (its vCPU, events served there, events
/// served elsewhere), by queue. Task context only.
static SERVED: Mutex<Vec<(u32, u64, u64)>> = Mutex::new(Vec::new());

/// Spawns the task of each queue on the vCPU `placement[queue]` says;
/// returns how many were spawned.
pub(crate) fn start(shared: &Arc<Shared>, placement: &[u32]) -> usize {
    *SERVED.lock() = placement.iter().map(|&vcpu| (vcpu, 0, 0)).collect();
    placement
        .iter()
        .enumerate()
        .filter(|&(queue, &vcpu)| {
            kernel::sched::spawn_on(vcpu, serve(shared.clone(), queue, vcpu)).is_ok()
        })
        .count()
}

/// Prints what each queue task served and where (the network's
/// shutdown does, the rig reads it): `net: queue Q: N events served on
/// vCPU V, M elsewhere`. Nothing if no queue had a task.
pub(crate) fn report() {
    for (queue, (vcpu, here, elsewhere)) in SERVED.lock().iter().enumerate() {
        kernel::println!(
            "net: queue {queue}: {here} events served on vCPU {vcpu}, {elsewhere} elsewhere"
        );
    }
}

/// Queue `queue`'s task on vCPU `vcpu`: waits on its channels, serves
/// its rings, kicks the runner, and counts where it ran ([`report`]).
/// Ends when the stack is shut down or its device goes.
async fn serve(shared: Arc<Shared>, queue: usize, vcpu: u32) {
    loop {
        let fired = poll_fn(|cx| {
            shared.poll_with(|stack| match stack.link.poll_queue_fired(queue, cx) {
                Some(true) => Poll::Ready(Ok(())),
                Some(false) => Poll::Pending,
                None => Poll::Ready(Err(NetError::Down)),
            })
        })
        .await;
        if fired.is_err() {
            return;
        }
        if let Some(entry) = SERVED.lock().get_mut(queue) {
            if kernel::smp::current_vcpu() == vcpu {
                entry.1 += 1;
            } else {
                entry.2 += 1;
            }
        }
        let _ = shared.with(|stack| {
            stack.link.service_queue(queue);
            // Frames staged, or tx room made: the runner's turn.
            stack.kick();
            Ok(())
        });
    }
}
