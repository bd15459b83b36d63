//! Turning Debian's `vmlinuz` (a bzImage) into the plain ELF `vmlinux` that
//! Xen loads as dom0 without decompressing it itself.
//!
//! Xen un-xz-es a bzImage's payload in 3–4 s under QEMU's emulation; handing
//! it the ELF directly saves that on every boot. The payload's place is in
//! the bzImage's setup header (`payload_offset`, `payload_length`, relative
//! to the protected-mode code after the setup sectors); should that ever not
//! point at an xz stream, the image is scanned for the xz magic instead. The
//! stream uses the x86 BCJ filter, which liblzma (through `xz2`) decodes.
//!
//! Debian trixie's kernels compress their payload with zstd instead, which
//! Xen decompresses fast (a trixie dom0 was ready as soon as a bookworm
//! one): [`dom0_kernel`] hands such a bzImage to Xen as it is.

use std::ops::Range;

use crate::error::RigError;

/// The six bytes that open an xz stream.
const XZ_MAGIC: &[u8; 6] = b"\xfd7zXZ\x00";

/// The four bytes that open a zstd frame.
const ZSTD_MAGIC: &[u8; 4] = b"\x28\xb5\x2f\xfd";

/// Where the setup header says the compressed payload is, if it is an xz
/// stream that lies inside the image.
pub fn payload_range(bzimage: &[u8]) -> Option<Range<usize>> {
    payload(bzimage).filter(|r| bzimage[r.clone()].starts_with(XZ_MAGIC))
}

/// Where the setup header says the compressed payload is, if it lies
/// inside the image.
fn payload(bzimage: &[u8]) -> Option<Range<usize>> {
    if bzimage.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let setup_sects = match *bzimage.get(0x1f1)? {
        0 => 4,
        n => usize::from(n),
    };
    let word = |at: usize| -> Option<usize> {
        let bytes: [u8; 4] = bzimage.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(bytes)).ok()
    };
    let start = (setup_sects + 1) * 512 + word(0x248)?;
    let end = start.checked_add(word(0x24c)?)?;
    bzimage.get(start..end).map(|_| start..end)
}

/// Every offset of the xz magic in `data`.
pub fn xz_magic_offsets(data: &[u8]) -> impl Iterator<Item = usize> + '_ {
    data.windows(XZ_MAGIC.len())
        .enumerate()
        .filter(|(_, w)| w == XZ_MAGIC)
        .map(|(i, _)| i)
}

/// Decompresses the one xz stream that starts at `data[0]`, ignoring what
/// follows it (xz2's reader treats trailing bytes as corruption, so this
/// drives liblzma's stream decoder directly and stops at the stream's end).
fn unxz(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut stream =
        xz2::stream::Stream::new_stream_decoder(u64::MAX, 0).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(data.len() * 4);
    loop {
        let consumed = usize::try_from(stream.total_in()).map_err(|e| e.to_string())?;
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(1 << 20));
        }
        let status = stream
            .process_vec(&data[consumed..], &mut out, xz2::stream::Action::Run)
            .map_err(|e| e.to_string())?;
        match status {
            xz2::stream::Status::StreamEnd => return Ok(out),
            _ if consumed == data.len() && out.len() < out.capacity() => {
                return Err("truncated xz stream".into())
            }
            _ => {}
        }
    }
}

/// The ELF kernel inside a bzImage.
pub fn extract_vmlinux(bzimage: &[u8]) -> Result<Vec<u8>, RigError> {
    let header = payload_range(bzimage).map(|r| r.start);
    let candidates = header.into_iter().chain(xz_magic_offsets(bzimage));
    let mut last_error = String::from("no xz stream found");
    for start in candidates {
        match unxz(&bzimage[start..]) {
            Ok(elf) if elf.starts_with(b"\x7fELF") => return Ok(elf),
            Ok(_) => last_error = format!("xz stream at {start:#x} is not an ELF"),
            Err(e) => last_error = format!("xz stream at {start:#x}: {e}"),
        }
    }
    Err(RigError::Invalid(format!(
        "cannot extract vmlinux from the bzImage: {last_error}"
    )))
}

/// What Xen gets as dom0's kernel: the ELF inside an xz-compressed
/// bzImage, or a zstd-compressed bzImage itself (see the module's docs).
pub fn dom0_kernel(bzimage: &[u8]) -> Result<Vec<u8>, RigError> {
    let zstd = payload(bzimage).is_some_and(|r| bzimage[r].starts_with(ZSTD_MAGIC));
    if zstd {
        Ok(bzimage.to_vec())
    } else {
        extract_vmlinux(bzimage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut encoder = xz2::write::XzEncoder::new(Vec::new(), 1);
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// A fake bzImage: 2 setup sectors + the boot sector, then some code,
    /// then the payload, then trailing bytes.
    fn fake_bzimage(payload: &[u8], with_header: bool) -> Vec<u8> {
        let mut image = vec![0u8; 3 * 512 + 100];
        image[0x1f1] = 2;
        if with_header {
            image[0x202..0x206].copy_from_slice(b"HdrS");
            image[0x248..0x24c].copy_from_slice(&100u32.to_le_bytes());
            let len = u32::try_from(payload.len()).unwrap();
            image[0x24c..0x250].copy_from_slice(&len.to_le_bytes());
        }
        image.extend_from_slice(payload);
        image.extend_from_slice(b"\x00\x11trailing size word");
        image
    }

    #[test]
    fn finds_payload_through_setup_header() {
        let payload = xz(b"\x7fELF kernel");
        let image = fake_bzimage(&payload, true);
        let range = payload_range(&image).unwrap();
        assert_eq!(range.start, 3 * 512 + 100);
        assert_eq!(&image[range], &payload[..]);
        assert_eq!(extract_vmlinux(&image).unwrap(), b"\x7fELF kernel");
    }

    #[test]
    fn falls_back_to_scanning_for_the_magic() {
        let payload = xz(b"\x7fELF kernel");
        let mut image = fake_bzimage(&payload, false);
        // A false magic before the real one must be skipped.
        image[10..16].copy_from_slice(XZ_MAGIC);
        assert!(payload_range(&image).is_none());
        assert_eq!(xz_magic_offsets(&image).count(), 2);
        assert_eq!(extract_vmlinux(&image).unwrap(), b"\x7fELF kernel");
    }

    #[test]
    fn a_zstd_bzimage_goes_to_xen_as_it_is() {
        let image = fake_bzimage(b"\x28\xb5\x2f\xfdzstd frame", true);
        assert!(payload_range(&image).is_none());
        assert_eq!(dom0_kernel(&image).unwrap(), image);
        let xz_image = fake_bzimage(&xz(b"\x7fELF kernel"), true);
        assert_eq!(dom0_kernel(&xz_image).unwrap(), b"\x7fELF kernel");
    }

    #[test]
    fn rejects_non_elf_payload() {
        let image = fake_bzimage(&xz(b"not an elf"), true);
        assert!(extract_vmlinux(&image).is_err());
        assert!(extract_vmlinux(b"nothing here").is_err());
    }
}
