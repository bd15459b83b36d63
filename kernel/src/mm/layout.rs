//! Which frames are taken at boot, worked out from `start_info`.
//!
//! Xen (or libxc, for a domU) lays out the start of a PV guest's memory
//! in one virtually contiguous region from `virt_base` (0 here, so a
//! virtual address there equals its pseudo-physical address): the kernel
//! image, the p2m list, `start_info`, the xenstore and console pages, the
//! bootstrap page tables at `pt_base` (`nr_pt_frames` of them), and one
//! bootstrap stack page after them. At least 512 KiB after that stack is
//! guaranteed to be mapped too; we put the frame bitmap there. Frames
//! below the image (except frame 0, kept unmapped to catch null
//! pointers) and everything after the bootstrap region are free. A p2m
//! list or module placed outside the region (`first_p2m_pfn`,
//! `SIF_MOD_START_PFN`) is reserved where it is.

use super::error::MmError;
use super::frames::words_for;
use crate::boot_info::{BootInfo, PAGE_SIZE};
use pv_arch::abi::start_info::SIF_MOD_START_PFN;

/// Frames of guaranteed mapped padding after the bootstrap stack (512 KiB).
pub const PADDING_FRAMES: u64 = 512 * 1024 / PAGE_SIZE;

/// Most reserved ranges a layout has.
const MAX_RESERVED: usize = 4 + crate::pvh_start::MAX_BOOT_DATA;

/// The boot-time frame layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootLayout {
    /// Frames in the domain (`nr_pages`).
    pub nr_pages: u64,
    /// First frame of the kernel image.
    pub image_start_pfn: u64,
    /// First frame after the bootstrap stack.
    pub bootstrap_end_pfn: u64,
    /// First frame of the frame bitmap (= `bootstrap_end_pfn`).
    pub bitmap_pfn: u64,
    /// Frames the bitmap takes.
    pub bitmap_frames: u64,
    /// Frames `pfn < mapped_end_pfn` are certainly mapped at boot.
    pub mapped_end_pfn: u64,
    reserved: [(u64, u64); MAX_RESERVED],
    reserved_len: usize,
}

impl BootLayout {
    /// Works out the layout of `boot`, whose image starts at virtual
    /// (= pseudo-physical) address `image_start`.
    pub fn new(boot: &BootInfo, image_start: u64) -> Result<Self, MmError> {
        let nr_pages = boot.nr_pages;
        let image_start_pfn = image_start / PAGE_SIZE;
        let pt_pfn = boot.pt_base / PAGE_SIZE;
        if image_start_pfn == 0 || pt_pfn < image_start_pfn {
            return Err(MmError::BadLayout("page tables below the image"));
        }
        let bootstrap_end_pfn = pt_pfn + boot.nr_pt_frames + 1;
        let bitmap_frames = (words_for(nr_pages) as u64 * 8).div_ceil(PAGE_SIZE);
        let mapped_end_pfn = bootstrap_end_pfn + PADDING_FRAMES;
        if bitmap_frames > PADDING_FRAMES {
            return Err(MmError::BadLayout(
                "frame bitmap larger than the boot padding",
            ));
        }
        if mapped_end_pfn > nr_pages {
            return Err(MmError::BadLayout("bootstrap region beyond nr_pages"));
        }
        let mut layout = BootLayout {
            nr_pages,
            image_start_pfn,
            bootstrap_end_pfn,
            bitmap_pfn: bootstrap_end_pfn,
            bitmap_frames,
            mapped_end_pfn,
            reserved: [(0, 0); MAX_RESERVED],
            reserved_len: 0,
        };
        layout.push(0, 1);
        layout.push(image_start_pfn, bootstrap_end_pfn + bitmap_frames);
        let (first_p2m_pfn, nr_p2m_frames) = boot.p2m_frames;
        if nr_p2m_frames != 0 {
            layout.push(first_p2m_pfn, first_p2m_pfn.saturating_add(nr_p2m_frames));
        }
        if let Some((start, len)) = boot.module {
            let first = if boot.flags & SIF_MOD_START_PFN != 0 {
                start
            } else {
                start / PAGE_SIZE
            };
            let end = (first * PAGE_SIZE).saturating_add(len).div_ceil(PAGE_SIZE);
            layout.push(first, end);
        }
        Ok(layout)
    }

    /// The PVH layout: frame 0, the image (`image_start..image_end`,
    /// page tables and stack are in its `.bss`), what Xen handed us at
    /// boot, and the frame bitmap, put in the first RAM after all of
    /// those. Everything is identity mapped, so `mapped_end_pfn` is the
    /// end of RAM. Frames that are not RAM are never freed by `mm`.
    pub fn new_pvh(
        memory: &crate::pvh_start::PvhMemory,
        image_start: u64,
        image_end: u64,
    ) -> Result<Self, MmError> {
        let nr_pages = memory.end_pfn();
        let image_start_pfn = image_start / PAGE_SIZE;
        let image_end_pfn = image_end.div_ceil(PAGE_SIZE);
        let bitmap_frames = (words_for(nr_pages) as u64 * 8).div_ceil(PAGE_SIZE);
        let bitmap_pfn = memory
            .boot_data()
            .map(|range| range.end)
            .fold(image_end_pfn, u64::max);
        let fits = (bitmap_pfn..bitmap_pfn + bitmap_frames).all(|pfn| memory.is_ram(pfn));
        if !fits {
            return Err(MmError::BadLayout(
                "no RAM after the image for the frame bitmap",
            ));
        }
        let mut layout = BootLayout {
            nr_pages,
            image_start_pfn,
            bootstrap_end_pfn: image_end_pfn,
            bitmap_pfn,
            bitmap_frames,
            mapped_end_pfn: nr_pages,
            reserved: [(0, 0); MAX_RESERVED],
            reserved_len: 0,
        };
        layout.push(0, 1);
        layout.push(image_start_pfn, image_end_pfn);
        layout.push(bitmap_pfn, bitmap_pfn + bitmap_frames);
        for range in memory.boot_data() {
            layout.push(range.start, range.end);
        }
        Ok(layout)
    }

    fn push(&mut self, start: u64, end: u64) {
        let end = end.min(self.nr_pages);
        if start < end {
            self.reserved[self.reserved_len] = (start, end);
            self.reserved_len += 1;
        }
    }

    /// The reserved ranges, `start..end` in frames (they may overlap).
    pub fn reserved(&self) -> impl Iterator<Item = core::ops::Range<u64>> + '_ {
        self.reserved[..self.reserved_len]
            .iter()
            .map(|&(start, end)| start..end)
    }

    /// Whether `pfn` is taken at boot.
    pub fn is_reserved(&self, pfn: u64) -> bool {
        self.reserved().any(|range| range.contains(&pfn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pv_arch::abi::start_info::{StartInfo, SIF_INITDOMAIN};

    /// What Xen 4.17 gave a 64 MiB dom0 in the rig.
    fn dom0() -> BootInfo {
        let mut si = StartInfo::zeroed();
        si.magic[..14].copy_from_slice(b"xen-3.0-x86_64");
        si.flags = SIF_INITDOMAIN;
        si.nr_pages = 16384;
        si.shared_info = 0x1fd8_e000;
        si.pt_base = 0x13f000;
        si.nr_pt_frames = 5;
        si.mfn_list = 0x11e000;
        si.first_p2m_pfn = 0x400;
        BootInfo::from_start_info(&si).unwrap()
    }

    #[test]
    fn dom0_layout() {
        let layout = BootLayout::new(&dom0(), 0x100000).unwrap();
        assert_eq!(layout.bootstrap_end_pfn, 0x145);
        assert_eq!(layout.bitmap_pfn, 0x145);
        assert_eq!(layout.bitmap_frames, 1);
        assert_eq!(layout.mapped_end_pfn, 0x145 + 128);
        assert!(layout.is_reserved(0));
        assert!(!layout.is_reserved(1));
        assert!(!layout.is_reserved(0xff));
        assert!(layout.is_reserved(0x100));
        assert!(layout.is_reserved(0x145), "bitmap");
        assert!(!layout.is_reserved(0x146));
        assert_eq!(layout.reserved().count(), 2);
    }

    #[test]
    fn p2m_and_module_outside_the_region_are_reserved() {
        let mut boot = dom0();
        boot.p2m_frames = (0x2000, 16);
        boot.module = Some((0x3000, 3 * 4096 + 1));
        boot.flags |= SIF_MOD_START_PFN;
        let layout = BootLayout::new(&boot, 0x100000).unwrap();
        assert!(layout.is_reserved(0x200f) && !layout.is_reserved(0x2010));
        assert!(layout.is_reserved(0x3003) && !layout.is_reserved(0x3004));
    }

    #[test]
    fn impossible_layouts_are_refused() {
        let mut boot = dom0();
        boot.nr_pages = 0x150;
        assert_eq!(
            BootLayout::new(&boot, 0x100000),
            Err(MmError::BadLayout("bootstrap region beyond nr_pages"))
        );
        let boot = dom0();
        assert!(BootLayout::new(&boot, 0x200000).is_err());
        let mut boot = dom0();
        boot.nr_pages = 1 << 40;
        assert!(BootLayout::new(&boot, 0x100000).is_err());
    }

    fn pvh_domu() -> BootInfo {
        use pv_arch::abi::hvm::{HvmMemmapTableEntry, HvmStartInfo, XEN_HVM_START_MAGIC_VALUE};
        let hsi = HvmStartInfo {
            magic: XEN_HVM_START_MAGIC_VALUE,
            version: 1,
            cmdline_paddr: 0x1f_1000,
            memmap_paddr: 0x1f_2000,
            memmap_entries: 1,
            ..Default::default()
        };
        let map = [HvmMemmapTableEntry {
            addr: 0,
            size: 32 << 20,
            type_: pv_arch::abi::hvm::XEN_HVM_MEMMAP_TYPE_RAM,
            reserved: 0,
        }];
        let params = crate::pvh_start::PvhParams {
            console: (0xfeffc, 2),
            store: (0xfeffb, 1),
        };
        let Ok(boot) = crate::pvh_start::boot_info(&hsi, &map, b"x", None, params, 4 << 30) else {
            panic!("refused")
        };
        boot
    }

    #[test]
    fn pvh_layout_puts_the_bitmap_after_image_and_boot_data() {
        let boot = pvh_domu();
        let memory = boot.pvh.unwrap();
        let layout = BootLayout::new_pvh(&memory, 0x10_0000, 0x1f_0800).unwrap();
        assert_eq!(layout.bitmap_pfn, 0x1f3);
        assert_eq!(layout.bitmap_frames, 1);
        assert!(layout.is_reserved(0) && layout.is_reserved(0x100) && layout.is_reserved(0x1f0));
        assert!(
            layout.is_reserved(0x1f1) && layout.is_reserved(0x1f2) && layout.is_reserved(0x1f3)
        );
        assert!(!layout.is_reserved(0x1f4) && !layout.is_reserved(0xff));
        assert_eq!(layout.mapped_end_pfn, 8192);
    }

    #[test]
    fn pvh_layout_without_room_is_refused() {
        let boot = pvh_domu();
        let memory = boot.pvh.unwrap();
        assert!(BootLayout::new_pvh(&memory, 0x10_0000, 32 << 20).is_err());
    }
}
