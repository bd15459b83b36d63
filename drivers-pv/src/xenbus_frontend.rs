//! The xenbus handshake of a frontend, as one async helper that netfront
//! and blkfront share.
//!
//! [`Frontend::connect`] drives [`FrontendState`] against the backend's
//! `state` node: it watches that node (a xenstore watch, not polling),
//! reads it after each event, and carries out what the state machine
//! answers through the driver's [`Driver`] hooks (publish the rings,
//! read what the backend says once connected, tear down). Everything it
//! waits for is bounded by one overall deadline ([`Policy::deadline`]),
//! not a fresh timeout per state change, and a backend that keeps
//! flapping between states makes it give up after [`Policy::max_publishes`]
//! publications (each of which costs the driver fresh rings and grants)
//! with [`XenbusError::TooManyAttempts`].
//!
//! Once connected, [`Frontend::refresh`] honours a backend that goes
//! `Closing` or `Closed` (`xl block-detach`, a backend restart): the
//! driver tears down and our node goes `Closed`. [`Frontend::close`]
//! closes from our side the way backends expect (`Closing`, wait for the
//! backend to follow, tear down, `Closed`).
//!
//! Devices come and go ([`Frontend::check`], [`BackendNews`]): a task
//! that keeps a device awaits [`Frontend::changed`] (a watch on the
//! backend's `state` and one on ours) and asks [`Frontend::check`] what
//! happened. [`BackendNews::Closing`] (the backend closing, its node or
//! our directory gone: a detach) is honoured with [`Frontend::detach`]
//! (tear down, `Closed`); [`BackendNews::Reset`] (our node rewritten to
//! `Initialising` by the toolstack, as after a resume into a new domain,
//! our `backend` key naming another directory, or the backend back in
//! `InitWait`: a restarted backend) is answered with
//! [`Frontend::reconnect`]: the old rings go (the driver's tear-down),
//! the paths are read again and the whole handshake runs anew. After a
//! detach, [`ready_to_connect`] says when the same device index may be
//! connected again (re-attached, or its backend restarted).
//!
//! Nothing here blocks and nothing here knows the guest: the xenstore
//! connection is any [`SharedXenstore`], and time is a [`Clock`], so the
//! host tests run the whole handshake against the simulated xenstored
//! and a scripted backend.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::time::Duration;

use kernel::sched::Timeout;

use crate::xenbus_state::{
    parse_u32, Action, ConnectStyle, FrontendState, StateError, XenbusState,
};
use crate::xenstore::{SharedXenstore, TxId, Watch, XenstorePage, XsError};

/// Time as the handshake needs it: now, and a sleep until a deadline.
pub trait Clock: Clone {
    /// The future of [`Clock::sleep_until`].
    type Sleep: Future<Output = ()> + Unpin;
    /// The current time in nanoseconds.
    fn now_ns(&self) -> u64;
    /// Completes once [`Clock::now_ns`] reaches `deadline_ns`.
    fn sleep_until(&self, deadline_ns: u64) -> Self::Sleep;
}

/// The guest's clock: Xen system time and the executor's timers.
#[cfg(target_os = "none")]
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestClock;

#[cfg(target_os = "none")]
impl Clock for GuestClock {
    type Sleep = kernel::sched::executor::Sleep;

    fn now_ns(&self) -> u64 {
        kernel::time::now_ns()
    }

    fn sleep_until(&self, deadline_ns: u64) -> Self::Sleep {
        kernel::sched::sleep_until(deadline_ns)
    }
}

/// How long the handshake may take and how often it may start over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The whole handshake (or the whole close), however many state
    /// changes it takes.
    pub deadline: Duration,
    /// Publications of rings at most (the first included): a backend
    /// that flaps back to `InitWait` more often gets no more grants.
    pub max_publishes: u32,
}

impl Policy {
    /// 30 s in all (generous for a dom0 under software emulation), and
    /// three publications (the first and two reconnections).
    pub const DEFAULT: Policy = Policy {
        deadline: Duration::from_secs(30),
        max_publishes: 3,
    };
}

impl Default for Policy {
    fn default() -> Self {
        Policy::DEFAULT
    }
}

/// Why the handshake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XenbusError {
    /// A xenstore operation failed.
    Xenstore(XsError),
    /// A key of our device directory (`backend`, `backend-id`) is missing
    /// or malformed.
    BadKey(&'static str),
    /// The backend's `state` node holds something that is not a state.
    BadState(StateError),
    /// The deadline passed; the last backend state seen, if any.
    TimedOut {
        /// The backend's last state.
        last_seen: Option<XenbusState>,
    },
    /// The backend made us publish [`Policy::max_publishes`] times and
    /// still did not connect (it flaps between states).
    TooManyAttempts {
        /// Publications made.
        publishes: u32,
        /// The backend's last state.
        last_seen: Option<XenbusState>,
    },
    /// The backend closed the connection (now `Closed` on our side too).
    BackendClosed,
}

/// What became of a connected device, as [`Frontend::check`] reads it
/// from xenstore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendNews {
    /// Both ends still say what they said at connection time.
    Unchanged,
    /// The device is going away: the backend is `Closing` or `Closed`
    /// (`xl block-detach`, `xl network-detach`, a backend unloaded), or
    /// its `state` node or our own directory is gone. Answer:
    /// [`Frontend::detach`].
    Closing,
    /// The connection must be made anew: the toolstack rewrote our
    /// `state` to `Initialising` (a resume into a new domain), our
    /// `backend` key names another directory, or the backend is back in
    /// `InitWait`/`Initialising` (a restarted backend). Answer:
    /// [`Frontend::reconnect`].
    Reset,
}

/// Classifies what a connected frontend reads back (pure, see
/// [`BackendNews`]): `own` our state as last written, `front` our
/// `state` node as read (`None`: our directory is gone), `moved` whether
/// our `backend` key now names another directory, `backend` the
/// backend's `state` node as read.
pub fn classify(
    own: XenbusState,
    front: Option<XenbusState>,
    moved: bool,
    backend: Option<XenbusState>,
) -> BackendNews {
    use XenbusState as S;
    let Some(front) = front else {
        return BackendNews::Closing;
    };
    let live = matches!(own, S::Initialised | S::Connected);
    // The toolstack's reset wins over the old backend's state: after a
    // resume the old backend is gone, the new one waits for us.
    if live && (moved || matches!(front, S::Initialising | S::Unknown)) {
        return BackendNews::Reset;
    }
    match backend {
        None | Some(S::Closing | S::Closed) => BackendNews::Closing,
        Some(S::Initialising | S::InitWait) if live => BackendNews::Reset,
        _ => BackendNews::Unchanged,
    }
}

/// After a detach (our node `Closed`), whether the device may be
/// connected again (pure): our directory exists and either the toolstack
/// made it anew or reset it (`front` is `Initialising`: `xl
/// network-attach` of the same index, a resume), or the backend, not us,
/// came back to `InitWait` (a restarted backend driver). A backend still
/// `Closing`/`Closed`, or no directory, means wait.
pub fn ready_to_connect(front: Option<XenbusState>, backend: Option<XenbusState>) -> bool {
    use XenbusState as S;
    match front {
        None => false,
        Some(S::Initialising | S::Unknown) => true,
        Some(_) => matches!(backend, Some(S::InitWait)),
    }
}

impl fmt::Display for XenbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenbusError::Xenstore(error) => write!(f, "xenbus: {error}"),
            XenbusError::BadKey(key) => write!(f, "xenbus: device key {key} missing or malformed"),
            XenbusError::BadState(error) => write!(f, "xenbus: backend {error}"),
            XenbusError::TimedOut { last_seen } => {
                write!(f, "xenbus: backend not ready in time (last state {last_seen:?})")
            }
            XenbusError::TooManyAttempts {
                publishes,
                last_seen,
            } => write!(
                f,
                "xenbus: backend did not connect after {publishes} attempts (last state {last_seen:?})"
            ),
            XenbusError::BackendClosed => f.write_str("xenbus: backend closed"),
        }
    }
}

impl From<XsError> for XenbusError {
    fn from(error: XsError) -> Self {
        XenbusError::Xenstore(error)
    }
}

/// A device's two xenstore directories and the backend's domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePaths {
    /// Our directory (`device/vbd/51712`).
    pub front: String,
    /// The backend's directory (absolute), from our `backend` key.
    pub backend: String,
    /// The backend's domain, from our `backend-id` key.
    pub backend_id: u16,
}

impl DevicePaths {
    /// Reads `backend` and `backend-id` of `front` (untrusted: the path
    /// must be absolute and the id a domain id).
    pub async fn read<P: XenstorePage>(
        xs: &SharedXenstore<P>,
        front: String,
    ) -> Result<DevicePaths, XenbusError> {
        let backend = xs
            .read_opt(TxId::NONE, &format!("{front}/backend"))
            .await?
            .and_then(|raw| String::from_utf8(raw).ok())
            .filter(|path| path.starts_with('/') && !path.contains('\0'))
            .ok_or(XenbusError::BadKey("backend"))?;
        let backend_id = xs
            .read_opt(TxId::NONE, &format!("{front}/backend-id"))
            .await?
            .and_then(|raw| parse_u32(&raw).ok())
            .and_then(|id| u16::try_from(id).ok())
            .ok_or(XenbusError::BadKey("backend-id"))?;
        Ok(DevicePaths {
            front,
            backend,
            backend_id,
        })
    }
}

/// The raw values of some keys of one directory (absent keys as `None`),
/// read before parsing: the parsers (`BackendOffer::read`,
/// `blkfront::offer`) are pure and take a lookup.
pub struct KeyValues<'k> {
    values: Vec<(&'k str, Option<Vec<u8>>)>,
}

impl<'k> KeyValues<'k> {
    /// Reads `dir/key` for each of `keys`.
    pub async fn read<P: XenstorePage>(
        xs: &SharedXenstore<P>,
        dir: &str,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<KeyValues<'k>, XsError> {
        let mut values = Vec::new();
        for key in keys {
            let value = xs.read_opt(TxId::NONE, &format!("{dir}/{key}")).await?;
            values.push((key, value));
        }
        Ok(KeyValues { values })
    }

    /// The value of `key`, if it was read and exists.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.values
            .iter()
            .find(|(known, _)| *known == key)
            .and_then(|(_, value)| value.as_deref())
    }
}

/// What a driver does at each step of the handshake.
#[allow(async_fn_in_trait)] // Implemented by concrete drivers only; callers see their futures.
pub trait Driver {
    /// The driver's error; handshake failures convert into it.
    type Error: From<XenbusError>;

    /// [`Action::Publish`]: read what the backend offers, allocate and
    /// grant the rings, bind the event channel and write the keys.
    async fn publish(&mut self, paths: &DevicePaths) -> Result<(), Self::Error>;

    /// [`Action::Connect`] (two-step drivers): the backend is
    /// `Connected`; read what it publishes at connection time.
    async fn connected(&mut self, paths: &DevicePaths) -> Result<(), Self::Error>;

    /// [`Action::TearDown`]: stop I/O and release the rings (whatever of
    /// them exists).
    fn tear_down(&mut self);
}

/// Our side of one device's handshake, watching the backend's state.
pub struct Frontend<'x, P: XenstorePage, C: Clock> {
    xs: &'x SharedXenstore<P>,
    clock: C,
    paths: DevicePaths,
    policy: Policy,
    state: FrontendState,
    style: ConnectStyle,
    watch: Watch<'x, P>,
    /// Our own `state` node: the toolstack rewrites it on a resume.
    front_watch: Watch<'x, P>,
    last_seen: Option<XenbusState>,
    publishes: u32,
}

impl<'x, P: XenstorePage, C: Clock> Frontend<'x, P, C> {
    /// Connects the device at `paths` (see the module docs): returns once
    /// both ends are `Connected`. On failure our node is left `Closed`
    /// and the driver torn down.
    pub async fn connect<D: Driver>(
        xs: &'x SharedXenstore<P>,
        clock: C,
        paths: DevicePaths,
        style: ConnectStyle,
        policy: Policy,
        driver: &mut D,
    ) -> Result<Frontend<'x, P, C>, D::Error> {
        let deadline = deadline_after(&clock, policy.deadline);
        let backend_state = format!("{}/state", paths.backend);
        let watch = core::pin::pin!(xs.watch(&backend_state));
        let watch = bounded(&clock, deadline, None, watch).await?;
        let front_state = format!("{}/state", paths.front);
        let front_watch = core::pin::pin!(xs.watch(&front_state));
        let mut front_watch = bounded(&clock, deadline, None, front_watch).await?;
        // Its first event (every watch fires once when set) and our own
        // writes below are no news.
        let _ = front_watch.try_next();
        let mut frontend = Frontend {
            xs,
            clock,
            paths,
            policy,
            state: FrontendState::new(style),
            style,
            watch,
            front_watch,
            last_seen: None,
            publishes: 0,
        };
        match frontend.run_connect(deadline, driver).await {
            Ok(()) => Ok(frontend),
            Err(error) => {
                driver.tear_down();
                frontend.abandon();
                Err(error)
            }
        }
    }

    async fn run_connect<D: Driver>(
        &mut self,
        deadline: u64,
        driver: &mut D,
    ) -> Result<(), D::Error> {
        self.write_state(deadline, XenbusState::Initialising)
            .await?;
        loop {
            let backend = self.backend_state(deadline).await?;
            if self.state.is_connected() && backend == Some(XenbusState::Connected) {
                return Ok(());
            }
            let action = match backend {
                Some(state) => self.state.step(state),
                None => Action::Wait,
            };
            match action {
                Action::Wait => {
                    self.wait_for_change(deadline).await?;
                    continue;
                }
                Action::Publish { .. } => {
                    if self.publishes >= self.policy.max_publishes {
                        return Err(XenbusError::TooManyAttempts {
                            publishes: self.publishes,
                            last_seen: self.last_seen,
                        }
                        .into());
                    }
                    self.publishes += 1;
                    driver.publish(&self.paths).await?;
                }
                Action::Connect => driver.connected(&self.paths).await?,
                Action::TearDown => driver.tear_down(),
                Action::BeginClose | Action::Reinitialise => {}
            }
            if let Some(next) = action.state_to_write() {
                self.write_state(deadline, next).await?;
            }
        }
    }

    /// The device's paths.
    pub fn paths(&self) -> &DevicePaths {
        &self.paths
    }

    /// Our state as last written.
    pub fn state(&self) -> XenbusState {
        self.state.own()
    }

    /// The backend's state as last read.
    pub fn backend_seen(&self) -> Option<XenbusState> {
        self.last_seen
    }

    /// Rings published so far.
    pub fn publishes(&self) -> u32 {
        self.publishes
    }

    /// Whether both ends are connected (as last seen).
    pub fn is_connected(&self) -> bool {
        self.state.is_connected() && self.last_seen == Some(XenbusState::Connected)
    }

    /// Completes when the backend's state node or ours changes next (no
    /// deadline: for a driver task that watches its device; then
    /// [`Frontend::check`]).
    pub async fn changed(&mut self) -> Result<(), XenbusError> {
        let Frontend {
            watch, front_watch, ..
        } = self;
        let mut backend = watch.next_event();
        let mut front = front_watch.next_event();
        core::future::poll_fn(|cx| {
            use core::task::Poll;
            if let Poll::Ready(event) = core::pin::Pin::new(&mut backend).poll(cx) {
                return Poll::Ready(event.map(drop));
            }
            if let Poll::Ready(event) = core::pin::Pin::new(&mut front).poll(cx) {
                return Poll::Ready(event.map(drop));
            }
            Poll::Pending
        })
        .await?;
        Ok(())
    }

    /// Reads both ends' states (and our `backend` key) and says what
    /// became of the connection (see [`BackendNews`], [`classify`]).
    /// Pending watch events are taken: they are what this reads.
    pub async fn check(&mut self) -> Result<BackendNews, XenbusError> {
        while self.watch.try_next()?.is_some() {}
        while self.front_watch.try_next()?.is_some() {}
        let deadline = deadline_after(&self.clock, self.policy.deadline);
        let front_path = format!("{}/state", self.paths.front);
        let read = core::pin::pin!(self.xs.read_opt(TxId::NONE, &front_path));
        let front = bounded(&self.clock, deadline, self.last_seen, read)
            .await?
            .map(|raw| XenbusState::parse(&raw).unwrap_or(XenbusState::Unknown));
        let backend_key = format!("{}/backend", self.paths.front);
        let read = core::pin::pin!(self.xs.read_opt(TxId::NONE, &backend_key));
        let moved = bounded(&self.clock, deadline, self.last_seen, read)
            .await?
            .is_some_and(|raw| raw != self.paths.backend.as_bytes());
        let backend = match self.backend_state(deadline).await {
            Ok(state) => state,
            // A backend writing garbage is as good as gone.
            Err(XenbusError::BadState(_)) => None,
            Err(error) => return Err(error),
        };
        Ok(classify(self.state.own(), front, moved, backend))
    }

    /// Honours a backend that is going away ([`BackendNews::Closing`]):
    /// the driver tears down (ending its grants; pages the backend still
    /// maps are quarantined by their owners, never freed) and our node
    /// goes `Closed`, unless our directory is already gone (the node is
    /// not written back into a removed directory). The device stays
    /// closed; [`ready_to_connect`] says when it may come back.
    pub async fn detach<D: Driver>(&mut self, driver: &mut D) -> Result<(), D::Error> {
        self.state.close();
        self.state.step(XenbusState::Closing);
        driver.tear_down();
        let deadline = deadline_after(&self.clock, self.policy.deadline);
        let path = format!("{}/state", self.paths.front);
        let read = core::pin::pin!(self.xs.read_opt(TxId::NONE, &path));
        if bounded(&self.clock, deadline, self.last_seen, read)
            .await?
            .is_some()
        {
            self.write_state(deadline, XenbusState::Closed).await?;
        }
        Ok(())
    }

    /// Connects the same device anew ([`BackendNews::Reset`], or after a
    /// detach once [`ready_to_connect`]): the driver tears down what it
    /// had (a resume voided the old rings and channel; a restarted
    /// backend no longer maps them), our paths are read again (the
    /// backend's directory moves with the domain id), and the handshake
    /// of [`Frontend::connect`] runs from the start, with a fresh
    /// deadline and publication count.
    pub async fn reconnect<D: Driver>(&mut self, driver: &mut D) -> Result<(), D::Error> {
        driver.tear_down();
        // Until the new handshake succeeds we are closed: a failure
        // leaves our node `Closed` (the helper abandons) and this
        // frontend reporting so.
        self.state.close();
        let paths = DevicePaths::read(self.xs, self.paths.front.clone()).await?;
        let fresh = Frontend::connect(
            self.xs,
            self.clock.clone(),
            paths,
            self.style,
            self.policy,
            driver,
        )
        .await?;
        *self = fresh;
        Ok(())
    }

    /// Looks at both ends if either state node changed since the last
    /// look (without waiting when neither did): a backend gone `Closing`
    /// or `Closed` (or our directory gone) makes the driver tear down and
    /// our node go `Closed` ([`Frontend::detach`]), and then this fails
    /// with [`XenbusError::BackendClosed`] (as it does from then on). A
    /// connection to make anew is reported as [`BackendNews::Reset`] for
    /// the caller to [`Frontend::reconnect`]; `Unchanged` while the
    /// connection stands.
    pub async fn refresh<D: Driver>(&mut self, driver: &mut D) -> Result<BackendNews, D::Error> {
        if !self.state.wanted() || !self.state.is_connected() {
            return Err(XenbusError::BackendClosed.into());
        }
        let mut changed = false;
        while self.watch.try_next().map_err(XenbusError::from)?.is_some() {
            changed = true;
        }
        while self
            .front_watch
            .try_next()
            .map_err(XenbusError::from)?
            .is_some()
        {
            changed = true;
        }
        if !changed {
            return Ok(BackendNews::Unchanged);
        }
        match self.check().await? {
            BackendNews::Closing => {
                self.detach(driver).await?;
                Err(XenbusError::BackendClosed.into())
            }
            news => Ok(news),
        }
    }

    /// Closes from our side: `Closing`, wait (within the policy's
    /// deadline) until the backend follows, tear down, `Closed`. On a
    /// timeout the driver is torn down all the same and our node written
    /// `Closed`.
    pub async fn close<D: Driver>(mut self, driver: &mut D) -> Result<(), D::Error> {
        let deadline = deadline_after(&self.clock, self.policy.deadline);
        let mut action = self.state.close();
        let outcome = async {
            loop {
                match action {
                    Action::TearDown => {
                        driver.tear_down();
                        self.write_state(deadline, XenbusState::Closed).await?;
                        return Ok(());
                    }
                    Action::Wait => {
                        if self.state.own() == XenbusState::Closed {
                            return Ok(());
                        }
                    }
                    other => {
                        if let Some(next) = other.state_to_write() {
                            self.write_state(deadline, next).await?;
                        }
                    }
                }
                action = match self.backend_state(deadline).await? {
                    Some(state) => match self.state.step(state) {
                        Action::Wait => {
                            self.wait_for_change(deadline).await?;
                            Action::Wait
                        }
                        next => next,
                    },
                    None => {
                        // The backend's directory is gone: nothing maps
                        // our rings any more.
                        Action::TearDown
                    }
                };
            }
        }
        .await;
        if outcome.is_err() {
            driver.tear_down();
            self.abandon();
        }
        outcome.map_err(D::Error::from)
    }

    /// Writes our `state` node.
    async fn write_state(&mut self, deadline: u64, state: XenbusState) -> Result<(), XenbusError> {
        let path = format!("{}/state", self.paths.front);
        let write = self.xs.write(TxId::NONE, &path, state.as_str().as_bytes());
        bounded(&self.clock, deadline, self.last_seen, write).await
    }

    /// Reads the backend's `state` node (`None` if it does not exist, or
    /// if xenstored denies the read: see below).
    async fn backend_state(&mut self, deadline: u64) -> Result<Option<XenbusState>, XenbusError> {
        let path = format!("{}/state", self.paths.backend);
        let read = core::pin::pin!(self.xs.read_opt(TxId::NONE, &path));
        let raw = match bounded(&self.clock, deadline, self.last_seen, read).await {
            Ok(Some(raw)) => raw,
            Ok(None) => return Ok(None),
            // xenstored answers EACCES, not ENOENT, for a node whose
            // parent directory was removed (the backend's directory
            // deleted under us): the backend is gone all the same.
            Err(XenbusError::Xenstore(XsError::AccessDenied)) => return Ok(None),
            Err(error) => return Err(error),
        };
        let state = XenbusState::parse(&raw).map_err(XenbusError::BadState)?;
        self.last_seen = Some(state);
        Ok(Some(state))
    }

    /// Waits for the backend's state node to change, until `deadline`.
    async fn wait_for_change(&mut self, deadline: u64) -> Result<(), XenbusError> {
        let last_seen = self.last_seen;
        let next = self.watch.next_event();
        bounded(&self.clock, deadline, last_seen, next).await?;
        Ok(())
    }

    /// Gives up: our node goes `Closed` (the write is sent without
    /// waiting for its answer, so a backend still mapping our rings lets
    /// go of them).
    fn abandon(&mut self) {
        let path = format!("{}/state", self.paths.front);
        drop(
            self.xs
                .write(TxId::NONE, &path, XenbusState::Closed.as_str().as_bytes()),
        );
        self.state.close();
    }
}

/// The kernel's resume epochs, as the frontends use them (the shared
/// decision of issue 11: [`kernel::suspend::epoch`] counts resumes into
/// a new domain, [`kernel::suspend::resumed`] completes at the next one;
/// event channels and grants of an older epoch are void).
///
/// The one place the frontends read them: a device remembers the epoch
/// it was connected in; one from an older epoch is reset (connected
/// anew) without waiting on its stale channels, and a driver task's wait
/// selects on [`resume::resumed`] so a resume wakes it at once. xenstore
/// tells the same story a moment later (the toolstack rewrites our
/// `state` to `Initialising`, [`BackendNews::Reset`]).
#[cfg(target_os = "none")]
pub mod resume {
    /// The resume epoch now (0 at boot).
    pub fn epoch() -> u64 {
        kernel::suspend::epoch()
    }

    /// Completes at the next resume into a new domain.
    pub async fn resumed() {
        kernel::suspend::resumed().await;
    }
}

/// `now + limit`, saturating.
fn deadline_after<C: Clock>(clock: &C, limit: Duration) -> u64 {
    let limit = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
    clock.now_ns().saturating_add(limit)
}

/// `operation`, or [`XenbusError::TimedOut`] at `deadline`.
async fn bounded<T, C: Clock>(
    clock: &C,
    deadline: u64,
    last_seen: Option<XenbusState>,
    operation: impl Future<Output = Result<T, XsError>> + Unpin,
) -> Result<T, XenbusError> {
    match Timeout::new(operation, clock.sleep_until(deadline)).await {
        Ok(result) => result.map_err(XenbusError::Xenstore),
        Err(_) => Err(XenbusError::TimedOut { last_seen }),
    }
}

#[cfg(test)]
mod tests;
