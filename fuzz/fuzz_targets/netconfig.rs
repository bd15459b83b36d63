//! The network configuration: `ip=`/`gw=` on the command line, else the
//! `ip` key the toolstack put in the vif backend's xenstore directory.
//!
//! Input: the command line, a NUL, then the xenstore value (absent if
//! there is no NUL). What must hold: nothing panics; an address that
//! parses prints back to what parses the same; a static setup's prefix
//! is a valid IPv4 prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use libos::netconfig::{parse_ipv4, IpSetup, NetConfig};

fuzz_target!(|data: &[u8]| {
    let (cmdline, xenstore) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let cmdline = String::from_utf8_lossy(cmdline);
    let xenstore_ip = xenstore.map(|raw| String::from_utf8_lossy(raw).into_owned());

    if let Ok((IpSetup::Static(config), _source)) =
        IpSetup::from_sources(&cmdline, || xenstore_ip.clone())
    {
        assert!(config.address.prefix_len() <= 32);
    }
    let _ = NetConfig::from_cmdline(&cmdline);
    for text in cmdline.split(['=', ' ', '/']).chain(xenstore_ip.as_deref()) {
        if let Some(address) = parse_ipv4(text) {
            assert_eq!(parse_ipv4(&address.to_string()), Some(address));
        }
    }
});
