//! `xen-hvmctx DOMID | loadgen postmortem DOMID`: what a triple-faulted
//! HVM (PVH) domain's CPU had in hand, read from its memory.
//!
//! The rig keeps a domU that triple-faulted (every `on_*` is `preserve`)
//! and prints Xen's `xen-hvmctx` dump of it. The registers alone cannot
//! tell a guest's broken tables from a fault of the emulated machine; the
//! guest's memory can. For each vCPU record in the dump this reads,
//! through Linux's `/dev/xen/privcmd` (foreign pages mapped read-only):
//!
//! - the page walk of `rip`, `rsp` and the descriptor tables through the
//!   guest's own `cr3` (present, writable, no-execute at each level);
//! - the IDT gates of the event Xen says was in flight (`event`), of #DF
//!   and #PF, and of the callback vector 0xf3: present, type, selector,
//!   IST, and the walk of each handler's address;
//! - the GDT descriptor of each gate's selector, and the TSS's `rsp0` and
//!   IST pointers with the walk of each stack used.
//!
//! Each item is one `postmortem: …` line, and a last line says whether
//! every table and mapping the delivery needs was in order (then the
//! fault was not the guest's: the emulated machine failed to deliver an
//! interrupt through valid tables) or names what was not.
//!
//! The decoding is pure and host-tested over pages in a map; only
//! [`Privcmd`] touches the hypervisor. The ioctl is Linux's
//! `include/uapi/xen/privcmd.h`: `struct privcmd_mmapbatch_v2 { u32 num;
//! u16 dom; u64 addr; const u64 *arr; int *err; }` (32 bytes with
//! padding), request `_IOC(_IOC_NONE, 'P', 4, 32)`.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

/// One page.
const PAGE: usize = 4096;

/// Where pages of the domain come from.
pub trait Memory {
    /// Guest frame `gfn`, or why it cannot be read.
    fn page(&mut self, gfn: u64) -> Result<Vec<u8>, String>;
}

/// The registers of one vCPU record of `xen-hvmctx`'s dump.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    /// The record's instance (the vCPU).
    pub vcpu: u32,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    pub cr3: u64,
    pub idtr: (u64, u64),
    pub gdtr: (u64, u64),
    pub tr: (u64, u64),
    /// `event` and `error`: the event Xen had pending (SVM's EVENTINJ
    /// layout: vector in bits 0-7, type in 8-10, error valid in 11,
    /// valid in 31).
    pub event: u64,
    pub error: u64,
}

fn hex(word: &str) -> Option<u64> {
    u64::from_str_radix(word.trim_start_matches("0x"), 16).ok()
}

/// The `(base, limit)` in `( 0x001c5000 + 0x0fff)`, the words after `name`.
fn table(words: &[&str], name: &str) -> Option<(u64, u64)> {
    let at = words.iter().position(|w| *w == name)?;
    let rest = &words[at + 1..];
    let open = rest.iter().position(|w| w.starts_with('('))?;
    let mut values = rest[open..]
        .iter()
        .map(|w| w.trim_matches(|c| c == '(' || c == ')'))
        .filter(|w| !w.is_empty() && *w != "+");
    Some((hex(values.next()?)?, hex(values.next()?)?))
}

/// Every vCPU record (`Entry N: type 2 instance K`) in `xen-hvmctx`'s output.
pub fn parse_hvmctx(text: &str) -> Vec<Cpu> {
    let mut cpus: Vec<Cpu> = Vec::new();
    let mut in_cpu = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"Entry") {
            in_cpu = words.get(3) == Some(&"2");
            if in_cpu {
                let vcpu = words
                    .get(5)
                    .and_then(|w| w.trim_end_matches(',').parse().ok())
                    .unwrap_or(0);
                cpus.push(Cpu {
                    vcpu,
                    ..Cpu::default()
                });
            }
            continue;
        }
        let Some(cpu) = cpus.last_mut().filter(|_| in_cpu) else {
            continue;
        };
        let value = |name: &str| -> Option<u64> {
            let at = words.iter().position(|w| *w == name)?;
            hex(words.get(at + 1)?)
        };
        if let Some(v) = value("rip") {
            cpu.rip = v;
        }
        if let Some(v) = value("rsp") {
            cpu.rsp = v;
        }
        if let Some(v) = value("rflags") {
            cpu.rflags = v;
        }
        if let Some(v) = value("cr3") {
            cpu.cr3 = v;
        }
        if let Some(v) = value("event") {
            cpu.event = v;
        }
        if let Some(v) = value("error") {
            cpu.error = v;
        }
        if words.first() == Some(&"idtr") {
            cpu.idtr = table(&words, "idtr").unwrap_or_default();
        }
        if words.first() == Some(&"gdtr") {
            cpu.gdtr = table(&words, "gdtr").unwrap_or_default();
        }
        if words.first() == Some(&"tr") {
            cpu.tr = table(&words, "tr").unwrap_or_default();
        }
    }
    cpus
}

/// What a page walk found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The guest-physical address.
    pub physical: u64,
    pub writable: bool,
    pub executable: bool,
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// Walks `linear` through the 4-level tables at `cr3`.
pub fn translate(mem: &mut dyn Memory, cr3: u64, linear: u64) -> Result<Mapping, String> {
    const ADDRESS: u64 = 0x000f_ffff_ffff_f000;
    let mut table = cr3 & ADDRESS;
    let (mut writable, mut executable) = (true, true);
    for (level, shift) in [(4, 39), (3, 30), (2, 21), (1, 12)] {
        let index = ((linear >> shift) & 0x1ff) as usize;
        let page = mem.page(table >> 12)?;
        let entry = u64_at(&page, index * 8);
        if entry & 1 == 0 {
            return Err(format!(
                "{linear:#x}: level-{level} entry {index} of table {table:#x} is not present ({entry:#x})"
            ));
        }
        writable &= entry & 2 != 0;
        executable &= entry >> 63 == 0;
        let large = entry & 0x80 != 0 && (level == 3 || level == 2);
        if large || level == 1 {
            let size_mask = (1u64 << shift) - 1;
            return Ok(Mapping {
                physical: (entry & ADDRESS & !size_mask) | (linear & size_mask),
                writable,
                executable,
            });
        }
        table = entry & ADDRESS;
    }
    unreachable!("the walk ends at level 1")
}

/// Reads `len` bytes at `linear` (within one page).
fn read(mem: &mut dyn Memory, cr3: u64, linear: u64, len: usize) -> Result<Vec<u8>, String> {
    let mapping = translate(mem, cr3, linear)?;
    let page = mem.page(mapping.physical >> 12)?;
    let at = (mapping.physical & 0xfff) as usize;
    page.get(at..at + len)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format!("{linear:#x}: {len} bytes cross a page"))
}

/// One 64-bit IDT gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    pub offset: u64,
    pub selector: u16,
    pub ist: u8,
    pub kind: u8,
    pub present: bool,
}

/// Decodes a gate's 16 bytes.
pub fn gate(bytes: &[u8]) -> Gate {
    let word = |at: usize| u64::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    Gate {
        offset: word(0)
            | (word(6) << 16)
            | (u64::from(u32::from_le_bytes([
                bytes[8], bytes[9], bytes[10], bytes[11],
            ])) << 32),
        selector: word(2) as u16,
        ist: bytes[4] & 7,
        kind: bytes[5] & 0xf,
        present: bytes[5] & 0x80 != 0,
    }
}

/// What is wrong with the delivery of `vector` on `cpu` (empty if
/// nothing), with the lines that describe it.
fn check_vector(
    mem: &mut dyn Memory,
    cpu: &Cpu,
    vector: u64,
    out: &mut Vec<String>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let (base, limit) = cpu.idtr;
    if vector * 16 + 15 > limit {
        wrong.push(format!(
            "vector {vector:#x} is past the IDT's limit {limit:#x}"
        ));
        return wrong;
    }
    let g = match read(mem, cpu.cr3, base + vector * 16, 16) {
        Ok(bytes) => gate(&bytes),
        Err(e) => {
            wrong.push(format!("IDT gate {vector:#x}: {e}"));
            return wrong;
        }
    };
    out.push(format!(
        "gate {vector:#x}: present {} type {:#x} selector {:#x} ist {} handler {:#x}",
        g.present, g.kind, g.selector, g.ist, g.offset
    ));
    if !g.present || !(g.kind == 0xe || g.kind == 0xf) {
        wrong.push(format!(
            "gate {vector:#x} is not a present interrupt or trap gate"
        ));
    }
    match translate(mem, cpu.cr3, g.offset) {
        Ok(m) if m.executable => out.push(format!(
            "  handler {:#x} -> {:#x}, executable",
            g.offset, m.physical
        )),
        Ok(_) => wrong.push(format!("handler {:#x} is mapped no-execute", g.offset)),
        Err(e) => wrong.push(format!("handler of {vector:#x}: {e}")),
    }
    let (gdt, gdt_limit) = cpu.gdtr;
    let index = u64::from(g.selector & !7);
    if index + 7 > gdt_limit {
        wrong.push(format!(
            "selector {:#x} is past the GDT's limit",
            g.selector
        ));
    } else {
        match read(mem, cpu.cr3, gdt + index, 8) {
            Ok(d) => {
                let access = d[5];
                let long = d[6] & 0x20 != 0;
                out.push(format!(
                    "  GDT[{:#x}]: access {access:#x} long {long}",
                    g.selector
                ));
                if access & 0x80 == 0 || access & 0x18 != 0x18 || !long {
                    wrong.push(format!(
                        "selector {:#x} is not a present 64-bit code segment",
                        g.selector
                    ));
                }
            }
            Err(e) => wrong.push(format!("GDT: {e}")),
        }
    }
    // The stack the CPU switches to: the gate's IST entry, or (from ring
    // 0, as here) the current one.
    let stack = if g.ist != 0 {
        match read(mem, cpu.cr3, cpu.tr.0 + 0x24 + 8 * u64::from(g.ist - 1), 8) {
            Ok(b) => u64_at(&b, 0),
            Err(e) => {
                wrong.push(format!("TSS: {e}"));
                return wrong;
            }
        }
    } else {
        cpu.rsp
    };
    match translate(mem, cpu.cr3, stack.wrapping_sub(8)) {
        Ok(m) if m.writable => out.push(format!(
            "  stack {stack:#x} (ist {}) -> {:#x}, writable",
            g.ist,
            m.physical + 8
        )),
        Ok(_) => wrong.push(format!("stack {stack:#x} is read-only")),
        Err(e) => wrong.push(format!("stack of {vector:#x}: {e}")),
    }
    wrong
}

/// The post-mortem of one vCPU: its lines, the last one the verdict.
pub fn examine(mem: &mut dyn Memory, cpu: &Cpu) -> Vec<String> {
    let mut out = vec![format!(
        "vCPU {}: rip {:#x} rsp {:#x} rflags {:#x} cr3 {:#x} idtr {:#x}+{:#x} gdtr {:#x}+{:#x} tr base {:#x}",
        cpu.vcpu, cpu.rip, cpu.rsp, cpu.rflags, cpu.cr3, cpu.idtr.0, cpu.idtr.1, cpu.gdtr.0,
        cpu.gdtr.1, cpu.tr.0
    )];
    if cpu.event >> 31 & 1 == 1 {
        let kind = [
            "external interrupt",
            "?",
            "NMI",
            "exception",
            "software interrupt",
        ]
        .get((cpu.event >> 8 & 7) as usize)
        .copied()
        .unwrap_or("?");
        let error = if cpu.event >> 11 & 1 == 1 {
            format!(", error code {:#x}", cpu.error)
        } else {
            String::new()
        };
        out.push(format!(
            "event in flight: vector {:#x} ({kind}{error})",
            cpu.event & 0xff
        ));
    }
    let mut wrong = Vec::new();
    match translate(mem, cpu.cr3, cpu.rip) {
        Ok(m) => out.push(format!(
            "rip {:#x} -> {:#x}, executable {}",
            cpu.rip, m.physical, m.executable
        )),
        Err(e) => wrong.push(format!("rip: {e}")),
    }
    let mut vectors: Vec<u64> = vec![0xf3, 0x0e, 0x08, 0x02];
    if cpu.event >> 31 & 1 == 1 && !vectors.contains(&(cpu.event & 0xff)) {
        vectors.insert(0, cpu.event & 0xff);
    }
    for vector in vectors {
        wrong.extend(check_vector(mem, cpu, vector, &mut out));
    }
    out.push(if wrong.is_empty() {
        "verdict: the IDT, GDT, TSS, handlers and stacks this delivery needs are all present \
         and valid in the guest's own tables: the guest's state did not stop the delivery"
            .to_string()
    } else {
        format!("verdict: {}", wrong.join("; "))
    });
    out
}

/// Foreign pages of one domain through `/dev/xen/privcmd`, cached.
pub struct Privcmd {
    domid: u16,
    file: std::fs::File,
    cache: BTreeMap<u64, Vec<u8>>,
}

/// `struct privcmd_mmapbatch_v2`.
#[repr(C)]
struct MmapBatchV2 {
    num: u32,
    dom: u16,
    addr: u64,
    arr: *const u64,
    err: *mut i32,
}

/// `IOCTL_PRIVCMD_MMAPBATCH_V2`: `_IOC(_IOC_NONE, 'P', 4, 32)`.
const IOCTL_PRIVCMD_MMAPBATCH_V2: u64 =
    ((size_of::<MmapBatchV2>() as u64) << 16) | ((b'P' as u64) << 8) | 4;

const PROT_READ: i32 = 1;
const MAP_SHARED: i32 = 1;

extern "C" {
    fn mmap(addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, off: i64)
        -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> i32;
    fn ioctl(fd: i32, request: u64, ...) -> i32;
}

impl Privcmd {
    /// Opens `/dev/xen/privcmd` for domain `domid`.
    pub fn open(domid: u16) -> Result<Privcmd, String> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/xen/privcmd")
            .map_err(|e| format!("/dev/xen/privcmd: {e}"))?;
        Ok(Privcmd {
            domid,
            file,
            cache: BTreeMap::new(),
        })
    }
}

impl Memory for Privcmd {
    fn page(&mut self, gfn: u64) -> Result<Vec<u8>, String> {
        if let Some(page) = self.cache.get(&gfn) {
            return Ok(page.clone());
        }
        let fd = self.file.as_raw_fd();
        // SAFETY: a fresh shared mapping of one page of the privcmd device,
        // which the ioctl below backs with the foreign frame; read only.
        let address = unsafe { mmap(std::ptr::null_mut(), PAGE, PROT_READ, MAP_SHARED, fd, 0) };
        if address as isize == -1 {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        let frames = [gfn];
        let mut errors = [0i32];
        let batch = MmapBatchV2 {
            num: 1,
            dom: self.domid,
            addr: address as u64,
            arr: frames.as_ptr(),
            err: errors.as_mut_ptr(),
        };
        // SAFETY: `batch` is the ioctl's struct, its arrays live for the
        // call, and `addr` is the mapping just made on this fd.
        let status = unsafe { ioctl(fd, IOCTL_PRIVCMD_MMAPBATCH_V2, &batch as *const MmapBatchV2) };
        let result = if status < 0 || errors[0] != 0 {
            Err(format!(
                "gfn {gfn:#x}: cannot map ({}, error {})",
                std::io::Error::last_os_error(),
                errors[0]
            ))
        } else {
            // SAFETY: the page is mapped readable for PAGE bytes.
            Ok(unsafe { std::slice::from_raw_parts(address.cast::<u8>(), PAGE) }.to_vec())
        };
        // SAFETY: the mapping made above, no longer used.
        unsafe { munmap(address, PAGE) };
        if let Ok(page) = &result {
            self.cache.insert(gfn, page.clone());
        }
        result
    }
}

/// `loadgen postmortem DOMID` with `xen-hvmctx DOMID`'s output on stdin.
pub fn run(domid: u16, dump: &str) -> Result<(), String> {
    let cpus = parse_hvmctx(dump);
    if cpus.is_empty() {
        return Err("no vCPU record in the dump on stdin".into());
    }
    let mut mem = Privcmd::open(domid)?;
    for cpu in &cpus {
        for line in examine(&mut mem, cpu) {
            println!("{line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages in a map.
    struct Pages(BTreeMap<u64, Vec<u8>>);

    impl Memory for Pages {
        fn page(&mut self, gfn: u64) -> Result<Vec<u8>, String> {
            self.0
                .get(&gfn)
                .cloned()
                .ok_or(format!("gfn {gfn:#x} not in the test"))
        }
    }

    const DUMP: &str = "HVM save record for domain 2
Entry 0: type 1 instance 0, length 24
Entry 1: type 2 instance 0, length 1032
    CPU:    rax 0x00000000001ef001     rbx 0x00000000001804b0
            rdi 0x0000000000000008     rsp 0x0000000000005f00
            rip 0x0000000000002002  rflags 0x0000000000000202
            cr3 0x0000000000001000     cr4 0x0000000000000020
             tr 0x0018 (        0x00004000 +     0x0067 /  0x008b)
           idtr        (        0x00003000 +     0x0fff)
           gdtr        (        0x00004800 +     0x0027)
          event 0x80000b0e error 0x00000010
Entry 2: type 5 instance 0, length 24
";

    /// Identity-mapped 2 MiB at 0 with 4 KiB pages: PML4 at 0x1000, PDPT
    /// 0x6000, PD 0x7000, PT 0x8000; page 0x9 is left unmapped.
    fn memory() -> Pages {
        let mut pages = BTreeMap::new();
        let table = |entries: &[(usize, u64)]| {
            let mut page = vec![0u8; PAGE];
            for &(index, entry) in entries {
                page[index * 8..index * 8 + 8].copy_from_slice(&entry.to_le_bytes());
            }
            page
        };
        pages.insert(1, table(&[(0, 0x6003)]));
        pages.insert(6, table(&[(0, 0x7003)]));
        pages.insert(7, table(&[(0, 0x8003)]));
        let pt: Vec<(usize, u64)> = (0..512u64)
            .filter(|&i| i != 9)
            .map(|i| (i as usize, (i << 12) | 3))
            .collect();
        pages.insert(8, table(&pt));
        // The IDT at 0x3000: every gate an interrupt gate to 0x2000 + v,
        // selector 8; #DF (8) on IST 1.
        let mut idt = vec![0u8; PAGE];
        for v in 0..256usize {
            let handler = 0x2000u64 + v as u64;
            let g = &mut idt[v * 16..v * 16 + 16];
            g[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
            g[2..4].copy_from_slice(&8u16.to_le_bytes());
            g[4] = if v == 8 { 1 } else { 0 };
            g[5] = 0x8e;
        }
        pages.insert(3, idt);
        // The TSS at 0x4000 (IST1 = 0x5800) and the GDT at 0x4800.
        let mut page4 = vec![0u8; PAGE];
        page4[0x24..0x2c].copy_from_slice(&0x5800u64.to_le_bytes());
        page4[0x808 + 5] = 0x9a;
        page4[0x808 + 6] = 0x20;
        pages.insert(4, page4);
        for gfn in [0, 2, 5] {
            pages.insert(gfn, vec![0u8; PAGE]);
        }
        Pages(pages)
    }

    #[test]
    fn the_dump_is_read_as_xen_hvmctx_prints_it() {
        let cpus = parse_hvmctx(DUMP);
        assert_eq!(cpus.len(), 1);
        let cpu = &cpus[0];
        assert_eq!((cpu.rip, cpu.rsp, cpu.cr3), (0x2002, 0x5f00, 0x1000));
        assert_eq!(cpu.idtr, (0x3000, 0xfff));
        assert_eq!(cpu.gdtr, (0x4800, 0x27));
        assert_eq!(cpu.tr, (0x4000, 0x67));
        assert_eq!((cpu.event, cpu.error), (0x8000_0b0e, 0x10));
    }

    #[test]
    fn valid_tables_give_a_clean_verdict_and_the_event_is_named() {
        let cpu = &parse_hvmctx(DUMP)[0];
        let lines = examine(&mut memory(), cpu);
        assert!(
            lines
                .iter()
                .any(|l| l == "event in flight: vector 0xe (exception, error code 0x10)"),
            "{lines:#?}"
        );
        assert!(lines
            .iter()
            .any(|l| l.starts_with("gate 0xf3: present true type 0xe selector 0x8")));
        assert!(lines.iter().any(|l| l.contains("stack 0x5800 (ist 1)")));
        assert!(
            lines.last().unwrap().starts_with("verdict: the IDT, GDT"),
            "{lines:#?}"
        );
    }

    #[test]
    fn a_missing_mapping_or_gate_is_named_in_the_verdict() {
        let cpu = &parse_hvmctx(DUMP)[0];
        let mut mem = memory();
        // Gate 0xf3 not present.
        mem.0.get_mut(&3).unwrap()[0xf3 * 16 + 5] = 0x0e;
        let verdict = examine(&mut mem, cpu).pop().unwrap();
        assert!(verdict.contains("gate 0xf3 is not a present"), "{verdict}");
        // The handlers' page unmapped: page 2 -> point the PT entry away.
        let mut mem = memory();
        mem.0.get_mut(&8).unwrap()[2 * 8..2 * 8 + 8].copy_from_slice(&0u64.to_le_bytes());
        let verdict = examine(&mut mem, cpu).pop().unwrap();
        assert!(verdict.contains("level-1 entry 2"), "{verdict}");
        // The walk of an unmapped address says where it stops.
        let err = translate(&mut memory(), 0x1000, 0x9000).unwrap_err();
        assert!(err.contains("level-1 entry 9"), "{err}");
    }
}
