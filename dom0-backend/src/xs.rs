//! A xenstore client over Linux's `/dev/xen/xenbus`: each request is
//! written whole and its answer read back; watch events that arrive
//! meanwhile are queued for [`Xenstore::next_event`]. No libxenstore:
//! the wire protocol is [`crate::xs_wire`].

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};

use crate::xs_wire::{self, Header, HEADER};

/// A failed xenstore request: the errno name xenstored answered
/// (`ENOENT`, `EACCES`, …) or an I/O error of the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XsError(pub String);

impl std::fmt::Display for XsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The connection.
pub struct Xenstore {
    device: File,
    next_req: u32,
    events: VecDeque<(String, String)>,
}

impl Xenstore {
    /// Opens `/dev/xen/xenbus`.
    pub fn open() -> Result<Xenstore, String> {
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/xen/xenbus")
            .map_err(|e| format!("cannot open /dev/xen/xenbus: {e}"))?;
        Ok(Xenstore {
            device,
            next_req: 1,
            events: VecDeque::new(),
        })
    }

    /// The device's descriptor (for `poll`).
    pub fn fd(&self) -> RawFd {
        self.device.as_raw_fd()
    }

    fn read_message(&mut self) -> Result<(Header, Vec<u8>), XsError> {
        let mut header = [0u8; HEADER];
        self.device
            .read_exact(&mut header)
            .map_err(|e| XsError(format!("xenbus read: {e}")))?;
        let header = Header::decode(&header);
        let mut payload = vec![0u8; header.len as usize];
        self.device
            .read_exact(&mut payload)
            .map_err(|e| XsError(format!("xenbus read: {e}")))?;
        Ok((header, payload))
    }

    /// One request and its answer's payload.
    pub fn request(&mut self, kind: u32, tx: u32, payload: &[u8]) -> Result<Vec<u8>, XsError> {
        let req_id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        let message = xs_wire::encode(kind, req_id, tx, payload);
        self.device
            .write_all(&message)
            .map_err(|e| XsError(format!("xenbus write: {e}")))?;
        loop {
            let (header, payload) = self.read_message()?;
            if header.kind == xs_wire::XS_WATCH_EVENT {
                let parts = xs_wire::split(&payload);
                if parts.len() >= 2 {
                    self.events.push_back((parts[0].clone(), parts[1].clone()));
                }
                continue;
            }
            if header.kind == xs_wire::XS_ERROR {
                return Err(XsError(xs_wire::error_name(&payload)));
            }
            return Ok(payload);
        }
    }

    /// Reads a node.
    pub fn read(&mut self, path: &str) -> Result<String, XsError> {
        let raw = self.request(xs_wire::XS_READ, 0, &xs_wire::strings(&[path]))?;
        Ok(String::from_utf8_lossy(&raw).into_owned())
    }

    /// Reads a node, `None` if it does not exist (or cannot be read).
    pub fn read_opt(&mut self, path: &str) -> Option<String> {
        self.read(path).ok()
    }

    /// Writes a node in transaction `tx` (0: none).
    pub fn write_tx(&mut self, tx: u32, path: &str, value: &str) -> Result<(), XsError> {
        let mut payload = xs_wire::strings(&[path]);
        payload.extend_from_slice(value.as_bytes());
        self.request(xs_wire::XS_WRITE, tx, &payload).map(drop)
    }

    /// Writes a node.
    pub fn write(&mut self, path: &str, value: &str) -> Result<(), XsError> {
        self.write_tx(0, path, value)
    }

    /// Makes a directory in transaction `tx`.
    pub fn mkdir_tx(&mut self, tx: u32, path: &str) -> Result<(), XsError> {
        self.request(xs_wire::XS_MKDIR, tx, &xs_wire::strings(&[path]))
            .map(drop)
    }

    /// Sets a node's permissions (`n0`, `r5`, … : the first names the owner).
    pub fn set_perms_tx(&mut self, tx: u32, path: &str, perms: &[String]) -> Result<(), XsError> {
        let mut parts = vec![path];
        parts.extend(perms.iter().map(String::as_str));
        self.request(xs_wire::XS_SET_PERMS, tx, &xs_wire::strings(&parts))
            .map(drop)
    }

    /// Removes a node and everything below it.
    pub fn rm(&mut self, path: &str) -> Result<(), XsError> {
        self.request(xs_wire::XS_RM, 0, &xs_wire::strings(&[path]))
            .map(drop)
    }

    /// Starts a transaction.
    pub fn transaction_start(&mut self) -> Result<u32, XsError> {
        let raw = self.request(xs_wire::XS_TRANSACTION_START, 0, b"\0")?;
        let text = xs_wire::split(&raw).into_iter().next().unwrap_or_default();
        text.parse()
            .map_err(|_| XsError(format!("bad transaction id {text:?}")))
    }

    /// Ends a transaction (commit or abort); `EAGAIN` means start again.
    pub fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<(), XsError> {
        let word = if commit { "T" } else { "F" };
        self.request(xs_wire::XS_TRANSACTION_END, tx, &xs_wire::strings(&[word]))
            .map(drop)
    }

    /// Watches `path` with `token`.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request(xs_wire::XS_WATCH, 0, &xs_wire::strings(&[path, token]))
            .map(drop)
    }

    /// A queued watch event, reading those the device has ready (call
    /// after `poll` said it is readable).
    pub fn take_ready_events(&mut self) -> Result<(), XsError> {
        let (header, payload) = self.read_message()?;
        if header.kind == xs_wire::XS_WATCH_EVENT {
            let parts = xs_wire::split(&payload);
            if parts.len() >= 2 {
                self.events.push_back((parts[0].clone(), parts[1].clone()));
            }
        }
        Ok(())
    }

    /// The oldest queued watch event (path, token).
    pub fn next_event(&mut self) -> Option<(String, String)> {
        self.events.pop_front()
    }
}
