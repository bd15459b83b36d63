//! Checks blkfront's byte encodings against Xen's `io/blkif.h`.
//!
//! Writes a C program that prints the size and field offsets of
//! `blkif_request`, `blkif_request_segment` and `blkif_response`, the
//! protocol constants and `RING_SIZE` of a one-page blkif ring; compiles
//! it against the headers with `cc`; and checks that our encodings put
//! each field where the C layout has it. Headers as for pv-arch's
//! `abi_layout` test: `PARAVANE_XEN_INCLUDE`, or Debian's `libxen-dev`
//! unpacked in the rig's cache (`cargo xtask test` fetches it).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use drivers_pv::blkfront::wire::*;
use drivers_pv::shared_ring::{ring_size, RingEntry};

fn include_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PARAVANE_XEN_INCLUDE") {
        return PathBuf::from(dir);
    }
    let cache = match std::env::var_os("PARAVANE_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/paravane"),
    };
    cache.join("extract/libxen-dev/usr/include")
}

const PROGRAM: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/io/ring.h>
#include <xen/io/blkif.h>
#define P(name, value) printf("%s %lld\n", name, (long long)(value))
int main(void) {
    P("req.size", sizeof(struct blkif_request));
    P("req.operation", offsetof(struct blkif_request, operation));
    P("req.nr_segments", offsetof(struct blkif_request, nr_segments));
    P("req.handle", offsetof(struct blkif_request, handle));
    P("req.id", offsetof(struct blkif_request, id));
    P("req.sector_number", offsetof(struct blkif_request, sector_number));
    P("req.seg", offsetof(struct blkif_request, seg));
    P("seg.size", sizeof(struct blkif_request_segment));
    P("seg.gref", offsetof(struct blkif_request_segment, gref));
    P("seg.first_sect", offsetof(struct blkif_request_segment, first_sect));
    P("seg.last_sect", offsetof(struct blkif_request_segment, last_sect));
    P("ind.size", sizeof(struct blkif_request_indirect));
    P("ind.operation", offsetof(struct blkif_request_indirect, operation));
    P("ind.indirect_op", offsetof(struct blkif_request_indirect, indirect_op));
    P("ind.nr_segments", offsetof(struct blkif_request_indirect, nr_segments));
    P("ind.id", offsetof(struct blkif_request_indirect, id));
    P("ind.sector_number", offsetof(struct blkif_request_indirect, sector_number));
    P("ind.handle", offsetof(struct blkif_request_indirect, handle));
    P("ind.indirect_grefs", offsetof(struct blkif_request_indirect, indirect_grefs));
    P("BLKIF_OP_INDIRECT", BLKIF_OP_INDIRECT);
    P("BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST", BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
    P("SEGS_PER_INDIRECT_FRAME", 4096 / sizeof(struct blkif_request_segment));
    P("rsp.size", sizeof(struct blkif_response));
    P("rsp.id", offsetof(struct blkif_response, id));
    P("rsp.operation", offsetof(struct blkif_response, operation));
    P("rsp.status", offsetof(struct blkif_response, status));
    P("BLKIF_OP_READ", BLKIF_OP_READ);
    P("BLKIF_OP_WRITE", BLKIF_OP_WRITE);
    P("BLKIF_OP_WRITE_BARRIER", BLKIF_OP_WRITE_BARRIER);
    P("BLKIF_OP_FLUSH_DISKCACHE", BLKIF_OP_FLUSH_DISKCACHE);
    P("BLKIF_RSP_OKAY", BLKIF_RSP_OKAY);
    P("BLKIF_RSP_ERROR", BLKIF_RSP_ERROR);
    P("BLKIF_RSP_EOPNOTSUPP", BLKIF_RSP_EOPNOTSUPP);
    P("BLKIF_MAX_SEGMENTS_PER_REQUEST", BLKIF_MAX_SEGMENTS_PER_REQUEST);
    P("VDISK_CDROM", VDISK_CDROM);
    P("VDISK_REMOVABLE", VDISK_REMOVABLE);
    P("VDISK_READONLY", VDISK_READONLY);
    P("RING_SIZE", __CONST_RING_SIZE(blkif, 4096));
    return 0;
}
"#;

fn c_layout() -> HashMap<String, i64> {
    let include = include_dir();
    assert!(
        include.join("xen/io/blkif.h").is_file(),
        "Xen public headers not found at {}: run `cargo xtask test` (which fetches Debian's \
         libxen-dev) or set PARAVANE_XEN_INCLUDE",
        include.display()
    );
    // One directory per call: the tests run in parallel.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("paravane-blkif-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("blkif.c");
    let binary = dir.join("blkif");
    std::fs::write(&source, PROGRAM).unwrap();
    let status = Command::new("cc")
        .arg("-I")
        .arg(&include)
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("cannot run cc");
    assert!(status.success(), "cc failed on {}", source.display());
    let output = Command::new(&binary)
        .output()
        .expect("cannot run the program");
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, value) = line.split_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn blkif_encodings_match_the_c_headers() {
    let c = c_layout();
    let at = |name: &str| c[name] as usize;

    // Constants.
    for (name, ours) in [
        ("BLKIF_OP_READ", i64::from(OP_READ)),
        ("BLKIF_OP_WRITE", i64::from(OP_WRITE)),
        ("BLKIF_OP_WRITE_BARRIER", i64::from(OP_WRITE_BARRIER)),
        ("BLKIF_OP_FLUSH_DISKCACHE", i64::from(OP_FLUSH_DISKCACHE)),
        ("BLKIF_RSP_OKAY", i64::from(RSP_OKAY)),
        ("BLKIF_RSP_ERROR", i64::from(RSP_ERROR)),
        ("BLKIF_RSP_EOPNOTSUPP", i64::from(RSP_EOPNOTSUPP)),
        ("BLKIF_MAX_SEGMENTS_PER_REQUEST", MAX_SEGMENTS as i64),
        ("VDISK_CDROM", i64::from(VDISK_CDROM)),
        ("VDISK_REMOVABLE", i64::from(VDISK_REMOVABLE)),
        ("VDISK_READONLY", i64::from(VDISK_READONLY)),
        ("req.size", REQUEST_SIZE as i64),
        ("rsp.size", RESPONSE_SIZE as i64),
    ] {
        assert_eq!(c[name], ours, "{name}");
    }
    assert_eq!(
        c["RING_SIZE"],
        i64::from(ring_size(1, REQUEST_SIZE.max(RESPONSE_SIZE)))
    );

    // The request: every field where C puts it.
    let mut request = BlkifRequest::new(
        Operation::FlushDiskCache,
        0xa1b2,
        0x1122_3344_5566_7788,
        0x99aa_bbcc_ddee_ff00,
    );
    for i in 0..MAX_SEGMENTS {
        request
            .push_segment(Segment {
                gref: 0x0100_0000 + i as u32,
                first_sect: i as u8 % 4,
                last_sect: 4 + i as u8 % 4,
            })
            .unwrap();
    }
    let mut bytes = vec![0u8; REQUEST_SIZE];
    request.encode(&mut bytes);
    assert_eq!(bytes[at("req.operation")], OP_FLUSH_DISKCACHE);
    assert_eq!(bytes[at("req.nr_segments")], MAX_SEGMENTS as u8);
    let handle = at("req.handle");
    assert_eq!(&bytes[handle..handle + 2], &0xa1b2u16.to_le_bytes());
    let id = at("req.id");
    assert_eq!(&bytes[id..id + 8], &0x1122_3344_5566_7788u64.to_le_bytes());
    let sector = at("req.sector_number");
    assert_eq!(
        &bytes[sector..sector + 8],
        &0x99aa_bbcc_ddee_ff00u64.to_le_bytes()
    );
    for i in 0..MAX_SEGMENTS {
        let base = at("req.seg") + i * at("seg.size");
        let gref = base + at("seg.gref");
        assert_eq!(
            &bytes[gref..gref + 4],
            &(0x0100_0000 + i as u32).to_le_bytes()
        );
        assert_eq!(bytes[base + at("seg.first_sect")], i as u8 % 4);
        assert_eq!(bytes[base + at("seg.last_sect")], 4 + i as u8 % 4);
    }

    // The response: decoded from bytes laid out as C has them.
    let mut bytes = vec![0u8; RESPONSE_SIZE];
    let id = at("rsp.id");
    bytes[id..id + 8].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
    bytes[at("rsp.operation")] = OP_WRITE;
    let status = at("rsp.status");
    bytes[status..status + 2].copy_from_slice(&RSP_ERROR.to_le_bytes());
    let response = BlkifResponse::decode(&bytes).unwrap();
    assert_eq!(response.id, 0x0102_0304_0506_0708);
    assert_eq!(response.operation, OP_WRITE);
    assert_eq!(response.status, Status::Error);
}

#[test]
fn indirect_encodings_match_the_c_headers() {
    let c = c_layout();
    let at = |name: &str| c[name] as usize;
    for (name, ours) in [
        ("BLKIF_OP_INDIRECT", i64::from(OP_INDIRECT)),
        (
            "BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST",
            MAX_INDIRECT_PAGES as i64,
        ),
        ("SEGS_PER_INDIRECT_FRAME", SEGMENTS_PER_INDIRECT_PAGE as i64),
        ("seg.size", SEGMENT_SIZE as i64),
        ("ind.size", INDIRECT_REQUEST_SIZE as i64),
    ] {
        assert_eq!(c[name], ours, "{name}");
    }
    const { assert!(INDIRECT_REQUEST_SIZE <= REQUEST_SIZE) };

    let mut indirect_grefs = [0u32; MAX_INDIRECT_PAGES];
    for (i, gref) in indirect_grefs.iter_mut().enumerate() {
        *gref = 0x0a00_0000 + i as u32;
    }
    let request = Request::Indirect(IndirectRequest {
        operation: Operation::Write,
        nr_segments: 0x0f01,
        handle: 0xc3d4,
        id: 0x1122_3344_5566_7788,
        sector_number: 0x99aa_bbcc_ddee_ff00,
        indirect_grefs,
    });
    let mut bytes = vec![0u8; REQUEST_SIZE];
    request.encode(&mut bytes);
    assert_eq!(bytes[at("ind.operation")], OP_INDIRECT);
    assert_eq!(bytes[at("ind.indirect_op")], OP_WRITE);
    let nr = at("ind.nr_segments");
    assert_eq!(&bytes[nr..nr + 2], &0x0f01u16.to_le_bytes());
    let id = at("ind.id");
    assert_eq!(&bytes[id..id + 8], &0x1122_3344_5566_7788u64.to_le_bytes());
    let sector = at("ind.sector_number");
    assert_eq!(
        &bytes[sector..sector + 8],
        &0x99aa_bbcc_ddee_ff00u64.to_le_bytes()
    );
    let handle = at("ind.handle");
    assert_eq!(&bytes[handle..handle + 2], &0xc3d4u16.to_le_bytes());
    for i in 0..MAX_INDIRECT_PAGES {
        let gref = at("ind.indirect_grefs") + i * 4;
        assert_eq!(
            &bytes[gref..gref + 4],
            &(0x0a00_0000 + i as u32).to_le_bytes()
        );
    }
    assert!(bytes[at("ind.size")..].iter().all(|&b| b == 0));
    assert_eq!(Request::decode(&bytes), Ok(request));

    // An indirect page's entries: `blkif_request_segment`s back to back.
    let segments = [
        Segment {
            gref: 0x0102_0304,
            first_sect: 1,
            last_sect: 6,
        },
        Segment {
            gref: 0x0506_0708,
            first_sect: 0,
            last_sect: 7,
        },
    ];
    let mut page = vec![0xffu8; 2 * SEGMENT_SIZE];
    encode_segments(&segments, &mut page);
    for (i, segment) in segments.iter().enumerate() {
        let base = i * at("seg.size");
        let gref = base + at("seg.gref");
        assert_eq!(&page[gref..gref + 4], &segment.gref.to_le_bytes());
        assert_eq!(page[base + at("seg.first_sect")], segment.first_sect);
        assert_eq!(page[base + at("seg.last_sect")], segment.last_sect);
        let entry: &[u8; SEGMENT_SIZE] = page[base..base + SEGMENT_SIZE].try_into().unwrap();
        assert_eq!(decode_segment(entry), *segment);
    }
}
