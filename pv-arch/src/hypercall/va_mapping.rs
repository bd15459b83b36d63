//! `HYPERVISOR_update_va_mapping`: rewrite the PTE behind one virtual page.

use super::raw::hypercall;
use crate::abi::xen::hypercall_nr;
use crate::errno::Errno;

/// `UVMF_INVLPG`: flush the TLB entry for this address on the local vCPU.
pub const UVMF_INVLPG: u64 = 2;

/// Page-table entry bits a PV guest uses for its own mappings.
pub mod pte {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const WRITABLE: u64 = 1 << 1;
    /// Accessed (set up front so the CPU need not write it).
    pub const ACCESSED: u64 = 1 << 5;
    /// Dirty (set up front for the same reason).
    pub const DIRTY: u64 = 1 << 6;
}

/// Maps the machine frame `mfn` at virtual address `va` with `flags`.
///
/// # Safety
///
/// `va` must be a page of this domain's address space that no Rust
/// reference points into (its old contents become unreachable), and the
/// new mapping must be used only as the frame's owner allows: Xen checks
/// that we may map `mfn`, but not what Rust code assumes about `va`.
pub unsafe fn update_va_mapping(va: usize, mfn: u64, flags: u64) -> Result<(), Errno> {
    let new_pte = (mfn << 12) | flags;
    // SAFETY: the hypercall takes no pointers; what it changes (the mapping
    // of `va`) is the caller's responsibility per `# Safety`.
    unsafe {
        hypercall(
            hypercall_nr::UPDATE_VA_MAPPING,
            [va as u64, new_pte, UVMF_INVLPG, 0, 0],
        )
    }
    .map(drop)
}
