//! Host tests of the closer registry.

use super::*;
use alloc::sync::Arc;
use alloc::task::Wake;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};

struct NoWake;
impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

fn run<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    let mut future = core::pin::pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

/// The registry is one static: the tests that use it take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn closers_run_newest_first_once_and_unregistered_ones_not_at_all() {
    let _turn = SERIAL.lock().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let first_calls = calls.clone();
    register_closer("vif/0", move || async move {
        first_calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let dropped = register_closer("vbd/1", || async { Ok(()) });
    register_closer("vbd/51712", || async {
        Err(AppError::new(format_args!("backend never answered")))
    });
    assert!(unregister_closer(dropped));
    assert!(!unregister_closer(dropped), "only once");
    assert_eq!(registered_closers(), 2);

    let outcomes = run(close_devices_with(|future| future));
    let names: Vec<_> = outcomes.iter().map(|closed| closed.name).collect();
    assert_eq!(names, ["vbd/51712", "vif/0"]);
    assert_eq!(
        outcomes[0].result.unwrap_err().message(),
        "backend never answered"
    );
    assert!(outcomes[1].result.is_ok());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(registered_closers(), 0, "taken, not run twice");
    assert!(run(close_devices_with(|future| future)).is_empty());
}
