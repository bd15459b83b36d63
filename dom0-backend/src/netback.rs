//! A minimal netif backend for the attacks on netfront: the handshake
//! ones, and those on the rings (it then maps the single queue's tx and
//! rx rings and answers with one hostile response set):
//! it wires `device/vif/0` and `/local/domain/0/backend/paravane-vif/D/0`
//! like [`crate::blkback`] (the guest created paused, then `xl
//! unpause`), offers its features at `InitWait` and follows the
//! frontend's state to `Connected` and back to `Closed`. It maps no
//! ring: the attacks are in what it (as the toolstack and as the
//! backend) writes to xenstore, `mtu` 0 in the frontend's directory
//! (`net-mtu-zero`) or `multi-queue-max-queues` 65535
//! (`net-queues-65535`), or in the responses it writes once connected:
//! an rx response for an id never posted (`net-rx-unknown-id`), an rx
//! frame at offset 4000 of its page (`net-rx-offset-off-page`), an rx
//! status (length) of 5000 (`net-rx-status-out-of-range`), every posted
//! rx buffer answered with `NETRXF_more_data` (`net-rx-more-data-endless`),
//! a tx response for an id never sent (`net-tx-unknown-id`). It checks
//! that the frontend published the queues it may use (at most what was
//! offered) before connecting.
//!
//! netif's rings (`io/netif.h`, x86_64): after the 64-byte header, tx
//! entries are 12 bytes (request `gref` u32, `offset` u16, `flags` u16,
//! `id` u16, `size` u16; response `id` u16, `status` i16), rx entries 8
//! (request `id` u16, pad, `gref` u32; response `id` u16, `offset` u16,
//! `flags` u16, `status` i16); 256 of each in a page.

use std::time::{Duration, Instant};

use crate::blkif::SharedPage;
use crate::checks::{self, state};
use crate::evtchn::Evtchn;
use crate::gntdev::{Gntdev, Mapping};
use crate::setup::{self, Paths};
use crate::xs::Xenstore;

/// The netif attacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetAttack {
    /// `mtu` 0 in the frontend's directory.
    MtuZero,
    /// `multi-queue-max-queues` 65535.
    Queues65535,
    /// An rx response for an id never posted.
    RxUnknownId,
    /// An rx response at offset 4000 of its page.
    RxOffsetOffPage,
    /// An rx status (the length) of 5000.
    RxStatusOutOfRange,
    /// Every posted rx buffer answered with `more_data`.
    RxMoreDataEndless,
    /// A tx response for an id never sent.
    TxUnknownId,
}

/// The netif attacks by name.
pub const ALL: &[(&str, NetAttack)] = &[
    ("net-mtu-zero", NetAttack::MtuZero),
    ("net-queues-65535", NetAttack::Queues65535),
    ("net-rx-unknown-id", NetAttack::RxUnknownId),
    ("net-rx-offset-off-page", NetAttack::RxOffsetOffPage),
    ("net-rx-status-out-of-range", NetAttack::RxStatusOutOfRange),
    ("net-rx-more-data-endless", NetAttack::RxMoreDataEndless),
    ("net-tx-unknown-id", NetAttack::TxUnknownId),
];

use drivers_pv::netfront::wire::{RxRequest, RxResponse, TxRequest, TxResponse, NETRXF_MORE_DATA};
use drivers_pv::shared_ring::{
    RingEntry, REQ_PROD_OFFSET as REQ_PROD, RSP_PROD_OFFSET as RSP_PROD,
    SRING_HEADER_SIZE as ENTRIES,
};

/// Bytes per slot of each ring (a response shares its request's slot).
const TX_ENTRY: usize = TxRequest::SIZE;
const RX_ENTRY: usize = RxRequest::SIZE;
/// Entries in each ring (a page of them).
const RING_SIZE: u32 = 256;
/// An id no frontend posts (netfront's ids are below the ring size).
const UNKNOWN_ID: u16 = 0xfff0;

/// An rx response (8 bytes), encoded as drivers-pv encodes it.
pub fn rx_response(id: u16, offset: u16, flags: u16, status: i16) -> [u8; RX_ENTRY] {
    let mut out = [0u8; RX_ENTRY];
    RxResponse {
        id,
        offset,
        flags,
        status,
    }
    .encode(&mut out);
    out
}

/// A tx response (4 bytes, in a 12-byte slot).
pub fn tx_response(id: u16, status: i16) -> [u8; TxResponse::SIZE] {
    let mut out = [0u8; TxResponse::SIZE];
    TxResponse { id, status }.encode(&mut out);
    out
}

/// The hostile rx responses for the posted request ids `posted`.
pub fn rx_attack(attack: NetAttack, posted: &[u16]) -> Vec<[u8; RX_ENTRY]> {
    let first = posted.first().copied().unwrap_or(0);
    match attack {
        NetAttack::RxUnknownId => vec![rx_response(UNKNOWN_ID, 0, 0, 60)],
        NetAttack::RxOffsetOffPage => vec![rx_response(first, 4000, 0, 200)],
        NetAttack::RxStatusOutOfRange => vec![rx_response(first, 0, 0, 5000)],
        NetAttack::RxMoreDataEndless => posted
            .iter()
            .map(|&id| rx_response(id, 0, NETRXF_MORE_DATA, 100))
            .collect(),
        _ => Vec::new(),
    }
}

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
            NetAttack::RxUnknownId => "answers rx with an id never posted",
            NetAttack::RxOffsetOffPage => "answers rx with a frame at offset 4000",
            NetAttack::RxStatusOutOfRange => "answers rx with a length of 5000",
            NetAttack::RxMoreDataEndless => "answers every rx buffer with more_data",
            NetAttack::TxUnknownId => "answers the first tx with an id never sent",
        }
    }

    /// The `multi-queue-max-queues` offered.
    pub fn max_queues(self) -> u32 {
        match self {
            NetAttack::Queues65535 => 65535,
            _ => 1,
        }
    }

    /// Whether it acts on the rings.
    pub fn on_rings(self) -> bool {
        !matches!(self, NetAttack::MtuZero | NetAttack::Queues65535)
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

/// The guest's MAC address on every vif this backend wires.
pub const GUEST_MAC: &str = "00:16:3e:4b:0d:01";

/// Wires `device/vif/0` of paused domain `domid` to this backend as a
/// toolstack would (the frontend's directory with `mac`, `handle` and
/// `mtu`; ours with what we offer: `feature-rx-copy`, no scatter-gather,
/// at most `max_queues` queues; `InitWait`), watches the frontend's
/// state and unpauses the domain.
pub fn wire(
    xs: &mut Xenstore,
    paths: &Paths,
    domid: u32,
    mtu: &str,
    max_queues: u32,
) -> Result<(), String> {
    let extra = [
        ("mac", GUEST_MAC.to_string()),
        ("handle", "0".into()),
        ("mtu", mtu.into()),
    ];
    let nodes = setup::device_nodes(paths, domid, &extra);
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
        ("mac", GUEST_MAC),
        ("handle", "0"),
        ("feature-rx-copy", "1"),
        ("feature-sg", "0"),
        ("multi-queue-max-queues", &max_queues.to_string()),
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
    Ok(())
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
    let mtu = if attack == NetAttack::MtuZero {
        "0"
    } else {
        "1500"
    };
    wire(&mut xs, &paths, domid, mtu, attack.max_queues())?;
    let back = |key: &str| format!("{}/{key}", paths.back);
    println!("backend: dom {domid} unpaused, InitWait");
    let start = Instant::now();
    let mut front_state = state::INITIALISING;
    let mut violations = 0u32;
    let mut connected = false;
    let mut rings: Option<Rings> = None;
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
                if attack.on_rings() {
                    match fire(&mut xs, &paths, domid, attack) {
                        Ok(held) => rings = Some(held),
                        Err(e) => println!("backend: attack {} did not fire: {e}", attack.name()),
                    }
                }
            }
            state::CLOSING => {
                // Let go of the rings before saying so.
                rings = None;
                let _ = xs.write(&back("state"), "5");
            }
            state::CLOSED => {
                let _ = xs.write(&back("state"), "6");
                break;
            }
            _ => {}
        }
    }
    drop(rings);
    let _ = xs.rm(&paths.back);
    println!(
        "backend: hostile netif {}: fired, {} frontend violations",
        attack.name(),
        violations
    );
    Ok(())
}

/// What a ring attack holds while the frontend is connected.
struct Rings {
    _tx: Mapping,
    _rx: Mapping,
    evtchn: Evtchn,
    port: u32,
}

impl Drop for Rings {
    fn drop(&mut self) {
        let _ = self.evtchn.unbind(self.port);
    }
}

/// Maps the single queue's rings, binds its channel, waits (2 s at most)
/// for what the attack answers, writes the hostile responses, notifies.
fn fire(xs: &mut Xenstore, paths: &Paths, domid: u32, attack: NetAttack) -> Result<Rings, String> {
    let mut read = |key: &str| -> Result<u32, String> {
        let raw = xs
            .read_opt(&format!("{}/{key}", paths.front))
            .ok_or(format!("no {key}"))?;
        raw.trim().parse().map_err(|_| format!("{key} {raw:?}"))
    };
    let (tx_ref, rx_ref, channel) = (
        read("tx-ring-ref")?,
        read("rx-ring-ref")?,
        read("event-channel")?,
    );
    let gnt = Gntdev::open()?;
    let tx = gnt.map(domid, &[tx_ref], true)?;
    let rx = gnt.map(domid, &[rx_ref], true)?;
    let evtchn = Evtchn::open()?;
    let port = evtchn.bind_interdomain(domid, channel)?;
    let (ring, entry, want_tx) = if attack == NetAttack::TxUnknownId {
        (&tx, TX_ENTRY, true)
    } else {
        (&rx, RX_ENTRY, false)
    };
    let start = Instant::now();
    let mut req_prod = ring.read_word(REQ_PROD);
    while req_prod == 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
        req_prod = ring.read_word(REQ_PROD);
    }
    if req_prod == 0 || req_prod > RING_SIZE {
        return Err(format!(
            "req_prod {req_prod} on the {} ring",
            if want_tx { "tx" } else { "rx" }
        ));
    }
    let mut ids = Vec::new();
    for i in 0..req_prod as usize {
        let mut bytes = [0u8; TX_ENTRY];
        ring.read_bytes(ENTRIES + i * entry, &mut bytes[..entry]);
        let at = if want_tx { 8 } else { 0 };
        ids.push(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    }
    let responses: Vec<Vec<u8>> = if want_tx {
        vec![tx_response(UNKNOWN_ID, 0).to_vec()]
    } else {
        rx_attack(attack, &ids)
            .into_iter()
            .map(|r| r.to_vec())
            .collect()
    };
    for (i, response) in responses.iter().enumerate() {
        ring.write_bytes(ENTRIES + i * entry, response);
    }
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    ring.write_word(RSP_PROD, responses.len() as u32);
    evtchn.notify(port)?;
    println!(
        "backend: attack {} fires: {} responses to {req_prod} {} requests",
        attack.name(),
        responses.len(),
        if want_tx { "tx" } else { "rx" }
    );
    Ok(Rings {
        _tx: tx,
        _rx: rx,
        evtchn,
        port,
    })
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
    fn hostile_rx_responses() {
        assert_eq!(
            rx_response(3, 4000, 4, 200),
            [3, 0, 0xa0, 0x0f, 4, 0, 200, 0]
        );
        assert_eq!(
            rx_attack(NetAttack::RxUnknownId, &[1, 2])[0][0..2],
            [0xf0, 0xff]
        );
        let endless = rx_attack(NetAttack::RxMoreDataEndless, &[5, 6, 7]);
        assert_eq!(endless.len(), 3);
        assert!(endless.iter().all(|r| r[4] == 4));
        assert_eq!(tx_response(UNKNOWN_ID, 0), [0xf0, 0xff, 0, 0]);
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
