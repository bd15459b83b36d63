//! A simulated xenstored for host tests (built under `cfg(test)` or the
//! `sim` feature).
//!
//! [`Sim`] keeps a tree of nodes with values and permissions, speaks the
//! wire protocol on any number of connections (one per simulated domain),
//! and follows xenstored's rules closely enough to test a client against:
//! relative paths resolve under `/local/domain/<domid>`, new nodes are
//! owned by the unprivileged domain that creates them, dom0 may do
//! anything, transactions work on a snapshot and fail to commit with
//! `EAGAIN` if any node they read or wrote changed meanwhile, watches fire
//! once when set and then on every change at or below their path
//! (transactional changes only at commit, the removal of a parent as the
//! watched path itself). It is not a second implementation of xenstored:
//! quotas, `DIRECTORY_PART`, domain introduction and special-watch firing
//! are left out.
//!
//! For misbehaviour it takes [`Fault`]s, each spoiling the next reply, and
//! [`Sim::push_raw`] for arbitrary bytes. Two transports reach it:
//! [`SimTransport`], a byte pipe that can split and merge what it delivers
//! ([`Chunking`]), and [`SimRingPage`], a real `xenstore_domain_interface`
//! serviced by the simulator, for [`super::RingTransport`].

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use kernel::ring_index::ByteRing;
use pv_arch::abi::xenstore::{
    XenstoreDomainInterface, XsdSockmsg, XENSTORE_ABS_PATH_MAX, XENSTORE_RING_SIZE,
};

use super::blocking::Transport;
use super::error::XsError;
use super::perms::{Access, Permissions};
use super::ring::{BlockingPage, XenstorePage};
use super::wire::{raw_header_to_bytes, Frame, FrameDecoder, MsgType, PAYLOAD_MAX};

/// A small deterministic PRNG (SplitMix64) for splitting streams and
/// generating test data.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (0 if `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }
}

/// One simulated connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnId(usize);

/// A way to spoil the next reply the simulator sends (watch events are
/// not affected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The reply carries a request id nobody asked with.
    WrongReqId,
    /// The reply carries a different (valid) message type.
    WrongReplyType,
    /// The header announces a payload of `XENSTORE_PAYLOAD_MAX + 1` bytes.
    OversizedLen,
    /// The header's type is `0xdead`.
    GarbageType,
    /// The payload is cut to this many bytes (the header says so too).
    TruncatePayload(usize),
    /// The header announces the whole payload, half of it is sent, then
    /// the connection drops.
    TruncateAndDisconnect,
    /// The first payload byte becomes `0xff`.
    NonUtf8,
    /// No reply at all.
    DropReply,
    /// The connection drops instead of replying.
    Disconnect,
}

#[derive(Clone, Debug)]
struct Node {
    value: Vec<u8>,
    perms: Permissions,
    generation: u64,
}

type Tree = BTreeMap<String, Node>;

struct Conn {
    domid: u16,
    frames: FrameDecoder,
    out: VecDeque<u8>,
    connected: bool,
}

/// A change that watches hear about.
#[derive(Clone, Debug)]
enum Change {
    Modified(String),
    Removed(String),
}

struct Transaction {
    conn: usize,
    snapshot: Tree,
    /// Every path read or written, with its generation when the
    /// transaction started (`None`: it did not exist).
    seen: BTreeMap<String, Option<u64>>,
    changes: Vec<Change>,
}

struct Watch {
    conn: usize,
    domid: u16,
    given: String,
    absolute: String,
    token: String,
}

/// Whether `child` is `parent` or below it.
fn is_child(child: &str, parent: &str) -> bool {
    child == parent
        || (parent == "/" && child.starts_with('/'))
        || (child.starts_with(parent) && child.as_bytes().get(parent.len()) == Some(&b'/'))
}

/// The parent of an absolute path (`None` for `/`).
fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(index) => Some(&path[..index]),
        None => None,
    }
}

/// The home of a domain.
fn home(domid: u16) -> String {
    format!("/local/domain/{domid}")
}

/// Resolves and checks a path as xenstored does.
fn canonical(domid: u16, path: &str) -> Result<String, XsError> {
    if path.is_empty() {
        return Err(XsError::Invalid);
    }
    let absolute = if path.starts_with('/') {
        String::from(path)
    } else {
        format!("{}/{path}", home(domid))
    };
    let chars_ok = absolute
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b"-/_@".contains(&byte));
    if !chars_ok
        || absolute.len() > XENSTORE_ABS_PATH_MAX
        || absolute.contains("//")
        || (absolute.len() > 1 && absolute.ends_with('/'))
    {
        return Err(XsError::Invalid);
    }
    Ok(absolute)
}

/// The NUL-terminated fields of a request payload, as text.
fn text_fields(payload: &[u8]) -> Result<Vec<&str>, XsError> {
    let body = payload.strip_suffix(b"\0").ok_or(XsError::Invalid)?;
    body.split(|&byte| byte == 0)
        .map(|field| core::str::from_utf8(field).map_err(|_| XsError::Invalid))
        .collect()
}

/// Operations on one tree (the store, or a transaction's snapshot) on
/// behalf of one domain.
struct View<'a> {
    tree: &'a mut Tree,
    seen: Option<&'a mut BTreeMap<String, Option<u64>>>,
    generation: &'a mut u64,
    changes: &'a mut Vec<Change>,
    domid: u16,
}

impl View<'_> {
    fn touch(&mut self, path: &str) {
        if let Some(seen) = self.seen.as_deref_mut() {
            if !seen.contains_key(path) {
                let generation = self.tree.get(path).map(|node| node.generation);
                seen.insert(String::from(path), generation);
            }
        }
    }

    fn next_generation(&mut self) -> u64 {
        *self.generation += 1;
        *self.generation
    }

    fn access(&self, node: &Node) -> Access {
        if self.domid == 0 {
            Access::Both
        } else {
            node.perms.access_for(self.domid)
        }
    }

    fn readable(&mut self, path: &str) -> Result<&Node, XsError> {
        self.touch(path);
        let node = self.tree.get(path).ok_or(XsError::NotFound)?;
        if self.access(node).can_read() {
            Ok(node)
        } else {
            Err(XsError::AccessDenied)
        }
    }

    fn bump(&mut self, path: &str) {
        let generation = self.next_generation();
        if let Some(node) = self.tree.get_mut(path) {
            node.generation = generation;
        }
    }

    /// Makes sure `path` exists and may be written; returns whether it
    /// had to be created.
    fn ensure(&mut self, path: &str) -> Result<bool, XsError> {
        self.touch(path);
        if let Some(node) = self.tree.get(path) {
            return if self.access(node).can_write() {
                Ok(false)
            } else {
                Err(XsError::AccessDenied)
            };
        }
        let mut missing = Vec::from([String::from(path)]);
        let mut ancestor = parent_of(path).map(String::from);
        while let Some(candidate) = ancestor {
            self.touch(&candidate);
            if self.tree.contains_key(&candidate) {
                ancestor = Some(candidate);
                break;
            }
            ancestor = parent_of(&candidate).map(String::from);
            missing.push(candidate);
        }
        let ancestor = ancestor.ok_or(XsError::NotFound)?;
        let writable = self
            .tree
            .get(&ancestor)
            .is_some_and(|node| self.access(node).can_write());
        if !writable {
            return Err(XsError::AccessDenied);
        }
        for path in missing.iter().rev() {
            let parent = parent_of(path).unwrap_or("/");
            let mut perms = self
                .tree
                .get(parent)
                .map_or(Permissions::new(0, Access::None), |node| node.perms.clone());
            if self.domid != 0 {
                perms.set_owner(self.domid);
            }
            let generation = self.next_generation();
            self.tree.insert(
                path.clone(),
                Node {
                    value: Vec::new(),
                    perms,
                    generation,
                },
            );
            self.bump(parent);
        }
        Ok(true)
    }

    fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        Ok(self.readable(path)?.value.clone())
    }

    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.ensure(path)?;
        let generation = self.next_generation();
        if let Some(node) = self.tree.get_mut(path) {
            node.value = value.to_vec();
            node.generation = generation;
        }
        self.changes.push(Change::Modified(String::from(path)));
        Ok(())
    }

    fn mkdir(&mut self, path: &str) -> Result<(), XsError> {
        if self.ensure(path)? {
            self.changes.push(Change::Modified(String::from(path)));
        }
        Ok(())
    }

    fn rm(&mut self, path: &str) -> Result<(), XsError> {
        let parent = parent_of(path).ok_or(XsError::Invalid)?;
        self.touch(path);
        self.touch(parent);
        let Some(node) = self.tree.get(path) else {
            return if self.tree.contains_key(parent) {
                Ok(())
            } else {
                Err(XsError::NotFound)
            };
        };
        if !self.access(node).can_write() {
            return Err(XsError::AccessDenied);
        }
        let doomed: Vec<String> = self
            .tree
            .keys()
            .filter(|key| is_child(key, path))
            .cloned()
            .collect();
        for key in &doomed {
            self.touch(key);
            self.tree.remove(key);
        }
        self.bump(parent);
        self.changes.push(Change::Removed(String::from(path)));
        Ok(())
    }

    fn directory(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        self.readable(path)?;
        let prefix = if path == "/" {
            String::from("/")
        } else {
            format!("{path}/")
        };
        let mut out = Vec::new();
        for key in self.tree.range(prefix.clone()..).map(|(key, _)| key) {
            let Some(rest) = key.strip_prefix(prefix.as_str()) else {
                break;
            };
            if !rest.is_empty() && !rest.contains('/') {
                out.extend_from_slice(rest.as_bytes());
                out.push(0);
            }
        }
        Ok(out)
    }

    fn get_perms(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        Ok(self.readable(path)?.perms.to_wire())
    }

    fn set_perms(&mut self, path: &str, perms: Permissions) -> Result<(), XsError> {
        self.touch(path);
        let domid = self.domid;
        let node = self.tree.get(path).ok_or(XsError::NotFound)?;
        if domid != 0 && node.perms.owner() != domid {
            return Err(XsError::AccessDenied);
        }
        if domid != 0 && perms.owner() != domid {
            return Err(XsError::NotPermitted);
        }
        let generation = self.next_generation();
        if let Some(node) = self.tree.get_mut(path) {
            node.perms = perms;
            node.generation = generation;
        }
        self.changes.push(Change::Modified(String::from(path)));
        Ok(())
    }
}

/// The simulated xenstored.
pub struct Sim {
    tree: Tree,
    generation: u64,
    next_tx: u32,
    transactions: BTreeMap<u32, Transaction>,
    watches: Vec<Watch>,
    conns: Vec<Conn>,
    faults: VecDeque<Fault>,
    requests: u64,
}

/// A simulator shared between transports and the test.
pub type SimHandle = Rc<RefCell<Sim>>;

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

impl Sim {
    /// A store holding `/`, `/local` and `/local/domain` (owned by dom0,
    /// readable by all).
    pub fn new() -> Sim {
        let mut tree = Tree::new();
        for (generation, path) in ["/", "/local", "/local/domain"].into_iter().enumerate() {
            tree.insert(
                String::from(path),
                Node {
                    value: Vec::new(),
                    perms: Permissions::new(0, Access::Read),
                    generation: generation as u64 + 1,
                },
            );
        }
        Sim {
            tree,
            generation: 3,
            next_tx: 1,
            transactions: BTreeMap::new(),
            watches: Vec::new(),
            conns: Vec::new(),
            faults: VecDeque::new(),
            requests: 0,
        }
    }

    /// A new simulator behind a shared handle.
    pub fn shared() -> SimHandle {
        Rc::new(RefCell::new(Sim::new()))
    }

    /// Connects a domain. As the toolstack would, creates its home
    /// `/local/domain/<domid>`, owned by it.
    pub fn connect(&mut self, domid: u16) -> ConnId {
        let path = home(domid);
        if !self.tree.contains_key(&path) {
            self.generation += 1;
            self.tree.insert(
                path,
                Node {
                    value: Vec::new(),
                    perms: Permissions::new(domid, Access::None),
                    generation: self.generation,
                },
            );
        }
        self.conns.push(Conn {
            domid,
            frames: FrameDecoder::new(),
            out: VecDeque::new(),
            connected: true,
        });
        ConnId(self.conns.len() - 1)
    }

    /// Whether `conn` is still up.
    pub fn is_connected(&self, conn: ConnId) -> bool {
        self.conns.get(conn.0).is_some_and(|c| c.connected)
    }

    /// Drops a connection, with its watches and transactions.
    pub fn disconnect(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn.0) {
            c.connected = false;
        }
        self.watches.retain(|watch| watch.conn != conn.0);
        self.transactions.retain(|_, tx| tx.conn != conn.0);
    }

    /// Spoils the next reply (faults queue up, one per reply).
    pub fn inject_fault(&mut self, fault: Fault) {
        self.faults.push_back(fault);
    }

    /// Sends arbitrary bytes to `conn`.
    pub fn push_raw(&mut self, conn: ConnId, bytes: &[u8]) {
        if let Some(c) = self.conns.get_mut(conn.0) {
            c.out.extend(bytes);
        }
    }

    /// Bytes waiting to be delivered to `conn`.
    pub fn pending_output(&self, conn: ConnId) -> usize {
        self.conns.get(conn.0).map_or(0, |c| c.out.len())
    }

    /// Takes up to `max` bytes waiting for `conn`.
    pub fn take_output(&mut self, conn: ConnId, max: usize) -> Vec<u8> {
        match self.conns.get_mut(conn.0) {
            Some(c) => {
                let count = max.min(c.out.len());
                c.out.drain(..count).collect()
            }
            None => Vec::new(),
        }
    }

    /// How many requests the simulator has handled.
    pub fn requests_handled(&self) -> u64 {
        self.requests
    }

    /// Open transactions.
    pub fn open_transactions(&self) -> usize {
        self.transactions.len()
    }

    /// Registered watches.
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }

    /// The value at an absolute path.
    pub fn value(&self, path: &str) -> Option<&[u8]> {
        self.tree.get(path).map(|node| node.value.as_slice())
    }

    /// The permissions of an absolute path.
    pub fn perms(&self, path: &str) -> Option<&Permissions> {
        self.tree.get(path).map(|node| &node.perms)
    }

    /// Runs `op` directly on the store as `domid` (someone else writing
    /// behind the client's back), firing watches.
    fn as_domain(
        &mut self,
        domid: u16,
        op: impl FnOnce(&mut View<'_>) -> Result<(), XsError>,
    ) -> Result<(), XsError> {
        let mut changes = Vec::new();
        let mut view = View {
            tree: &mut self.tree,
            seen: None,
            generation: &mut self.generation,
            changes: &mut changes,
            domid,
        };
        op(&mut view)?;
        for change in &changes {
            self.fire(change);
        }
        Ok(())
    }

    /// Writes `value` at `path` as `domid`, firing watches.
    pub fn write_as(&mut self, domid: u16, path: &str, value: &[u8]) -> Result<(), XsError> {
        let path = canonical(domid, path)?;
        self.as_domain(domid, |view| view.write(&path, value))
    }

    /// Removes `path` as `domid`, firing watches.
    pub fn rm_as(&mut self, domid: u16, path: &str) -> Result<(), XsError> {
        let path = canonical(domid, path)?;
        self.as_domain(domid, |view| view.rm(&path))
    }

    /// Sets the permissions of `path` as `domid`.
    pub fn set_perms_as(
        &mut self,
        domid: u16,
        path: &str,
        perms: Permissions,
    ) -> Result<(), XsError> {
        let path = canonical(domid, path)?;
        self.as_domain(domid, |view| view.set_perms(&path, perms))
    }

    /// Feeds request bytes from `conn`, in any pieces; replies and events
    /// queue up for [`Sim::take_output`]. A request stream error drops the
    /// connection, as xenstored does.
    pub fn handle_input(&mut self, conn: ConnId, mut bytes: &[u8]) {
        loop {
            let Some(c) = self.conns.get_mut(conn.0) else {
                return;
            };
            if !c.connected {
                return;
            }
            match c.frames.decode(&mut bytes) {
                None => return,
                Some(Ok(frame)) => self.process(conn.0, frame),
                Some(Err(_)) => {
                    self.disconnect(conn);
                    return;
                }
            }
        }
    }

    fn process(&mut self, conn: usize, frame: Frame) {
        self.requests += 1;
        let header = frame.header;
        let domid = self.conns[conn].domid;
        let mut changes = Vec::new();
        let mut after_reply: Vec<(String, String)> = Vec::new();
        let result = self.execute(conn, domid, &frame, &mut changes, &mut after_reply);
        match result {
            Ok(payload) => self.reply(conn, header.msg_type, header.req_id, header.tx_id, payload),
            Err(error) => {
                let mut payload = Vec::from(error.errno_name().unwrap_or("EINVAL").as_bytes());
                payload.push(0);
                self.reply(conn, MsgType::Error, header.req_id, header.tx_id, payload);
            }
        }
        for (path, token) in after_reply {
            self.send_event(conn, &path, &token);
        }
        for change in &changes {
            self.fire(change);
        }
    }

    fn execute(
        &mut self,
        conn: usize,
        domid: u16,
        frame: &Frame,
        changes: &mut Vec<Change>,
        after_reply: &mut Vec<(String, String)>,
    ) -> Result<Vec<u8>, XsError> {
        let header = frame.header;
        let payload = frame.payload.as_slice();
        let ok = || Ok(Vec::from(*b"OK\0"));
        match header.msg_type {
            MsgType::Read
            | MsgType::Write
            | MsgType::Mkdir
            | MsgType::Rm
            | MsgType::Directory
            | MsgType::GetPerms
            | MsgType::SetPerms => {}
            MsgType::Watch | MsgType::Unwatch => {
                let [path, token] =
                    <[&str; 2]>::try_from(text_fields(payload)?).map_err(|_| XsError::Invalid)?;
                let absolute = if path.starts_with('@') {
                    String::from(path)
                } else {
                    canonical(domid, path)?
                };
                let existing = self.watches.iter().position(|watch| {
                    watch.conn == conn && watch.absolute == absolute && watch.token == token
                });
                if header.msg_type == MsgType::Unwatch {
                    self.watches.remove(existing.ok_or(XsError::NotFound)?);
                    return ok();
                }
                if existing.is_some() {
                    return Err(XsError::Exists);
                }
                self.watches.push(Watch {
                    conn,
                    domid,
                    given: String::from(path),
                    absolute,
                    token: String::from(token),
                });
                after_reply.push((String::from(path), String::from(token)));
                return ok();
            }
            MsgType::TransactionStart => {
                if header.tx_id != 0 {
                    return Err(XsError::Busy);
                }
                let id = self.next_tx;
                self.next_tx = self.next_tx.wrapping_add(1).max(1);
                self.transactions.insert(
                    id,
                    Transaction {
                        conn,
                        snapshot: self.tree.clone(),
                        seen: BTreeMap::new(),
                        changes: Vec::new(),
                    },
                );
                let mut out = Vec::from(format!("{id}").as_bytes());
                out.push(0);
                return Ok(out);
            }
            MsgType::TransactionEnd => {
                let commit = match payload {
                    b"T\0" => true,
                    b"F\0" => false,
                    _ => return Err(XsError::Invalid),
                };
                let tx = match self.transactions.remove(&header.tx_id) {
                    Some(tx) if tx.conn == conn => tx,
                    Some(tx) => {
                        self.transactions.insert(header.tx_id, tx);
                        return Err(XsError::NotFound);
                    }
                    None => return Err(XsError::NotFound),
                };
                if !commit {
                    return ok();
                }
                let conflict = tx.seen.iter().any(|(path, generation)| {
                    self.tree.get(path).map(|node| node.generation) != *generation
                });
                if conflict {
                    return Err(XsError::Again);
                }
                for (path, original) in &tx.seen {
                    match tx.snapshot.get(path) {
                        Some(node) if Some(node.generation) != *original => {
                            self.tree.insert(path.clone(), node.clone());
                        }
                        None if original.is_some() => {
                            self.tree.remove(path);
                        }
                        _ => {}
                    }
                }
                changes.extend(tx.changes);
                return ok();
            }
            MsgType::GetDomainPath => {
                let [digits] =
                    <[&str; 1]>::try_from(text_fields(payload)?).map_err(|_| XsError::Invalid)?;
                let target: u16 = digits.parse().map_err(|_| XsError::Invalid)?;
                let mut out = Vec::from(home(target).as_bytes());
                out.push(0);
                return Ok(out);
            }
            MsgType::ResetWatches => {
                self.watches.retain(|watch| watch.conn != conn);
                self.transactions.retain(|_, tx| tx.conn != conn);
                return ok();
            }
            MsgType::Introduce
            | MsgType::Release
            | MsgType::Resume
            | MsgType::SetTarget
            | MsgType::IsDomainIntroduced => {
                return Err(if domid == 0 {
                    XsError::NotSupported
                } else {
                    XsError::AccessDenied
                })
            }
            MsgType::Control | MsgType::DirectoryPart => return Err(XsError::NotSupported),
            MsgType::WatchEvent | MsgType::Error => return Err(XsError::Invalid),
        }

        // The node operations, on the store or a transaction's snapshot.
        let (path, rest) = match payload.iter().position(|&byte| byte == 0) {
            Some(nul) => (&payload[..nul], &payload[nul + 1..]),
            None => return Err(XsError::Invalid),
        };
        let path = core::str::from_utf8(path).map_err(|_| XsError::Invalid)?;
        let path = canonical(domid, path)?;
        let mut view = if header.tx_id == 0 {
            View {
                tree: &mut self.tree,
                seen: None,
                generation: &mut self.generation,
                changes,
                domid,
            }
        } else {
            let tx = self
                .transactions
                .get_mut(&header.tx_id)
                .filter(|tx| tx.conn == conn)
                .ok_or(XsError::NotFound)?;
            View {
                tree: &mut tx.snapshot,
                seen: Some(&mut tx.seen),
                generation: &mut self.generation,
                changes: &mut tx.changes,
                domid,
            }
        };
        match header.msg_type {
            MsgType::Read => view.read(&path),
            MsgType::Write => view.write(&path, rest).map(|()| Vec::from(*b"OK\0")),
            MsgType::Mkdir => view.mkdir(&path).map(|()| Vec::from(*b"OK\0")),
            MsgType::Rm => view.rm(&path).map(|()| Vec::from(*b"OK\0")),
            MsgType::Directory => view.directory(&path),
            MsgType::GetPerms => view.get_perms(&path),
            _ => {
                let perms = Permissions::parse(rest).map_err(|_| XsError::Invalid)?;
                view.set_perms(&path, perms).map(|()| Vec::from(*b"OK\0"))
            }
        }
    }

    fn reply(&mut self, conn: usize, msg_type: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) {
        let mut payload = payload;
        let mut raw = XsdSockmsg {
            type_: msg_type.to_wire(),
            req_id,
            tx_id,
            len: payload.len() as u32,
        };
        let mut drop_after = false;
        match self.faults.pop_front() {
            None => {}
            Some(Fault::WrongReqId) => raw.req_id = req_id.wrapping_add(1000),
            Some(Fault::WrongReplyType) => {
                let other = if msg_type == MsgType::Read {
                    MsgType::Directory
                } else {
                    MsgType::Read
                };
                raw.type_ = other.to_wire();
            }
            Some(Fault::OversizedLen) => raw.len = PAYLOAD_MAX as u32 + 1,
            Some(Fault::GarbageType) => raw.type_ = 0xdead,
            Some(Fault::TruncatePayload(keep)) => {
                payload.truncate(keep);
                raw.len = payload.len() as u32;
            }
            Some(Fault::TruncateAndDisconnect) => {
                payload.truncate(payload.len() / 2);
                drop_after = true;
            }
            Some(Fault::NonUtf8) => {
                if let Some(first) = payload.first_mut() {
                    *first = 0xff;
                }
            }
            Some(Fault::DropReply) => return,
            Some(Fault::Disconnect) => {
                self.conns[conn].out.clear();
                self.disconnect(ConnId(conn));
                return;
            }
        }
        let c = &mut self.conns[conn];
        c.out.extend(raw_header_to_bytes(&raw));
        c.out.extend(payload);
        if drop_after {
            self.disconnect(ConnId(conn));
        }
    }

    fn send_event(&mut self, conn: usize, path: &str, token: &str) {
        let mut payload = Vec::with_capacity(path.len() + token.len() + 2);
        payload.extend_from_slice(path.as_bytes());
        payload.push(0);
        payload.extend_from_slice(token.as_bytes());
        payload.push(0);
        let raw = XsdSockmsg {
            type_: MsgType::WatchEvent.to_wire(),
            req_id: 0,
            tx_id: 0,
            len: payload.len() as u32,
        };
        if let Some(c) = self.conns.get_mut(conn).filter(|c| c.connected) {
            c.out.extend(raw_header_to_bytes(&raw));
            c.out.extend(payload);
        }
    }

    /// Sends the events a change causes.
    fn fire(&mut self, change: &Change) {
        let mut events = Vec::new();
        for watch in &self.watches {
            let hit = match change {
                Change::Modified(path) => is_child(path, &watch.absolute).then_some(path.as_str()),
                Change::Removed(path) => {
                    if is_child(path, &watch.absolute) {
                        Some(path.as_str())
                    } else if is_child(&watch.absolute, path) {
                        Some(watch.absolute.as_str())
                    } else {
                        None
                    }
                }
            };
            let Some(absolute) = hit else {
                continue;
            };
            let shown = if watch.given.starts_with('/') || watch.given.starts_with('@') {
                String::from(absolute)
            } else {
                let base = format!("{}/", home(watch.domid));
                String::from(absolute.strip_prefix(base.as_str()).unwrap_or(absolute))
            };
            events.push((watch.conn, shown, watch.token.clone()));
        }
        for (conn, path, token) in events {
            self.send_event(conn, &path, &token);
        }
    }

    /// Services a ring page as xenstored would: consumes requests, then
    /// produces as much queued output as fits, until neither moves.
    /// Returns whether anything moved; corrupt guest indices drop the
    /// connection and report [`XsError::RingCorrupt`].
    pub fn service_ring(
        &mut self,
        conn: ConnId,
        page: &mut XenstoreDomainInterface,
    ) -> Result<bool, XsError> {
        let size = XENSTORE_RING_SIZE as u32;
        let mut progress = false;
        loop {
            if !self.is_connected(conn) {
                return Ok(progress);
            }
            let mut moved = false;
            let requests = ByteRing::new(page.req_prod, page.req_cons, size).map_err(|_| {
                self.disconnect(conn);
                XsError::RingCorrupt
            })?;
            let (start, len) = requests.consumer_chunk();
            if len > 0 {
                let bytes = page.req[start..start + len].to_vec();
                page.req_cons = page.req_cons.wrapping_add(len as u32);
                self.handle_input(conn, &bytes);
                moved = true;
            }
            let replies = ByteRing::new(page.rsp_prod, page.rsp_cons, size).map_err(|_| {
                self.disconnect(conn);
                XsError::RingCorrupt
            })?;
            let (start, room) = replies.producer_chunk();
            let bytes = self.take_output(conn, room);
            if !bytes.is_empty() {
                page.rsp[start..start + bytes.len()].copy_from_slice(&bytes);
                page.rsp_prod = page.rsp_prod.wrapping_add(bytes.len() as u32);
                moved = true;
            }
            if !moved {
                return Ok(progress);
            }
            progress = true;
        }
    }
}

/// How a [`SimTransport`] hands out what the simulator sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// As much as the caller's buffer holds (messages merge).
    Whole,
    /// At most this many bytes per `recv` (1: byte by byte).
    Fixed(usize),
    /// A random number of bytes from 1 to `max` per `recv`.
    Random {
        /// The largest piece.
        max: usize,
    },
}

/// A byte pipe to the simulator, with the splitting of [`Chunking`]
/// applied both ways.
pub struct SimTransport {
    sim: SimHandle,
    conn: ConnId,
    chunking: Chunking,
    rng: SplitMix64,
}

impl SimTransport {
    /// Connects `domid` to the simulator.
    pub fn connect(sim: &SimHandle, domid: u16) -> SimTransport {
        let conn = sim.borrow_mut().connect(domid);
        SimTransport {
            sim: Rc::clone(sim),
            conn,
            chunking: Chunking::Whole,
            rng: SplitMix64::new(0),
        }
    }

    /// Splits traffic as `chunking` says, randomly from `seed`.
    pub fn with_chunking(mut self, chunking: Chunking, seed: u64) -> SimTransport {
        self.chunking = chunking;
        self.rng = SplitMix64::new(seed);
        self
    }

    /// This transport's connection.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// The simulator.
    pub fn sim(&self) -> &SimHandle {
        &self.sim
    }

    fn piece(&mut self, available: usize) -> usize {
        match self.chunking {
            Chunking::Whole => available,
            Chunking::Fixed(size) => size.max(1).min(available),
            Chunking::Random { max } => {
                (1 + self.rng.below(max.max(1) as u64) as usize).min(available)
            }
        }
    }
}

impl Transport for SimTransport {
    fn send(&mut self, mut bytes: &[u8]) -> Result<(), XsError> {
        if !self.sim.borrow().is_connected(self.conn) {
            return Err(XsError::Disconnected);
        }
        while !bytes.is_empty() {
            let count = self.piece(bytes.len());
            self.sim
                .borrow_mut()
                .handle_input(self.conn, &bytes[..count]);
            bytes = &bytes[count..];
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        let count = self.piece(buf.len());
        let mut sim = self.sim.borrow_mut();
        let bytes = sim.take_output(self.conn, count);
        if bytes.is_empty() && !sim.is_connected(self.conn) {
            return Err(XsError::Disconnected);
        }
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(bytes.len())
    }

    /// The simulator answers at once, so waiting with nothing to read
    /// would be waiting forever: that is reported as
    /// [`XsError::Disconnected`] so a test ends instead of hanging.
    fn wait(&mut self) -> Result<(), XsError> {
        if self.sim.borrow().pending_output(self.conn) > 0 {
            Ok(())
        } else {
            Err(XsError::Disconnected)
        }
    }
}

/// A shared xenstore page serviced by the simulator whenever the guest
/// notifies or waits, for testing [`super::RingTransport`].
pub struct SimRingPage {
    /// The page; tests may scribble on it to play a hostile xenstored.
    pub page: Box<XenstoreDomainInterface>,
    sim: SimHandle,
    conn: ConnId,
    /// Notifications received from the guest.
    pub notifications: u64,
    /// Serve only when [`SimRingPage::service`] is called, not on every
    /// notification (to hold replies back and interleave them).
    manual: bool,
}

impl SimRingPage {
    /// Connects `domid` to the simulator through a zeroed page.
    pub fn connect(sim: &SimHandle, domid: u16) -> SimRingPage {
        let conn = sim.borrow_mut().connect(domid);
        SimRingPage {
            page: Box::new(XenstoreDomainInterface::zeroed()),
            sim: Rc::clone(sim),
            conn,
            notifications: 0,
            manual: false,
        }
    }

    /// Serves only on [`SimRingPage::service`], so tests decide when
    /// xenstored answers.
    pub fn manual(mut self) -> SimRingPage {
        self.manual = true;
        self
    }

    /// Starts all four indices at `index` (to exercise wrapping).
    pub fn with_indices(mut self, index: u32) -> SimRingPage {
        self.page.req_cons = index;
        self.page.req_prod = index;
        self.page.rsp_cons = index;
        self.page.rsp_prod = index;
        self
    }

    /// This page's connection.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Lets the simulator run over the page; returns whether anything
    /// moved.
    pub fn service(&mut self) -> Result<bool, XsError> {
        self.sim
            .borrow_mut()
            .service_ring(self.conn, &mut self.page)
    }
}

impl XenstorePage for SimRingPage {
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
        if self.manual {
            return;
        }
        // A hostile or broken guest index shows up on the guest's side
        // too; the simulator just stops serving.
        let _ = self.service();
    }
}

impl BlockingPage for SimRingPage {
    /// Services the page; if nothing moved and nothing is left to read,
    /// the guest would wait forever: reported as
    /// [`XsError::Disconnected`].
    fn wait(&mut self) -> Result<(), XsError> {
        let moved = self.service().unwrap_or(false);
        let unread = self.page.rsp_prod != self.page.rsp_cons;
        if moved || unread {
            Ok(())
        } else {
            Err(XsError::Disconnected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        assert_eq!(
            canonical(3, "device/vif").unwrap(),
            "/local/domain/3/device/vif"
        );
        assert_eq!(canonical(3, "/").unwrap(), "/");
        for bad in ["", "/a//b", "/a/", "/a b", "a\u{e9}"] {
            assert_eq!(canonical(3, bad), Err(XsError::Invalid), "{bad:?}");
        }
        assert!(is_child("/a/b", "/a") && is_child("/a", "/a") && is_child("/a", "/"));
        assert!(!is_child("/ab", "/a") && !is_child("/a", "/a/b"));
        assert_eq!(parent_of("/a/b"), Some("/a"));
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/"), None);
    }
}
