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
    toolstack_nodes(&sim);
    (sim, xs)
}

/// Writes the toolstack's nodes for the device (at the start, and again
/// as `xl *-attach` does): our directory (ours to write) naming the
/// backend, our state `Initialising`, the backend in `InitWait`.
fn toolstack_nodes(sim: &SimHandle) {
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
    // The helper's two watches (the backend's state, ours) went with it.
    let _ = xs.pump();
    xs.with_page(|page| page.service()).unwrap();
    assert_eq!(sim.borrow().watch_count(), watches - 2);
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
    assert_eq!(still, Ok(BackendNews::Unchanged));
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

/// Connects a two-step frontend against [`good_backend`].
fn connected<'x>(
    sim: &SimHandle,
    xs: &'x SharedXenstore<SimRingPage>,
    clock: &FakeClock,
    driver: &mut TestDriver<'x>,
) -> Frontend<'x, SimRingPage, FakeClock> {
    let paths = paths(sim, xs, clock);
    let connect = Frontend::connect(
        xs,
        clock.clone(),
        paths,
        ConnectStyle::TwoStep,
        Policy::DEFAULT,
        driver,
    );
    let (frontend, _) = drive(sim, xs, clock, good_backend, connect);
    frontend.unwrap()
}

/// Reconnects `frontend` against `backend`; it must end connected.
fn reconnect<'x>(
    sim: &SimHandle,
    xs: &'x SharedXenstore<SimRingPage>,
    clock: &FakeClock,
    backend: impl FnMut(&mut Sim),
    frontend: &mut Frontend<'x, SimRingPage, FakeClock>,
    driver: &mut TestDriver<'x>,
) {
    let (outcome, _) = drive(sim, xs, clock, backend, frontend.reconnect(driver));
    outcome.unwrap();
    assert!(frontend.is_connected());
}

/// Waits for the next change of either state node; what it means.
fn next_news<'x>(
    sim: &SimHandle,
    xs: &'x SharedXenstore<SimRingPage>,
    clock: &FakeClock,
    frontend: &mut Frontend<'x, SimRingPage, FakeClock>,
) -> Result<BackendNews, XenbusError> {
    let (news, _) = drive(sim, xs, clock, |_| {}, async {
        frontend.changed().await?;
        frontend.check().await
    });
    news
}

#[test]
fn classify_says_what_became_of_the_connection() {
    use BackendNews as N;
    use XenbusState as S;
    let c = S::Connected;
    assert_eq!(classify(c, Some(c), false, Some(c)), N::Unchanged);
    // Detach: the backend closes, or vanishes, or our directory does.
    assert_eq!(classify(c, Some(c), false, Some(S::Closing)), N::Closing);
    assert_eq!(classify(c, Some(c), false, Some(S::Closed)), N::Closing);
    assert_eq!(classify(c, Some(c), false, None), N::Closing);
    assert_eq!(classify(c, None, false, Some(c)), N::Closing);
    // Resume: the toolstack rewrote our node; the old backend is gone.
    assert_eq!(classify(c, Some(S::Initialising), false, None), N::Reset);
    assert_eq!(classify(c, Some(c), true, None), N::Reset);
    // A restarted backend waits for us again.
    assert_eq!(classify(c, Some(c), false, Some(S::InitWait)), N::Reset);
    // Once we are closed, a backend in InitWait is not news here (see
    // ready_to_connect).
    assert_eq!(
        classify(S::Closed, Some(S::Closed), false, Some(S::InitWait)),
        N::Unchanged
    );
}

#[test]
fn ready_to_connect_waits_for_a_new_or_reset_device() {
    use XenbusState as S;
    assert!(!ready_to_connect(None, Some(S::InitWait)), "no directory");
    assert!(ready_to_connect(Some(S::Initialising), None), "made anew");
    assert!(
        ready_to_connect(Some(S::Closed), Some(S::InitWait)),
        "backend restarted"
    );
    assert!(!ready_to_connect(Some(S::Closed), Some(S::Closed)));
    assert!(!ready_to_connect(Some(S::Closed), Some(S::Closing)));
    assert!(!ready_to_connect(Some(S::Closed), None));
}

#[test]
fn a_detach_closes_our_node_and_a_reattach_reconnects() {
    let (sim, xs, clock) = fixture();
    let mut driver = TestDriver::new(&xs);
    let mut frontend = connected(&sim, &xs, &clock, &mut driver);
    // `xl block-detach`: the toolstack writes the backend's state Closing.
    backend_goes(&mut sim.borrow_mut(), XenbusState::Closing);
    let news = next_news(&sim, &xs, &clock, &mut frontend);
    assert_eq!(news, Ok(BackendNews::Closing));
    let (detached, _) = drive(&sim, &xs, &clock, |_| {}, frontend.detach(&mut driver));
    assert_eq!(detached, Ok(()));
    assert_eq!(driver.counts.torn_down, 1, "rings released");
    assert_eq!(state_of(&sim.borrow(), FRONT), Some(XenbusState::Closed));
    // The backend follows; the toolstack removes both directories.
    good_backend(&mut sim.borrow_mut());
    assert_eq!(state_of(&sim.borrow(), BACKEND), Some(XenbusState::Closed));
    {
        let mut sim = sim.borrow_mut();
        sim.rm_as(0, FRONT).unwrap();
        sim.rm_as(0, BACKEND).unwrap();
    }
    // A second detach look does not write our node back into a removed
    // directory.
    let (again, _) = drive(&sim, &xs, &clock, |_| {}, frontend.detach(&mut driver));
    assert_eq!(again, Ok(()));
    assert!(sim.borrow().value(&format!("{FRONT}/state")).is_none());
    assert!(!ready_to_connect(None, None));
    // `xl network-attach`/`block-attach` of the same index: new
    // directories, our node Initialising, the backend in InitWait.
    toolstack_nodes(&sim);
    reconnect(&sim, &xs, &clock, good_backend, &mut frontend, &mut driver);
    assert_eq!(driver.counts.published, 2);
    assert_eq!(driver.counts.connected, 2);
    assert_eq!(state_of(&sim.borrow(), FRONT), Some(XenbusState::Connected));
}

#[test]
fn a_resume_resets_our_node_and_the_handshake_runs_anew_on_the_new_backend() {
    const NEW_BACKEND: &str = "/local/domain/0/backend/vbd/9/51712";
    let (sim, xs, clock) = fixture();
    let mut driver = TestDriver::new(&xs);
    let mut frontend = connected(&sim, &xs, &clock, &mut driver);
    // The toolstack after a restore: the old backend is gone, a new one
    // (under the new domain id) waits, our nodes are rewritten.
    {
        let mut s = sim.borrow_mut();
        s.rm_as(0, BACKEND).unwrap();
        s.write_as(0, &format!("{NEW_BACKEND}/state"), b"2")
            .unwrap();
        s.set_perms_as(0, NEW_BACKEND, Permissions::new(0, Access::Read))
            .unwrap();
        s.set_perms_as(
            0,
            &format!("{NEW_BACKEND}/state"),
            Permissions::new(0, Access::Read),
        )
        .unwrap();
        s.write_as(0, &format!("{FRONT}/backend"), NEW_BACKEND.as_bytes())
            .unwrap();
        s.write_as(0, &format!("{FRONT}/state"), b"1").unwrap();
    }
    let news = next_news(&sim, &xs, &clock, &mut frontend);
    assert_eq!(news, Ok(BackendNews::Reset));
    // The new backend behaves like the good one, at its own path.
    let new_backend = |sim: &mut Sim| {
        use XenbusState as S;
        let state = |path: &str| {
            sim.value(&format!("{path}/state"))
                .and_then(|raw| XenbusState::parse(raw).ok())
        };
        let target = match state(FRONT) {
            Some(S::Initialising) => S::InitWait,
            Some(S::Initialised | S::Connected) => S::Connected,
            _ => return,
        };
        if state(NEW_BACKEND) != Some(target) {
            sim.write_as(0, &format!("{NEW_BACKEND}/sectors"), b"4096")
                .unwrap();
            sim.write_as(
                0,
                &format!("{NEW_BACKEND}/state"),
                target.as_str().as_bytes(),
            )
            .unwrap();
        }
    };
    reconnect(&sim, &xs, &clock, new_backend, &mut frontend, &mut driver);
    assert_eq!(frontend.paths().backend, NEW_BACKEND);
    assert_eq!(driver.sectors.as_deref(), Some(&b"4096"[..]));
    assert_eq!(driver.counts.torn_down, 1, "the old rings went first");
}

#[test]
fn a_restarted_backend_is_reported_as_a_reset() {
    let (sim, xs, clock) = fixture();
    let mut driver = TestDriver::new(&xs);
    let mut frontend = connected(&sim, &xs, &clock, &mut driver);
    backend_goes(&mut sim.borrow_mut(), XenbusState::InitWait);
    let (news, _) = drive(&sim, &xs, &clock, |_| {}, frontend.refresh(&mut driver));
    assert_eq!(news, Ok(BackendNews::Reset));
    assert_eq!(driver.counts.torn_down, 0, "the caller reconnects");
    reconnect(&sim, &xs, &clock, good_backend, &mut frontend, &mut driver);
    assert_eq!((driver.counts.published, driver.counts.torn_down), (2, 1));
}

/// xenstored answers `EACCES`, not `ENOENT`, when we read a node of a
/// backend whose directory was removed (seen with the rig's own
/// backend): that is a backend gone, honoured at once, and a close
/// finishes without waiting out the deadline.
#[test]
fn a_backend_state_read_denied_means_the_backend_is_gone() {
    let (sim, xs, clock) = fixture();
    let mut driver = TestDriver::new(&xs);
    let mut frontend = connected(&sim, &xs, &clock, &mut driver);
    // As xenstored answers once the backend's directory is gone.
    sim.borrow_mut()
        .set_perms_as(
            0,
            &format!("{BACKEND}/state"),
            Permissions::new(0, Access::None),
        )
        .unwrap();
    let (news, _) = drive(&sim, &xs, &clock, |_| {}, frontend.check());
    assert_eq!(news, Ok(BackendNews::Closing));
    let (closed, took) = drive(&sim, &xs, &clock, |_| {}, frontend.close(&mut driver));
    assert_eq!(closed, Ok(()));
    assert!(took < 1_000_000_000, "the close took {took} ns");
    assert_eq!(driver.counts.torn_down, 1);
    assert_eq!(state_of(&sim.borrow(), FRONT), Some(XenbusState::Closed));
}
