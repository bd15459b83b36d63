//! The xenstore client in the guest: the shared page, the event channel,
//! and one connection for the whole domain, shared by every task.
//!
//! [`GuestPage`] implements [`XenstorePage`] over the kernel's safe
//! [`StorePage`] (the volatile accesses and fences live there) and
//! notifies xenstored on the event channel Xen bound for us.
//!
//! [`connect`] sets up the connection once from the boot information (a
//! dom0 booted without a toolstack has no xenstore) and spawns its pump
//! task: each time the channel fires, the task moves bytes both ways and
//! wakes exactly the tasks whose replies or watch events came
//! ([`SharedXenstore::pump`]). [`xenstore`] then lends the connection to
//! any number of tasks at once; every operation is a future
//! (`xenstore()?.read(TxId::NONE, path).await`), and waiting never blocks
//! the vCPU. Callers bound their waits with [`within`] (or
//! `kernel::sched::timeout`); a top-level synchronous caller (an app's
//! entry, a suite check) wraps the whole async call in
//! `kernel::sched::block_on`, nothing below it does.

use core::fmt;
use core::future::Future;
use core::time::Duration;

use kernel::boot_info::BootInfo;
use kernel::events::EventChannel;
use kernel::sched;
use kernel::store_page::StorePage;
use pv_arch::abi::event_channel::EvtchnPort;
use pv_arch::Errno;
use spin::Once;

use super::error::XsError;
use super::ring::{RingTransport, XenstorePage};
use super::shared::SharedXenstore;

/// How long [`within`]'s callers usually give xenstored: 20 s, generous
/// for a dom0 under software emulation.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// The shared xenstore page, for [`RingTransport`].
pub struct GuestPage {
    page: StorePage,
    /// The port Xen bound to xenstored (owned by [`Connection`]).
    port: EvtchnPort,
    /// Byte copies the kernel refused as out of the ring (never expected:
    /// the transport keeps them in bounds).
    refused_copies: u64,
    /// Notifications that failed (never expected: the port is Xen's
    /// binding to xenstored and cannot be closed under us).
    failed_notifies: u64,
}

impl GuestPage {
    /// Wraps the mapped page; `port` is the channel to xenstored.
    pub fn new(page: StorePage, port: EvtchnPort) -> GuestPage {
        GuestPage {
            page,
            port,
            refused_copies: 0,
            failed_notifies: 0,
        }
    }

    /// Points notifications at `port` (the store channel of the domain
    /// we resumed in).
    pub fn set_port(&mut self, port: EvtchnPort) {
        self.port = port;
    }

    /// The mapped page (for its feature, connection and error words).
    pub fn store_page(&self) -> &StorePage {
        &self.page
    }

    /// Byte copies the kernel refused as out of bounds (a bug if not 0).
    pub fn refused_copies(&self) -> u64 {
        self.refused_copies
    }

    /// Notifications Xen refused (a bug if not 0).
    pub fn failed_notifies(&self) -> u64 {
        self.failed_notifies
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
        self.page.set_rsp_cons(value);
    }

    fn write_req(&mut self, offset: usize, bytes: &[u8]) {
        if self.page.write_req(offset, bytes).is_err() {
            self.refused_copies += 1;
        }
    }

    fn read_rsp(&self, offset: usize, buf: &mut [u8]) {
        if self.page.read_rsp(offset, buf).is_err() {
            buf.fill(0);
        }
    }

    fn notify(&mut self) {
        if pv_arch::hypercall::event_channel::evtchn_send(self.port).is_err() {
            self.failed_notifies += 1;
        }
    }
}

/// The domain's xenstore connection.
pub type GuestXenstore = SharedXenstore<GuestPage>;

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

/// The connection and the channel its pump task waits on (replaced by
/// [`resume`] after a resume in a new domain).
struct Connection {
    channel: spin::Mutex<EventChannel>,
    xenstore: GuestXenstore,
}

/// The connection, once made.
static CONNECTION: Once<Connection> = Once::new();

/// Connects to xenstored through the ring `boot` names and spawns the
/// connection's pump task. Idempotent: once connected, later calls return
/// `Ok` at once. A failed attempt may be retried.
pub fn connect(boot: &BootInfo) -> Result<(), ConnectError> {
    let store = boot.store.ok_or(ConnectError::NoStore)?;
    let mut made = false;
    CONNECTION.try_call_once(|| {
        let channel = EventChannel::adopt(store.evtchn).map_err(ConnectError::Channel)?;
        let page = StorePage::map(boot).map_err(|errno| match errno {
            Errno::ENODEV => ConnectError::NoStore,
            errno => ConnectError::Map(errno),
        })?;
        let transport = RingTransport::new(GuestPage::new(page, channel.port()));
        made = true;
        Ok(Connection {
            channel: spin::Mutex::new(channel),
            xenstore: SharedXenstore::new(transport),
        })
    })?;
    if made {
        if let Some(connection) = CONNECTION.get() {
            sched::spawn(pump(connection));
        }
    }
    Ok(())
}

/// The pump task: moves bytes whenever xenstored signals, waking the
/// tasks whose replies and events came. Ends when the connection breaks
/// (every waiter has been woken to fail by then).
async fn pump(connection: &'static Connection) {
    loop {
        if connection.channel.lock().is_stale() {
            // Resumed in a new domain and nobody has resumed the
            // connection yet (the suspend sequence does it at once; this
            // is for a suspend made without it).
            if let Err(why) = resume() {
                kernel::println!("xenstore: resuming the connection: {why}");
                return;
            }
        }
        match connection.xenstore.pump() {
            Ok(false) => wait_for_channel(connection).await,
            // Stopped with more waiting: let others run, then go on.
            Ok(true) => sched::yield_now().await,
            Err(_) => return,
        }
    }
}

/// Completes when the connection's channel fires (or goes stale at a
/// resume). Looks the channel up at each poll, since [`resume`] may
/// replace it while the pump waits.
fn wait_for_channel(connection: &'static Connection) -> impl Future<Output = ()> {
    core::future::poll_fn(move |cx| {
        let channel = connection.channel.lock();
        let mut wait = channel.wait();
        core::pin::Pin::new(&mut wait).poll(cx)
    })
}

/// Resumes the connection after a resume in a new domain: adopts the
/// store event channel the new domain has (the kernel recorded it; the
/// ring page is the same one), fails the requests in flight with
/// [`XsError::Resumed`] and registers every watch again, so each fires
/// once and its owner looks again. Returns how many watches were
/// registered again; `Ok(0)` when there is nothing to do (not connected,
/// or already resumed). Says what it found on the console.
pub fn resume() -> Result<usize, ConnectError> {
    let Some(connection) = CONNECTION.get() else {
        return Ok(0);
    };
    {
        let mut channel = connection.channel.lock();
        if !channel.is_stale() {
            return Ok(0);
        }
        let port = connection
            .xenstore
            .with_page(|page| page.store_page().evtchn());
        // The old channel is stale: replacing it makes no hypercall.
        *channel = EventChannel::adopt(port).map_err(ConnectError::Channel)?;
        connection.xenstore.with_page(|page| page.set_port(port));
    }
    let (watches, [req_cons, req_prod, rsp_cons, rsp_prod]) = connection.xenstore.resumed();
    kernel::println!(
        "xenstore: resumed on evtchn {}: ring req {req_cons}/{req_prod} rsp {rsp_cons}/{rsp_prod} (unread replies dropped), {watches} watches registered again{}",
        connection.channel.lock().port(),
        match connection.xenstore.broken() {
            Some(why) => alloc::format!("; broken: {why}"),
            None => alloc::string::String::new(),
        }
    );
    Ok(watches)
}

/// Whether [`connect`] has succeeded.
pub fn is_connected() -> bool {
    CONNECTION.is_completed()
}

/// The connection, for any number of tasks at once; fails with
/// [`XsError::Disconnected`] before [`connect`].
pub fn xenstore() -> Result<&'static GuestXenstore, XsError> {
    CONNECTION
        .get()
        .map(|connection| &connection.xenstore)
        .ok_or(XsError::Disconnected)
}

/// How many times the store channel fired (diagnostics).
pub fn channel_fires() -> u64 {
    CONNECTION
        .get()
        .map_or(0, |connection| connection.channel.lock().count())
}

/// Awaits `operation`, failing with [`XsError::TimedOut`] once `limit`
/// passes (the request is then abandoned; its reply is dropped).
pub async fn within<T>(
    limit: Duration,
    operation: impl Future<Output = Result<T, XsError>>,
) -> Result<T, XsError> {
    let operation = core::pin::pin!(operation);
    match sched::timeout(limit, operation).await {
        Ok(result) => result,
        Err(sched::TimedOut) => Err(XsError::TimedOut),
    }
}
