//! Hot-plug: the listings of `device/vif` and `device/vbd` (names as
//! xenstore returns them, any text) turned into devices that appeared
//! and vanished.
//!
//! What must hold: nothing panics; after each listing the known devices
//! of that kind are exactly the decimal names listed; every change
//! reported is a real change (appeared: now known; vanished: now not).
#![no_main]

use arbitrary::Arbitrary;
use drivers_pv::hotplug::{Change, DeviceKind, DeviceSet};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Event {
    Listing {
        vbd: bool,
        names: Option<Vec<String>>,
    },
    Forget {
        vbd: bool,
        index: u32,
    },
}

fuzz_target!(|events: Vec<Event>| {
    let mut set = DeviceSet::new();
    for event in events.into_iter().take(64) {
        match event {
            Event::Listing { vbd, names } => {
                let kind = if vbd {
                    DeviceKind::Vbd
                } else {
                    DeviceKind::Vif
                };
                let before: Vec<_> = set.devices().collect();
                let changes = set.update(kind, names.as_deref());
                for change in &changes {
                    match *change {
                        Change::Appeared(id) => {
                            assert!(set.contains(id) && !before.contains(&id));
                        }
                        Change::Vanished(id) => {
                            assert!(!set.contains(id) && before.contains(&id));
                        }
                    }
                    let _ = format!("{change}");
                }
                // What is known of this kind is what the listing names
                // (as decimal indices).
                let listed = names.unwrap_or_default();
                for id in set.devices().filter(|id| id.kind == kind) {
                    assert!(listed
                        .iter()
                        .any(|name| name.parse::<u32>() == Ok(id.index)));
                    let _ = id.path();
                }
            }
            Event::Forget { vbd, index } => {
                let kind = if vbd {
                    DeviceKind::Vbd
                } else {
                    DeviceKind::Vif
                };
                let id = drivers_pv::hotplug::DeviceId { kind, index };
                set.forget(id);
                assert!(!set.contains(id));
            }
        }
    }
});
