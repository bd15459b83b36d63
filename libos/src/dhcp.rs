//! DHCP (`ip=dhcp`): smoltcp's DHCPv4 client socket, driven by [`Net`].
//!
//! [`Net::connect`] adds the client socket and waits (up to `dhcp_timeout=`
//! seconds from the command line, 60 by default) until it has a lease;
//! every later [`Net::poll`] hands the socket's news (a renewed or changed
//! lease, or a lost one) to the interface, so the address and default
//! route always follow the lease. smoltcp retries DISCOVER every 10 s by
//! default; we ask every 2 s, because the server (in the rig, dom0's
//! udhcpd on the vif) may start only after the guest is up.
//!
//! [`Net`]: crate::net::Net
//! [`Net::connect`]: crate::net::Net::connect
//! [`Net::poll`]: crate::net::Net::poll

#[cfg(target_os = "none")]
mod guest {
    use kernel::{println, time};
    use smoltcp::socket::dhcpv4;
    use smoltcp::time::Duration;

    use crate::net::{Net, NetConfig, NetError};
    use crate::Env;

    /// How long [`Net::connect`] waits for a lease unless `dhcp_timeout=`
    /// says otherwise.
    const DEFAULT_TIMEOUT_S: u64 = 60;
    /// How often to send DISCOVER until an offer comes.
    const DISCOVER_EVERY: Duration = Duration::from_secs(2);

    impl Net {
        /// Adds the DHCP client and waits for the first lease.
        pub(crate) fn dhcp_start(&mut self, env: &Env<'_>) -> Result<(), NetError> {
            let timeout_s = match env.arg("dhcp_timeout") {
                Some(text) => text
                    .parse::<u64>()
                    .map_err(|_| NetError::Config("bad dhcp_timeout="))?,
                None => DEFAULT_TIMEOUT_S,
            };
            let mut socket = dhcpv4::Socket::new();
            let mut retry = socket.get_retry_config();
            retry.discover_timeout = DISCOVER_EVERY;
            socket.set_retry_config(retry);
            self.dhcp = Some(self.sockets.add(socket));
            let start = time::now_ns();
            self.block_until(Some(timeout_s * time::NS_PER_SEC), |net| {
                let leased = !net.config.address.address().is_unspecified();
                leased.then_some(Ok(()))
            })
            .map_err(|e| match e {
                NetError::Timeout => NetError::Config("no DHCP lease in time"),
                other => other,
            })?;
            println!(
                "net: dhcp: leased in {:.3} s",
                (time::now_ns() - start) as f64 / 1e9
            );
            Ok(())
        }

        /// Applies what the DHCP client has learnt since the last poll.
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
                    println!(
                        "net: dhcp: lease {} gw {} from server {server}",
                        config.address,
                        match config.gateway {
                            Some(gw) => alloc::format!("{gw}"),
                            None => alloc::string::String::from("none"),
                        }
                    );
                    if let Err(e) = self.apply_config(Some(config)) {
                        println!("net: dhcp: applying the lease: {e}");
                    }
                }
                // smoltcp also reports "deconfigured" once at the start,
                // before any lease: only a lease we had can be lost.
                None if self.config.address.address().is_unspecified() => {}
                None => {
                    println!("net: dhcp: lease lost");
                    let _ = self.apply_config(None);
                }
            }
        }
    }
}
