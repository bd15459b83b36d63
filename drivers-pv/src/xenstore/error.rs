//! The one error type of the xenstore client: [`XsError`].
//!
//! Two families share it. The first mirrors the errno *names* xenstored
//! puts in an `XS_ERROR` reply (`"ENOENT"`, `"EAGAIN"`, …; the table is
//! `xsd_errors` in `xs_wire.h`, plus oxenstored's `"EQUOTA"`); the second
//! is what this side finds wrong: a message that breaks the protocol, a
//! ring whose indices are impossible, a lost connection, or a bad argument
//! from the caller. Every variant is `Copy` and small, so errors travel
//! through the kernel's task system by value. Which errors leave the
//! connection usable is written on each protocol variant.

use core::fmt;

use pv_arch::Errno;

/// What exactly was wrong with a payload that did not match its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformation {
    /// A string field was not terminated by a NUL byte.
    MissingNul,
    /// The payload held a different number of NUL-terminated fields than
    /// the message type requires (a watch event needs exactly two).
    FieldCount,
    /// A decimal number (transaction id, domid) did not parse or was out
    /// of range.
    BadNumber,
    /// A permission entry was not a letter `n`/`r`/`w`/`b` and a domid.
    BadPermission,
    /// An acknowledgement was something other than `"OK"`.
    NotOk,
    /// A `T`/`F` answer was something else.
    BadFlag,
    /// `XS_TRANSACTION_START` answered with transaction id 0, which means
    /// "no transaction".
    ZeroTransaction,
}

impl Malformation {
    /// A short description, for [`fmt::Display`].
    pub const fn describe(self) -> &'static str {
        match self {
            Malformation::MissingNul => "a string field lacks its NUL terminator",
            Malformation::FieldCount => "wrong number of fields for the message type",
            Malformation::BadNumber => "a decimal number did not parse",
            Malformation::BadPermission => "a permission entry is not n/r/w/b plus a domid",
            Malformation::NotOk => "an acknowledgement is not \"OK\"",
            Malformation::BadFlag => "a T/F answer is neither",
            Malformation::ZeroTransaction => "transaction id 0 returned for a new transaction",
        }
    }
}

/// Everything a xenstore operation can fail with.
///
/// The variants up to [`XsError::UnknownErrno`] are xenstored's answers
/// (the operation was understood and refused; the connection is fine).
/// The rest are found on this side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XsError {
    /// `EINVAL`: the request was invalid (bad path, bad payload).
    Invalid,
    /// `EACCES`: the permissions of the node deny the operation.
    AccessDenied,
    /// `EEXIST`: the thing to create exists (for example a duplicate watch).
    Exists,
    /// `EISDIR`: the operation does not apply to a directory.
    IsDirectory,
    /// `ENOENT`: no such node, transaction or watch.
    NotFound,
    /// `ENOMEM`: xenstored ran out of memory.
    NoMemory,
    /// `ENOSPC`: xenstored's store or a per-domain quota is full.
    NoSpace,
    /// `EIO`: xenstored failed internally.
    Io,
    /// `ENOTEMPTY`: the node still has children.
    NotEmpty,
    /// `ENOSYS`: xenstored does not implement the request.
    NotSupported,
    /// `EROFS`: the store is read-only.
    ReadOnly,
    /// `EBUSY`: xenstored is busy (for example a transaction is already
    /// open where none may be).
    Busy,
    /// `EAGAIN`: a transaction conflicted with another writer; start it
    /// again (see [`super::RetryPolicy`]).
    Again,
    /// `EISCONN`: the domain is already introduced.
    AlreadyConnected,
    /// `E2BIG`: a request or a node is too big for xenstored's limits.
    TooBig,
    /// `EPERM`: the operation is reserved to a privileged domain.
    NotPermitted,
    /// `EQUOTA`: a per-domain quota is exhausted (sent by oxenstored, not
    /// in `xs_wire.h`'s table).
    Quota,
    /// An `XS_ERROR` named an errno this client does not know.
    UnknownErrno,

    /// A received header announced a payload longer than
    /// `XENSTORE_PAYLOAD_MAX`. The stream cannot be trusted after it: the
    /// connection is broken, later calls fail with [`XsError::Disconnected`].
    TooLong,
    /// A request this side was asked to send would exceed
    /// `XENSTORE_PAYLOAD_MAX` (xenstored kills a connection that sends
    /// one). Nothing was sent; the connection is fine.
    RequestTooLong,
    /// A received header carried a message type that does not exist.
    /// Breaks the connection like [`XsError::TooLong`].
    UnknownType(u32),
    /// A received payload did not have the shape its type requires. The
    /// header was sound, so the stream stays in step: only the request the
    /// message answered fails.
    Malformed(Malformation),
    /// A received payload that must be text was not UTF-8. Only the
    /// request the message answered fails.
    NotUtf8,
    /// A reply named a request id that is not outstanding. It is dropped
    /// and reported; the connection stays up.
    UnknownReqId(u32),
    /// A reply's type did not match the request it answered. That request
    /// fails; the connection stays up.
    UnexpectedReply,
    /// The connection is gone: the transport closed, or an earlier error
    /// broke it. Every later call fails with this.
    Disconnected,
    /// The shared ring's indices are impossible (more bytes in flight than
    /// the ring holds): the other side is broken or hostile.
    RingCorrupt,
    /// The caller passed something that cannot go on the wire: a string
    /// containing NUL, or [`super::TxId::NONE`] where a transaction is
    /// needed. Nothing was sent.
    BadArgument,
    /// No reply came within the caller's deadline. The request was
    /// abandoned (its reply is dropped if it comes); the connection may
    /// still be fine.
    TimedOut,
    /// The domain was suspended and resumed in a new domain while the
    /// request was outstanding: whether xenstored carried it out is
    /// unknown (its reply, if one comes, is dropped). The connection is
    /// fine; read back and try again.
    Resumed,
}

/// Wire spelling and variant of every errno name this client knows.
const ERRNO_NAMES: [(&str, XsError); 17] = [
    ("EINVAL", XsError::Invalid),
    ("EACCES", XsError::AccessDenied),
    ("EEXIST", XsError::Exists),
    ("EISDIR", XsError::IsDirectory),
    ("ENOENT", XsError::NotFound),
    ("ENOMEM", XsError::NoMemory),
    ("ENOSPC", XsError::NoSpace),
    ("EIO", XsError::Io),
    ("ENOTEMPTY", XsError::NotEmpty),
    ("ENOSYS", XsError::NotSupported),
    ("EROFS", XsError::ReadOnly),
    ("EBUSY", XsError::Busy),
    ("EAGAIN", XsError::Again),
    ("EISCONN", XsError::AlreadyConnected),
    ("E2BIG", XsError::TooBig),
    ("EPERM", XsError::NotPermitted),
    ("EQUOTA", XsError::Quota),
];

impl XsError {
    /// The error an `XS_ERROR` payload names (without its NUL);
    /// [`XsError::UnknownErrno`] for a name not in the table.
    pub fn from_errno_name(name: &str) -> XsError {
        ERRNO_NAMES
            .iter()
            .find(|(spelling, _)| *spelling == name)
            .map_or(XsError::UnknownErrno, |(_, error)| *error)
    }

    /// The errno name xenstored uses for this error, if it is one of
    /// xenstored's answers.
    pub fn errno_name(self) -> Option<&'static str> {
        ERRNO_NAMES
            .iter()
            .find(|(_, error)| *error == self)
            .map(|(spelling, _)| *spelling)
    }

    /// The Xen errno this error corresponds to, if any (`EQUOTA` and the
    /// protocol errors have none).
    pub fn errno(self) -> Option<Errno> {
        pv_arch::abi::xenstore::xsd_error_from_name(self.errno_name()?)
    }

    /// Whether xenstored sent this error (as opposed to this side finding
    /// something wrong).
    pub fn is_server_error(self) -> bool {
        self.errno_name().is_some() || self == XsError::UnknownErrno
    }

    /// Whether the connection is unusable after this error.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            XsError::TooLong
                | XsError::UnknownType(_)
                | XsError::Disconnected
                | XsError::RingCorrupt
        )
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.errno_name() {
            return write!(f, "xenstored: {name}");
        }
        match self {
            XsError::UnknownErrno => f.write_str("xenstored: unknown errno name"),
            XsError::TooLong => f.write_str("xenstore: received payload over 4096 bytes"),
            XsError::RequestTooLong => f.write_str("xenstore: request payload over 4096 bytes"),
            XsError::UnknownType(t) => write!(f, "xenstore: unknown message type {t}"),
            XsError::Malformed(what) => {
                write!(f, "xenstore: malformed payload: {}", what.describe())
            }
            XsError::NotUtf8 => f.write_str("xenstore: payload text is not UTF-8"),
            XsError::UnknownReqId(id) => write!(f, "xenstore: reply to unknown request {id}"),
            XsError::UnexpectedReply => f.write_str("xenstore: reply type does not match request"),
            XsError::Disconnected => f.write_str("xenstore: disconnected"),
            XsError::RingCorrupt => f.write_str("xenstore: ring indices corrupt"),
            XsError::BadArgument => f.write_str("xenstore: argument cannot be sent"),
            XsError::TimedOut => f.write_str("xenstore: no reply in time"),
            XsError::Resumed => f.write_str(
                "xenstore: the domain was suspended and resumed with the request in flight; outcome unknown",
            ),
            // The server's answers were handled above.
            _ => f.write_str("xenstore: error"),
        }
    }
}

impl core::error::Error for XsError {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use pv_arch::abi::xenstore::XSD_ERRORS;

    #[test]
    fn every_xs_wire_errno_has_a_variant() {
        for entry in XSD_ERRORS {
            let error = XsError::from_errno_name(entry.errstring);
            assert_ne!(error, XsError::UnknownErrno, "{}", entry.errstring);
            assert_eq!(error.errno_name(), Some(entry.errstring));
            assert_eq!(error.errno(), Some(entry.errnum));
            assert!(error.is_server_error());
            assert!(!error.is_fatal());
        }
    }

    #[test]
    fn unknown_and_oxenstored_names() {
        assert_eq!(XsError::from_errno_name("EQUOTA"), XsError::Quota);
        assert_eq!(XsError::Quota.errno(), None);
        assert_eq!(XsError::from_errno_name("ENOENT\0"), XsError::UnknownErrno);
        assert_eq!(XsError::from_errno_name(""), XsError::UnknownErrno);
        assert_eq!(XsError::Disconnected.errno_name(), None);
    }

    #[test]
    fn display_names_the_errno() {
        assert_eq!(XsError::NotFound.to_string(), "xenstored: ENOENT");
        assert_eq!(
            XsError::UnknownType(57).to_string(),
            "xenstore: unknown message type 57"
        );
        assert!(XsError::Malformed(Malformation::MissingNul)
            .to_string()
            .contains("NUL"));
    }
}
