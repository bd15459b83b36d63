//! TCP and UDP checksums of Ethernet frames, for checksum offload.
//!
//! netfront tells smoltcp neither to compute nor to verify TCP and UDP
//! checksums ([`super::Netfront`]'s capabilities), because whether the
//! work is needed is known per frame, and only here:
//!
//! - tx: with offload negotiated, an IPv4 TCP/UDP frame goes out with only
//!   the pseudo-header sum in its checksum field and `NETTXF_csum_blank`
//!   (netback, or the NIC behind it, finishes it, as for Linux's
//!   `CHECKSUM_PARTIAL`); every other TCP/UDP frame (IPv6, or offload
//!   off) gets its full checksum here.
//! - rx: a frame netback marks `NETRXF_data_validated` or
//!   `NETRXF_csum_blank` (a frame from dom0's own stack, never on a wire,
//!   whose checksum was never computed) is taken as is; any other TCP/UDP
//!   frame is verified here and dropped if wrong.
//!
//! Trusting netback's flags costs nothing: it writes every byte of every
//! frame we receive, so it could as well forge a correct checksum.
//!
//! Frames are parsed defensively (rx frames come from the back end): any
//! header that does not fit makes a TCP/UDP frame [`Verdict::Bad`].
//! IPv4 fragments and IPv6 fragments are also `Bad` when they would need
//! verifying: their checksum cannot be checked alone, and smoltcp (built
//! without reassembly) drops them anyway.

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETH_HEADER: usize = 14;
/// IP protocol numbers.
const TCP: u8 = 6;
const UDP: u8 = 17;
/// IPv6 extension headers walked over (hop-by-hop, routing, destination
/// options) and the fragment header.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DEST_OPTS: u8 = 60;

/// What a received frame's checksum says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not TCP or UDP over IPv4/IPv6: smoltcp checks what it needs.
    NotTcpUdp,
    /// A TCP/UDP frame whose checksum is right.
    Good,
    /// A TCP/UDP frame whose checksum is wrong, or that cannot be checked
    /// (truncated or inconsistent headers, a fragment).
    Bad,
}

/// What [`prepare_tx`] did to a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxChecksum {
    /// Not a TCP/UDP frame we can parse: sent as smoltcp built it.
    Untouched,
    /// The full checksum was written.
    Full,
    /// Only the pseudo-header sum was written: send `NETTXF_csum_blank`.
    Partial,
}

/// Where a TCP/UDP segment lies in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    protocol: u8,
    /// Offset of the TCP/UDP header in the frame.
    start: usize,
    /// Length of header plus payload.
    len: usize,
    /// The pseudo-header's one's-complement sum, unfolded.
    pseudo: u32,
    ipv4: bool,
}

impl Segment {
    fn checksum_at(&self) -> usize {
        self.start + if self.protocol == TCP { 16 } else { 6 }
    }
}

/// Adds `bytes` as big-endian 16-bit words (an odd last byte padded with
/// zero) to `sum`.
fn add_words(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([word[0], word[1]])));
        // Fold early so `sum` never overflows, whatever the length.
        if sum > 0xffff_0000 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    if let [last] = words.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    sum
}

/// Folds a sum to 16 bits (not complemented).
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// Finds the TCP/UDP segment of `frame`: `Ok(None)` if the frame is not
/// TCP/UDP over IP, `Err(())` if it is (or claims to be IP) but its
/// headers cannot be trusted to locate one.
fn locate(frame: &[u8]) -> Result<Option<Segment>, ()> {
    if frame.len() < ETH_HEADER {
        return Ok(None);
    }
    match be16(frame, 12) {
        ETHERTYPE_IPV4 => locate_ipv4(&frame[ETH_HEADER..]),
        ETHERTYPE_IPV6 => locate_ipv6(&frame[ETH_HEADER..]),
        _ => Ok(None),
    }
    .map(|segment| {
        segment.map(|s| Segment {
            start: s.start + ETH_HEADER,
            ..s
        })
    })
}

fn locate_ipv4(packet: &[u8]) -> Result<Option<Segment>, ()> {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return Err(());
    }
    let header = usize::from(packet[0] & 0xf) * 4;
    let total = usize::from(be16(packet, 2));
    if header < 20 || total < header || total > packet.len() {
        return Err(());
    }
    let protocol = packet[9];
    if protocol != TCP && protocol != UDP {
        return Ok(None);
    }
    // More-fragments flag or a fragment offset.
    if be16(packet, 6) & 0x3fff != 0 {
        return Err(());
    }
    let len = total - header;
    let mut pseudo = add_words(0, &packet[12..20]);
    pseudo += u32::from(protocol) + len as u32;
    segment(packet, protocol, header, len, pseudo, true)
}

fn locate_ipv6(packet: &[u8]) -> Result<Option<Segment>, ()> {
    if packet.len() < 40 || packet[0] >> 4 != 6 {
        return Err(());
    }
    let end = 40 + usize::from(be16(packet, 4));
    if end > packet.len() {
        return Err(());
    }
    let mut next = packet[6];
    let mut at = 40;
    loop {
        match next {
            TCP | UDP => break,
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                if at + 2 > end {
                    return Err(());
                }
                next = packet[at];
                at += (usize::from(packet[at + 1]) + 1) * 8;
                if at > end {
                    return Err(());
                }
            }
            IPV6_FRAGMENT => return Err(()),
            _ => return Ok(None),
        }
    }
    let len = end - at;
    let mut pseudo = add_words(0, &packet[8..40]);
    pseudo += (len as u32 >> 16) + (len as u32 & 0xffff) + u32::from(next);
    segment(packet, next, at, len, pseudo, false)
}

/// Checks the transport header fits and builds the [`Segment`]
/// (`start` relative to `packet`).
fn segment(
    packet: &[u8],
    protocol: u8,
    start: usize,
    len: usize,
    pseudo: u32,
    ipv4: bool,
) -> Result<Option<Segment>, ()> {
    let minimum = if protocol == TCP { 20 } else { 8 };
    if len < minimum {
        return Err(());
    }
    if protocol == UDP && usize::from(be16(packet, start + 4)) != len {
        // A UDP length that disagrees with IP's: smoltcp would refuse
        // the datagram anyway, and the sum's extent would be ambiguous.
        return Err(());
    }
    Ok(Some(Segment {
        protocol,
        start,
        len,
        pseudo,
        ipv4,
    }))
}

/// The full sum over the pseudo header and the segment as it stands.
fn segment_sum(frame: &[u8], segment: &Segment) -> u16 {
    fold(add_words(
        segment.pseudo,
        &frame[segment.start..segment.start + segment.len],
    ))
}

/// Verifies the TCP/UDP checksum of a received frame.
pub fn verify(frame: &[u8]) -> Verdict {
    let segment = match locate(frame) {
        Ok(Some(segment)) => segment,
        Ok(None) => return Verdict::NotTcpUdp,
        Err(()) => return Verdict::Bad,
    };
    let field = be16(frame, segment.checksum_at());
    if segment.protocol == UDP && field == 0 {
        // "No checksum": allowed over IPv4 only.
        return if segment.ipv4 {
            Verdict::Good
        } else {
            Verdict::Bad
        };
    }
    // A right checksum makes the whole sum 0xffff.
    if segment_sum(frame, &segment) == 0xffff {
        Verdict::Good
    } else {
        Verdict::Bad
    }
}

/// Fills in the TCP/UDP checksum of a frame about to be sent: only the
/// pseudo-header sum when `offload_ipv4` and the frame is IPv4 (the back
/// end completes it), the full checksum otherwise.
pub fn prepare_tx(frame: &mut [u8], offload_ipv4: bool) -> TxChecksum {
    let Ok(Some(segment)) = locate(frame) else {
        return TxChecksum::Untouched;
    };
    let at = segment.checksum_at();
    if offload_ipv4 && segment.ipv4 {
        // Linux's CHECKSUM_PARTIAL convention: the field holds the folded
        // pseudo-header sum, not complemented; the finisher sums the
        // segment including it and stores the complement.
        frame[at..at + 2].copy_from_slice(&fold(segment.pseudo).to_be_bytes());
        return TxChecksum::Partial;
    }
    frame[at..at + 2].copy_from_slice(&[0, 0]);
    let mut checksum = !segment_sum(frame, &segment);
    if segment.protocol == UDP && checksum == 0 {
        // 0 means "no checksum" for UDP; its equal, all ones, is sent.
        checksum = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&checksum.to_be_bytes());
    TxChecksum::Full
}

/// Completes a checksum left partial by [`prepare_tx`] (what the back
/// end does with `NETTXF_csum_blank`); for simulated back ends in tests.
#[cfg(test)]
pub fn complete_partial(frame: &mut [u8]) {
    let Ok(Some(segment)) = locate(frame) else {
        return;
    };
    let at = segment.checksum_at();
    let sum = add_words(0, &frame[segment.start..segment.start + segment.len]);
    let mut checksum = !fold(sum);
    if segment.protocol == UDP && checksum == 0 {
        checksum = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&checksum.to_be_bytes());
}

/// A hash of a frame's flow (addresses, protocol and ports) to spread
/// frames over queues; 0 for frames that are not TCP/UDP over IP.
pub fn flow_hash(frame: &[u8]) -> u32 {
    let Ok(Some(segment)) = locate(frame) else {
        return 0;
    };
    let addresses = if segment.ipv4 {
        &frame[ETH_HEADER + 12..ETH_HEADER + 20]
    } else {
        &frame[ETH_HEADER + 8..ETH_HEADER + 40]
    };
    let ports = &frame[segment.start..segment.start + 4];
    // FNV-1a: cheap, and good enough to spread flows.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in addresses
        .iter()
        .chain(ports)
        .chain(core::iter::once(&segment.protocol))
    {
        hash = (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
    }
    hash
}
