//! What Xen told us at boot, copied out of `start_info` and checked.
//!
//! `start_info` is written by Xen (or by libxc for a domU) and we trust
//! the hypervisor, but we still check it: a wrong magic means we were
//! booted by something that is not a 64-bit PV loader, and a domU without
//! a console or xenstore page cannot work at all. Checking happens once,
//! here; the rest of the kernel uses the validated [`BootInfo`].

use core::fmt;
use pv_arch::abi::start_info::{
    StartInfo, MAX_GUEST_CMDLINE, SIF_INITDOMAIN, SIF_MOD_START_PFN, SIF_MULTIBOOT_MOD,
    SIF_PRIVILEGED, SIF_VIRT_P2M_4TOOLS,
};

/// Page size of the PV x86_64 ABI.
pub const PAGE_SIZE: u64 = 4096;

/// How Xen started us: which entry point, and so which half of the
/// kernel's mode-specific code runs (see [`crate::platform`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootMode {
    /// Classic paravirtualised: ring-3 kernel, page tables through
    /// hypercalls, `start_info` (`XEN_ELFNOTE_ENTRY`).
    Pv,
    /// PVH: an HVM container without emulated devices, ring-0 kernel
    /// with its own page tables, `hvm_start_info`
    /// (`XEN_ELFNOTE_PHYS32_ENTRY`).
    Pvh,
}

impl fmt::Display for BootMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BootMode::Pv => "PV",
            BootMode::Pvh => "PVH",
        })
    }
}

/// Which kind of domain we are, from `SIF_INITDOMAIN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The initial (hardware) domain, booted by Xen itself.
    Dom0,
    /// An unprivileged domain built by the toolstack.
    DomU,
}

impl Role {
    /// The role the boot flags (`start_info.flags` in PV,
    /// `hvm_start_info.flags` in PVH) give us.
    pub fn from_flags(flags: u32) -> Role {
        if flags & SIF_INITDOMAIN != 0 {
            Role::Dom0
        } else {
            Role::DomU
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Dom0 => "dom0",
            Role::DomU => "domU",
        })
    }
}

/// Where the console is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleLocation {
    /// dom0: write through `HYPERVISOR_console_io`.
    Hypervisor,
    /// domU: the PV console ring in machine frame `mfn`, notified on `evtchn`.
    Ring {
        /// Machine frame of the `xencons_interface` page.
        mfn: u64,
        /// Event channel of the console backend.
        evtchn: u32,
    },
}

/// The xenstore ring, for a domU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLocation {
    /// Machine frame of the `xenstore_domain_interface` page.
    pub mfn: u64,
    /// Event channel to xenstored.
    pub evtchn: u32,
}

/// Why `start_info` was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartInfoError {
    /// The magic string does not start with `xen-` and name x86_64.
    BadMagic,
    /// `nr_pages` is zero.
    NoPages,
    /// The command line is not UTF-8.
    CmdlineNotUtf8,
    /// A domU without a console ring (mfn or event channel zero).
    NoConsoleRing,
    /// A domU without a xenstore ring.
    NoStoreRing,
    /// `pt_base` is not page aligned, or `nr_pt_frames` is zero.
    BadPageTables,
    /// `mfn_list` is null or not 8-byte aligned.
    BadMfnList,
    /// `shared_info` is not a page-aligned machine address.
    BadSharedInfo,
}

impl fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StartInfoError::BadMagic => "magic is not \"xen-*-x86_64\"",
            StartInfoError::NoPages => "nr_pages is zero",
            StartInfoError::CmdlineNotUtf8 => "cmd_line is not UTF-8",
            StartInfoError::NoConsoleRing => "domU without a console ring (mfn/evtchn zero)",
            StartInfoError::NoStoreRing => "domU without a xenstore ring (mfn/evtchn zero)",
            StartInfoError::BadPageTables => "pt_base unaligned or nr_pt_frames zero",
            StartInfoError::BadMfnList => "mfn_list null or unaligned",
            StartInfoError::BadSharedInfo => "shared_info not a page-aligned machine address",
        })
    }
}

/// A fixed-capacity copy of a NUL-terminated string from `start_info`.
#[derive(Clone, Copy)]
pub struct FixedStr<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> FixedStr<N> {
    /// Copies the bytes before the first NUL. `None` if there is no NUL.
    pub(crate) fn from_nul_terminated(raw: &[u8; N]) -> Option<Self> {
        let len = raw.iter().position(|&b| b == 0)?;
        let mut bytes = [0; N];
        bytes[..len].copy_from_slice(&raw[..len]);
        Some(FixedStr { bytes, len })
    }

    /// The bytes, without the terminator.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The string, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(self.as_bytes()).ok()
    }
}

/// How much of the command line Xen handed us was kept.
///
/// The kernel keeps at most `MAX_GUEST_CMDLINE - 1` bytes, the size of
/// PV's `start_info.cmd_line` (Xen cuts a longer PV command line there
/// itself). PVH's `hvm_start_info` sets no limit, so a PVH command line
/// is cut the same way here: both modes boot with the same text, and the
/// boot summary says what happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineFit {
    /// All of it.
    Whole,
    /// Exactly `MAX_GUEST_CMDLINE - 1` bytes, so Xen may have cut a
    /// longer one before we saw it (it does for PV, and for a PVH dom0).
    AtLimit,
    /// Cut to fit: `given` is how long it was (`None`: longer than we
    /// looked, or without a terminator).
    Truncated {
        /// The length Xen handed us, in bytes.
        given: Option<u64>,
    },
}

/// Keeps what fits of a command line: `text` is the command line as
/// found (up to a NUL, if it had one: `complete`). Cuts at
/// `MAX_GUEST_CMDLINE - 1` bytes, backing off to a UTF-8 character
/// boundary so a cut never makes the text invalid; only text that is
/// not UTF-8 in what is kept is refused.
pub(crate) fn keep_cmdline(
    text: &[u8],
    complete: bool,
) -> Result<(FixedStr<MAX_GUEST_CMDLINE>, CmdlineFit), StartInfoError> {
    let text = match text.iter().position(|&b| b == 0) {
        Some(nul) => &text[..nul],
        None => text,
    };
    let mut kept = &text[..text.len().min(MAX_GUEST_CMDLINE - 1)];
    if kept.len() < text.len() {
        if let Err(e) = core::str::from_utf8(kept) {
            // `error_len() == None`: the bytes end inside a character.
            if e.error_len().is_none() {
                kept = &kept[..e.valid_up_to()];
            }
        }
    }
    if core::str::from_utf8(kept).is_err() {
        return Err(StartInfoError::CmdlineNotUtf8);
    }
    let fit = if kept.len() < text.len() || !complete {
        CmdlineFit::Truncated {
            given: complete.then_some(text.len() as u64),
        }
    } else if kept.len() == MAX_GUEST_CMDLINE - 1 {
        CmdlineFit::AtLimit
    } else {
        CmdlineFit::Whole
    };
    let mut bytes = [0; MAX_GUEST_CMDLINE];
    bytes[..kept.len()].copy_from_slice(kept);
    Ok((
        FixedStr {
            bytes,
            len: kept.len(),
        },
        fit,
    ))
}

/// `start_info`, validated.
#[derive(Clone, Copy)]
pub struct BootInfo {
    /// PV or PVH.
    pub mode: BootMode,
    /// dom0 or domU.
    pub role: Role,
    /// `SIF_PRIVILEGED`.
    pub privileged: bool,
    /// The raw `SIF_*` flags.
    pub flags: u32,
    /// The magic string, e.g. `xen-3.0-x86_64`.
    pub magic: FixedStr<32>,
    /// Pages allocated to us.
    pub nr_pages: u64,
    /// Machine address of the shared info page.
    pub shared_info_maddr: u64,
    /// The xenstore ring (domU only).
    pub store: Option<StoreLocation>,
    /// Where console output goes.
    pub console: ConsoleLocation,
    /// Virtual address of the top-level bootstrap page table.
    pub pt_base: u64,
    /// Bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the p2m list (`nr_pages` machine frame numbers).
    pub mfn_list: u64,
    /// Pre-loaded module (initrd), if any: start and length.
    pub module: Option<(u64, u64)>,
    /// First PFN and count of the initial p2m frames.
    pub p2m_frames: (u64, u64),
    /// The command line (at most `MAX_GUEST_CMDLINE - 1` bytes).
    pub cmdline: FixedStr<MAX_GUEST_CMDLINE>,
    /// Whether [`Self::cmdline`] is all of what Xen handed us.
    pub cmdline_fit: CmdlineFit,
    /// PVH only: RAM and boot-data frames from the memory map. (In PVH
    /// the ring locations above are guest frames, not machine frames.)
    pub pvh: Option<crate::pvh_start::PvhMemory>,
}

impl BootInfo {
    /// Copies and checks `start_info`.
    pub fn from_start_info(si: &StartInfo) -> Result<BootInfo, StartInfoError> {
        let magic = FixedStr::from_nul_terminated(&si.magic).ok_or(StartInfoError::BadMagic)?;
        let magic_ok = magic
            .as_str()
            .is_some_and(|m| m.starts_with("xen-") && m.ends_with("-x86_64"));
        if !magic_ok {
            return Err(StartInfoError::BadMagic);
        }
        if si.nr_pages == 0 {
            return Err(StartInfoError::NoPages);
        }
        if si.shared_info == 0 || !si.shared_info.is_multiple_of(PAGE_SIZE) {
            return Err(StartInfoError::BadSharedInfo);
        }
        if !si.pt_base.is_multiple_of(PAGE_SIZE) || si.nr_pt_frames == 0 {
            return Err(StartInfoError::BadPageTables);
        }
        if si.mfn_list == 0 || !si.mfn_list.is_multiple_of(8) {
            return Err(StartInfoError::BadMfnList);
        }
        // Xen NUL-terminates `cmd_line`; were it not to, cut it as PVH
        // does rather than refuse to boot.
        let has_nul = si.cmd_line.contains(&0);
        let (cmdline, cmdline_fit) = keep_cmdline(&si.cmd_line, has_nul)?;

        let role = Role::from_flags(si.flags);
        let (console, store) = match role {
            Role::Dom0 => (ConsoleLocation::Hypervisor, None),
            Role::DomU => {
                let ring = si.console.dom_u();
                if ring.mfn == 0 || ring.evtchn == 0 {
                    return Err(StartInfoError::NoConsoleRing);
                }
                if si.store_mfn == 0 || si.store_evtchn == 0 {
                    return Err(StartInfoError::NoStoreRing);
                }
                (
                    ConsoleLocation::Ring {
                        mfn: ring.mfn,
                        evtchn: ring.evtchn,
                    },
                    Some(StoreLocation {
                        mfn: si.store_mfn,
                        evtchn: si.store_evtchn,
                    }),
                )
            }
        };

        Ok(BootInfo {
            mode: BootMode::Pv,
            role,
            privileged: si.flags & SIF_PRIVILEGED != 0,
            flags: si.flags,
            magic,
            nr_pages: si.nr_pages,
            shared_info_maddr: si.shared_info,
            store,
            console,
            pt_base: si.pt_base,
            nr_pt_frames: si.nr_pt_frames,
            mfn_list: si.mfn_list,
            module: (si.mod_len != 0).then_some((si.mod_start, si.mod_len)),
            p2m_frames: (si.first_p2m_pfn, si.nr_p2m_frames),
            cmdline,
            cmdline_fit,
            pvh: None,
        })
    }

    /// The command line as text (validated as UTF-8 at parse time).
    pub fn cmdline(&self) -> &str {
        self.cmdline.as_str().unwrap_or("")
    }

    /// The magic string as text.
    pub fn magic(&self) -> &str {
        self.magic.as_str().unwrap_or("")
    }

    /// Names of the `SIF_*` flags set, for the boot summary.
    pub fn flag_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        [
            (SIF_PRIVILEGED, "privileged"),
            (SIF_INITDOMAIN, "initdomain"),
            (SIF_MULTIBOOT_MOD, "multiboot_mod"),
            (SIF_MOD_START_PFN, "mod_start_pfn"),
            (SIF_VIRT_P2M_4TOOLS, "virt_p2m_4tools"),
        ]
        .into_iter()
        .filter(|(bit, _)| self.flags & bit != 0)
        .map(|(_, name)| name)
    }
}

/// The boot summary, as printed to the console. The rig's tests read the
/// `Paravane … as <role>`, `nr_pages` and `cmdline` lines.
impl fmt::Display for BootInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "start_info: magic \"{}\"", self.magic())?;
        write!(f, "  flags {:#x} [", self.flags)?;
        for (i, name) in self.flag_names().enumerate() {
            write!(f, "{}{name}", if i == 0 { "" } else { " " })?;
        }
        writeln!(f, "]")?;
        writeln!(
            f,
            "  nr_pages {} ({} KiB)",
            self.nr_pages,
            // `nr_pages` comes from Xen unchecked: saturate rather than
            // overflow (a fuzzer found `u64::MAX` here).
            self.nr_pages.saturating_mul(PAGE_SIZE / 1024)
        )?;
        if let Some(memory) = &self.pvh {
            write!(f, "  memory map: RAM")?;
            for range in memory.ram() {
                write!(
                    f,
                    " {:#x}-{:#x}",
                    range.start.saturating_mul(PAGE_SIZE),
                    range.end.saturating_mul(PAGE_SIZE)
                )?;
            }
            writeln!(
                f,
                " ({} frames, {} ignored)",
                memory.ram_frames(),
                memory.ignored_frames
            )?;
        } else {
            writeln!(f, "  shared_info maddr {:#x}", self.shared_info_maddr)?;
        }
        match self.store {
            Some(store) => writeln!(f, "  store mfn {:#x} evtchn {}", store.mfn, store.evtchn)?,
            None => writeln!(f, "  store none")?,
        }
        match self.console {
            ConsoleLocation::Ring { mfn, evtchn } => {
                writeln!(f, "  console ring mfn {mfn:#x} evtchn {evtchn}")?
            }
            ConsoleLocation::Hypervisor => writeln!(f, "  console hypervisor (console_io)")?,
        }
        if self.mode == BootMode::Pv {
            writeln!(
                f,
                "  pt_base {:#x} nr_pt_frames {}",
                self.pt_base, self.nr_pt_frames
            )?;
            writeln!(
                f,
                "  mfn_list {:#x} first_p2m_pfn {:#x} nr_p2m_frames {}",
                self.mfn_list, self.p2m_frames.0, self.p2m_frames.1
            )?;
        }
        match self.module {
            Some((start, len)) => writeln!(f, "  module {start:#x} len {len}")?,
            None => writeln!(f, "  module none")?,
        }
        let kept = self.cmdline.as_bytes().len();
        match self.cmdline_fit {
            CmdlineFit::Whole => {}
            CmdlineFit::AtLimit => writeln!(
                f,
                "  cmdline at the {kept}-byte limit (longer ones are cut)"
            )?,
            CmdlineFit::Truncated { given: Some(given) } => {
                writeln!(f, "  cmdline truncated: {given} bytes given, {kept} kept")?
            }
            CmdlineFit::Truncated { given: None } => writeln!(
                f,
                "  cmdline truncated: more than {kept} bytes given, {kept} kept"
            )?,
        }
        write!(f, "  cmdline \"{}\"", self.cmdline())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pv_arch::abi::start_info::StartInfo;

    use pv_arch::abi::start_info::StartInfoConsole;

    /// A plausible domU `start_info`, as libxc builds one.
    fn domu() -> StartInfo {
        let mut si = StartInfo::zeroed();
        si.magic[..14].copy_from_slice(b"xen-3.0-x86_64");
        si.nr_pages = 8192;
        si.shared_info = 0x1234_5000;
        si.store_mfn = 0x42;
        si.store_evtchn = 1;
        si.console = StartInfoConsole::from_dom_u(0x43, 2);
        si.pt_base = 0x40_0000;
        si.nr_pt_frames = 4;
        si.mfn_list = 0x20_0000;
        si.cmd_line[..11].copy_from_slice(b"hello world");
        si
    }

    #[test]
    fn domu_start_info_parses() {
        let info = BootInfo::from_start_info(&domu()).unwrap();
        assert_eq!(info.role, Role::DomU);
        assert_eq!(info.nr_pages, 8192);
        assert_eq!(info.cmdline(), "hello world");
        assert_eq!(
            info.console,
            ConsoleLocation::Ring {
                mfn: 0x43,
                evtchn: 2
            }
        );
        assert_eq!(
            info.store,
            Some(StoreLocation {
                mfn: 0x42,
                evtchn: 1
            })
        );
        let summary = format!("{info}");
        assert!(summary.contains("nr_pages 8192 (32768 KiB)"), "{summary}");
        assert!(summary.contains("cmdline \"hello world\""), "{summary}");
    }

    #[test]
    fn a_long_cmdline_is_cut_not_refused() {
        // What Xen gives for a longer one: 1023 bytes and the NUL.
        let mut si = domu();
        si.cmd_line = [b'a'; MAX_GUEST_CMDLINE];
        si.cmd_line[MAX_GUEST_CMDLINE - 1] = 0;
        let info = BootInfo::from_start_info(&si).unwrap();
        assert_eq!(info.cmdline().len(), MAX_GUEST_CMDLINE - 1);
        assert_eq!(info.cmdline_fit, CmdlineFit::AtLimit);
        assert!(format!("{info}").contains("cmdline at the 1023-byte limit"));

        // No terminator at all (not what Xen does): cut, not refused.
        si.cmd_line = [b'b'; MAX_GUEST_CMDLINE];
        let info = BootInfo::from_start_info(&si).unwrap();
        assert_eq!(info.cmdline(), "b".repeat(MAX_GUEST_CMDLINE - 1));
        assert_eq!(info.cmdline_fit, CmdlineFit::Truncated { given: None });
        let summary = format!("{info}");
        assert!(
            summary.contains("cmdline truncated: more than 1023 bytes given, 1023 kept"),
            "{summary}"
        );

        // A short one is whole, and the summary says nothing more.
        let info = BootInfo::from_start_info(&domu()).unwrap();
        assert_eq!(info.cmdline_fit, CmdlineFit::Whole);
        assert!(!format!("{info}").contains("truncated"));
    }

    #[test]
    fn keeping_a_cmdline_cuts_at_a_character_boundary() {
        // 1022 ASCII bytes then a 2-byte character: the cut at 1023 would
        // split it, so 1022 bytes are kept.
        let mut text = vec![b'x'; 1022];
        text.extend_from_slice("é and more".as_bytes());
        let (kept, fit) = keep_cmdline(&text, true).unwrap();
        assert_eq!(kept.as_bytes(), &text[..1022]);
        assert_eq!(
            fit,
            CmdlineFit::Truncated {
                given: Some(text.len() as u64)
            }
        );
        // Invalid UTF-8 inside what is kept is still refused.
        assert_eq!(
            keep_cmdline(b"ok \xff bad", true).err(),
            Some(StartInfoError::CmdlineNotUtf8)
        );
        // Text after a NUL is not part of the command line.
        let (kept, fit) = keep_cmdline(b"one\0two", true).unwrap();
        assert_eq!((kept.as_str(), fit), (Some("one"), CmdlineFit::Whole));
    }

    #[test]
    fn a_huge_nr_pages_is_summarised_without_overflow() {
        // Found by fuzzing (issue 13): `nr_pages * PAGE_SIZE` overflowed.
        let mut si = domu();
        si.nr_pages = u64::MAX;
        let info = BootInfo::from_start_info(&si).unwrap();
        let summary = format!("{info}");
        assert!(
            summary.contains(&format!("nr_pages {} ({} KiB)", u64::MAX, u64::MAX)),
            "{summary}"
        );
    }

    /// A small deterministic generator (xorshift64*) for the test below.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn random_start_info_is_parsed_and_summarised_without_panicking() {
        // Extreme and random values in every numeric field, random bytes
        // in the command line: parsing and the summary must not panic
        // (overflow checks are on in tests).
        let extremes = [0, 1, 4095, 4096, u64::MAX / 4096, u64::MAX - 1, u64::MAX];
        let mut state = 0x9e37_79b9_7f4a_7c15;
        let mut accepted = 0;
        for round in 0..20_000u64 {
            let mut pick = || {
                let r = next(&mut state);
                if r.is_multiple_of(3) {
                    extremes[(r >> 8) as usize % extremes.len()]
                } else {
                    next(&mut state)
                }
            };
            let mut si = domu();
            si.nr_pages = pick();
            si.shared_info = pick() & !0xfff;
            si.flags = pick() as u32;
            si.pt_base = pick() & !0xfff;
            si.nr_pt_frames = pick();
            si.mfn_list = pick() & !7;
            si.mod_start = pick();
            si.mod_len = pick();
            si.first_p2m_pfn = pick();
            si.nr_p2m_frames = pick();
            if round % 2 == 0 {
                for byte in si.cmd_line.iter_mut() {
                    *byte = (pick() % 128) as u8;
                }
            }
            if let Ok(info) = BootInfo::from_start_info(&si) {
                let summary = format!("{info}");
                assert!(summary.contains("nr_pages"));
                assert!(info.cmdline().len() < MAX_GUEST_CMDLINE);
                accepted += 1;
            }
        }
        // Most draws must get through to the summary, or it is not tested.
        assert!(accepted > 2_000, "only {accepted} accepted");
    }

    #[test]
    fn dom0_uses_the_hypervisor_console() {
        let mut si = domu();
        si.flags = SIF_INITDOMAIN | SIF_PRIVILEGED;
        si.console = StartInfoConsole::from_dom_u(0, 0);
        let info = BootInfo::from_start_info(&si).unwrap();
        assert_eq!(info.role, Role::Dom0);
        assert!(info.privileged);
        assert_eq!(info.console, ConsoleLocation::Hypervisor);
        assert_eq!(info.store, None);
        assert_eq!(
            info.flag_names().collect::<Vec<_>>(),
            ["privileged", "initdomain"]
        );
    }

    #[test]
    fn bad_start_info_is_refused() {
        let mut si = domu();
        si.magic = [0; 32];
        si.magic[..13].copy_from_slice(b"xen-3.0-x86_3");
        assert_eq!(
            BootInfo::from_start_info(&si).err(),
            Some(StartInfoError::BadMagic)
        );

        let mut si = domu();
        si.magic = [b'x'; 32];
        assert_eq!(
            BootInfo::from_start_info(&si).err(),
            Some(StartInfoError::BadMagic)
        );

        let mut si = domu();
        si.nr_pages = 0;
        assert_eq!(
            BootInfo::from_start_info(&si).err(),
            Some(StartInfoError::NoPages)
        );

        let mut si = domu();
        si.cmd_line[0] = 0xff;
        assert_eq!(
            BootInfo::from_start_info(&si).err(),
            Some(StartInfoError::CmdlineNotUtf8)
        );

        let mut si = domu();
        si.console = StartInfoConsole::from_dom_u(0x43, 0);
        assert_eq!(
            BootInfo::from_start_info(&si).err(),
            Some(StartInfoError::NoConsoleRing)
        );

        let mut si = domu();
        si.store_mfn = 0;
        assert_eq!(
            BootInfo::from_start_info(&si).err(),
            Some(StartInfoError::NoStoreRing)
        );

        let mut si = domu();
        si.pt_base = 0x40_0010;
        assert_eq!(
            BootInfo::from_start_info(&si).err(),
            Some(StartInfoError::BadPageTables)
        );

        let mut si = domu();
        si.mfn_list = 0;
        assert_eq!(
            BootInfo::from_start_info(&si).err(),
            Some(StartInfoError::BadMfnList)
        );

        let mut si = domu();
        si.shared_info = 0x1234_5678;
        assert_eq!(
            BootInfo::from_start_info(&si).err(),
            Some(StartInfoError::BadSharedInfo)
        );
    }
}
