//! A PV guest's `start_info` page as Xen writes it, parsed into the
//! kernel's `BootInfo` and printed as the boot summary.
//!
//! Input: the page's bytes, laid out as `struct start_info` (shorter
//! input is zero-filled). What must hold: nothing panics (overflow
//! checks are on: a fuzzer found `nr_pages * PAGE_SIZE` overflowing in
//! the summary); an accepted command line is within `MAX_GUEST_CMDLINE`.
#![no_main]

use core::mem::{offset_of, size_of};

use kernel::boot_info::BootInfo;
use libfuzzer_sys::fuzz_target;
use pv_arch::abi::start_info::{StartInfo, StartInfoConsole, MAX_GUEST_CMDLINE};

fuzz_target!(|data: &[u8]| {
    let mut page = vec![0u8; size_of::<StartInfo>()];
    let n = data.len().min(page.len());
    page[..n].copy_from_slice(&data[..n]);
    let si = start_info_from_bytes(&page);
    if let Ok(info) = BootInfo::from_start_info(&si) {
        assert!(info.cmdline().len() < MAX_GUEST_CMDLINE);
        let summary = format!("{info}");
        assert!(summary.contains("nr_pages"));
        let _ = info.flag_names().count();
    }
});

/// Reads `struct start_info` field by field at the offsets of our
/// `#[repr(C)]` mirror (which a host test checks against Xen's header).
fn start_info_from_bytes(page: &[u8]) -> StartInfo {
    let u64_at = |at: usize| u64::from_le_bytes(page[at..at + 8].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(page[at..at + 4].try_into().unwrap());
    let mut si = StartInfo::zeroed();
    si.magic
        .copy_from_slice(&page[offset_of!(StartInfo, magic)..][..32]);
    si.nr_pages = u64_at(offset_of!(StartInfo, nr_pages));
    si.shared_info = u64_at(offset_of!(StartInfo, shared_info));
    si.flags = u32_at(offset_of!(StartInfo, flags));
    si.store_mfn = u64_at(offset_of!(StartInfo, store_mfn));
    si.store_evtchn = u32_at(offset_of!(StartInfo, store_evtchn));
    let console = offset_of!(StartInfo, console);
    si.console = StartInfoConsole::from_raw([u64_at(console), u64_at(console + 8)]);
    si.pt_base = u64_at(offset_of!(StartInfo, pt_base));
    si.nr_pt_frames = u64_at(offset_of!(StartInfo, nr_pt_frames));
    si.mfn_list = u64_at(offset_of!(StartInfo, mfn_list));
    si.mod_start = u64_at(offset_of!(StartInfo, mod_start));
    si.mod_len = u64_at(offset_of!(StartInfo, mod_len));
    si.cmd_line
        .copy_from_slice(&page[offset_of!(StartInfo, cmd_line)..][..MAX_GUEST_CMDLINE]);
    si.first_p2m_pfn = u64_at(offset_of!(StartInfo, first_p2m_pfn));
    si.nr_p2m_frames = u64_at(offset_of!(StartInfo, nr_p2m_frames));
    si
}
