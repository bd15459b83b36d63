//! Interdomain event channels through Linux's `/dev/xen/evtchn`.
//!
//! Linux's `include/uapi/xen/evtchn.h`: `IOCTL_EVTCHN_BIND_INTERDOMAIN`
//! (`_IOC(_IOC_NONE, 'E', 1, 8)`, `{ u32 remote_domain, remote_port; }`,
//! returns the local port), `IOCTL_EVTCHN_UNBIND` (`'E', 3, 4`) and
//! `IOCTL_EVTCHN_NOTIFY` (`'E', 4, 4`), both `{ u32 port; }`. Reading the
//! device gives the ports that fired (each then masked) as `u32`s;
//! writing a port back unmasks it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// `_IOC(_IOC_NONE, 'E', nr, size)`.
const fn ioc_none(nr: u64, size: u64) -> u64 {
    (size << 16) | ((b'E' as u64) << 8) | nr
}

const IOCTL_EVTCHN_BIND_INTERDOMAIN: u64 = ioc_none(1, 8);
const IOCTL_EVTCHN_UNBIND: u64 = ioc_none(3, 4);
const IOCTL_EVTCHN_NOTIFY: u64 = ioc_none(4, 4);

/// The device (non-blocking: [`Evtchn::pending`] never waits).
pub struct Evtchn {
    device: File,
}

impl Evtchn {
    /// Opens `/dev/xen/evtchn`.
    pub fn open() -> Result<Evtchn, String> {
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/xen/evtchn")
            .map_err(|e| format!("cannot open /dev/xen/evtchn: {e}"))?;
        Ok(Evtchn { device })
    }

    /// The descriptor (for `poll`).
    pub fn fd(&self) -> RawFd {
        self.device.as_raw_fd()
    }

    /// Binds to `remote_port` of `remote_domain`; returns our port.
    pub fn bind_interdomain(&self, remote_domain: u32, remote_port: u32) -> Result<u32, String> {
        let mut request = [remote_domain, remote_port];
        // SAFETY: `request` is `ioctl_evtchn_bind_interdomain` and lives
        // for the call.
        let rc = unsafe {
            libc::ioctl(
                self.fd(),
                IOCTL_EVTCHN_BIND_INTERDOMAIN,
                request.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(format!(
                "binding dom {remote_domain} port {remote_port}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(rc as u32)
    }

    fn port_ioctl(&self, request: u64, port: u32) -> Result<(), String> {
        let mut argument = [port];
        // SAFETY: `argument` is `{ u32 port; }` and lives for the call.
        let rc = unsafe { libc::ioctl(self.fd(), request, argument.as_mut_ptr()) };
        if rc < 0 {
            return Err(format!("port {port}: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Signals the other end of `port`.
    pub fn notify(&self, port: u32) -> Result<(), String> {
        self.port_ioctl(IOCTL_EVTCHN_NOTIFY, port)
    }

    /// Closes `port`.
    pub fn unbind(&self, port: u32) -> Result<(), String> {
        self.port_ioctl(IOCTL_EVTCHN_UNBIND, port)
    }

    /// Ports that fired since the last call (each is masked until
    /// [`Evtchn::unmask`]).
    pub fn pending(&mut self) -> Vec<u32> {
        let mut buffer = [0u8; 256];
        let mut ports = Vec::new();
        while let Ok(n) = self.device.read(&mut buffer) {
            if n == 0 {
                break;
            }
            ports.extend(
                buffer[..n]
                    .chunks_exact(4)
                    .map(|c| u32::from_ne_bytes(c.try_into().unwrap())),
            );
        }
        ports
    }

    /// Unmasks `port`.
    pub fn unmask(&mut self, port: u32) {
        let _ = self.device.write_all(&port.to_ne_bytes());
    }
}
