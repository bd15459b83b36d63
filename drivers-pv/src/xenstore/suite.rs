//! Conformance checks against the real xenstored, from a domU.
//!
//! The group `xenstore` of the in-guest suite (run by the `conformance`
//! app next to `kernel::suite::GROUPS`). Each check talks to the dom0's
//! xenstored through [`super::guest`] and asserts exactly what it
//! answers, refusals included: the errno names below are what the C
//! `xenstored` of Xen 4.17 (Debian's `xen-utils-4.17`) was seen to send.
//! Every check works on its own nodes under our home's `data/` (which the
//! toolstack gives us to write) and removes them when done, whatever the
//! outcome. A dom0 booted without a toolstack has no xenstore, so every
//! check is domU-only.
//!
//! A few refusals need requests the typed client cannot form (a malformed
//! permission list, a message type only the toolstack may send): those go
//! out as raw requests (`SharedXenstore::raw_request`), matched to their
//! answers by request id like any other.
//!
//! The checks are top-level synchronous code: each operation is the
//! shared connection's async call, bounded by a timeout, under one
//! `sched::block_on`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Debug;
use core::future::Future;
use core::time::Duration;

use kernel::events::EventChannel;
use kernel::sched;
use kernel::suite::{Applies, Ctx, Outcome, Test};
use pv_arch::abi::event_channel::EvtchnBinding;
use pv_arch::abi::xen::DOMID_SELF;
use pv_arch::abi::xenstore as abi;
use spin::Mutex;

use super::client::{Reply, RetryPolicy, TxId, WatchEvent};
use super::error::XsError;
use super::guest::{self, within, ConnectError, GuestPage, GuestXenstore, REPLY_TIMEOUT};
use super::perms::{Access, Permissions};
use super::shared::Watch;

/// The group name (`only=xenstore` picks it).
const GROUP: &str = "xenstore";

/// How long to wait for a watch event that must come.
const EVENT_WAIT: Duration = Duration::from_secs(5);

/// How long to wait to be sure a watch event does not come.
const QUIET_WAIT: Duration = Duration::from_millis(500);

/// What one check returns: `Err` carries the failure message.
type Check = Result<(), String>;

/// Who we are, found independently of xenstore.
struct Env {
    /// Our domain id (from an event channel's status).
    domid: u16,
    /// `/local/domain/<domid>`.
    home: String,
}

/// Our domain id: Xen resolves `DOMID_SELF` as the remote end of an
/// unbound port, and the port's status reports the real id.
fn self_domid() -> Result<u16, String> {
    let channel = EventChannel::alloc_unbound(DOMID_SELF)
        .map_err(|errno| format!("alloc_unbound(DOMID_SELF): {errno}"))?;
    match channel.status().map(|status| status.binding()) {
        Ok(EvtchnBinding::Unbound { remote_dom }) => Ok(remote_dom),
        other => Err(format!("status of our unbound port: {other:?}")),
    }
}

/// Connects (once), finds our domid, runs `body`.
fn run(ctx: &Ctx<'_>, body: impl FnOnce(&Env) -> Check) -> Outcome {
    match guest::connect(ctx.boot) {
        Ok(()) => {}
        Err(ConnectError::NoStore) => return Outcome::Skip("no xenstore ring".into()),
        Err(error) => return Outcome::Fail(format!("connect: {error}")),
    }
    let domid = match self_domid() {
        Ok(domid) => domid,
        Err(why) => return Outcome::Fail(why),
    };
    let env = Env {
        domid,
        home: format!("/local/domain/{domid}"),
    };
    match body(&env) {
        Ok(()) => Outcome::Pass,
        Err(why) => Outcome::Fail(why),
    }
}

/// Runs one operation on the connection, to completion or
/// [`REPLY_TIMEOUT`].
fn xs<R, F: Future<Output = Result<R, XsError>>>(
    body: impl FnOnce(&'static GuestXenstore) -> F,
) -> Result<R, XsError> {
    let connection = guest::xenstore()?;
    sched::block_on(within(REPLY_TIMEOUT, body(connection)))
}

/// A watch of the suite's (on the domain's connection).
type SuiteWatch = Watch<'static, GuestPage>;

/// Watches `path` with `token`.
fn watch(path: &str, token: &str) -> Result<SuiteWatch, XsError> {
    xs(|x| x.watch_with_token(path, token))
}

/// Removes `watch`, waiting for xenstored's answer.
fn unwatch(watch: SuiteWatch) -> Result<(), XsError> {
    sched::block_on(within(REPLY_TIMEOUT, watch.unwatch()))
}

/// The connection's counters of dropped events.
fn stray_events() -> Result<u64, XsError> {
    guest::xenstore().map(|x| x.stats().stray_watch_events)
}

/// Turns an operation's error into a failure message naming the step.
trait Step<T> {
    fn step(self, what: &str) -> Result<T, String>;
}

impl<T> Step<T> for Result<T, XsError> {
    fn step(self, what: &str) -> Result<T, String> {
        self.map_err(|error| format!("{what}: {error}"))
    }
}

/// Checks that `result` is exactly `Err(expected)`.
fn expect_err<T: Debug>(result: Result<T, XsError>, expected: XsError, what: &str) -> Check {
    match result {
        Err(error) if error == expected => Ok(()),
        Err(error) => Err(format!("{what}: expected {expected}, got {error}")),
        Ok(value) => Err(format!("{what}: expected {expected}, got Ok({value:?})")),
    }
}

/// Checks that `actual == expected`.
fn expect_eq<T: Debug + PartialEq>(actual: T, expected: T, what: &str) -> Check {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected:?}, got {actual:?}"))
    }
}

/// A node of our own under `data/`, removed (with its children) on drop.
struct Scratch {
    path: String,
}

impl Scratch {
    /// `data/paravane-<name>`, removed first in case a crashed run left
    /// it behind.
    fn new(name: &str) -> Result<Scratch, String> {
        let path = format!("data/paravane-{name}");
        xs(|x| x.rm(TxId::NONE, &path)).step("removing a leftover scratch node")?;
        Ok(Scratch { path })
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn child(&self, leaf: &str) -> String {
        format!("{}/{leaf}", self.path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = xs(|x| x.rm(TxId::NONE, &self.path));
    }
}

/// Waits (running tasks) up to `limit` for the next event of `watch`.
fn wait_event(watch: &mut SuiteWatch, limit: Duration) -> Result<Option<WatchEvent>, String> {
    match sched::block_on(within(limit, watch.next_event())) {
        Ok(event) => Ok(Some(event)),
        Err(XsError::TimedOut) => Ok(None),
        Err(error) => Err(format!("waiting for a watch event: {error}")),
    }
}

/// Waits for an event of `watch` that must come, and checks its path.
fn expect_event(watch: &mut SuiteWatch, path: &str, what: &str) -> Check {
    match wait_event(watch, EVENT_WAIT)? {
        Some(event) => expect_eq(event.path.as_str(), path, what),
        None => Err(format!("{what}: no event within {EVENT_WAIT:?}")),
    }
}

// ---- Raw requests -------------------------------------------------------

/// Sends one hand-made message (any type, any payload up to 4096 bytes)
/// and returns its answer, or the error an `XS_ERROR` names.
fn raw_call(msg_type: u32, tx_id: u32, payload: &[u8]) -> Result<Reply, XsError> {
    xs(|x| x.raw_request(msg_type, TxId(tx_id), payload))
}

/// Payload bytes for display.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\\0")
}

// ---- Paths and reads ----------------------------------------------------

fn domain_path_is_home(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |env| {
        let path = xs(|x| x.get_domain_path(env.domid)).step("get_domain_path(self)")?;
        expect_eq(path.as_str(), env.home.as_str(), "our domain path")?;
        let path = xs(|x| x.get_domain_path(0)).step("get_domain_path(0)")?;
        expect_eq(path.as_str(), "/local/domain/0", "dom0's domain path")
    })
}

fn read_domid_relative(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |env| {
        let relative = xs(|x| x.read_string(TxId::NONE, "domid")).step("read domid")?;
        expect_eq(relative, env.domid.to_string(), "domid (relative)")?;
        let absolute = format!("{}/domid", env.home);
        let value = xs(|x| x.read_string(TxId::NONE, &absolute)).step("read home/domid")?;
        expect_eq(value, env.domid.to_string(), "domid (absolute)")
    })
}

fn read_missing_enoent(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let result = xs(|x| x.read(TxId::NONE, "data/paravane-never-written"));
        expect_err(result, XsError::NotFound, "read of a missing node")
    })
}

fn write_read_round_trip(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let node = Scratch::new("roundtrip")?;
        let value: &[u8] = b"paravane \x01\x7f\xff value";
        xs(|x| x.write(TxId::NONE, node.path(), value)).step("write")?;
        let back = xs(|x| x.read(TxId::NONE, node.path())).step("read back")?;
        expect_eq(back.as_slice(), value, "value read back")?;
        xs(|x| x.write(TxId::NONE, node.path(), b"")).step("write empty")?;
        let back = xs(|x| x.read(TxId::NONE, node.path())).step("read back empty")?;
        expect_eq(back.as_slice(), b"".as_slice(), "empty value read back")
    })
}

fn mkdir_then_directory(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let node = Scratch::new("mkdir")?;
        let dir = node.child("sub");
        xs(|x| x.mkdir(TxId::NONE, &dir)).step("mkdir")?;
        let children = xs(|x| x.directory(TxId::NONE, node.path())).step("directory")?;
        expect_eq(children, alloc::vec![String::from("sub")], "children")?;
        let value = xs(|x| x.read(TxId::NONE, &dir)).step("read the new directory")?;
        expect_eq(value.len(), 0, "value of a new directory")?;
        let children = xs(|x| x.directory(TxId::NONE, &dir)).step("directory of the new one")?;
        expect_eq(children.len(), 0, "children of a new directory")?;
        // mkdir of something that exists is not an error.
        xs(|x| x.mkdir(TxId::NONE, &dir)).step("mkdir again")
    })
}

fn rm_then_read_enoent(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let node = Scratch::new("rm")?;
        let leaf = node.child("leaf");
        xs(|x| x.write(TxId::NONE, &leaf, b"x")).step("write")?;
        xs(|x| x.rm(TxId::NONE, node.path())).step("rm the parent")?;
        expect_err(
            xs(|x| x.read(TxId::NONE, &leaf)),
            XsError::NotFound,
            "read of a child of a removed node",
        )?;
        expect_err(
            xs(|x| x.read(TxId::NONE, node.path())),
            XsError::NotFound,
            "read of a removed node",
        )
    })
}

fn rm_missing(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let node = Scratch::new("rm-missing")?;
        xs(|x| x.write(TxId::NONE, node.path(), b"")).step("write")?;
        // Missing, parent present: xenstored says OK.
        xs(|x| x.rm(TxId::NONE, &node.child("absent"))).step("rm of a missing leaf")?;
        // Missing parent too: ENOENT.
        expect_err(
            xs(|x| x.rm(TxId::NONE, &node.child("absent/leaf"))),
            XsError::NotFound,
            "rm below a missing node",
        )
    })
}

// ---- Permissions ----------------------------------------------------------

fn read_other_domain_eacces(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        expect_err(
            xs(|x| x.read(TxId::NONE, "/local/domain/0/domid")),
            XsError::AccessDenied,
            "read of dom0's domid",
        )?;
        // A missing node under an unreadable parent is EACCES too, so
        // existence does not leak.
        expect_err(
            xs(|x| x.read(TxId::NONE, "/local/domain/0/paravane-no-such-node")),
            XsError::AccessDenied,
            "read of a missing node in dom0's home",
        )?;
        expect_err(
            xs(|x| x.directory(TxId::NONE, "/vm")),
            XsError::AccessDenied,
            "directory of /vm",
        )
    })
}

fn write_outside_home_eacces(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |env| {
        expect_err(
            xs(|x| x.write(TxId::NONE, "/", b"x")),
            XsError::AccessDenied,
            "write to /",
        )?;
        expect_err(
            xs(|x| x.write(TxId::NONE, "/local", b"x")),
            XsError::AccessDenied,
            "write to /local",
        )?;
        expect_err(
            xs(|x| x.write(TxId::NONE, "/local/paravane", b"x")),
            XsError::AccessDenied,
            "create under /local",
        )?;
        // Our home itself belongs to dom0 (we may only read it).
        let in_home = format!("{}/paravane", env.home);
        expect_err(
            xs(|x| x.write(TxId::NONE, &in_home, b"x")),
            XsError::AccessDenied,
            "create directly in our home",
        )
    })
}

fn home_perms_from_toolstack(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |env| {
        let home = xs(|x| x.get_perms(TxId::NONE, &env.home)).step("get_perms(home)")?;
        let expected = Permissions::new(0, Access::None).with(env.domid, Access::Read);
        expect_eq(&home, &expected, "permissions of our home")?;
        let data = xs(|x| x.get_perms(TxId::NONE, "data")).step("get_perms(data)")?;
        expect_eq(
            data,
            Permissions::new(env.domid, Access::None),
            "permissions of data/",
        )
    })
}

fn new_node_is_ours(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |env| {
        let node = Scratch::new("owner")?;
        xs(|x| x.write(TxId::NONE, node.path(), b"")).step("write")?;
        let perms = xs(|x| x.get_perms(TxId::NONE, node.path())).step("get_perms")?;
        expect_eq(
            perms,
            Permissions::new(env.domid, Access::None),
            "permissions of a node we created",
        )
    })
}

fn set_perms_round_trip(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |env| {
        let node = Scratch::new("perms")?;
        xs(|x| x.write(TxId::NONE, node.path(), b"")).step("write")?;
        let wanted = Permissions::new(env.domid, Access::Read).with(0, Access::Both);
        xs(|x| x.set_perms(TxId::NONE, node.path(), &wanted)).step("set_perms")?;
        let got = xs(|x| x.get_perms(TxId::NONE, node.path())).step("get_perms")?;
        expect_eq(got, wanted, "permissions read back")
    })
}

fn set_perms_malformed_einval(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let node = Scratch::new("perms-bad")?;
        xs(|x| x.write(TxId::NONE, node.path(), b"")).step("write")?;
        let path = node.path().as_bytes();
        let bad_letter = [path, b"\0x5\0"].concat();
        expect_err(
            raw_call(abi::XS_SET_PERMS, 0, &bad_letter),
            XsError::Invalid,
            "set_perms with letter x",
        )?;
        let no_perms = [path, b"\0"].concat();
        expect_err(
            raw_call(abi::XS_SET_PERMS, 0, &no_perms),
            XsError::Invalid,
            "set_perms with no permission",
        )?;
        let no_domid = [path, b"\0r\0"].concat();
        expect_err(
            raw_call(abi::XS_SET_PERMS, 0, &no_domid),
            XsError::Invalid,
            "set_perms with a letter and no domid",
        )?;
        // Nothing changed.
        let perms = xs(|x| x.get_perms(TxId::NONE, node.path())).step("get_perms")?;
        expect_eq(perms.entries().len(), 0, "entries after refused set_perms")
    })
}

fn set_perms_not_owner_eacces(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |env| {
        let mine = Permissions::new(env.domid, Access::Both);
        expect_err(
            xs(|x| x.set_perms(TxId::NONE, &env.home, &mine)),
            XsError::AccessDenied,
            "set_perms on our home (owned by dom0)",
        )
    })
}

// ---- Watches --------------------------------------------------------------

fn watch_fires_on_write(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let node = Scratch::new("watch")?;
        let token = "paravane-watch";
        xs(|x| x.write(TxId::NONE, node.path(), b"0")).step("write")?;
        let mut watched = watch(node.path(), token).step("watch")?;
        let result = (|| {
            expect_event(&mut watched, node.path(), "initial event")?;
            xs(|x| x.write(TxId::NONE, node.path(), b"1")).step("write again")?;
            expect_event(&mut watched, node.path(), "event for the write")?;
            let child = node.child("child");
            xs(|x| x.write(TxId::NONE, &child, b"2")).step("write a child")?;
            expect_event(&mut watched, &child, "event for a child")
        })();
        let unwatched = unwatch(watched).step("unwatch");
        result.and(unwatched)
    })
}

fn unwatch_stops_events(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let gone = Scratch::new("unwatch-a")?;
        let kept = Scratch::new("unwatch-b")?;
        let token = "paravane-unwatch";
        xs(|x| x.write(TxId::NONE, gone.path(), b"0")).step("write a")?;
        xs(|x| x.write(TxId::NONE, kept.path(), b"0")).step("write b")?;
        // Two watches with one token share its queue.
        let watch_gone = watch(gone.path(), token).step("watch a")?;
        let mut watch_kept = watch(kept.path(), token).step("watch b")?;
        let mut watch_gone = Some(watch_gone);
        let result = (|| {
            // The two initial events, in either order.
            let mut initial = Vec::new();
            for _ in 0..2 {
                match wait_event(&mut watch_kept, EVENT_WAIT)? {
                    Some(event) => initial.push(event.path),
                    None => return Err("an initial event did not come".into()),
                }
            }
            initial.sort();
            expect_eq(
                initial,
                alloc::vec![gone.path.clone(), kept.path.clone()],
                "initial events",
            )?;
            if let Some(watched) = watch_gone.take() {
                unwatch(watched).step("unwatch a")?;
            }
            let strays = stray_events().step("stats")?;
            xs(|x| x.write(TxId::NONE, gone.path(), b"1")).step("write a again")?;
            // xenstored answers in order: an event for a would come
            // before the one for b.
            xs(|x| x.write(TxId::NONE, kept.path(), b"1")).step("write b again")?;
            expect_event(
                &mut watch_kept,
                kept.path(),
                "event for b (a's must not come)",
            )?;
            if let Some(event) = wait_event(&mut watch_kept, QUIET_WAIT)? {
                return Err(format!("unexpected event {:?}", event.path));
            }
            let now = stray_events().step("stats")?;
            expect_eq(now, strays, "stray events after unwatch")
        })();
        if let Some(watched) = watch_gone {
            let _ = unwatch(watched);
        }
        let unwatched = unwatch(watch_kept).step("unwatch b");
        result.and(unwatched)
    })
}

fn watch_refusals(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let node = Scratch::new("watch-dup")?;
        let token = "paravane-dup";
        let mut watched = watch(node.path(), token).step("watch")?;
        let result = (|| {
            expect_event(&mut watched, node.path(), "initial event")?;
            expect_err(
                watch(node.path(), token).map(drop),
                XsError::Exists,
                "the same watch twice",
            )?;
            expect_err(
                xs(|x| x.request(|client| client.unwatch(node.path(), "paravane-never-watched"))),
                XsError::NotFound,
                "unwatch of an unknown token",
            )
        })();
        // The refused duplicate took back only its own registration; the
        // first watch is still there.
        let unwatched = unwatch(watched).step("unwatch");
        result.and(unwatched)
    })
}

/// Waiting tasks in the watch checks below.
const WAITERS: usize = 3;

/// `WAITERS` tasks each wait for their own watch's event while the main
/// task writes the nodes: with `concurrent_writes` all writes are in
/// flight at once (their replies and the events interleave on the ring),
/// else one after the other. Every waiter must be woken by the pump task
/// with its own event and no other.
fn waiters_all_woken(concurrent_writes: bool) -> Check {
    let mut nodes = Vec::new();
    for index in 0..WAITERS {
        nodes.push(Scratch::new(&format!("waiter-{index}"))?);
    }
    let mut watches = Vec::new();
    for node in &nodes {
        xs(|x| x.write(TxId::NONE, node.path(), b"0")).step("write")?;
        let mut watched = xs(|x| x.watch(node.path())).step("watch")?;
        expect_event(&mut watched, node.path(), "initial event")?;
        watches.push(watched);
    }
    type Slot = Arc<Mutex<Option<(SuiteWatch, Result<WatchEvent, XsError>)>>>;
    let slots: Vec<Slot> = (0..WAITERS).map(|_| Arc::new(Mutex::new(None))).collect();
    for (slot, mut watched) in slots.iter().cloned().zip(watches) {
        sched::spawn(async move {
            // Far longer than the check waits: at its own deadline a
            // waiter finds an event that came meanwhile, which would
            // hide a lost wake-up.
            let event = within(6 * EVENT_WAIT, watched.next_event()).await;
            *slot.lock() = Some((watched, event));
        });
    }
    let finished = sched::block_on(async {
        // Let every task start waiting before anything happens.
        sched::sleep(Duration::from_millis(20)).await;
        let x = guest::xenstore()?;
        if concurrent_writes {
            let writes: Vec<_> = nodes
                .iter()
                .rev()
                .map(|node| x.write(TxId::NONE, node.path(), b"1"))
                .collect();
            for write in writes {
                within(REPLY_TIMEOUT, write).await?;
            }
        } else {
            for node in nodes.iter().rev() {
                within(REPLY_TIMEOUT, x.write(TxId::NONE, node.path(), b"1")).await?;
            }
        }
        let deadline = kernel::time::now_ns() + EVENT_WAIT.as_nanos() as u64;
        while slots.iter().any(|slot| slot.lock().is_none()) {
            if kernel::time::now_ns() > deadline {
                return Ok(false);
            }
            sched::sleep(Duration::from_millis(5)).await;
        }
        Ok::<bool, XsError>(true)
    });
    let mut result = match finished.step("writes") {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "a waiting task was not woken within {EVENT_WAIT:?}"
        )),
        Err(why) => Err(why),
    };
    for (slot, node) in slots.iter().zip(&nodes) {
        let taken = slot.lock().take();
        match taken {
            Some((watched, event)) => {
                if result.is_ok() {
                    result = match event {
                        Ok(event) => expect_eq(event.path.as_str(), node.path(), "waiter's event"),
                        Err(error) => Err(format!("waiter: {error}")),
                    };
                }
                result = result.and(unwatch(watched).step("unwatch"));
            }
            None if result.is_ok() => result = Err(format!("{}: no waiter result", node.path())),
            None => {}
        }
    }
    result
}

fn waiters_woken_by_channel(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| waiters_all_woken(true))
}

fn waiters_woken_by_blocking_call(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| waiters_all_woken(false))
}

// ---- Transactions -----------------------------------------------------------

fn transaction_commit_visible(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let node = Scratch::new("tx-commit")?;
        let tx = xs(|x| x.transaction_start()).step("transaction_start")?;
        let result = (|| {
            xs(|x| x.write(tx, node.path(), b"in-tx")).step("write in tx")?;
            expect_err(
                xs(|x| x.read(TxId::NONE, node.path())),
                XsError::NotFound,
                "read outside before commit",
            )?;
            let inside = xs(|x| x.read(tx, node.path())).step("read in tx")?;
            expect_eq(inside.as_slice(), b"in-tx".as_slice(), "read in tx")
        })();
        if let Err(why) = result {
            let _ = xs(|x| x.transaction_end(tx, false));
            return Err(why);
        }
        xs(|x| x.transaction_end(tx, true)).step("commit")?;
        let after = xs(|x| x.read(TxId::NONE, node.path())).step("read after commit")?;
        expect_eq(after.as_slice(), b"in-tx".as_slice(), "read after commit")
    })
}

fn transaction_abort_discards(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let node = Scratch::new("tx-abort")?;
        let tx = xs(|x| x.transaction_start()).step("transaction_start")?;
        let written = xs(|x| x.write(tx, node.path(), b"in-tx")).step("write in tx");
        xs(|x| x.transaction_end(tx, false)).step("abort")?;
        written?;
        expect_err(
            xs(|x| x.read(TxId::NONE, node.path())),
            XsError::NotFound,
            "read after abort",
        )?;
        expect_err(
            xs(|x| x.read(tx, node.path())),
            XsError::NotFound,
            "read in the ended transaction",
        )
    })
}

fn transaction_conflict_eagain(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let node = Scratch::new("tx-conflict")?;
        xs(|x| x.write(TxId::NONE, node.path(), b"0")).step("write")?;
        let tx = xs(|x| x.transaction_start()).step("transaction_start")?;
        let result = (|| {
            let seen = xs(|x| x.read(tx, node.path())).step("read in tx")?;
            expect_eq(seen.as_slice(), b"0".as_slice(), "read in tx")?;
            xs(|x| x.write(TxId::NONE, node.path(), b"outside")).step("write outside")?;
            xs(|x| x.write(tx, node.path(), b"inside")).step("write in tx")
        })();
        if let Err(why) = result {
            let _ = xs(|x| x.transaction_end(tx, false));
            return Err(why);
        }
        expect_err(
            xs(|x| x.transaction_end(tx, true)),
            XsError::Again,
            "commit after a conflicting write",
        )?;
        let value = xs(|x| x.read(TxId::NONE, node.path())).step("read after")?;
        expect_eq(
            value.as_slice(),
            b"outside".as_slice(),
            "value after EAGAIN",
        )
    })
}

fn transaction_retry_succeeds(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let node = Scratch::new("tx-retry")?;
        xs(|x| x.write(TxId::NONE, node.path(), b"0")).step("write")?;
        let attempts = core::cell::Cell::new(0u32);
        let path = node.path();
        let attempts = &attempts;
        let outcome = xs(|x| {
            x.transaction(RetryPolicy::DEFAULT, move |tx| {
                async move {
                    attempts.set(attempts.get() + 1);
                    let seen = x.read(tx, path).await?;
                    if attempts.get() == 1 {
                        // Somebody else gets in the way, once.
                        x.write(TxId::NONE, path, b"outside").await?;
                    }
                    let mut value = seen;
                    value.extend_from_slice(b"+tx");
                    x.write(tx, path, &value).await?;
                    Ok(attempts.get())
                }
            })
        });
        let done_in = outcome.step("transaction")?;
        expect_eq(done_in, 2, "attempts")?;
        let value = xs(|x| x.read(TxId::NONE, node.path())).step("read after")?;
        expect_eq(shown(&value).as_str(), "outside+tx", "value after retry")
    })
}

fn transaction_unknown_id(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let unknown = TxId(0x7ff0_0000);
        expect_err(
            xs(|x| x.transaction_end(unknown, true)),
            XsError::NotFound,
            "transaction_end of an unknown id",
        )?;
        expect_err(
            xs(|x| x.read(unknown, "domid")),
            XsError::NotFound,
            "read in an unknown transaction",
        )
    })
}

fn transaction_nested_start(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let tx = xs(|x| x.transaction_start()).step("transaction_start")?;
        let nested = raw_call(abi::XS_TRANSACTION_START, tx.0, b"\0");
        xs(|x| x.transaction_end(tx, false)).step("abort")?;
        expect_err(
            nested,
            XsError::Busy,
            "transaction_start inside a transaction",
        )
    })
}

// ---- Invalid requests -------------------------------------------------------

fn bad_paths_einval(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        for path in [
            "data/../domid",
            "data/./x",
            "data/bad char",
            "data/bad!char",
            "data//double",
            "data/trailing/",
            "/local/domain/0/../1",
        ] {
            expect_err(
                xs(|x| x.read(TxId::NONE, path)),
                XsError::Invalid,
                &format!("read {path:?}"),
            )?;
        }
        expect_err(
            xs(|x| x.write(TxId::NONE, "data/paravane-bad.dot", b"x")),
            XsError::Invalid,
            "write to a name with a dot",
        )
    })
}

fn path_too_long(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |env| {
        let relative = format!("data/{}", "a".repeat(abi::XENSTORE_REL_PATH_MAX));
        expect_err(
            xs(|x| x.write(TxId::NONE, &relative, b"x")),
            XsError::Invalid,
            "write to a relative path over XENSTORE_REL_PATH_MAX",
        )?;
        let absolute = format!(
            "{}/data/{}",
            env.home,
            "a".repeat(abi::XENSTORE_ABS_PATH_MAX)
        );
        expect_err(
            xs(|x| x.read(TxId::NONE, &absolute)),
            XsError::Invalid,
            "read of an absolute path over XENSTORE_ABS_PATH_MAX",
        )?;
        // Just within the limit works.
        let node = Scratch::new("long")?;
        let within = format!("{}/{}", node.path(), "b".repeat(200));
        xs(|x| x.write(TxId::NONE, &within, b"x")).step("write to a 230-byte path")
    })
}

fn value_too_big(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        let node = Scratch::new("big")?;
        let big = alloc::vec![b'v'; 3000];
        expect_err(
            xs(|x| x.write(TxId::NONE, node.path(), &big)),
            XsError::NoSpace,
            "write of a 3000-byte value",
        )?;
        let fits = alloc::vec![b'v'; 1000];
        xs(|x| x.write(TxId::NONE, node.path(), &fits)).step("write of a 1000-byte value")
    })
}

fn malformed_write_einval(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        // A write whose path has no NUL terminator.
        expect_err(
            raw_call(abi::XS_WRITE, 0, b"data/paravane-no-nul"),
            XsError::Invalid,
            "write without a NUL after the path",
        )
    })
}

fn toolstack_requests_refused(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |env| {
        let introduce = format!("{}\0{}\0{}\0", env.domid, 1, 1);
        expect_err(
            raw_call(abi::XS_INTRODUCE, 0, introduce.as_bytes()),
            XsError::AccessDenied,
            "XS_INTRODUCE from a domU",
        )?;
        expect_err(
            raw_call(abi::XS_CONTROL, 0, b"help\0"),
            XsError::AccessDenied,
            "XS_CONTROL from a domU",
        )?;
        let release = format!("{}\0", env.domid);
        expect_err(
            raw_call(abi::XS_RELEASE, 0, release.as_bytes()),
            XsError::AccessDenied,
            "XS_RELEASE from a domU",
        )
    })
}

fn unknown_type_refused(ctx: &Ctx<'_>) -> Outcome {
    run(ctx, |_| {
        expect_err(
            raw_call(abi::XS_TYPE_COUNT + 100, 0, b"\0"),
            XsError::NotSupported,
            "an unknown message type",
        )?;
        // The connection is still fine.
        xs(|x| x.read_string(TxId::NONE, "domid"))
            .step("read after the refusal")
            .map(drop)
    })
}

/// Builds a table entry.
const fn check(name: &'static str, run: fn(&Ctx<'_>) -> Outcome) -> Test {
    Test {
        group: GROUP,
        name,
        applies: Applies::DomUOnly,
        run,
    }
}

/// The `xenstore` group, in the order a port brings xenstore up.
pub const TESTS: &[Test] = &[
    check("domain_path_is_home", domain_path_is_home),
    check("read_domid_relative", read_domid_relative),
    check("read_missing_enoent", read_missing_enoent),
    check("write_read_round_trip", write_read_round_trip),
    check("mkdir_then_directory", mkdir_then_directory),
    check("rm_then_read_enoent", rm_then_read_enoent),
    check("rm_missing", rm_missing),
    check("read_other_domain_eacces", read_other_domain_eacces),
    check("write_outside_home_eacces", write_outside_home_eacces),
    check("home_perms_from_toolstack", home_perms_from_toolstack),
    check("new_node_is_ours", new_node_is_ours),
    check("set_perms_round_trip", set_perms_round_trip),
    check("set_perms_malformed_einval", set_perms_malformed_einval),
    check("set_perms_not_owner_eacces", set_perms_not_owner_eacces),
    check("watch_fires_on_write", watch_fires_on_write),
    check("unwatch_stops_events", unwatch_stops_events),
    check("watch_refusals", watch_refusals),
    check("waiters_woken_by_channel", waiters_woken_by_channel),
    check(
        "waiters_woken_by_blocking_call",
        waiters_woken_by_blocking_call,
    ),
    check("transaction_commit_visible", transaction_commit_visible),
    check("transaction_abort_discards", transaction_abort_discards),
    check("transaction_conflict_eagain", transaction_conflict_eagain),
    check("transaction_retry_succeeds", transaction_retry_succeeds),
    check("transaction_unknown_id", transaction_unknown_id),
    check("transaction_nested_start", transaction_nested_start),
    check("bad_paths_einval", bad_paths_einval),
    check("path_too_long", path_too_long),
    check("value_too_big", value_too_big),
    check("malformed_write_einval", malformed_write_einval),
    check("toolstack_requests_refused", toolstack_requests_refused),
    check("unknown_type_refused", unknown_type_refused),
];
