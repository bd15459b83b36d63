//! The backend's feature keys as the frontends read them: every key of
//! the shared parser (`feature-sg`, `max-ring-page-order`, `sectors`,
//! `mac`, …), blkfront's offer at `InitWait` and disk at `Connected`,
//! netfront's offer and its negotiation, and the `virtual-device` id.
//!
//! Input: a list of (key, value) pairs over the keys both backends
//! write; absent keys are absent. What must hold: nothing panics; a MAC
//! that parses prints back to what parses the same; a negotiated link
//! stays within what we asked for and what netfront can do; a disk's
//! sector size stays within the driver's bound.
#![no_main]

use arbitrary::Arbitrary;
use drivers_pv::blkfront::offer::{parse_disk_info, parse_offer, VirtualDevice};
use drivers_pv::netfront::features::{BackendOffer, Wanted, MAX_QUEUES};
use drivers_pv::netfront::{MAX_FRAME, MAX_SG_FRAME};
use drivers_pv::xenbus_state::{
    parse_feature, BackendFeatures, FeatureKey, MacAddress, MAX_SECTOR_SIZE,
};
use libfuzzer_sys::fuzz_target;
use paravane_fuzz::pick;

/// Every key a blkback or netback writes that we read.
const KEYS: [&str; 21] = [
    "feature-sg",
    "multi-queue-max-queues",
    "max-ring-page-order",
    "feature-persistent",
    "feature-max-indirect-segments",
    "sectors",
    "sector-size",
    "mac",
    "info",
    "feature-flush-cache",
    "feature-barrier",
    "feature-rx-copy",
    "feature-split-event-channels",
    "feature-gso-tcpv4",
    "feature-gso-tcpv6",
    "feature-ipv6-csum-offload",
    "feature-ctrl-ring",
    "virtual-device",
    "mtu",
    "state",
    "backend-id",
];

#[derive(Arbitrary, Debug)]
struct Input {
    keys: Vec<(u8, Vec<u8>)>,
    max_queues: u8,
    csum_offload: bool,
    mtu: Option<u16>,
    ring_order: u8,
}

fuzz_target!(|input: Input| {
    let keys: Vec<(&str, Vec<u8>)> = input
        .keys
        .into_iter()
        .take(32)
        .map(|(key, value)| (pick(&KEYS, key), value))
        .collect();
    // The last write of a key wins, as in xenstore.
    let lookup = |name: &str| {
        keys.iter()
            .rev()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_slice())
    };

    // The shared parser, key by key.
    let mut features = BackendFeatures::default();
    for (name, value) in &keys {
        if let Some(key) = FeatureKey::from_name(name) {
            let parsed = parse_feature(key, value);
            assert_eq!(parsed.is_ok(), features.set(key, value).is_ok());
            if let Err(error) = parsed {
                let _ = format!("{error}");
            }
        }
        if let Ok(mac) = MacAddress::parse(value) {
            assert_eq!(MacAddress::parse(mac.to_string().as_bytes()), Ok(mac));
        }
    }
    let _ = features.ring_page_order(input.ring_order);

    // blkfront.
    if let Some(raw) = lookup("virtual-device") {
        if let Ok(device) = VirtualDevice::parse(raw) {
            let _ = (
                device.to_string(),
                device.ring_handle(),
                device.is_extended(),
            );
        }
    }
    if let Ok(offer) = parse_offer(lookup) {
        for asked in [false, true] {
            if let Ok(disk) = parse_disk_info(&offer, asked, lookup) {
                assert!(disk.sector_size <= MAX_SECTOR_SIZE);
                // Persistent grants only when we asked.
                assert!(asked || !disk.persistent.is_on());
            }
        }
    }

    // netfront.
    let offer = BackendOffer::read(|name| lookup(name).map(<[u8]>::to_vec));
    let wanted = Wanted {
        max_queues: usize::from(input.max_queues),
        csum_offload: input.csum_offload,
        mtu: input.mtu.map(usize::from),
        gso_rx: input.csum_offload || input.max_queues % 2 == 0,
    };
    if let Ok(negotiated) = offer.negotiate(&wanted) {
        assert!(negotiated.queues >= 1 && negotiated.queues <= MAX_QUEUES);
        assert!(negotiated.queues <= wanted.max_queues.max(1));
        let limit = if negotiated.sg {
            MAX_SG_FRAME
        } else {
            MAX_FRAME
        };
        assert!(negotiated.max_frame <= limit);
        // GSO frames come with partial checksums: never without offload.
        assert!(!negotiated.gso_rx || (wanted.gso_rx && negotiated.csum_offload));
        let _ = format!("{negotiated}");
    }
});
