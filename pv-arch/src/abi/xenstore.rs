//! The xenstore wire protocol and shared ring page (`xen/io/xs_wire.h`).
//!
//! A domU talks to xenstored through one shared page, laid out as
//! [`XenstoreDomainInterface`]: a request ring and a response ring of
//! [`XENSTORE_RING_SIZE`] bytes each, with free-running indices. Every
//! message on either ring is an [`XsdSockmsg`] header followed by `len`
//! payload bytes (usually NUL-separated strings). Errors come back as an
//! [`XS_ERROR`] message whose payload is an errno *name* (`"ENOENT"`),
//! listed in [`XSD_ERRORS`]. Nothing here depends on being a domU or dom0.

use crate::errno::Errno;

/// `XENSTORE_RING_IDX`: a free-running ring index; mask it with
/// [`mask_xenstore_idx`] to get a byte offset.
pub type XenstoreRingIdx = u32;

/// `XENSTORE_RING_SIZE`: bytes in each ring (a power of two).
pub const XENSTORE_RING_SIZE: usize = 1024;

/// `MASK_XENSTORE_IDX`: the byte offset a free-running index refers to.
pub const fn mask_xenstore_idx(idx: XenstoreRingIdx) -> usize {
    idx as usize & (XENSTORE_RING_SIZE - 1)
}

/// `XENSTORE_PAYLOAD_MAX`: the largest payload a message may carry;
/// xenstored drops the connection of a guest that sends more.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// `XENSTORE_ABS_PATH_MAX`: longest absolute path xenstored accepts.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`: longest relative path xenstored accepts.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// `XENSTORE_SERVER_FEATURE_RECONNECTION`: the server can reset the ring
/// through [`XenstoreDomainInterface::connection`].
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`: the server fills in
/// [`XenstoreDomainInterface::error`].
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;

/// `XENSTORE_CONNECTED`: the ring is in normal use.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `XENSTORE_RECONNECT`: a ring reset is in progress.
pub const XENSTORE_RECONNECT: u32 = 1;

/// `XENSTORE_ERROR_NONE`: no error.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `XENSTORE_ERROR_COMM`: the server saw a communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `XENSTORE_ERROR_RINGIDX`: the server saw an impossible ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`: the server saw a protocol violation (for
/// example a payload over [`XENSTORE_PAYLOAD_MAX`]).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// `XS_CONTROL`: daemon control commands (also spelled `XS_DEBUG`).
pub const XS_CONTROL: u32 = 0;
/// `XS_DEBUG`: old name of [`XS_CONTROL`].
pub const XS_DEBUG: u32 = XS_CONTROL;
/// `XS_DIRECTORY`: list a node's children.
pub const XS_DIRECTORY: u32 = 1;
/// `XS_READ`: read a node's value.
pub const XS_READ: u32 = 2;
/// `XS_GET_PERMS`: read a node's permissions.
pub const XS_GET_PERMS: u32 = 3;
/// `XS_WATCH`: watch a path, with a token echoed in each event.
pub const XS_WATCH: u32 = 4;
/// `XS_UNWATCH`: remove a watch.
pub const XS_UNWATCH: u32 = 5;
/// `XS_TRANSACTION_START`: open a transaction; the reply is its id.
pub const XS_TRANSACTION_START: u32 = 6;
/// `XS_TRANSACTION_END`: commit (`"T"`) or abort (`"F"`) a transaction.
pub const XS_TRANSACTION_END: u32 = 7;
/// `XS_INTRODUCE`: tell xenstored about a new domain (dom0 only).
pub const XS_INTRODUCE: u32 = 8;
/// `XS_RELEASE`: tell xenstored a domain is gone (dom0 only).
pub const XS_RELEASE: u32 = 9;
/// `XS_GET_DOMAIN_PATH`: the home path of a domain (`/local/domain/<id>`).
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// `XS_WRITE`: write a node's value.
pub const XS_WRITE: u32 = 11;
/// `XS_MKDIR`: create a node.
pub const XS_MKDIR: u32 = 12;
/// `XS_RM`: remove a node and its children.
pub const XS_RM: u32 = 13;
/// `XS_SET_PERMS`: set a node's permissions.
pub const XS_SET_PERMS: u32 = 14;
/// `XS_WATCH_EVENT`: an unsolicited message: a watched path changed.
pub const XS_WATCH_EVENT: u32 = 15;
/// `XS_ERROR`: a failed request; the payload names the errno.
pub const XS_ERROR: u32 = 16;
/// `XS_IS_DOMAIN_INTRODUCED`: whether xenstored knows a domain.
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// `XS_RESUME`: a domain resumed after suspend (dom0 only).
pub const XS_RESUME: u32 = 18;
/// `XS_SET_TARGET`: let one domain act for another (dom0 only).
pub const XS_SET_TARGET: u32 = 19;
/// `XS_RESET_WATCHES`: drop all of this connection's watches. (20 was
/// `XS_RESTRICT`, since removed.)
pub const XS_RESET_WATCHES: u32 = XS_SET_TARGET + 2;
/// `XS_DIRECTORY_PART`: list a large directory in pieces.
pub const XS_DIRECTORY_PART: u32 = 22;
/// `XS_TYPE_COUNT`: one more than the largest valid message type.
pub const XS_TYPE_COUNT: u32 = 23;
/// `XS_INVALID`: a type xenstored will never assign.
pub const XS_INVALID: u32 = 0xffff;

/// `XS_WATCH_PATH`: index of the path among a watch event's strings.
pub const XS_WATCH_PATH: u32 = 0;
/// `XS_WATCH_TOKEN`: index of the token among a watch event's strings.
pub const XS_WATCH_TOKEN: u32 = 1;

/// `XS_WRITE_NONE`: mode string for a plain write.
pub const XS_WRITE_NONE: &str = "NONE";
/// `XS_WRITE_CREATE`: mode string for a write that may create the node.
pub const XS_WRITE_CREATE: &str = "CREATE";
/// `XS_WRITE_CREATE_EXCL`: mode string for a write that must create it.
pub const XS_WRITE_CREATE_EXCL: &str = "CREATE|EXCL";

/// `struct xsd_sockmsg`: the header before every message's payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsdSockmsg {
    /// One of the `XS_*` message types (C `type`).
    pub type_: u32,
    /// Request id chosen by the client; echoed in the reply.
    pub req_id: u32,
    /// Transaction id, or 0 outside a transaction.
    pub tx_id: u32,
    /// Length of the payload that follows.
    pub len: u32,
}

/// `struct xenstore_domain_interface`: the shared xenstore ring page.
///
/// The guest produces into `req` and consumes from `rsp`; xenstored the
/// reverse. Indices are free-running [`XenstoreRingIdx`] values.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenstoreDomainInterface {
    /// Requests to xenstored.
    pub req: [u8; XENSTORE_RING_SIZE],
    /// Replies and watch events from xenstored.
    pub rsp: [u8; XENSTORE_RING_SIZE],
    /// xenstored's consumer index into `req`.
    pub req_cons: XenstoreRingIdx,
    /// The guest's producer index into `req`.
    pub req_prod: XenstoreRingIdx,
    /// The guest's consumer index into `rsp`.
    pub rsp_cons: XenstoreRingIdx,
    /// xenstored's producer index into `rsp`.
    pub rsp_prod: XenstoreRingIdx,
    /// `XENSTORE_SERVER_FEATURE_*` bits the server supports.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// `XENSTORE_ERROR_*` the server last saw.
    pub error: u32,
}

impl XenstoreDomainInterface {
    /// An all-zero ring page (for tests and simulated servers).
    pub const fn zeroed() -> Self {
        XenstoreDomainInterface {
            req: [0; XENSTORE_RING_SIZE],
            rsp: [0; XENSTORE_RING_SIZE],
            req_cons: 0,
            req_prod: 0,
            rsp_cons: 0,
            rsp_prod: 0,
            server_features: 0,
            connection: 0,
            error: 0,
        }
    }
}

/// One entry of the `xsd_errors` table: an errno and its wire spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XsdError {
    /// The error number.
    pub errnum: Errno,
    /// Its name as it appears in an [`XS_ERROR`] payload.
    pub errstring: &'static str,
}

/// `xsd_errors`: the errno names xenstored sends, in the header's order
/// (new entries are only ever appended).
pub const XSD_ERRORS: [XsdError; 16] = [
    XsdError {
        errnum: Errno::EINVAL,
        errstring: "EINVAL",
    },
    XsdError {
        errnum: Errno::EACCES,
        errstring: "EACCES",
    },
    XsdError {
        errnum: Errno::EEXIST,
        errstring: "EEXIST",
    },
    XsdError {
        errnum: Errno::EISDIR,
        errstring: "EISDIR",
    },
    XsdError {
        errnum: Errno::ENOENT,
        errstring: "ENOENT",
    },
    XsdError {
        errnum: Errno::ENOMEM,
        errstring: "ENOMEM",
    },
    XsdError {
        errnum: Errno::ENOSPC,
        errstring: "ENOSPC",
    },
    XsdError {
        errnum: Errno::EIO,
        errstring: "EIO",
    },
    XsdError {
        errnum: Errno::ENOTEMPTY,
        errstring: "ENOTEMPTY",
    },
    XsdError {
        errnum: Errno::ENOSYS,
        errstring: "ENOSYS",
    },
    XsdError {
        errnum: Errno::EROFS,
        errstring: "EROFS",
    },
    XsdError {
        errnum: Errno::EBUSY,
        errstring: "EBUSY",
    },
    XsdError {
        errnum: Errno::EAGAIN,
        errstring: "EAGAIN",
    },
    XsdError {
        errnum: Errno::EISCONN,
        errstring: "EISCONN",
    },
    XsdError {
        errnum: Errno::E2BIG,
        errstring: "E2BIG",
    },
    XsdError {
        errnum: Errno::EPERM,
        errstring: "EPERM",
    },
];

/// The errno an [`XS_ERROR`] payload names (the payload without its
/// trailing NUL), or `None` for a name not in [`XSD_ERRORS`].
pub fn xsd_error_from_name(name: &str) -> Option<Errno> {
    XSD_ERRORS
        .iter()
        .find(|e| e.errstring == name)
        .map(|e| e.errnum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_wrap_at_the_ring_size() {
        assert_eq!(mask_xenstore_idx(0), 0);
        assert_eq!(mask_xenstore_idx(1023), 1023);
        assert_eq!(mask_xenstore_idx(1024), 0);
        assert_eq!(mask_xenstore_idx(u32::MAX), 1023);
    }

    #[test]
    fn error_names_map_to_errnos() {
        assert_eq!(xsd_error_from_name("ENOENT"), Some(Errno::ENOENT));
        assert_eq!(xsd_error_from_name("EPERM"), Some(Errno::EPERM));
        assert_eq!(xsd_error_from_name("ENOENT\0"), None);
        assert_eq!(xsd_error_from_name("EWHAT"), None);
        for e in XSD_ERRORS {
            assert_eq!(e.errnum.name(), Some(e.errstring));
        }
    }
}
