//! Guest footprint: what each app's image weighs, read from its ELF.
//!
//! `cargo xtask size [APP...]` builds the apps (release profile) and
//! prints, for each, the ELF as built (with its symbols and debug info,
//! kept for crash reports), the stripped image (what a Xen host needs to
//! boot it) and the loaded sections in `size`'s Berkeley split: text
//! (allocated, not writable: code and read-only data), data (allocated,
//! writable, in the file) and bss (allocated, not in the file). The
//! stripped image is made here, not by binutils: the ELF and program
//! headers and the loaded segments' bytes, packed without the linker's
//! page padding ([`strip`]), with no section headers. Xen's loaders read
//! only the program headers (the kernel's Xen notes sit in their own
//! `PT_NOTE` segment), so that file boots as it is: it is written as
//! `boot/APP` beside the ELF, and it is what every rig command boots.
//!
//! The reference figures are Mini-OS's (Xen's C reference guest, default
//! PV build of its public tree), measured in this rig when the footprint
//! issue was filed: 133,656 bytes stripped, 116,968 with `debug=n`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Mini-OS's stripped image, default build (bytes).
pub const MINI_OS_STRIPPED: u64 = 133_656;
/// Mini-OS's stripped image built with `debug=n` (bytes).
pub const MINI_OS_STRIPPED_NODEBUG: u64 = 116_968;

/// The apps `cargo xtask size` reports by default.
pub const APPS: [&str; 5] = ["hello", "echo", "httpd", "blkcheck", "conformance"];

/// One image's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// The ELF as built.
    pub file: u64,
    /// The stripped image ([`strip`]).
    pub stripped: u64,
    /// Allocated, not writable.
    pub text: u64,
    /// Allocated, writable, in the file.
    pub data: u64,
    /// Allocated, not in the file.
    pub bss: u64,
}

const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHT_NOBITS: u32 = 8;
const PT_LOAD: u32 = 1;
#[cfg(test)]
const PT_NOTE: u32 = 4;

fn u16_at(elf: &[u8], at: usize) -> Result<u16, String> {
    elf.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| format!("ELF cut short at byte {at}"))
}

fn u32_at(elf: &[u8], at: usize) -> Result<u32, String> {
    elf.get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")))
        .ok_or_else(|| format!("ELF cut short at byte {at}"))
}

fn u64_at(elf: &[u8], at: usize) -> Result<u64, String> {
    elf.get(at..at + 8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("eight bytes")))
        .ok_or_else(|| format!("ELF cut short at byte {at}"))
}

/// Checks the header: a little-endian ELF64.
fn check_header(elf: &[u8]) -> Result<(), String> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if elf[4] != 2 || elf[5] != 1 {
        return Err("not a little-endian ELF64 file".into());
    }
    Ok(())
}

/// The program headers' `(type, offset, filesz)`.
#[cfg(test)]
fn segments(elf: &[u8]) -> Result<Vec<(u32, u64, u64)>, String> {
    check_header(elf)?;
    let phoff = u64_at(elf, 0x20)? as usize;
    let entsize = usize::from(u16_at(elf, 0x36)?);
    let count = usize::from(u16_at(elf, 0x38)?);
    (0..count)
        .map(|i| {
            let at = phoff + i * entsize;
            Ok((
                u32_at(elf, at)?,
                u64_at(elf, at + 8)?,
                u64_at(elf, at + 0x20)?,
            ))
        })
        .collect()
}

/// How the packed image aligns a loaded segment's file offset: to its
/// address modulo this, the smallest alignment any of our sections
/// asks of the bytes themselves.
const PACKED_ALIGN: u64 = 16;

/// The image Xen boots: the ELF header, the program headers and each
/// loaded segment's bytes, packed one after another, with no symbols,
/// debug info or section headers.
///
/// The linker places each segment at a file offset congruent to its
/// address modulo the page size (`link.ld` page-aligns text, rodata and
/// data for their protections), which leaves up to a page of padding
/// before each. Xen's loaders copy each `PT_LOAD`'s bytes from its
/// `p_offset` to its address and zero up to `p_memsz`; they never map
/// the file. So the packed image keeps offsets congruent only modulo
/// [`PACKED_ALIGN`] and says so in `p_align`, which keeps it a valid ELF
/// file. A `PT_NOTE` inside a loaded segment (ours: the Xen notes sit in
/// the read-only data) moves with that segment; any other segment with
/// bytes is appended after the loaded ones.
pub fn strip(elf: &[u8]) -> Result<Vec<u8>, String> {
    check_header(elf)?;
    let phoff = usize::try_from(u64_at(elf, 0x20)?).map_err(|_| "program headers past 4 GiB")?;
    let entsize = usize::from(u16_at(elf, 0x36)?);
    let count = usize::from(u16_at(elf, 0x38)?);
    if count > 0 && entsize < 56 {
        return Err(format!(
            "program header entries of {entsize} bytes (ELF64 needs 56)"
        ));
    }
    let table = elf
        .get(phoff..phoff + entsize * count)
        .ok_or("the program headers run past the file's end")?;
    let mut out = elf[..64].to_vec();
    out.extend_from_slice(table);
    // e_phoff: right after the header; e_shoff, e_shnum, e_shstrndx:
    // no section headers.
    out[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    out[0x28..0x30].fill(0);
    out[0x3c..0x40].fill(0);

    let field = |i: usize, at: usize| u64_at(table, i * entsize + at);
    // Copies segment i's bytes to the end of `out`, at an offset
    // congruent to its address modulo `align`; returns that offset.
    let place = |out: &mut Vec<u8>, i: usize, align: u64| -> Result<u64, String> {
        let (offset, vaddr, filesz) = (field(i, 8)?, field(i, 0x10)?, field(i, 0x20)?);
        let bytes = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(filesz).ok())
            .and_then(|(at, len)| elf.get(at..at.checked_add(len)?))
            .ok_or_else(|| format!("segment {i}'s bytes run past the file's end"))?;
        let len = out.len() as u64;
        let new = len + (vaddr.wrapping_sub(len) % align);
        out.resize(new as usize, 0);
        out.extend_from_slice(bytes);
        Ok(new)
    };
    let set = |out: &mut Vec<u8>, i: usize, at: usize, value: u64| {
        let at = 64 + i * entsize + at;
        out[at..at + 8].copy_from_slice(&value.to_le_bytes());
    };
    // Where each loaded segment's bytes were and now are:
    // (old offset, size, new offset).
    let mut loads: Vec<(u64, u64, u64)> = Vec::new();
    for i in 0..count {
        if u32_at(table, i * entsize)? == PT_LOAD {
            let new = place(&mut out, i, PACKED_ALIGN)?;
            set(&mut out, i, 8, new);
            set(&mut out, i, 0x30, field(i, 0x30)?.min(PACKED_ALIGN));
            loads.push((field(i, 8)?, field(i, 0x20)?, new));
        }
    }
    for i in 0..count {
        let (offset, filesz) = (field(i, 8)?, field(i, 0x20)?);
        if u32_at(table, i * entsize)? == PT_LOAD {
            continue;
        }
        let within = loads
            .iter()
            .find(|(at, len, _)| offset >= *at && offset + filesz <= at + len);
        let new = match within {
            Some((at, _, new)) => new + (offset - at),
            None if filesz == 0 => 0,
            None => place(&mut out, i, field(i, 0x30)?.clamp(1, PACKED_ALIGN))?,
        };
        set(&mut out, i, 8, new);
    }
    Ok(out)
}

/// The figures of `elf` (see [`Sizes`]).
pub fn sizes(elf: &[u8]) -> Result<Sizes, String> {
    check_header(elf)?;
    let shoff = u64_at(elf, 0x28)? as usize;
    let entsize = usize::from(u16_at(elf, 0x3a)?);
    let count = usize::from(u16_at(elf, 0x3c)?);
    let (mut text, mut data, mut bss) = (0, 0, 0);
    for i in 0..count {
        let at = shoff + i * entsize;
        let kind = u32_at(elf, at + 4)?;
        let flags = u64_at(elf, at + 8)?;
        let size = u64_at(elf, at + 0x20)?;
        if flags & SHF_ALLOC == 0 {
            continue;
        }
        if kind == SHT_NOBITS {
            bss += size;
        } else if flags & SHF_WRITE != 0 {
            data += size;
        } else {
            text += size;
        }
    }
    Ok(Sizes {
        file: elf.len() as u64,
        stripped: strip(elf)?.len() as u64,
        text,
        data,
        bss,
    })
}

/// Writes the stripped image (`boot/APP` beside `elf`,
/// [`crate::guest_build::boot_image`]) and returns its path and figures.
pub fn measure(elf: &Path) -> Result<(PathBuf, Sizes), String> {
    let bytes = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    let figures = sizes(&bytes).map_err(|e| format!("{}: {e}", elf.display()))?;
    Ok((crate::guest_build::boot_image(elf)?, figures))
}

/// Builds `apps` (release profile) and measures each.
pub fn measure_apps(apps: &[&str]) -> Result<Vec<(String, Sizes)>, String> {
    apps.iter()
        .map(|app| {
            let elf = crate::guest_build::build_elf(app, crate::guest_build::Profile::Release)?;
            Ok((app.to_string(), measure(&elf)?.1))
        })
        .collect()
}

/// The table `cargo xtask size` and `cargo xtask bench` print.
pub fn table(apps: &[&str]) -> Result<String, String> {
    Ok(table_of(&measure_apps(apps)?))
}

/// The table of figures [`measure_apps`] gave.
pub fn table_of(measured: &[(String, Sizes)]) -> String {
    let mut out = format!(
        "{:<12} {:>10} {:>10} {:>9} {:>8} {:>8} {:>14}\n",
        "app", "ELF", "stripped", "text", "data", "bss", "/ Mini-OS"
    );
    for (app, s) in measured {
        out.push_str(&format!(
            "{:<12} {:>10} {:>10} {:>9} {:>8} {:>8} {:>6.2} ({:.2})\n",
            app,
            s.file,
            s.stripped,
            s.text,
            s.data,
            s.bss,
            s.stripped as f64 / MINI_OS_STRIPPED as f64,
            s.stripped as f64 / MINI_OS_STRIPPED_NODEBUG as f64,
        ));
    }
    out.push_str(&format!(
        "bytes; stripped = what a Xen host boots (boot/APP beside the ELF; the rig boots it); / Mini-OS: against its \
         default build's {MINI_OS_STRIPPED} B stripped (and its debug=n build's {MINI_OS_STRIPPED_NODEBUG} B)\n"
    ));
    out
}

/// The bench's size rows: each app's stripped image and its text, data
/// and bss, then Mini-OS's two builds (stripped only, as measured when
/// the footprint issue was filed).
pub fn size_rows(measured: &[(String, Sizes)]) -> Vec<crate::bench_json::Row> {
    use crate::bench_json::{Row, Series};
    let row = |name: &str, series: Vec<Series>| Row {
        group: "size".into(),
        name: name.into(),
        unit: "B".into(),
        better: "lower".into(),
        series,
        notes: Vec::new(),
    };
    let one = |name: &str, bytes: u64| Series::new(name, vec![Some(bytes as f64)]);
    let mut rows: Vec<Row> = measured
        .iter()
        .map(|(app, s)| {
            row(
                app,
                vec![
                    one("stripped image", s.stripped),
                    one("text", s.text),
                    one("data", s.data),
                    one("bss", s.bss),
                ],
            )
        })
        .collect();
    rows.push(row(
        "Mini-OS (default build)",
        vec![one("stripped image", MINI_OS_STRIPPED)],
    ));
    rows.push(row(
        "Mini-OS (debug=n)",
        vec![one("stripped image", MINI_OS_STRIPPED_NODEBUG)],
    ));
    rows
}

/// `cargo xtask size [APP...]`.
pub fn run(args: &mut crate::args::Args) -> Result<ExitCode, String> {
    let mut named = Vec::new();
    while let Some(app) = args.next_positional() {
        named.push(app);
    }
    args.finish()?;
    let apps: Vec<&str> = if named.is_empty() {
        APPS.to_vec()
    } else {
        named.iter().map(String::as_str).collect()
    };
    print!("{}", table(&apps)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small ELF64: one PT_LOAD (file 0x40..0x140), one PT_NOTE, then
    /// 0x100 bytes of symbols and three section headers (null, .text
    /// alloc, .bss alloc+write nobits, .data alloc+write).
    fn elf() -> Vec<u8> {
        let mut e = vec![0u8; 0x400];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[5] = 1;
        let put16 =
            |e: &mut Vec<u8>, at: usize, v: u16| e[at..at + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |e: &mut Vec<u8>, at: usize, v: u32| e[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let put64 =
            |e: &mut Vec<u8>, at: usize, v: u64| e[at..at + 8].copy_from_slice(&v.to_le_bytes());
        // Program headers at 0x200 (after the loaded bytes), 2 of 56.
        put64(&mut e, 0x20, 0x200);
        put16(&mut e, 0x36, 56);
        put16(&mut e, 0x38, 2);
        put32(&mut e, 0x200, PT_LOAD);
        put64(&mut e, 0x208, 0x40);
        put64(&mut e, 0x220, 0x100);
        put32(&mut e, 0x238, PT_NOTE);
        put64(&mut e, 0x240, 0x140);
        put64(&mut e, 0x258, 0x20);
        // Section headers at 0x300, 4 of 64 (but the file is 0x400 long:
        // only 4 * 64 = 0x100 bytes fit exactly).
        put64(&mut e, 0x28, 0x300);
        put16(&mut e, 0x3a, 64);
        put16(&mut e, 0x3c, 4);
        put16(&mut e, 0x3e, 0);
        let section = |e: &mut Vec<u8>, i: usize, kind: u32, flags: u64, size: u64| {
            let at = 0x300 + i * 64;
            e[at + 4..at + 8].copy_from_slice(&kind.to_le_bytes());
            e[at + 8..at + 16].copy_from_slice(&flags.to_le_bytes());
            e[at + 0x20..at + 0x28].copy_from_slice(&size.to_le_bytes());
        };
        section(&mut e, 1, 1, SHF_ALLOC | 4, 0xc0);
        section(&mut e, 2, SHT_NOBITS, SHF_ALLOC | SHF_WRITE, 0x1000);
        section(&mut e, 3, 1, SHF_ALLOC | SHF_WRITE, 0x40);
        e
    }

    #[test]
    fn sections_split_as_size_does() {
        let s = sizes(&elf()).unwrap();
        assert_eq!((s.text, s.data, s.bss, s.file), (0xc0, 0x40, 0x1000, 0x400));
    }

    #[test]
    fn stripping_keeps_headers_and_segments_and_drops_the_rest() {
        let mut original = elf();
        // Loaded bytes at 0x40..0x140 (address 0x100040), the note at
        // 0x140..0x160, outside the loaded segment.
        original[0x210..0x218].copy_from_slice(&0x10_0040u64.to_le_bytes());
        original[0x230..0x238].copy_from_slice(&0x1000u64.to_le_bytes());
        for (i, b) in original[0x40..0x160].iter_mut().enumerate() {
            *b = i as u8 ^ 0x5a;
        }
        let stripped = strip(&original).unwrap();
        // Header, 2 program headers (0x40 + 0x70 = 0xb0), the load right
        // there (0xb0 is congruent to its address mod 16), then the note.
        assert_eq!(u64_at(&stripped, 0x20).unwrap(), 0x40);
        assert_eq!(u64_at(&stripped, 0x28).unwrap(), 0);
        assert_eq!(u16_at(&stripped, 0x3c).unwrap(), 0);
        let segs = segments(&stripped).unwrap();
        assert_eq!(segs, vec![(PT_LOAD, 0xb0, 0x100), (PT_NOTE, 0x1b0, 0x20)]);
        assert_eq!(stripped.len(), 0x1d0);
        assert_eq!(&stripped[0xb0..0x1d0], &original[0x40..0x160]);
        // The load's alignment says what the offsets keep.
        assert_eq!(u64_at(&stripped, 0x40 + 0x30).unwrap(), PACKED_ALIGN);
    }

    #[test]
    fn a_note_inside_a_loaded_segment_moves_with_it() {
        let mut original = elf();
        // The note at 0x100..0x120, inside the load 0x40..0x140.
        original[0x240..0x248].copy_from_slice(&0x100u64.to_le_bytes());
        original[0x100..0x120].copy_from_slice(&[7u8; 0x20]);
        let stripped = strip(&original).unwrap();
        let segs = segments(&stripped).unwrap();
        assert_eq!(segs[0], (PT_LOAD, 0xb0, 0x100));
        assert_eq!(segs[1], (PT_NOTE, 0xb0 + 0xc0, 0x20));
        assert_eq!(&stripped[0x170..0x190], &[7u8; 0x20]);
        assert_eq!(stripped.len(), 0x1b0);
    }

    #[test]
    fn a_segment_past_the_file_is_an_error() {
        let mut original = elf();
        original[0x220..0x228].copy_from_slice(&0x1_0000u64.to_le_bytes());
        assert!(strip(&original)
            .unwrap_err()
            .contains("past the file's end"));
    }

    #[test]
    fn size_rows_put_each_app_next_to_mini_os() {
        let s = sizes(&elf()).unwrap();
        let rows = size_rows(&[("hello".to_string(), s)]);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].name, "hello");
        assert_eq!(rows[0].series[0].median, Some(s.stripped as f64));
        assert_eq!(rows[0].series[1].values, vec![Some(0xc0 as f64)]);
        assert_eq!(rows[1].series[0].median, Some(MINI_OS_STRIPPED as f64));
        assert!(rows.iter().all(|r| r.group == "size" && r.unit == "B"));
        assert!(table_of(&[("hello".to_string(), s)]).contains("hello"));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(sizes(b"not an elf").is_err());
        let mut cut = elf();
        cut.truncate(0x100);
        assert!(strip(&cut).is_err());
    }
}
