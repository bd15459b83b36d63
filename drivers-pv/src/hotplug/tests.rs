//! The device set's arithmetic, and the watcher against the simulated
//! xenstored: a vif detached and attached again, a disk added.

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;
use core::task::{Context, Poll, Waker};

use super::*;
use crate::xenstore::sim::{Sim, SimHandle, SimRingPage};
use crate::xenstore::{Access, Permissions, RingTransport};

const DOMID: u16 = 5;
const HOME: &str = "/local/domain/5";

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn vif(index: u32) -> DeviceId {
    DeviceId {
        kind: DeviceKind::Vif,
        index,
    }
}

#[test]
fn a_listing_reports_what_went_then_what_came() {
    let mut set = DeviceSet::new();
    assert_eq!(
        set.update(DeviceKind::Vif, Some(&names(&["1", "0"]))),
        vec![Change::Appeared(vif(0)), Change::Appeared(vif(1))]
    );
    assert_eq!(
        set.update(DeviceKind::Vif, Some(&names(&["0", "1"]))),
        vec![]
    );
    assert_eq!(
        set.update(DeviceKind::Vif, Some(&names(&["1", "2"]))),
        vec![Change::Vanished(vif(0)), Change::Appeared(vif(2))]
    );
    // The directory gone: everything of that kind vanished; the other
    // kind is untouched.
    set.update(DeviceKind::Vbd, Some(&names(&["51712"])));
    assert_eq!(
        set.update(DeviceKind::Vif, None),
        vec![Change::Vanished(vif(1)), Change::Vanished(vif(2))]
    );
    assert_eq!(set.devices().count(), 1);
    assert_eq!(
        set.devices().next().map(|d| d.to_string()).as_deref(),
        Some("vbd/51712")
    );
}

#[test]
fn names_that_are_not_indices_are_ignored() {
    let mut set = DeviceSet::new();
    let listing = names(&["0", "+1", "x", "", "99999999999", "007"]);
    assert_eq!(
        set.update(DeviceKind::Vif, Some(&listing)),
        vec![Change::Appeared(vif(0)), Change::Appeared(vif(7))]
    );
}

#[test]
fn a_forgotten_device_is_news_again() {
    let mut set = DeviceSet::new();
    set.update(DeviceKind::Vif, Some(&names(&["0"])));
    set.forget(vif(0));
    assert_eq!(
        set.update(DeviceKind::Vif, Some(&names(&["0"]))),
        vec![Change::Appeared(vif(0))]
    );
}

struct NoWake;

impl alloc::task::Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// Polls `future` until it is ready, letting xenstored answer between
/// polls; `None` if it is still pending after `turns`.
fn run<F: Future>(
    sim: &SimHandle,
    xs: &SharedXenstore<SimRingPage>,
    turns: usize,
    future: F,
) -> Option<F::Output> {
    let _ = sim;
    let waker = Waker::from(Arc::new(NoWake));
    let mut future = core::pin::pin!(future);
    for _ in 0..turns {
        if let Poll::Ready(value) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return Some(value);
        }
        xs.with_page(|page| page.service()).unwrap();
        let _ = xs.pump();
    }
    None
}

/// The toolstack makes device `device/<kind>/<index>` (ours to write).
fn attach(sim: &SimHandle, kind: DeviceKind, index: u32) {
    let mut sim = sim.borrow_mut();
    let dir = format!("{HOME}/{}/{index}", kind.dir());
    sim.write_as(0, &format!("{dir}/state"), b"1").unwrap();
    for node in ["", "/state"] {
        sim.set_perms_as(
            0,
            &format!("{dir}{node}"),
            Permissions::new(DOMID, Access::None),
        )
        .unwrap();
    }
}

fn detach(sim: &SimHandle, kind: DeviceKind, index: u32) {
    sim.borrow_mut()
        .rm_as(0, &format!("{HOME}/{}/{index}", kind.dir()))
        .unwrap();
}

#[test]
fn the_watcher_reports_a_detach_an_attach_and_ignores_state_writes() {
    let sim = Sim::shared();
    let xs = SharedXenstore::new(RingTransport::new(SimRingPage::connect(&sim, DOMID)));
    attach(&sim, DeviceKind::Vif, 0);
    let hotplug = run(&sim, &xs, 1000, Hotplug::new(&xs, &DeviceKind::ALL));
    let mut hotplug = hotplug.unwrap().unwrap();
    assert_eq!(hotplug.present().collect::<Vec<_>>(), vec![vif(0)]);
    // Nothing happened: no news.
    assert!(run(&sim, &xs, 50, hotplug.next()).is_none());
    // The device's own state writes are no news either.
    sim.borrow_mut()
        .write_as(0, &format!("{HOME}/device/vif/0/state"), b"4")
        .unwrap();
    assert!(run(&sim, &xs, 50, hotplug.next()).is_none());
    // `xl network-detach`, then `xl network-attach` reusing index 0.
    detach(&sim, DeviceKind::Vif, 0);
    assert_eq!(
        run(&sim, &xs, 1000, hotplug.next()),
        Some(Ok(Change::Vanished(vif(0))))
    );
    attach(&sim, DeviceKind::Vif, 0);
    assert_eq!(
        run(&sim, &xs, 1000, hotplug.next()),
        Some(Ok(Change::Appeared(vif(0))))
    );
    // `xl block-attach`.
    attach(&sim, DeviceKind::Vbd, 51728);
    assert_eq!(
        run(&sim, &xs, 1000, hotplug.next()),
        Some(Ok(Change::Appeared(DeviceId {
            kind: DeviceKind::Vbd,
            index: 51728
        })))
    );
    // Dropping the watcher removes its watches.
    let watches = sim.borrow().watch_count();
    drop(hotplug);
    let _ = xs.pump();
    xs.with_page(|page| page.service()).unwrap();
    assert_eq!(sim.borrow().watch_count(), watches - 2);
}
