//! What a PVH guest is handed at boot (`hvm_start_info`, its memory map,
//! its command line, the first module, the console and xenstore HVM
//! parameters) combined into the kernel's `BootInfo` and printed as the
//! boot summary.
//!
//! What must hold: nothing panics; every RAM range is non-empty, whole
//! frames, below the mapped limit, and counted in `nr_pages`; the
//! command line kept is within PV's limit.
#![no_main]

use arbitrary::Arbitrary;
use kernel::pvh_start::{boot_info, PvhParams, CMDLINE_SCAN_LIMIT};
use libfuzzer_sys::fuzz_target;
use pv_arch::abi::hvm::{HvmMemmapTableEntry, HvmStartInfo, XEN_HVM_START_MAGIC_VALUE};
use pv_arch::abi::start_info::MAX_GUEST_CMDLINE;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Whether `magic` is right (most of the interest lies past it).
    good_magic: bool,
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap: Vec<(u64, u64, u32)>,
    cmdline: Vec<u8>,
    /// As if no NUL was found within the scan limit.
    cmdline_unterminated: bool,
    module: Option<(u64, u64)>,
    console: (u64, u64),
    store: (u64, u64),
    ram_limit: u64,
}

fuzz_target!(|input: Input| {
    let memmap: Vec<HvmMemmapTableEntry> = input
        .memmap
        .iter()
        .take(128)
        .map(|&(addr, size, type_)| HvmMemmapTableEntry {
            addr,
            size,
            type_: type_ % 8,
            reserved: 0,
        })
        .collect();
    let hsi = HvmStartInfo {
        magic: if input.good_magic {
            XEN_HVM_START_MAGIC_VALUE
        } else {
            input.magic
        },
        version: input.version,
        flags: input.flags,
        nr_modules: input.nr_modules,
        modlist_paddr: input.modlist_paddr,
        cmdline_paddr: input.cmdline_paddr,
        rsdp_paddr: input.rsdp_paddr,
        memmap_paddr: input.memmap_paddr,
        memmap_entries: memmap.len() as u32,
        reserved: 0,
    };
    // The boot code reads the command line up to its NUL, at most
    // `CMDLINE_SCAN_LIMIT` bytes.
    let mut cmdline: Vec<u8> = input
        .cmdline
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .collect();
    if input.cmdline_unterminated {
        cmdline.resize(CMDLINE_SCAN_LIMIT, b'x');
    }
    let params = PvhParams {
        console: input.console,
        store: input.store,
    };
    let Ok(info) = boot_info(
        &hsi,
        &memmap,
        &cmdline,
        input.module,
        params,
        input.ram_limit,
    ) else {
        return;
    };
    assert!(info.cmdline().len() < MAX_GUEST_CMDLINE);
    let memory = info.pvh.expect("a PVH boot has a memory map");
    let mut frames = 0u64;
    for range in memory.ram() {
        assert!(range.start < range.end, "an empty RAM range");
        assert!(
            range.end <= input.ram_limit / 4096,
            "RAM beyond the mapped limit"
        );
        assert!(memory.is_ram(range.start) && !memory.is_ram(range.end.max(memory.end_pfn())));
        frames = frames.saturating_add(range.end - range.start);
    }
    assert_eq!(frames, info.nr_pages);
    let _ = memory.boot_data().count();
    let summary = format!("{info}");
    assert!(summary.contains("memory map"));
});
