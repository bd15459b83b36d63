//! The guest's side of the stack: netfront (vif 0) as its [`Link`], and
//! [`Net::connect`] / [`Net::shutdown`], which bring the network up
//! (spawning the runner task and the vif's keeper task) and down.
//!
//! The keeper ([`keep`]) holds the vif's xenbus side
//! ([`VifControl`]) while the stack holds its device, and keeps the
//! link up as devices come and go (issue 11):
//! - the backend closing (`xl network-detach`, netback unloaded): the
//!   device is taken out from under the interface (link down, `net:
//!   vif/N lost` on the console), our node goes `Closed` so the detach
//!   completes, and the device is dropped (its grants ended; pages
//!   netback still maps are quarantined by the kernel, never freed);
//! - while the link is down, the keeper waits (watches, no polling) on
//!   `device/vif` ([`Hotplug`]) and on the old backend's state: when the
//!   same index is made again or reset (`xl network-attach`, which
//!   reuses the lowest free index), or its backend restarted, it
//!   connects it; if another index appears while ours is gone, it adopts
//!   that one (the policy: the stack has one vif, and takes the first
//!   that comes back);
//! - a reset (the toolstack rewrote our node to `Initialising` after a
//!   resume, a restarted backend, or a device from an older resume
//!   epoch): link down, the old device dropped, the handshake made anew;
//! - once connected again, the new device goes under the interface (`net:
//!   vif/N regained`): the MAC (the one the vif was first connected
//!   with), addresses, routes and every socket are kept; TCP retransmits
//!   what was sent meanwhile.
//!
//! The runner never dies with the link: while it is down it sends into
//! a sink and sleeps until a socket call or a timer (see
//! [`super::link`]).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::task::Context;

use drivers_pv::hotplug::{Change, DeviceKind, Hotplug};
use drivers_pv::netfront::guest::{connect, ready, GuestNetfront, VifControl};
use drivers_pv::xenbus_frontend::{resume, BackendNews};
use drivers_pv::xenbus_state::MacAddress;
use drivers_pv::xenstore::TxId;
use kernel::println;
use rand_core::Rng as _;
use smoltcp::iface::{Config, Interface};
use smoltcp::wire::EthernetAddress;
use spin::Mutex;

use super::link::Swappable;
use super::stack::{self, Link, Shared, Stack};
use super::{clock, IpSetup, Net, NetError, NetStats, SetupSource};
use crate::rng::Rng;
use crate::task::{select, Either, Signal};
use crate::Env;

/// netfront as the stack's device (swapped out while the vif is lost).
pub(crate) struct VifLink {
    device: Swappable<GuestNetfront>,
    /// The resume epoch the device was made in: a device of an older one
    /// has void channels, whose waits complete at once; the runner must
    /// not spin on them until the keeper swaps the device.
    epoch: u64,
    /// The last device's counters, while the link is down.
    last_stats: NetStats,
}

impl VifLink {
    fn new(netfront: GuestNetfront, epoch: u64) -> VifLink {
        VifLink {
            device: Swappable::new(netfront),
            epoch,
            last_stats: NetStats::default(),
        }
    }

    /// Takes the device out: link down.
    fn take(&mut self) -> Option<GuestNetfront> {
        let device = self.device.take()?;
        self.last_stats = device.stats();
        Some(device)
    }

    /// Puts a new device in: link up.
    fn put(&mut self, netfront: GuestNetfront, epoch: u64) {
        self.device.put(netfront);
        self.epoch = epoch;
    }
}

impl VifLink {
    /// Whether queue `queue`'s channels fired (see
    /// `super::queues`); `None` once there is no device whose queues
    /// have tasks of their own (the link went down, or a device came
    /// back unbound): the queue task ends.
    pub(crate) fn poll_queue_fired(&mut self, queue: usize, cx: &mut Context<'_>) -> Option<bool> {
        if self.epoch != resume::epoch() {
            return None;
        }
        let device = self.device.get().filter(|d| d.has_queue_tasks())?;
        Some(device.poll_queue_fired(queue, cx))
    }

    /// The ring work of queue `queue` (see `super::queues`).
    pub(crate) fn service_queue(&mut self, queue: usize) -> usize {
        self.device.get_mut().map_or(0, |d| d.service_queue(queue))
    }
}

impl Link for VifLink {
    type Device = Swappable<GuestNetfront>;

    fn device(&mut self) -> &mut Swappable<GuestNetfront> {
        &mut self.device
    }

    fn final_check(&mut self) -> bool {
        self.device.get_mut().is_some_and(|d| d.final_check())
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.epoch != resume::epoch() {
            return false;
        }
        self.device.get().is_some_and(|d| d.poll_fired(cx))
    }

    fn stats(&self) -> NetStats {
        self.device.get().map_or(self.last_stats, |d| d.stats())
    }

    fn is_up(&self) -> bool {
        self.device.is_up()
    }
}

/// What [`Net::shutdown`] and the keeper share.
pub(crate) struct Keeper {
    /// Set by the shutdown: close the vif and end.
    stop: Signal,
    /// The device the shutdown took out of the stack, for the keeper to
    /// drop after our node is `Closed`.
    device: Mutex<Option<GuestNetfront>>,
    /// Set by the keeper once the vif is closed, with the outcome.
    closed: Signal,
    outcome: Mutex<Option<Result<(), String>>>,
}

/// The device out of the stack (`None` if the stack was shut down).
fn link_down(shared: &Shared) -> Option<GuestNetfront> {
    shared.with(|stack| Ok(stack.link.take())).ok().flatten()
}

/// A new device into the stack, and a turn of the runner for it; says
/// how often the link went down and how many frames it dropped while
/// down (`None` if the stack was shut down).
fn link_up(shared: &Shared, netfront: GuestNetfront, epoch: u64) -> Option<(u64, u64)> {
    shared
        .with(|stack| {
            stack.link.put(netfront, epoch);
            stack.kick();
            Ok((stack.link.device.downs(), stack.link.device.dropped()))
        })
        .ok()
}

/// A (re)connected vif: its device under the interface, its control
/// kept, one line on the console; false if the stack was shut down
/// meanwhile.
fn adopt(
    shared: &Shared,
    control: &mut Option<VifControl>,
    (netfront, vif): (GuestNetfront, VifControl),
    mac: MacAddress,
) -> bool {
    let index = vif.index();
    let epoch = vif.epoch();
    *control = Some(vif);
    let Some((downs, dropped)) = link_up(shared, netfront, epoch) else {
        return false;
    };
    println!(
        "net: vif/{index} regained: link up, mac {mac} (down {downs} times, {dropped} frames dropped meanwhile)"
    );
    true
}

/// Waits a second (after a xenstore failure) or until a resume or the
/// shutdown; true if the keeper must stop.
async fn pause(keeper: &Keeper) -> bool {
    let wait = select(
        kernel::sched::sleep(core::time::Duration::from_secs(1)),
        resume::resumed(),
    );
    matches!(select(keeper.stop.wait(), wait).await, Either::Left(()))
}

/// The keeper task (see the module docs). Ends when the stack is shut
/// down, after closing the vif.
async fn keep(shared: Arc<Shared>, keeper: Arc<Keeper>, control: VifControl) {
    let mut index = control.index();
    let mac = control.mac();
    let mut control = Some(control);
    let mut up = true;
    let mut hotplug: Option<Hotplug<'static, _>> = None;
    // A xenstore failure was reported (once, until things work again).
    let mut troubled = false;
    loop {
        if keeper.stop.is_set() {
            break;
        }
        if up {
            let Some(vif) = control.as_mut() else {
                up = false;
                continue;
            };
            let news = if vif.epoch() != resume::epoch() {
                Some(Ok(BackendNews::Reset))
            } else {
                match select(keeper.stop.wait(), select(vif.changed(), resume::resumed())).await {
                    Either::Left(()) => break,
                    // A resume breaks the old watches: a reset. Otherwise
                    // look again in a while (xenstore may come back).
                    Either::Right(Either::Left(Err(_))) if vif.epoch() != resume::epoch() => {
                        Some(Ok(BackendNews::Reset))
                    }
                    Either::Right(Either::Left(Err(error))) => {
                        if !troubled {
                            println!("net: vif/{index}: its xenstore watch failed ({error}); retrying each second");
                            troubled = true;
                        }
                        if pause(&keeper).await {
                            break;
                        }
                        Some(vif.check().await)
                    }
                    Either::Right(Either::Left(Ok(()))) => None,
                    Either::Right(Either::Right(())) => Some(Ok(BackendNews::Reset)),
                }
            };
            let news = match news {
                Some(news) => news,
                None => vif.check().await,
            };
            match news {
                Ok(BackendNews::Unchanged) => {}
                Ok(BackendNews::Closing) => {
                    let old = link_down(&shared);
                    println!("net: vif/{index} lost: its backend is closing (link down)");
                    if let Err(error) = vif.detach().await {
                        println!("net: vif/{index}: closing our side: {error}");
                    }
                    drop(old);
                    println!("net: vif/{index} closed, grants {}", kernel::grant::stats());
                    up = false;
                }
                Ok(BackendNews::Reset) => {
                    let old = link_down(&shared);
                    println!(
                        "net: vif/{index} reset (a resume or a restarted backend): reconnecting"
                    );
                    drop(old);
                    let Some(vif) = control.take() else {
                        continue;
                    };
                    match vif.reconnect().await {
                        Ok(parts) => {
                            if !adopt(&shared, &mut control, parts, mac) {
                                break;
                            }
                        }
                        Err(error) => {
                            println!("net: vif/{index}: reconnecting failed: {error}");
                            up = false;
                        }
                    }
                }
                Err(error) => println!("net: vif/{index}: reading its state: {error}"),
            }
            continue;
        }

        // Down: wait until the vif (or another) can be connected.
        if hotplug.is_none() {
            match drivers_pv::xenstore::guest::xenstore() {
                Ok(xs) => match Hotplug::new(xs, &[DeviceKind::Vif]).await {
                    Ok(watcher) => hotplug = Some(watcher),
                    Err(error) => {
                        if !troubled {
                            println!("net: vif/{index}: cannot watch device/vif ({error}); retrying each second");
                            troubled = true;
                        }
                        if pause(&keeper).await {
                            break;
                        }
                        continue;
                    }
                },
                Err(_) => {
                    if pause(&keeper).await {
                        break;
                    }
                    continue;
                }
            }
        }
        if ready(index).await {
            let connected = match control.take() {
                Some(vif) if vif.index() == index => vif.reconnect().await,
                _ => connect(index).await.map(|vif| vif.into_parts()),
            };
            match connected {
                Ok(parts) => {
                    if !adopt(&shared, &mut control, parts, mac) {
                        break;
                    }
                    up = true;
                    troubled = false;
                    hotplug = None;
                }
                Err(error) => println!("net: vif/{index}: connecting failed: {error}; waiting"),
            }
            continue;
        }
        let Some(watcher) = hotplug.as_mut() else {
            continue;
        };
        let backend_changed = async {
            match control.as_mut() {
                Some(vif) => {
                    if vif.changed().await.is_err() {
                        core::future::pending::<()>().await;
                    }
                }
                None => core::future::pending::<()>().await,
            }
        };
        match select(
            keeper.stop.wait(),
            select(watcher.next(), select(backend_changed, resume::resumed())),
        )
        .await
        {
            Either::Left(()) => break,
            Either::Right(Either::Left(Ok(Change::Appeared(id)))) => {
                println!("net: {id} appeared");
                if id.index != index && !ready(index).await && ready(id.index).await {
                    println!("net: vif/{index} is gone: adopting vif/{}", id.index);
                    index = id.index;
                }
            }
            Either::Right(Either::Left(Ok(Change::Vanished(id)))) => {
                println!("net: {id} vanished");
            }
            Either::Right(Either::Left(Err(error))) => {
                if !troubled {
                    println!("net: watching device/vif failed ({error}); retrying each second");
                    troubled = true;
                }
                hotplug = None;
                if pause(&keeper).await {
                    break;
                }
            }
            Either::Right(Either::Right(_)) => {}
        }
    }
    // The shutdown: close the vif the way netback expects, then drop
    // the device.
    let outcome = match control {
        Some(vif) if up => vif.close().await.map_err(|e| format!("{e}")),
        _ => Ok(()),
    };
    drop(keeper.device.lock().take());
    *keeper.outcome.lock() = Some(outcome);
    keeper.closed.set();
}

/// The keeper of the one stack's vif (for [`Net::shutdown`]).
static KEEPER: Mutex<Option<Arc<Keeper>>> = Mutex::new(None);

/// The vif backend's `ip` key (xl's `vif = ['ip=…']`), if any.
async fn xenstore_ip() -> Option<String> {
    let xs = drivers_pv::xenstore::guest::xenstore().ok()?;
    let backend = xs
        .read_string(TxId::NONE, "device/vif/0/backend")
        .await
        .ok()?;
    xs.read_string(TxId::NONE, &format!("{backend}/ip"))
        .await
        .ok()
}

impl Net {
    /// Connects xenstore (if needed) and vif 0, configured from the
    /// command line or xenstore (see [`crate::netconfig`]), spawns the
    /// runner task, and with DHCP waits for a lease.
    pub async fn connect(env: &Env<'_>) -> Result<Net, NetError> {
        if !drivers_pv::xenstore::guest::is_connected() {
            drivers_pv::xenstore::guest::connect(env.boot())
                .map_err(|e| NetError::Device(format!("xenstore: {e}")))?;
        }
        // Only asked for when the command line has no `ip=`.
        let xenstore_ip = match env.arg("ip") {
            Some(_) => None,
            None => xenstore_ip().await,
        };
        let (setup, source) = IpSetup::from_sources(env.cmdline(), || xenstore_ip)?;
        let dhcp_timeout = crate::dhcp::timeout(env)?;
        let vif = connect(0)
            .await
            .map_err(|e| NetError::Device(format!("{e}")))?;
        let (mut netfront, control) = vif.into_parts();
        // With secondary vCPUs up, each queue is served on a vCPU of its
        // own (see `super::queues`); otherwise exactly as on one vCPU.
        let placement = kernel::smp::secondaries_started().then(|| {
            let placement = netfront.bind_queues_to_vcpus(kernel::smp::vcpus_started());
            let line: alloc::vec::Vec<String> = placement
                .iter()
                .enumerate()
                .map(|(queue, vcpu)| format!("queue {queue} on vCPU {vcpu}"))
                .collect();
            println!(
                "net: vif/0 {} (channels bound, by Xen's status; one task pinned to each)",
                line.join(", ")
            );
            placement
        });
        let mac = netfront.mac();
        let mut rng = Rng::new(&mac);
        let mut iface_config = Config::new(EthernetAddress(mac).into());
        // TCP initial sequence numbers and DHCP transaction ids.
        iface_config.random_seed = rng.next_u64();
        let iface = Interface::new(iface_config, &mut netfront, clock::instant(clock::now_ns()));
        println!(
            "net: setup {} (from the {}), random seed from {}",
            match setup {
                IpSetup::Static(_) => "static",
                IpSetup::Dhcp => "dhcp",
            },
            match source {
                SetupSource::Cmdline => "command line",
                SetupSource::Xenstore => "vif's xenstore ip",
            },
            rng.seed_source()
        );
        let mut stack = Stack::new(VifLink::new(netfront, control.epoch()), iface, rng);
        match setup {
            IpSetup::Static(config) => stack.apply_config(Some(config))?,
            IpSetup::Dhcp => stack.dhcp_start(),
        }
        let shared = Shared::new(stack);
        kernel::sched::spawn(stack::run(shared.clone()));
        if let Some(placement) = placement {
            super::queues::start(&shared, &placement);
        }
        let keeper = Arc::new(Keeper {
            stop: Signal::new(),
            device: Mutex::new(None),
            closed: Signal::new(),
            outcome: Mutex::new(None),
        });
        kernel::sched::spawn(keep(shared.clone(), keeper.clone(), control));
        *KEEPER.lock() = Some(keeper);
        let net = Net::from_shared(shared, MacAddress(mac));
        // On a shutdown request the vif is closed (Closing → Closed) if
        // the app has not shut the network down itself.
        let closing = net.clone();
        crate::lifecycle::register_closer("vif/0", move || async move {
            match closing.shutdown().await {
                Ok(()) | Err(NetError::Down) => Ok(()),
                Err(error) => Err(kernel::AppError::new(format_args!("{error}"))),
            }
        });
        if setup == IpSetup::Dhcp {
            crate::dhcp::wait_for_lease(&net, dhcp_timeout).await?;
        }
        Ok(net)
    }

    /// Stops the runner, drops every socket (each later call on one gives
    /// [`NetError::Down`]), and disconnects the vif from its back end.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        let stack = self.shared().take().ok_or(NetError::Down)?;
        super::queues::report();
        let Stack { mut link, .. } = stack;
        let Some(keeper) = KEEPER.lock().take() else {
            return Ok(());
        };
        *keeper.device.lock() = link.take();
        keeper.stop.set();
        keeper.closed.wait().await;
        let outcome = keeper.outcome.lock().take().unwrap_or(Ok(()));
        outcome.map_err(NetError::Device)
    }
}
