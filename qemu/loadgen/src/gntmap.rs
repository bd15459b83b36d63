//! `loadgen gntmap DOMID REF RELEASE_PATH [--timeout SECS]`: maps one page
//! another domain granted to dom0, through Linux's `/dev/xen/gntdev`, and
//! holds the mapping until the file `RELEASE_PATH` exists (or the timeout
//! passes), then unmaps it.
//!
//! The rig uses it to keep a guest's page mapped across the guest's
//! device teardown: while dom0 maps the page, Xen keeps the grant's
//! in-use bits set, the guest cannot end the grant, and a correct guest
//! must quarantine the page rather than free it. It prints
//! `gntmap: mapped dom D ref R (checksum 0x…)` once the page is mapped
//! (the grant is mapped when the device file is `mmap`ped), and
//! `gntmap: released …` after `munmap`.
//!
//! The ioctl's layout is Linux's `include/uapi/xen/gntdev.h` (stable ABI):
//! `struct ioctl_gntdev_map_grant_ref { u32 count; u32 pad; u64 index;
//! struct ioctl_gntdev_grant_ref refs[1]; }` with `refs[i] = { u32 domid;
//! u32 ref; }`, request `_IOC(_IOC_NONE, 'G', 0, 24)`; the unmap request
//! takes `{ u64 index; u32 count; u32 pad; }`, `_IOC(_IOC_NONE, 'G', 1, 16)`.

use std::ffi::c_void;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// One page.
const PAGE: usize = 4096;

/// `_IOC(dir, type, nr, size)` is `dir << 30 | size << 16 | type << 8 | nr`.
const fn ioc_none(nr: u64, size: usize) -> u64 {
    ((size as u64) << 16) | ((b'G' as u64) << 8) | nr
}

/// `struct ioctl_gntdev_map_grant_ref` with one ref.
#[repr(C)]
struct MapGrantRef {
    count: u32,
    pad: u32,
    index: u64,
    domid: u32,
    gref: u32,
}

/// `struct ioctl_gntdev_unmap_grant_ref`.
#[repr(C)]
struct UnmapGrantRef {
    index: u64,
    count: u32,
    pad: u32,
}

/// `IOCTL_GNTDEV_MAP_GRANT_REF`.
const IOCTL_GNTDEV_MAP_GRANT_REF: u64 = ioc_none(0, size_of::<MapGrantRef>());
/// `IOCTL_GNTDEV_UNMAP_GRANT_REF`.
const IOCTL_GNTDEV_UNMAP_GRANT_REF: u64 = ioc_none(1, size_of::<UnmapGrantRef>());

const PROT_READ: i32 = 1;
const MAP_SHARED: i32 = 1;

extern "C" {
    fn ioctl(fd: i32, request: u64, ...) -> i32;
    fn mmap(addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, off: i64)
        -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> i32;
}

/// What a run did, as the lines it prints.
pub fn run(domid: u32, gref: u32, release: &Path, timeout: Duration) -> Result<(), String> {
    let device = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/xen/gntdev")
        .map_err(|e| format!("cannot open /dev/xen/gntdev: {e}"))?;
    let fd = device.as_raw_fd();
    let mut request = MapGrantRef {
        count: 1,
        pad: 0,
        index: 0,
        domid,
        gref,
    };
    // SAFETY: `request` is the `ioctl_gntdev_map_grant_ref` layout with
    // `count == 1` and one ref, alive and writable for the call (the
    // kernel writes `index` back).
    let rc = unsafe {
        ioctl(
            fd,
            IOCTL_GNTDEV_MAP_GRANT_REF,
            &mut request as *mut MapGrantRef,
        )
    };
    if rc != 0 {
        return Err(format!(
            "IOCTL_GNTDEV_MAP_GRANT_REF dom {domid} ref {gref}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let offset = i64::try_from(request.index).map_err(|_| "index out of range".to_string())?;
    // SAFETY: a fresh shared read-only mapping of one page of the device
    // at the offset the kernel gave; no existing memory is touched.
    let page = unsafe {
        mmap(
            std::ptr::null_mut(),
            PAGE,
            PROT_READ,
            MAP_SHARED,
            fd,
            offset,
        )
    };
    if page as isize == -1 {
        return Err(format!(
            "mmap of dom {domid} ref {gref}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // The other domain may write the page while we read it: volatile
    // byte reads, no reference into it.
    let mut checksum = 0u32;
    for i in 0..PAGE {
        // SAFETY: `page` maps PAGE readable bytes until the munmap below.
        let byte = unsafe { std::ptr::read_volatile(page.cast::<u8>().add(i)) };
        checksum = checksum.rotate_left(5) ^ u32::from(byte);
    }
    println!("gntmap: mapped dom {domid} ref {gref} (checksum {checksum:#010x})");

    let start = Instant::now();
    while !release.exists() && start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(100));
    }
    let why = if release.exists() {
        format!("{} appeared", release.display())
    } else {
        "timeout".to_string()
    };
    // SAFETY: `page` is the mapping made above, of PAGE bytes, and
    // nothing refers into it any more.
    let unmapped = unsafe { munmap(page, PAGE) };
    let mut unmap = UnmapGrantRef {
        index: request.index,
        count: 1,
        pad: 0,
    };
    // SAFETY: `unmap` has the `ioctl_gntdev_unmap_grant_ref` layout and
    // lives for the call.
    let freed = unsafe {
        ioctl(
            fd,
            IOCTL_GNTDEV_UNMAP_GRANT_REF,
            &mut unmap as *mut UnmapGrantRef,
        )
    };
    drop(device);
    if unmapped != 0 || freed != 0 {
        return Err(format!(
            "unmapping dom {domid} ref {gref} failed (munmap {unmapped}, ioctl {freed})"
        ));
    }
    println!(
        "gntmap: released dom {domid} ref {gref} after {} s ({why})",
        start.elapsed().as_secs()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_are_linuxs() {
        // include/uapi/xen/gntdev.h, worked out by hand.
        assert_eq!(IOCTL_GNTDEV_MAP_GRANT_REF, 0x0018_4700);
        assert_eq!(IOCTL_GNTDEV_UNMAP_GRANT_REF, 0x0010_4701);
    }
}
