//! The xenstore client in the guest: the shared page, the event channel,
//! and one connection for the whole domain.
//!
//! [`GuestPage`] implements [`XenstorePage`] over the kernel's safe
//! [`StorePage`] (the volatile accesses and fences live there) and the
//! event channel Xen bound to xenstored for us. Waiting blocks the vCPU in
//! `SCHEDOP_block` until the channel fires, with a deadline
//! ([`WAIT_TIMEOUT_NS`]): a xenstored that never answers makes the call
//! fail with [`XsError::Disconnected`] rather than hang the domain.
//!
//! [`connect`] sets up the connection once from the boot information (a
//! dom0 booted without a toolstack has no xenstore); then [`xenstore`]
//! lends it out as a [`XenstoreGuard`] and [`with_xenstore`] runs a
//! closure on it. Every operation of [`XenstoreBlocking`] blocks until
//! its reply is in.
//!
//! Tasks wait for watch events with [`next_watch_event`]: events are
//! queued per token by the client, and a waiting task pumps the ring,
//! takes its own token's event if one is there, and otherwise sleeps on
//! the event channel. The kernel's channel remembers one waker, so the
//! rule that keeps several waiters from losing wake-ups is: whoever pumps
//! bytes off the ring (a waiting task, or any blocking call through a
//! [`XenstoreGuard`]) wakes every waiter when it lets go of the
//! connection, and a waiter that finishes or is dropped wakes the others
//! so one of them takes over the channel.
//!
//! Single vCPU, cooperative tasks: the connection is a spin lock that is
//! never waited for. Asking for it while it is held (holding a guard
//! across an `.await`, or asking again inside [`with_xenstore`]) fails
//! with [`XsError::Busy`] instead of spinning forever.

use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;
use core::future::Future;
use core::ops::{Deref, DerefMut};
use core::pin::{pin, Pin};
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use kernel::boot_info::BootInfo;
use kernel::events::{self, EventChannel};
use kernel::store_page::StorePage;
use kernel::{sched, time};
use pv_arch::Errno;
use spin::{Mutex, MutexGuard, Once};

use super::blocking::XenstoreBlocking;
use super::client::WatchEvent;
use super::error::XsError;
use super::ring::{RingTransport, XenstorePage};

/// How long one wait for xenstored may take before the connection is
/// declared dead: 20 s, generous for a dom0 under software emulation.
pub const WAIT_TIMEOUT_NS: u64 = 20 * time::NS_PER_SEC;

/// The shared xenstore page and its event channel, for [`RingTransport`].
pub struct GuestPage {
    page: StorePage,
    channel: EventChannel,
    /// Bytes were read off the response ring since the last
    /// [`GuestPage::take_activity`].
    activity: bool,
    /// Waits that ran into [`WAIT_TIMEOUT_NS`].
    timeouts: u64,
    /// Byte copies the kernel refused as out of the ring (never expected:
    /// the transport keeps them in bounds).
    refused_copies: Cell<u64>,
}

impl GuestPage {
    /// Wraps the mapped page and the channel to xenstored.
    pub fn new(page: StorePage, channel: EventChannel) -> GuestPage {
        GuestPage {
            page,
            channel,
            activity: false,
            timeouts: 0,
            refused_copies: Cell::new(0),
        }
    }

    /// The event channel to xenstored.
    pub fn channel(&self) -> &EventChannel {
        &self.channel
    }

    /// The mapped page (for its feature, connection and error words).
    pub fn store_page(&self) -> &StorePage {
        &self.page
    }

    /// Whether bytes arrived since the last call (and clears that).
    pub fn take_activity(&mut self) -> bool {
        core::mem::take(&mut self.activity)
    }

    /// Waits that timed out so far.
    pub fn timeouts(&self) -> u64 {
        self.timeouts
    }

    /// Byte copies the kernel refused as out of bounds (a bug if not 0).
    pub fn refused_copies(&self) -> u64 {
        self.refused_copies.get()
    }
}

impl XenstorePage for GuestPage {
    fn req_cons(&self) -> u32 {
        self.page.req_cons()
    }

    fn req_prod(&self) -> u32 {
        self.page.req_prod()
    }

    fn set_req_prod(&mut self, value: u32) {
        self.page.set_req_prod(value);
    }

    fn rsp_cons(&self) -> u32 {
        self.page.rsp_cons()
    }

    fn rsp_prod(&self) -> u32 {
        self.page.rsp_prod()
    }

    fn set_rsp_cons(&mut self, value: u32) {
        // The transport publishes `rsp_cons` only after reading bytes.
        self.activity = true;
        self.page.set_rsp_cons(value);
    }

    fn write_req(&mut self, offset: usize, bytes: &[u8]) {
        if self.page.write_req(offset, bytes).is_err() {
            self.refused_copies.set(self.refused_copies.get() + 1);
        }
    }

    fn read_rsp(&self, offset: usize, buf: &mut [u8]) {
        if self.page.read_rsp(offset, buf).is_err() {
            self.refused_copies.set(self.refused_copies.get() + 1);
            buf.fill(0);
        }
    }

    fn notify(&mut self) {
        // The port is Xen's binding to xenstored and cannot be closed
        // under us; a failed send would only delay xenstored, and the
        // wait deadline bounds that.
        let _ = self.channel.notify();
    }

    fn wait(&mut self) -> Result<(), XsError> {
        let deadline = time::now_ns().saturating_add(WAIT_TIMEOUT_NS);
        loop {
            if self.channel.take_fired() {
                return Ok(());
            }
            if time::now_ns() >= deadline {
                self.timeouts += 1;
                return Err(XsError::Disconnected);
            }
            // Whatever else wakes us (another port, the executor's
            // timer), the deadline does.
            if time::set_deadline(deadline).is_err() {
                let _ = pv_arch::hypercall::sched::sched_yield();
            } else {
                events::block();
            }
        }
    }
}

/// The ring transport over the guest's page.
pub type GuestTransport = RingTransport<GuestPage>;

/// The domain's xenstore connection.
pub type GuestXenstore = XenstoreBlocking<GuestTransport>;

/// Why [`connect`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// The domain has no xenstore (dom0 booted without a toolstack).
    NoStore,
    /// Adopting the event channel failed.
    Channel(Errno),
    /// Mapping the page failed.
    Map(Errno),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::NoStore => f.write_str("this domain has no xenstore ring"),
            ConnectError::Channel(errno) => write!(f, "cannot adopt the store channel: {errno}"),
            ConnectError::Map(errno) => write!(f, "cannot map the store page: {errno}"),
        }
    }
}

/// The connection, once made.
static XENSTORE: Once<Mutex<GuestXenstore>> = Once::new();

/// Tasks waiting in [`next_watch_event`].
static WAITERS: Mutex<Vec<Waker>> = Mutex::new(Vec::new());

/// Someone found the connection held and is waiting for its release.
static CONTENDED: AtomicBool = AtomicBool::new(false);

/// Connects to xenstored through the ring `boot` names. Idempotent: once
/// connected, later calls return `Ok` at once. A failed attempt may be
/// retried.
pub fn connect(boot: &BootInfo) -> Result<(), ConnectError> {
    let store = boot.store.ok_or(ConnectError::NoStore)?;
    XENSTORE.try_call_once(|| {
        let channel = EventChannel::adopt(store.evtchn).map_err(ConnectError::Channel)?;
        let page = StorePage::map(boot).map_err(|errno| match errno {
            Errno::ENODEV => ConnectError::NoStore,
            errno => ConnectError::Map(errno),
        })?;
        let transport = RingTransport::new(GuestPage::new(page, channel));
        Ok(Mutex::new(XenstoreBlocking::new(transport)))
    })?;
    Ok(())
}

/// Whether [`connect`] has succeeded.
pub fn is_connected() -> bool {
    XENSTORE.is_completed()
}

/// The connection, lent out until the guard is dropped. Fails with
/// [`XsError::Disconnected`] before [`connect`], and with
/// [`XsError::Busy`] while another guard is alive.
pub fn xenstore() -> Result<XenstoreGuard, XsError> {
    let connection = XENSTORE.get().ok_or(XsError::Disconnected)?;
    match connection.try_lock() {
        Some(inner) => Ok(XenstoreGuard { inner }),
        None => {
            CONTENDED.store(true, Ordering::SeqCst);
            Err(XsError::Busy)
        }
    }
}

/// Runs `body` on the connection (see [`xenstore`] for the errors).
pub fn with_xenstore<R>(
    body: impl FnOnce(&mut GuestXenstore) -> Result<R, XsError>,
) -> Result<R, XsError> {
    let mut guard = xenstore()?;
    body(&mut guard)
}

/// Exclusive use of the connection; wakes the watch waiters on drop if
/// bytes arrived meanwhile (they may hold events for them).
pub struct XenstoreGuard {
    inner: MutexGuard<'static, GuestXenstore>,
}

impl Deref for XenstoreGuard {
    type Target = GuestXenstore;

    fn deref(&self) -> &GuestXenstore {
        &self.inner
    }
}

impl DerefMut for XenstoreGuard {
    fn deref_mut(&mut self) -> &mut GuestXenstore {
        &mut self.inner
    }
}

impl Drop for XenstoreGuard {
    fn drop(&mut self) {
        let activity = self.inner.transport().page().take_activity();
        if activity | CONTENDED.swap(false, Ordering::SeqCst) {
            wake_waiters();
        }
    }
}

/// Wakes every task in [`next_watch_event`] (each re-checks and
/// re-registers).
fn wake_waiters() {
    let waiters = core::mem::take(&mut *WAITERS.lock());
    for waker in waiters {
        waker.wake();
    }
}

fn register_waiter(waker: &Waker) {
    let mut waiters = WAITERS.lock();
    if !waiters.iter().any(|known| known.will_wake(waker)) {
        waiters.push(waker.clone());
    }
}

/// Completes with the next watch event for `token` (a watch with that
/// token must be registered, else [`XsError::BadArgument`]).
pub fn next_watch_event(token: &str) -> NextWatchEvent<'_> {
    NextWatchEvent {
        token,
        waiting: false,
    }
}

/// Like [`next_watch_event`], giving up with `Ok(None)` after `limit`.
pub async fn next_watch_event_within(
    token: &str,
    limit: Duration,
) -> Result<Option<WatchEvent>, XsError> {
    let mut event = pin!(next_watch_event(token));
    let mut timer = pin!(sched::sleep(limit));
    core::future::poll_fn(|cx| {
        if let Poll::Ready(result) = event.as_mut().poll(cx) {
            return Poll::Ready(result.map(Some));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(None));
        }
        Poll::Pending
    })
    .await
}

/// The future of [`next_watch_event`].
pub struct NextWatchEvent<'a> {
    token: &'a str,
    /// Registered among the waiters (and perhaps the channel's waker).
    waiting: bool,
}

impl NextWatchEvent<'_> {
    fn finish(&mut self, result: Result<WatchEvent, XsError>) -> Poll<Result<WatchEvent, XsError>> {
        if core::mem::take(&mut self.waiting) {
            // We may have been the task the channel wakes: hand that on.
            wake_waiters();
        }
        Poll::Ready(result)
    }
}

impl Future for NextWatchEvent<'_> {
    type Output = Result<WatchEvent, XsError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut xs = match xenstore() {
            Ok(xs) => xs,
            Err(XsError::Busy) => {
                // The holder's guard wakes us when it lets go.
                register_waiter(cx.waker());
                self.waiting = true;
                return Poll::Pending;
            }
            Err(error) => return self.finish(Err(error)),
        };
        loop {
            match xs.poll_watch(self.token) {
                Ok(Some(event)) => return self.finish(Ok(event)),
                Err(error) => return self.finish(Err(error)),
                Ok(None) => {}
            }
            if !xs.client().is_watching(self.token) {
                return self.finish(Err(XsError::BadArgument));
            }
            register_waiter(cx.waker());
            self.waiting = true;
            // Upcalls run only while the vCPU idles, so nothing can fire
            // between the pump above and this check.
            let fired = pin!(xs.transport().page().channel().wait())
                .poll(cx)
                .is_ready();
            if !fired {
                return Poll::Pending;
            }
            // It fired since the last look: pump again.
        }
    }
}

impl Drop for NextWatchEvent<'_> {
    fn drop(&mut self) {
        if self.waiting {
            // We may own the channel's waker; let another waiter take it.
            wake_waiters();
        }
    }
}
