//! The handshake machine, step by step and exhaustively, and the parsers
//! on good and malformed values.

use alloc::string::ToString;
use alloc::vec::Vec;

use super::*;
use XenbusState as S;

const ALL_STATES: [XenbusState; 9] = [
    S::Unknown,
    S::Initialising,
    S::InitWait,
    S::Initialised,
    S::Connected,
    S::Closing,
    S::Closed,
    S::Reconfiguring,
    S::Reconfigured,
];

// ---------------------------------------------------------------- state values

#[test]
fn states_parse_and_print() {
    for (number, state) in ALL_STATES.into_iter().enumerate() {
        assert_eq!(state as u8 as usize, number);
        assert_eq!(XenbusState::from_u32(number as u32), Some(state));
        assert_eq!(XenbusState::parse(state.as_str().as_bytes()), Ok(state));
    }
    assert_eq!(XenbusState::parse(b"04"), Ok(S::Connected));
    assert_eq!(XenbusState::from_u32(9), None);
}

#[test]
fn malformed_states_are_errors() {
    let not_digit = Err(StateError::Number(NumberError::NotDigit));
    assert_eq!(
        XenbusState::parse(b""),
        Err(StateError::Number(NumberError::Empty))
    );
    for raw in [
        &b"4\n"[..],
        b" 4",
        b"4 ",
        b"+4",
        b"-1",
        b"4\0",
        b"0x4",
        b"four",
        b"\xff",
        b"4.0",
    ] {
        assert_eq!(XenbusState::parse(raw), not_digit, "{raw:?}");
    }
    for raw in [&b"9"[..], b"10", b"4294967296", b"99999999999999999999999"] {
        assert_eq!(XenbusState::parse(raw), Err(StateError::Unknown), "{raw:?}");
    }
    assert_eq!(
        StateError::Unknown.to_string(),
        "xenbus state: no such state"
    );
    assert_eq!(
        StateError::Number(NumberError::NotDigit).to_string(),
        "xenbus state: not a decimal number"
    );
}

// ---------------------------------------------------------------- the handshake

fn stepped(
    style: ConnectStyle,
    setup: &[XenbusState],
    backend: XenbusState,
) -> (Action, FrontendState) {
    let mut front = FrontendState::new(style);
    for &state in setup {
        front.step(state);
    }
    let action = front.step(backend);
    (action, front)
}

#[test]
fn netfront_connects_directly() {
    let mut front = FrontendState::new(ConnectStyle::Direct);
    assert_eq!(front.own(), S::Initialising);
    assert_eq!(front.step(S::Initialising), Action::Wait);
    assert_eq!(
        front.step(S::InitWait),
        Action::Publish { then: S::Connected }
    );
    assert_eq!(front.own(), S::Connected);
    assert!(front.is_connected());
    // The backend has not caught up yet, then has.
    assert_eq!(front.step(S::InitWait), Action::Wait);
    assert_eq!(front.step(S::Connected), Action::Wait);
    assert!(front.is_connected());
}

#[test]
fn blkfront_connects_in_two_steps() {
    let mut front = FrontendState::new(ConnectStyle::TwoStep);
    assert_eq!(
        front.step(S::InitWait),
        Action::Publish {
            then: S::Initialised
        }
    );
    assert_eq!(front.own(), S::Initialised);
    assert!(!front.is_connected());
    assert_eq!(front.step(S::InitWait), Action::Wait);
    assert_eq!(front.step(S::Initialised), Action::Wait);
    assert_eq!(front.step(S::Connected), Action::Connect);
    assert_eq!(front.own(), S::Connected);
    assert!(front.is_connected());
    assert_eq!(front.step(S::Connected), Action::Wait);
}

#[test]
fn a_backend_in_initialised_is_also_ready_for_our_rings() {
    let (action, front) = stepped(ConnectStyle::TwoStep, &[], S::Initialised);
    assert_eq!(
        action,
        Action::Publish {
            then: S::Initialised
        }
    );
    assert_eq!(front.own(), S::Initialised);
}

#[test]
fn initialising_waits_for_a_backend_not_ready() {
    for backend in [
        S::Unknown,
        S::Initialising,
        S::Closing,
        S::Closed,
        S::Reconfiguring,
        S::Reconfigured,
    ] {
        for style in [ConnectStyle::Direct, ConnectStyle::TwoStep] {
            let (action, front) = stepped(style, &[], backend);
            assert_eq!(action, Action::Wait, "{backend:?}");
            assert_eq!(front.own(), S::Initialising);
        }
    }
}

#[test]
fn connected_ignores_states_that_do_not_end_the_connection() {
    for backend in [
        S::Unknown,
        S::Initialising,
        S::InitWait,
        S::Initialised,
        S::Connected,
        S::Reconfiguring,
        S::Reconfigured,
    ] {
        let (action, front) = stepped(ConnectStyle::Direct, &[S::InitWait], backend);
        assert_eq!(action, Action::Wait, "{backend:?}");
        assert!(front.is_connected());
    }
}

#[test]
fn backend_closing_or_closed_tears_the_connection_down() {
    for setup in [
        &[S::InitWait][..],               // TwoStep: Initialised
        &[S::InitWait, S::Connected][..], // TwoStep: Connected
    ] {
        for backend in [S::Closing, S::Closed] {
            let (action, front) = stepped(ConnectStyle::TwoStep, setup, backend);
            assert_eq!(action, Action::TearDown);
            assert_eq!(action.state_to_write(), Some(S::Closed));
            assert_eq!(front.own(), S::Closed);
            assert!(front.wanted());
        }
    }
}

#[test]
fn a_restarted_backend_is_reconnected() {
    // Connected; the backend closes (Closing, Closed), Linux-style waits
    // for our Initialising, goes InitWait, and we publish again.
    let mut front = FrontendState::new(ConnectStyle::Direct);
    front.step(S::InitWait);
    assert_eq!(front.step(S::Closing), Action::TearDown);
    assert_eq!(front.step(S::Closing), Action::Wait);
    assert_eq!(front.step(S::Closed), Action::Reinitialise);
    assert_eq!(front.own(), S::Initialising);
    assert_eq!(front.step(S::Closed), Action::Wait);
    assert_eq!(
        front.step(S::InitWait),
        Action::Publish { then: S::Connected }
    );
    assert!(front.is_connected());
}

#[test]
fn a_restart_seen_only_as_its_last_state_still_reconnects() {
    // Watches coalesce: from Connected we may see Closed directly, and
    // from Closed we may see InitWait (a backend that resets itself).
    let mut front = FrontendState::new(ConnectStyle::TwoStep);
    front.step(S::InitWait);
    front.step(S::Connected);
    assert_eq!(front.step(S::Closed), Action::TearDown);
    assert_eq!(front.step(S::InitWait), Action::Reinitialise);
    assert_eq!(
        front.step(S::InitWait),
        Action::Publish {
            then: S::Initialised
        }
    );
    assert_eq!(front.step(S::Connected), Action::Connect);
}

#[test]
fn a_stale_connected_backend_is_reset_first() {
    // We (re)started, the backend is still Connected to our predecessor.
    let mut front = FrontendState::new(ConnectStyle::TwoStep);
    assert_eq!(front.step(S::Connected), Action::BeginClose);
    assert_eq!(front.own(), S::Closing);
    assert_eq!(front.step(S::Connected), Action::Wait);
    assert_eq!(front.step(S::Closing), Action::TearDown);
    assert_eq!(front.step(S::Closed), Action::Reinitialise);
    assert_eq!(
        front.step(S::InitWait),
        Action::Publish {
            then: S::Initialised
        }
    );
}

#[test]
fn closing_ourselves_waits_for_the_backend_to_let_go() {
    let mut front = FrontendState::new(ConnectStyle::Direct);
    front.step(S::InitWait);
    front.step(S::Connected);
    assert_eq!(front.close(), Action::BeginClose);
    assert_eq!(front.own(), S::Closing);
    assert!(!front.wanted());
    // Still mapped by the backend.
    assert_eq!(front.step(S::Connected), Action::Wait);
    assert_eq!(front.step(S::Closing), Action::TearDown);
    assert_eq!(front.own(), S::Closed);
    // Not wanted: no reconnection, whatever the backend does.
    for backend in ALL_STATES {
        assert_eq!(front.step(backend), Action::Wait, "{backend:?}");
    }
    assert_eq!(front.close(), Action::Wait);
}

#[test]
fn close_before_publishing_needs_no_handshake() {
    let mut front = FrontendState::new(ConnectStyle::Direct);
    assert_eq!(front.close(), Action::TearDown);
    assert_eq!(front.own(), S::Closed);
    assert_eq!(front.close(), Action::Wait);
    assert_eq!(front.step(S::InitWait), Action::Wait);
}

#[test]
fn closing_with_a_backend_that_never_connected() {
    // We published, then closed; the backend was still in InitWait: it
    // never mapped anything, so we can release at once.
    let mut front = FrontendState::new(ConnectStyle::TwoStep);
    front.step(S::InitWait);
    assert_eq!(front.close(), Action::BeginClose);
    assert_eq!(front.step(S::InitWait), Action::TearDown);
    assert_eq!(front.step(S::InitWait), Action::Wait);
}

#[test]
fn garbage_backend_state_is_an_error_and_changes_nothing() {
    let mut front = FrontendState::new(ConnectStyle::Direct);
    front.step(S::InitWait);
    let before = front;
    for raw in [&b"4\n"[..], b"", b"banana", b"12", b"-5"] {
        assert!(front.backend_changed(raw).is_err(), "{raw:?}");
        assert_eq!(front, before);
    }
    assert_eq!(front.backend_changed(b"5"), Ok(Action::TearDown));
}

#[test]
fn every_reachable_pair_settles() {
    // From every state the machine can be in, whatever the backend holds
    // and keeps holding, re-stepping reaches Wait within four actions,
    // and every action is one the driver can carry out from there.
    let mut starts = Vec::new();
    for style in [ConnectStyle::Direct, ConnectStyle::TwoStep] {
        for path in [
            &[][..],
            &[S::InitWait][..],
            &[S::InitWait, S::Connected][..],
            &[S::Connected][..],
            &[S::InitWait, S::Closing][..],
            &[S::InitWait, S::Closed, S::Closed][..],
        ] {
            for close in [false, true] {
                let mut front = FrontendState::new(style);
                for &state in path {
                    front.step(state);
                }
                if close {
                    front.close();
                }
                starts.push(front);
            }
        }
    }
    let mut owns = Vec::new();
    for start in starts {
        if !owns.contains(&start.own()) {
            owns.push(start.own());
        }
        for backend in ALL_STATES {
            let mut front = start;
            let mut actions = 0;
            loop {
                let before = front.own();
                let action = front.step(backend);
                if action == Action::Wait {
                    assert_eq!(front.own(), before);
                    break;
                }
                match action {
                    Action::Connect => assert_eq!(before, S::Initialised),
                    Action::Publish { .. } => assert_eq!(before, S::Initialising),
                    Action::BeginClose => {
                        assert!(matches!(
                            before,
                            S::Initialising | S::Initialised | S::Connected
                        ))
                    }
                    Action::Reinitialise => assert!(front.wanted()),
                    _ => {}
                }
                actions += 1;
                assert!(
                    actions <= 4,
                    "{start:?} against {backend:?} does not settle"
                );
            }
        }
    }
    assert_eq!(owns.len(), 5, "all five frontend states reached: {owns:?}");
}

// ---------------------------------------------------------------- numbers

#[test]
fn numbers_parse_strictly() {
    assert_eq!(parse_u64(b"0"), Ok(0));
    assert_eq!(parse_u64(b"18446744073709551615"), Ok(u64::MAX));
    assert_eq!(parse_u64(b"000000000000000000000000042"), Ok(42));
    assert_eq!(
        parse_u64(b"18446744073709551616"),
        Err(NumberError::Overflow)
    );
    assert_eq!(
        parse_u64(b"123456789012345678901"),
        Err(NumberError::Overflow)
    );
    assert_eq!(parse_u64(b""), Err(NumberError::Empty));
    assert_eq!(parse_u64(b"1 "), Err(NumberError::NotDigit));
    assert_eq!(parse_u32(b"4294967295"), Ok(u32::MAX));
    assert_eq!(parse_u32(b"4294967296"), Err(NumberError::Overflow));
}

// ---------------------------------------------------------------- features

fn err(key: FeatureKey, kind: FeatureErrorKind) -> Result<FeatureValue, FeatureError> {
    Err(FeatureError { key, kind })
}

#[test]
fn feature_keys_round_trip_their_names() {
    for key in FeatureKey::ALL {
        assert_eq!(FeatureKey::from_name(key.name()), Some(key));
    }
    assert_eq!(FeatureKey::from_name("feature-gso-tcpv4"), None);
}

#[test]
fn flags() {
    use FeatureKey::*;
    for key in [FeatureSg, FeaturePersistent] {
        assert_eq!(parse_feature(key, b"0"), Ok(FeatureValue::Flag(false)));
        assert_eq!(parse_feature(key, b"1"), Ok(FeatureValue::Flag(true)));
        assert_eq!(
            parse_feature(key, b"2"),
            err(key, FeatureErrorKind::NotAFlag)
        );
        assert_eq!(
            parse_feature(key, b"01"),
            err(key, FeatureErrorKind::NotAFlag)
        );
        assert_eq!(
            parse_feature(key, b"yes"),
            err(key, FeatureErrorKind::Number(NumberError::NotDigit))
        );
        assert_eq!(
            parse_feature(key, b""),
            err(key, FeatureErrorKind::Number(NumberError::Empty))
        );
        assert_eq!(
            parse_feature(key, b"1\n"),
            err(key, FeatureErrorKind::Number(NumberError::NotDigit))
        );
    }
}

#[test]
fn counts_and_orders() {
    use FeatureKey::*;
    assert_eq!(
        parse_feature(MultiQueueMaxQueues, b"8"),
        Ok(FeatureValue::Count(8))
    );
    assert_eq!(
        parse_feature(MultiQueueMaxQueues, b"0"),
        err(MultiQueueMaxQueues, FeatureErrorKind::OutOfRange)
    );
    assert_eq!(
        parse_feature(MultiQueueMaxQueues, b"4294967296"),
        err(
            MultiQueueMaxQueues,
            FeatureErrorKind::Number(NumberError::Overflow)
        )
    );
    assert_eq!(
        parse_feature(FeatureMaxIndirectSegments, b"0"),
        Ok(FeatureValue::Count(0))
    );
    assert_eq!(
        parse_feature(FeatureMaxIndirectSegments, b"256"),
        Ok(FeatureValue::Count(256))
    );
    assert_eq!(
        parse_feature(FeatureMaxIndirectSegments, b"-1"),
        err(
            FeatureMaxIndirectSegments,
            FeatureErrorKind::Number(NumberError::NotDigit)
        )
    );
    assert_eq!(
        parse_feature(MaxRingPageOrder, b"4"),
        Ok(FeatureValue::PageOrder(4))
    );
    assert_eq!(
        parse_feature(MaxRingPageOrder, b"31"),
        Ok(FeatureValue::PageOrder(31))
    );
    for raw in [&b"32"[..], b"255", b"256", b"4294967295"] {
        assert_eq!(
            parse_feature(MaxRingPageOrder, raw),
            err(MaxRingPageOrder, FeatureErrorKind::OutOfRange),
            "{raw:?}"
        );
    }
}

#[test]
fn disk_geometry() {
    use FeatureKey::*;
    assert_eq!(
        parse_feature(Sectors, b"2097152"),
        Ok(FeatureValue::Sectors(2_097_152))
    );
    assert_eq!(
        parse_feature(Sectors, b"18446744073709551615"),
        Ok(FeatureValue::Sectors(u64::MAX))
    );
    assert_eq!(
        parse_feature(Sectors, b"18446744073709551616"),
        err(Sectors, FeatureErrorKind::Number(NumberError::Overflow))
    );
    assert_eq!(
        parse_feature(Sectors, b"1e9"),
        err(Sectors, FeatureErrorKind::Number(NumberError::NotDigit))
    );
    for size in [512u32, 1024, 2048, 4096] {
        assert_eq!(
            parse_feature(SectorSize, size.to_string().as_bytes()),
            Ok(FeatureValue::SectorSize(size))
        );
    }
    // Too small, not a power of two, or larger than a page (a backend
    // announcing 2^31 would make the frontend allocate 2 GiB).
    for raw in [
        &b"0"[..],
        b"256",
        b"511",
        b"513",
        b"1000",
        b"3072",
        b"8192",
        b"65536",
        b"2147483648",
    ] {
        assert_eq!(
            parse_feature(SectorSize, raw),
            err(SectorSize, FeatureErrorKind::OutOfRange),
            "{raw:?}"
        );
    }
}

#[test]
fn mac_addresses() {
    let mac = MacAddress([0x00, 0x16, 0x3e, 0xab, 0xCD, 0xef]);
    assert_eq!(
        parse_feature(FeatureKey::Mac, b"00:16:3e:ab:CD:ef"),
        Ok(FeatureValue::Mac(mac))
    );
    assert_eq!(mac.to_string(), "00:16:3e:ab:cd:ef");
    for raw in [
        &b""[..],
        b"00:16:3e:ab:cd",
        b"00:16:3e:ab:cd:ef:",
        b"00:16:3e:ab:cd:ef\n",
        b"0:16:3e:ab:cd:eff",
        b"00-16-3e-ab-cd-ef",
        b"00:16:3e:ab:cd:eg",
        b"00:16:3e:ab:cd:e ",
        b"0016.3eab.cdef.xx",
        b"00:16:3e:ab:cd:\xff\xff",
        b"+0:16:3e:ab:cd:ef",
    ] {
        assert_eq!(
            parse_feature(FeatureKey::Mac, raw),
            err(FeatureKey::Mac, FeatureErrorKind::BadMac),
            "{raw:?}"
        );
    }
}

#[test]
fn backend_features_collect_with_defaults() {
    let mut features = BackendFeatures::default();
    assert_eq!(features.max_queues, 1);
    assert_eq!(features.ring_page_order(4), 0);
    let node = |key: FeatureKey| key.name();
    let values: [(&str, &[u8]); 8] = [
        (node(FeatureKey::FeatureSg), b"1"),
        (node(FeatureKey::MultiQueueMaxQueues), b"4"),
        (node(FeatureKey::MaxRingPageOrder), b"6"),
        (node(FeatureKey::FeaturePersistent), b"1"),
        (node(FeatureKey::FeatureMaxIndirectSegments), b"256"),
        (node(FeatureKey::Sectors), b"204800"),
        (node(FeatureKey::SectorSize), b"4096"),
        (node(FeatureKey::Mac), b"00:16:3e:00:00:01"),
    ];
    for (name, raw) in values {
        let key = FeatureKey::from_name(name).unwrap();
        features.set(key, raw).unwrap();
    }
    assert_eq!(
        features,
        BackendFeatures {
            sg: true,
            max_queues: 4,
            max_ring_page_order: 6,
            persistent: true,
            max_indirect_segments: 256,
            sectors: Some(204_800),
            sector_size: Some(4096),
            mac: Some(MacAddress([0x00, 0x16, 0x3e, 0, 0, 1])),
        }
    );
    assert_eq!(features.ring_page_order(4), 4);
    assert_eq!(features.ring_page_order(8), 6);
    // A malformed value is reported and leaves the field alone.
    let before = features;
    let error = features.set(FeatureKey::SectorSize, b"4097").unwrap_err();
    assert_eq!(
        error,
        FeatureError {
            key: FeatureKey::SectorSize,
            kind: FeatureErrorKind::OutOfRange
        }
    );
    assert_eq!(error.to_string(), "backend sector-size: out of range");
    assert!(features.set(FeatureKey::FeatureSg, b"true").is_err());
    assert!(features.set(FeatureKey::Mac, b"nope").is_err());
    assert_eq!(features, before);
}

#[test]
fn feature_errors_display() {
    let cases = [
        (
            FeatureKey::MaxRingPageOrder,
            FeatureErrorKind::Number(NumberError::NotDigit),
            "backend max-ring-page-order: not a decimal number",
        ),
        (
            FeatureKey::FeatureSg,
            FeatureErrorKind::NotAFlag,
            "backend feature-sg: not 0 or 1",
        ),
        (
            FeatureKey::Mac,
            FeatureErrorKind::BadMac,
            "backend mac: not aa:bb:cc:dd:ee:ff",
        ),
    ];
    for (key, kind, text) in cases {
        assert_eq!(FeatureError { key, kind }.to_string(), text);
    }
}
