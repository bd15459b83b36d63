//! [`SharedXenstore`] against the simulated xenstored over the shared
//! ring: several tasks' requests in flight at once, watch events routed
//! to their owners, wake-ups, cancellation, and a misbehaving xenstored.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};

use super::sim::{Fault, Sim, SimHandle, SimRingPage};
use super::wire::{encode_message, MsgType};
use super::*;

const DOMID: u16 = 5;
const HOME: &str = "/local/domain/5";

/// A task's waker that counts its wake-ups.
struct Task(AtomicUsize);

impl Task {
    fn new() -> Arc<Task> {
        Arc::new(Task(AtomicUsize::new(0)))
    }

    fn wakes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll<F: Future + Unpin>(future: &mut F, task: &Arc<Task>) -> Poll<F::Output> {
    let waker = Waker::from(task.clone());
    Pin::new(future).poll(&mut Context::from_waker(&waker))
}

/// A simulated xenstored that knows our `domid` node, as the
/// toolstack writes it.
fn store() -> SimHandle {
    let sim = Sim::shared();
    sim.borrow_mut().connect(DOMID);
    sim.borrow_mut()
        .write_as(0, &alloc::format!("{HOME}/domid"), b"5")
        .unwrap();
    sim
}

/// A connection whose xenstored answers only when told to.
fn manual(sim: &SimHandle) -> SharedXenstore<SimRingPage> {
    SharedXenstore::new(RingTransport::new(
        SimRingPage::connect(sim, DOMID).manual(),
    ))
}

/// A connection whose xenstored answers every notification at once.
fn automatic(sim: &SimHandle) -> SharedXenstore<SimRingPage> {
    SharedXenstore::new(RingTransport::new(SimRingPage::connect(sim, DOMID)))
}

/// Lets xenstored answer, then pumps as the guest's pump task would.
fn serve(xs: &SharedXenstore<SimRingPage>) {
    xs.with_page(|page| page.service()).unwrap();
    let _ = xs.pump();
}

/// Runs `future` to completion, serving xenstored whenever it waits.
fn run<F: Future>(xs: &SharedXenstore<SimRingPage>, future: F) -> F::Output {
    let task = Task::new();
    let mut future = core::pin::pin!(future);
    for _ in 0..1000 {
        let waker = Waker::from(task.clone());
        if let Poll::Ready(value) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return value;
        }
        serve(xs);
    }
    panic!("the future never completed");
}

#[test]
fn concurrent_requests_are_matched_and_each_owner_woken() {
    let sim = store();
    let xs = manual(&sim);
    let (one, two, three) = (Task::new(), Task::new(), Task::new());
    let mut write = xs.write(TxId::NONE, "data/a", b"1");
    let mut read = xs.read(TxId::NONE, "domid");
    let mut list = xs.directory(TxId::NONE, HOME);
    assert!(poll(&mut write, &one).is_pending());
    assert!(poll(&mut read, &two).is_pending());
    assert!(poll(&mut list, &three).is_pending());
    assert_eq!(xs.waiters(), 3);
    assert_eq!(xs.outstanding(), 3);
    serve(&xs);
    assert_eq!([one.wakes(), two.wakes(), three.wakes()], [1, 1, 1]);
    // Taken in another order than sent: each gets its own reply.
    assert_eq!(
        poll(&mut list, &three),
        Poll::Ready(Ok(vec![String::from("data"), String::from("domid")]))
    );
    assert_eq!(poll(&mut read, &two), Poll::Ready(Ok(b"5".to_vec())));
    assert_eq!(poll(&mut write, &one), Poll::Ready(Ok(())));
    assert_eq!(xs.waiters(), 0);
    assert_eq!(xs.outstanding(), 0);
    assert_eq!(xs.take_anomaly(), None);
}

#[test]
fn a_reply_with_an_unknown_req_id_is_reported_and_nothing_is_lost() {
    let sim = store();
    let xs = manual(&sim);
    let conn = xs.with_page(|page| page.conn());
    let (one, two) = (Task::new(), Task::new());
    let mut first = xs.read(TxId::NONE, "domid");
    let mut second = xs.write(TxId::NONE, "data/x", b"v");
    assert!(poll(&mut first, &one).is_pending());
    assert!(poll(&mut second, &two).is_pending());
    // A reply nobody asked for arrives before the real ones.
    let mut stray = Vec::new();
    encode_message(&mut stray, MsgType::Read, 0x5eed, 0, &[b"bogus"]).unwrap();
    sim.borrow_mut().push_raw(conn, &stray);
    serve(&xs);
    assert_eq!(poll(&mut first, &one), Poll::Ready(Ok(b"5".to_vec())));
    assert_eq!(poll(&mut second, &two), Poll::Ready(Ok(())));
    assert_eq!(xs.take_anomaly(), Some(XsError::UnknownReqId(0x5eed)));
    assert_eq!(xs.broken(), None);
}

#[test]
fn a_malformed_reply_fails_its_request_only() {
    let sim = store();
    let xs = manual(&sim);
    let (one, two) = (Task::new(), Task::new());
    let mut spoiled = xs.write(TxId::NONE, "data/x", b"v");
    let mut fine = xs.read(TxId::NONE, "domid");
    assert!(poll(&mut spoiled, &one).is_pending());
    assert!(poll(&mut fine, &two).is_pending());
    // The write's "OK\0" cut to "O".
    sim.borrow_mut().inject_fault(Fault::TruncatePayload(1));
    serve(&xs);
    assert_eq!(
        poll(&mut spoiled, &one),
        Poll::Ready(Err(XsError::Malformed(Malformation::MissingNul)))
    );
    assert_eq!(poll(&mut fine, &two), Poll::Ready(Ok(b"5".to_vec())));
    assert_eq!(xs.broken(), None);
    assert_eq!(run(&xs, xs.read(TxId::NONE, "data/x")), Ok(b"v".to_vec()));
}

#[test]
fn watch_events_reach_only_their_owner() {
    let sim = store();
    let xs = automatic(&sim);
    let mut watch_a = run(&xs, xs.watch("data/a")).unwrap();
    let mut watch_b = run(&xs, xs.watch("data/b")).unwrap();
    assert_ne!(watch_a.token(), watch_b.token());
    // The first events xenstored sends for each watch.
    assert_eq!(run(&xs, watch_a.next_event()).unwrap().path, "data/a");
    assert_eq!(run(&xs, watch_b.next_event()).unwrap().path, "data/b");
    drop(watch_a);
    drop(watch_b);
    // From here xenstored answers only when told, to interleave.
    let xs = manual(&sim);
    let mut watch_a = run(&xs, xs.watch("data/a")).unwrap();
    let mut watch_b = run(&xs, xs.watch("data/b")).unwrap();
    let _ = run(&xs, watch_a.next_event()).unwrap();
    let _ = run(&xs, watch_b.next_event()).unwrap();
    let (task_a, task_b, writer) = (Task::new(), Task::new(), Task::new());
    assert!(poll(&mut watch_a.next_event(), &task_a).is_pending());
    let mut next_b = watch_b.next_event();
    assert!(poll(&mut next_b, &task_b).is_pending());
    // Another domain writes under a; our own write to b is in flight too.
    sim.borrow_mut()
        .write_as(0, &alloc::format!("{HOME}/data/a/x"), b"1")
        .unwrap();
    let mut write = xs.write(TxId::NONE, "data/b/y", b"2");
    assert!(poll(&mut write, &writer).is_pending());
    serve(&xs);
    assert_eq!(task_a.wakes(), 1, "a's event wakes a");
    assert_eq!(writer.wakes(), 1, "the reply wakes the writer");
    assert_eq!(poll(&mut write, &writer), Poll::Ready(Ok(())));
    assert_eq!(
        poll(&mut next_b, &task_b).map(|e| e.map(|e| e.path)),
        Poll::Ready(Ok(String::from("data/b/y")))
    );
    assert_eq!(
        poll(&mut watch_a.next_event(), &task_a).map(|e| e.map(|e| e.path)),
        Poll::Ready(Ok(String::from("data/a/x")))
    );
    assert_eq!(watch_a.try_next(), Ok(None));
    assert_eq!(watch_b.try_next(), Ok(None));
    // Dropping a watch unwatches it in xenstored.
    let before = sim.borrow().watch_count();
    drop(watch_a);
    serve(&xs);
    assert_eq!(sim.borrow().watch_count(), before - 1);
    run(&xs, watch_b.unwatch()).unwrap();
    assert_eq!(sim.borrow().watch_count(), before - 2);
}

#[test]
fn an_abandoned_request_drops_its_reply_quietly() {
    let sim = store();
    let xs = manual(&sim);
    let task = Task::new();
    let mut abandoned = xs.read(TxId::NONE, "domid");
    assert!(poll(&mut abandoned, &task).is_pending());
    drop(abandoned);
    let mut kept = xs.read(TxId::NONE, "domid");
    assert!(poll(&mut kept, &task).is_pending());
    serve(&xs);
    assert_eq!(poll(&mut kept, &task), Poll::Ready(Ok(b"5".to_vec())));
    assert_eq!(xs.take_anomaly(), None);
    assert_eq!(xs.outstanding(), 0);
    assert_eq!(xs.waiters(), 0);
}

#[test]
fn a_broken_stream_wakes_and_fails_every_waiter() {
    let sim = store();
    let xs = manual(&sim);
    let mut watch = run(&xs, xs.watch("data")).unwrap();
    let _ = run(&xs, watch.next_event()).unwrap();
    let (reader, watcher) = (Task::new(), Task::new());
    let mut read = xs.read(TxId::NONE, "domid");
    assert!(poll(&mut read, &reader).is_pending());
    let mut next = watch.next_event();
    assert!(poll(&mut next, &watcher).is_pending());
    sim.borrow_mut().inject_fault(Fault::GarbageType);
    serve(&xs);
    assert_eq!((reader.wakes(), watcher.wakes()), (1, 1));
    assert_eq!(
        poll(&mut read, &reader),
        Poll::Ready(Err(XsError::Disconnected))
    );
    assert_eq!(
        poll(&mut next, &watcher),
        Poll::Ready(Err(XsError::Disconnected))
    );
    assert_eq!(xs.broken(), Some(XsError::UnknownType(0xdead)));
    assert_eq!(
        run(&xs, xs.read(TxId::NONE, "domid")),
        Err(XsError::Disconnected)
    );
}

#[test]
fn transactions_retry_with_an_async_body() {
    let sim = store();
    let xs = automatic(&sim);
    run(&xs, xs.write(TxId::NONE, "data/n", b"0")).unwrap();
    let attempts = core::cell::Cell::new(0);
    let outcome = run(
        &xs,
        xs.transaction(RetryPolicy::DEFAULT, |tx| {
            let attempts = &attempts;
            let xs = &xs;
            async move {
                attempts.set(attempts.get() + 1);
                let mut value = xs.read(tx, "data/n").await?;
                if attempts.get() == 1 {
                    xs.write(TxId::NONE, "data/n", b"outside").await?;
                }
                value.extend_from_slice(b"+tx");
                xs.write(tx, "data/n", &value).await?;
                Ok(attempts.get())
            }
        }),
    );
    assert_eq!(outcome, Ok(2));
    assert_eq!(
        run(&xs, xs.read(TxId::NONE, "data/n")),
        Ok(b"outside+tx".to_vec())
    );
    assert_eq!(sim.borrow().open_transactions(), 0);
}

#[test]
fn raw_requests_get_xenstoreds_refusal() {
    let sim = store();
    let xs = automatic(&sim);
    assert_eq!(
        run(
            &xs,
            xs.raw_request(pv_arch::abi::xenstore::XS_CONTROL, TxId::NONE, b"help\0")
        ),
        Err(XsError::NotSupported)
    );
    assert_eq!(run(&xs, xs.read_opt(TxId::NONE, "nothing-here")), Ok(None));
    assert_eq!(
        run(
            &xs,
            xs.raw_request(pv_arch::abi::xenstore::XS_READ, TxId::NONE, b"domid\0")
        ),
        Ok(Reply::Value(b"5".to_vec()))
    );
}
