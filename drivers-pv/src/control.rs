//! The domain's `control/` directory in xenstore: how the toolstack asks
//! a guest to power off, reboot, halt, suspend or crash
//! (`control/shutdown`), to act on a "magic sysrq" key
//! (`control/sysrq`), and where the guest says which of these it
//! understands (`control/feature-poweroff`, `feature-reboot`,
//! `feature-suspend`).
//!
//! The protocol, as xl and Linux use it: the toolstack creates the nodes
//! when it builds the domain (`control/` itself read-only to the guest,
//! the nodes under it owned by the guest), the guest writes `1` into the
//! `feature-*` nodes it honours, and xl writes the request word
//! (`poweroff`, `reboot`, …) into `control/shutdown`. The guest reads
//! it and acknowledges by writing the node back empty, both in one
//! transaction so a request written meanwhile is neither lost nor taken
//! twice, then acts. `xl shutdown -w` and `xl reboot` then wait for the
//! domain's `SCHEDOP_shutdown`.
//!
//! [`parse_shutdown`] and [`parse_sysrq`] are pure; [`ControlWatch`]
//! runs the watch and the acknowledgement over a [`SharedXenstore`]
//! (host-tested against the simulated xenstored); [`advertise`] writes
//! the feature nodes. What the toolstack writes is untrusted: an unknown
//! word is acknowledged and reported, never acted on.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::Poll;

use crate::xenstore::{RetryPolicy, SharedXenstore, TxId, Watch, XenstorePage, XsError};

/// Where the toolstack writes its request (relative to the domain's home).
pub const SHUTDOWN_NODE: &str = "control/shutdown";
/// Where the toolstack writes a sysrq key.
pub const SYSRQ_NODE: &str = "control/sysrq";
/// Says the guest powers off (and halts) on request.
pub const FEATURE_POWEROFF: &str = "control/feature-poweroff";
/// Says the guest reboots on request.
pub const FEATURE_REBOOT: &str = "control/feature-reboot";
/// Says the guest can suspend (and so be saved, restored, migrated).
pub const FEATURE_SUSPEND: &str = "control/feature-suspend";

/// What the toolstack asked for in `control/shutdown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownRequest {
    /// `poweroff` (`xl shutdown`): stop for good.
    Poweroff,
    /// `halt`: stop for good (Xen has no separate halt reason: the
    /// domain reports `poweroff`, as Linux's does).
    Halt,
    /// `reboot` (`xl reboot`): stop, and let the toolstack start the
    /// domain again.
    Reboot,
    /// `suspend` (`xl save`, `xl migrate`): suspend and resume.
    Suspend,
    /// `crash` (`xl trigger` and tests): end as crashed.
    Crash,
}

impl ShutdownRequest {
    /// The word the toolstack writes.
    pub fn word(self) -> &'static str {
        match self {
            ShutdownRequest::Poweroff => "poweroff",
            ShutdownRequest::Halt => "halt",
            ShutdownRequest::Reboot => "reboot",
            ShutdownRequest::Suspend => "suspend",
            ShutdownRequest::Crash => "crash",
        }
    }
}

impl fmt::Display for ShutdownRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A value in a control node that means nothing to us, kept printable
/// (bytes outside printable ASCII escaped, at most [`Unknown::SHOWN`]
/// of them) for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown(String);

impl Unknown {
    /// How many bytes of the value are shown.
    pub const SHOWN: usize = 32;

    fn from_bytes(value: &[u8]) -> Unknown {
        let shown = &value[..value.len().min(Self::SHOWN)];
        let mut text = format!("{}", shown.escape_ascii());
        if value.len() > Self::SHOWN {
            text.push_str(&format!("… ({} bytes)", value.len()));
        }
        Unknown(text)
    }

    /// The value, escaped.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

/// The value without the NULs some writers leave at its end.
fn trimmed(value: &[u8]) -> &[u8] {
    let end = value
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    &value[..end]
}

/// Reads a `control/shutdown` value: `Ok(None)` for empty (no request,
/// or one already acknowledged), the request for a known word, or the
/// value as [`Unknown`].
pub fn parse_shutdown(value: &[u8]) -> Result<Option<ShutdownRequest>, Unknown> {
    let value = trimmed(value);
    if value.is_empty() {
        return Ok(None);
    }
    [
        ShutdownRequest::Poweroff,
        ShutdownRequest::Halt,
        ShutdownRequest::Reboot,
        ShutdownRequest::Suspend,
        ShutdownRequest::Crash,
    ]
    .into_iter()
    .find(|request| request.word().as_bytes() == value)
    .map(Some)
    .ok_or_else(|| Unknown::from_bytes(value))
}

/// A "magic sysrq" key the toolstack sent (`xl sysrq DOMAIN KEY`): one
/// printable ASCII character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysrqKey(u8);

impl SysrqKey {
    /// The key.
    pub fn key(self) -> char {
        char::from(self.0)
    }
}

/// Reads a `control/sysrq` value: `Ok(None)` when empty, the key for one
/// printable ASCII character, [`Unknown`] for anything else.
pub fn parse_sysrq(value: &[u8]) -> Result<Option<SysrqKey>, Unknown> {
    match trimmed(value) {
        [] => Ok(None),
        [key] if key.is_ascii_graphic() => Ok(Some(SysrqKey(*key))),
        other => Err(Unknown::from_bytes(other)),
    }
}

/// What the toolstack wrote (and we acknowledged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlEvent {
    /// A shutdown request in `control/shutdown`.
    Shutdown(ShutdownRequest),
    /// A value in `control/shutdown` we do not know: not acted on.
    UnknownShutdown(Unknown),
    /// A key in `control/sysrq`.
    Sysrq(SysrqKey),
    /// A value in `control/sysrq` that is not one key: not acted on.
    UnknownSysrq(Unknown),
}

/// Which of the watched nodes changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlNode {
    /// `control/shutdown`.
    Shutdown,
    /// `control/sysrq`.
    Sysrq,
}

impl ControlNode {
    /// Its path, relative to the domain's home.
    pub fn path(self) -> &'static str {
        match self {
            ControlNode::Shutdown => SHUTDOWN_NODE,
            ControlNode::Sysrq => SYSRQ_NODE,
        }
    }
}

/// Why writing a `control/feature-*` node failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvertiseError {
    /// The node.
    pub node: &'static str,
    /// What xenstored (or the connection) said.
    pub error: XsError,
}

impl fmt::Display for AdvertiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write {}: {:?}", self.node, self.error)?;
        if self.error == XsError::AccessDenied {
            // xl makes these nodes the guest's own; a toolstack that does
            // not leaves `control/` read-only and the guest cannot say
            // what it supports (xl still sends the requests).
            f.write_str(" (the toolstack did not make the node writable by this domain)")?;
        }
        Ok(())
    }
}

/// Writes `1` into the feature nodes of what the guest honours:
/// poweroff and reboot always, suspend if `suspend` (a guest that cannot
/// suspend leaves `feature-suspend` as the toolstack made it). Stops at
/// the first node it cannot write.
pub async fn advertise<P: XenstorePage>(
    xs: &SharedXenstore<P>,
    suspend: bool,
) -> Result<Vec<&'static str>, AdvertiseError> {
    let mut nodes = alloc::vec![FEATURE_POWEROFF, FEATURE_REBOOT];
    if suspend {
        nodes.push(FEATURE_SUSPEND);
    }
    for &node in &nodes {
        xs.write(TxId::NONE, node, b"1")
            .await
            .map_err(|error| AdvertiseError { node, error })?;
    }
    Ok(nodes)
}

/// The watches on `control/shutdown` and `control/sysrq`, and the
/// acknowledgement of what is written there.
pub struct ControlWatch<'a, P: XenstorePage> {
    xs: &'a SharedXenstore<P>,
    shutdown: Watch<'a, P>,
    sysrq: Watch<'a, P>,
}

impl<'a, P: XenstorePage> ControlWatch<'a, P> {
    /// Sets both watches. Each fires once at once, so a request the
    /// toolstack wrote before is taken too.
    pub async fn start(xs: &'a SharedXenstore<P>) -> Result<ControlWatch<'a, P>, XsError> {
        let shutdown = xs.watch(SHUTDOWN_NODE).await?;
        let sysrq = xs.watch(SYSRQ_NODE).await?;
        Ok(ControlWatch {
            xs,
            shutdown,
            sysrq,
        })
    }

    /// Waits until a watch fires (for ever, if nothing changes): which
    /// node to [`take`](Self::take) from. The shutdown node goes first
    /// when both fired.
    pub async fn fired(&mut self) -> Result<ControlNode, XsError> {
        let mut shutdown = self.shutdown.next_event();
        let mut sysrq = self.sysrq.next_event();
        poll_fn(|cx| {
            if let Poll::Ready(event) = Pin::new(&mut shutdown).poll(cx) {
                return Poll::Ready(event.map(|_| ControlNode::Shutdown));
            }
            if let Poll::Ready(event) = Pin::new(&mut sysrq).poll(cx) {
                return Poll::Ready(event.map(|_| ControlNode::Sysrq));
            }
            Poll::Pending
        })
        .await
    }

    /// Reads `node` and, if it holds something, writes it back empty,
    /// in one transaction (retried while it conflicts). `Ok(None)` if
    /// it was empty or missing (the watch's first firing, our own
    /// acknowledgement, or the toolstack clearing it).
    pub async fn take(&self, node: ControlNode) -> Result<Option<ControlEvent>, XsError> {
        let xs = self.xs;
        let value = xs
            .transaction(RetryPolicy::DEFAULT, |tx| async move {
                let value = xs.read_opt(tx, node.path()).await?.unwrap_or_default();
                if !trimmed(&value).is_empty() {
                    xs.write(tx, node.path(), b"").await?;
                }
                Ok(value)
            })
            .await?;
        Ok(match node {
            ControlNode::Shutdown => match parse_shutdown(&value) {
                Ok(request) => request.map(ControlEvent::Shutdown),
                Err(unknown) => Some(ControlEvent::UnknownShutdown(unknown)),
            },
            ControlNode::Sysrq => match parse_sysrq(&value) {
                Ok(key) => key.map(ControlEvent::Sysrq),
                Err(unknown) => Some(ControlEvent::UnknownSysrq(unknown)),
            },
        })
    }

    /// The next thing the toolstack wrote, acknowledged: [`fired`] then
    /// [`take`] until one holds something. Unbounded; the guest bounds
    /// each `take` itself.
    ///
    /// [`fired`]: Self::fired
    /// [`take`]: Self::take
    pub async fn next(&mut self) -> Result<ControlEvent, XsError> {
        loop {
            let node = self.fired().await?;
            if let Some(event) = self.take(node).await? {
                return Ok(event);
            }
        }
    }
}

#[cfg(test)]
mod tests;
