//! The xenbus handshake: the backend's `state` node as read (any bytes)
//! driving the frontend's state machine, our own node read back, and the
//! classification of what a connected frontend sees.
//!
//! What must hold: nothing panics; a state that parses prints back to
//! the digits it came from; after each change of the backend's node the
//! driver reaches `Wait` within four actions (as the module promises),
//! and every action it is told to carry out leaves our node in the state
//! the action names.
#![no_main]

use arbitrary::Arbitrary;
use drivers_pv::xenbus_frontend::{classify, ready_to_connect};
use drivers_pv::xenbus_state::{
    parse_u32, parse_u64, Action, ConnectStyle, FrontendState, XenbusState,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    two_step: bool,
    events: Vec<Event>,
}

#[derive(Arbitrary, Debug)]
enum Event {
    /// The backend's `state` node changed to these bytes.
    Backend(Vec<u8>),
    /// We close the device.
    Close,
    /// A connected frontend reads back both nodes.
    Check {
        own: Vec<u8>,
        front: Option<Vec<u8>>,
        moved: bool,
        backend: Option<Vec<u8>>,
    },
}

fuzz_target!(|input: Input| {
    let style = if input.two_step {
        ConnectStyle::TwoStep
    } else {
        ConnectStyle::Direct
    };
    let mut machine = FrontendState::new(style);
    for event in input.events.into_iter().take(128) {
        match event {
            Event::Backend(raw) => {
                let Ok(action) = machine.backend_changed(&raw) else {
                    continue;
                };
                let backend = XenbusState::parse(&raw).expect("backend_changed parsed it");
                assert_eq!(
                    XenbusState::parse((backend as u8).to_string().as_bytes()),
                    Ok(backend)
                );
                check_writes(&machine, action);
                // The driver carries out the action, reads the same state
                // again and steps until told to wait.
                let mut actions = usize::from(action != Action::Wait);
                let mut last = action;
                while last != Action::Wait {
                    last = machine.step(backend);
                    check_writes(&machine, last);
                    if last != Action::Wait {
                        actions += 1;
                    }
                    assert!(
                        actions <= 4,
                        "no rest after {actions} actions ({backend:?})"
                    );
                }
            }
            Event::Close => {
                let action = machine.close();
                check_writes(&machine, action);
                assert!(!machine.wanted());
            }
            Event::Check {
                own,
                front,
                moved,
                backend,
            } => {
                let parse = |raw: Option<Vec<u8>>| raw.and_then(|r| XenbusState::parse(&r).ok());
                let front = parse(front);
                let backend = parse(backend);
                if let Ok(own) = XenbusState::parse(&own) {
                    let _ = classify(own, front, moved, backend);
                }
                let _ = ready_to_connect(front, backend);
                // The numbers in those nodes (and in every other key).
                if let Ok(value) = parse_u64(&own) {
                    assert_eq!(parse_u64(value.to_string().as_bytes()), Ok(value));
                }
                if let Ok(value) = parse_u32(&own) {
                    assert_eq!(u64::from(value), parse_u64(&own).unwrap());
                }
            }
        }
    }
});

/// An action that writes a state leaves our node in it.
fn check_writes(machine: &FrontendState, action: Action) {
    if let Some(state) = action.state_to_write() {
        assert_eq!(machine.own(), state);
    }
}
