//! Feature negotiation with netback: what the back end offers (its
//! xenstore keys, untrusted), what we want, and what both ends then use.
//!
//! [`BackendOffer::read`] parses the back end's keys through a lookup
//! function, so the guest reads xenstore and the tests a map. A
//! malformed value counts in [`BackendOffer::bad_keys`] and reads as the
//! key's default (feature off, one queue), the way Linux's
//! `xenbus_read_unsigned` falls back; nothing here panics on it.
//! [`BackendOffer::negotiate`] then picks the [`Negotiated`] set, whose
//! `Display` is the line the guest prints at connect.

use core::fmt;

use super::{NetError, MAX_FRAME, MAX_SG_FRAME, MIN_FRAME};
use crate::xenbus_state::parse_u32;

/// The most queues we set up (the rig's guest has one vCPU; two still
/// exercise the multi-queue paths).
pub const MAX_QUEUES: usize = 2;

/// Ethernet header length (an MTU excludes it, a frame includes it).
const ETH_HEADER: usize = 14;

/// The smallest MTU honoured from xenstore (IPv4's minimum).
pub const MIN_MTU: usize = 68;

/// What netback offers, from its directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendOffer {
    /// `feature-rx-copy`: it copies received frames into our pages.
    pub rx_copy: bool,
    /// `feature-sg`: it accepts tx frames split over several slots.
    pub sg: bool,
    /// `feature-split-event-channels`.
    pub split_event_channels: bool,
    /// `multi-queue-max-queues`; 0 when absent (no multi-queue support).
    pub max_queues: u32,
    /// `feature-gso-tcpv4`.
    pub gso_tcpv4: bool,
    /// `feature-gso-tcpv6`.
    pub gso_tcpv6: bool,
    /// `feature-ipv6-csum-offload`.
    pub ipv6_csum_offload: bool,
    /// `feature-ctrl-ring`.
    pub ctrl_ring: bool,
    /// Keys present but malformed (read as their default).
    pub bad_keys: u32,
}

/// A flag key: absent is `false`; `0`/`1`; anything else is bad.
fn flag(raw: Option<&[u8]>, bad: &mut u32) -> bool {
    match raw {
        None | Some(b"0") => false,
        Some(b"1") => true,
        Some(_) => {
            *bad += 1;
            false
        }
    }
}

/// The back-end keys [`BackendOffer::read`] looks up (to fetch them all
/// before parsing, as an async reader must).
pub const OFFER_KEYS: [&str; 8] = [
    "feature-rx-copy",
    "feature-sg",
    "feature-split-event-channels",
    "feature-gso-tcpv4",
    "feature-gso-tcpv6",
    "feature-ipv6-csum-offload",
    "feature-ctrl-ring",
    "multi-queue-max-queues",
];

impl BackendOffer {
    /// Reads the offer; `lookup(key)` returns the value of the back end's
    /// `key`, or `None` if it is absent (or unreadable).
    pub fn read(mut lookup: impl FnMut(&str) -> Option<alloc::vec::Vec<u8>>) -> BackendOffer {
        let mut bad = 0;
        let mut flag_of = |key: &str, bad: &mut u32| flag(lookup(key).as_deref(), bad);
        let rx_copy = flag_of("feature-rx-copy", &mut bad);
        let sg = flag_of("feature-sg", &mut bad);
        let split_event_channels = flag_of("feature-split-event-channels", &mut bad);
        let gso_tcpv4 = flag_of("feature-gso-tcpv4", &mut bad);
        let gso_tcpv6 = flag_of("feature-gso-tcpv6", &mut bad);
        let ipv6_csum_offload = flag_of("feature-ipv6-csum-offload", &mut bad);
        let ctrl_ring = flag_of("feature-ctrl-ring", &mut bad);
        let max_queues = match lookup("multi-queue-max-queues") {
            None => 0,
            Some(raw) => match parse_u32(&raw) {
                Ok(queues) if queues >= 1 => queues,
                _ => {
                    bad += 1;
                    0
                }
            },
        };
        BackendOffer {
            rx_copy,
            sg,
            split_event_channels,
            max_queues,
            gso_tcpv4,
            gso_tcpv6,
            ipv6_csum_offload,
            ctrl_ring,
            bad_keys: bad,
        }
    }

    /// What to use, given what we want. Fails only if the back end cannot
    /// copy into our pages (`feature-rx-copy`), the one mode we support.
    pub fn negotiate(&self, wanted: &Wanted) -> Result<Negotiated, NetError> {
        if !self.rx_copy {
            return Err(NetError::Unsupported("feature-rx-copy"));
        }
        let queues = (self.max_queues.max(1) as usize).min(wanted.max_queues.clamp(1, MAX_QUEUES));
        let sg = self.sg;
        // Frames over a page need tx chains, so a bigger MTU only with sg.
        let max_frame = match wanted.mtu {
            Some(mtu) if sg && (MIN_MTU..=MAX_SG_FRAME - ETH_HEADER).contains(&mtu) => {
                mtu + ETH_HEADER
            }
            Some(mtu) if (MIN_MTU..=MAX_FRAME - ETH_HEADER).contains(&mtu) => mtu + ETH_HEADER,
            _ => MAX_FRAME,
        };
        Ok(Negotiated {
            queues,
            multi_queue_key: self.max_queues >= 1,
            split_event_channels: self.split_event_channels,
            sg,
            csum_offload: wanted.csum_offload,
            max_frame: max_frame.max(MIN_FRAME),
            gso_rx: wanted.gso_rx && wanted.csum_offload,
            offer: *self,
        })
    }
}

/// What we would like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// Queues (capped at [`MAX_QUEUES`] and at the back end's maximum).
    pub max_queues: usize,
    /// IPv4 TCP/UDP checksum offload both ways.
    pub csum_offload: bool,
    /// The MTU the toolstack gave (`device/vif/N/mtu`), if any; above
    /// 1500 only used with sg.
    pub mtu: Option<usize>,
    /// GSO TCP frames on the rx side (see [`Negotiated::gso_rx`]).
    pub gso_rx: bool,
}

impl Default for Wanted {
    fn default() -> Wanted {
        Wanted {
            max_queues: MAX_QUEUES,
            csum_offload: true,
            mtu: None,
            gso_rx: true,
        }
    }
}

/// What both ends use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Queues set up (1 to [`MAX_QUEUES`]).
    pub queues: usize,
    /// Whether to write `multi-queue-num-queues` (the back end knows it).
    pub multi_queue_key: bool,
    /// Two event channels per queue (`event-channel-tx`/`-rx`).
    pub split_event_channels: bool,
    /// Tx frames may span slots (the back end's `feature-sg`); we always
    /// write `feature-sg=1` and take multi-slot rx frames.
    pub sg: bool,
    /// IPv4 TCP/UDP checksum offload (`feature-no-csum-offload=0`).
    pub csum_offload: bool,
    /// The longest frame sent or taken (MTU plus Ethernet header).
    pub max_frame: usize,
    /// We take GSO TCP frames of up to 64 KiB (we write
    /// `feature-gso-tcpv4=1`: netback then hands dom0's large TCP sends
    /// over whole, in full pages, instead of cutting them to the MTU
    /// first). Needs checksum offload: such frames come with
    /// `NETRXF_csum_blank`.
    pub gso_rx: bool,
    /// What the back end offered.
    pub offer: BackendOffer,
}

fn yes(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

/// `queues 2 (backend max 2) split-evtchn yes sg yes csum-offload yes
/// rx-copy yes mtu 1500 gso-rx tcpv4 (backend offers tcpv4 yes tcpv6 yes)`.
impl fmt::Display for Negotiated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "queues {} (backend max {}) split-evtchn {} sg {} csum-offload {} rx-copy {} mtu {} gso-rx {} (backend offers tcpv4 {} tcpv6 {})",
            self.queues,
            self.offer.max_queues,
            yes(self.split_event_channels),
            yes(self.sg),
            yes(self.csum_offload),
            yes(self.offer.rx_copy),
            self.max_frame - ETH_HEADER,
            if self.gso_rx { "tcpv4" } else { "no" },
            yes(self.offer.gso_tcpv4),
            yes(self.offer.gso_tcpv6),
        )?;
        if self.offer.bad_keys > 0 {
            write!(f, " bad-backend-keys {}", self.offer.bad_keys)?;
        }
        Ok(())
    }
}

/// What one queue hands the back end: its ring grants and channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueKeys {
    /// The tx ring's grant reference.
    pub tx_ring_ref: u32,
    /// The rx ring's grant reference.
    pub rx_ring_ref: u32,
    /// The tx channel's port (the only one without split channels).
    pub tx_port: u32,
    /// The rx channel's port (equal to `tx_port` without split channels).
    pub rx_port: u32,
}

/// The keys (relative to our `device/vif/N` directory) and values to
/// write before switching to `Connected`, as netif.h lays them out: one
/// queue's keys at the top, several queues' under `queue-N/`.
pub fn frontend_keys(
    negotiated: &Negotiated,
    queues: &[QueueKeys],
) -> alloc::vec::Vec<(alloc::string::String, alloc::string::String)> {
    use alloc::format;
    use alloc::string::String;
    let mut keys = alloc::vec::Vec::new();
    let mut key = |name: String, value: String| keys.push((name, value));
    if negotiated.multi_queue_key {
        key("multi-queue-num-queues".into(), format!("{}", queues.len()));
    }
    for (index, queue) in queues.iter().enumerate() {
        let prefix = if queues.len() > 1 {
            format!("queue-{index}/")
        } else {
            String::new()
        };
        key(
            format!("{prefix}tx-ring-ref"),
            format!("{}", queue.tx_ring_ref),
        );
        key(
            format!("{prefix}rx-ring-ref"),
            format!("{}", queue.rx_ring_ref),
        );
        if negotiated.split_event_channels {
            key(
                format!("{prefix}event-channel-tx"),
                format!("{}", queue.tx_port),
            );
            key(
                format!("{prefix}event-channel-rx"),
                format!("{}", queue.rx_port),
            );
        } else {
            key(
                format!("{prefix}event-channel"),
                format!("{}", queue.tx_port),
            );
        }
    }
    key("request-rx-copy".into(), "1".into());
    key("feature-rx-notify".into(), "1".into());
    key("feature-sg".into(), "1".into());
    if negotiated.gso_rx {
        key("feature-gso-tcpv4".into(), "1".into());
    }
    key(
        "feature-no-csum-offload".into(),
        if negotiated.csum_offload { "0" } else { "1" }.into(),
    );
    keys
}
