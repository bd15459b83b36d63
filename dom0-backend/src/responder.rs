//! What the by-the-book netif backend ([`crate::netbook`]) answers: it
//! is a host on the vif's wire, at [`OUR_IP`] with [`OUR_MAC`], that
//! answers ARP requests for its address and ICMP echo requests to it
//! (so Linux's `ping` works over the vif), and reflects frames of the
//! local experimental ethertype 0x88b5 back to their sender with the
//! addresses swapped (so a frontend without an IP stack can check its
//! own bytes come back). Everything else is counted and ignored.
//! Pure: frames in, frames out.

/// The backend's MAC address on the vif's wire.
pub const OUR_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x4b, 0x0d, 0xfe];
/// The backend's IPv4 address (the guest uses another in 10.99.0.0/24).
pub const OUR_IP: [u8; 4] = [10, 99, 0, 1];
/// The ethertype reflected as it is (IEEE's local experimental one).
pub const REFLECT_ETHERTYPE: u16 = 0x88b5;

const ETH_HEADER: usize = 14;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;

/// What a frame was, and the answer if it gets one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An ARP request for [`OUR_IP`]: the reply.
    Arp(Vec<u8>),
    /// An ICMP echo request to [`OUR_IP`]: the echo reply.
    Icmp(Vec<u8>),
    /// A 0x88b5 frame: the same frame back, addresses swapped.
    Reflected(Vec<u8>),
    /// Anything else (not for us, or not a kind we answer).
    Ignored,
}

impl Answer {
    /// The frame to send back, if any.
    pub fn frame(self) -> Option<Vec<u8>> {
        match self {
            Answer::Arp(f) | Answer::Icmp(f) | Answer::Reflected(f) => Some(f),
            Answer::Ignored => None,
        }
    }
}

/// The Internet checksum of `bytes`.
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ethernet(dst: &[u8], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ETH_HEADER + payload.len());
    frame.extend_from_slice(dst);
    frame.extend_from_slice(&OUR_MAC);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The answer to `frame`.
pub fn answer(frame: &[u8]) -> Answer {
    if frame.len() < ETH_HEADER {
        return Answer::Ignored;
    }
    let (dst, src) = (&frame[0..6], &frame[6..12]);
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let body = &frame[ETH_HEADER..];
    let for_us = dst == OUR_MAC || dst == [0xff; 6];
    match ethertype {
        REFLECT_ETHERTYPE if for_us => {
            let mut back = frame.to_vec();
            back[0..6].copy_from_slice(src);
            back[6..12].copy_from_slice(&OUR_MAC);
            Answer::Reflected(back)
        }
        ETHERTYPE_ARP if for_us => arp(src, body),
        ETHERTYPE_IPV4 if dst == OUR_MAC => icmp(src, body),
        _ => Answer::Ignored,
    }
}

/// An ARP request (Ethernet, IPv4) for our address: the reply.
fn arp(src: &[u8], body: &[u8]) -> Answer {
    let request = body.len() >= 28
        && body[0..6] == [0, 1, 8, 0, 6, 4]
        && body[6..8] == [0, 1]
        && body[24..28] == OUR_IP;
    if !request {
        return Answer::Ignored;
    }
    let mut reply = Vec::with_capacity(28);
    reply.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    reply.extend_from_slice(&OUR_MAC);
    reply.extend_from_slice(&OUR_IP);
    reply.extend_from_slice(&body[8..18]); // their MAC and IP
    Answer::Arp(ethernet(src, ETHERTYPE_ARP, &reply))
}

/// An IPv4 ICMP echo request to our address (unfragmented, with a valid
/// header checksum): the echo reply.
fn icmp(src: &[u8], body: &[u8]) -> Answer {
    if body.len() < 20 || body[0] >> 4 != 4 {
        return Answer::Ignored;
    }
    let header = usize::from(body[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([body[2], body[3]]));
    let fragmented = u16::from_be_bytes([body[6], body[7]]) & 0x3fff != 0;
    if header < 20
        || total < header + 8
        || total > body.len()
        || fragmented
        || body[9] != 1
        || body[16..20] != OUR_IP
        || checksum(&body[..header]) != 0
        || body[header] != 8
    {
        return Answer::Ignored;
    }
    let mut ip = body[..total].to_vec();
    let their_ip: [u8; 4] = [ip[12], ip[13], ip[14], ip[15]];
    ip[12..16].copy_from_slice(&OUR_IP);
    ip[16..20].copy_from_slice(&their_ip);
    ip[8] = 64;
    ip[10..12].fill(0);
    let sum = checksum(&ip[..header]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip[header] = 0; // echo reply
    ip[header + 2..header + 4].fill(0);
    let sum = checksum(&ip[header..]);
    ip[header + 2..header + 4].copy_from_slice(&sum.to_be_bytes());
    Answer::Icmp(ethernet(src, ETHERTYPE_IPV4, &ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x4b, 0x0d, 0x01];
    const GUEST_IP: [u8; 4] = [10, 99, 0, 2];

    fn frame(dst: [u8; 6], ethertype: u16, body: &[u8]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&GUEST_MAC);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    fn arp_request(target: [u8; 4]) -> Vec<u8> {
        let mut body = vec![0, 1, 8, 0, 6, 4, 0, 1];
        body.extend_from_slice(&GUEST_MAC);
        body.extend_from_slice(&GUEST_IP);
        body.extend_from_slice(&[0; 6]);
        body.extend_from_slice(&target);
        frame([0xff; 6], ETHERTYPE_ARP, &body)
    }

    fn echo_request(payload: &[u8]) -> Vec<u8> {
        let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
        icmp.extend_from_slice(payload);
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let total = (20 + icmp.len()) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 7, 0x40, 0, 64, 1, 0, 0]);
        ip.extend_from_slice(&GUEST_IP);
        ip.extend_from_slice(&OUR_IP);
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        ip.extend_from_slice(&icmp);
        frame(OUR_MAC, ETHERTYPE_IPV4, &ip)
    }

    #[test]
    fn arp_for_our_address_is_answered_and_others_are_not() {
        let Answer::Arp(reply) = answer(&arp_request(OUR_IP)) else {
            panic!("no ARP reply");
        };
        assert_eq!(&reply[0..6], &GUEST_MAC);
        assert_eq!(&reply[20..22], &[0, 2]);
        assert_eq!(&reply[22..28], &OUR_MAC);
        assert_eq!(&reply[28..32], &OUR_IP);
        assert_eq!(&reply[32..38], &GUEST_MAC);
        assert_eq!(&reply[38..42], &GUEST_IP);
        assert_eq!(answer(&arp_request([10, 99, 0, 7])), Answer::Ignored);
    }

    #[test]
    fn an_echo_request_gets_a_valid_reply_with_its_payload() {
        let payload: Vec<u8> = (0..1400).map(|i| i as u8).collect();
        let Answer::Icmp(reply) = answer(&echo_request(&payload)) else {
            panic!("no echo reply");
        };
        let ip = &reply[ETH_HEADER..];
        assert_eq!(&reply[0..6], &GUEST_MAC);
        assert_eq!(checksum(&ip[..20]), 0);
        assert_eq!((&ip[12..16], &ip[16..20]), (&OUR_IP[..], &GUEST_IP[..]));
        assert_eq!(ip[20], 0, "echo reply");
        assert_eq!(checksum(&ip[20..]), 0);
        assert_eq!(&ip[28..], &payload[..]);
        // A bad header checksum, or another address, gets nothing.
        let mut bad = echo_request(b"x");
        bad[ETH_HEADER + 10] ^= 1;
        assert_eq!(answer(&bad), Answer::Ignored);
        let mut other = echo_request(b"x");
        other[0..6].copy_from_slice(&[2; 6]);
        assert_eq!(answer(&other), Answer::Ignored);
    }

    #[test]
    fn reflected_frames_come_back_whole_and_short_ones_are_ignored() {
        let sent = frame(OUR_MAC, REFLECT_ETHERTYPE, &[7; 100]);
        let Answer::Reflected(back) = answer(&sent) else {
            panic!("not reflected");
        };
        assert_eq!(&back[0..6], &GUEST_MAC);
        assert_eq!(&back[6..12], &OUR_MAC);
        assert_eq!(&back[12..], &sent[12..]);
        assert_eq!(answer(&sent[..10]), Answer::Ignored);
        assert_eq!(
            answer(&frame([2; 6], REFLECT_ETHERTYPE, &[1])),
            Answer::Ignored
        );
    }
}
