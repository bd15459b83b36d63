//! Host tests of GSO on the rx side: frames netback hands over whole,
//! with their extra-info slots, honest and not.

use super::sim::*;
use super::wire::*;
use super::*;

fn gso_link() -> LinkConfig {
    LinkConfig {
        sg: true,
        csum_offload: true,
        max_frame: MAX_FRAME,
        gso_rx: true,
    }
}

fn gso(size: u16) -> ExtraInfo {
    ExtraInfo {
        kind: XEN_NETIF_EXTRA_TYPE_GSO,
        flags: 0,
        gso_size: size,
        gso_type: XEN_NETIF_GSO_TYPE_TCPV4,
    }
}

#[test]
fn the_extra_slot_has_the_c_layout() {
    let extra = gso(1448);
    let slot = extra.to_slot();
    let mut bytes = [0u8; 8];
    crate::shared_ring::RingEntry::encode(&slot, &mut bytes);
    // type, flags, gso.size (LE), gso.type, pad, gso.features.
    assert_eq!(bytes, [1, 0, 0xa8, 0x05, 1, 0, 0, 0]);
    assert_eq!(ExtraInfo::from_slot(&slot), extra);
}

#[test]
fn gso_frames_come_in_whole_and_every_buffer_goes_back() {
    let mut sim = sim_with(1, 8, 64, gso_link());
    // Past the ring's 256 indices, so extra slots are found by index
    // after it wraps.
    for i in 0..40u8 {
        let f = frame(20_000 + usize::from(i) * 1000, i);
        sim.back_deliver_gso(&f, &[gso(1448)]);
        assert_eq!(sim.front.receive().unwrap(), f, "frame {i}");
        assert_eq!(
            sim.queues[0].rx_back.unconsumed_requests(),
            64,
            "every buffer reposted, the extra slot's too (frame {i})"
        );
    }
    // One that fits a single page: its frame ends at the extra slot.
    let small = frame(3000, 7);
    sim.back_deliver_gso(&small, &[gso(1448)]);
    assert_eq!(sim.front.receive().unwrap(), small);
    let biggest = frame(MAX_GSO_FRAME, 9);
    sim.back_deliver_gso(&biggest, &[gso(1448)]);
    assert_eq!(sim.front.receive().unwrap(), biggest);
    let stats = sim.front.stats();
    assert_eq!((stats.rx_gso, stats.rx_frames), (42, 42));
    assert_eq!((stats.bad_responses, stats.rx_errors), (0, 0));
}

#[test]
fn bad_extra_slots_drop_their_frame_only() {
    let mut sim = sim_with(1, 8, 64, gso_link());
    let f = frame(10_000, 1);
    let mut unknown = gso(1448);
    unknown.kind = 4;
    let mut chained = gso(1448);
    chained.flags = XEN_NETIF_EXTRA_FLAG_MORE;
    let mut udp = gso(1448);
    udp.gso_type = 3;
    let cases: [&[ExtraInfo]; 5] = [
        &[unknown],
        &[gso(0)],
        &[udp],
        &[chained, gso(1448)],
        &[chained, unknown],
    ];
    for (case, extras) in cases.iter().enumerate() {
        sim.back_deliver_gso(&f, extras);
        assert_eq!(sim.front.receive(), None, "case {case}");
        assert_eq!(
            sim.queues[0].rx_back.unconsumed_requests(),
            64,
            "case {case}"
        );
        // The next honest frame is whole: the chain was consumed to its end.
        sim.back_deliver_gso(&f, &[gso(1448)]);
        assert_eq!(sim.front.receive().unwrap(), f, "after case {case}");
    }
    let stats = sim.front.stats();
    assert_eq!(stats.bad_responses, 5);
    assert_eq!(stats.rx_gso, 5);
}

#[test]
fn too_long_or_unasked_gso_is_refused() {
    // Longer than any IPv4 packet.
    let mut sim = sim_with(1, 8, 64, gso_link());
    sim.back_deliver_gso(&frame(MAX_GSO_FRAME + 1, 2), &[gso(1448)]);
    assert_eq!(sim.front.receive(), None);
    assert_eq!(sim.front.stats().rx_errors, 1);
    // An extra-info slot never asked for (GSO off): the frame is broken
    // off; the honest frame after it still comes in.
    let mut plain = sim_with(1, 8, 64, LinkConfig::default());
    plain.back_deliver_gso(&frame(1000, 3), &[]);
    assert_eq!(plain.front.receive(), None);
    assert_eq!(plain.front.stats().bad_responses, 1);
    let f = frame(1000, 4);
    plain.back_deliver(&f, 0);
    assert_eq!(plain.front.receive().unwrap(), f);
    // A frame over the MTU without a GSO slot is an error.
    let mut sim = sim_with(1, 8, 64, gso_link());
    sim.back_deliver_chain(0, &frame(3000, 5), NETRXF_DATA_VALIDATED, 0, XEN_PAGE_SIZE);
    assert_eq!(sim.front.receive(), None);
    assert_eq!(sim.front.stats().rx_errors, 1);
}

#[test]
fn staging_stops_at_its_byte_bound() {
    let mut sim = sim_with(1, 8, 128, gso_link());
    for i in 0..6 {
        sim.back_deliver_gso(&frame(60_000, i), &[gso(1448)]);
    }
    let staged = sim.front.service_queue(0);
    assert!(
        staged * 60_000 >= STAGED_BYTES && staged < 6,
        "{staged} frames staged"
    );
    let mut taken = 0;
    while sim.front.receive().is_some() {
        taken += 1;
    }
    assert_eq!(taken, 6, "nothing lost: the rest waited on the ring");
}
