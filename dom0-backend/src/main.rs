//! `dom0-backend`: a blkif backend of our own, run in the rig's Linux
//! dom0, to test Paravane's frontends against a backend that checks them
//! (by the book) or attacks them (hostile, one scripted attack per run).
//!
//! It needs nothing from libxl or the hotplug scripts: the rig creates
//! the guest paused (`xl create -p`, no `disk=` in its config); this
//! program writes the frontend's directory
//! `/local/domain/D/device/vbd/DEVID` (`backend`, `backend-id`, `state`,
//! `virtual-device`, `device-type`; owned by the guest, readable by
//! dom0) and its own `/local/domain/0/backend/paravane-vbd/D/DEVID`
//! (owned by dom0, readable by the guest) as a toolstack would, in one
//! transaction, and then runs `xl unpause D`. The directory is
//! `paravane-vbd`, not `vbd`: Linux's blkback claims everything under
//! `backend/vbd`.
//!
//! It speaks to Linux's `/dev/xen/xenbus` (the xenstore wire protocol
//! itself, [`xs`]), `/dev/xen/gntdev` ([`gntdev`]) and `/dev/xen/evtchn`
//! ([`evtchn`]) through `libc`; the protocol logic (ring indices,
//! request checks, the attacks, the disk pattern) is pure and
//! host-tested. Usage:
//!
//! ```text
//! dom0-backend blk DOMID by-the-book|ATTACK [--devid N] [--timeout S] [--hold S]
//! dom0-backend net DOMID by-the-book|NET-ATTACK
//! dom0-backend list
//! ```
//!
//! `net` is a netif backend wired the same way under
//! `backend/paravane-vif` (the frontend's `device/vif/0`): by the book
//! ([`netbook`], a wire with one host on it, [`responder`]) or one of
//! the attacks on netfront ([`netback`]: its handshake and its rings).

mod attack;
mod blkback;
mod blkif;
mod checks;
mod disk;
mod evtchn;
mod gntdev;
mod netback;
mod netbook;
mod responder;
mod setup;
mod xs;
mod xs_wire;

use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: dom0-backend blk DOMID by-the-book|ATTACK [--devid N] [--timeout S] [--hold S]\n       dom0-backend net DOMID by-the-book|ATTACK\n       dom0-backend list"
    );
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("list") => {
            for (name, attack) in attack::ALL {
                println!("{name}: {}", attack.describe());
            }
            for (name, attack) in netback::ALL {
                println!("{name}: {}", attack.describe());
            }
        }
        Some("net") if args.len() >= 3 && args[2] == "by-the-book" => {
            let domid = args[1].parse().unwrap_or_else(|_| usage());
            if let Err(e) = netbook::run(domid, Duration::from_secs(150)) {
                println!("backend: FAILED: {e}");
                std::process::exit(1);
            }
        }
        Some("net") if args.len() >= 3 => {
            let domid = args[1].parse().unwrap_or_else(|_| usage());
            let attack = netback::NetAttack::by_name(&args[2]).unwrap_or_else(|| usage());
            if let Err(e) = netback::run(domid, attack, Duration::from_secs(60)) {
                println!("backend: FAILED: {e}");
                std::process::exit(1);
            }
        }
        Some("blk") if args.len() >= 3 => {
            let domid = args[1].parse().unwrap_or_else(|_| usage());
            let attack = match args[2].as_str() {
                "by-the-book" => None,
                name => Some(attack::Attack::by_name(name).unwrap_or_else(|| {
                    eprintln!("dom0-backend: no attack {name:?} (see `dom0-backend list`)");
                    std::process::exit(2)
                })),
            };
            let mut options = blkback::Options {
                domid,
                devid: 51712,
                attack,
                timeout: Duration::from_secs(150),
                hold: Duration::from_secs(8),
            };
            let mut rest = args[3..].iter();
            while let Some(flag) = rest.next() {
                let value: u64 = rest
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage());
                match flag.as_str() {
                    "--devid" => options.devid = value as u32,
                    "--timeout" => options.timeout = Duration::from_secs(value),
                    "--hold" => options.hold = Duration::from_secs(value),
                    _ => usage(),
                }
            }
            if let Err(e) = blkback::run(&options) {
                println!("backend: FAILED: {e}");
                std::process::exit(1);
            }
        }
        _ => usage(),
    }
}
