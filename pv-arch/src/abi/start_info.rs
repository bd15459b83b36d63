//! `start_info`: what Xen hands a PV guest at boot (`xen/xen.h`).

/// `MAX_GUEST_CMDLINE`: size of [`StartInfo::cmd_line`].
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// `SIF_PRIVILEGED`: the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `SIF_INITDOMAIN`: the domain is the initial control domain (dom0).
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `SIF_MULTIBOOT_MOD`: `mod_start` is a multiboot module.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `SIF_MOD_START_PFN`: `mod_start` is a PFN, not a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `SIF_VIRT_P2M_4TOOLS`: the tools understand a virtually mapped p2m.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;

/// The `console.domU` arm of `start_info`'s console union.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfoConsoleDomU {
    /// MACHINE page number of the console ring page.
    pub mfn: u64,
    /// Event channel for the console ring.
    pub evtchn: u32,
}

/// The `console.dom0` arm of `start_info`'s console union.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfoConsoleDom0 {
    /// Offset of the `dom0_vga_console_info` struct from `start_info`.
    pub info_off: u32,
    /// Size of that struct.
    pub info_size: u32,
}

/// `start_info.console`: which arm is valid depends on `SIF_INITDOMAIN`.
///
/// Kept as raw words so reading it needs no `unsafe` union access; the
/// accessors give the two views. The C union holds a `xen_pfn_t`, so it is
/// 8-byte aligned (and sits at offset 72 of [`StartInfo`], not 68): the
/// raw words are `u64` to get that alignment. Word order is the x86_64
/// (little-endian) one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartInfoConsole {
    raw: [u64; 2],
}

impl StartInfoConsole {
    /// Wraps the union's two raw 64-bit words.
    pub const fn from_raw(raw: [u64; 2]) -> Self {
        StartInfoConsole { raw }
    }

    /// The union's two raw 64-bit words.
    pub const fn raw(&self) -> [u64; 2] {
        self.raw
    }

    /// The domU view: console ring MFN and event channel.
    pub const fn dom_u(&self) -> StartInfoConsoleDomU {
        StartInfoConsoleDomU {
            mfn: self.raw[0],
            evtchn: self.raw[1] as u32,
        }
    }

    /// The dom0 view: where the VGA console info lives.
    pub const fn dom0(&self) -> StartInfoConsoleDom0 {
        StartInfoConsoleDom0 {
            info_off: self.raw[0] as u32,
            info_size: (self.raw[0] >> 32) as u32,
        }
    }

    /// The union holding the domU arm (what Xen writes for a domU):
    /// console ring MFN and event channel.
    pub const fn from_dom_u(mfn: u64, evtchn: u32) -> Self {
        StartInfoConsole {
            raw: [mfn, evtchn as u64],
        }
    }

    /// The union holding the dom0 arm (what Xen writes for dom0): offset
    /// and size of the VGA console info within the start-info page.
    pub const fn from_dom0(info_off: u32, info_size: u32) -> Self {
        StartInfoConsole {
            raw: [info_off as u64 | (info_size as u64) << 32, 0],
        }
    }
}

/// `struct start_info` (x86_64 layout).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StartInfo {
    /// `"xen-<version>-<platform>"`, NUL padded.
    pub magic: [u8; 32],
    /// Total pages allocated to this domain.
    pub nr_pages: u64,
    /// MACHINE address of the shared info page.
    pub shared_info: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    /// MACHINE page number of the xenstore ring page.
    pub store_mfn: u64,
    /// Event channel for xenstore.
    pub store_evtchn: u32,
    /// Console ring (domU) or VGA info (dom0).
    pub console: StartInfoConsole,
    /// VIRTUAL address of the top-level bootstrap page table.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// VIRTUAL address of the page-frame (p2m) list.
    pub mfn_list: u64,
    /// VIRTUAL address (or PFN, see `SIF_MOD_START_PFN`) of a module.
    pub mod_start: u64,
    /// Size in bytes of that module.
    pub mod_len: u64,
    /// The guest's command line, NUL terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of the initial p2m table.
    pub first_p2m_pfn: u64,
    /// Number of PFNs in the initial p2m table.
    pub nr_p2m_frames: u64,
}

impl StartInfo {
    /// An all-zero `start_info` (for tests and for building one by hand).
    pub const fn zeroed() -> Self {
        StartInfo {
            magic: [0; 32],
            nr_pages: 0,
            shared_info: 0,
            flags: 0,
            store_mfn: 0,
            store_evtchn: 0,
            console: StartInfoConsole::from_raw([0; 2]),
            pt_base: 0,
            nr_pt_frames: 0,
            mfn_list: 0,
            mod_start: 0,
            mod_len: 0,
            cmd_line: [0; MAX_GUEST_CMDLINE],
            first_p2m_pfn: 0,
            nr_p2m_frames: 0,
        }
    }
}
