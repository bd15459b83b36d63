//! The guest's side of the stack: netfront (vif 0) as its [`Link`], and
//! [`Net::connect`] / [`Net::shutdown`], which bring the network up
//! (spawning the runner task) and down.

use alloc::format;
use alloc::string::String;
use core::task::Context;

use drivers_pv::netfront::guest::{connect, GuestNetfront, GuestVif};
use drivers_pv::xenbus_state::MacAddress;
use drivers_pv::xenstore::TxId;
use kernel::println;
use rand_core::Rng as _;
use smoltcp::iface::{Config, Interface};
use smoltcp::wire::EthernetAddress;

use super::stack::{self, Link, Shared, Stack};
use super::{clock, IpSetup, Net, NetError, NetStats, SetupSource};
use crate::rng::Rng;
use crate::Env;

/// netfront as the stack's device.
pub(crate) struct VifLink {
    vif: GuestVif,
}

impl Link for VifLink {
    type Device = GuestNetfront;

    fn device(&mut self) -> &mut GuestNetfront {
        self.vif.netfront()
    }

    fn final_check(&mut self) -> bool {
        self.vif.netfront().final_check()
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool {
        self.vif.netfront_ref().poll_fired(cx)
    }

    fn stats(&self) -> NetStats {
        self.vif.netfront_ref().stats()
    }
}

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
        let mut vif = connect(0)
            .await
            .map_err(|e| NetError::Device(format!("{e}")))?;
        let mac = vif.netfront().mac();
        let mut rng = Rng::new(&mac);
        let mut iface_config = Config::new(EthernetAddress(mac).into());
        // TCP initial sequence numbers and DHCP transaction ids.
        iface_config.random_seed = rng.next_u64();
        let iface = Interface::new(
            iface_config,
            vif.netfront(),
            clock::instant(clock::now_ns()),
        );
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
        let mut stack = Stack::new(VifLink { vif }, iface, rng);
        match setup {
            IpSetup::Static(config) => stack.apply_config(Some(config))?,
            IpSetup::Dhcp => stack.dhcp_start(),
        }
        let shared = Shared::new(stack);
        kernel::sched::spawn(stack::run(shared.clone()));
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
        let Stack { link, .. } = stack;
        link.vif
            .disconnect()
            .await
            .map_err(|e| NetError::Device(format!("{e}")))
    }
}
