//! Mapping another domain's grants through Linux's `/dev/xen/gntdev`.
//!
//! The layouts are Linux's `include/uapi/xen/gntdev.h`:
//! `IOCTL_GNTDEV_MAP_GRANT_REF` (`_IOC(_IOC_NONE, 'G', 0, 24)`) takes
//! `{ u32 count; u32 pad; u64 index; { u32 domid; u32 ref; } refs[count] }`
//! and writes back `index`, the offset to `mmap` the pages at;
//! `IOCTL_GNTDEV_UNMAP_GRANT_REF` (`_IOC(_IOC_NONE, 'G', 1, 16)`) takes
//! `{ u64 index; u32 count; u32 pad; }`. The grants are mapped by the
//! `mmap` itself, read-only unless the mapping is writable: a frontend
//! that granted a page read-only makes a writable `mmap` fail, which is
//! how [`Gntdev::map`] checks the access a request needs.
//!
//! A [`Mapping`] is read and written only by volatile copies (the other
//! domain writes the same memory), and unmapped when dropped.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;

/// One page.
pub const PAGE: usize = 4096;

/// `_IOC(_IOC_NONE, 'G', nr, size)`.
const fn ioc_none(nr: u64, size: u64) -> u64 {
    (size << 16) | ((b'G' as u64) << 8) | nr
}

const IOCTL_GNTDEV_MAP_GRANT_REF: u64 = ioc_none(0, 24);
const IOCTL_GNTDEV_UNMAP_GRANT_REF: u64 = ioc_none(1, 16);

/// The device.
pub struct Gntdev {
    device: File,
}

/// Grant pages mapped into this process, contiguous.
pub struct Mapping {
    fd: i32,
    address: *mut u8,
    len: usize,
    index: u64,
}

impl Gntdev {
    /// Opens `/dev/xen/gntdev`.
    pub fn open() -> Result<Gntdev, String> {
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/xen/gntdev")
            .map_err(|e| format!("cannot open /dev/xen/gntdev: {e}"))?;
        Ok(Gntdev { device })
    }

    /// Maps `refs` of domain `domid`, writable or read-only.
    pub fn map(&self, domid: u32, refs: &[u32], writable: bool) -> Result<Mapping, String> {
        if refs.is_empty() {
            return Err("no grant to map".into());
        }
        let fd = self.device.as_raw_fd();
        // Header (count, pad; index) then one u64 per ref: domid in the
        // low half, the ref in the high half (little-endian `{domid, ref}`).
        let mut request: Vec<u64> = vec![refs.len() as u64, 0];
        request.extend(
            refs.iter()
                .map(|&gref| u64::from(domid) | (u64::from(gref) << 32)),
        );
        // SAFETY: `request` is `ioctl_gntdev_map_grant_ref` with `count`
        // refs following the header, alive and writable for the call (the
        // kernel reads count refs and writes `index`).
        let rc = unsafe { libc::ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, request.as_mut_ptr()) };
        if rc != 0 {
            return Err(format!(
                "IOCTL_GNTDEV_MAP_GRANT_REF refs {refs:?}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let index = request[1];
        let len = refs.len() * PAGE;
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh shared mapping of the device at the offset the
        // kernel just reserved; it touches no memory of ours.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                index as libc::off_t,
            )
        };
        if address == libc::MAP_FAILED {
            let error = std::io::Error::last_os_error();
            release(fd, index, refs.len());
            let access = if writable { "writable" } else { "read-only" };
            return Err(format!("mapping refs {refs:?} {access}: {error}"));
        }
        Ok(Mapping {
            fd,
            address: address.cast(),
            len,
            index,
        })
    }
}

/// Gives the reservation at `index` back to gntdev.
fn release(fd: i32, index: u64, count: usize) {
    let mut request: [u64; 2] = [index, count as u64];
    // SAFETY: `request` is `ioctl_gntdev_unmap_grant_ref` ({index; count,
    // pad}) and lives for the call.
    unsafe { libc::ioctl(fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, request.as_mut_ptr()) };
}

impl Mapping {
    /// Copies `out.len()` bytes from `offset` (volatile, byte by byte).
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        assert!(offset + out.len() <= self.len, "read past the mapping");
        for (i, byte) in out.iter_mut().enumerate() {
            // SAFETY: `offset + i < len`: inside the live mapping.
            *byte = unsafe { std::ptr::read_volatile(self.address.add(offset + i)) };
        }
    }

    /// Copies `data` to `offset` (volatile, byte by byte).
    pub fn write(&self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= self.len, "write past the mapping");
        for (i, byte) in data.iter().enumerate() {
            // SAFETY: `offset + i < len`: inside the live mapping, which
            // was mapped writable if anyone writes it (a write to a
            // read-only mapping would fault, not corrupt).
            unsafe { std::ptr::write_volatile(self.address.add(offset + i), *byte) };
        }
    }

    /// A 32-bit word at `offset` (one volatile access).
    pub fn read_u32(&self, offset: usize) -> u32 {
        assert!(offset + 4 <= self.len && offset.is_multiple_of(4));
        // SAFETY: aligned and inside the mapping.
        unsafe { std::ptr::read_volatile(self.address.add(offset).cast::<u32>()) }
    }

    /// Writes a 32-bit word at `offset` (one volatile access).
    pub fn write_u32(&self, offset: usize, value: u32) {
        assert!(offset + 4 <= self.len && offset.is_multiple_of(4));
        // SAFETY: aligned and inside the mapping (mapped writable: the
        // ring pages are).
        unsafe { std::ptr::write_volatile(self.address.add(offset).cast::<u32>(), value) };
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `Gntdev::map`, of `len` bytes; no
        // reference into it outlives `self`.
        unsafe { libc::munmap(self.address.cast(), self.len) };
        release(self.fd, self.index, self.len / PAGE);
    }
}
