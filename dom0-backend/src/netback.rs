//! A minimal netif backend for the attacks on netfront's handshake:
//! it wires `device/vif/0` and `/local/domain/0/backend/paravane-vif/D/0`
//! like [`crate::blkback`] (the guest created paused, then `xl
//! unpause`), offers its features at `InitWait` and follows the
//! frontend's state to `Connected` and back to `Closed`. It maps no
//! ring: the attacks are in what it (as the toolstack and as the
//! backend) writes to xenstore, `mtu` 0 in the frontend's directory
//! (`net-mtu-zero`) or `multi-queue-max-queues` 65535
//! (`net-queues-65535`); it checks that the frontend published the
//! queues it may use (at most what was offered) before connecting.

use std::time::{Duration, Instant};

use crate::checks::{self, state};
use crate::setup::{self, Paths};
use crate::xs::Xenstore;

/// The netif attacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetAttack {
    /// `mtu` 0 in the frontend's directory.
    MtuZero,
    /// `multi-queue-max-queues` 65535.
    Queues65535,
}

/// The netif attacks by name.
pub const ALL: &[(&str, NetAttack)] = &[
    ("net-mtu-zero", NetAttack::MtuZero),
    ("net-queues-65535", NetAttack::Queues65535),
];

impl NetAttack {
    /// The attack called `name`.
    pub fn by_name(name: &str) -> Option<NetAttack> {
        ALL.iter().find(|(n, _)| *n == name).map(|&(_, a)| a)
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(_, a)| *a == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// What it does.
    pub fn describe(self) -> &'static str {
        match self {
            NetAttack::MtuZero => "writes mtu 0 into the frontend's directory",
            NetAttack::Queues65535 => "offers multi-queue-max-queues 65535",
        }
    }

    /// The `multi-queue-max-queues` offered.
    pub fn max_queues(self) -> u32 {
        match self {
            NetAttack::Queues65535 => 65535,
            NetAttack::MtuZero => 1,
        }
    }
}

/// Whether the frontend's `multi-queue-num-queues` (absent: one queue)
/// is within what was offered.
pub fn check_queues(num_queues: Option<&str>, offered: u32) -> Option<String> {
    let queues = match num_queues {
        None => 1,
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(n) => n,
            Err(_) => return Some(format!("netif: multi-queue-num-queues {raw:?}")),
        },
    };
    (queues == 0 || queues > offered)
        .then(|| format!("netif: frontend uses {queues} queues, 1..={offered} offered"))
}

/// Runs one vif to its end.
pub fn run(domid: u32, attack: NetAttack, timeout: Duration) -> Result<(), String> {
    let mut xs = Xenstore::open()?;
    let paths = Paths::new("vif", domid, 0);
    println!(
        "backend: hostile netif {} for dom {domid}: {}",
        attack.name(),
        attack.describe()
    );
    let mac = "00:16:3e:4b:0d:01".to_string();
    let mtu = if attack == NetAttack::MtuZero {
        "0"
    } else {
        "1500"
    };
    let extra = [
        ("mac", mac.clone()),
        ("handle", "0".into()),
        ("mtu", mtu.into()),
    ];
    let nodes = setup::device_nodes(&paths, domid, &extra);
    let tx = xs.transaction_start().map_err(|e| e.to_string())?;
    for (path, value, perms) in &nodes {
        let written = if value.is_empty() {
            xs.mkdir_tx(tx, path)
        } else {
            xs.write_tx(tx, path, value)
        };
        written
            .and_then(|()| xs.set_perms_tx(tx, path, perms))
            .map_err(|e| format!("{path}: {e}"))?;
    }
    xs.transaction_end(tx, true)
        .map_err(|e| format!("committing the vif nodes: {e}"))?;
    let back = |key: &str| format!("{}/{key}", paths.back);
    for (key, value) in [
        ("mac", mac.as_str()),
        ("handle", "0"),
        ("feature-rx-copy", "1"),
        ("feature-sg", "0"),
        ("multi-queue-max-queues", &attack.max_queues().to_string()),
        ("state", "2"),
    ] {
        xs.write(&back(key), value)
            .map_err(|e| format!("writing {key}: {e}"))?;
    }
    xs.watch(&format!("{}/state", paths.front), "front")
        .map_err(|e| format!("watch: {e}"))?;
    let unpause = std::process::Command::new("xl")
        .args(["unpause", &domid.to_string()])
        .status()
        .map_err(|e| format!("cannot run xl unpause: {e}"))?;
    if !unpause.success() {
        return Err(format!("xl unpause {domid} failed"));
    }
    println!("backend: dom {domid} unpaused, InitWait");
    let start = Instant::now();
    let mut front_state = state::INITIALISING;
    let mut violations = 0u32;
    let mut connected = false;
    while start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(100));
        let Some(raw) = xs.read_opt(&format!("{}/state", paths.front)) else {
            println!("backend: the frontend's directory is gone");
            break;
        };
        let Ok(new) = raw.trim().parse::<u32>() else {
            continue;
        };
        if new == front_state {
            continue;
        }
        if let Some(text) = checks::check_front_transition(front_state, new) {
            println!("backend: violation: {text}");
            violations += 1;
        }
        front_state = new;
        match new {
            state::INITIALISED | state::CONNECTED if !connected => {
                let queues = xs.read_opt(&format!("{}/multi-queue-num-queues", paths.front));
                if let Some(text) = check_queues(queues.as_deref(), attack.max_queues()) {
                    println!("backend: violation: {text}");
                    violations += 1;
                }
                println!(
                    "backend: frontend uses {} queues",
                    queues.as_deref().unwrap_or("1 (no multi-queue-num-queues)")
                );
                let _ = xs.write(&back("state"), "4");
                connected = true;
            }
            state::CLOSING => {
                let _ = xs.write(&back("state"), "5");
            }
            state::CLOSED => {
                let _ = xs.write(&back("state"), "6");
                break;
            }
            _ => {}
        }
    }
    let _ = xs.rm(&paths.back);
    println!(
        "backend: hostile netif {}: fired, {} frontend violations",
        attack.name(),
        violations
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &(name, attack) in ALL {
            assert_eq!(NetAttack::by_name(name), Some(attack));
            assert_eq!(attack.name(), name);
        }
    }

    #[test]
    fn queues_within_the_offer() {
        assert_eq!(check_queues(None, 1), None);
        assert_eq!(check_queues(Some("2"), 65535), None);
        assert_eq!(
            check_queues(Some("3"), 2).as_deref(),
            Some("netif: frontend uses 3 queues, 1..=2 offered")
        );
        assert!(check_queues(Some("0"), 2).is_some());
        assert!(check_queues(Some("x"), 2).is_some());
    }
}
