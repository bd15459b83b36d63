//! The control node protocol: parsing, and the watch and acknowledgement
//! against the simulated xenstored laid out as xl lays out a domain's
//! `control/` (the directory read-only to the guest, the nodes under it
//! the guest's own).

use super::*;
use crate::xenstore::sim::{Fault, Sim, SimHandle, SimRingPage};
use crate::xenstore::{Access, Permissions, RingTransport};
use alloc::sync::Arc;
use alloc::task::Wake;
use core::task::{Context, Waker};

const DOMID: u16 = 5;
const HOME: &str = "/local/domain/5";

struct NoWake;
impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

fn path(node: &str) -> String {
    format!("{HOME}/{node}")
}

/// The store as `xl create` leaves it: `control/` owned by dom0 and
/// readable by the guest, `shutdown`, `sysrq` and the feature nodes
/// empty and owned by the guest (so only it and dom0 see them).
fn xl_store() -> SimHandle {
    let sim = Sim::shared();
    {
        let mut store = sim.borrow_mut();
        store.connect(DOMID);
        store.write_as(0, &path("domid"), b"5").unwrap();
        store.write_as(0, &path("control"), b"").unwrap();
        store
            .set_perms_as(
                0,
                &path("control"),
                Permissions::new(0, Access::None).with(DOMID, Access::Read),
            )
            .unwrap();
        for node in [
            SHUTDOWN_NODE,
            SYSRQ_NODE,
            FEATURE_POWEROFF,
            FEATURE_REBOOT,
            FEATURE_SUSPEND,
        ] {
            store.write_as(0, &path(node), b"").unwrap();
            store
                .set_perms_as(0, &path(node), Permissions::new(DOMID, Access::None))
                .unwrap();
        }
    }
    sim
}

fn connect(sim: &SimHandle) -> SharedXenstore<SimRingPage> {
    SharedXenstore::new(RingTransport::new(SimRingPage::connect(sim, DOMID)))
}

/// Polls `future`, letting xenstored answer between polls; `None` if it
/// is still waiting once xenstored has nothing more to say.
fn run<F: Future>(xs: &SharedXenstore<SimRingPage>, future: F) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(NoWake));
    let mut future = core::pin::pin!(future);
    for _ in 0..200 {
        if let Poll::Ready(value) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return Some(value);
        }
        xs.with_page(|page| page.service()).unwrap();
        let _ = xs.pump();
    }
    None
}

#[test]
fn shutdown_words_parse_and_anything_else_is_unknown() {
    assert_eq!(parse_shutdown(b""), Ok(None));
    assert_eq!(parse_shutdown(b"\0"), Ok(None));
    assert_eq!(
        parse_shutdown(b"poweroff"),
        Ok(Some(ShutdownRequest::Poweroff))
    );
    assert_eq!(parse_shutdown(b"halt"), Ok(Some(ShutdownRequest::Halt)));
    assert_eq!(
        parse_shutdown(b"reboot\0"),
        Ok(Some(ShutdownRequest::Reboot))
    );
    assert_eq!(
        parse_shutdown(b"suspend"),
        Ok(Some(ShutdownRequest::Suspend))
    );
    assert_eq!(parse_shutdown(b"crash"), Ok(Some(ShutdownRequest::Crash)));
    for word in ["poweroff", "halt", "reboot", "suspend", "crash"] {
        assert_eq!(
            parse_shutdown(word.as_bytes()).unwrap().unwrap().word(),
            word
        );
    }
    assert_eq!(
        parse_shutdown(b"Poweroff").unwrap_err().as_str(),
        "Poweroff"
    );
    assert_eq!(
        parse_shutdown(b"reboot ").unwrap_err().as_str(),
        "reboot ",
        "no guessing"
    );
    assert_eq!(
        parse_shutdown(b"\xffoff\n").unwrap_err().to_string(),
        "\"\\xffoff\\n\""
    );
    let long = [b'x'; 100];
    let shown = parse_shutdown(&long).unwrap_err();
    assert!(shown.as_str().starts_with(&"x".repeat(32)));
    assert!(shown.as_str().ends_with("(100 bytes)"), "{shown}");
}

#[test]
fn a_sysrq_value_is_one_printable_key() {
    assert_eq!(parse_sysrq(b""), Ok(None));
    assert_eq!(parse_sysrq(b"\0"), Ok(None));
    assert_eq!(parse_sysrq(b"c").unwrap().unwrap().key(), 'c');
    assert_eq!(parse_sysrq(b"t\0").unwrap().unwrap().key(), 't');
    assert_eq!(parse_sysrq(b" ").unwrap_err().as_str(), " ");
    assert_eq!(parse_sysrq(b"cc").unwrap_err().as_str(), "cc");
    assert_eq!(parse_sysrq(b"\x07").unwrap_err().as_str(), "\\x07");
}

#[test]
fn features_are_written_into_the_nodes_xl_made() {
    let sim = xl_store();
    let xs = connect(&sim);
    let nodes = run(&xs, advertise(&xs, false)).unwrap().unwrap();
    assert_eq!(nodes, [FEATURE_POWEROFF, FEATURE_REBOOT]);
    let store = sim.borrow();
    assert_eq!(store.value(&path(FEATURE_POWEROFF)), Some(&b"1"[..]));
    assert_eq!(store.value(&path(FEATURE_REBOOT)), Some(&b"1"[..]));
    assert_eq!(
        store.value(&path(FEATURE_SUSPEND)),
        Some(&b""[..]),
        "not claimed"
    );
    drop(store);
    run(&xs, advertise(&xs, true)).unwrap().unwrap();
    assert_eq!(sim.borrow().value(&path(FEATURE_SUSPEND)), Some(&b"1"[..]));
}

#[test]
fn a_read_only_control_directory_is_a_clear_error() {
    let sim = xl_store();
    // A toolstack that made no feature nodes: creating one under the
    // read-only `control/` is refused.
    sim.borrow_mut().rm_as(0, &path(FEATURE_POWEROFF)).unwrap();
    let xs = connect(&sim);
    let error = run(&xs, advertise(&xs, false)).unwrap().unwrap_err();
    assert_eq!(
        error,
        AdvertiseError {
            node: FEATURE_POWEROFF,
            error: XsError::AccessDenied
        }
    );
    assert_eq!(
        error.to_string(),
        "cannot write control/feature-poweroff: AccessDenied (the toolstack did not make the node writable by this domain)"
    );
}

#[test]
fn a_request_is_taken_acknowledged_empty_and_taken_once() {
    let sim = xl_store();
    let xs = connect(&sim);
    let mut control = run(&xs, ControlWatch::start(&xs)).unwrap().unwrap();
    // Both watches fired on being set; the nodes are empty: nothing.
    assert_eq!(run(&xs, control.next()), None, "nothing to take yet");

    sim.borrow_mut()
        .write_as(0, &path(SHUTDOWN_NODE), b"reboot")
        .unwrap();
    assert_eq!(
        run(&xs, control.next()).unwrap(),
        Ok(ControlEvent::Shutdown(ShutdownRequest::Reboot))
    );
    assert_eq!(sim.borrow().value(&path(SHUTDOWN_NODE)), Some(&b""[..]));
    // Our own write-back fired the watch again: it reads empty, and
    // nothing is taken twice.
    assert_eq!(run(&xs, control.next()), None);
    assert_eq!(sim.borrow().open_transactions(), 0);
}

#[test]
fn a_request_written_before_the_watch_is_not_missed() {
    let sim = xl_store();
    sim.borrow_mut()
        .write_as(0, &path(SHUTDOWN_NODE), b"poweroff")
        .unwrap();
    let xs = connect(&sim);
    let mut control = run(&xs, ControlWatch::start(&xs)).unwrap().unwrap();
    assert_eq!(
        run(&xs, control.next()).unwrap(),
        Ok(ControlEvent::Shutdown(ShutdownRequest::Poweroff))
    );
}

#[test]
fn unknown_words_and_sysrq_keys_are_acknowledged_and_reported() {
    let sim = xl_store();
    let xs = connect(&sim);
    let mut control = run(&xs, ControlWatch::start(&xs)).unwrap().unwrap();
    sim.borrow_mut()
        .write_as(0, &path(SHUTDOWN_NODE), b"explode")
        .unwrap();
    match run(&xs, control.next()).unwrap().unwrap() {
        ControlEvent::UnknownShutdown(unknown) => assert_eq!(unknown.as_str(), "explode"),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.borrow().value(&path(SHUTDOWN_NODE)), Some(&b""[..]));

    sim.borrow_mut()
        .write_as(0, &path(SYSRQ_NODE), b"c")
        .unwrap();
    match run(&xs, control.next()).unwrap().unwrap() {
        ControlEvent::Sysrq(key) => assert_eq!(key.key(), 'c'),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.borrow().value(&path(SYSRQ_NODE)), Some(&b""[..]));

    sim.borrow_mut()
        .write_as(0, &path(SYSRQ_NODE), b"ab")
        .unwrap();
    assert!(matches!(
        run(&xs, control.next()).unwrap().unwrap(),
        ControlEvent::UnknownSysrq(_)
    ));
}

#[test]
fn a_removed_node_is_nothing_to_take_and_a_lost_connection_an_error() {
    let sim = xl_store();
    let xs = connect(&sim);
    let mut control = run(&xs, ControlWatch::start(&xs)).unwrap().unwrap();
    sim.borrow_mut().rm_as(0, &path(SHUTDOWN_NODE)).unwrap();
    assert_eq!(run(&xs, control.next()), None);
    // A xenstored that sends garbage breaks the connection: the watch
    // fails instead of waiting for ever.
    sim.borrow_mut().inject_fault(Fault::GarbageType);
    sim.borrow_mut()
        .write_as(0, &path(SYSRQ_NODE), b"c")
        .unwrap();
    assert_eq!(run(&xs, control.next()), Some(Err(XsError::Disconnected)));
}
