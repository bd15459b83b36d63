//! The client against the simulated xenstored: every operation, watches,
//! transactions, the shared ring, and each injected fault.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::sim::{Chunking, Fault, Sim, SimHandle, SimRingPage, SimTransport, SplitMix64};
use super::wire::{encode_message, MsgType};
use super::*;

const DOMID: u16 = 5;
const HOME: &str = "/local/domain/5";

fn connect(sim: &SimHandle) -> XenstoreBlocking<SimTransport> {
    XenstoreBlocking::new(SimTransport::connect(sim, DOMID))
}

fn connect_chunked(
    sim: &SimHandle,
    chunking: Chunking,
    seed: u64,
) -> XenstoreBlocking<SimTransport> {
    XenstoreBlocking::new(SimTransport::connect(sim, DOMID).with_chunking(chunking, seed))
}

/// Every operation once, checking each result; run over any transport.
fn exercise_every_operation<T: Transport>(xs: &mut XenstoreBlocking<T>, sim: &SimHandle) {
    let none = TxId::NONE;
    // Domain path, relative and absolute paths.
    assert_eq!(xs.get_domain_path(DOMID).unwrap(), HOME);
    xs.write(none, "data/greeting", b"hello").unwrap();
    assert_eq!(
        sim.borrow().value("/local/domain/5/data/greeting"),
        Some(&b"hello"[..])
    );
    assert_eq!(xs.read(none, "data/greeting").unwrap(), b"hello");
    assert_eq!(
        xs.read_string(none, "/local/domain/5/data/greeting")
            .unwrap(),
        "hello"
    );
    // Values are binary and may be empty.
    xs.write(none, "data/bin", &[0, 1, 255]).unwrap();
    assert_eq!(xs.read(none, "data/bin").unwrap(), [0, 1, 255]);
    assert_eq!(xs.read_string(none, "data/bin"), Err(XsError::NotUtf8));
    xs.write(none, "data/empty", b"").unwrap();
    assert_eq!(xs.read(none, "data/empty").unwrap(), b"");
    // mkdir keeps a value, creates parents.
    xs.mkdir(none, "data/greeting").unwrap();
    assert_eq!(xs.read(none, "data/greeting").unwrap(), b"hello");
    xs.mkdir(none, "deep/er/still").unwrap();
    assert_eq!(xs.directory(none, "deep/er").unwrap(), ["still"]);
    // directory lists leaf names in order.
    let mut names = xs.directory(none, "data").unwrap();
    names.sort();
    assert_eq!(names, ["bin", "empty", "greeting"]);
    assert_eq!(
        xs.directory(none, "data/bin").unwrap(),
        Vec::<String>::new()
    );
    // rm removes a subtree; removing what is gone is fine while the parent
    // exists, not otherwise.
    xs.rm(none, "deep").unwrap();
    assert_eq!(xs.read(none, "deep/er"), Err(XsError::NotFound));
    xs.rm(none, "deep").unwrap();
    assert_eq!(xs.rm(none, "deep/er/still"), Err(XsError::NotFound));
    // Errors come back typed.
    assert_eq!(xs.read(none, "missing"), Err(XsError::NotFound));
    assert_eq!(xs.read(none, "bad//path"), Err(XsError::Invalid));
    // Permissions: we own what we create.
    let perms = xs.get_perms(none, "data/greeting").unwrap();
    assert_eq!(perms.owner(), DOMID);
    let shared = Permissions::new(DOMID, Access::None).with(7, Access::Read);
    xs.set_perms(none, "data/greeting", &shared).unwrap();
    assert_eq!(xs.get_perms(none, "data/greeting").unwrap(), shared);
    assert_eq!(
        xs.set_perms(none, "data/greeting", &Permissions::new(9, Access::Both)),
        Err(XsError::NotPermitted)
    );
    // What another domain owns stays out of reach.
    assert_eq!(
        xs.read(none, "/local/domain/0/secret"),
        Err(XsError::NotFound)
    );
    sim.borrow_mut()
        .write_as(0, "/local/domain/0/secret", b"s")
        .unwrap();
    sim.borrow_mut()
        .set_perms_as(
            0,
            "/local/domain/0/secret",
            Permissions::new(0, Access::None),
        )
        .unwrap();
    assert_eq!(
        xs.read(none, "/local/domain/0/secret"),
        Err(XsError::AccessDenied)
    );
    assert_eq!(
        xs.write(none, "/local/domain/0/secret", b"x"),
        Err(XsError::AccessDenied)
    );
    assert_eq!(
        xs.write(none, "/local/domain/0/new", b"x"),
        Err(XsError::AccessDenied)
    );
    sim.borrow_mut()
        .set_perms_as(
            0,
            "/local/domain/0/secret",
            Permissions::new(0, Access::None).with(DOMID, Access::Read),
        )
        .unwrap();
    assert_eq!(xs.read(none, "/local/domain/0/secret").unwrap(), b"s");
    assert_eq!(
        xs.write(none, "/local/domain/0/secret", b"x"),
        Err(XsError::AccessDenied)
    );
    // Watches: the first event at once, then on changes below the path.
    xs.watch("data", "data-token").unwrap();
    assert_eq!(xs.wait_watch("data-token").unwrap().path, "data");
    xs.write(none, "data/greeting", b"bye").unwrap();
    let event = xs.wait_watch("data-token").unwrap();
    assert_eq!(
        (event.path.as_str(), event.token.as_str()),
        ("data/greeting", "data-token")
    );
    xs.unwatch("data", "data-token").unwrap();
    assert_eq!(xs.unwatch("data", "data-token"), Err(XsError::NotFound));
    // Transactions: commit and abort.
    let tx = xs.transaction_start().unwrap();
    xs.write(tx, "data/tx", b"1").unwrap();
    assert_eq!(xs.read(tx, "data/tx").unwrap(), b"1");
    assert_eq!(xs.read(none, "data/tx"), Err(XsError::NotFound));
    xs.transaction_end(tx, true).unwrap();
    assert_eq!(xs.read(none, "data/tx").unwrap(), b"1");
    let tx = xs.transaction_start().unwrap();
    xs.rm(tx, "data/tx").unwrap();
    xs.transaction_end(tx, false).unwrap();
    assert_eq!(xs.read(none, "data/tx").unwrap(), b"1");
    assert_eq!(xs.transaction_end(tx, true), Err(XsError::NotFound));
    xs.reset_watches().unwrap();
    assert_eq!(sim.borrow().open_transactions(), 0);
    assert_eq!(xs.client().take_anomaly(), None);
}

#[test]
fn every_operation_round_trips() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    exercise_every_operation(&mut xs, &sim);
}

#[test]
fn every_operation_byte_by_byte() {
    let sim = Sim::shared();
    let mut xs = connect_chunked(&sim, Chunking::Fixed(1), 0);
    exercise_every_operation(&mut xs, &sim);
}

#[test]
fn every_operation_with_random_splits() {
    for seed in 0..40 {
        let sim = Sim::shared();
        let max = [3, 17, 64, 700][seed as usize % 4];
        let mut xs = connect_chunked(&sim, Chunking::Random { max }, seed);
        exercise_every_operation(&mut xs, &sim);
    }
}

#[test]
fn every_operation_over_the_shared_ring() {
    let sim = Sim::shared();
    let mut xs = XenstoreBlocking::new(RingTransport::new(SimRingPage::connect(&sim, DOMID)));
    exercise_every_operation(&mut xs, &sim);
    assert!(xs.transport().page().notifications > 0);
}

#[test]
fn the_ring_wraps_its_indices() {
    let sim = Sim::shared();
    let page = SimRingPage::connect(&sim, DOMID).with_indices(u32::MAX - 700);
    let mut xs = XenstoreBlocking::new(RingTransport::new(page));
    exercise_every_operation(&mut xs, &sim);
    let page = xs.transport().page();
    assert!(page.page.req_prod < u32::MAX - 700, "req_prod wrapped");
}

#[test]
fn the_largest_payloads_cross_the_small_ring() {
    let sim = Sim::shared();
    let mut xs = XenstoreBlocking::new(RingTransport::new(SimRingPage::connect(&sim, DOMID)));
    let path = "big";
    let value: Vec<u8> = (0..4096 - path.len() - 1)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    xs.write(TxId::NONE, path, &value).unwrap();
    assert_eq!(xs.read(TxId::NONE, path).unwrap(), value);
    assert_eq!(
        xs.write(TxId::NONE, path, &[value.as_slice(), b"x"].concat()),
        Err(XsError::RequestTooLong)
    );
    assert_eq!(xs.read(TxId::NONE, path).unwrap().len(), value.len());
}

#[test]
fn corrupt_response_index_is_reported() {
    let sim = Sim::shared();
    let mut transport = RingTransport::new(SimRingPage::connect(&sim, DOMID));
    transport.page().page.rsp_prod = 2000;
    let mut buf = [0u8; 16];
    assert_eq!(transport.read_some(&mut buf), Err(XsError::RingCorrupt));
    assert!(transport.is_corrupt());
    // Once corrupt, always corrupt, whatever the page says after.
    transport.page().page.rsp_prod = 0;
    assert_eq!(transport.read_some(&mut buf), Err(XsError::RingCorrupt));
    let mut xs = XenstoreBlocking::new(transport);
    assert_eq!(xs.read(TxId::NONE, "x"), Err(XsError::RingCorrupt));
    assert_eq!(xs.client().broken(), Some(XsError::RingCorrupt));
    assert_eq!(xs.read(TxId::NONE, "x"), Err(XsError::Disconnected));
}

#[test]
fn corrupt_request_index_is_reported() {
    let sim = Sim::shared();
    let mut transport = RingTransport::new(SimRingPage::connect(&sim, DOMID));
    // xenstored claims to have consumed bytes we never produced.
    transport.page().page.req_cons = 5;
    assert_eq!(transport.write_some(b"abc"), Err(XsError::RingCorrupt));
    assert_eq!(transport.page().page.req_prod, 0, "nothing published");
}

/// A page with nobody on the other side: the test plays xenstored.
struct PlainPage {
    page: pv_arch::abi::xenstore::XenstoreDomainInterface,
    notifications: u32,
}

impl XenstorePage for PlainPage {
    fn req_cons(&self) -> u32 {
        self.page.req_cons
    }
    fn req_prod(&self) -> u32 {
        self.page.req_prod
    }
    fn set_req_prod(&mut self, value: u32) {
        self.page.req_prod = value;
    }
    fn rsp_cons(&self) -> u32 {
        self.page.rsp_cons
    }
    fn rsp_prod(&self) -> u32 {
        self.page.rsp_prod
    }
    fn set_rsp_cons(&mut self, value: u32) {
        self.page.rsp_cons = value;
    }
    fn write_req(&mut self, offset: usize, bytes: &[u8]) {
        self.page.req[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
    fn read_rsp(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.page.rsp[offset..offset + buf.len()]);
    }
    fn notify(&mut self) {
        self.notifications += 1;
    }
}

impl crate::xenstore::ring::BlockingPage for PlainPage {
    fn wait(&mut self) -> Result<(), XsError> {
        Err(XsError::Disconnected)
    }
}

fn plain_page(index: u32) -> PlainPage {
    let mut page = pv_arch::abi::xenstore::XenstoreDomainInterface::zeroed();
    page.req_cons = index;
    page.req_prod = index;
    page.rsp_cons = index;
    page.rsp_prod = index;
    PlainPage {
        page,
        notifications: 0,
    }
}

#[test]
fn ring_writes_stop_when_full_and_wrap() {
    let mut transport = RingTransport::new(plain_page(u32::MAX - 9));
    let data: Vec<u8> = (0..1100u32).map(|i| i as u8).collect();
    assert_eq!(transport.write_some(&data), Ok(1024));
    assert_eq!(transport.page().notifications, 1);
    assert_eq!(transport.write_some(&data[1024..]), Ok(0));
    assert_eq!(
        transport.page().notifications,
        1,
        "nothing written, no notify"
    );
    // The start index was 1014 into the buffer: the data wrapped.
    assert_eq!(transport.page().page.req[1014..], data[..10]);
    assert_eq!(transport.page().page.req[..1014], data[10..1024]);
    assert_eq!(transport.page().page.req_prod, 1014);
    // xenstored consumes 50 bytes; 50 more fit.
    transport.page().page.req_cons = (u32::MAX - 9).wrapping_add(50);
    assert_eq!(transport.write_some(&data[1024..]), Ok(50));
    assert_eq!(transport.page().page.req[1014..], data[1024..1034]);
    assert_eq!(transport.page().page.req[..40], data[1034..1074]);
}

#[test]
fn ring_reads_take_what_arrived_and_wrap() {
    let mut transport = RingTransport::new(plain_page(1000));
    let mut buf = [0u8; 64];
    assert_eq!(transport.read_some(&mut buf), Ok(0));
    assert_eq!(transport.page().notifications, 0);
    // xenstored writes 40 bytes starting at offset 1000: they wrap.
    for i in 0..40u32 {
        let offset = (1000 + i) as usize % 1024;
        transport.page().page.rsp[offset] = i as u8 + 1;
    }
    transport.page().page.rsp_prod = 1040;
    assert_eq!(transport.read_some(&mut buf[..25]), Ok(25));
    assert_eq!(transport.read_some(&mut buf[25..]), Ok(15));
    let expected: Vec<u8> = (1..=40).collect();
    assert_eq!(buf[..40], expected[..]);
    assert_eq!(transport.page().page.rsp_cons, 1040);
    assert_eq!(transport.page().notifications, 2);
    // A full ring is fine; one byte more is not.
    transport.page().page.rsp_prod = 1040 + 1024;
    assert_eq!(transport.read_some(&mut [0u8; 2048]), Ok(1024));
    transport.page().page.rsp_prod = 1040 + 2 * 1024 + 1;
    assert_eq!(transport.read_some(&mut buf), Err(XsError::RingCorrupt));
}

#[test]
fn watch_events_are_routed_by_token() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    let none = TxId::NONE;
    xs.watch("device", "dev").unwrap();
    xs.watch("/local/domain/5/control", "ctl").unwrap();
    xs.watch("/local/domain/5/control/shutdown", "ctl").unwrap();
    xs.pump().unwrap();
    // The initial events, under each token.
    let first: Vec<String> = core::iter::from_fn(|| xs.client().poll_watch("ctl"))
        .map(|event| event.path)
        .collect();
    assert_eq!(
        first,
        [
            "/local/domain/5/control",
            "/local/domain/5/control/shutdown"
        ]
    );
    assert_eq!(xs.client().poll_watch("dev").unwrap().path, "device");
    // The toolstack (dom0) writes under both paths.
    sim.borrow_mut()
        .write_as(0, "/local/domain/5/control/shutdown", b"poweroff")
        .unwrap();
    sim.borrow_mut()
        .write_as(0, "/local/domain/5/device/vif/0/state", b"1")
        .unwrap();
    sim.borrow_mut()
        .write_as(0, "/local/domain/5/other", b"1")
        .unwrap();
    xs.pump().unwrap();
    let dev = xs.client().poll_watch("dev").unwrap();
    assert_eq!(
        dev.path, "device/vif/0/state",
        "relative watch, relative event"
    );
    assert_eq!(xs.client().poll_watch("dev"), None);
    let ctl: Vec<String> = core::iter::from_fn(|| xs.client().poll_watch("ctl"))
        .map(|event| event.path)
        .collect();
    // Both watches under "ctl" match; the client merges the duplicate.
    assert_eq!(ctl, ["/local/domain/5/control/shutdown"]);
    // Removal of a parent fires the watched path itself.
    sim.borrow_mut()
        .rm_as(0, "/local/domain/5/control")
        .unwrap();
    xs.pump().unwrap();
    let removed: Vec<String> = core::iter::from_fn(|| xs.client().poll_watch("ctl"))
        .map(|event| event.path)
        .collect();
    assert_eq!(
        removed,
        [
            "/local/domain/5/control",
            "/local/domain/5/control/shutdown"
        ]
    );
    // Our own writes fire our watches too.
    xs.write(none, "device/x", b"1").unwrap();
    assert_eq!(xs.wait_watch("dev").unwrap().path, "device/x");
    // After unwatch, no more events for that token.
    xs.unwatch("device", "dev").unwrap();
    sim.borrow_mut()
        .write_as(0, "/local/domain/5/device/y", b"1")
        .unwrap();
    xs.pump().unwrap();
    assert_eq!(xs.client().poll_watch("dev"), None);
    assert_eq!(xs.wait_watch("dev"), Err(XsError::BadArgument));
    assert_eq!(xs.client().stats().stray_watch_events, 0);
    // A duplicate watch is refused and leaves the first in place.
    assert_eq!(
        xs.watch("/local/domain/5/control", "ctl"),
        Err(XsError::Exists)
    );
    assert!(xs.client().is_watching("ctl"));
}

#[test]
fn transactional_writes_fire_at_commit_only() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    xs.watch("data", "t").unwrap();
    assert_eq!(xs.wait_watch("t").unwrap().path, "data");
    let tx = xs.transaction_start().unwrap();
    xs.write(tx, "data/a", b"1").unwrap();
    xs.pump().unwrap();
    assert_eq!(xs.client().poll_watch("t"), None);
    xs.transaction_end(tx, true).unwrap();
    assert_eq!(xs.wait_watch("t").unwrap().path, "data/a");
}

#[test]
fn a_conflicting_transaction_retries_and_succeeds() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    xs.write(TxId::NONE, "counter", b"1").unwrap();
    let mut attempts = 0;
    let result = xs.transaction(RetryPolicy::DEFAULT, |xs, tx| {
        attempts += 1;
        let value = xs.read_string(tx, "counter")?;
        if attempts == 1 {
            // Someone else bumps the counter behind our back.
            xs.transport()
                .sim()
                .borrow_mut()
                .write_as(0, "/local/domain/5/counter", b"10")?;
        }
        let next = value.parse::<u32>().map_err(|_| XsError::Invalid)? + 1;
        xs.write(tx, "counter", alloc::format!("{next}").as_bytes())?;
        Ok(next)
    });
    assert_eq!(result, Ok(11));
    assert_eq!(attempts, 2);
    assert_eq!(xs.read(TxId::NONE, "counter").unwrap(), b"11");
    assert_eq!(sim.borrow().open_transactions(), 0);
}

#[test]
fn a_transaction_that_always_conflicts_gives_up() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    xs.write(TxId::NONE, "hot", b"0").unwrap();
    let mut attempts = 0;
    let result = xs.transaction(RetryPolicy { max_attempts: 3 }, |xs, tx| {
        attempts += 1;
        xs.read(tx, "hot")?;
        xs.transport()
            .sim()
            .borrow_mut()
            .write_as(0, "/local/domain/5/hot", b"x")?;
        xs.write(tx, "cold", b"1")
    });
    assert_eq!(result, Err(XsError::Again));
    assert_eq!(attempts, 3);
    assert_eq!(xs.read(TxId::NONE, "cold"), Err(XsError::NotFound));
}

#[test]
fn a_failing_transaction_body_aborts() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    let result: Result<(), XsError> = xs.transaction(RetryPolicy::DEFAULT, |xs, tx| {
        xs.write(tx, "half", b"done")?;
        xs.read(tx, "missing").map(drop)
    });
    assert_eq!(result, Err(XsError::NotFound));
    assert_eq!(xs.read(TxId::NONE, "half"), Err(XsError::NotFound));
    assert_eq!(sim.borrow().open_transactions(), 0);
}

#[test]
fn unrelated_writes_do_not_conflict() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    xs.write(TxId::NONE, "a", b"1").unwrap();
    let tx = xs.transaction_start().unwrap();
    xs.read(tx, "a").unwrap();
    sim.borrow_mut()
        .write_as(0, "/local/domain/5/b", b"2")
        .unwrap();
    // Creating "b" changed the home directory, which the transaction did
    // not read: no conflict.
    xs.write(tx, "a", b"3").unwrap();
    xs.transaction_end(tx, true).unwrap();
    assert_eq!(xs.read(TxId::NONE, "a").unwrap(), b"3");
}

#[test]
fn many_requests_in_flight_with_merged_and_split_replies() {
    for seed in 0..50 {
        let sim = Sim::shared();
        let mut transport = SimTransport::connect(&sim, DOMID).with_chunking(
            Chunking::Random {
                max: 1 + seed as usize * 7,
            },
            seed,
        );
        let mut client = Client::new();
        let mut rng = SplitMix64::new(seed);
        let count = 1 + rng.below(20) as usize;
        let writes: Vec<_> = (0..count)
            .map(|i| {
                client
                    .write(
                        TxId::NONE,
                        &alloc::format!("k{i}"),
                        alloc::format!("v{i}").as_bytes(),
                    )
                    .unwrap()
            })
            .collect();
        let reads: Vec<_> = (0..count)
            .map(|i| client.read(TxId::NONE, &alloc::format!("k{i}")).unwrap())
            .collect();
        client.watch("k0", "w").unwrap();
        // All requests go out at once; all replies come back merged, and
        // are handed over in random pieces.
        transport.send(&client.take_outgoing()).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = transport.recv(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            client.receive(&buf[..n]).unwrap();
        }
        // Poll in a scrambled order.
        for i in (0..count).rev() {
            assert_eq!(client.poll(writes[i]), Some(Ok(())));
        }
        for (i, read) in reads.iter().enumerate() {
            assert_eq!(
                client.poll(*read),
                Some(Ok(alloc::format!("v{i}").into_bytes()))
            );
        }
        assert_eq!(client.poll_watch("w").unwrap().path, "k0");
        assert_eq!(client.outstanding(), 0);
    }
}

// ---- Fault injection ------------------------------------------------------

#[test]
fn fault_wrong_req_id_is_an_anomaly() {
    let sim = Sim::shared();
    let mut transport = SimTransport::connect(&sim, DOMID);
    let mut client = Client::new();
    sim.borrow_mut().inject_fault(Fault::WrongReqId);
    let ticket = client.write(TxId::NONE, "a", b"1").unwrap();
    transport.send(&client.take_outgoing()).unwrap();
    let mut buf = [0u8; 256];
    let n = transport.recv(&mut buf).unwrap();
    client.receive(&buf[..n]).unwrap();
    assert_eq!(client.poll(ticket), None, "still waiting");
    assert_eq!(
        client.take_anomaly(),
        Some(XsError::UnknownReqId(ticket.req_id().get() + 1000))
    );
    // The blocking wrapper would wait forever; the simulator says so.
    let mut xs = XenstoreBlocking::with_client(client, transport);
    assert_eq!(xs.wait_for(ticket), Err(XsError::Disconnected));
}

#[test]
fn fault_wrong_reply_type_fails_one_request() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    sim.borrow_mut().inject_fault(Fault::WrongReplyType);
    assert_eq!(
        xs.write(TxId::NONE, "a", b"1"),
        Err(XsError::UnexpectedReply)
    );
    assert_eq!(xs.read(TxId::NONE, "a").unwrap(), b"1");
    sim.borrow_mut().inject_fault(Fault::WrongReplyType);
    assert_eq!(xs.read(TxId::NONE, "a"), Err(XsError::UnexpectedReply));
    assert_eq!(xs.client().broken(), None);
}

#[test]
fn fault_oversized_len_breaks_the_connection() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    sim.borrow_mut().inject_fault(Fault::OversizedLen);
    assert_eq!(xs.read(TxId::NONE, "a"), Err(XsError::TooLong));
    assert_eq!(xs.client().broken(), Some(XsError::TooLong));
    assert_eq!(xs.read(TxId::NONE, "a"), Err(XsError::Disconnected));
    assert_eq!(xs.watch("a", "t"), Err(XsError::Disconnected));
}

#[test]
fn fault_garbage_type_breaks_the_connection() {
    let sim = Sim::shared();
    let mut xs = connect_chunked(&sim, Chunking::Fixed(3), 0);
    xs.write(TxId::NONE, "a", b"1").unwrap();
    sim.borrow_mut().inject_fault(Fault::GarbageType);
    assert_eq!(xs.read(TxId::NONE, "a"), Err(XsError::UnknownType(0xdead)));
    assert_eq!(xs.mkdir(TxId::NONE, "b"), Err(XsError::Disconnected));
}

#[test]
fn fault_truncated_payloads_fail_one_request() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    let cases = [(1, Malformation::MissingNul), (0, Malformation::FieldCount)];
    for (keep, expected) in cases {
        sim.borrow_mut().inject_fault(Fault::TruncatePayload(keep));
        assert_eq!(
            xs.write(TxId::NONE, "a", b"1"),
            Err(XsError::Malformed(expected))
        );
    }
    sim.borrow_mut().inject_fault(Fault::TruncatePayload(1));
    assert_eq!(
        xs.transaction_start(),
        Err(XsError::Malformed(Malformation::MissingNul))
    );
    // An error reply cut short.
    sim.borrow_mut().inject_fault(Fault::TruncatePayload(4));
    assert_eq!(
        xs.read(TxId::NONE, "missing"),
        Err(XsError::Malformed(Malformation::MissingNul))
    );
    // The stream stayed in step.
    assert_eq!(xs.read(TxId::NONE, "a").unwrap(), b"1");
}

#[test]
fn fault_truncated_then_disconnected() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    xs.write(TxId::NONE, "a", b"some value").unwrap();
    sim.borrow_mut().inject_fault(Fault::TruncateAndDisconnect);
    assert_eq!(xs.read(TxId::NONE, "a"), Err(XsError::Disconnected));
    assert_eq!(xs.read(TxId::NONE, "a"), Err(XsError::Disconnected));
}

#[test]
fn fault_disconnect() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    let watch = xs.client().watch("a", "t").unwrap();
    xs.wait_for(watch).unwrap();
    sim.borrow_mut().inject_fault(Fault::Disconnect);
    assert_eq!(xs.read(TxId::NONE, "a"), Err(XsError::Disconnected));
    assert_eq!(sim.borrow().watch_count(), 0);
    assert_eq!(xs.write(TxId::NONE, "a", b"1"), Err(XsError::Disconnected));
}

#[test]
fn fault_non_utf8_text() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    xs.write(TxId::NONE, "dir/child", b"1").unwrap();
    sim.borrow_mut().inject_fault(Fault::NonUtf8);
    assert_eq!(xs.directory(TxId::NONE, "dir"), Err(XsError::NotUtf8));
    sim.borrow_mut().inject_fault(Fault::NonUtf8);
    assert_eq!(xs.get_domain_path(3), Err(XsError::NotUtf8));
    // A binary value is not text and is delivered as is.
    sim.borrow_mut().inject_fault(Fault::NonUtf8);
    assert_eq!(xs.read(TxId::NONE, "dir/child").unwrap(), [0xff]);
    assert_eq!(xs.directory(TxId::NONE, "dir").unwrap(), ["child"]);
}

#[test]
fn fault_dropped_reply_can_be_forgotten() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    sim.borrow_mut().inject_fault(Fault::DropReply);
    let lost = xs.client().read(TxId::NONE, "a").unwrap();
    xs.pump().unwrap();
    assert_eq!(xs.client().poll(lost), None);
    xs.client().forget(lost.req_id());
    assert_eq!(xs.client().outstanding(), 1);
    xs.write(TxId::NONE, "a", b"1").unwrap();
    assert_eq!(xs.client().take_anomaly(), None);
}

#[test]
fn fault_malformed_watch_event_from_the_wire() {
    let sim = Sim::shared();
    let mut xs = connect(&sim);
    xs.watch("a", "t").unwrap();
    assert_eq!(xs.wait_watch("t").unwrap().path, "a");
    let conn = xs.transport().conn();
    let mut bogus = Vec::new();
    encode_message(&mut bogus, MsgType::WatchEvent, 0, 0, &[b"a/only-path\0"]).unwrap();
    encode_message(&mut bogus, MsgType::WatchEvent, 0, 0, &[b"a/x\0t"]).unwrap();
    encode_message(&mut bogus, MsgType::WatchEvent, 0, 0, &[b"a/\xff\0t\0"]).unwrap();
    sim.borrow_mut().push_raw(conn, &bogus);
    xs.pump().unwrap();
    let anomalies: Vec<XsError> = core::iter::from_fn(|| xs.client().take_anomaly()).collect();
    assert_eq!(
        anomalies,
        [
            XsError::Malformed(Malformation::FieldCount),
            XsError::Malformed(Malformation::MissingNul),
            XsError::NotUtf8
        ]
    );
    assert_eq!(xs.client().poll_watch("t"), None);
    xs.write(TxId::NONE, "a/y", b"1").unwrap();
    assert_eq!(xs.wait_watch("t").unwrap().path, "a/y");
}

#[test]
fn random_faults_never_panic() {
    let faults = [
        Fault::WrongReqId,
        Fault::WrongReplyType,
        Fault::OversizedLen,
        Fault::GarbageType,
        Fault::TruncatePayload(0),
        Fault::TruncatePayload(2),
        Fault::TruncateAndDisconnect,
        Fault::NonUtf8,
        Fault::DropReply,
        Fault::Disconnect,
    ];
    for seed in 0..200 {
        let mut rng = SplitMix64::new(seed);
        let sim = Sim::shared();
        let mut xs = connect_chunked(&sim, Chunking::Random { max: 40 }, seed);
        for step in 0..30 {
            if rng.below(4) == 0 {
                let fault = faults[rng.below(faults.len() as u64) as usize];
                sim.borrow_mut().inject_fault(fault);
            }
            let path = alloc::format!("p{}", rng.below(4));
            let result = match rng.below(6) {
                0 => xs.write(TxId::NONE, &path, b"v").map(drop),
                1 => xs.read(TxId::NONE, &path).map(drop),
                2 => xs.directory(TxId::NONE, "").map(drop),
                3 => xs.get_perms(TxId::NONE, &path).map(drop),
                4 => xs.watch(&path, &alloc::format!("t{step}")).map(drop),
                _ => xs.transaction_start().map(drop),
            };
            if let Err(error) = result {
                if error.is_fatal() {
                    assert!(xs.client().broken().is_some());
                    assert_eq!(xs.read(TxId::NONE, "x"), Err(XsError::Disconnected));
                    break;
                }
            }
        }
    }
}

#[test]
fn a_hostile_ring_page_never_panics() {
    for seed in 0..100 {
        let mut rng = SplitMix64::new(seed);
        let sim = Sim::shared();
        let mut page = SimRingPage::connect(&sim, DOMID);
        // Random bytes in the response ring and random indices.
        for byte in page.page.rsp.iter_mut() {
            *byte = rng.next_u64() as u8;
        }
        page.page.rsp_prod = rng.below(3000) as u32;
        page.page.rsp_cons = rng.below(3000) as u32;
        let mut xs = XenstoreBlocking::new(RingTransport::new(page));
        let mut buf = vec![0u8; 64];
        let _ = xs.transport().read_some(&mut buf);
        let _ = xs.read(TxId::NONE, "x");
        let _ = xs.read(TxId::NONE, "y");
    }
}

/// A reply as xenstored frames it.
fn reply_bytes(msg_type: MsgType, req_id: ReqId, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_message(&mut bytes, msg_type, req_id.get(), 0, &[payload]).unwrap();
    bytes
}

#[test]
fn a_resume_fails_requests_in_flight_and_registers_every_watch_again() {
    let mut client = Client::new();
    let watch = client.watch("device/vif", "vif-token").unwrap();
    let gone = client.watch("device/vbd", "vbd-token").unwrap();
    client
        .receive(&reply_bytes(MsgType::Watch, watch.req_id(), b"OK\0"))
        .unwrap();
    client
        .receive(&reply_bytes(MsgType::Watch, gone.req_id(), b"OK\0"))
        .unwrap();
    assert_eq!(client.poll(watch), Some(Ok(())));
    assert_eq!(client.poll(gone), Some(Ok(())));
    client.unwatch("device/vbd", "vbd-token").unwrap();
    let read = client.read(TxId::NONE, "name").unwrap();
    client.take_outgoing();

    assert_eq!(client.resumed(), 1, "only the watch still registered");
    assert_eq!(client.poll(read), Some(Err(XsError::Resumed)));
    let sent = client.take_outgoing();
    let needle = b"device/vif\0vif-token\0";
    assert!(
        sent.windows(needle.len()).any(|w| w == needle),
        "the watch goes out again with its path and token"
    );
    assert!(!sent.windows(10).any(|w| w == b"device/vbd"));
    assert!(client.is_watching("vif-token"));

    // The old xenstored's late answer, and the new one's answer to the
    // watch sent again, are dropped quietly; the first event is queued.
    client
        .receive(&reply_bytes(MsgType::Read, read.req_id(), b"late"))
        .unwrap();
    assert_eq!(client.take_anomaly(), None);
    assert_eq!(client.outstanding(), 0);
    let mut event = Vec::new();
    encode_message(
        &mut event,
        MsgType::WatchEvent,
        0,
        0,
        &[b"device/vif\0", b"vif-token\0"],
    )
    .unwrap();
    client.receive(&event).unwrap();
    assert_eq!(
        client.poll_watch("vif-token").map(|e| e.path),
        Some(String::from("device/vif"))
    );
    // Later requests work as before, under ids the stale ones do not use.
    let after = client.read(TxId::NONE, "name").unwrap();
    assert_ne!(after.req_id(), read.req_id());
    client
        .receive(&reply_bytes(MsgType::Read, after.req_id(), b"guest"))
        .unwrap();
    assert_eq!(client.poll(after), Some(Ok(b"guest".to_vec())));
}
