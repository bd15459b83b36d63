//! Netfront against a simulated netback: frames both ways, buffer
//! recycling, and a back end that lies about ids, lengths and flags.

use alloc::vec;
use alloc::vec::Vec;

use super::sim::*;
use super::wire::*;
use super::*;
use crate::shared_ring::RingEntry;

#[test]
fn entries_have_the_c_sizes_and_layouts() {
    let mut out = [0u8; 12];
    TxRequest {
        gref: 0x0403_0201,
        offset: 0x0605,
        flags: 0x0807,
        id: 0x0a09,
        size: 0x0c0b,
    }
    .encode(&mut out);
    assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    let mut out = [0u8; 8];
    RxRequest {
        id: 0x0201,
        gref: 0x0807_0605,
    }
    .encode(&mut out);
    assert_eq!(out, [1, 2, 0, 0, 5, 6, 7, 8]);
    assert_eq!(
        RxResponse::decode(&[1, 0, 2, 0, 3, 0, 0xfe, 0xff]).unwrap(),
        RxResponse {
            id: 1,
            offset: 2,
            flags: 3,
            status: -2
        }
    );
    assert!(RxResponse::decode(&[1, 0, 2, 0, 3, 0, 0xfd, 0xff]).is_err());
    assert!(TxResponse::decode(&[1, 0, 2, 0]).is_err());
    assert_eq!(
        TxResponse::decode(&[7, 0, 0xff, 0xff]).unwrap(),
        TxResponse { id: 7, status: -1 }
    );
}

#[test]
fn frames_go_out_and_buffers_come_back() {
    let mut sim = sim(4, 8);
    for round in 0..10u8 {
        let sent: Vec<_> = (0..4)
            .map(|i| frame(60 + usize::from(i) * 400, round ^ i))
            .collect();
        for f in &sent {
            sim.front.send(&mut f.clone()).unwrap();
        }
        assert_eq!(sim.front.tx_free(), 0);
        assert_eq!(sim.back_take_tx(NETIF_RSP_OKAY), sent);
        assert_eq!(sim.front.reclaim_tx(), 4);
    }
    assert!(sim.notified.count_for(0, RingKind::Tx) >= 1);
    let stats = sim.front.stats();
    assert_eq!(stats.tx_frames, 40);
    assert_eq!(stats.tx_errors, 0);
    assert_eq!(sim.front.send(&mut [0; 13]), Err(NetError::BadLength(13)));
    assert_eq!(
        sim.front.send(&mut [0; MAX_FRAME + 1]),
        Err(NetError::BadLength(MAX_FRAME + 1))
    );
}

#[test]
fn frames_come_in_and_rx_buffers_are_reposted() {
    let mut sim = sim(4, 8);
    assert_eq!(sim.queues[0].rx_back.unconsumed_requests(), 8);
    for i in 0..100u8 {
        let f = frame(42 + usize::from(i) * 10, i);
        sim.back_deliver(&f, u16::from(i) * 3);
        assert_eq!(sim.front.receive().unwrap(), f);
        assert_eq!(sim.queues[0].rx_back.unconsumed_requests(), 8, "reposted");
    }
    assert!(sim.front.receive().is_none());
    assert_eq!(sim.front.stats().rx_frames, 100);
}

#[test]
fn a_lying_back_end_is_counted_and_survived() {
    let mut sim = sim(2, 4);
    let lies = [
        // Unknown id.
        RxResponse {
            id: 99,
            offset: 0,
            flags: 0,
            status: 60,
        },
        // Runs off the page.
        RxResponse {
            id: 0,
            offset: 4000,
            flags: 0,
            status: 200,
        },
        // Flags we never negotiated (GSO's extra info).
        RxResponse {
            id: 1,
            offset: 0,
            flags: NETRXF_EXTRA_INFO,
            status: 60,
        },
        // Unknown flag bits.
        RxResponse {
            id: 2,
            offset: 0,
            flags: 1 << 9,
            status: 60,
        },
    ];
    for lie in lies {
        sim.back_raw_rx(lie);
        assert!(sim.front.receive().is_none());
    }
    assert_eq!(sim.front.stats().bad_responses, 4);
    // Longer than our MTU: not a lie (dom0's MTU may be larger), dropped
    // as an rx error.
    sim.back_raw_rx(RxResponse {
        id: 0,
        offset: 0,
        flags: 0,
        status: 3000,
    });
    assert!(sim.front.receive().is_none());
    assert_eq!(sim.front.stats().rx_errors, 1);
    // An honest error status is an rx error and the buffer is reposted.
    sim.back_raw_rx(RxResponse {
        id: 3,
        offset: 0,
        flags: 0,
        status: NETIF_RSP_ERROR,
    });
    assert!(sim.front.receive().is_none());
    assert_eq!(sim.front.stats().rx_errors, 2);
    // The ids given back were reposted: good frames still arrive.
    let f = frame(100, 9);
    sim.back_deliver(&f, 0);
    assert_eq!(sim.front.receive().unwrap(), f);

    // Tx: a response for an id never sent, then one for an id already
    // answered; the real answers still free their buffers.
    sim.front.send(&mut frame(60, 1)).unwrap();
    sim.front.send(&mut frame(61, 2)).unwrap();
    let back = &mut sim.queues[0].tx_back;
    let first = back.take_request().unwrap().unwrap();
    let second = back.take_request().unwrap().unwrap();
    for id in [first.id + 7, first.id] {
        back.push_response(&TxResponse { id, status: 0 }).unwrap();
    }
    back.push_responses_and_check_notify();
    assert_eq!(sim.front.reclaim_tx(), 1);
    assert_eq!(sim.front.stats().bad_responses, 5);
    sim.front.send(&mut frame(62, 3)).unwrap();
    // The bad answer used the ring slot of `second`, which is still ours
    // to account for: a back end answering it late is believed.
    let back = &mut sim.queues[0].tx_back;
    let _third = back.take_request().unwrap().unwrap();
    back.push_response(&TxResponse {
        id: second.id,
        status: NETIF_RSP_DROPPED,
    })
    .unwrap();
    back.push_responses_and_check_notify();
    assert_eq!(sim.front.reclaim_tx(), 1);
    assert_eq!(sim.front.stats().bad_responses, 5);
    assert_eq!(sim.front.stats().tx_errors, 1);
    assert_eq!(sim.front.tx_free(), 1);
}

#[test]
fn smoltcp_answers_arp_through_the_device() {
    use smoltcp::iface::{Config, Interface, SocketSet};
    use smoltcp::time::Instant;
    use smoltcp::wire::{
        ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
        EthernetRepr, IpCidr, Ipv4Address,
    };

    let mut sim = sim(8, 8);
    let mac = EthernetAddress(sim.front.mac());
    let mut iface = Interface::new(Config::new(mac.into()), &mut sim.front, Instant::ZERO);
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::new(Ipv4Address::new(10, 0, 0, 2).into(), 24))
            .unwrap()
    });
    let peer = EthernetAddress([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: peer,
        source_protocol_addr: Ipv4Address::new(10, 0, 0, 254),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: Ipv4Address::new(10, 0, 0, 2),
    };
    let eth = EthernetRepr {
        src_addr: peer,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let mut bytes = vec![0u8; eth.buffer_len() + arp.buffer_len()];
    let mut frame = EthernetFrame::new_unchecked(&mut bytes);
    eth.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    sim.back_deliver(&bytes, 0);

    let mut sockets = SocketSet::new(Vec::new());
    iface.poll(Instant::from_millis(1), &mut sim.front, &mut sockets);
    let sent = sim.back_take_tx(NETIF_RSP_OKAY);
    assert_eq!(sent.len(), 1);
    let reply = EthernetFrame::new_checked(&sent[0][..]).unwrap();
    assert_eq!(reply.dst_addr(), peer);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(reply.payload()).unwrap()).unwrap();
    assert!(matches!(
        arp,
        ArpRepr::EthernetIpv4 { operation: ArpOperation::Reply, source_hardware_addr, .. }
            if source_hardware_addr == mac
    ));
}

/// Two netfronts joined by a simulated back end that forwards each one's
/// tx frames into the other's rx ring (holding them while no rx buffer is
/// posted), with an smoltcp interface on each: a TCP client sends 256 KiB
/// to an echo server and gets every byte back.
#[test]
fn tcp_echo_between_two_netfronts() {
    use alloc::collections::VecDeque;

    fn forward(from: &mut Sim, to: &mut Sim, held: &mut VecDeque<Vec<u8>>) {
        held.extend(from.back_take_tx(NETIF_RSP_OKAY));
        while to.queues[0].rx_back.unconsumed_requests() > 0 {
            let Some(frame) = held.pop_front() else { break };
            to.back_deliver(&frame, 0);
        }
    }

    let mut a = sim(8, 8);
    let mut b = sim(8, 8);
    let (payload, echoed) = tcp_echo_through(&mut a, &mut b, 16 * 1024, 4096, forward);
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "echoed bytes differ");
    for side in [&a, &b] {
        let stats = side.front.stats();
        assert_eq!(stats.bad_responses + stats.tx_dropped + stats.rx_errors, 0);
        assert!(stats.tx_bytes >= payload.len() as u64);
        assert!(stats.rx_bytes >= payload.len() as u64);
    }
}

/// After frames went out and netback answered them, with nothing
/// received, there is nothing to do: `final_check` must say so (it
/// said "pending" for ever while the tx responses sat in the ring,
/// which made every idle loop above it spin after the first frame).
#[test]
fn answered_tx_leaves_nothing_pending() {
    let mut sim = sim(4, 8);
    assert!(!sim.front.final_check(), "pending before any traffic");
    sim.front.send(&mut frame(60, 1)).unwrap();
    sim.front.send(&mut frame(90, 2)).unwrap();
    assert_eq!(sim.back_take_tx(NETIF_RSP_OKAY).len(), 2);
    assert!(
        !sim.front.final_check(),
        "answered tx responses must not count as pending work"
    );
    assert_eq!(sim.front.tx_free(), 4, "final_check reclaims tx buffers");
    assert!(!sim.front.final_check(), "still idle on the second look");
    // A received frame is work, and stays so until it is taken.
    let f = frame(64, 3);
    sim.back_deliver(&f, 0);
    assert!(sim.front.final_check());
    assert_eq!(sim.front.receive().unwrap(), f);
    assert!(!sim.front.final_check());
}

/// A vif whose backend goes away mid-stream (`xl network-detach`: every
/// frame in its rings is lost, nothing is delivered for a while) and
/// comes back as a new device (new rings and buffers) under the same
/// interface and sockets: TCP recovers and every byte acknowledged
/// arrives, in order.
#[test]
fn a_stream_survives_its_backend_going_away_and_a_new_device() {
    use core::cell::Cell;
    let down = Cell::new(false);
    let swaps = Cell::new(0);
    let forward =
        |from: &mut Sim, to: &mut Sim, held: &mut alloc::collections::VecDeque<Vec<u8>>| {
            for frame in from.back_take_tx(NETIF_RSP_OKAY) {
                // While the backend is gone nothing gets through.
                if !down.get() {
                    held.push_back(frame);
                }
            }
            while to.queues[0].rx_back.unconsumed_requests() > 0 {
                let Some(frame) = held.pop_front() else { break };
                to.back_deliver(&frame, 0);
            }
        };
    let mut a = sim(8, 8);
    let mut b = sim(8, 8);
    let (payload, echoed) = tcp_echo_through_with(
        &mut a,
        &mut b,
        16 * 1024,
        4096,
        forward,
        |step, a| match step {
            // The backend closes: what is in the rings is lost.
            40 => down.set(true),
            // A new device: fresh rings and buffers.
            400 => {
                *a = sim(8, 8);
                swaps.set(swaps.get() + 1);
                down.set(false);
            }
            _ => {}
        },
    );
    assert_eq!(swaps.get(), 1, "the device was replaced mid-stream");
    assert_eq!(echoed.len(), payload.len(), "every byte came back");
    assert!(echoed == payload, "in order and intact");
}

#[test]
fn serving_one_queue_stages_only_its_frames_and_receive_hands_them_out_first() {
    let mut sim = sim_with(2, 8, 8, LinkConfig::default());
    let on_0 = frame(60, 1);
    let on_1 = frame(70, 2);
    sim.back_deliver_chain(0, &on_0, NETRXF_DATA_VALIDATED, 0, XEN_PAGE_SIZE);
    sim.back_deliver_chain(1, &on_1, NETRXF_DATA_VALIDATED, 0, XEN_PAGE_SIZE);
    assert_eq!(sim.front.service_queue(1), 1);
    assert_eq!(sim.queues[1].rx_back.unconsumed_requests(), 8, "reposted");
    assert_eq!(
        sim.queues[0].rx_back.unconsumed_requests(),
        7,
        "queue 0 untouched"
    );
    assert_eq!(sim.front.service_queue(7), 0, "no such queue");
    // Staged work counts as pending, so the stack does not sleep on it.
    assert!(sim.front.final_check());
    assert_eq!(sim.front.receive().unwrap(), on_1, "the staged frame first");
    assert_eq!(sim.front.receive().unwrap(), on_0);
    assert!(sim.front.receive().is_none());
    assert_eq!(sim.front.stats().queue_rx_frames[1], 1);
}

#[test]
fn staging_stops_at_its_bound() {
    let mut sim = sim_with(1, 8, 8, LinkConfig::default());
    let mut delivered = 0;
    while delivered < STAGED_FRAMES + 3 {
        for _ in 0..8 {
            sim.back_deliver(&frame(60, delivered as u8), 0);
            delivered += 1;
        }
        sim.front.service_queue(0);
    }
    assert_eq!(sim.front.service_queue(0), 0, "full: nothing more staged");
    let mut taken = 0;
    while sim.front.receive().is_some() {
        taken += 1;
    }
    assert_eq!(
        taken, delivered,
        "nothing lost: the rest waited on the ring"
    );
}
