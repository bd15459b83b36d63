//! netif's ring entries (`io/netif.h`), as fixed little-endian byte
//! encodings of the C structs.
//!
//! Requests are ours and only encoded (decoding them is for simulated
//! back ends). Responses come from the back end: [`RingEntry::decode`]
//! checks what a response can get wrong on its own (a status outside the
//! protocol's range); what needs our state (is the id one we posted, does
//! the packet fit the buffer) is checked by the driver, in
//! [`super::Netfront`].

use crate::shared_ring::{BadEntry, RingEntry};

/// `NETTXF_csum_blank`: the packet's checksum is not yet computed.
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// `NETTXF_data_validated`: the packet's checksum was checked.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// `NETTXF_more_data`: the packet continues in the next request.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`: an extra-info slot follows.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// `NETRXF_data_validated`: the back end checked the checksum.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// `NETRXF_csum_blank`: the checksum is not computed (a frame from dom0's
/// own stack, with checksum offload on).
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`: the packet continues in the next response (we
/// write `feature-sg=1`).
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: an extra-info slot follows the frame's first
/// response (with `feature-gso-tcpv4`: the frame's GSO type and size).
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETRXF_gso_prefix`: a GSO prefix descriptor (never offered).
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

/// `XEN_NETIF_EXTRA_TYPE_GSO`: an extra-info slot describing GSO.
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1;
/// `XEN_NETIF_GSO_TYPE_TCPV4`.
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;

/// `struct netif_extra_info` (8 bytes) as an rx response slot carries
/// it: `type`, `flags`, then for GSO `size`, `type`, a pad byte and
/// `features`. It takes the slot of an rx request (whose buffer goes
/// unused), so it arrives through the ring as an [`RxResponse`]'s bytes:
/// [`ExtraInfo::from_slot`] reads it back out of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    pub kind: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// GSO: the segment size the frame was built for (its MSS).
    pub gso_size: u16,
    /// GSO: `XEN_NETIF_GSO_TYPE_*`.
    pub gso_type: u8,
}

impl ExtraInfo {
    /// The extra-info slot that `slot` decoded as a response holds.
    pub fn from_slot(slot: &RxResponse) -> ExtraInfo {
        let [kind, flags] = slot.id.to_le_bytes();
        ExtraInfo {
            kind,
            flags,
            gso_size: slot.offset,
            gso_type: slot.flags.to_le_bytes()[0],
        }
    }

    /// The slot that carries `self` (for simulated back ends).
    pub fn to_slot(self) -> RxResponse {
        RxResponse {
            id: u16::from_le_bytes([self.kind, self.flags]),
            offset: self.gso_size,
            flags: u16::from(self.gso_type),
            status: 0,
        }
    }
}

/// `NETIF_RSP_DROPPED`.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: the response to an extra-info slot.
pub const NETIF_RSP_NULL: i16 = 1;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// `struct netif_tx_request` (12 bytes): send `size` bytes at `offset`
/// of the page granted as `gref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRequest {
    /// The grant of the page holding the packet.
    pub gref: u32,
    /// Where the packet starts in the page.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// The packet's length (of the whole packet, in a packet's first
    /// request).
    pub size: u16,
}

impl RingEntry for TxRequest {
    const SIZE: usize = 12;

    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.gref.to_le_bytes());
        out[4..6].copy_from_slice(&self.offset.to_le_bytes());
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..10].copy_from_slice(&self.id.to_le_bytes());
        out[10..12].copy_from_slice(&self.size.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Result<Self, BadEntry> {
        Ok(TxRequest {
            gref: u32_at(bytes, 0),
            offset: u16_at(bytes, 4),
            flags: u16_at(bytes, 6),
            id: u16_at(bytes, 8),
            size: u16_at(bytes, 10),
        })
    }
}

/// `struct netif_tx_response` (4 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxResponse {
    /// The request's id.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

impl RingEntry for TxResponse {
    const SIZE: usize = 4;

    fn encode(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.id.to_le_bytes());
        out[2..4].copy_from_slice(&self.status.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Result<Self, BadEntry> {
        let status = u16_at(bytes, 2) as i16;
        if !(NETIF_RSP_DROPPED..=NETIF_RSP_NULL).contains(&status) {
            return Err(BadEntry { field: "status" });
        }
        Ok(TxResponse {
            id: u16_at(bytes, 0),
            status,
        })
    }
}

/// `struct netif_rx_request` (8 bytes): a page granted for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// The grant of the page the back end copies the packet into.
    pub gref: u32,
}

impl RingEntry for RxRequest {
    const SIZE: usize = 8;

    fn encode(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.id.to_le_bytes());
        out[2..4].copy_from_slice(&[0, 0]);
        out[4..8].copy_from_slice(&self.gref.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Result<Self, BadEntry> {
        Ok(RxRequest {
            id: u16_at(bytes, 0),
            gref: u32_at(bytes, 4),
        })
    }
}

/// `struct netif_rx_response` (8 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxResponse {
    /// The request's id.
    pub id: u16,
    /// Where the packet starts in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// The packet's length if positive, `NETIF_RSP_*` if not.
    pub status: i16,
}

impl RingEntry for RxResponse {
    const SIZE: usize = 8;

    fn encode(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.id.to_le_bytes());
        out[2..4].copy_from_slice(&self.offset.to_le_bytes());
        out[4..6].copy_from_slice(&self.flags.to_le_bytes());
        out[6..8].copy_from_slice(&self.status.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Result<Self, BadEntry> {
        let status = u16_at(bytes, 6) as i16;
        if status < NETIF_RSP_DROPPED {
            return Err(BadEntry { field: "status" });
        }
        Ok(RxResponse {
            id: u16_at(bytes, 0),
            offset: u16_at(bytes, 2),
            flags: u16_at(bytes, 4),
            status,
        })
    }
}
