//! Hot-plug: the virtual network interfaces and disks this domain has,
//! watched as the toolstack adds and removes them (`xl network-attach`,
//! `xl block-detach`, a resume that rewrites them).
//!
//! The toolstack makes a device by writing our directory
//! `device/<kind>/<index>` (in one transaction, with `state`
//! `Initialising`), and takes it away by removing that directory once
//! both ends are `Closed`. [`Hotplug`] watches `device/vif` and
//! `device/vbd` (one watch each; a watch fires for any change below the
//! path, so also for every `state` write of a device, which is cheap to
//! tell apart: a directory listing) and turns listings into [`Change`]s
//! with [`DeviceSet::update`], which is pure and host-tested.
//!
//! The policy is deliberately small:
//! - the devices present when the watcher starts are its starting point
//!   ([`Hotplug::present`]), not news;
//! - an index that appears is reported once ([`Change::Appeared`]), one
//!   that goes once ([`Change::Vanished`]); an index that goes and comes
//!   back (a detach, then an attach that reuses the index, as xl does
//!   when it is the lowest free one) is reported as both, in that order,
//!   as long as a listing saw it gone (a detach takes seconds, a listing
//!   follows each event at once); a driver that tore a device down on
//!   its own may [`Hotplug::forget`] it, so its return is news in any
//!   case;
//! - names that are not decimal indices are ignored (the toolstack uses
//!   none; a stray node is no device);
//! - what to do about a change is the caller's: libos connects a vif
//!   that appears while its own is lost, and tears down the device of
//!   an index that vanished (the frontend drivers also see their
//!   backend close on their own, [`crate::xenbus_frontend::Frontend::check`]).

use alloc::collections::{BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::storage::ReleaseWhenEmpty;
use crate::xenstore::{SharedXenstore, TxId, Watch, XenstorePage, XsError};

/// A kind of device under `device/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceKind {
    /// A network interface (`device/vif`).
    Vif,
    /// A disk (`device/vbd`).
    Vbd,
}

impl DeviceKind {
    /// Both kinds.
    pub const ALL: [DeviceKind; 2] = [DeviceKind::Vif, DeviceKind::Vbd];

    /// The directory holding this kind's devices (relative to our domain).
    pub const fn dir(self) -> &'static str {
        match self {
            DeviceKind::Vif => "device/vif",
            DeviceKind::Vbd => "device/vbd",
        }
    }

    /// `vif` or `vbd`.
    pub const fn name(self) -> &'static str {
        match self {
            DeviceKind::Vif => "vif",
            DeviceKind::Vbd => "vbd",
        }
    }
}

/// One device: its kind and index (`vif/0`, `vbd/51712`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId {
    /// The kind.
    pub kind: DeviceKind,
    /// The index under the kind's directory.
    pub index: u32,
}

impl DeviceId {
    /// Our directory for the device (`device/vif/0`).
    pub fn path(&self) -> String {
        format!("{}/{}", self.kind.dir(), self.index)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.name(), self.index)
    }
}

/// A device that came or went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Its directory appeared: a device to connect.
    Appeared(DeviceId),
    /// Its directory is gone: a device to tear down.
    Vanished(DeviceId),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Appeared(id) => write!(f, "{id} appeared"),
            Change::Vanished(id) => write!(f, "{id} vanished"),
        }
    }
}

/// The devices known, and what a new listing changes (pure).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceSet {
    known: BTreeSet<DeviceId>,
}

impl DeviceSet {
    /// No devices.
    pub fn new() -> DeviceSet {
        DeviceSet::default()
    }

    /// The devices known, in order.
    pub fn devices(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.known.iter().copied()
    }

    /// Whether `id` is known.
    pub fn contains(&self, id: DeviceId) -> bool {
        self.known.contains(&id)
    }

    /// Takes `listing` (the names under `kind`'s directory; `None` when
    /// the directory does not exist) as the truth for `kind`: returns
    /// what vanished (in index order), then what appeared (in index
    /// order). Names that are not decimal `u32`s are ignored.
    pub fn update(&mut self, kind: DeviceKind, listing: Option<&[String]>) -> Vec<Change> {
        let now: BTreeSet<DeviceId> = listing
            .unwrap_or_default()
            .iter()
            .filter_map(|name| parse_index(name))
            .map(|index| DeviceId { kind, index })
            .collect();
        let mut changes = Vec::new();
        let before: Vec<DeviceId> = self
            .known
            .iter()
            .filter(|d| d.kind == kind)
            .copied()
            .collect();
        for id in &before {
            if !now.contains(id) {
                self.known.remove(id);
                changes.push(Change::Vanished(*id));
            }
        }
        for id in now {
            if self.known.insert(id) {
                changes.push(Change::Appeared(id));
            }
        }
        changes
    }

    /// Forgets `id` without a listing (its directory was seen removed
    /// and is listed again later: the caller learnt of the removal by
    /// other means, e.g. its backend closed and the device was torn
    /// down). The next listing that holds it reports it as appeared.
    pub fn forget(&mut self, id: DeviceId) {
        self.known.remove(&id);
    }
}

/// A device index: decimal digits only, no leading `+`, within `u32`.
fn parse_index(name: &str) -> Option<u32> {
    crate::xenbus_state::parse_u32(name.as_bytes()).ok()
}

/// The watcher: one xenstore watch per [`DeviceKind`], a [`DeviceSet`],
/// and the changes not yet handed out.
pub struct Hotplug<'x, P: XenstorePage> {
    xs: &'x SharedXenstore<P>,
    watches: Vec<(DeviceKind, Watch<'x, P>)>,
    set: DeviceSet,
    pending: VecDeque<Change>,
}

impl<'x, P: XenstorePage> Hotplug<'x, P> {
    /// Watches `kinds`' directories and reads what is there now (the
    /// starting point, see the module docs).
    pub async fn new(
        xs: &'x SharedXenstore<P>,
        kinds: &[DeviceKind],
    ) -> Result<Hotplug<'x, P>, XsError> {
        let mut watches = Vec::new();
        for &kind in kinds {
            let mut watch = xs.watch(kind.dir()).await?;
            // Every watch fires once when set: that is not news.
            let _ = watch.try_next();
            watches.push((kind, watch));
        }
        let mut hotplug = Hotplug {
            xs,
            watches,
            set: DeviceSet::new(),
            pending: VecDeque::new(),
        };
        for kind in kinds {
            let listing = hotplug.list(*kind).await?;
            hotplug.set.update(*kind, listing.as_deref());
        }
        Ok(hotplug)
    }

    /// The devices present now (as last listed).
    pub fn present(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.set.devices()
    }

    /// See [`DeviceSet::forget`].
    pub fn forget(&mut self, id: DeviceId) {
        self.set.forget(id);
    }

    /// The next change: waits for a watch to fire, lists the directory
    /// and reports what differs (events that change nothing, such as a
    /// device's own `state` writes, are absorbed here).
    pub async fn next(&mut self) -> Result<Change, XsError> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                self.pending.release_when_empty();
                return Ok(change);
            }
            let kind = self.fired().await?;
            // Absorb the events that queued meanwhile: one listing
            // answers them all.
            for (_, watch) in self.watches.iter_mut() {
                while watch.try_next()?.is_some() {}
            }
            let listing = self.list(kind).await?;
            let changes = self.set.update(kind, listing.as_deref());
            self.pending.extend(changes);
        }
    }

    /// Lists every watched kind again now (after a resume, when events
    /// may have been lost) and queues what differs.
    pub async fn rescan(&mut self) -> Result<(), XsError> {
        let kinds: Vec<DeviceKind> = self.watches.iter().map(|(kind, _)| *kind).collect();
        for kind in kinds {
            let listing = self.list(kind).await?;
            let changes = self.set.update(kind, listing.as_deref());
            self.pending.extend(changes);
        }
        Ok(())
    }

    /// Waits until a watch fires; which kind's.
    async fn fired(&mut self) -> Result<DeviceKind, XsError> {
        let watches = &mut self.watches;
        core::future::poll_fn(|cx| {
            use core::future::Future;
            use core::task::Poll;
            for (kind, watch) in watches.iter_mut() {
                let next = core::pin::pin!(watch.next_event());
                match next.poll(cx) {
                    Poll::Ready(Ok(_)) => return Poll::Ready(Ok(*kind)),
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }

    /// The names under `kind`'s directory (`None` if it does not exist).
    async fn list(&self, kind: DeviceKind) -> Result<Option<Vec<String>>, XsError> {
        match self.xs.directory(TxId::NONE, kind.dir()).await {
            Ok(names) => Ok(Some(names)),
            Err(XsError::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests;
