//! The xenstore wire protocol (`io/xs_wire.h`) as pure functions: a
//! message is a 16-byte header (`type`, `req_id`, `tx_id`, `len`, all
//! little-endian `u32`) and `len` bytes of payload, NUL-separated
//! strings. Errors come back as `XS_ERROR` with the errno's name.

pub use pv_arch::abi::xenstore::{
    XS_ERROR, XS_MKDIR, XS_READ, XS_RM, XS_SET_PERMS, XS_TRANSACTION_END, XS_TRANSACTION_START,
    XS_WATCH, XS_WATCH_EVENT, XS_WRITE,
};

/// Bytes in a header (`struct xsd_sockmsg`).
pub const HEADER: usize = core::mem::size_of::<pv_arch::abi::xenstore::XsdSockmsg>();

/// A message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The message type (`XS_*`).
    pub kind: u32,
    /// The request id, echoed in the answer.
    pub req_id: u32,
    /// The transaction (0: none).
    pub tx_id: u32,
    /// Payload bytes that follow.
    pub len: u32,
}

impl Header {
    /// Decodes a header.
    pub fn decode(bytes: &[u8; HEADER]) -> Header {
        let word = |i: usize| u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
        Header {
            kind: word(0),
            req_id: word(1),
            tx_id: word(2),
            len: word(3),
        }
    }
}

/// A whole request: header and payload.
pub fn encode(kind: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    for word in [kind, req_id, tx_id, payload.len() as u32] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// NUL-terminated strings one after the other (`path\0value` is built
/// by hand: a write's value has no terminator).
pub fn strings(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out
}

/// The NUL-separated strings of a payload (a trailing NUL ends the last).
pub fn split(payload: &[u8]) -> Vec<String> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// The errno name of an `XS_ERROR` payload (`"EACCES\0"` → `EACCES`).
pub fn error_name(payload: &[u8]) -> String {
    split(payload).into_iter().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes_a_header() {
        let message = encode(XS_READ, 7, 3, b"a/b\0");
        assert_eq!(message.len(), HEADER + 4);
        let header = Header::decode(message[..HEADER].try_into().unwrap());
        assert_eq!(
            header,
            Header {
                kind: XS_READ,
                req_id: 7,
                tx_id: 3,
                len: 4
            }
        );
        assert_eq!(&message[HEADER..], b"a/b\0");
    }

    #[test]
    fn splits_payloads() {
        assert_eq!(split(b"a\0b\0"), vec!["a", "b"]);
        assert_eq!(split(b"path\0token\0"), vec!["path", "token"]);
        assert_eq!(split(b""), Vec::<String>::new());
        assert_eq!(error_name(b"EACCES\0"), "EACCES");
        assert_eq!(strings(&["x", "y"]), b"x\0y\0");
    }
}
