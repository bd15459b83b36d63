//! What a PVH guest is told at boot: `hvm_start_info`, its memory map,
//! its command line and the HVM parameters, turned into a [`BootInfo`].
//!
//! PV gets one `start_info` page naming everything; PVH gets a smaller
//! structure with physical addresses of the command line, the module
//! list and an e820-like memory map, and must ask Xen for its console
//! and xenstore rings (`HVM_PARAM_CONSOLE_*`, `HVM_PARAM_STORE_*`). The
//! boot code (`boot::pvh_main`) reads those pieces out of guest memory;
//! this module only checks and combines them, so it builds and is
//! tested on the host.
//!
//! Memory: frames are guest frames, which is what Xen wants in grants,
//! rings and `memory_op` (no p2m). RAM is what the map calls
//! `XEN_HVM_MEMMAP_TYPE_RAM`, below the identity-mapped limit; the pages
//! `hvm_start_info`, the map, the command line and the modules occupy
//! are reserved until the kernel has copied them.

use crate::boot_info::{
    keep_cmdline, BootInfo, BootMode, ConsoleLocation, FixedStr, Role, StartInfoError,
    StoreLocation, PAGE_SIZE,
};
use pv_arch::abi::hvm::{
    HvmMemmapTableEntry, HvmStartInfo, XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_START_MAGIC_VALUE,
};
use pv_arch::abi::start_info::SIF_PRIVILEGED;

/// Most RAM ranges kept from the memory map.
pub const MAX_RAM_RANGES: usize = 16;
/// Most boot-data ranges (start info, map, command line, modules).
pub const MAX_BOOT_DATA: usize = 8;
/// How far the boot code looks for the command line's NUL. `hvm_start_info`
/// sets no limit; the kernel keeps `MAX_GUEST_CMDLINE - 1` bytes as in PV
/// and looks this far only to say how long the command line was (and to
/// reserve its frames until it is copied).
pub const CMDLINE_SCAN_LIMIT: usize = 64 * 1024;

/// The guest-frame layout of a PVH guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvhMemory {
    ram: [(u64, u64); MAX_RAM_RANGES],
    ram_len: usize,
    boot_data: [(u64, u64); MAX_BOOT_DATA],
    boot_data_len: usize,
    /// RAM the map named beyond what we can use (above the mapped limit
    /// or beyond [`MAX_RAM_RANGES`]), in frames: reported, not used.
    pub ignored_frames: u64,
}

impl PvhMemory {
    /// RAM ranges, `start..end` in frames.
    pub fn ram(&self) -> impl Iterator<Item = core::ops::Range<u64>> + '_ {
        self.ram[..self.ram_len].iter().map(|&(s, e)| s..e)
    }

    /// Frames holding what Xen handed us at boot.
    pub fn boot_data(&self) -> impl Iterator<Item = core::ops::Range<u64>> + '_ {
        self.boot_data[..self.boot_data_len]
            .iter()
            .map(|&(s, e)| s..e)
    }

    /// Frames of RAM in total.
    pub fn ram_frames(&self) -> u64 {
        self.ram()
            .map(|r| r.end - r.start)
            .fold(0, u64::saturating_add)
    }

    /// One past the highest RAM frame.
    pub fn end_pfn(&self) -> u64 {
        self.ram().map(|r| r.end).max().unwrap_or(0)
    }

    /// Whether `pfn` is RAM.
    pub fn is_ram(&self, pfn: u64) -> bool {
        self.ram().any(|r| r.contains(&pfn))
    }

    fn push_boot_data(&mut self, paddr: u64, len: u64) {
        if len == 0 || self.boot_data_len == MAX_BOOT_DATA {
            return;
        }
        let start = paddr / PAGE_SIZE;
        let end = paddr.saturating_add(len).div_ceil(PAGE_SIZE);
        self.boot_data[self.boot_data_len] = (start, end);
        self.boot_data_len += 1;
    }
}

/// The HVM parameters a PVH domU needs: `(pfn, evtchn)` of each ring;
/// zero where Xen has none (dom0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PvhParams {
    /// `HVM_PARAM_CONSOLE_PFN`, `HVM_PARAM_CONSOLE_EVTCHN`.
    pub console: (u64, u64),
    /// `HVM_PARAM_STORE_PFN`, `HVM_PARAM_STORE_EVTCHN`.
    pub store: (u64, u64),
}

/// Why the PVH boot data was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvhStartError {
    /// `magic` is not `XEN_HVM_START_MAGIC_VALUE`.
    BadMagic(u32),
    /// Neither `hvm_start_info` nor `XENMEM_memory_map` gave a memory map.
    NoMemoryMap,
    /// The memory map has no usable RAM.
    NoRam,
    /// The rest, as for PV.
    StartInfo(StartInfoError),
}

impl core::fmt::Display for PvhStartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PvhStartError::BadMagic(m) => write!(f, "hvm_start_info magic {m:#x}, not 0x336ec578"),
            PvhStartError::NoMemoryMap => {
                f.write_str("no memory map (hvm_start_info and XENMEM_memory_map)")
            }
            PvhStartError::NoRam => f.write_str("memory map without usable RAM"),
            PvhStartError::StartInfo(e) => e.fmt(f),
        }
    }
}

/// Combines what a PVH guest got at boot into a [`BootInfo`].
///
/// `memmap` and `cmdline` are the map (from `hsi`, or for a dom0, which
/// gets none there, from `XENMEM_memory_map`) and the command line
/// (without the NUL, any length; [`CMDLINE_SCAN_LIMIT`] bytes means no
/// NUL was found that far) as read from the addresses in `hsi`; `module`
/// the first module's `(paddr, size)` if any; `ram_limit` the first
/// address not mapped. A command line longer than PV's is cut (and the
/// summary says so), never refused.
pub fn boot_info(
    hsi: &HvmStartInfo,
    memmap: &[HvmMemmapTableEntry],
    cmdline: &[u8],
    module: Option<(u64, u64)>,
    params: PvhParams,
    ram_limit: u64,
) -> Result<BootInfo, PvhStartError> {
    if hsi.magic != XEN_HVM_START_MAGIC_VALUE {
        return Err(PvhStartError::BadMagic(hsi.magic));
    }
    if memmap.is_empty() {
        return Err(PvhStartError::NoMemoryMap);
    }
    let mut memory = PvhMemory {
        ram: [(0, 0); MAX_RAM_RANGES],
        ram_len: 0,
        boot_data: [(0, 0); MAX_BOOT_DATA],
        boot_data_len: 0,
        ignored_frames: 0,
    };
    for entry in memmap.iter().filter(|e| e.type_ == XEN_HVM_MEMMAP_TYPE_RAM) {
        // Whole frames only: round the start up and the end down.
        let start = entry.addr.div_ceil(PAGE_SIZE);
        let end = entry.addr.saturating_add(entry.size) / PAGE_SIZE;
        let usable_end = end.min(ram_limit / PAGE_SIZE);
        if usable_end > start && memory.ram_len < MAX_RAM_RANGES {
            memory.ram[memory.ram_len] = (start, usable_end);
            memory.ram_len += 1;
            memory.ignored_frames = memory.ignored_frames.saturating_add(end - usable_end);
        } else if end > start {
            memory.ignored_frames = memory.ignored_frames.saturating_add(end - start);
        }
    }
    if memory.ram_len == 0 {
        return Err(PvhStartError::NoRam);
    }
    memory.push_boot_data(hsi.memmap_paddr, (memmap.len() * 24) as u64);
    memory.push_boot_data(hsi.cmdline_paddr, cmdline.len() as u64 + 1);
    memory.push_boot_data(hsi.modlist_paddr, u64::from(hsi.nr_modules) * 32);
    if let Some((paddr, size)) = module {
        memory.push_boot_data(paddr, size);
    }

    // Cut like PV (see `CmdlineFit`): a long command line never fails the
    // boot. A slice of `CMDLINE_SCAN_LIMIT` bytes had no NUL within it.
    let complete = cmdline.len() < CMDLINE_SCAN_LIMIT;
    let (cmdline, cmdline_fit) =
        keep_cmdline(cmdline, complete).map_err(PvhStartError::StartInfo)?;
    let mut magic = [0u8; 32];
    magic[..17].copy_from_slice(b"hvm_start_info v1");
    let magic = FixedStr::from_nul_terminated(&magic).unwrap_or_else(|| unreachable!());

    let role = Role::from_flags(hsi.flags);
    let (console, store) = match role {
        Role::Dom0 => (ConsoleLocation::Hypervisor, None),
        Role::DomU => {
            let evtchn = |v: u64| u32::try_from(v).ok().filter(|&e| e != 0);
            let (pfn, port) = params.console;
            let console = match evtchn(port) {
                Some(evtchn) if pfn != 0 => ConsoleLocation::Ring { mfn: pfn, evtchn },
                _ => return Err(PvhStartError::StartInfo(StartInfoError::NoConsoleRing)),
            };
            let (pfn, port) = params.store;
            let store = match evtchn(port) {
                Some(evtchn) if pfn != 0 => StoreLocation { mfn: pfn, evtchn },
                _ => return Err(PvhStartError::StartInfo(StartInfoError::NoStoreRing)),
            };
            (console, Some(store))
        }
    };

    Ok(BootInfo {
        mode: BootMode::Pvh,
        role,
        privileged: hsi.flags & SIF_PRIVILEGED != 0,
        flags: hsi.flags,
        magic,
        nr_pages: memory.ram_frames(),
        shared_info_maddr: 0,
        store,
        console,
        pt_base: 0,
        nr_pt_frames: 0,
        mfn_list: 0,
        module,
        p2m_frames: (0, 0),
        cmdline,
        cmdline_fit,
        pvh: Some(memory),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pv_arch::abi::hvm::XEN_HVM_MEMMAP_TYPE_RESERVED;
    use pv_arch::abi::start_info::SIF_INITDOMAIN;

    fn entry(addr: u64, size: u64, type_: u32) -> HvmMemmapTableEntry {
        HvmMemmapTableEntry {
            addr,
            size,
            type_,
            reserved: 0,
        }
    }

    /// What libxl gives a 32 MiB PVH domU: RAM from 0, then the special
    /// pages reserved just below 4 GiB.
    fn domu() -> (HvmStartInfo, [HvmMemmapTableEntry; 2]) {
        let hsi = HvmStartInfo {
            magic: XEN_HVM_START_MAGIC_VALUE,
            version: 1,
            flags: 0,
            nr_modules: 0,
            modlist_paddr: 0,
            cmdline_paddr: 0x2_1000,
            rsdp_paddr: 0,
            memmap_paddr: 0x2_2000,
            memmap_entries: 2,
            reserved: 0,
        };
        let map = [
            entry(0, 32 << 20, XEN_HVM_MEMMAP_TYPE_RAM),
            entry(0xfeff_8000, 0x8000, XEN_HVM_MEMMAP_TYPE_RESERVED),
        ];
        (hsi, map)
    }

    /// The error of a boot that must fail (`BootInfo` is not `Debug`).
    fn refused(result: Result<BootInfo, PvhStartError>) -> PvhStartError {
        match result {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    }

    fn params() -> PvhParams {
        PvhParams {
            console: (0xfeffc, 2),
            store: (0xfeffb, 1),
        }
    }

    #[test]
    fn domu_parses() {
        let (hsi, map) = domu();
        let Ok(boot) = boot_info(&hsi, &map, b"hello pvh", None, params(), 4 << 30) else {
            panic!("refused")
        };
        assert_eq!(boot.mode, BootMode::Pvh);
        assert_eq!(boot.role, Role::DomU);
        assert_eq!(boot.nr_pages, 8192);
        assert_eq!(boot.cmdline(), "hello pvh");
        assert_eq!(
            boot.console,
            ConsoleLocation::Ring {
                mfn: 0xfeffc,
                evtchn: 2
            }
        );
        let memory = boot.pvh.unwrap();
        assert_eq!(memory.ram_frames(), 8192);
        assert!(memory.is_ram(0x1000) && !memory.is_ram(0xfeffc));
        let data: alloc::vec::Vec<_> = memory.boot_data().collect();
        assert_eq!(data, [0x22..0x23, 0x21..0x22]);
    }

    #[test]
    fn bad_magic_and_missing_map_are_refused() {
        let (mut hsi, map) = domu();
        hsi.magic = 0x1234;
        assert_eq!(
            refused(boot_info(&hsi, &map, b"", None, params(), 4 << 30)),
            PvhStartError::BadMagic(0x1234)
        );
        let (hsi, _) = domu();
        assert_eq!(
            refused(boot_info(&hsi, &[], b"", None, params(), 4 << 30)),
            PvhStartError::NoMemoryMap
        );
    }

    #[test]
    fn domu_without_rings_is_refused() {
        let (hsi, map) = domu();
        let no_store = PvhParams {
            store: (0xfeffb, 0),
            ..params()
        };
        assert_eq!(
            refused(boot_info(&hsi, &map, b"", None, no_store, 4 << 30)),
            PvhStartError::StartInfo(StartInfoError::NoStoreRing)
        );
        let no_console = PvhParams {
            console: (0, 2),
            ..params()
        };
        assert_eq!(
            refused(boot_info(&hsi, &map, b"", None, no_console, 4 << 30)),
            PvhStartError::StartInfo(StartInfoError::NoConsoleRing)
        );
    }

    #[test]
    fn dom0_needs_no_rings_and_ram_above_the_limit_is_ignored() {
        let (mut hsi, _) = domu();
        hsi.flags = SIF_INITDOMAIN | SIF_PRIVILEGED;
        let map = [
            entry(0, 0x9f000, XEN_HVM_MEMMAP_TYPE_RAM),
            entry(0x10_0000, 63 << 20, XEN_HVM_MEMMAP_TYPE_RAM),
            entry(0x1_0000_0000, 1 << 20, XEN_HVM_MEMMAP_TYPE_RAM),
        ];
        let Ok(boot) = boot_info(&hsi, &map, b"", None, PvhParams::default(), 4 << 30) else {
            panic!("refused")
        };
        assert_eq!(boot.role, Role::Dom0);
        assert_eq!(boot.console, ConsoleLocation::Hypervisor);
        let memory = boot.pvh.unwrap();
        assert_eq!(memory.ram_frames(), 0x9f + (63 << 8));
        assert_eq!(memory.ignored_frames, 256);
        assert_eq!(boot.nr_pages, 0x9f + (63 << 8), "RAM frames, not the end");
        assert_eq!(memory.end_pfn(), 0x100 + (63 << 8));
    }

    #[test]
    fn random_hvm_start_info_is_parsed_and_summarised_without_panicking() {
        let extremes = [
            0,
            1,
            4095,
            4096,
            1 << 32,
            u64::MAX / 4096,
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            if r.is_multiple_of(3) {
                extremes[(r >> 8) as usize % extremes.len()]
            } else {
                r.rotate_left(17)
            }
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let (mut hsi, _) = domu();
            hsi.flags = next() as u32;
            hsi.nr_modules = next() as u32;
            hsi.modlist_paddr = next();
            hsi.cmdline_paddr = next();
            hsi.memmap_paddr = next();
            let entries = (next() % 20) as usize;
            let map: alloc::vec::Vec<_> = (0..entries)
                .map(|_| entry(next(), next(), (next() % 3) as u32))
                .collect();
            let module = (next() % 2 == 0).then(|| (next(), next()));
            let cmdline: alloc::vec::Vec<u8> =
                (0..next() % 1500).map(|_| (next() % 128) as u8).collect();
            let params = PvhParams {
                console: (next(), next()),
                store: (next(), next()),
            };
            let limit = [4 << 30, u64::MAX][(next() % 2) as usize];
            if let Ok(boot) = boot_info(&hsi, &map, &cmdline, module, params, limit) {
                let summary = alloc::format!("{boot}");
                assert!(summary.contains("memory map: RAM"));
                accepted += 1;
            }
        }
        // Most draws must get through to the summary, or it is not tested.
        assert!(accepted > 2_000, "only {accepted} accepted");
    }

    #[test]
    fn a_long_cmdline_is_cut_like_pv_and_bad_utf8_refused() {
        use crate::boot_info::CmdlineFit;
        let (hsi, map) = domu();
        // 5000 bytes: booted with the first 1023, as PV would.
        let long = [b'x'; 5000];
        let Ok(boot) = boot_info(&hsi, &map, &long, None, params(), 4 << 30) else {
            panic!("a long command line failed the boot")
        };
        assert_eq!(boot.cmdline(), "x".repeat(1023));
        assert_eq!(
            boot.cmdline_fit,
            CmdlineFit::Truncated { given: Some(5000) }
        );
        let summary = alloc::format!("{boot}");
        assert!(
            summary.contains("cmdline truncated: 5000 bytes given, 1023 kept"),
            "{summary}"
        );
        // Its frames stay reserved until copied: all 5001 bytes of them.
        let memory = boot.pvh.unwrap();
        assert!(memory.boot_data().any(|r| r == (0x21..0x23)));

        // Exactly 1024 bytes (the length that used to crash the boot).
        let Ok(boot) = boot_info(&hsi, &map, &[b'y'; 1024], None, params(), 4 << 30) else {
            panic!("a 1024-byte command line failed the boot")
        };
        assert_eq!(boot.cmdline().len(), 1023);

        // No NUL within the scan limit: "more than".
        let endless = alloc::vec![b'z'; CMDLINE_SCAN_LIMIT];
        let Ok(boot) = boot_info(&hsi, &map, &endless, None, params(), 4 << 30) else {
            panic!("refused")
        };
        assert_eq!(boot.cmdline_fit, CmdlineFit::Truncated { given: None });

        // 1023 bytes: whole, but Xen cuts a PVH dom0's command line
        // there itself, so the summary says it is at the limit.
        let Ok(boot) = boot_info(&hsi, &map, &[b'w'; 1023], None, params(), 4 << 30) else {
            panic!("refused")
        };
        assert_eq!(boot.cmdline_fit, CmdlineFit::AtLimit);
        let Ok(boot) = boot_info(&hsi, &map, &[b'w'; 1022], None, params(), 4 << 30) else {
            panic!("refused")
        };
        assert_eq!(boot.cmdline_fit, CmdlineFit::Whole);

        assert_eq!(
            refused(boot_info(
                &hsi,
                &map,
                &[0xff, 0xfe],
                None,
                params(),
                4 << 30
            )),
            PvhStartError::StartInfo(StartInfoError::CmdlineNotUtf8)
        );
    }
}
