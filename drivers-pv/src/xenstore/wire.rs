//! Framing and payloads of xenstore messages (`xen/io/xs_wire.h`).
//!
//! Every message, in either direction, is a 16-byte `xsd_sockmsg` header
//! (type, request id, transaction id, payload length; native-endian
//! `u32`s) followed by `len` payload bytes. [`encode_message`] builds a
//! request. [`FrameDecoder`] takes bytes as they come off the response
//! ring, split anywhere and several messages back to back, and yields
//! whole frames; it checks each header before buffering a payload, so it
//! never holds more than one header and `XENSTORE_PAYLOAD_MAX` bytes.
//! [`ReplyDecoder`] adds the check that each payload has the shape its
//! type requires and turns it into a [`Body`].
//!
//! What happens after a bad message: a header with `len` over
//! `XENSTORE_PAYLOAD_MAX` or a type that does not exist means the stream
//! can no longer be trusted to be in step, so the decoder reports the
//! error once and is then *broken*: it swallows any further input and
//! reports [`XsError::Disconnected`]. A sound header with a bad payload
//! (no NUL, wrong field count, not UTF-8, …) leaves the stream in step;
//! that one message is reported with its header, so the client can fail
//! the request it answered, and decoding goes on.

use alloc::string::String;
use alloc::vec::Vec;

use pv_arch::abi::xenstore as abi;

use super::error::{Malformation, XsError};
use super::perms::Permissions;

/// Size of the `xsd_sockmsg` header.
pub const HEADER_LEN: usize = core::mem::size_of::<abi::XsdSockmsg>();

/// The largest payload either side may send (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = abi::XENSTORE_PAYLOAD_MAX;

/// The message types of `enum xsd_sockmsg_type` that exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MsgType {
    /// `XS_CONTROL` (formerly `XS_DEBUG`).
    Control,
    /// `XS_DIRECTORY`.
    Directory,
    /// `XS_READ`.
    Read,
    /// `XS_GET_PERMS`.
    GetPerms,
    /// `XS_WATCH`.
    Watch,
    /// `XS_UNWATCH`.
    Unwatch,
    /// `XS_TRANSACTION_START`.
    TransactionStart,
    /// `XS_TRANSACTION_END`.
    TransactionEnd,
    /// `XS_INTRODUCE`.
    Introduce,
    /// `XS_RELEASE`.
    Release,
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath,
    /// `XS_WRITE`.
    Write,
    /// `XS_MKDIR`.
    Mkdir,
    /// `XS_RM`.
    Rm,
    /// `XS_SET_PERMS`.
    SetPerms,
    /// `XS_WATCH_EVENT`.
    WatchEvent,
    /// `XS_ERROR`.
    Error,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced,
    /// `XS_RESUME`.
    Resume,
    /// `XS_SET_TARGET`.
    SetTarget,
    /// `XS_RESET_WATCHES`.
    ResetWatches,
    /// `XS_DIRECTORY_PART`.
    DirectoryPart,
}

impl MsgType {
    /// Every type, for tests and tables.
    pub const ALL: [MsgType; 22] = [
        MsgType::Control,
        MsgType::Directory,
        MsgType::Read,
        MsgType::GetPerms,
        MsgType::Watch,
        MsgType::Unwatch,
        MsgType::TransactionStart,
        MsgType::TransactionEnd,
        MsgType::Introduce,
        MsgType::Release,
        MsgType::GetDomainPath,
        MsgType::Write,
        MsgType::Mkdir,
        MsgType::Rm,
        MsgType::SetPerms,
        MsgType::WatchEvent,
        MsgType::Error,
        MsgType::IsDomainIntroduced,
        MsgType::Resume,
        MsgType::SetTarget,
        MsgType::ResetWatches,
        MsgType::DirectoryPart,
    ];

    /// The type a header's `type` field names, or `None` (including for
    /// the removed `XS_RESTRICT`, 20, and for `XS_INVALID`).
    pub const fn from_wire(value: u32) -> Option<MsgType> {
        Some(match value {
            abi::XS_CONTROL => MsgType::Control,
            abi::XS_DIRECTORY => MsgType::Directory,
            abi::XS_READ => MsgType::Read,
            abi::XS_GET_PERMS => MsgType::GetPerms,
            abi::XS_WATCH => MsgType::Watch,
            abi::XS_UNWATCH => MsgType::Unwatch,
            abi::XS_TRANSACTION_START => MsgType::TransactionStart,
            abi::XS_TRANSACTION_END => MsgType::TransactionEnd,
            abi::XS_INTRODUCE => MsgType::Introduce,
            abi::XS_RELEASE => MsgType::Release,
            abi::XS_GET_DOMAIN_PATH => MsgType::GetDomainPath,
            abi::XS_WRITE => MsgType::Write,
            abi::XS_MKDIR => MsgType::Mkdir,
            abi::XS_RM => MsgType::Rm,
            abi::XS_SET_PERMS => MsgType::SetPerms,
            abi::XS_WATCH_EVENT => MsgType::WatchEvent,
            abi::XS_ERROR => MsgType::Error,
            abi::XS_IS_DOMAIN_INTRODUCED => MsgType::IsDomainIntroduced,
            abi::XS_RESUME => MsgType::Resume,
            abi::XS_SET_TARGET => MsgType::SetTarget,
            abi::XS_RESET_WATCHES => MsgType::ResetWatches,
            abi::XS_DIRECTORY_PART => MsgType::DirectoryPart,
            _ => return None,
        })
    }

    /// The header value for this type.
    pub const fn to_wire(self) -> u32 {
        match self {
            MsgType::Control => abi::XS_CONTROL,
            MsgType::Directory => abi::XS_DIRECTORY,
            MsgType::Read => abi::XS_READ,
            MsgType::GetPerms => abi::XS_GET_PERMS,
            MsgType::Watch => abi::XS_WATCH,
            MsgType::Unwatch => abi::XS_UNWATCH,
            MsgType::TransactionStart => abi::XS_TRANSACTION_START,
            MsgType::TransactionEnd => abi::XS_TRANSACTION_END,
            MsgType::Introduce => abi::XS_INTRODUCE,
            MsgType::Release => abi::XS_RELEASE,
            MsgType::GetDomainPath => abi::XS_GET_DOMAIN_PATH,
            MsgType::Write => abi::XS_WRITE,
            MsgType::Mkdir => abi::XS_MKDIR,
            MsgType::Rm => abi::XS_RM,
            MsgType::SetPerms => abi::XS_SET_PERMS,
            MsgType::WatchEvent => abi::XS_WATCH_EVENT,
            MsgType::Error => abi::XS_ERROR,
            MsgType::IsDomainIntroduced => abi::XS_IS_DOMAIN_INTRODUCED,
            MsgType::Resume => abi::XS_RESUME,
            MsgType::SetTarget => abi::XS_SET_TARGET,
            MsgType::ResetWatches => abi::XS_RESET_WATCHES,
            MsgType::DirectoryPart => abi::XS_DIRECTORY_PART,
        }
    }
}

/// A checked header: the type exists and `len` is within
/// [`PAYLOAD_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub msg_type: MsgType,
    /// The request id (0 in watch events).
    pub req_id: u32,
    /// The transaction id, 0 outside a transaction.
    pub tx_id: u32,
    /// Payload length, at most [`PAYLOAD_MAX`].
    pub len: u32,
}

impl Header {
    /// Checks a raw header received from the other side.
    pub fn check(raw: abi::XsdSockmsg) -> Result<Header, XsError> {
        if raw.len as usize > PAYLOAD_MAX {
            return Err(XsError::TooLong);
        }
        let msg_type = MsgType::from_wire(raw.type_).ok_or(XsError::UnknownType(raw.type_))?;
        Ok(Header {
            msg_type,
            req_id: raw.req_id,
            tx_id: raw.tx_id,
            len: raw.len,
        })
    }

    /// The raw ABI header.
    pub fn to_raw(self) -> abi::XsdSockmsg {
        abi::XsdSockmsg {
            type_: self.msg_type.to_wire(),
            req_id: self.req_id,
            tx_id: self.tx_id,
            len: self.len,
        }
    }
}

/// The bytes of a raw header, as they sit in the ring (native-endian).
pub fn raw_header_to_bytes(raw: &abi::XsdSockmsg) -> [u8; HEADER_LEN] {
    let mut bytes = [0u8; HEADER_LEN];
    for (slot, value) in bytes
        .chunks_exact_mut(4)
        .zip([raw.type_, raw.req_id, raw.tx_id, raw.len])
    {
        slot.copy_from_slice(&value.to_ne_bytes());
    }
    bytes
}

/// The raw header in 16 ring bytes (unchecked; see [`Header::check`]).
pub fn raw_header_from_bytes(bytes: &[u8; HEADER_LEN]) -> abi::XsdSockmsg {
    let word = |index: usize| {
        let mut quad = [0u8; 4];
        quad.copy_from_slice(&bytes[index * 4..index * 4 + 4]);
        u32::from_ne_bytes(quad)
    };
    abi::XsdSockmsg {
        type_: word(0),
        req_id: word(1),
        tx_id: word(2),
        len: word(3),
    }
}

/// Appends one message to `out`: a header, then the concatenation of
/// `parts` as payload (the caller includes the NULs the type needs).
/// Fails with [`XsError::RequestTooLong`], leaving `out` untouched, if
/// the payload would exceed [`PAYLOAD_MAX`].
pub fn encode_message(
    out: &mut Vec<u8>,
    msg_type: MsgType,
    req_id: u32,
    tx_id: u32,
    parts: &[&[u8]],
) -> Result<(), XsError> {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    if len > PAYLOAD_MAX {
        return Err(XsError::RequestTooLong);
    }
    let header = Header {
        msg_type,
        req_id,
        tx_id,
        // Cannot truncate: len <= PAYLOAD_MAX.
        len: len as u32,
    };
    out.reserve(HEADER_LEN + len);
    out.extend_from_slice(&raw_header_to_bytes(&header.to_raw()));
    for part in parts {
        out.extend_from_slice(part);
    }
    Ok(())
}

/// One whole message: a checked header and exactly `len` payload bytes,
/// not yet interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The checked header.
    pub header: Header,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Reassembles frames from a byte stream split at arbitrary points.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    header_bytes: [u8; HEADER_LEN],
    header_fill: usize,
    header: Option<Header>,
    payload: Vec<u8>,
    broken: Option<XsError>,
}

impl FrameDecoder {
    /// A decoder at a message boundary.
    pub const fn new() -> FrameDecoder {
        FrameDecoder {
            header_bytes: [0; HEADER_LEN],
            header_fill: 0,
            header: None,
            payload: Vec::new(),
            broken: None,
        }
    }

    /// Consumes bytes from the front of `input` up to the end of the next
    /// whole frame and returns it; returns `None` once `input` is used up
    /// without completing one (the partial frame is kept for the next
    /// call). Call it in a loop until `None`.
    ///
    /// A bad header is returned as its error once; the decoder is then
    /// broken, and later calls swallow their input and return
    /// `Some(Err(XsError::Disconnected))` (or `None` for empty input).
    pub fn decode(&mut self, input: &mut &[u8]) -> Option<Result<Frame, XsError>> {
        if self.broken.is_some() {
            if input.is_empty() {
                return None;
            }
            *input = &[];
            return Some(Err(XsError::Disconnected));
        }
        loop {
            match self.header {
                None => {
                    let take = (HEADER_LEN - self.header_fill).min(input.len());
                    let (head, rest) = input.split_at(take);
                    self.header_bytes[self.header_fill..self.header_fill + take]
                        .copy_from_slice(head);
                    self.header_fill += take;
                    *input = rest;
                    if self.header_fill < HEADER_LEN {
                        return None;
                    }
                    match Header::check(raw_header_from_bytes(&self.header_bytes)) {
                        Ok(header) => {
                            self.header = Some(header);
                            self.payload = Vec::with_capacity(header.len as usize);
                        }
                        Err(error) => {
                            self.broken = Some(error);
                            self.header_fill = 0;
                            *input = &[];
                            return Some(Err(error));
                        }
                    }
                }
                Some(header) => {
                    let need = header.len as usize - self.payload.len();
                    let take = need.min(input.len());
                    let (head, rest) = input.split_at(take);
                    self.payload.extend_from_slice(head);
                    *input = rest;
                    if self.payload.len() < header.len as usize {
                        return None;
                    }
                    self.header = None;
                    self.header_fill = 0;
                    let payload = core::mem::take(&mut self.payload);
                    return Some(Ok(Frame { header, payload }));
                }
            }
        }
    }

    /// The error that broke the stream, if one did.
    pub fn broken(&self) -> Option<XsError> {
        self.broken
    }

    /// Whether the decoder sits at a message boundary (nothing partial
    /// buffered).
    pub fn at_boundary(&self) -> bool {
        self.header_fill == 0 && self.header.is_none()
    }
}

/// What a reply or event payload says, checked against its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `"OK"`: the acknowledgement of write, mkdir, rm, set_perms, watch,
    /// unwatch, transaction end, reset watches and the dom0 requests.
    Ok,
    /// A node's value (`XS_READ`): bytes, no terminator.
    Value(Vec<u8>),
    /// A directory's children (`XS_DIRECTORY`), leaf names.
    Names(Vec<String>),
    /// A permission list (`XS_GET_PERMS`).
    Perms(Permissions),
    /// A new transaction's id (`XS_TRANSACTION_START`), never 0.
    TxStarted(u32),
    /// A path (`XS_GET_DOMAIN_PATH`).
    Path(String),
    /// A `T`/`F` answer (`XS_IS_DOMAIN_INTRODUCED`).
    Flag(bool),
    /// A payload this client does not interpret (`XS_CONTROL`,
    /// `XS_DIRECTORY_PART`).
    Raw(Vec<u8>),
    /// An `XS_ERROR`: the errno xenstored named.
    Error(XsError),
    /// An `XS_WATCH_EVENT`: the path that changed and the watch's token.
    WatchEvent {
        /// The path that changed (relative if the watch was).
        path: String,
        /// The token given when the watch was registered.
        token: String,
    },
}

/// A checked message from xenstored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its header.
    pub header: Header,
    /// Its interpreted payload.
    pub body: Body,
}

/// The NUL-terminated fields of a payload (empty payload: no fields).
fn nul_fields(payload: &[u8]) -> Result<Vec<&[u8]>, XsError> {
    if payload.is_empty() {
        return Ok(Vec::new());
    }
    let body = payload
        .strip_suffix(b"\0")
        .ok_or(XsError::Malformed(Malformation::MissingNul))?;
    Ok(body.split(|&byte| byte == 0).collect())
}

/// Exactly `N` NUL-terminated fields.
fn exact_fields<const N: usize>(payload: &[u8]) -> Result<[&[u8]; N], XsError> {
    let fields = nul_fields(payload)?;
    <[&[u8]; N]>::try_from(fields).map_err(|_| XsError::Malformed(Malformation::FieldCount))
}

/// A UTF-8 field copied out.
fn text(field: &[u8]) -> Result<String, XsError> {
    core::str::from_utf8(field)
        .map(String::from)
        .map_err(|_| XsError::NotUtf8)
}

/// A decimal `u32` with no sign, no spaces and no leading `+`.
fn decimal_u32(field: &[u8]) -> Option<u32> {
    if field.is_empty() || field.len() > 10 {
        return None;
    }
    let mut value: u64 = 0;
    for &digit in field {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u64::from(digit - b'0');
    }
    u32::try_from(value).ok()
}

/// Interprets the payload of a frame received from xenstored.
pub fn parse_reply(frame: &Frame) -> Result<Body, XsError> {
    let payload = frame.payload.as_slice();
    Ok(match frame.header.msg_type {
        MsgType::Read => Body::Value(payload.to_vec()),
        MsgType::Directory => Body::Names(
            nul_fields(payload)?
                .into_iter()
                .map(text)
                .collect::<Result<_, _>>()?,
        ),
        MsgType::GetPerms => Body::Perms(Permissions::parse(payload)?),
        MsgType::TransactionStart => {
            let [id] = exact_fields::<1>(payload)?;
            match decimal_u32(id) {
                Some(0) => return Err(XsError::Malformed(Malformation::ZeroTransaction)),
                Some(id) => Body::TxStarted(id),
                None => return Err(XsError::Malformed(Malformation::BadNumber)),
            }
        }
        MsgType::GetDomainPath => {
            let [path] = exact_fields::<1>(payload)?;
            Body::Path(text(path)?)
        }
        MsgType::IsDomainIntroduced => match exact_fields::<1>(payload)? {
            [b"T"] => Body::Flag(true),
            [b"F"] => Body::Flag(false),
            _ => return Err(XsError::Malformed(Malformation::BadFlag)),
        },
        MsgType::Error => {
            let [name] = exact_fields::<1>(payload)?;
            let name = core::str::from_utf8(name).map_err(|_| XsError::NotUtf8)?;
            Body::Error(XsError::from_errno_name(name))
        }
        MsgType::WatchEvent => {
            let [path, token] = exact_fields::<2>(payload)?;
            Body::WatchEvent {
                path: text(path)?,
                token: text(token)?,
            }
        }
        MsgType::Write
        | MsgType::Mkdir
        | MsgType::Rm
        | MsgType::SetPerms
        | MsgType::Watch
        | MsgType::Unwatch
        | MsgType::TransactionEnd
        | MsgType::Introduce
        | MsgType::Release
        | MsgType::Resume
        | MsgType::SetTarget
        | MsgType::ResetWatches => match exact_fields::<1>(payload)? {
            [b"OK"] => Body::Ok,
            _ => return Err(XsError::Malformed(Malformation::NotOk)),
        },
        MsgType::Control | MsgType::DirectoryPart => Body::Raw(payload.to_vec()),
    })
}

/// A message the [`ReplyDecoder`] could not accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadMessage {
    /// The message's header if it was sound (the stream is still in step
    /// and only this message is lost); `None` if the header itself was
    /// bad and the stream is now broken.
    pub header: Option<Header>,
    /// What was wrong.
    pub error: XsError,
}

/// Decodes and checks messages from xenstored: a [`FrameDecoder`] plus
/// [`parse_reply`].
#[derive(Debug, Default)]
pub struct ReplyDecoder {
    frames: FrameDecoder,
}

impl ReplyDecoder {
    /// A decoder at a message boundary.
    pub const fn new() -> ReplyDecoder {
        ReplyDecoder {
            frames: FrameDecoder::new(),
        }
    }

    /// Like [`FrameDecoder::decode`], but yields checked messages.
    pub fn decode(&mut self, input: &mut &[u8]) -> Option<Result<Message, BadMessage>> {
        let frame = match self.frames.decode(input)? {
            Ok(frame) => frame,
            Err(error) => {
                return Some(Err(BadMessage {
                    header: None,
                    error,
                }))
            }
        };
        Some(match parse_reply(&frame) {
            Ok(body) => Ok(Message {
                header: frame.header,
                body,
            }),
            Err(error) => Err(BadMessage {
                header: Some(frame.header),
                error,
            }),
        })
    }

    /// The error that broke the stream, if one did.
    pub fn broken(&self) -> Option<XsError> {
        self.frames.broken()
    }

    /// Whether no partial message is buffered.
    pub fn at_boundary(&self) -> bool {
        self.frames.at_boundary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::sim::SplitMix64;
    use alloc::vec;

    fn msg(msg_type: MsgType, req_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_message(&mut out, msg_type, req_id, 0, &[payload]).unwrap();
        out
    }

    fn raw(type_: u32, req_id: u32, len: u32, payload: &[u8]) -> Vec<u8> {
        let header = abi::XsdSockmsg {
            type_,
            req_id,
            tx_id: 0,
            len,
        };
        let mut out = raw_header_to_bytes(&header).to_vec();
        out.extend_from_slice(payload);
        out
    }

    fn decode_all(
        decoder: &mut ReplyDecoder,
        mut input: &[u8],
    ) -> Vec<Result<Message, BadMessage>> {
        let mut out = Vec::new();
        while let Some(item) = decoder.decode(&mut input) {
            out.push(item);
        }
        assert!(input.is_empty());
        out
    }

    #[test]
    fn type_numbers_match_the_header() {
        for msg_type in MsgType::ALL {
            assert_eq!(MsgType::from_wire(msg_type.to_wire()), Some(msg_type));
        }
        assert_eq!(MsgType::from_wire(20), None, "XS_RESTRICT was removed");
        assert_eq!(MsgType::from_wire(abi::XS_TYPE_COUNT), None);
        assert_eq!(MsgType::from_wire(abi::XS_INVALID), None);
        assert_eq!(HEADER_LEN, 16);
    }

    #[test]
    fn encodes_header_then_payload() {
        let mut out = Vec::new();
        encode_message(&mut out, MsgType::Write, 7, 3, &[b"a/b", b"\0", b"value"]).unwrap();
        let mut expected = Vec::new();
        for word in [abi::XS_WRITE, 7, 3, 9] {
            expected.extend_from_slice(&u32::to_ne_bytes(word));
        }
        expected.extend_from_slice(b"a/b\0value");
        assert_eq!(out, expected);
    }

    #[test]
    fn refuses_oversized_requests_without_writing() {
        let mut out = vec![1, 2, 3];
        let big = vec![b'x'; PAYLOAD_MAX];
        assert_eq!(
            encode_message(&mut out, MsgType::Write, 1, 0, &[b"p\0", &big]),
            Err(XsError::RequestTooLong)
        );
        assert_eq!(out, [1, 2, 3]);
        encode_message(&mut out, MsgType::Write, 1, 0, &[&big]).unwrap();
        assert_eq!(out.len(), 3 + HEADER_LEN + PAYLOAD_MAX);
    }

    #[test]
    fn decodes_back_to_back_and_byte_by_byte() {
        let mut stream = msg(MsgType::Read, 1, b"hello");
        stream.extend(msg(MsgType::Write, 2, b"OK\0"));
        stream.extend(msg(MsgType::WatchEvent, 0, b"/a/b\0tok\0"));
        stream.extend(msg(MsgType::Error, 3, b"ENOENT\0"));
        let expected = [
            (1, Body::Value(b"hello".to_vec())),
            (2, Body::Ok),
            (
                0,
                Body::WatchEvent {
                    path: "/a/b".into(),
                    token: "tok".into(),
                },
            ),
            (3, Body::Error(XsError::NotFound)),
        ];
        let mut decoder = ReplyDecoder::new();
        let whole = decode_all(&mut decoder, &stream);
        assert_eq!(whole.len(), 4);
        for (got, (req_id, body)) in whole.iter().zip(&expected) {
            let got = got.as_ref().unwrap();
            assert_eq!((got.header.req_id, &got.body), (*req_id, body));
        }
        let mut decoder = ReplyDecoder::new();
        let mut one_by_one = Vec::new();
        for byte in &stream {
            one_by_one.extend(decode_all(&mut decoder, core::slice::from_ref(byte)));
        }
        assert_eq!(one_by_one, whole);
        assert!(decoder.at_boundary());
    }

    #[test]
    fn every_reply_shape() {
        let cases: [(MsgType, &[u8], Result<Body, XsError>); 22] = [
            (MsgType::Directory, b"", Ok(Body::Names(vec![]))),
            (
                MsgType::Directory,
                b"a\0bc\0",
                Ok(Body::Names(vec!["a".into(), "bc".into()])),
            ),
            (
                MsgType::Directory,
                b"a\0b",
                Err(XsError::Malformed(Malformation::MissingNul)),
            ),
            (MsgType::Directory, b"a\0\xff\0", Err(XsError::NotUtf8)),
            (MsgType::Read, b"", Ok(Body::Value(vec![]))),
            (
                MsgType::Read,
                b"\xff\0x",
                Ok(Body::Value(b"\xff\0x".to_vec())),
            ),
            (
                MsgType::GetPerms,
                b"b0\0",
                Ok(Body::Perms(Permissions::parse(b"b0\0").unwrap())),
            ),
            (MsgType::TransactionStart, b"42\0", Ok(Body::TxStarted(42))),
            (
                MsgType::TransactionStart,
                b"0\0",
                Err(XsError::Malformed(Malformation::ZeroTransaction)),
            ),
            (
                MsgType::TransactionStart,
                b"4294967296\0",
                Err(XsError::Malformed(Malformation::BadNumber)),
            ),
            (
                MsgType::TransactionStart,
                b"-1\0",
                Err(XsError::Malformed(Malformation::BadNumber)),
            ),
            (
                MsgType::TransactionStart,
                b"12",
                Err(XsError::Malformed(Malformation::MissingNul)),
            ),
            (
                MsgType::GetDomainPath,
                b"/local/domain/3\0",
                Ok(Body::Path("/local/domain/3".into())),
            ),
            (MsgType::IsDomainIntroduced, b"F\0", Ok(Body::Flag(false))),
            (
                MsgType::IsDomainIntroduced,
                b"Y\0",
                Err(XsError::Malformed(Malformation::BadFlag)),
            ),
            (MsgType::Error, b"EAGAIN\0", Ok(Body::Error(XsError::Again))),
            (
                MsgType::Error,
                b"EWHAT\0",
                Ok(Body::Error(XsError::UnknownErrno)),
            ),
            (
                MsgType::Error,
                b"ENOENT",
                Err(XsError::Malformed(Malformation::MissingNul)),
            ),
            (
                MsgType::WatchEvent,
                b"/a\0",
                Err(XsError::Malformed(Malformation::FieldCount)),
            ),
            (
                MsgType::WatchEvent,
                b"/a\0t\0extra\0",
                Err(XsError::Malformed(Malformation::FieldCount)),
            ),
            (MsgType::Rm, b"OK\0", Ok(Body::Ok)),
            (
                MsgType::Mkdir,
                b"KO\0",
                Err(XsError::Malformed(Malformation::NotOk)),
            ),
        ];
        for (msg_type, payload, expected) in cases {
            let frame = Frame {
                header: Header {
                    msg_type,
                    req_id: 1,
                    tx_id: 0,
                    len: payload.len() as u32,
                },
                payload: payload.to_vec(),
            };
            assert_eq!(parse_reply(&frame), expected, "{msg_type:?} {payload:?}");
        }
    }

    #[test]
    fn oversized_length_breaks_the_stream() {
        let mut stream = raw(abi::XS_READ, 1, PAYLOAD_MAX as u32 + 1, b"xx");
        stream.extend(msg(MsgType::Read, 2, b"fine"));
        let mut decoder = ReplyDecoder::new();
        let got = decode_all(&mut decoder, &stream);
        assert_eq!(
            got,
            [Err(BadMessage {
                header: None,
                error: XsError::TooLong
            })]
        );
        assert_eq!(decoder.broken(), Some(XsError::TooLong));
        let later = decode_all(&mut decoder, &msg(MsgType::Read, 3, b"x"));
        assert_eq!(
            later,
            [Err(BadMessage {
                header: None,
                error: XsError::Disconnected
            })]
        );
        assert!(decode_all(&mut decoder, &[]).is_empty());
    }

    #[test]
    fn maximum_length_is_accepted() {
        let payload = vec![b'v'; PAYLOAD_MAX];
        let mut decoder = ReplyDecoder::new();
        let got = decode_all(&mut decoder, &msg(MsgType::Read, 1, &payload));
        assert_eq!(got[0].as_ref().unwrap().body, Body::Value(payload));
    }

    #[test]
    fn unknown_types_break_the_stream() {
        for bad in [20, abi::XS_TYPE_COUNT, abi::XS_INVALID, 0xdead_beef] {
            let mut decoder = ReplyDecoder::new();
            let got = decode_all(&mut decoder, &raw(bad, 1, 0, b""));
            assert_eq!(
                got,
                [Err(BadMessage {
                    header: None,
                    error: XsError::UnknownType(bad)
                })]
            );
        }
    }

    #[test]
    fn a_bad_payload_keeps_the_stream_in_step() {
        let mut stream = msg(MsgType::WatchEvent, 0, b"/only-path\0");
        stream.extend(msg(MsgType::Directory, 5, b"\xc3\x28\0"));
        stream.extend(msg(MsgType::Read, 6, b"after"));
        let mut decoder = ReplyDecoder::new();
        let got = decode_all(&mut decoder, &stream);
        assert_eq!(got.len(), 3);
        let first = got[0].as_ref().unwrap_err();
        assert_eq!(first.error, XsError::Malformed(Malformation::FieldCount));
        assert_eq!(first.header.unwrap().msg_type, MsgType::WatchEvent);
        let second = got[1].as_ref().unwrap_err();
        assert_eq!(
            (second.error, second.header.unwrap().req_id),
            (XsError::NotUtf8, 5)
        );
        assert_eq!(
            got[2].as_ref().unwrap().body,
            Body::Value(b"after".to_vec())
        );
        assert_eq!(decoder.broken(), None);
    }

    /// A random, valid message from xenstored.
    fn random_message(rng: &mut SplitMix64, req_id: u32) -> (Vec<u8>, Body) {
        let word = |rng: &mut SplitMix64| {
            let len = rng.below(12) as usize;
            (0..len)
                .map(|_| b"abcdefghij0123456789-_/@"[rng.below(24) as usize] as char)
                .collect::<String>()
        };
        match rng.below(7) {
            0 => {
                let cap = if rng.below(8) == 0 {
                    PAYLOAD_MAX as u64 + 1
                } else {
                    40
                };
                let len = rng.below(cap);
                let value: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                (msg(MsgType::Read, req_id, &value), Body::Value(value))
            }
            1 => (msg(MsgType::Write, req_id, b"OK\0"), Body::Ok),
            2 => {
                let names: Vec<String> = (0..rng.below(5)).map(|_| word(rng) + "x").collect();
                let mut payload = Vec::new();
                for name in &names {
                    payload.extend_from_slice(name.as_bytes());
                    payload.push(0);
                }
                (
                    msg(MsgType::Directory, req_id, &payload),
                    Body::Names(names),
                )
            }
            3 => {
                let (path, token) = (word(rng), word(rng));
                let mut payload = Vec::new();
                payload.extend_from_slice(path.as_bytes());
                payload.push(0);
                payload.extend_from_slice(token.as_bytes());
                payload.push(0);
                (
                    msg(MsgType::WatchEvent, 0, &payload),
                    Body::WatchEvent { path, token },
                )
            }
            4 => (
                msg(MsgType::Error, req_id, b"EACCES\0"),
                Body::Error(XsError::AccessDenied),
            ),
            5 => {
                let id = rng.next_u64() as u32 | 1;
                let mut payload = Vec::new();
                crate::xenstore::perms::push_decimal(&mut payload, id);
                payload.push(0);
                (
                    msg(MsgType::TransactionStart, req_id, &payload),
                    Body::TxStarted(id),
                )
            }
            _ => {
                let perms = Permissions::new(
                    rng.below(70000).min(65535) as u16,
                    crate::xenstore::Access::Read,
                )
                .with(rng.below(10) as u16, crate::xenstore::Access::Both);
                (
                    msg(MsgType::GetPerms, req_id, &perms.to_wire()),
                    Body::Perms(perms),
                )
            }
        }
    }

    #[test]
    fn random_splits_yield_the_same_messages() {
        for seed in 0..300 {
            let mut rng = SplitMix64::new(seed);
            let count = 1 + rng.below(12) as u32;
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for req_id in 1..=count {
                let (bytes, body) = random_message(&mut rng, req_id);
                stream.extend(bytes);
                expected.push(body);
            }
            let mut decoder = ReplyDecoder::new();
            let mut got = Vec::new();
            let mut rest = stream.as_slice();
            while !rest.is_empty() {
                // Mostly small pieces, sometimes large ones spanning messages.
                let cap = if rng.below(4) == 0 { 5000 } else { 20 };
                let take = (1 + rng.below(cap) as usize).min(rest.len());
                let (piece, tail) = rest.split_at(take);
                rest = tail;
                for item in decode_all(&mut decoder, piece) {
                    got.push(item.expect("valid stream").body);
                }
            }
            assert_eq!(got, expected, "seed {seed}");
            assert!(decoder.at_boundary());
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        for seed in 0..500 {
            let mut rng = SplitMix64::new(seed);
            let mut decoder = ReplyDecoder::new();
            let mut errors = 0;
            for _ in 0..20 {
                // Plausible headers with random fields, random payloads.
                let type_ = if rng.below(2) == 0 {
                    rng.below(24) as u32
                } else {
                    rng.next_u64() as u32
                };
                let len = if rng.below(2) == 0 {
                    rng.below(64) as u32
                } else {
                    rng.next_u64() as u32
                };
                let payload: Vec<u8> = (0..rng.below(80)).map(|_| rng.next_u64() as u8).collect();
                let bytes = raw(type_, rng.next_u64() as u32, len, &payload);
                let mut rest = bytes.as_slice();
                while !rest.is_empty() {
                    let take = (1 + rng.below(32) as usize).min(rest.len());
                    let (piece, tail) = rest.split_at(take);
                    rest = tail;
                    errors += decode_all(&mut decoder, piece)
                        .iter()
                        .filter(|r| r.is_err())
                        .count();
                }
            }
            if decoder.broken().is_some() {
                assert!(errors > 0);
            }
        }
    }
}
