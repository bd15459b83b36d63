//! The negotiated features against simulated back ends: scatter-gather
//! chains both ways (good and malicious), checksum offload flags, queues
//! and their events, feature parsing and the keys we write, and TCP echo
//! over every combination.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::wire::{IpAddress, Ipv4Address, Ipv4Packet, TcpPacket, UdpPacket};

use super::checksum::{self, TxChecksum, Verdict};
use super::features::*;
use super::queue::{MAX_RX_SLOTS, MAX_TX_SLOTS};
use super::sim::*;
use super::wire::*;
use super::*;

const SG: LinkConfig = LinkConfig {
    sg: true,
    csum_offload: false,
    max_frame: MAX_SG_FRAME,
    gso_rx: false,
};

const OFFLOAD: LinkConfig = LinkConfig {
    sg: false,
    csum_offload: true,
    max_frame: MAX_FRAME,
    gso_rx: false,
};

// ------------------------------------------------------------- frames

const SRC: [u8; 4] = [10, 0, 0, 2];
const DST: [u8; 4] = [10, 0, 0, 254];

/// An Ethernet + IPv4 frame carrying `protocol` with `l4` as its segment
/// (IP header checksum filled, the segment as given).
fn ipv4_frame(protocol: u8, l4: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; 14 + 20 + l4.len()];
    frame[0..6].copy_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
    frame[6..12].copy_from_slice(&[0, 0x16, 0x3e, 0, 0, 1]);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut frame[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = protocol;
    ip[12..16].copy_from_slice(&SRC);
    ip[16..20].copy_from_slice(&DST);
    Ipv4Packet::new_unchecked(&mut frame[14..]).fill_checksum();
    frame[34..].copy_from_slice(l4);
    frame
}

/// A TCP segment from port `sport` to 7 with `payload` and a zero
/// checksum.
fn tcp_segment(sport: u16, payload: &[u8]) -> Vec<u8> {
    let mut tcp = vec![0u8; 20 + payload.len()];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&7u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&1234u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18; // PSH, ACK
    tcp[14..16].copy_from_slice(&8192u16.to_be_bytes());
    tcp[20..].copy_from_slice(payload);
    tcp
}

fn udp_segment(sport: u16, payload: &[u8]) -> Vec<u8> {
    let mut udp = vec![0u8; 8 + payload.len()];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&53u16.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp[8..].copy_from_slice(payload);
    udp
}

fn tcp_frame(sport: u16, payload: &[u8]) -> Vec<u8> {
    ipv4_frame(6, &tcp_segment(sport, payload))
}

/// smoltcp's own opinion of a TCP/IPv4 frame's checksum.
fn smoltcp_tcp_ok(frame: &[u8]) -> bool {
    TcpPacket::new_checked(&frame[34..])
        .unwrap()
        .verify_checksum(
            &IpAddress::Ipv4(Ipv4Address::from(SRC)),
            &IpAddress::Ipv4(Ipv4Address::from(DST)),
        )
}

fn smoltcp_udp_ok(frame: &[u8]) -> bool {
    UdpPacket::new_checked(&frame[34..])
        .unwrap()
        .verify_checksum(
            &IpAddress::Ipv4(Ipv4Address::from(SRC)),
            &IpAddress::Ipv4(Ipv4Address::from(DST)),
        )
}

/// An Ethernet + IPv6 frame with a TCP segment (behind a hop-by-hop
/// header if `hop_by_hop`).
fn ipv6_tcp_frame(payload: &[u8], hop_by_hop: bool) -> Vec<u8> {
    let tcp = tcp_segment(40000, payload);
    let extension = if hop_by_hop { 8 } else { 0 };
    let mut frame = vec![0u8; 14 + 40 + extension + tcp.len()];
    frame[12..14].copy_from_slice(&[0x86, 0xdd]);
    let ip = &mut frame[14..54];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&((extension + tcp.len()) as u16).to_be_bytes());
    ip[6] = if hop_by_hop { 0 } else { 6 };
    ip[7] = 64;
    ip[8] = 0xfe;
    ip[9] = 0x80;
    ip[23] = 2;
    ip[24] = 0xfe;
    ip[25] = 0x80;
    ip[39] = 1;
    if hop_by_hop {
        frame[54] = 6; // next header: TCP; length 0 (8 bytes)
    }
    frame[54 + extension..].copy_from_slice(&tcp);
    frame
}

// ------------------------------------------------------------ checksums

#[test]
fn tx_checksums_match_smoltcp_for_every_length() {
    for len in 0..300 {
        let payload = frame(len, len as u8);
        let mut full = tcp_frame(1000 + len as u16, &payload);
        assert_eq!(checksum::prepare_tx(&mut full, false), TxChecksum::Full);
        assert!(smoltcp_tcp_ok(&full), "tcp len {len}");
        assert_eq!(checksum::verify(&full), Verdict::Good);

        let mut partial = tcp_frame(1000 + len as u16, &payload);
        assert_eq!(
            checksum::prepare_tx(&mut partial, true),
            TxChecksum::Partial
        );
        checksum::complete_partial(&mut partial);
        assert_eq!(
            partial, full,
            "completing the partial sum gives the full one"
        );

        let mut udp = ipv4_frame(17, &udp_segment(5000, &payload));
        assert_eq!(checksum::prepare_tx(&mut udp, false), TxChecksum::Full);
        assert!(smoltcp_udp_ok(&udp), "udp len {len}");
        assert_ne!(udp[40..42], [0, 0], "UDP never sends 0 for a computed sum");
        assert_eq!(checksum::verify(&udp), Verdict::Good);
    }
}

#[test]
fn rx_checksum_verdicts() {
    let mut good = tcp_frame(7, b"hello");
    checksum::prepare_tx(&mut good, false);
    assert_eq!(checksum::verify(&good), Verdict::Good);
    // Ethernet padding after the IP packet is not summed.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0xaa; 9]);
    assert_eq!(checksum::verify(&padded), Verdict::Good);
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(checksum::verify(&bad), Verdict::Bad);
    // UDP without a checksum is fine over IPv4.
    let udp = ipv4_frame(17, &udp_segment(1, b"x"));
    assert_eq!(checksum::verify(&udp), Verdict::Good);
    // Not TCP/UDP: ICMP, ARP, a runt.
    assert_eq!(
        checksum::verify(&ipv4_frame(1, &[8, 0, 0, 0])),
        Verdict::NotTcpUdp
    );
    assert_eq!(checksum::verify(&frame(60, 0)), Verdict::NotTcpUdp);
    assert_eq!(checksum::verify(&[0; 10]), Verdict::NotTcpUdp);
    // Lies in the headers: truncated, total length past the frame, a
    // header length under 20, a fragment, a UDP length that disagrees.
    assert_eq!(checksum::verify(&good[..40]), Verdict::Bad);
    let mut long = good.clone();
    long[16..18].copy_from_slice(&2000u16.to_be_bytes());
    assert_eq!(checksum::verify(&long), Verdict::Bad);
    let mut short_header = good.clone();
    short_header[14] = 0x44;
    assert_eq!(checksum::verify(&short_header), Verdict::Bad);
    let mut fragment = good.clone();
    fragment[20] = 0x20; // more fragments
    assert_eq!(checksum::verify(&fragment), Verdict::Bad);
    let mut udp_len = ipv4_frame(17, &udp_segment(1, b"xyz"));
    udp_len[38..40].copy_from_slice(&9u16.to_be_bytes());
    assert_eq!(checksum::verify(&udp_len), Verdict::Bad);
}

#[test]
fn ipv6_checksums_are_computed_in_full() {
    for hop_by_hop in [false, true] {
        let mut frame6 = ipv6_tcp_frame(b"over six", hop_by_hop);
        // Offload covers IPv4 only: IPv6 gets its full sum here.
        assert_eq!(checksum::prepare_tx(&mut frame6, true), TxChecksum::Full);
        assert_eq!(checksum::verify(&frame6), Verdict::Good);
        let last = frame6.len() - 1;
        frame6[last] ^= 0x40;
        assert_eq!(checksum::verify(&frame6), Verdict::Bad);
    }
}

#[test]
fn offloaded_tx_is_flagged_and_partial() {
    let mut sim = sim_with(1, 8, 8, OFFLOAD);
    let tcp = tcp_frame(40000, b"offloaded");
    sim.front.send(&mut tcp.clone()).unwrap();
    let udp = ipv4_frame(17, &udp_segment(40001, b"datagram"));
    sim.front.send(&mut udp.clone()).unwrap();
    let icmp = ipv4_frame(1, &[8, 0, 0xf7, 0xff]);
    sim.front.send(&mut icmp.clone()).unwrap();
    let sent = sim.back_take_tx_all(NETIF_RSP_OKAY);
    assert_eq!(sent.len(), 3);
    for mut frame in [sent[0].clone(), sent[1].clone()] {
        assert_eq!(frame.flags, NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED);
        // netback (or the NIC) completes it.
        checksum::complete_partial(&mut frame.bytes);
        assert_eq!(checksum::verify(&frame.bytes), Verdict::Good);
    }
    assert_eq!(sent[2].flags, 0);
    assert_eq!(sent[2].bytes, icmp);
    assert_eq!(sim.front.stats().tx_csum_blank, 2);

    // Without offload the driver computes the sum and says so.
    let mut sim = super::sim::sim(8, 8);
    sim.front.send(&mut tcp.clone()).unwrap();
    let sent = sim.back_take_tx_all(NETIF_RSP_OKAY);
    assert_eq!(sent[0].flags, NETTXF_DATA_VALIDATED);
    assert!(smoltcp_tcp_ok(&sent[0].bytes));
    assert_eq!(sim.front.stats().tx_csum_blank, 0);
}

#[test]
fn rx_checksum_flags_are_honoured() {
    let mut sim = sim(4, 8);
    let mut good = tcp_frame(7, b"payload");
    checksum::prepare_tx(&mut good, false);
    let mut wrong = good.clone();
    wrong[40] ^= 0xff;
    let mut blank = tcp_frame(7, b"payload");
    checksum::prepare_tx(&mut blank, true);

    // No flags: checked here; the wrong one is dropped.
    sim.back_deliver_chain(0, &wrong, 0, 0, 4096);
    assert_eq!(sim.front.receive(), None);
    assert_eq!(sim.front.stats().rx_csum_errors, 1);
    sim.back_deliver_chain(0, &good, 0, 0, 4096);
    assert_eq!(sim.front.receive().unwrap(), good);
    // data_validated: taken as is (the back end vouches for it).
    sim.back_deliver_chain(0, &wrong, NETRXF_DATA_VALIDATED, 0, 4096);
    assert_eq!(sim.front.receive().unwrap(), wrong);
    // csum_blank (dom0's own stack, sum never computed): taken as is.
    sim.back_deliver_chain(
        0,
        &blank,
        NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED,
        0,
        4096,
    );
    assert_eq!(sim.front.receive().unwrap(), blank);
    let stats = sim.front.stats();
    assert_eq!(stats.rx_csum_errors, 1);
    assert_eq!(stats.rx_data_validated, 1);
    assert_eq!(stats.rx_csum_blank, 1);
    assert_eq!(stats.rx_frames, 3);
}

// -------------------------------------------------------- sg: tx chains

#[test]
fn tx_chains_carry_frames_over_a_page() {
    let mut sim = sim_with(1, 8, 8, SG);
    for len in [4096, 4097, 8192, 8193, MAX_SG_FRAME] {
        let f = frame(len, len as u8);
        sim.front.send(&mut f.clone()).unwrap();
        // The requests as netif.h lays them out.
        let back = &mut sim.queues[0].tx_back;
        let mut requests = Vec::new();
        while let Some(request) = back.take_request() {
            requests.push(request.unwrap());
        }
        let slots = len.div_ceil(4096);
        assert_eq!(requests.len(), slots);
        assert_eq!(
            usize::from(requests[0].size),
            len,
            "first size is the frame's"
        );
        for (i, request) in requests.iter().enumerate() {
            let more = i + 1 < slots;
            assert_eq!(request.flags & NETTXF_MORE_DATA != 0, more);
            if i > 0 {
                let expect = if more { 4096 } else { len - 4096 * i };
                assert_eq!(usize::from(request.size), expect);
            }
        }
        // Put them back for the simulated back end to gather.
        for request in &requests {
            back.push_response(&TxResponse {
                id: request.id,
                status: NETIF_RSP_OKAY,
            })
            .unwrap();
        }
        back.push_responses_and_check_notify();
        let pages = sim.queues[0].tx_pages.pages.borrow().clone();
        let gathered: Vec<u8> = requests
            .iter()
            .enumerate()
            .flat_map(|(i, request)| {
                let size = if i == 0 {
                    4096.min(len)
                } else {
                    usize::from(request.size)
                };
                pages[usize::from(request.id)][..size].to_vec()
            })
            .collect();
        assert_eq!(gathered, f);
        assert_eq!(sim.front.reclaim_tx(), slots);
    }
    assert_eq!(sim.front.tx_free(), 8);
    assert_eq!(sim.front.stats().tx_multi_slot, 4);
    assert_eq!(
        sim.front.send(&mut frame(MAX_SG_FRAME + 1, 0)),
        Err(NetError::BadLength(MAX_SG_FRAME + 1))
    );
    // MAX_SG_FRAME is well within netback's slot limit.
    assert!(MAX_SG_FRAME.div_ceil(4096) <= MAX_TX_SLOTS);
}

#[test]
fn a_tx_chain_needs_a_buffer_per_slot() {
    let mut sim = sim_with(1, 4, 8, SG);
    sim.front.send(&mut frame(9000, 1)).unwrap();
    assert_eq!(sim.front.tx_free(), 1);
    assert_eq!(
        sim.front.send(&mut frame(5000, 2)),
        Err(NetError::NoTxBuffer)
    );
    assert_eq!(sim.front.tx_free(), 1, "nothing pushed on failure");
    sim.front.send(&mut frame(100, 3)).unwrap();
    let sent = sim.back_take_tx_all(NETIF_RSP_OKAY);
    assert_eq!(sent.len(), 2);
    assert_eq!((sent[0].slots, sent[1].slots), (3, 1));
    assert_eq!(sent[0].bytes, frame(9000, 1));
    // A dropped chain is one tx error, not one per slot.
    sim.front.reclaim_tx();
    sim.front.send(&mut frame(9000, 4)).unwrap();
    sim.back_take_tx_all(NETIF_RSP_DROPPED);
    sim.front.reclaim_tx();
    assert_eq!(sim.front.stats().tx_errors, 1);
    assert_eq!(sim.front.tx_free(), 4);
    // Without sg a frame must fit one page, and set-up refuses more.
    let mut plain = sim_with(1, 4, 8, LinkConfig::default());
    assert_eq!(
        plain.front.send(&mut frame(4097, 0)),
        Err(NetError::BadLength(4097))
    );
    let bad = LinkConfig { sg: false, ..SG };
    let parts = vec![queue::QueueParts {
        tx_ring: crate::shared_ring::sim::SharedMemory::new(1),
        rx_ring: crate::shared_ring::sim::SharedMemory::new(1),
        tx_buffers: SimBuffers::new(4, 0),
        rx_buffers: SimBuffers::new(4, 100),
    }];
    assert!(matches!(
        Netfront::new(parts, Events::default(), [0; 6], bad),
        Err(NetError::BadLength(MAX_SG_FRAME))
    ));
}

// -------------------------------------------------------- sg: rx chains

#[test]
fn rx_chains_are_gathered_into_one_frame() {
    let mut sim = sim_with(1, 8, 16, SG);
    for (len, chunk, offset) in [
        (MAX_SG_FRAME, 4096, 0),
        (MAX_SG_FRAME, 1000, 0),
        (3000, 1500, 100),
        (60, 4096, 7),
    ] {
        let f = frame(len, chunk as u8);
        sim.back_deliver_chain(0, &f, NETRXF_DATA_VALIDATED, offset, chunk);
        assert_eq!(sim.front.receive().unwrap(), f, "{len} in {chunk}s");
        assert_eq!(sim.queues[0].rx_back.unconsumed_requests(), 16, "reposted");
    }
    let stats = sim.front.stats();
    assert_eq!(stats.rx_multi_slot, 3);
    assert_eq!(stats.bad_responses + stats.rx_errors, 0);
}

/// After each lie: no frame, everything reposted, and an honest frame
/// still gets through.
fn survives(sim: &mut Sim, rx: u32) {
    assert_eq!(sim.front.receive(), None);
    assert_eq!(sim.queues[0].rx_back.unconsumed_requests(), rx);
    let f = frame(200, 42);
    sim.back_deliver(&f, 0);
    assert_eq!(sim.front.receive().unwrap(), f);
}

#[test]
fn malicious_rx_chains_are_dropped_whole() {
    let mut sim = sim_with(1, 8, 32, SG);
    let piece = frame(100, 1);

    // A chain longer than any frame may be: every slot has more_data up
    // to MAX_RX_SLOTS + 2, the last ends it.
    for i in 0..MAX_RX_SLOTS + 3 {
        let more = if i < MAX_RX_SLOTS + 2 {
            NETRXF_MORE_DATA
        } else {
            0
        };
        sim.back_rx_slot(&piece, 0, more, 100);
    }
    survives(&mut sim, 32);
    assert_eq!(sim.front.stats().bad_responses, 1);

    // A total over the MTU: an rx error.
    sim.back_deliver_chain(0, &frame(3 * 4096, 2), 0, 0, 4096);
    survives(&mut sim, 32);
    assert_eq!(sim.front.stats().rx_errors, 1);

    // A fragment off its page, mid-chain.
    sim.back_rx_slot(&piece, 0, NETRXF_MORE_DATA, 100);
    sim.back_rx_slot(&piece, 4050, NETRXF_MORE_DATA, 100);
    sim.back_rx_slot(&piece, 0, 0, 100);
    survives(&mut sim, 32);
    assert_eq!(sim.front.stats().bad_responses, 2);

    // An unknown id mid-chain: its buffer is not ours to repost.
    sim.back_rx_slot(&piece, 0, NETRXF_MORE_DATA, 100);
    sim.back_raw_rx(RxResponse {
        id: 999,
        offset: 0,
        flags: NETRXF_MORE_DATA,
        status: 100,
    });
    sim.back_rx_slot(&piece, 0, 0, 100);
    assert_eq!(sim.front.receive(), None);
    assert_eq!(sim.queues[0].rx_back.unconsumed_requests(), 31);
    assert_eq!(sim.front.stats().bad_responses, 3);

    // An error status mid-chain, and GSO's extra info never negotiated.
    sim.back_rx_slot(&piece, 0, NETRXF_MORE_DATA, 100);
    sim.back_rx_slot(&piece, 0, NETRXF_MORE_DATA, NETIF_RSP_ERROR);
    sim.back_rx_slot(&piece, 0, 0, 100);
    survives(&mut sim, 31);
    assert_eq!(sim.front.stats().rx_errors, 2);
    sim.back_rx_slot(&piece, 0, NETRXF_EXTRA_INFO | NETRXF_MORE_DATA, 100);
    sim.back_rx_slot(&piece, 0, 0, 100);
    survives(&mut sim, 31);
    assert_eq!(sim.front.stats().bad_responses, 4);

    // more_data on the last response there is: the frame waits, gathered
    // so far, and the chain goes on with the next response (netif.h's
    // rule); the whole is one frame.
    sim.back_rx_slot(&frame(100, 5), 0, NETRXF_MORE_DATA, 100);
    assert_eq!(sim.front.receive(), None);
    assert_eq!(sim.queues[0].rx_back.unconsumed_requests(), 31);
    sim.back_rx_slot(&frame(50, 6), 0, 0, 50);
    let mut joined = frame(100, 5);
    joined.extend_from_slice(&frame(50, 6));
    assert_eq!(sim.front.receive().unwrap(), joined);
    assert!(!sim.front.is_broken());
}

// ------------------------------------------------------ queues, events

#[test]
fn flows_spread_over_queues_and_events_name_their_queue() {
    let mut sim = sim_with(2, 8, 8, OFFLOAD);
    assert_eq!(sim.front.queue_count(), 2);
    let mut used = [0; 2];
    for port in 0..32u16 {
        let f = tcp_frame(40000 + port, b"x");
        let queue = sim.front.queue_for(&f);
        // A flow keeps its queue.
        assert_eq!(
            queue,
            sim.front.queue_for(&tcp_frame(40000 + port, b"longer"))
        );
        used[queue] += 1;
        sim.front.send(&mut f.clone()).unwrap();
        assert_eq!(
            sim.queues[queue].tx_back.unconsumed_requests(),
            1,
            "sent on its queue"
        );
        sim.back_take_tx_all(NETIF_RSP_OKAY);
        sim.front.reclaim_tx();
    }
    assert!(used[0] > 0 && used[1] > 0, "both queues used: {used:?}");
    assert_eq!(sim.front.stats().queue_tx_frames, used);
    // Non-IP frames go to queue 0.
    assert_eq!(sim.front.queue_for(&frame(60, 0)), 0);
    let tx_events = (
        sim.notified.count_for(0, RingKind::Tx),
        sim.notified.count_for(1, RingKind::Tx),
    );
    assert!(tx_events.0 >= 1 && tx_events.1 >= 1, "{tx_events:?}");

    // Rx on both queues; reposting notifies the queue's rx channel.
    let rx_before = sim.notified.count_for(1, RingKind::Rx);
    for round in 0..4u8 {
        let a = frame(100, round);
        let b = frame(200, round);
        sim.back_deliver_chain(0, &a, NETRXF_DATA_VALIDATED, 0, 4096);
        sim.back_deliver_chain(1, &b, NETRXF_DATA_VALIDATED, 0, 4096);
        let mut got = [sim.front.receive().unwrap(), sim.front.receive().unwrap()];
        got.sort_by_key(Vec::len);
        assert_eq!(got, [a, b]);
        assert_eq!(sim.front.receive(), None);
    }
    // The rx ring's event index asks for one when it is published.
    assert!(sim.notified.count_for(1, RingKind::Rx) >= rx_before);
    assert_eq!(sim.front.stats().queue_rx_frames, [4, 4]);
    // kick() signals every ring of every queue.
    let before = sim.notified.count();
    sim.front.kick();
    assert_eq!(sim.notified.count(), before + 4);
}

#[test]
fn a_busy_queue_does_not_starve_the_other() {
    let mut sim = sim_with(2, 8, 8, LinkConfig::default());
    for i in 0..6u8 {
        sim.back_deliver_chain(0, &frame(80, i), NETRXF_DATA_VALIDATED, 0, 4096);
    }
    sim.back_deliver_chain(1, &frame(90, 9), NETRXF_DATA_VALIDATED, 0, 4096);
    let first_two = [sim.front.receive().unwrap(), sim.front.receive().unwrap()];
    assert!(first_two.iter().any(|f| f.len() == 90), "round robin");
}

// ------------------------------------------------------------- features

fn offer_of(keys: &[(&str, &str)]) -> BackendOffer {
    let map: BTreeMap<&str, &str> = keys.iter().copied().collect();
    BackendOffer::read(|key| map.get(key).map(|v| v.as_bytes().to_vec()))
}

/// What Linux 6.1's netback writes (with a 2-vCPU dom0).
const LINUX_NETBACK: &[(&str, &str)] = &[
    ("feature-sg", "1"),
    ("feature-gso-tcpv4", "1"),
    ("feature-gso-tcpv6", "1"),
    ("feature-ipv6-csum-offload", "1"),
    ("feature-rx-copy", "1"),
    ("feature-rx-flip", "0"),
    ("feature-multicast-control", "1"),
    ("feature-dynamic-multicast-control", "1"),
    ("feature-split-event-channels", "1"),
    ("multi-queue-max-queues", "2"),
    ("feature-ctrl-ring", "1"),
];

#[test]
fn linux_netback_offer_is_taken_up() {
    let offer = offer_of(LINUX_NETBACK);
    assert!(offer.rx_copy && offer.sg && offer.split_event_channels && offer.ctrl_ring);
    assert_eq!(offer.max_queues, 2);
    assert_eq!(offer.bad_keys, 0);
    let negotiated = offer.negotiate(&Wanted::default()).unwrap();
    assert_eq!(negotiated.queues, 2);
    assert!(negotiated.split_event_channels && negotiated.sg && negotiated.csum_offload);
    assert_eq!(negotiated.max_frame, MAX_FRAME);
    assert_eq!(
        alloc::format!("{negotiated}"),
        "queues 2 (backend max 2) split-evtchn yes sg yes csum-offload yes rx-copy yes mtu 1500 gso-rx tcpv4 (backend offers tcpv4 yes tcpv6 yes)"
    );
    let link = LinkConfig::from(&negotiated);
    assert_eq!(
        link,
        LinkConfig {
            sg: true,
            csum_offload: true,
            max_frame: MAX_FRAME,
            gso_rx: true,
        }
    );
    // No GSO without checksum offload (its frames come with partial
    // checksums), and none when not wanted.
    for wanted in [
        Wanted {
            csum_offload: false,
            ..Wanted::default()
        },
        Wanted {
            gso_rx: false,
            ..Wanted::default()
        },
    ] {
        assert!(!offer.negotiate(&wanted).unwrap().gso_rx);
    }

    // A jumbo MTU from the toolstack is used with sg, ignored without.
    let jumbo = Wanted {
        mtu: Some(9000),
        ..Wanted::default()
    };
    assert_eq!(offer.negotiate(&jumbo).unwrap().max_frame, 9014);
    let no_sg = BackendOffer { sg: false, ..offer };
    assert_eq!(no_sg.negotiate(&jumbo).unwrap().max_frame, MAX_FRAME);
    for (mtu, frame) in [(1400, 1414), (20, MAX_FRAME), (65000, MAX_FRAME)] {
        let wanted = Wanted {
            mtu: Some(mtu),
            ..Wanted::default()
        };
        assert_eq!(offer.negotiate(&wanted).unwrap().max_frame, frame, "{mtu}");
    }
}

#[test]
fn queue_counts_follow_the_offer() {
    for (max, want, expect) in [
        (None, 2, 1),
        (Some("1"), 2, 1),
        (Some("2"), 2, 2),
        (Some("8"), 2, 2),
        (Some("8"), 1, 1),
        (Some("8"), 5, MAX_QUEUES),
    ] {
        let mut keys = vec![("feature-rx-copy", "1")];
        if let Some(max) = max {
            keys.push(("multi-queue-max-queues", max));
        }
        let wanted = Wanted {
            max_queues: want,
            ..Wanted::default()
        };
        let negotiated = offer_of(&keys).negotiate(&wanted).unwrap();
        assert_eq!(negotiated.queues, expect, "{max:?} {want}");
        assert_eq!(negotiated.multi_queue_key, max.is_some());
    }
}

#[test]
fn malformed_backend_keys_read_as_defaults_and_are_counted() {
    let offer = offer_of(&[
        ("feature-rx-copy", "1"),
        ("feature-sg", "yes"),
        ("feature-split-event-channels", "2"),
        ("multi-queue-max-queues", "0"),
        ("feature-gso-tcpv4", ""),
    ]);
    assert_eq!(offer.bad_keys, 4);
    assert!(!offer.sg && !offer.split_event_channels && !offer.gso_tcpv4);
    assert_eq!(offer.max_queues, 0);
    let negotiated = offer.negotiate(&Wanted::default()).unwrap();
    assert_eq!(negotiated.queues, 1);
    assert!(alloc::format!("{negotiated}").ends_with(" bad-backend-keys 4"));
    for huge in ["99999999999", "-1", "2x"] {
        let offer = offer_of(&[("feature-rx-copy", "1"), ("multi-queue-max-queues", huge)]);
        assert_eq!((offer.max_queues, offer.bad_keys), (0, 1), "{huge}");
    }
    // Without rx-copy there is no mode we can run in.
    assert_eq!(
        offer_of(&[("feature-sg", "1")]).negotiate(&Wanted::default()),
        Err(NetError::Unsupported("feature-rx-copy"))
    );
}

fn keys_of(negotiated: &Negotiated, queues: usize) -> BTreeMap<String, String> {
    let queue_keys: Vec<QueueKeys> = (0..queues as u32)
        .map(|q| QueueKeys {
            tx_ring_ref: 10 + q,
            rx_ring_ref: 20 + q,
            tx_port: 30 + q,
            rx_port: if negotiated.split_event_channels {
                40 + q
            } else {
                30 + q
            },
        })
        .collect();
    frontend_keys(negotiated, &queue_keys).into_iter().collect()
}

#[test]
fn frontend_keys_follow_netif_h() {
    let negotiated = offer_of(LINUX_NETBACK)
        .negotiate(&Wanted::default())
        .unwrap();
    let keys = keys_of(&negotiated, 2);
    let expect: BTreeMap<String, String> = [
        ("multi-queue-num-queues", "2"),
        ("queue-0/tx-ring-ref", "10"),
        ("queue-0/rx-ring-ref", "20"),
        ("queue-0/event-channel-tx", "30"),
        ("queue-0/event-channel-rx", "40"),
        ("queue-1/tx-ring-ref", "11"),
        ("queue-1/rx-ring-ref", "21"),
        ("queue-1/event-channel-tx", "31"),
        ("queue-1/event-channel-rx", "41"),
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
        ("feature-no-csum-offload", "0"),
    ]
    .iter()
    .map(|(k, v)| (String::from(*k), String::from(*v)))
    .collect();
    assert_eq!(keys, expect);

    // One queue, one channel, an old back end: the classic keys only.
    let old = offer_of(&[("feature-rx-copy", "1")])
        .negotiate(&Wanted {
            csum_offload: false,
            ..Wanted::default()
        })
        .unwrap();
    let keys = keys_of(&old, 1);
    assert_eq!(
        keys.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "event-channel",
            "feature-no-csum-offload",
            "feature-rx-notify",
            "feature-sg",
            "request-rx-copy",
            "rx-ring-ref",
            "tx-ring-ref"
        ]
    );
    assert_eq!(keys["feature-no-csum-offload"], "1");
    // One queue with a multi-queue back end: top-level keys, count 1.
    let one = offer_of(LINUX_NETBACK)
        .negotiate(&Wanted {
            max_queues: 1,
            ..Wanted::default()
        })
        .unwrap();
    let keys = keys_of(&one, 1);
    assert_eq!(keys["multi-queue-num-queues"], "1");
    assert_eq!(keys["event-channel-rx"], "40");
    assert!(!keys.keys().any(|k| k.starts_with("queue-")));
}

#[test]
fn stats_line_keeps_its_prefix_and_adds_the_new_counters() {
    let stats = NetStats {
        rx_frames: 1,
        queue_rx_frames: [3, 4],
        queue_tx_frames: [5, 6],
        tx_multi_slot: 2,
        ..NetStats::default()
    };
    let line = alloc::format!("{stats}");
    assert!(line.starts_with("netfront rx 1 frames 0 bytes, tx 0 frames 0 bytes, rx_errors 0 tx_errors 0 bad_responses 0 tx_dropped 0 "));
    assert!(line.contains(" tx_multi_slot 2 "));
    assert!(line.ends_with(" queue_rx 3/4 queue_tx 5/6"));
}

// ------------------------------------------------------------ TCP echo

/// How the simulated back end hands one side's frames to the other.
#[derive(Clone, Copy, Debug)]
enum Delivery {
    /// As netback does for a frame from a local stack: `csum_blank` if
    /// the sender left it blank, else `data_validated`.
    Netback,
    /// As if the frame crossed a wire: completed, no flags, so the
    /// receiver checks every sum.
    Wire,
}

/// Two netfronts joined by a simulated back end, an smoltcp interface
/// on each, a TCP client sending 256 KiB to an echo server: every byte
/// must come back, with any link configuration and queue count.
fn tcp_echo(link: LinkConfig, queues: usize, delivery: Delivery, chunk: usize) -> [NetStats; 2] {
    let mut turn = 0;
    let forward = |from: &mut Sim, to: &mut Sim, held: &mut VecDeque<Sent>| {
        held.extend(from.back_take_tx_all(NETIF_RSP_OKAY));
        // The frames take the queues in turn (which queue is the back
        // end's choice), while the queue has room for the chain.
        while let Some(sent) = held.front() {
            let queue = turn % queues;
            let slots = sent.bytes.len().div_ceil(chunk) as u32;
            if to.queues[queue].rx_back.unconsumed_requests() < slots {
                break;
            }
            let mut sent = held.pop_front().unwrap();
            let flags = match delivery {
                Delivery::Netback if sent.flags & NETTXF_CSUM_BLANK != 0 => {
                    NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED
                }
                Delivery::Netback => NETRXF_DATA_VALIDATED,
                Delivery::Wire => {
                    if sent.flags & NETTXF_CSUM_BLANK != 0 {
                        checksum::complete_partial(&mut sent.bytes);
                    }
                    0
                }
            };
            to.back_deliver_chain(queue, &sent.bytes, flags, 0, chunk);
            turn += 1;
        }
    };

    let mut a = sim_with(queues, 16, 16, link);
    let mut b = sim_with(queues, 16, 16, link);
    let (payload, echoed) = tcp_echo_through(&mut a, &mut b, 32 * 1024, 16384, forward);
    assert_eq!(
        echoed.len(),
        payload.len(),
        "{link:?} {queues} {delivery:?}"
    );
    assert!(echoed == payload, "echoed bytes differ");
    let stats = [a.front.stats(), b.front.stats()];
    for side in &stats {
        assert_eq!(
            side.bad_responses + side.tx_dropped + side.rx_errors + side.rx_csum_errors,
            0,
            "{side}"
        );
        assert!(side.tx_bytes >= payload.len() as u64);
        assert!(side.rx_bytes >= payload.len() as u64);
    }
    stats
}

#[test]
fn tcp_echo_with_checksum_offload() {
    let [a, b] = tcp_echo(OFFLOAD, 1, Delivery::Netback, 4096);
    assert!(a.tx_csum_blank > 100 && b.rx_csum_blank > 100);
    let [a, b] = tcp_echo(OFFLOAD, 1, Delivery::Wire, 4096);
    assert!(a.tx_csum_blank > 100);
    assert_eq!(b.rx_csum_blank + b.rx_data_validated, 0, "all checked here");
    let [a, _] = tcp_echo(LinkConfig::default(), 1, Delivery::Wire, 4096);
    assert_eq!(a.tx_csum_blank, 0);
}

#[test]
fn tcp_echo_with_jumbo_frames_over_chains() {
    let jumbo = LinkConfig {
        csum_offload: true,
        ..SG
    };
    let [a, b] = tcp_echo(jumbo, 1, Delivery::Netback, 4096);
    assert!(a.tx_multi_slot > 10 && b.rx_multi_slot > 10, "{a}\n{b}");
    // Small rx slots: every frame over 1000 bytes is a chain.
    let [_, b] = tcp_echo(LinkConfig::default(), 1, Delivery::Wire, 1000);
    assert!(b.rx_multi_slot > 100);
}

#[test]
fn tcp_echo_over_two_queues() {
    let jumbo = LinkConfig {
        csum_offload: true,
        ..SG
    };
    let [a, b] = tcp_echo(jumbo, 2, Delivery::Wire, 4096);
    for side in [a, b] {
        assert!(side.queue_rx_frames.iter().all(|&n| n > 0), "{side}");
    }
}

#[test]
fn offer_keys_are_every_key_the_offer_reads() {
    let mut asked = alloc::vec::Vec::new();
    super::features::BackendOffer::read(|key| {
        asked.push(alloc::string::String::from(key));
        None
    });
    asked.sort();
    let mut listed: alloc::vec::Vec<alloc::string::String> = super::features::OFFER_KEYS
        .iter()
        .map(|key| alloc::string::String::from(*key))
        .collect();
    listed.sort();
    assert_eq!(asked, listed);
}
