//! The handshake helper against the simulated xenstored and scripted
//! backends: a normal connection (both styles), a flapping backend that
//! hits the publication cap, a stuck backend that hits the deadline, a
//! backend that closes under a connected device, and our own close.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::sync::Arc;
use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use super::*;
use crate::xenstore::sim::{Sim, SimHandle, SimRingPage};
use crate::xenstore::{Access, Permissions, RingTransport};

const DOMID: u16 = 5;
const FRONT: &str = "/local/domain/5/device/vbd/51712";
const BACKEND: &str = "/local/domain/0/backend/vbd/5/51712";
/// Simulated time per turn of the test executor.
const TURN_NS: u64 = 50_000_000;

/// Time that moves only when the test executor says so.
#[derive(Clone)]
struct FakeClock(Rc<Cell<u64>>);

struct FakeSleep {
    now: Rc<Cell<u64>>,
    deadline: u64,
}

impl Future for FakeSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.now.get() >= self.deadline {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Clock for FakeClock {
    type Sleep = FakeSleep;
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
    fn sleep_until(&self, deadline_ns: u64) -> FakeSleep {
        FakeSleep {
            now: self.0.clone(),
            deadline: deadline_ns,
        }
    }
}

/// What the driver was asked to do.
#[derive(Default)]
struct Counts {
    published: u32,
    connected: u32,
    torn_down: u32,
}

struct TestDriver<'x> {
    xs: &'x SharedXenstore<SimRingPage>,
    counts: Counts,
    sectors: Option<Vec<u8>>,
}

impl<'x> TestDriver<'x> {
    /// A driver that has published nothing yet.
    fn new(xs: &'x SharedXenstore<SimRingPage>) -> Self {
        TestDriver {
            xs,
            counts: Counts::default(),
            sectors: None,
        }
    }
}

impl Driver for TestDriver<'_> {
    type Error = XenbusError;

    async fn publish(&mut self, paths: &DevicePaths) -> Result<(), XenbusError> {
        self.counts.published += 1;
        let key = format!("{}/ring-ref", paths.front);
        let value = format!("{}", 8 + self.counts.published);
        self.xs.write(TxId::NONE, &key, value.as_bytes()).await?;
        Ok(())
    }

    async fn connected(&mut self, paths: &DevicePaths) -> Result<(), XenbusError> {
        self.counts.connected += 1;
        let key = format!("{}/sectors", paths.backend);
        self.sectors = self.xs.read_opt(TxId::NONE, &key).await?;
        Ok(())
    }

    fn tear_down(&mut self) {
        self.counts.torn_down += 1;
    }
}

/// The store as the toolstack leaves it: our device directory (ours to
/// write) naming the backend, and the backend in `InitWait`.
/// A toolstack's xenstore and a fake clock at 0.
fn fixture() -> (SimHandle, SharedXenstore<SimRingPage>, FakeClock) {
    let (sim, xs) = toolstack();
    (sim, xs, FakeClock(Rc::new(Cell::new(0))))
}

fn toolstack() -> (SimHandle, SharedXenstore<SimRingPage>) {
    let sim = Sim::shared();
    let xs = SharedXenstore::new(RingTransport::new(SimRingPage::connect(&sim, DOMID)));
    {
        let mut sim = sim.borrow_mut();
        sim.write_as(0, &format!("{FRONT}/backend"), BACKEND.as_bytes())
            .unwrap();
        sim.write_as(0, &format!("{FRONT}/backend-id"), b"0")
            .unwrap();
        sim.write_as(0, &format!("{FRONT}/state"), b"1").unwrap();
        for node in ["", "/backend", "/backend-id", "/state"] {
            sim.set_perms_as(
                0,
                &format!("{FRONT}{node}"),
                Permissions::new(DOMID, Access::None),
            )
            .unwrap();
        }
        sim.write_as(0, &format!("{BACKEND}/state"), b"2").unwrap();
        for node in ["", "/state"] {
            sim.set_perms_as(
                0,
                &format!("{BACKEND}{node}"),
                Permissions::new(0, Access::Read),
            )
            .unwrap();
        }
    }
    (sim, xs)
}

fn state_of(sim: &Sim, dir: &str) -> Option<XenbusState> {
    sim.value(&format!("{dir}/state"))
        .and_then(|raw| XenbusState::parse(raw).ok())
}

/// Sets the backend's state if it differs (a real backend writes only on
/// a change).
fn backend_goes(sim: &mut Sim, state: XenbusState) {
    if state_of(sim, BACKEND) != Some(state) {
        sim.write_as(0, &format!("{BACKEND}/state"), state.as_str().as_bytes())
            .unwrap();
    }
}

/// A blkback (or netback) that behaves.
fn good_backend(sim: &mut Sim) {
    use XenbusState as S;
    match state_of(sim, FRONT) {
        Some(S::Initialising) => backend_goes(sim, S::InitWait),
        Some(S::Initialised | S::Connected) => {
            if sim.value(&format!("{BACKEND}/sectors")).is_none() {
                sim.write_as(0, &format!("{BACKEND}/sectors"), b"2048")
                    .unwrap();
            }
            backend_goes(sim, S::Connected);
        }
        Some(S::Closing) => backend_goes(sim, S::Closing),
        Some(S::Closed) => backend_goes(sim, S::Closed),
        _ => {}
    }
}

/// A backend that closes whenever the frontend publishes, and comes back
/// to `InitWait` whenever the frontend reinitialises.
fn flapping_backend(sim: &mut Sim) {
    use XenbusState as S;
    match state_of(sim, FRONT) {
        Some(S::Initialising) => backend_goes(sim, S::InitWait),
        Some(S::Initialised | S::Connected) => backend_goes(sim, S::Closing),
        Some(S::Closed) => backend_goes(sim, S::Closed),
        _ => {}
    }
}

/// A backend that never gets past `InitWait`.
fn stuck_backend(_: &mut Sim) {}

/// Runs `future`, letting the backend react, xenstored answer and time
/// pass between polls. Returns the output and the simulated time taken.
fn drive<F: Future>(
    sim: &SimHandle,
    xs: &SharedXenstore<SimRingPage>,
    clock: &FakeClock,
    mut backend: impl FnMut(&mut Sim),
    future: F,
) -> (F::Output, u64) {
    let start = clock.now_ns();
    let waker = Waker::from(Arc::new(NoWake));
    let mut future = core::pin::pin!(future);
    for _ in 0..100_000 {
        if let Poll::Ready(value) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return (value, clock.now_ns() - start);
        }
        backend(&mut sim.borrow_mut());
        xs.with_page(|page| page.service()).unwrap();
        let _ = xs.pump();
        clock.0.set(clock.0.get() + TURN_NS);
    }
    panic!("the handshake never finished");
}

struct NoWake;

impl alloc::task::Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

fn paths(sim: &SimHandle, xs: &SharedXenstore<SimRingPage>, clock: &FakeClock) -> DevicePaths {
    let (paths, _) = drive(
        sim,
        xs,
        clock,
        |_| {},
        DevicePaths::read(xs, String::from("device/vbd/51712")),
    );
    paths.unwrap()
}

#[test]
fn device_paths_are_read_and_checked() {
    let (sim, xs, clock) = fixture();
    let read = paths(&sim, &xs, &clock);
    assert_eq!(read.backend, BACKEND);
    assert_eq!(read.backend_id, 0);
    sim.borrow_mut()
        .write_as(0, &format!("{FRONT}/backend-id"), b"70000")
        .unwrap();
    let (bad, _) = drive(
        &sim,
        &xs,
        &clock,
        |_| {},
        DevicePaths::read(&xs, String::from("device/vbd/51712")),
    );
    assert_eq!(bad, Err(XenbusError::BadKey("backend-id")));
    sim.borrow_mut()
        .write_as(0, &format!("{FRONT}/backend"), b"relative/path")
        .unwrap();
    let (bad, _) = drive(
        &sim,
        &xs,
        &clock,
        |_| {},
        DevicePaths::read(&xs, String::from("device/vbd/51712")),
    );
    assert_eq!(bad, Err(XenbusError::BadKey("backend")));
}

#[test]
fn a_good_backend_connects_two_step_and_closes() {
    let (sim, xs, clock) = fixture();
    let paths = paths(&sim, &xs, &clock);
    let mut driver = TestDriver::new(&xs);
    let connect = Frontend::connect(
        &xs,
        clock.clone(),
        paths,
        ConnectStyle::TwoStep,
        Policy::DEFAULT,
        &mut driver,
    );
    let (frontend, took) = drive(&sim, &xs, &clock, good_backend, connect);
    let frontend = frontend.unwrap();
    assert!(frontend.is_connected());
    assert_eq!(frontend.publishes(), 1);
    assert!(took < 2_000_000_000, "took {took} ns");
    assert_eq!(state_of(&sim.borrow(), FRONT), Some(XenbusState::Connected));
    assert_eq!(
        sim.borrow().value(&format!("{FRONT}/ring-ref")),
        Some(&b"9"[..])
    );
    assert_eq!(
        (
            driver.counts.published,
            driver.counts.connected,
            driver.counts.torn_down
        ),
        (1, 1, 0)
    );
    assert_eq!(driver.sectors.as_deref(), Some(&b"2048"[..]));
    let watches = sim.borrow().watch_count();
    let (closed, _) = drive(&sim, &xs, &clock, good_backend, frontend.close(&mut driver));
    assert_eq!(closed, Ok(()));
    assert_eq!(driver.counts.torn_down, 1);
    assert_eq!(state_of(&sim.borrow(), FRONT), Some(XenbusState::Closed));
    good_backend(&mut sim.borrow_mut());
    assert_eq!(state_of(&sim.borrow(), BACKEND), Some(XenbusState::Closed));
    // The helper's watch went with it.
    let _ = xs.pump();
    xs.with_page(|page| page.service()).unwrap();
    assert_eq!(sim.borrow().watch_count(), watches - 1);
}

#[test]
fn a_good_backend_connects_direct() {
    let (sim, xs, clock) = fixture();
    let paths = paths(&sim, &xs, &clock);
    let mut driver = TestDriver::new(&xs);
    let connect = Frontend::connect(
        &xs,
        clock.clone(),
        paths,
        ConnectStyle::Direct,
        Policy::DEFAULT,
        &mut driver,
    );
    let (frontend, _) = drive(&sim, &xs, &clock, good_backend, connect);
    assert!(frontend.unwrap().is_connected());
    assert_eq!((driver.counts.published, driver.counts.connected), (1, 0));
}

#[test]
fn a_flapping_backend_hits_the_publication_cap() {
    let (sim, xs, clock) = fixture();
    let paths = paths(&sim, &xs, &clock);
    let mut driver = TestDriver::new(&xs);
    let policy = Policy {
        deadline: Duration::from_secs(30),
        max_publishes: 3,
    };
    let connect = Frontend::connect(
        &xs,
        clock.clone(),
        paths,
        ConnectStyle::TwoStep,
        policy,
        &mut driver,
    );
    let (outcome, took) = drive(&sim, &xs, &clock, flapping_backend, connect);
    match outcome {
        Err(XenbusError::TooManyAttempts { publishes: 3, .. }) => {}
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("connected to a flapping backend"),
    }
    assert_eq!(driver.counts.published, 3, "no grants beyond the cap");
    assert!(driver.counts.torn_down >= 3);
    assert!(
        took < 30_000_000_000,
        "gave up by the cap, not the deadline"
    );
    assert_eq!(state_of(&sim.borrow(), FRONT), Some(XenbusState::Closed));
}

#[test]
fn a_stuck_backend_hits_one_overall_deadline() {
    let (sim, xs, clock) = fixture();
    let paths = paths(&sim, &xs, &clock);
    let mut driver = TestDriver::new(&xs);
    let policy = Policy {
        deadline: Duration::from_secs(5),
        max_publishes: 3,
    };
    let connect = Frontend::connect(
        &xs,
        clock.clone(),
        paths,
        ConnectStyle::TwoStep,
        policy,
        &mut driver,
    );
    let (outcome, took) = drive(&sim, &xs, &clock, stuck_backend, connect);
    assert_eq!(
        outcome.err(),
        Some(XenbusError::TimedOut {
            last_seen: Some(XenbusState::InitWait)
        })
    );
    assert!(
        (5_000_000_000..5_200_000_000).contains(&took),
        "took {took} ns"
    );
    assert_eq!(driver.counts.published, 1);
    assert_eq!(driver.counts.torn_down, 1);
    assert_eq!(state_of(&sim.borrow(), FRONT), Some(XenbusState::Closed));
}

#[test]
fn a_backend_going_closing_is_honoured() {
    let (sim, xs, clock) = fixture();
    let paths = paths(&sim, &xs, &clock);
    let mut driver = TestDriver::new(&xs);
    let connect = Frontend::connect(
        &xs,
        clock.clone(),
        paths,
        ConnectStyle::TwoStep,
        Policy::DEFAULT,
        &mut driver,
    );
    let (frontend, _) = drive(&sim, &xs, &clock, good_backend, connect);
    let mut frontend = frontend.unwrap();
    // Nothing changed: the connection stands.
    let (still, _) = drive(&sim, &xs, &clock, |_| {}, frontend.refresh(&mut driver));
    assert_eq!(still, Ok(()));
    // `xl block-detach`: the backend goes Closing.
    backend_goes(&mut sim.borrow_mut(), XenbusState::Closing);
    xs.with_page(|page| page.service()).unwrap();
    let (closed, _) = drive(&sim, &xs, &clock, |_| {}, frontend.refresh(&mut driver));
    assert_eq!(closed, Err(XenbusError::BackendClosed));
    assert_eq!(driver.counts.torn_down, 1);
    assert_eq!(state_of(&sim.borrow(), FRONT), Some(XenbusState::Closed));
    assert!(!frontend.is_connected());
    // And it stays closed (no reconnection behind the toolstack's back).
    backend_goes(&mut sim.borrow_mut(), XenbusState::InitWait);
    let (again, _) = drive(&sim, &xs, &clock, |_| {}, frontend.refresh(&mut driver));
    assert_eq!(again, Err(XenbusError::BackendClosed));
    assert_eq!(driver.counts.published, 1);
}

#[test]
fn a_backend_garbage_state_is_a_clear_error() {
    let (sim, xs, clock) = fixture();
    let paths = paths(&sim, &xs, &clock);
    sim.borrow_mut()
        .write_as(0, &format!("{BACKEND}/state"), b"4\n")
        .unwrap();
    let mut driver = TestDriver::new(&xs);
    let connect = Frontend::connect(
        &xs,
        clock.clone(),
        paths,
        ConnectStyle::TwoStep,
        Policy::DEFAULT,
        &mut driver,
    );
    let (outcome, _) = drive(&sim, &xs, &clock, stuck_backend, connect);
    assert!(matches!(outcome, Err(XenbusError::BadState(_))));
    assert_eq!(driver.counts.published, 0);
}

#[test]
fn key_values_read_present_and_absent_keys() {
    let (sim, xs, clock) = fixture();
    sim.borrow_mut()
        .write_as(0, &format!("{BACKEND}/sectors"), b"2048")
        .unwrap();
    let (values, _) = drive(
        &sim,
        &xs,
        &clock,
        |_| {},
        KeyValues::read(&xs, BACKEND, ["sectors", "state", "sector-size"]),
    );
    let values = values.unwrap();
    assert_eq!(values.get("sectors"), Some(&b"2048"[..]));
    assert_eq!(values.get("state"), Some(&b"2"[..]));
    assert_eq!(values.get("sector-size"), None, "absent");
    assert_eq!(values.get("info"), None, "not asked for");
}
