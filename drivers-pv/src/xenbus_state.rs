//! The frontend side of the xenbus handshake, and the backend's feature
//! keys, as pure logic.
//!
//! A split driver's two ends each publish a `state` node in xenstore
//! ([`XenbusState`], `io/xenbus.h`) and watch the other's. The frontend's
//! part of the dance with Linux's netback and blkback:
//!
//! 1. we start `Initialising`; the backend writes its features and goes
//!    `InitWait`;
//! 2. we read the features, set up the rings and the event channel,
//!    publish them, and go `Initialised` (blkfront: it waits for the
//!    backend's `Connected` and then reads the disk's size) or straight
//!    to `Connected` (netfront);
//! 3. on the backend's `Closing` or `Closed` we stop, release the
//!    connection and go `Closed`; when both ends are `Closed` and we still
//!    want the device, we go `Initialising` again, which makes Linux's
//!    backends go back to `InitWait`, and the dance restarts (this is how
//!    a restarted backend is reconnected);
//! 4. to close it ourselves we go `Closing`, wait until the backend has
//!    let go of the rings (`Closing` or `Closed`), then release them and
//!    go `Closed`.
//!
//! [`FrontendState`] is that machine: fed the backend's `state` node as
//! read (untrusted: [`XenbusState::parse`] accepts only decimal digits
//! naming a state), it answers with an [`Action`] for the driver to carry
//! out, then the state to write to our own node. Watches coalesce (a
//! driver sees the latest value, not every one), so every decision rests
//! on the pair (our state, the backend's state) alone. After carrying out
//! an action the driver re-reads the backend's state and steps again until
//! the answer is [`Action::Wait`]; that takes at most four actions (from
//! our `Closing` to a backend already back in `InitWait`: tear down,
//! reinitialise, publish, wait).
//!
//! The backend's feature keys (`feature-sg`, `max-ring-page-order`,
//! `sectors`, `mac`, …) are untrusted too: [`parse_feature`] turns each
//! into a typed [`FeatureValue`] or a [`FeatureError`] naming the key and
//! what was wrong, and [`BackendFeatures`] collects them with the
//! protocol's defaults for missing keys.

use core::fmt;

/// A xenbus state, as `enum xenbus_state` numbers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum XenbusState {
    /// 0: no state (the node is absent or the device is being created).
    Unknown = 0,
    /// 1: setting up.
    Initialising = 1,
    /// 2: early setup done, waiting for the peer (a backend's features
    /// are published).
    InitWait = 2,
    /// 3: waiting for a connection from the peer (a frontend's rings are
    /// published).
    Initialised = 3,
    /// 4: connected.
    Connected = 4,
    /// 5: being closed (error or unplug).
    Closing = 5,
    /// 6: closed.
    Closed = 6,
    /// 7: being reconfigured (pvscsi only).
    Reconfiguring = 7,
    /// 8: reconfigured (pvscsi only).
    Reconfigured = 8,
}

/// Longest decimal string [`parse_u64`] and friends look at (`u64::MAX`
/// has 20 digits; more is rejected rather than scanned).
const MAX_DIGITS: usize = 20;

impl XenbusState {
    /// The state numbered `value`, if there is one.
    pub const fn from_u32(value: u32) -> Option<XenbusState> {
        Some(match value {
            0 => XenbusState::Unknown,
            1 => XenbusState::Initialising,
            2 => XenbusState::InitWait,
            3 => XenbusState::Initialised,
            4 => XenbusState::Connected,
            5 => XenbusState::Closing,
            6 => XenbusState::Closed,
            7 => XenbusState::Reconfiguring,
            8 => XenbusState::Reconfigured,
            _ => return None,
        })
    }

    /// Parses a `state` node's value: decimal digits only (no sign, no
    /// spaces, no newline, no NUL), naming one of the nine states.
    pub fn parse(raw: &[u8]) -> Result<XenbusState, StateError> {
        let value = parse_u32(raw).map_err(|error| match error {
            NumberError::Overflow => StateError::Unknown,
            other => StateError::Number(other),
        })?;
        XenbusState::from_u32(value).ok_or(StateError::Unknown)
    }

    /// The value to write to a `state` node (`"4"` for `Connected`).
    pub const fn as_str(self) -> &'static str {
        match self {
            XenbusState::Unknown => "0",
            XenbusState::Initialising => "1",
            XenbusState::InitWait => "2",
            XenbusState::Initialised => "3",
            XenbusState::Connected => "4",
            XenbusState::Closing => "5",
            XenbusState::Closed => "6",
            XenbusState::Reconfiguring => "7",
            XenbusState::Reconfigured => "8",
        }
    }
}

/// What was wrong with a `state` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateError {
    /// Not a decimal number.
    Number(NumberError),
    /// A number that names no state.
    Unknown,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Number(error) => write!(f, "xenbus state: {error}"),
            StateError::Unknown => f.write_str("xenbus state: no such state"),
        }
    }
}

/// How the frontend connects once its rings are published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectStyle {
    /// Go `Connected` right after publishing (netfront).
    Direct,
    /// Go `Initialised` after publishing, then `Connected` once the
    /// backend is `Connected` and its final details are read (blkfront).
    TwoStep,
}

/// What the driver must do next; then it writes
/// [`Action::state_to_write`] (if any) to its own `state` node, re-reads
/// the backend's state and steps again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Nothing until the backend's state changes.
    Wait,
    /// Read the backend's features, allocate and grant the rings, bind
    /// the event channel, publish `ring-ref` (or `ring-page-order` and
    /// `ring-ref%u`), `event-channel` and the rest in one transaction,
    /// then write `then` (`Initialised` or `Connected`).
    Publish {
        /// The state to write afterwards.
        then: XenbusState,
    },
    /// The backend is `Connected`: read what it publishes at connection
    /// time (blkfront: `sectors`, `sector-size`, `info`), start I/O, then
    /// write `Connected`.
    Connect,
    /// Stop submitting requests and write `Closing`; keep the rings
    /// granted, the backend may still map them.
    BeginClose,
    /// The backend has let go: stop I/O, end grant access to the rings,
    /// close the event channel (whatever of it exists), then write
    /// `Closed`.
    TearDown,
    /// Both ends are closed and we still want the device: write
    /// `Initialising`, so the backend prepares a new connection.
    Reinitialise,
}

impl Action {
    /// The state the driver writes to its own node after the action.
    pub const fn state_to_write(self) -> Option<XenbusState> {
        match self {
            Action::Wait => None,
            Action::Publish { then } => Some(then),
            Action::Connect => Some(XenbusState::Connected),
            Action::BeginClose => Some(XenbusState::Closing),
            Action::TearDown => Some(XenbusState::Closed),
            Action::Reinitialise => Some(XenbusState::Initialising),
        }
    }
}

/// The frontend's side of the handshake: our own state, whether we want
/// the device connected, and how we connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrontendState {
    own: XenbusState,
    style: ConnectStyle,
    wanted: bool,
}

impl FrontendState {
    /// A frontend in `Initialising` (the state the toolstack creates the
    /// node with, and the one a driver writes when it starts) that wants
    /// a connection.
    pub const fn new(style: ConnectStyle) -> FrontendState {
        FrontendState {
            own: XenbusState::Initialising,
            style,
            wanted: true,
        }
    }

    /// Our state, as last told to the driver to write.
    pub const fn own(&self) -> XenbusState {
        self.own
    }

    /// Whether we want the device connected (false after
    /// [`FrontendState::close`]).
    pub const fn wanted(&self) -> bool {
        self.wanted
    }

    /// Whether the rings are live and I/O may flow.
    pub const fn is_connected(&self) -> bool {
        matches!(self.own, XenbusState::Connected)
    }

    /// Steps on the backend's `state` value as read from xenstore. A value
    /// that is not a state is an error and changes nothing (a backend
    /// writing garbage is broken: the usual answer is
    /// [`FrontendState::close`]).
    pub fn backend_changed(&mut self, raw: &[u8]) -> Result<Action, StateError> {
        let backend = XenbusState::parse(raw)?;
        Ok(self.step(backend))
    }

    /// Steps on the backend's state: decides the next action from our
    /// state and the backend's, and takes on the state the action ends in.
    pub fn step(&mut self, backend: XenbusState) -> Action {
        use XenbusState as S;
        let action = match (self.own, backend) {
            // Not connected yet.
            (S::Initialising, S::InitWait | S::Initialised) => Action::Publish {
                then: match self.style {
                    ConnectStyle::Direct => S::Connected,
                    ConnectStyle::TwoStep => S::Initialised,
                },
            },
            // A backend still connected to a previous incarnation of this
            // frontend (a restarted guest kernel): make it reset.
            (S::Initialising, S::Connected) => Action::BeginClose,
            (S::Initialising, _) => Action::Wait,

            // Rings published.
            (S::Initialised, S::Connected) => Action::Connect,
            (S::Initialised | S::Connected, S::Closing | S::Closed) => Action::TearDown,
            (S::Initialised | S::Connected, _) => Action::Wait,

            // We asked to close: the backend has let go once it is
            // closing, closed, or back to waiting for a new frontend.
            (S::Closing, S::Closing | S::Closed | S::InitWait | S::Initialised) => Action::TearDown,
            (S::Closing, _) => Action::Wait,

            // Closed: reconnect when both ends are closed, or when the
            // backend already waits for us.
            (S::Closed, S::Closed | S::InitWait | S::Initialised) if self.wanted => {
                Action::Reinitialise
            }
            (S::Closed, _) => Action::Wait,

            // We never hold these; only a misuse could put us there.
            // Start over as if closed.
            (S::Unknown | S::InitWait | S::Reconfiguring | S::Reconfigured, _) => Action::TearDown,
        };
        if let Some(next) = action.state_to_write() {
            self.own = next;
        }
        action
    }

    /// We want the device closed (unplug, shutdown, an error): stop
    /// wanting a connection and close down. Nothing published yet means
    /// nothing to wait for ([`Action::TearDown`] at once); live rings are
    /// closed in two steps ([`Action::BeginClose`], then
    /// [`Action::TearDown`] from [`FrontendState::step`] once the backend
    /// lets go).
    pub fn close(&mut self) -> Action {
        self.wanted = false;
        let action = match self.own {
            XenbusState::Initialised | XenbusState::Connected => Action::BeginClose,
            XenbusState::Closing | XenbusState::Closed => Action::Wait,
            _ => Action::TearDown,
        };
        if let Some(next) = action.state_to_write() {
            self.own = next;
        }
        action
    }
}

// ---------------------------------------------------------------- numbers

/// What was wrong with a decimal number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumberError {
    /// The value was empty.
    Empty,
    /// A byte other than `0`–`9` (a sign, a space, a newline, a NUL).
    NotDigit,
    /// Too large for the type.
    Overflow,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumberError::Empty => "empty value",
            NumberError::NotDigit => "not a decimal number",
            NumberError::Overflow => "number too large",
        })
    }
}

/// Parses a decimal `u64`: one or more ASCII digits and nothing else.
pub fn parse_u64(raw: &[u8]) -> Result<u64, NumberError> {
    if raw.is_empty() {
        return Err(NumberError::Empty);
    }
    if !raw.iter().all(u8::is_ascii_digit) {
        return Err(NumberError::NotDigit);
    }
    // Leading zeros do not count against the limit.
    let significant = raw
        .iter()
        .position(|&b| b != b'0')
        .map_or(&raw[raw.len() - 1..], |first| &raw[first..]);
    if significant.len() > MAX_DIGITS {
        return Err(NumberError::Overflow);
    }
    significant.iter().try_fold(0u64, |value, &digit| {
        value
            .checked_mul(10)
            .and_then(|value| value.checked_add(u64::from(digit - b'0')))
            .ok_or(NumberError::Overflow)
    })
}

/// Parses a decimal `u32` (see [`parse_u64`]).
pub fn parse_u32(raw: &[u8]) -> Result<u32, NumberError> {
    u32::try_from(parse_u64(raw)?).map_err(|_| NumberError::Overflow)
}

// ---------------------------------------------------------------- features

/// A backend key this module knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeatureKey {
    /// `feature-sg` (netif): scatter-gather, flag.
    FeatureSg,
    /// `multi-queue-max-queues` (netif): at least 1.
    MultiQueueMaxQueues,
    /// `max-ring-page-order` (blkif, netif): 0 to 31.
    MaxRingPageOrder,
    /// `feature-persistent` (blkif): persistent grants, flag.
    FeaturePersistent,
    /// `feature-max-indirect-segments` (blkif): any `u32`.
    FeatureMaxIndirectSegments,
    /// `sectors` (blkif): disk size in 512-byte sectors, `u64`.
    Sectors,
    /// `sector-size` (blkif): logical block size, a power of two, at
    /// least 512.
    SectorSize,
    /// `mac` (netif): `aa:bb:cc:dd:ee:ff`.
    Mac,
}

impl FeatureKey {
    /// Every key, in declaration order.
    pub const ALL: [FeatureKey; 8] = [
        FeatureKey::FeatureSg,
        FeatureKey::MultiQueueMaxQueues,
        FeatureKey::MaxRingPageOrder,
        FeatureKey::FeaturePersistent,
        FeatureKey::FeatureMaxIndirectSegments,
        FeatureKey::Sectors,
        FeatureKey::SectorSize,
        FeatureKey::Mac,
    ];

    /// The node's name in the backend's directory.
    pub const fn name(self) -> &'static str {
        match self {
            FeatureKey::FeatureSg => "feature-sg",
            FeatureKey::MultiQueueMaxQueues => "multi-queue-max-queues",
            FeatureKey::MaxRingPageOrder => "max-ring-page-order",
            FeatureKey::FeaturePersistent => "feature-persistent",
            FeatureKey::FeatureMaxIndirectSegments => "feature-max-indirect-segments",
            FeatureKey::Sectors => "sectors",
            FeatureKey::SectorSize => "sector-size",
            FeatureKey::Mac => "mac",
        }
    }

    /// The key named `name`, if this module knows it.
    pub fn from_name(name: &str) -> Option<FeatureKey> {
        FeatureKey::ALL.into_iter().find(|key| key.name() == name)
    }
}

/// The largest `max-ring-page-order` accepted: a ring of 2^31 pages
/// already overflows any real mapping; more is garbage, not a feature.
pub const MAX_ADVERTISED_RING_PAGE_ORDER: u8 = 31;

/// The largest `sector-size` accepted: one 4 KiB page, the most a blkif
/// segment holds and what Linux's block layer uses at most. A frontend
/// sizes buffers from this value (a bounce block per device), so a
/// backend announcing 2^31 must get a clear error, not a 2 GiB
/// allocation.
pub const MAX_SECTOR_SIZE: u32 = 4096;

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// Parses `aa:bb:cc:dd:ee:ff`: six two-digit hex bytes (either case)
    /// separated by colons, nothing more.
    pub fn parse(raw: &[u8]) -> Result<MacAddress, FeatureErrorKind> {
        if raw.len() != 17 {
            return Err(FeatureErrorKind::BadMac);
        }
        let mut mac = [0u8; 6];
        for (i, byte) in mac.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && raw[at - 1] != b':' {
                return Err(FeatureErrorKind::BadMac);
            }
            let high = hex_digit(raw[at]).ok_or(FeatureErrorKind::BadMac)?;
            let low = hex_digit(raw[at + 1]).ok_or(FeatureErrorKind::BadMac)?;
            *byte = high << 4 | low;
        }
        Ok(MacAddress(mac))
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// A feature key's value, typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeatureValue {
    /// `feature-sg`, `feature-persistent`.
    Flag(bool),
    /// `multi-queue-max-queues`, `feature-max-indirect-segments`.
    Count(u32),
    /// `max-ring-page-order`.
    PageOrder(u8),
    /// `sectors`.
    Sectors(u64),
    /// `sector-size`.
    SectorSize(u32),
    /// `mac`.
    Mac(MacAddress),
}

/// What was wrong with a feature value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeatureErrorKind {
    /// Not a decimal number where one belongs.
    Number(NumberError),
    /// A flag other than `0` or `1`.
    NotAFlag,
    /// A number outside the key's range (0 queues, page order over 31, a
    /// sector size below 512 or not a power of two).
    OutOfRange,
    /// A MAC address not of the form `aa:bb:cc:dd:ee:ff`.
    BadMac,
}

/// A feature key whose value is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FeatureError {
    /// The key.
    pub key: FeatureKey,
    /// What was wrong.
    pub kind: FeatureErrorKind,
}

impl fmt::Display for FeatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.key.name();
        match self.kind {
            FeatureErrorKind::Number(error) => write!(f, "backend {key}: {error}"),
            FeatureErrorKind::NotAFlag => write!(f, "backend {key}: not 0 or 1"),
            FeatureErrorKind::OutOfRange => write!(f, "backend {key}: out of range"),
            FeatureErrorKind::BadMac => write!(f, "backend {key}: not aa:bb:cc:dd:ee:ff"),
        }
    }
}

/// Parses the value of `key` as read from the backend's directory.
pub fn parse_feature(key: FeatureKey, raw: &[u8]) -> Result<FeatureValue, FeatureError> {
    let error = |kind| FeatureError { key, kind };
    let number = |raw| parse_u64(raw).map_err(|e| error(FeatureErrorKind::Number(e)));
    let number32 = |raw| parse_u32(raw).map_err(|e| error(FeatureErrorKind::Number(e)));
    Ok(match key {
        FeatureKey::FeatureSg | FeatureKey::FeaturePersistent => match raw {
            b"0" => FeatureValue::Flag(false),
            b"1" => FeatureValue::Flag(true),
            _ => {
                // Say "not a number" for non-numbers, "not a flag" for 2.
                number(raw)?;
                return Err(error(FeatureErrorKind::NotAFlag));
            }
        },
        FeatureKey::MultiQueueMaxQueues => match number32(raw)? {
            0 => return Err(error(FeatureErrorKind::OutOfRange)),
            queues => FeatureValue::Count(queues),
        },
        FeatureKey::FeatureMaxIndirectSegments => FeatureValue::Count(number32(raw)?),
        FeatureKey::MaxRingPageOrder => match u8::try_from(number32(raw)?) {
            Ok(order) if order <= MAX_ADVERTISED_RING_PAGE_ORDER => FeatureValue::PageOrder(order),
            _ => return Err(error(FeatureErrorKind::OutOfRange)),
        },
        FeatureKey::Sectors => FeatureValue::Sectors(number(raw)?),
        FeatureKey::SectorSize => match number32(raw)? {
            size if (512..=MAX_SECTOR_SIZE).contains(&size) && size.is_power_of_two() => {
                FeatureValue::SectorSize(size)
            }
            _ => return Err(error(FeatureErrorKind::OutOfRange)),
        },
        FeatureKey::Mac => FeatureValue::Mac(MacAddress::parse(raw).map_err(error)?),
    })
}

/// The backend's features, with the protocol's defaults for keys it did
/// not write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackendFeatures {
    /// `feature-sg`; default false.
    pub sg: bool,
    /// `multi-queue-max-queues`; default 1 (no multi-queue).
    pub max_queues: u32,
    /// `max-ring-page-order`; default 0 (single-page rings).
    pub max_ring_page_order: u8,
    /// `feature-persistent`; default false.
    pub persistent: bool,
    /// `feature-max-indirect-segments`; default 0 (no indirect requests).
    pub max_indirect_segments: u32,
    /// `sectors`; no default (blkif requires it at `Connected`).
    pub sectors: Option<u64>,
    /// `sector-size`; no default (blkif requires it at `Connected`).
    pub sector_size: Option<u32>,
    /// `mac`; no default.
    pub mac: Option<MacAddress>,
}

impl Default for BackendFeatures {
    fn default() -> BackendFeatures {
        BackendFeatures {
            sg: false,
            max_queues: 1,
            max_ring_page_order: 0,
            persistent: false,
            max_indirect_segments: 0,
            sectors: None,
            sector_size: None,
            mac: None,
        }
    }
}

impl BackendFeatures {
    /// Records `key`'s value as read. A malformed value is an error and
    /// leaves the field as it was.
    pub fn set(&mut self, key: FeatureKey, raw: &[u8]) -> Result<(), FeatureError> {
        match parse_feature(key, raw)? {
            FeatureValue::Flag(flag) if key == FeatureKey::FeatureSg => self.sg = flag,
            FeatureValue::Flag(flag) => self.persistent = flag,
            FeatureValue::Count(queues) if key == FeatureKey::MultiQueueMaxQueues => {
                self.max_queues = queues
            }
            FeatureValue::Count(segments) => self.max_indirect_segments = segments,
            FeatureValue::PageOrder(order) => self.max_ring_page_order = order,
            FeatureValue::Sectors(sectors) => self.sectors = Some(sectors),
            FeatureValue::SectorSize(size) => self.sector_size = Some(size),
            FeatureValue::Mac(mac) => self.mac = Some(mac),
        }
        Ok(())
    }

    /// The ring page order to use: the backend's maximum, capped at ours
    /// (`min(max-ring-page-order, ours)`).
    pub fn ring_page_order(&self, ours: u8) -> u8 {
        self.max_ring_page_order.min(ours)
    }
}

#[cfg(test)]
mod tests;
