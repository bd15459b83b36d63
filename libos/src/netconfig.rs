//! How the network is configured: a static IPv4 address or DHCP, read
//! from the command line or, failing that, from xenstore.
//!
//! The command line wins: `ip=dhcp`, or `ip=A.B.C.D[/PREFIX]` (prefix 24
//! if absent) with an optional `gw=A.B.C.D`. Without `ip=`, the address
//! the toolstack gave the vif (xl's `vif = ['ip=…']`, which the backend
//! publishes as its `ip` key, as Mini-OS reads it) is used with prefix 24
//! and the command line's `gw=`, if any. Pure logic, tested on the host.

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use crate::net::NetError;

/// An IPv4 configuration in effect (static, or leased by DHCP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Our address and prefix.
    pub address: Ipv4Cidr,
    /// The default gateway, if any.
    pub gateway: Option<Ipv4Address>,
}

/// How to get the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpSetup {
    /// Use this one.
    Static(NetConfig),
    /// Ask a DHCP server (`ip=dhcp`).
    Dhcp,
}

/// Where [`IpSetup::from_sources`] found the setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupSource {
    /// `ip=` on the command line.
    Cmdline,
    /// The vif backend's `ip` key in xenstore.
    Xenstore,
}

/// The prefix used when none is given.
const DEFAULT_PREFIX: u8 = 24;

/// Parses a dotted quad.
pub fn parse_ipv4(text: &str) -> Option<Ipv4Address> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        // `u8::from_str` takes a leading `+`: refuse anything but digits.
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Address::from(octets))
}

/// Parses `A.B.C.D[/PREFIX]`.
fn parse_cidr(text: &str) -> Result<Ipv4Cidr, NetError> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (
            addr,
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= 32)
                .ok_or(NetError::Config("bad prefix in ip="))?,
        ),
        None => (text, DEFAULT_PREFIX),
    };
    let address = parse_ipv4(addr).ok_or(NetError::Config("bad address in ip="))?;
    Ok(Ipv4Cidr::new(address, prefix))
}

fn gateway(cmdline: &str) -> Result<Option<Ipv4Address>, NetError> {
    match crate::arg(cmdline, "gw") {
        Some(gw) => Ok(Some(parse_ipv4(gw).ok_or(NetError::Config("bad gw="))?)),
        None => Ok(None),
    }
}

impl NetConfig {
    /// Reads a static `ip=A.B.C.D/PREFIX` (prefix 24 if absent) and
    /// `gw=A.B.C.D` from the command line.
    pub fn from_cmdline(cmdline: &str) -> Result<NetConfig, NetError> {
        match IpSetup::from_cmdline(cmdline)? {
            Some(IpSetup::Static(config)) => Ok(config),
            Some(IpSetup::Dhcp) => Err(NetError::Config("ip=dhcp is not a static address")),
            None => Err(NetError::Config("no ip= given")),
        }
    }
}

impl IpSetup {
    /// The setup `ip=` asks for, `None` without `ip=`.
    pub fn from_cmdline(cmdline: &str) -> Result<Option<IpSetup>, NetError> {
        let Some(ip) = crate::arg(cmdline, "ip") else {
            return Ok(None);
        };
        if ip == "dhcp" {
            return Ok(Some(IpSetup::Dhcp));
        }
        Ok(Some(IpSetup::Static(NetConfig {
            address: parse_cidr(ip)?,
            gateway: gateway(cmdline)?,
        })))
    }

    /// The command line's setup, else the one from the vif backend's `ip`
    /// key (`xenstore_ip`, read only if needed: it may cost a xenstore
    /// round trip). The key may hold several space-separated addresses
    /// (xl writes all of the vif's `ip=`); the first is ours.
    pub fn from_sources(
        cmdline: &str,
        xenstore_ip: impl FnOnce() -> Option<alloc::string::String>,
    ) -> Result<(IpSetup, SetupSource), NetError> {
        if let Some(setup) = IpSetup::from_cmdline(cmdline)? {
            return Ok((setup, SetupSource::Cmdline));
        }
        let value = xenstore_ip().ok_or(NetError::Config(
            "no ip= on the command line and no ip in the vif's xenstore entry",
        ))?;
        let first = value
            .split_ascii_whitespace()
            .next()
            .ok_or(NetError::Config("empty ip in xenstore"))?;
        let address = parse_ipv4(first).ok_or(NetError::Config("bad ip in xenstore"))?;
        Ok((
            IpSetup::Static(NetConfig {
                address: Ipv4Cidr::new(address, DEFAULT_PREFIX),
                gateway: gateway(cmdline)?,
            }),
            SetupSource::Xenstore,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn config_comes_from_the_command_line() {
        let config = NetConfig::from_cmdline("x=1 ip=10.0.0.2/24 gw=10.0.0.1").unwrap();
        assert_eq!(config.address.address(), Ipv4Address::new(10, 0, 0, 2));
        assert_eq!(config.address.prefix_len(), 24);
        assert_eq!(config.gateway, Some(Ipv4Address::new(10, 0, 0, 1)));
        let config = NetConfig::from_cmdline("ip=192.168.1.9").unwrap();
        assert_eq!(config.address.prefix_len(), 24);
        assert_eq!(config.gateway, None);
        for bad in [
            "",
            "ip=10.0.0",
            "ip=10.0.0.2/33",
            "ip=10.0.0.256",
            "ip=+1.2.3.4",
            "ip=1.2.3.4.5",
            "ip=1.2.3.4 gw=x",
            "ip=dhcp",
        ] {
            assert!(NetConfig::from_cmdline(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dhcp_is_asked_for_by_name() {
        assert_eq!(
            IpSetup::from_cmdline("a=b ip=dhcp").unwrap(),
            Some(IpSetup::Dhcp)
        );
        assert_eq!(IpSetup::from_cmdline("a=b").unwrap(), None);
        assert!(IpSetup::from_cmdline("ip=dhcpx").is_err());
    }

    #[test]
    fn the_command_line_wins_over_xenstore() {
        let never = || -> Option<String> { panic!("xenstore read although ip= was given") };
        let (setup, source) = IpSetup::from_sources("ip=dhcp", never).unwrap();
        assert_eq!((setup, source), (IpSetup::Dhcp, SetupSource::Cmdline));
    }

    #[test]
    fn xenstore_fills_in_without_ip() {
        let (setup, source) =
            IpSetup::from_sources("gw=10.0.0.254", || Some("10.0.0.7 10.0.0.8".into())).unwrap();
        assert_eq!(source, SetupSource::Xenstore);
        assert_eq!(
            setup,
            IpSetup::Static(NetConfig {
                address: Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 7), 24),
                gateway: Some(Ipv4Address::new(10, 0, 0, 254)),
            })
        );
        assert!(IpSetup::from_sources("", || None).is_err());
        assert!(IpSetup::from_sources("", || Some(" ".into())).is_err());
        assert!(IpSetup::from_sources("", || Some("10.0.0".into())).is_err());
    }
}
