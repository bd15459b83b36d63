//! DHCP (`ip=dhcp`): smoltcp's DHCPv4 client socket, driven by the
//! network's runner.
//!
//! [`Net::connect`] adds the client socket and waits (up to
//! `dhcp_timeout=` seconds from the command line, 60 by default) until
//! it has a lease; every runner turn hands the socket's news (a renewed
//! or changed lease, or a lost one) to the interface, so the address and
//! default route always follow the lease. smoltcp retries DISCOVER every
//! 10 s by default; we ask every 2 s, because the server (in the rig,
//! dom0's udhcpd on the vif) may start only after the guest is up.
//!
//! [`Net::connect`]: crate::net::Net::connect

// On the host only the tests drive the stack.
#![cfg_attr(not(target_os = "none"), allow(dead_code, unused_imports))]

use smoltcp::socket::dhcpv4;

use crate::net::stack::Stack;
use crate::net::{NetConfig, NetError};

/// How long [`crate::net::Net::connect`] waits for a lease unless
/// `dhcp_timeout=` says otherwise.
const DEFAULT_TIMEOUT_S: u64 = 60;
/// How often to send DISCOVER until an offer comes.
const DISCOVER_EVERY: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(2);

/// How long to wait for the first lease: `dhcp_timeout=` seconds, or 60.
#[cfg(target_os = "none")]
pub(crate) fn timeout(env: &crate::Env<'_>) -> Result<core::time::Duration, NetError> {
    let seconds = match env.arg("dhcp_timeout") {
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| NetError::Config("bad dhcp_timeout="))?,
        None => DEFAULT_TIMEOUT_S,
    };
    Ok(core::time::Duration::from_secs(seconds))
}

/// Waits until the stack has an address (the runner applies the lease).
#[cfg(target_os = "none")]
pub(crate) async fn wait_for_lease(
    net: &crate::net::Net,
    limit: core::time::Duration,
) -> Result<(), NetError> {
    use core::task::Poll;
    let start = kernel::time::now_ns();
    let leased = core::future::poll_fn(|cx| {
        net.shared().poll_with(|stack| {
            if stack.config.address.address().is_unspecified() {
                stack.lease_waker = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        })
    });
    crate::net::with_timeout(Some(limit), leased)
        .await
        .map_err(|e| match e {
            NetError::Timeout => NetError::Config("no DHCP lease in time"),
            other => other,
        })?;
    kernel::println!(
        "net: dhcp: leased in {} s",
        kernel::duration::Secs(kernel::time::now_ns() - start)
    );
    Ok(())
}

/// A console line (the guest's; nowhere on the host).
fn say(line: core::fmt::Arguments<'_>) {
    #[cfg(target_os = "none")]
    kernel::println!("{line}");
    #[cfg(not(target_os = "none"))]
    let _ = line;
}

impl Stack {
    /// Adds the DHCP client socket.
    pub(crate) fn dhcp_start(&mut self) {
        let mut socket = dhcpv4::Socket::new();
        let mut retry = socket.get_retry_config();
        retry.discover_timeout = DISCOVER_EVERY;
        socket.set_retry_config(retry);
        self.dhcp = Some(self.sockets.add(socket));
    }

    /// Applies what the DHCP client has learnt since the last turn.
    pub(crate) fn dhcp_poll(&mut self) {
        let Some(handle) = self.dhcp else { return };
        let news = match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(lease)) => Some((
                NetConfig {
                    address: lease.address,
                    gateway: lease.router,
                },
                lease.server.address,
            )),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        match news {
            Some((config, server)) => {
                say(format_args!(
                    "net: dhcp: lease {} gw {} from server {server}",
                    config.address,
                    match config.gateway {
                        Some(gw) => alloc::format!("{gw}"),
                        None => alloc::string::String::from("none"),
                    }
                ));
                if let Err(e) = self.apply_config(Some(config)) {
                    say(format_args!("net: dhcp: applying the lease: {e}"));
                }
            }
            // smoltcp also reports "deconfigured" once at the start,
            // before any lease: only a lease we had can be lost.
            None if self.config.address.address().is_unspecified() => {}
            None => {
                say(format_args!("net: dhcp: lease lost"));
                let _ = self.apply_config(None);
            }
        }
    }
}
