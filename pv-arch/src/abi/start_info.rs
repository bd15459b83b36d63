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

/// `SIF_PM_MASK`: flag bits reserved for power-management options.
pub const SIF_PM_MASK: u32 = 0xff << 8;

/// `struct xen_multiboot_mod_list`: one module descriptor at the start
/// of a multiboot-style module package (`SIF_MULTIBOOT_MOD`). Addresses
/// are relative to the package; a zero `mod_start` ends the list.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMultibootModList {
    /// Offset of the module's first byte.
    pub mod_start: u32,
    /// Offset of the module's last byte (inclusive).
    pub mod_end: u32,
    /// Offset of the module's NUL-terminated command line.
    pub cmdline: u32,
    /// Must be zero.
    pub pad: u32,
}

/// `XEN_VGATYPE_TEXT_MODE_3`: [`Dom0VgaConsoleInfo::video_type`] for an
/// 80x25 text console.
pub const XEN_VGATYPE_TEXT_MODE_3: u8 = 0x03;
/// `XEN_VGATYPE_VESA_LFB`: a VESA linear framebuffer.
pub const XEN_VGATYPE_VESA_LFB: u8 = 0x23;
/// `XEN_VGATYPE_EFI_LFB`: an EFI linear framebuffer.
pub const XEN_VGATYPE_EFI_LFB: u8 = 0x70;

/// The `u.text_mode_3` arm of `dom0_vga_console_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0VgaTextMode3 {
    /// Font height in pixels.
    pub font_height: u16,
    /// Cursor column.
    pub cursor_x: u16,
    /// Cursor row.
    pub cursor_y: u16,
    /// Rows of characters.
    pub rows: u16,
    /// Columns of characters.
    pub columns: u16,
}

/// The `u.vesa_lfb` arm of `dom0_vga_console_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0VgaVesaLfb {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes per scan line.
    pub bytes_per_line: u16,
    /// Bits per pixel.
    pub bits_per_pixel: u16,
    /// Framebuffer physical address, low 32 bits.
    pub lfb_base: u32,
    /// Framebuffer size in 64 KiB units.
    pub lfb_size: u32,
    /// Red field position.
    pub red_pos: u8,
    /// Red field width.
    pub red_size: u8,
    /// Green field position.
    pub green_pos: u8,
    /// Green field width.
    pub green_size: u8,
    /// Blue field position.
    pub blue_pos: u8,
    /// Blue field width.
    pub blue_size: u8,
    /// Reserved field position.
    pub rsvd_pos: u8,
    /// Reserved field width.
    pub rsvd_size: u8,
    /// VESA capabilities.
    pub gbl_caps: u32,
    /// VESA mode attributes.
    pub mode_attrs: u16,
    /// Padding.
    pub pad: u16,
    /// Framebuffer physical address, high 32 bits.
    pub ext_lfb_base: u32,
}

/// `dom0_vga_console_info.u`, kept as raw words (little-endian).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0VgaConsoleInfoU {
    raw: [u32; 9],
}

impl Dom0VgaConsoleInfoU {
    /// Wraps the union's raw 32-bit words.
    pub const fn from_raw(raw: [u32; 9]) -> Self {
        Dom0VgaConsoleInfoU { raw }
    }

    /// The union's raw 32-bit words.
    pub const fn raw(&self) -> [u32; 9] {
        self.raw
    }

    const fn u16_at(&self, offset: usize) -> u16 {
        (self.raw[offset / 4] >> ((offset % 4) * 8)) as u16
    }

    const fn u8_at(&self, offset: usize) -> u8 {
        (self.raw[offset / 4] >> ((offset % 4) * 8)) as u8
    }

    /// The `text_mode_3` view.
    pub const fn text_mode_3(&self) -> Dom0VgaTextMode3 {
        Dom0VgaTextMode3 {
            font_height: self.u16_at(0),
            cursor_x: self.u16_at(2),
            cursor_y: self.u16_at(4),
            rows: self.u16_at(6),
            columns: self.u16_at(8),
        }
    }

    /// The `vesa_lfb` view.
    pub const fn vesa_lfb(&self) -> Dom0VgaVesaLfb {
        Dom0VgaVesaLfb {
            width: self.u16_at(0),
            height: self.u16_at(2),
            bytes_per_line: self.u16_at(4),
            bits_per_pixel: self.u16_at(6),
            lfb_base: self.raw[2],
            lfb_size: self.raw[3],
            red_pos: self.u8_at(16),
            red_size: self.u8_at(17),
            green_pos: self.u8_at(18),
            green_size: self.u8_at(19),
            blue_pos: self.u8_at(20),
            blue_size: self.u8_at(21),
            rsvd_pos: self.u8_at(22),
            rsvd_size: self.u8_at(23),
            gbl_caps: self.raw[6],
            mode_attrs: self.u16_at(28),
            pad: self.u16_at(30),
            ext_lfb_base: self.raw[8],
        }
    }

    /// The union holding a `text_mode_3` arm.
    pub const fn from_text_mode_3(arm: Dom0VgaTextMode3) -> Self {
        let mut raw = [0u32; 9];
        raw[0] = arm.font_height as u32 | (arm.cursor_x as u32) << 16;
        raw[1] = arm.cursor_y as u32 | (arm.rows as u32) << 16;
        raw[2] = arm.columns as u32;
        Dom0VgaConsoleInfoU { raw }
    }

    /// The union holding a `vesa_lfb` arm.
    pub const fn from_vesa_lfb(arm: Dom0VgaVesaLfb) -> Self {
        Dom0VgaConsoleInfoU {
            raw: [
                arm.width as u32 | (arm.height as u32) << 16,
                arm.bytes_per_line as u32 | (arm.bits_per_pixel as u32) << 16,
                arm.lfb_base,
                arm.lfb_size,
                u32::from_le_bytes([arm.red_pos, arm.red_size, arm.green_pos, arm.green_size]),
                u32::from_le_bytes([arm.blue_pos, arm.blue_size, arm.rsvd_pos, arm.rsvd_size]),
                arm.gbl_caps,
                arm.mode_attrs as u32 | (arm.pad as u32) << 16,
                arm.ext_lfb_base,
            ],
        }
    }
}

/// `struct dom0_vga_console_info`: dom0's boot display, found in the
/// start-info page at `console.dom0.info_off`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0VgaConsoleInfo {
    /// `XEN_VGATYPE_*`: which arm of `u` is valid.
    pub video_type: u8,
    /// Mode details.
    pub u: Dom0VgaConsoleInfoU,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_union_round_trips() {
        let c = StartInfoConsole::from_dom_u(0x1234_5678_9abc, 7);
        assert_eq!(c.dom_u().mfn, 0x1234_5678_9abc);
        assert_eq!(c.dom_u().evtchn, 7);
        let c = StartInfoConsole::from_dom0(0x800, 40);
        assert_eq!(c.dom0().info_off, 0x800);
        assert_eq!(c.dom0().info_size, 40);
    }

    #[test]
    fn vesa_arm_round_trips() {
        let arm = Dom0VgaVesaLfb {
            width: 1024,
            height: 768,
            bytes_per_line: 4096,
            bits_per_pixel: 32,
            lfb_base: 0xe000_0000,
            lfb_size: 48,
            red_pos: 16,
            red_size: 8,
            green_pos: 8,
            green_size: 8,
            blue_pos: 0,
            blue_size: 8,
            rsvd_pos: 24,
            rsvd_size: 8,
            gbl_caps: 1,
            mode_attrs: 0x9b,
            pad: 0,
            ext_lfb_base: 1,
        };
        assert_eq!(Dom0VgaConsoleInfoU::from_vesa_lfb(arm).vesa_lfb(), arm);
        let text = Dom0VgaTextMode3 {
            font_height: 16,
            cursor_x: 3,
            cursor_y: 4,
            rows: 25,
            columns: 80,
        };
        assert_eq!(
            Dom0VgaConsoleInfoU::from_text_mode_3(text).text_mode_3(),
            text
        );
    }
}
