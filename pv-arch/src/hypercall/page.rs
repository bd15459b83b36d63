//! The hypercall page: 4 KiB at the end of our text that Xen fills with
//! call stubs.
//!
//! For a PV guest Xen writes the stubs while building the domain, because
//! the kernel's ELF notes name this page (`XEN_ELFNOTE_HYPERCALL_PAGE`);
//! a PVH guest asks for them through an MSR ([`install_via_msr`]) before
//! its first hypercall. So the page's contents never come from the image:
//! it is a `@nobits` section, the last of the text segment (`link.ld`),
//! which costs the image file nothing (the loader zeroes it, as it does
//! the bss) where 4 KiB of filler used to sit.

core::arch::global_asm!(
    ".pushsection .hypercall_page, \"ax\", @nobits",
    ".balign 4096",
    ".globl hypercall_page",
    "hypercall_page:",
    ".skip 4096",
    ".size hypercall_page, 4096",
    ".popsection",
    options(att_syntax)
);

unsafe extern "C" {
    /// The page of stubs; only its address is ever used.
    static hypercall_page: [u8; 4096];
}

/// Size of one stub; hypercall `nr` lives at `hypercall_page + nr * 32`.
pub const STUB_SIZE: usize = 32;

/// Virtual address of the hypercall page (for the ELF note and diagnostics).
pub fn address() -> usize {
    (&raw const hypercall_page) as usize
}

/// Address of the stub for hypercall number `nr`.
pub fn stub(nr: usize) -> usize {
    debug_assert!(nr < 4096 / STUB_SIZE);
    address() + nr * STUB_SIZE
}

/// Why the hypercall page could not be set up through the MSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypercallPageError {
    /// No `XenVMMXenVMM` signature in the hypervisor CPUID leaves.
    NotXen,
    /// Xen asks for more than the one page we have.
    TooManyPages(u32),
}

impl core::fmt::Display for HypercallPageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HypercallPageError::NotXen => f.write_str("no Xen signature in CPUID 0x4000xx00"),
            HypercallPageError::TooManyPages(n) => {
                write!(f, "Xen wants {n} hypercall pages, we have 1")
            }
        }
    }
}

/// The base of Xen's CPUID leaves: `0x40000000`, or a multiple of
/// `0x100` above it when Xen also presents a Viridian (Hyper-V) leaf set
/// first. Returns `(base, max leaf)`.
pub fn xen_cpuid_base() -> Option<(u32, u32)> {
    (0x4000_0000u32..0x4001_0000)
        .step_by(0x100)
        .find_map(|base| {
            let r = core::arch::x86_64::__cpuid(base);
            let mut sig = [0u8; 12];
            sig[..4].copy_from_slice(&r.ebx.to_le_bytes());
            sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
            sig[8..].copy_from_slice(&r.edx.to_le_bytes());
            (&sig == b"XenVMMXenVMM" && r.eax >= base + 2).then_some((base, r.eax))
        })
}

/// Fills the hypercall page the HVM way (PVH): CPUID leaf `base + 2`
/// names the MSR; writing the page's physical address to it makes Xen
/// write the stubs (`vmcall` or `vmmcall`, whichever this CPU has).
///
/// # Safety
///
/// Virtual and physical addresses of the page must be equal (our image
/// is identity mapped in PVH), and the CPU must be in a mode where
/// `wrmsr` is allowed (ring 0: a PVH kernel, never a PV one).
pub unsafe fn install_via_msr() -> Result<(), HypercallPageError> {
    let (base, _) = xen_cpuid_base().ok_or(HypercallPageError::NotXen)?;
    let leaf = core::arch::x86_64::__cpuid(base + 2);
    if leaf.eax != 1 {
        return Err(HypercallPageError::TooManyPages(leaf.eax));
    }
    let paddr = address() as u64;
    // SAFETY: ring 0 by the caller's contract; the MSR is the one Xen
    // named for exactly this, and the page is ours, in our text, unused
    // until the stubs are in it.
    unsafe {
        core::arch::asm!(
            "wrmsr",
            in("ecx") leaf.ebx,
            in("eax") paddr as u32,
            in("edx") (paddr >> 32) as u32,
            options(nostack, preserves_flags)
        );
    }
    Ok(())
}
